//! The mesh: libp2p nodes that replicate and verify one commons (the only crate that names libp2p).
//!
//! - [`peer`]: node keys (did:key Ed25519) as libp2p identities and PeerIds.
//! - [`protocol`]: the wire: checkpoint and cosignature topics, range and consistency requests.
//! - [`swarm_key`]: the optional private-network key (pnet) shared by a commons' nodes.
//! - [`node`]: [`Mesh`], one task owning a libp2p `Swarm`, reached through a [`MeshHandle`].

pub mod node;
pub mod peer;
pub mod protocol;
pub mod swarm_key;

mod behaviour;

pub use libp2p::{Multiaddr, PeerId};
pub use node::{JobTexts, Mesh, MeshConfig, MeshError, MeshEvent, MeshHandle, MeshStatus, PeerView, Role};
pub use peer::{PeerError, did_of_peer, node_keypair, peer_id_of};
pub use swarm_key::{SwarmKey, SwarmKeyError};
