//! The in-toto Statement inside an envelope, and its predicate: every event kind a node accepts
//! (deposits, consent, governance acts, jobs, adapters, tokens), parsed and checked field by
//! field by `Event::from_statement`, then folded by `State::apply` into a commons with members
//! and open proposals.
//!
//! The input is the envelope's payload. It is wrapped as a member's envelope and opened as a
//! logged entry (no signature to forge); what opens is also signed for real and must open the
//! same through `open_bytes`. An event's own statement parses back to the same event.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use substrate_core::envelope::{EnvelopeSignature, PAYLOAD_TYPE};
use substrate_core::event::MAX_ENVELOPE_BYTES;
use substrate_core::{Envelope, Event, SignedEvent};
use substrate_fuzz::{Ballots, VOTER, did, key};

static COMMONS: LazyLock<Ballots> = LazyLock::new(Ballots::new);
static SIGNER: LazyLock<String> = LazyLock::new(|| did(VOTER));

fuzz_target!(|data: &[u8]| {
    let envelope = Envelope {
        payload_type: PAYLOAD_TYPE.to_owned(),
        payload: data.to_vec(),
        signatures: vec![EnvelopeSignature { keyid: SIGNER.clone(), sig: vec![0; 64] }],
    };
    let Ok(opened) = SignedEvent::open_logged(&envelope.to_bytes()) else { return };

    let restated =
        Event::from_statement(opened.event.to_statement()).expect("an event's own statement parses");
    assert_eq!(restated, opened.event, "an event does not survive its own statement");
    let _ = opened.event.control_characters();

    let signed = Envelope::sign(data.to_vec(), &key(VOTER));
    if signed.to_bytes().len() <= MAX_ENVELOPE_BYTES {
        let at_once =
            SignedEvent::open_bytes(&signed.to_bytes()).expect("a signed statement that parses opens");
        assert_eq!(at_once.event, opened.event);
        assert_eq!(at_once.statement_digest, opened.statement_digest);
    }

    let commons = &*COMMONS;
    let mut state = commons.state.clone();
    let _ = state.reads(&opened);
    if state.apply(state.size(), commons.now, &opened).is_ok() {
        let _ = state.root();
    }
});
