//! The governed training run from end to end: fold the log, take the snapshot the mixture names,
//! read and tokenise its texts, plan the windows, train, and publish the adapter directory with
//! its record, cards, attestation and signature. Everything is written into `OUT.partial` and
//! renamed to `OUT` at the end, so a run killed anywhere publishes nothing, and running it again
//! resumes from the last checkpoint to the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};
use substrate_core::governance::acts::Effect;
use substrate_core::snapshot::{SnapshotEntry, snapshot_root};
use substrate_core::{Event, Register};
use substrate_models::finetune::{self, Planned, Progress, TrainConfig, Window};
use substrate_models::{Llama, LoraConfig};
use substrate_store::DataDir;

use crate::record::{
    BaseModel, Builder, CommonsRef, Contribution, DecisionRef, HeldOut, Hyperparameters, RUN_FILE, RunRecord,
};
use crate::sampler::{self, Candidate};
use crate::signing::ModelSigningKey;
use crate::{cards, provenance, signing};

pub use crate::record::{MANIFEST_FILE, WINDOWS_FILE};
pub const SIGNATURE_FILE: &str = "model.sig";
/// The node's P-256 public key the signature verifies with (its SHA-256 is in the attestation).
pub const SIGNING_KEY_FILE: &str = "model-signing.pub.pem";

/// What a run is asked to do.
pub struct TrainOptions {
    pub data_dir: DataDir,
    /// The decision entry whose mixture to follow; the mixture in force when `None`.
    pub decision: Option<u64>,
    pub out: PathBuf,
    /// The base model, already loaded with dense weights, its file name and its sha256.
    pub base_name: String,
    pub base_sha256: String,
    pub lora: LoraConfig,
    pub steps: usize,
    pub batch: usize,
    pub seq_len: usize,
    pub lr: f64,
    pub save_every: usize,
    pub node_key: SigningKey,
    pub signing_key: ModelSigningKey,
    pub builder: Builder,
    /// Reads the clock, as RFC 3339 (the run's start and end times).
    pub now: fn() -> String,
}

