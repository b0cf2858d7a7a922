//! Inference in the log: a node's usage report charges each member's tokens to their commons
//! floor of the day, then their balance, never below zero; a report is charged once, by the node
//! that signs it, and replays to the same state.

use substrate_core::governance::usage::{UsageFault, UsageLine, UsageReport, charge};

use super::*;

fn report(node: &str, seq: u64, lines: &[(&str, u64)]) -> Event {
    let mut lines: Vec<UsageLine> = lines
        .iter()
        .map(|(member, tokens)| UsageLine { member: (*member).into(), requests: 1, tokens: *tokens })
        .collect();
    lines.sort_by(|a, b| a.member.cmp(&b.member));
    Event::Usage(UsageReport {
        node: node.into(),
        seq,
        from: "2026-11-22T00:00:00.000Z".into(),
        to: "2026-11-22T00:00:01.000Z".into(),
        lines,
    })
}

#[test]
fn usage_draws_the_floor_then_the_balance_and_is_charged_once() {
    let mut commons = Commons::found(&[1]);
    commons.attest_all(1, [10, 11]);
    commons.deposit(10, b"a story to earn credits", "narrative");
    commons.register_node(10, 40);
    let now = commons.now;
    let g = commons.state.governance();
    let rate = g.inference_rate();
    let before = g.spendable(&did(10), now);
    assert!(before.floor > 0 && before.balance > 0, "{before:?}");

    // More than the floor: the floor goes first, the balance pays the rest.
    let tokens = before.floor / rate + 500;
    let node = did(40);
    commons.ok(report(&node, 1, &[(&did(10), tokens)]), &key(40));
    let g = commons.state.governance();
    let after = g.spendable(&did(10), commons.now);
    assert_eq!(after.floor, 0, "{after:?}");
    assert_eq!(before.total() - after.total(), charge(tokens, rate));
    let record = g.usage_of(&node).expect("the node's usage");
    assert_eq!((record.seq, record.reports, record.tokens, record.unpaid), (1, 1, tokens, 0));

    // The same report again is the same act; another under a number the log holds is refused.
    let same = commons.apply(report(&node, 1, &[(&did(10), tokens)]), &key(40));
    assert!(matches!(same, Err(Rejection::Duplicate(_))), "{same:?}");
    let again = commons.apply(report(&node, 1, &[(&did(10), tokens + 1)]), &key(40));
    assert_eq!(
        again.map(|_| ()),
        Err(Rejection::Usage(UsageFault::Replayed { node: node.clone(), seq: 1, last: 1 }))
    );
    // A member with nothing left is charged what they have, never below zero; the rest is unpaid.
    let broke = commons.state.governance().spendable(&did(11), commons.now);
    commons.ok(report(&node, 2, &[(&did(11), broke.total() / rate + 1000)]), &key(40));
    let g = commons.state.governance();
    assert_eq!(g.spendable(&did(11), commons.now).total(), 0);
    assert_eq!(g.usage_of(&node).expect("usage").unpaid, charge(1000, rate));

    // The sequencer reports with the log key; nobody else but a registered node reports at all,
    // and a node reports only for itself.
    let log = commons.log.clone();
    commons.ok(report(&substrate_core::identity::did_of(&log.verifying_key()), 1, &[(&did(10), 1)]), &log);
    let stranger = commons.apply(report(&did(41), 1, &[(&did(10), 1)]), &key(41));
    assert_eq!(stranger.map(|_| ()), Err(Rejection::UnregisteredNode(did(41))));
    let forged = commons.apply(report(&node, 3, &[(&did(10), 1)]), &key(10));
    assert!(matches!(forged, Err(Rejection::Usage(UsageFault::NotSigner { .. }))), "{forged:?}");

    // Replayed from its log, the commons comes to the same records.
    let mut again = State::new();
    for (time, signed) in &commons.entries {
        again.apply(again.size(), *time, signed).expect("replays");
    }
    assert_eq!(again.governance().records(), commons.state.governance().records());
}

#[test]
fn a_malformed_report_is_refused_before_the_fold() {
    let lines = |members: &[&str]| -> Vec<UsageLine> {
        members.iter().map(|m| UsageLine { member: (*m).into(), requests: 1, tokens: 5 }).collect()
    };
    let base = UsageReport {
        node: did(40),
        seq: 1,
        from: "2026-11-22T00:00:00.000Z".into(),
        to: "2026-11-22T00:00:01.000Z".into(),
        lines: lines(&[&did(10)]),
    };
    let (a, b) = if did(10) < did(11) { (did(10), did(11)) } else { (did(11), did(10)) };
    let bad = [
        UsageReport { seq: 0, ..base.clone() },
        UsageReport { lines: Vec::new(), ..base.clone() },
        UsageReport { lines: lines(&[&b, &a]), ..base.clone() },
        UsageReport { lines: lines(&[&a, &a]), ..base.clone() },
        UsageReport { lines: lines(&["not a did"]), ..base.clone() },
        UsageReport { from: "yesterday".into(), ..base.clone() },
        UsageReport { from: "2026-11-23T00:00:00.000Z".into(), ..base.clone() },
        UsageReport { lines: vec![UsageLine { member: a.clone(), requests: 0, tokens: 5 }], ..base.clone() },
    ];
    for report in bad {
        let signed = SignedEvent::sign(Event::Usage(report.clone()), &key(40));
        let reopened = SignedEvent::open_bytes(signed.envelope_bytes());
        assert!(reopened.is_err(), "accepted {report:?}");
    }
    let good = SignedEvent::sign(Event::Usage(base), &key(40));
    SignedEvent::open_bytes(good.envelope_bytes()).expect("a good report opens");
}

#[test]
fn a_commons_before_state_encoding_4_does_not_account_inference() {
    let mut commons = Commons::found_encoded(&[1], Some(3));
    commons.attest(1, 10);
    commons.register_node(10, 40);
    let refused = commons.apply(report(&did(40), 1, &[(&did(10), 5)]), &key(40));
    assert_eq!(refused.map(|_| ()), Err(Rejection::Usage(UsageFault::Encoding(3))));
}
