//! [`Mesh`]: one task that owns a libp2p `Swarm` and the node's side of replication.
//!
//! A sequencer serves its log from substrate-store, announces each checkpoint its sequencer signs,
//! takes events other nodes forward, and serves texts that consent lets leave. A mirror verifies
//! every announced checkpoint with the log key, fetches the entries it lacks over
//! `/substrate/log/1` from whoever announced it, asks it for the consistency proof from the
//! checkpoint it holds (`/substrate/consistency/1`), and hands both to its own ledger
//! ([`Ledger::extend`]), which keeps the range only if every check passes. It then serves and
//! re-announces what it holds, publishes its C2SP cosignature, and fetches the texts it may hold
//! and the files of the adapters the log publishes (`node/adapters.rs`).
//! Everything outside the task talks to it through a cloneable [`MeshHandle`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use ed25519_dalek::SigningKey;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::upgrade;
use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, PublishError};
use libp2p::metrics::{Recorder, Registry};
use libp2p::multiaddr::Protocol;
use libp2p::pnet::PnetConfig;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{DialError, ListenError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, Transport, identify, noise, tcp, yamux};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use substrate_core::event::Event;
use substrate_core::identity::did_of;
use substrate_core::{Cid, SignedEvent};
use substrate_store::follow::{FollowError, replicates};
use substrate_store::{
    Cosigned, Extended, Forward, Ledger, Reader, SequencerHandle, Submission, SubmitError, Submitted,
};
use substrate_tlog::cosignature;
use substrate_tlog::{Checkpoint, Hash, NoteVerifier, Tree};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::SwarmKey;
use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::peer::{PeerError, did_of_peer, node_keypair, peer_id_of};
use crate::protocol::{
    AdapterFileResponse, CheckpointRequest, CheckpointResponse, ConsistencyRequest, ConsistencyResponse,
    LogRequest, LogResponse, MAX_RANGE, MAX_TEXTS, SubmitRequest, SubmitResponse, Text, TextRequest,
    TextResponse, checkpoint_topic, cosignature_topic,
};

mod adapters;
mod forwarding;
mod texts;

/// Connections with nothing in flight for this long are closed. Gossipsub's long-lived streams
/// keep a connection between two subscribed nodes open, so in practice this closes links that
/// only carried a range request; bootstrap peers are redialled anyway (see `redial_interval`).
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);

/// How many refused peers [`MeshStatus::refused`] remembers.
const REFUSED_REMEMBERED: usize = 64;

/// How often the allow-list is recomputed from the node registrations in the log: registrations
/// are rare, and reading governance records is not free under a stream of deposits.
const ALLOW_REFRESH: Duration = Duration::from_secs(2);

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
    #[error("waited {waited:?} in vain; the last status was {last}")]
    TimedOut { waited: Duration, last: String },
}

/// What this node does for the commons.
pub enum Role {
    /// Holds the log key: serves the log from the store and announces what it signs. With a
    /// sequencer handle it announces every checkpoint by itself and takes forwarded events.
    Sequencer { reader: Reader, sequencer: Option<SequencerHandle> },
    /// Follows the log into its own ledger and serves what it holds.
    Mirror { ledger: Box<Ledger>, reader: Reader },
}

/// How to run one node.
pub struct MeshConfig {
    /// The node's own key, registered in the ledger; its libp2p identity uses the same secret.
    pub node_key: SigningKey,
    /// Where to listen. Default `/ip4/127.0.0.1/tcp/0`.
    pub listen: Multiaddr,
    /// The static bootstrap list, the source of truth for whom to dial: `…/p2p/<peer id>` each.
    /// Bootstrap peers are trusted to connect before the log says they are registered (a fresh
    /// mirror knows nobody yet).
    pub bootstrap: Vec<Multiaddr>,
    /// The commons' log key: it signs checkpoints, and its name is the origin (and the topic).
    pub log: NoteVerifier,
    /// did:keys of node keys to allow besides those the log registers.
    pub allowed: Vec<String>,
    pub role: Role,
    /// How often bootstrap peers that are not connected are dialled again, and a stalled sync is
    /// retried. Default 5 s.
    pub redial_interval: Duration,
    /// The commons' private-network key, if it uses one: then only nodes holding it can connect
    /// at all, registered or not. Default none.
    pub private_network: Option<SwarmKey>,
    /// A mirror far behind the head catches up in steps of about this many entries, each up to a
    /// checkpoint the log key signed, verified and kept in one commit: a restart resumes from
    /// the last step, and memory stays bounded. Default 4096.
    pub sync_step: u64,
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
            private_network: None,
            sync_step: 4096,
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
    /// The mirror fetched and kept this many texts.
    TextsKept {
        count: usize,
    },
    /// The mirror fetched file `name` of the adapter published at log index `adapter`, and its
    /// registry accepted it.
    AdapterFileKept {
        adapter: u64,
        name: String,
    },
}

