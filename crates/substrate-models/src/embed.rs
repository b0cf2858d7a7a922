//! Sentence embeddings from a BERT-family model: `config.json`, `model.safetensors` and
//! `tokenizer.json` in one directory, as sentence-transformers saves them.
//!
//! Each text is cut at the model's sequence limit, run through the encoder, mean-pooled over
//! its real tokens (or its first token, when the directory's pooling config says so) and scaled
//! to unit length. Texts are sorted by length and batched so that little padding is computed;
//! the vectors come back in the order the texts were given.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Tokenizer, TruncationParams};

use crate::error::{ModelError, Result};

/// How many texts one forward pass takes.
pub const BATCH: usize = 32;

/// A loaded embedding model.
pub struct Embedder {
    model: BertModel,
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
        let model = BertModel::load(vb, &config).map_err(|e| corrupt("model.safetensors", e.to_string()))?;
        Ok(Self {
            model,
            tokenizer,
            cls_pooling: cls_pooling(dir),
            max_tokens,
            dim: config.hidden_size,
            path: dir.to_path_buf(),
        })
    }

    /// One unit-length vector per text, in the order given.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let mut encoded = Vec::with_capacity(texts.len());
        for text in texts {
            let encoding = self
                .tokenizer
                .encode(text.as_str(), true)
                .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
            encoded.push(encoding.get_ids().to_vec());
        }
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encoded[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        for batch in order.chunks(BATCH) {
            let vectors = self.embed_batch(batch.iter().map(|&i| encoded[i].as_slice()))?;
            for (&i, v) in batch.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn embed_batch<'a>(
        &self,
        ids: impl ExactSizeIterator<Item = &'a [u32]> + Clone,
    ) -> Result<Vec<Vec<f32>>> {
        let n = ids.len();
        let width = ids.clone().map(<[u32]>::len).max().unwrap_or(0).max(1);
        let mut flat = Vec::with_capacity(n * width);
        let mut mask = Vec::with_capacity(n * width);
        for row in ids {
            flat.extend_from_slice(row);
            flat.extend(std::iter::repeat_n(0, width - row.len()));
            mask.extend(std::iter::repeat_n(1u32, row.len()));
            mask.extend(std::iter::repeat_n(0u32, width - row.len()));
        }
        let device = Device::Cpu;
        let ids = Tensor::from_vec(flat, (n, width), &device)?;
        let mask = Tensor::from_vec(mask, (n, width), &device)?;
        let types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        let pooled = match self.cls_pooling {
            true => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            false => {
                let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                hidden.broadcast_mul(&m)?.sum(1)?.broadcast_div(&m.sum(1)?.clamp(1e-9, f64::MAX)?)?
            }
        };
        let norm = pooled.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        Ok(pooled.broadcast_div(&norm)?.to_vec2::<f32>()?)
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
