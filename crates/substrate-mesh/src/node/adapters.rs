//! Adapter files between nodes, on `/substrate/adapter-file/1`.
//!
//! Any node answers from its own registry. Every node, on each tick, once it keeps a checkpoint
//! and after each file it keeps, looks for the next file it lacks of the adapters its log
//! publishes, in the order the registry accepts them (the attestation, its subjects, the
//! signature), and asks for it, one request at a time: a mirror its source, the sequencer the
//! node that published the adapter (a worker that trained it as a job) when it is connected. What arrives is
//! kept only if the registry accepts it against the log and the attestation, so a node holds
//! nothing its source could have made up.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use substrate_core::governance::book::AdapterRecord;
use substrate_store::{DataDir, Reader};
use substrate_training::provenance::PROVENANCE_FILE;
use substrate_training::registry::{self, Accepted};
use substrate_training::run::SIGNATURE_FILE;
use tracing::{debug, info, warn};

use super::{MeshEvent, Node, Served};
use crate::protocol::{AdapterFileRequest, AdapterFileResponse};

/// How long a mirror waits before asking again for a file its source did not send, doubling on
/// each refusal up to [`REFUSED_WAIT_MAX`]. Right after the log publishes an adapter, its files
/// are still being uploaded to the node it was sent to, so the first answer is often "not yet".
const REFUSED_WAIT: Duration = Duration::from_secs(5);

/// The longest wait between two requests for a file the source keeps refusing.
const REFUSED_WAIT_MAX: Duration = Duration::from_secs(300);

/// How long a node that lacks nothing waits before looking again: the sequencer keeps no
/// checkpoint of someone else's to look on, and a worker may publish an adapter at any entry.
const LOOK_AGAIN: Duration = Duration::from_secs(2);

/// A node's fetching of adapter files.
pub(super) struct AdapterFiles {
    /// The node's data directory, whose registry the files go to.
    data: DataDir,
    busy: Option<Busy>,
    /// Look again as soon as the work in hand ends: a checkpoint was kept meanwhile.
    again: bool,
    /// Look again on the first tick after this: a refused file is due, or no source was connected.
    look_at: Option<Instant>,
    /// Files not to ask for now, by (adapter, name). A kept checkpoint forgets them all.
    given_up: BTreeMap<(u64, String), GivenUp>,
    /// Adapters whose every file the registry holds: not looked at again.
    complete: BTreeSet<u64>,
}

enum Busy {
    /// Looking through the registry for the next file it lacks.
    Looking,
    /// Asked the source for this file.
    Asked { request: OutboundRequestId, record: Box<AdapterRecord>, name: String },
    /// The registry is checking what arrived.
    Accepting,
}

#[derive(Clone, Copy, Debug)]
enum GivenUp {
    /// The source did not send it (or did not answer): asked again from `at`; a further refusal
    /// waits twice `wait`.
    Refused { at: Instant, wait: Duration },
    /// What arrived failed the registry's checks: not asked again until a checkpoint is kept.
    Failed,
}

/// What a look through the registry found.
pub(super) struct Wanted {
    /// The next file to ask for.
    next: Option<(AdapterRecord, String)>,
    /// Adapters found complete.
    complete: Vec<u64>,
    /// When the first file passed over for now becomes due.
    look_at: Option<Instant>,
}

/// The registry's verdict on a fetched file.
pub(super) struct Kept {
    from: PeerId,
    adapter: u64,
    name: String,
    result: Result<Accepted, String>,
}

impl AdapterFiles {
    /// Nothing fetched yet; the first tick looks, so a restarted node fetches what it lacks.
    pub(super) fn new(data: DataDir) -> AdapterFiles {
        AdapterFiles {
            data,
            busy: None,
            again: false,
            look_at: Some(Instant::now()),
            given_up: BTreeMap::new(),
            complete: BTreeSet::new(),
        }
    }

    /// Whether a tick at `now` should look for files.
    pub(super) fn due(&self, now: Instant) -> bool {
        self.busy.is_none() && self.look_at.is_some_and(|at| at <= now)
    }

    /// A checkpoint was kept: what was given up on is asked for again.
    pub(super) fn checkpoint_kept(&mut self) {
        self.given_up.clear();
    }

    fn refused(&mut self, adapter: u64, name: String, now: Instant) {
        let wait = match self.given_up.get(&(adapter, name.clone())) {
            Some(GivenUp::Refused { wait, .. }) => (*wait * 2).min(REFUSED_WAIT_MAX),
            _ => REFUSED_WAIT,
        };
        self.given_up.insert((adapter, name), GivenUp::Refused { at: now + wait, wait });
    }

