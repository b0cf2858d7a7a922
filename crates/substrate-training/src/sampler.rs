//! The sampler: which windows of which texts each training step reads, so that every register's
//! share of the trained tokens follows the decided mixture, reproducibly from a seed.
//!
//! Each window goes to the register furthest below its share so far (the largest
//! `weight × tokens so far − tokens of the register`), then to a text of that register drawn in
//! proportion to its length (so every token of a register is as likely as any other), then to a
//! start drawn uniformly. Shares therefore track the mixture to within one window's tokens at
//! every step, not only on average. The draws come from SplitMix64, written out here so that a
//! plan never changes with a library's version.

use std::collections::BTreeMap;

use substrate_models::finetune::Window;

/// A text the sampler may draw from: its register and its length in tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub register: String,
    pub tokens: usize,
}

/// The windows of every step, and what they add up to.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// One list of `batch` windows per step; `Window::text` indexes the candidates.
    pub steps: Vec<Vec<Window>>,
    /// Trained tokens (targets that count in the loss) per register.
    pub tokens: BTreeMap<String, u64>,
    /// Each register's share of the trained tokens.
    pub achieved: BTreeMap<String, f64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("no register of the mixture has both weight and text to train on; deposit texts in {0}")]
    NothingToDraw(String),
    #[error("the mixture weight of {register} is {weight}; weights are finite numbers of at least 0")]
    Weight { register: String, weight: f64 },
    #[error("--steps and --batch must be at least 1, and --seq-len at least 2")]
    Shape,
}

/// SplitMix64 (Steele, Lea, Flood 2014): small, fast and fixed forever.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }
}

