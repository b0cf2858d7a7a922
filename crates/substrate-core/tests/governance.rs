//! Governance in the state fold, driven only through `State::apply`: membership and vouching,
//! node bindings, proposals, votes, the sequencer's decisions, the technical chamber, board
//! elections, disputes, credits, and replay.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use proptest::prelude::*;
use serde_json::json;

use substrate_core::event::{Deposit, EventError, Genesis, KINDS};
use substrate_core::governance::acts::{
    Action, ActionProblem, Attestation, BallotFault, ComputeFault, Decision, Dispute, DisputeRuling, Effect,
    Ground, JobReceipt, NodeRegistration, Proposal, ProposalFault, Revocation, Ruling, VoteCast,
    node_binding_message,
};
use substrate_core::governance::book::{
    Board, DisputeStatus, Endorsement, Member, MemberStatus, ProposalRecord, ProposalStatus, STABILITY_POOL,
    day_of, decay,
};
use substrate_core::governance::mixture::{self, MixtureBallot, MixtureRules};
use substrate_core::governance::number::Fixed;
use substrate_core::governance::params::{DAY_MS, Parameters, Windows};
use substrate_core::governance::stv::{self, RankedBallot};
use substrate_core::governance::tally::{self, Chamber, ChamberTally, Outcome, ProposalClass, Vote};
use substrate_core::identity::did_of;
use substrate_core::state::{Applied, DepositStatus, Rejection};
use substrate_core::{Cid, ConsentTier, Envelope, Event, Register, SignedEvent, State};

const ORIGIN: &str = "test.example/commons";
const LOG_KEY: u8 = 42;
const WINDOWS: Windows = Windows { ordinary: 60_000, resource: 60_000, constitutional: 120_000 };
/// 2027-01-15, ms since the epoch.
const START: u64 = 1_800_000_000_000;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn did(n: u8) -> String {
    did_of(&key(n).verifying_key())
}

fn register(name: &str) -> Register {
    Register::new(name).expect("register name")
}

/// A distribution over registers.
fn mix(weights: &[(&str, f64)]) -> BTreeMap<Register, f64> {
    weights.iter().map(|(name, weight)| (register(name), *weight)).collect()
}

/// A fresh `requested` value, so that no two statements of a test are the same statement; the
/// same on every run of a test (each test counts on its own thread), so logs are reproducible.
fn requested() -> String {
    thread_local!(static NEXT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) });
    NEXT.with(|next| {
        let n = next.get();
        next.set(n + 1);
        format!("request-{n}")
    })
}

fn attestation(person: &str, days: Option<u32>) -> Event {
    Event::Attestation(Attestation { person: person.to_owned(), days, note: None, requested: requested() })
}

fn revocation(person: &str, duplicate: bool) -> Event {
    Event::Revocation(Revocation {
        person: person.to_owned(),
        reason: "the attestation was mistaken".into(),
        duplicate,
        requested: requested(),
    })
}

/// `node` agrees to be bound to `operator` in this commons.
fn node_registration(operator: &str, node: &SigningKey) -> Event {
    let binding = node.sign(&node_binding_message(ORIGIN, operator));
    Event::NodeRegistration(NodeRegistration {
        node: did_of(&node.verifying_key()),
        binding: STANDARD.encode(binding.to_bytes()),
        requested: requested(),
    })
}

fn proposal(class: ProposalClass, actions: Vec<Action>) -> Event {
    Event::Proposal(Proposal {
        title: "A proposal".into(),
        summary: None,
        class,
        actions,
        requested: requested(),
    })
}

fn parameter(key: &str, value: serde_json::Value) -> Action {
    Action::SetParameter { key: key.to_owned(), value }
}

fn workload(kind: &str, version: &str) -> Action {
    Action::ApproveWorkload { kind: kind.to_owned(), version: version.to_owned(), models: Vec::new() }
}

fn ballot(
    proposal: u64,
    choice: Vote,
    mixture: Option<BTreeMap<Register, f64>>,
    ranking: Option<Vec<String>>,
) -> Event {
    Event::Vote(VoteCast { proposal, choice, mixture, ranking, requested: requested() })
}

