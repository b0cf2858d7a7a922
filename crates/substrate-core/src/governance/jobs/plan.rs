//! Who may take a job and what the sequencer should do next: eligibility, the choice of a
//! worker, and the plan of assignments, draws, rechecks and abandonments the sequencer signs.

use super::*;

impl Governance {
    /// Every job, by id.
    pub fn jobs(&self) -> &BTreeMap<u64, JobRecord> {
        &self.jobs
    }

    /// The approved workload `id` (KIND@VERSION).
    pub fn workload(&self, id: &str) -> Option<&WorkloadRecord> {
        self.workloads.get(id)
    }

    /// Every node's standing offer, by node key.
    pub fn offers(&self) -> &BTreeMap<String, OfferRecord> {
        &self.offers
    }

    /// Every node's reputation from checked jobs, by node key.
    pub fn reputations(&self) -> &BTreeMap<String, Reputation> {
        &self.reputations
    }

    /// The reputation of `node` (a fresh one if it has none yet).
    pub fn reputation(&self, node: &str) -> Reputation {
        self.reputations
            .get(node)
            .cloned()
            .unwrap_or_else(|| Reputation { node: node.to_owned(), ..Reputation::default() })
    }

    /// Whether `offer` has lapsed at `at`: its worker did not renew it for [`OFFER_LIFETIME_MS`]
    /// (state encoding 4; earlier, an offer stands until its node withdraws it).
    pub fn offer_lapsed(&self, offer: &OfferRecord, at: u64) -> bool {
        self.later_job_rules() && at.saturating_sub(offer.at) > OFFER_LIFETIME_MS
    }

    /// Whether the jobs' rules of state encoding 4 apply: offers lapse, and a shunned node's
    /// results are all checked.
    pub fn later_job_rules(&self) -> bool {
        self.state_encoding >= 4
    }

    /// The share of results re-executed, in parts per million.
    pub fn check_ppm(&self) -> u32 {
        self.params.as_ref().map_or(DEFAULT_CHECK_PPM, |p| p.check_ppm)
    }

    /// Why `node` cannot take `role` of `job` at `at`, if it cannot.
    pub fn ineligible(&self, job: &JobRecord, node: &str, role: Role, at: u64) -> Option<String> {
        let Some(registered) = self.nodes.get(node) else {
            return Some("it is not a registered node".into());
        };
        if !self.is_verified(&registered.operator, at) {
            return Some(format!("its operator {} is not a verified member", registered.operator));
        }
        let Some(offer) = self.offers.get(node) else { return Some("it has made no offer".into()) };
        if self.offer_lapsed(offer, at) {
            return Some(format!(
                "its offer lapsed: it was last renewed at {} and stands {} minutes; a running worker \
                 renews it every {} minutes",
                offer.at,
                OFFER_LIFETIME_MS / 60_000,
                OFFER_RENEWAL_MS / 60_000
            ));
        }
        if !offer.workloads.contains(&job.workload) {
            return Some(format!("its offer does not list {}", job.workload));
        }
        let pinned = pinned_models(self, &job.workload).unwrap_or_default();
        if let Some(missing) = pinned.iter().find(|m| !offer.models.contains(m)) {
            return Some(format!("it does not hold the model {missing} that {} pins", job.workload));
        }
        let answered: BTreeSet<&str> = job
            .runs
            .iter()
            .filter(|r| r.result.is_some() && r.failure.is_none())
            .map(|r| r.operator.as_str())
            .collect();
        if role != Role::Run && answered.contains(registered.operator.as_str()) {
            return Some(format!(
                "its operator {} already produced an output of this job; a {} is another operator's",
                registered.operator,
                role.name()
            ));
        }
        // A live run past its deadline has lapsed, though the step that marks it is still to come.
        if job
            .runs_of(role)
            .any(|r| r.node == node && (r.missed || r.failure.is_some() || (r.live() && r.deadline < at)))
        {
            return Some(format!("it already let this job's {} lapse or fail", role.name()));
        }
        None
    }

    /// The node the sequencer assigns `role` of `job` to at `at`: eligible, not shunned while
    /// another can take it, the best reputation, then the fewest live assignments, then an order
    /// that spreads jobs (the sha256 of the job id and the node key).
    pub fn choose_worker(&self, job: &JobRecord, role: Role, at: u64) -> Option<String> {
        self.choose_worker_among(job, role, at, &self.load(None), |_| true)
    }

