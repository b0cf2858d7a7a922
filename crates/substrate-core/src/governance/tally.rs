//! Deciding a proposal in two chambers.
//!
//! The contributor chamber is every verified person, one vote each. The technical chamber is every
//! node operator (a verified person), weighted by the square root of their verified compute
//! (decaying with a 90-day half-life) and capped at max(5%, 2/N) of the chamber. Data questions are
//! led by the contributor chamber, workload questions by the technical one; the other chamber
//! holds a limited veto. Thresholds are approval quorums (yes as a share of everyone eligible),
//! not turnout quorums, and a tie keeps the status quo.

use std::collections::BTreeMap;

use crate::governance::number::Number;

/// How much a proposal changes, and so how much agreement it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProposalClass {
    Ordinary,
    Resource,
    Constitutional,
}

/// The agreement a class needs in one chamber.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// Yes must be strictly more than this share of yes + no.
    pub majority: f64,
    /// Yes must be at least this share of the chamber's whole eligible weight.
    pub quorum: f64,
}

impl ProposalClass {
    /// The class as the API and the CLI spell it.
    pub fn name(self) -> &'static str {
        match self {
            ProposalClass::Ordinary => "ordinary",
            ProposalClass::Resource => "resource",
            ProposalClass::Constitutional => "constitutional",
        }
    }

    /// The default thresholds (governable parameters later) for (contributor, technical).
    pub fn thresholds(self) -> (Threshold, Threshold) {
        match self {
            ProposalClass::Ordinary => {
                let t = Threshold { majority: 0.5, quorum: 0.10 };
                (t, t)
            }
            ProposalClass::Resource => {
                let t = Threshold { majority: 0.6, quorum: 0.15 };
                (t, t)
            }
            ProposalClass::Constitutional => (
                Threshold { majority: 2.0 / 3.0, quorum: 0.25 },
                Threshold { majority: 2.0 / 3.0, quorum: 0.20 },
            ),
        }
    }
}

/// Which chamber leads a question.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Chamber {
    Contributor,
    Technical,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vote {
    Yes,
    No,
    Abstain,
}

/// One chamber's count: weights of yes, no and abstain, and of everyone eligible. Records hold it
/// in `f64`; a commons decides in its [`Arithmetic`](crate::governance::number::Arithmetic).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChamberTally<N = f64> {
    pub yes: N,
    pub no: N,
    pub abstain: N,
    pub eligible: N,
}

impl<N: Number> ChamberTally<N> {
    /// Counts `votes` by voter, each weighted by `weights` (voters without weight count 0).
    pub fn count<'a>(
        weights: &BTreeMap<String, N>,
        votes: impl IntoIterator<Item = (&'a String, &'a Vote)>,
    ) -> ChamberTally<N> {
        ChamberTally::weighed(
            N::sum(weights.values().copied()),
            votes.into_iter().map(|(voter, vote)| (weights.get(voter).copied().unwrap_or(N::ZERO), *vote)),
        )
    }

    /// Counts votes that come with their voter's weight, out of `eligible` in all.
    pub fn weighed(eligible: N, votes: impl IntoIterator<Item = (N, Vote)>) -> ChamberTally<N> {
        // An empty sum of f64 is -0.0; a chamber with nobody in it has +0 weight.
        let mut tally =
            ChamberTally { yes: N::ZERO, no: N::ZERO, abstain: N::ZERO, eligible: eligible + N::ZERO };
        for (weight, vote) in votes {
            match vote {
                Vote::Yes => tally.yes = tally.yes + weight,
                Vote::No => tally.no = tally.no + weight,
                Vote::Abstain => tally.abstain = tally.abstain + weight,
            }
        }
        tally
    }

    /// Whether yes carries this chamber under `threshold` (a tie does not).
    pub fn approves(&self, threshold: Threshold) -> bool {
        let decided = self.yes + self.no;
        decided > N::ZERO
            && N::above(self.yes, threshold.majority, decided)
            && N::at_least(self.yes, threshold.quorum, self.eligible)
    }

    /// Whether this chamber, not leading, blocks the proposal: no carries it by the same
    /// majority and quorum that yes would need.
    pub fn vetoes(&self, threshold: Threshold) -> bool {
        let decided = self.yes + self.no;
        decided > N::ZERO
            && N::above(self.no, threshold.majority, decided)
            && N::at_least(self.no, threshold.quorum, self.eligible)
    }

    /// The tally as records keep it.
    pub fn to_f64(&self) -> ChamberTally {
        ChamberTally {
            yes: self.yes.to_f64(),
            no: self.no.to_f64(),
            abstain: self.abstain.to_f64(),
            eligible: self.eligible.to_f64(),
        }
    }
}

