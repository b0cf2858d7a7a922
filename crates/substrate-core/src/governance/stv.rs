//! Electing the stewardship board by the single transferable vote, counted by Meek's method
//! (Hill, Wichmann, Woodall, "Algorithm 123: Single Transferable Vote by Meek's Method", The
//! Computer Journal 30 (1987) 277–281).
//!
//! The arithmetic, the quota and the tolerances follow `stv_meek` in pref_voting 1.18.2, so that
//! the two elect the same board on the fixtures in `fixtures/stv/`:
//!
//! - Every candidate has a keep factor: 1 while hopeful, 0 once excluded, and for an elected
//!   candidate the share they keep of each vote that reaches them, passing the rest down the
//!   ballot. Excluded candidates are skipped. Weight that finds no continuing candidate further
//!   down is exhausted, so a blank ballot is exhausted from the start.
//! - The quota is (total weight − exhausted weight) / (seats + 1), recomputed whenever the
//!   tallies are.
//! - A round first brings the elected to the quota, setting each keep factor to
//!   keep · quota / tally (clamped to [0, 1]) until none moves by more than [`CONVERGENCE`], at
//!   most [`MAX_ITERATIONS`] times. Then every hopeful candidate within [`CONVERGENCE`] of the
//!   quota is elected, highest tally first while seats remain, keeping quota / tally. If nobody
//!   was, and the hopeful are no more than the open seats, they are all elected. Otherwise the
//!   hopeful candidate with the lowest tally is excluded.
//!
//! Ties, pinned: tallies within [`NEGLIGIBLE`] of each other are equal, and the candidate list is
//! the tie-break order, earlier favoured. Among the hopeful tied for the lowest tally, the one
//! latest in the list is excluded; among candidates elected in the same round, equal tallies go in
//! list order, which decides who gets the last seat when more reach the quota than seats remain.
//!
//! Where this differs from pref_voting, on purpose:
//! - pref_voting counts a blank ballot in the total but never as exhausted, so blank ballots raise
//!   its quota; here a blank ballot is the same as no ballot.
//! - With no votes at all pref_voting elects nobody; here the seats go by the tie-break order.
//! - pref_voting returns the board sorted; here it is in the order elected.
//! - pref_voting breaks ties by its exact floating-point tallies (and for exclusion, within its
//!   tolerance, in set iteration order); here ties are decided by tolerance and list order only.
//!
//! Ballots are merged and sorted before counting, so the order they arrive in cannot change a
//! single bit of the result. The count runs in a commons' [`Number`]: fixed point for commons
//! founded with state encoding 3 or later, where both tolerances widen to the rounding the count
//! can gather ([`Number::slack`]: 2^−28 of the votes), so tallies equal in exact arithmetic tie;
//! IEEE f64 addition, multiplication and division for the ones before.

use std::collections::{BTreeMap, BTreeSet};

use crate::governance::number::Number;

/// Keep factors that move by no more than this have converged; a tally this close to the quota
/// has reached it (pref_voting's `tol`).
pub const CONVERGENCE: f64 = 1e-10;
/// Weight and tally differences this small are nothing: a ballot passing on less is exhausted and
/// tallies this close are tied (pref_voting's `EPS`).
pub const NEGLIGIBLE: f64 = 1e-12;
/// The most keep-factor adjustments in one round (pref_voting's `max_iter`).
pub const MAX_ITERATIONS: usize = 2000;

/// A voter's strict ranking of candidates (indices into the candidate list), most preferred first,
/// cast `count` times. It may stop before the last candidate, or rank nobody.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RankedBallot {
    pub ranking: Vec<usize>,
    pub count: u64,
}

/// The board and how the count reached it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StvOutcome {
    /// Candidate indices in the order they were elected.
    pub elected: Vec<usize>,
    pub rounds: Vec<StvRound>,
}

