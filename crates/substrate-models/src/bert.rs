//! A BERT encoder over plain buffers, for sentence embeddings.
//!
//! The sequences of a batch are laid end to end, `[Σ len, hidden]`, with no padding: every
//! projection is one matrix product over all their real tokens, and attention runs per sequence
//! over its own tokens only, one sequence per task. The products are the `gemm` crate's (the
//! one candle uses) called on the buffers directly; layer norms, softmax, GELU and the bias
//! additions are loops, spread over rayon's threads, with the vectorized `exp` and GELU of
//! `quant.rs`. The arithmetic is BERT's as Hugging Face's
//! `BertModel` does it (absolute positions, post-norm, exact GELU); a test holds it to
//! candle-transformers' BERT on the same weights.

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct, PositionEmbeddingType};
use rayon::prelude::*;

use crate::error::{ModelError, Result};
use crate::quant::{self, View};

/// A dense layer: weights `[out, in]` as stored, and the bias.
struct Dense {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Dense {
    fn load(vb: &VarBuilder, inp: usize, out: usize) -> Result<Self> {
        Ok(Self {
            weight: vb.get((out, inp), "weight")?.flatten_all()?.to_vec1()?,
            bias: vb.get(out, "bias")?.to_vec1()?,
        })
    }

    /// `y = x · Wᵀ` for rows of `in` floats, without the bias.
    fn product(&self, x: &[f32], y: &mut Vec<f32>) {
        let out = self.bias.len();
        let inp = self.weight.len() / out;
        let rows = x.len() / inp;
        resize(y, rows * out);
        quant::gemm(y, out, View::rows(x, rows, inp), View::rows(&self.weight, out, inp).t(), 1., true);
    }
}

struct LayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    fn load(vb: &VarBuilder, hidden: usize, eps: f64) -> Result<Self> {
        // Old checkpoints name the two `gamma` and `beta`.
        let get = |name: &str, old: &str| -> Result<Vec<f32>> {
            Ok(vb.get(hidden, name).or_else(|_| vb.get(hidden, old))?.to_vec1()?)
        };
        Ok(Self { weight: get("weight", "gamma")?, bias: get("bias", "beta")?, eps: eps as f32 })
    }

    /// Normalizes one row in place.
    fn apply(&self, row: &mut [f32]) {
        let n = row.len() as f32;
        let mean = row.iter().sum::<f32>() / n;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let scale = 1. / (var + self.eps).sqrt();
        for ((v, w), b) in row.iter_mut().zip(&self.weight).zip(&self.bias) {
            *v = (*v - mean) * scale * w + b;
        }
    }
}

struct Layer {
    /// Query, key and value in one product: `[hidden, 3 · hidden]`.
    qkv: Dense,
    attention_out: Dense,
    attention_norm: LayerNorm,
    intermediate: Dense,
    out: Dense,
    out_norm: LayerNorm,
}

/// A BERT-family encoder.
pub struct Bert {
    hidden: usize,
    heads: usize,
    words: Tensor,
    /// Position embeddings plus the embedding of token type 0, `[positions, hidden]`.
    positions: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
}

