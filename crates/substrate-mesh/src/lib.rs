//! The mesh: libp2p nodes that replicate and verify one commons (the only crate that names libp2p).
//!
//! - [`peer`]: node keys (did:key Ed25519) as libp2p identities and PeerIds.
//! - [`protocol`]: the wire: checkpoint and cosignature topics, range and consistency requests.
//! - [`cosignature`]: C2SP tlog-cosignature/v1 lines a mirror adds to checkpoints it verified.
//! - [`mirror`]: a mirror's copy of the log and how a fetched range is checked against a checkpoint.
//! - [`node`]: [`Mesh`], one task owning a libp2p `Swarm`, reached through a [`MeshHandle`].

pub mod cosignature;
pub mod mirror;
pub mod node;
pub mod peer;
pub mod protocol;

mod behaviour;

pub use libp2p::{Multiaddr, PeerId};
pub use mirror::{MemoryLog, MirrorError};
pub use node::{Cosigned, Mesh, MeshConfig, MeshError, MeshEvent, MeshHandle, MeshStatus, Role};
pub use peer::{PeerError, node_keypair, peer_id_of};
