//! What can go wrong with a ledger, each failure with what to do about it.

use substrate_core::cid::CidError;
use substrate_core::entry::EntryError;
use substrate_core::event::EventError;
use substrate_core::state::Rejection;
use substrate_tlog::{CheckpointError, Hash, ProofError};

use super::STATE_EXTENSION;
use crate::blobs::BlobError;
use crate::replay::ReplayError;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("database {path}: {source}")]
    Database { path: String, source: rusqlite::Error },
    #[error(transparent)]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Column(#[from] rusqlite::types::FromSqlError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0} already holds a commons; choose another directory or remove it")]
    AlreadyInitialised(String),
    #[error("{0} holds no commons; run `substrate init` first")]
    NotInitialised(String),
    #[error("the log key in {path} is unusable: {detail}")]
    LogKey { path: String, detail: String },
    #[error("the genesis was refused: {0}")]
    Genesis(Rejection),
    #[error(
        "this node mirrors the commons and does not hold its log key; events go to the sequencer (any node forwards them)"
    )]
    Mirror,

    // The stored log or materialised state is damaged: each says what, and `replay --check` where.
    #[error("entry {index} is missing from the log; {REPLAY_CHECK}")]
    MissingEntry { index: u64 },
    #[error("stored leaf {index} is not a log entry: {source}; {REPLAY_CHECK}")]
    MalformedLeaf { index: u64, source: EntryError },
    #[error("stored entry {index} does not open as a signed event: {source}; {REPLAY_CHECK}")]
    UnopenableEntry { index: u64, source: Box<EventError> },
    #[error("the stored {column} of entry {index} is {len} bytes, not 32; {REPLAY_CHECK}")]
    MalformedHash { column: &'static str, index: u64, len: usize },
    #[error("a row of the {table} table does not parse: {source}; {REPLAY_CHECK}")]
    UnparsableRecord { table: Table, source: serde_json::Error },
    #[error("a row of the {table} table is stored under a key that is not a CID: {source}; {REPLAY_CHECK}")]
    UnparsableCid { table: Table, source: CidError },
    #[error("the latest checkpoint does not open with the log key: {source}; {REPLAY_CHECK}")]
    UnverifiedCheckpoint { source: CheckpointError },
    #[error(
        "the latest checkpoint is for size {checkpoint_size} with root {} but the log holds {log_size} entries with root {}; {REPLAY_CHECK}",
        hex::encode(.checkpoint_root),
        hex::encode(.log_root)
    )]
    CheckpointMismatch { checkpoint_size: u64, checkpoint_root: Hash, log_size: u64, log_root: Hash },
    #[error("checkpoint {size} carries no '{STATE_EXTENSION}' line; {REPLAY_CHECK}")]
    NoStateLine { size: u64 },
    #[error(
        "no inclusion proof of entry {index} in size {size} can be built from the tree held: {source}; {REPLAY_CHECK}"
    )]
    InclusionProof { index: u64, size: u64, source: ProofError },
    #[error("tallying proposal {proposal}, whose window closed, was refused: {rejection}; {REPLAY_CHECK}")]
    Tally { proposal: u64, rejection: Box<Rejection> },
    #[error(
        "the decision on proposal {proposal} is already logged at {index} but the proposal is still open; {REPLAY_CHECK}"
    )]
    DecisionLogged { proposal: u64, index: u64 },
    #[error(
        "the fold refused the sequencer's own decision on proposal {proposal}: {rejection}; {REPLAY_CHECK}"
    )]
    DecisionRefused { proposal: u64, rejection: Box<Rejection> },
    #[error("upgrading the materialised records from the log failed: {source}; {REPLAY_CHECK}")]
    RecordsUpgrade { source: ReplayError },

    // Failures of the ledger itself, not of what it stores.
    #[error("the log key could not sign the checkpoint for size {size}: {source}")]
    Signing { size: u64, source: CheckpointError },
    #[error("submission {position} of a batch of {batch} was left without an outcome")]
    NoOutcome { position: usize, batch: usize },
}

/// Where a damaged store's message sends its operator.
const REPLAY_CHECK: &str = "run `substrate ledger replay --check` for details";

impl LedgerError {
    /// Whether the stored log or materialised state is damaged (`substrate ledger replay --check`
    /// says where), rather than unreadable, refused or failed for another reason.
    pub fn is_damage(&self) -> bool {
        match self {
            LedgerError::MissingEntry { .. }
            | LedgerError::MalformedLeaf { .. }
            | LedgerError::UnopenableEntry { .. }
            | LedgerError::MalformedHash { .. }
            | LedgerError::UnparsableRecord { .. }
            | LedgerError::UnparsableCid { .. }
            | LedgerError::UnverifiedCheckpoint { .. }
            | LedgerError::CheckpointMismatch { .. }
            | LedgerError::NoStateLine { .. }
            | LedgerError::InclusionProof { .. }
            | LedgerError::Tally { .. }
            | LedgerError::DecisionLogged { .. }
            | LedgerError::DecisionRefused { .. }
            | LedgerError::RecordsUpgrade { .. } => true,
            LedgerError::Database { .. }
            | LedgerError::Sql(_)
            | LedgerError::Column(_)
            | LedgerError::Blob(_)
            | LedgerError::Io { .. }
            | LedgerError::AlreadyInitialised(_)
            | LedgerError::NotInitialised(_)
            | LedgerError::LogKey { .. }
            | LedgerError::Genesis(_)
            | LedgerError::Mirror
            | LedgerError::Signing { .. }
            | LedgerError::NoOutcome { .. } => false,
        }
    }
}

/// A table of the materialised state whose rows are JSON records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Commons,
    Deposits,
    /// The governance records.
    Records,
    /// Accepted texts not yet in the blob directory.
    PendingTexts,
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Table::Commons => "commons",
            Table::Deposits => "deposits",
            Table::Records => "records (governance)",
            Table::PendingTexts => "pending_texts",
        })
    }
}
