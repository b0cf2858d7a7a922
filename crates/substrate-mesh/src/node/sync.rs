//! A mirror's sync: following the log from announcements to its own ledger.
//!
//! Every announced checkpoint is opened with the log key and checked against the log held (a
//! contradiction is a split view, on any node). The largest one heard is a mirror's target: more
//! than a step behind, it first asks `/substrate/checkpoint/1` for a signed checkpoint about one
//! step ahead; for each step it fetches the entries it lacks over `/substrate/log/1` from whoever
//! announced the checkpoint, asks it for the consistency proof from the checkpoint it holds
//! (`/substrate/consistency/1`), opens the range with it off the async threads
//! ([`OpenedRange::open`]: the proof, then every entry parsed and its signatures checked on every
//! core), and hands it to its ledger ([`Ledger::keep`](substrate_store::Ledger::keep)), which
//! keeps the range only if every check passes. While the ledger keeps one step, the next is
//! fetched, proven to extend the step's checkpoint and opened; it goes to the ledger only once
//! that step is kept, and is dropped if it is not. The answering side of these protocols is
//! `serve.rs`.

use std::sync::Arc;
use std::time::Instant;

use libp2p::PeerId;
use libp2p::request_response::{self, OutboundRequestId};
use substrate_store::follow::FollowError;
use substrate_store::{Extended, OpenedRange};
use substrate_tlog::{Checkpoint, Hash};
use tracing::{debug, error, info, warn};

use super::{MeshEvent, Node, NodeRole, Served};
use crate::protocol::{
    CheckpointRequest, CheckpointResponse, ConsistencyRequest, ConsistencyResponse, LogRequest, LogResponse,
    MAX_RANGE,
};

/// A mirror's progress towards the head.
pub(super) struct SyncState {
    /// How many entries a mirror catches up by at most in one step (`MeshConfig::sync_step`).
    step: u64,
    /// The step the ledger is checking, if any: its checkpoint.
    verifying: Option<Announcement>,
    /// The step being fetched, opened, or waiting for the ledger, if any: the one after
    /// `verifying` when the ledger checks one, else the one after the log held.
    fetch: Option<Fetch>,
    /// The largest verified checkpoint heard and who announced it: the next target.
    best: Option<Announcement>,
    /// Steps handed to be opened so far: each opening's number, to tell a stale one.
    openings: u64,
}

impl SyncState {
    pub(super) fn new(step: u64) -> SyncState {
        SyncState { step: step.max(1), verifying: None, fetch: None, best: None, openings: 0 }
    }

    /// The log the next step to fetch follows, its size and root: the step the ledger checks,
    /// else the log held.
    fn base(&self, held: (u64, Hash)) -> (u64, Hash) {
        self.verifying.as_ref().map_or(held, |v| (v.checkpoint.size, v.checkpoint.root))
    }

    /// The largest verified checkpoint heard and who announced it.
    pub(super) fn best(&self) -> Option<&Announcement> {
        self.best.as_ref()
    }
}

#[derive(Clone)]
pub(super) struct Announcement {
    pub(super) checkpoint: Checkpoint,
    note: String,
    pub(super) from: PeerId,
}

