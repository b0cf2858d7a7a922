//! Durable storage of a commons: the SQLite log and materialised state, the content-addressed
//! blob directory, and the sequencer that group-commits signed events into the log.

pub mod blobs;
pub mod follow;
pub mod ledger;
mod opening;
pub mod reader;
pub mod replay;
pub mod schema;
pub mod sequencer;

pub use blobs::BlobStore;
pub use follow::{Extended, FollowError, OpenedRange};
pub use ledger::{InitOptions, Ledger, LedgerError, Submission};
pub use reader::{Cosigned, ProposalVotes, ReadError, Reader, TextReader};
pub use replay::{ReplayError, ReplayMode, ReplayReport};
pub use sequencer::{Forward, Head, SequencerHandle, SubmitError, Submitted};

use std::path::{Path, PathBuf};

/// Where everything of one node lives, under one data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn database(&self) -> PathBuf {
        self.root.join("ledger.sqlite")
    }

    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// The commons' log key in Go signed-note signer format; readable by the owner only.
    pub fn log_key(&self) -> PathBuf {
        self.root.join("log.key")
    }

    /// A mirror's copy of the commons' log public key (Go signed-note verifier format): the only
    /// key it trusts for checkpoints.
    pub fn log_public_key(&self) -> PathBuf {
        self.root.join("log.pub")
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("substrate.toml")
    }
}
