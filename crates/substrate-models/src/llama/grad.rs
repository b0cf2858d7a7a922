//! The training pass over plain buffers: the loss of a batch and its gradient for every LoRA
//! factor, with hand-written backward passes.
//!
//! The base weights are frozen, so the backward pass needs the gradient of each product for its
//! input only (`dy · W`), and the factors' own gradients. Each block keeps what its backward
//! pass reads (its input, normed rows and inverse RMS, queries, keys and values after rotation,
//! the attention output, the gate and up products, each factor's `x · Aᵀ`); attention
//! probabilities are recomputed per head in the backward pass instead of being kept, as flash
//! attention does. The output product, softmax and loss run over a few rows at a time, their
//! gradient taken on the spot, so the whole vocabulary's logits are never held for every
//! position at once.
//!
//! A test holds the loss and every factor's gradient to candle's autograd through the
//! differentiable tensor pass.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::{Block, Linear, Llama, Proj, Target, infer};
use crate::error::{ModelError, Result};
use crate::quant::{self, View};

/// Token windows for one step: `rows` sequences of `len` positions, row-major.
#[derive(Clone, Debug)]
pub struct TokenBatch {
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
    /// 1 where the target counts towards the loss, 0 for padding.
    pub mask: Vec<f32>,
    pub rows: usize,
    pub len: usize,
}

/// The mean loss of a batch and the gradient of each LoRA factor, `(∂A, ∂B)` by layer and
/// projection, shaped as the factors.
#[derive(Debug)]
pub struct Gradients {
    pub loss: f32,
    pub factors: BTreeMap<(usize, Target), (Vec<f32>, Vec<f32>)>,
}

/// Output rows whose logits are computed at once.
const OUTPUT_ROWS: usize = 128;

/// A projection as the training pass uses it: frozen `[out, in]` weights and, if attached, its
/// factors as plain floats.
struct Dense<'a> {
    w: &'a [f32],
    out: usize,
    inp: usize,
    lora: Option<Factors>,
}

struct Factors {
    a: Vec<f32>,
    b: Vec<f32>,
    rank: usize,
    scale: f32,
}

impl<'a> Dense<'a> {
    fn new(linear: &'a Linear, what: &str) -> Result<Self> {
        let Proj::Frozen(w) = &linear.w else { return Err(not_dense(what)) };
        let lora = match &linear.lora {
            None => None,
            Some(l) => Some(Factors {
                rank: l.a.dim(0)?,
                a: l.a.flatten_all()?.to_vec1()?,
                b: l.b.flatten_all()?.to_vec1()?,
                scale: l.scale as f32,
            }),
        };
        Ok(Self { w: w.values(), out: linear.out, inp: linear.inp, lora })
    }

    /// `x · Wᵀ + scale · (x · Aᵀ) · Bᵀ` for `n` rows, and `x · Aᵀ` for the backward pass.
    fn forward(&self, x: &[f32], n: usize) -> (Vec<f32>, Option<Vec<f32>>) {
        let mut y = vec![0f32; n * self.out];
        let x = View::rows(x, n, self.inp);
        quant::gemm(&mut y, self.out, x, View::rows(self.w, self.out, self.inp).t(), 1., true);
        let Some(f) = &self.lora else { return (y, None) };
        let mut u = vec![0f32; n * f.rank];
        quant::gemm(&mut u, f.rank, x, View::rows(&f.a, f.rank, self.inp).t(), 1., true);
        let b = View::rows(&f.b, self.out, f.rank).t();
        quant::gemm_add(&mut y, self.out, View::rows(&u, n, f.rank), b, f.scale, true);
        (y, Some(u))
    }

