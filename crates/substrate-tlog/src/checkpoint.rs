//! C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint): the signed note body
//! that commits a log to a tree size and root hash.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::Hash;
use crate::note::{NoteError, NoteSigner, NoteVerifier, open_note};

/// Errors from parsing, signing or opening a checkpoint.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    #[error("checkpoint text does not end with a newline")]
    MissingNewline,
    #[error("checkpoint text contains a control character other than newline")]
    ControlCharacter,
    #[error("checkpoint has {lines} lines, expected at least 3 (origin, size, root hash)")]
    TooFewLines { lines: usize },
    #[error("checkpoint origin line is empty")]
    EmptyOrigin,
    #[error("invalid checkpoint tree size {line:?}: expected a decimal number without leading zeros")]
    InvalidSize { line: String },
    #[error("checkpoint root hash is not valid base64: {reason}")]
    InvalidRootBase64 { reason: String },
    #[error("checkpoint root hash is {len} bytes, expected 32")]
    InvalidRootLength { len: usize },
    #[error("checkpoint extension line {line} is empty")]
    EmptyExtension { line: usize },
    #[error("checkpoint {field} contains a newline")]
    NewlineInField { field: &'static str },
    #[error("checkpoint signature: {0}")]
    Signature(NoteError),
    #[error("checkpoint origin {origin:?} does not match log key name {expected:?}")]
    OriginMismatch { origin: String, expected: String },
}

/// A log's commitment to the tree of its first `size` entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// Extra body lines after the root hash, without their newlines.
    pub extensions: Vec<String>,
}

/// Parses a decimal `u64` with no sign and no leading zeros, so that every
/// number has exactly one accepted spelling.
pub(crate) fn parse_canonical_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

impl Checkpoint {
    pub fn to_text(&self) -> String {
        let mut text = format!("{}\n{}\n{}\n", self.origin, self.size, BASE64.encode(self.root));
        for ext in &self.extensions {
            text.push_str(ext);
            text.push('\n');
        }
        text
    }

