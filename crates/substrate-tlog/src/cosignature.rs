//! C2SP tlog-cosignature/v1 (Ed25519): a mirror's signed statement that it verified a checkpoint.
//!
//! A cosignature is one more signature line on the checkpoint note:
//! `— <name> base64(key ID ‖ u64 timestamp ‖ Ed25519 signature)`, where the key ID is
//! `SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key)[..4]` and the signed message is
//! `"cosignature/v1\ntime <timestamp>\n"` followed by the checkpoint body (c2sp.org/tlog-cosignature).
//! A mirror's name is its node key's did:key, so whoever reads a cosignature can find the key that
//! made it and check that the ledger registered it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// Signature type byte of Ed25519 cosignatures in key IDs (0x01 is a plain note signature).
const ALG_COSIGNATURE_V1: u8 = 0x04;
/// Start of every signature line: U+2014 EM DASH and a space.
const SIG_PREFIX: &str = "\u{2014} ";
/// key ID (4) ‖ timestamp (8) ‖ signature (64).
const BLOB_LEN: usize = 4 + 8 + 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CosignatureError {
    #[error("the note has no blank line before its signatures")]
    MalformedNote,
    #[error("no cosignature by {name} on the note")]
    Missing { name: String },
    #[error("the cosignature by {name} is malformed: {detail}")]
    Malformed { name: String, detail: String },
    #[error("the cosignature by {name} does not verify")]
    Invalid { name: String },
}

/// One cosignature found on a note and verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosignature {
    /// The cosigner's name: its node key as a did:key.
    pub cosigner: String,
    /// When it was made, in seconds since the epoch.
    pub timestamp: u64,
}

/// The C2SP key ID of a cosigner.
pub fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut hash = Sha256::new();
    hash.update(name.as_bytes());
    hash.update(b"\n");
    hash.update([ALG_COSIGNATURE_V1]);
    hash.update(key.as_bytes());
    let digest = hash.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// What a v1 cosignature signs: the header, the time line, then the checkpoint body.
pub fn signed_message(body: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{body}")
}

/// The checkpoint body of a signed note (the text up to and including the blank line's newline).
pub fn body_of(note: &str) -> Result<&str, CosignatureError> {
    let split = note.rfind("\n\n").ok_or(CosignatureError::MalformedNote)?;
    Ok(&note[..split + 1])
}

/// Appends `name`'s cosignature, made at `timestamp` (seconds), to a signed checkpoint note.
pub fn cosign(note: &str, name: &str, key: &SigningKey, timestamp: u64) -> Result<String, CosignatureError> {
    let body = body_of(note)?;
    let signature = key.sign(signed_message(body, timestamp).as_bytes());
    let mut blob = Vec::with_capacity(BLOB_LEN);
    blob.extend_from_slice(&key_id(name, &key.verifying_key()));
    blob.extend_from_slice(&timestamp.to_be_bytes());
    blob.extend_from_slice(&signature.to_bytes());
    Ok(format!("{note}{SIG_PREFIX}{name} {}\n", BASE64.encode(blob)))
}

/// The names on every signature line of a note, in order (the log's own included).
pub fn signers(note: &str) -> Vec<String> {
    let Ok(body) = body_of(note) else { return Vec::new() };
    note[body.len() + 1..]
        .lines()
        .filter_map(|line| line.strip_prefix(SIG_PREFIX)?.split_once(' ').map(|(name, _)| name.to_owned()))
        .collect()
}

/// `name`'s signature line in `note` (the last one, with its newline left off), if it signed.
pub fn line_of<'a>(note: &'a str, name: &str) -> Option<&'a str> {
    let body = body_of(note).ok()?;
    note[body.len() + 1..].lines().rfind(|line| {
        line.strip_prefix(SIG_PREFIX)
            .and_then(|rest| rest.strip_prefix(name))
            .is_some_and(|rest| rest.starts_with(' '))
    })
}

/// Verifies the cosignature by `name` with `key` on `note`.
pub fn verify_with(note: &str, name: &str, key: &VerifyingKey) -> Result<Cosignature, CosignatureError> {
    let body = body_of(note)?;
    let id = key_id(name, key);
    let malformed =
        |detail: &str| CosignatureError::Malformed { name: name.to_owned(), detail: detail.to_owned() };
    // A note may carry several lines by this name (a plain note signature, another algorithm):
    // the cosignature is the one whose key ID is ours.
    let blob = note[body.len() + 1..]
        .lines()
        .filter_map(|line| line.strip_prefix(SIG_PREFIX)?.strip_prefix(name)?.strip_prefix(' '))
        .filter_map(|b64| BASE64.decode(b64).ok())
        .find(|blob| blob.get(..4) == Some(&id[..]))
        .ok_or_else(|| CosignatureError::Missing { name: name.to_owned() })?;
    if blob.len() != BLOB_LEN {
        return Err(malformed(&format!("{} bytes, expected {BLOB_LEN}", blob.len())));
    }
    let timestamp = u64::from_be_bytes(blob[4..12].try_into().map_err(|_| malformed("timestamp"))?);
    if timestamp > i64::MAX as u64 {
        return Err(malformed("the timestamp exceeds 2^63 - 1"));
    }
    let signature = Signature::from_slice(&blob[12..]).map_err(|_| malformed("signature"))?;
    key.verify(signed_message(body, timestamp).as_bytes(), &signature)
        .map_err(|_| CosignatureError::Invalid { name: name.to_owned() })?;
    Ok(Cosignature { cosigner: name.to_owned(), timestamp })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Checkpoint, NoteSigner};

    #[test]
    fn a_cosignature_verifies_and_survives_only_on_its_own_checkpoint() {
        let log = NoteSigner::new("example.com/log", SigningKey::from_bytes(&[7; 32])).expect("signer");
        let checkpoint = Checkpoint {
            origin: "example.com/log".into(),
            size: 3,
            root: [9; 32],
            extensions: vec!["substrate-state AAAA".into()],
        };
        let note = checkpoint.sign(&log).expect("note");
        let mirror = SigningKey::from_bytes(&[8; 32]);
        let name = "witness.example/mirror".to_owned();
        let key = mirror.verifying_key();
        let cosigned = cosign(&note, &name, &mirror, 1_800_000_000).expect("cosign");

        assert_eq!(
            verify_with(&cosigned, &name, &key),
            Ok(Cosignature { cosigner: name.clone(), timestamp: 1_800_000_000 })
        );
        assert_eq!(signers(&cosigned), vec!["example.com/log".to_owned(), name.clone()]);
        // The log's signature still opens: cosignature lines are signatures by unknown keys.
        assert_eq!(Checkpoint::open(&cosigned, &log.verifier()), Ok(checkpoint));
        assert!(signed_message(body_of(&note).expect("body"), 5).starts_with("cosignature/v1\ntime 5\n"));
        let line = line_of(&cosigned, &name).expect("the witness's line");
        assert!(line.starts_with(&format!("\u{2014} {name} ")) && cosigned.ends_with(&format!("{line}\n")));
        assert_eq!(line_of(&cosigned, "witness.example/mirro"), None, "a name's prefix is not the name");
        assert_eq!(line_of(&note, &name), None);

        let moved = cosigned.replacen("\n3\n", "\n4\n", 1);
        assert_eq!(verify_with(&moved, &name, &key), Err(CosignatureError::Invalid { name: name.clone() }));
        let other = "witness.example/other".to_owned();
        let other_key = SigningKey::from_bytes(&[6; 32]).verifying_key();
        assert_eq!(
            verify_with(&cosigned, &other, &other_key),
            Err(CosignatureError::Missing { name: other.clone() })
        );
    }
}
