//! C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, using the key
//! string formats of Go's `golang.org/x/mod/sumdb/note` so keys can be shared
//! with Go tooling.

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Signature type byte for Ed25519 in key IDs and key strings.
const ALG_ED25519: u8 = 0x01;
/// Prefix of Go-format signer key strings.
const SKEY_PREFIX: &str = "PRIVATE+KEY+";
/// Start of every signature line: U+2014 EM DASH and a space.
const SIG_PREFIX: &str = "\u{2014} ";
/// Bound on signature lines, so a hostile note cannot make us do unbounded
/// work; the spec requires accepting at least 16.
const MAX_SIGNATURES: usize = 100;

/// Errors from parsing keys, signing notes and opening signed notes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    #[error("invalid key name {name:?}: must be non-empty with no whitespace or '+'")]
    InvalidName { name: String },
    #[error("malformed key: {0}")]
    MalformedKey(String),
    #[error("unsupported key algorithm 0x{0:02x}: only ed25519 (0x01) is supported")]
    UnsupportedAlgorithm(u8),
    #[error("key hash {got} for {name} does not match the key, which hashes to {expected}")]
    KeyHashMismatch { name: String, expected: String, got: String },
    #[error("invalid note text: {0}")]
    InvalidText(String),
    #[error("malformed note: {0}")]
    Malformed(String),
    #[error("note has more than one signature by {name}")]
    DuplicateSignature { name: String },
    #[error("signature by {name} does not verify")]
    InvalidSignature { name: String },
    #[error("no signature from a known key; signed by: {}", signers_list(.signers))]
    NoKnownSignature { signers: Vec<String> },
}

fn signers_list(signers: &[String]) -> String {
    if signers.is_empty() { "nobody".to_owned() } else { signers.join(", ") }
}

/// Key names appear in key strings split on '+' and in signature lines
/// split on spaces, so neither may occur in them.
fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(NoteError::InvalidName { name: name.to_owned() });
    }
    Ok(())
}