/// Fetching the range that follows `follows` up to one announced checkpoint, then the proof that
/// the checkpoint extends `follows`, then opening the range.
struct Fetch {
    target: Announcement,
    /// The size and root of the log the range follows: the log held, or the checkpoint of the
    /// step being checked, to be held once it is kept.
    follows: (u64, Hash),
    fetched: Vec<Vec<u8>>,
    in_flight: InFlight,
    /// The range opened, or why it could not be: said when the ledger would have taken it.
    opened: Option<Result<OpenedRange, FollowError>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum InFlight {
    /// Asking for a signed checkpoint about one step ahead, to fetch and keep up to it first.
    Step(OutboundRequestId),
    Range(OutboundRequestId),
    Proof(OutboundRequestId),
    /// The range and its proof are here; opening them (this opening's number).
    Opening(u64),
    /// Opened: waiting for the ledger to finish the step before.
    Opened,
}

impl Node {
    /// `/substrate/checkpoint/1`: requests go to `serve.rs`; answers and failures drive the sync.
    pub(super) fn on_step(&mut self, event: request_response::Event<CheckpointRequest, CheckpointResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.serve_checkpoint(peer, request, channel)
                }
                request_response::Message::Response { request_id, response } => {
                    self.on_step_checkpoint(peer, request_id, response)
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                self.sync_failed(InFlight::Step(request_id), peer, &error)
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "a checkpoint request from a peer failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// `/substrate/log/1`: requests go to `serve.rs`; answers and failures drive the sync.
    pub(super) fn on_log(&mut self, event: request_response::Event<LogRequest, LogResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.serve_range(peer, request, channel)
                }
                request_response::Message::Response { request_id, response } => {
                    self.on_range(peer, request_id, response)
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                self.sync_failed(InFlight::Range(request_id), peer, &error)
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "a range request from a peer failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// `/substrate/consistency/1`: requests go to `serve.rs`; answers and failures drive the sync.
    pub(super) fn on_consistency(
        &mut self,
        event: request_response::Event<ConsistencyRequest, ConsistencyResponse>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.serve_proof(peer, request, channel)
                }
                request_response::Message::Response { request_id, response } => {
                    self.on_proof(peer, request_id, response)
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                self.sync_failed(InFlight::Proof(request_id), peer, &error)
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "a consistency request from a peer failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    pub(super) fn on_announcement(&mut self, from: PeerId, note: String) {
        let checkpoint = match Checkpoint::open(&note, &self.log_key) {
            Ok(checkpoint) => checkpoint,
            Err(e) => return self.reject(from, format!("a checkpoint the log key did not sign: {e}")),
        };
        let size = checkpoint.size;
        let height = &mut self.peers.entry(from).or_default().height;
        *height = Some(height.unwrap_or(0).max(size));
        let held = self.held().0;
        // Any node, the sequencer included, checks what others announce against the log it holds.
        if size <= held {
            // A mirror's reader shares its ledger's tree.
            let tree_root = self.reader.root_at(size);
            if tree_root.as_ref().is_ok_and(|root| *root != checkpoint.root) {
                let held = tree_root.map(|r| hex(&r)).unwrap_or_default();
                let detail =
                    FollowError::SplitView { size, announced: hex(&checkpoint.root), held }.to_string();
                error!(peer = %from, %detail, "SPLIT VIEW: a checkpoint the log key signed contradicts the log held");
                self.emit(MeshEvent::SplitView { peer: from, detail });
            }
            return;
        }
        let NodeRole::Mirror(follower) = &mut self.role else {
            let detail = format!(
                "a checkpoint for size {size} is signed by the log key, but this sequencer holds {held}"
            );
            error!(peer = %from, %detail, "SPLIT VIEW: the log key signed beyond this sequencer's log");
            return self.emit(MeshEvent::SplitView { peer: from, detail });
        };
        // The steps being checked and fetched count as held for this.
        let mut pending =
            follower.sync.verifying.iter().chain(follower.sync.fetch.as_ref().map(|f| &f.target));
        if pending.any(|target| target.checkpoint.size == size && target.checkpoint.root != checkpoint.root) {
            let detail = format!("two signed checkpoints for size {size} with different roots");
            error!(peer = %from, %detail, "SPLIT VIEW");
            self.emit(MeshEvent::SplitView { peer: from, detail });
            return;
        }
        if follower.sync.best.as_ref().is_none_or(|best| best.checkpoint.size < size) {
            follower.sync.best = Some(Announcement { checkpoint, note, from });
        }
        self.sync_next();
    }

    /// Starts fetching towards the best checkpoint heard, unless a fetch runs or nothing is
    /// missing beyond the log held and the step the ledger checks. Far behind, it first asks for
    /// a signed checkpoint about one step ahead and goes there.
    pub(super) fn sync_next(&mut self) {
        if self.partitioned {
            return;
        }
        let NodeRole::Mirror(follower) = &mut self.role else { return };
        let step = follower.sync.step;
        if follower.sync.fetch.is_some() {
            return;
        }
        let follows = follower.sync.base(follower.held());
        let base = follows.0;
        let Some(target) = follower.sync.best.clone().filter(|b| b.checkpoint.size > base) else {
            return;
        };
        if target.checkpoint.size - base > step {
            let request = CheckpointRequest { above: base, at_most: base + step };
            let id = self.swarm.behaviour_mut().checkpoint.send_request(&target.from, request);
            let in_flight = InFlight::Step(id);
            follower.sync.fetch =
                Some(Fetch { target, follows, fetched: Vec::new(), in_flight, opened: None });
            return;
        }
        self.fetch_range(target, follows);
    }

    /// Asks for the first range from `follows` towards `target`.
    fn fetch_range(&mut self, target: Announcement, follows: (u64, Hash)) {
        let NodeRole::Mirror(follower) = &mut self.role else { return };
        let start = follows.0;
        let limit = (target.checkpoint.size - start).min(MAX_RANGE);
        debug!(peer = %target.from, start, limit, target = target.checkpoint.size, "fetching a range");
        let in_flight = InFlight::Range(
            self.swarm.behaviour_mut().log.send_request(&target.from, LogRequest { start, limit }),
        );
        follower.sync.fetch = Some(Fetch { target, follows, fetched: Vec::new(), in_flight, opened: None });
    }

    /// A signed checkpoint about one step ahead arrived (or none lies in between): fetch up to it.
    fn on_step_checkpoint(
        &mut self,
        peer: PeerId,
        request_id: OutboundRequestId,
        response: CheckpointResponse,
    ) {
        let NodeRole::Mirror(follower) = &mut self.role else { return };
        let Some(sync) = follower.sync.fetch.take_if(|s| s.in_flight == InFlight::Step(request_id)) else {
            return;
        };
        let base = sync.follows.0;
        let Some(note) = response.note else {
            // No checkpoint in between: go to the head in one step.
            return self.fetch_range(sync.target, sync.follows);
        };
        let step = match Checkpoint::open(&note, &self.log_key) {
            Ok(step) if step.size > base && step.size < sync.target.checkpoint.size => step,
            Ok(step) => {
                return self.reject(
                    peer,
                    format!(
                        "asked for a checkpoint between {base} and {}, got size {}",
                        sync.target.checkpoint.size, step.size
                    ),
                );
            }
            Err(e) => {
                return self.reject(peer, format!("a step checkpoint the log key did not sign: {e}"));
            }
        };
        self.fetch_range(Announcement { checkpoint: step, note, from: peer }, sync.follows);
    }

    fn sync_failed(&mut self, in_flight: InFlight, peer: PeerId, error: &request_response::OutboundFailure) {
        let NodeRole::Mirror(follower) = &mut self.role else { return };
        if follower.sync.fetch.as_ref().is_some_and(|s| s.in_flight == in_flight) {
            warn!(%peer, %error, "a request of the sync failed; retrying on the next tick");
            follower.sync.fetch = None;
        }
    }

    fn on_range(&mut self, peer: PeerId, request_id: OutboundRequestId, response: LogResponse) {
        let NodeRole::Mirror(follower) = &mut self.role else { return };
        let Some(mut sync) = follower.sync.fetch.take_if(|s| s.in_flight == InFlight::Range(request_id))
        else {
            return;
        };
        let have = sync.follows.0 + sync.fetched.len() as u64;
        let wanted = (sync.target.checkpoint.size - have).min(MAX_RANGE);
        let got = response.leaves.len() as u64;
        if got == 0 || got > wanted {
            return self.reject(peer, format!("asked for {wanted} entries from {have}, got {got}"));
        }
        sync.fetched.extend(response.leaves.into_iter().map(serde_bytes::ByteBuf::into_vec));
        if have + got < sync.target.checkpoint.size {
            let start = have + got;
            let limit = (sync.target.checkpoint.size - start).min(MAX_RANGE);
            sync.in_flight = InFlight::Range(
                self.swarm.behaviour_mut().log.send_request(&peer, LogRequest { start, limit }),
            );
            follower.sync.fetch = Some(sync);
            return;
        }
        // The whole range is here: ask the same peer to prove the new checkpoint extends the one
        // it follows.
        let (old, new) = (sync.follows.0, sync.target.checkpoint.size);
        if old == 0 {
            // Every tree extends the empty one; the proof is empty by definition.
            return self.open_range(sync, Vec::new());
        }
        sync.in_flight = InFlight::Proof(
            self.swarm.behaviour_mut().consistency.send_request(&peer, ConsistencyRequest { old, new }),
        );
        follower.sync.fetch = Some(sync);
    }

    /// The consistency proof for a fetched range arrived: open the range with it.
    fn on_proof(&mut self, peer: PeerId, request_id: OutboundRequestId, response: ConsistencyResponse) {
        let NodeRole::Mirror(follower) = &mut self.role else { return };
        let Some(sync) = follower.sync.fetch.take_if(|s| s.in_flight == InFlight::Proof(request_id)) else {
            return;
        };
        if let Some(error) = response.error {
            let (old, new) = (sync.follows.0, sync.target.checkpoint.size);
            follower.sync.best = None;
            return self.reject(peer, format!("no consistency proof from size {old} to {new}: {error}"));
        }
        let proof = response.proof.iter().map(|h| h.as_slice().try_into().unwrap_or([0; 32])).collect();
        self.open_range(sync, proof);
    }

    /// Opens a fetched step with its proof off the async threads, while the ledger may still be
    /// checking the step before.
    fn open_range(&mut self, mut sync: Fetch, proof: Vec<Hash>) {
        let NodeRole::Mirror(follower) = &mut self.role else { return };
        follower.sync.openings += 1;
        let id = follower.sync.openings;
        let (verifier, follows, note) = (self.log_key.clone(), sync.follows, sync.target.note.clone());
        let leaves = std::mem::take(&mut sync.fetched);
        sync.in_flight = InFlight::Opening(id);
        follower.sync.fetch = Some(sync);
        let served = self.served_tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = OpenedRange::open(&verifier, follows, &note, leaves, &proof);
            let _ = served.blocking_send(Served::Opened { id, result });
        });
    }

