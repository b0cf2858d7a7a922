//! The fold of job events: offers, requests, the sequencer's steps, results, and the settlement
//! of a job's credits and reputation.

use super::*;

impl State {
    pub(crate) fn offer(
        &self,
        index: u64,
        time: u64,
        signer: &str,
        o: &NodeOffer,
    ) -> Result<Vec<Change>, Rejection> {
        let g = &self.governance;
        let refuse = |f| Err(Rejection::Job(f));
        if signer != o.node {
            return refuse(JobFault::OfferSigner { node: o.node.clone(), signer: signer.to_owned() });
        }
        let Some(node) = g.nodes.get(&o.node) else {
            return refuse(JobFault::UnregisteredNode(o.node.clone()));
        };
        if !g.is_verified(&node.operator, time) {
            return refuse(JobFault::OperatorUnverified(node.operator.clone()));
        }
        validate_offer(o).map_err(|e| Rejection::Job(JobFault::Offer(e)))?;
        Ok(vec![Change::Record(Record::Offer(OfferRecord {
            node: o.node.clone(),
            operator: node.operator.clone(),
            cores: o.cores,
            memory_mib: o.memory_mib,
            models: o.models.clone(),
            workloads: o.workloads.clone(),
            log_index: index,
            at: time,
        }))])
    }

    pub(crate) fn request_job(
        &self,
        index: u64,
        time: u64,
        signer: &str,
        r: &JobRequest,
        params: &Parameters,
    ) -> Result<Vec<Change>, Rejection> {
        self.require_member(signer, time)?;
        let g = &self.governance;
        let refuse = |f| Err(Rejection::Job(f));
        if !g.workloads.contains_key(&r.workload) {
            return refuse(JobFault::NotApproved(r.workload.clone()));
        }
        let kind = r.workload.split('@').next().unwrap_or_default();
        if !RUNNABLE_KINDS.contains(&kind) {
            return refuse(JobFault::NotRunnable(kind.to_owned()));
        }
        if r.input.kind() != kind {
            return refuse(JobFault::Input(format!(
                "a {kind} job takes a {kind} input, not {}",
                r.input.kind()
            )));
        }
        validate_input(&r.input).map_err(|e| Rejection::Job(JobFault::Input(e)))?;
        if let Some(decision) = r.input.snapshot_decision()
            && g.mixture_decided_at(decision).is_none()
        {
            return refuse(JobFault::Input(format!(
                "entry {decision} is not a decision that set the mixture; `substrate mixture` names the one in force"
            )));
        }
        if let JobInput::Evaluate { adapter: Some(id), .. } = &r.input {
            let Some(adapter) = g.adapter(*id) else {
                return refuse(JobFault::Input(format!(
                    "the log publishes no adapter {id}; `substrate adapters list` names them"
                )));
            };
            if !pinned_models(g, &r.workload).unwrap_or_default().contains(&adapter.base_model) {
                return refuse(JobFault::Input(format!(
                    "adapter {id} was trained on the base model {}, which {} does not pin; the chambers approve an evaluation of that model",
                    adapter.base_model, r.workload
                )));
            }
        }
        let seconds = r.deadline_seconds.unwrap_or(DEFAULT_DEADLINE_SECONDS);
        if seconds == 0 || seconds > MAX_DEADLINE_SECONDS {
            return refuse(JobFault::Input(format!("deadlineSeconds runs from 1 to {MAX_DEADLINE_SECONDS}")));
        }
        if r.budget == 0 {
            return refuse(JobFault::Budget);
        }
        let job = JobRecord {
            id: index,
            workload: r.workload.clone(),
            requester: signer.to_owned(),
            input_digest: hex::encode(crate::sha256(&serde_json::to_vec(&r.input).unwrap_or_default())),
            budget: r.budget,
            reserved: r.budget.saturating_mul(1000),
            floor: 0,
            deadline_ms: u64::from(seconds) * 1000,
            requested_at: time,
            since: time,
            input: Some(r.input.clone()),
            runs: Vec::new(),
            draw: None,
            drawn: None,
            status: JobStatus::Open { needs: Role::Run },
            dispute: None,
            outputs: BTreeMap::new(),
            recheck: None,
        };
        if g.choose_worker(&job, Role::Run, time).is_none() {
            return refuse(JobFault::NoWorker(r.workload.clone()));
        }
        let mut credits = CreditBook::new(g, params);
        let mut job = job;
        // The floor first, for inference-sized jobs; the balance pays the rest.
        let floor = if g.later_job_rules() && FLOOR_KINDS.contains(&kind) {
            credits.floor_left(signer, time).min(job.reserved)
        } else {
            0
        };
        let have = credits.balance(signer, time);
        if have < job.reserved - floor {
            return refuse(JobFault::Credits {
                holder: signer.to_owned(),
                need: r.budget,
                have_milli: have,
                floor_milli: floor,
            });
        }
        credits.draw_floor(signer, floor, time);
        credits.debit(signer, job.reserved - floor, time);
        job.floor = floor;
        let mut changes = vec![Change::Record(Record::Job(Box::new(job)))];
        changes.extend(credits.into_changes());
        Ok(changes)
    }