/// Where a run is, for a progress display.
#[derive(Debug)]
pub enum Phase<'a> {
    Snapshot { log_size: u64, deposits: usize, root: &'a str },
    Tokenising { texts: usize },
    Planned { windows: usize, held_out: usize },
    Step(&'a Progress),
    Signing,
    Published { dir: &'a Path },
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("reading the log: {0}")]
    Log(#[from] substrate_store::ReplayError),
    #[error("reading the texts: {0}")]
    Texts(#[from] substrate_store::ReadError),
    #[error(
        "entry {0} is not a decision that set the mixture; `substrate proposals` lists decided proposals, and `substrate mixture` names the decision in force"
    )]
    NotAMixtureDecision(u64),
    #[error(
        "entry {index} is beyond the log's {size} entries; `substrate mixture` names the decision in force"
    )]
    NoSuchEntry { index: u64, size: u64 },
    #[error(
        "the mixture gives weight only to registers with no eligible text ({0}); deposit texts in them, or decide another mixture"
    )]
    NothingEligible(String),
    #[error(
        "this node does not hold {} of the snapshot's texts: {}; train on the node that holds them (a sequencer holds every text; `local` ones stay where deposited)",
        .0.len(), .0.join(", ")
    )]
    MissingTexts(Vec<String>),
    #[error(
        "{cid} does not hash to its CID here; the blob store is damaged (run `substrate ledger replay --check`)"
    )]
    Corrupt { cid: String },
    #[error("{0} already exists; publish into another --out, or remove it first")]
    Exists(String),
    #[error(transparent)]
    Plan(#[from] sampler::PlanError),
    #[error(transparent)]
    Model(#[from] substrate_models::ModelError),
    #[error(transparent)]
    Provenance(#[from] provenance::ProvenanceError),
    #[error(transparent)]
    Signing(#[from] signing::SigningError),
    #[error("auditing the published directory: {0}")]
    Audit(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io { path: path.display().to_string(), source }
}

/// The snapshot and the mixture a run follows, as of the log's current size.
pub struct Snapshot {
    pub commons: CommonsRef,
    pub decision: Option<DecisionRef>,
    pub mixture: BTreeMap<String, f64>,
    pub log_size: u64,
    pub entries: Vec<SnapshotEntry>,
    pub root: [u8; 32],
    /// Title, license and language of each entry's deposit, by CID.
    pub details: BTreeMap<String, (String, String, String)>,
    /// The node keys registered in the log.
    pub nodes: BTreeSet<String>,
    /// The state the snapshot was taken from, for the run's own audit.
    pub state: substrate_core::State,
}

/// A snapshot as the training itself reads it: all of it but the state it was taken from. A
/// training job's sandbox is given this and the texts, never the node's data directory.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Corpus {
    pub commons: CommonsRef,
    pub decision: Option<DecisionRef>,
    pub mixture: BTreeMap<String, f64>,
    pub log_size: u64,
    pub entries: Vec<SnapshotEntry>,
    pub root: [u8; 32],
    pub details: BTreeMap<String, (String, String, String)>,
}

impl Snapshot {
    /// What the training reads of this snapshot.
    pub fn corpus(&self) -> Corpus {
        Corpus {
            commons: self.commons.clone(),
            decision: self.decision.clone(),
            mixture: self.mixture.clone(),
            log_size: self.log_size,
            entries: self.entries.clone(),
            root: self.root,
            details: self.details.clone(),
        }
    }
}

/// How a run trains: everything of [`TrainOptions`] but where the texts come from and the keys
/// that sign what it made.
pub struct RunSettings {
    pub base_name: String,
    pub base_sha256: String,
    pub lora: LoraConfig,
    pub steps: usize,
    pub batch: usize,
    pub seq_len: usize,
    pub lr: f64,
    pub save_every: usize,
    pub builder: Builder,
    /// The did:key of the node that runs it, as the record names it.
    pub node: String,
    pub now: fn() -> String,
}

impl TrainOptions {
    pub fn settings(&self) -> RunSettings {
        RunSettings {
            base_name: self.base_name.clone(),
            base_sha256: self.base_sha256.clone(),
            lora: self.lora.clone(),
            steps: self.steps,
            batch: self.batch,
            seq_len: self.seq_len,
            lr: self.lr,
            save_every: self.save_every,
            builder: self.builder.clone(),
            node: substrate_core::identity::did_of(&self.node_key.verifying_key()),
            now: self.now,
        }
    }
}

/// What an interrupted run in `OUT.partial` was started on, so that running it again resumes on
/// the same snapshot however much the log has grown since.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    pub log_size: u64,
    pub decision: Option<u64>,
}

/// The file holding a [`Pending`] run's start, inside `OUT.partial`.
pub const PENDING_FILE: &str = "pending.json";

/// The interrupted run staged in `out`'s partial directory, if any.
pub fn pending(out: &Path) -> Result<Option<Pending>, TrainError> {
    let path = partial_dir(out).join(PENDING_FILE);
    match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| TrainError::Io {
            path: path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        }),
    }
}

/// Folds the first `size` entries of the log in `dir` (all of them when `None`) and takes the
/// snapshot the decision at `decision` (or the mixture in force) names.
pub fn snapshot(dir: &DataDir, decision: Option<u64>, size: Option<u64>) -> Result<Snapshot, TrainError> {
    snapshot_of(dir, decision, size, false)
}

/// The snapshot of every register's eligible deposits, whatever weight the mixture in force
/// gives each (the amputation audit looks at them all).
pub fn snapshot_of_every_register(dir: &DataDir) -> Result<Snapshot, TrainError> {
    snapshot_of(dir, None, None, true)
}