fn vote(proposal: u64, choice: Vote) -> Event {
    ballot(proposal, choice, None, None)
}

fn deposit(text: &[u8], register_name: &str) -> Event {
    Event::Deposit(Deposit {
        cid: Some(Cid::of(text)),
        register: register(register_name),
        secondary_registers: Vec::new(),
        consent: ConsentTier::Public,
        title: "A text".into(),
        language: "en".into(),
        license: "CC-BY-4.0".into(),
        media_type: "text/plain; charset=utf-8".into(),
        size: text.len() as u64,
        created: "2026-11-22T00:00:00.000Z".into(),
    })
}

fn dispute(cid: &Cid, ground: Ground, register_name: Option<&str>) -> Event {
    Event::Dispute(Dispute {
        cid: Some(cid.clone()),
        ground,
        detail: "this text is not what its label says".into(),
        register: register_name.map(register),
        requested: requested(),
    })
}

fn ruling(dispute: u64, ruling: Ruling) -> Event {
    Event::DisputeRuling(DisputeRuling {
        dispute,
        ruling,
        reason: "the board looked at it".into(),
        requested: requested(),
    })
}

fn relabel(register_name: &str) -> Ruling {
    Ruling::Relabel { register: register(register_name) }
}

/// A job receipt for a distinct job (its input digest is new each time).
fn job_receipt(node: &str, units: u64) -> Event {
    let request = requested();
    Event::JobReceipt(JobReceipt {
        workload: "embed@1".into(),
        node: node.to_owned(),
        units,
        inputs: vec![hex::encode(substrate_core::sha256(request.as_bytes()))],
        outputs: Vec::new(),
        requested: request,
    })
}

/// A commons under test: its state, its log key, a clock the test controls, and every entry the
/// state accepted with the time it was integrated at.
struct Commons {
    state: State,
    log: SigningKey,
    now: u64,
    entries: Vec<(u64, SignedEvent)>,
}

impl Commons {
    /// Founds a commons with the default registers, short windows and these stewards.
    fn found(stewards: &[u8]) -> Commons {
        Commons::found_encoded(stewards, Some(substrate_core::canonical::VERSION))
    }

    /// [`Commons::found`] with the state encoding its genesis names (none: version 1).
    fn found_encoded(stewards: &[u8], state_encoding: Option<u32>) -> Commons {
        let log = key(LOG_KEY);
        let signer = substrate_tlog::NoteSigner::new(ORIGIN, log.clone()).expect("note signer");
        let genesis = Event::Genesis(Genesis {
            name: "test".into(),
            origin: ORIGIN.into(),
            log_key: signer.verifier().to_vkey(),
            registers: Register::defaults(),
            handle_prefix: "tag:test.example,2026:d/".into(),
            created: "2026-11-22T00:00:00.000Z".into(),
            stewards: stewards.iter().map(|n| did(*n)).collect(),
            windows: Some(WINDOWS),
            state_encoding,
        });
        let mut commons = Commons { state: State::new(), log: log.clone(), now: START, entries: Vec::new() };
        commons.ok(genesis, &log);
        commons
    }

    /// Applies `signed` as the next entry, integrated now; the clock moves on by 1 ms if accepted.
    fn submit(&mut self, signed: SignedEvent) -> Result<Applied, Rejection> {
        let applied = self.state.apply(self.state.size(), self.now, &signed)?;
        self.entries.push((self.now, signed));
        self.now += 1;
        Ok(applied)
    }

    fn apply(&mut self, event: Event, key: &SigningKey) -> Result<Applied, Rejection> {
        self.submit(SignedEvent::sign(event, key))
    }

    fn ok(&mut self, event: Event, key: &SigningKey) -> Applied {
        let kind = event.kind();
        self.apply(event, key).unwrap_or_else(|e| panic!("the {kind} was refused: {e}"))
    }

    fn wait_until(&mut self, time: u64) {
        self.now = self.now.max(time);
    }

    fn attest(&mut self, steward: u8, person: u8) {
        self.ok(attestation(&did(person), None), &key(steward));
    }

