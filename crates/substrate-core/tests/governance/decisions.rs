//! Proposals, votes and the sequencer's decisions: who may propose and vote, ballots, the mixture a decision sets, and the decision the fold re-checks.

use super::*;

#[test]
fn a_proposal_with_an_unknown_action_does_not_open() {
    let proposer = key(1);
    let statement = proposal(ProposalClass::Ordinary, vec![workload("embed", "1")]).to_statement();
    let mut value = serde_json::to_value(&statement).expect("statement json");
    value["predicate"]["actions"] = json!([{ "action": "transfer-credits", "to": did(2), "amount": 100 }]);
    let envelope = Envelope::sign(serde_json::to_vec(&value).expect("payload"), &proposer);
    let err = SignedEvent::open(envelope).expect_err("an unknown action");
    assert!(
        matches!(&err, EventError::Predicate { kind: "proposal", detail } if detail.contains("transfer-credits")),
        "{err}"
    );
    assert!(err.to_string().contains("unknown variant `transfer-credits`"), "{err}");
}

#[test]
fn a_proposal_below_the_class_its_actions_need_is_refused() {
    let mut commons = Commons::found(&[1]);
    let mut more = substrate_core::register::DEFAULT_REGISTERS.to_vec();
    more.push("legal");
    let cases = [
        (ProposalClass::Ordinary, parameter("registers", json!(more)), "constitutional"),
        (ProposalClass::Resource, parameter("vouching.required", json!(2)), "constitutional"),
        (ProposalClass::Ordinary, parameter("window.ordinary", json!(10_000)), "constitutional"),
        (ProposalClass::Ordinary, parameter("credits.deposit", json!(20)), "resource"),
        (ProposalClass::Ordinary, workload("embed", "1"), "resource"),
    ];
    for (class, action, needed) in cases {
        let refused = commons.apply(proposal(class, vec![action.clone()]), &key(1));
        assert!(
            matches!(&refused, Err(Rejection::Proposal(fault @ ProposalFault::Action { problem: ActionProblem::ClassTooLow { .. }, .. }))
                if fault.to_string().contains(&format!("needs a {needed} proposal"))),
            "{action:?} in a {class:?} proposal: {refused:?}"
        );
        let class =
            if needed == "resource" { ProposalClass::Resource } else { ProposalClass::Constitutional };
        commons.ok(proposal(class, vec![action]), &key(1));
    }

    let unknown = commons.apply(
        proposal(ProposalClass::Constitutional, vec![parameter("transfer.enabled", json!(true))]),
        &key(1),
    );
    assert!(
        matches!(&unknown, Err(Rejection::Proposal(fault)) if fault.to_string().contains("unknown parameter")),
        "{unknown:?}"
    );
    let mixed = commons.apply(
        proposal(
            ProposalClass::Resource,
            vec![parameter("mixture.cap.sacred", json!(0.5)), workload("embed", "1")],
        ),
        &key(1),
    );
    assert_eq!(mixed, Err(Rejection::Proposal(ProposalFault::MixedChambers)));
}

#[test]
fn only_a_verified_member_may_propose() {
    let mut commons = Commons::found(&[1]);
    let action = || vec![parameter("mixture.cap.sacred", json!(0.5))];
    assert_eq!(
        commons.apply(proposal(ProposalClass::Ordinary, action()), &key(10)),
        Err(Rejection::NotMember(did(10)))
    );
    commons.attest(1, 10);
    let id = commons.propose(10, ProposalClass::Ordinary, action());
    let record = commons.proposal(id);
    assert_eq!(
        (record.proposer.clone(), record.lead, record.status.clone()),
        (did(10), Chamber::Contributor, ProposalStatus::Open)
    );
    assert_eq!(record.closes_at, record.opened_at + WINDOWS.ordinary);
}

// Votes.

#[test]
fn only_a_verified_member_may_vote() {
    let mut commons = Commons::found(&[1]);
    let id = commons.propose(1, ProposalClass::Ordinary, vec![parameter("mixture.cap.sacred", json!(0.5))]);
    assert_eq!(commons.apply(vote(id, Vote::Yes), &key(10)), Err(Rejection::NotMember(did(10))));
    assert_eq!(commons.apply(vote(id + 1, Vote::Yes), &key(1)), Err(Rejection::UnknownProposal(id + 1)));
    assert_eq!(commons.state.governance().votes_on(id).count(), 0);
}

