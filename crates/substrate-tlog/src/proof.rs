//! C2SP tlog-proof@v1 (c2sp.org/tlog-proof): a self-contained text proof that
//! an entry is in a log, verifiable offline with the log's public key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::Hash;
use crate::checkpoint::{Checkpoint, CheckpointError, parse_canonical_u64};
use crate::merkle::{ProofError, verify_inclusion};
use crate::note::NoteVerifier;

const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Errors from parsing or verifying a tlog-proof.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlogProofError {
    #[error("malformed tlog-proof: {0}")]
    Malformed(String),
    /// The checkpoint's own messages already start with "checkpoint".
    #[error("{0}")]
    Checkpoint(CheckpointError),
    #[error("inclusion proof: {0}")]
    Inclusion(ProofError),
}

/// A parsed tlog-proof: an inclusion proof for entry `index` in the tree
/// committed to by the signed `checkpoint` note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    pub index: u64,
    /// Audit path from the leaf's sibling up to the root's child.
    pub hashes: Vec<Hash>,
    /// Unauthenticated application data; never trust it without checking.
    pub extra: Option<Vec<u8>>,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: String,
}

impl TlogProof {
    pub fn to_text(&self) -> String {
        let mut text = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            text.push_str("extra ");
            text.push_str(&BASE64.encode(extra));
            text.push('\n');
        }
        text.push_str(&format!("index {}\n", self.index));
        for hash in &self.hashes {
            text.push_str(&BASE64.encode(hash));
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&self.checkpoint);
        text
    }

    /// Parses the proof text. The checkpoint note is only split off here;
    /// its signature and contents are checked by [`TlogProof::verify`].
    pub fn parse(text: &str) -> Result<Self, TlogProofError> {
        let malformed = |reason: String| TlogProofError::Malformed(reason);
        let next_line = |rest: &'static str| malformed(format!("ends before the {rest}"));

        let (header, mut rest) = text.split_once('\n').ok_or_else(|| next_line("end of the header line"))?;
        if header != HEADER {
            return Err(malformed(format!("first line is {header:?}, expected {HEADER:?}")));
        }

        let (mut line, after) = rest.split_once('\n').ok_or_else(|| next_line("index line"))?;
        rest = after;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix("extra ") {
            extra = Some(
                BASE64.decode(b64).map_err(|e| malformed(format!("extra data is not valid base64: {e}")))?,
            );
            (line, rest) = rest.split_once('\n').ok_or_else(|| next_line("index line"))?;
        }

        let index = line
            .strip_prefix("index ")
            .ok_or_else(|| malformed(format!("expected an index line, found {line:?}")))?;
        let index = parse_canonical_u64(index).ok_or_else(|| {
            malformed(format!("invalid index {index:?}: expected a decimal number without leading zeros"))
        })?;

        let mut hashes = Vec::new();
        loop {
            let (line, after) =
                rest.split_once('\n').ok_or_else(|| next_line("blank line before the checkpoint"))?;
            rest = after;
            if line.is_empty() {
                break;
            }
            let n = hashes.len() + 1;
            let bytes = BASE64
                .decode(line)
                .map_err(|e| malformed(format!("proof hash {n} is not valid base64: {e}")))?;
            let hash: Hash = bytes
                .as_slice()
                .try_into()
                .map_err(|_| malformed(format!("proof hash {n} is {} bytes, expected 32", bytes.len())))?;
            hashes.push(hash);
        }
        if rest.is_empty() {
            return Err(malformed("checkpoint is missing".to_owned()));
        }
        Ok(Self { index, hashes, extra, checkpoint: rest.to_owned() })
    }

    /// Verify the checkpoint signature and origin with `log`, then the
    /// inclusion of `leaf` at `index`. Errors say which part failed.
    pub fn verify(&self, leaf: &Hash, log: &NoteVerifier) -> Result<Checkpoint, TlogProofError> {
        let checkpoint = Checkpoint::open(&self.checkpoint, log).map_err(TlogProofError::Checkpoint)?;
        verify_inclusion(leaf, self.index, checkpoint.size, &self.hashes, &checkpoint.root)
            .map_err(TlogProofError::Inclusion)?;
        Ok(checkpoint)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::merkle::{Tree, leaf_hash};
    use crate::note::{NoteError, NoteSigner};
    use ed25519_dalek::SigningKey;

    fn signer(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::new(name, SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    fn fixture() -> (NoteSigner, Tree, TlogProof) {
        let log = signer("example.com/log", 1);
        let tree = Tree::from_leaf_hashes((0..13u8).map(|i| leaf_hash(&[i])));
        let cp = Checkpoint {
            origin: "example.com/log".to_owned(),
            size: tree.size(),
            root: tree.root(),
            extensions: vec![],
        };
        let proof = TlogProof {
            index: 5,
            hashes: tree.inclusion_proof(5, tree.size()).unwrap(),
            extra: Some(b"hello".to_vec()),
            checkpoint: cp.sign(&log).unwrap(),
        };
        (log, tree, proof)
    }

    #[test]
    fn text_round_trip() {
        let (_, _, proof) = fixture();
        let text = proof.to_text();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra aGVsbG8=\nindex 5\n"));
        assert!(text.contains("=\n\nexample.com/log\n13\n"));
        assert_eq!(TlogProof::parse(&text), Ok(proof.clone()));

        let plain = TlogProof { extra: None, hashes: vec![], ..proof };
        let text = plain.to_text();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nindex 5\n\nexample.com/log\n"));
        assert_eq!(TlogProof::parse(&text), Ok(plain));
    }

    #[test]
    fn verify_success() {
        let (log, tree, proof) = fixture();
        let cp = proof.verify(&leaf_hash(&[5]), &log.verifier()).unwrap();
        assert_eq!((cp.size, cp.root), (13, tree.root()));
    }

    #[test]
    fn verify_failures_name_the_part() {
        let (log, _, proof) = fixture();
        let leaf = leaf_hash(&[5]);

        let err = proof.verify(&leaf_hash(&[6]), &log.verifier()).unwrap_err();
        assert_eq!(err, TlogProofError::Inclusion(ProofError::RootMismatch));
        assert!(err.to_string().starts_with("inclusion proof: "), "{err}");

        let moved = TlogProof { index: 13, ..proof.clone() };
        assert_eq!(
            moved.verify(&leaf, &log.verifier()),
            Err(TlogProofError::Inclusion(ProofError::IndexOutOfRange { index: 13, size: 13 }))
        );

        let mut tampered = proof.clone();
        tampered.hashes[1][0] ^= 1;
        assert!(matches!(tampered.verify(&leaf, &log.verifier()), Err(TlogProofError::Inclusion(_))));

        let other = signer("example.com/log", 2);
        let err = proof.verify(&leaf, &other.verifier()).unwrap_err();
        assert!(matches!(
            err,
            TlogProofError::Checkpoint(CheckpointError::Signature(NoteError::NoKnownSignature { .. }))
        ));
        assert!(err.to_string().starts_with("checkpoint signature: "), "{err}");

        let forged = TlogProof { checkpoint: proof.checkpoint.replacen("\n13\n", "\n14\n", 1), ..proof };
        assert!(matches!(
            forged.verify(&leaf, &log.verifier()),
            Err(TlogProofError::Checkpoint(CheckpointError::Signature(NoteError::InvalidSignature { .. })))
        ));
    }

    #[test]
    fn parse_errors() {
        let (_, _, proof) = fixture();
        let good = proof.to_text();
        let h = BASE64.encode([1u8; 32]);
        let cases = [
            "".to_owned(),
            good.replacen("@v1", "@v2", 1),
            good.replacen("index 5", "index 05", 1),
            good.replacen("index 5", "index -5", 1),
            good.replacen("index 5", "idx 5", 1),
            good.replacen("extra aGVsbG8=", "extra aGVsbG8", 1),
            good.replacen("extra aGVsbG8=\n", "", 1).replacen("index 5\n", "", 1),
            format!("{HEADER}\nindex 1\n{h}\nAAAA\n\ncheckpoint\n"),
            format!("{HEADER}\nindex 1\n{h}!\n\ncheckpoint\n"),
            format!("{HEADER}\nindex 1\n{h}\n"),
            format!("{HEADER}\nindex 1\n{h}\n\n"),
            format!("{HEADER}\nextra aGVsbG8=\n"),
        ];
        for text in cases {
            assert!(matches!(TlogProof::parse(&text), Err(TlogProofError::Malformed(_))), "{text:?}");
        }
    }
}