    pub(crate) fn schedule_job(
        &self,
        index: u64,
        time: u64,
        signer: &str,
        s: &JobSchedule,
        commons: &Commons,
        params: &Parameters,
    ) -> Result<Vec<Change>, Rejection> {
        if signer != commons.log_did {
            return Err(Rejection::NotLogKey(signer.to_owned()));
        }
        let g = &self.governance;
        let mut job = match &s.step {
            // A recheck re-opens a job that had ended.
            Step::Recheck { .. } => {
                g.jobs.get(&s.job).cloned().ok_or(Rejection::Job(JobFault::UnknownJob(s.job)))?
            }
            _ => self.open_job(s.job)?,
        };
        let out_of_turn = |detail: String| Err(Rejection::Job(JobFault::OutOfTurn { job: s.job, detail }));
        let mut changes = Vec::new();
        match &s.step {
            Step::Assign { node, role, deadline } => {
                let JobStatus::Open { needs } = job.status else {
                    return out_of_turn("its run's result is in and waits for the draw".into());
                };
                if *role != needs {
                    return out_of_turn(format!("it needs a {} now, not a {}", needs.name(), role.name()));
                }
                if let Some(live) = job.live_run()
                    && live.deadline >= time
                {
                    return out_of_turn(format!("{} has it until {}", live.node, live.deadline));
                }
                if job.runs_of(*role).count() >= MAX_ATTEMPTS {
                    return out_of_turn(format!("its {} had {MAX_ATTEMPTS} attempts", role.name()));
                }
                if let Some(detail) = g.ineligible(&job, node, *role, time) {
                    return Err(Rejection::Job(JobFault::Ineligible {
                        job: s.job,
                        node: node.clone(),
                        detail,
                    }));
                }
                if *deadline <= time || *deadline > time.saturating_add(job.deadline_ms) {
                    return out_of_turn(format!(
                        "an assignment's deadline falls within the job's {} s after the assignment",
                        job.deadline_ms / 1000
                    ));
                }
                changes.extend(self.lapse(&mut job));
                let operator = g.nodes.get(node).map(|n| n.operator.clone()).unwrap_or_default();
                job.runs.push(Run {
                    assignment: index,
                    node: node.clone(),
                    operator,
                    role: *role,
                    deadline: *deadline,
                    assigned_at: time,
                    result: None,
                    output_digest: None,
                    failure: None,
                    cpu_ms: 0,
                    missed: false,
                });
            }
            Step::Draw { result, proof } => {
                if job.status != JobStatus::Drawing {
                    return out_of_turn("no run's result waits for a draw".into());
                }
                if job.answered(Role::Run).and_then(|r| r.result) != Some(*result) {
                    return out_of_turn(format!("entry {result} is not its run's result"));
                }
                let signature = STANDARD
                    .decode(proof)
                    .ok()
                    .and_then(|bytes| ed25519_dalek::Signature::from_slice(&bytes).ok())
                    .ok_or(Rejection::Job(JobFault::BadDraw))?;
                let key = crate::identity::key_of(&commons.log_did)
                    .map_err(|_| Rejection::Job(JobFault::BadDraw))?;
                key.verify_strict(&draw_message(&commons.origin, s.job, *result), &signature)
                    .map_err(|_| Rejection::Job(JobFault::BadDraw))?;
                // A node caught out of line is checked every time until it has earned its score
                // back; the draw still goes in the log, so anyone sees which rule selected it.
                let suspect = g.later_job_rules()
                    && job.answered(Role::Run).is_some_and(|run| g.reputation(&run.node).shunned());
                let selected = suspect || drawn(&signature.to_bytes(), g.check_ppm());
                job.draw = Some(index);
                job.drawn = Some(selected);
                if selected {
                    job.status = JobStatus::Open { needs: Role::Check };
                } else {
                    changes.extend(self.settle(&mut job, Verdict::Unsampled, Role::Run, time, params));
                }
            }
            Step::Recheck { input, output } => {
                if !job.awaits_recheck() {
                    return out_of_turn("it awaits no recheck".into());
                }
                let JobStatus::Done { result, .. } = job.status else {
                    return out_of_turn("it awaits no recheck".into());
                };
                let input_digest = hex::encode(crate::sha256(&serde_json::to_vec(input).unwrap_or_default()));
                let standing = job.runs.iter().find(|r| r.result == Some(result));
                if input_digest != job.input_digest
                    || standing.and_then(|r| r.output_digest.as_deref()) != Some(output.digest().as_str())
                {
                    return out_of_turn(
                        "the input or the output is not the one the log holds for it (their digests differ)"
                            .into(),
                    );
                }
                job.input = Some(input.clone());
                job.outputs.insert(result, output.clone());
                job.status = JobStatus::Open { needs: Role::Check };
                if let Some(recheck) = &mut job.recheck {
                    recheck.started = true;
                }
            }
            Step::Abandon { reason } => {
                if reason.trim().is_empty() || reason.chars().count() > crate::event::MAX_REASON {
                    return out_of_turn("say why the job is given up, in at most 1000 characters".into());
                }
                let JobStatus::Open { needs } = job.status else {
                    return out_of_turn("its run's result waits for the draw".into());
                };
                if let Some(live) = job.live_run()
                    && live.deadline >= time
                {
                    return out_of_turn(format!("{} has it until {}", live.node, live.deadline));
                }
                changes.extend(self.lapse(&mut job));
                match needs {
                    Role::Run => changes.extend(self.fail(&mut job, reason.clone(), time, params)),
                    Role::Check => {
                        changes.extend(self.settle(&mut job, Verdict::Unchecked, Role::Run, time, params))
                    }
                    Role::Arbitrate => {
                        if let Some(dispute) = &mut job.dispute {
                            dispute.finding = Some(format!("no arbitration: {reason}"));
                        }
                        changes.extend(self.unresolved(&mut job, time, params));
                    }
                }
            }
        }
        job.since = time;
        changes.insert(0, Change::Record(Record::Job(Box::new(job))));
        Ok(changes)
    }