/// What this node knows of one connected peer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerView {
    pub peer_id: String,
    /// The peer's node key, when its identity is an Ed25519 key.
    pub did: Option<String>,
    /// `sequencer` or `mirror`, from identify; `None` until identify has run.
    pub role: Option<String>,
    pub agent: Option<String>,
    pub address: Option<String>,
    /// The largest checkpoint the peer announced or cosigned.
    pub height: Option<u64>,
    /// How many entries it is behind the largest checkpoint this node knows of.
    pub lag: Option<u64>,
}

/// A snapshot of the node.
#[derive(Clone, Debug)]
pub struct MeshStatus {
    pub peer_id: PeerId,
    pub role: &'static str,
    pub listen: Vec<Multiaddr>,
    pub connected: BTreeSet<PeerId>,
    /// Peers refused lately (the last 64).
    pub refused: BTreeSet<PeerId>,
    /// The log this node holds: its size and root.
    pub held: (u64, Hash),
    /// The largest checkpoint this node has heard of, held or not.
    pub head: u64,
    /// The newest cosignature heard from each registered node, by did:key.
    pub cosignatures: Vec<Cosigned>,
    pub peers: Vec<PeerView>,
}

type SubmitReply = oneshot::Sender<Result<Submitted, SubmitError>>;

enum Command {
    Announce { note: String, reply: oneshot::Sender<Result<bool, MeshError>> },
    Allow { peer: PeerId },
    Status { reply: oneshot::Sender<MeshStatus> },
    Metrics { reply: oneshot::Sender<String> },
    Submit { request: SubmitRequest, reply: SubmitReply },
    Partition { partitioned: bool },
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

    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, MeshError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).await.map_err(|_| MeshError::Stopped)?;
        answer.await.map_err(|_| MeshError::Stopped)
    }

    /// Announces a checkpoint note the log key signed. `Ok(false)`: no peer listens yet; the
    /// checkpoint is kept and announced again when one subscribes.
    pub async fn announce(&self, note: String) -> Result<bool, MeshError> {
        self.ask(|reply| Command::Announce { note, reply }).await?
    }

    /// Lets the node with this did:key connect (a node registered after start).
    pub async fn allow(&self, did: &str) -> Result<(), MeshError> {
        let peer = peer_id_of(did)?;
        self.commands.send(Command::Allow { peer }).await.map_err(|_| MeshError::Stopped)
    }

    pub async fn status(&self) -> Result<MeshStatus, MeshError> {
        self.ask(|reply| Command::Status { reply }).await
    }

    /// Waits until the node's status satisfies `done`, looking again after each of its events
    /// (a lagged receiver counts as one), for at most `patience`.
    pub async fn until(
        &self,
        patience: Duration,
        done: impl Fn(&MeshStatus) -> bool,
    ) -> Result<MeshStatus, MeshError> {
        let mut events = self.events();
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let status = self.status().await?;
            if done(&status) {
                return Ok(status);
            }
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => return Err(MeshError::TimedOut { waited: patience, last: format!("{status:?}") }),
                Ok(Err(broadcast::error::RecvError::Closed)) => return Err(MeshError::Stopped),
                Ok(_) => {}
            }
        }
    }

    /// libp2p's, gossipsub's and the node's own metrics in the Prometheus text format.
    pub async fn metrics(&self) -> Result<String, MeshError> {
        self.ask(|reply| Command::Metrics { reply }).await
    }

    /// Cuts this node off (every connection closed, none accepted or dialled) until called again
    /// with `false`: what a network partition looks like from inside.
    pub async fn partition(&self, partitioned: bool) -> Result<(), MeshError> {
        self.commands.send(Command::Partition { partitioned }).await.map_err(|_| MeshError::Stopped)
    }
}

