//! What a training run was: the record every file of the adapter directory is written from, kept
//! in the directory as `run.json` so that cards, attestation and audit can be checked against it
//! and against the log.

use std::collections::BTreeMap;

use substrate_core::snapshot::SnapshotEntry;

/// The file name of the record inside an adapter directory.
pub const RUN_FILE: &str = "run.json";
/// The side table of every trained window (step, row, CID, token and byte range).
pub const WINDOWS_FILE: &str = "windows.jsonl";
/// The snapshot manifest: one line per deposit.
pub const MANIFEST_FILE: &str = "manifest.jsonl";

/// A training run, from the decision it followed to the adapter it made.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    /// The commons whose log the run read.
    pub commons: CommonsRef,
    /// The decision whose mixture the run used; `None` when no mixture was decided yet and every
    /// register weighed the same.
    pub decision: Option<DecisionRef>,
    /// The snapshot: as of the first `log_size` entries of the log.
    pub log_size: u64,
    /// Lowercase hex of the snapshot root (`substrate_core::snapshot::snapshot_root`).
    pub snapshot_root: String,
    /// The decided weights, one per register of the mixture (registers of weight 0 included).
    pub mixture: BTreeMap<String, f64>,
    /// The share of the trained tokens each register got.
    pub achieved: BTreeMap<String, f64>,
    /// Registers the mixture gives weight that had no eligible text: reported, never silently
    /// renormalised away (their weight went to the others in proportion).
    pub registers_without_text: Vec<String>,
    pub base_model: BaseModel,
    pub hyperparameters: Hyperparameters,
    /// Every deposit of the snapshot, sorted by CID, with what the run made of it.
    pub contributions: Vec<Contribution>,
    /// Tokens trained on (targets that counted in the loss), over every step.
    pub tokens_trained: u64,
    /// Windows drawn, over every step (`steps × batch`).
    pub windows: u64,
    /// Held-out loss per register before and after training.
    pub held_out: BTreeMap<String, HeldOut>,
    /// Deposits of the `local` tier that trained here (on the node holding them).
    pub local_texts: u64,
    /// The program that ran it.
    pub builder: Builder,
    /// The node key (did:key) that ran the run and signs its attestation.
    pub node: String,
    /// RFC 3339 times.
    pub started: String,
    pub finished: String,
    /// How many of the trained tokens a CCNet pipeline would have discarded, by the amputation
    /// audit the node had kept when it trained (absent when it had none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ccnet: Option<CcnetShare>,
}

/// The trained tokens that came from texts in CCNet's tail, by the node's latest amputation audit.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CcnetShare {
    /// The log size the audit read, its reference corpus and the perplexity from which it cut the tail.
    pub audit_log_size: u64,
    pub reference: String,
    pub tail_cutoff: f64,
    /// Trained tokens from texts in the tail, and from texts the audit did not score.
    pub tokens_in_tail: u64,
    pub tokens_not_scored: u64,
    /// Deposits trained on that are in the tail.
    pub texts_in_tail: u64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CommonsRef {
    pub name: String,
    pub origin: String,
    /// The log's signed-note verifier key.
    pub log_key: String,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DecisionRef {
    /// The decision entry's log index.
    pub index: u64,
    /// The proposal it decided.
    pub proposal: u64,
    /// Lowercase hex SHA-256 of the decision's statement (the envelope payload).
    pub statement_sha256: String,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BaseModel {
    /// The model file's name, e.g. `smollm2-135m-instruct-q4_1.gguf`.
    pub name: String,
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Hyperparameters {
    pub rank: usize,
    pub alpha: f64,
    /// The adapted projections (q, k, v, o, gate, up, down).
    pub targets: Vec<String>,
    pub steps: usize,
    pub batch: usize,
    pub seq_len: usize,
    pub lr: f64,
    /// The seed of the sampler and the initial factors, drawn from the snapshot root.
    pub seed: u64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Builder {
    /// `substrate` and its version.
    pub name: String,
    pub version: String,
    /// Lowercase hex SHA-256 of the executable that ran.
    pub sha256: String,
}

/// One deposit of the snapshot and what the run did with it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Contribution {
    #[serde(flatten)]
    pub entry: SnapshotEntry,
    pub title: String,
    pub license: String,
    pub language: String,
    /// The text's length in the base model's tokens (its end-of-text token included).
    pub tokens: u64,
    /// Tokens of this text the run trained on, over all its windows.
    pub tokens_trained: u64,
    /// Windows drawn from this text.
    pub windows: u64,
    /// Held out to measure the loss, never trained on.
    pub held_out: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeldOut {
    pub texts: u64,
    pub before: f64,
    pub after: f64,
}

/// One contributor's part of a run: what the contribution card shows.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Contributor {
    pub depositor: String,
    /// The contributor's deposits by CID.
    pub deposits: Vec<String>,
    /// Tokens trained per register.
    pub registers: BTreeMap<String, u64>,
    pub tokens_trained: u64,
    pub windows: u64,
    /// `tokens_trained` over the run's; the shares of all contributors sum to 1.
    pub share: f64,
}

impl RunRecord {
    /// Every contributor (a depositor with at least one deposit in the snapshot), by did:key.
    pub fn contributors(&self) -> Vec<Contributor> {
        let mut by_depositor: BTreeMap<&str, Contributor> = BTreeMap::new();
        for c in &self.contributions {
            let entry = by_depositor.entry(c.entry.depositor.as_str()).or_insert_with(|| Contributor {
                depositor: c.entry.depositor.clone(),
                deposits: Vec::new(),
                registers: BTreeMap::new(),
                tokens_trained: 0,
                windows: 0,
                share: 0.0,
            });
            entry.deposits.push(c.entry.cid.to_string());
            *entry.registers.entry(c.entry.register.to_string()).or_default() += c.tokens_trained;
            entry.tokens_trained += c.tokens_trained;
            entry.windows += c.windows;
        }
        let total = self.tokens_trained.max(1) as f64;
        by_depositor
            .into_values()
            .map(|mut c| {
                c.share = c.tokens_trained as f64 / total;
                c
            })
            .collect()
    }

    /// Tokens trained per register.
    pub fn tokens_by_register(&self) -> BTreeMap<String, u64> {
        let mut tokens: BTreeMap<String, u64> = self.mixture.keys().map(|r| (r.clone(), 0)).collect();
        for c in &self.contributions {
            *tokens.entry(c.entry.register.to_string()).or_default() += c.tokens_trained;
        }
        tokens
    }
}