    fn failed(&mut self, adapter: u64, name: String) {
        self.given_up.insert((adapter, name), GivenUp::Failed);
    }

    /// Whether the request `id` is the one in flight; if so, what it asked for.
    fn answered(&mut self, id: OutboundRequestId) -> Option<(AdapterRecord, String)> {
        match self.busy.take_if(|b| matches!(b, Busy::Asked { request, .. } if *request == id))? {
            Busy::Asked { record, name, .. } => Some((*record, name)),
            _ => None,
        }
    }
}

impl Node {
    /// Looks for the next adapter file this node lacks (off the task), unless it is busy with
    /// one already; the answer comes back as [`Served::AdapterFileWanted`].
    pub(super) fn fetch_adapter_files(&mut self) {
        let files = &mut self.adapter_files;
        if files.busy.is_some() {
            files.again = true;
            return;
        }
        if self.partitioned {
            files.look_at = Some(Instant::now());
            return;
        }
        files.busy = Some(Busy::Looking);
        files.again = false;
        let reader = self.reader.clone();
        let data = files.data.clone();
        let given_up = files.given_up.clone();
        let complete = files.complete.clone();
        let served = self.served_tx.clone();
        tokio::task::spawn_blocking(move || {
            let wanted = wanted(&reader, &data, &given_up, &complete, Instant::now());
            let _ = served.blocking_send(Served::AdapterFileWanted(wanted));
        });
    }

    /// Whom to ask for a file of `record`: a mirror its source (the sequencer, which fetches
    /// what it lacks itself); the sequencer the node that published it, when connected.
    fn adapter_source(&self, record: &AdapterRecord) -> Option<PeerId> {
        if self.partitioned {
            return None;
        }
        self.source().or_else(|| {
            crate::peer::peer_id_of(&record.node)
                .ok()
                .filter(|p| p != self.swarm.local_peer_id() && self.swarm.is_connected(p))
        })
    }

    pub(super) fn on_adapter_file_wanted(&mut self, wanted: Wanted) {
        let source = wanted.next.as_ref().and_then(|(record, _)| self.adapter_source(record));
        let files = &mut self.adapter_files;
        files.busy = None;
        files.complete.extend(wanted.complete);
        files.look_at = Some(wanted.look_at.unwrap_or_else(|| Instant::now() + LOOK_AGAIN));
        let Some((record, name)) = wanted.next else {
            if std::mem::take(&mut files.again) {
                self.fetch_adapter_files();
            }
            return;
        };
        let Some(source) = source else {
            // Nobody connected holds it: asked again later, the other adapters meanwhile.
            files.refused(record.id, name, Instant::now());
            return self.fetch_adapter_files();
        };
        debug!(peer = %source, adapter = record.id, %name, "asking for an adapter file");
        let request = AdapterFileRequest { adapter: record.id, name: name.clone() };
        let request = self.swarm.behaviour_mut().adapter.send_request(&source, request);
        files.busy = Some(Busy::Asked { request, record: Box::new(record), name });
    }

