//! Decisions are exact: a commons founded with state encoding 3 decides in fixed point, so the
//! technical chamber's decayed and capped weights, both chambers' tallies, the mixture and the
//! board come out the same bits on every platform. They are pinned here, bit for bit, as the
//! golden roots pin the records.

use super::*;

/// A commons with operators whose compute was verified at different ages, a workload decided by
/// the technical chamber, a mixture under a cap and a floor, and a board election with surplus
/// transfers; every number a decision recorded, as `name value-bits` lines.
fn decisions(state_encoding: u32) -> String {
    let mut commons = Commons::found_encoded(&[1], Some(state_encoding));
    commons.attest_all(1, 10..=16);
    for (operator, node) in [(10, 100), (11, 110), (12, 120), (13, 130)] {
        commons.register_node(operator, node);
    }
    commons.receipt(100, &[110], 400).expect("verified compute");
    commons.wait_until(commons.now + 37 * DAY_MS + 12_345);
    commons.receipt(110, &[120], 90).expect("verified compute");
    commons.wait_until(commons.now + 11 * DAY_MS + 999);
    commons.receipt(120, &[100], 7).expect("verified compute");

    let mut lines = Vec::new();
    let line = |name: String, value: f64| format!("{name} {:016x}", value.to_bits());
    for (who, weight) in commons.state.governance().technical_chamber(commons.now) {
        lines.push(line(format!("technical-weight {}", &who[8..16]), weight));
    }

    let workload = commons.propose(10, ProposalClass::Resource, vec![workload("generate", "2")]);
    for (voter, choice) in
        [(10, Vote::Yes), (11, Vote::No), (12, Vote::Yes), (13, Vote::Abstain), (14, Vote::Yes)]
    {
        commons.vote(voter, workload, choice);
    }
    commons.decide(workload).expect("decision");
    let decision = commons.decision_entry(workload).clone();
    for (chamber, tally) in [("contributor", decision.contributor), ("technical", decision.technical)] {
        for (part, value) in
            [("yes", tally.yes), ("no", tally.no), ("abstain", tally.abstain), ("eligible", tally.eligible)]
        {
            lines.push(line(format!("{chamber}-{part}"), value));
        }
    }
    lines.push(format!("workload {:?}", decision.outcome));

    commons.pass(
        1,
        ProposalClass::Ordinary,
        vec![parameter("mixture.cap.technical", json!(0.3)), parameter("mixture.floor.lyric", json!(0.05))],
        &[1, 10, 11, 12],
    );
    let mixture = commons.propose(
        11,
        ProposalClass::Ordinary,
        vec![Action::SetMixture { ballot: mix(&[("narrative", 0.4), ("oral", 0.6)]) }],
    );
    let ballots = [
        (10, mix(&[("narrative", 0.7), ("technical", 0.3)])),
        (12, mix(&[("technical", 0.9), ("sacred", 0.1)])),
        (13, mix(&[("oral", 1.0 / 3.0), ("sacred", 1.0 / 3.0), ("conversational", 1.0 / 3.0)])),
        (14, mix(&[("narrative", 0.25), ("conversational", 0.25), ("pedagogical", 0.5)])),
        (15, mix(&[("oral", 0.55), ("narrative", 0.45)])),
    ];
    for (voter, weights) in &ballots {
        commons.ok(ballot(mixture, Vote::Yes, Some(weights.clone()), None), &key(*voter));
    }
    commons.decide(mixture).expect("decision");
    for (register, weight) in &commons.state.governance().mixture().expect("a mixture").weights {
        lines.push(line(format!("mixture {register}"), *weight));
    }

    let rankings: [(u8, &[u8]); 8] = [
        (1, &[10, 11, 12]),
        (10, &[10, 13]),
        (11, &[10, 12, 11]),
        (12, &[11, 14]),
        (13, &[12, 10]),
        (14, &[13, 11]),
        (15, &[14, 13, 12]),
        (16, &[10, 14]),
    ];
    let (_, _, board) = elect(&mut commons, 3, &[10, 11, 12, 13, 14], &rankings);
    lines.push(format!("board {}", board.iter().map(|d| &d[8..16]).collect::<Vec<_>>().join(" ")));
    lines.push(format!("root {}", hex::encode(commons.state.root())));
    lines.join("\n")
}

#[test]
fn decisions_in_fixed_point_are_pinned_bit_for_bit() {
    let expected = "\
technical-weight z6MkfDSN 3fbcd937ae740000
technical-weight z6Mkj1MD 3fe0000000000000
technical-weight z6MkmNL6 3fd8c9b214624000
technical-weight z6MkpFku 0000000000000000
contributor-yes 4008000000000000
contributor-no 3ff0000000000000
contributor-abstain 3ff0000000000000
contributor-eligible 4020000000000000
technical-yes 3fe39b26f5ce8000
technical-no 3fd8c9b214624000
technical-abstain 0000000000000000
technical-eligible 3fefffffffffa000
workload Passed
mixture conversational 3fc23d70a3d70000
mixture encyclopedic 0000000000000000
mixture lyric 3fa99999999a0000
mixture narrative 3fce666666658000
mixture oral 3fcb5c28f5c30000
mixture pedagogical 3fb23d70a3d70000
mixture sacred 3fc23d70a3d70000
mixture technical 3fc23d70a3d70000
board z6Mkj1MD z6MkpFku z6MkmNL6
root cabeb59a74637b507e85487542261bb0e2221bc652d4873e95662c52fd79c75d";
    assert_eq!(decisions(3), expected);
    // Version 4 decides alike; its root differs by its domain separator and the floor fields.
    let later = decisions(substrate_core::canonical::VERSION);
    let without_root =
        |text: &str| text.lines().filter(|l| !l.starts_with("root")).collect::<Vec<_>>().join("\n");
    assert_eq!(without_root(&later), without_root(expected));
    assert!(
        later.ends_with("root f2999defeada14ecbdb200c5aaeae290a38324c5819213bf9ff8d31285f41e9e"),
        "{later}"
    );
}

#[test]
fn fixed_and_float_arithmetic_reach_the_same_decisions_here() {
    let (fixed, float) = (decisions(3), decisions(2));
    let outcomes = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("workload") || l.starts_with("board"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(outcomes(&fixed), outcomes(&float));
    assert_ne!(fixed, float, "the two arithmetics round differently, and the roots differ");
}
