//! Actor identities: Ed25519 keys named by `did:key` (multicodec `ed25519-pub`, base58btc).

use ed25519_dalek::{SigningKey, VerifyingKey};

/// Multicodec varint for `ed25519-pub`.
const ED25519_PUB: [u8; 2] = [0xed, 0x01];
const DID_KEY_PREFIX: &str = "did:key:z";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DidError {
    #[error("'{0}' is not a did:key (expected 'did:key:z6Mk…')")]
    NotDidKey(String),
    #[error("'{0}' is not valid base58btc")]
    Base58(String),
    #[error("'{0}' is not an Ed25519 did:key (only ed25519-pub keys are accepted)")]
    NotEd25519(String),
}

/// The `did:key` of an Ed25519 public key.
pub fn did_of(key: &VerifyingKey) -> String {
    let mut bytes = Vec::with_capacity(34);
    bytes.extend_from_slice(&ED25519_PUB);
    bytes.extend_from_slice(key.as_bytes());
    format!("{DID_KEY_PREFIX}{}", bs58::encode(bytes).into_string())
}

/// The Ed25519 public key a `did:key` names.
pub fn key_of(did: &str) -> Result<VerifyingKey, DidError> {
    let encoded = did.strip_prefix(DID_KEY_PREFIX).ok_or_else(|| DidError::NotDidKey(did.to_owned()))?;
    let bytes = bs58::decode(encoded).into_vec().map_err(|_| DidError::Base58(did.to_owned()))?;
    if bytes.len() != 34 || bytes[..2] != ED25519_PUB {
        return Err(DidError::NotEd25519(did.to_owned()));
    }
    let mut raw = [0u8; 32];
    raw.copy_from_slice(&bytes[2..]);
    VerifyingKey::from_bytes(&raw).map_err(|_| DidError::NotEd25519(did.to_owned()))
}

/// Keys already decoded from their did:key, so a signer seen before costs a lookup rather than a
/// base58 decoding and a point decompression (a tenth of checking a signature). Exact: a key is
/// a function of its did:key alone; a did:key that does not decode is not kept, and fails again
/// with the same error. Bounded: when full it forgets everything and starts again.
#[derive(Debug, Default)]
pub struct KeyCache {
    keys: std::collections::HashMap<String, VerifyingKey>,
}

impl KeyCache {
    /// Keys held at most.
    pub const CAPACITY: usize = 4096;

    /// [`key_of`], remembered.
    pub fn key_of(&mut self, did: &str) -> Result<VerifyingKey, DidError> {
        if let Some(key) = self.keys.get(did) {
            return Ok(*key);
        }
        let key = key_of(did)?;
        if self.keys.len() >= KeyCache::CAPACITY {
            self.keys.clear();
        }
        self.keys.insert(did.to_owned(), key);
        Ok(key)
    }
}

/// The kind of actor a key belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    Person,
    Agent,
    Node,
    Log,
}

/// A key file's contents: the kind of actor, its did and its 32-byte Ed25519 seed.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct KeyFile {
    pub kind: ActorKind,
    pub did: String,
    /// Standard base64 of the Ed25519 seed.
    pub secret_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("the key file is not JSON of the form {{kind, did, secret_key}}: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the key file's secret_key is not base64 of 32 bytes")]
    Secret,
    #[error("the key file says did {stated} but its secret key belongs to {actual}")]
    DidMismatch { stated: String, actual: String },
}

impl KeyFile {
    pub fn new(kind: ActorKind, key: &SigningKey) -> KeyFile {
        use base64::Engine;
        KeyFile {
            kind,
            did: did_of(&key.verifying_key()),
            secret_key: base64::engine::general_purpose::STANDARD.encode(key.to_bytes()),
        }
    }

    pub fn parse(text: &str) -> Result<(KeyFile, SigningKey), KeyFileError> {
        use base64::Engine;
        let file: KeyFile = serde_json::from_str(text)?;
        let seed: [u8; 32] = base64::engine::general_purpose::STANDARD
            .decode(&file.secret_key)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(KeyFileError::Secret)?;
        let key = SigningKey::from_bytes(&seed);
        let actual = did_of(&key.verifying_key());
        if actual != file.did {
            return Err(KeyFileError::DidMismatch { stated: file.did, actual });
        }
        Ok((file, key))
    }
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile").field("kind", &self.kind).field("did", &self.did).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_key_round_trips_and_has_the_usual_prefix() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let did = did_of(&key.verifying_key());
        assert!(did.starts_with("did:key:z6Mk"), "{did}");
        assert_eq!(key_of(&did), Ok(key.verifying_key()));
    }

    #[test]
    fn did_key_test_vector() {
        // From the did:key method specification's Ed25519 examples.
        let did = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp";
        let key = key_of(did).expect("valid did:key");
        assert_eq!(did_of(&key), did);
    }

    #[test]
    fn rejects_other_methods_and_codecs() {
        assert!(matches!(key_of("did:web:example.org"), Err(DidError::NotDidKey(_))));
        // A secp256k1 did:key.
        assert!(matches!(
            key_of("did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme"),
            Err(DidError::NotEd25519(_))
        ));
        assert!(matches!(key_of("did:key:z0OIl"), Err(DidError::Base58(_))));
    }

    #[test]
    fn key_file_round_trips_and_catches_a_wrong_did() {
        let key = SigningKey::from_bytes(&[9u8; 32]);
        let file = KeyFile::new(ActorKind::Person, &key);
        let text = serde_json::to_string(&file).expect("serialise");
        let (parsed, parsed_key) = KeyFile::parse(&text).expect("parse");
        assert_eq!(parsed.did, file.did);
        assert_eq!(parsed_key.to_bytes(), key.to_bytes());
        let other = KeyFile { did: did_of(&SigningKey::from_bytes(&[1u8; 32]).verifying_key()), ..file };
        let text = serde_json::to_string(&other).expect("serialise");
        assert!(matches!(KeyFile::parse(&text), Err(KeyFileError::DidMismatch { .. })));
    }
}
