//! Deciding a proposal in two chambers.
//!
//! The contributor chamber is every verified person, one vote each. The technical chamber is every
//! node operator (a verified person), weighted by the square root of their verified compute
//! (decaying with a 90-day half-life) and capped at max(5%, 2/N) of the chamber. Data questions are
//! led by the contributor chamber, workload questions by the technical one; the other chamber
//! holds a limited veto. Thresholds are approval quorums (yes as a share of everyone eligible),
//! not turnout quorums, and a tie keeps the status quo.

use std::collections::BTreeMap;

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

/// One chamber's count: weights of yes, no and abstain, and of everyone eligible.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChamberTally {
    pub yes: f64,
    pub no: f64,
    pub abstain: f64,
    pub eligible: f64,
}

impl ChamberTally {
    /// Counts `votes` by voter, each weighted by `weights` (voters without weight count 0).
    pub fn count<'a>(
        weights: &BTreeMap<String, f64>,
        votes: impl IntoIterator<Item = (&'a String, &'a Vote)>,
    ) -> ChamberTally {
        ChamberTally::weighed(
            weights.values().sum(),
            votes.into_iter().map(|(voter, vote)| (weights.get(voter).copied().unwrap_or(0.0), *vote)),
        )
    }

    /// Counts votes that come with their voter's weight, out of `eligible` in all.
    pub fn weighed(eligible: f64, votes: impl IntoIterator<Item = (f64, Vote)>) -> ChamberTally {
        // An empty sum of f64 is -0.0; a chamber with nobody in it has +0 weight.
        let mut tally = ChamberTally { eligible: eligible + 0.0, ..ChamberTally::default() };
        for (weight, vote) in votes {
            match vote {
                Vote::Yes => tally.yes += weight,
                Vote::No => tally.no += weight,
                Vote::Abstain => tally.abstain += weight,
            }
        }
        tally
    }

    /// Whether yes carries this chamber under `threshold` (a tie does not).
    pub fn approves(&self, threshold: Threshold) -> bool {
        let decided = self.yes + self.no;
        decided > 0.0
            && self.yes > threshold.majority * decided
            && self.yes >= threshold.quorum * self.eligible
    }

    /// Whether this chamber, not leading, blocks the proposal: no carries it by the same
    /// majority and quorum that yes would need.
    pub fn vetoes(&self, threshold: Threshold) -> bool {
        let decided = self.yes + self.no;
        decided > 0.0 && self.no > threshold.majority * decided && self.no >= threshold.quorum * self.eligible
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
pub fn decide(
    class: ProposalClass,
    lead: Chamber,
    contributor: &ChamberTally,
    technical: &ChamberTally,
) -> Outcome {
    decide_with(class.thresholds(), lead, contributor, technical)
}

/// Decides a proposal led by `lead` under (contributor, technical) `thresholds`.
pub fn decide_with(
    thresholds: (Threshold, Threshold),
    lead: Chamber,
    contributor: &ChamberTally,
    technical: &ChamberTally,
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
        let decided = leading.yes + leading.no;
        let share = if decided > 0.0 { leading.yes / decided } else { 0.0 };
        let reason = if decided > 0.0 && leading.yes <= leading_threshold.majority * decided {
            format!(
                "the leading chamber's yes is {:.1}% of yes + no; more than {:.1}% is needed",
                share * 100.0,
                leading_threshold.majority * 100.0
            )
        } else {
            format!(
                "the leading chamber's yes is {:.1}% of its eligible weight; {:.1}% is needed",
                if leading.eligible > 0.0 { leading.yes / leading.eligible * 100.0 } else { 0.0 },
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
pub const COMPUTE_HALF_LIFE_MS: f64 = 90.0 * 24.0 * 3600.0 * 1000.0;

/// One piece of verified compute credited to a node operator (a person), at a time.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ComputeRecord {
    /// The verified person the node is bound to (not the node key: splitting compute over many
    /// nodes of one person must gain nothing).
    pub operator: String,
    pub units: f64,
    /// ms since the epoch.
    pub at: u64,
}

/// The technical chamber: every operator in `operators` (verified persons with a registered node),
/// weighted by sqrt of their decayed verified compute in `records`, normalised to sum to 1 and
/// capped at max(5%, 2/N) with N all the operators, so one operator's compute cannot make them
/// the whole chamber while the others have none yet. Excess spreads over the operators below the
/// cap in proportion to their weight, or equally among them when none has any. Until anyone has
/// compute, every operator weighs the same.
pub fn operator_weights(operators: &[&str], records: &[ComputeRecord], now: u64) -> BTreeMap<String, f64> {
    let mut compute: BTreeMap<String, f64> = operators.iter().map(|o| ((*o).to_owned(), 0.0)).collect();
    for record in records {
        if let Some(total) = compute.get_mut(&record.operator) {
            let age = now.saturating_sub(record.at) as f64;
            *total += record.units * 0.5f64.powf(age / COMPUTE_HALF_LIFE_MS);
        }
    }
    let n = compute.len();
    if n == 0 {
        return BTreeMap::new();
    }
    let mut weights: BTreeMap<String, f64> =
        compute.into_iter().map(|(who, c)| (who, c.max(0.0).sqrt())).collect();
    let total: f64 = weights.values().sum();
    if total > 0.0 {
        weights.values_mut().for_each(|w| *w /= total);
    } else {
        weights.values_mut().for_each(|w| *w = 1.0 / n as f64);
    }
    let cap = (2.0 / n as f64).max(0.05);
    // Water-filling: cap, spread the excess over the rest, until nobody exceeds.
    for _ in 0..n {
        let excess: f64 = weights.values().map(|w| (w - cap).max(0.0)).sum();
        if excess <= 1e-15 {
            break;
        }
        let open: Vec<f64> = weights.values().copied().filter(|w| *w < cap).collect();
        let open_weight: f64 = open.iter().sum();
        let open_count = open.len() as f64;
        for w in weights.values_mut() {
            if *w >= cap {
                *w = cap;
            } else if open_weight > 0.0 {
                *w += excess * (*w / open_weight);
            } else {
                *w += excess / open_count;
            }
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The chamber of the operators that have compute in `records`.
    fn technical_weights(records: &[ComputeRecord], now: u64) -> BTreeMap<String, f64> {
        let operators: Vec<&str> = records.iter().map(|r| r.operator.as_str()).collect();
        operator_weights(&operators, records, now).into_iter().filter(|(_, w)| *w > 0.0).collect()
    }

    fn tally(yes: f64, no: f64, eligible: f64) -> ChamberTally {
        ChamberTally { yes, no, abstain: 0.0, eligible }
    }

    #[test]
    fn thresholds_by_class_with_ties_keeping_the_status_quo() {
        let quiet = tally(0.0, 0.0, 100.0);
        let cases = [
            (ProposalClass::Ordinary, tally(51.0, 49.0, 100.0), true),
            (ProposalClass::Ordinary, tally(50.0, 50.0, 100.0), false), // a tie
            (ProposalClass::Ordinary, tally(9.0, 0.0, 100.0), false),   // below the 10% quorum
            (ProposalClass::Ordinary, tally(10.0, 0.0, 100.0), true),
            (ProposalClass::Resource, tally(60.0, 40.0, 100.0), false),
            (ProposalClass::Resource, tally(61.0, 39.0, 100.0), true),
            (ProposalClass::Constitutional, tally(24.0, 0.0, 100.0), false),
            (ProposalClass::Constitutional, tally(67.0, 33.0, 100.0), true),
        ];
        for (class, contributor, passes) in cases {
            let outcome = decide(class, Chamber::Contributor, &contributor, &quiet);
            assert_eq!(outcome == Outcome::Passed, passes, "{class:?} {contributor:?}: {outcome:?}");
        }
    }

    #[test]
    fn the_other_chamber_can_veto_only_by_its_own_majority_and_quorum() {
        let yes = tally(80.0, 20.0, 100.0);
        let blocking = tally(10.0, 90.0, 100.0);
        let grumbling = tally(0.0, 5.0, 100.0); // a majority, but under the quorum
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
    fn a_rejection_says_why() {
        let outcome = decide(
            ProposalClass::Resource,
            Chamber::Contributor,
            &tally(55.0, 45.0, 100.0),
            &tally(0.0, 0.0, 1.0),
        );
        let Outcome::Rejected { reason } = outcome else { panic!("{outcome:?}") };
        assert!(reason.contains("55.0%") && reason.contains("60.0%"), "{reason}");
    }

    #[test]
    fn compute_decays_with_a_ninety_day_half_life() {
        let day = 24 * 3600 * 1000;
        let records = vec![
            ComputeRecord { operator: "a".into(), units: 100.0, at: 0 },
            ComputeRecord { operator: "b".into(), units: 100.0, at: 90 * day },
        ];
        // At day 90, a's compute has halved: weights sqrt(50) : sqrt(100), then normalised (two
        // operators: the cap is 2/2 = 100%, so nothing is capped).
        let weights = technical_weights(&records, 90 * day);
        let ratio = weights["a"] / weights["b"];
        assert!((ratio - (0.5f64).sqrt()).abs() < 1e-12, "{weights:?}");
    }

    #[test]
    fn one_operator_with_compute_is_capped_among_all_operators() {
        let operators: Vec<String> = (0..40).map(|i| format!("op{i}")).collect();
        let names: Vec<&str> = operators.iter().map(String::as_str).collect();
        let records = vec![ComputeRecord { operator: "op0".into(), units: 1.0, at: 0 }];
        let weights = operator_weights(&names, &records, 0);
        assert!((weights["op0"] - 0.05).abs() < 1e-12, "{weights:?}");
        assert!((weights.values().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!((weights["op1"] - 0.95 / 39.0).abs() < 1e-12, "{weights:?}");
    }

    proptest! {
        /// Weights sum to 1, nobody exceeds the cap, and splitting one operator's compute over
        /// many records (many nodes) changes nothing.
        #[test]
        fn technical_weights_are_capped_and_splitting_gains_nothing(
            compute in proptest::collection::vec(1u32..10_000, 1..60),
            parts in 1usize..8,
        ) {
            let records: Vec<ComputeRecord> = compute
                .iter()
                .enumerate()
                .map(|(i, c)| ComputeRecord { operator: format!("op{i}"), units: f64::from(*c), at: 0 })
                .collect();
            let weights = technical_weights(&records, 0);
            let n = weights.len() as f64;
            prop_assert!((weights.values().sum::<f64>() - 1.0).abs() < 1e-9);
            let cap = (2.0 / n).max(0.05);
            prop_assert!(weights.values().all(|w| *w <= cap + 1e-9), "{weights:?}");

            let mut split = records.clone();
            let first = split.remove(0);
            for _ in 0..parts {
                split.push(ComputeRecord { units: first.units / parts as f64, ..first.clone() });
            }
            let again = technical_weights(&split, 0);
            for (who, w) in &weights {
                prop_assert!((again[who] - w).abs() < 1e-9, "{who}: {w} became {}", again[who]);
            }
        }
    }
}