    /// How many live assignments each node holds: every one waiting for its result, or (with
    /// `now`) only those whose deadline has not passed.
    fn load(&self, now: Option<u64>) -> BTreeMap<String, usize> {
        let mut load: BTreeMap<String, usize> = BTreeMap::new();
        for open in self.open_jobs.iter().filter_map(|id| self.jobs.get(id)) {
            if let Some(run) = open.live_run().filter(|run| now.is_none_or(|now| run.deadline >= now)) {
                *load.entry(run.node.clone()).or_default() += 1;
            }
        }
        load
    }

    /// [`Governance::choose_worker`] among the nodes `allowed` lets through, `load` breaking ties.
    fn choose_worker_among(
        &self,
        job: &JobRecord,
        role: Role,
        at: u64,
        load: &BTreeMap<String, usize>,
        allowed: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let mut eligible: Vec<(&str, Reputation)> = self
            .offers
            .keys()
            .filter(|node| self.ineligible(job, node, role, at).is_none())
            .map(|node| (node.as_str(), self.reputation(node)))
            .collect();
        // A shunned node is passed over while any other could take the job, busy or not.
        if eligible.iter().any(|(_, r)| !r.shunned()) {
            eligible.retain(|(_, r)| !r.shunned());
        }
        eligible.retain(|(node, _)| allowed(node));
        eligible
            .into_iter()
            .min_by(|(a, ra), (b, rb)| {
                rb.score()
                    .total_cmp(&ra.score())
                    .then(load.get(*a).copied().unwrap_or(0).cmp(&load.get(*b).copied().unwrap_or(0)))
                    .then(spread(job.id, a).cmp(&spread(job.id, b)))
            })
            .map(|(node, _)| node.to_owned())
    }

    /// What the sequencer should do about open jobs at `now`: assign, reassign past a deadline,
    /// draw, or give up. A draw's proof is left for the log key to sign.
    ///
    /// A node holds at most [`MAX_ASSIGNED`] assignments: a worker runs its jobs one after
    /// another, so it is given the next ones while it runs one, and no more, which would wait out
    /// their deadlines behind it. Jobs are planned in the order they were requested.
    pub fn job_plan(&self, now: u64) -> Vec<(u64, Planned)> {
        let mut load = self.load(Some(now));
        let mut plan = Vec::new();
        for job in self.open_jobs.iter().filter_map(|id| self.jobs.get(id)) {
            let step = match &job.status {
                JobStatus::Drawing => job.answered(Role::Run).and_then(|r| r.result).map(Planned::Draw),
                JobStatus::Open { needs } => match job.live_run() {
                    Some(run) if run.deadline >= now => None,
                    _ => Some(self.next_assignment(job, *needs, now, &load)),
                },
                JobStatus::Done { .. } | JobStatus::Failed { .. } => None,
            };
            if let Some(step) = step {
                if let Planned::Assign { node, .. } = &step {
                    *load.entry(node.clone()).or_default() += 1;
                }
                plan.push((job.id, step));
            }
        }
        for job in self.rechecks.iter().filter_map(|id| self.jobs.get(id)) {
            if let JobStatus::Done { result, .. } = job.status {
                plan.push((job.id, Planned::Recheck(result)));
            }
        }
        plan
    }

    fn next_assignment(
        &self,
        job: &JobRecord,
        role: Role,
        now: u64,
        load: &BTreeMap<String, usize>,
    ) -> Planned {
        let attempts = job.runs_of(role).count();
        if attempts >= MAX_ATTEMPTS {
            return Planned::Abandon(format!("{attempts} attempts to {} it lapsed or failed", role.name()));
        }
        let room = |node: &str| load.get(node).copied().unwrap_or(0) < MAX_ASSIGNED;
        match self.choose_worker_among(job, role, now, load, room) {
            Some(node) => Planned::Assign { node, role, deadline: now.saturating_add(job.deadline_ms) },
            // Someone could take it once it has room: it waits for them rather than being given up.
            None if self.choose_worker_among(job, role, now, load, |_| true).is_some() => Planned::Wait,
            None => {
                let waiting_since = job.live_run().map_or(job.since, |r| r.deadline.max(job.since));
                let patience = if role == Role::Run { QUEUE_LIMIT_MS } else { job.deadline_ms };
                if now.saturating_sub(waiting_since) >= patience {
                    Planned::Abandon(format!(
                        "no eligible worker to {} it for {} s",
                        role.name(),
                        patience / 1000
                    ))
                } else {
                    Planned::Wait
                }
            }
        }
    }
}

fn spread(job: u64, node: &str) -> [u8; 32] {
    crate::sha256(format!("{job}\n{node}").as_bytes())
}
