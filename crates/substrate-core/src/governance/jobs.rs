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
//! at once: a worker runs as many as it has slots (one by default), so more would only wait out
//! their deadlines behind the first.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::governance::book::*;
use crate::governance::credits::CreditBook;
use crate::governance::params::Parameters;
use crate::state::{Change, Commons, Rejection, State};

mod plan;

pub use plan::Locality;
mod steps;

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
pub const RUNNABLE_KINDS: [&str; 4] = ["embed", "generate", "train-lora", "evaluate"];

/// Bounds of a training job's shape: steps, rows per step, tokens per row and LoRA rank. The
/// result carries the loss of every step, and must fit one log entry: 2,000 steps do, with room.
pub const MAX_TRAIN_STEPS: u32 = 2_000;
pub const MAX_TRAIN_BATCH: u32 = 64;
pub const MAX_TRAIN_SEQ_LEN: u32 = 2048;
pub const MAX_TRAIN_RANK: u32 = 64;
/// Most windows an evaluation reads of each register, and most registers its result lists.
/// A register with fewer than [`MIN_EVAL_TEXTS`] texts in the snapshot is left out of the
/// result: a loss over one or two texts would say too much about each of them.
pub const MAX_EVAL_WINDOWS: u32 = 256;
pub const MIN_EVAL_TEXTS: usize = 3;
pub const MAX_EVAL_REGISTERS: usize = 64;
/// Most tensors a training result's norms list (two per adapted projection of every layer).
pub const MAX_TRAIN_TENSORS: usize = 512;
/// How far two runs of one training job may differ, relative to the value (at least 1): the loss
/// at every step and the L2 norm of every adapter tensor. The same program on the same snapshot
/// with the same seed computes the same operations in the same order; what differs between
/// honest machines is the rounding of the matrix kernels (AVX2 against AVX-512 sums in another
/// order), about 1e-6 relative per product, which a short run carries to well under 1e-4 in the
/// loss. A run on another text, another seed, a skipped or shortened step, or a scaled adapter
/// moves the loss or a norm by a hundredth or more.
pub const TRAIN_TOLERANCE: f64 = 1e-3;

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
    /// The governed training run as a job: a LoRA adapter of the base model the workload pins,
    /// on the snapshot of the log as it was when the job was requested (its first `id` entries),
    /// sampled by the mixture the decision at `decision` set. Learning rate, alpha and the
    /// adapted projections are the run's defaults, so the input names the whole run.
    #[serde(rename = "train-lora")]
    TrainLora {
        decision: u64,
        steps: u32,
        batch: u32,
        #[serde(rename = "seqLen")]
        seq_len: u32,
        rank: u32,
    },
    /// How well the base model the workload pins, or an adapter of it the log publishes,
    /// predicts each register's texts: the mean loss per token over the first `windows` windows
    /// of `seqLen + 1` tokens of the register's texts (in CID order) in the snapshot a training
    /// job would take (the log's first `id` entries, the registers the decision's mixture
    /// weighs). Only the aggregate leaves the node that runs it.
    Evaluate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        adapter: Option<u64>,
        decision: u64,
        windows: u32,
        #[serde(rename = "seqLen")]
        seq_len: u32,
    },
}

impl JobInput {
    pub fn kind(&self) -> &'static str {
        match self {
            JobInput::Embed { .. } => "embed",
            JobInput::Generate { .. } => "generate",
            JobInput::TrainLora { .. } => "train-lora",
            JobInput::Evaluate { .. } => "evaluate",
        }
    }

    /// The decision whose mixture names the snapshot, for the kinds that read one.
    pub fn snapshot_decision(&self) -> Option<u64> {
        match self {
            JobInput::TrainLora { decision, .. } | JobInput::Evaluate { decision, .. } => Some(*decision),
            _ => None,
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
    /// What a training run came to: the snapshot's root, the tokens trained, the loss at every
    /// step, the L2 norm of every adapter tensor (in the order of their names) and the sha256 of
    /// the adapter's weights file. The adapter itself is published by the node that ran the job.
    #[serde(rename = "train-lora", rename_all = "camelCase")]
    TrainLora { snapshot_root: String, tokens: u64, losses: Vec<Bits>, norms: Vec<Bits>, weights: String },
    /// The snapshot's root and, per register with text, what was read and the loss.
    #[serde(rename_all = "camelCase")]
    Evaluate { snapshot_root: String, registers: Vec<RegisterLoss> },
}

/// One register of an evaluation: its texts in the snapshot, the tokens the loss was taken over
/// and the mean loss per token.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterLoss {
    pub register: String,
    pub texts: u64,
    pub tokens: u64,
    pub loss: Bits,
}

