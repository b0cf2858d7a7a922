//! Jobs: the commons' compute, recorded in the log. A worker node offers what it can run
//! ([`NodeOffer`]); a member asks for a job of an approved workload and reserves credits for it
//! ([`JobRequest`]); the sequencer assigns it ([`JobSchedule`]), and the assigned node answers
//! with its output ([`JobResult`]). After a result is in, the sequencer draws whether a worker of
//! another operator re-executes it: the draw is the log key's signature over the job and its
//! result, so nobody can know it before the result is logged and anyone can check it. Outputs
//! are compared within each kind's tolerance; a mismatch opens a dispute that a third operator's
//! run settles. Credits move only by these rules: the requester's reservation pays the worker
//! per verified CPU-second, the rest goes back; compute counts for the technical chamber only
//! when its job passed its check or was not drawn.
//!
//! A commons of state encoding 4 or later folds two more rules: an offer stands for
//! [`OFFER_LIFETIME_MS`] after its worker last renewed it, so a node that stopped without saying
//! so is not assigned work it will never answer; and a node whose failed checks outweigh its
//! passes ([`Reputation::shunned`]) has every result re-executed, not a sampled share, until its
//! passes bring its score back, and its outputs that stood unchecked before the catch are checked
//! after all ([`Recheck`]). The sequencer's plan also gives a node at most [`MAX_ASSIGNED`] jobs
//! at once: a worker runs its jobs one after another, so more would only wait out their
//! deadlines behind the first.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::governance::book::*;
use crate::governance::credits::CreditBook;
use crate::governance::params::Parameters;
use crate::state::{Change, Commons, Rejection, State};

/// Most texts one embedding job carries, and the longest text or prompt (characters).
pub const MAX_EMBED_TEXTS: usize = 16;
pub const MAX_JOB_TEXT: usize = 4000;
/// Most tokens one generation job asks for.
pub const MAX_GENERATE_TOKENS: u32 = 256;
/// Longest a requester may give one attempt (seconds), and what it gets when it says nothing.
pub const MAX_DEADLINE_SECONDS: u32 = 3600;
pub const DEFAULT_DEADLINE_SECONDS: u32 = 120;
/// Attempts of one role (run, check, arbitration) before the sequencer gives the role up.
pub const MAX_ATTEMPTS: usize = 3;
/// Most models and workloads one offer lists.
pub const MAX_OFFERED: usize = 64;
/// Most CPU time one result may report (ms): a day of one core.
pub const MAX_CPU_MS: u64 = 24 * 3600 * 1000;
/// Widest embedding vector a result may carry.
pub const MAX_DIMENSIONS: usize = 8192;
/// The least cosine similarity at which two embeddings of the same text agree. Two honest runs
/// of the same model on different CPUs differ by float rounding in the kernels (AVX2 against
/// AVX-512 sums in another order): about 1e-6 relative, a cosine within 1e-9 of 1. A worker that
/// embeds another text, another model or a shortened input lands far below.
pub const EMBED_MIN_COSINE: f64 = 0.9999;
/// The share of results re-executed when the commons has not set `jobs.check-ppm`.
pub const DEFAULT_CHECK_PPM: u32 = 100_000;
/// A job nobody could be assigned to run for this long is given up, its credits returned (ms). A
/// check or an arbitration waits one attempt's deadline for an eligible worker of another
/// operator, then goes without (the output stands unchecked, or the dispute unresolved).
pub const QUEUE_LIMIT_MS: u64 = 3_600_000;

/// How long an offer stands after the entry that last made or renewed it (ms), in a commons of
/// state encoding 4 or later; a running worker renews its offer every [`OFFER_RENEWAL_MS`].
pub const OFFER_LIFETIME_MS: u64 = 15 * 60 * 1000;
pub const OFFER_RENEWAL_MS: u64 = 5 * 60 * 1000;

/// Most assignments the sequencer's plan gives one node at once: the one it runs and the next
/// two, so that a worker goes from one job to the next while its results travel to the sequencer
/// and the new assignments back, and no more, so that a queue does not wait out its deadlines
/// behind one worker.
pub const MAX_ASSIGNED: usize = 3;

