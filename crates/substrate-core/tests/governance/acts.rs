//! What identifies an act (the statement and who signed it), and a proposal's actions checked
//! together when it is made.

use super::*;

// What identifies an act: the statement and who signed it.

/// A commons in which `signers.len()` distinct keys each sign the same statement of `kind`:
/// the commons, the signed envelopes in the order given, and how many of them the rules accept
/// (the others must be refused with a reason, never merged into another signer's entry).
fn identical_statements(kind: &str, signers: &[u8]) -> (Commons, Vec<SignedEvent>, usize) {
    let mut commons = Commons::found(&[1, 2, 3, 4, 5, 6]);
    commons.attest_all(1, 10..=16);
    let n = signers.len();
    // Stewards sign what only stewards may; members the rest.
    let stewards: Vec<u8> = signers.iter().map(|s| s % 6 + 1).collect();
    let members: Vec<u8> = signers.iter().map(|s| s % 7 + 10).collect();
    let each = |event: &Event, keys: &[u8]| -> Vec<SignedEvent> {
        keys.iter().map(|k| SignedEvent::sign(event.clone(), &key(*k))).collect()
    };
    let (signed, accepted) = match kind {
        "genesis" => {
            let genesis = commons.entries[0].1.event.clone();
            (each(&genesis, &members), 0)
        }
        "deposit" => (each(&deposit(b"the same words", "oral"), &members), 1),
        "withdrawal" | "consent-change" => {
            let depositor = members[0];
            let cid = commons.deposit(depositor, b"a text to take back", "oral");
            let event = if kind == "withdrawal" {
                Event::Withdrawal(substrate_core::event::Withdrawal {
                    cid: Some(cid),
                    reason: None,
                    requested: requested(),
                })
            } else {
                Event::ConsentChange(substrate_core::event::ConsentChange {
                    cid: Some(cid),
                    consent: ConsentTier::Local,
                    requested: requested(),
                })
            };
            (each(&event, &members), 1)
        }
        "attestation" => (each(&attestation(&did(30), None), &stewards), n),
        "revocation" => (each(&revocation(&did(16), false), &stewards), 1),
        "node-registration" => {
            let operator = members[0];
            (each(&node_registration(&did(operator), &key(200)), &members), 1)
        }
        "proposal" => (
            each(
                &proposal(ProposalClass::Ordinary, vec![parameter("mixture.cap.sacred", json!(0.5))]),
                &members,
            ),
            n,
        ),
        "vote" => {
            let id = commons.propose(
                16,
                ProposalClass::Ordinary,
                vec![parameter("mixture.cap.sacred", json!(0.5))],
            );
            (each(&vote(id, Vote::Yes), &members), n)
        }
        "decision" => {
            let id = commons.propose(
                16,
                ProposalClass::Ordinary,
                vec![parameter("mixture.cap.sacred", json!(0.5))],
            );
            commons.vote(16, id, Vote::Yes);
            let closes_at = commons.proposal(id).closes_at;
            commons.wait_until(closes_at);
            let decision = Event::Decision(commons.state.decision(id).expect("tally"));
            let mut signed = each(&decision, &members[1..]);
            signed.insert(0, SignedEvent::sign(decision, &commons.log));
            (signed, 1)
        }
        "dispute" => {
            let cid = commons.deposit(16, b"a disputed text", "oral");
            (each(&dispute(&cid, Ground::Spam, None), &members), n)
        }
        "dispute-ruling" => {
            let cid = commons.deposit(16, b"a text to rule on", "oral");
            let id = commons.ok(dispute(&cid, Ground::Spam, None), &key(15)).index;
            let quorum = commons.params().ruling_quorum(6);
            (each(&ruling(id, Ruling::Dismiss), &stewards), n.min(quorum))
        }
        "job-receipt" => {
            // The worker signs; each envelope carries another operator's node as its verifier.
            commons.register_node(10, 100);
            for operator in 11..=16 {
                commons.register_node(operator, operator * 10);
            }
            commons.approve_embed();
            let job = job_receipt(&did(100), 10);
            let signed = members
                .iter()
                .map(|m| {
                    let mut signed = SignedEvent::sign(job.clone(), &key(100));
                    signed.cosign(&key((m % 6 + 11) * 10));
                    signed
                })
                .collect();
            (signed, 1)
        }
        "adapter" => {
            // The same publication signed by each member's registered node: one adapter, once.
            for member in &members {
                commons.register_node(*member, member * 10);
            }
            commons.deposit(16, b"a text to train on", "oral");
            let ballot = mix(&[("oral", 1.0)]);
            let voters: Vec<u8> = (10..=16).collect();
            let decision =
                commons.pass(16, ProposalClass::Ordinary, vec![Action::SetMixture { ballot }], &voters);
            let event =
                super::adapters::publication(&commons.state, decision, commons.state.size(), "weights");
            let nodes: Vec<u8> = members.iter().map(|m| m * 10).collect();
            (each(&event, &nodes), 1)
        }
        "node-offer" => {
            // Each member's node signs the offer of the first member's node: only it offers itself.
            for member in &members {
                commons.register_node(*member, member * 10);
            }
            let offer = super::jobs::offer(members[0] * 10, &[]);
            let nodes: Vec<u8> = members.iter().map(|m| m * 10).collect();
            (each(&offer, &nodes), 1)
        }
        "job-request" | "job-schedule" | "job-result" => {
            // Node 100 of operator 10 offers embedding; every member holds a deposit's credits.
            commons.register_node(10, 100);
            commons.approve_embed();
            commons.ok(super::jobs::offer(100, &["embed@1"]), &key(100));
            for member in 10..=16 {
                commons.deposit(member, format!("credits for {member}").as_bytes(), "oral");
            }
            let request = super::jobs::job_request("embed@1", 1);
            if kind == "job-request" {
                return (commons, each(&request, &members), n);
            }
            let job = commons.ok(request, &key(members[0])).index;
            let assign = Event::JobSchedule(substrate_core::governance::jobs::JobSchedule {
                job,
                step: substrate_core::governance::jobs::Step::Assign {
                    node: did(100),
                    role: substrate_core::governance::jobs::Role::Run,
                    deadline: commons.now + 30_000,
                },
            });
            if kind == "job-schedule" {
                // Only the log key schedules; members signing the same step are refused.
                let mut signed = each(&assign, &members[1..]);
                signed.insert(0, SignedEvent::sign(assign, &commons.log));
                return (commons, signed, 1);
            }
            let log = commons.log.clone();
            let assignment = commons.ok(assign, &log).index;
            let result =
                super::jobs::job_result(job, assignment, 100, None, Some("the model would not load"), 5);
            // Only the assigned node answers; the same words from members' keys are refused.
            let mut signed = each(&result, &members[1..]);
            signed.insert(0, SignedEvent::sign(result, &key(100)));
            return (commons, signed, 1);
        }
        "token-grant" | "token-revocation" => {
            let text = "sub_0000000000000000000000000000000000000000001";
            let grant = Event::TokenGrant(substrate_core::governance::tokens::TokenGrant {
                token: substrate_core::governance::tokens::token_digest(text),
                label: "laptop".into(),
                expires: substrate_core::timestamp::rfc3339(commons.now + 86_400_000),
                requested: requested(),
            });
            if kind == "token-grant" {
                // One digest is one token: the first member's is minted, the same digest refused.
                return (commons, each(&grant, &members), 1);
            }
            commons.ok(grant, &key(members[0]));
            let revocation = Event::TokenRevocation(substrate_core::governance::tokens::TokenRevocation {
                token: substrate_core::governance::tokens::token_digest(text),
                requested: requested(),
            });
            // Only its member (or a steward) revokes it, once.
            (each(&revocation, &members), 1)
        }
        "doi-registration" => {
            // The same DOI recorded by each steward: one deposit has one DOI, recorded once.
            let cid = commons.deposit(16, b"a text with a doi", "oral");
            let event = Event::DoiRegistration(substrate_core::governance::doi::DoiRegistration {
                cid: cid.to_string(),
                doi: "10.5072/abcd-1234".into(),
                registrar: "datacite".into(),
                requested: requested(),
            });
            (each(&event, &stewards), 1)
        }
        "usage" => {
            // Each member's node signs the report of the first member's node: only it reports
            // its own usage, once.
            for member in &members {
                commons.register_node(*member, member * 10);
            }
            let report = Event::Usage(substrate_core::governance::usage::UsageReport {
                node: did(members[0] * 10),
                seq: 1,
                from: "2026-11-22T00:00:00.000Z".into(),
                to: "2026-11-22T00:00:01.000Z".into(),
                lines: vec![substrate_core::governance::usage::UsageLine {
                    member: did(members[0]),
                    requests: 1,
                    tokens: 10,
                }],
            });
            let nodes: Vec<u8> = members.iter().map(|m| m * 10).collect();
            (each(&report, &nodes), 1)
        }
        other => panic!("no scenario for the event kind {other}"),
    };
    (commons, signed, accepted)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// N distinct keys signing the same statement are N acts: each is either an entry of its own
    /// (and moves the state root) or refused with the rule it breaks, never merged into another
    /// signer's entry; the same signers' same statement again gets the original entry back.
    #[test]
    fn identical_statements_from_distinct_signers_are_distinct_acts(
        kind in 0..KINDS.len(),
        n in 2usize..=6,
        rotation in 0usize..6,
    ) {
        let kind = KINDS[kind];
        // Distinct signers, in an order the rotation varies.
        let signers: Vec<u8> = (0..n).map(|i| ((i + rotation) % n) as u8).collect();
        let (mut commons, signed, expected) = identical_statements(kind, &signers);
        let distinct: std::collections::BTreeSet<_> = signed.iter().map(|s| s.signers.clone()).collect();
        prop_assert_eq!(distinct.len(), n, "the {} scenario must give distinct signers", kind);
        let statements: std::collections::BTreeSet<_> = signed.iter().map(|s| s.statement_digest).collect();
        prop_assert_eq!(statements.len(), 1, "the {} scenario must give one statement", kind);

        let mut accepted = Vec::new();
        for envelope in &signed {
            let (size, root) = (commons.state.size(), commons.state.root());
            match commons.submit(envelope.clone()) {
                Ok(applied) => {
                    prop_assert_eq!(applied.index, size);
                    prop_assert_ne!(commons.state.root(), root, "an accepted {} must move the state root", kind);
                    accepted.push((applied.index, envelope.clone()));
                }
                Err(rejection) => {
                    prop_assert!(
                        !matches!(rejection, Rejection::Duplicate(_)),
                        "a {} signed by {:?} was merged into another signer's entry: {}",
                        kind, envelope.signers, rejection
                    );
                    prop_assert!(!rejection.to_string().is_empty());
                    prop_assert_eq!((commons.state.size(), commons.state.root()), (size, root));
                }
            }
        }
        prop_assert_eq!(accepted.len(), expected, "{} acts of kind {} accepted", accepted.len(), kind);
        // Each accepted act is counted where the rules count it.
        let now = commons.now;
        match kind {
            "vote" => {
                let id = commons.state.governance().proposals().map(|p| p.id).max().expect("proposal");
                let (contributor, _) = commons.state.governance().tally(id, now);
                prop_assert_eq!(contributor.yes, n as f64);
            }
            "proposal" => prop_assert_eq!(commons.state.governance().proposals().count(), n),
            "dispute" => prop_assert_eq!(commons.state.governance().disputes().count(), n),
            "attestation" => prop_assert_eq!(commons.member(30).attested_by.len(), n),
            _ => {}
        }
        // The same signers' same statement is the same act: its original entry, not a new one.
        for (index, envelope) in &accepted {
            let reopened = SignedEvent::open_bytes(&envelope.envelope.to_bytes()).expect("reopens");
            let size = commons.state.size();
            prop_assert_eq!(commons.state.apply(size, now, &reopened), Err(Rejection::Duplicate(*index)));
        }
        // Replay from the envelopes alone agrees.
        let mut again = State::new();
        for (index, (time, signed)) in commons.entries.iter().enumerate() {
            let reopened = SignedEvent::open_bytes(&signed.envelope.to_bytes()).expect("reopens");
            again.apply(index as u64, *time, &reopened).expect("replays");
        }
        prop_assert_eq!(again.root(), commons.state.root());
    }
}

