//! Training: n-grams counted over sentences, then smoothed by interpolated Kneser-Ney.
//!
//! **Modified Kneser-Ney** (Chen and Goodman 1998, as KenLM's `lmplz` estimates it):
//! - the highest order keeps raw counts; a lower-order n-gram's count is its number of distinct
//!   left extensions (its continuation count), except one beginning with `<s>`, which nothing can
//!   precede and keeps its raw count;
//! - each order has three discounts, for counts 1, 2 and 3 or more, from its counts of counts
//!   t1..t4: Y = t1 / (t1 + 2·t2), D_k = k − (k + 1)·Y·t_{k+1} / t_k;
//! - p(w | h) = (c(hw) − D(c(hw))) / Σ_x c(hx) + γ(h)·p(w | h′), with h′ the context without its
//!   first word and γ(h) = (D1·N1(h•) + D2·N2(h•) + D3·N3+(h•)) / Σ_x c(hx), where Nk(h•) counts
//!   the words that follow h with count k;
//! - the unigrams are interpolated with the uniform distribution over every word the model can
//!   predict (all but `<s>`; `<unk>` gets only that share).
//!
//! The model is exact as ARPA: a seen n-gram's probability is the interpolated one, and γ(h) is
//! h's backoff weight, since an unseen word after h gets exactly γ(h)·p(w | h′).
//!
//! **NLTK's Kneser-Ney** (`nltk.lm.KneserNeyInterpolated`), for the cross-check against an
//! independent implementation: one discount d for every count, the same continuation counts with
//! no exception for `<s>` (NLTK pads sentences itself), γ(h) = d · (words seen after h) / Σ_x c(hx),
//! and unigrams as continuation probabilities with no uniform share.

use rustc_hash::FxHashMap;

use crate::NgramError;
use crate::model::{BOS, EOS, Key, Model, Weights};

/// How counts become probabilities.
#[derive(Clone, Debug, PartialEq)]
pub enum Smoothing {
    /// Interpolated modified Kneser-Ney. When an order's counts of counts cannot give discounts
    /// (a corpus too small or too regular), `fallback` supplies D1, D2, D3+ for it; without one
    /// that is an error.
    ModifiedKneserNey { fallback: Option<[f64; 3]> },
    /// NLTK's interpolated Kneser-Ney with one discount.
    Nltk { discount: f64 },
}

/// What a trained model was estimated from.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    pub sentences: u64,
    /// Tokens counted, end markers included.
    pub tokens: u64,
    /// Per order, lowest first: how many n-grams, counts of counts t1..t4 of the (adjusted)
    /// counts, and the discounts D1, D2, D3+ used.
    pub orders: Vec<OrderEstimate>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OrderEstimate {
    pub ngrams: u64,
    pub counts_of_counts: [u64; 4],
    pub discounts: [f64; 3],
    /// Whether the discounts are the fallback's rather than estimated.
    pub fallback: bool,
}

/// Counts sentences, then estimates a [`Model`] from them.
#[derive(Debug)]
pub struct Trainer {
    model: Model,
    smoothing: Smoothing,
    markers: bool,
    /// Raw counts, `raw[n - 1]` for order n.
    raw: Vec<FxHashMap<Key, u32>>,
    sentences: u64,
    tokens: u64,
    scratch: Vec<u32>,
}

impl Trainer {
    /// A trainer of an `order`-gram model. With `markers`, each sentence is counted between
    /// `<s>` and `</s>`; without, its tokens are counted as they are (for corpora padded already).
    pub fn new(order: usize, smoothing: Smoothing, markers: bool) -> Result<Self, NgramError> {
        if let Smoothing::Nltk { discount } = smoothing
            && !(discount > 0.0 && discount < 1.0)
        {
            return Err(NgramError::Discount { discount });
        }
        let model = Model::empty(order)?;
        Ok(Trainer {
            model,
            smoothing,
            markers,
            raw: (0..order).map(|_| FxHashMap::default()).collect(),
            sentences: 0,
            tokens: 0,
            scratch: Vec::new(),
        })
    }

