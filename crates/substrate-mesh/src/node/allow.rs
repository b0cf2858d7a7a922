//! The allow-list: which peers may connect. The bootstrap list and `MeshConfig::allowed`, plus
//! every node key the log registers, recomputed from the ledger whenever the log held grows (at
//! most every [`ALLOW_REFRESH`]) and at once when an unknown peer is refused. A partition
//! disallows every peer until it heals.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use tracing::{info, warn};

use super::{MeshEvent, Node, Served};
use crate::peer::peer_id_of;

/// How many refused peers [`MeshStatus::refused`](super::MeshStatus::refused) remembers.
const REFUSED_REMEMBERED: usize = 64;

/// How often at most the allow-list is recomputed as the log grows: a reader brings its
/// governance records up to date with what changed, which is cheap, but a stream of deposits
/// grows the log hundreds of times a second.
pub(super) const ALLOW_REFRESH: Duration = Duration::from_millis(250);

/// Which peers may connect, and which were refused lately.
pub(super) struct AllowList {
    /// Peers allowed by configuration (bootstrap list and `MeshConfig::allowed`).
    configured: BTreeSet<PeerId>,
    /// Every peer allowed: the configured ones and the nodes the log registers.
    peers: BTreeSet<PeerId>,
    /// The peers refused lately, oldest first, at most [`REFUSED_REMEMBERED`].
    refused: VecDeque<PeerId>,
    /// When the allow-list was last recomputed from the log.
    refreshed: Option<Instant>,
    /// A refresh was asked for within [`ALLOW_REFRESH`] of the last one: it is owed at the next
    /// tick, so a node registered just after another is let in within a quarter second.
    owed: bool,
}

impl AllowList {
    /// The peers allowed by configuration, before the log is read.
    pub(super) fn new(configured: BTreeSet<PeerId>) -> AllowList {
        AllowList {
            peers: configured.clone(),
            configured,
            refused: VecDeque::new(),
            refreshed: None,
            owed: false,
        }
    }

    pub(super) fn contains(&self, peer: &PeerId) -> bool {
        self.peers.contains(peer)
    }

    /// The peers refused lately, oldest first.
    pub(super) fn refused(&self) -> impl Iterator<Item = PeerId> {
        self.refused.iter().copied()
    }
}

impl Node {
    /// Lets a peer connect from now on, as configuration does
    /// ([`MeshHandle::allow`](super::MeshHandle::allow)).
    pub(super) fn allow_configured(&mut self, peer: PeerId) {
        self.allowed.configured.insert(peer);
        self.allow(peer);
    }

    pub(super) fn allow(&mut self, peer: PeerId) {
        if self.allowed.peers.insert(peer) {
            // Every registered node is an explicit gossipsub peer, as the bootstrap peers are: in
            // a commons of a few known nodes nobody should have to win a mesh slot, and a node
            // never GRAFTs a peer that treats it as explicit (which would refuse, and log it).
            self.swarm.behaviour_mut().gossipsub.add_explicit_peer(&peer);
            if !self.partitioned {
                self.swarm.behaviour_mut().allowed.allow_peer(peer);
            }
        }
    }

    /// Cuts this node off (every allowed peer disallowed, which closes its connections), or heals
    /// the partition and does at once what a tick does (dial the bootstrap peers, resume the sync).
    pub(super) fn partition(&mut self, partitioned: bool) {
        self.partitioned = partitioned;
        if partitioned {
            warn!("partitioned: closing every connection and accepting none");
            for peer in self.allowed.peers.clone() {
                self.swarm.behaviour_mut().allowed.disallow_peer(peer);
            }
        } else {
            info!("partition healed");
            for peer in self.allowed.peers.clone() {
                self.swarm.behaviour_mut().allowed.allow_peer(peer);
            }
            self.on_tick();
        }
    }

    /// Recomputes the allow-list from the node registrations in the log held (off the task).
    pub(super) fn refresh_allowed(&mut self) {
        if self.allowed.refreshed.is_some_and(|at| at.elapsed() < ALLOW_REFRESH) {
            self.allowed.owed = true;
            return;
        }
        self.allowed.owed = false;
        self.allowed.refreshed = Some(Instant::now());
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

    /// Makes the refresh a throttled call asked for.
    pub(super) fn refresh_owed(&mut self) {
        if self.allowed.owed {
            self.refresh_allowed();
        }
    }

    pub(super) fn refused(&mut self, peer: PeerId) {
        warn!(%peer, "refused a peer whose key is not registered in the ledger");
        // It may have been registered since the last look: its next dial gets in if so.
        self.allowed.refreshed = None;
        self.refresh_allowed();
        if !self.allowed.refused.contains(&peer) {
            if self.allowed.refused.len() == REFUSED_REMEMBERED {
                self.allowed.refused.pop_front();
            }
            self.allowed.refused.push_back(peer);
        }
        self.emit(MeshEvent::Refused { peer });
    }
}
