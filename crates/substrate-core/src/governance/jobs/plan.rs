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
        self.job_plan_with(now, |_| Locality::Anywhere)
    }

    /// [`Governance::job_plan`], with `locality` saying where each job's data lets it run.
    pub fn job_plan_with(&self, now: u64, locality: impl Fn(&JobRecord) -> Locality) -> Vec<(u64, Planned)> {
        let mut load = self.load(Some(now));
        let mut plan = Vec::new();
        for job in self.open_jobs.iter().filter_map(|id| self.jobs.get(id)) {
            let step = match &job.status {
                JobStatus::Drawing => job.answered(Role::Run).and_then(|r| r.result).map(Planned::Draw),
                JobStatus::Open { needs } => match job.live_run() {
                    Some(run) if run.deadline >= now => None,
                    _ => Some(match locality(job) {
                        Locality::Anywhere => self.next_assignment(job, *needs, now, &load, None),
                        Locality::Only(node) if *needs == Role::Run => {
                            self.next_assignment(job, *needs, now, &load, Some(&node))
                        }
                        Locality::Only(_) => Planned::Abandon(format!(
                            "its snapshot holds local texts, which no node but the one holding them may read: no other operator can {} it",
                            needs.name()
                        )),
                        Locality::Nowhere(reason) => Planned::Abandon(reason),
                    }),
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
        only: Option<&str>,
    ) -> Planned {
        let attempts = job.runs_of(role).count();
        if attempts >= MAX_ATTEMPTS {
            return Planned::Abandon(format!("{attempts} attempts to {} it lapsed or failed", role.name()));
        }
        let here = |node: &str| only.is_none_or(|only| only == node);
        let room = |node: &str| here(node) && load.get(node).copied().unwrap_or(0) < MAX_ASSIGNED;
        match self.choose_worker_among(job, role, now, load, room) {
            Some(node) => Planned::Assign { node, role, deadline: now.saturating_add(job.deadline_ms) },
            // Someone could take it once it has room: it waits for them rather than being given up.
            None if self.choose_worker_among(job, role, now, load, here).is_some() => Planned::Wait,
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

/// Where a job's data lets it run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Locality {
    /// On any eligible worker.
    Anywhere,
    /// Only on this node, which holds texts that never leave it; nobody can check it elsewhere.
    Only(String),
    /// Nowhere, for this reason: the job is given up.
    Nowhere(String),
}

impl Governance {
    /// The sequencer's plan ([`Governance::job_plan`]) with compute going to the data: a training
    /// or evaluation job whose snapshot holds `local` texts (`local_texts` counts them) runs only on `holder`,
    /// the node they were deposited to (the sequencer's own, when it takes jobs), and is not
    /// re-executed elsewhere.
    pub fn job_plan_near(
        &self,
        now: u64,
        holder: Option<&str>,
        local_texts: impl Fn(&JobRecord) -> usize,
    ) -> Vec<(u64, Planned)> {
        self.job_plan_with(now, |job| {
            if job.input.as_ref().and_then(JobInput::snapshot_decision).is_none() {
                return Locality::Anywhere;
            }
            match (local_texts(job), holder) {
                (0, _) => Locality::Anywhere,
                (_, Some(holder)) => Locality::Only(holder.to_owned()),
                (n, None) => Locality::Nowhere(format!(
                    "its snapshot holds {n} local text(s), which never leave the sequencer's node, and that node takes no jobs (`substrate serve --work` with its node key registered)"
                )),
            }
        })
    }

    /// The registers the mixture of a training or evaluation job weighs, for its snapshot.
    pub fn training_registers(&self, job: &JobRecord) -> Option<BTreeSet<crate::Register>> {
        let decision = job.input.as_ref()?.snapshot_decision()?;
        let mixture = self.mixture_decided_at(decision)?;
        Some(mixture.weights.iter().filter(|(_, w)| **w > 0.0).map(|(r, _)| r.clone()).collect())
    }
}

impl crate::state::State {
    /// [`Governance::job_plan_near`] on a state that holds every deposit (a replay's, a test's).
    pub fn job_plan(&self, now: u64, holder: Option<&str>) -> Vec<(u64, Planned)> {
        use crate::register::ConsentTier;
        let g = self.governance();
        g.job_plan_near(now, holder, |job| {
            let registers = g.training_registers(job).unwrap_or_default();
            self.snapshot_at(job.id, &registers).iter().filter(|e| e.consent == ConsentTier::Local).count()
        })
    }
}

fn spread(job: u64, node: &str) -> [u8; 32] {
    crate::sha256(format!("{job}\n{node}").as_bytes())
}

impl Governance {
    /// Whether the text of `deposit` may be sent to `node` for job `job` at `at`, or why not. Only
    /// a `training-only` text (public and commons texts replicate to members' nodes anyway, and a
    /// `local` one never leaves its node), only for an open training or evaluation job (an
    /// evaluation measures loss as the training run does on its held-out texts, and only
    /// per-register figures leave the node running it), only to the node whose
    /// live assignment of it has not passed its deadline, and only a deposit of the job's
    /// snapshot (the log's first `job` entries, the registers its mixture weighs) that is still
    /// active.
    pub fn job_text(
        &self,
        job: u64,
        node: &str,
        deposit: &crate::state::DepositRecord,
        at: u64,
    ) -> Result<(), String> {
        use crate::register::ConsentTier;
        let cid = &deposit.cid;
        if deposit.consent != ConsentTier::TrainingOnly {
            return Err(match deposit.consent {
                ConsentTier::Local => format!("{cid} is local: its text never leaves its node"),
                _ => {
                    format!("{cid} is {}: it replicates as texts do, not for a job", deposit.consent.as_str())
                }
            });
        }
        if deposit.status.is_gone() {
            return Err(format!("{cid} was withdrawn or removed"));
        }
        let refused = |why: String| {
            Err(format!(
                "{cid} is training-only, sent only to the node running an open training or evaluation job: {why}"
            ))
        };
        let Some(record) = self.jobs.get(&job).filter(|j| j.is_open()) else {
            return refused(format!("job {job} is not an open job"));
        };
        if record.input.as_ref().and_then(JobInput::snapshot_decision).is_none() {
            return refused(format!("job {job} is not a training or evaluation job"));
        }
        if !record.live_run().is_some_and(|r| r.node == node && r.deadline >= at) {
            return refused(format!("{node} holds no live assignment of job {job}"));
        }
        let weighted = self.training_registers(record).unwrap_or_default();
        if !crate::snapshot::in_snapshot(deposit, job, &weighted, &self.disputed_at(job)) {
            return refused(format!("it is not in the snapshot job {job} reads"));
        }
        Ok(())
    }
}
