//! [`Mesh`]: one task that owns a libp2p `Swarm` and the node's side of replication.
//!
//! A sequencer serves its log from substrate-store and announces each checkpoint it signs. A mirror
//! verifies every announced checkpoint with the log key, fetches the entries it lacks over
//! `/substrate/log/1` from whoever announced it, asks it for the consistency proof from the
//! checkpoint it holds (`/substrate/consistency/1`), checks the proof, the range's root and the
//! folded state root ([`MemoryLog::extend`]) and only then keeps it; it then serves and
//! re-announces what it holds and publishes its C2SP cosignature, which every node collects.
//! Everything outside the task talks to it through a cloneable [`MeshHandle`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, SystemTime};

use ed25519_dalek::SigningKey;
use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, PublishError};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, ListenError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, noise, tcp, yamux};
use substrate_core::identity::did_of;
use substrate_store::Reader;
use substrate_tlog::{Checkpoint, Hash, NoteVerifier};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::cosignature;
use crate::mirror::{MemoryLog, MirrorError};
use crate::peer::{PeerError, node_keypair, peer_id_of};
use crate::protocol::{
    ConsistencyRequest, ConsistencyResponse, LogRequest, LogResponse, MAX_RANGE, checkpoint_topic,
    cosignature_topic,
};

/// Connections with nothing in flight for this long are closed. Gossipsub's long-lived streams
/// keep a connection between two subscribed nodes open, so in practice this closes links that
/// only carried a range request; bootstrap peers are redialled anyway (see `redial_interval`).
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);

/// How many refused peers [`MeshStatus::refused`] remembers.
const REFUSED_REMEMBERED: usize = 64;

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
    #[error("bootstrap address {0} does not end in /p2p/<peer id>")]
    BootstrapWithoutPeerId(Multiaddr),
    #[error("the checkpoint is not one the log key signed: {0}")]
    Checkpoint(substrate_tlog::CheckpointError),
    #[error("the checkpoint could not be published: {0}")]
    Publish(String),
    #[error("the mesh task has stopped")]
    Stopped,
}

/// What this node does for the commons.
#[derive(Clone)]
pub enum Role {
    /// Appends to the log (elsewhere) and serves it from the store; announces what it signs.
    Sequencer(Reader),
    /// Follows the log in memory ([`MemoryLog`]) and serves what it holds.
    Mirror,
}

/// How to run one node.
#[derive(Clone)]
pub struct MeshConfig {
    /// The node's own key, registered in the ledger; its libp2p identity uses the same secret.
    pub node_key: SigningKey,
    /// Where to listen. Default `/ip4/127.0.0.1/tcp/0`.
    pub listen: Multiaddr,
    /// The static bootstrap list, the source of truth for whom to dial: `…/p2p/<peer id>` each.
    pub bootstrap: Vec<Multiaddr>,
    /// The commons' log key: it signs checkpoints, and its name is the origin (and the topic).
    pub log: NoteVerifier,
    /// did:keys of the node keys registered in the ledger: only these peers may stay connected.
    pub allowed: Vec<String>,
    pub role: Role,
    /// How often bootstrap peers that are not connected are dialled again, and a stalled sync is
    /// retried. Default 5 s.
    pub redial_interval: Duration,
}

impl MeshConfig {
    pub fn new(node_key: SigningKey, log: NoteVerifier, role: Role) -> MeshConfig {
        MeshConfig {
            node_key,
            listen: Multiaddr::empty()
                .with(Protocol::Ip4(std::net::Ipv4Addr::LOCALHOST))
                .with(Protocol::Tcp(0)),
            bootstrap: Vec::new(),
            log,
            allowed: Vec::new(),
            role,
            redial_interval: Duration::from_secs(5),
        }
    }
}

