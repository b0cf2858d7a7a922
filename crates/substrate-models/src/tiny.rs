//! Tiny randomly initialised models of the real architectures, for tests, written in the real
//! formats: a Llama GGUF with a byte-level BPE vocabulary and a chat template, and a
//! BERT directory (config.json, model.safetensors, tokenizer.json).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::QTensor;
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{ModelError, Result};

/// The tensor types a tiny model can be written in.
pub use candle_core::quantized::GgmlDType;

/// SmolLM2's template, in the shape Hugging Face chat templates take.
pub const CHAT_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a tiny test model.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// GPT-2's reversible map from bytes to printable characters.
fn byte_chars() -> Vec<char> {
    let printable: Vec<u32> = (b'!'..=b'~').chain(0xA1..=0xAC).chain(0xAE..=0xFF).map(u32::from).collect();
    let mut chars = vec!['\0'; 256];
    let mut extra = 0;
    for b in 0..256u32 {
        let c = match printable.contains(&b) {
            true => b,
            false => {
                extra += 1;
                255 + extra
            }
        };
        chars[b as usize] = char::from_u32(c).unwrap_or('?');
    }
    chars
}

pub struct TinyLlama {
    pub path: PathBuf,
    pub vocab: usize,
}

/// Dimensions: 64 wide, 4 heads over 2 key/value heads, 2 layers, 128-wide MLP, context 96.
pub fn llama(dir: &Path, seed: u64, dtype: GgmlDType) -> Result<TinyLlama> {
    llama_with_context(dir, seed, dtype, 96)
}

/// [`llama`] with a longer (or shorter) context, for prompts that carry passages.
pub fn llama_with_context(dir: &Path, seed: u64, dtype: GgmlDType, context: u32) -> Result<TinyLlama> {
    let chars = byte_chars();
    let mut tokens: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
    let space = chars[b' ' as usize].to_string();
    let merge_pairs =
        [("t", "h"), ("th", "e"), (space.as_str(), "t"), ("e", "r"), ("i", "n"), ("a", "n"), ("l", "l")];
    let mut merges = Vec::new();
    for (a, b) in merge_pairs {
        merges.push(format!("{a} {b}"));
        tokens.push(format!("{a}{b}"));
    }
    let mut types = vec![1i32; tokens.len()];
    for special in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] {
        tokens.push(special.to_owned());
        types.push(3);
    }
    let vocab = tokens.len();
    let eos = (vocab - 1) as u32;
    let bos = (vocab - 2) as u32;
    let (dim, heads, kv_heads, ffn, layers) = (64usize, 4u32, 2u32, 128usize, 2usize);

    let mut rng = StdRng::seed_from_u64(seed);
    let mut random = |rows: usize, cols: usize, scale: f32| -> Result<QTensor> {
        let values: Vec<f32> = (0..rows * cols).map(|_| rng.random_range(-scale..scale)).collect();
        let t = Tensor::from_vec(values, (rows, cols), &Device::Cpu)?;
        Ok(QTensor::quantize(&t, dtype)?)
    };
    let ones = |n: usize| -> Result<QTensor> {
        let t = Tensor::ones(n, candle_core::DType::F32, &Device::Cpu)?;
        Ok(QTensor::quantize(&t, GgmlDType::F32)?)
    };
    let kv = dim / heads as usize * kv_heads as usize;
    let mut tensors: Vec<(String, QTensor)> = vec![
        ("token_embd.weight".into(), random(vocab, dim, 0.5)?),
        ("output_norm.weight".into(), ones(dim)?),
    ];
    for l in 0..layers {
        let s = 0.3;
        tensors.push((format!("blk.{l}.attn_norm.weight"), ones(dim)?));
        tensors.push((format!("blk.{l}.ffn_norm.weight"), ones(dim)?));
        tensors.push((format!("blk.{l}.attn_q.weight"), random(dim, dim, s)?));
        tensors.push((format!("blk.{l}.attn_k.weight"), random(kv, dim, s)?));
        tensors.push((format!("blk.{l}.attn_v.weight"), random(kv, dim, s)?));
        tensors.push((format!("blk.{l}.attn_output.weight"), random(dim, dim, s)?));
        tensors.push((format!("blk.{l}.ffn_gate.weight"), random(ffn, dim, s)?));
        tensors.push((format!("blk.{l}.ffn_up.weight"), random(ffn, dim, s)?));
        tensors.push((format!("blk.{l}.ffn_down.weight"), random(dim, ffn, s)?));
    }
    let strings = |v: &[String]| Value::Array(v.iter().map(|s| Value::String(s.clone())).collect());
    let metadata: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("general.name", Value::String("tiny test llama".into())),
        ("llama.embedding_length", Value::U32(dim as u32)),
        ("llama.attention.head_count", Value::U32(heads)),
        ("llama.attention.head_count_kv", Value::U32(kv_heads)),
        ("llama.block_count", Value::U32(layers as u32)),
        ("llama.feed_forward_length", Value::U32(ffn as u32)),
        ("llama.context_length", Value::U32(context)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("llama.rope.freq_base", Value::F32(10_000.)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("smollm".into())),
        ("tokenizer.ggml.tokens", strings(&tokens)),
        ("tokenizer.ggml.merges", strings(&merges)),
        ("tokenizer.ggml.token_type", Value::Array(types.into_iter().map(Value::I32).collect())),
        ("tokenizer.ggml.bos_token_id", Value::U32(bos)),
        ("tokenizer.ggml.eos_token_id", Value::U32(eos)),
        ("tokenizer.chat_template", Value::String(CHAT_TEMPLATE.into())),
    ];
    let path = dir.join(format!("tiny-llama-{seed}.gguf"));
    let mut file = std::fs::File::create(&path).map_err(ModelError::io(&path))?;
    let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut file, &md, &ts)?;
    Ok(TinyLlama { path, vocab })
}