impl Forward for MeshHandle {
    fn forward(
        &self,
        submission: Submission,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Submitted, SubmitError>> + Send>> {
        let commands = self.commands.clone();
        Box::pin(async move {
            let request = SubmitRequest {
                envelope: serde_bytes::ByteBuf::from(submission.event.envelope.to_bytes()),
                content: submission.content.map(serde_bytes::ByteBuf::from),
            };
            let (reply, answer) = oneshot::channel();
            commands.send(Command::Submit { request, reply }).await.map_err(|_| SubmitError::Stopped)?;
            answer.await.map_err(|_| SubmitError::Stopped)?
        })
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

/// The node's own metrics, registered beside libp2p's.
struct Metrics {
    registry: Registry,
    libp2p: libp2p::metrics::Metrics,
    log_height: Gauge,
    head: Gauge,
    lag: Gauge,
    entries_verified: Counter,
    ranges_rejected: Counter,
    checkpoints_cosigned: Counter,
    cosignatures_heard: Counter,
    bytes_served: Counter,
    texts_served: Counter,
    texts_withheld: Counter,
    texts_kept: Counter,
    adapter_files_kept: Counter,
    forwarded: Counter,
}

impl Metrics {
    fn register(mut registry: Registry) -> Metrics {
        let libp2p = libp2p::metrics::Metrics::new(&mut registry);
        let ours = registry.sub_registry_with_prefix("substrate");
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let counter = Counter::default();
            registry.register(name, help, counter.clone());
            counter
        };
        Metrics {
            log_height: gauge(ours, "log_height", "Entries in the log this node holds"),
            head: gauge(ours, "log_head", "Largest checkpoint size this node has heard of"),
            lag: gauge(
                ours,
                "replication_lag",
                "Entries between the largest checkpoint heard and the log held",
            ),
            entries_verified: counter(ours, "entries_verified", "Entries a mirror verified and kept"),
            ranges_rejected: counter(
                ours,
                "ranges_rejected",
                "Ranges or checkpoints refused by verification",
            ),
            checkpoints_cosigned: counter(ours, "checkpoints_cosigned", "Checkpoints this node cosigned"),
            cosignatures_heard: counter(
                ours,
                "cosignatures_verified",
                "Cosignatures by registered nodes verified",
            ),
            bytes_served: counter(
                ours,
                "bytes_served",
                "Bytes of leaves, proofs, texts and adapter files served to peers",
            ),
            texts_served: counter(ours, "texts_served", "Texts sent to peers"),
            texts_withheld: counter(
                ours,
                "texts_withheld",
                "Texts asked for and not sent (consent, withdrawal, absent)",
            ),
            texts_kept: counter(ours, "texts_kept", "Texts a mirror fetched and kept"),
            adapter_files_kept: counter(
                ours,
                "adapter_files_kept",
                "Adapter files a mirror fetched and its registry accepted",
            ),
            forwarded: counter(ours, "submissions_forwarded", "Events this node forwarded to the sequencer"),
            libp2p,
            registry,
        }
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
                let wanted = ledger.wanted_texts().into_iter().collect();
                let adapter_files = adapters::AdapterFiles::new(ledger.dir().clone());
                let follower = Follower {
                    ledger: Arc::new(Mutex::new(*ledger)),
                    tree,
                    sync: None,
                    best: None,
                    wanted,
                    texts_in_flight: None,
                    adapter_files,
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
        let node = Node {
            swarm,
            topic,
            cosignature_topic: cosignatures,
            name: did_of(&config.node_key.verifying_key()),
            node_key: config.node_key,
            configured: allowed.clone(),
            allowed,
            cosigned: None,
            heard,
            log_key: config.log,
            reader,
            role,
            latest: None,
            bootstrap,
            refused: VecDeque::new(),
            events: events.clone(),
            served_tx,
            peers: BTreeMap::new(),
            forwards: HashMap::new(),
            metrics: Metrics::register(registry),
            partitioned: false,
            allow_refreshed: None,
            sync_step: config.sync_step.max(1),
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

/// A mirror's ledger and the sync in progress.
struct Follower {
    ledger: Arc<Mutex<Ledger>>,
    /// The ledger's tree, shared: read here for the held size and split-view checks.
    tree: Arc<RwLock<Tree>>,
    sync: Option<Fetch>,
    /// The largest verified checkpoint heard and who announced it: the next target.
    best: Option<Announcement>,
    /// Texts to fetch (CIDs).
    wanted: VecDeque<Cid>,
    /// The text request in flight and the CIDs it asked for (asked again if it fails).
    texts_in_flight: Option<(OutboundRequestId, Vec<Cid>)>,
    /// Fetching the files of published adapters.
    adapter_files: adapters::AdapterFiles,
}

impl Follower {
    fn held(&self) -> (u64, Hash) {
        let tree = self.tree.read().unwrap_or_else(|e| e.into_inner());
        (tree.size(), tree.root())
    }
}

#[derive(Clone)]
struct Announcement {
    checkpoint: Checkpoint,
    note: String,
    from: PeerId,
}

/// Fetching the range up to one announced checkpoint, then the proof that it extends ours, then
/// the ledger's checks.
struct Fetch {
    target: Announcement,
    fetched: Vec<Vec<u8>>,
    in_flight: InFlight,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum InFlight {
    /// Asking for a signed checkpoint about one step ahead, to fetch and keep up to it first.
    Step(OutboundRequestId),
    Range(OutboundRequestId),
    Proof(OutboundRequestId),
    Verifying,
}

/// What this node knows of a connected peer beyond libp2p's own books.
#[derive(Default)]
struct Peer {
    agent: Option<String>,
    address: Option<Multiaddr>,
    height: Option<u64>,
    sequencer: bool,
}

struct Node {
    swarm: Swarm<Behaviour>,
    topic: IdentTopic,
    cosignature_topic: IdentTopic,
    /// The node key: a mirror cosigns with it, under its did:key as the key name.
    node_key: SigningKey,
    name: String,
    /// Peers allowed by configuration (bootstrap list and `MeshConfig::allowed`).
    configured: BTreeSet<PeerId>,
    /// Every peer allowed: the configured ones and the nodes the log registers.
    allowed: BTreeSet<PeerId>,
    /// A mirror's cosignature of its latest accepted checkpoint: published again on subscribe.
    cosigned: Option<String>,
    /// The newest cosignature heard from each cosigner.
    heard: BTreeMap<String, Cosigned>,
    log_key: NoteVerifier,
    reader: Reader,
    role: NodeRole,
    /// The latest checkpoint note this node vouches for: announced again when a peer subscribes.
    latest: Option<String>,
    bootstrap: Vec<(PeerId, Multiaddr)>,
    refused: VecDeque<PeerId>,
    events: broadcast::Sender<MeshEvent>,
    served_tx: mpsc::Sender<Served>,
    peers: BTreeMap<PeerId, Peer>,
    /// Submissions forwarded to the sequencer, waiting for its answer.
    forwards: HashMap<OutboundRequestId, SubmitReply>,
    metrics: Metrics,
    partitioned: bool,
    allow_refreshed: Option<Instant>,
    sync_step: u64,
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
                        }
                        // The sequencer stopped; the node keeps serving what is stored.
                        Err(_) => head = None,
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
                self.configured.insert(peer);
                self.allow(peer);
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::Metrics { reply } => {
                let _ = reply.send(self.encode_metrics());
            }
            Command::Submit { request, reply } => self.forward(request, reply),
            Command::Partition { partitioned } => {
                self.partitioned = partitioned;
                if partitioned {
                    warn!("partitioned: closing every connection and accepting none");
                    for peer in self.allowed.clone() {
                        self.swarm.behaviour_mut().allowed.disallow_peer(peer);
                    }
                } else {
                    info!("partition healed");
                    for peer in self.allowed.clone() {
                        self.swarm.behaviour_mut().allowed.allow_peer(peer);
                    }
                    self.on_tick();
                }
            }
        }
    }

    fn allow(&mut self, peer: PeerId) {
        if self.allowed.insert(peer) {
            // Every registered node is an explicit gossipsub peer, as the bootstrap peers are: in
            // a commons of a few known nodes nobody should have to win a mesh slot, and a node
            // never GRAFTs a peer that treats it as explicit (which would refuse, and log it).
            self.swarm.behaviour_mut().gossipsub.add_explicit_peer(&peer);
            if !self.partitioned {
                self.swarm.behaviour_mut().allowed.allow_peer(peer);
            }
        }
    }

    fn held(&self) -> (u64, Hash) {
        match &self.role {
            NodeRole::Mirror(follower) => follower.held(),
            NodeRole::Sequencer { .. } => self.reader.tree_head(),
        }
    }

    /// The largest checkpoint this node knows of: its own, announced ones, peers' heights.
    fn head(&self) -> u64 {
        let announced = match &self.role {
            NodeRole::Mirror(follower) => follower.best.as_ref().map_or(0, |b| b.checkpoint.size),
            NodeRole::Sequencer { .. } => 0,
        };
        let peers = self.peers.values().filter_map(|p| p.height).max().unwrap_or(0);
        self.held().0.max(announced).max(peers)
    }

    fn status(&self) -> MeshStatus {
        let head = self.head();
        MeshStatus {
            peer_id: *self.swarm.local_peer_id(),
            role: match self.role {
                NodeRole::Sequencer { .. } => "sequencer",
                NodeRole::Mirror(_) => "mirror",
            },
            listen: self.swarm.listeners().cloned().collect(),
            connected: self.swarm.connected_peers().copied().collect(),
            refused: self.refused.iter().copied().collect(),
            held: self.held(),
            head,
            cosignatures: self.heard.values().cloned().collect(),
            peers: self
                .swarm
                .connected_peers()
                .map(|id| {
                    let peer = self.peers.get(id);
                    PeerView {
                        peer_id: id.to_string(),
                        did: did_of_peer(id),
                        role: peer.and_then(|p| p.agent.as_deref()?.split(' ').nth(1).map(str::to_owned)),
                        agent: peer.and_then(|p| p.agent.clone()),
                        address: peer.and_then(|p| p.address.as_ref().map(Multiaddr::to_string)),
                        height: peer.and_then(|p| p.height),
                        lag: peer.and_then(|p| p.height).map(|h| head.saturating_sub(h)),
                    }
                })
                .collect(),
        }
    }

    fn encode_metrics(&self) -> String {
        let (held, _) = self.held();
        let head = self.head();
        self.metrics.log_height.set(held as i64);
        self.metrics.head.set(head as i64);
        self.metrics.lag.set(head.saturating_sub(held) as i64);
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.metrics.registry) {
            warn!(error = %e, "could not encode the metrics");
        }
        text
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
        if let NodeRole::Mirror(follower) = &self.role
            && follower.adapter_files.due(Instant::now())
        {
            self.fetch_adapter_files();
        }
    }

    /// Recomputes the allow-list from the node registrations in the log held (off the task).
    fn refresh_allowed(&mut self) {
        if self.allow_refreshed.is_some_and(|at| at.elapsed() < ALLOW_REFRESH) {
            return;
        }
        self.allow_refreshed = Some(Instant::now());
        let reader = self.reader.clone();
        let served = self.served_tx.clone();
        tokio::task::spawn_blocking(move || {
            let registered = match reader.governance() {
                Ok(governance) => governance.nodes().filter_map(|n| peer_id_of(&n.node).ok()).collect(),
                // An empty log has no governance yet.
                Err(_) => Vec::new(),
            };
            let _ = served.blocking_send(Served::Registered(registered));
        });
    }

    fn refused(&mut self, peer: PeerId) {
        warn!(%peer, "refused a peer whose key is not registered in the ledger");
        // It may have been registered since the last look: its next dial gets in if so.
        self.refresh_allowed();
        if !self.refused.contains(&peer) {
            if self.refused.len() == REFUSED_REMEMBERED {
                self.refused.pop_front();
            }
            self.refused.push_back(peer);
        }
        self.emit(MeshEvent::Refused { peer });
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
        self.metrics.ranges_rejected.inc();
        self.emit(MeshEvent::Rejected { peer, reason });
    }

    fn on_announcement(&mut self, from: PeerId, note: String) {
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
    /// Far behind, it first asks for a signed checkpoint about one step ahead and goes there.
    fn sync_next(&mut self) {
        if self.partitioned {
            return;
        }
        let step = self.sync_step;
        let NodeRole::Mirror(follower) = &mut self.role else { return };
        if follower.sync.is_some() {
            return;
        }
        let (held, _) = follower.held();
        let Some(target) = follower.best.clone().filter(|b| b.checkpoint.size > held) else {
            return;
        };
        if target.checkpoint.size - held > step {
            let request = CheckpointRequest { above: held, at_most: held + step };
            let id = self.swarm.behaviour_mut().checkpoint.send_request(&target.from, request);
            follower.sync = Some(Fetch { target, fetched: Vec::new(), in_flight: InFlight::Step(id) });
            return;
        }
        self.fetch_range(target);
    }

    /// Asks for the first range towards `target`.
    fn fetch_range(&mut self, target: Announcement) {
        let NodeRole::Mirror(follower) = &mut self.role else { return };
        let (held, _) = follower.held();
        let limit = (target.checkpoint.size - held).min(MAX_RANGE);
        debug!(peer = %target.from, start = held, limit, target = target.checkpoint.size, "fetching a range");
        let in_flight = InFlight::Range(
            self.swarm.behaviour_mut().log.send_request(&target.from, LogRequest { start: held, limit }),
        );
        follower.sync = Some(Fetch { target, fetched: Vec::new(), in_flight });
    }

    fn on_step(&mut self, event: request_response::Event<CheckpointRequest, CheckpointResponse>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => {
                    let reader = self.reader.clone();
                    let served = self.served_tx.clone();
                    tokio::task::spawn_blocking(move || {
                        let note =
                            reader.checkpoint_between(request.above, request.at_most).unwrap_or_else(|e| {
                                warn!(%peer, error = %e, "could not read a checkpoint");
                                None
                            });
                        let response = CheckpointResponse { note: note.map(|(_, note)| note) };
                        let _ = served.blocking_send(Served::Checkpoint(channel, response));
                    });
                }
                request_response::Message::Response { request_id, response } => {
                    let NodeRole::Mirror(follower) = &mut self.role else { return };
                    let Some(sync) = follower.sync.take_if(|s| s.in_flight == InFlight::Step(request_id))
                    else {
                        return;
                    };
                    let (held, _) = follower.held();
                    let Some(note) = response.note else {
                        // No checkpoint in between: go to the head in one step.
                        return self.fetch_range(sync.target);
                    };
                    let step = match Checkpoint::open(&note, &self.log_key) {
                        Ok(step) if step.size > held && step.size < sync.target.checkpoint.size => step,
                        Ok(step) => {
                            return self.reject(
                                peer,
                                format!(
                                    "asked for a checkpoint between {held} and {}, got size {}",
                                    sync.target.checkpoint.size, step.size
                                ),
                            );
                        }
                        Err(e) => {
                            return self
                                .reject(peer, format!("a step checkpoint the log key did not sign: {e}"));
                        }
                    };
                    self.fetch_range(Announcement { checkpoint: step, note, from: peer });
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

    fn on_log(&mut self, event: request_response::Event<LogRequest, LogResponse>) {
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

    fn sync_failed(&mut self, in_flight: InFlight, peer: PeerId, error: &request_response::OutboundFailure) {
        let NodeRole::Mirror(follower) = &mut self.role else { return };
        if follower.sync.as_ref().is_some_and(|s| s.in_flight == in_flight) {
            warn!(%peer, %error, "a request of the sync failed; retrying on the next tick");
            follower.sync = None;
        }
    }

    /// Answers a range request from the store, off the async threads (SQLite blocks).
    fn serve_range(&mut self, peer: PeerId, request: LogRequest, channel: ResponseChannel<LogResponse>) {
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
            Served::Extended { from, note, entries, result } => {
                self.on_extended(from, note, entries, result);
                true
            }
            Served::TextsKept(result) => {
                if let NodeRole::Mirror(follower) = &mut self.role {
                    follower.texts_in_flight = None;
                }
                match result {
                    Ok(count) => {
                        self.metrics.texts_kept.inc_by(count as u64);
                        self.emit(MeshEvent::TextsKept { count });
                    }
                    Err(e) => warn!(error = %e, "could not keep fetched texts; they are fetched again"),
                }
                self.fetch_texts();
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

    fn on_range(&mut self, peer: PeerId, request_id: OutboundRequestId, response: LogResponse) {
        let NodeRole::Mirror(follower) = &mut self.role else { return };
        let Some(mut sync) = follower.sync.take_if(|s| s.in_flight == InFlight::Range(request_id)) else {
            return;
        };
        let (held, _) = follower.held();
        let have = held + sync.fetched.len() as u64;
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
            follower.sync = Some(sync);
            return;
        }
        // The whole range is here: ask the same peer to prove the new checkpoint extends ours.
        let new = sync.target.checkpoint.size;
        if held == 0 {
            // Every tree extends the empty one; the proof is empty by definition.
            return self.verify(peer, sync, Vec::new());
        }
        sync.in_flight = InFlight::Proof(
            self.swarm.behaviour_mut().consistency.send_request(&peer, ConsistencyRequest { old: held, new }),
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
                        let (old, new) = (follower.held().0, sync.target.checkpoint.size);
                        follower.best = None;
                        return self
                            .reject(peer, format!("no consistency proof from size {old} to {new}: {error}"));
                    }
                    let proof =
                        response.proof.iter().map(|h| h.as_slice().try_into().unwrap_or([0; 32])).collect();
                    self.verify(peer, sync, proof);
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

    /// Answers a consistency request from the store.
    fn serve_proof(
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

    /// Hands a fetched range and its proof to the ledger, off the async threads.
    fn verify(&mut self, peer: PeerId, mut sync: Fetch, proof: Vec<Hash>) {
        let NodeRole::Mirror(follower) = &mut self.role else { return };
        let ledger = Arc::clone(&follower.ledger);
        let note = sync.target.note.clone();
        let leaves = std::mem::take(&mut sync.fetched);
        let entries = leaves.len() as u64;
        sync.in_flight = InFlight::Verifying;
        follower.sync = Some(sync);
        let served = self.served_tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = ledger.lock().unwrap_or_else(|e| e.into_inner()).extend(&note, leaves, &proof);
            let _ = served.blocking_send(Served::Extended { from: peer, note, entries, result });
        });
    }

    /// The ledger's verdict on a range: keep going, or say exactly why it was refused.
    fn on_extended(
        &mut self,
        peer: PeerId,
        note: String,
        entries: u64,
        result: Result<Extended, FollowError>,
    ) {
        let NodeRole::Mirror(follower) = &mut self.role else { return };
        follower.sync = None;
        match result {
            Ok(extended) => {
                let (size, root) = follower.held();
                follower.wanted.extend(extended.wanted);
                self.metrics.entries_verified.inc_by(entries);
                info!(size, from = %peer, "mirror verified and kept a checkpoint");
                self.latest = Some(note.clone());
                self.emit(MeshEvent::CaughtUp { size, root });
                // Pass it on: peers that missed the sequencer's announcement can fetch from us.
                if let Err(e) = self.publish_latest() {
                    debug!(error = %e, "could not re-announce");
                }
                self.cosign(&note);
                self.fetch_texts();
                if let NodeRole::Mirror(follower) = &mut self.role {
                    follower.adapter_files.checkpoint_kept();
                }
                self.fetch_adapter_files();
            }
            Err(e) => {
                // A signed checkpoint that does not extend the one held is a fork, unless the peer
                // sent a bad proof; a range that does not match its checkpoint is tampering. Both
                // are loud, and nothing of the range was kept.
                error!(%peer, error = %e, "a fetched range was refused");
                follower.best = None;
                self.metrics.ranges_rejected.inc();
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
                self.metrics.checkpoints_cosigned.inc();
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
            let peer = match peer_id_of(&name) {
                Ok(peer) if self.allowed.contains(&peer) || peer == *self.swarm.local_peer_id() => peer,
                _ => {
                    self.reject(from, format!("a cosignature by {name}, which is not a registered node"));
                    continue;
                }
            };
            let verified = substrate_core::identity::key_of(&name)
                .map_err(|e| e.to_string())
                .and_then(|key| cosignature::verify_with(&note, &name, &key).map_err(|e| e.to_string()));
            let cosigned = match verified {
                Ok(cosigned) => cosigned,
                Err(e) => {
                    self.reject(from, e);
                    continue;
                }
            };
            if self.heard.get(&name).is_some_and(|held| held.size > checkpoint.size) {
                continue;
            }
            let height = &mut self.peers.entry(peer).or_default().height;
            *height = Some(height.unwrap_or(0).max(checkpoint.size));
            debug!(cosigner = %name, size = checkpoint.size, "a checkpoint was cosigned");
            self.metrics.cosignatures_heard.inc();
            let record = Cosigned {
                cosigner: name.clone(),
                size: checkpoint.size,
                timestamp: cosigned.timestamp,
                note: note.clone(),
            };
            if matches!(self.role, NodeRole::Sequencer { .. }) {
                let reader = self.reader.clone();
                let kept = record.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = reader.keep_cosignature(&kept) {
                        warn!(error = %e, "could not store a cosignature");
                    }
                });
            }
            self.heard.insert(name.clone(), record);
            self.emit(MeshEvent::Cosigned { cosigner: name, size: checkpoint.size });
        }
    }
}

fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}
