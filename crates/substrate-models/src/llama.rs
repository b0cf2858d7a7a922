//! A Llama-family decoder read from a GGUF file: the forward pass behind generation and LoRA
//! training, three ways.
//!
//! The pass over candle tensors runs whole sequences without a cache. With `differentiable`,
//! the weights dequantized to f32 and only ops that record gradients are used, because candle's
//! fused kernels and quantized matmuls record none; this is the reference that candle's autograd
//! differentiates in the tests.
//!
//! Generation feeds tokens after a KV cache through a pass over plain buffers
//! (`llama/infer.rs`), which does the same arithmetic without allocating a tensor per op: at one
//! token per call, candle's per-op costs were as large as the products themselves. Training runs
//! a third pass over buffers with hand-written backward passes (`llama/grad.rs`): through
//! candle's op-by-op graph training ran at 0.72× PyTorch + PEFT's speed, this pass at 0.98× on
//! the same `gemm` kernels (BENCHMARKS.md). Tests hold the cached pass to the
//! tensor pass's logits, and the training pass to candle autograd's loss and gradients.
//!
//! GGUF keeps llama.cpp's layout: the rows of the query and key projections are permuted so that
//! rotary embedding rotates adjacent pairs (`rope_i`). Hugging Face's layout rotates halves.
//! [`hf_rows`] and [`gguf_rows`] convert between the two for whatever is stored per output row.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{D, DType, Device, Module, Tensor};

use crate::error::{ModelError, Result};
use crate::quant::QMatrix;
use crate::tokenizer::{GgufTokenizer, metadata_string};

mod grad;
mod infer;
mod train;

pub use grad::{Gradients, TokenBatch};
use train::Frozen;

/// The shape of a Llama model, from its GGUF metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub vocab: usize,
    pub dim: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub rms_eps: f64,
    pub rope_base: f32,
    /// The longest sequence the model was trained for, in tokens.
    pub context: usize,
}

/// How the projection weights are held in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    /// Keep each tensor's type; Q4_1 and Q8_0 run on this crate's kernels, and Q5_0 and Q5_1,
    /// which candle has no SIMD kernel for, are re-quantized to Q8_0.
    Auto,
    /// Exactly as in the file.
    Keep,
    /// Re-quantize every quantized projection to Q8_0.
    Q8_0,
    /// Re-quantize every quantized projection to Q4_0.
    Q4_0,
    /// Dequantize everything to f32: for training, where gradients must flow.
    Dense,
}

impl Weights {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "auto" => Self::Auto,
            "keep" => Self::Keep,
            "q8_0" => Self::Q8_0,
            "q4_0" => Self::Q4_0,
            "f32" => Self::Dense,
            _ => return None,
        })
    }
}

/// A projection a LoRA adapter can attach to, named as PEFT names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Target {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl Target {
    pub const ALL: [Target; 7] = [Self::Q, Self::K, Self::V, Self::O, Self::Gate, Self::Up, Self::Down];

    /// `q`, `q_proj`, `gate`, `gate_proj`, …
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.strip_suffix("_proj").unwrap_or(s);
        Self::ALL.into_iter().find(|t| t.peft_name().strip_suffix("_proj") == Some(s))
    }

    /// The module name in a Hugging Face Llama: `q_proj`, `down_proj`, …
    pub fn peft_name(self) -> &'static str {
        match self {
            Self::Q => "q_proj",
            Self::K => "k_proj",
            Self::V => "v_proj",
            Self::O => "o_proj",
            Self::Gate => "gate_proj",
            Self::Up => "up_proj",
            Self::Down => "down_proj",
        }
    }

    /// The parent module in a Hugging Face Llama layer.
    pub fn peft_parent(self) -> &'static str {
        match self {
            Self::Q | Self::K | Self::V | Self::O => "self_attn",
            Self::Gate | Self::Up | Self::Down => "mlp",
        }
    }

    fn gguf_name(self) -> &'static str {
        match self {
            Self::Q => "attn_q",
            Self::K => "attn_k",
            Self::V => "attn_v",
            Self::O => "attn_output",
            Self::Gate => "ffn_gate",
            Self::Up => "ffn_up",
            Self::Down => "ffn_down",
        }
    }
}

/// A low-rank update `scale · B·A` added to a projection. `a` is `[rank, in]` and `b` is
/// `[out, rank]`, in the GGUF row order of the projection.
#[derive(Clone, Debug)]
pub struct Lora {
    pub a: Tensor,
    pub b: Tensor,
    pub scale: f64,
}

/// A projection's weights: candle's quantized or dense matmul, this crate's Q4_1 and Q8_0
/// kernels, or frozen f32 weights for training.
#[derive(Debug)]
enum Proj {
    Candle(QMatMul),
    Quant(QMatrix),
    Frozen(Frozen),
}