    fn attest_all(&mut self, steward: u8, persons: impl IntoIterator<Item = u8>) {
        for person in persons {
            self.attest(steward, person);
        }
    }

    fn register_node(&mut self, operator: u8, node: u8) {
        self.ok(node_registration(&did(operator), &key(node)), &key(operator));
    }

    /// Approves the `embed@1` workload the job receipts name, once: every operator votes yes.
    fn approve_embed(&mut self) {
        if self.state.governance().workloads().any(|w| w.kind == "embed" && w.version == "1") {
            return;
        }
        let now = self.now;
        let operators: std::collections::BTreeSet<String> = self
            .state
            .governance()
            .nodes()
            .map(|n| n.operator.clone())
            .filter(|o| self.state.governance().is_verified(o, now))
            .collect();
        let keys: Vec<u8> = (0..=u8::MAX).filter(|n| operators.contains(&did(*n))).collect();
        self.pass(keys[0], ProposalClass::Resource, vec![workload("embed", "1")], &keys);
    }

    /// A job receipt signed by `worker` and co-signed by `verifiers`.
    fn receipt(&mut self, worker: u8, verifiers: &[u8], units: u64) -> Result<Applied, Rejection> {
        self.approve_embed();
        let mut signed = SignedEvent::sign(job_receipt(&did(worker), units), &key(worker));
        for verifier in verifiers {
            signed.cosign(&key(*verifier));
        }
        self.submit(signed)
    }

    fn deposit(&mut self, depositor: u8, text: &[u8], register_name: &str) -> Cid {
        self.ok(deposit(text, register_name), &key(depositor));
        Cid::of(text)
    }

    fn propose(&mut self, proposer: u8, class: ProposalClass, actions: Vec<Action>) -> u64 {
        self.ok(proposal(class, actions), &key(proposer)).index
    }

    fn vote(&mut self, voter: u8, id: u64, choice: Vote) {
        self.ok(vote(id, choice), &key(voter));
    }

    /// Signs the decision the state computes for `id` with the log key and applies it at the
    /// proposal's close (or now, if later).
    fn decide(&mut self, id: u64) -> Result<Applied, Rejection> {
        let closes_at = self.proposal(id).closes_at;
        self.wait_until(closes_at);
        let decision = self.state.decision(id)?;
        let log = self.log.clone();
        self.apply(Event::Decision(decision), &log)
    }

    /// Proposes `actions`, has `voters` vote yes and decides; returns the decision's index.
    fn pass(&mut self, proposer: u8, class: ProposalClass, actions: Vec<Action>, voters: &[u8]) -> u64 {
        let id = self.propose(proposer, class, actions);
        for voter in voters {
            self.vote(*voter, id, Vote::Yes);
        }
        let index = self.decide(id).expect("decision").index;
        assert_eq!(self.outcome(id), Outcome::Passed, "proposal {id}");
        index
    }

    fn proposal(&self, id: u64) -> &ProposalRecord {
        self.state.governance().proposal(id).expect("proposal")
    }

    fn outcome(&self, id: u64) -> Outcome {
        match &self.proposal(id).status {
            ProposalStatus::Closed { outcome, .. } => outcome.clone(),
            ProposalStatus::Open => panic!("proposal {id} is still open"),
        }
    }

    /// The decision entry that closed proposal `id`.
    fn decision_entry(&self, id: u64) -> &Decision {
        self.entries
            .iter()
            .find_map(|(_, signed)| match &signed.event {
                Event::Decision(d) if d.proposal == id => Some(d),
                _ => None,
            })
            .expect("a decision entry")
    }

    fn member(&self, n: u8) -> &Member {
        self.state.governance().member(&did(n)).expect("member")
    }

    fn params(&self) -> &Parameters {
        self.state.governance().parameters().expect("parameters")
    }

    fn in_training(&self, cid: &Cid) -> bool {
        self.state.training_snapshot().any(|d| &d.cid == cid)
    }

    fn register_of(&self, cid: &Cid) -> Register {
        self.state.deposit(cid).expect("deposit").register.clone()
    }
}

