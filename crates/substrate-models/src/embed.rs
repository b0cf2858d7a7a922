//! Sentence embeddings from a BERT-family model: `config.json`, `model.safetensors` and
//! `tokenizer.json` in one directory, as sentence-transformers saves them.
//!
//! Each text is cut at the model's sequence limit, run through the encoder, mean-pooled over
//! its real tokens (or its first token, when the directory's pooling config says so) and scaled
//! to unit length. Texts are sorted by length and batched; the encoder (`bert.rs`) lays a
//! batch's texts end to end, so no padding is computed. The vectors come back in the order the
//! texts were given.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use rayon::prelude::*;
use tokenizers::{Tokenizer, TruncationParams};

use crate::bert::{Bert, Scratch};
use crate::error::{ModelError, Result};
use crate::quant;

/// How many texts one forward pass takes.
pub const BATCH: usize = 64;

/// A loaded embedding model.
pub struct Embedder {
    model: Bert,
    tokenizer: Tokenizer,
    cls_pooling: bool,
    pub max_tokens: usize,
    pub dim: usize,
    pub path: PathBuf,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("path", &self.path).field("dim", &self.dim).finish()
    }
}

impl Embedder {
    pub fn load(dir: &Path) -> Result<Self> {
        let kind = "embedding model directory (config.json, model.safetensors, tokenizer.json)";
        if !dir.is_dir() {
            return Err(ModelError::Missing { path: dir.to_path_buf(), kind });
        }
        let read = |name: &str| -> Result<Vec<u8>> {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => ModelError::Missing { path, kind },
                _ => ModelError::io(dir.join(name))(e),
            })
        };
        let corrupt = |name: &str, detail: String| ModelError::Corrupt { path: dir.join(name), kind, detail };
        let config: Config = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| corrupt("config.json", format!("not a BERT config: {e}")))?;
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| corrupt("tokenizer.json", e.to_string()))?;
        let max_tokens = sentence_limit(dir).unwrap_or(config.max_position_embeddings);
        // The tokenizer.json sentence-transformers ships pads every text to a fixed length and
        // cuts at 128; padding is done per batch here, and the cut is the model's limit.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_tokens, ..Default::default() }))
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let weights = read("model.safetensors")?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| corrupt("model.safetensors", e.to_string()))?;
        let model = Bert::load(vb, &config).map_err(|e| match e {
            ModelError::Candle(e) => corrupt("model.safetensors", e.to_string()),
            e => e,
        })?;
        Ok(Self {
            model,
            tokenizer,
            cls_pooling: cls_pooling(dir),
            max_tokens,
            dim: config.hidden_size,
            path: dir.to_path_buf(),
        })
    }

    /// How many tokens each text is, as the model reads it (cut at its limit).
    pub fn count_tokens(&self, texts: &[String]) -> Result<Vec<usize>> {
        texts
            .iter()
            .map(|text| {
                self.tokenizer
                    .encode(text.as_str(), true)
                    .map(|e| e.get_ids().len())
                    .map_err(|e| ModelError::Tokenizer(e.to_string()))
            })
            .collect()
    }

    /// One unit-length vector per text, in the order given.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let encoded: Vec<Vec<u32>> = texts
            .par_iter()
            .map(|text| match self.tokenizer.encode(text.as_str(), true) {
                Ok(encoding) => Ok(encoding.get_ids().to_vec()),
                Err(e) => Err(ModelError::Tokenizer(e.to_string())),
            })
            .collect::<Result<_>>()?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encoded[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        // On one of rayon's threads, so that the encoder's parallel loops share the pool's
        // threads rather than being handed over and waited for from outside it.
        rayon::scope(|_| {
            let mut scratch = Scratch::default();
            for batch in order.chunks(BATCH) {
                let sequences: Vec<&[u32]> = batch.iter().map(|&i| encoded[i].as_slice()).collect();
                for (&i, v) in batch.iter().zip(self.embed_batch(&sequences, &mut scratch)?) {
                    out[i] = v;
                }
            }
            Ok::<_, ModelError>(())
        })?;
        Ok(out)
    }

    fn embed_batch(&self, sequences: &[&[u32]], scratch: &mut Scratch) -> Result<Vec<Vec<f32>>> {
        let hidden = self.model.encode(sequences, scratch)?;
        let mut rows = hidden.chunks_exact(self.dim);
        let mut out = Vec::with_capacity(sequences.len());
        for sequence in sequences {
            let mut tokens = rows.by_ref().take(sequence.len());
            let mut pooled = vec![0f32; self.dim];
            match self.cls_pooling {
                true => {
                    if let Some(first) = tokens.next() {
                        pooled.copy_from_slice(first);
                    }
                }
                false => {
                    for row in tokens {
                        quant::axpy(&mut pooled, 1., row);
                    }
                    let n = sequence.len().max(1) as f32;
                    pooled.iter_mut().for_each(|v| *v /= n);
                }
            }
            let norm = pooled.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            pooled.iter_mut().for_each(|v| *v /= norm);
            out.push(pooled);
        }
        Ok(out)
    }
}

/// `max_seq_length` from sentence-transformers' `sentence_bert_config.json`, if present.
fn sentence_limit(dir: &Path) -> Option<usize> {
    let text = std::fs::read(dir.join("sentence_bert_config.json")).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&text).ok()?;
    value.get("max_seq_length")?.as_u64().map(|n| n as usize)
}

/// Whether `1_Pooling/config.json` asks for the first token rather than the mean.
fn cls_pooling(dir: &Path) -> bool {
    let Ok(text) = std::fs::read(dir.join("1_Pooling/config.json")) else { return false };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&text) else { return false };
    value.get("pooling_mode_cls_token").and_then(serde_json::Value::as_bool) == Some(true)
        && value.get("pooling_mode_mean_tokens").and_then(serde_json::Value::as_bool) != Some(true)
}