/// One round of the count: the state it converged to and what was decided from it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StvRound {
    /// Each candidate's keep factor when the decision was taken.
    pub keep: Vec<f64>,
    /// Each candidate's votes under those keep factors.
    pub tally: Vec<f64>,
    /// Weight that reached no continuing candidate.
    pub exhausted: f64,
    pub quota: f64,
    /// Keep-factor adjustments made before the tallies settled.
    pub iterations: usize,
    pub decision: StvDecision,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StvDecision {
    /// These reached the quota, highest tally first.
    Elected(Vec<usize>),
    /// Nobody reached the quota and the hopeful were no more than the open seats.
    ElectedRemaining(Vec<usize>),
    /// The lowest tally; `tied_with` are the other hopeful candidates the tie-break spared.
    Excluded { candidate: usize, tied_with: Vec<usize> },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElectionError {
    #[error("no seats to fill")]
    NoSeats,
    #[error("{seats} seats but only {candidates} candidates")]
    MoreSeatsThanCandidates { seats: usize, candidates: usize },
    #[error("candidate '{0}' is listed twice")]
    DuplicateCandidate(String),
    #[error("ballot {ballot} ranks candidate {candidate}, but there are only {candidates} candidates")]
    UnknownCandidate { ballot: usize, candidate: usize, candidates: usize },
    #[error("ballot {ballot} ranks '{name}' (candidate {candidate}) twice")]
    RankedTwice { ballot: usize, candidate: usize, name: String },
    #[error("the ballot counts add up to more than {}", u64::MAX)]
    TooManyVotes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Hopeful,
    Elected,
    Excluded,
}

/// Elects `seats` of `candidates` from `ballots` by Meek STV counted in `N`; the candidate list
/// is also the tie-break order (earlier is favoured).
pub fn elect<N: Number, S: AsRef<str>>(
    candidates: &[S],
    ballots: &[RankedBallot],
    seats: usize,
) -> Result<StvOutcome, ElectionError> {
    if seats == 0 {
        return Err(ElectionError::NoSeats);
    }
    if seats > candidates.len() {
        return Err(ElectionError::MoreSeatsThanCandidates { seats, candidates: candidates.len() });
    }
    let mut names = BTreeSet::new();
    for name in candidates {
        if !names.insert(name.as_ref()) {
            return Err(ElectionError::DuplicateCandidate(name.as_ref().to_owned()));
        }
    }
    let count = Count::<N>::new(candidates, ballots, seats)?;
    Ok(count.run())
}

/// The merged ballots and the running state of the count.
struct Count<N> {
    seats: usize,
    /// Distinct rankings in ascending order, each with its total count.
    ballots: Vec<(Vec<usize>, N)>,
    total: N,
    keep: Vec<N>,
    status: Vec<Status>,
    elected: Vec<usize>,
    /// [`CONVERGENCE`] and [`NEGLIGIBLE`] in `N`, at least its [`Number::slack`].
    convergence: N,
    negligible: N,
}

impl<N: Number> Count<N> {
    fn new<S: AsRef<str>>(
        candidates: &[S],
        ballots: &[RankedBallot],
        seats: usize,
    ) -> Result<Count<N>, ElectionError> {
        let n = candidates.len();
        let mut merged: BTreeMap<&[usize], u64> = BTreeMap::new();
        for (index, ballot) in ballots.iter().enumerate() {
            let mut seen = vec![false; n];
            for &candidate in &ballot.ranking {
                let Some(mark) = seen.get_mut(candidate) else {
                    return Err(ElectionError::UnknownCandidate { ballot: index, candidate, candidates: n });
                };
                if *mark {
                    let name = candidates[candidate].as_ref().to_owned();
                    return Err(ElectionError::RankedTwice { ballot: index, candidate, name });
                }
                *mark = true;
            }
            if ballot.count > 0 {
                let sum = merged.entry(&ballot.ranking).or_insert(0);
                *sum = sum.checked_add(ballot.count).ok_or(ElectionError::TooManyVotes)?;
            }
        }
        // Counts are summed as integers, so the total is exact up to 2^53 votes.
        let total = merged
            .values()
            .try_fold(0u64, |sum, &c| sum.checked_add(c))
            .ok_or(ElectionError::TooManyVotes)?;
        Ok(Count {
            seats,
            ballots: merged
                .into_iter()
                .map(|(ranking, count)| (ranking.to_vec(), N::from_u64(count)))
                .collect(),
            total: N::from_u64(total),
            keep: vec![N::ONE; n],
            status: vec![Status::Hopeful; n],
            elected: Vec::with_capacity(seats),
            convergence: N::from_f64(CONVERGENCE).max(N::slack(N::from_u64(total))),
            negligible: N::from_f64(NEGLIGIBLE).max(N::slack(N::from_u64(total))),
        })
    }

    fn run(mut self) -> StvOutcome {
        let mut rounds = Vec::new();
        let (convergence, negligible) = (self.convergence, self.negligible);
        while self.elected.len() < self.seats {
            let (iterations, tally, exhausted) = self.converge();
            let quota = self.quota(exhausted);
            let keep = self.keep.clone();
            let hopeful = self.hopeful();
            let open = self.seats - self.elected.len();
            let reached: Vec<usize> =
                hopeful.iter().copied().filter(|&c| tally[c] >= quota - convergence).collect();
            let decision = if !reached.is_empty() {
                let newly: Vec<usize> =
                    by_tally(reached, &tally, negligible).into_iter().take(open).collect();
                for &c in &newly {
                    self.status[c] = Status::Elected;
                    self.elected.push(c);
                    if tally[c] > quota + convergence {
                        self.keep[c] = quota / tally[c];
                    }
                }
                StvDecision::Elected(newly)
            } else if hopeful.len() <= open {
                let rest = by_tally(hopeful, &tally, negligible);
                for &c in &rest {
                    self.status[c] = Status::Elected;
                    self.elected.push(c);
                }
                StvDecision::ElectedRemaining(rest)
            } else {
                let Some(lowest) = hopeful.iter().map(|&c| tally[c]).reduce(N::min) else { break };
                let mut tied: Vec<usize> =
                    hopeful.into_iter().filter(|&c| tally[c] <= lowest + negligible).collect();
                // `tied` ascends, so its last is the least favoured; it holds at least the lowest.
                let Some(candidate) = tied.pop() else { break };
                self.status[candidate] = Status::Excluded;
                self.keep[candidate] = N::ZERO;
                StvDecision::Excluded { candidate, tied_with: tied }
            };
            let finished = matches!(decision, StvDecision::ElectedRemaining(_));
            let f64s = |values: Vec<N>| values.into_iter().map(N::to_f64).collect();
            rounds.push(StvRound {
                keep: f64s(keep),
                tally: f64s(tally),
                exhausted: exhausted.to_f64(),
                quota: quota.to_f64(),
                iterations,
                decision,
            });
            if finished {
                break;
            }
        }
        StvOutcome { elected: self.elected, rounds }
    }

    /// Adjusts the elected candidates' keep factors until they settle; returns the adjustments
    /// made and the tallies and exhausted weight under the final keep factors.
    fn converge(&mut self) -> (usize, Vec<N>, N) {
        let mut iterations = 0;
        loop {
            let (tally, exhausted) = self.tally();
            if iterations == MAX_ITERATIONS {
                return (iterations, tally, exhausted);
            }
            let quota = self.quota(exhausted);
            let mut changed = false;
            for &c in &self.elected {
                if tally[c] > self.convergence && self.keep[c] > N::ZERO {
                    let keep = (self.keep[c] * quota / tally[c]).clamp(N::ZERO, N::ONE);
                    if (self.keep[c] - keep).abs() > self.convergence {
                        self.keep[c] = keep;
                        changed = true;
                    }
                }
            }
            if !changed {
                return (iterations, tally, exhausted);
            }
            iterations += 1;
        }
    }

    /// Each candidate's votes and the exhausted weight under the current keep factors.
    fn tally(&self) -> (Vec<N>, N) {
        let mut tally = vec![N::ZERO; self.keep.len()];
        let mut exhausted = N::ZERO;
        for (ranking, count) in &self.ballots {
            let mut remaining = N::ONE;
            for &c in ranking {
                if self.status[c] == Status::Excluded {
                    continue;
                }
                tally[c] = tally[c] + self.keep[c] * remaining * *count;
                remaining = remaining * (N::ONE - self.keep[c]);
                if remaining <= self.negligible {
                    break;
                }
            }
            exhausted = exhausted + remaining * *count;
        }
        (tally, exhausted)
    }

    fn quota(&self, exhausted: N) -> N {
        let live = self.total - exhausted;
        if live > self.negligible { live / N::from_u64(self.seats as u64 + 1) } else { N::ZERO }
    }

    fn hopeful(&self) -> Vec<usize> {
        (0..self.status.len()).filter(|&c| self.status[c] == Status::Hopeful).collect()
    }
}

/// `pool` (ascending) ordered by tally, highest first; tallies within `negligible` of the highest
/// left count as equal and go in list order.
fn by_tally<N: Number>(mut pool: Vec<usize>, tally: &[N], negligible: N) -> Vec<usize> {
    let mut order = Vec::with_capacity(pool.len());
    while let Some(top) = pool.iter().map(|&c| tally[c]).reduce(N::max) {
        let Some(first) = pool.iter().position(|&c| tally[c] >= top - negligible) else { break };
        order.push(pool.remove(first));
    }
    order
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;
    use crate::governance::number::Fixed;

    /// Elects in fixed point, as a commons founded now counts; the fixtures also run in `f64`.
    fn elect<S: AsRef<str>>(
        candidates: &[S],
        ballots: &[RankedBallot],
        seats: usize,
    ) -> Result<StvOutcome, ElectionError> {
        super::elect::<Fixed, S>(candidates, ballots, seats)
    }

    /// Ballots written as names separated by spaces ("" is blank), each with its count.
    fn ballots(candidates: &[&str], text: &[(&str, u64)]) -> Vec<RankedBallot> {
        text.iter()
            .map(|(ranking, count)| RankedBallot {
                ranking: ranking
                    .split_whitespace()
                    .map(|name| candidates.iter().position(|c| c == &name).expect("a listed name"))
                    .collect(),
                count: *count,
            })
            .collect()
    }

    /// One line per round: quota, every continuing candidate's tally (and keep factor once
    /// elected), exhausted weight, decision; then the board.
    fn render(candidates: &[&str], outcome: &StvOutcome) -> String {
        let names = |list: &[usize]| list.iter().map(|&c| candidates[c]).collect::<Vec<_>>().join(", ");
        let mut out = String::new();
        for round in &outcome.rounds {
            let tallies: Vec<String> = (0..candidates.len())
                .filter(|&c| round.keep[c] > 0.0)
                .map(|c| match round.keep[c] {
                    1.0 => format!("{} {:.3}", candidates[c], round.tally[c]),
                    keep => format!("{} {:.3} (keep {keep:.4})", candidates[c], round.tally[c]),
                })
                .collect();
            let decision = match &round.decision {
                StvDecision::Elected(list) => format!("elect {}", names(list)),
                StvDecision::ElectedRemaining(list) => format!("elect the remaining {}", names(list)),
                StvDecision::Excluded { candidate, tied_with } if tied_with.is_empty() => {
                    format!("exclude {}", candidates[*candidate])
                }
                StvDecision::Excluded { candidate, tied_with } => {
                    format!("exclude {} (tied with {})", candidates[*candidate], names(tied_with))
                }
            };
            out += &format!(
                "quota {:.3} | {} | exhausted {:.3} | {decision}\n",
                round.quota,
                tallies.join(", "),
                round.exhausted
            );
        }
        out + &format!("board: {}\n", names(&outcome.elected))
    }

    fn check(candidates: &[&str], text: &[(&str, u64)], seats: usize, expect: &str) {
        let outcome = elect(candidates, &ballots(candidates, text), seats).expect("a valid election");
        assert_eq!(render(candidates, &outcome).trim(), expect.trim());
    }

    #[test]
    fn one_seat_is_instant_runoff() {
        // Ada leads on first preferences but the runoff elects Cy, as instant runoff would.
        check(
            &["Ada", "Bo", "Cy", "Dee"],
            &[("Ada Bo", 40), ("Bo Cy", 25), ("Cy Bo", 20), ("Dee Cy", 15)],
            1,
            "
quota 50.000 | Ada 40.000, Bo 25.000, Cy 20.000, Dee 15.000 | exhausted 0.000 | exclude Dee
quota 50.000 | Ada 40.000, Bo 25.000, Cy 35.000 | exhausted 0.000 | exclude Bo
quota 50.000 | Ada 40.000, Cy 60.000 | exhausted 0.000 | elect Cy
board: Cy",
        );
    }

    #[test]
    fn a_surplus_elects_the_next_preference() {
        // Ada keeps 5/9 of each vote, just the quota; the 4/9 passed on lifts Bo past Cy.
        check(
            &["Ada", "Bo", "Cy"],
            &[("Ada Bo", 60), ("Cy", 30), ("Bo", 10)],
            2,
            "
quota 33.333 | Ada 60.000, Bo 10.000, Cy 30.000 | exhausted 0.000 | elect Ada
quota 33.333 | Ada 33.333 (keep 0.5556), Bo 36.667, Cy 30.000 | exhausted 0.000 | elect Bo
board: Ada, Bo",
        );
    }

    #[test]
    fn a_surplus_passes_through_an_elected_candidate() {
        // Ada's surplus reaches Cy through the elected Bo, who keeps a share of it too; Bo's
        // voters name nobody else, so Bo's surplus exhausts and the quota falls. Cy, with fewer
        // first preferences than Dee, takes the third seat.
        check(
            &["Ada", "Bo", "Cy", "Dee"],
            &[("Ada Bo Cy", 50), ("Bo", 35), ("Dee", 22), ("Cy", 10)],
            3,
            "
quota 29.250 | Ada 50.000, Bo 35.000, Cy 10.000, Dee 22.000 | exhausted 0.000 | elect Ada, Bo
quota 23.928 | Ada 23.928 (keep 0.4786), Bo 23.928 (keep 0.3918), Cy 25.857, Dee 22.000 | exhausted 21.287 | elect Cy
board: Ada, Bo, Cy",
        );
    }

    #[test]
    fn ties_go_by_the_candidate_list() {
        // Bo and Cy tie for the lowest tally: Cy, later in the list, is excluded.
        check(
            &["Ada", "Bo", "Cy"],
            &[("Ada", 4), ("Bo Cy", 3), ("Cy Bo", 3)],
            1,
            "
quota 5.000 | Ada 4.000, Bo 3.000, Cy 3.000 | exhausted 0.000 | exclude Cy (tied with Bo)
quota 5.000 | Ada 4.000, Bo 6.000 | exhausted 0.000 | elect Bo
board: Bo",
        );
        // Both reach the quota with one seat open: Ada, earlier in the list, takes it.
        check(
            &["Ada", "Bo", "Cy"],
            &[("Ada Cy", 5), ("Bo Cy", 5), ("Cy", 2)],
            1,
            "
quota 6.000 | Ada 5.000, Bo 5.000, Cy 2.000 | exhausted 0.000 | exclude Cy
quota 5.000 | Ada 5.000, Bo 5.000 | exhausted 2.000 | elect Ada
board: Ada",
        );
    }

    #[test]
    fn blank_ballots_are_exhausted_from_the_start() {
        let candidates = ["Ada", "Bo", "Cy"];
        let cast = [("Ada Cy", 50), ("Bo", 24), ("Cy", 10)];
        let with_blanks = [("Ada Cy", 50), ("Bo", 24), ("Cy", 10), ("", 36)];
        let without = elect(&candidates, &ballots(&candidates, &cast), 2).expect("valid");
        let with = elect(&candidates, &ballots(&candidates, &with_blanks), 2).expect("valid");
        assert_eq!(with.elected, without.elected);
        assert_eq!(with.rounds[0].quota, without.rounds[0].quota);
        assert_eq!(with.rounds[0].exhausted, 36.0);
    }

    #[test]
    fn no_votes_fill_the_seats_in_list_order() {
        let outcome = elect(&["Ada", "Bo", "Cy"], &[], 2).expect("valid");
        assert_eq!(outcome.elected, vec![0, 1]);
    }

    #[test]
    fn invalid_elections_are_refused() {
        let three = ["Ada", "Bo", "Cy"];
        let cases: [(&[&str], Vec<usize>, usize, ElectionError); 5] = [
            (&three, vec![0], 0, ElectionError::NoSeats),
            (&three, vec![0], 4, ElectionError::MoreSeatsThanCandidates { seats: 4, candidates: 3 }),
            (&["Ada", "Ada"], vec![0], 1, ElectionError::DuplicateCandidate("Ada".into())),
            (
                &three,
                vec![0, 3],
                1,
                ElectionError::UnknownCandidate { ballot: 1, candidate: 3, candidates: 3 },
            ),
            (
                &three,
                vec![2, 0, 2],
                1,
                ElectionError::RankedTwice { ballot: 1, candidate: 2, name: "Cy".into() },
            ),
        ];
        for (candidates, ranking, seats, expected) in cases {
            let cast = [RankedBallot { ranking: vec![1], count: 1 }, RankedBallot { ranking, count: 0 }];
            assert_eq!(elect(candidates, &cast, seats), Err(expected));
        }
        let huge =
            [RankedBallot { ranking: vec![0], count: u64::MAX }, RankedBallot { ranking: vec![1], count: 1 }];
        assert_eq!(elect(&three, &huge, 1), Err(ElectionError::TooManyVotes));
    }

    #[derive(serde::Deserialize)]
    struct Fixture {
        name: String,
        candidates: Vec<String>,
        tie_break_order: Vec<String>,
        seats: usize,
        ballots: Vec<RankedBallot>,
        pref_voting_elected: Vec<usize>,
    }

    /// Every profile in `fixtures/stv/` elects the board pref_voting's `stv_meek` elected
    /// (`make_fixtures.py` wrote them; pref_voting reports the board sorted, not in order).
    #[test]
    fn agrees_with_pref_voting() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/stv");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("the fixtures directory") {
            let path = entry.expect("a directory entry").path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a readable fixture");
            let fixture: Fixture = serde_json::from_str(&text).expect("a well-formed fixture");
            assert_eq!(fixture.tie_break_order, fixture.candidates, "{}", fixture.name);
            for outcome in [
                elect(&fixture.candidates, &fixture.ballots, fixture.seats).expect("valid"),
                super::elect::<f64, _>(&fixture.candidates, &fixture.ballots, fixture.seats).expect("valid"),
            ] {
                let mut board = outcome.elected.clone();
                board.sort_unstable();
                assert_eq!(board, fixture.pref_voting_elected, "{}: {outcome:#?}", fixture.name);
            }
            checked += 1;
        }
        assert!(checked >= 30, "only {checked} fixtures in {}", dir.display());
    }

    /// Up to 6 candidates, up to 12 ballots (possibly truncated or blank), and a seat count.
    fn election() -> impl Strategy<Value = (Vec<String>, Vec<RankedBallot>, usize)> {
        (1usize..=6).prop_flat_map(|n| {
            let ballot = (Just((0..n).collect::<Vec<_>>()).prop_shuffle(), 0..=n, 0u64..6)
                .prop_map(|(order, length, count)| RankedBallot { ranking: order[..length].to_vec(), count });
            let names = (0..n).map(|c| format!("c{c}")).collect::<Vec<_>>();
            (Just(names), proptest::collection::vec(ballot, 0..12), 1..=n)
        })
    }

    proptest! {
        #[test]
        fn every_seat_is_filled_by_a_distinct_candidate((candidates, cast, seats) in election()) {
            let outcome = elect(&candidates, &cast, seats).expect("valid");
            prop_assert_eq!(outcome.elected.len(), seats.min(candidates.len()));
            let distinct: BTreeSet<usize> = outcome.elected.iter().copied().collect();
            prop_assert_eq!(distinct.len(), outcome.elected.len());
            prop_assert!(outcome.rounds.len() <= candidates.len());
            prop_assert_eq!(
                elect(&candidates, &cast, candidates.len() + 1),
                Err(ElectionError::MoreSeatsThanCandidates { seats: candidates.len() + 1, candidates: candidates.len() })
            );
        }

        #[test]
        fn ballot_order_and_grouping_do_not_matter(
            ((candidates, cast, seats), shuffle) in election().prop_flat_map(|e| {
                let order = Just((0..e.1.len()).collect::<Vec<_>>()).prop_shuffle();
                (Just(e), order)
            })
        ) {
            let outcome = elect(&candidates, &cast, seats).expect("valid");
            let shuffled: Vec<RankedBallot> = shuffle.iter().map(|&i| cast[i].clone()).collect();
            prop_assert_eq!(&elect(&candidates, &shuffled, seats).expect("valid"), &outcome);
            // The same votes cast one at a time.
            let single: Vec<RankedBallot> = cast
                .iter()
                .flat_map(|b| (0..b.count).map(|_| RankedBallot { ranking: b.ranking.clone(), count: 1 }))
                .collect();
            prop_assert_eq!(&elect(&candidates, &single, seats).expect("valid"), &outcome);
        }

        #[test]
        fn a_majority_first_choice_wins_one_seat((candidates, cast, _) in election()) {
            let total: u64 = cast.iter().map(|b| b.count).sum();
            let mut first = vec![0u64; candidates.len()];
            for ballot in &cast {
                if let Some(&c) = ballot.ranking.first() {
                    first[c] += ballot.count;
                }
            }
            let outcome = elect(&candidates, &cast, 1).expect("valid");
            if let Some(winner) = (0..candidates.len()).find(|&c| 2 * first[c] > total) {
                prop_assert_eq!(outcome.elected, vec![winner]);
            }
        }
    }
}
