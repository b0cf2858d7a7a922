//! RFC 6962 Merkle trees, C2SP signed notes and checkpoints, tlog-proof@v1 and tlog-tiles: pure, no I/O.
//!
//! Everything here works on in-memory values: callers own storage and
//! transport. The pieces build on each other:
//!
//! - [`merkle`]: RFC 6962 hashing, an append-only [`Tree`] and proof
//!   generation/verification (RFC 9162 verification algorithms).
//! - [`note`]: C2SP signed notes with Ed25519 keys in the Go
//!   `golang.org/x/mod/sumdb/note` key-string formats.
//! - [`checkpoint`]: C2SP tlog-checkpoint bodies, signed as notes.
//! - [`cosignature`]: C2SP tlog-cosignature/v1 lines a witness (a mirror) adds to a checkpoint.
//! - [`proof`]: C2SP tlog-proof@v1, an offline-verifiable inclusion proof.
//! - [`tiles`]: C2SP tlog-tiles paths, hash tiles and entry bundles.

pub mod checkpoint;
pub mod cosignature;
pub mod merkle;
pub mod note;
pub mod proof;
pub mod tiles;

pub use checkpoint::*;
pub use merkle::*;
pub use note::*;
pub use proof::*;
pub use tiles::*;

/// A SHA-256 digest: a Merkle tree node or leaf hash.
pub type Hash = [u8; 32];