    /// Counts one sentence of whitespace-free tokens. An empty sentence counts nothing.
    pub fn add<S: AsRef<str>>(&mut self, tokens: &[S]) -> Result<(), NgramError> {
        if tokens.is_empty() {
            return Ok(());
        }
        let mut seq = std::mem::take(&mut self.scratch);
        seq.clear();
        if self.markers {
            seq.push(BOS);
        }
        for token in tokens {
            seq.push(self.model.intern(token.as_ref())?);
        }
        if self.markers {
            seq.push(EOS);
        }
        let bits = self.model.bits;
        let order = self.model.order;
        // With markers, `<s>` is only ever a context: it is not counted as a word.
        let first = usize::from(self.markers);
        for end in first..seq.len() {
            let mut key: Key = 0;
            for n in 1..=order.min(end + 1) {
                key |= Key::from(seq[end + 1 - n]) << (bits * (n as u32 - 1));
                *self.raw[n - 1].entry(key).or_insert(0) += 1;
            }
        }
        self.tokens += (seq.len() - first) as u64;
        self.sentences += 1;
        self.scratch = seq;
        Ok(())
    }

    /// Tokens counted so far, end markers included.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Estimates the model.
    pub fn finish(self) -> Result<(Model, Estimate), NgramError> {
        let Trainer { mut model, smoothing, markers, mut raw, sentences, tokens, .. } = self;
        if sentences == 0 {
            return Err(NgramError::Empty);
        }
        let order = model.order;
        let bits = model.bits;
        let modified = matches!(smoothing, Smoothing::ModifiedKneserNey { .. });
        let first_word = |key: Key, n: usize| (key >> (bits * (n as u32 - 1))) as u32;
        let suffix_mask = |n: usize| -> Key { (1u128 << (bits * (n as u32 - 1))) - 1 };

        // Adjusted counts: raw at the highest order, continuation counts below it.
        let mut adjusted: Vec<FxHashMap<Key, u32>> = Vec::with_capacity(order);
        for n in 1..=order {
            if n == order {
                adjusted.push(std::mem::take(&mut raw[n - 1]));
                continue;
            }
            let mut counts: FxHashMap<Key, u32> = raw[n - 1].keys().map(|&k| (k, 0)).collect();
            let mask = suffix_mask(n + 1);
            for &longer in raw[n].keys() {
                if let Some(c) = counts.get_mut(&(longer & mask)) {
                    *c += 1;
                }
            }
            if modified && markers {
                for (key, c) in counts.iter_mut() {
                    if first_word(*key, n) == BOS {
                        *c = raw[n - 1][key];
                    }
                }
            }
            adjusted.push(counts);
        }
        drop(raw);

        // Discounts per order.
        let mut orders = Vec::with_capacity(order);
        for (n, counts) in adjusted.iter().enumerate() {
            let mut t = [0u64; 4];
            for &c in counts.values() {
                if (1..=4).contains(&c) {
                    t[c as usize - 1] += 1;
                }
            }
            let (discounts, fallback) = match &smoothing {
                Smoothing::Nltk { discount } => ([*discount; 3], false),
                Smoothing::ModifiedKneserNey { fallback } => match modified_discounts(t) {
                    Some(d) => (d, false),
                    None => match fallback {
                        Some(d) => (*d, true),
                        None => return Err(NgramError::Discounts { order: n + 1, counts_of_counts: t }),
                    },
                },
            };
            orders.push(OrderEstimate {
                ngrams: counts.len() as u64,
                counts_of_counts: t,
                discounts,
                fallback,
            });
        }
        let discount = |n: usize, c: u32| -> f64 {
            match (&smoothing, c) {
                (_, 0) => 0.0,
                (Smoothing::Nltk { discount }, c) => discount.min(f64::from(c)),
                (_, 1) => orders[n - 1].discounts[0],
                (_, 2) => orders[n - 1].discounts[1],
                _ => orders[n - 1].discounts[2],
            }
        };

        // Unigrams.
        let predictable = |id: u32| !(markers && id == BOS);
        let vocabulary = (0..model.words.len() as u32).filter(|&id| predictable(id)).count() as f64;
        let mut unigram_counts = vec![0u32; model.words.len()];
        for (&key, &c) in &adjusted[0] {
            unigram_counts[key as usize] = c;
        }
        let total: f64 = unigram_counts
            .iter()
            .enumerate()
            .filter(|(id, _)| predictable(*id as u32))
            .map(|(_, &c)| f64::from(c))
            .sum();
        let gamma = match smoothing {
            Smoothing::Nltk { .. } => 0.0,
            Smoothing::ModifiedKneserNey { .. } => {
                let mut spared = 0.0;
                for &c in &unigram_counts {
                    spared += discount(1, c);
                }
                spared / total
            }
        };
        let mut lower: Vec<f64> = unigram_counts
            .iter()
            .enumerate()
            .map(|(id, &c)| match (predictable(id as u32), &smoothing) {
                (false, _) => 0.0,
                (true, Smoothing::Nltk { .. }) => f64::from(c) / total,
                (true, _) => (f64::from(c) - discount(1, c)) / total + gamma / vocabulary,
            })
            .collect();
        model.unigrams = lower.iter().map(|&p| Weights { prob: log10(p), backoff: 0.0 }).collect();
        if markers {
            model.unigrams[BOS as usize].prob = -99.0;
        }

        // Orders 2 and up, each interpolated with the one below.
        let mut lower_higher: FxHashMap<Key, f64> = FxHashMap::default();
        for n in 2..=order {
            let counts = &adjusted[n - 1];
            let mut contexts: FxHashMap<Key, Context> = FxHashMap::default();
            for (&key, &c) in counts {
                let s = contexts.entry(key >> bits).or_default();
                s.total += u64::from(c);
                s.types += 1;
                s.spared += discount(n, c);
            }
            let gamma = |s: &Context| -> f64 {
                if s.total == 0 {
                    return 1.0;
                }
                match &smoothing {
                    Smoothing::Nltk { discount } => discount * s.types as f64 / s.total as f64,
                    _ => s.spared / s.total as f64,
                }
            };
            let mask = suffix_mask(n);
            let mut probs: FxHashMap<Key, f64> = FxHashMap::default();
            probs.reserve(counts.len());
            for (&key, &c) in counts {
                let s = &contexts[&(key >> bits)];
                let below = match n {
                    2 => lower[(key & mask) as usize],
                    _ => lower_higher.get(&(key & mask)).copied().unwrap_or(0.0),
                };
                let alpha = if s.total == 0 { 0.0 } else { (f64::from(c) - discount(n, c)) / s.total as f64 };
                probs.insert(key, alpha + gamma(s) * below);
            }
            // The contexts' backoff weights go on the order below.
            for (&context, s) in &contexts {
                let backoff = log10(gamma(s));
                match n {
                    2 => model.unigrams[context as usize].backoff = backoff,
                    _ => {
                        if let Some(w) = model.higher[n - 3].get_mut(context) {
                            w.backoff = backoff;
                        }
                    }
                }
            }
            let table = &mut model.higher[n - 2];
            table.reserve(probs.len());
            for (&key, &p) in &probs {
                table
                    .insert(key, Weights { prob: log10(p), backoff: 0.0 })
                    .map_err(|_| NgramError::Fingerprint { order: n })?;
            }
            if n == 2 {
                lower.clear();
            }
            lower_higher = probs;
        }
        Ok((model, Estimate { sentences, tokens, orders }))
    }
}

/// A context's followers: the sum of their counts, how many there are, and the mass their
/// discounts spare for the order below.
#[derive(Clone, Copy, Debug, Default)]
struct Context {
    total: u64,
    types: u64,
    spared: f64,
}

/// D1, D2, D3+ from the counts of counts, or `None` when they do not give discounts in (0, k).
pub fn modified_discounts(t: [u64; 4]) -> Option<[f64; 3]> {
    if t.contains(&0) {
        return None;
    }
    let t = t.map(|v| v as f64);
    let y = t[0] / (t[0] + 2.0 * t[1]);
    let d = [1.0 - 2.0 * y * t[1] / t[0], 2.0 - 3.0 * y * t[2] / t[1], 3.0 - 4.0 * y * t[3] / t[2]];
    d.iter().enumerate().all(|(k, &dk)| dk > 0.0 && dk < (k + 1) as f64).then_some(d)
}

/// log10, with ARPA's −99 standing for a probability of zero.
fn log10(p: f64) -> f32 {
    if p > 0.0 { p.log10() as f32 } else { -99.0 }
}