    pub(crate) fn job_result(
        &self,
        index: u64,
        time: u64,
        signer: &str,
        r: &JobResult,
        params: &Parameters,
    ) -> Result<Vec<Change>, Rejection> {
        let refuse = |f| Err(Rejection::Job(f));
        if signer != r.node {
            return refuse(JobFault::ResultSigner { node: r.node.clone(), signer: signer.to_owned() });
        }
        let mut job = self.open_job(r.job)?;
        let not_assigned =
            || JobFault::NotAssigned { job: r.job, assignment: r.assignment, node: r.node.clone() };
        let position = job
            .runs
            .iter()
            .position(|run| run.assignment == r.assignment && run.node == r.node && run.live())
            .ok_or_else(|| Rejection::Job(not_assigned()))?;
        if r.cpu_ms > MAX_CPU_MS {
            return refuse(JobFault::Output(format!("cpuMs is at most {MAX_CPU_MS}")));
        }
        let role = job.runs[position].role;
        let output = match (&r.output, &r.failure) {
            (Some(output), None) => {
                match &job.input {
                    Some(input) => {
                        check_output(input, output).map_err(|e| Rejection::Job(JobFault::Output(e)))?
                    }
                    None if output_kind(output) != job.kind() => {
                        return refuse(JobFault::Output(format!(
                            "a {} job's output is of kind {}",
                            job.kind(),
                            output_kind(output)
                        )));
                    }
                    None => {}
                }
                Some(output.clone())
            }
            (None, Some(failure))
                if !failure.trim().is_empty() && failure.chars().count() <= crate::event::MAX_REASON =>
            {
                None
            }
            _ => {
                return refuse(JobFault::Output(
                    "a result carries either an output or a failure (1 to 1000 characters), not both".into(),
                ));
            }
        };
        {
            let run = &mut job.runs[position];
            run.result = Some(index);
            run.cpu_ms = r.cpu_ms;
            run.failure = r.failure.clone();
            run.output_digest = output.as_ref().map(JobOutput::digest);
        }
        let mut changes = Vec::new();
        let Some(output) = output else {
            // A failed attempt: the role goes to another node, until the attempts run out.
            if job.runs_of(role).count() >= MAX_ATTEMPTS {
                let reason = format!(
                    "{MAX_ATTEMPTS} attempts to {} it failed: {}",
                    role.name(),
                    r.failure.clone().unwrap_or_default()
                );
                match role {
                    Role::Run => changes.extend(self.fail(&mut job, reason, time, params)),
                    Role::Check => {
                        changes.extend(self.settle(&mut job, Verdict::Unchecked, Role::Run, time, params))
                    }
                    Role::Arbitrate => changes.extend(self.unresolved(&mut job, time, params)),
                }
            }
            job.since = time;
            changes.insert(0, Change::Record(Record::Job(Box::new(job))));
            return Ok(changes);
        };
        match role {
            Role::Run => {
                job.outputs.insert(index, output);
                job.status = JobStatus::Drawing;
            }
            Role::Check => {
                let run_output =
                    job.answered(Role::Run).and_then(|run| run.result).and_then(|i| job.outputs.get(&i));
                if run_output.is_some_and(|o| agree(o, &output)) {
                    let nodes: Vec<String> = job
                        .runs
                        .iter()
                        .filter(|r| r.result.is_some() && r.failure.is_none())
                        .map(|r| r.node.clone())
                        .collect();
                    changes.extend(self.judge(&nodes, &[], job.id, time));
                    changes.extend(self.settle(&mut job, Verdict::Passed, Role::Run, time, params));
                } else {
                    let run_result = job.answered(Role::Run).and_then(|run| run.result).unwrap_or_default();
                    job.outputs.insert(index, output);
                    job.dispute = Some(JobDispute {
                        opened_at: time,
                        results: vec![run_result, index],
                        arbiter: None,
                        finding: None,
                    });
                    job.status = JobStatus::Open { needs: Role::Arbitrate };
                }
            }
            Role::Arbitrate => {
                let of =
                    |role| job.answered(role).map(|run| (run.node.clone(), run.result.unwrap_or_default()));
                let (Some((run_node, run_result)), Some((check_node, check_result))) =
                    (of(Role::Run), of(Role::Check))
                else {
                    return refuse(not_assigned());
                };
                let with_run = job.outputs.get(&run_result).is_some_and(|o| agree(o, &output));
                let with_check = job.outputs.get(&check_result).is_some_and(|o| agree(o, &output));
                let arbiter = r.node.clone();
                if let Some(dispute) = &mut job.dispute {
                    dispute.arbiter = Some(index);
                }
                let finding = |text: String, job: &mut JobRecord| {
                    if let Some(dispute) = &mut job.dispute {
                        dispute.finding = Some(text);
                    }
                };
                match (with_run, with_check) {
                    (true, false) => {
                        finding(
                            format!(
                                "the arbiter agreed with the run; the check by {check_node} was out of line"
                            ),
                            &mut job,
                        );
                        changes.extend(self.judge(&[run_node, arbiter], &[check_node], job.id, time));
                        changes.extend(self.settle(&mut job, Verdict::Upheld, Role::Run, time, params));
                    }
                    (false, true) => {
                        finding(
                            format!(
                                "the arbiter agreed with the check; the run by {run_node} was out of line"
                            ),
                            &mut job,
                        );
                        changes.extend(self.judge(&[check_node, arbiter], &[run_node], job.id, time));
                        changes.extend(self.settle(&mut job, Verdict::Overturned, Role::Check, time, params));
                    }
                    _ => {
                        finding(
                            "the arbiter agreed with neither output (or with both); the dispute stays open"
                                .into(),
                            &mut job,
                        );
                        changes.extend(self.unresolved(&mut job, time, params));
                    }
                }
            }
        }
        job.since = time;
        changes.insert(0, Change::Record(Record::Job(Box::new(job))));
        Ok(changes)
    }

