//! A member's ballot: the vote predicate with its mixture (a distribution over registers) or its
//! ranking of board candidates, as the fold reads it on a commons with a mixture proposal and a
//! board election open, every other member having voted.
//!
//! A ballot the fold accepts is well-formed; the decisions the sequencer then computes give
//! weights that are a distribution and a board of two distinct candidates; each decision, signed
//! by the log key and read back from its envelope as a mirror reads it, is accepted by the fold,
//! which recomputes it. Both arithmetics of the mixture agree on the ballots.

#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use substrate_core::governance::acts::{Effect, VoteCast};
use substrate_core::governance::mixture::{self, MixtureBallot, MixtureRules};
use substrate_core::governance::number::Fixed;
use substrate_core::{Event, Register, SignedEvent, State};
use substrate_fuzz::{Ballots, LOG_KEY, VOTER, candidates, key};

static COMMONS: LazyLock<Ballots> = LazyLock::new(Ballots::new);

/// How far a mixture's weights may sum from 1.
const TOLERANCE: f64 = 1e-9;

fuzz_target!(|data: &[u8]| {
    let Ok(vote) = serde_json::from_slice::<VoteCast>(data) else { return };
    let json = serde_json::to_vec(&vote).expect("a vote serialises");
    let again: VoteCast = serde_json::from_slice(&json).expect("a serialised vote parses");
    assert_eq!(again, vote, "a vote does not survive its JSON");

    let vocabulary = Register::defaults();
    if let Some(weights) = &vote.mixture
        && mixture::check_ballot(&vocabulary, weights).is_ok()
    {
        arithmetics_agree(&vocabulary, weights);
    }

    let commons = &*COMMONS;
    let mut state = commons.state.clone();
    let signed = SignedEvent::sign(Event::Vote(vote.clone()), &key(VOTER));
    if state.apply(state.size(), commons.now, &signed).is_err() {
        return;
    }
    if let Some(weights) = &vote.mixture {
        assert_eq!(vote.proposal, commons.mixture, "a mixture on a proposal that sets none");
        assert!(mixture::check_ballot(&vocabulary, weights).is_ok(), "a malformed mixture was accepted");
    }
    if let Some(ranking) = &vote.ranking {
        assert_eq!(vote.proposal, commons.election, "a ranking on a proposal that elects no board");
        let candidates = candidates();
        assert!(ranking.iter().all(|name| candidates.contains(name)), "a ranking names a non-candidate");
        let distinct: BTreeSet<_> = ranking.iter().collect();
        assert_eq!(distinct.len(), ranking.len(), "a ranking names a candidate twice");
    }

    // The sequencer decides each proposal at its close, in the order they close (the mixture
    // first): the ballot changes what it decides.
    for id in [commons.mixture, commons.election] {
        decide(&mut state, id);
    }
});

/// Decides proposal `id` as the sequencer does: its weights are a distribution and its board
/// two distinct candidates; signed by the log key and read back as a mirror reads the log, the
/// decision is accepted by the fold, which recomputes it.
fn decide(state: &mut State, id: u64) {
    let decision = state.decision(id).expect("an open proposal has a decision");
    for effect in &decision.effects {
        match effect {
            Effect::Mixture { weights, .. } => {
                assert!(weights.values().all(|w| w.is_finite() && (0.0..=1.0).contains(w)), "{weights:?}");
                let sum: f64 = weights.values().sum();
                assert!((sum - 1.0).abs() <= TOLERANCE, "the weights sum to {sum}");
            }
            Effect::Board { members, .. } => {
                let candidates = candidates();
                assert_eq!(members.len(), 2, "two seats: {members:?}");
                assert!(members.iter().all(|m| candidates.contains(m)), "{members:?}");
                let distinct: BTreeSet<_> = members.iter().collect();
                assert_eq!(distinct.len(), members.len(), "{members:?}");
            }
            _ => {}
        }
    }
    let closes_at = state.governance().proposal(id).expect("the proposal").closes_at;
    let signed = SignedEvent::sign(Event::Decision(decision.clone()), &key(LOG_KEY));
    let logged = SignedEvent::open_logged(signed.envelope_bytes()).expect("a decision's envelope opens");
    assert_eq!(logged.event, Event::Decision(decision), "a decision does not survive its JSON");
    if let Err(e) = state.apply(state.size(), closes_at, &logged) {
        panic!("the fold refuses the sequencer's own decision on proposal {id}: {e}");
    }
}

/// The mixture of the fixture's ballots and this one, in floating and in fixed point: both give
/// an answer and the answers agree.
fn arithmetics_agree(vocabulary: &[Register], weights: &BTreeMap<Register, f64>) {
    let mut ballots: Vec<MixtureBallot> =
        substrate_fuzz::fixture_mixtures().into_iter().map(|weights| MixtureBallot { weights }).collect();
    ballots.push(MixtureBallot { weights: weights.clone() });
    let rules = MixtureRules::default();
    let float =
        mixture::aggregate::<f64>(vocabulary, &ballots, &rules).expect("well-formed ballots aggregate");
    let fixed =
        mixture::aggregate::<Fixed>(vocabulary, &ballots, &rules).expect("well-formed ballots aggregate");
    for register in vocabulary {
        let (a, b) = (float.weights[register], fixed.weights[register]);
        assert!((a - b).abs() <= TOLERANCE, "{register}: float {a}, fixed {b}");
    }
}
