//! The inference pass over plain buffers: tokens fed after a KV cache, the logits of the last.
//!
//! It computes what the tensor pass computes, in the same order of operations, on `Vec<f32>`s:
//! RMS norm (its sum of squares in f64, as ggml does), the projections on the quantized kernels
//! with each normed row quantized once for all the projections that read it, interleaved rotary
//! embedding, causal attention per head with a softmax summed in f64, and SiLU-gated feed-forward.
//! Attention and the products spread over rayon's threads.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::{KvCache, Linear, Llama, Proj, Target};
use crate::error::Result;
use crate::quant::{self, Q81Row};

/// Rows of activations and, made the first time a quantized product asks, their Q8_1 form.
struct Rows<'a> {
    x: &'a [f32],
    width: usize,
    quantized: std::cell::OnceCell<Vec<Q81Row>>,
}

impl<'a> Rows<'a> {
    fn new(x: &'a [f32], width: usize) -> Self {
        Self { x, width, quantized: std::cell::OnceCell::new() }
    }

    fn count(&self) -> usize {
        self.x.len() / self.width
    }

    fn quantized(&self) -> &[Q81Row] {
        self.quantized.get_or_init(|| quant::quantize(self.x, self.width))
    }
}

impl Proj {
    /// `x · Wᵀ`, row by row.
    fn rows(&self, x: &Rows<'_>) -> Result<Vec<f32>> {
        let tensor = || Tensor::from_slice(x.x, (x.count(), x.width), &Device::Cpu);
        Ok(match self {
            Self::Quant(w) => w.matmul_quantized(x.quantized()),
            Self::Candle(_) | Self::Frozen(_) => self.forward(&tensor()?)?.flatten_all()?.to_vec1()?,
        })
    }
}

impl Linear {
    fn rows(&self, x: &Rows<'_>) -> Result<Vec<f32>> {
        let mut y = self.w.rows(x)?;
        if let Some(lora) = &self.lora {
            let input = Tensor::from_slice(x.x, (x.count(), x.width), &Device::Cpu)?;
            let delta = input.matmul(&lora.a.t()?)?.matmul(&lora.b.t()?)?.affine(lora.scale, 0.)?;
            for (y, d) in y.iter_mut().zip(delta.flatten_all()?.to_vec1::<f32>()?) {
                *y += d;
            }
        }
        Ok(y)
    }
}

impl Llama {
    /// Feeds `ids` after what `cache` holds (the caller has checked the context) and returns the
    /// logits after the last of them.
    pub(super) fn infer(&self, ids: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
        let c = &self.config;
        let (s, pos, dim) = (ids.len(), cache.len, c.dim);
        let kv_width = c.kv_heads * c.head_dim;
        // Whatever a failed call left after the cache's length is not part of it.
        for (k, v) in &mut cache.layers {
            k.truncate(pos * kv_width);
            v.truncate(pos * kv_width);
        }
        let ids = Tensor::new(ids, &Device::Cpu)?;
        let mut x = self.embed.index_select(&ids, 0)?.flatten_all()?.to_vec1::<f32>()?;
        let mut h = vec![0f32; x.len()];
        for (block, (keys, values)) in self.blocks.iter().zip(&mut cache.layers) {
            rms_norm(&x, &block.attn_norm.values, c.rms_eps, &mut h);
            let normed = Rows::new(&h, dim);
            let proj = |target: Target, rows: &Rows<'_>| block.proj[target as usize].rows(rows);
            let mut q = proj(Target::Q, &normed)?;
            let mut k = proj(Target::K, &normed)?;
            let v = proj(Target::V, &normed)?;
            self.rotate(&mut q, c.heads, pos);
            self.rotate(&mut k, c.kv_heads, pos);
            keys.extend_from_slice(&k);
            values.extend_from_slice(&v);
            let y = self.attend(&q, keys, values, pos);
            let o = proj(Target::O, &Rows::new(&y, dim))?;
            add(&mut x, &o);
            rms_norm(&x, &block.ffn_norm.values, c.rms_eps, &mut h);
            let normed = Rows::new(&h, dim);
            let mut gate = proj(Target::Gate, &normed)?;
            let up = proj(Target::Up, &normed)?;
            for (g, u) in gate.iter_mut().zip(&up) {
                *g = *g / (1. + (-*g).exp()) * u;
            }
            let down = proj(Target::Down, &Rows::new(&gate, c.ffn))?;
            add(&mut x, &down);
        }
        cache.len = pos + s;
        let last = &x[(s - 1) * dim..];
        let mut normed = vec![0f32; dim];
        rms_norm(last, &self.norm.values, c.rms_eps, &mut normed);
        self.output.rows(&Rows::new(&normed, dim))
    }

