//! Signed notes as the mesh gossips them and a verifier is handed them: C2SP tlog-checkpoint
//! bodies (`Checkpoint::parse`), signed notes (`open_note`, `Checkpoint::open`), tlog-cosignature
//! lines (`cosignature::verify_with` and the readers of signature lines) and note verifier keys
//! (`NoteVerifier::from_vkey`: a genesis' log key, `--commons-key`).
//!
//! A checkpoint body has one text form; a note opens only under the key that signed it, and then
//! holds the checkpoint of that log; a verifier key parses back to the same key.

#![no_main]

use std::sync::LazyLock;

use ed25519_dalek::VerifyingKey;
use libfuzzer_sys::fuzz_target;
use substrate_fuzz::{ORIGIN, WITNESS, did, key, log_signer, log_verifier};
use substrate_tlog::{Checkpoint, NoteVerifier, cosignature, open_note};

static LOG: LazyLock<NoteVerifier> = LazyLock::new(log_verifier);
/// The log key and a key of another log that shares nothing with it.
static VERIFIERS: LazyLock<Vec<NoteVerifier>> = LazyLock::new(|| {
    let other = substrate_tlog::NoteSigner::new("other.example/log", key(43)).expect("a key name");
    vec![log_verifier(), other.verifier()]
});
static WITNESS_DID: LazyLock<String> = LazyLock::new(|| did(WITNESS));
static WITNESS_KEY: LazyLock<VerifyingKey> = LazyLock::new(|| key(WITNESS).verifying_key());

fuzz_target!(|data: &[u8]| {
    // The gossip handlers take a message only if it is UTF-8.
    let Ok(text) = std::str::from_utf8(data) else { return };

    if let Ok(checkpoint) = Checkpoint::parse(text) {
        assert_eq!(checkpoint.to_text(), text, "a checkpoint body with two text forms");
        let _ = checkpoint.extension("substrate-state");
    }

    if let Ok(opened) = open_note(text, &VERIFIERS) {
        assert!(text.starts_with(&opened.text), "the signed text is not the note's start");
        assert!(!opened.verified_by.is_empty());
    }
    if let Ok(checkpoint) = Checkpoint::open(text, &LOG) {
        assert_eq!(checkpoint.origin, ORIGIN);
        let signed = checkpoint.sign(&log_signer()).expect("an opened checkpoint signs again");
        assert_eq!(Checkpoint::open(&signed, &LOG).as_ref(), Ok(&checkpoint));
    }

    let _ = cosignature::signers(text);
    let _ = cosignature::line_of(text, &WITNESS_DID);
    if let Ok(cosigned) = cosignature::verify_with(text, &WITNESS_DID, &WITNESS_KEY) {
        assert_eq!(cosigned.cosigner, *WITNESS_DID);
        assert!(cosignature::signers(text).contains(&WITNESS_DID));
        assert!(cosignature::line_of(text, &WITNESS_DID).is_some());
    }

    if let Ok(verifier) = NoteVerifier::from_vkey(text) {
        assert_eq!(NoteVerifier::from_vkey(&verifier.to_vkey()).as_ref(), Ok(&verifier));
    }
});
