//! Mixture weights over registers from many ballots, by the Independent Markets mechanism
//! (Freeman, Pennock, Peters, Wortman Vaughan, "Truthful aggregation of budget proposals",
//! J. Econ. Theory 193 (2021) 105234).
//!
//! Each of the n voters reports a distribution `p_i` over registers. With n+1 phantoms
//! `f_k(t) = min(1, t·(n−k))`, `k = 0..n`, register j gets `median(p_1j … p_nj, f_0(t) … f_n(t))`,
//! and `t*` is the smallest t at which those medians sum to 1. Unlike taking each register's
//! median and renormalising, this is truthful (no voter can pull the outcome closer to their own
//! ballot by misreporting) and it keeps minority registers alive.
//!
//! Board rules act around it: a per-ballot cap clips every ballot before aggregation (so a cap of 0
//! on a register holds whatever anyone votes, and no vote can raise it), and floors lift the
//! aggregate afterwards, taking the difference proportionally from the registers above their floor.

use std::collections::BTreeMap;

use crate::governance::number::Number;
use crate::register::Register;

/// How far a ballot's weights may sum from 1 and still count as a distribution.
pub const BALLOT_TOLERANCE: f64 = 1e-9;
/// Bisection steps for t*: far past the resolution of an f64 in [0, 1].
const BISECTION_STEPS: usize = 200;

/// One voter's distribution over registers; registers not named get 0.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MixtureBallot {
    pub weights: BTreeMap<Register, f64>,
}

/// The board's constraints on the mixture.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MixtureRules {
    /// No ballot may give a register more than this; ballots are clipped before aggregation.
    pub caps: BTreeMap<Register, f64>,
    /// The aggregate gives a register at least this.
    pub floors: BTreeMap<Register, f64>,
}

/// The aggregate: one weight per register of the vocabulary, summing to 1.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Mixture {
    pub weights: BTreeMap<Register, f64>,
    /// The phantom position at which the medians summed to 1 (before floors).
    pub t_star: f64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MixtureError {
    #[error("no ballots: a mixture needs at least one")]
    NoBallots,
    #[error("the vocabulary is empty")]
    NoRegisters,
    #[error("ballot {ballot} names register '{register}', which is not in the vocabulary ({})", vocabulary.join(", "))]
    UnknownRegister { ballot: usize, register: String, vocabulary: Vec<String> },
    #[error("ballot {ballot} gives '{register}' the weight {weight}; weights are numbers from 0 to 1")]
    BadWeight { ballot: usize, register: String, weight: f64 },
    #[error("ballot {ballot}'s weights sum to {sum}, not 1")]
    NotADistribution { ballot: usize, sum: f64 },
    #[error("the rules are inconsistent: {0}")]
    Rules(String),
}

/// Aggregates `ballots` over `vocabulary` under `rules`, computing in `N`.
pub fn aggregate<N: Number>(
    vocabulary: &[Register],
    ballots: &[MixtureBallot],
    rules: &MixtureRules,
) -> Result<Mixture, MixtureError> {
    let borrowed: Vec<&BTreeMap<Register, f64>> = ballots.iter().map(|b| &b.weights).collect();
    aggregate_weights::<N>(vocabulary, &borrowed, rules)
}