    fn open_job(&self, id: u64) -> Result<JobRecord, Rejection> {
        let job = self.governance.jobs.get(&id).ok_or(Rejection::Job(JobFault::UnknownJob(id)))?;
        if !job.is_open() {
            let state = match &job.status {
                JobStatus::Done { verdict, .. } => format!(
                    "done, {}",
                    serde_json::to_value(verdict)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                ),
                JobStatus::Failed { reason, .. } => format!("failed: {reason}"),
                _ => String::new(),
            };
            return Err(Rejection::Job(JobFault::Ended { job: id, state }));
        }
        Ok(job.clone())
    }

    /// Marks the job's live run whose deadline passed as missed, and counts it against its node.
    fn lapse(&self, job: &mut JobRecord) -> Vec<Change> {
        let Some(run) = job.runs.iter_mut().rev().find(|r| r.live()) else { return Vec::new() };
        run.missed = true;
        let mut reputation = self.governance.reputation(&run.node);
        reputation.missed += 1;
        vec![Change::Record(Record::Reputation(reputation))]
    }

    /// Reputation after a check: `passed` nodes agreed, `failed` nodes were out of line. Under
    /// state encoding 4, a failed node's outputs that stood unchecked in the last
    /// [`RECHECK_WINDOW_MS`] (the latest [`MAX_RECHECKS`], other than job `current`'s) are marked
    /// to be checked after all.
    fn judge(&self, passed: &[String], failed: &[String], current: u64, time: u64) -> Vec<Change> {
        let mut touched: BTreeMap<String, Reputation> = BTreeMap::new();
        for (node, failing) in passed.iter().map(|n| (n, false)).chain(failed.iter().map(|n| (n, true))) {
            let reputation = touched.entry(node.clone()).or_insert_with(|| self.governance.reputation(node));
            if failing {
                reputation.failed += 1;
            } else {
                reputation.passed += 1;
            }
        }
        let mut changes: Vec<Change> =
            touched.into_values().map(Record::Reputation).map(Change::Record).collect();
        if !self.governance.later_job_rules() {
            return changes;
        }
        for node in failed {
            let suspects = self
                .governance
                .jobs
                .values()
                .rev()
                .filter(|job| job.id != current && job.recheck.is_none())
                .filter(|job| match &job.status {
                    JobStatus::Done {
                        verdict: Verdict::Unsampled | Verdict::Unchecked, result, at, ..
                    } => {
                        time.saturating_sub(*at) <= RECHECK_WINDOW_MS
                            && job.runs.iter().any(|r| r.result == Some(*result) && &r.node == node)
                    }
                    _ => false,
                })
                .take(MAX_RECHECKS);
            for job in suspects {
                let JobStatus::Done { verdict, units, paid, .. } = job.status else { continue };
                let mut flagged = job.clone();
                flagged.recheck = Some(Recheck { caught_at: time, started: false, verdict, units, paid });
                changes.push(Change::Record(Record::Job(Box::new(flagged))));
            }
        }
        changes
    }

