//! [`Mesh`]: one task that owns a libp2p `Swarm` and the node's side of replication.
//!
//! A sequencer serves its log from substrate-store, announces each checkpoint its sequencer signs,
//! takes events other nodes forward, and serves texts that consent lets leave. A mirror verifies
//! every announced checkpoint with the log key, fetches the entries it lacks over
//! `/substrate/log/1` from whoever announced it, asks it for the consistency proof from the
//! checkpoint it holds (`/substrate/consistency/1`), opens the range with it off the task
//! ([`OpenedRange::open`]), and hands it to its own ledger ([`Ledger::keep`]), which keeps the
//! range only if every check passes; the next step is fetched and opened meanwhile. It then serves and
//! re-announces what it holds, publishes its C2SP cosignature, and fetches the texts it may hold
//! and the files of the adapters the log publishes (`node/adapters.rs`).
//! Everything outside the task talks to it through a cloneable [`MeshHandle`].
//!
//! This file holds the node's construction, its event loop and the wiring between the concerns,
//! each in a module of its own with the state only it uses:
//!
//! - `config.rs`: [`MeshConfig`] and [`Role`], how to run one node.
//! - `handle.rs`: [`MeshHandle`], the commands it sends to the task.
//! - `status.rs`: [`MeshStatus`], [`PeerView`], [`MeshEvent`]; the log held and the head heard of.
//! - `allow.rs`: the allow-list, which peers may connect (and a partition, which none may).
//! - `serve.rs`: answering range, consistency and step requests from the store.
//! - `sync.rs`: a mirror following announcements to its ledger, step by step; split views.
//! - `cosign.rs`: cosigning kept checkpoints, and keeping the cosignatures heard.
//! - `texts.rs`, `adapters.rs`, `forwarding.rs`: deposit texts, adapter files, forwarded events.
//! - `metrics.rs`: the node's own Prometheus metrics.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::upgrade;
use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, PublishError};
use libp2p::metrics::{Recorder, Registry};
use libp2p::multiaddr::Protocol;
use libp2p::pnet::PnetConfig;
use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, ListenError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, Transport, identify, noise, tcp, yamux};
use substrate_store::follow::FollowError;
use substrate_store::{Extended, Ledger, OpenedRange, Reader, SequencerHandle};
use substrate_tlog::{Checkpoint, Hash, NoteVerifier, Tree};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::SwarmKey;
use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::peer::{PeerError, node_keypair, peer_id_of};
use crate::protocol::{
    AdapterFileResponse, CheckpointResponse, ConsistencyResponse, LogResponse, SubmitResponse, TextResponse,
    checkpoint_topic, cosignature_topic,
};

mod adapters;
mod allow;
mod config;
mod cosign;
mod forwarding;
mod handle;
mod metrics;
mod serve;
mod status;
mod sync;
mod texts;

pub use config::{MeshConfig, Role};
pub use handle::MeshHandle;
pub use status::{MeshEvent, MeshStatus, PeerView};
pub use texts::JobTexts;

use handle::{Command, SubmitReply};
use metrics::Metrics;
use status::Peer;

/// Connections with nothing in flight for this long are closed. Gossipsub's long-lived streams
/// keep a connection between two subscribed nodes open, so in practice this closes links that
/// only carried a range request; bootstrap peers are redialled anyway (see `redial_interval`).
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error("the transport could not be built: {0}")]
    Transport(String),
    #[error("the behaviours could not be built: {0}")]
    Behaviour(String),
    #[error("cannot listen on {addr}: {detail}")]
    Listen { addr: Multiaddr, detail: String },
    #[error(
        "bootstrap address {0} does not end in /p2p/<peer id>; copy it from the other node's `substrate peers` or log"
    )]
    BootstrapWithoutPeerId(Multiaddr),
    #[error("the checkpoint is not one the log key signed: {0}")]
    Checkpoint(substrate_tlog::CheckpointError),
    #[error("the checkpoint could not be published: {0}")]
    Publish(String),
    #[error("the mesh task has stopped")]
    Stopped,
    #[error("the mirror's ledger could not be read: {0}")]
    Ledger(#[from] substrate_store::LedgerError),
    #[error("waited {waited:?} in vain; the last status was {last}")]
    TimedOut { waited: Duration, last: String },
}

/// A running node; dropping it stops the task.
pub struct Mesh {
    handle: MeshHandle,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh").field("peer_id", &self.handle.peer_id).finish_non_exhaustive()
    }
}