impl Proj {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Candle(w) => w.forward(x)?,
            Self::Quant(w) => w.forward(&x.contiguous()?)?,
            Self::Frozen(w) => x.contiguous()?.apply_op1(w.clone())?,
        })
    }
}

#[derive(Debug)]
struct Linear {
    w: Proj,
    out: usize,
    inp: usize,
    lora: Option<Lora>,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.w.forward(x)?;
        let Some(lora) = &self.lora else { return Ok(y) };
        let (b, s, _) = x.dims3()?;
        let x = x.reshape((b * s, self.inp))?;
        let delta = x.matmul(&lora.a.t()?)?.matmul(&lora.b.t()?)?.affine(lora.scale, 0.)?;
        Ok((y + delta.reshape((b, s, self.out))?)?)
    }
}

/// An RMS norm's weights, as a tensor and as plain floats.
#[derive(Debug)]
struct Norm {
    tensor: Tensor,
    values: Vec<f32>,
}

impl Norm {
    fn new(tensor: Tensor) -> Result<Self> {
        let values = tensor.to_vec1::<f32>()?;
        Ok(Self { tensor, values })
    }
}

#[derive(Debug)]
struct Block {
    attn_norm: Norm,
    ffn_norm: Norm,
    /// Indexed by `Target as usize`.
    proj: Vec<Linear>,
}

/// The attention keys and values seen so far: per layer, position by position, each position
/// the key/value heads' vectors one after another.
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<(Vec<f32>, Vec<f32>)>,
    len: usize,
}

/// Positions the cache has room for before its first growth.
const KV_START: usize = 256;