    /// Ends the job with `verdict`: the output of `stands` is the requester's; the requester pays
    /// its CPU-seconds from the reservation and gets the rest back; every run whose output
    /// agreed with the one standing is verified compute, credited to its operator.
    fn settle(
        &self,
        job: &mut JobRecord,
        verdict: Verdict,
        stands: Role,
        time: u64,
        params: &Parameters,
    ) -> Vec<Change> {
        let g = &self.governance;
        let rate = params.credits.compute;
        let Some(standing) = job.answered(stands).cloned() else {
            return self.fail(job, "no output stands".into(), time, params);
        };
        let mut units =
            units_of(standing.cpu_ms).min(if rate == 0 { u64::MAX } else { job.budget / rate.max(1) }).max(1);
        let mut paid = units.saturating_mul(rate).saturating_mul(1000).min(job.reserved);
        let mut credits = CreditBook::new(g, params);
        Self::give_back(&mut credits, job, paid, time);
        let mut changes = Vec::new();
        let recheck = job.recheck.clone().filter(|r| r.started);
        if let Some(recheck) = &recheck {
            // The requester paid when the job first ended; the run's operator was granted then.
            // If the run was out of line after all, both are undone: the requester gets back what
            // they paid, the operator loses the grant and the run no longer counts as compute.
            (units, paid) = (recheck.units, recheck.paid);
            if verdict == Verdict::Overturned
                && let Some(run) = job.answered(Role::Run)
            {
                let run_units = units_of(run.cpu_ms).min(recheck.units);
                credits.take_back(&run.operator, rate.saturating_mul(run_units), time);
                credits.credit_back(&job.requester, recheck.paid, time);
                if let Some(grant) = g.compute.get(&run.result.unwrap_or_default()) {
                    changes.push(Change::Record(Record::Compute(ComputeGrant { units: 0, ..grant.clone() })));
                }
                paid = 0;
            }
        }
        let verified: Vec<Run> = match verdict {
            Verdict::Unsampled | Verdict::Unchecked => vec![standing.clone()],
            Verdict::Passed => {
                job.runs.iter().filter(|r| r.result.is_some() && r.failure.is_none()).cloned().collect()
            }
            Verdict::Upheld => job
                .runs
                .iter()
                .filter(|r| r.result.is_some() && r.failure.is_none() && r.role != Role::Check)
                .cloned()
                .collect(),
            Verdict::Overturned => job
                .runs
                .iter()
                .filter(|r| r.result.is_some() && r.failure.is_none() && r.role != Role::Run)
                .cloned()
                .collect(),
            Verdict::Unresolved => Vec::new(),
        };
        for run in verified.iter().filter(|run| recheck.is_none() || run.role != Role::Run) {
            let run_units = units_of(run.cpu_ms).min(units);
            credits.grant(&run.operator, rate.saturating_mul(run_units), time);
            let checkers = verified
                .iter()
                .filter(|other| other.node != run.node)
                .map(|other| other.node.clone())
                .collect();
            changes.push(Change::Record(Record::Compute(ComputeGrant {
                receipt: run.result.unwrap_or_default(),
                job: format!("job/{}/{}", job.id, run.role.name()),
                workload: job.workload.clone(),
                node: run.node.clone(),
                operator: run.operator.clone(),
                verifiers: checkers,
                units: run_units,
                at: time,
            })));
        }
        changes.extend(credits.into_changes());
        job.status =
            JobStatus::Done { verdict, result: standing.result.unwrap_or_default(), units, paid, at: time };
        job.reserved = 0;
        job.outputs.clear();
        job.input = None;
        changes
    }

