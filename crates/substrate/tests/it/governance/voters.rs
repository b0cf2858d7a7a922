//! What voters meet: many members acting at once with identical statements, and proposals whose
//! actions contradict each other or can no longer take effect.

use super::*;

#[test]
fn forty_members_voting_at_once_with_identical_statements_are_all_counted() {
    // A window long enough that no vote arrives after the close, however slow the machine.
    let (commons, board) = found_with_window("busy commons", &["steward"], "10m");
    let steward = &board[0];
    let daemon = commons.start();
    let node = daemon.url.as_str();
    let http = daemon.http();
    let members: Vec<Person> =
        (0..40).map(|i| Person::new(commons.tmp.path(), &format!("member-{i}"))).collect();
    for member in &members {
        let attestation = Event::Attestation(substrate_core::governance::acts::Attestation {
            person: member.did.clone(),
            days: Some(30),
            note: None,
            requested: requested(),
        });
        assert_eq!(post_event(&http, &steward.sign(attestation)).status, 201);
    }
    let id = members[0].propose(node, &["--title", "Larger texts", "--set", "deposit.max-bytes=2097152"]);

    // Half the members sign the very same statement (same proposal, choice and time) and send it
    // at the same moment: each is its own vote.
    let same = Event::Vote(VoteCast {
        proposal: id,
        choice: Vote::Yes,
        mixture: None,
        ranking: None,
        requested: requested(),
    });
    let envelopes: Vec<Envelope> = members[..20].iter().map(|m| m.sign(same.clone())).collect();
    let barrier = std::sync::Barrier::new(envelopes.len());
    let replies: Vec<Reply> = std::thread::scope(|scope| {
        let sent: Vec<_> = envelopes
            .iter()
            .map(|envelope| {
                let (http, barrier) = (http.clone(), &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    post_event(&http, envelope)
                })
            })
            .collect();
        sent.into_iter().map(|t| t.join().expect("the sender thread")).collect()
    });
    let mut indices = std::collections::BTreeSet::new();
    for (member, reply) in members.iter().zip(&replies) {
        assert_eq!(reply.status, 201, "{}: {}", member.did, reply.body);
        let receipt = reply.json();
        assert_eq!(receipt["envelope"]["signatures"][0]["keyid"], member.did.as_str(), "{receipt}");
        assert!(indices.insert(receipt["log_index"].as_u64().expect("log_index")), "{receipt}");
    }
    // The same envelope again is the same act: its original receipt, not a new entry.
    let again = post_event(&http, &envelopes[3]);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["log_index"], replies[3].json()["log_index"]);

    // The other half vote from the command line, all at once.
    let voting: Vec<_> = members[20..]
        .iter()
        .map(|m| {
            let child = crate::util::command(&m.args(node, &["vote", &id.to_string(), "yes"]))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn substrate vote");
            (m, child)
        })
        .collect();
    for (member, child) in voting {
        let out = child.wait_with_output().expect("substrate vote");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}: {stdout}{}", member.did, String::from_utf8_lossy(&out.stderr));
        let index = stdout
            .strip_prefix(&format!("vote on proposal {id}: logged at index "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|index| index.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no index in: {stdout}"));
        assert!(indices.insert(index), "two voters were told index {index}");
    }

    let view = proposal(node, id);
    assert_eq!(view["tally"]["contributor"]["yes"], 40.0, "{view}");
    let voters: std::collections::BTreeSet<&str> =
        view["votes"].as_array().expect("votes").iter().filter_map(|v| v["voter"].as_str()).collect();
    for member in &members {
        assert!(voters.contains(member.did.as_str()), "{} is not in the tally: {view}", member.did);
    }
    let out = replay(&commons);
    assert!(out.starts_with("replay ok:"), "{out}");
}

#[test]
fn contradicting_actions_are_refused_and_skipped_ones_are_shown() {
    let (commons, board) = found("skipping commons", &["steward"]);
    let steward = &board[0];
    let daemon = commons.start();
    let node = daemon.url.as_str();
    let http = daemon.http();
    let ada = Person::new(commons.tmp.path(), "ada");
    steward.attest(node, &ada);

    // A floor above the same register's cap, in one proposal, never opens.
    let err = refused_without_trace(&http, "a floor above its cap", || {
        ada.refused(
            node,
            &[
                "propose",
                "--title",
                "Contradiction",
                "--set",
                "mixture.cap.sacred=0.1",
                "--set",
                "mixture.floor.sacred=0.2",
            ],
        )
    });
    assert_mentions(&err, &["action 2 (set-parameter)", "after this proposal's earlier actions", "sacred"]);

    // An action that can no longer take effect at the close is skipped, and `proposal` says why.
    let cid = deposit(&commons, &ada, node, "leaving", "a text about to be taken back", "oral");
    let id = steward.propose(node, &["--title", "Remove it", "--remove", &cid, "--reason", "spam"]);
    ada.run(node, &["withdraw", &cid, "--reason", "changed my mind"]);
    steward.vote(node, id, &["yes"]);
    ada.vote(node, id, &["yes"]);
    let view = decided(node, id);
    assert_eq!(view["proposal"]["status"]["outcome"]["outcome"], "passed", "{view}");
    assert_eq!(view["effects"][0]["effect"], "skipped", "{view}");
    let (shown, _) = ok(&["proposal", &id.to_string(), "--node", node]);
    assert_mentions(&shown, &["effect: SKIPPED remove-deposit:", &cid]);
}