/// Most earlier outputs of a node caught out of line that are re-executed, the latest first, and
/// how far back (ms) the catch reaches: older outputs stand as they were (state encoding 4).
pub const MAX_RECHECKS: usize = 64;
pub const RECHECK_WINDOW_MS: u64 = 7 * 24 * 3600 * 1000;

/// The kinds whose jobs are inference-sized: in a commons of state encoding 4 or later their
/// reservation draws on the requester's daily commons floor before their balance.
pub const FLOOR_KINDS: [&str; 2] = ["embed", "generate"];

/// The kinds a job can be requested for today; the others are approved ahead of their runners.
pub const RUNNABLE_KINDS: [&str; 2] = ["embed", "generate"];

/// A worker node says what it offers: signed by its node key, which must be registered to a
/// verified operator. A later offer replaces the earlier one.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeOffer {
    pub node: String,
    pub cores: u32,
    pub memory_mib: u64,
    /// sha256 (hex) of the model files it holds.
    pub models: Vec<String>,
    /// The approved workloads (KIND@VERSION) it runs; empty withdraws the offer.
    pub workloads: Vec<String>,
    pub requested: String,
}

/// What a job works on. The inputs are in the log, public as the request is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum JobInput {
    /// Embed each text.
    Embed { texts: Vec<String> },
    /// Greedy generation: the same model and prompt give the same tokens everywhere.
    Generate {
        prompt: String,
        #[serde(rename = "maxTokens")]
        max_tokens: u32,
    },
}

impl JobInput {
    pub fn kind(&self) -> &'static str {
        match self {
            JobInput::Embed { .. } => "embed",
            JobInput::Generate { .. } => "generate",
        }
    }
}

/// What a job produced.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum JobOutput {
    /// One vector per text, in order: standard base64 of little-endian f32 values.
    Embed { vectors: Vec<String> },
    /// The generated token ids and their text.
    Generate { tokens: Vec<u32>, text: String },
}

impl JobOutput {
    /// sha256 (hex) of the output's JSON.
    pub fn digest(&self) -> String {
        hex::encode(crate::sha256(&serde_json::to_vec(self).unwrap_or_default()))
    }
}

/// Decodes one embedding vector of a result.
pub fn decode_vector(encoded: &str) -> Option<Vec<f32>> {
    let bytes = STANDARD.decode(encoded).ok()?;
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return None;
    }
    Some(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// Encodes one embedding vector for a result.
pub fn encode_vector(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
    STANDARD.encode(bytes)
}

/// A member asks for a job. Its log index is the job's id.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobRequest {
    /// An approved KIND@VERSION.
    pub workload: String,
    pub input: JobInput,
    /// Credits reserved for the job; what it does not use comes back.
    pub budget: u64,
    /// How long one attempt may take before the job goes to another worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_seconds: Option<u32>,
    pub requested: String,
}

/// What a node is asked to do with a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Run it: the result the requester gets.
    Run,
    /// Re-execute it, as another operator, to check the run.
    Check,
    /// Re-execute it, as a third operator, when the run and the check disagree.
    Arbitrate,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Run => "run",
            Role::Check => "check",
            Role::Arbitrate => "arbitrate",
        }
    }
}

/// One scheduling step of the sequencer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Step {
    /// `node` is to do `role` by `deadline` (ms of the log's time).
    Assign { node: String, role: Role, deadline: u64 },
    /// Whether the result at `result` is re-executed: `proof` is the log key's Ed25519 signature
    /// (standard base64) over [`draw_message`], and the job is checked when the first 8 bytes of
    /// its sha256, big-endian, fall below the check rate's share of 2^64.
    Draw { result: u64, proof: String },
    /// The sequencer gives up what the job waits for: nobody can take it, or every attempt failed.
    Abandon { reason: String },
    /// A done job whose output stood unchecked, by a node since caught out of line, is checked
    /// after all: the request's input and the run's output come back from the log (the fold
    /// checks them against the digests it kept) so that another operator re-executes it.
    Recheck { input: JobInput, output: JobOutput },
}