/// C2SP key ID: SHA-256(name || "\n" || 0x01 || public key)[..4].
fn key_hash(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn hex4(hash: &[u8; 4]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses the 8-hex-digit key hash of a key string. Uppercase is accepted
/// because Go's parser accepts it.
fn parse_hex4(s: &str) -> Result<[u8; 4], NoteError> {
    let bad = || NoteError::MalformedKey(format!("key hash {s:?} is not 8 hex digits"));
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let value = u32::from_str_radix(s, 16).map_err(|_| bad())?;
    Ok(value.to_be_bytes())
}

/// Decodes `0x01 || 32 bytes`, the key material of both key string kinds.
fn parse_key_material(b64: &str) -> Result<[u8; 32], NoteError> {
    let bytes =
        BASE64.decode(b64).map_err(|e| NoteError::MalformedKey(format!("key is not valid base64: {e}")))?;
    let Some((&alg, key)) = bytes.split_first() else {
        return Err(NoteError::MalformedKey("key material is empty".to_owned()));
    };
    if alg != ALG_ED25519 {
        return Err(NoteError::UnsupportedAlgorithm(alg));
    }
    key.try_into()
        .map_err(|_| NoteError::MalformedKey(format!("ed25519 key is {} bytes, expected 32", key.len())))
}

fn check_key_hash(name: &str, key: &VerifyingKey, claimed: [u8; 4]) -> Result<[u8; 4], NoteError> {
    let actual = key_hash(name, key);
    if actual != claimed {
        return Err(NoteError::KeyHashMismatch {
            name: name.to_owned(),
            expected: hex4(&actual),
            got: hex4(&claimed),
        });
    }
    Ok(actual)
}

/// Control characters other than newline are banned from notes so that the
/// signed bytes and what a human sees cannot diverge.
fn has_control_char(s: &str) -> bool {
    s.chars().any(|c| c < ' ' && c != '\n')
}

/// Signs notes with a named Ed25519 key.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    hash: [u8; 4],
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    // Spelled out so that the private key can never end up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_hash", &hex4(&self.hash))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    pub fn new(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Self { name: name.to_owned(), hash: key_hash(name, &key.verifying_key()), key })
    }

    /// Parses `PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>`.
    pub fn from_skey(skey: &str) -> Result<Self, NoteError> {
        let rest = skey.strip_prefix(SKEY_PREFIX).ok_or_else(|| {
            NoteError::MalformedKey(format!("signer key does not start with {SKEY_PREFIX}"))
        })?;
        let (name, hash, material) = split_key_string(rest)?;
        let seed = parse_key_material(material)?;
        let key = SigningKey::from_bytes(&seed);
        let hash = check_key_hash(name, &key.verifying_key(), hash)?;
        Ok(Self { name: name.to_owned(), hash, key })
    }

    pub fn to_skey(&self) -> String {
        let mut material = vec![ALG_ED25519];
        material.extend_from_slice(&self.key.to_bytes());
        format!("{SKEY_PREFIX}{}+{}+{}", self.name, hex4(&self.hash), BASE64.encode(material))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Ed25519 key behind this signer (the log key also signs the sequencer's own events).
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier { name: self.name.clone(), hash: self.hash, key: self.key.verifying_key() }
    }

    /// Signs `text` and returns the complete signed note: the text, a blank
    /// line and this key's signature line.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        if text.is_empty() {
            return Err(NoteError::InvalidText("text is empty".to_owned()));
        }
        if !text.ends_with('\n') {
            return Err(NoteError::InvalidText("text does not end with a newline".to_owned()));
        }
        if has_control_char(text) {
            return Err(NoteError::InvalidText(
                "text contains a control character other than newline".to_owned(),
            ));
        }
        let signature = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(4 + Signature::BYTE_SIZE);
        blob.extend_from_slice(&self.hash);
        blob.extend_from_slice(&signature.to_bytes());
        Ok(format!("{text}\n{SIG_PREFIX}{} {}\n", self.name, BASE64.encode(blob)))
    }
}

/// Splits `<name>+<hash>+<material>`; the material is base64 and may itself
/// contain '+', so only the first two are separators.
fn split_key_string(s: &str) -> Result<(&str, [u8; 4], &str), NoteError> {
    let missing = || NoteError::MalformedKey("expected <name>+<hash>+<key>".to_owned());
    let (name, rest) = s.split_once('+').ok_or_else(missing)?;
    let (hash, material) = rest.split_once('+').ok_or_else(missing)?;
    check_name(name)?;
    Ok((name, parse_hex4(hash)?, material))
}

/// A named Ed25519 public key that verifies note signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    hash: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses `<name>+<hash>+<base64(0x01 || public key)>`.
    pub fn from_vkey(vkey: &str) -> Result<Self, NoteError> {
        let (name, hash, material) = split_key_string(vkey)?;
        let bytes = parse_key_material(material)?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|e| NoteError::MalformedKey(format!("invalid ed25519 public key: {e}")))?;
        let hash = check_key_hash(name, &key, hash)?;
        Ok(Self { name: name.to_owned(), hash, key })
    }

    pub fn to_vkey(&self) -> String {
        let mut material = vec![ALG_ED25519];
        material.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, hex4(&self.hash), BASE64.encode(material))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_hash(&self) -> [u8; 4] {
        self.hash
    }

    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }
}

/// A signed note whose signatures were checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedNote {
    /// The signed text, including its final newline.
    pub text: String,
    /// Names of the known keys whose signatures verified.
    pub verified_by: Vec<String>,
    /// Number of distinct signatures by keys not in the verifier list;
    /// they are ignored, as the spec requires.
    pub other_signatures: usize,
}

