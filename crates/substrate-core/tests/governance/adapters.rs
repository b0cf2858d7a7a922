//! Adapters published in the log: the fold recomputes each one's snapshot from the log, at the
//! size it was taken, however the log moved on since.

use super::*;
use substrate_core::adapter::AdapterPublication;
use substrate_core::snapshot::snapshot_root;

/// What a node that trained on the snapshot of the first `size` entries under `decision` would
/// publish, computed from the state as it is now.
pub(super) fn publication(state: &State, decision: u64, size: u64, adapter: &str) -> Event {
    let registers = state.weighted_registers(decision).expect("a mixture decision");
    let entries = state.snapshot_at(size, &registers);
    Event::Adapter(AdapterPublication {
        name: format!("adapter-{size}"),
        adapter: hex::encode(substrate_core::sha256(adapter.as_bytes())),
        provenance: hex::encode(substrate_core::sha256(format!("provenance of {adapter}").as_bytes())),
        base_model: hex::encode(substrate_core::sha256(b"base model")),
        decision,
        snapshot_size: size,
        snapshot_root: hex::encode(snapshot_root(&entries)),
        deposits: entries.len() as u64,
        requested: requested(),
    })
}

/// A commons with a member (10) who operates node 100, deposits in three registers, and a
/// decided mixture giving `sacred` no weight; returns the decision's index.
fn trained_commons() -> (Commons, u64) {
    let mut commons = Commons::found(&[1]);
    commons.attest_all(1, [10, 11]);
    commons.register_node(10, 100);
    commons.deposit(10, b"a kitchen-table story", "narrative");
    commons.deposit(11, b"a recipe told aloud", "oral");
    commons.deposit(11, b"a psalm", "sacred");
    let ballot = mix(&[("narrative", 0.6), ("oral", 0.4)]);
    let decision =
        commons.pass(1, ProposalClass::Ordinary, vec![Action::SetMixture { ballot }], &[1, 10, 11]);
    (commons, decision)
}

#[test]
fn the_snapshot_at_any_earlier_size_is_recomputed_exactly_from_todays_state() {
    let (mut commons, decision) = trained_commons();
    let registers = commons.state.weighted_registers(decision).expect("mixture");
    assert!(!registers.contains(&register("sacred")), "{registers:?}");
    // Everything that moves a deposit in or out of a snapshot, each at its own size.
    let mut seen: Vec<(u64, Vec<_>)> = vec![(commons.state.size(), commons.state.snapshot(&registers))];
    let mut step = |commons: &mut Commons, event: Event, signer: u8| {
        commons.ok(event, &key(signer));
        seen.push((commons.state.size(), commons.state.snapshot(&registers)));
    };
    let late = Cid::of(b"a late story");
    step(&mut commons, deposit(b"a late story", "narrative"), 11);
    let story = Cid::of(b"a kitchen-table story");
    step(&mut commons, dispute(&story, Ground::Spam, None), 11);
    let dispute_id = commons.state.size() - 1;
    step(&mut commons, ruling(dispute_id, Ruling::Dismiss), 1);
    step(
        &mut commons,
        Event::ConsentChange(substrate_core::event::ConsentChange {
            cid: Some(late.clone()),
            consent: ConsentTier::Local,
            requested: requested(),
        }),
        11,
    );
    step(
        &mut commons,
        Event::Withdrawal(substrate_core::event::Withdrawal {
            cid: Some(Cid::of(b"a recipe told aloud")),
            reason: None,
            requested: requested(),
        }),
        11,
    );
    step(&mut commons, dispute(&late, Ground::Spam, None), 10);
    let sizes: Vec<usize> = seen.iter().map(|(_, s)| s.len()).collect();
    assert_eq!(sizes, [2, 3, 2, 3, 3, 2, 1], "each step moves the snapshot as the rules say");
    for (size, snapshot) in &seen {
        let recomputed = commons.state.snapshot_at(*size, &registers);
        let cids = |s: &[substrate_core::snapshot::SnapshotEntry]| {
            s.iter().map(|e| e.cid.clone()).collect::<Vec<_>>()
        };
        assert_eq!(cids(&recomputed), cids(snapshot), "the snapshot of the first {size} entries");
        assert_eq!(snapshot_root(&recomputed), snapshot_root(snapshot), "the root at size {size}");
    }
}