    /// Adds `∂loss/∂x` to `dx` for the gradient `dy` of the output, and returns the factors'
    /// gradients `(∂A, ∂B)`; `x` and `u` are the forward pass's input and `x · Aᵀ`.
    fn backward(
        &self,
        dy: &[f32],
        x: &[f32],
        u: Option<&[f32]>,
        dx: &mut [f32],
        n: usize,
    ) -> Option<(Vec<f32>, Vec<f32>)> {
        let dy_m = View::rows(dy, n, self.out);
        quant::gemm_add(dx, self.inp, dy_m, View::rows(self.w, self.out, self.inp), 1., true);
        let (f, u) = (self.lora.as_ref()?, u?);
        let r = f.rank;
        let mut db = vec![0f32; self.out * r];
        quant::gemm(&mut db, r, dy_m.t(), View::rows(u, n, r), f.scale, true);
        let mut du = vec![0f32; n * r];
        quant::gemm(&mut du, r, dy_m, View::rows(&f.b, self.out, r), f.scale, true);
        let mut da = vec![0f32; r * self.inp];
        quant::gemm(&mut da, self.inp, View::rows(&du, n, r).t(), View::rows(x, n, self.inp), 1., true);
        quant::gemm_add(dx, self.inp, View::rows(&du, n, r), View::rows(&f.a, r, self.inp), 1., true);
        Some((da, db))
    }
}

fn not_dense(what: &str) -> ModelError {
    ModelError::Invalid(format!(
        "the {what} weights are quantized: training needs the model loaded with f32 weights (Weights::Dense)"
    ))
}

/// What one block's backward pass reads from its forward pass.
struct Saved {
    x: Vec<f32>,
    inv_rms1: Vec<f32>,
    h1: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    x2: Vec<f32>,
    inv_rms2: Vec<f32>,
    h2: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    /// `x · Aᵀ` of each adapted projection, by `Target as usize`.
    u: [Option<Vec<f32>>; 7],
}

impl Llama {
    /// The mean negative log-likelihood of the batch's targets over its masked positions, and the
    /// gradient of every LoRA factor attached to the model. The model must hold f32 weights.
    pub fn loss_and_gradients(&self, batch: &TokenBatch) -> Result<Gradients> {
        rayon::scope(|_| self.train_pass(batch, true))
    }

    /// The loss alone, as [`Llama::loss_and_gradients`] computes it.
    pub fn batch_loss(&self, batch: &TokenBatch) -> Result<f32> {
        rayon::scope(|_| self.train_pass(batch, false)).map(|g| g.loss)
    }