#[test]
fn a_second_vote_replaces_the_first() {
    let mut commons = Commons::found(&[1, 2]);
    let id = commons.propose(1, ProposalClass::Ordinary, vec![parameter("mixture.cap.sacred", json!(0.5))]);
    commons.vote(2, id, Vote::Yes);
    commons.vote(2, id, Vote::No);
    let votes: Vec<_> = commons.state.governance().votes_on(id).collect();
    assert_eq!(votes.len(), 1);
    assert_eq!((votes[0].voter.clone(), votes[0].choice), (did(2), Vote::No));

    let (contributor, _) = commons.state.governance().tally(id, commons.now);
    assert_eq!(contributor, ChamberTally { yes: 0.0, no: 1.0, abstain: 0.0, eligible: 2.0 });
    commons.decide(id).expect("decision");
    assert_eq!(commons.decision_entry(id).contributor, contributor);
    assert!(matches!(commons.outcome(id), Outcome::Rejected { .. }));
}

#[test]
fn a_vote_after_the_close_is_refused() {
    let mut commons = Commons::found(&[1, 2]);
    let id = commons.propose(1, ProposalClass::Ordinary, vec![parameter("mixture.cap.sacred", json!(0.5))]);
    let closes_at = commons.proposal(id).closes_at;
    commons.wait_until(closes_at - 1);
    commons.vote(2, id, Vote::Yes);
    commons.wait_until(closes_at);
    // Until the sequencer's decision is in, nothing enters the log after the close.
    assert_eq!(commons.apply(vote(id, Vote::No), &key(1)), Err(Rejection::DecisionPending { proposal: id }));
    commons.decide(id).expect("decision");
    let closed =
        Err(Rejection::VotingClosed { proposal: id, closed: substrate_core::timestamp::rfc3339(closes_at) });
    assert_eq!(commons.apply(vote(id, Vote::No), &key(1)), closed);
}

#[test]
fn a_malformed_mixture_ballot_is_refused() {
    let mut commons = Commons::found(&[1, 2]);
    let proposer_ballot = mix(&[("narrative", 1.0)]);
    let id =
        commons.propose(1, ProposalClass::Ordinary, vec![Action::SetMixture { ballot: proposer_ballot }]);
    let cases = [
        (mix(&[("narrative", 0.5), ("oral", 0.4)]), "sum"),
        (mix(&[("narrative", 0.5), ("poetry", 0.5)]), "poetry"),
        (mix(&[("narrative", 1.5), ("oral", -0.5)]), "weight"),
        (BTreeMap::new(), "sum"),
    ];
    for (weights, says) in cases {
        let refused = commons.apply(ballot(id, Vote::Yes, Some(weights.clone()), None), &key(2));
        assert!(
            matches!(&refused, Err(Rejection::Ballot { proposal, fault: BallotFault::Distribution(detail) }) if *proposal == id && detail.contains(says)),
            "{weights:?}: {refused:?}"
        );
    }
    commons.ok(ballot(id, Vote::Yes, Some(mix(&[("narrative", 0.25), ("oral", 0.75)])), None), &key(2));

    let plain =
        commons.propose(1, ProposalClass::Ordinary, vec![parameter("mixture.cap.sacred", json!(0.5))]);
    let refused = commons.apply(ballot(plain, Vote::Yes, Some(mix(&[("oral", 1.0)])), None), &key(2));
    assert!(
        matches!(refused, Err(Rejection::Ballot { fault: BallotFault::NoMixture, .. })),
        "a mixture on a proposal without one: {refused:?}"
    );
}

#[test]
fn a_ranking_is_accepted_only_on_an_election_of_its_candidates() {
    let mut commons = Commons::found(&[1, 2]);
    commons.attest_all(1, [10, 11]);
    let plain =
        commons.propose(1, ProposalClass::Ordinary, vec![parameter("mixture.cap.sacred", json!(0.5))]);
    let refused = commons.apply(ballot(plain, Vote::Yes, None, Some(vec![did(10)])), &key(2));
    assert_eq!(refused, Err(Rejection::Ballot { proposal: plain, fault: BallotFault::NoElection }));

    let election = commons.propose(
        1,
        ProposalClass::Ordinary,
        vec![Action::ElectBoard { seats: 1, candidates: vec![did(10), did(11)] }],
    );
    let cases = [
        (vec![did(12)], BallotFault::NotACandidate(did(12))),
        (vec![did(10), did(10)], BallotFault::RankedTwice(did(10))),
    ];
    for (ranking, fault) in cases {
        let refused = commons.apply(ballot(election, Vote::Yes, None, Some(ranking.clone())), &key(2));
        assert_eq!(refused, Err(Rejection::Ballot { proposal: election, fault }), "{ranking:?}");
    }
    commons.ok(ballot(election, Vote::Yes, None, Some(vec![did(11), did(10)])), &key(2));
}