    /// Returns what the job's reservation did not pay: `paid` came out of the floor first (it
    /// is gone at the end of its day anyway), so the floor gets back only what it paid beyond,
    /// and the balance the rest.
    fn give_back(credits: &mut CreditBook, job: &JobRecord, paid: u64, time: u64) {
        let unused = job.reserved.saturating_sub(paid);
        let floor_back = job.floor.saturating_sub(paid).min(unused);
        credits.return_floor(
            &job.requester,
            floor_back,
            crate::governance::book::day_of(job.requested_at),
            time,
        );
        credits.credit_back(&job.requester, unused - floor_back, time);
    }

    /// A dispute nothing settled: nobody is credited, the requester gets the reservation back.
    fn unresolved(&self, job: &mut JobRecord, time: u64, params: &Parameters) -> Vec<Change> {
        let mut credits = CreditBook::new(&self.governance, params);
        Self::give_back(&mut credits, job, 0, time);
        let result = job.answered(Role::Run).and_then(|r| r.result).unwrap_or_default();
        // A recheck left unresolved leaves the first settlement as it was.
        let (units, paid) = job.recheck.as_ref().filter(|r| r.started).map_or((0, 0), |r| (r.units, r.paid));
        job.status = JobStatus::Done { verdict: Verdict::Unresolved, result, units, paid, at: time };
        job.reserved = 0;
        job.outputs.clear();
        job.input = None;
        credits.into_changes()
    }

    /// Ends the job without an output: the reservation goes back.
    fn fail(&self, job: &mut JobRecord, reason: String, time: u64, params: &Parameters) -> Vec<Change> {
        let mut credits = CreditBook::new(&self.governance, params);
        Self::give_back(&mut credits, job, 0, time);
        job.status = JobStatus::Failed { reason, at: time };
        job.reserved = 0;
        job.outputs.clear();
        job.input = None;
        credits.into_changes()
    }
}
