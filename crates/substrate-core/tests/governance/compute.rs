//! Verified compute: job receipts, the workloads the technical chamber approves, and the compute that weighs in that chamber.

use super::*;

#[test]
fn a_job_is_credited_once_and_only_for_an_approved_workload() {
    let mut commons = Commons::found(&[1]);
    commons.attest_all(1, [10, 11]);
    commons.register_node(10, 100);
    commons.register_node(11, 110);
    let mut unapproved = SignedEvent::sign(job_receipt(&did(100), 10), &key(100));
    unapproved.cosign(&key(110));
    let unapproved = commons.submit(unapproved);
    assert!(
        matches!(&unapproved, Err(Rejection::Compute(ComputeFault::WorkloadNotApproved(w))) if w == "embed@1"),
        "{unapproved:?}"
    );
    commons.approve_embed();
    let Event::JobReceipt(mut job) = job_receipt(&did(100), 10) else { unreachable!() };
    let mut signed = SignedEvent::sign(Event::JobReceipt(job.clone()), &key(100));
    signed.cosign(&key(110));
    commons.submit(signed).expect("verified compute");
    job.requested = requested();
    let mut again = SignedEvent::sign(Event::JobReceipt(job), &key(100));
    again.cosign(&key(110));
    let twice = commons.submit(again);
    assert!(matches!(&twice, Err(Rejection::Compute(ComputeFault::AlreadyCredited(_)))), "{twice:?}");
}

#[test]
fn a_workload_is_decided_by_the_technical_chamber_weighted_by_verified_compute() {
    let mut commons = Commons::found(&[1, 2]);
    commons.attest_all(1, [10, 11, 12]);
    for (operator, node) in [(10, 100), (11, 110), (12, 120)] {
        commons.register_node(operator, node);
    }
    // Until some compute is verified every operator weighs the same.
    let technical = commons.state.governance().technical_chamber(commons.now);
    assert_eq!(technical.len(), 3, "{technical:?}");
    assert!(technical.values().all(|w| (w - 1.0 / 3.0).abs() < 1e-12), "{technical:?}");

    let index = commons.receipt(100, &[110], 400).expect("verified compute").index;
    commons.receipt(110, &[120], 100).expect("verified compute");
    let grant = commons.state.governance().compute().find(|c| c.receipt == index).expect("a grant");
    assert_eq!(
        (grant.operator.clone(), grant.verifiers.clone(), grant.units),
        (did(10), vec![did(110)], 400)
    );
    // sqrt(400) : sqrt(100), and 12 has verified nothing (but still counts in the cap's N).
    let technical = commons.state.governance().technical_chamber(commons.now);
    assert_eq!(technical.len(), 3, "{technical:?}");
    assert_eq!(technical[&did(12)], 0.0, "{technical:?}");
    assert!((technical[&did(10)] - 2.0 / 3.0).abs() < 1e-6, "{technical:?}");
    assert!((technical[&did(11)] - 1.0 / 3.0).abs() < 1e-6, "{technical:?}");

    let approve = || vec![workload("embed", "1")];
    // The operators carry it though the contributors are split.
    let carried = commons.propose(1, ProposalClass::Resource, approve());
    assert_eq!(commons.proposal(carried).lead, Chamber::Technical);
    for (voter, choice) in [(10, Vote::Yes), (11, Vote::No), (1, Vote::Yes), (2, Vote::No)] {
        commons.vote(voter, carried, choice);
    }
    let index = commons.decide(carried).expect("decision").index;
    assert_eq!(commons.outcome(carried), Outcome::Passed);
    let decision = commons.decision_entry(carried);
    assert!(
        (decision.technical.yes - 2.0 / 3.0).abs() < 1e-6 && (decision.technical.eligible - 1.0).abs() < 1e-9
    );
    let approved: Vec<_> = commons
        .state
        .governance()
        .workloads()
        .map(|w| (w.kind.clone(), w.version.clone(), w.decision))
        .collect();
    assert_eq!(approved, vec![("embed".to_owned(), "1".to_owned(), index)]);

    // The contributors' yes does not carry it against the operators' weight.
    let refused = commons.propose(1, ProposalClass::Resource, vec![workload("index", "1")]);
    for (voter, choice) in [(1, Vote::Yes), (2, Vote::Yes), (11, Vote::Yes), (12, Vote::Yes), (10, Vote::No)]
    {
        commons.vote(voter, refused, choice);
    }
    commons.decide(refused).expect("decision");
    assert!(matches!(commons.outcome(refused), Outcome::Rejected { .. }), "{:?}", commons.outcome(refused));

    // The contributor chamber holds a veto.
    let vetoed = commons.propose(1, ProposalClass::Resource, vec![workload("generate", "1")]);
    for (voter, choice) in [(10, Vote::Yes), (1, Vote::No), (2, Vote::No), (12, Vote::No)] {
        commons.vote(voter, vetoed, choice);
    }
    commons.decide(vetoed).expect("decision");
    assert_eq!(commons.outcome(vetoed), Outcome::Vetoed { by: Chamber::Contributor });
    assert_eq!(commons.state.governance().workloads().count(), 1);
}

#[test]
fn compute_counts_only_when_a_node_of_another_operator_cosigns_it() {
    let mut commons = Commons::found(&[1]);
    commons.attest_all(1, [10, 11]);
    for (operator, node) in [(10, 100), (10, 101), (11, 110)] {
        commons.register_node(operator, node);
    }
    let cases: [(u8, &[u8]); 6] = [
        (100, &[101]),      // the same operator's other node
        (100, &[]),         // nobody
        (100, &[11]),       // a person, not a node
        (100, &[110, 101]), // another operator, and the same one
        (102, &[110]),      // an unregistered worker
        (100, &[120]),      // an unregistered verifier
    ];
    for (worker, verifiers) in cases {
        let refused = commons.receipt(worker, verifiers, 10);
        assert!(matches!(refused, Err(Rejection::Compute(_))), "{worker} with {verifiers:?}: {refused:?}");
    }
    // Another node cannot report work in the worker's name.
    let mut forged = SignedEvent::sign(job_receipt(&did(100), 10), &key(110));
    forged.cosign(&key(101));
    assert!(matches!(commons.submit(forged), Err(Rejection::Compute(_))));
    assert!(matches!(commons.receipt(100, &[110], 0), Err(Rejection::Compute(_))));
    assert_eq!(commons.state.governance().compute().count(), 0);

    commons.receipt(100, &[110], 10).expect("verified compute");
    assert_eq!(commons.state.governance().compute().count(), 1);
}

#[test]
fn a_revoked_operators_node_cannot_verify_compute() {
    let mut commons = Commons::found(&[1]);
    commons.attest_all(1, [10, 11]);
    commons.register_node(10, 100);
    commons.register_node(11, 110);
    // 11 turns out to be 10 again.
    commons.ok(revocation(&did(11), true), &key(1));
    let refused = commons.receipt(100, &[110], 50);
    assert!(matches!(refused, Err(Rejection::Compute(_))), "{refused:?}");
}