/// Something that happened on the mesh; each one changes what [`MeshHandle::status`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MeshEvent {
    Connected {
        peer: PeerId,
    },
    Disconnected {
        peer: PeerId,
    },
    /// A peer whose key is not registered tried to connect (or was dialled) and was refused.
    Refused {
        peer: PeerId,
    },
    /// The mirror verified and kept the log up to this checkpoint.
    CaughtUp {
        size: u64,
        root: Hash,
    },
    /// A checkpoint or a range from this peer failed verification and was dropped.
    Rejected {
        peer: PeerId,
        reason: String,
    },
    /// A correctly signed checkpoint disagrees with the log this node holds.
    SplitView {
        peer: PeerId,
        detail: String,
    },
    /// A registered node's cosignature of one of the log's checkpoints arrived and verified.
    Cosigned {
        cosigner: String,
        size: u64,
    },
}

/// The newest verified cosignature heard from one cosigner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosigned {
    /// The cosigner's node key as a did:key (also its key name on the signature line).
    pub cosigner: String,
    pub size: u64,
    pub root: Hash,
    /// When the cosigner signed, in seconds since the epoch.
    pub timestamp: u64,
    /// The checkpoint note with the log's signature and this cosignature.
    pub note: String,
}

/// A snapshot of the node.
#[derive(Clone, Debug)]
pub struct MeshStatus {
    pub peer_id: PeerId,
    pub listen: Vec<Multiaddr>,
    pub connected: BTreeSet<PeerId>,
    /// Peers refused lately (the last 64).
    pub refused: BTreeSet<PeerId>,
    /// A mirror's verified log: its size and root. `None` on the sequencer.
    pub mirrored: Option<(u64, Hash)>,
    /// A mirror's folded state root (equal to the last accepted checkpoint's state line).
    pub state_root: Option<[u8; 32]>,
    /// The newest cosignature heard from each registered node, by did:key.
    pub cosignatures: Vec<Cosigned>,
}

enum Command {
    Announce { note: String, reply: oneshot::Sender<Result<bool, MeshError>> },
    Allow { peer: PeerId },
    Status { reply: oneshot::Sender<MeshStatus> },
}

/// A cloneable way to reach a running node.
#[derive(Clone)]
pub struct MeshHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<MeshEvent>,
    peer_id: PeerId,
    listen: Multiaddr,
}

impl MeshHandle {
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The bound listen address with `/p2p/<peer id>`: what goes in another node's bootstrap list.
    pub fn address(&self) -> Multiaddr {
        self.listen.clone().with_p2p(self.peer_id).unwrap_or_else(|addr| addr)
    }

    /// Events from now on.
    pub fn events(&self) -> broadcast::Receiver<MeshEvent> {
        self.events.subscribe()
    }

