//! Disputes and rulings: the board's k-of-n rulings, appeals to the chambers, and removals.

use super::*;

#[test]
fn a_ruling_applies_at_k_board_signatures_and_the_deposit_returns_to_training() {
    let mut commons = Commons::found(&[1, 2, 3]);
    commons.attest_all(1, [10, 11]);
    let cid = commons.deposit(10, b"a song about the river", "narrative");
    assert!(commons.in_training(&cid));
    let id = commons.ok(dispute(&cid, Ground::WrongRegister, Some("lyric")), &key(11)).index;
    assert!(!commons.in_training(&cid));
    assert!(commons.state.governance().under_dispute(&cid));

    commons.ok(ruling(id, relabel("lyric")), &key(1));
    let record = commons.state.governance().dispute(id).expect("dispute");
    assert_eq!(record.status, DisputeStatus::Open);
    assert_eq!(record.endorsements, vec![Endorsement { ruling: relabel("lyric"), signers: vec![did(1)] }]);
    assert_eq!(commons.register_of(&cid), register("narrative"));
    assert!(!commons.in_training(&cid));
    // A different ruling does not add up with it.
    commons.ok(ruling(id, Ruling::Dismiss), &key(3));
    assert_eq!(commons.state.governance().dispute(id).expect("dispute").status, DisputeStatus::Open);

    let index = commons.ok(ruling(id, relabel("lyric")), &key(2)).index;
    assert_eq!(
        commons.state.governance().dispute(id).expect("dispute").status,
        DisputeStatus::Ruled { ruling: relabel("lyric"), log_index: index, signers: vec![did(1), did(2)] }
    );
    assert_eq!(commons.register_of(&cid), register("lyric"));
    assert!(commons.state.deposit(&cid).expect("deposit").history.contains(&index));
    assert!(commons.in_training(&cid));
    assert!(!commons.state.governance().under_dispute(&cid));

    let late = commons.apply(ruling(id, Ruling::Dismiss), &key(3));
    assert!(matches!(late, Err(Rejection::AlreadyRuled(_))), "{late:?}");
    // Dispute work earns credits: each signer, and the member whose dispute was upheld.
    let rates = commons.params().credits;
    let share = f64::from(rates.stability_share_ppm) / 1e6;
    let statement = |n: u8| commons.state.governance().credit_statement(&did(n), commons.now);
    assert_eq!(statement(1).earned, rates.dispute as f64 * (1.0 - share));
    assert_eq!(statement(11).earned, rates.review as f64 * (1.0 - share));
    assert_eq!(statement(3).earned, 0.0);
}

#[test]
fn one_cosigned_ruling_can_remove_a_deposit() {
    let mut commons = Commons::found(&[1, 2, 3]);
    commons.attest_all(1, [10, 11]);
    let cid = commons.deposit(10, b"buy cheap watches", "narrative");
    let id = commons.ok(dispute(&cid, Ground::Spam, None), &key(11)).index;
    let mut signed = SignedEvent::sign(ruling(id, Ruling::Remove), &key(1));
    signed.cosign(&key(3));
    let signed = SignedEvent::open(signed.envelope).expect("a co-signed ruling opens");
    assert_eq!(signed.signers, vec![did(1), did(3)]);
    let at = commons.now;
    let index = commons.submit(signed).expect("ruling").index;
    assert_eq!(
        commons.state.deposit(&cid).expect("deposit").status,
        DepositStatus::Removed { log_index: index, at }
    );
    assert!(!commons.in_training(&cid));
    assert!(!commons.state.governance().under_dispute(&cid));
    assert_eq!(commons.state.governance().credit_statement(&did(10), commons.now).balance, 0.0);
}

