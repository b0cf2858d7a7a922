//! An n-gram language model trained in Rust: interpolated modified Kneser-Ney, read and written
//! in the ARPA format that KenLM and SRILM use, and CCNet's perplexity filter rebuilt on it.
//!
//! - [`text`]: CCNet's line normalisation and this crate's word-level tokens;
//! - [`Trainer`]: counts sentences and estimates a [`Model`];
//! - [`arpa`]: the model as an ARPA file, both ways;
//! - [`Model`]: queried the way ARPA defines, as KenLM does;
//! - [`ccnet`]: document perplexity and the head, middle and tail buckets.

pub mod arpa;
pub mod ccnet;
mod estimate;
mod model;
pub mod text;

pub use estimate::{Estimate, OrderEstimate, Smoothing, Trainer, modified_discounts};
pub use model::{
    BOS, BOS_WORD, EOS, EOS_WORD, MAX_ORDER, Model, SentenceScore, TokenScore, UNK, UNK_WORD, Weights,
};

#[derive(Debug, thiserror::Error)]
pub enum NgramError {
    #[error("an n-gram model of order {order} is not supported: the order must be 1 to {max}")]
    Order { order: usize, max: usize },
    #[error(
        "the vocabulary passed {words} words, more than a model of order {order} can pack; use a lower order"
    )]
    Vocabulary { words: usize, order: usize },
    #[error("the corpus has no sentence with a word in it; give a reference corpus of plain text")]
    Empty,
    #[error(
        "the corpus is too small to estimate the order-{order} discounts: it has {} n-grams seen once, {} twice, {} three times and {} four times, and modified Kneser-Ney needs each of the four to be non-zero with discounts between 0 and k; give a larger reference corpus, or fixed fallback discounts",
        counts_of_counts[0], counts_of_counts[1], counts_of_counts[2], counts_of_counts[3]
    )]
    Discounts { order: usize, counts_of_counts: [u64; 4] },
    #[error("the discount {discount} is not between 0 and 1")]
    Discount { discount: f64 },
    #[error("ARPA line {line}: {what}")]
    Arpa { line: usize, what: String },
    #[error(
        "two {order}-grams share one 64-bit fingerprint (a chance of about one in ten million for a model this size); train on a slightly different corpus"
    )]
    Fingerprint { order: usize },
    #[error("not a complete ARPA file: {what}")]
    ArpaFile { what: String },
}
