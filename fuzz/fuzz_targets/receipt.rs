//! A receipt as `substrate verify` reads it from a file: JSON text, checked offline against the
//! commons' log key with `Receipt::verify` (entry, envelope, strict signature, statement, tlog
//! proof, signed checkpoint, inclusion, content) and `Receipt::witnessed_by` (cosignatures).
//!
//! The parser is `serde_json::from_str::<Receipt>` in the binary's `verify` command
//! (crates/substrate/src/command/deposit.rs); everything after it is this library code. A
//! receipt survives its JSON; one that verifies says of its entry exactly what its fields say.

#![no_main]

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use substrate_core::receipt::Receipt;
use substrate_fuzz::{TEXT, WITNESS, did, log_verifier};
use substrate_tlog::NoteVerifier;

static LOG: LazyLock<NoteVerifier> = LazyLock::new(log_verifier);
/// The witness that cosigned the fixture's checkpoints, one that did not, and the first again.
static WITNESSES: LazyLock<Vec<String>> = LazyLock::new(|| vec![did(WITNESS), did(1), did(WITNESS)]);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(receipt) = serde_json::from_str::<Receipt>(text) else { return };
    let json = serde_json::to_string(&receipt).expect("a receipt serialises");
    let again: Receipt = serde_json::from_str(&json).expect("a serialised receipt parses");
    assert_eq!(again, receipt, "a receipt does not survive its JSON");

    let without_content = receipt.verify(&LOG, None);
    let with_content = receipt.verify(&LOG, Some(TEXT));
    if let Ok(verified) = &with_content {
        assert!(without_content.is_ok(), "verifies with its content but not without");
        assert_eq!(verified.entry.index, receipt.log_index);
        assert!(verified.entry.index < verified.checkpoint.size);
        assert_eq!(STANDARD.encode(verified.entry.leaf()), receipt.entry, "the entry has two spellings");
        assert_eq!(verified.event.envelope, receipt.envelope);
        assert_eq!(verified.event.event.kind(), receipt.kind);
    }
    if let Ok(cosigned) = receipt.witnessed_by(&WITNESSES) {
        assert!(cosigned.len() <= 1 && cosigned.iter().all(|w| *w == did(WITNESS)), "{cosigned:?}");
    }
});
