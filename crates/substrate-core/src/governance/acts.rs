//! The predicates of governance events: membership, proposals and votes, the sequencer's
//! decisions, disputes and rulings, and verified compute. Each is one in-toto predicate type.

use std::collections::BTreeMap;

use crate::cid::Cid;
use crate::governance::tally::{ChamberTally, Outcome, ProposalClass, Vote};
use crate::register::{ConsentTier, Register};

/// Longest proposal title and summary (characters).
pub const MAX_PROPOSAL_TITLE: usize = 200;
pub const MAX_PROPOSAL_SUMMARY: usize = 4000;
pub const MAX_ACTIONS: usize = 16;

/// A steward, or a vouching verified member, attests that `person` is a verified human.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attestation {
    pub person: String,
    /// How long the attestation holds; the commons' `attestation.days` when absent (and at most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub requested: String,
}

/// A steward revokes a person's verification; `duplicate` says the person was found to be
/// someone already verified, which costs everyone who vouched for them their right to vouch.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Revocation {
    pub person: String,
    pub reason: String,
    #[serde(default)]
    pub duplicate: bool,
    pub requested: String,
}

/// A verified person registers a node key as theirs. `binding` is the node key's Ed25519
/// signature over [`node_binding_message`], so the node agreed to it too.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeRegistration {
    pub node: String,
    /// Standard base64 of the node key's signature.
    pub binding: String,
    pub requested: String,
}

/// What a node key signs to be bound to `operator` in the commons whose log is `origin`.
pub fn node_binding_message(origin: &str, operator: &str) -> Vec<u8> {
    format!("substrate/node-binding/v1\n{origin}\n{operator}\n").into_bytes()
}

/// A typed list of actions put to the chambers.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Proposal {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub class: ProposalClass,
    pub actions: Vec<Action>,
    pub requested: String,
}

/// One thing a passed proposal does.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum Action {
    /// Sets the training mixture from the voters' ballots; `ballot` is the proposer's own.
    SetMixture { ballot: BTreeMap<Register, f64> },
    /// Changes one governable parameter (see `Parameters::set`).
    SetParameter { key: String, value: serde_json::Value },
    /// Removes a deposit from the commons: its text is deleted, a tombstone stays.
    RemoveDeposit { cid: Cid, reason: String },
    /// Rules on a dispute; an appeal of the board's ruling comes to the chambers this way.
    ResolveDispute { dispute: u64, ruling: Ruling },
    /// Approves a built-in workload kind at a version for the mesh to run, pinned to the model
    /// files it uses (sha256 hex each): a worker runs it only on files with those digests.
    ApproveWorkload {
        kind: String,
        version: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        models: Vec<String>,
    },
    /// Elects the stewardship board by Meek STV from the voters' rankings.
    ElectBoard { seats: u32, candidates: Vec<String> },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::SetMixture { .. } => "set-mixture",
            Action::SetParameter { .. } => "set-parameter",
            Action::RemoveDeposit { .. } => "remove-deposit",
            Action::ResolveDispute { .. } => "resolve-dispute",
            Action::ApproveWorkload { .. } => "approve-workload",
            Action::ElectBoard { .. } => "elect-board",
        }
    }
}

/// A member's vote. A second vote on the same proposal replaces the first.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VoteCast {
    pub proposal: u64,
    pub choice: Vote,
    /// A distribution over registers, on a proposal that sets the mixture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mixture: Option<BTreeMap<Register, f64>>,
    /// Candidates (did:key) most preferred first, on a proposal that elects the board.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranking: Option<Vec<String>>,
    pub requested: String,
}

/// The sequencer's tally of a proposal at its close, signed by the log key. Replay computes it
/// again from the log and refuses the entry unless it is exactly this.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Decision {
    pub proposal: u64,
    /// The proposal's close, ms since the epoch: eligibility and compute are taken at this time.
    pub closed_at: u64,
    pub contributor: ChamberTally,
    pub technical: ChamberTally,
    pub outcome: Outcome,
    /// What the passed actions did, in order; empty unless the proposal passed.
    pub effects: Vec<Effect>,
}

