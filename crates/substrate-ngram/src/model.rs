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
/// The largest order: a key packs each word's id into 128 / order bits of a `u128` (at most 32),
/// so order 6 allows about two million words.
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
    /// The same words by a 64-bit hash alone, for scoring.
    index: WordIndex,
    pub(crate) words: Vec<String>,
    /// Unigrams by id.
    pub(crate) unigrams: Vec<Weights>,
    /// Orders 2 and up: `higher[n - 2]` holds the n-grams.
    pub(crate) higher: Vec<Table>,
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

/// One order's n-grams in an open-addressing table probed linearly, as KenLM's probing tables
/// are: each slot holds a 64-bit fingerprint of the key and the weights (16 bytes), the table is
/// at most half full, so a lookup mostly costs one cache line. The keys themselves are kept
/// apart, for writing the model out; two keys with one fingerprint are refused when the table is
/// filled.
#[derive(Debug)]
pub(crate) struct Table {
    slots: Vec<Slot>,
    mask: usize,
    keys: Vec<Key>,
}

/// A fingerprint (0: empty) and its n-gram's weights.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Slot {
    fingerprint: u64,
    weights: Weights,
}

/// An n-gram whose key's fingerprint another key already has.
#[derive(Debug)]
pub(crate) struct Taken;

impl Default for Table {
    fn default() -> Self {
        Table { slots: vec![Slot::default(); 16], mask: 15, keys: Vec::new() }
    }
}

impl Table {
    /// Where the probe for `fingerprint` starts.
    pub(crate) fn home(&self, fingerprint: u64) -> usize {
        fingerprint as usize & self.mask
    }

    pub(crate) fn get(&self, key: Key) -> Option<Weights> {
        let fp = fingerprint(key);
        self.probe(fp, self.slots[self.home(fp)])
    }

    /// Finishes a lookup whose first slot the caller has read already.
    pub(crate) fn probe(&self, fp: u64, first: Slot) -> Option<Weights> {
        if first.fingerprint == fp {
            return Some(first.weights);
        }
        let mut i = self.home(fp);
        let mut slot = first;
        while slot.fingerprint != 0 {
            i = (i + 1) & self.mask;
            slot = self.slots[i];
            if slot.fingerprint == fp {
                return Some(slot.weights);
            }
        }
        None
    }

    /// The slot a lookup of `fp` reads first.
    pub(crate) fn first(&self, fp: u64) -> Slot {
        self.slots[self.home(fp)]
    }

    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut Weights> {
        let fp = fingerprint(key);
        let mut i = self.home(fp);
        loop {
            match self.slots[i].fingerprint {
                0 => return None,
                f if f == fp => return Some(&mut self.slots[i].weights),
                _ => i = (i + 1) & self.mask,
            }
        }
    }

    pub(crate) fn insert(&mut self, key: Key, weights: Weights) -> Result<(), Taken> {
        if (self.keys.len() + 1) * 2 > self.slots.len() {
            self.grow((self.keys.len() + 1) * 2);
        }
        let fp = fingerprint(key);
        let mut i = self.home(fp);
        loop {
            match self.slots[i].fingerprint {
                0 => break,
                f if f == fp => return Err(Taken),
                _ => i = (i + 1) & self.mask,
            }
        }
        self.slots[i] = Slot { fingerprint: fp, weights };
        self.keys.push(key);
        Ok(())
    }

    /// Makes room for `more` n-grams without growing again.
    pub(crate) fn reserve(&mut self, more: usize) {
        self.keys.reserve(more);
        self.grow((self.keys.len() + more) * 2);
    }

