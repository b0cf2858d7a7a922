//! Membership: stewards' attestations, vouching, revocations, and the node keys members register.

use super::*;

#[test]
fn a_steward_attests_a_person_for_the_attestation_days() {
    let mut commons = Commons::found(&[1, 2]);
    let days = commons.params().attestation_days;
    let at = commons.now;
    commons.attest(1, 10);
    let member = commons.member(10);
    assert_eq!(member.status, MemberStatus::Verified);
    assert_eq!(member.expires_at, at + u64::from(days) * DAY_MS);
    assert_eq!(member.attested_by, vec![did(1)]);

    let at = commons.now;
    commons.ok(attestation(&did(11), Some(30)), &key(2));
    let expires_at = at + 30 * DAY_MS;
    assert_eq!(commons.member(11).expires_at, expires_at);
    assert!(commons.state.governance().is_verified(&did(11), expires_at - 1));
    assert!(!commons.state.governance().is_verified(&did(11), expires_at));

    for days in [0, days + 1] {
        let refused = commons.apply(attestation(&did(12), Some(days)), &key(1));
        assert!(matches!(refused, Err(Rejection::AttestationDays { .. })), "{days} days: {refused:?}");
    }
    assert!(commons.state.governance().member(&did(12)).is_none());
}

#[test]
fn a_member_who_is_not_a_steward_cannot_attest_while_vouching_is_off() {
    let mut commons = Commons::found(&[1, 2]);
    commons.attest(1, 10);
    assert_eq!(commons.params().vouches_required, 0);
    assert_eq!(commons.apply(attestation(&did(11), None), &key(10)), Err(Rejection::NotSteward(did(10))));
    assert_eq!(commons.apply(attestation(&did(11), None), &key(12)), Err(Rejection::NotSteward(did(12))));
    assert!(commons.state.governance().member(&did(11)).is_none());
}

#[test]
fn an_expired_member_can_no_longer_vote() {
    let mut commons = Commons::found(&[1]);
    let attested_at = commons.now;
    commons.ok(attestation(&did(10), Some(1)), &key(1));
    let expires_at = attested_at + DAY_MS;

    commons.wait_until(expires_at - 30_000);
    let id = commons.propose(1, ProposalClass::Ordinary, vec![parameter("mixture.cap.sacred", json!(0.5))]);
    commons.vote(10, id, Vote::Yes);

    commons.wait_until(expires_at);
    assert!(commons.now < commons.proposal(id).closes_at);
    let late = commons.apply(vote(id, Vote::No), &key(10));
    assert!(matches!(&late, Err(Rejection::MembershipExpired { who, .. }) if *who == did(10)), "{late:?}");
    let refused = commons.apply(proposal(ProposalClass::Ordinary, vec![workload("embed", "1")]), &key(10));
    assert!(matches!(refused, Err(Rejection::MembershipExpired { .. })), "{refused:?}");

    // A steward renews the membership with a new attestation.
    commons.attest(1, 10);
    commons.vote(10, id, Vote::No);
}

#[test]
fn a_steward_revokes_a_membership() {
    let mut commons = Commons::found(&[1, 2]);
    commons.attest_all(1, [10, 11]);
    assert_eq!(commons.apply(revocation(&did(10), false), &key(11)), Err(Rejection::NotSteward(did(11))));
    assert_eq!(commons.apply(revocation(&did(12), false), &key(1)), Err(Rejection::NotMember(did(12))));

    let index = commons.ok(revocation(&did(10), false), &key(2)).index;
    assert!(
        matches!(&commons.member(10).status, MemberStatus::Revoked { log_index, duplicate: false, .. } if *log_index == index),
        "{:?}",
        commons.member(10)
    );
    assert!(commons.member(10).history.contains(&index));
    let again = commons.apply(revocation(&did(10), false), &key(1));
    assert!(matches!(again, Err(Rejection::AlreadyRevoked(_))), "{again:?}");

    let id = commons.propose(1, ProposalClass::Ordinary, vec![parameter("mixture.cap.sacred", json!(0.5))]);
    assert_eq!(commons.apply(vote(id, Vote::Yes), &key(10)), Err(Rejection::NotMember(did(10))));
    assert_eq!(commons.state.decision(id).expect("decision").contributor.eligible, 3.0, "1, 2 and 11");

    // A revocation that was not for a duplicate can be undone by a new attestation.
    commons.attest(1, 10);
    assert_eq!(commons.member(10).status, MemberStatus::Verified);
}