fn snapshot_of(
    dir: &DataDir,
    decision: Option<u64>,
    size: Option<u64>,
    every_register: bool,
) -> Result<Snapshot, TrainError> {
    // Each decision entry: its statement digest, and the proposal and weights if it set the mixture.
    type Decided = (String, Option<(u64, BTreeMap<String, f64>)>);
    let mut statements: BTreeMap<u64, Decided> = BTreeMap::new();
    let state = substrate_store::replay::fold_to(dir, size, |index, _, event| {
        if let Event::Decision(d) = &event.event {
            let mixture = d.effects.iter().find_map(|e| match e {
                Effect::Mixture { weights, .. } => {
                    Some(weights.iter().map(|(r, w)| (r.to_string(), *w)).collect())
                }
                _ => None,
            });
            statements.insert(index, (hex::encode(event.statement_digest), mixture.map(|m| (d.proposal, m))));
        }
    })?;
    let size = state.size();
    let commons = state.commons().ok_or(TrainError::NoSuchEntry { index: 0, size })?;
    let commons = CommonsRef {
        name: commons.name.clone(),
        origin: commons.origin.clone(),
        log_key: commons.log_key.clone(),
    };
    let registers: Vec<Register> =
        state.governance().parameters().map(|p| p.registers.clone()).unwrap_or_default();
    let chosen = match decision {
        Some(index) if index >= size => return Err(TrainError::NoSuchEntry { index, size }),
        Some(index) => Some(index),
        None => state.governance().mixture().map(|m| m.decision),
    };
    let (decision, mixture) = match chosen {
        Some(index) => {
            let Some((digest, Some((proposal, weights)))) = statements.get(&index) else {
                return Err(TrainError::NotAMixtureDecision(index));
            };
            (
                Some(DecisionRef { index, proposal: *proposal, statement_sha256: digest.clone() }),
                weights.clone(),
            )
        }
        // No mixture decided yet: every register weighs the same.
        None => {
            (None, registers.iter().map(|r| (r.to_string(), 1.0 / registers.len().max(1) as f64)).collect())
        }
    };
    let weighted: BTreeSet<Register> = match every_register {
        true => registers.iter().cloned().collect(),
        false => {
            mixture.iter().filter(|(_, w)| **w > 0.0).filter_map(|(r, _)| Register::new(r).ok()).collect()
        }
    };
    let entries = state.snapshot(&weighted);
    let details = entries
        .iter()
        .filter_map(|e| state.deposit(&e.cid))
        .map(|d| (d.cid.to_string(), (d.title.clone(), d.license.clone(), d.language.clone())))
        .collect();
    let root = snapshot_root(&entries);
    let nodes = state.governance().nodes().map(|n| n.node.clone()).collect();
    Ok(Snapshot { commons, decision, mixture, log_size: size, entries, root, details, nodes, state })
}