/// What a closed proposal came to. A rejection is an outcome, not an error.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    Passed,
    Rejected { reason: String },
    Vetoed { by: Chamber },
}

/// Decides a proposal of `class` led by `lead`, from both chambers' tallies, with the default
/// thresholds.
pub fn decide<N: Number>(
    class: ProposalClass,
    lead: Chamber,
    contributor: &ChamberTally<N>,
    technical: &ChamberTally<N>,
) -> Outcome {
    decide_with(class.thresholds(), lead, contributor, technical)
}

/// Decides a proposal led by `lead` under (contributor, technical) `thresholds`.
pub fn decide_with<N: Number>(
    thresholds: (Threshold, Threshold),
    lead: Chamber,
    contributor: &ChamberTally<N>,
    technical: &ChamberTally<N>,
) -> Outcome {
    let (contributor_threshold, technical_threshold) = thresholds;
    let (leading, leading_threshold, other, other_threshold, other_chamber) = match lead {
        Chamber::Contributor => {
            (contributor, contributor_threshold, technical, technical_threshold, Chamber::Technical)
        }
        Chamber::Technical => {
            (technical, technical_threshold, contributor, contributor_threshold, Chamber::Contributor)
        }
    };
    if !leading.approves(leading_threshold) {
        // The percentages only word the reason: IEEE multiplication and Rust's formatting, the
        // same everywhere.
        let decided = leading.yes + leading.no;
        let share = if decided > N::ZERO { (leading.yes / decided).to_f64() } else { 0.0 };
        let reason = if decided > N::ZERO && !N::above(leading.yes, leading_threshold.majority, decided) {
            format!(
                "the leading chamber's yes is {:.1}% of yes + no; more than {:.1}% is needed",
                share * 100.0,
                leading_threshold.majority * 100.0
            )
        } else {
            format!(
                "the leading chamber's yes is {:.1}% of its eligible weight; {:.1}% is needed",
                if leading.eligible > N::ZERO {
                    (leading.yes / leading.eligible).to_f64() * 100.0
                } else {
                    0.0
                },
                leading_threshold.quorum * 100.0
            )
        };
        return Outcome::Rejected { reason };
    }
    if other.vetoes(other_threshold) {
        return Outcome::Vetoed { by: other_chamber };
    }
    Outcome::Passed
}

/// The 90-day half-life of verified compute, in milliseconds.
pub const COMPUTE_HALF_LIFE_MS: u64 = 90 * 24 * 3600 * 1000;

/// One piece of verified compute credited to a node operator (a person), at a time.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ComputeRecord {
    /// The verified person the node is bound to (not the node key: splitting compute over many
    /// nodes of one person must gain nothing).
    pub operator: String,
    pub units: u64,
    /// ms since the epoch.
    pub at: u64,
}

