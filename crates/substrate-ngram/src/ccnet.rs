//! CCNet's perplexity filter (Wenzek et al. 2019): a document's perplexity under a language model
//! of Wikipedia, and its bucket (head, middle or tail) by the percentiles of a sample's
//! perplexities. CCNet keeps the head and the middle; the tail is what it drops.

use crate::model::{Model, TokenScore};
use crate::text;

/// A document's score, as CCNet computes it: every non-empty line normalised, cut into words and
/// scored between `<s>` and `</s>`; the document's perplexity is 10^(−Σ log10 p / Σ (words + 1)).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DocumentScore {
    pub log10: f64,
    /// Tokens scored: the words and one `</s>` per line.
    pub tokens: u64,
    pub words: u64,
    /// Words the model does not know.
    pub oov: u64,
    pub lines: u64,
}

impl DocumentScore {
    /// The perplexity; `None` for a document with no words.
    pub fn perplexity(&self) -> Option<f64> {
        (self.words > 0).then(|| 10f64.powf(-self.log10 / self.tokens as f64))
    }
}

/// Scores `document` line by line.
pub fn score_document(model: &Model, document: &str) -> DocumentScore {
    let mut score = DocumentScore::default();
    let mut ids = Vec::new();
    let mut scratch: Vec<TokenScore> = Vec::new();
    for line in document.lines() {
        let normalized = text::normalize(line);
        ids.clear();
        ids.extend(text::words(&normalized).map(|w| model.id(w)));
        if ids.is_empty() {
            continue;
        }
        scratch.clear();
        let s = model.score_ids(&ids, true, true, &mut scratch);
        score.log10 += s.log10;
        score.tokens += s.tokens;
        score.oov += s.oov;
        score.words += ids.len() as u64;
        score.lines += 1;
    }
    score
}

/// CCNet's three buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bucket {
    Head,
    Middle,
    Tail,
}

impl Bucket {
    pub const ALL: [Bucket; 3] = [Bucket::Head, Bucket::Middle, Bucket::Tail];

    pub fn name(self) -> &'static str {
        match self {
            Bucket::Head => "head",
            Bucket::Middle => "middle",
            Bucket::Tail => "tail",
        }
    }
}

/// The perplexities that divide the buckets: below `head` is the head, below `tail` the
/// middle, and the rest the tail.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cutoffs {
    pub head: f64,
    pub tail: f64,
}

impl Cutoffs {
    /// The `head_percentile`-th and `tail_percentile`-th percentiles of `sample` (CCNet: 30
    /// and 60), interpolated linearly between ranks. `None` for an empty sample.
    pub fn from_sample(sample: &[f64], head_percentile: f64, tail_percentile: f64) -> Option<Cutoffs> {
        let mut sorted: Vec<f64> = sample.iter().copied().filter(|p| p.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        Some(Cutoffs {
            head: percentile(&sorted, head_percentile),
            tail: percentile(&sorted, tail_percentile),
        })
    }

    pub fn bucket(&self, perplexity: f64) -> Bucket {
        if perplexity < self.head {
            Bucket::Head
        } else if perplexity < self.tail {
            Bucket::Middle
        } else {
            Bucket::Tail
        }
    }
}

/// The `p`-th percentile (0 to 100) of sorted values, interpolated linearly between the two
/// nearest ranks (NumPy's default).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let last = sorted.len().saturating_sub(1);
    let rank = (p.clamp(0.0, 100.0) / 100.0) * last as f64;
    let (below, above) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[below] + (sorted[above.min(last)] - sorted[below]) * (rank - below as f64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_between_ranks_as_numpy_does() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        // numpy.percentile(range(1, 11), [30, 60]) == [3.7, 6.4]
        assert!((percentile(&v, 30.0) - 3.7).abs() < 1e-12);
        assert!((percentile(&v, 60.0) - 6.4).abs() < 1e-12);
        assert_eq!(percentile(&[5.0], 30.0), 5.0);
        let c = Cutoffs::from_sample(&v, 30.0, 60.0).unwrap();
        assert_eq!(c.bucket(3.0), Bucket::Head);
        assert_eq!(c.bucket(3.7), Bucket::Middle);
        assert_eq!(c.bucket(6.4), Bucket::Tail);
        assert!(Cutoffs::from_sample(&[], 30.0, 60.0).is_none());
    }
}