impl KvCache {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A Llama model with its tokenizer, loaded from one GGUF file.
#[derive(Debug)]
pub struct Llama {
    pub config: LlamaConfig,
    pub tokenizer: GgufTokenizer,
    /// `tokenizer.chat_template` from the file, if it has one.
    pub chat_template: Option<String>,
    pub path: PathBuf,
    embed: Tensor,
    blocks: Vec<Block>,
    norm: Norm,
    output: Proj,
    cos: Tensor,
    sin: Tensor,
    /// `cos` and `sin` as plain floats, `[context, head_dim / 2]`.
    rope: (Vec<f32>, Vec<f32>),
}

impl Llama {
    pub fn load(path: &Path, weights: Weights) -> Result<Self> {
        let kind = "GGUF model";
        let corrupt = |detail: String| ModelError::Corrupt { path: path.to_path_buf(), kind, detail };
        let file = File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ModelError::Missing { path: path.to_path_buf(), kind },
            _ => ModelError::io(path)(e),
        })?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| corrupt(e.to_string()))?;
        let arch = metadata_string(&content, "general.architecture").unwrap_or("?");
        if arch != "llama" {
            return Err(ModelError::Unsupported {
                path: path.to_path_buf(),
                detail: format!("architecture `{arch}`; generation reads Llama-family GGUF files"),
            });
        }
        let number = |key: &str| -> Result<usize> {
            let value = content
                .metadata
                .get(&format!("llama.{key}"))
                .ok_or_else(|| corrupt(format!("no llama.{key} in its metadata")))?;
            Ok(value
                .to_u32()
                .or_else(|_| value.to_u64().map(|v| v as u32))
                .map_err(|e| corrupt(e.to_string()))? as usize)
        };
        let float = |key: &str, default: f32| -> f32 {
            content.metadata.get(&format!("llama.{key}")).and_then(|v| v.to_f32().ok()).unwrap_or(default)
        };
        let dim = number("embedding_length")?;
        let heads = number("attention.head_count")?;
        let kv_heads = number("attention.head_count_kv").unwrap_or(heads);
        let head_dim = dim / heads;
        let mut config = LlamaConfig {
            vocab: 0,
            dim,
            layers: number("block_count")?,
            heads,
            kv_heads,
            head_dim,
            ffn: number("feed_forward_length")?,
            rms_eps: f64::from(float("attention.layer_norm_rms_epsilon", 1e-5)),
            rope_base: float("rope.freq_base", 10_000.),
            context: number("context_length")?,
        };
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 || head_dim % 2 != 0 {
            return Err(corrupt(format!(
                "{heads} attention heads over {kv_heads} key/value heads of width {head_dim}"
            )));
        }
        let tokenizer = GgufTokenizer::from_gguf(path, &content)?;
        let device = Device::Cpu;
        let mut tensor = |name: &str| -> Result<QTensor> {
            content.tensor(&mut reader, name, &device).map_err(|e| corrupt(format!("tensor {name}: {e}")))
        };
        let embed_q = tensor("token_embd.weight")?;
        let embed = embed_q.dequantize(&device)?;
        config.vocab = embed.dim(0)?;
        let norm = Norm::new(tensor("output_norm.weight")?.dequantize(&device)?)?;
        let output = match content.tensor_infos.contains_key("output.weight") {
            true => tensor("output.weight")?,
            false => embed_q,
        };
        let output = matmul(output, weights)?;
        let mut blocks = Vec::with_capacity(config.layers);
        for layer in 0..config.layers {
            let mut proj = Vec::with_capacity(Target::ALL.len());
            for target in Target::ALL {
                let qt = tensor(&format!("blk.{layer}.{}.weight", target.gguf_name()))?;
                let (out, inp) = qt.shape().dims2()?;
                proj.push(Linear { w: matmul(qt, weights)?, out, inp, lora: None });
            }
            blocks.push(Block {
                attn_norm: Norm::new(tensor(&format!("blk.{layer}.attn_norm.weight"))?.dequantize(&device)?)?,
                ffn_norm: Norm::new(tensor(&format!("blk.{layer}.ffn_norm.weight"))?.dequantize(&device)?)?,
                proj,
            });
        }
        let (cos, sin) = rope_tables(head_dim, config.rope_base, config.context, &device)?;
        let rope = (cos.flatten_all()?.to_vec1::<f32>()?, sin.flatten_all()?.to_vec1::<f32>()?);
        Ok(Self {
            config,
            tokenizer,
            chat_template: metadata_string(&content, "tokenizer.chat_template").map(str::to_owned),
            path: path.to_path_buf(),
            embed,
            blocks,
            norm,
            output,
            cos,
            sin,
            rope,
        })
    }

    pub fn new_cache(&self) -> KvCache {
        let room = KV_START.min(self.config.context) * self.config.kv_heads * self.config.head_dim;
        let layer = || (Vec::with_capacity(room), Vec::with_capacity(room));
        KvCache { layers: (0..self.config.layers).map(|_| layer()).collect(), len: 0 }
    }

    /// `[out, in]` of a projection.
    pub fn projection_shape(&self, target: Target) -> (usize, usize) {
        let linear = &self.blocks[0].proj[target as usize];
        (linear.out, linear.inp)
    }

    pub fn set_lora(&mut self, layer: usize, target: Target, lora: Option<Lora>) {
        self.blocks[layer].proj[target as usize].lora = lora;
    }

    /// Feeds `ids` after what `cache` holds and returns the logits of the last one, `[vocab]`.
    pub fn forward(&self, ids: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
        if ids.is_empty() {
            return Err(ModelError::Invalid("nothing to feed the model: the prompt is empty".into()));
        }
        if cache.len + ids.len() > self.config.context {
            return Err(ModelError::PromptTooLong {
                tokens: cache.len + ids.len(),
                context: self.config.context,
            });
        }
        // On one of rayon's threads, so that the products' tasks are shared with the other
        // threads in the pool rather than handed over and waited for from outside it.
        rayon::scope(|_| self.infer(ids, cache))
    }

    /// The logits at every position of a batch `[b, s]` of ids, `[b, s, vocab]`, with no cache.
    /// With `differentiable`, only ops that record gradients are used.
    pub fn logits(&self, ids: &Tensor, differentiable: bool) -> Result<Tensor> {
        let hidden = self.run(ids, differentiable)?;
        self.output.forward(&hidden)
    }

    fn run(&self, ids: &Tensor, train: bool) -> Result<Tensor> {
        let c = &self.config;
        let (b, s) = ids.dims2()?;
        let (pos, kv_len) = (0, s);
        let mut x = self.embed.index_select(&ids.flatten_all()?, 0)?.reshape((b, s, c.dim))?;
        let mask = match s {
            1 => None,
            _ => Some(causal_mask(s, pos)?),
        };
        let cos = self.cos.narrow(0, pos, s)?;
        let sin = self.sin.narrow(0, pos, s)?;
        let rep = c.heads / c.kv_heads;
        let scale = 1. / (c.head_dim as f64).sqrt();
        for block in &self.blocks {
            let h = rms_norm(&x, &block.attn_norm.tensor, c.rms_eps, train)?;
            let split = |t: Tensor, n: usize| -> Result<Tensor> {
                Ok(t.reshape((b, s, n, c.head_dim))?.transpose(1, 2)?.contiguous()?)
            };
            let q = split(block.proj[Target::Q as usize].forward(&h)?, c.heads)?;
            let k = split(block.proj[Target::K as usize].forward(&h)?, c.kv_heads)?;
            let v = split(block.proj[Target::V as usize].forward(&h)?, c.kv_heads)?;
            let q = rope(&q, &cos, &sin, train)?;
            let k = rope(&k, &cos, &sin, train)?;
            // Query heads share key/value heads in groups of `rep`: head h reads kv head h / rep,
            // so the queries of one group multiply the same keys without copying them.
            let att = (q.reshape((b, c.kv_heads, rep * s, c.head_dim))?.matmul(&k.t()?)? * scale)?;
            let att = att.reshape((b, c.heads, s, kv_len))?;
            let att = match &mask {
                Some(mask) => att.broadcast_add(mask)?,
                None => att,
            };
            let att = match train {
                true => candle_nn::ops::softmax(&att, D::Minus1)?,
                false => candle_nn::ops::softmax_last_dim(&att)?,
            };
            let y = att.reshape((b, c.kv_heads, rep * s, kv_len))?.matmul(&v)?;
            let y = y.reshape((b, c.heads, s, c.head_dim))?.transpose(1, 2)?.reshape((b, s, c.dim))?;
            let x1 = (block.proj[Target::O as usize].forward(&y)? + &x)?;
            let h = rms_norm(&x1, &block.ffn_norm.tensor, c.rms_eps, train)?;
            let gate = candle_nn::ops::silu(&block.proj[Target::Gate as usize].forward(&h)?)?;
            let up = block.proj[Target::Up as usize].forward(&h)?;
            x = (block.proj[Target::Down as usize].forward(&(gate * up)?)? + x1)?;
        }
        rms_norm(&x, &self.norm.tensor, c.rms_eps, train)
    }
}

fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64, train: bool) -> Result<Tensor> {
    Ok(match train {
        true => candle_nn::ops::rms_norm_slow(x, weight, eps as f32)?,
        false => candle_nn::ops::rms_norm(x, weight, eps as f32)?,
    })
}

fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, train: bool) -> Result<Tensor> {
    Ok(match train {
        true => candle_nn::rotary_emb::rope_i_slow(x, cos, sin)?,
        false => candle_nn::rotary_emb::rope_i(x, cos, sin)?,
    })
}

/// `[s, pos + s]`: 0 where query i may attend key j, minus infinity after it.
fn causal_mask(s: usize, pos: usize) -> Result<Tensor> {
    let kv_len = pos + s;
    let mask: Vec<f32> = (0..s)
        .flat_map(|i| (0..kv_len).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0. }))
        .collect();
    Ok(Tensor::from_vec(mask, (s, kv_len), &Device::Cpu)?)
}

fn rope_tables(head_dim: usize, base: f32, context: usize, device: &Device) -> Result<(Tensor, Tensor)> {
    let inv: Vec<f32> =
        (0..head_dim).step_by(2).map(|i| 1. / base.powf(i as f32 / head_dim as f32)).collect();
    let inv = Tensor::from_vec(inv, (1, head_dim / 2), device)?;
    let positions =
        Tensor::arange(0u32, context as u32, device)?.to_dtype(DType::F32)?.reshape((context, 1))?;
    let angles = positions.matmul(&inv)?;
    Ok((angles.cos()?, angles.sin()?))
}

fn matmul(qt: QTensor, weights: Weights) -> Result<Proj> {
    use GgmlDType as G;
    let dtype = qt.dtype();
    let quantized = !matches!(dtype, G::F32 | G::F16 | G::BF16);
    let target = match weights {
        Weights::Dense => return Ok(Proj::Frozen(Frozen::new(&qt.dequantize(&Device::Cpu)?)?)),
        Weights::Keep => None,
        Weights::Auto => matches!(dtype, G::Q5_0 | G::Q5_1).then_some(G::Q8_0),
        Weights::Q8_0 => quantized.then_some(G::Q8_0),
        Weights::Q4_0 => quantized.then_some(G::Q4_0),
    };
    let qt = match target {
        Some(target) if target != dtype => QTensor::quantize(&qt.dequantize(&Device::Cpu)?, target)?,
        _ => qt,
    };
    match QMatrix::from_qtensor(&qt)? {
        Some(q) => Ok(Proj::Quant(q)),
        None => Ok(Proj::Candle(QMatMul::from_qtensor(qt)?)),
    }
}

/// Rows in GGUF order (per head: pairs interleaved) to Hugging Face order (per head: halves).
pub fn hf_rows(t: &Tensor, heads: usize) -> Result<Tensor> {
    let (rows, cols) = t.dims2()?;
    let half = rows / heads / 2;
    Ok(t.reshape((heads, half, 2, cols))?.transpose(1, 2)?.contiguous()?.reshape((rows, cols))?)
}

/// The inverse of [`hf_rows`]: the permutation llama.cpp applies when converting.
pub fn gguf_rows(t: &Tensor, heads: usize) -> Result<Tensor> {
    let (rows, cols) = t.dims2()?;
    let half = rows / heads / 2;
    Ok(t.reshape((heads, 2, half, cols))?.transpose(1, 2)?.contiguous()?.reshape((rows, cols))?)
}