/// [`aggregate`] over borrowed ballots, so a tally need not copy every voter's distribution.
pub fn aggregate_weights<N: Number>(
    vocabulary: &[Register],
    ballots: &[&BTreeMap<Register, f64>],
    rules: &MixtureRules,
) -> Result<Mixture, MixtureError> {
    if vocabulary.is_empty() {
        return Err(MixtureError::NoRegisters);
    }
    if ballots.is_empty() {
        return Err(MixtureError::NoBallots);
    }
    check_rules(vocabulary, rules)?;
    let caps: Vec<N> =
        vocabulary.iter().map(|r| N::from_f64(rules.caps.get(r).copied().unwrap_or(1.0))).collect();
    // columns[j] holds every voter's (clipped) weight for register j, sorted ascending.
    let mut columns = vec![Vec::with_capacity(ballots.len()); vocabulary.len()];
    let positions = positions(vocabulary);
    let mut dense = vec![0.0; vocabulary.len()];
    let mut exact = vec![N::ZERO; vocabulary.len()];
    for (index, ballot) in ballots.iter().enumerate() {
        dense_ballot(vocabulary, &positions, index, ballot, &mut dense)?;
        for (to, from) in exact.iter_mut().zip(&dense) {
            *to = N::from_f64(*from);
        }
        clip_to_caps(&mut exact, &caps);
        for (column, weight) in columns.iter_mut().zip(&exact) {
            column.push(*weight);
        }
    }
    for column in &mut columns {
        column.sort_unstable_by(N::total_cmp);
    }
    let (t_star, mut weights) = independent_markets(&columns);
    apply_floors(vocabulary, &mut weights, rules);
    Ok(Mixture {
        weights: vocabulary.iter().cloned().zip(weights.into_iter().map(N::to_f64)).collect(),
        t_star: t_star.to_f64(),
    })
}

/// Checks that `rules` fit `vocabulary`: known registers, shares in [0, 1], caps that leave room
/// for a distribution, floors that sum to at most 1 and sit under their caps.
pub fn check_rules(vocabulary: &[Register], rules: &MixtureRules) -> Result<(), MixtureError> {
    for (kind, map) in [("cap", &rules.caps), ("floor", &rules.floors)] {
        for (register, value) in map {
            if !vocabulary.contains(register) {
                return Err(MixtureError::Rules(format!(
                    "a {kind} names '{register}', not in the vocabulary"
                )));
            }
            if !(0.0..=1.0).contains(value) {
                return Err(MixtureError::Rules(format!(
                    "the {kind} on '{register}' is {value}, not in [0, 1]"
                )));
            }
        }
    }
    let cap_sum: f64 = vocabulary.iter().map(|r| rules.caps.get(r).copied().unwrap_or(1.0)).sum();
    if cap_sum < 1.0 - BALLOT_TOLERANCE {
        return Err(MixtureError::Rules(format!(
            "the caps sum to {cap_sum}; no distribution fits under them"
        )));
    }
    let floor_sum: f64 = rules.floors.values().sum();
    if floor_sum > 1.0 + BALLOT_TOLERANCE {
        return Err(MixtureError::Rules(format!("the floors sum to {floor_sum}, more than 1")));
    }
    for (register, floor) in &rules.floors {
        if let Some(cap) = rules.caps.get(register).filter(|cap| *cap < floor) {
            return Err(MixtureError::Rules(format!("'{register}' has floor {floor} above its cap {cap}")));
        }
    }
    Ok(())
}

/// Checks that `ballot` is a distribution over `vocabulary`.
/// The reason names the problem without a ballot number: there is only this one.
pub fn check_ballot(vocabulary: &[Register], ballot: &BTreeMap<Register, f64>) -> Result<(), String> {
    let mut dense = vec![0.0; vocabulary.len()];
    dense_ballot(vocabulary, &positions(vocabulary), 0, ballot, &mut dense).map_err(|e| match e {
        MixtureError::UnknownRegister { register, vocabulary, .. } => {
            format!(
                "it names register '{register}', which is not in the vocabulary ({})",
                vocabulary.join(", ")
            )
        }
        MixtureError::BadWeight { register, weight, .. } => {
            format!("it gives '{register}' the weight {weight}; weights are numbers from 0 to 1")
        }
        MixtureError::NotADistribution { sum, .. } => format!("its weights sum to {sum}, not 1"),
        other => other.to_string(),
    })
}

/// The vocabulary sorted by name, each register with its column: ballots are sorted maps, so one
/// merge finds every column without hashing or searching.
fn positions(vocabulary: &[Register]) -> Vec<(&str, usize)> {
    let mut sorted: Vec<(&str, usize)> =
        vocabulary.iter().enumerate().map(|(j, r)| (r.as_str(), j)).collect();
    sorted.sort_unstable();
    sorted
}