    pub(super) fn on_adapter_file(
        &mut self,
        event: request_response::Event<AdapterFileRequest, AdapterFileResponse>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.serve_adapter_file(peer, request, channel)
                }
                request_response::Message::Response { request_id, response } => {
                    self.on_adapter_file_response(peer, request_id, response)
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                let files = &mut self.adapter_files;
                let Some((record, name)) = files.answered(request_id) else { return };
                warn!(%peer, adapter = record.id, %name, %error, "an adapter file request failed; it is asked for again later");
                files.refused(record.id, name, Instant::now());
                self.fetch_adapter_files();
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "an adapter file request from a peer failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_adapter_file_response(
        &mut self,
        peer: PeerId,
        request_id: OutboundRequestId,
        response: AdapterFileResponse,
    ) {
        let files = &mut self.adapter_files;
        let Some((record, name)) = files.answered(request_id) else { return };
        let Some(content) = response.content else {
            let reason = response.refused.unwrap_or_default();
            info!(%peer, adapter = record.id, %name, %reason, "an adapter file was not sent; it is asked for again later");
            files.refused(record.id, name, Instant::now());
            return self.fetch_adapter_files();
        };
        files.busy = Some(Busy::Accepting);
        let data = files.data.clone();
        let served = self.served_tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = registry::accept(&data, &record, &name, &content).map_err(|e| e.to_string());
            let kept = Kept { from: peer, adapter: record.id, name, result };
            let _ = served.blocking_send(Served::AdapterFileKept(kept));
        });
    }

    pub(super) fn on_adapter_file_kept(&mut self, kept: Kept) {
        let files = &mut self.adapter_files;
        files.busy = None;
        let Kept { from, adapter, name, result } = kept;
        match result {
            Ok(accepted) => {
                info!(%from, adapter, %name, ?accepted, "kept an adapter file");
                self.metrics.adapter_files_kept.inc();
                self.emit(MeshEvent::AdapterFileKept { adapter, name });
            }
            Err(error) => {
                warn!(%from, adapter, %name, %error, "a fetched adapter file was refused; it is not asked for again until a checkpoint is kept");
                files.failed(adapter, name);
            }
        }
        self.fetch_adapter_files();
    }

    /// Sends a file this node's registry holds, off the task (a file may be large); anything
    /// else is answered with the reason and no content.
    fn serve_adapter_file(
        &mut self,
        peer: PeerId,
        request: AdapterFileRequest,
        channel: ResponseChannel<AdapterFileResponse>,
    ) {
        let reader = self.reader.clone();
        let served = self.served_tx.clone();
        tokio::task::spawn_blocking(move || {
            let (adapter, name) = (request.adapter, &request.name);
            let response = match stored_file(&reader, &request) {
                Ok(content) => {
                    debug!(%peer, adapter, %name, bytes = content.len(), "serving an adapter file");
                    AdapterFileResponse { content: Some(serde_bytes::ByteBuf::from(content)), refused: None }
                }
                Err(reason) => {
                    debug!(%peer, adapter, %name, %reason, "withheld an adapter file");
                    AdapterFileResponse { content: None, refused: Some(reason) }
                }
            };
            let _ = served.blocking_send(Served::AdapterFile(channel, response));
        });
    }
}

/// The content of the requested file if this node's registry holds it, else why not.
fn stored_file(reader: &Reader, request: &AdapterFileRequest) -> Result<Vec<u8>, String> {
    let governance = reader.governance().map_err(|e| e.to_string())?;
    let record = governance
        .adapter(request.adapter)
        .ok_or_else(|| format!("the log this node holds publishes no adapter {}", request.adapter))?;
    match registry::read(reader.dir(), record, &request.name) {
        Ok(Some(content)) => Ok(content),
        Ok(None) => {
            Err(format!("this node does not hold {} of adapter {} (yet)", request.name, request.adapter))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The first file the registry lacks of the adapters the log publishes, in the order the
/// registry accepts them, passing over those given up on; and which adapters are complete.
fn wanted(
    reader: &Reader,
    data: &DataDir,
    given_up: &BTreeMap<(u64, String), GivenUp>,
    complete: &BTreeSet<u64>,
    now: Instant,
) -> Wanted {
    let records: Vec<AdapterRecord> = match reader.governance() {
        Ok(g) => g.adapters().filter(|a| !complete.contains(&a.id)).cloned().collect(),
        Err(e) => {
            warn!(error = %e, "cannot read the published adapters; looking again later");
            return Wanted { next: None, complete: Vec::new(), look_at: Some(now + REFUSED_WAIT) };
        }
    };
    let mut found = Wanted { next: None, complete: Vec::new(), look_at: None };
    for record in records {
        let dir = registry::dir(data, record.id);
        // Until the attestation is held, it is the only file the adapter is known to have.
        let order = if dir.join(PROVENANCE_FILE).is_file() {
            match registry::upload_order(&dir) {
                Ok(order) => order,
                Err(e) => {
                    warn!(adapter = record.id, error = %e, "the stored attestation of an adapter does not read");
                    continue;
                }
            }
        } else {
            vec![PROVENANCE_FILE.to_owned()]
        };
        let missing: Vec<String> = order.into_iter().filter(|name| !dir.join(name).is_file()).collect();
        if missing.is_empty() {
            found.complete.push(record.id);
            continue;
        }
        let mut passed_over = false;
        for name in missing {
            // The signature is accepted only over a complete adapter.
            if name == SIGNATURE_FILE && passed_over {
                break;
            }
            match given_up.get(&(record.id, name.clone())) {
                Some(GivenUp::Failed) => passed_over = true,
                Some(GivenUp::Refused { at, .. }) if *at > now => {
                    passed_over = true;
                    found.look_at = Some(found.look_at.map_or(*at, |t| t.min(*at)));
                }
                _ => {
                    found.next = Some((record, name));
                    return found;
                }
            }
        }
    }
    found
}