    /// At least `slots` slots, a power of two, every n-gram placed again.
    fn grow(&mut self, slots: usize) {
        let size = slots.next_power_of_two().max(16);
        if size <= self.slots.len() {
            return;
        }
        let old = std::mem::replace(&mut self.slots, vec![Slot::default(); size]);
        self.mask = size - 1;
        for slot in old.into_iter().filter(|s| s.fingerprint != 0) {
            let mut i = self.home(slot.fingerprint);
            while self.slots[i].fingerprint != 0 {
                i = (i + 1) & self.mask;
            }
            self.slots[i] = slot;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn keys(&self) -> &[Key] {
        &self.keys
    }
}

/// Words by a 64-bit hash of their bytes (KenLM's vocabulary does the same), in a table at most
/// half full probed linearly: one cache line and no string compared per lookup. Should two words
/// of the vocabulary share a hash, lookups go to the exact map instead.
#[derive(Debug)]
struct WordIndex {
    slots: Vec<(u64, u32)>,
    len: usize,
    collided: bool,
}

impl Default for WordIndex {
    fn default() -> Self {
        WordIndex { slots: vec![(0, 0); 64], len: 0, collided: false }
    }
}

impl WordIndex {
    fn hash(word: &str) -> u64 {
        use std::hash::BuildHasher;
        foldhash::fast::FixedState::with_seed(0x5e_b5_7a_7e).hash_one(word).max(1)
    }

    fn get(&self, word: &str) -> u32 {
        let h = Self::hash(word);
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            match self.slots[i] {
                (0, _) => return UNK,
                (f, id) if f == h => return id,
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn insert(&mut self, word: &str, id: u32) {
        if (self.len + 1) * 2 > self.slots.len() {
            let size = self.slots.len() * 2;
            let old = std::mem::replace(&mut self.slots, vec![(0, 0); size]);
            self.len = 0;
            for (h, id) in old.into_iter().filter(|s| s.0 != 0) {
                self.place(h, id);
            }
        }
        self.place(Self::hash(word), id);
    }

    fn place(&mut self, h: u64, id: u32) {
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        while self.slots[i].0 != 0 {
            if self.slots[i].0 == h {
                self.collided = true;
                return;
            }
            i = (i + 1) & mask;
        }
        self.slots[i] = (h, id);
        self.len += 1;
    }
}

/// A key's 64-bit fingerprint, never 0 (an empty slot): its two halves folded, then
/// MurmurHash3's finaliser, whose low bits pick the slot.
pub(crate) fn fingerprint(key: Key) -> u64 {
    let mut h = (key as u64) ^ ((key >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(31);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    (h ^ (h >> 33)).max(1)
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
            index: WordIndex::default(),
            words: Vec::new(),
            unigrams: Vec::new(),
            higher: (2..=order).map(|_| Table::default()).collect(),
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
        self.index.insert(word, id);
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
        match self.index.collided {
            false => self.index.get(word),
            true => self.vocab.get(word).copied().unwrap_or(UNK),
        }
    }

    pub fn word(&self, id: u32) -> &str {
        &self.words[id as usize]
    }

    /// The n-gram's weights, if the model holds it.
    pub fn weights(&self, ids: &[u32]) -> Option<Weights> {
        match ids.len() {
            0 => None,
            1 => self.unigrams.get(ids[0] as usize).copied(),
            n if n <= self.order => self.higher[n - 2].get(self.pack(ids)),
            _ => None,
        }
    }

    pub(crate) fn pack(&self, ids: &[u32]) -> Key {
        ids.iter().fold(0, |key, &id| (key << self.bits) | Key::from(id))
    }

    /// Scores `ids` in order, each in the context of the ones before it (at most order − 1 of
    /// them), starting from `<s>` when `bos`, and appends one score per id to `out`. When `eos`,
    /// `</s>` is scored after the last and appended too. The same scores as [`Model::score_next`]
    /// word by word, with half the lookups: the backoff weights of the next word's contexts are
    /// those of the n-grams found ending at this one, so they are kept rather than looked up again
    /// (KenLM's state does the same).
    pub fn score_ids(&self, ids: &[u32], bos: bool, eos: bool, out: &mut Vec<TokenScore>) -> SentenceScore {
        let longest_context = self.order - 1;
        // The last words, oldest first, and the backoff weights of the contexts they form that the
        // model holds: `backoffs[m - 1]` is that of the last m words, for m up to `held`.
        let mut history = [0u32; MAX_ORDER];
        let mut len = 0usize;
        let mut backoffs = [0f32; MAX_ORDER];
        let mut held = 0usize;
        if bos && longest_context > 0 {
            history[0] = BOS;
            len = 1;
            backoffs[0] = self.unigrams[BOS as usize].backoff;
            held = 1;
        }
        let mut sentence = SentenceScore::default();
        let end = eos.then_some(EOS);
        for &id in ids.iter().chain(end.iter()) {
            let unigram =
                self.unigrams.get(id as usize).copied().unwrap_or_else(|| self.unigrams[UNK as usize]);
            let mut prob = unigram.prob;
            let mut found = [0f32; MAX_ORDER];
            found[0] = unigram.backoff;
            let mut matched = 1usize;
            // An n-gram is only held when its context is (ARPA's prefix rule, which KenLM's
            // state relies on too), so the search stops at the longest context held. The first
            // slot of every candidate is read before any is looked at: the reads do not wait on
            // each other, so their cache misses overlap.
            let longest = len.min(held);
            let mut key = Key::from(id);
            let mut fingerprints = [0u64; MAX_ORDER];
            let mut first = [Slot::default(); MAX_ORDER];
            for m in 1..=longest {
                key |= Key::from(history[len - m]) << (self.bits * m as u32);
                fingerprints[m] = fingerprint(key);
                first[m] = self.higher[m - 1].first(fingerprints[m]);
            }
            for m in 1..=longest {
                match self.higher[m - 1].probe(fingerprints[m], first[m]) {
                    Some(w) => {
                        prob = w.prob;
                        found[m] = w.backoff;
                        matched = m + 1;
                    }
                    None => break,
                }
            }
            for backoff in backoffs.iter().take(len.min(held)).skip(matched - 1) {
                prob += backoff;
            }
            let score = TokenScore { log10: prob, ngram: matched as u8, oov: id == UNK };
            sentence.log10 += f64::from(score.log10);
            sentence.tokens += 1;
            sentence.oov += u64::from(score.oov);
            out.push(score);
            if longest_context > 0 {
                if len == longest_context {
                    history.copy_within(1..len, 0);
                    len -= 1;
                }
                history[len] = id;
                len += 1;
                held = matched.min(longest_context);
                backoffs[..held].copy_from_slice(&found[..held]);
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
            match self.higher[n - 2].get(key) {
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
                _ => self.higher[m - 2].get(context),
            };
            match found {
                Some(w) => prob += w.backoff,
                None => break,
            }
        }
        TokenScore { log10: prob, ngram: matched as u8, oov: id == UNK }
    }
}