/// The sequencer schedules a job; signed by the log key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobSchedule {
    pub job: u64,
    pub step: Step,
}

/// An assigned node's answer, signed by its node key: the output, or why the job could not run.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobResult {
    pub job: u64,
    /// The log index of the assignment this answers.
    pub assignment: u64,
    pub node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<JobOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// CPU time the job's process used (user and system, ms).
    pub cpu_ms: u64,
    pub requested: String,
}

/// What the log key signs to draw whether the result at `result` of job `job` is checked.
pub fn draw_message(origin: &str, job: u64, result: u64) -> Vec<u8> {
    format!("substrate/job-draw/v1\n{origin}\n{job}\n{result}\n").into_bytes()
}

/// Whether a draw's proof selects the job for a check at `check_ppm` parts per million.
pub fn drawn(proof: &[u8], check_ppm: u32) -> bool {
    let digest = crate::sha256(proof);
    let value = u64::from_be_bytes([
        digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
    ]);
    (u128::from(value) * 1_000_000) < (u128::from(check_ppm) << 64)
}

/// A node's standing offer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferRecord {
    pub node: String,
    pub operator: String,
    pub cores: u32,
    pub memory_mib: u64,
    pub models: Vec<String>,
    pub workloads: Vec<String>,
    pub log_index: u64,
    pub at: u64,
}

/// How a node's checked work went: the scheduler prefers nodes that pass their checks.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reputation {
    pub node: String,
    /// Checks its output agreed with (as the run, the check or the arbiter).
    pub passed: u64,
    /// Checks that found its output out of line with two others.
    pub failed: u64,
    /// Assignments it let pass their deadline.
    pub missed: u64,
}

impl Reputation {
    /// A score in (0, 1]: the share of passes, with one pass assumed, a failure counting three
    /// times and a missed deadline once.
    pub fn score(&self) -> f64 {
        (self.passed + 1) as f64 / (self.passed + 1 + 3 * self.failed + self.missed) as f64
    }

    /// Whether the scheduler passes the node over while any other can take the job.
    pub fn shunned(&self) -> bool {
        self.failed > 0 && self.score() < 0.5
    }
}

/// One assignment of a job, and what came of it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub assignment: u64,
    pub node: String,
    pub operator: String,
    pub role: Role,
    pub deadline: u64,
    pub assigned_at: u64,
    /// The result's log index, when one came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub cpu_ms: u64,
    /// Another assignment replaced this one after its deadline passed.
    #[serde(default)]
    pub missed: bool,
}

impl Run {
    fn live(&self) -> bool {
        self.result.is_none() && !self.missed
    }
}

/// How a finished job's output was judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The draw did not select it for a check.
    Unsampled,
    /// A worker of another operator re-executed it and agreed.
    Passed,
    /// Drawn, but no worker of another operator could check it.
    Unchecked,
    /// The check disagreed; a third operator's run agreed with the first.
    Upheld,
    /// The check disagreed; a third operator's run agreed with the check, whose output stands.
    Overturned,
    /// The check disagreed and nothing settled it: nobody is credited, the dispute stays open.
    Unresolved,
}

/// A dispute the job's re-execution opened: both outputs are in the log at these results.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobDispute {
    pub opened_at: u64,
    /// The results that disagree: the run's and the check's.
    pub results: Vec<u64>,
    /// The arbiter's result, once in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arbiter: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding: Option<String>,
}

/// Where a job stands.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum JobStatus {
    /// Waiting for the sequencer to assign the role it needs next, or for the assigned node.
    Open {
        needs: Role,
    },
    /// The run's result is in; the draw comes next.
    Drawing,
    Done {
        verdict: Verdict,
        /// The result whose output stands, and the CPU-seconds charged for it.
        result: u64,
        units: u64,
        /// Credits (thousandths) the requester paid.
        paid: u64,
        at: u64,
    },
    Failed {
        reason: String,
        at: u64,
    },
}

/// A done job re-opened for a check because its node was caught out of line after it ran.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recheck {
    /// When the node was caught (the log's time).
    pub caught_at: u64,
    /// Whether the check is under way (the sequencer logged the `recheck` step).
    pub started: bool,
    /// What the job had ended with: the requester paid for it then, and is not charged again.
    pub verdict: Verdict,
    pub units: u64,
    pub paid: u64,
}

