//! What can go wrong with a model, each error saying what was wrong and what to do.

use std::path::PathBuf;

/// Every failure of this crate. The message names the file or value at fault and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error("no model at {}: run `substrate models fetch`, or pass --model with the path of a local {kind}", path.display())]
    Missing { path: PathBuf, kind: &'static str },

    #[error("{} is not a usable {kind} ({detail}): fetch it again with `substrate models fetch --force`, or check the path", path.display())]
    Corrupt { path: PathBuf, kind: &'static str, detail: String },

    #[error(
        "{what} has sha256 {actual}, but {expected} was pinned: the download is damaged or not the pinned release; fetch it again with `substrate models fetch --force`"
    )]
    Checksum { what: String, expected: String, actual: String },

    #[error("{} is not supported ({detail}); supported are BERT-family safetensors for embeddings and Llama-family GGUF for generation", path.display())]
    Unsupported { path: PathBuf, detail: String },

    #[error("the adapter in {} was trained on a base model with sha256 {adapter_base}, but {} has sha256 {model}: pass the model it was trained on with --model, or train an adapter for this one", adapter.display(), model_path.display())]
    AdapterMismatch { adapter: PathBuf, adapter_base: String, model_path: PathBuf, model: String },

    #[error("{}: {detail}", path.display())]
    BadAdapter { path: PathBuf, detail: String },

    #[error(
        "no training texts in {what}: give a JSONL file of {{\"text\": ..., \"source\": ...}} lines, a .txt file, or a directory of them"
    )]
    EmptyTrainingSet { what: String },

    #[error(
        "the prompt is {tokens} tokens but the model's context holds {context} (with room for at least one new token): shorten the prompt"
    )]
    PromptTooLong { tokens: usize, context: usize },

    #[error(
        "training stopped after step {step}; run the same command again to resume from its last checkpoint"
    )]
    Stopped { step: usize },

    #[error("{0}")]
    Invalid(String),

    #[error("{0}")]
    Fetch(String),

    #[error("tokenizer: {0}")]
    Tokenizer(String),

    #[error("chat template: {0}; pass --raw to send the prompt without a template")]
    Template(String),

    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
