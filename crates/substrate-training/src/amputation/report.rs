//! The audit's report, and where it is kept for the API and the training run's card.

use std::collections::BTreeMap;
use std::path::PathBuf;

use substrate_store::DataDir;

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
