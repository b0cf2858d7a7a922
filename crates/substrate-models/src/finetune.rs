//! LoRA fine-tuning on CPU over texts drawn with per-source weights.
//!
//! Each step draws `batch` windows of `seq_len + 1` tokens: a source by its weight, a text of
//! that source uniformly, a window of that text uniformly. The weights are the hook the governed
//! mixture uses (a register's weight in the next run); a weight of zero leaves a source out of
//! the draws without leaving it out of the data. About a tenth of each source's texts is held
//! out, and the mean loss on them is measured before the first step and after the last.
//!
//! A checkpoint (`OUT/checkpoint.safetensors`: factors, optimiser moments, step) is written
//! every `save_every` steps, by rename, so a killed run resumes where the last one left off and
//! draws the very same batches it would have drawn.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ModelError, Result};
use crate::llama::{Gradients, Llama, Target, TokenBatch};
use crate::lora::{Adapter, LoraConfig};

pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// One training text and the source (register, file) it belongs to.
#[derive(Clone, Debug, Deserialize)]
pub struct Text {
    pub text: String,
    #[serde(default)]
    pub source: String,
}

/// Reads training texts: JSONL files (`{"text": ..., "source": ...}` per line; the file's stem
/// is the source when a line names none), `.txt` files (one text each, the stem is the source),
/// or a directory of either.
pub fn read_texts(path: &Path) -> Result<Vec<Text>> {
    let meta = std::fs::metadata(path).map_err(ModelError::io(path))?;
    let mut files = Vec::new();
    if meta.is_dir() {
        let entries = std::fs::read_dir(path).map_err(ModelError::io(path))?;
        for entry in entries {
            let p = entry.map_err(ModelError::io(path))?.path();
            if matches!(p.extension().and_then(|e| e.to_str()), Some("jsonl" | "txt")) {
                files.push(p);
            }
        }
        files.sort();
    } else {
        files.push(path.to_path_buf());
    }
    let mut texts = Vec::new();
    for file in files {
        let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let body = std::fs::read_to_string(&file).map_err(ModelError::io(&file))?;
        if file.extension().and_then(|e| e.to_str()) == Some("jsonl") {
            for (n, line) in body.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let mut text: Text = serde_json::from_str(line).map_err(|e| {
                    ModelError::Invalid(format!(
                        "{} line {}: {e}; each line must be a JSON object with a \"text\" string and an optional \"source\"",
                        file.display(),
                        n + 1
                    ))
                })?;
                if text.source.is_empty() {
                    text.source.clone_from(&stem);
                }
                texts.push(text);
            }
        } else {
            texts.push(Text { text: body, source: stem });
        }
    }
    texts.retain(|t| !t.text.trim().is_empty());
    Ok(texts)
}

/// Everything that decides a run; a checkpoint resumes only a run with the same settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub lora: LoraConfig,
    pub steps: usize,
    pub batch: usize,
    pub seq_len: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub seed: u64,
    /// Per-source weights; a source not named weighs 1.
    pub weights: BTreeMap<String, f64>,
    pub save_every: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            lora: LoraConfig { rank: 8, alpha: 16., targets: vec![Target::Q, Target::V] },
            steps: 100,
            batch: 4,
            seq_len: 128,
            lr: 1e-3,
            weight_decay: 0.01,
            seed: 0,
            weights: BTreeMap::new(),
            save_every: 10,
        }
    }
}

/// Where a run is, for a progress display.
#[derive(Clone, Debug)]
pub struct Progress {
    pub step: usize,
    pub steps: usize,
    pub loss: f32,
    pub tokens_per_second: f64,
    pub eta: Duration,
}

/// What a finished run did.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub steps: usize,
    pub resumed_at: usize,
    pub tokens: usize,
    pub seconds: f64,
    pub tokens_per_second: f64,
    pub held_out_before: f32,
    pub held_out_after: f32,
    /// The held-out loss before and after per held-out set (a planned run's registers; a run
    /// drawn by source weight has one set, named "").
    pub held_out_by_set: BTreeMap<String, (f32, f32)>,
    pub train_texts: usize,
    pub held_out_texts: usize,
    pub draws: BTreeMap<String, usize>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointState {
    step: usize,
    config: TrainConfig,
    base_sha256: String,
    data_sha256: String,
    held_out_before: f32,
    #[serde(default)]
    held_out_before_by_set: BTreeMap<String, f32>,
    draws: BTreeMap<String, usize>,
}