    /// Announces a checkpoint note the log key signed. `Ok(false)`: no peer listens yet; the
    /// checkpoint is kept and announced again when one subscribes.
    pub async fn announce(&self, note: String) -> Result<bool, MeshError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Announce { note, reply }).await.map_err(|_| MeshError::Stopped)?;
        answer.await.map_err(|_| MeshError::Stopped)?
    }

    /// Lets the node with this did:key connect (a node registered after start).
    pub async fn allow(&self, did: &str) -> Result<(), MeshError> {
        let peer = peer_id_of(did)?;
        self.commands.send(Command::Allow { peer }).await.map_err(|_| MeshError::Stopped)
    }

    pub async fn status(&self) -> Result<MeshStatus, MeshError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Status { reply }).await.map_err(|_| MeshError::Stopped)?;
        answer.await.map_err(|_| MeshError::Stopped)
    }
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
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
            .map_err(|e| MeshError::Transport(e.to_string()))?
            .with_behaviour(|key| {
                Behaviour::new(key).map_err(Box::<dyn std::error::Error + Send + Sync>::from)
            })
            .map_err(|e| MeshError::Behaviour(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
            .build();

        for did in &config.allowed {
            swarm.behaviour_mut().allowed.allow_peer(peer_id_of(did)?);
        }
        let mut bootstrap = Vec::new();
        for addr in &config.bootstrap {
            let Some(Protocol::P2p(peer)) = addr.iter().last() else {
                return Err(MeshError::BootstrapWithoutPeerId(addr.clone()));
            };
            // Explicit peers always get our messages and are never pruned: the bootstrap list is
            // the whole commons, so no node should have to win a place in someone's mesh.
            swarm.behaviour_mut().gossipsub.add_explicit_peer(&peer);
            bootstrap.push((peer, addr.clone()));
        }
        let topic = IdentTopic::new(checkpoint_topic(config.log.name()));
        swarm.behaviour_mut().gossipsub.subscribe(&topic).map_err(|e| MeshError::Behaviour(e.to_string()))?;
        let cosignatures = IdentTopic::new(cosignature_topic(config.log.name()));
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&cosignatures)
            .map_err(|e| MeshError::Behaviour(e.to_string()))?;
        let mut allowed = BTreeSet::new();
        for did in &config.allowed {
            allowed.insert(peer_id_of(did)?);
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

        let (commands, command_rx) = mpsc::channel(64);
        let (events, _) = broadcast::channel(256);
        let (served_tx, served_rx) = mpsc::channel(64);
        let (shutdown, shutdown_rx) = oneshot::channel();
        let node = Node {
            swarm,
            topic,
            cosignature_topic: cosignatures,
            name: did_of(&config.node_key.verifying_key()),
            node_key: config.node_key,
            allowed,
            cosigned: None,
            heard: BTreeMap::new(),
            log_key: config.log,
            role: match config.role {
                Role::Sequencer(reader) => NodeRole::Sequencer { reader },
                Role::Mirror => NodeRole::Mirror(Box::default()),
            },
            latest: None,
            bootstrap,
            refused: VecDeque::new(),
            events: events.clone(),
            served_tx,
        };
        let task = tokio::spawn(node.run(command_rx, served_rx, shutdown_rx, config.redial_interval));
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

/// A response read off the async threads, ready to go back to the peer that asked.
enum Served {
    Range(ResponseChannel<LogResponse>, LogResponse),
    Proof(ResponseChannel<ConsistencyResponse>, ConsistencyResponse),
}

enum NodeRole {
    Sequencer { reader: Reader },
    Mirror(Box<Follower>),
}

/// A mirror's log and the sync in progress.
#[derive(Default)]
struct Follower {
    log: MemoryLog,
    sync: Option<Fetch>,
    /// The largest verified checkpoint heard and who announced it: the next target.
    best: Option<Announcement>,
}

#[derive(Clone)]
struct Announcement {
    checkpoint: Checkpoint,
    note: String,
    from: PeerId,
}

/// Fetching the range up to one announced checkpoint, then the proof that it extends ours.
struct Fetch {
    target: Announcement,
    fetched: Vec<Vec<u8>>,
    in_flight: InFlight,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum InFlight {
    Range(OutboundRequestId),
    Proof(OutboundRequestId),
}

struct Node {
    swarm: Swarm<Behaviour>,
    topic: IdentTopic,
    cosignature_topic: IdentTopic,
    /// The node key: a mirror cosigns with it, under its did:key as the key name.
    node_key: SigningKey,
    name: String,
    /// Registered nodes (the allow-list): only their cosignatures are collected.
    allowed: BTreeSet<PeerId>,
    /// A mirror's cosignature of its latest accepted checkpoint: published again on subscribe.
    cosigned: Option<String>,
    /// The newest cosignature heard from each cosigner.
    heard: BTreeMap<String, Cosigned>,
    log_key: NoteVerifier,
    role: NodeRole,
    /// The latest checkpoint note this node vouches for: announced again when a peer subscribes.
    latest: Option<String>,
    bootstrap: Vec<(PeerId, Multiaddr)>,
    refused: VecDeque<PeerId>,
    events: broadcast::Sender<MeshEvent>,
    served_tx: mpsc::Sender<Served>,
}

impl Node {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut served: mpsc::Receiver<Served>,
        mut shutdown: oneshot::Receiver<()>,
        redial_interval: Duration,
    ) {
        let mut redial = tokio::time::interval(redial_interval);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some(response) = served.recv() => {
                    let sent = match response {
                        Served::Range(channel, response) => {
                            self.swarm.behaviour_mut().log.send_response(channel, response).is_ok()
                        }
                        Served::Proof(channel, response) => {
                            self.swarm.behaviour_mut().consistency.send_response(channel, response).is_ok()
                        }
                    };
                    if !sent {
                        debug!("a response found its requester gone");
                    }
                }
                _ = redial.tick() => self.on_tick(),
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
            Command::Allow { peer } => {
                self.allowed.insert(peer);
                self.swarm.behaviour_mut().allowed.allow_peer(peer);
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
        }
    }

    fn status(&self) -> MeshStatus {
        MeshStatus {
            peer_id: *self.swarm.local_peer_id(),
            listen: self.swarm.listeners().cloned().collect(),
            connected: self.swarm.connected_peers().copied().collect(),
            refused: self.refused.iter().copied().collect(),
            mirrored: match &self.role {
                NodeRole::Sequencer { .. } => None,
                NodeRole::Mirror(follower) => Some((follower.log.size(), follower.log.root())),
            },
            state_root: match &self.role {
                NodeRole::Sequencer { .. } => None,
                NodeRole::Mirror(follower) => Some(follower.log.state().root()),
            },
            cosignatures: self.heard.values().cloned().collect(),
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
            Err(PublishError::NoPeersSubscribedToTopic) => Ok(false),
            Err(e) => Err(MeshError::Publish(e.to_string())),
        }
    }

    fn on_tick(&mut self) {
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
        self.sync_next();
    }

    fn refused(&mut self, peer: PeerId) {
        warn!(%peer, "refused a peer whose key is not registered in the ledger");
        if !self.refused.contains(&peer) {
            if self.refused.len() == REFUSED_REMEMBERED {
                self.refused.pop_front();
            }
            self.refused.push_back(peer);
        }
        self.emit(MeshEvent::Refused { peer });
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, num_established, .. }
                if num_established.get() == 1 =>
            {
                info!(peer = %peer_id, "peer connected");
                self.emit(MeshEvent::Connected { peer: peer_id });
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established: 0, .. } => {
                info!(peer = %peer_id, "peer disconnected");
                self.emit(MeshEvent::Disconnected { peer: peer_id });
            }
            SwarmEvent::IncomingConnectionError {
                peer_id: Some(peer),
                error: ListenError::Denied { .. },
                ..
            } => self.refused(peer),
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error: DialError::Denied { .. },
                ..
            } => self.refused(peer),
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                debug!(?peer_id, %error, "dial failed");
            }
            SwarmEvent::NewListenAddr { address, .. } => info!(%address, "listening"),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossip(event),
            SwarmEvent::Behaviour(BehaviourEvent::Log(event)) => self.on_log(event),
            SwarmEvent::Behaviour(BehaviourEvent::Consistency(event)) => self.on_consistency(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                debug!(peer = %peer_id, agent = %info.agent_version, "identified");
            }
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
            gossipsub::Event::Subscribed { topic, .. } if topic == self.cosignature_topic.hash() => {
                self.publish_cosignature();
            }
            gossipsub::Event::Message { propagation_source, message, .. }
                if message.topic == self.cosignature_topic.hash() =>
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
        self.emit(MeshEvent::Rejected { peer, reason });
    }

    fn on_announcement(&mut self, from: PeerId, note: String) {
        let checkpoint = match Checkpoint::open(&note, &self.log_key) {
            Ok(checkpoint) => checkpoint,
            Err(e) => return self.reject(from, format!("a checkpoint the log key did not sign: {e}")),
        };
        let NodeRole::Mirror(follower) = &mut self.role else {
            // The sequencer is the source of checkpoints; checking what others announce against
            // its own log is the split-view detector's job (not yet written).
            return;
        };
        let size = checkpoint.size;
        if size <= follower.log.size() {
            if let Err(e) = follower.log.agrees_with(&checkpoint) {
                error!(peer = %from, error = %e, "SPLIT VIEW: a signed checkpoint contradicts the log held");
                self.emit(MeshEvent::SplitView { peer: from, detail: e.to_string() });
            }
            return;
        }
        if let Some(sync) = &follower.sync
            && sync.target.checkpoint.size == size
            && sync.target.checkpoint.root != checkpoint.root
        {
            let detail = format!("two signed checkpoints for size {size} with different roots");
            error!(peer = %from, %detail, "SPLIT VIEW");
            self.emit(MeshEvent::SplitView { peer: from, detail });
            return;
        }
        if follower.best.as_ref().is_none_or(|best| best.checkpoint.size < size) {
            follower.best = Some(Announcement { checkpoint, note, from });
        }
        self.sync_next();
    }

    /// Starts fetching towards the best checkpoint heard, unless a sync runs or nothing is missing.
    fn sync_next(&mut self) {
        let NodeRole::Mirror(follower) = &mut self.role else { return };
        if follower.sync.is_some() {
            return;
        }
        let Some(target) = follower.best.clone().filter(|b| b.checkpoint.size > follower.log.size()) else {
            return;
        };
        let start = follower.log.size();
        let limit = (target.checkpoint.size - start).min(MAX_RANGE);
        debug!(peer = %target.from, start, limit, target = target.checkpoint.size, "fetching a range");
        let in_flight = InFlight::Range(
            self.swarm.behaviour_mut().log.send_request(&target.from, LogRequest { start, limit }),
        );
        follower.sync = Some(Fetch { target, fetched: Vec::new(), in_flight });
    }

    fn on_log(&mut self, event: request_response::Event<LogRequest, LogResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.serve(peer, request, channel)
                }
                request_response::Message::Response { request_id, response } => {
                    self.on_range(peer, request_id, response)
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                let NodeRole::Mirror(follower) = &mut self.role else { return };
                if follower.sync.as_ref().is_some_and(|s| s.in_flight == InFlight::Range(request_id)) {
                    warn!(%peer, %error, "a range request failed; retrying on the next tick");
                    follower.sync = None;
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "a range request from a peer failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// Answers a range request: from the store on a sequencer (off the async threads: SQLite
    /// blocks), from memory on a mirror.
    fn serve(&mut self, peer: PeerId, request: LogRequest, channel: ResponseChannel<LogResponse>) {
        let limit = request.limit.min(MAX_RANGE);
        debug!(%peer, start = request.start, limit, "serving a range");
        match &self.role {
            NodeRole::Sequencer { reader } => {
                let reader = reader.clone();
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
            NodeRole::Mirror(follower) => {
                let leaves = follower
                    .log
                    .leaves(request.start, limit)
                    .iter()
                    .map(|leaf| serde_bytes::ByteBuf::from(leaf.clone()))
                    .collect();
                if self.swarm.behaviour_mut().log.send_response(channel, LogResponse { leaves }).is_err() {
                    debug!(%peer, "a range response found its requester gone");
                }
            }
        }
    }

    fn on_range(&mut self, peer: PeerId, request_id: OutboundRequestId, response: LogResponse) {
        let NodeRole::Mirror(follower) = &mut self.role else { return };
        let Some(mut sync) = follower.sync.take_if(|s| s.in_flight == InFlight::Range(request_id)) else {
            return;
        };
        let held = follower.log.size() + sync.fetched.len() as u64;
        let wanted = (sync.target.checkpoint.size - held).min(MAX_RANGE);
        let got = response.leaves.len() as u64;
        if got == 0 || got > wanted {
            return self.reject(peer, format!("asked for {wanted} entries from {held}, got {got}"));
        }
        sync.fetched.extend(response.leaves.into_iter().map(serde_bytes::ByteBuf::into_vec));
        if held + got < sync.target.checkpoint.size {
            let start = held + got;
            let limit = (sync.target.checkpoint.size - start).min(MAX_RANGE);
            sync.in_flight = InFlight::Range(
                self.swarm.behaviour_mut().log.send_request(&peer, LogRequest { start, limit }),
            );
            follower.sync = Some(sync);
            return;
        }
        // The whole range is here: ask the same peer to prove the new checkpoint extends ours.
        let (old, new) = (follower.log.size(), sync.target.checkpoint.size);
        if old == 0 {
            // Every tree extends the empty one; the proof is empty by definition.
            return self.finish(peer, sync, Vec::new());
        }
        sync.in_flight = InFlight::Proof(
            self.swarm.behaviour_mut().consistency.send_request(&peer, ConsistencyRequest { old, new }),
        );
        follower.sync = Some(sync);
    }

    fn on_consistency(&mut self, event: request_response::Event<ConsistencyRequest, ConsistencyResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    self.serve_proof(peer, request, channel)
                }
                request_response::Message::Response { request_id, response } => {
                    let NodeRole::Mirror(follower) = &mut self.role else { return };
                    let Some(sync) = follower.sync.take_if(|s| s.in_flight == InFlight::Proof(request_id))
                    else {
                        return;
                    };
                    if let Some(error) = response.error {
                        let detail = MirrorError::NoProof {
                            old: follower.log.size(),
                            new: sync.target.checkpoint.size,
                            detail: error,
                        };
                        follower.best = None;
                        return self.reject(peer, detail.to_string());
                    }
                    let proof =
                        response.proof.iter().map(|h| h.as_slice().try_into().unwrap_or([0; 32])).collect();
                    self.finish(peer, sync, proof);
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                let NodeRole::Mirror(follower) = &mut self.role else { return };
                if follower.sync.as_ref().is_some_and(|s| s.in_flight == InFlight::Proof(request_id)) {
                    warn!(%peer, %error, "a consistency request failed; retrying on the next tick");
                    follower.sync = None;
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, "a consistency request from a peer failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// Answers a consistency request: from the store on a sequencer, from the held tree on a mirror.
    fn serve_proof(
        &mut self,
        peer: PeerId,
        request: ConsistencyRequest,
        channel: ResponseChannel<ConsistencyResponse>,
    ) {
        debug!(%peer, old = request.old, new = request.new, "serving a consistency proof");
        let hashes =
            |hashes: Vec<Hash>| hashes.into_iter().map(|h| serde_bytes::ByteBuf::from(h.to_vec())).collect();
        match &self.role {
            NodeRole::Sequencer { reader } => {
                let reader = reader.clone();
                let served = self.served_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let response = match reader.consistency(request.old, request.new) {
                        Ok(proof) => {
                            let decoded: Result<Vec<Hash>, _> = proof
                                .proof
                                .iter()
                                .map(|b64| {
                                    use base64::Engine;
                                    base64::engine::general_purpose::STANDARD
                                        .decode(b64)
                                        .ok()
                                        .and_then(|bytes| Hash::try_from(bytes).ok())
                                        .ok_or("a stored proof hash is not 32 bytes of base64")
                                })
                                .collect();
                            match decoded {
                                Ok(proof) => ConsistencyResponse { proof: hashes(proof), error: None },
                                Err(e) => {
                                    ConsistencyResponse { proof: Vec::new(), error: Some(e.to_owned()) }
                                }
                            }
                        }
                        Err(e) => ConsistencyResponse { proof: Vec::new(), error: Some(e.to_string()) },
                    };
                    let _ = served.blocking_send(Served::Proof(channel, response));
                });
            }
            NodeRole::Mirror(follower) => {
                let response = match follower.log.consistency_proof(request.old, request.new) {
                    Ok(proof) => ConsistencyResponse { proof: hashes(proof), error: None },
                    Err(e) => ConsistencyResponse { proof: Vec::new(), error: Some(e.to_string()) },
                };
                if self.swarm.behaviour_mut().consistency.send_response(channel, response).is_err() {
                    debug!(%peer, "a consistency response found its requester gone");
                }
            }
        }
    }

    /// Checks a fetched range with its proof and keeps it, or drops it and says exactly why.
    fn finish(&mut self, peer: PeerId, sync: Fetch, proof: Vec<Hash>) {
        let NodeRole::Mirror(follower) = &mut self.role else { return };
        let Fetch { target, fetched, .. } = sync;
        match follower.log.extend(&target.checkpoint, &target.note, fetched, &proof) {
            Ok(()) => {
                let (size, root) = (follower.log.size(), follower.log.root());
                info!(size, from = %peer, "mirror verified and kept a checkpoint");
                self.latest = Some(target.note.clone());
                self.emit(MeshEvent::CaughtUp { size, root });
                // Pass it on: peers that missed the sequencer's announcement can fetch from us.
                if let Err(e) = self.publish_latest() {
                    debug!(error = %e, "could not re-announce");
                }
                self.cosign(&target.note);
            }
            Err(e @ MirrorError::Inconsistent { .. }) => {
                // A signed checkpoint that does not extend the one we hold is a fork, unless the
                // peer sent a bad proof; either way it is loud.
                error!(%peer, error = %e, "a checkpoint is not consistent with the one held");
                follower.best = None;
                self.emit(MeshEvent::Rejected { peer, reason: e.to_string() });
            }
            Err(e) => {
                error!(%peer, error = %e, "a fetched range does not match its signed checkpoint");
                follower.best = None;
                self.emit(MeshEvent::Rejected { peer, reason: e.to_string() });
            }
        }
        self.sync_next();
    }

    /// Cosigns a checkpoint this mirror has just verified and publishes the cosignature.
    fn cosign(&mut self, note: &str) {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        match cosignature::cosign(note, &self.name, &self.node_key, now) {
            Ok(cosigned) => {
                self.cosigned = Some(cosigned.clone());
                // Our own cosignature counts among those heard.
                self.on_cosignature(*self.swarm.local_peer_id(), cosigned);
                self.publish_cosignature();
            }
            Err(e) => warn!(error = %e, "could not cosign a verified checkpoint"),
        }
    }

    fn publish_cosignature(&mut self) {
        let Some(cosigned) = self.cosigned.clone() else { return };
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.cosignature_topic.clone(), cosigned.into_bytes())
        {
            Ok(_) | Err(PublishError::NoPeersSubscribedToTopic) | Err(PublishError::Duplicate) => {}
            Err(e) => warn!(error = %e, "could not publish a cosignature"),
        }
    }

    /// Keeps every verified cosignature by a registered node on a checkpoint the log key signed.
    fn on_cosignature(&mut self, from: PeerId, note: String) {
        let checkpoint = match Checkpoint::open(&note, &self.log_key) {
            Ok(checkpoint) => checkpoint,
            Err(e) => {
                return self.reject(from, format!("a cosigned checkpoint the log key did not sign: {e}"));
            }
        };
        for name in cosignature::signers(&note) {
            if name == self.log_key.name() {
                continue;
            }
            let registered = peer_id_of(&name)
                .is_ok_and(|peer| self.allowed.contains(&peer) || peer == *self.swarm.local_peer_id());
            if !registered {
                self.reject(from, format!("a cosignature by {name}, which is not a registered node"));
                continue;
            }
            let cosigned = match cosignature::verify(&note, &name) {
                Ok(cosigned) => cosigned,
                Err(e) => {
                    self.reject(from, e.to_string());
                    continue;
                }
            };
            if self.heard.get(&name).is_some_and(|held| held.size > checkpoint.size) {
                continue;
            }
            info!(cosigner = %name, size = checkpoint.size, "a checkpoint was cosigned");
            self.heard.insert(
                name.clone(),
                Cosigned {
                    cosigner: name.clone(),
                    size: checkpoint.size,
                    root: checkpoint.root,
                    timestamp: cosigned.timestamp,
                    note: note.clone(),
                },
            );
            self.emit(MeshEvent::Cosigned { cosigner: name, size: checkpoint.size });
        }
    }
}