/// A 2-layer, 32-wide BERT with a WordPiece vocabulary of a few English words.
pub fn bert(dir: &Path, seed: u64) -> Result<PathBuf> {
    let dir = dir.join(format!("tiny-bert-{seed}"));
    std::fs::create_dir_all(&dir).map_err(ModelError::io(&dir))?;
    let words = [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "a", "story", "of", "kitchen", "table", "song", "we",
        "sing", "at", "dawn", "teacher", "asks", "class", "why", "##s", "##ing", ".", ",", "?",
    ];
    let vocab: serde_json::Map<String, serde_json::Value> =
        words.iter().enumerate().map(|(i, w)| ((*w).to_owned(), i.into())).collect();
    let special = |id: usize, content: &str| serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true});
    let tokenizer = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(0, "[PAD]"), special(1, "[UNK]"), special(2, "[CLS]"), special(3, "[SEP]")],
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": vocab}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).map_err(ModelError::io(&dir))?;
    let (hidden, layers, inter, positions) = (32usize, 2usize, 64usize, 64usize);
    let config = serde_json::json!({
        "vocab_size": words.len(), "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": 4,
        "intermediate_size": inter, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "max_position_embeddings": positions,
        "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0, "model_type": "bert"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).map_err(ModelError::io(&dir))?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut t = |shape: &[usize], scale: f32| -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(-scale..scale)).collect();
        Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
    };
    let mut w: HashMap<String, Tensor> = HashMap::new();
    let ones = |n: usize| Tensor::ones(n, candle_core::DType::F32, &Device::Cpu);
    let zeros = |n: usize| Tensor::zeros(n, candle_core::DType::F32, &Device::Cpu);
    w.insert("embeddings.word_embeddings.weight".into(), t(&[words.len(), hidden], 1.)?);
    w.insert("embeddings.position_embeddings.weight".into(), t(&[positions, hidden], 0.5)?);
    w.insert("embeddings.token_type_embeddings.weight".into(), t(&[2, hidden], 0.5)?);
    w.insert("embeddings.LayerNorm.weight".into(), ones(hidden)?);
    w.insert("embeddings.LayerNorm.bias".into(), zeros(hidden)?);
    for l in 0..layers {
        let p = format!("encoder.layer.{l}");
        for (name, out, inp) in [
            ("attention.self.query", hidden, hidden),
            ("attention.self.key", hidden, hidden),
            ("attention.self.value", hidden, hidden),
            ("attention.output.dense", hidden, hidden),
            ("intermediate.dense", inter, hidden),
            ("output.dense", hidden, inter),
        ] {
            w.insert(format!("{p}.{name}.weight"), t(&[out, inp], 0.3)?);
            w.insert(format!("{p}.{name}.bias"), t(&[out], 0.1)?);
        }
        for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
            w.insert(format!("{p}.{norm}.weight"), ones(hidden)?);
            w.insert(format!("{p}.{norm}.bias"), zeros(hidden)?);
        }
    }
    candle_core::safetensors::save(&w, dir.join("model.safetensors"))?;
    Ok(dir)
}