#[test]
fn only_stewards_rule() {
    let mut commons = Commons::found(&[1, 2, 3]);
    commons.attest_all(1, [10, 11]);
    let cid = commons.deposit(10, b"a recipe", "narrative");
    let id = commons.ok(dispute(&cid, Ground::WrongRegister, Some("pedagogical")), &key(11)).index;
    assert_eq!(commons.apply(ruling(id, Ruling::Dismiss), &key(10)), Err(Rejection::NotSteward(did(10))));
    let mut mixed = SignedEvent::sign(ruling(id, Ruling::Dismiss), &key(1));
    mixed.cosign(&key(11));
    assert_eq!(commons.submit(mixed), Err(Rejection::NotSteward(did(11))));
    assert_eq!(
        commons.apply(ruling(id + 1, Ruling::Dismiss), &key(1)),
        Err(Rejection::UnknownDispute(id + 1))
    );
    let record = commons.state.governance().dispute(id).expect("dispute");
    assert!(record.endorsements.is_empty());

    assert_eq!(
        commons.apply(dispute(&cid, Ground::Harm, None), &key(12)),
        Err(Rejection::NotMember(did(12)))
    );
}

#[test]
fn an_appeal_to_the_chambers_applies_its_ruling() {
    let mut commons = Commons::found(&[1, 2, 3]);
    commons.attest_all(1, [10, 11]);
    let cid = commons.deposit(10, b"a prayer for rain", "sacred");
    let id = commons.ok(dispute(&cid, Ground::WrongRegister, Some("oral")), &key(11)).index;
    let mut signed = SignedEvent::sign(ruling(id, relabel("oral")), &key(1));
    signed.cosign(&key(2));
    commons.submit(signed).expect("ruling");
    assert_eq!(commons.register_of(&cid), register("oral"));

    let appeal = || vec![Action::ResolveDispute { dispute: id, ruling: relabel("sacred") }];
    let decision = commons.pass(10, ProposalClass::Ordinary, appeal(), &[1, 10, 11]);
    assert_eq!(commons.register_of(&cid), register("sacred"));
    assert_eq!(
        commons.state.governance().dispute(id).expect("dispute").status,
        DisputeStatus::Resolved { ruling: relabel("sacred"), decision }
    );
    assert!(commons.in_training(&cid));
    let again = commons.apply(
        proposal(
            ProposalClass::Ordinary,
            vec![Action::ResolveDispute { dispute: id, ruling: Ruling::Remove }],
        ),
        &key(10),
    );
    assert!(
        matches!(
            &again,
            Err(Rejection::Proposal(ProposalFault::Action {
                problem: ActionProblem::DisputeResolved { .. } | ActionProblem::Ruling(_),
                ..
            }))
        ),
        "{again:?}"
    );
}

// Credits.

#[test]
fn endorsements_of_a_former_steward_do_not_count() {
    let mut commons = Commons::found(&[1, 2, 3]);
    commons.attest_all(1, [10, 11, 12]);
    let cid = commons.deposit(12, b"a fishing song", "narrative");
    let id = commons.ok(dispute(&cid, Ground::WrongRegister, Some("lyric")), &key(11)).index;
    commons.ok(ruling(id, relabel("lyric")), &key(1));
    let rankings: [(u8, &[u8]); 3] = [(1, &[10, 11]), (2, &[11, 10]), (3, &[10, 11])];
    let (_, _, elected) = elect(&mut commons, 2, &[10, 11], &rankings);
    assert_eq!(elected, vec![did(10), did(11)]);
    assert!(!commons.state.governance().is_steward(&did(1)));

    // One signature of the two the new board needs.
    commons.ok(ruling(id, relabel("lyric")), &key(10));
    assert_eq!(commons.state.governance().dispute(id).expect("dispute").status, DisputeStatus::Open);
    assert_eq!(commons.register_of(&cid), register("narrative"));
}

#[test]
fn a_removal_and_a_ruling_in_one_decision_leave_the_deposit_removed() {
    let mut commons = Commons::found(&[1, 2]);
    commons.attest_all(1, [10, 11]);
    let cid = commons.deposit(10, b"a doubtful text", "narrative");
    let id = commons.ok(dispute(&cid, Ground::WrongRegister, Some("lyric")), &key(11)).index;
    let actions = vec![
        Action::RemoveDeposit { cid: cid.clone(), reason: "harm".into() },
        Action::ResolveDispute { dispute: id, ruling: relabel("lyric") },
    ];
    commons.pass(1, ProposalClass::Ordinary, actions, &[1, 2, 11]);
    let status = commons.state.deposit(&cid).expect("deposit").status.clone();
    assert!(status.is_gone(), "{status:?}");
    assert!(!commons.in_training(&cid));
}