fn assert_distribution(weights: &BTreeMap<Register, f64>) {
    let sum: f64 = weights.values().sum();
    assert!((sum - 1.0).abs() < 1e-9, "weights sum to {sum}: {weights:?}");
    assert!(weights.values().all(|w| (0.0..=1.0).contains(w)), "{weights:?}");
}

// Membership.

#[test]
fn a_vocabulary_with_a_register_twice_is_refused() {
    let log = SigningKey::from_bytes(&[200; 32]);
    let signer = substrate_tlog::NoteSigner::new("test.example/twice", log.clone()).expect("signer");
    let genesis = Event::Genesis(Genesis {
        name: "twice".into(),
        origin: "test.example/twice".into(),
        log_key: signer.verifier().to_vkey(),
        registers: vec![register("oral"), register("oral")],
        handle_prefix: "tag:test.example,2026:t/".into(),
        created: "2026-11-22T00:00:00.000Z".into(),
        stewards: Vec::new(),
        windows: None,
        state_encoding: Some(substrate_core::canonical::VERSION),
    });
    let signed = SignedEvent::sign(genesis, &log);
    let opened = SignedEvent::open(signed.envelope);
    assert!(matches!(&opened, Err(EventError::Field { field: "registers", .. })), "{opened:?}");
}

// Node registration.

#[test]
fn splitting_compute_across_nodes_gains_no_technical_weight() {
    let technical = |split: bool| {
        let mut commons = Commons::found(&[1]);
        commons.attest_all(1, [10, 11]);
        commons.register_node(10, 100);
        commons.register_node(11, 110);
        if split {
            commons.register_node(10, 101);
        }
        commons.approve_embed();
        let at = commons.now + 1000;
        let verified = |commons: &mut Commons, worker: u8, verifier: u8, units: u64| {
            commons.now = at;
            commons.receipt(worker, &[verifier], units).expect("verified compute");
        };
        if split {
            verified(&mut commons, 100, 110, 250);
            verified(&mut commons, 101, 110, 150);
        } else {
            verified(&mut commons, 100, 110, 400);
        }
        verified(&mut commons, 110, 100, 100);
        commons.state.governance().technical_chamber(at + 30 * DAY_MS)
    };
    let (one, two) = (technical(false), technical(true));
    assert_eq!(one.keys().collect::<Vec<_>>(), two.keys().collect::<Vec<_>>());
    assert_eq!(one.len(), 2, "operators, not nodes: {one:?}");
    for (operator, weight) in &one {
        assert!((weight - two[operator]).abs() < 1e-12, "{operator}: {weight} became {}", two[operator]);
    }
    assert!((one[&did(10)] - 2.0 / 3.0).abs() < 1e-12, "{one:?}");
}

// The board.

/// Steward 1 proposes to elect `seats` of `candidates`, `rankings` vote, and the proposal passes;
/// returns its id, the decision's index and whom Meek STV elects from the same rankings.
fn elect(
    commons: &mut Commons,
    seats: u32,
    candidates: &[u8],
    rankings: &[(u8, &[u8])],
) -> (u64, u64, Vec<String>) {
    let names: Vec<String> = candidates.iter().map(|n| did(*n)).collect();
    let id = commons.propose(
        1,
        ProposalClass::Ordinary,
        vec![Action::ElectBoard { seats, candidates: names.clone() }],
    );
    for (voter, ranking) in rankings {
        let ranking = ranking.iter().map(|n| did(*n)).collect();
        commons.ok(ballot(id, Vote::Yes, None, Some(ranking)), &key(*voter));
    }
    let index = commons.decide(id).expect("decision").index;
    assert_eq!(commons.outcome(id), Outcome::Passed);
    let ballots: Vec<RankedBallot> = rankings
        .iter()
        .map(|(_, ranking)| RankedBallot {
            ranking: ranking
                .iter()
                .map(|n| candidates.iter().position(|c| c == n).expect("candidate"))
                .collect(),
            count: 1,
        })
        .collect();
    let outcome = stv::elect::<Fixed, _>(&names, &ballots, seats as usize).expect("stv");
    (id, index, outcome.elected.iter().map(|&i| names[i].clone()).collect())
}