/// Plans `steps` steps of `batch` windows of at most `seq_len + 1` tokens over `candidates`,
/// following `weights` (registers not named, or of weight 0, are never drawn).
pub fn plan(
    candidates: &[Candidate],
    weights: &BTreeMap<String, f64>,
    steps: usize,
    batch: usize,
    seq_len: usize,
    seed: u64,
) -> Result<Plan, PlanError> {
    if steps == 0 || batch == 0 || seq_len < 2 {
        return Err(PlanError::Shape);
    }
    if let Some((register, weight)) = weights.iter().find(|(_, w)| !(w.is_finite() && **w >= 0.0)) {
        return Err(PlanError::Weight { register: register.clone(), weight: *weight });
    }
    // The registers that can be drawn: weight and at least one text of two or more tokens.
    let mut pools: BTreeMap<&str, (f64, Vec<usize>, u64)> = BTreeMap::new();
    for (index, c) in candidates.iter().enumerate() {
        let weight = weights.get(&c.register).copied().unwrap_or(0.0);
        if weight > 0.0 && c.tokens >= 2 {
            let pool = pools.entry(c.register.as_str()).or_insert((weight, Vec::new(), 0));
            pool.1.push(index);
            pool.2 += c.tokens as u64;
        }
    }
    if pools.is_empty() {
        let weighted: Vec<&str> =
            weights.iter().filter(|(_, w)| **w > 0.0).map(|(r, _)| r.as_str()).collect();
        return Err(PlanError::NothingToDraw(weighted.join(", ")));
    }
    let total_weight: f64 = pools.values().map(|(w, _, _)| w).sum();
    let mut rng = SplitMix64::new(seed);
    let mut trained: BTreeMap<&str, u64> = pools.keys().map(|r| (*r, 0)).collect();
    let mut total: u64 = 0;
    let span = seq_len + 1;
    let mut plan_steps = Vec::with_capacity(steps);
    for _ in 0..steps {
        let mut rows = Vec::with_capacity(batch);
        for _ in 0..batch {
            // The register furthest below its share; ties go to the larger weight, then by name.
            let (register, (_, texts, pool_tokens)) = pools
                .iter()
                .max_by(|(a, (wa, _, _)), (b, (wb, _, _))| {
                    let deficit = |r: &str, w: f64| w / total_weight * total as f64 - trained[r] as f64;
                    deficit(a, *wa).total_cmp(&deficit(b, *wb)).then(wa.total_cmp(wb)).then(b.cmp(a))
                })
                .map(|(r, pool)| (*r, pool))
                .ok_or_else(|| PlanError::NothingToDraw(String::new()))?;
            // A text in proportion to its length.
            let mut pick = rng.below(*pool_tokens);
            let text = *texts
                .iter()
                .find(|&&i| {
                    let n = candidates[i].tokens as u64;
                    if pick < n {
                        true
                    } else {
                        pick -= n;
                        false
                    }
                })
                .unwrap_or(&texts[texts.len() - 1]);
            let len = candidates[text].tokens;
            let start = if len > span { rng.below((len - span + 1) as u64) as usize } else { 0 };
            let end = len.min(start + span);
            let targets = (end - start - 1) as u64;
            *trained.entry(register).or_default() += targets;
            total += targets;
            rows.push(Window { text, start, end });
        }
        plan_steps.push(rows);
    }
    let mut tokens: BTreeMap<String, u64> = weights.keys().map(|r| (r.clone(), 0)).collect();
    tokens.extend(trained.iter().map(|(r, n)| ((*r).to_owned(), *n)));
    let achieved = tokens.iter().map(|(r, n)| (r.clone(), *n as f64 / total.max(1) as f64)).collect();
    Ok(Plan { steps: plan_steps, tokens, achieved })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn weights(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(r, w)| ((*r).to_owned(), *w)).collect()
    }

    fn candidate(register: &str, tokens: usize) -> Candidate {
        Candidate { register: register.to_owned(), tokens }
    }

    #[test]
    fn splitmix64_gives_the_published_sequence() {
        // The first outputs for seed 1234567 of the reference implementation (Vigna's splitmix64.c).
        let mut rng = SplitMix64::new(1_234_567);
        let got: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(
            got,
            vec![6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423]
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_plan_and_another_seed_another() {
        let candidates: Vec<Candidate> =
            (0..30).map(|i| candidate(["oral", "sacred", "narrative"][i % 3], 50 + i * 7)).collect();
        let w = weights(&[("oral", 0.5), ("sacred", 0.3), ("narrative", 0.2)]);
        let a = plan(&candidates, &w, 40, 4, 32, 7).expect("plan");
        assert_eq!(a, plan(&candidates, &w, 40, 4, 32, 7).expect("plan"));
        assert_ne!(a.steps, plan(&candidates, &w, 40, 4, 32, 8).expect("plan").steps);
    }

    #[test]
    fn a_register_without_weight_or_text_is_never_drawn_and_nothing_to_draw_is_refused() {
        let candidates = vec![candidate("oral", 100), candidate("lyric", 100), candidate("sacred", 1)];
        let w = weights(&[("oral", 1.0), ("lyric", 0.0), ("sacred", 1.0), ("technical", 1.0)]);
        let p = plan(&candidates, &w, 10, 2, 16, 1).expect("plan");
        assert!(p.steps.iter().flatten().all(|w| w.text == 0), "{p:?}");
        assert_eq!(p.achieved["oral"], 1.0);
        assert_eq!(p.tokens["technical"], 0);
        let none = plan(&candidates, &weights(&[("technical", 1.0)]), 10, 2, 16, 1);
        assert_eq!(none, Err(PlanError::NothingToDraw("technical".into())));
        assert!(matches!(
            plan(&candidates, &weights(&[("oral", f64::NAN)]), 1, 1, 4, 1),
            Err(PlanError::Weight { .. })
        ));
    }

    proptest! {
        /// Over a run of a few hundred steps the achieved shares are within one percentage point
        /// of the decided ones, and every window lies inside its text.
        #[test]
        fn achieved_shares_follow_the_mixture(
            raw in proptest::collection::vec(0.0f64..1.0, 3),
            lengths in proptest::collection::vec(3usize..600, 3..40),
            seed in any::<u64>(),
        ) {
            let registers = ["oral", "sacred", "narrative"];
            let candidates: Vec<Candidate> =
                lengths.iter().enumerate().map(|(i, n)| candidate(registers[i % 3], *n)).collect();
            prop_assume!(raw.iter().sum::<f64>() > 0.05);
            let sum: f64 = raw.iter().sum();
            let w: BTreeMap<String, f64> =
                registers.iter().zip(&raw).map(|(r, x)| ((*r).to_owned(), x / sum)).collect();
            let p = plan(&candidates, &w, 300, 4, 64, seed).expect("plan");
            // Within one percentage point, or within one window where a register's windows are
            // coarser than that (texts of a few tokens beside long ones: one window of the long
            // text is then more than a point of the run).
            let total: u64 = p.tokens.values().sum();
            let widest = p.steps.iter().flatten().map(|w| w.end - w.start - 1).max().unwrap_or(0);
            let bound = 0.01f64.max(widest as f64 / total.max(1) as f64);
            for (register, share) in &w {
                prop_assert!((p.achieved[register] - share).abs() <= bound, "{register}: {} vs {share} (bound {bound})", p.achieved[register]);
            }
            for window in p.steps.iter().flatten() {
                prop_assert!(window.start < window.end && window.end <= candidates[window.text].tokens);
                prop_assert!(window.end - window.start <= 65);
            }
            let counted: u64 = p.steps.iter().flatten().map(|w| (w.end - w.start - 1) as u64).sum();
            prop_assert_eq!(total, counted);
        }
    }
}
