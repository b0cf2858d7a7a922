//! The built-in workloads, as the process a sandbox confines: it reads a job's input (JSON, a
//! [`JobInput`]) from one file, runs the model files the workload pins, and writes the output (a
//! [`JobOutput`]) to another. A training job also reads what the worker prepared beside the
//! input ([`TrainingFiles`]: the snapshot, its texts, and what the record names) and stages the
//! adapter beside the output, for the worker to sign and publish outside the sandbox. `substrate workload` is this process; the worker re-executes its own
//! binary under [`crate::Sandbox`] with the inputs, the model files and the output directory as
//! the only paths it may touch.

use std::path::{Path, PathBuf};

use substrate_core::governance::jobs::{
    Bits, JobInput, JobOutput, MIN_EVAL_TEXTS, RegisterLoss, encode_vector,
};
use substrate_models::{Embedder, Llama, LoraConfig, Message, Sampling, Weights};
use substrate_training::record::Builder;
use substrate_training::run::{self, Corpus, Phase, RunSettings};

/// Why a workload could not produce an output.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("{0}")]
    Usage(String),
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the input is not a job input: {0}")]
    Input(serde_json::Error),
    #[error("the model files given hold no {0}")]
    NoModel(&'static str),
    #[error("{0}")]
    Model(#[from] substrate_models::ModelError),
    #[error("{0}")]
    Training(#[from] substrate_training::run::TrainError),
}

/// What a worker prepares beside a training job's input, and where the workload stages the
/// adapter beside its output.
pub struct TrainingFiles;

impl TrainingFiles {
    /// The snapshot the job trains on (a [`Corpus`], JSON).
    pub const CORPUS: &'static str = "corpus.json";
    /// What the run's record names that the sandbox cannot know ([`TrainingContext`], JSON).
    pub const CONTEXT: &'static str = "context.json";
    /// The corpus's texts, one file each, named by their position (six digits).
    pub const TEXTS: &'static str = "texts";
    /// The staged adapter directory, beside the output.
    pub const ADAPTER: &'static str = "adapter";
    /// The run's record (JSON), beside the output.
    pub const RECORD: &'static str = "record.json";

    pub fn text_name(position: usize) -> String {
        format!("{position:06}")
    }
}

/// What a training run's record names that its sandbox cannot find out: the program that runs
/// (its sha256 is the one the approval pins), the node that runs it, and the base model.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TrainingContext {
    /// The adapter an evaluation attaches to the base model (a directory of this node's registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<PathBuf>,
    pub builder: Builder,
    pub node: String,
    pub base_name: String,
    pub base_sha256: String,
}

/// The learning rate, alpha and adapted projections of a training job: the run's defaults.
pub const TRAIN_LR: f64 = 1e-3;
pub const TRAIN_ALPHA: f64 = 16.0;

/// What one run of a workload is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub input: PathBuf,
    pub output: PathBuf,
    /// The pinned model files.
    pub models: Vec<PathBuf>,
}

impl Invocation {
    /// The arguments that follow the workload command: `--input FILE --output FILE --model FILE…`.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--input".to_owned(),
            self.input.display().to_string(),
            "--output".to_owned(),
            self.output.display().to_string(),
        ];
        for model in &self.models {
            args.push("--model".to_owned());
            args.push(model.display().to_string());
        }
        args
    }

    /// Parses what [`Invocation::args`] writes.
    pub fn parse(args: &[String]) -> Result<Invocation, WorkloadError> {
        let usage = || WorkloadError::Usage("usage: --input FILE --output FILE [--model FILE]…".into());
        let (mut input, mut output, mut models) = (None, None, Vec::new());
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value = PathBuf::from(args.next().ok_or_else(usage)?);
            match flag.as_str() {
                "--input" => input = Some(value),
                "--output" => output = Some(value),
                "--model" => models.push(value),
                _ => return Err(usage()),
            }
        }
        Ok(Invocation { input: input.ok_or_else(usage)?, output: output.ok_or_else(usage)?, models })
    }

    pub fn read_input(&self) -> Result<JobInput, WorkloadError> {
        let bytes = std::fs::read(&self.input)
            .map_err(|source| WorkloadError::Read { path: self.input.clone(), source })?;
        serde_json::from_slice(&bytes).map_err(WorkloadError::Input)
    }

    pub fn write_output(&self, output: &JobOutput) -> Result<(), WorkloadError> {
        let bytes = serde_json::to_vec(output).unwrap_or_default();
        std::fs::write(&self.output, bytes)
            .map_err(|source| WorkloadError::Write { path: self.output.clone(), source })
    }
}