/// What one action of a passed proposal did.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "effect", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum Effect {
    Mixture {
        weights: BTreeMap<Register, f64>,
        ballots: u64,
    },
    Parameter {
        key: String,
        value: serde_json::Value,
    },
    Removed {
        cid: Cid,
    },
    Ruling {
        dispute: u64,
        ruling: Ruling,
    },
    Workload {
        kind: String,
        version: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        models: Vec<String>,
    },
    Board {
        members: Vec<String>,
        ballots: u64,
    },
    /// The action could not take effect any more (say, the deposit was withdrawn meanwhile).
    Skipped {
        action: String,
        reason: String,
    },
}

/// Why a deposit is disputed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ground {
    WrongRegister,
    DoubtfulConsent,
    Spam,
    Harm,
}

/// A member disputes a deposit; until it is ruled on, the deposit stays out of training snapshots.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dispute {
    #[serde(skip)]
    pub cid: Option<Cid>,
    pub ground: Ground,
    pub detail: String,
    /// The register the deposit should carry, for a wrong-register dispute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register: Option<Register>,
    pub requested: String,
}

/// What a ruling does to the disputed deposit.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "ruling", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Ruling {
    Relabel { register: Register },
    NarrowConsent { consent: ConsentTier },
    Remove,
    Dismiss,
}

/// A board member's signature on a ruling; it takes effect when k of the n board members have
/// signed the same ruling (in one envelope or several).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisputeRuling {
    pub dispute: u64,
    pub ruling: Ruling,
    pub reason: String,
    pub requested: String,
}

/// A worker node's account of a job, co-signed in the same envelope by a node of another operator
/// that re-executed it: only such receipts count as verified compute.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobReceipt {
    pub workload: String,
    /// The worker's node key.
    pub node: String,
    /// Compute units (CPU-seconds) the job took.
    pub units: u64,
    /// sha256 (hex) of the inputs and outputs.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub requested: String,
}

/// Why a proposal is refused when it is made; each is its own API error code
/// ([`ProposalFault::code`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProposalFault {
    #[error("a proposal carries at least one action")]
    NoActions,
    #[error(
        "data actions (led by the contributor chamber) and workload actions (led by the technical chamber) cannot share a proposal; split it in two"
    )]
    MixedChambers,
    #[error("a proposal sets the mixture or elects the board at most once")]
    Repeated,
    /// One action cannot be carried: `position` counts from 1.
    #[error("action {position} ({action}): {problem}")]
    Action { position: usize, action: String, problem: ActionProblem },
}

/// What is wrong with one action of a proposal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionProblem {
    #[error("needs a {} proposal, this one is {}", needed.name(), class.name())]
    ClassTooLow { needed: ProposalClass, class: ProposalClass },
    #[error("the ballot: {0}")]
    Ballot(String),
    /// A parameter the key or value of which the rules refuse (`after` earlier actions of the
    /// same proposal changed the parameters it was checked against).
    #[error("{reason}{}", if *after { " (after this proposal's earlier actions)" } else { "" })]
    Parameter { reason: String, after: bool },
    /// The deposit to remove, or the one a ruling is about, cannot be acted on.
    #[error("{0}")]
    Deposit(Box<crate::state::Rejection>),
    #[error("no dispute {0}")]
    UnknownDispute(u64),
    #[error("dispute {dispute} was resolved by decision {decision}")]
    DisputeResolved { dispute: u64, decision: u64 },
    #[error("{0}")]
    Ruling(Box<crate::state::Rejection>),
    #[error("unknown workload kind '{kind}'; the kinds are {}", crate::governance::book::WORKLOAD_KINDS.join(", "))]
    UnknownWorkload { kind: String },
    #[error("a workload needs a version")]
    WorkloadVersion,
    #[error("a workload pins at most 64 model files, each by its sha256 in lowercase hex; '{0}' is not one")]
    WorkloadModel(String),
    #[error("at most {0} candidates")]
    TooManyCandidates(usize),
    #[error(
        "{seats} seats for {candidates} candidates; seats run from 1 to {max} and no more than the candidates"
    )]
    Seats { seats: u32, candidates: usize, max: u32 },
    #[error("{0} is a candidate twice")]
    CandidateTwice(String),
    #[error("candidate {0} is not a verified member")]
    CandidateNotMember(String),
}