    fn train_pass(&self, batch: &TokenBatch, gradients: bool) -> Result<Gradients> {
        let c = &self.config;
        let (n, len, dim) = (batch.rows * batch.len, batch.len, c.dim);
        if n == 0 || batch.inputs.len() != n || batch.targets.len() != n || batch.mask.len() != n {
            return Err(ModelError::Invalid(format!(
                "a batch of {} rows of {} positions needs that many inputs, targets and mask values \
                 (has {}, {} and {})",
                batch.rows,
                batch.len,
                batch.inputs.len(),
                batch.targets.len(),
                batch.mask.len()
            )));
        }
        if len > c.context {
            return Err(ModelError::Invalid(format!(
                "windows of {len} positions are longer than the model's context of {} tokens",
                c.context
            )));
        }
        if let Some(&t) = batch.inputs.iter().chain(&batch.targets).find(|&&t| t as usize >= c.vocab) {
            return Err(ModelError::Invalid(format!("token {t} is outside the vocabulary of {}", c.vocab)));
        }
        let blocks: Vec<[Dense<'_>; 7]> = self
            .blocks
            .iter()
            .enumerate()
            .map(|(layer, block)| dense_block(block, layer))
            .collect::<Result<_>>()?;
        let Proj::Frozen(output) = &self.output else { return Err(not_dense("output")) };

        let ids = Tensor::new(batch.inputs.as_slice(), &Device::Cpu)?;
        let mut x = self.embed.index_select(&ids, 0)?.flatten_all()?.to_vec1::<f32>()?;
        let mut saved = Vec::with_capacity(blocks.len());
        for (block, dense) in self.blocks.iter().zip(&blocks) {
            let (next, s) = self.block_forward(block, dense, x, batch);
            // The loss alone needs nothing kept for a backward pass.
            if gradients {
                saved.push(s);
            }
            x = next;
        }
        let (h, inv_rms) = rms_norm(&x, &self.norm.values, c.rms_eps);
        let (loss, dh) = output_loss(output.values(), c.vocab, dim, &h, batch, gradients);
        let mut grads = Gradients { loss, factors: BTreeMap::new() };
        let Some(dh) = dh else { return Ok(grads) };

        let mut dx = vec![0f32; n * dim];
        rms_norm_backward(&dh, &x, &inv_rms, &self.norm.values, &mut dx);
        for (layer, ((block, dense), s)) in self.blocks.iter().zip(&blocks).zip(saved).enumerate().rev() {
            dx = self.block_backward(block, dense, s, dx, batch, &mut |target, g| {
                grads.factors.insert((layer, target), g);
            });
        }
        Ok(grads)
    }

    fn block_forward(
        &self,
        block: &Block,
        dense: &[Dense<'_>; 7],
        x: Vec<f32>,
        batch: &TokenBatch,
    ) -> (Vec<f32>, Saved) {
        let c = &self.config;
        let n = x.len() / c.dim;
        let mut u: [Option<Vec<f32>>; 7] = Default::default();
        let mut proj = |t: Target, input: &[f32]| {
            let (y, ut) = dense[t as usize].forward(input, n);
            u[t as usize] = ut;
            y
        };
        let (h1, inv_rms1) = rms_norm(&x, &block.attn_norm.values, c.rms_eps);
        let mut q = proj(Target::Q, &h1);
        let mut k = proj(Target::K, &h1);
        let v = proj(Target::V, &h1);
        self.rotate_rows(&mut q, c.heads, batch.len, false);
        self.rotate_rows(&mut k, c.kv_heads, batch.len, false);
        let attn = self.attention(&q, &k, &v, batch);
        let o = proj(Target::O, &attn);
        let x2: Vec<f32> = x.iter().zip(&o).map(|(a, b)| a + b).collect();
        let (h2, inv_rms2) = rms_norm(&x2, &block.ffn_norm.values, c.rms_eps);
        let gate = proj(Target::Gate, &h2);
        let up = proj(Target::Up, &h2);
        let act = silu_gate(&gate, &up);
        let down = proj(Target::Down, &act);
        let next = x2.iter().zip(&down).map(|(a, b)| a + b).collect();
        let saved = Saved { x, inv_rms1, h1, q, k, v, attn, x2, inv_rms2, h2, gate, up, u };
        (next, saved)
    }

    /// Takes the gradient at the block's output and returns the one at its input, handing each
    /// adapted projection's factor gradients to `factor`.
    fn block_backward(
        &self,
        block: &Block,
        dense: &[Dense<'_>; 7],
        s: Saved,
        dout: Vec<f32>,
        batch: &TokenBatch,
        factor: &mut dyn FnMut(Target, (Vec<f32>, Vec<f32>)),
    ) -> Vec<f32> {
        let c = &self.config;
        let n = s.x.len() / c.dim;
        let mut back = |t: Target, dy: &[f32], x: &[f32], dx: &mut [f32]| {
            if let Some(g) = dense[t as usize].backward(dy, x, s.u[t as usize].as_deref(), dx, n) {
                factor(t, g);
            }
        };
        // Feed-forward: down(silu(gate) · up), around a residual.
        let act = silu_gate(&s.gate, &s.up);
        let mut dact = vec![0f32; n * c.ffn];
        back(Target::Down, &dout, &act, &mut dact);
        drop(act);
        let (dgate, dup) = silu_gate_backward(&dact, &s.gate, &s.up);
        drop(dact);
        let mut dh2 = vec![0f32; n * c.dim];
        back(Target::Gate, &dgate, &s.h2, &mut dh2);
        back(Target::Up, &dup, &s.h2, &mut dh2);
        let mut dx2 = dout;
        rms_norm_backward(&dh2, &s.x2, &s.inv_rms2, &block.ffn_norm.values, &mut dx2);
        // Attention, around the other residual.
        let mut dattn = vec![0f32; n * c.dim];
        back(Target::O, &dx2, &s.attn, &mut dattn);
        let (mut dq, mut dk, dv) = self.attention_backward(&s.q, &s.k, &s.v, &dattn, batch);
        self.rotate_rows(&mut dq, c.heads, batch.len, true);
        self.rotate_rows(&mut dk, c.kv_heads, batch.len, true);
        let mut dh1 = vec![0f32; n * c.dim];
        back(Target::Q, &dq, &s.h1, &mut dh1);
        back(Target::K, &dk, &s.h1, &mut dh1);
        back(Target::V, &dv, &s.h1, &mut dh1);
        let mut dx = dx2;
        rms_norm_backward(&dh1, &s.x, &s.inv_rms1, &block.attn_norm.values, &mut dx);
        dx
    }

    /// Rotary embedding of each sequence's rows (each sequence starts at position 0); with
    /// `inverse`, the transposed rotation, which is the rotation's backward pass.
    fn rotate_rows(&self, x: &mut [f32], heads: usize, len: usize, inverse: bool) {
        let width = heads * self.config.head_dim;
        x.par_chunks_mut(len * width).for_each(|seq| self.rotate_by(seq, heads, 0, inverse));
    }

    /// One head's `[len, head_dim]` columns of one sequence's rows of `heads` vectors.
    fn head<'a>(&self, data: &'a [f32], heads: usize, seq: usize, head: usize, len: usize) -> View<'a> {
        let (hd, width) = (self.config.head_dim, heads * self.config.head_dim);
        View {
            data: &data[seq * len * width + head * hd..],
            rows: len,
            cols: hd,
            row_stride: width,
            col_stride: 1,
        }
    }

    /// Writes `part`, one head's `[len, head_dim]`, into its columns of `out` as [`Llama::head`]
    /// addresses them.
    fn put_head(&self, out: &mut [f32], heads: usize, seq: usize, head: usize, part: &[f32]) {
        let (hd, width) = (self.config.head_dim, heads * self.config.head_dim);
        let len = part.len() / hd;
        for (i, row) in part.chunks_exact(hd).enumerate() {
            out[(seq * len + i) * width + head * hd..][..hd].copy_from_slice(row);
        }
    }

    /// The causal attention probabilities of one head of one sequence, `[len, len]`.
    fn probabilities(&self, q: View<'_>, k: View<'_>, len: usize) -> Vec<f32> {
        let scale = 1. / (self.config.head_dim as f32).sqrt();
        let mut p = vec![0f32; len * len];
        quant::gemm(&mut p, len, q, k.t(), scale, false);
        for (i, row) in p.chunks_exact_mut(len).enumerate() {
            quant::softmax_in_place(&mut row[..=i]);
            row[i + 1..].fill(0.);
        }
        p
    }

    /// Causal attention within each sequence, `[rows · len, heads · head_dim]`.
    fn attention(&self, q: &[f32], k: &[f32], v: &[f32], batch: &TokenBatch) -> Vec<f32> {
        let c = &self.config;
        let (len, hd, group) = (batch.len, c.head_dim, c.heads / c.kv_heads);
        let tasks: Vec<(usize, usize)> =
            (0..batch.rows).flat_map(|s| (0..c.heads).map(move |h| (s, h))).collect();
        let heads: Vec<Vec<f32>> = tasks
            .par_iter()
            .map(|&(seq, head)| {
                let kh = self.head(k, c.kv_heads, seq, head / group, len);
                let vh = self.head(v, c.kv_heads, seq, head / group, len);
                let p = self.probabilities(self.head(q, c.heads, seq, head, len), kh, len);
                let mut y = vec![0f32; len * hd];
                quant::gemm(&mut y, hd, View::rows(&p, len, len), vh, 1., false);
                y
            })
            .collect();
        let mut out = vec![0f32; q.len()];
        for (&(seq, head), y) in tasks.iter().zip(&heads) {
            self.put_head(&mut out, c.heads, seq, head, y);
        }
        out
    }

    /// The gradients of the queries, keys and values for the gradient `dy` of the attention's
    /// output. Each task is one sequence and one key/value head with its group of query heads.
    fn attention_backward(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        dy: &[f32],
        batch: &TokenBatch,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let c = &self.config;
        let (len, hd) = (batch.len, c.head_dim);
        let group = c.heads / c.kv_heads;
        let scale = 1. / (hd as f32).sqrt();
        let tasks: Vec<(usize, usize)> =
            (0..batch.rows).flat_map(|s| (0..c.kv_heads).map(move |kv| (s, kv))).collect();
        let parts: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = tasks
            .par_iter()
            .map(|&(seq, kv)| {
                let (mut dq, mut dk, mut dv) =
                    (vec![0f32; group * len * hd], vec![0f32; len * hd], vec![0f32; len * hd]);
                let mut dp = vec![0f32; len * len];
                for (g, dq) in dq.chunks_exact_mut(len * hd).enumerate() {
                    let head = kv * group + g;
                    let (qh, dyh) =
                        (self.head(q, c.heads, seq, head, len), self.head(dy, c.heads, seq, head, len));
                    let (kh, vh) =
                        (self.head(k, c.kv_heads, seq, kv, len), self.head(v, c.kv_heads, seq, kv, len));
                    let mut p = self.probabilities(qh, kh, len);
                    // ∂V += Pᵀ · ∂Y, ∂P = ∂Y · Vᵀ.
                    quant::gemm_add(&mut dv, hd, View::rows(&p, len, len).t(), dyh, 1., false);
                    quant::gemm(&mut dp, len, dyh, vh.t(), 1., false);
                    // Through the softmax: ∂S = P ⊙ (∂P − Σⱼ P ⊙ ∂P), in place of P.
                    for (i, (pr, dpr)) in p.chunks_exact_mut(len).zip(dp.chunks_exact(len)).enumerate() {
                        let (pr, dpr) = (&mut pr[..=i], &dpr[..=i]);
                        let dot = quant::dot(pr, dpr);
                        for (pv, d) in pr.iter_mut().zip(dpr) {
                            *pv *= d - dot;
                        }
                    }
                    let ds = View::rows(&p, len, len);
                    quant::gemm(dq, hd, ds, kh, scale, false);
                    quant::gemm_add(&mut dk, hd, ds.t(), qh, scale, false);
                }
                (dq, dk, dv)
            })
            .collect();
        let (mut dq, mut dk, mut dv) = (vec![0f32; q.len()], vec![0f32; k.len()], vec![0f32; v.len()]);
        for (&(seq, kv), (pq, pk, pv)) in tasks.iter().zip(&parts) {
            for (g, part) in pq.chunks_exact(len * hd).enumerate() {
                self.put_head(&mut dq, c.heads, seq, kv * group + g, part);
            }
            self.put_head(&mut dk, c.kv_heads, seq, kv, pk);
            self.put_head(&mut dv, c.kv_heads, seq, kv, pv);
        }
        (dq, dk, dv)
    }
}

fn dense_block(block: &Block, layer: usize) -> Result<[Dense<'_>; 7]> {
    let dense = |t: Target| Dense::new(&block.proj[t as usize], &format!("layer {layer} {}", t.peft_name()));
    Ok([
        dense(Target::Q)?,
        dense(Target::K)?,
        dense(Target::V)?,
        dense(Target::O)?,
        dense(Target::Gate)?,
        dense(Target::Up)?,
        dense(Target::Down)?,
    ])
}

/// `x / rms(x) · weight` row by row, and each row's `1 / rms`.
fn rms_norm(x: &[f32], weight: &[f32], eps: f64) -> (Vec<f32>, Vec<f32>) {
    let mut out = vec![0f32; x.len()];
    let inv = infer::rms_norm(x, weight, eps, &mut out);
    (out, inv)
}

/// Adds the gradient of [`rms_norm`]'s input to `dx`, for the gradient `dh` of its output:
/// `r · w ⊙ dh − x · r³ / d · Σ (w ⊙ dh ⊙ x)`.
fn rms_norm_backward(dh: &[f32], x: &[f32], inv: &[f32], weight: &[f32], dx: &mut [f32]) {
    let d = weight.len();
    dx.par_chunks_mut(d).zip(dh.par_chunks(d).zip(x.par_chunks(d))).zip(inv.par_iter()).for_each(
        |((dx, (dh, x)), &r)| {
            let dot: f32 = dh.iter().zip(weight).zip(x).map(|((g, w), v)| g * w * v).sum();
            let k = r * r * r * dot / d as f32;
            for (((o, g), w), v) in dx.iter_mut().zip(dh).zip(weight).zip(x) {
                *o += r * w * g - k * v;
            }
        },
    );
}

/// Values per task of the element-wise passes.
const CHUNK: usize = 4096;

/// `silu(gate) · up`.
fn silu_gate(gate: &[f32], up: &[f32]) -> Vec<f32> {
    let mut out = gate.to_vec();
    out.par_chunks_mut(CHUNK).zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK))).for_each(
        |(o, (g, u))| {
            quant::sigmoid_in_place(o);
            for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
                *o *= g * u;
            }
        },
    );
    out
}