#[test]
fn an_election_replaces_the_board_by_stv_and_only_the_new_board_rules() {
    let mut commons = Commons::found(&[1, 2, 3]);
    commons.attest_all(1, [10, 11, 12, 13]);
    let rankings: [(u8, &[u8]); 7] = [
        (1, &[10, 11]),
        (2, &[10, 12]),
        (3, &[11, 10]),
        (10, &[10, 11]),
        (11, &[11, 10]),
        (12, &[12, 11]),
        (13, &[10, 11]),
    ];
    let (id, index, elected) = elect(&mut commons, 2, &[10, 11, 12], &rankings);
    assert_eq!(elected, vec![did(10), did(11)]);
    assert_eq!(commons.state.governance().board(), &Board { members: elected, elected_by: Some(index) });
    assert!(!commons.state.governance().is_steward(&did(1)));
    let effects = &commons.decision_entry(id).effects;
    assert!(matches!(effects.as_slice(), [Effect::Board { ballots: 7, .. }]), "{effects:?}");

    // The old board no longer attests; the new one does.
    assert_eq!(commons.apply(attestation(&did(20), None), &key(1)), Err(Rejection::NotSteward(did(1))));
    commons.attest(10, 20);

    let cid = commons.deposit(12, b"a lullaby from the coast", "narrative");
    let dispute_id = commons.ok(dispute(&cid, Ground::WrongRegister, Some("lyric")), &key(13)).index;
    let mut old = SignedEvent::sign(ruling(dispute_id, relabel("lyric")), &key(1));
    old.cosign(&key(2));
    assert_eq!(commons.submit(old), Err(Rejection::NotSteward(did(1))));
    commons.ok(ruling(dispute_id, relabel("lyric")), &key(10));
    let status = &commons.state.governance().dispute(dispute_id).expect("dispute").status;
    assert_eq!(status, &DisputeStatus::Open, "one of the two signatures the new board needs");
    commons.ok(ruling(dispute_id, relabel("lyric")), &key(11));
    assert_eq!(commons.register_of(&cid), register("lyric"));
}

// Disputes.

#[test]
fn a_deposit_earns_credits_less_the_stability_share_and_credits_decay() {
    let mut commons = Commons::found(&[1]);
    commons.attest(1, 10);
    let rates = commons.params().credits;
    let at = commons.now;
    commons.deposit(10, b"a first story", "narrative");
    let milli = rates.deposit * 1000;
    let pool = milli * u64::from(rates.stability_share_ppm) / 1_000_000;
    assert!(pool > 0);

    let governance = commons.state.governance();
    let statement = governance.credit_statement(&did(10), at);
    assert_eq!(statement.balance, (milli - pool) as f64 / 1000.0);
    assert_eq!(statement.earned, statement.balance);
    assert_eq!(statement.grants, 1);
    assert!(statement.verified);
    assert_eq!(statement.stability_pool, pool as f64 / 1000.0);
    assert_eq!(governance.credit_statement(STABILITY_POOL, at).balance, pool as f64 / 1000.0);
    // Two verified persons share what the pool can fund of the floor.
    assert_eq!(statement.floor_today, (rates.floor as f64).min(pool as f64 / 1000.0 / 2.0));

    for days in [1, 30, u64::from(rates.half_life_days)] {
        let later = at + days * DAY_MS;
        let elapsed = day_of(later) - day_of(at);
        let statement = governance.credit_statement(&did(10), later);
        assert_eq!(statement.balance, decay(milli - pool, elapsed, rates.half_life_days) as f64 / 1000.0);
        assert!(statement.balance < (milli - pool) as f64 / 1000.0);
        assert_eq!(statement.earned, (milli - pool) as f64 / 1000.0);
    }
    let half_life = governance.credit_statement(&did(10), at + u64::from(rates.half_life_days) * DAY_MS);
    assert!((half_life.balance / statement.balance - 0.5).abs() < 0.01, "{half_life:?}");

    // A later grant lands on the decayed balance.
    commons.wait_until(at + 10 * DAY_MS);
    commons.deposit(10, b"a second story", "narrative");
    let now = commons.now;
    let statement = commons.state.governance().credit_statement(&did(10), now);
    let expected = decay(milli - pool, day_of(now) - day_of(at), rates.half_life_days) + (milli - pool);
    assert_eq!(statement.balance, expected as f64 / 1000.0);
    assert_eq!(statement.grants, 2);
}