#[test]
fn a_proposal_whose_actions_contradict_each_other_is_refused_when_proposed() {
    let mut commons = Commons::found(&[1]);
    commons.attest(1, 10);
    for actions in [
        vec![parameter("mixture.cap.sacred", json!(0.1)), parameter("mixture.floor.sacred", json!(0.2))],
        vec![parameter("mixture.floor.sacred", json!(0.2)), parameter("mixture.cap.sacred", json!(0.1))],
    ] {
        let refused = commons.apply(proposal(ProposalClass::Ordinary, actions), &key(10));
        let Err(Rejection::Proposal(fault)) = &refused else { panic!("accepted: {refused:?}") };
        assert!(
            matches!(
                fault,
                ProposalFault::Action {
                    position: 2,
                    problem: ActionProblem::Parameter { after: true, .. },
                    ..
                }
            ),
            "{fault:?}"
        );
        assert_eq!(fault.code(), "proposal_parameter");
        let detail = fault.to_string();
        assert!(detail.starts_with("action 2 (set-parameter)"), "{detail}");
        assert!(detail.contains("after this proposal's earlier actions"), "{detail}");
    }
    // Each alone, or both consistent, is fine.
    commons.ok(
        proposal(
            ProposalClass::Ordinary,
            vec![parameter("mixture.cap.sacred", json!(0.3)), parameter("mixture.floor.sacred", json!(0.2))],
        ),
        &key(10),
    );
}