impl Mesh {
    /// Builds the swarm, binds the listener (so port 0 is resolved before this returns), and
    /// starts the node's task on the current tokio runtime.
    pub async fn start(config: MeshConfig) -> Result<Mesh, MeshError> {
        let keypair = node_keypair(&config.node_key)?;
        let sequencing = matches!(config.role, Role::Sequencer { .. });
        let mut registry = Registry::default();
        let private_network = config.private_network;
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_other_transport(|key| {
                transport(key, private_network).map_err(Box::<dyn std::error::Error + Send + Sync>::from)
            })
            .map_err(|e| MeshError::Transport(e.to_string()))?
            .with_bandwidth_metrics(&mut registry)
            .with_behaviour(|key| {
                Behaviour::new(key, sequencing, &mut registry)
                    .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
            })
            .map_err(|e| MeshError::Behaviour(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
            .build();

        let mut allowed = BTreeSet::new();
        for did in &config.allowed {
            allowed.insert(peer_id_of(did)?);
        }
        let mut bootstrap = Vec::new();
        for addr in &config.bootstrap {
            let Some(Protocol::P2p(peer)) = addr.iter().last() else {
                return Err(MeshError::BootstrapWithoutPeerId(addr.clone()));
            };
            // Explicit peers always get our messages and are never pruned: the bootstrap list is
            // the whole commons, so no node should have to win a place in someone's mesh.
            swarm.behaviour_mut().gossipsub.add_explicit_peer(&peer);
            allowed.insert(peer);
            bootstrap.push((peer, addr.clone()));
        }
        for peer in &allowed {
            swarm.behaviour_mut().allowed.allow_peer(*peer);
            // See `Node::allow`: every node allowed is an explicit peer.
            swarm.behaviour_mut().gossipsub.add_explicit_peer(peer);
        }
        let topic = IdentTopic::new(checkpoint_topic(config.log.name()));
        let cosignatures = IdentTopic::new(cosignature_topic(config.log.name()));
        for topic in [&topic, &cosignatures] {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(topic)
                .map_err(|e| MeshError::Behaviour(e.to_string()))?;
        }

        swarm
            .listen_on(config.listen.clone())
            .map_err(|e| MeshError::Listen { addr: config.listen.clone(), detail: e.to_string() })?;
        let listen = loop {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { address, .. } => break address,
                SwarmEvent::ListenerError { error, .. }
                | SwarmEvent::ListenerClosed { reason: Err(error), .. } => {
                    return Err(MeshError::Listen { addr: config.listen.clone(), detail: error.to_string() });
                }
                _ => {}
            }
        };
        let peer_id = *swarm.local_peer_id();
        info!(%peer_id, %listen, "mesh node listening");

        let (reader, role, head) = match config.role {
            Role::Sequencer { reader, sequencer } => {
                let head = sequencer.as_ref().and_then(SequencerHandle::head);
                (reader, NodeRole::Sequencer { sequencer }, head)
            }
            Role::Mirror { ledger, reader } => {
                let tree = ledger.tree();
                let texts = texts::WantedTexts::new(ledger.wanted_texts()?);
                let kept = {
                    let tree = tree.read().unwrap_or_else(|e| e.into_inner());
                    (tree.size(), tree.root())
                };
                let follower = Follower {
                    ledger: Arc::new(Mutex::new(*ledger)),
                    tree,
                    kept,
                    sync: sync::SyncState::new(config.sync_step),
                    texts,
                };
                (reader, NodeRole::Mirror(Box::new(follower)), None)
            }
        };
        let heard =
            reader.cosignatures().unwrap_or_default().into_iter().map(|c| (c.cosigner.clone(), c)).collect();
        let (commands, command_rx) = mpsc::channel(256);
        let (events, _) = broadcast::channel(1024);
        let (served_tx, served_rx) = mpsc::channel(256);
        let (shutdown, shutdown_rx) = oneshot::channel();
        let adapter_files = adapters::AdapterFiles::new(reader.dir().clone());
        let node = Node {
            adapter_files,
            swarm,
            topic,
            cosigning: cosign::Cosigning::new(config.node_key, cosignatures, heard),
            allowed: allow::AllowList::new(allowed),
            log_key: config.log,
            reader,
            role,
            latest: None,
            bootstrap,
            events: events.clone(),
            served_tx,
            peers: BTreeMap::new(),
            forwards: HashMap::new(),
            job_texts: HashMap::new(),
            metrics: Metrics::register(registry),
            partitioned: false,
        };
        let task = tokio::spawn(node.run(command_rx, served_rx, shutdown_rx, head, config.redial_interval));
        Ok(Mesh {
            handle: MeshHandle { commands, events, peer_id, listen },
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    pub fn handle(&self) -> MeshHandle {
        self.handle.clone()
    }

    /// Stops the node and waits for its task to end.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// TCP, then (with a private-network key) the pnet handshake, then Noise and Yamux: what
/// `SwarmBuilder::with_tcp` builds, with the optional pnet layer in between.
fn transport(
    key: &libp2p::identity::Keypair,
    private_network: Option<SwarmKey>,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, noise::Error> {
    let noise = noise::Config::new(key)?;
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    Ok(match private_network {
        Some(SwarmKey(psk)) => tcp
            .and_then(move |socket, _| PnetConfig::new(psk).handshake(socket))
            .upgrade(upgrade::Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux::Config::default())
            .boxed(),
        None => tcp
            .upgrade(upgrade::Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux::Config::default())
            .boxed(),
    })
}

/// Work done off the swarm task (SQLite blocks), handed back to it.
enum Served {
    Range(ResponseChannel<LogResponse>, LogResponse),
    Proof(ResponseChannel<ConsistencyResponse>, ConsistencyResponse),
    Checkpoint(ResponseChannel<CheckpointResponse>, CheckpointResponse),
    Texts(ResponseChannel<TextResponse>, TextResponse),
    Submitted(ResponseChannel<SubmitResponse>, SubmitResponse),
    Opened { id: u64, result: Result<OpenedRange, FollowError> },
    Extended { from: PeerId, note: String, entries: u64, result: Result<Extended, FollowError> },
    TextsKept(Result<usize, String>),
    AdapterFile(ResponseChannel<AdapterFileResponse>, AdapterFileResponse),
    AdapterFileWanted(adapters::Wanted),
    AdapterFileKept(adapters::Kept),
    Registered(Vec<PeerId>),
}

enum NodeRole {
    Sequencer { sequencer: Option<SequencerHandle> },
    Mirror(Box<Follower>),
}

/// A mirror's ledger and what it is fetching: the sync in progress, texts.
struct Follower {
    ledger: Arc<Mutex<Ledger>>,
    /// The size and root of the log committed: what the node reports as held. The tree runs
    /// ahead of it while a step is folded and committed, and goes back if the step is refused.
    kept: (u64, Hash),
    /// The ledger's tree, shared: read here for the held size and split-view checks.
    tree: Arc<RwLock<Tree>>,
    sync: sync::SyncState,
    texts: texts::WantedTexts,
}

impl Follower {
    fn held(&self) -> (u64, Hash) {
        let tree = self.tree.read().unwrap_or_else(|e| e.into_inner());
        (tree.size(), tree.root())
    }
}

struct Node {
    swarm: Swarm<Behaviour>,
    topic: IdentTopic,
    cosigning: cosign::Cosigning,
    allowed: allow::AllowList,
    log_key: NoteVerifier,
    reader: Reader,
    role: NodeRole,
    /// The latest checkpoint note this node vouches for: announced again when a peer subscribes.
    latest: Option<String>,
    bootstrap: Vec<(PeerId, Multiaddr)>,
    events: broadcast::Sender<MeshEvent>,
    served_tx: mpsc::Sender<Served>,
    peers: BTreeMap<PeerId, Peer>,
    /// Submissions forwarded to the sequencer, waiting for its answer.
    forwards: HashMap<OutboundRequestId, SubmitReply>,
    /// Fetching the files of published adapters.
    adapter_files: adapters::AdapterFiles,
    /// A worker's requests for the texts of a job it was assigned, waiting for the sequencer.
    job_texts: HashMap<OutboundRequestId, texts::JobTextsReply>,
    metrics: Metrics,
    partitioned: bool,
}

impl Node {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut served: mpsc::Receiver<Served>,
        mut shutdown: oneshot::Receiver<()>,
        mut head: Option<watch::Receiver<substrate_store::Head>>,
        redial_interval: Duration,
    ) {
        let mut redial = tokio::time::interval(redial_interval);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut owed = tokio::time::interval(allow::ALLOW_REFRESH);
        owed.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if let Some(head) = &mut head {
            head.mark_changed();
        }
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some(done) = served.recv() => self.on_served(done),
                changed = async { head.as_mut().expect("guarded").changed().await }, if head.is_some() => {
                    match changed {
                        Ok(()) => {
                            let note = head.as_mut().and_then(|h| h.borrow_and_update().clone());
                            if let Some((_, note)) = note
                                && let Err(e) = self.announce(note)
                            {
                                warn!(error = %e, "could not announce the sequencer's checkpoint");
                            }
                            // The batch may have registered a node: it may connect at once.
                            self.refresh_allowed();
                        }
                        // The sequencer stopped; the node keeps serving what is stored.
                        Err(_) => head = None,
                    }
                }
                _ = redial.tick() => self.on_tick(),
                _ = owed.tick() => self.refresh_owed(),
                _ = &mut shutdown => break,
            }
        }
        info!(peer_id = %self.swarm.local_peer_id(), "mesh node stopped");
    }

    fn emit(&self, event: MeshEvent) {
        // No subscriber is fine: events are for whoever watches.
        let _ = self.events.send(event);
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Announce { note, reply } => {
                let _ = reply.send(self.announce(note));
            }
            Command::Allow { peer } => self.allow_configured(peer),
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::Metrics { reply } => {
                let _ = reply.send(self.encode_metrics());
            }
            Command::Submit { request, reply } => self.forward(request, reply),
            Command::Partition { partitioned } => self.partition(partitioned),
            Command::JobTexts { job, cids, reply } => self.ask_job_texts(job, cids, reply),
        }
    }

    fn announce(&mut self, note: String) -> Result<bool, MeshError> {
        Checkpoint::open(&note, &self.log_key).map_err(MeshError::Checkpoint)?;
        self.latest = Some(note);
        self.publish_latest()
    }

    fn publish_latest(&mut self) -> Result<bool, MeshError> {
        let Some(note) = self.latest.clone() else { return Ok(false) };
        match self.swarm.behaviour_mut().gossipsub.publish(self.topic.clone(), note.into_bytes()) {
            Ok(_) => Ok(true),
            Err(PublishError::NoPeersSubscribedToTopic) | Err(PublishError::Duplicate) => Ok(false),
            Err(e) => Err(MeshError::Publish(e.to_string())),
        }
    }

    fn on_tick(&mut self) {
        if self.partitioned {
            return;
        }
        for (peer, addr) in &self.bootstrap {
            if self.swarm.is_connected(peer) {
                continue;
            }
            let dial = DialOpts::peer_id(*peer)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(dial) {
                debug!(%peer, %addr, error = %e, "bootstrap dial not started");
            }
        }
        self.refresh_allowed();
        self.sync_next();
        self.fetch_texts();
        if self.adapter_files.due(Instant::now()) {
            self.fetch_adapter_files();
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.metrics.libp2p.record(&event);
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, num_established, endpoint, .. } => {
                self.peers.entry(peer_id).or_default().address = Some(endpoint.get_remote_address().clone());
                if num_established.get() == 1 {
                    info!(peer = %peer_id, "peer connected");
                    self.emit(MeshEvent::Connected { peer: peer_id });
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                info!(peer = %peer_id, "peer disconnected");
                self.peers.remove(&peer_id);
                self.emit(MeshEvent::Disconnected { peer: peer_id });
            }
            SwarmEvent::IncomingConnectionError {
                peer_id: Some(peer),
                error: ListenError::Denied { .. },
                ..
            } if !self.partitioned => self.refused(peer),
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error: DialError::Denied { .. },
                ..
            } if !self.partitioned => self.refused(peer),
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                debug!(?peer_id, %error, "dial failed");
            }
            SwarmEvent::NewListenAddr { address, .. } => info!(%address, "listening"),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => {
                self.metrics.libp2p.record(&event);
                self.on_gossip(event)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Log(event)) => self.on_log(event),
            SwarmEvent::Behaviour(BehaviourEvent::Consistency(event)) => self.on_consistency(event),
            SwarmEvent::Behaviour(BehaviourEvent::Checkpoint(event)) => self.on_step(event),
            SwarmEvent::Behaviour(BehaviourEvent::Text(event)) => self.on_text(event),
            SwarmEvent::Behaviour(BehaviourEvent::Submit(event)) => self.on_submit(event),
            SwarmEvent::Behaviour(BehaviourEvent::Adapter(event)) => self.on_adapter_file(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(event)) => {
                self.metrics.libp2p.record(&event);
                if let identify::Event::Received { peer_id, info, .. } = event {
                    debug!(peer = %peer_id, agent = %info.agent_version, "identified");
                    let sequencer =
                        info.protocols.iter().any(|p| p.as_ref() == crate::protocol::SUBMIT_PROTOCOL);
                    let peer = self.peers.entry(peer_id).or_default();
                    peer.agent = Some(info.agent_version);
                    peer.sequencer = sequencer;
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(event)) => self.metrics.libp2p.record(&event),
            _ => {}
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Subscribed { peer_id, topic } if topic == self.topic.hash() => {
                // A peer (re)joined the commons' topic: tell it the head we vouch for.
                if let Err(e) = self.publish_latest() {
                    warn!(peer = %peer_id, error = %e, "could not re-announce the latest checkpoint");
                }
            }
            gossipsub::Event::Subscribed { topic, .. } if topic == self.cosigning.topic().hash() => {
                self.publish_cosignature();
            }
            gossipsub::Event::Message { propagation_source, message, .. }
                if message.topic == self.cosigning.topic().hash() =>
            {
                let from = message.source.unwrap_or(propagation_source);
                match String::from_utf8(message.data) {
                    Ok(note) => self.on_cosignature(from, note),
                    Err(_) => self.reject(from, "a cosignature that is not UTF-8 text".into()),
                }
            }
            gossipsub::Event::Message { propagation_source, message, .. }
                if message.topic == self.topic.hash() =>
            {
                // Fetch from the author of the announcement (it holds that range); fall back to
                // whoever forwarded it.
                let from =
                    message.source.filter(|p| self.swarm.is_connected(p)).unwrap_or(propagation_source);
                match String::from_utf8(message.data) {
                    Ok(note) => self.on_announcement(from, note),
                    Err(_) => self.reject(from, "an announcement that is not UTF-8 text".into()),
                }
            }
            _ => {}
        }
    }

    fn reject(&mut self, peer: PeerId, reason: String) {
        warn!(%peer, %reason, "dropped what a peer sent");
        self.metrics.ranges_rejected.inc();
        self.emit(MeshEvent::Rejected { peer, reason });
    }

    fn on_served(&mut self, done: Served) {
        let behaviour = self.swarm.behaviour_mut();
        let sent = match done {
            Served::Range(channel, response) => {
                let bytes: usize = response.leaves.iter().map(|l| l.len()).sum();
                self.metrics.bytes_served.inc_by(bytes as u64);
                behaviour.log.send_response(channel, response).is_ok()
            }
            Served::Checkpoint(channel, response) => {
                self.metrics.bytes_served.inc_by(response.note.as_ref().map_or(0, String::len) as u64);
                behaviour.checkpoint.send_response(channel, response).is_ok()
            }
            Served::Proof(channel, response) => {
                self.metrics.bytes_served.inc_by(32 * response.proof.len() as u64);
                behaviour.consistency.send_response(channel, response).is_ok()
            }
            Served::Texts(channel, response) => {
                for text in &response.texts {
                    match &text.content {
                        Some(content) => {
                            self.metrics.texts_served.inc();
                            self.metrics.bytes_served.inc_by(content.len() as u64);
                        }
                        None => {
                            self.metrics.texts_withheld.inc();
                        }
                    }
                }
                behaviour.text.send_response(channel, response).is_ok()
            }
            Served::Submitted(channel, response) => behaviour.submit.send_response(channel, response).is_ok(),
            Served::Opened { id, result } => {
                self.on_opened(id, result);
                true
            }
            Served::Extended { from, note, entries, result } => {
                self.on_extended(from, note, entries, result);
                true
            }
            Served::TextsKept(result) => {
                self.on_texts_kept(result);
                true
            }
            Served::AdapterFile(channel, response) => {
                self.metrics.bytes_served.inc_by(response.content.as_ref().map_or(0, |c| c.len()) as u64);
                behaviour.adapter.send_response(channel, response).is_ok()
            }
            Served::AdapterFileWanted(wanted) => {
                self.on_adapter_file_wanted(wanted);
                true
            }
            Served::AdapterFileKept(kept) => {
                self.on_adapter_file_kept(kept);
                true
            }
            Served::Registered(registered) => {
                for peer in registered {
                    self.allow(peer);
                }
                true
            }
        };
        if !sent {
            debug!("a response found its requester gone");
        }
    }
}