/// Runs `input` on the model files `models`: an embedding model's directory is the one holding
/// its `model.safetensors`; a generation model is its GGUF file. Generation is greedy, after the
/// model's chat template, so every honest run gives the same tokens.
pub fn execute(input: &JobInput, invocation: &Invocation) -> Result<JobOutput, WorkloadError> {
    let models = &invocation.models;
    match input {
        JobInput::Embed { texts } => {
            let weights = models
                .iter()
                .find(|m| m.file_name().is_some_and(|n| n == "model.safetensors"))
                .ok_or(WorkloadError::NoModel("embedding model (model.safetensors)"))?;
            let dir = weights.parent().unwrap_or(Path::new("."));
            let vectors = Embedder::load(dir)?.embed(texts)?;
            Ok(JobOutput::Embed { vectors: vectors.iter().map(|v| encode_vector(v)).collect() })
        }
        JobInput::Generate { prompt, max_tokens } => {
            let file = models
                .iter()
                .find(|m| m.extension().is_some_and(|e| e == "gguf"))
                .ok_or(WorkloadError::NoModel("generation model (a .gguf file)"))?;
            let model = Llama::load(file, Weights::Auto)?;
            let text = substrate_models::apply_chat_template(&model, &[Message::new("user", prompt)])?;
            let ids = model.tokenizer.encode_prompt(&text)?;
            let sampling = Sampling { max_tokens: *max_tokens as usize, ..Sampling::default() };
            let generation = substrate_models::generate(&model, &ids, &sampling, |_| {})?;
            Ok(JobOutput::Generate { tokens: generation.tokens, text: generation.text })
        }
        JobInput::Evaluate { adapter, windows, seq_len, .. } => {
            let file = base_model(models)?;
            let (corpus, context, texts) = read_prepared(invocation)?;
            let mut model = Llama::load(file, Weights::Dense)?;
            if adapter.is_some() {
                let dir = context.adapter.as_ref().ok_or_else(|| {
                    WorkloadError::Usage("the worker named no adapter directory for the evaluation".into())
                })?;
                substrate_models::Adapter::load(dir, &model, &context.base_sha256)?.attach(&mut model);
            }
            let tokenised = run::tokenise(&model, &texts)?;
            let mut by_register: std::collections::BTreeMap<String, Vec<Vec<u32>>> = Default::default();
            for (entry, ids) in corpus.entries.iter().zip(tokenised) {
                by_register.entry(entry.register.to_string()).or_default().push(ids);
            }
            let (seq_len, windows) = (*seq_len as usize, *windows as usize);
            let registers = by_register
                .iter()
                .filter(|(_, texts)| texts.len() >= MIN_EVAL_TEXTS)
                .map(|(register, texts)| {
                    let loss = substrate_models::finetune::loss_over(&model, texts, seq_len, 4, windows)?;
                    // The tokens the loss was taken over: the windows `loss_over` cuts, in order.
                    let tokens = texts
                        .iter()
                        .flat_map(|t| t.chunks(seq_len + 1).filter(|c| c.len() > 1))
                        .take(windows)
                        .map(|c| c.len() as u64 - 1)
                        .sum();
                    Ok(RegisterLoss {
                        register: register.clone(),
                        texts: texts.len() as u64,
                        tokens,
                        loss: Bits(loss),
                    })
                })
                .collect::<Result<Vec<_>, WorkloadError>>()?;
            Ok(JobOutput::Evaluate { snapshot_root: hex::encode(corpus.root), registers })
        }
        JobInput::TrainLora { steps, batch, seq_len, rank, .. } => {
            let file = base_model(models)?;
            let (corpus, context, texts) = read_prepared(invocation)?;
            let mut model = Llama::load(file, Weights::Dense)?;
            let lora = LoraConfig {
                rank: *rank as usize,
                alpha: TRAIN_ALPHA,
                targets: vec![substrate_models::Target::Q, substrate_models::Target::V],
            };
            let settings = RunSettings {
                base_name: context.base_name,
                base_sha256: context.base_sha256,
                lora,
                steps: *steps as usize,
                batch: *batch as usize,
                seq_len: *seq_len as usize,
                lr: TRAIN_LR,
                save_every: *steps as usize,
                builder: context.builder,
                node: context.node,
                now: || substrate_core::timestamp::rfc3339(now_ms()),
            };
            let out = invocation.output.parent().unwrap_or(Path::new("."));
            let staging = out.join(TrainingFiles::ADAPTER);
            let mut losses = Vec::with_capacity(*steps as usize);
            let record = run::stage(&mut model, &corpus, &texts, &settings, &staging, |phase| {
                if let Phase::Step(p) = phase {
                    losses.push(Bits(p.loss));
                    eprintln!("step {}/{} loss {:.4}", p.step, p.steps, p.loss);
                }
            })?;
            let record_path = out.join(TrainingFiles::RECORD);
            std::fs::write(&record_path, serde_json::to_vec(&record).unwrap_or_default())
                .map_err(|source| WorkloadError::Write { path: record_path, source })?;
            let weights = staging.join(substrate_models::lora::WEIGHTS_FILE);
            let norms = substrate_models::lora::tensor_norms(&weights)?.into_iter().map(Bits).collect();
            Ok(JobOutput::TrainLora {
                snapshot_root: record.snapshot_root.clone(),
                tokens: record.tokens_trained,
                losses,
                norms,
                weights: substrate_models::fetch::file_sha256(&weights)?,
            })
        }
    }
}