/// Parses a signed note and checks its signatures against `verifiers`.
///
/// Fails if the note is malformed, if a signature whose key name and key
/// hash match a verifier does not verify, if a known key signed twice, or if
/// no known key signed at all. Signatures by unknown keys (including keys
/// sharing only the name or only the hash with a known key) are counted
/// and otherwise ignored.
pub fn open_note(note: &str, verifiers: &[NoteVerifier]) -> Result<OpenedNote, NoteError> {
    let malformed = |reason: &str| NoteError::Malformed(reason.to_owned());
    if has_control_char(note) {
        return Err(malformed("contains a control character other than newline"));
    }
    if !note.ends_with('\n') {
        return Err(malformed("does not end with a newline"));
    }
    // The text may itself contain blank lines; the last one separates it
    // from the signatures, which are never empty lines.
    let split = note.rfind("\n\n").ok_or_else(|| malformed("no blank line before the signatures"))?;
    let text = &note[..split + 1];
    let sigs = &note[split + 2..];
    if sigs.is_empty() {
        return Err(malformed("no signature lines"));
    }
    let lines: Vec<&str> = sigs[..sigs.len() - 1].split('\n').collect();
    if lines.len() > MAX_SIGNATURES {
        return Err(NoteError::Malformed(format!("more than {MAX_SIGNATURES} signature lines")));
    }

    let mut verified_by = Vec::new();
    let mut seen_known = HashSet::new();
    let mut seen_unknown = HashSet::new();
    let mut unknown_signers = Vec::new();
    for line in lines {
        let (name, hash, sig) = parse_signature_line(line)?;
        let known = verifiers.iter().find(|v| v.name == name && v.hash == hash);
        let Some(verifier) = known else {
            // Go drops byte-identical repeats of unknown signatures; do the
            // same so they are counted once.
            if seen_unknown.insert(line) {
                unknown_signers.push(format!("{name}+{}", hex4(&hash)));
            }
            continue;
        };
        if !seen_known.insert((name, hash)) {
            return Err(NoteError::DuplicateSignature { name: name.to_owned() });
        }
        let invalid = || NoteError::InvalidSignature { name: name.to_owned() };
        let sig = Signature::from_slice(&sig).map_err(|_| invalid())?;
        verifier.key.verify_strict(text.as_bytes(), &sig).map_err(|_| invalid())?;
        verified_by.push(name.to_owned());
    }
    if verified_by.is_empty() {
        return Err(NoteError::NoKnownSignature { signers: unknown_signers });
    }
    Ok(OpenedNote { text: text.to_owned(), verified_by, other_signatures: unknown_signers.len() })
}

