//! The wire between nodes of one commons.
//!
//! Checkpoint announcements travel on one gossipsub topic per commons; the message is the exact
//! C2SP signed checkpoint note the sequencer signed, so any receiver verifies it with the log key.
//! Missing entries are fetched with `/substrate/log/1`: a request names a range by index and the
//! response carries the raw leaves (8-byte big-endian integrated time ‖ envelope JSON), the very
//! bytes the Merkle tree hashes, so the receiver checks them against a root it already trusts.
//! Before it keeps them, a mirror asks `/substrate/consistency/1` for the proof that the new
//! checkpoint extends the one it holds, and afterwards publishes its cosignature on a second topic.
//! Texts move separately, on `/substrate/text/1`, and only as their consent tier allows; events a
//! member sends to any node travel to the sequencer on `/substrate/submit/1`, and the receipt back.
//! The files of an adapter the log publishes travel one by one on `/substrate/adapter-file/1`;
//! the receiver keeps each only if its registry accepts it against the log and the attestation.

use serde::{Deserialize, Serialize};

/// The request-response protocol for log ranges.
pub const LOG_PROTOCOL: &str = "/substrate/log/1";

/// The request-response protocol for consistency proofs between two checkpoint sizes.
pub const CONSISTENCY_PROTOCOL: &str = "/substrate/consistency/1";

/// The request-response protocol for deposit texts, by CID.
pub const TEXT_PROTOCOL: &str = "/substrate/text/1";

/// The request-response protocol for the files of published adapters, one file per request.
pub const ADAPTER_PROTOCOL: &str = "/substrate/adapter-file/1";

/// The request-response protocol that carries a signed event to the sequencer and its receipt back.
/// Only the sequencer accepts it, so identify tells every peer which node sequences.
pub const SUBMIT_PROTOCOL: &str = "/substrate/submit/1";

/// Most texts one request asks for.
pub const MAX_TEXTS: usize = 64;

/// The identify protocol version this node speaks.
pub const IDENTIFY_PROTOCOL: &str = "/substrate/1";

/// Most leaves one response carries. A deposit's leaf is about 1 KiB (the text itself travels
/// separately), so a full response stays far below [`RESPONSE_SIZE_MAXIMUM`].
pub const MAX_RANGE: u64 = 512;

/// The largest CBOR response accepted: a full range of unusually large leaves.
pub const RESPONSE_SIZE_MAXIMUM: u64 = 16 * 1024 * 1024;

/// The gossipsub topic on which checkpoints of the commons with this origin are announced.
pub fn checkpoint_topic(origin: &str) -> String {
    format!("/substrate/checkpoints/1/{origin}")
}

/// The gossipsub topic on which mirrors publish their cosignatures of this commons' checkpoints
/// (message = the checkpoint note with the cosignature line appended).
pub fn cosignature_topic(origin: &str) -> String {
    format!("/substrate/cosignatures/1/{origin}")
}

/// Entries `start..start + limit` of the log; the server may return fewer (at most [`MAX_RANGE`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRequest {
    pub start: u64,
    pub limit: u64,
}

/// The raw leaves from the requested start, in order; empty if the server holds none of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogResponse {
    pub leaves: Vec<serde_bytes::ByteBuf>,
}

/// The request-response protocol for an intermediate signed checkpoint: a step on the way to a
/// far-off head, so a mirror keeps what it verified as it goes.
pub const CHECKPOINT_PROTOCOL: &str = "/substrate/checkpoint/1";

/// The largest signed checkpoint whose size is above `above` and at most `at_most`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRequest {
    pub above: u64,
    pub at_most: u64,
}

/// That checkpoint's note, exactly as the log key signed it; `None` if the server holds none in
/// the range.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointResponse {
    pub note: Option<String>,
}

/// An RFC 6962 consistency proof from the tree of `old` entries to the tree of `new` entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyRequest {
    pub old: u64,
    pub new: u64,
}

/// The proof's hashes in order, or why the server cannot give one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyResponse {
    pub proof: Vec<serde_bytes::ByteBuf>,
    pub error: Option<String>,
}

/// The texts of these deposits (CIDs), at most [`MAX_TEXTS`]. With `job`, the asker is the node
/// assigned that training job and asks for the `training-only` texts of its snapshot too, which
/// are sent to it and to nobody else, for as long as the assignment is live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextRequest {
    pub cids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<u64>,
}

/// One answer per requested CID, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextResponse {
    pub texts: Vec<Text>,
}

/// A text, or why it is not sent: consent that does not let it leave, a withdrawal, a CID the
/// node does not hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Text {
    pub cid: String,
    pub content: Option<serde_bytes::ByteBuf>,
    pub refused: Option<String>,
}

/// File `name` of the adapter the log published at index `adapter`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterFileRequest {
    pub adapter: u64,
    pub name: String,
}

/// The file's bytes, or why they are not sent: an adapter the node does not know, or a file its
/// registry does not hold (yet).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterFileResponse {
    pub content: Option<serde_bytes::ByteBuf>,
    pub refused: Option<String>,
}

/// A signed event (DSSE envelope JSON) and, for a deposit, its text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitRequest {
    pub envelope: serde_bytes::ByteBuf,
    pub content: Option<serde_bytes::ByteBuf>,
}

/// The sequencer's answer: the receipt, its own refusal, or why it could not store the event.
#[derive(Debug, Serialize, Deserialize)]
pub enum SubmitResponse {
    Submitted(substrate_store::Submitted),
    Refused(substrate_core::state::Rejection),
    Failed(String),
}