/// An `f32` of a job's output, equal to another only with the same bits (so outputs stay `Eq`
/// and a state holding them folds the same everywhere); JSON shows it as a number.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Bits(pub f32);

impl PartialEq for Bits {
    fn eq(&self, other: &Bits) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Bits {}

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
    #[error(
        "jobs of kind '{0}' cannot be requested yet; the runnable kinds are embed, generate, train-lora and evaluate"
    )]
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
        JobInput::TrainLora { steps, batch, seq_len, rank, .. } => {
            for (name, value, low, high) in [
                ("steps", steps, 1, MAX_TRAIN_STEPS),
                ("batch", batch, 1, MAX_TRAIN_BATCH),
                ("seqLen", seq_len, 16, MAX_TRAIN_SEQ_LEN),
                ("rank", rank, 1, MAX_TRAIN_RANK),
            ] {
                if !(low..=high).contains(value) {
                    return Err(format!("{name} runs from {low} to {high}"));
                }
            }
        }
        JobInput::Evaluate { windows, seq_len, .. } => {
            if !(1..=MAX_EVAL_WINDOWS).contains(windows) {
                return Err(format!("windows runs from 1 to {MAX_EVAL_WINDOWS}"));
            }
            if !(16..=MAX_TRAIN_SEQ_LEN).contains(seq_len) {
                return Err(format!("seqLen runs from 16 to {MAX_TRAIN_SEQ_LEN}"));
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
        (
            JobInput::TrainLora { steps, .. },
            JobOutput::TrainLora { snapshot_root, losses, norms, weights, .. },
        ) => {
            if !is_sha256(snapshot_root) || !is_sha256(weights) {
                return Err("snapshotRoot and weights are sha256 digests in lowercase hex".into());
            }
            if losses.len() != *steps as usize {
                return Err(format!("{} losses for {steps} steps", losses.len()));
            }
            if norms.is_empty() || norms.len() > MAX_TRAIN_TENSORS {
                return Err(format!("1 to {MAX_TRAIN_TENSORS} tensor norms"));
            }
            if losses.iter().chain(norms).any(|v| !v.0.is_finite() || v.0 < 0.0) {
                return Err("losses and norms are finite and not negative".into());
            }
            Ok(())
        }
        (JobInput::Evaluate { .. }, JobOutput::Evaluate { snapshot_root, registers }) => {
            if !is_sha256(snapshot_root) {
                return Err("snapshotRoot is a sha256 digest in lowercase hex".into());
            }
            if registers.len() > MAX_EVAL_REGISTERS
                || !registers.windows(2).all(|w| w[0].register < w[1].register)
            {
                return Err(format!(
                    "at most {MAX_EVAL_REGISTERS} registers, each once, in order of their names"
                ));
            }
            if registers.iter().any(|r| !r.loss.0.is_finite() || r.loss.0 < 0.0) {
                return Err("each register's loss is finite and not negative".into());
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
        JobOutput::TrainLora { .. } => "train-lora",
        JobOutput::Evaluate { .. } => "evaluate",
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
        (
            JobOutput::TrainLora { snapshot_root: ra, tokens: ta, losses: la, norms: na, .. },
            JobOutput::TrainLora { snapshot_root: rb, tokens: tb, losses: lb, norms: nb, .. },
        ) => {
            let close =
                |a: &[Bits], b: &[Bits]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| within(*x, *y));
            ra == rb && ta == tb && close(la, lb) && close(na, nb)
        }
        (
            JobOutput::Evaluate { snapshot_root: ra, registers: a },
            JobOutput::Evaluate { snapshot_root: rb, registers: b },
        ) => {
            ra == rb
                && a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| {
                    x.register == y.register
                        && x.texts == y.texts
                        && x.tokens == y.tokens
                        && within(x.loss, y.loss)
                })
        }
        _ => false,
    }
}

/// Whether two floats of a training or evaluation output agree within [`TRAIN_TOLERANCE`].
fn within(x: Bits, y: Bits) -> bool {
    let (x, y) = (f64::from(x.0), f64::from(y.0));
    (x - y).abs() <= TRAIN_TOLERANCE * x.abs().max(y.abs()).max(1.0)
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
