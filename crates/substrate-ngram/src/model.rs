//! A backoff n-gram model as an ARPA file describes it, held in hash tables of packed word ids,
//! and queried the way ARPA defines: the longest n-gram known for the word in its context, plus
//! the backoff weights of the longer contexts that were not.

use rustc_hash::FxHashMap;

use crate::NgramError;

/// The unknown word's id.
pub const UNK: u32 = 0;
/// The sentence start's id.
pub const BOS: u32 = 1;
/// The sentence end's id.
pub const EOS: u32 = 2;
/// How ARPA writes the three.
pub const UNK_WORD: &str = "<unk>";
pub const BOS_WORD: &str = "<s>";
pub const EOS_WORD: &str = "</s>";
/// The largest order: with five words a key packs each id in 24 bits of a `u128`.
pub const MAX_ORDER: usize = 6;

/// An n-gram's log10 probability and, when it is a context, its log10 backoff weight.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Weights {
    pub prob: f32,
    pub backoff: f32,
}

/// The word ids of an n-gram packed into one integer, the first word highest.
pub(crate) type Key = u128;

/// A backoff language model.
#[derive(Debug)]
pub struct Model {
    pub(crate) order: usize,
    pub(crate) bits: u32,
    pub(crate) vocab: FxHashMap<String, u32>,
    pub(crate) words: Vec<String>,
    /// Unigrams by id.
    pub(crate) unigrams: Vec<Weights>,
    /// Orders 2 and up: `higher[n - 2]` holds the n-grams.
    pub(crate) higher: Vec<FxHashMap<Key, Weights>>,
}

/// One token's score: what `kenlm`'s `full_scores` gives.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenScore {
    pub log10: f32,
    /// The length of the n-gram found for it.
    pub ngram: u8,
    pub oov: bool,
}

/// A sentence's score.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SentenceScore {
    /// The sum of the tokens' log10 probabilities.
    pub log10: f64,
    /// Tokens scored: the words, and the end marker when markers are on.
    pub tokens: u64,
    pub oov: u64,
}

impl SentenceScore {
    pub fn perplexity(&self) -> f64 {
        10f64.powf(-self.log10 / self.tokens.max(1) as f64)
    }
}

/// How many bits each word id takes in a key of an `order`-gram model.
pub(crate) fn bits_for(order: usize) -> u32 {
    (128 / order.max(1) as u32).min(32)
}

impl Model {
    pub(crate) fn empty(order: usize) -> Result<Self, NgramError> {
        if !(1..=MAX_ORDER).contains(&order) {
            return Err(NgramError::Order { order, max: MAX_ORDER });
        }
        let mut model = Model {
            order,
            bits: bits_for(order),
            vocab: FxHashMap::default(),
            words: Vec::new(),
            unigrams: Vec::new(),
            higher: (2..=order).map(|_| FxHashMap::default()).collect(),
        };
        for word in [UNK_WORD, BOS_WORD, EOS_WORD] {
            model.intern(word)?;
        }
        Ok(model)
    }

    /// The id of `word`, added to the vocabulary if new.
    pub(crate) fn intern(&mut self, word: &str) -> Result<u32, NgramError> {
        if let Some(&id) = self.vocab.get(word) {
            return Ok(id);
        }
        let id = self.words.len() as u32;
        if u64::from(id) >= 1u64 << self.bits {
            return Err(NgramError::Vocabulary { words: self.words.len(), order: self.order });
        }
        self.vocab.insert(word.to_owned(), id);
        self.words.push(word.to_owned());
        self.unigrams.push(Weights::default());
        Ok(id)
    }

    pub fn order(&self) -> usize {
        self.order
    }

    /// Words in the vocabulary, `<unk>`, `<s>` and `</s>` included.
    pub fn vocabulary(&self) -> usize {
        self.words.len()
    }

    /// How many n-grams of each order, unigrams first.
    pub fn counts(&self) -> Vec<u64> {
        std::iter::once(self.words.len() as u64).chain(self.higher.iter().map(|t| t.len() as u64)).collect()
    }

    /// The id of `word`: `UNK` when the model does not know it.
    pub fn id(&self, word: &str) -> u32 {
        self.vocab.get(word).copied().unwrap_or(UNK)
    }

    pub fn word(&self, id: u32) -> &str {
        &self.words[id as usize]
    }

    /// The n-gram's weights, if the model holds it.
    pub fn weights(&self, ids: &[u32]) -> Option<Weights> {
        match ids.len() {
            0 => None,
            1 => self.unigrams.get(ids[0] as usize).copied(),
            n if n <= self.order => self.higher[n - 2].get(&self.pack(ids)).copied(),
            _ => None,
        }
    }

    pub(crate) fn pack(&self, ids: &[u32]) -> Key {
        ids.iter().fold(0, |key, &id| (key << self.bits) | Key::from(id))
    }

    /// Scores `ids` in order, each in the context of the ones before it (at most order − 1 of
    /// them), starting from `<s>` when `bos`, and appends one score per id to `out`. When `eos`,
    /// `</s>` is scored after the last and appended too.
    pub fn score_ids(&self, ids: &[u32], bos: bool, eos: bool, out: &mut Vec<TokenScore>) -> SentenceScore {
        let mut history: Vec<u32> = Vec::with_capacity(self.order);
        if bos {
            history.push(BOS);
        }
        let mut sentence = SentenceScore::default();
        let end = eos.then_some(EOS);
        for &id in ids.iter().chain(end.iter()) {
            let score = self.score_next(&history, id);
            sentence.log10 += f64::from(score.log10);
            sentence.tokens += 1;
            sentence.oov += u64::from(score.oov);
            out.push(score);
            if history.len() + 1 >= self.order && !history.is_empty() {
                history.remove(0);
            }
            if self.order > 1 {
                history.push(id);
            }
        }
        sentence
    }

    /// Scores whitespace-free `tokens` as [`Model::score_ids`] does.
    pub fn score_tokens<S: AsRef<str>>(
        &self,
        tokens: &[S],
        bos: bool,
        eos: bool,
        out: &mut Vec<TokenScore>,
    ) -> SentenceScore {
        let ids: Vec<u32> = tokens.iter().map(|t| self.id(t.as_ref())).collect();
        self.score_ids(&ids, bos, eos, out)
    }

    /// log10 p(`id` | `history`), `history` oldest first and at most order − 1 long.
    pub fn score_next(&self, history: &[u32], id: u32) -> TokenScore {
        let unigram = self.unigrams.get(id as usize).copied().unwrap_or_else(|| self.unigrams[UNK as usize]);
        let mut prob = unigram.prob;
        let mut matched = 1usize;
        // The longest n-gram ending in `id`: extend leftwards while the table holds it.
        let mut key = Key::from(id);
        for (n, &word) in (2..=self.order).zip(history.iter().rev()) {
            key |= Key::from(word) << (self.bits * (n as u32 - 1));
            match self.higher[n - 2].get(&key) {
                Some(w) => {
                    prob = w.prob;
                    matched = n;
                }
                None => break,
            }
        }
        // Then the backoff weights of the contexts longer than the one that matched.
        let mut context: Key = 0;
        for (m, &word) in (1..=history.len()).zip(history.iter().rev()) {
            context |= Key::from(word) << (self.bits * (m as u32 - 1));
            if m < matched {
                continue;
            }
            let found = match m {
                1 => self.unigrams.get(word as usize).copied(),
                _ => self.higher[m - 2].get(&context).copied(),
            };
            match found {
                Some(w) => prob += w.backoff,
                None => break,
            }
        }
        TokenScore { log10: prob, ngram: matched as u8, oov: id == UNK }
    }
}