// Decisions.

#[test]
fn a_passed_mixture_is_the_independent_markets_aggregate_of_the_ballots() {
    let mut commons = Commons::found(&[1, 2, 3]);
    commons.attest_all(1, [10, 11]);
    let proposed = mix(&[("narrative", 0.5), ("oral", 0.5)]);
    let id = commons.propose(1, ProposalClass::Ordinary, vec![Action::SetMixture { ballot: proposed }]);
    // The proposer's own vote replaces the ballot in the action; a vote without a ballot adds none.
    let ballots = [
        (1, mix(&[("narrative", 0.6), ("oral", 0.2), ("lyric", 0.2)])),
        (2, mix(&[("narrative", 0.2), ("technical", 0.8)])),
        (3, mix(&[("sacred", 1.0)])),
        (10, mix(&[("narrative", 0.3), ("oral", 0.3), ("lyric", 0.4)])),
    ];
    for (voter, weights) in &ballots {
        commons.ok(ballot(id, Vote::Yes, Some(weights.clone()), None), &key(*voter));
    }
    commons.vote(11, id, Vote::No);
    let index = commons.decide(id).expect("decision").index;
    assert_eq!(commons.outcome(id), Outcome::Passed);

    let expected = mixture::aggregate::<Fixed>(
        &Register::defaults(),
        &ballots.iter().map(|(_, weights)| MixtureBallot { weights: weights.clone() }).collect::<Vec<_>>(),
        &MixtureRules::default(),
    )
    .expect("aggregate");
    let record = commons.state.governance().mixture().expect("a mixture");
    assert_eq!(record.weights, expected.weights);
    assert_eq!((record.decision, record.proposal, record.ballots), (index, id, 4));
    assert_eq!(record.weights.len(), Register::defaults().len());
    assert_distribution(&record.weights);
    assert_eq!(
        commons.decision_entry(id).effects,
        vec![Effect::Mixture { weights: expected.weights, ballots: 4 }]
    );
    let decision = commons.decision_entry(id);
    assert_eq!(
        commons.proposal(id).status,
        ProposalStatus::Closed {
            decision: index,
            outcome: Outcome::Passed,
            contributor: decision.contributor,
            technical: decision.technical
        }
    );
}

#[test]
fn a_decision_must_be_signed_by_the_log_key() {
    let mut commons = Commons::found(&[1, 2]);
    let id = commons.propose(1, ProposalClass::Ordinary, vec![parameter("mixture.cap.sacred", json!(0.5))]);
    commons.vote(2, id, Vote::Yes);
    commons.wait_until(commons.proposal(id).closes_at);
    let decision = commons.state.decision(id).expect("decision");
    for steward in [1, 2] {
        assert_eq!(
            commons.apply(Event::Decision(decision.clone()), &key(steward)),
            Err(Rejection::NotLogKey(did(steward)))
        );
    }
    assert_eq!(commons.proposal(id).status, ProposalStatus::Open);
    commons.decide(id).expect("the log key's decision");
}

#[test]
fn a_decision_that_differs_from_the_tally_is_refused() {
    let mut commons = Commons::found(&[1, 2]);
    commons.attest(1, 10);
    let id = commons.propose(
        1,
        ProposalClass::Ordinary,
        vec![Action::SetMixture { ballot: mix(&[("oral", 1.0)]) }],
    );
    commons.vote(2, id, Vote::Yes);
    commons.vote(10, id, Vote::No);
    commons.wait_until(commons.proposal(id).closes_at);
    let honest = commons.state.decision(id).expect("decision");
    let log = commons.log.clone();

    let mut tampered: Vec<Decision> = Vec::new();
    let mut yes = honest.clone();
    yes.contributor.yes += 1.0;
    tampered.push(yes);
    let mut eligible = honest.clone();
    eligible.contributor.eligible -= 1.0;
    tampered.push(eligible);
    let mut outcome = honest.clone();
    outcome.outcome = Outcome::Rejected { reason: "the sequencer did not like it".into() };
    outcome.effects.clear();
    tampered.push(outcome);
    let mut weights = honest.clone();
    weights.effects = vec![Effect::Mixture { weights: mix(&[("sacred", 1.0)]), ballots: 1 }];
    tampered.push(weights);
    let mut closed_at = honest.clone();
    closed_at.closed_at -= 1;
    tampered.push(closed_at);
    for decision in tampered {
        let refused = commons.apply(Event::Decision(decision.clone()), &log);
        assert!(
            matches!(&refused, Err(Rejection::DecisionMismatch { proposal, .. }) if *proposal == id),
            "{decision:?}: {refused:?}"
        );
    }
    assert!(commons.state.governance().mixture().is_none());
    commons.decide(id).expect("the honest decision");
}