#[test]
fn there_is_no_way_to_move_credits() {
    assert!(KINDS.iter().all(|kind| !kind.contains("transfer")), "{KINDS:?}");
    let statement = deposit(b"a story", "narrative").to_statement();
    let mut value = serde_json::to_value(&statement).expect("statement json");
    value["predicateType"] = Event::predicate_type("transfer").into();
    value["predicate"] = json!({ "to": did(2), "amount": 10 });
    let envelope = Envelope::sign(serde_json::to_vec(&value).expect("payload"), &key(1));
    let err = SignedEvent::open(envelope).expect_err("no transfer predicate");
    assert!(matches!(&err, EventError::UnknownPredicate(kind) if kind.ends_with("/transfer/v1")), "{err}");
    assert!(Parameters::class_of("credits.transfer").is_err());
}

// Determinism.

/// A commons that has seen every kind of governance event.
fn busy_commons() -> Commons {
    let mut commons = Commons::found(&[1, 2, 3]);
    commons.attest_all(1, [10, 11, 12, 13, 14]);
    commons.ok(attestation(&did(15), Some(30)), &key(2));
    for (operator, node) in [(10, 100), (11, 110), (12, 120), (12, 121)] {
        commons.register_node(operator, node);
    }
    commons.receipt(100, &[110], 300).expect("compute");
    commons.receipt(110, &[120], 50).expect("compute");
    commons.receipt(121, &[100, 110], 20).expect("compute");
    let story = commons.deposit(10, b"a story told at the harbour", "narrative");
    let song = commons.deposit(11, b"a song sung at the harbour", "narrative");
    let spam = commons.deposit(14, b"cheap watches", "technical");
    let wrong = commons.ok(dispute(&song, Ground::WrongRegister, Some("lyric")), &key(12)).index;
    let mut signed = SignedEvent::sign(ruling(wrong, relabel("lyric")), &key(1));
    signed.cosign(&key(2));
    commons.submit(signed).expect("ruling");
    let junk = commons.ok(dispute(&spam, Ground::Spam, None), &key(13)).index;
    commons.ok(ruling(junk, Ruling::Remove), &key(3));
    commons.ok(dispute(&story, Ground::Harm, None), &key(13));
    commons.ok(revocation(&did(14), false), &key(2));

    commons.pass(1, ProposalClass::Ordinary, vec![parameter("mixture.cap.sacred", json!(0.1))], &[1, 2, 10]);
    let mixture = commons.propose(
        10,
        ProposalClass::Ordinary,
        vec![Action::SetMixture { ballot: mix(&[("narrative", 0.7), ("sacred", 0.3)]) }],
    );
    let workload = commons.propose(11, ProposalClass::Resource, vec![workload("embed", "1")]);
    let tie = commons.propose(12, ProposalClass::Ordinary, vec![parameter("mixture.floor.oral", json!(0.1))]);
    let removal = commons.propose(
        13,
        ProposalClass::Ordinary,
        vec![Action::RemoveDeposit { cid: story.clone(), reason: "harm".into() }],
    );
    let election = commons.propose(
        1,
        ProposalClass::Ordinary,
        vec![Action::ElectBoard { seats: 2, candidates: vec![did(1), did(10), did(11)] }],
    );
    for (voter, weights) in [
        (1, mix(&[("oral", 1.0)])),
        (11, mix(&[("narrative", 0.5), ("lyric", 0.5)])),
        (12, mix(&[("technical", 1.0)])),
    ] {
        commons.ok(ballot(mixture, Vote::Yes, Some(weights), None), &key(voter));
    }
    commons.vote(2, mixture, Vote::No);
    for voter in [10, 11] {
        commons.vote(voter, workload, Vote::Yes);
    }
    commons.vote(12, workload, Vote::No);
    commons.vote(12, tie, Vote::Yes);
    commons.vote(13, tie, Vote::No);
    for voter in [1, 2, 13] {
        commons.vote(voter, removal, Vote::Yes);
    }
    for (voter, ranking) in [(1, [10, 11]), (2, [11, 1]), (10, [10, 1]), (12, [11, 10]), (13, [1, 10])] {
        commons.ok(ballot(election, Vote::Yes, None, Some(ranking.map(did).to_vec())), &key(voter));
    }
    for id in [mixture, workload, tie, removal, election] {
        commons.decide(id).expect("decision");
    }
    let appeal = commons.propose(
        10,
        ProposalClass::Ordinary,
        vec![Action::ResolveDispute { dispute: wrong, ruling: relabel("oral") }],
    );
    commons.vote(10, appeal, Vote::Yes);
    commons.decide(appeal).expect("decision");
    commons.wait_until(commons.now + 40 * DAY_MS);
    commons.deposit(12, b"a story of the long winter", "narrative");
    commons
}

