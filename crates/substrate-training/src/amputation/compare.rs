//! The answer: one adapter trained on what CCNet keeps, one on the governed mixture, and each
//! register's held-out perplexity under the base model and both.

use std::collections::BTreeMap;
use std::path::PathBuf;

use substrate_ngram::ccnet::Bucket;
use substrate_store::DataDir;

use super::{AmputationError, Report};
use crate::run::{self, TrainError};

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
    use substrate_models::finetune::{self, Planned};

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
    let seed = run::seed_of(&snapshot);
    let config = run::train_config(
        &options.lora,
        [options.steps, options.batch, options.seq_len, options.save_every],
        options.lr,
        seed,
    );
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
