//! The built-in workloads, as the process a sandbox confines: it reads a job's input (JSON, a
//! [`JobInput`]) from one file, runs the model files the workload pins, and writes the output (a
//! [`JobOutput`]) to another. `substrate workload` is this process; the worker re-executes its own
//! binary under [`crate::Sandbox`] with the inputs, the model files and the output directory as
//! the only paths it may touch.

use std::path::{Path, PathBuf};

use substrate_core::governance::jobs::{JobInput, JobOutput, encode_vector};
use substrate_models::{Embedder, Llama, Message, Sampling, Weights};

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
}

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
pub fn execute(input: &JobInput, models: &[PathBuf]) -> Result<JobOutput, WorkloadError> {
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
    }
}

/// The workload process: parses `args`, runs the input, writes the output.
pub fn main_with(args: &[String], prepare: impl FnOnce(JobInput) -> JobInput) -> Result<(), WorkloadError> {
    let invocation = Invocation::parse(args)?;
    let input = prepare(invocation.read_input()?);
    let output = execute(&input, &invocation.models)?;
    invocation.write_output(&output)
}