/// Tokens `start..end` of the planned run's text number `text`: one row of a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub text: usize,
    pub start: usize,
    pub end: usize,
}

/// The data of a run whose windows were chosen beforehand (the governed sampler's plan), so
/// that every trained token can be attributed to the text it came from.
#[derive(Clone, Copy, Debug)]
pub struct Planned<'a> {
    /// The training texts as token ids (end-of-text included), and the name each is counted
    /// under in `Report::draws` (its register, say).
    pub texts: &'a [(String, Vec<u32>)],
    /// One list of rows per step; every step has `batch` rows of at most `seq_len + 1` tokens.
    pub plan: &'a [Vec<Window>],
    /// Texts never trained on, whose loss is measured before and after, by set name.
    pub held_out: &'a BTreeMap<String, Vec<Vec<u32>>>,
}

struct Source {
    name: String,
    weight: f64,
    train: Vec<Vec<u32>>,
}

/// Trains a LoRA adapter on `model` (loaded with `Weights::Dense`) and writes it to `out`.
pub fn finetune(
    model: &mut Llama,
    base_sha256: &str,
    texts: &[Text],
    config: &TrainConfig,
    out: &Path,
    on_progress: impl FnMut(&Progress) -> ControlFlow<()>,
) -> Result<Report> {
    validate(config)?;
    fits_context(model, config)?;
    if texts.is_empty() {
        return Err(ModelError::EmptyTrainingSet { what: "the data given".into() });
    }
    let data_sha256 = {
        let mut h = Sha256::new();
        for t in texts {
            h.update(t.source.as_bytes());
            h.update([0]);
            h.update(t.text.as_bytes());
            h.update([0]);
        }
        hex::encode(h.finalize())
    };
    let (sources, held_out) = split(model, texts, config)?;
    let train_texts = sources.iter().map(|s| s.train.len()).sum();
    let held_out = BTreeMap::from([(String::new(), held_out)]);
    let pad = model.tokenizer.eos;
    let draw = |step: usize, draws: &mut BTreeMap<String, usize>| {
        let mut rng = StdRng::seed_from_u64(config.seed ^ (step as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        draw_batch(&sources, config, pad, &mut rng, draws)
    };
    train(model, base_sha256, &data_sha256, config, out, &held_out, train_texts, draw, on_progress)
}

/// Trains a LoRA adapter on `model` (loaded with `Weights::Dense`) over exactly the windows of
/// `data.plan`, and writes it to `out`; resumable like [`finetune`].
pub fn finetune_planned(
    model: &mut Llama,
    base_sha256: &str,
    data: Planned<'_>,
    config: &TrainConfig,
    out: &Path,
    on_progress: impl FnMut(&Progress) -> ControlFlow<()>,
) -> Result<Report> {
    validate(config)?;
    if data.plan.len() != config.steps {
        return Err(ModelError::Invalid(format!(
            "the plan has {} steps but the run asks for {}",
            data.plan.len(),
            config.steps
        )));
    }
    let mut h = Sha256::new();
    for (name, ids) in data.texts {
        h.update(name.as_bytes());
        h.update([0]);
        h.update((ids.len() as u64).to_le_bytes());
        ids.iter().for_each(|id| h.update(id.to_le_bytes()));
    }
    for (step, rows) in data.plan.iter().enumerate() {
        if rows.len() != config.batch {
            return Err(ModelError::Invalid(format!(
                "step {} of the plan has {} rows, not the batch of {}",
                step + 1,
                rows.len(),
                config.batch
            )));
        }
        for w in rows {
            let len = data.texts.get(w.text).map(|(_, ids)| ids.len());
            if len.is_none_or(|len| w.start >= w.end || w.end > len || w.end - w.start > config.seq_len + 1) {
                return Err(ModelError::Invalid(format!(
                    "step {} of the plan has a window {}..{} of text {} that is empty, past the text's end or longer than --seq-len + 1",
                    step + 1,
                    w.start,
                    w.end,
                    w.text
                )));
            }
            h.update((w.text as u64).to_le_bytes());
            h.update((w.start as u64).to_le_bytes());
            h.update((w.end as u64).to_le_bytes());
        }
    }
    for (name, texts) in data.held_out {
        h.update(name.as_bytes());
        h.update([1]);
        for ids in texts {
            h.update((ids.len() as u64).to_le_bytes());
            ids.iter().for_each(|id| h.update(id.to_le_bytes()));
        }
    }
    let data_sha256 = hex::encode(h.finalize());
    fits_context(model, config)?;
    let pad = model.tokenizer.eos;
    let seq_len = config.seq_len;
    let draw = |step: usize, draws: &mut BTreeMap<String, usize>| {
        let rows: Vec<&[u32]> = data.plan[step]
            .iter()
            .map(|w| {
                let (name, ids) = &data.texts[w.text];
                *draws.entry(name.clone()).or_default() += 1;
                &ids[w.start..w.end]
            })
            .collect();
        windows(&rows, seq_len, pad)
    };
    let train_texts =
        data.plan.iter().flatten().map(|w| w.text).collect::<std::collections::BTreeSet<_>>().len();
    train(model, base_sha256, &data_sha256, config, out, data.held_out, train_texts, draw, on_progress)
}

/// The training loop both kinds of run share: factors, optimiser, checkpoints, held-out loss.
#[allow(clippy::too_many_arguments)]
fn train(
    model: &mut Llama,
    base_sha256: &str,
    data_sha256: &str,
    config: &TrainConfig,
    out: &Path,
    held_out: &BTreeMap<String, Vec<Vec<u32>>>,
    train_texts: usize,
    mut draw: impl FnMut(usize, &mut BTreeMap<String, usize>) -> TokenBatch,
    mut on_progress: impl FnMut(&Progress) -> ControlFlow<()>,
) -> Result<Report> {
    let vars = init_factors(model, config)?;
    let mut adam = Adam::new(&vars, config)?;
    let mut adapter = adapter_of(model, base_sha256, config, &vars);
    adapter.attach(model);

    std::fs::create_dir_all(out).map_err(ModelError::io(out))?;
    let checkpoint = out.join(CHECKPOINT_FILE);
    let mut draws: BTreeMap<String, usize> = BTreeMap::new();
    let (start_step, held_out_before) =
        match resume(&checkpoint, config, base_sha256, data_sha256, &vars, &mut adam)? {
            Some(state) if state.held_out_before_by_set.len() == held_out.len() => {
                draws = state.draws;
                (state.step, state.held_out_before_by_set)
            }
            Some(state) => {
                draws = state.draws;
                (state.step, BTreeMap::from([(String::new(), state.held_out_before)]))
            }
            None => (0, held_out_losses(model, held_out, config)?),
        };

    let started = Instant::now();
    let tokens_per_step = config.batch * config.seq_len;
    for step in start_step..config.steps {
        let batch = draw(step, &mut draws);
        let grads = model.loss_and_gradients(&batch)?;
        adam.step(&vars, &grads)?;
        let done = step + 1 - start_step;
        let elapsed = started.elapsed().as_secs_f64();
        let rate = (done * tokens_per_step) as f64 / elapsed.max(1e-9);
        let left = (config.steps - step - 1) as f64 * elapsed / done as f64;
        let flow = on_progress(&Progress {
            step: step + 1,
            steps: config.steps,
            loss: grads.loss,
            tokens_per_second: rate,
            eta: Duration::from_secs_f64(left),
        });
        if (step + 1) % config.save_every == 0 || step + 1 == config.steps {
            let state = CheckpointState {
                step: step + 1,
                config: config.clone(),
                base_sha256: base_sha256.to_owned(),
                data_sha256: data_sha256.to_owned(),
                held_out_before: overall(&held_out_before, held_out),
                held_out_before_by_set: held_out_before.clone(),
                draws: draws.clone(),
            };
            save_checkpoint(&checkpoint, &state, &vars, &adam)?;
        }
        if flow.is_break() {
            return Err(ModelError::Stopped { step: step + 1 });
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let held_out_after = held_out_losses(model, held_out, config)?;
    adapter = adapter_of(model, base_sha256, config, &vars);
    adapter.save(
        out,
        model,
        &[("steps", config.steps.to_string()), ("data_sha256", data_sha256.to_owned())],
    )?;
    let tokens = (config.steps - start_step) * tokens_per_step;
    Ok(Report {
        steps: config.steps,
        resumed_at: start_step,
        tokens,
        seconds,
        tokens_per_second: tokens as f64 / seconds.max(1e-9),
        held_out_before: overall(&held_out_before, held_out),
        held_out_after: overall(&held_out_after, held_out),
        held_out_by_set: held_out_before
            .iter()
            .map(|(name, before)| {
                (name.clone(), (*before, held_out_after.get(name).copied().unwrap_or(f32::NAN)))
            })
            .collect(),
        train_texts,
        held_out_texts: held_out.values().map(Vec::len).sum(),
        draws,
    })
}

/// The held-out loss of every set.
fn held_out_losses(
    model: &Llama,
    held_out: &BTreeMap<String, Vec<Vec<u32>>>,
    config: &TrainConfig,
) -> Result<BTreeMap<String, f32>> {
    // At most 64 windows in all, as a run with one set measures, and at least 8 per set: the
    // measurement must not cost more than the training it measures.
    let rows = (64 / held_out.len().max(1)).max(8);
    held_out
        .iter()
        .map(|(name, texts)| Ok((name.clone(), held_out_loss(model, texts, config, rows)?)))
        .collect()
}

/// The sets' losses weighted by their number of texts (the only set's loss when there is one).
fn overall(losses: &BTreeMap<String, f32>, held_out: &BTreeMap<String, Vec<Vec<u32>>>) -> f32 {
    let (mut sum, mut count) = (0f64, 0f64);
    for (name, loss) in losses {
        let n = held_out.get(name).map_or(0, Vec::len) as f64;
        sum += f64::from(*loss) * n;
        count += n;
    }
    (sum / count.max(1.)) as f32
}

fn fits_context(model: &Llama, config: &TrainConfig) -> Result<()> {
    if config.seq_len > model.config.context {
        return Err(ModelError::Invalid(format!(
            "--seq-len {} is longer than the model's context of {} tokens: use at most {}",
            config.seq_len, model.config.context, model.config.context
        )));
    }
    Ok(())
}

fn validate(config: &TrainConfig) -> Result<()> {
    let fail = |what: &str| Err(ModelError::Invalid(what.to_owned()));
    if config.lora.rank == 0 {
        return fail("--rank must be at least 1");
    }
    if config.lora.targets.is_empty() {
        return fail("--targets must name at least one projection (q, k, v, o, gate, up, down)");
    }
    if config.steps == 0 || config.batch == 0 || config.seq_len < 2 || config.save_every == 0 {
        return fail("--steps, --batch and --save-every must be at least 1, and --seq-len at least 2");
    }
    if !(config.lr > 0. && config.lr.is_finite()) {
        return fail("--lr must be a positive number");
    }
    if config.weights.values().any(|w| !(*w >= 0. && w.is_finite())) {
        return fail("every --weight must be a number of at least 0");
    }
    Ok(())
}

/// Tokenizes the texts and holds about a tenth of each source out (at least one text overall).
fn split(model: &Llama, texts: &[Text], config: &TrainConfig) -> Result<(Vec<Source>, Vec<Vec<u32>>)> {
    let mut by_source: BTreeMap<&str, Vec<Vec<u32>>> = BTreeMap::new();
    for t in texts {
        let mut ids = model.tokenizer.encode(&t.text)?;
        ids.push(model.tokenizer.eos);
        by_source.entry(t.source.as_str()).or_default().push(ids);
    }
    if let Some(unknown) = config.weights.keys().find(|k| !by_source.contains_key(k.as_str())) {
        let known: Vec<&str> = by_source.keys().copied().collect();
        return Err(ModelError::Invalid(format!(
            "--weight names source `{unknown}`, which has no texts; the sources are: {}",
            known.join(", ")
        )));
    }
    if texts.len() < 2 {
        return Err(ModelError::Invalid(
            "fine-tuning needs at least two texts: about a tenth is held out to measure the loss".into(),
        ));
    }
    let mut sources = Vec::new();
    let mut held_out = Vec::new();
    for (name, mut seqs) in by_source {
        let hold = seqs.len() / 10;
        held_out.extend(seqs.drain(seqs.len() - hold..));
        sources.push(Source {
            name: name.to_owned(),
            weight: config.weights.get(name).copied().unwrap_or(1.),
            train: seqs,
        });
    }
    if held_out.is_empty() {
        // Fewer than ten texts in every source: hold out the last text of the largest one.
        let largest = sources.iter_mut().max_by_key(|s| s.train.len()).filter(|s| s.train.len() > 1);
        match largest {
            Some(source) => held_out.extend(source.train.pop()),
            None => {
                return Err(ModelError::Invalid(
                    "fine-tuning needs a source with at least two texts, so that one can be held out".into(),
                ));
            }
        }
    }
    if sources.iter().all(|s| s.weight == 0. || s.train.is_empty()) {
        return Err(ModelError::Invalid(
            "every source with training texts has weight 0: nothing to draw".into(),
        ));
    }
    Ok((sources, held_out))
}

/// One adapted projection: its layer and kind, and its trainable A and B.
type Factor = ((usize, Target), Var, Var);

fn init_factors(model: &Llama, config: &TrainConfig) -> Result<Vec<Factor>> {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut vars = Vec::new();
    let r = config.lora.rank;
    for layer in 0..model.config.layers {
        for &target in &config.lora.targets {
            let (out, inp) = model.projection_shape(target);
            // PEFT's initialisation: A uniform in ±1/√in (Kaiming with a = √5), B zero, so the
            // adapter starts as the identity.
            let bound = 1. / (inp as f32).sqrt();
            let a: Vec<f32> = (0..r * inp).map(|_| rng.random_range(-bound..bound)).collect();
            let a = Var::from_tensor(&Tensor::from_vec(a, (r, inp), &Device::Cpu)?)?;
            let b = Var::zeros((out, r), DType::F32, &Device::Cpu)?;
            vars.push(((layer, target), a, b));
        }
    }
    Ok(vars)
}

fn adapter_of(model: &Llama, base_sha256: &str, config: &TrainConfig, vars: &[Factor]) -> Adapter {
    Adapter {
        config: config.lora.clone(),
        factors: vars.iter().map(|(k, a, b)| (*k, (a.as_tensor().clone(), b.as_tensor().clone()))).collect(),
        base_name: model.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        base_sha256: base_sha256.to_owned(),
    }
}

/// `batch` windows drawn by source weight, short ones padded with `pad`.
fn draw_batch(
    sources: &[Source],
    config: &TrainConfig,
    pad: u32,
    rng: &mut StdRng,
    draws: &mut BTreeMap<String, usize>,
) -> TokenBatch {
    let live: Vec<&Source> = sources.iter().filter(|s| s.weight > 0. && !s.train.is_empty()).collect();
    let total: f64 = live.iter().map(|s| s.weight).sum();
    let mut rows = Vec::with_capacity(config.batch);
    for _ in 0..config.batch {
        let mut pick = rng.random::<f64>() * total;
        let source = live.iter().find(|s| {
            pick -= s.weight;
            pick < 0.
        });
        let source = source.copied().unwrap_or(live[live.len() - 1]);
        *draws.entry(source.name.clone()).or_default() += 1;
        let text = &source.train[rng.random_range(0..source.train.len())];
        let span = config.seq_len + 1;
        let start = match text.len() > span {
            true => rng.random_range(0..=text.len() - span),
            false => 0,
        };
        rows.push(&text[start..text.len().min(start + span)]);
    }
    windows(&rows, config.seq_len, pad)
}

/// Inputs, targets and a mask of the real targets, each `[rows, seq_len]`.
fn windows(rows: &[&[u32]], seq_len: usize, pad: u32) -> TokenBatch {
    let n = rows.len();
    let (mut inputs, mut targets, mut mask) =
        (Vec::with_capacity(n * seq_len), Vec::with_capacity(n * seq_len), Vec::with_capacity(n * seq_len));
    for row in rows {
        for i in 0..seq_len {
            inputs.push(row.get(i).copied().unwrap_or(pad));
            targets.push(row.get(i + 1).copied().unwrap_or(pad));
            mask.push(if i + 1 < row.len() { 1f32 } else { 0. });
        }
    }
    TokenBatch { inputs, targets, mask, rows: n, len: seq_len }
}

/// The mean loss per token of `model` (with whatever adapter it carries) over at most `limit`
/// windows of `seq_len + 1` tokens cut in order from `texts`, `batch` windows at a time.
pub fn loss_over(
    model: &Llama,
    texts: &[Vec<u32>],
    seq_len: usize,
    batch: usize,
    limit: usize,
) -> Result<f32> {
    held_out_loss(model, texts, &TrainConfig { seq_len, batch, ..TrainConfig::default() }, limit)
}

/// The mean loss over the held-out texts, in windows of `seq_len + 1` (at most `limit` of them).
fn held_out_loss(model: &Llama, held_out: &[Vec<u32>], config: &TrainConfig, limit: usize) -> Result<f32> {
    let span = config.seq_len + 1;
    let rows: Vec<&[u32]> =
        held_out.iter().flat_map(|t| t.chunks(span).filter(|c| c.len() > 1)).take(limit).collect();
    let (mut sum, mut count) = (0f64, 0f64);
    for chunk in rows.chunks(config.batch) {
        let batch = windows(chunk, config.seq_len, model.tokenizer.eos);
        let weight: f64 = batch.mask.iter().map(|&m| f64::from(m)).sum();
        sum += f64::from(model.batch_loss(&batch)?) * weight;
        count += weight;
    }
    Ok((sum / count.max(1.)) as f32)
}

/// AdamW with decoupled weight decay, as PyTorch's `torch.optim.AdamW`.
struct Adam {
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: usize,
    lr: f64,
    weight_decay: f64,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

impl Adam {
    fn new(vars: &[Factor], config: &TrainConfig) -> Result<Self> {
        let mut m = Vec::new();
        for (_, a, b) in vars {
            m.push(a.zeros_like()?);
            m.push(b.zeros_like()?);
        }
        Ok(Self { v: m.clone(), m, t: 0, lr: config.lr, weight_decay: config.weight_decay })
    }

    fn step(&mut self, vars: &[Factor], grads: &Gradients) -> Result<()> {
        self.t += 1;
        let t = self.t as i32;
        let (c1, c2) = (1. - BETA1.powi(t), 1. - BETA2.powi(t));
        let params = vars
            .iter()
            .flat_map(|((layer, target), a, b)| [(layer, target, "A", a), (layer, target, "B", b)]);
        for (i, (layer, target, factor, var)) in params.enumerate() {
            let (da, db) = grads.factors.get(&(*layer, *target)).ok_or_else(|| {
                ModelError::Invalid(format!(
                    "no gradient reached lora_{factor} of {} in layer {layer}: the factor is not attached to the model",
                    target.peft_name()
                ))
            })?;
            let grad = &Tensor::from_slice(if factor == "A" { da } else { db }, var.shape(), &Device::Cpu)?;
            self.m[i] = ((&self.m[i] * BETA1)? + (grad * (1. - BETA1))?)?;
            self.v[i] = ((&self.v[i] * BETA2)? + (grad.sqr()? * (1. - BETA2))?)?;
            let update = ((&self.m[i] / c1)? / ((&self.v[i] / c2)?.sqrt()? + EPS)?)?;
            let decayed = (var.as_tensor() * (1. - self.lr * self.weight_decay))?;
            var.set(&(decayed - (update * self.lr)?)?)?;
        }
        Ok(())
    }
}

fn save_checkpoint(path: &Path, state: &CheckpointState, vars: &[Factor], adam: &Adam) -> Result<()> {
    let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut push = |name: String, t: &Tensor| -> Result<()> {
        let values = t.flatten_all()?.to_vec1::<f32>()?;
        buffers.push((name, t.dims().to_vec(), values.iter().flat_map(|v| v.to_le_bytes()).collect()));
        Ok(())
    };
    for (i, ((layer, target), a, b)) in vars.iter().enumerate() {
        let name = format!("{layer}.{}", target.peft_name());
        push(format!("{name}.A"), a.as_tensor())?;
        push(format!("{name}.B"), b.as_tensor())?;
        push(format!("{name}.A.m"), &adam.m[2 * i])?;
        push(format!("{name}.A.v"), &adam.v[2 * i])?;
        push(format!("{name}.B.m"), &adam.m[2 * i + 1])?;
        push(format!("{name}.B.v"), &adam.v[2 * i + 1])?;
    }
    let views = buffers
        .iter()
        .map(|(n, s, b)| TensorView::new(Dtype::F32, s.clone(), b).map(|v| (n.clone(), v)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ModelError::Invalid(format!("checkpoint tensors: {e}")))?;
    let json = serde_json::to_string(state).map_err(|e| ModelError::Invalid(e.to_string()))?;
    let partial = path.with_extension("partial");
    safetensors::serialize_to_file(views, Some(HashMap::from([("state".to_owned(), json)])), &partial)
        .map_err(|e| ModelError::Invalid(format!("writing {}: {e}", partial.display())))?;
    std::fs::File::open(&partial).and_then(|f| f.sync_all()).map_err(ModelError::io(&partial))?;
    std::fs::rename(&partial, path).map_err(ModelError::io(path))
}

fn resume(
    path: &Path,
    config: &TrainConfig,
    base_sha256: &str,
    data_sha256: &str,
    vars: &[Factor],
    adam: &mut Adam,
) -> Result<Option<CheckpointState>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ModelError::io(path)(e)),
    };
    let unusable = |detail: String| {
        ModelError::Invalid(format!(
            "{}: {detail}; use another --out, or delete the checkpoint to start over",
            path.display()
        ))
    };
    let (_, header) =
        SafeTensors::read_metadata(&bytes).map_err(|e| unusable(format!("unreadable checkpoint ({e})")))?;
    let state: CheckpointState = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get("state"))
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| unusable("the checkpoint has no readable state".into()))?;
    if state.config != *config {
        return Err(unusable("the checkpoint was made with other settings".into()));
    }
    if state.base_sha256 != base_sha256 || state.data_sha256 != data_sha256 {
        return Err(unusable("the checkpoint was made from another base model or other data".into()));
    }
    let tensors =
        SafeTensors::deserialize(&bytes).map_err(|e| unusable(format!("unreadable checkpoint ({e})")))?;
    let read = |name: &str, like: &Tensor| -> Result<Tensor> {
        let view = tensors.tensor(name).map_err(|_| unusable(format!("no tensor {name}")))?;
        let values: Vec<f32> =
            view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        Ok(Tensor::from_vec(values, like.shape(), &Device::Cpu)?)
    };
    for (i, ((layer, target), a, b)) in vars.iter().enumerate() {
        let name = format!("{layer}.{}", target.peft_name());
        a.set(&read(&format!("{name}.A"), a.as_tensor())?)?;
        b.set(&read(&format!("{name}.B"), b.as_tensor())?)?;
        adam.m[2 * i] = read(&format!("{name}.A.m"), a.as_tensor())?;
        adam.v[2 * i] = read(&format!("{name}.A.v"), a.as_tensor())?;
        adam.m[2 * i + 1] = read(&format!("{name}.B.m"), b.as_tensor())?;
        adam.v[2 * i + 1] = read(&format!("{name}.B.v"), b.as_tensor())?;
    }
    adam.t = state.step;
    Ok(Some(state))
}

/// The checkpoint a run in `out` would resume from, if any.
pub fn checkpoint_path(out: &Path) -> PathBuf {
    out.join(CHECKPOINT_FILE)
}