/// Runs the whole pipeline with `model` and publishes the adapter into `options.out`.
pub fn train(
    model: &mut Llama,
    options: &TrainOptions,
    mut on_phase: impl FnMut(Phase<'_>),
) -> Result<RunRecord, TrainError> {
    if options.out.exists() {
        return Err(TrainError::Exists(options.out.display().to_string()));
    }
    // A run interrupted in OUT.partial resumes on the snapshot it started from.
    let snapshot = match pending(&options.out)? {
        Some(p) => snapshot(&options.data_dir, p.decision, Some(p.log_size))?,
        None => snapshot(&options.data_dir, options.decision, None)?,
    };
    let corpus = snapshot.corpus();
    let root_hex = hex::encode(corpus.root);
    on_phase(Phase::Snapshot { log_size: corpus.log_size, deposits: corpus.entries.len(), root: &root_hex });
    if corpus.entries.is_empty() {
        return Err(TrainError::NothingEligible(registers_without_text(&corpus).join(", ")));
    }
    // Every text must be here before anything is trained.
    let texts = read_texts(&options.data_dir, &snapshot)?;
    let staging = partial_dir(&options.out);
    let record = stage(model, &corpus, &texts, &options.settings(), &staging, &mut on_phase)?;
    let record = RunRecord { ccnet: ccnet_share(&options.data_dir, &record)?, ..record };
    on_phase(Phase::Signing);
    seal(&staging, &record, &options.node_key, &options.signing_key, &snapshot.state)?;
    std::fs::rename(&staging, &options.out).map_err(io(&options.out))?;
    on_phase(Phase::Published { dir: &options.out });
    Ok(record)
}

/// The registers the mixture weighs that have no text in the corpus.
fn registers_without_text(corpus: &Corpus) -> Vec<String> {
    let with_text: BTreeSet<&str> = corpus.entries.iter().map(|e| e.register.as_str()).collect();
    corpus
        .mixture
        .iter()
        .filter(|(r, w)| **w > 0.0 && !with_text.contains(r.as_str()))
        .map(|(r, _)| r.clone())
        .collect()
}

/// The training itself, on `texts` (the corpus's, in its order), into `staging`: tokenise, plan
/// the windows, train (resuming from a checkpoint in `staging`), write `windows.jsonl` and
/// return the run's record. Nothing here reads the log or a key, so a training job runs this in
/// its sandbox; [`seal`] writes the cards and signs, outside it.
pub fn stage(
    model: &mut Llama,
    corpus: &Corpus,
    texts: &[Vec<u8>],
    settings: &RunSettings,
    staging: &Path,
    mut on_phase: impl FnMut(Phase<'_>),
) -> Result<RunRecord, TrainError> {
    let started = (settings.now)();
    let resumed = staging.join(PENDING_FILE).exists();
    let registers_without_text = registers_without_text(corpus);
    if corpus.entries.is_empty() {
        return Err(TrainError::NothingEligible(registers_without_text.join(", ")));
    }
    if texts.len() != corpus.entries.len() {
        return Err(TrainError::MissingTexts(
            corpus.entries.iter().skip(texts.len()).map(|e| e.cid.to_string()).collect(),
        ));
    }
    let root_hex = hex::encode(corpus.root);

    on_phase(Phase::Tokenising { texts: texts.len() });
    let tokenised = tokenise(model, texts)?;

    let held_out_flags = held_out_of(&corpus.entries, &corpus.root);
    let trainable: Vec<usize> = (0..corpus.entries.len()).filter(|&i| !held_out_flags[i]).collect();
    let candidates: Vec<Candidate> = trainable
        .iter()
        .map(|&i| Candidate { register: corpus.entries[i].register.to_string(), tokens: tokenised[i].len() })
        .collect();
    let seed = seed_from(&corpus.root);
    let plan =
        sampler::plan(&candidates, &corpus.mixture, settings.steps, settings.batch, settings.seq_len, seed)?;
    let mut held_out: BTreeMap<String, Vec<Vec<u32>>> = BTreeMap::new();
    for (i, flag) in held_out_flags.iter().enumerate() {
        if *flag {
            held_out.entry(corpus.entries[i].register.to_string()).or_default().push(tokenised[i].clone());
        }
    }
    on_phase(Phase::Planned {
        windows: settings.steps * settings.batch,
        held_out: held_out.values().map(Vec::len).sum(),
    });

    std::fs::create_dir_all(staging).map_err(io(staging))?;
    if !resumed {
        let started =
            Pending { log_size: corpus.log_size, decision: corpus.decision.as_ref().map(|d| d.index) };
        let path = staging.join(PENDING_FILE);
        std::fs::write(&path, serde_json::to_vec(&started).unwrap_or_default()).map_err(io(&path))?;
    }
    let planned_texts: Vec<(String, Vec<u32>)> =
        trainable.iter().map(|&i| (corpus.entries[i].register.to_string(), tokenised[i].clone())).collect();
    let config = train_config(
        &settings.lora,
        [settings.steps, settings.batch, settings.seq_len, settings.save_every],
        settings.lr,
        seed,
    );
    let report = finetune::finetune_planned(
        model,
        &settings.base_sha256,
        Planned { texts: &planned_texts, plan: &plan.steps, held_out: &held_out },
        &config,
        staging,
        |p| {
            on_phase(Phase::Step(p));
            ControlFlow::Continue(())
        },
    )?;
    // Attribution: every window back to its deposit, with its byte range, from the token offsets
    // of the texts drawn (tokenised again with offsets: the same ids, checked).
    let mut offsets: BTreeMap<usize, substrate_models::tokenizer::Offsets> = BTreeMap::new();
    for &Window { text, .. } in plan.steps.iter().flatten() {
        let i = trainable[text];
        if let std::collections::btree_map::Entry::Vacant(slot) = offsets.entry(i) {
            let (ids, found) = model.tokenizer.encode_with_offsets(&String::from_utf8_lossy(&texts[i]))?;
            if ids[..] != tokenised[i][..tokenised[i].len() - 1] {
                return Err(TrainError::Model(substrate_models::ModelError::Tokenizer(format!(
                    "{} tokenises differently with offsets",
                    corpus.entries[i].cid
                ))));
            }
            slot.insert(found);
        }
    }
    let mut trained = vec![(0u64, 0u64); corpus.entries.len()];
    let windows_path = staging.join(WINDOWS_FILE);
    let mut side = std::io::BufWriter::new(std::fs::File::create(&windows_path).map_err(io(&windows_path))?);
    for (step, rows) in plan.steps.iter().enumerate() {
        for (row, &Window { text, start, end }) in rows.iter().enumerate() {
            let i = trainable[text];
            let (ids, offsets, len) = (&tokenised[i], &offsets[&i], String::from_utf8_lossy(&texts[i]).len());
            let len = &len;
            trained[i].0 += (end - start - 1) as u64;
            trained[i].1 += 1;
            let byte =
                |token: usize, edge: fn(&(usize, usize)) -> usize| offsets.get(token).map_or(*len, edge);
            let bytes = (byte(start, |o| o.0), if end >= ids.len() { *len } else { byte(end - 1, |o| o.1) });
            let line = serde_json::json!({
                "step": step + 1,
                "row": row,
                "cid": corpus.entries[i].cid.to_string(),
                "tokens": [start, end],
                "bytes": [bytes.0, bytes.1],
            });
            writeln!(side, "{line}").map_err(io(&windows_path))?;
        }
    }
    side.flush().map_err(io(&windows_path))?;
    drop(side);

    let contributions: Vec<Contribution> = corpus
        .entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let (title, license, language) =
                corpus.details.get(&entry.cid.to_string()).cloned().unwrap_or_default();
            Contribution {
                entry: entry.clone(),
                title,
                license,
                language,
                tokens: tokenised[i].len() as u64,
                tokens_trained: trained[i].0,
                windows: trained[i].1,
                held_out: held_out_flags[i],
            }
        })
        .collect();
    let record = RunRecord {
        commons: corpus.commons.clone(),
        decision: corpus.decision.clone(),
        log_size: corpus.log_size,
        snapshot_root: root_hex.clone(),
        mixture: corpus.mixture.clone(),
        achieved: plan.achieved.clone(),
        registers_without_text,
        base_model: BaseModel { name: settings.base_name.clone(), sha256: settings.base_sha256.clone() },
        hyperparameters: Hyperparameters {
            rank: settings.lora.rank,
            alpha: settings.lora.alpha,
            targets: settings.lora.targets.iter().map(|t| t.peft_name().to_owned()).collect(),
            steps: settings.steps,
            batch: settings.batch,
            seq_len: settings.seq_len,
            lr: settings.lr,
            seed,
        },
        tokens_trained: plan.tokens.values().sum(),
        windows: (settings.steps * settings.batch) as u64,
        held_out: report
            .held_out_by_set
            .iter()
            .map(|(r, (before, after))| {
                let texts = held_out.get(r).map_or(0, Vec::len) as u64;
                (r.clone(), HeldOut { texts, before: f64::from(*before), after: f64::from(*after) })
            })
            .collect(),
        local_texts: contributions
            .iter()
            .filter(|c| c.entry.consent == substrate_core::ConsentTier::Local)
            .count() as u64,
        contributions,
        builder: settings.builder.clone(),
        node: settings.node.clone(),
        started,
        finished: (settings.now)(),
        ccnet: None,
    };
    Ok(record)
}