/// Writes the ballot into `dense`, one weight per vocabulary register, validated.
fn dense_ballot(
    vocabulary: &[Register],
    positions: &[(&str, usize)],
    index: usize,
    ballot: &BTreeMap<Register, f64>,
    dense: &mut [f64],
) -> Result<(), MixtureError> {
    dense.fill(0.0);
    let mut next = positions.iter().peekable();
    for (register, &weight) in ballot {
        while next.next_if(|(name, _)| *name < register.as_str()).is_some() {}
        let Some(&(_, position)) = next.next_if(|(name, _)| *name == register.as_str()) else {
            return Err(MixtureError::UnknownRegister {
                ballot: index,
                register: register.to_string(),
                vocabulary: vocabulary.iter().map(ToString::to_string).collect(),
            });
        };
        if !weight.is_finite() || !(0.0..=1.0).contains(&weight) {
            return Err(MixtureError::BadWeight { ballot: index, register: register.to_string(), weight });
        }
        dense[position] = weight;
    }
    let sum: f64 = dense.iter().sum();
    if (sum - 1.0).abs() > BALLOT_TOLERANCE {
        return Err(MixtureError::NotADistribution { ballot: index, sum });
    }
    Ok(())
}

/// Clips a distribution to `caps`, passing each excess to the registers still below their cap in
/// proportion to their weight (equally when they all have none), until nothing exceeds a cap.
fn clip_to_caps<N: Number>(weights: &mut [N], caps: &[N]) {
    for _ in 0..weights.len() + 1 {
        let mut excess = N::ZERO;
        for (weight, cap) in weights.iter_mut().zip(caps) {
            if *weight > *cap {
                excess = excess + (*weight - *cap);
                *weight = *cap;
            }
        }
        if excess <= N::ZERO {
            break;
        }
        let open: Vec<usize> = (0..weights.len()).filter(|&j| weights[j] < caps[j]).collect();
        let base = N::sum(open.iter().map(|&j| weights[j]));
        for &j in &open {
            let share =
                if base > N::ZERO { weights[j] / base } else { N::ONE / N::from_u64(open.len() as u64) };
            weights[j] = weights[j] + excess * share;
        }
    }
}

/// The Independent Markets outcome for sorted columns: (t*, one weight per column).
fn independent_markets<N: Number>(columns: &[Vec<N>]) -> (N, Vec<N>) {
    let total = |t: N| N::sum(columns.iter().map(|column| phantom_median(column, t)));
    // Σ_j a_j(t) is non-decreasing; find the smallest t where it reaches 1.
    let (mut low, mut high) = (N::ZERO, N::ONE);
    if total(low) >= N::ONE {
        high = low;
    }
    for _ in 0..BISECTION_STEPS {
        let Some(middle) = N::midpoint(low, high) else { break };
        if total(middle) >= N::ONE { high = middle } else { low = middle }
    }
    let mut weights: Vec<N> = columns.iter().map(|column| phantom_median(column, high)).collect();
    // At t* the sum is 1 up to rounding; remove that last rounding so the weights sum to 1.
    let sum = N::sum(weights.iter().copied());
    if sum > N::ZERO {
        for weight in &mut weights {
            *weight = *weight / sum;
        }
    }
    (high, weights)
}

/// The median of the n sorted voter values and the n+1 phantoms `min(1, t·k)`, `k = 0..n` (the
/// phantoms in ascending order): the (n+1)-th smallest of the 2n+1 values, found by binary search
/// over how many of them come from the voters, in O(log n).
fn phantom_median<N: Number>(voters: &[N], t: N) -> N {
    let n = voters.len();
    let phantom = |k: usize| (t * N::from_u64(k as u64)).min(N::ONE);
    let rank = n + 1; // 1-based rank of the median among 2n+1 values
    // i voters and rank-i phantoms form the `rank` smallest values.
    let (mut low, mut high) = (rank.saturating_sub(n + 1), n.min(rank));
    loop {
        let i = (low + high) / 2;
        let j = rank - i;
        if i < n && j > 0 && phantom(j - 1) > voters[i] {
            low = i + 1; // too few voters taken
        } else if i > 0 && j <= n && voters[i - 1] > phantom(j) {
            high = i - 1; // too many voters taken
        } else {
            // At least one of the two is taken: i + j = n + 1 > 0.
            return match (i.checked_sub(1).map(|i| voters[i]), j.checked_sub(1).map(phantom)) {
                (Some(voter), Some(phantom)) => voter.max(phantom),
                (Some(value), None) | (None, Some(value)) => value,
                (None, None) => N::ZERO,
            };
        }
    }
}

