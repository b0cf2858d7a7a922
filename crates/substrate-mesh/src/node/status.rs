//! What a node reports of itself: [`MeshStatus`] (with a [`PeerView`] of each connected peer),
//! the [`MeshEvent`]s that change it, the log it holds and the largest checkpoint it has heard of.

use std::collections::BTreeSet;

use libp2p::{Multiaddr, PeerId};
use substrate_store::Cosigned;
use substrate_tlog::Hash;

use super::{Node, NodeRole};
use crate::peer::did_of_peer;

/// Something that happened on the mesh; each one changes what
/// [`MeshHandle::status`](super::MeshHandle::status) reports.
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

/// What this node knows of a connected peer beyond libp2p's own books.
#[derive(Default)]
pub(super) struct Peer {
    pub(super) agent: Option<String>,
    pub(super) address: Option<Multiaddr>,
    pub(super) height: Option<u64>,
    pub(super) sequencer: bool,
}

impl Node {
    /// The log this node has committed: what it reports (metrics, `/v1/peers`, status).
    pub(super) fn held(&self) -> (u64, Hash) {
        match &self.role {
            NodeRole::Mirror(follower) => follower.kept,
            NodeRole::Sequencer { .. } => self.reader.tree_head(),
        }
    }

    /// The largest checkpoint this node knows of: its own, announced ones, peers' heights.
    pub(super) fn head(&self) -> u64 {
        let announced = match &self.role {
            NodeRole::Mirror(follower) => follower.sync.best().map_or(0, |b| b.checkpoint.size),
            NodeRole::Sequencer { .. } => 0,
        };
        let peers = self.peers.values().filter_map(|p| p.height).max().unwrap_or(0);
        self.held().0.max(announced).max(peers)
    }

    pub(super) fn status(&self) -> MeshStatus {
        let head = self.head();
        MeshStatus {
            peer_id: *self.swarm.local_peer_id(),
            role: match self.role {
                NodeRole::Sequencer { .. } => "sequencer",
                NodeRole::Mirror(_) => "mirror",
            },
            listen: self.swarm.listeners().cloned().collect(),
            connected: self.swarm.connected_peers().copied().collect(),
            refused: self.allowed.refused().collect(),
            held: self.held(),
            head,
            cosignatures: self.cosigning.heard().cloned().collect(),
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
}