/// The base model among the pinned files: its GGUF.
fn base_model(models: &[PathBuf]) -> Result<&PathBuf, WorkloadError> {
    models
        .iter()
        .find(|m| m.extension().is_some_and(|e| e == "gguf"))
        .ok_or(WorkloadError::NoModel("base model (a .gguf file)"))
}

/// What the worker prepared beside the input: the snapshot, the context and the texts.
fn read_prepared(invocation: &Invocation) -> Result<(Corpus, TrainingContext, Vec<Vec<u8>>), WorkloadError> {
    let dir = invocation.input.parent().unwrap_or(Path::new("."));
    let read_json = |name: &str| -> Result<serde_json::Value, WorkloadError> {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|source| WorkloadError::Read { path, source })?;
        serde_json::from_slice(&bytes).map_err(WorkloadError::Input)
    };
    let corpus: Corpus =
        serde_json::from_value(read_json(TrainingFiles::CORPUS)?).map_err(WorkloadError::Input)?;
    let context: TrainingContext =
        serde_json::from_value(read_json(TrainingFiles::CONTEXT)?).map_err(WorkloadError::Input)?;
    let texts = (0..corpus.entries.len())
        .map(|i| {
            let path = dir.join(TrainingFiles::TEXTS).join(TrainingFiles::text_name(i));
            std::fs::read(&path).map_err(|source| WorkloadError::Read { path, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((corpus, context, texts))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The workload process: parses `args`, runs the input, writes the output.
pub fn main_with(args: &[String], prepare: impl FnOnce(JobInput) -> JobInput) -> Result<(), WorkloadError> {
    let invocation = Invocation::parse(args)?;
    let input = prepare(invocation.read_input()?);
    let output = execute(&input, &invocation)?;
    invocation.write_output(&output)
}