/// Raises registers to their floors, taking the difference from the registers above their floor
/// in proportion to their surplus over it.
fn apply_floors<N: Number>(vocabulary: &[Register], weights: &mut [N], rules: &MixtureRules) {
    let floors: Vec<N> =
        vocabulary.iter().map(|r| N::from_f64(rules.floors.get(r).copied().unwrap_or(0.0))).collect();
    let deficit = N::sum(weights.iter().zip(&floors).map(|(w, f)| (*f - *w).max(N::ZERO)));
    if deficit <= N::ZERO {
        return;
    }
    let surplus = N::sum(weights.iter().zip(&floors).map(|(w, f)| (*w - *f).max(N::ZERO)));
    for (weight, floor) in weights.iter_mut().zip(&floors) {
        if *weight < *floor {
            *weight = *floor;
        } else if surplus > N::ZERO {
            *weight = *weight - (*weight - *floor) * (deficit / surplus);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::number::Fixed;
    use proptest::prelude::*;

    /// Aggregates in both arithmetics, checks that they agree to 1e-9 (or refuse alike), and
    /// returns the fixed-point result.
    fn aggregate(
        v: &[Register],
        ballots: &[MixtureBallot],
        rules: &MixtureRules,
    ) -> Result<Mixture, MixtureError> {
        let float = super::aggregate::<f64>(v, ballots, rules);
        let fixed = super::aggregate::<Fixed>(v, ballots, rules);
        match (&float, &fixed) {
            (Ok(a), Ok(b)) => {
                for r in v {
                    assert!((a.weights[r] - b.weights[r]).abs() < 1e-9, "{r}: float {a:?}, fixed {b:?}");
                }
            }
            _ => assert_eq!(float, fixed),
        }
        fixed
    }

    fn vocabulary(m: usize) -> Vec<Register> {
        Register::defaults().into_iter().take(m).collect()
    }

    fn ballot(vocabulary: &[Register], weights: &[f64]) -> MixtureBallot {
        MixtureBallot { weights: vocabulary.iter().cloned().zip(weights.iter().copied()).collect() }
    }

    /// The weights in vocabulary order (the map itself is ordered by name).
    fn dense(v: &[Register], mixture: &Mixture) -> Vec<f64> {
        v.iter().map(|r| mixture.weights[r]).collect()
    }

    /// A strategy for a distribution over `m` registers in steps of 1/20.
    fn distribution(m: usize) -> impl Strategy<Value = Vec<f64>> {
        proptest::collection::vec(0u32..20, m).prop_map(|raw| {
            let total: u32 = raw.iter().sum();
            if total == 0 {
                let mut one = vec![0.0; raw.len()];
                one[0] = 1.0;
                return one;
            }
            raw.iter().map(|&r| f64::from(r) / f64::from(total)).collect()
        })
    }

    /// Every fixture made by the independent exact-rational reference (fixtures/imm) agrees.
    #[test]
    fn agrees_with_the_exact_reference_implementation() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/imm");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("fixtures/imm") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let case: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
            let number = |v: &serde_json::Value| v.as_str().expect("string").parse::<f64>().expect("number");
            let v: Vec<Register> = case["registers"]
                .as_array()
                .expect("registers")
                .iter()
                .map(|r| Register::new(r.as_str().expect("name")).expect("register"))
                .collect();
            let ballots: Vec<MixtureBallot> = case["ballots"]
                .as_array()
                .expect("ballots")
                .iter()
                .map(|b| ballot(&v, &b.as_array().expect("ballot").iter().map(number).collect::<Vec<_>>()))
                .collect();
            let mixture = aggregate(&v, &ballots, &MixtureRules::default()).expect("aggregate");
            let want: Vec<f64> = case["weights"].as_array().expect("weights").iter().map(number).collect();
            for (j, (got, want)) in dense(&v, &mixture).iter().zip(&want).enumerate() {
                assert!(
                    (got - want).abs() < 1e-9,
                    "{}: register {j} is {got}, the reference says {want}",
                    path.display()
                );
            }
            checked += 1;
        }
        assert!(checked >= 50, "only {checked} fixtures found in {}", dir.display());
    }

    #[test]
    fn the_phantom_median_is_the_middle_of_all_values() {
        let voters = [0.1, 0.4, 0.9];
        for t in [0.0, 0.05, 0.2, 0.5, 1.0] {
            let mut all: Vec<f64> = voters.to_vec();
            all.extend((0..=3).map(|k| (t * f64::from(k)).min(1.0)));
            all.sort_by(f64::total_cmp);
            assert_eq!(phantom_median(&voters, t), all[3], "t = {t}");
        }
    }

    #[test]
    fn a_lone_voter_gets_their_ballot_and_unanimity_is_respected() {
        let v = vocabulary(3);
        let mine = ballot(&v, &[0.2, 0.5, 0.3]);
        let lone = aggregate(&v, std::slice::from_ref(&mine), &MixtureRules::default()).expect("aggregate");
        for (got, want) in dense(&v, &lone).iter().zip([0.2, 0.5, 0.3]) {
            assert!((got - want).abs() < 1e-11, "{lone:?}");
        }
        let many = aggregate(&v, &vec![mine; 7], &MixtureRules::default()).expect("aggregate");
        assert!(dense(&v, &many).iter().zip([0.2, 0.5, 0.3]).all(|(g, w)| (g - w).abs() < 1e-11), "{many:?}");
    }

    #[test]
    fn a_minority_register_keeps_weight_where_median_then_renormalise_drops_it() {
        // Nine voters ignore oral texts; one puts everything there. The plain medians give oral 0.
        let v = vocabulary(5); // narrative, conversational, technical, sacred, oral
        let mut ballots = vec![ballot(&v, &[0.5, 0.3, 0.2, 0.0, 0.0]); 9];
        ballots.push(ballot(&v, &[0.0, 0.0, 0.0, 0.0, 1.0]));
        let mixture = aggregate(&v, &ballots, &MixtureRules::default()).expect("aggregate");
        assert!(mixture.weights[&v[4]] > 0.0, "{mixture:?}");
    }

    #[test]
    fn caps_hold_whatever_the_votes_and_floors_lift() {
        let v = vocabulary(4); // narrative, conversational, technical, sacred
        let sacred = v[3].clone();
        let rules = MixtureRules { caps: BTreeMap::from([(sacred.clone(), 0.0)]), floors: BTreeMap::new() };
        let ballots = vec![ballot(&v, &[0.0, 0.0, 0.0, 1.0]); 5];
        let mixture = aggregate(&v, &ballots, &rules).expect("aggregate");
        assert_eq!(mixture.weights[&sacred], 0.0);
        assert!((dense(&v, &mixture).iter().sum::<f64>() - 1.0).abs() < 1e-9);

        let floored = MixtureRules { caps: BTreeMap::new(), floors: BTreeMap::from([(v[2].clone(), 0.25)]) };
        let ballots = vec![ballot(&v, &[1.0, 0.0, 0.0, 0.0]); 3];
        let mixture = aggregate(&v, &ballots, &floored).expect("aggregate");
        assert!((mixture.weights[&v[2]] - 0.25).abs() < 1e-11, "{mixture:?}");
        assert!((mixture.weights[&v[0]] - 0.75).abs() < 1e-11, "{mixture:?}");
    }

    #[test]
    fn malformed_ballots_are_refused_with_the_reason() {
        let v = vocabulary(2);
        let rules = MixtureRules::default();
        let short = ballot(&v, &[0.5, 0.4]);
        assert!(matches!(
            aggregate(&v, &[short], &rules),
            Err(MixtureError::NotADistribution { ballot: 0, .. })
        ));
        let negative = ballot(&v, &[1.5, -0.5]);
        assert!(matches!(aggregate(&v, &[negative], &rules), Err(MixtureError::BadWeight { .. })));
        let unknown =
            MixtureBallot { weights: BTreeMap::from([(Register::new("poetry").expect("name"), 1.0)]) };
        let err = aggregate(&v, &[unknown], &rules).expect_err("unknown register");
        assert!(err.to_string().contains("narrative, conversational"), "{err}");
        assert_eq!(aggregate(&v, &[], &rules), Err(MixtureError::NoBallots));
        let impossible =
            MixtureRules { caps: v.iter().map(|r| (r.clone(), 0.4)).collect(), floors: BTreeMap::new() };
        assert!(matches!(
            aggregate(&v, &[ballot(&v, &[0.5, 0.5])], &impossible),
            Err(MixtureError::Rules(_))
        ));
    }

    proptest! {
        #[test]
        fn weights_sum_to_one_and_respect_caps_all_ballots_respect(
            ballots in proptest::collection::vec(distribution(5), 1..40),
        ) {
            let v = vocabulary(5);
            let list: Vec<MixtureBallot> = ballots.iter().map(|b| ballot(&v, b)).collect();
            let mixture = aggregate(&v, &list, &MixtureRules::default()).expect("aggregate");
            let weights = dense(&v, &mixture);
            prop_assert!((weights.iter().sum::<f64>() - 1.0).abs() <= 1e-9, "{weights:?}");
            for (j, weight) in weights.iter().enumerate() {
                let most = ballots.iter().map(|b| b[j]).fold(0.0, f64::max);
                prop_assert!(*weight <= most + 1e-9, "register {j}: {weight} above every ballot's {most}");
                prop_assert!(*weight >= 0.0);
            }
        }

        #[test]
        fn board_caps_and_floors_always_hold(
            ballots in proptest::collection::vec(distribution(4), 1..20),
            cap in 0u32..=10,
            floor in 0u32..=5,
        ) {
            let v = vocabulary(4);
            let cap = f64::from(cap) / 10.0;
            let floor = f64::from(floor) / 10.0;
            let rules = MixtureRules {
                caps: BTreeMap::from([(v[3].clone(), cap)]),
                floors: BTreeMap::from([(v[1].clone(), floor)]),
            };
            let list: Vec<MixtureBallot> = ballots.iter().map(|b| ballot(&v, b)).collect();
            let mixture = aggregate(&v, &list, &rules).expect("aggregate");
            prop_assert!(mixture.weights[&v[3]] <= cap + 1e-9, "{mixture:?}");
            prop_assert!(mixture.weights[&v[1]] >= floor - 1e-9, "{mixture:?}");
            prop_assert!((dense(&v, &mixture).iter().sum::<f64>() - 1.0).abs() <= 1e-9);
        }

        /// No voter can move the outcome closer (in L1) to their true ballot by reporting any
        /// other ballot on a grid of step 1/10.
        #[test]
        fn misreporting_does_not_pay(ballots in proptest::collection::vec(distribution(3), 1..5), who in 0usize..5) {
            let v = vocabulary(3);
            let who = who % ballots.len();
            let truth = &ballots[who];
            let list: Vec<MixtureBallot> = ballots.iter().map(|b| ballot(&v, b)).collect();
            let distance = |list: &[MixtureBallot]| {
                let mixture = aggregate(&v, list, &MixtureRules::default()).expect("aggregate");
                dense(&v, &mixture).iter().zip(truth).map(|(a, b)| (a - b).abs()).sum::<f64>()
            };
            let honest = distance(&list);
            for a in 0..=10u32 {
                for b in 0..=(10 - a) {
                    let lie = [f64::from(a) / 10.0, f64::from(b) / 10.0, f64::from(10 - a - b) / 10.0];
                    let mut misreported = list.clone();
                    misreported[who] = ballot(&v, &lie);
                    prop_assert!(distance(&misreported) >= honest - 1e-9, "lying with {lie:?} pays");
                }
            }
        }
    }
}