impl Bert {
    /// Reads the weights under `vb` (with or without a `bert.` or `{model_type}.` prefix).
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        if config.hidden_act != HiddenAct::Gelu {
            return Err(ModelError::Invalid(format!(
                "this model's activation is {:?}, but the encoder runs BERT's exact GELU only: \
                 use a model whose config.json says \"hidden_act\": \"gelu\" (all-MiniLM-L6-v2 does)",
                config.hidden_act
            )));
        }
        if config.position_embedding_type != PositionEmbeddingType::Absolute {
            return Err(ModelError::Invalid(
                "this model uses relative position embeddings, but the encoder runs absolute ones only: \
                 use a model whose config.json has no position_embedding_type or \"absolute\""
                    .into(),
            ));
        }
        let (hidden, heads) = (config.hidden_size, config.num_attention_heads);
        if heads == 0 || hidden % heads != 0 {
            return Err(ModelError::Invalid(format!("{hidden} hidden units over {heads} attention heads")));
        }
        let vb = match vb.contains_tensor("embeddings.word_embeddings.weight") {
            true => vb,
            false => match &config.model_type {
                Some(kind) if vb.contains_tensor(&format!("{kind}.embeddings.word_embeddings.weight")) => {
                    vb.pp(kind)
                }
                _ => vb.pp("bert"),
            },
        };
        let emb = vb.pp("embeddings");
        let words = emb.get((config.vocab_size, hidden), "word_embeddings.weight")?;
        let types = emb.get((config.type_vocab_size, hidden), "token_type_embeddings.weight")?;
        let positions = emb
            .get((config.max_position_embeddings, hidden), "position_embeddings.weight")?
            .broadcast_add(&types.get(0)?)?
            .flatten_all()?
            .to_vec1()?;
        let eps = config.layer_norm_eps;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let vb = vb.pp(format!("encoder.layer.{l}"));
            let attention = vb.pp("attention");
            let part = |name: &str| -> Result<(Tensor, Tensor)> {
                let p = attention.pp("self").pp(name);
                Ok((p.get((hidden, hidden), "weight")?, p.get(hidden, "bias")?))
            };
            let (q, k, v) = (part("query")?, part("key")?, part("value")?);
            let qkv = Dense {
                weight: Tensor::cat(&[&q.0, &k.0, &v.0], 0)?.flatten_all()?.to_vec1()?,
                bias: Tensor::cat(&[&q.1, &k.1, &v.1], 0)?.to_vec1()?,
            };
            layers.push(Layer {
                qkv,
                attention_out: Dense::load(&attention.pp("output").pp("dense"), hidden, hidden)?,
                attention_norm: LayerNorm::load(&attention.pp("output").pp("LayerNorm"), hidden, eps)?,
                intermediate: Dense::load(
                    &vb.pp("intermediate").pp("dense"),
                    hidden,
                    config.intermediate_size,
                )?,
                out: Dense::load(&vb.pp("output").pp("dense"), config.intermediate_size, hidden)?,
                out_norm: LayerNorm::load(&vb.pp("output").pp("LayerNorm"), hidden, eps)?,
            });
        }
        Ok(Self {
            hidden,
            heads,
            words,
            positions,
            embedding_norm: LayerNorm::load(&emb.pp("LayerNorm"), hidden, eps)?,
            layers,
        })
    }

    /// The last hidden states of each sequence, laid end to end: `[Σ len, hidden]`. Each
    /// sequence must fit the position embeddings.
    pub fn encode<'s>(&self, sequences: &[&[u32]], scratch: &'s mut Scratch) -> Result<&'s [f32]> {
        let hidden = self.hidden;
        let limit = self.positions.len() / hidden;
        if let Some(long) = sequences.iter().find(|s| s.len() > limit) {
            return Err(ModelError::PromptTooLong { tokens: long.len(), context: limit });
        }
        let lengths: Vec<usize> = sequences.iter().map(|s| s.len()).collect();
        let ids: Vec<u32> = sequences.concat();
        let words = self.words.index_select(&Tensor::new(ids.as_slice(), &Device::Cpu)?, 0)?;
        let Scratch { x, qkv, context, y, h } = scratch;
        *x = words.flatten_all()?.to_vec1()?;
        split_rows(x, &lengths, hidden).into_par_iter().for_each(|rows| {
            for (i, row) in rows.chunks_exact_mut(hidden).enumerate() {
                for (v, p) in row.iter_mut().zip(&self.positions[i * hidden..]) {
                    *v += p;
                }
                self.embedding_norm.apply(row);
            }
        });
        for layer in &self.layers {
            layer.qkv.product(x, qkv);
            add_bias(qkv, &layer.qkv.bias);
            self.attend(qkv, &lengths, context);
            layer.attention_out.product(context, y);
            residual_norm(y, &layer.attention_out.bias, x, &layer.attention_norm);
            layer.intermediate.product(y, h);
            let width = layer.intermediate.bias.len();
            h.par_chunks_mut(width).for_each(|row| {
                for (v, b) in row.iter_mut().zip(&layer.intermediate.bias) {
                    *v += b;
                }
                quant::gelu_in_place(row);
            });
            layer.out.product(h, x);
            residual_norm(x, &layer.out.bias, y, &layer.out_norm);
        }
        Ok(x)
    }

    /// Scaled dot-product attention of each sequence over its own tokens: `qkv` rows hold
    /// query, key and value; the result, `[Σ len, hidden]`, goes to `out`.
    fn attend(&self, qkv: &[f32], lengths: &[usize], out: &mut Vec<f32>) {
        let (hidden, heads) = (self.hidden, self.heads);
        let hd = hidden / heads;
        let scale = 1. / (hd as f32).sqrt();
        resize(out, qkv.len() / 3);
        let starts: Vec<usize> =
            lengths.iter().scan(0, |at, &l| Some(std::mem::replace(at, *at + l))).collect();
        split_rows(out, lengths, hidden).into_par_iter().zip(starts).for_each(|(out, start)| {
            let len = out.len() / hidden;
            let rows = &qkv[start * 3 * hidden..(start + len) * 3 * hidden];
            // Head `h`'s queries, keys or values: `[len, hd]` inside the rows.
            let part = |at: usize| View {
                data: &rows[at..],
                rows: len,
                cols: hd,
                row_stride: 3 * hidden,
                col_stride: 1,
            };
            let mut scores = vec![0f32; len * len];
            for head in 0..heads {
                let at = head * hd;
                quant::gemm(&mut scores, len, part(at), part(hidden + at).t(), scale, false);
                for row in scores.chunks_exact_mut(len) {
                    quant::softmax_in_place(row);
                }
                quant::gemm(
                    &mut out[at..],
                    hidden,
                    View::rows(&scores, len, len),
                    part(2 * hidden + at),
                    1.,
                    false,
                );
            }
        });
    }
}