/// The gradients of `gate` and `up` for the gradient `d` of `silu(gate) · up`.
fn silu_gate_backward(d: &[f32], gate: &[f32], up: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (mut dg, mut du) = (gate.to_vec(), vec![0f32; d.len()]);
    dg.par_chunks_mut(CHUNK)
        .zip(du.par_chunks_mut(CHUNK))
        .zip(d.par_chunks(CHUNK).zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK))))
        .for_each(|((dg, du), (d, (g, u)))| {
            quant::sigmoid_in_place(dg);
            for ((((dg, du), &d), &g), &u) in dg.iter_mut().zip(du).zip(d).zip(g).zip(u) {
                let s = *dg;
                *dg = d * u * s * (1. + g * (1. - s));
                *du = d * g * s;
            }
        });
    (dg, du)
}

/// The mean masked negative log-likelihood under `softmax(h · Wᵀ)` for output weights `w`
/// `[vocab, dim]`, and with `gradient` its gradient for `h`.
fn output_loss(
    w: &[f32],
    vocab: usize,
    dim: usize,
    h: &[f32],
    batch: &TokenBatch,
    gradient: bool,
) -> (f32, Option<Vec<f32>>) {
    let weight = 1. / batch.mask.iter().sum::<f32>().max(1.);
    let w = View::rows(w, vocab, dim);
    let mut dh = gradient.then(|| vec![0f32; h.len()]);
    let mut logits = vec![0f32; OUTPUT_ROWS.min(batch.mask.len()) * vocab];
    let mut total = 0f64;
    for (chunk, h) in h.chunks(OUTPUT_ROWS * dim).enumerate() {
        let rows = h.len() / dim;
        let first = chunk * OUTPUT_ROWS;
        let logits = &mut logits[..rows * vocab];
        quant::gemm(logits, vocab, View::rows(h, rows, dim), w.t(), 1., true);
        let targets = &batch.targets[first..first + rows];
        let mask = &batch.mask[first..first + rows];
        total += logits
            .par_chunks_mut(vocab)
            .zip(targets.par_iter().zip(mask))
            .map(|(row, (&t, &m))| {
                let picked = row[t as usize];
                let log_norm = quant::softmax_in_place(row);
                // The gradient of this row's term: (softmax − onehot) · m / Σm.
                row[t as usize] -= 1.;
                let scale = m * weight;
                row.iter_mut().for_each(|v| *v *= scale);
                f64::from(m) * f64::from(log_norm - picked)
            })
            .sum::<f64>();
        if let Some(dh) = &mut dh {
            let out = &mut dh[first * dim..(first + rows) * dim];
            quant::gemm(out, dim, View::rows(logits, rows, vocab), w, 1., true);
        }
    }
    (total as f32 * weight, dh)
}