/// Splits `— <name> <base64(key hash || signature)>`.
fn parse_signature_line(line: &str) -> Result<(&str, [u8; 4], Vec<u8>), NoteError> {
    let malformed = |reason: &str| NoteError::Malformed(format!("signature line {line:?} {reason}"));
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or_else(|| malformed("does not start with an em dash and a space"))?;
    let (name, b64) =
        rest.rsplit_once(' ').ok_or_else(|| malformed("has no space between name and signature"))?;
    if check_name(name).is_err() {
        return Err(malformed("has an invalid key name"));
    }
    let blob = BASE64.decode(b64).map_err(|_| malformed("has invalid base64"))?;
    if blob.len() < 5 {
        return Err(malformed("has a signature shorter than 5 bytes"));
    }
    let (hash, sig) = blob.split_at(4);
    let hash = [hash[0], hash[1], hash[2], hash[3]];
    Ok((name, hash, sig.to_vec()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn signer(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::new(name, SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    #[test]
    fn key_strings_round_trip() {
        let s = signer("example.com/log", 7);
        let skey = s.to_skey();
        assert!(skey.starts_with("PRIVATE+KEY+example.com/log+"));
        let s2 = NoteSigner::from_skey(&skey).unwrap();
        assert_eq!(s2.to_skey(), skey);
        assert_eq!(s2.verifier(), s.verifier());

        let vkey = s.verifier().to_vkey();
        let v = NoteVerifier::from_vkey(&vkey).unwrap();
        assert_eq!(v, s.verifier());
        assert_eq!(v.to_vkey(), vkey);
        assert_eq!(v.name(), "example.com/log");
        assert_eq!(hex4(&v.key_hash()), vkey.split('+').nth(1).unwrap());
        assert_eq!(v.verifying_key(), &s.key.verifying_key());
    }

    /// The example key pair from Go's `golang.org/x/mod/sumdb/note` docs.
    #[test]
    fn go_example_keys() {
        let skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let s = NoteSigner::from_skey(skey).unwrap();
        assert_eq!(s.name(), "PeterNeumann");
        assert_eq!(s.to_skey(), skey);
        assert_eq!(s.verifier().to_vkey(), vkey);
        let v = NoteVerifier::from_vkey(vkey).unwrap();
        assert_eq!(v.key_hash(), [0xc7, 0x4f, 0x20, 0xa3]);

        // Ed25519 is deterministic, so this matches the note in Go's docs.
        let text = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
        let signed = s.sign(text).unwrap();
        assert_eq!(
            signed,
            format!(
                "{text}\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            )
        );
        let opened = open_note(&signed, &[v]).unwrap();
        assert_eq!(opened.text, text);
    }

    #[test]
    fn sign_and_open() {
        let s = signer("example.com/log", 1);
        let note = s.sign("hello\nworld\n").unwrap();
        assert!(note.starts_with("hello\nworld\n\n\u{2014} example.com/log "));
        let opened = open_note(&note, &[s.verifier()]).unwrap();
        assert_eq!(
            opened,
            OpenedNote {
                text: "hello\nworld\n".to_owned(),
                verified_by: vec!["example.com/log".to_owned()],
                other_signatures: 0,
            }
        );
    }

    #[test]
    fn extra_unknown_signatures_are_counted() {
        let log = signer("example.com/log", 1);
        let witness = signer("witness.example", 2);
        let note = log.sign("body\n").unwrap();
        let witness_line = witness.sign("body\n").unwrap()["body\n\n".len()..].to_owned();
        // Repeating an unknown signature does not count it twice.
        let cosigned = format!("{note}{witness_line}{witness_line}");
        let opened = open_note(&cosigned, &[log.verifier()]).unwrap();
        assert_eq!(opened.verified_by, vec!["example.com/log"]);
        assert_eq!(opened.other_signatures, 1);
        let both = open_note(
            &cosigned[..cosigned.len() - witness_line.len()],
            &[log.verifier(), witness.verifier()],
        )
        .unwrap();
        assert_eq!(both.verified_by, vec!["example.com/log", "witness.example"]);
        // A known key signing twice is suspicious rather than harmless.
        let twice = format!("{note}{}", &note["body\n\n".len()..]);
        assert_eq!(
            open_note(&twice, &[log.verifier()]),
            Err(NoteError::DuplicateSignature { name: "example.com/log".to_owned() })
        );
    }

    #[test]
    fn tampered_text_fails() {
        let s = signer("example.com/log", 1);
        let note = s.sign("hello\n").unwrap().replacen("hello", "jello", 1);
        let err = open_note(&note, &[s.verifier()]).unwrap_err();
        assert_eq!(err.to_string(), "signature by example.com/log does not verify");
    }

    #[test]
    fn unknown_key_reports_signers() {
        let s = signer("example.com/log", 1);
        let other = signer("other.example", 2);
        let note = s.sign("hello\n").unwrap();
        let err = open_note(&note, &[other.verifier()]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("no signature from a known key; signed by: example.com/log+"), "{msg}");
        assert!(matches!(open_note(&note, &[]), Err(NoteError::NoKnownSignature { .. })));
    }

    #[test]
    fn same_name_other_key_is_rejected() {
        let real = signer("example.com/log", 1);
        let impostor = signer("example.com/log", 2);
        let note = impostor.sign("hello\n").unwrap();
        // Different key hash: treated as an unknown key.
        assert!(matches!(open_note(&note, &[real.verifier()]), Err(NoteError::NoKnownSignature { .. })));
        // Same name and key hash but a different key: a forged signature.
        let forged = NoteSigner { hash: real.hash, ..impostor };
        let note = forged.sign("hello\n").unwrap();
        assert_eq!(
            open_note(&note, &[real.verifier()]),
            Err(NoteError::InvalidSignature { name: "example.com/log".to_owned() })
        );
    }

    #[test]
    fn text_may_contain_blank_lines() {
        let s = signer("example.com/log", 1);
        let note = s.sign("a\n\nb\n").unwrap();
        assert_eq!(open_note(&note, &[s.verifier()]).unwrap().text, "a\n\nb\n");
    }

    #[test]
    fn invalid_inputs() {
        let key = SigningKey::from_bytes(&[1; 32]);
        for name in ["", "a b", "a+b", "tab\there"] {
            assert!(matches!(NoteSigner::new(name, key.clone()), Err(NoteError::InvalidName { .. })));
        }
        let s = signer("n", 1);
        assert!(matches!(s.sign(""), Err(NoteError::InvalidText(_))));
        assert!(matches!(s.sign("no newline"), Err(NoteError::InvalidText(_))));
        assert!(matches!(s.sign("bell\x07\n"), Err(NoteError::InvalidText(_))));

        let vkey = s.verifier().to_vkey();
        let (name_hash, material) = vkey.rsplit_once('+').unwrap();
        assert!(matches!(
            NoteVerifier::from_vkey(&format!("other+{}", &name_hash[2..])),
            Err(NoteError::MalformedKey(_))
        ));
        let renamed = vkey.replacen("n+", "m+", 1);
        assert!(matches!(NoteVerifier::from_vkey(&renamed), Err(NoteError::KeyHashMismatch { .. })));
        let mut bytes = BASE64.decode(material).unwrap();
        bytes[0] = 0x04;
        assert_eq!(
            NoteVerifier::from_vkey(&format!("{name_hash}+{}", BASE64.encode(&bytes))),
            Err(NoteError::UnsupportedAlgorithm(4))
        );
        bytes[0] = ALG_ED25519;
        assert!(matches!(
            NoteVerifier::from_vkey(&format!("{name_hash}+{}", BASE64.encode(&bytes[..20]))),
            Err(NoteError::MalformedKey(_))
        ));
        assert!(matches!(
            NoteVerifier::from_vkey(&format!("{name_hash}+AQID")),
            Err(NoteError::MalformedKey(_))
        ));
        assert!(matches!(NoteVerifier::from_vkey("n+zzzzzzzz+AQID"), Err(NoteError::MalformedKey(_))));
        assert!(matches!(NoteSigner::from_skey(&vkey), Err(NoteError::MalformedKey(_))));
    }

    #[test]
    fn malformed_notes() {
        let s = signer("n", 1);
        let good = s.sign("text\n").unwrap();
        let v = [s.verifier()];
        let cases = [
            good.trim_end().to_owned(),
            good.replace("\n\n", "\n"),
            "text\n\n".to_owned(),
            good.replace('\u{2014}', "-"),
            good.replacen(" n ", " n\tx ", 1),
            format!("{}!\n", good.trim_end()),
            "text\n\n\u{2014} n AAAA\n".to_owned(),
            good.replace("text", "te\rxt"),
        ];
        for note in cases {
            assert!(
                matches!(open_note(&note, &v), Err(NoteError::Malformed(_))),
                "{note:?}: {:?}",
                open_note(&note, &v)
            );
        }
        let many = format!("{good}{}", "\u{2014} x AAAAAAAA\n".repeat(MAX_SIGNATURES));
        assert!(matches!(open_note(&many, &v), Err(NoteError::Malformed(_))));
    }
}