/// A job and its history.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    pub id: u64,
    pub workload: String,
    pub requester: String,
    /// sha256 (hex) of the input's JSON.
    pub input_digest: String,
    pub budget: u64,
    /// Credits (thousandths) held back from the requester until the job ends.
    pub reserved: u64,
    /// The part of the reservation drawn from the requester's commons floor on the day of the
    /// request (state encoding 4, inference-sized kinds); the rest came from their balance.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub floor: u64,
    pub deadline_ms: u64,
    pub requested_at: u64,
    /// When the job last changed: what it waits for, it has waited for since then.
    pub since: u64,
    /// What the job works on, held while it is open (the request's entry keeps it for good).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<JobInput>,
    pub runs: Vec<Run>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draw: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drawn: Option<bool>,
    pub status: JobStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispute: Option<JobDispute>,
    /// The outputs a check compares, by result index; dropped when the job ends.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<u64, JobOutput>,
    /// Set when the job's node was caught out of line after its output stood unchecked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recheck: Option<Recheck>,
}

impl JobRecord {
    pub fn is_open(&self) -> bool {
        matches!(self.status, JobStatus::Open { .. } | JobStatus::Drawing)
    }

    /// Whether the job is done and waits for the sequencer to re-open it for a check.
    pub fn awaits_recheck(&self) -> bool {
        self.recheck.as_ref().is_some_and(|r| !r.started) && !self.is_open()
    }

    /// The assignment waiting for its node's result, if any.
    pub fn live_run(&self) -> Option<&Run> {
        self.runs.iter().rev().find(|r| r.live())
    }

    fn runs_of(&self, role: Role) -> impl Iterator<Item = &Run> {
        self.runs.iter().filter(move |r| r.role == role)
    }

    /// The run of `role` whose result came without a failure.
    fn answered(&self, role: Role) -> Option<&Run> {
        self.runs_of(role).find(|r| r.result.is_some() && r.failure.is_none())
    }

    fn kind(&self) -> &str {
        self.workload.split('@').next().unwrap_or_default()
    }
}

/// Why a job event is refused; each is its own API error code ([`JobFault::code`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobFault {
    #[error("{0} is not a registered node; its operator registers it with `substrate node-register`")]
    UnregisteredNode(String),
    #[error("the offer names node {node} but is signed by {signer}; a node offers only itself")]
    OfferSigner { node: String, signer: String },
    #[error("the node's operator {0} is not a verified member")]
    OperatorUnverified(String),
    #[error("{0}")]
    Offer(String),
    #[error(
        "workload '{0}' is not approved; the technical chamber approves a KIND@VERSION (`substrate propose --approve-workload`), `GET /v1/governance` lists the approved ones"
    )]
    NotApproved(String),
    #[error("jobs of kind '{0}' cannot be requested yet; the runnable kinds are embed and generate")]
    NotRunnable(String),
    #[error("{0}")]
    Input(String),
    #[error(
        "no worker offers {0} now: a worker node started with `--role worker` offers it when it holds the model files the approval pins and runs the workload program it pins (`GET /v1/governance` shows the pins, a worker's log says why it does not offer), and renews its offer while it runs"
    )]
    NoWorker(String),
    #[error("the budget must be at least 1 credit")]
    Budget,
    #[error(
        "the job reserves {need} credits and {holder} has {} and {} left of today's commons floor; credits come from deposits and verified compute (`substrate credits`)",
        *have_milli as f64 / 1000.0,
        *floor_milli as f64 / 1000.0
    )]
    Credits { holder: String, need: u64, have_milli: u64, floor_milli: u64 },
    #[error("no job has the id {0}; `substrate jobs` lists them")]
    UnknownJob(u64),
    #[error("job {job} has ended ({state}); nothing more can happen to it")]
    Ended { job: u64, state: String },
    #[error("job {job} does not wait for that now: {detail}")]
    OutOfTurn { job: u64, detail: String },
    #[error("node {node} cannot take job {job}: {detail}")]
    Ineligible { job: u64, node: String, detail: String },
    #[error("the draw's proof is not the log key's signature over this job and result")]
    BadDraw,
    #[error("the result is signed by {signer}, not by the node it names ({node})")]
    ResultSigner { node: String, signer: String },
    #[error(
        "entry {assignment} is not the assignment job {job} waits on for node {node}; a result answers the node's own live assignment"
    )]
    NotAssigned { job: u64, assignment: u64, node: String },
    #[error("the output does not fit the job: {0}")]
    Output(String),
}

