//! Serving the log: the answering side of `/substrate/log/1` (ranges of entries),
//! `/substrate/consistency/1` (proofs) and `/substrate/checkpoint/1` (a signed checkpoint about
//! one step ahead). A sequencer answers from its store, a mirror from what its ledger holds; each
//! read runs off the task (SQLite blocks) and comes back to it as a [`Served`] message. What a
//! mirror does with the answers is `sync.rs`.

use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;
use tracing::{debug, warn};

use super::{Node, Served};
use crate::protocol::{
    CheckpointRequest, CheckpointResponse, ConsistencyRequest, ConsistencyResponse, LogRequest, LogResponse,
    MAX_RANGE,
};

impl Node {
    /// Answers a range request from the store, off the async threads (SQLite blocks).
    pub(super) fn serve_range(
        &mut self,
        peer: PeerId,
        request: LogRequest,
        channel: ResponseChannel<LogResponse>,
    ) {
        let limit = request.limit.min(MAX_RANGE);
        debug!(%peer, start = request.start, limit, "serving a range");
        let reader = self.reader.clone();
        let served = self.served_tx.clone();
        tokio::task::spawn_blocking(move || {
            let leaves = match reader.entries(request.start, limit) {
                Ok(entries) => entries.iter().map(|e| serde_bytes::ByteBuf::from(e.leaf())).collect(),
                Err(e) => {
                    warn!(%peer, error = %e, "could not read a range");
                    Vec::new()
                }
            };
            let _ = served.blocking_send(Served::Range(channel, LogResponse { leaves }));
        });
    }

    /// Answers a consistency request from the store.
    pub(super) fn serve_proof(
        &mut self,
        peer: PeerId,
        request: ConsistencyRequest,
        channel: ResponseChannel<ConsistencyResponse>,
    ) {
        debug!(%peer, old = request.old, new = request.new, "serving a consistency proof");
        let reader = self.reader.clone();
        let served = self.served_tx.clone();
        tokio::task::spawn_blocking(move || {
            let response = match reader.consistency_hashes(request.old, request.new) {
                Ok(proof) => ConsistencyResponse {
                    proof: proof.into_iter().map(|h| serde_bytes::ByteBuf::from(h.to_vec())).collect(),
                    error: None,
                },
                Err(e) => ConsistencyResponse { proof: Vec::new(), error: Some(e.to_string()) },
            };
            let _ = served.blocking_send(Served::Proof(channel, response));
        });
    }

    /// Answers a step request from the store: the largest signed checkpoint in the asked bounds,
    /// if any.
    pub(super) fn serve_checkpoint(
        &mut self,
        peer: PeerId,
        request: CheckpointRequest,
        channel: ResponseChannel<CheckpointResponse>,
    ) {
        let reader = self.reader.clone();
        let served = self.served_tx.clone();
        tokio::task::spawn_blocking(move || {
            let note = reader.checkpoint_between(request.above, request.at_most).unwrap_or_else(|e| {
                warn!(%peer, error = %e, "could not read a checkpoint");
                None
            });
            let response = CheckpointResponse { note: note.map(|(_, note)| note) };
            let _ = served.blocking_send(Served::Checkpoint(channel, response));
        });
    }
}