/// The buffers of one pass, kept for the next so that they are not mapped and faulted in afresh
/// for every batch.
#[derive(Default)]
pub struct Scratch {
    x: Vec<f32>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    y: Vec<f32>,
    h: Vec<f32>,
}

/// `len` zeros in `v`, reusing its allocation.
fn resize(v: &mut Vec<f32>, len: usize) {
    v.clear();
    v.resize(len, 0.);
}

/// Each sequence's rows of `x`, for sequences of `lengths` rows of `width` laid end to end.
fn split_rows<'a>(mut x: &'a mut [f32], lengths: &[usize], width: usize) -> Vec<&'a mut [f32]> {
    let mut pieces = Vec::with_capacity(lengths.len());
    for &l in lengths {
        let (piece, tail) = std::mem::take(&mut x).split_at_mut(l * width);
        pieces.push(piece);
        x = tail;
    }
    pieces
}

fn add_bias(x: &mut [f32], bias: &[f32]) {
    x.par_chunks_mut(bias.len()).for_each(|row| {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    });
}

/// `y = norm(y + bias + residual)`, row by row.
fn residual_norm(y: &mut [f32], bias: &[f32], residual: &[f32], norm: &LayerNorm) {
    y.par_chunks_mut(bias.len()).zip(residual.par_chunks(bias.len())).for_each(|(row, res)| {
        for ((v, b), r) in row.iter_mut().zip(bias).zip(res) {
            *v += b + r;
        }
        norm.apply(row);
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_transformers::models::bert::BertModel;

    #[test]
    fn the_encoder_gives_candle_transformers_hidden_states() {
        let dir = tempfile::tempdir().unwrap();
        let path = crate::tiny::bert(dir.path(), 3).unwrap();
        let config: Config =
            serde_json::from_slice(&std::fs::read(path.join("config.json")).unwrap()).unwrap();
        let weights = std::fs::read(path.join("model.safetensors")).unwrap();
        let vb = || {
            VarBuilder::from_buffered_safetensors(weights.clone(), candle_core::DType::F32, &Device::Cpu)
                .unwrap()
        };
        let ours = Bert::load(vb(), &config).unwrap();
        let theirs = BertModel::load(vb(), &config).unwrap();
        let sequences: [&[u32]; 3] = [&[1, 5, 9, 2], &[1, 7, 2], &[1, 3, 4, 8, 6, 5, 2]];
        let mut scratch = Scratch::default();
        let hidden = ours.encode(&sequences, &mut scratch).unwrap();
        let mut offset = 0;
        for s in sequences {
            let ids = Tensor::new(s, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
            let expected = theirs.forward(&ids, &ids.zeros_like().unwrap(), None).unwrap();
            let expected = expected.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let got = &hidden[offset..offset + expected.len()];
            let diff = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-4, "hidden states differ by {diff}");
            offset += expected.len();
        }
        assert_eq!(offset, hidden.len());
    }
}
