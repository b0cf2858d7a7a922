//! How to run one node: [`MeshConfig`], and the [`Role`] it plays for the commons.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use substrate_store::{Ledger, Reader, SequencerHandle};
use substrate_tlog::NoteVerifier;

use crate::SwarmKey;

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