    /// Interleaved rotary embedding of rows of `heads` vectors, the first row at `pos`.
    fn rotate(&self, x: &mut [f32], heads: usize, pos: usize) {
        self.rotate_by(x, heads, pos, false);
    }

    /// As [`Llama::rotate`]; with `inverse`, by the opposite angles.
    pub(super) fn rotate_by(&self, x: &mut [f32], heads: usize, pos: usize, inverse: bool) {
        let sign = if inverse { -1. } else { 1. };
        let half = self.config.head_dim / 2;
        let (cos, sin) = &self.rope;
        for (i, row) in x.chunks_exact_mut(heads * self.config.head_dim).enumerate() {
            let (cos, sin) = (&cos[(pos + i) * half..][..half], &sin[(pos + i) * half..][..half]);
            for head in row.chunks_exact_mut(self.config.head_dim) {
                for ((pair, &c), &s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
                    let (a, b, s) = (pair[0], pair[1], sign * s);
                    pair[0] = a * c - b * s;
                    pair[1] = a * s + b * c;
                }
            }
        }
    }

    /// Causal attention of query rows (the first at `pos`) over every cached position up to
    /// each, `[rows, heads · head_dim]`.
    fn attend(&self, q: &[f32], keys: &[f32], values: &[f32], pos: usize) -> Vec<f32> {
        let c = &self.config;
        let (hd, heads) = (c.head_dim, c.heads);
        let kv_width = c.kv_heads * hd;
        let group = heads / c.kv_heads;
        let scale = 1. / (hd as f32).sqrt();
        let mut out = vec![0f32; q.len()];
        // One task per query row and head.
        out.par_chunks_mut(hd).enumerate().for_each(|(task, y)| {
            let (row, head) = (task / heads, task % heads);
            let kv = (head / group) * hd;
            let query = &q[task * hd..][..hd];
            let seen = pos + row + 1;
            let mut scores: Vec<f32> =
                (0..seen).map(|j| quant::dot(query, &keys[j * kv_width + kv..][..hd]) * scale).collect();
            let max = scores.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            scores.iter_mut().for_each(|v| *v -= max);
            quant::exp_in_place(&mut scores);
            let sum: f64 = scores.iter().map(|&v| f64::from(v)).sum();
            let norm = (1. / sum) as f32;
            for (j, p) in scores.iter().enumerate() {
                quant::axpy(y, p * norm, &values[j * kv_width + kv..][..hd]);
            }
        });
        out
    }
}

/// `out = x / rms(x) · weight`, row by row (the sum of squares in f64); returns each row's
/// `1 / rms`, which the training pass's backward pass reads.
pub(super) fn rms_norm(x: &[f32], weight: &[f32], eps: f64, out: &mut [f32]) -> Vec<f32> {
    let d = weight.len();
    let mut inv = vec![0f32; x.len() / d];
    out.par_chunks_mut(d).zip(x.par_chunks(d)).zip(inv.par_iter_mut()).for_each(|((dst, row), inv)| {
        let squares: f64 = row.iter().map(|v| f64::from(v * v)).sum();
        *inv = (1. / (squares / d as f64 + eps).sqrt()) as f32;
        for ((o, v), w) in dst.iter_mut().zip(row).zip(weight) {
            *o = v * *inv * w;
        }
    });
    inv
}

fn add(x: &mut [f32], y: &[f32]) {
    for (x, y) in x.iter_mut().zip(y) {
        *x += y;
    }
}
