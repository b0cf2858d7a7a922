//! The commons' domain: identities, content ids, signed events, receipts and the pure state fold.
//!
//! Nothing here does I/O, reads a clock or draws randomness: time and keys come in as arguments,
//! so the same log always folds to the same state on every machine.

pub mod adapter;
pub mod canonical;
pub mod cid;
pub mod datacite;
pub mod entry;
pub mod envelope;
pub mod event;
pub mod governance;
pub mod identity;
pub mod receipt;
pub mod register;
pub mod snapshot;
pub mod state;
pub mod statement;
pub mod timestamp;

pub use cid::Cid;
pub use entry::LogEntry;
pub use envelope::Envelope;
pub use event::{Event, SignedEvent};
pub use register::{ConsentTier, Register};
pub use state::State;

/// The base URI every project predicate type is built from.
pub const PREDICATE_BASE: &str = "https://substrate.commons/predicate/";

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