impl JobFault {
    /// The API's error code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            JobFault::UnregisteredNode(_) => "job_unregistered_node",
            JobFault::OfferSigner { .. } => "job_offer_signer",
            JobFault::OperatorUnverified(_) => "job_operator_unverified",
            JobFault::Offer(_) => "job_offer",
            JobFault::NotApproved(_) => "job_workload_not_approved",
            JobFault::NotRunnable(_) => "job_kind_not_runnable",
            JobFault::Input(_) => "job_input",
            JobFault::NoWorker(_) => "job_no_worker",
            JobFault::Budget => "job_budget",
            JobFault::Credits { .. } => "job_credits",
            JobFault::UnknownJob(_) => "unknown_job",
            JobFault::Ended { .. } => "job_ended",
            JobFault::OutOfTurn { .. } => "job_out_of_turn",
            JobFault::Ineligible { .. } => "job_ineligible_node",
            JobFault::BadDraw => "job_bad_draw",
            JobFault::ResultSigner { .. } => "job_result_signer",
            JobFault::NotAssigned { .. } => "job_not_assigned",
            JobFault::Output(_) => "job_output",
        }
    }

    /// How the refusal reads over HTTP: 400 malformed, 402 credits, 403 not allowed, 404 no such
    /// job, 409 not now.
    pub fn status(&self) -> u16 {
        match self {
            JobFault::Offer(_) | JobFault::Input(_) | JobFault::Budget | JobFault::Output(_) => 400,
            JobFault::Credits { .. } => 402,
            JobFault::UnregisteredNode(_)
            | JobFault::OfferSigner { .. }
            | JobFault::OperatorUnverified(_)
            | JobFault::NotApproved(_)
            | JobFault::NotRunnable(_)
            | JobFault::BadDraw
            | JobFault::ResultSigner { .. }
            | JobFault::NotAssigned { .. } => 403,
            JobFault::UnknownJob(_) => 404,
            JobFault::NoWorker(_)
            | JobFault::Ended { .. }
            | JobFault::OutOfTurn { .. }
            | JobFault::Ineligible { .. } => 409,
        }
    }
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Stateless checks of a job event's fields.
pub(crate) fn validate_offer(o: &NodeOffer) -> Result<(), String> {
    if o.cores == 0 || o.cores > 4096 {
        return Err("cores: 1 to 4096".into());
    }
    if o.models.len() > MAX_OFFERED || o.workloads.len() > MAX_OFFERED {
        return Err(format!("an offer lists at most {MAX_OFFERED} models and {MAX_OFFERED} workloads"));
    }
    if let Some(bad) = o.models.iter().find(|m| !is_sha256(m)) {
        return Err(format!("models: '{bad}' is not a sha256 digest in lowercase hex"));
    }
    if let Some(bad) =
        o.workloads.iter().find(|w| !w.split_once('@').is_some_and(|(k, v)| !k.is_empty() && !v.is_empty()))
    {
        return Err(format!("workloads: '{bad}' is not KIND@VERSION"));
    }
    Ok(())
}