/// The trained tokens from texts in CCNet's tail, if the node has kept an amputation audit.
fn ccnet_share(
    data_dir: &DataDir,
    record: &RunRecord,
) -> Result<Option<crate::record::CcnetShare>, TrainError> {
    let path = data_dir.root().join(crate::amputation::report::SCORES_FILE);
    let report = match crate::amputation::report::read_scores(data_dir) {
        Ok(Some(report)) => report,
        Ok(None) => return Ok(None),
        Err(e) => {
            return Err(TrainError::Io {
                path: path.display().to_string(),
                source: std::io::Error::new(
                    e.kind(),
                    format!(
                        "the amputation audit's scores cannot be read ({e}); run `substrate audit amputation` again, or remove the file"
                    ),
                ),
            });
        }
    };
    let buckets: BTreeMap<&str, Option<&str>> =
        report.deposits.iter().map(|d| (d.cid.as_str(), d.bucket.as_deref())).collect();
    let mut share = crate::record::CcnetShare {
        audit_log_size: report.log_size,
        reference: format!(
            "{}-gram model of {} ({})",
            report.reference.order,
            Path::new(&report.reference.source).file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
            report.reference.language
        ),
        tail_cutoff: report.tail_cutoff,
        tokens_in_tail: 0,
        tokens_not_scored: 0,
        texts_in_tail: 0,
    };
    for c in record.contributions.iter().filter(|c| c.tokens_trained > 0) {
        match buckets.get(c.entry.cid.to_string().as_str()) {
            Some(Some("tail")) => {
                share.tokens_in_tail += c.tokens_trained;
                share.texts_in_tail += 1;
            }
            Some(Some(_)) => {}
            _ => share.tokens_not_scored += c.tokens_trained,
        }
    }
    Ok(Some(share))
}

