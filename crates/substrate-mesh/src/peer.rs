//! Node keys as libp2p identities.
//!
//! A node key is registered in the ledger as a did:key (Ed25519). The node's libp2p identity is an
//! Ed25519 keypair made from the same 32-byte secret, so its PeerId follows from the did:key alone
//! and the allow-list can be computed from the ledger without any extra registration.

use ed25519_dalek::SigningKey;
use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey, ed25519};

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{did} is not an Ed25519 did:key: {detail}")]
    NotEd25519Did { did: String, detail: String },
    #[error("the node key is not a usable Ed25519 secret: {0}")]
    Secret(String),
}

/// The libp2p identity of the node whose key is `key`.
pub fn node_keypair(key: &SigningKey) -> Result<Keypair, PeerError> {
    // `ed25519_from_bytes` zeroizes the buffer it is given: hand it a copy.
    let mut secret = key.to_bytes();
    Keypair::ed25519_from_bytes(&mut secret).map_err(|e| PeerError::Secret(e.to_string()))
}

/// The PeerId of the node registered as `did` (a did:key of an Ed25519 key).
pub fn peer_id_of(did: &str) -> Result<PeerId, PeerError> {
    let not_ed25519 = |detail: String| PeerError::NotEd25519Did { did: did.to_owned(), detail };
    let key = substrate_core::identity::key_of(did).map_err(|e| not_ed25519(e.to_string()))?;
    let public =
        ed25519::PublicKey::try_from_bytes(key.as_bytes()).map_err(|e| not_ed25519(e.to_string()))?;
    Ok(PublicKey::from(public).to_peer_id())
}

/// The did:key of a peer whose identity is an Ed25519 key (inlined in its PeerId), if it is one.
pub fn did_of_peer(peer: &PeerId) -> Option<String> {
    let hash: &libp2p::multihash::Multihash<64> = peer.as_ref();
    // Ed25519 PeerIds inline the protobuf-encoded public key under the identity multihash (code 0).
    if hash.code() != 0 {
        return None;
    }
    let public = PublicKey::try_decode_protobuf(hash.digest()).ok()?.try_into_ed25519().ok()?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&public.to_bytes()).ok()?;
    Some(substrate_core::identity::did_of(&key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use substrate_core::identity::did_of;

    #[test]
    fn the_peer_id_of_a_did_is_the_peer_id_of_the_same_secret() {
        for seed in [1u8, 7, 200] {
            let key = SigningKey::from_bytes(&[seed; 32]);
            let from_secret = node_keypair(&key).expect("keypair").public().to_peer_id();
            let from_did = peer_id_of(&did_of(&key.verifying_key())).expect("peer id");
            assert_eq!(from_secret, from_did);
            assert_eq!(did_of_peer(&from_did), Some(did_of(&key.verifying_key())));
        }
    }

    #[test]
    fn a_did_that_is_not_a_key_is_refused() {
        assert!(peer_id_of("did:web:example.org").is_err());
    }
}
