//! The state root is pinned: one log with every kind of change, from fixed keys at fixed times,
//! must fold to the root committed here, in the canonical encoding with fixed-point decisions a
//! new commons uses, under version 3 (the same without the jobs' later rules), with the `f64`
//! decisions of version 2, and in the JSON encoding of the logs
//! founded before either. A change to either encoding, or to what the fold
//! records, fails here before it can split the nodes of a commons.

use super::*;
use substrate_core::canonical;

/// A log that makes every kind of record: members, a node, deposits, a decided mixture and
/// parameter, a dispute ruled, a withdrawal, a consent change, verified compute with its credits,
/// and an adapter.
fn golden(state_encoding: Option<u32>) -> Commons {
    let mut commons = Commons::found_encoded(&[1], state_encoding);
    commons.attest_all(1, [10, 11, 12]);
    commons.register_node(10, 100);
    commons.register_node(11, 110);
    let story = commons.deposit(10, b"a kitchen-table story", "narrative");
    commons.deposit(11, b"a recipe told aloud", "oral");
    let psalm = commons.deposit(12, b"a psalm for the harvest", "oral");
    let ballot = mix(&[("narrative", 0.6), ("oral", 0.4)]);
    let decision =
        commons.pass(10, ProposalClass::Ordinary, vec![Action::SetMixture { ballot }], &[1, 10, 11, 12]);
    commons.pass(
        11,
        ProposalClass::Ordinary,
        vec![parameter("mixture.cap.sacred", json!(0.5))],
        &[1, 10, 11, 12],
    );
    let dispute_id = commons.ok(dispute(&psalm, Ground::WrongRegister, Some("sacred")), &key(11)).index;
    commons.ok(ruling(dispute_id, relabel("sacred")), &key(1));
    commons.ok(
        Event::ConsentChange(substrate_core::event::ConsentChange {
            cid: Some(Cid::of(b"a recipe told aloud")),
            consent: ConsentTier::TrainingOnly,
            requested: requested(),
        }),
        &key(11),
    );
    commons.receipt(100, &[110], 40).expect("verified compute");
    let size = commons.state.size();
    commons.ok(
        Event::Withdrawal(substrate_core::event::Withdrawal {
            cid: Some(story),
            reason: Some("changed my mind".into()),
            requested: requested(),
        }),
        &key(10),
    );
    let adapter = super::adapters::publication(&commons.state, decision, size, "golden weights");
    commons.ok(adapter, &key(100));
    commons
}

fn root(commons: &Commons) -> String {
    hex::encode(commons.state.root())
}

#[test]
fn a_fixed_log_folds_to_its_committed_state_root() {
    let commons = golden(Some(canonical::VERSION));
    assert_eq!(commons.state.size(), 31, "the golden log changed length");
    assert_eq!(root(&commons), "b26eaccfc7d28612240d504c9ae08a861deb6d687365aa5fa1934e267b38f5a4");
    // Replay from the envelopes alone gives the same root.
    let mut again = State::new();
    for (index, (time, signed)) in commons.entries.iter().enumerate() {
        let reopened = SignedEvent::open_bytes(&signed.envelope.to_bytes()).expect("reopens");
        again.apply(index as u64, *time, &reopened).expect("replays");
    }
    assert_eq!(again.root(), commons.state.root());
}

#[test]
fn a_log_founded_before_the_later_job_rules_keeps_its_root() {
    let commons = golden(Some(3));
    assert_eq!(root(&commons), "fa3cbe6b85d20a44deb899a679209ddfc521cd133a9c4b08b3a16bf4d197afa4");
}

#[test]
fn a_log_founded_with_float_decisions_keeps_its_root() {
    let commons = golden(Some(2));
    assert_eq!(root(&commons), "4a5310e2df39aa5b6f223a012b49b6c0a26399bbc86b6b27377aa9f7a1d49199");
}

#[test]
fn a_log_founded_before_the_canonical_encoding_keeps_its_json_root() {
    let commons = golden(None);
    assert_eq!(root(&commons), "8de9e78fb0dd64ed4e4ff51dad51c931d89229af8dc896e928f0d732dbe9060d");
    assert_ne!(root(&commons), root(&golden(Some(canonical::VERSION))));
}

#[test]
fn a_genesis_naming_an_unknown_state_encoding_is_refused() {
    let log = key(LOG_KEY);
    let signer = substrate_tlog::NoteSigner::new(ORIGIN, log.clone()).expect("note signer");
    let genesis = Event::Genesis(Genesis {
        name: "test".into(),
        origin: ORIGIN.into(),
        log_key: signer.verifier().to_vkey(),
        registers: Register::defaults(),
        handle_prefix: "tag:test.example,2026:d/".into(),
        created: "2026-11-22T00:00:00.000Z".into(),
        stewards: Vec::new(),
        windows: None,
        state_encoding: Some(5),
    });
    let refused = Event::from_statement(genesis.to_statement()).expect_err("version 5");
    assert!(matches!(refused, EventError::Field { field: "stateEncoding", .. }), "{refused:?}");
}

/// Folds `commons`' log twice: whole, and partially, where before each entry a copy of the whole
/// state drops every deposit, act and vote and loads back only what `State::reads` names. Every
/// entry must fold to the same changes, and every act sent a second time must be refused alike:
/// so a ledger that keeps deposits, acts and votes in its tables folds as a whole state does.
fn folds_alike_in_part(commons: &Commons) {
    fn partial_copy(whole: &State, signed: &SignedEvent) -> State {
        let mut partial = whole.clone();
        partial.release();
        let reads = partial.reads(signed);
        if let Some(act) = reads.act
            && let Some(index) = whole.act_index(&act)
        {
            partial.load_act(act, index);
        }
        for cid in &reads.deposits {
            if let Some(record) = whole.deposit(cid) {
                partial.load_deposit(record.clone());
            }
        }
        if reads.every_deposit {
            whole.deposits().for_each(|d| partial.load_deposit(d.clone()));
        }
        for id in &reads.votes_on {
            partial.load_votes(whole.governance().votes_on(*id).cloned());
        }
        partial
    }
    let mut whole = State::new();
    for (index, (time, signed)) in commons.entries.iter().enumerate() {
        let mut partial = partial_copy(&whole, signed);
        assert!(partial.is_partial());
        let expected = whole.apply(index as u64, *time, signed);
        assert_eq!(partial.apply(index as u64, *time, signed), expected, "entry {index}");
        assert!(expected.is_ok(), "entry {index}: {expected:?}");
    }
    assert_eq!(whole.root(), commons.state.root());
    for (time, signed) in &commons.entries {
        let size = whole.size();
        let again = whole.clone().apply(size, *time, signed);
        assert!(matches!(again, Err(Rejection::Duplicate(_)) | Err(Rejection::SecondGenesis)), "{again:?}");
        assert_eq!(partial_copy(&whole, signed).apply(size, *time, signed), again);
    }
}

#[test]
fn a_partial_state_loading_only_what_each_entry_reads_folds_as_the_whole_one() {
    folds_alike_in_part(&golden(Some(canonical::VERSION)));
    folds_alike_in_part(&super::busy_commons());
}
