//! A signed event as a node is sent it: DSSE envelope JSON (`POST /v1/events`, the mesh's
//! `/substrate/submit/1`, a log entry after its 8-byte time).
//!
//! The three ways a node opens envelope bytes must agree: `open_bytes` (submissions),
//! `open_deferred` with its signature checks made afterwards (replay, a mirror's ranges, in
//! batches) and `open_logged` (entries a checkpoint vouches for). An envelope that parses
//! re-encodes to canonical bytes that parse back to it, and those bytes are a fixed point.

#![no_main]

use ed25519_dalek::Verifier;
use libfuzzer_sys::fuzz_target;
use substrate_core::{Envelope, SignedEvent};

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = serde_json::from_slice::<Envelope>(data) {
        let canonical = envelope.to_bytes();
        let again: Envelope = serde_json::from_slice(&canonical).expect("canonical bytes parse");
        assert_eq!(again, envelope);
        assert_eq!(again.to_bytes(), canonical, "the canonical bytes are a fixed point");
        // What the API and the mesh check of a submission beyond opening it.
        let _ = envelope.check_strict();
    }

    let at_once = SignedEvent::open_bytes(data);
    let deferred = SignedEvent::open_deferred(data);
    let verified_later = deferred
        .as_ref()
        .ok()
        .filter(|(_, checks)| checks.iter().all(|c| c.key.verify(&c.message, &c.signature).is_ok()))
        .map(|(event, _)| event);
    assert_eq!(at_once.as_ref().ok(), verified_later, "open_bytes and open_deferred disagree");

    let logged = SignedEvent::open_logged(data);
    if let Ok(event) = &logged {
        let _ = event.event.control_characters();
        let _ = event.act_digest();
    }
    if let Ok(event) = &at_once {
        assert_eq!(logged.as_ref().ok(), Some(event), "open_logged disagrees with open_bytes");
        let reopened = SignedEvent::open_bytes(event.envelope_bytes()).expect("the canonical envelope opens");
        assert_eq!(&reopened, event);
    }
});