pub(crate) fn validate_input(input: &JobInput) -> Result<(), String> {
    let long = |text: &str| text.chars().count() > MAX_JOB_TEXT;
    match input {
        JobInput::Embed { texts } => {
            if texts.is_empty() || texts.len() > MAX_EMBED_TEXTS {
                return Err(format!("an embedding job carries 1 to {MAX_EMBED_TEXTS} texts"));
            }
            if let Some(position) = texts.iter().position(|t| t.trim().is_empty() || long(t)) {
                return Err(format!(
                    "text {} is empty or longer than {MAX_JOB_TEXT} characters",
                    position + 1
                ));
            }
        }
        JobInput::Generate { prompt, max_tokens } => {
            if prompt.trim().is_empty() || long(prompt) {
                return Err(format!("the prompt has 1 to {MAX_JOB_TEXT} characters"));
            }
            if *max_tokens == 0 || *max_tokens > MAX_GENERATE_TOKENS {
                return Err(format!("maxTokens runs from 1 to {MAX_GENERATE_TOKENS}"));
            }
        }
    }
    Ok(())
}

/// Whether `output` has the shape `input` asks for.
pub fn check_output(input: &JobInput, output: &JobOutput) -> Result<(), String> {
    match (input, output) {
        (JobInput::Embed { texts }, JobOutput::Embed { vectors }) => {
            if vectors.len() != texts.len() {
                return Err(format!("{} vectors for {} texts", vectors.len(), texts.len()));
            }
            let mut width = None;
            for (position, encoded) in vectors.iter().enumerate() {
                let vector = decode_vector(encoded).ok_or_else(|| {
                    format!("vector {} is not base64 of little-endian f32 values", position + 1)
                })?;
                if vector.len() > MAX_DIMENSIONS || width.is_some_and(|w| w != vector.len()) {
                    return Err(format!("vector {} has {} dimensions", position + 1, vector.len()));
                }
                width = Some(vector.len());
                if vector.iter().any(|v| !v.is_finite()) || vector.iter().all(|v| *v == 0.0) {
                    return Err(format!("vector {} is not finite and non-zero", position + 1));
                }
            }
            Ok(())
        }
        (JobInput::Generate { max_tokens, .. }, JobOutput::Generate { tokens, text }) => {
            if tokens.len() > *max_tokens as usize {
                return Err(format!("{} tokens where at most {max_tokens} were asked", tokens.len()));
            }
            if text.len() > 64 * 1024 {
                return Err("the text is longer than 64 KiB".into());
            }
            Ok(())
        }
        _ => Err(format!("a {} job's output is of kind {}", input.kind(), output_kind(output))),
    }
}

fn output_kind(output: &JobOutput) -> &'static str {
    match output {
        JobOutput::Embed { .. } => "embed",
        JobOutput::Generate { .. } => "generate",
    }
}

/// Whether two outputs of the same job agree within the kind's tolerance: embeddings each at
/// cosine [`EMBED_MIN_COSINE`] or more, generations token for token.
pub fn agree(a: &JobOutput, b: &JobOutput) -> bool {
    match (a, b) {
        (JobOutput::Embed { vectors: a }, JobOutput::Embed { vectors: b }) => {
            a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| match (decode_vector(x), decode_vector(y)) {
                    (Some(x), Some(y)) => x.len() == y.len() && cosine(&x, &y) >= EMBED_MIN_COSINE,
                    _ => false,
                })
        }
        (JobOutput::Generate { tokens: a, .. }, JobOutput::Generate { tokens: b, .. }) => a == b,
        _ => false,
    }
}

/// Cosine similarity in f64, summed in order: every machine computes the same value.
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 { 0.0 } else { dot / (aa.sqrt() * bb.sqrt()) }
}

/// CPU-seconds charged for `cpu_ms`: whole seconds, rounded up, at least one.
fn units_of(cpu_ms: u64) -> u64 {
    cpu_ms.div_ceil(1000).max(1)
}

/// The models an approved workload pins (sha256 hex of its files).
fn pinned_models<'a>(g: &'a Governance, workload: &str) -> Option<&'a [String]> {
    g.workloads.get(workload).map(|w| w.models.as_slice())
}

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

/// One step the sequencer plans for a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Planned {
    Assign {
        node: String,
        role: Role,
        deadline: u64,
    },
    /// Draw on the result at this index.
    Draw(u64),
    /// Re-open the done job for a check: the input is in the request's entry (the job's id),
    /// the output in the run's result at this index.
    Recheck(u64),
    Abandon(String),
    /// Nobody can take it now; the job waits.
    Wait,
}

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
