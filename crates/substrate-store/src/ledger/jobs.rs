//! The sequencer's side of jobs: the scheduling steps it signs with the log key, where a job's
//! data lets it run, and what a recheck reads back from the log.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rusqlite::OptionalExtension;
use substrate_core::event::Event;
use substrate_core::state::DepositRecord;
use substrate_core::{LogEntry, SignedEvent};

use super::{Ledger, LedgerError, Outcome, Submission, Table};

impl Ledger {
    /// Names this node's key as the one that takes the jobs whose data never leaves this node
    /// (a training job on `local` texts): a sequencer whose own node works.
    pub fn hold_jobs_on(&mut self, node: String) {
        self.holder = Some(node);
    }

    /// How many `local` texts the snapshot of training job `job` holds: read from the deposits
    /// table (the state holds only the deposits recent entries named), only while a job waits
    /// to be placed.
    fn local_texts(&self, job: &substrate_core::governance::jobs::JobRecord) -> Result<usize, LedgerError> {
        let governance = self.state.governance();
        let Some(registers) = governance.training_registers(job) else { return Ok(0) };
        let disputed = governance.disputed_at(job.id);
        let mut stmt = self.conn.prepare_cached(
            "SELECT record FROM deposits WHERE log_index < ?1 AND json_extract(record, '$.consent') = 'local'",
        )?;
        let mut rows = stmt.query([job.id])?;
        let mut count = 0;
        while let Some(row) = rows.next()? {
            let record = serde_json::from_str::<DepositRecord>(row.get_ref(0)?.as_str()?)
                .map_err(|source| LedgerError::UnparsableRecord { table: Table::Deposits, source })?;
            if substrate_core::snapshot::in_snapshot(&record, job.id, &registers, &disputed) {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Takes the scheduling steps open jobs wait for at `now` (`Governance::job_plan`): assigns
    /// jobs to workers, reassigns those whose deadline passed, draws whether a result is checked
    /// (signing the draw with the log key) and gives up what nobody can do. Each step is one
    /// entry signed by the log key. Returns how many were appended; a step the fold refuses is
    /// logged and skipped, so one stuck job never holds the others.
    pub fn schedule_jobs(&mut self, now: u64) -> Result<usize, LedgerError> {
        use substrate_core::governance::jobs::{JobSchedule, Planned, Step, draw_message};
        self.signer()?;
        let time = now.max(self.last_time);
        let governance = self.state.governance();
        let plan = governance.job_plan_near(time, self.holder.as_deref(), |job| {
            if let Some(count) = self.local_counts.borrow().get(&job.id) {
                return *count;
            }
            let count = self.local_texts(job).unwrap_or_else(|error| {
                // Counted as none: the job may go to a node without them, which then reports
                // them missing; the texts themselves never leave this node.
                tracing::error!(job = job.id, %error, "cannot count the local texts of a training job's snapshot");
                0
            });
            self.local_counts.borrow_mut().insert(job.id, count);
            count
        });
        self.local_counts.borrow_mut().retain(|id, _| governance.jobs().get(id).is_some_and(|j| j.is_open()));
        if plan.is_empty() {
            return Ok(0);
        }
        let origin = self.state.commons().map(|c| c.origin.clone()).unwrap_or_default();
        let mut batch = Vec::new();
        for (job, planned) in plan {
            let step = match planned {
                Planned::Assign { node, role, deadline } => Step::Assign { node, role, deadline },
                Planned::Draw(result) => {
                    use ed25519_dalek::Signer;
                    let signature = self.signer()?.signing_key().sign(&draw_message(&origin, job, result));
                    Step::Draw { result, proof: STANDARD.encode(signature.to_bytes()) }
                }
                Planned::Abandon(reason) => Step::Abandon { reason },
                Planned::Recheck(result) => match self.recheck_step(job, result) {
                    Ok(step) => step,
                    Err(error) => {
                        tracing::error!(job, %error, "cannot read back the job's input and output to recheck it");
                        continue;
                    }
                },
                Planned::Wait => continue,
            };
            let event = SignedEvent::sign(
                Event::JobSchedule(JobSchedule { job, step }),
                self.signer()?.signing_key(),
            );
            batch.push(Submission { event, content: None });
        }
        if batch.is_empty() {
            return Ok(0);
        }
        let mut appended = 0;
        for outcome in self.append_now(batch, now)? {
            match outcome {
                Outcome::Appended(_) => appended += 1,
                Outcome::Refused(rejection) => {
                    tracing::error!(%rejection, "the fold refused the sequencer's own job step; skipped");
                }
                Outcome::Duplicate(_) => {}
            }
        }
        Ok(appended)
    }

    /// The step that re-opens done job `job` for a check: its input from the request's entry
    /// (the job's id), its output from the run's result entry.
    fn recheck_step(
        &self,
        job: u64,
        result: u64,
    ) -> Result<substrate_core::governance::jobs::Step, LedgerError> {
        use substrate_core::governance::jobs::Step;
        let event = |index: u64| -> Result<Event, LedgerError> {
            let leaf: Vec<u8> = self
                .conn
                .query_row("SELECT leaf FROM entries WHERE idx = ?1", [index], |r| r.get(0))
                .optional()?
                .ok_or(LedgerError::MissingEntry { index })?;
            let entry = LogEntry::from_leaf(index, &leaf)
                .map_err(|source| LedgerError::MalformedLeaf { index, source })?;
            let signed = SignedEvent::open_bytes(&entry.envelope)
                .map_err(|source| LedgerError::UnopenableEntry { index, source: Box::new(source) })?;
            Ok(signed.event)
        };
        // The fold names these entries; anything else there is a damaged store.
        let not = |index: u64, what: &str| LedgerError::UnopenableEntry {
            index,
            source: Box::new(substrate_core::event::EventError::Statement(format!(
                "entry {index} should be {what} of job {job}"
            ))),
        };
        let Event::JobRequest(request) = event(job)? else { return Err(not(job, "the request")) };
        let Event::JobResult(substrate_core::governance::jobs::JobResult { output: Some(output), .. }) =
            event(result)?
        else {
            return Err(not(result, "a result with an output"));
        };
        Ok(Step::Recheck { input: request.input, output })
    }
}
