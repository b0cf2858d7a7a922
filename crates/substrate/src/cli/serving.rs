//! What a node serves (models, the search index) and the commands that ask it: `search`, `chat`.

use std::path::PathBuf;

use clap::Args;

use super::{KeyArgs, NodeArgs};

/// What a node serves through the OpenAI-compatible routes: each overrides `[serving]`.
#[derive(Args, Debug, Clone)]
pub struct ServingArgs {
    /// Serve the default models (or those named below) on /v1/models, /v1/embeddings,
    /// /v1/chat/completions and /v1/completions.
    #[arg(long)]
    pub serve_models: bool,
    /// The embedding model's directory. Default: all-MiniLM-L6-v2 under the models directory.
    #[arg(long)]
    pub embedding_model: Option<PathBuf>,
    /// The generation model's GGUF file. Default: SmolLM2-135M-Instruct under the models directory.
    #[arg(long)]
    pub generation_model: Option<PathBuf>,
    /// Where `models fetch` put the defaults. Default: $SUBSTRATE_MODELS, else DATA_DIR/models.
    #[arg(long = "serve-models-dir")]
    pub models_dir: Option<PathBuf>,
    /// Generations decoded at once; more wait in a queue of `--queue`, and past it get 429.
    #[arg(long)]
    pub slots: Option<usize>,
    #[arg(long)]
    pub queue: Option<usize>,
    /// Keep a search index of the public and commons texts (DATA_DIR/search) and answer
    /// /v1/search: BM25, and vectors too when the embedding model is there.
    #[arg(long)]
    pub search: bool,
    /// Also answer generations and embeddings that name nobody (no signature, no API token),
    /// charging nobody: this machine's time, given away. Members are always charged.
    #[arg(long)]
    pub open_inference: bool,
    /// How often the tokens members used are reported to the log, in seconds. Default 30.
    #[arg(long, value_name = "SECONDS")]
    pub usage_report_seconds: Option<u64>,
}

/// Search the commons' public texts on a node that keeps an index (`serve --search`): full
/// text and, where the node has the embedding model, meaning, fused into one ranking.
#[derive(Args, Debug)]
pub struct SearchArgs {
    /// What to look for.
    pub query: String,
    /// Only texts of this register.
    #[arg(long)]
    pub register: Option<String>,
    /// Only texts in this language (its tag, e.g. en).
    #[arg(long)]
    pub language: Option<String>,
    /// Only texts deposited by this did.
    #[arg(long)]
    pub depositor: Option<String>,
    /// hybrid, bm25 or vector. Default: hybrid where the node has vectors, else bm25.
    #[arg(long)]
    pub mode: Option<String>,
    /// How many texts, 1 to 100.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// Sign the request with your key (RFC 9421): a verified member finds `commons` texts too.
    #[arg(long)]
    pub member: bool,
    /// Print the raw JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Ask the node's generation model, answered from the commons' texts (its `--search` index)
/// and streamed as it comes, with the passages it drew on listed under the answer.
#[derive(Args, Debug)]
pub struct ChatArgs {
    /// The question.
    pub question: String,
    /// The generation model. Default: the default model's name.
    #[arg(long)]
    pub model: Option<String>,
    /// Passages retrieved from the commons, 1 to 8.
    #[arg(long, default_value_t = 3)]
    pub passages: usize,
    /// Only passages of this register.
    #[arg(long)]
    pub register: Option<String>,
    /// Ask the model alone, without retrieving from the commons.
    #[arg(long)]
    pub no_retrieval: bool,
    #[arg(long, default_value_t = 256)]
    pub max_tokens: u32,
    /// 0 picks the likeliest token each time.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Sign the request with your key (RFC 9421). `chat` signs whenever it finds a key (--key,
    /// or your default identity): the commons' models answer its members, who pay from their
    /// daily floor and then their credits, and a member's answer may draw on `commons` texts.
    #[arg(long)]
    pub member: bool,
    #[command(flatten)]
    pub key: KeyArgs,
    #[command(flatten)]
    pub node: NodeArgs,
}