#[test]
fn a_registered_node_publishes_an_adapter_on_an_earlier_snapshot() {
    let (mut commons, decision) = trained_commons();
    let size = commons.state.size();
    // The log moves on while the run trains.
    commons.deposit(11, b"a story told meanwhile", "narrative");
    commons.ok(
        Event::Withdrawal(substrate_core::event::Withdrawal {
            cid: Some(Cid::of(b"a recipe told aloud")),
            reason: None,
            requested: requested(),
        }),
        &key(11),
    );
    let event = publication(&commons.state, decision, size, "weights");
    let applied = commons.ok(event, &key(100));
    let record = commons.state.governance().adapter(applied.index).expect("the adapter record");
    assert_eq!((record.node.as_str(), record.operator.as_str()), (did(100).as_str(), did(10).as_str()));
    assert_eq!((record.decision, record.snapshot_size, record.deposits), (decision, size, 2));
    // Replay from the envelopes alone agrees, the publication included.
    let mut again = State::new();
    for (index, (time, signed)) in commons.entries.iter().enumerate() {
        again.apply(index as u64, *time, signed).expect("replays");
    }
    assert_eq!(again.root(), commons.state.root());
}

#[test]
fn an_adapter_is_refused_with_the_rule_it_breaks() {
    let (mut commons, decision) = trained_commons();
    let size = commons.state.size();
    let root = commons.state.root();
    let refuse = |commons: &mut Commons, event: Event, signer: u8| {
        let refused = commons.apply(event, &key(signer)).expect_err("refused");
        assert_eq!(commons.state.root(), root, "a refusal leaves the state as it was");
        refused
    };

    // Signed by a member's own key, not a registered node's.
    let event = publication(&commons.state, decision, size, "a");
    let refused = refuse(&mut commons, event, 10);
    assert!(matches!(&refused, Rejection::UnregisteredNode(n) if *n == did(10)), "{refused}");
    assert!(refused.to_string().contains("substrate node-register"), "{refused}");

    // A decision that set no mixture (the first proposal's decision is the mixture; 1 is genesis+1).
    let mut event = publication(&commons.state, decision, size, "b");
    let Event::Adapter(a) = &mut event else { unreachable!() };
    a.decision = 1;
    let refused = refuse(&mut commons, event, 100);
    assert_eq!(refused, Rejection::NotAMixtureDecision(1));
    assert!(refused.to_string().contains("substrate mixture"), "{refused}");

    // A snapshot from before the decision, or from after this entry.
    let mut event = publication(&commons.state, decision, size, "c");
    let Event::Adapter(a) = &mut event else { unreachable!() };
    a.snapshot_size = decision;
    assert!(matches!(refuse(&mut commons, event, 100), Rejection::SnapshotSize { .. }));
    let mut event = publication(&commons.state, decision, size, "d");
    let Event::Adapter(a) = &mut event else { unreachable!() };
    a.snapshot_size = size + 1;
    assert!(matches!(refuse(&mut commons, event, 100), Rejection::SnapshotSize { .. }));

    // A root that is not the log's, and a deposit count that is not.
    let mut event = publication(&commons.state, decision, size, "e");
    let Event::Adapter(a) = &mut event else { unreachable!() };
    a.snapshot_root = hex::encode([7u8; 32]);
    let refused = refuse(&mut commons, event, 100);
    assert!(matches!(refused, Rejection::SnapshotMismatch { .. }), "{refused}");
    assert!(refused.to_string().contains("recomputed from the log"), "{refused}");
    let mut event = publication(&commons.state, decision, size, "f");
    let Event::Adapter(a) = &mut event else { unreachable!() };
    a.deposits += 1;
    assert!(matches!(refuse(&mut commons, event, 100), Rejection::SnapshotMismatch { .. }));

    // The same adapter twice, even restated.
    let event = publication(&commons.state, decision, size, "g");
    let first = commons.ok(event, &key(100)).index;
    let event = publication(&commons.state, decision, size, "g");
    let refused = commons.apply(event, &key(100)).expect_err("twice");
    assert_eq!(
        refused,
        Rejection::AdapterPublished { adapter: hex::encode(substrate_core::sha256(b"g")), id: first }
    );

    // A node whose operator is no longer a member.
    commons.ok(revocation(&did(10), false), &key(1));
    let event = publication(&commons.state, decision, size, "h");
    let refused = commons.apply(event, &key(100)).expect_err("revoked");
    assert_eq!(refused, Rejection::NotMember(did(10)));
}

#[test]
fn an_adapter_statement_must_name_its_weights_as_subject() {
    let (commons, decision) = trained_commons();
    let event = publication(&commons.state, decision, commons.state.size(), "weights");
    let mut statement = event.to_statement();
    statement.subject[0].digest.insert("sha256".into(), hex::encode([1u8; 32]));
    let refused = Event::from_statement(statement).expect_err("a subject that is not the weights");
    assert!(matches!(refused, EventError::Field { field: "subject", .. }), "{refused:?}");
    let mut event = event;
    let Event::Adapter(a) = &mut event else { unreachable!() };
    a.provenance = "not a digest".into();
    let refused = Event::from_statement(event.to_statement()).expect_err("a malformed digest");
    assert!(matches!(refused, EventError::Field { field: "provenance", .. }), "{refused:?}");
}