    /// Parses a checkpoint body strictly: any value that [`to_text`]
    /// would not produce is rejected, so a checkpoint has one text form.
    ///
    /// [`to_text`]: Checkpoint::to_text
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        if text.chars().any(|c| c < ' ' && c != '\n') {
            return Err(CheckpointError::ControlCharacter);
        }
        let body = text.strip_suffix('\n').ok_or(CheckpointError::MissingNewline)?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(CheckpointError::TooFewLines { lines: lines.len() });
        };
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        let size = parse_canonical_u64(size)
            .ok_or_else(|| CheckpointError::InvalidSize { line: (*size).to_owned() })?;
        let root_bytes =
            BASE64.decode(root).map_err(|e| CheckpointError::InvalidRootBase64 { reason: e.to_string() })?;
        let root: Hash = root_bytes
            .as_slice()
            .try_into()
            .map_err(|_| CheckpointError::InvalidRootLength { len: root_bytes.len() })?;
        if let Some(i) = extensions.iter().position(|e| e.is_empty()) {
            return Err(CheckpointError::EmptyExtension { line: i + 4 });
        }
        Ok(Self {
            origin: (*origin).to_owned(),
            size,
            root,
            extensions: extensions.iter().map(|e| (*e).to_owned()).collect(),
        })
    }

    /// The value of the first extension line of the form `<prefix> <value>`.
    pub fn extension(&self, prefix: &str) -> Option<&str> {
        self.extensions.iter().find_map(|e| e.strip_prefix(prefix)?.strip_prefix(' '))
    }

    /// Signs the checkpoint body and returns the signed note. The fields are
    /// checked first so that the signed text parses back to `self`.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, CheckpointError> {
        if self.origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        if self.origin.contains('\n') {
            return Err(CheckpointError::NewlineInField { field: "origin" });
        }
        for (i, ext) in self.extensions.iter().enumerate() {
            if ext.is_empty() {
                return Err(CheckpointError::EmptyExtension { line: i + 4 });
            }
            if ext.contains('\n') {
                return Err(CheckpointError::NewlineInField { field: "extension" });
            }
        }
        let text = self.to_text();
        if text.chars().any(|c| c < ' ' && c != '\n') {
            return Err(CheckpointError::ControlCharacter);
        }
        signer.sign(&text).map_err(CheckpointError::Signature)
    }

    /// Opens a signed checkpoint: requires a valid signature by `verifier`
    /// and an origin equal to the verifier's key name, since a log's key
    /// must not vouch for another log's tree.
    pub fn open(note: &str, verifier: &NoteVerifier) -> Result<Self, CheckpointError> {
        let opened = open_note(note, std::slice::from_ref(verifier)).map_err(CheckpointError::Signature)?;
        let checkpoint = Self::parse(&opened.text)?;
        if checkpoint.origin != verifier.name() {
            return Err(CheckpointError::OriginMismatch {
                origin: checkpoint.origin,
                expected: verifier.name().to_owned(),
            });
        }
        Ok(checkpoint)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn sample() -> Checkpoint {
        Checkpoint {
            origin: "example.com/log".to_owned(),
            size: 1234,
            root: [7; 32],
            extensions: vec!["timestamp 1700000000".to_owned(), "foo bar baz".to_owned()],
        }
    }

    fn signer(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::new(name, SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    #[test]
    fn text_round_trip() {
        let cp = sample();
        let text = cp.to_text();
        assert_eq!(
            text,
            "example.com/log\n1234\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\
             timestamp 1700000000\nfoo bar baz\n"
        );
        assert_eq!(Checkpoint::parse(&text), Ok(cp.clone()));
        assert_eq!(cp.extension("timestamp"), Some("1700000000"));
        assert_eq!(cp.extension("foo"), Some("bar baz"));
        assert_eq!(cp.extension("time"), None);
        assert_eq!(cp.extension("missing"), None);

        let bare = Checkpoint { size: 0, extensions: vec![], ..cp };
        assert_eq!(Checkpoint::parse(&bare.to_text()), Ok(bare));
    }

    #[test]
    fn parse_errors() {
        let root = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
        let bad_size = |s: &str| CheckpointError::InvalidSize { line: s.to_owned() };
        let cases = [
            (format!("o\n1\n{root}"), CheckpointError::MissingNewline),
            ("o\n1\n".to_owned(), CheckpointError::TooFewLines { lines: 2 }),
            (format!("\n1\n{root}\n"), CheckpointError::EmptyOrigin),
            (format!("o\n01\n{root}\n"), bad_size("01")),
            (format!("o\n+1\n{root}\n"), bad_size("+1")),
            (format!("o\n-1\n{root}\n"), bad_size("-1")),
            (format!("o\n\n{root}\n"), bad_size("")),
            (format!("o\n1 \n{root}\n"), bad_size("1 ")),
            (format!("o\n18446744073709551616\n{root}\n"), bad_size("18446744073709551616")),
            ("o\n1\nAAAA\n".to_owned(), CheckpointError::InvalidRootLength { len: 3 }),
            (format!("o\n1\n{root}\n\n"), CheckpointError::EmptyExtension { line: 4 }),
            (format!("o\n1\n{root}\r\n"), CheckpointError::ControlCharacter),
        ];
        for (text, want) in cases {
            assert_eq!(Checkpoint::parse(&text), Err(want), "{text:?}");
        }
        for root in [
            "!!!!",
            "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc",
            "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwd=",
        ] {
            assert!(
                matches!(
                    Checkpoint::parse(&format!("o\n1\n{root}\n")),
                    Err(CheckpointError::InvalidRootBase64 { .. })
                ),
                "{root}"
            );
        }
        assert_eq!(Checkpoint::parse(&format!("o\n0\n{root}\n")).map(|c| c.size), Ok(0));
        assert_eq!(
            Checkpoint::parse(&format!("o\n18446744073709551615\n{root}\n")).map(|c| c.size),
            Ok(u64::MAX)
        );
    }

    #[test]
    fn sign_and_open() {
        let log = signer("example.com/log", 1);
        let cp = sample();
        let note = cp.sign(&log).unwrap();
        assert!(note.starts_with(&format!("{}\n\u{2014} example.com/log ", cp.to_text())));
        assert_eq!(Checkpoint::open(&note, &log.verifier()), Ok(cp.clone()));

        let other = signer("example.com/log", 2);
        assert!(matches!(
            Checkpoint::open(&note, &other.verifier()),
            Err(CheckpointError::Signature(NoteError::NoKnownSignature { .. }))
        ));
        let tampered = note.replacen("1234", "1235", 1);
        let err = Checkpoint::open(&tampered, &log.verifier()).unwrap_err();
        assert_eq!(err.to_string(), "checkpoint signature: signature by example.com/log does not verify");

        // A key named after another log cannot vouch for this one.
        let wrong_origin = signer("other.example/log", 1);
        let note = cp.sign(&wrong_origin).unwrap();
        assert_eq!(
            Checkpoint::open(&note, &wrong_origin.verifier()),
            Err(CheckpointError::OriginMismatch {
                origin: "example.com/log".to_owned(),
                expected: "other.example/log".to_owned(),
            })
        );
    }

    #[test]
    fn sign_rejects_unparseable_fields() {
        let log = signer("example.com/log", 1);
        let mut cp = sample();
        cp.extensions.push(String::new());
        assert_eq!(cp.sign(&log), Err(CheckpointError::EmptyExtension { line: 6 }));
        let mut cp = sample();
        cp.origin.push('\n');
        assert_eq!(cp.sign(&log), Err(CheckpointError::NewlineInField { field: "origin" }));
        let mut cp = sample();
        cp.origin.clear();
        assert_eq!(cp.sign(&log), Err(CheckpointError::EmptyOrigin));
    }
}