#[test]
fn a_decision_before_the_close_is_refused() {
    let mut commons = Commons::found(&[1, 2]);
    let id = commons.propose(1, ProposalClass::Ordinary, vec![parameter("mixture.cap.sacred", json!(0.5))]);
    commons.vote(2, id, Vote::Yes);
    let closes_at = commons.proposal(id).closes_at;
    commons.wait_until(closes_at - 1);
    let early = commons.state.decision(id).expect("decision");
    let log = commons.log.clone();
    let refused = commons.apply(Event::Decision(early.clone()), &log);
    assert!(
        matches!(&refused, Err(e @ Rejection::DecisionEarly { .. }) if e.to_string().contains("cannot be decided before")),
        "{refused:?}"
    );
    commons.wait_until(closes_at);
    let index = commons.ok(Event::Decision(early), &log).index;
    assert!(matches!(
        commons.proposal(id).status,
        ProposalStatus::Closed { decision, outcome: Outcome::Passed, .. } if decision == index
    ));
    let same = commons.state.decision(id).expect("decision");
    assert_eq!(commons.apply(Event::Decision(same.clone()), &log), Err(Rejection::Duplicate(index)));
    let mut other = same;
    other.contributor.abstain += 1.0;
    let refused = commons.apply(Event::Decision(other), &log);
    assert!(
        matches!(&refused, Err(e @ Rejection::AlreadyDecided(_)) if e.to_string().contains("already decided")),
        "{refused:?}"
    );
}

#[test]
fn a_rejected_mixture_leaves_the_mixture_as_it_was() {
    let mut commons = Commons::found(&[1, 2]);
    // Fourteen members: one yes is under the 10% approval quorum.
    commons.attest_all(1, 10..22);
    let set = |weights: &[(&str, f64)]| vec![Action::SetMixture { ballot: mix(weights) }];
    commons.pass(1, ProposalClass::Ordinary, set(&[("oral", 0.5), ("lyric", 0.5)]), &[1, 2, 10]);
    let before = commons.state.governance().mixture().cloned().expect("a mixture");

    let tie = commons.propose(10, ProposalClass::Ordinary, set(&[("sacred", 1.0)]));
    for (voter, choice) in
        [(10, Vote::Yes), (11, Vote::Yes), (12, Vote::No), (13, Vote::No), (14, Vote::Abstain)]
    {
        commons.vote(voter, tie, choice);
    }
    commons.decide(tie).expect("decision");
    assert!(matches!(commons.outcome(tie), Outcome::Rejected { .. }), "{:?}", commons.outcome(tie));
    assert!(commons.decision_entry(tie).effects.is_empty());
    assert_eq!(commons.state.governance().mixture(), Some(&before));

    let quiet = commons.propose(11, ProposalClass::Ordinary, set(&[("technical", 1.0)]));
    commons.vote(11, quiet, Vote::Yes);
    commons.decide(quiet).expect("decision");
    let Outcome::Rejected { reason } = commons.outcome(quiet) else { panic!("{:?}", commons.outcome(quiet)) };
    assert!(reason.contains("eligible"), "{reason}");
    assert_eq!(commons.decision_entry(quiet).contributor.eligible, 14.0);
    assert_eq!(commons.state.governance().mixture(), Some(&before));
}

#[test]
fn a_cap_of_zero_holds_whatever_the_ballots_give() {
    let mut commons = Commons::found(&[1, 2, 3]);
    commons.attest_all(1, [10, 11]);
    commons.pass(1, ProposalClass::Ordinary, vec![parameter("mixture.cap.sacred", json!(0.0))], &[1, 2]);
    assert_eq!(commons.params().mixture_caps.get(&register("sacred")), Some(&0.0));

    let half_sacred = |rest: &str| mix(&[("sacred", 0.5), (rest, 0.5)]);
    let id =
        commons.propose(1, ProposalClass::Ordinary, vec![Action::SetMixture { ballot: half_sacred("oral") }]);
    for (voter, rest) in [(2, "narrative"), (3, "lyric"), (10, "oral"), (11, "technical")] {
        commons.ok(ballot(id, Vote::Yes, Some(half_sacred(rest)), None), &key(voter));
    }
    commons.decide(id).expect("decision");
    let weights = &commons.state.governance().mixture().expect("a mixture").weights;
    assert_eq!(weights[&register("sacred")], 0.0, "{weights:?}");
    assert_distribution(weights);
}

// The technical chamber.