/// The seed a run on `snapshot` draws its plan and initialises its adapter with: the first eight
/// bytes of the snapshot's root, so the same snapshot trains the same adapter.
pub(crate) fn seed_of(snapshot: &Snapshot) -> u64 {
    seed_from(&snapshot.root)
}

fn seed_from(root: &[u8; 32]) -> u64 {
    u64::from_be_bytes(root[..8].try_into().unwrap_or_default())
}

/// The training configuration of a planned run: LoRA shape, `[steps, batch, seq_len,
/// save_every]`, learning rate and seed, the rest as `TrainConfig`'s defaults.
pub(crate) fn train_config(lora: &LoraConfig, shape: [usize; 4], lr: f64, seed: u64) -> TrainConfig {
    let [steps, batch, seq_len, save_every] = shape;
    TrainConfig { lora: lora.clone(), steps, batch, seq_len, lr, seed, save_every, ..TrainConfig::default() }
}

/// Which of the snapshot's texts are held out to measure the loss: about a tenth of each
/// register's (one when it has three to nineteen, none below), chosen by a hash of the root and
/// the CID: reproducible, and not by the order of deposit.
pub(crate) fn held_out(snapshot: &Snapshot) -> Vec<bool> {
    held_out_of(&snapshot.entries, &snapshot.root)
}

fn held_out_of(entries: &[SnapshotEntry], root: &[u8; 32]) -> Vec<bool> {
    let mut flags = vec![false; entries.len()];
    let mut by_register: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        by_register.entry(e.register.as_str()).or_default().push(i);
    }
    for members in by_register.values_mut() {
        let hold = match members.len() {
            0..=2 => 0,
            3..=19 => 1,
            n => n / 10,
        };
        members.sort_by_cached_key(|&i| {
            let mut h = Sha256::new();
            h.update(root);
            h.update(entries[i].cid.to_string().as_bytes());
            <[u8; 32]>::from(h.finalize())
        });
        for &i in members.iter().take(hold) {
            flags[i] = true;
        }
    }
    flags
}

/// Reads every text of the snapshot from the node's store, checked against its CID.
pub(crate) fn read_texts(data_dir: &DataDir, snapshot: &Snapshot) -> Result<Vec<Vec<u8>>, TrainError> {
    let reader = substrate_store::TextReader::open(data_dir)?;
    let mut texts = Vec::with_capacity(snapshot.entries.len());
    let mut missing = Vec::new();
    for entry in &snapshot.entries {
        match reader.text(&entry.cid)? {
            Some(bytes) if substrate_core::Cid::of(&bytes) == entry.cid => texts.push(bytes),
            Some(_) => return Err(TrainError::Corrupt { cid: entry.cid.to_string() }),
            None => missing.push(entry.cid.to_string()),
        }
    }
    match missing.is_empty() {
        true => Ok(texts),
        false => Err(TrainError::MissingTexts(missing)),
    }
}

/// A text's token ids, end-of-text last.
pub type Tokenised = Vec<u32>;