#[test]
fn replaying_the_log_gives_the_same_root_and_the_same_decisions() {
    let commons = busy_commons();
    let mut again = State::new();
    let mut decisions = 0;
    for (index, (time, signed)) in commons.entries.iter().enumerate() {
        let reopened = SignedEvent::open_bytes(&signed.envelope.to_bytes()).expect("the entry reopens");
        if let Event::Decision(decision) = &reopened.event {
            let recomputed = again.decision(decision.proposal).expect("recomputed");
            assert_eq!(
                serde_json::to_vec(&recomputed).expect("json"),
                serde_json::to_vec(decision).expect("json"),
                "entry {index}"
            );
            decisions += 1;
        }
        again.apply(index as u64, *time, &reopened).expect("replays");
    }
    // Seven proposals, and the approval of the workload the job receipts name.
    assert_eq!(decisions, 8);
    let governance = commons.state.governance();
    assert!(governance.mixture().is_some());
    assert!(governance.board().elected_by.is_some());
    assert_eq!(governance.workloads().count(), 1);
    assert!(governance.disputes().any(|d| matches!(d.status, DisputeStatus::Resolved { .. })));
    assert!(commons.state.deposits().any(|d| matches!(d.status, DepositStatus::Removed { .. })));
    assert_eq!(again.size(), commons.state.size());
    assert_eq!(again.root(), commons.state.root());
    assert_eq!(again.governance().records(), commons.state.governance().records());
    let outcomes: Vec<_> = again.governance().proposals().map(|p| p.status.clone()).collect();
    assert!(outcomes.iter().all(|s| matches!(s, ProposalStatus::Closed { .. })), "{outcomes:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever N members vote on an ordinary proposal, the decision is the two-chamber rule
    /// applied to the counts, and every member is eligible.
    #[test]
    fn a_decision_is_the_two_chamber_rule_applied_to_the_votes(choices in proptest::collection::vec(0u8..4, 1..=30)) {
        let members: Vec<u8> = std::iter::once(1).chain(10..).take(choices.len()).collect();
        let mut commons = Commons::found(&[1]);
        commons.attest_all(1, members[1..].iter().copied());
        let id = commons.propose(1, ProposalClass::Ordinary, vec![parameter("mixture.cap.sacred", json!(0.5))]);
        let mut counts = ChamberTally { eligible: members.len() as f64, ..ChamberTally::default() };
        for (member, choice) in members.iter().zip(&choices) {
            let choice = match choice {
                0 => Vote::Yes,
                1 => Vote::No,
                2 => Vote::Abstain,
                _ => continue,
            };
            match choice {
                Vote::Yes => counts.yes += 1.0,
                Vote::No => counts.no += 1.0,
                Vote::Abstain => counts.abstain += 1.0,
            }
            commons.vote(*member, id, choice);
        }
        commons.decide(id).expect("decision");
        let decision = commons.decision_entry(id);
        prop_assert_eq!(decision.contributor, counts);
        prop_assert_eq!(decision.contributor.eligible, members.len() as f64);
        let expected = tally::decide(ProposalClass::Ordinary, Chamber::Contributor, &counts, &ChamberTally::default());
        prop_assert_eq!(&decision.outcome, &expected);
        prop_assert_eq!(commons.outcome(id), expected);
    }
}

// A decision depends on the log up to the close only, the actions of one decision compose, and
// any signed event is refused rather than panicking.

#[test]
fn eligibility_is_taken_at_the_close() {
    let mut commons = Commons::found(&[1]);
    let id = commons.propose(1, ProposalClass::Ordinary, vec![parameter("mixture.cap.sacred", json!(0.5))]);
    commons.vote(1, id, Vote::Yes);
    let at_close = commons.state.decision(id).expect("decision");
    assert_eq!(at_close.outcome, Outcome::Passed);
    commons.wait_until(commons.proposal(id).closes_at + 1);
    let attest =
        Event::Attestation(Attestation { person: did(10), days: None, note: None, requested: "late".into() });
    assert_eq!(commons.apply(attest, &key(1)), Err(Rejection::DecisionPending { proposal: id }));
    let later = commons.state.decision(id).expect("decision");
    assert_eq!(later.contributor.eligible, 1.0, "nobody joins between the close and the decision");
    assert_eq!(later, at_close);
}

#[test]
fn removing_a_deposit_takes_back_only_its_own_credit() {
    let mut commons = Commons::found(&[1, 2]);
    commons.attest(1, 10);
    let cid = commons.deposit(10, b"a text", "narrative");
    commons.deposit(10, b"another text", "narrative");
    let before = commons.state.governance().credit_statement(&did(10), commons.now).balance;
    let remove = || Action::RemoveDeposit { cid: cid.clone(), reason: "harm".into() };
    commons.pass(1, ProposalClass::Ordinary, vec![remove(), remove()], &[1, 2]);
    let after = commons.state.governance().credit_statement(&did(10), commons.now).balance;
    assert_eq!(after, before / 2.0);
}

#[test]
fn every_parameter_effect_of_a_decision_is_in_force_after_it() {
    let mut commons = Commons::found(&[1, 2]);
    let actions =
        vec![parameter("mixture.floor.sacred", json!(0.1)), parameter("mixture.cap.sacred", json!(0.3))];
    let id = commons.propose(1, ProposalClass::Ordinary, actions);
    commons.vote(2, id, Vote::Yes);
    commons.decide(id).expect("decision");
    assert_eq!(commons.outcome(id), Outcome::Passed);
    let params = commons.params().clone();
    let effects = commons.decision_entry(id).effects.clone();
    for effect in effects {
        if let Effect::Parameter { key, value } = effect {
            let mut again = params.clone();
            assert_eq!(again.set(&key, &value), Ok(()), "{key} = {value}");
            assert_eq!(again, params, "{key} = {value} is not in force");
        }
    }
}

#[test]
fn a_proposal_without_actions_is_refused() {
    let mut commons = Commons::found(&[1]);
    let empty = SignedEvent::sign(proposal(ProposalClass::Ordinary, Vec::new()), &key(1));
    let unopened = SignedEvent::open(empty.envelope.clone());
    assert!(matches!(unopened, Err(EventError::Field { field: "actions", .. })), "{unopened:?}");
    let root = commons.state.root();
    let refused = commons.submit(empty);
    assert_eq!(refused, Err(Rejection::Proposal(ProposalFault::NoActions)));
    assert_eq!(commons.state.root(), root);
}
#[path = "governance/acts.rs"]
mod acts;
#[path = "governance/adapters.rs"]
mod adapters;
#[path = "governance/compute.rs"]
mod compute;
#[path = "governance/decisions.rs"]
mod decisions;
#[path = "governance/disputes.rs"]
mod disputes;
#[path = "governance/doi.rs"]
mod doi;
#[path = "governance/exact.rs"]
mod exact;
#[path = "governance/golden.rs"]
mod golden;
#[path = "governance/jobs.rs"]
mod jobs;
#[path = "governance/membership.rs"]
mod membership;
#[path = "governance/tokens.rs"]
mod tokens;
#[path = "governance/usage.rs"]
mod usage;