#[test]
fn vouching_verifies_after_a_constitutional_vote_and_a_duplicate_costs_the_vouchers_their_right() {
    let mut commons = Commons::found(&[1, 2, 3]);
    commons.attest_all(1, [10, 11, 12]);
    let turn_on = || vec![parameter("vouching.required", json!(2))];
    let too_low = commons.apply(proposal(ProposalClass::Resource, turn_on()), &key(1));
    assert!(
        matches!(&too_low, Err(Rejection::Proposal(f)) if f.code() == "proposal_class_too_low"),
        "{too_low:?}"
    );
    commons.pass(1, ProposalClass::Constitutional, turn_on(), &[1, 2, 3, 10]);
    assert_eq!(commons.params().vouches_required, 2);

    commons.ok(attestation(&did(20), None), &key(10));
    assert_eq!(commons.member(20).status, MemberStatus::Pending);
    assert!(!commons.state.governance().is_verified(&did(20), commons.now));
    // A second vouch by the same member counts once.
    commons.ok(attestation(&did(20), None), &key(10));
    assert_eq!(commons.member(20).status, MemberStatus::Pending);
    assert_eq!(commons.member(20).vouches.len(), 1);
    let myself = commons.apply(attestation(&did(11), None), &key(11));
    assert!(matches!(myself, Err(Rejection::SelfAttestation)), "{myself:?}");

    commons.ok(attestation(&did(20), None), &key(11));
    assert_eq!(commons.member(20).status, MemberStatus::Verified);
    assert_eq!(commons.member(20).attested_by, vec![did(10), did(11)]);
    assert!(commons.member(20).vouches.is_empty());

    // 20 turns out to be someone already verified.
    let index = commons.ok(revocation(&did(20), true), &key(1)).index;
    assert!(!commons.member(10).may_vouch);
    assert!(!commons.member(11).may_vouch);
    assert!(commons.member(12).may_vouch);
    assert!(commons.member(10).history.contains(&index));
    let refused = commons.apply(attestation(&did(21), None), &key(10));
    assert!(
        matches!(&refused, Err(e @ Rejection::MayNotVouch(_)) if e.to_string().contains("lost the right to vouch")),
        "{refused:?}"
    );
    commons.ok(attestation(&did(21), None), &key(12));
    assert_eq!(commons.member(21).status, MemberStatus::Pending);

    // A duplicate stays revoked, whoever attests them.
    let back = commons.apply(attestation(&did(20), None), &key(1));
    assert!(matches!(back, Err(Rejection::RevokedDuplicate(_))), "{back:?}");
}

#[test]
fn vouching_neither_renews_nor_undoes_a_revocation_and_node_keys_are_not_persons() {
    let mut commons = Commons::found(&[1, 2, 3]);
    commons.attest_all(1, [10, 11, 12]);
    commons.register_node(12, 120);
    commons.pass(
        1,
        ProposalClass::Constitutional,
        vec![parameter("vouching.required", json!(1))],
        &[1, 2, 3],
    );
    commons.ok(revocation(&did(11), false), &key(1));
    let undo = commons.apply(attestation(&did(11), None), &key(10));
    assert!(
        matches!(&undo, Err(e @ Rejection::StewardOnly { .. }) if e.to_string().contains("only a steward")),
        "{undo:?}"
    );
    let renew = commons.apply(attestation(&did(12), None), &key(10));
    assert!(
        matches!(&renew, Err(e @ Rejection::StewardOnly { .. }) if e.to_string().contains("only a steward")),
        "{renew:?}"
    );
    let node = commons.apply(attestation(&did(120), None), &key(10));
    assert!(
        matches!(&node, Err(e @ Rejection::NodeKeyNotPerson(_)) if e.to_string().contains("node key")),
        "{node:?}"
    );
    // A steward can bring the revoked member back.
    commons.ok(attestation(&did(11), None), &key(1));
    assert_eq!(commons.member(11).status, MemberStatus::Verified);
}

#[test]
fn one_steward_cannot_revoke_the_others() {
    let mut commons = Commons::found(&[1, 2, 3]);
    let alone = commons.apply(revocation(&did(2), false), &key(1));
    assert!(
        matches!(&alone, Err(e @ Rejection::StewardRevocation { .. }) if e.to_string().contains("2 stewards")),
        "{alone:?}"
    );
    let mut signed = SignedEvent::sign(revocation(&did(2), false), &key(1));
    signed.cosign(&key(3));
    commons.submit(signed).expect("two of three stewards revoke a third");
    assert!(!commons.state.governance().is_verified(&did(2), commons.now));
}

#[test]
fn a_node_is_registered_only_with_its_own_binding_signature() {
    let mut commons = Commons::found(&[1]);
    commons.attest_all(1, [10, 11]);
    let index = commons.ok(node_registration(&did(10), &key(100)), &key(10)).index;
    let node = commons.state.governance().nodes().find(|n| n.node == did(100)).expect("node");
    assert_eq!((node.operator.clone(), node.log_index), (did(10), index));

    let binding_refused = |result: Result<Applied, Rejection>| matches!(&result, Err(Rejection::NodeBinding(detail)) if detail.contains("binding"));
    // Node 101 agreed to be bound to 11, not to 10.
    let other_operator = node_registration(&did(11), &key(101));
    assert!(binding_refused(commons.apply(other_operator, &key(10))));
    // The operator signs in the node's place.
    let mut by_operator = node_registration(&did(10), &key(10));
    if let Event::NodeRegistration(n) = &mut by_operator {
        n.node = did(101);
    }
    assert!(binding_refused(commons.apply(by_operator, &key(10))));
    // A binding to the same operator in another commons.
    let elsewhere = key(101).sign(&node_binding_message("other.example/commons", &did(10)));
    let elsewhere = Event::NodeRegistration(NodeRegistration {
        node: did(101),
        binding: STANDARD.encode(elsewhere.to_bytes()),
        requested: requested(),
    });
    assert!(binding_refused(commons.apply(elsewhere, &key(10))));
    let garbage = Event::NodeRegistration(NodeRegistration {
        node: did(101),
        binding: "not base64!".into(),
        requested: requested(),
    });
    assert!(binding_refused(commons.apply(garbage, &key(10))));

    let taken = commons.apply(node_registration(&did(11), &key(100)), &key(11));
    assert!(matches!(taken, Err(Rejection::NodeTaken { .. })), "{taken:?}");
    let person = commons.apply(node_registration(&did(10), &key(11)), &key(10));
    assert!(matches!(person, Err(Rejection::PersonKeyNotNode(_))), "a person's key is no node: {person:?}");
    assert_eq!(
        commons.apply(node_registration(&did(12), &key(102)), &key(12)),
        Err(Rejection::NotMember(did(12)))
    );
    assert_eq!(commons.state.governance().nodes().count(), 1);
}

// Proposals.