    /// A step is opened (or could not be): it goes to the ledger when the ledger is free.
    pub(super) fn on_opened(&mut self, id: u64, result: Result<OpenedRange, FollowError>) {
        let NodeRole::Mirror(follower) = &mut self.role else { return };
        let Some(sync) = follower.sync.fetch.as_mut().filter(|s| s.in_flight == InFlight::Opening(id)) else {
            return;
        };
        sync.in_flight = InFlight::Opened;
        sync.opened = Some(result);
        self.verify_next();
    }

    /// Hands the opened step to the ledger, off the async threads, once the ledger is done with
    /// the one before; then starts fetching the next.
    fn verify_next(&mut self) {
        let NodeRole::Mirror(follower) = &mut self.role else { return };
        if follower.sync.verifying.is_some() {
            return;
        }
        let Some(Fetch { target, opened: Some(opened), .. }) =
            follower.sync.fetch.take_if(|s| s.in_flight == InFlight::Opened)
        else {
            return;
        };
        let range = match opened {
            Ok(range) => range,
            Err(e) => {
                self.range_refused(target.from, &e);
                return self.sync_next();
            }
        };
        let ledger = Arc::clone(&follower.ledger);
        let (peer, note) = (target.from, target.note.clone());
        let entries = range.entries() as u64;
        follower.sync.verifying = Some(target);
        let served = self.served_tx.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut ledger = ledger.lock().unwrap_or_else(|e| e.into_inner());
            let locked = started.elapsed();
            let result = ledger.keep(range);
            drop(ledger);
            let (waited_ms, checked_ms) = (locked.as_millis(), (started.elapsed() - locked).as_millis());
            debug!(entries, waited_ms, checked_ms, "the ledger checked a step");
            let _ = served.blocking_send(Served::Extended { from: peer, note, entries, result });
        });
        self.sync_next();
    }

    /// A step that did not pass its checks. A signed checkpoint that does not extend the one
    /// held is a fork, unless the peer sent a bad proof; a range that does not match its
    /// checkpoint is tampering. Both are loud; nothing of the range is kept, and the step
    /// fetched after it goes too.
    fn range_refused(&mut self, peer: PeerId, error: &FollowError) {
        let NodeRole::Mirror(follower) = &mut self.role else { return };
        error!(%peer, %error, "a fetched range was refused");
        follower.sync.fetch = None;
        follower.sync.best = None;
        self.metrics.ranges_rejected.inc();
        self.emit(MeshEvent::Rejected { peer, reason: error.to_string() });
    }

    /// The ledger's verdict on a range: keep going, or say exactly why it was refused.
    pub(super) fn on_extended(
        &mut self,
        peer: PeerId,
        note: String,
        entries: u64,
        result: Result<Extended, FollowError>,
    ) {
        let NodeRole::Mirror(follower) = &mut self.role else { return };
        follower.sync.verifying = None;
        let next_opened = follower.sync.fetch.as_ref().is_some_and(|f| f.in_flight == InFlight::Opened);
        debug!(next_opened, "the ledger is done with a step");
        match result {
            Ok(extended) => {
                let (size, root) = follower.held();
                follower.kept = (size, root);
                follower.texts.want(extended.wanted);
                self.metrics.entries_verified.inc_by(entries);
                info!(size, from = %peer, "mirror verified and kept a checkpoint");
                self.latest = Some(note.clone());
                self.emit(MeshEvent::CaughtUp { size, root });
                // Pass it on: peers that missed the sequencer's announcement can fetch from us.
                if let Err(e) = self.publish_latest() {
                    debug!(error = %e, "could not re-announce");
                }
                self.cosign(&note);
                // The step may have registered nodes: they may connect, and their cosignatures count.
                self.refresh_allowed();
                self.fetch_texts();
                self.adapter_files.checkpoint_kept();
                self.fetch_adapter_files();
                self.verify_next();
            }
            Err(e) => self.range_refused(peer, &e),
        }
        self.sync_next();
    }
}

fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}