/// Tokenises `texts` on every core, in order. Only the ids: the byte ranges are found later for
/// the few texts the plan draws windows from.
pub fn tokenise(model: &Llama, texts: &[Vec<u8>]) -> Result<Vec<Tokenised>, TrainError> {
    let one = |bytes: &Vec<u8>| -> Result<Tokenised, TrainError> {
        let mut ids = model.tokenizer.encode_ids(&String::from_utf8_lossy(bytes))?;
        ids.push(model.tokenizer.eos);
        Ok(ids)
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = texts.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = texts
            .chunks(per)
            .map(|part| scope.spawn(move || part.iter().map(one).collect::<Result<Vec<_>, _>>()))
            .collect();
        let mut all = Vec::with_capacity(texts.len());
        for part in parts {
            let done = part.join().map_err(|_| {
                TrainError::Model(substrate_models::ModelError::Invalid(
                    "a tokenising thread panicked".into(),
                ))
            })??;
            all.extend(done);
        }
        Ok(all)
    })
}

/// Where a run into `out` stages its files until it publishes them.
pub fn partial_dir(out: &Path) -> PathBuf {
    let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    out.with_file_name(name)
}

/// Writes the record and the cards into a staged run's directory, then the attestation over
/// every file and the signature; then audits the directory against `state` (the log the snapshot
/// was taken from) and writes the PER table into the model card, and attests and signs again, so
/// the published card carries the audit of the files beside it.
pub fn seal(
    dir: &Path,
    record: &RunRecord,
    node_key: &SigningKey,
    signing_key: &ModelSigningKey,
    state: &substrate_core::State,
) -> Result<(), TrainError> {
    for staged in [finetune::checkpoint_path(dir), dir.join(PENDING_FILE)] {
        if staged.exists() {
            std::fs::remove_file(&staged).map_err(io(&staged))?;
        }
    }
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(io(&path))
    };
    let json = |value: &serde_json::Value| serde_json::to_vec_pretty(value).unwrap_or_default();
    write(RUN_FILE, &serde_json::to_vec_pretty(record).unwrap_or_default())?;
    let manifest = cards::manifest_jsonl(record);
    write(MANIFEST_FILE, manifest.as_bytes())?;
    let manifest_sha256 = hex::encode(Sha256::digest(manifest.as_bytes()));
    write("README.md", cards::model_card(record, None).as_bytes())?;
    write("CONTRIBUTIONS.md", cards::contribution_card(record).as_bytes())?;
    write("contributions.json", &json(&cards::contributions_json(record)))?;
    write("croissant.json", &json(&cards::croissant(record, MANIFEST_FILE, &manifest_sha256)))?;
    write("eu-training-summary.md", cards::eu_training_summary(record).as_bytes())?;
    write(SIGNING_KEY_FILE, signing_key.public_key_pem().as_bytes())?;
    // The audit reads the statement's dependencies (which do not depend on the subjects) and the
    // card's token table (which the PER section does not change): it runs before both are final.
    let draft = provenance::statement(record, &[]);
    let stages =
        crate::audit::per_with(dir, state, Some(&draft)).map_err(|e| TrainError::Audit(e.to_string()))?;
    drop(draft);
    write("README.md", cards::model_card(record, Some(&crate::audit::table(&stages))).as_bytes())?;
    attest_and_sign(dir, record, node_key, signing_key)?;
    sync_dir(dir)
}

/// The attestation over every file of `dir` but itself and the signature, then the
/// model-signing signature over all of them.
fn attest_and_sign(
    dir: &Path,
    record: &RunRecord,
    node_key: &SigningKey,
    signing_key: &ModelSigningKey,
) -> Result<(), TrainError> {
    let mut subjects = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != provenance::PROVENANCE_FILE && n != SIGNATURE_FILE)
        .collect();
    names.sort();
    for name in names {
        let sha256 = provenance::file_sha256(&dir.join(&name))?;
        subjects.push((name, sha256));
    }
    let statement = provenance::statement(record, &subjects);
    let path = dir.join(provenance::PROVENANCE_FILE);
    std::fs::write(&path, provenance::sign(&statement, node_key)).map_err(io(&path))?;
    signing::sign_directory(dir, signing_key, SIGNATURE_FILE)?;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), TrainError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
        let path = entry.path();
        std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(io(&path))?;
    }
    std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(io(dir))
}
