//! Models on CPU in pure Rust (candle): sentence embeddings from BERT-family safetensors,
//! generation from Llama-family GGUF files, and LoRA fine-tuning whose adapters PEFT can load.
//!
//! This is the only crate that knows candle. It knows nothing of the ledger: the job system
//! hands it texts, weights and paths, and records what comes back.

mod bert;
pub mod embed;
pub mod error;
pub mod fetch;
pub mod finetune;
pub mod generate;
pub mod llama;
pub mod lora;
mod quant;
pub mod tiny;
pub mod tokenizer;

pub use embed::Embedder;
pub use error::{ModelError, Result};
pub use generate::{Generation, Message, Sampling, apply_chat_template, generate, generate_while};
pub use llama::{Llama, LlamaConfig, Target, Weights};
pub use lora::{Adapter, LoraConfig};