impl ProposalFault {
    /// The API's error code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            ProposalFault::NoActions => "proposal_without_actions",
            ProposalFault::MixedChambers => "proposal_mixes_chambers",
            ProposalFault::Repeated => "proposal_repeats_action",
            ProposalFault::Action { problem, .. } => match problem {
                ActionProblem::ClassTooLow { .. } => "proposal_class_too_low",
                ActionProblem::Ballot(_) => "proposal_ballot",
                ActionProblem::Parameter { .. } => "proposal_parameter",
                ActionProblem::Deposit(_) => "proposal_deposit",
                ActionProblem::UnknownDispute(_) | ActionProblem::DisputeResolved { .. } => {
                    "proposal_dispute"
                }
                ActionProblem::Ruling(_) => "proposal_ruling",
                ActionProblem::UnknownWorkload { .. }
                | ActionProblem::WorkloadVersion
                | ActionProblem::WorkloadModel(_) => "proposal_workload",
                ActionProblem::TooManyCandidates(_)
                | ActionProblem::Seats { .. }
                | ActionProblem::CandidateTwice(_)
                | ActionProblem::CandidateNotMember(_) => "proposal_election",
            },
        }
    }
}

/// Why a vote's ballot is refused; each is its own API error code ([`BallotFault::code`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BallotFault {
    #[error("this proposal does not set the mixture; vote without one")]
    NoMixture,
    /// The distribution is not one over the commons' registers (the reason says how).
    #[error("{0}")]
    Distribution(String),
    #[error("this proposal elects no board; vote without a ranking")]
    NoElection,
    #[error("{0} is not a candidate; rank only the candidates the proposal lists (GET /v1/proposals/ID)")]
    NotACandidate(String),
    #[error("{0} is ranked twice; rank each candidate once")]
    RankedTwice(String),
}

impl BallotFault {
    /// The API's error code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            BallotFault::NoMixture => "ballot_without_mixture",
            BallotFault::Distribution(_) => "malformed_ballot",
            BallotFault::NoElection => "ballot_without_election",
            BallotFault::NotACandidate(_) => "ballot_not_a_candidate",
            BallotFault::RankedTwice(_) => "ballot_ranked_twice",
        }
    }
}

/// Why a job receipt is not verified compute; each is its own API error code
/// ([`ComputeFault::code`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComputeFault {
    #[error("{0} is not a registered node; its operator registers it with `substrate node-register`")]
    UnregisteredWorker(String),
    #[error("the worker node {0} did not sign its receipt")]
    WorkerUnsigned(String),
    #[error("the worker's operator {0} is not a verified member")]
    OperatorUnverified(String),
    #[error(
        "a job receipt counts as verified compute only when co-signed by nodes of other verified operators (and nobody else)"
    )]
    NotCosigned,
    #[error("a job receipt reports 1 to {0} units (CPU-seconds)")]
    Units(u64),
    #[error("workload '{0}' is not approved; compute counts only for a KIND@VERSION the chambers approved")]
    WorkloadNotApproved(String),
    #[error("this job was already credited at entry {0}")]
    AlreadyCredited(u64),
}

impl ComputeFault {
    /// The API's error code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            ComputeFault::UnregisteredWorker(_) => "compute_unregistered_worker",
            ComputeFault::WorkerUnsigned(_) => "compute_worker_unsigned",
            ComputeFault::OperatorUnverified(_) => "compute_operator_unverified",
            ComputeFault::NotCosigned => "compute_not_cosigned",
            ComputeFault::Units(_) => "compute_units",
            ComputeFault::WorkloadNotApproved(_) => "compute_workload_not_approved",
            ComputeFault::AlreadyCredited(_) => "compute_already_credited",
        }
    }
}