/// The technical chamber: every operator in `operators` (verified persons with a registered node),
/// weighted by sqrt of their decayed verified compute in `records`, normalised to sum to 1 and
/// capped at max(5%, 2/N) with N all the operators, so one operator's compute cannot make them
/// the whole chamber while the others have none yet. Excess spreads over the operators below the
/// cap in proportion to their weight, or equally among them when none has any. Until anyone has
/// compute, every operator weighs the same.
pub fn operator_weights<N: Number>(
    operators: &[&str],
    records: &[ComputeRecord],
    now: u64,
) -> BTreeMap<String, N> {
    let mut compute: BTreeMap<String, N> = operators.iter().map(|o| ((*o).to_owned(), N::ZERO)).collect();
    for record in records {
        if let Some(total) = compute.get_mut(&record.operator) {
            let age = now.saturating_sub(record.at);
            *total = *total + N::from_u64(record.units).decayed(age, COMPUTE_HALF_LIFE_MS);
        }
    }
    let n = compute.len();
    if n == 0 {
        return BTreeMap::new();
    }
    let mut weights: BTreeMap<String, N> =
        compute.into_iter().map(|(who, c)| (who, c.max(N::ZERO).sqrt())).collect();
    let total = N::sum(weights.values().copied());
    if total > N::ZERO {
        weights.values_mut().for_each(|w| *w = *w / total);
    } else {
        weights.values_mut().for_each(|w| *w = N::ONE / N::from_u64(n as u64));
    }
    let cap = (N::from_u64(2) / N::from_u64(n as u64)).max(N::from_f64(0.05));
    let tolerance = N::from_f64(1e-15);
    // Water-filling: cap, spread the excess over the rest, until nobody exceeds.
    for _ in 0..n {
        let excess = N::sum(weights.values().map(|w| (*w - cap).max(N::ZERO)));
        if excess <= tolerance {
            break;
        }
        let open: Vec<N> = weights.values().copied().filter(|w| *w < cap).collect();
        let open_weight = N::sum(open.iter().copied());
        let open_count = N::from_u64(open.len() as u64);
        for w in weights.values_mut() {
            if *w >= cap {
                *w = cap;
            } else if open_weight > N::ZERO {
                *w = *w + excess * (*w / open_weight);
            } else {
                *w = *w + excess / open_count;
            }
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::number::Fixed;
    use proptest::prelude::*;

    /// The chamber of the operators that have compute in `records`, as f64.
    fn technical_weights<N: Number>(records: &[ComputeRecord], now: u64) -> BTreeMap<String, f64> {
        let operators: Vec<&str> = records.iter().map(|r| r.operator.as_str()).collect();
        operator_weights::<N>(&operators, records, now)
            .into_iter()
            .map(|(who, w)| (who, w.to_f64()))
            .filter(|(_, w)| *w > 0.0)
            .collect()
    }

    fn tally<N: Number>(yes: u64, no: u64, eligible: u64) -> ChamberTally<N> {
        ChamberTally {
            yes: N::from_u64(yes),
            no: N::from_u64(no),
            abstain: N::ZERO,
            eligible: N::from_u64(eligible),
        }
    }

    fn thresholds_by_class<N: Number>() {
        let quiet = tally::<N>(0, 0, 100);
        let cases = [
            (ProposalClass::Ordinary, tally::<N>(51, 49, 100), true),
            (ProposalClass::Ordinary, tally(50, 50, 100), false), // a tie
            (ProposalClass::Ordinary, tally(9, 0, 100), false),   // below the 10% quorum
            (ProposalClass::Ordinary, tally(10, 0, 100), true),
            (ProposalClass::Resource, tally(60, 40, 100), false),
            (ProposalClass::Resource, tally(61, 39, 100), true),
            (ProposalClass::Resource, tally(3, 2, 100), false), // 15% quorum
            (ProposalClass::Resource, tally(15, 10, 100), false), // exactly 60%: a tie with the bar
            (ProposalClass::Constitutional, tally(24, 0, 100), false),
            (ProposalClass::Constitutional, tally(67, 33, 100), true),
            (ProposalClass::Constitutional, tally(2, 1, 3), false), // exactly two thirds
            (ProposalClass::Constitutional, tally(1, 0, 4), true),  // exactly the 25% quorum
        ];
        for (class, contributor, passes) in cases {
            let outcome = decide(class, Chamber::Contributor, &contributor, &quiet);
            assert_eq!(outcome == Outcome::Passed, passes, "{class:?} {contributor:?}: {outcome:?}");
        }
    }

    #[test]
    fn thresholds_by_class_with_ties_keeping_the_status_quo() {
        thresholds_by_class::<f64>();
        thresholds_by_class::<Fixed>();
    }

    fn vetoes<N: Number>() {
        let yes = tally::<N>(80, 20, 100);
        let blocking = tally(10, 90, 100);
        let grumbling = tally(0, 5, 100); // a majority, but under the quorum
        assert_eq!(
            decide(ProposalClass::Ordinary, Chamber::Contributor, &yes, &blocking),
            Outcome::Vetoed { by: Chamber::Technical }
        );
        assert_eq!(decide(ProposalClass::Ordinary, Chamber::Contributor, &yes, &grumbling), Outcome::Passed);
        assert_eq!(
            decide(ProposalClass::Ordinary, Chamber::Technical, &blocking, &yes),
            Outcome::Vetoed { by: Chamber::Contributor }
        );
    }

    #[test]
    fn the_other_chamber_can_veto_only_by_its_own_majority_and_quorum() {
        vetoes::<f64>();
        vetoes::<Fixed>();
    }

    #[test]
    fn a_rejection_says_why() {
        fn reason<N: Number>() -> String {
            let outcome = decide(
                ProposalClass::Resource,
                Chamber::Contributor,
                &tally::<N>(55, 45, 100),
                &tally(0, 0, 1),
            );
            let Outcome::Rejected { reason } = outcome else { panic!("{outcome:?}") };
            reason
        }
        for reason in [reason::<f64>(), reason::<Fixed>()] {
            assert!(reason.contains("55.0%") && reason.contains("60.0%"), "{reason}");
        }
    }

    fn decay<N: Number>() {
        let day = 24 * 3600 * 1000;
        let records = vec![
            ComputeRecord { operator: "a".into(), units: 100, at: 0 },
            ComputeRecord { operator: "b".into(), units: 100, at: 90 * day },
        ];
        // At day 90, a's compute has halved: weights sqrt(50) : sqrt(100), then normalised (two
        // operators: the cap is 2/2 = 100%, so nothing is capped).
        let weights = technical_weights::<N>(&records, 90 * day);
        let ratio = weights["a"] / weights["b"];
        assert!((ratio - (0.5f64).sqrt()).abs() < 1e-11, "{weights:?}");
    }

    #[test]
    fn compute_decays_with_a_ninety_day_half_life() {
        decay::<f64>();
        decay::<Fixed>();
    }

    fn capped<N: Number>() {
        let operators: Vec<String> = (0..40).map(|i| format!("op{i}")).collect();
        let names: Vec<&str> = operators.iter().map(String::as_str).collect();
        let records = vec![ComputeRecord { operator: "op0".into(), units: 1, at: 0 }];
        let weights: BTreeMap<String, f64> =
            operator_weights::<N>(&names, &records, 0).into_iter().map(|(o, w)| (o, w.to_f64())).collect();
        assert!((weights["op0"] - 0.05).abs() < 1e-11, "{weights:?}");
        assert!((weights.values().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!((weights["op1"] - 0.95 / 39.0).abs() < 1e-11, "{weights:?}");
    }

    #[test]
    fn one_operator_with_compute_is_capped_among_all_operators() {
        capped::<f64>();
        capped::<Fixed>();
    }

    /// Weights sum to 1, nobody exceeds the cap, and splitting one operator's compute over many
    /// records (many nodes) changes nothing.
    fn splitting_gains_nothing<N: Number>(compute: &[u32], parts: u64) -> Result<(), TestCaseError> {
        let records: Vec<ComputeRecord> = compute
            .iter()
            .enumerate()
            .map(|(i, c)| ComputeRecord { operator: format!("op{i}"), units: u64::from(*c) * parts, at: 0 })
            .collect();
        let weights = technical_weights::<N>(&records, 0);
        let n = weights.len() as f64;
        prop_assert!((weights.values().sum::<f64>() - 1.0).abs() < 1e-9);
        let cap = (2.0 / n).max(0.05);
        prop_assert!(weights.values().all(|w| *w <= cap + 1e-9), "{weights:?}");

        let mut split = records.clone();
        let first = split.remove(0);
        for _ in 0..parts {
            split.push(ComputeRecord { units: first.units / parts, ..first.clone() });
        }
        let again = technical_weights::<N>(&split, 0);
        for (who, w) in &weights {
            prop_assert!((again[who] - w).abs() < 1e-9, "{who}: {w} became {}", again[who]);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn technical_weights_are_capped_and_splitting_gains_nothing(
            compute in proptest::collection::vec(1u32..10_000, 1..60),
            parts in 1u64..8,
        ) {
            splitting_gains_nothing::<f64>(&compute, parts)?;
            splitting_gains_nothing::<Fixed>(&compute, parts)?;
        }
    }
}
