//! A C2SP tlog-proof@v1 text (the `proof` of a receipt), parsed by `TlogProof::parse` and
//! verified by `TlogProof::verify` against the log key and the leaf the fixture log holds at
//! the proof's index.
//!
//! A proof has one text form; one that verifies names an entry of a checkpoint of this log, and
//! for a tree the fixture log holds, its leaf at that index.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use substrate_fuzz::{Log, ORIGIN, log_verifier};
use substrate_tlog::{NoteVerifier, TlogProof};

static LOG: LazyLock<Log> = LazyLock::new(Log::sample);
static VERIFIER: LazyLock<NoteVerifier> = LazyLock::new(log_verifier);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(proof) = TlogProof::parse(text) else { return };
    assert_eq!(proof.to_text(), text, "a tlog-proof with two text forms");

    let leaf = LOG.tree.leaf(proof.index).unwrap_or([0x5a; 32]);
    if let Ok(checkpoint) = proof.verify(&leaf, &VERIFIER) {
        assert_eq!(checkpoint.origin, ORIGIN);
        assert!(proof.index < checkpoint.size);
        if checkpoint.size <= LOG.tree.size() && LOG.tree.root_at(checkpoint.size) == Ok(checkpoint.root) {
            assert_eq!(
                LOG.tree.inclusion_proof(proof.index, checkpoint.size).as_ref(),
                Ok(&proof.hashes),
                "a second inclusion proof verifies"
            );
        }
    }
});
