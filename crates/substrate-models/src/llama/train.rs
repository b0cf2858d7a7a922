//! Ops with hand-written gradients for training on frozen f32 weights.
//!
//! candle's matmul also computes (and allocates) the gradient of a constant weight matrix, which
//! for a frozen base model is most of the backward pass's time and memory; [`Frozen`] gives a
//! gradient for its input only. The output product, log-softmax and negative log-likelihood
//! would hold several copies of the whole vocabulary's logits (4 × 128 × 49,152 floats for a
//! step of SmolLM2) through candle's ops and their gradients; [`OutputLoss`] computes the loss
//! and keeps one copy, the probabilities, for its gradient.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::Result;
use crate::quant::{self, View};

/// Frozen weights `[out, in]`, row-major.
#[derive(Clone, Debug)]
pub(super) struct Frozen {
    weight: Arc<Vec<f32>>,
    out: usize,
    inp: usize,
}

impl Frozen {
    pub(super) fn new(weight: &Tensor) -> Result<Self> {
        let (out, inp) = weight.dims2()?;
        Ok(Self { weight: Arc::new(weight.flatten_all()?.to_vec1()?), out, inp })
    }

    fn matrix(&self) -> View<'_> {
        View::rows(&self.weight, self.out, self.inp)
    }
}

impl CustomOp1 for Frozen {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    /// `x · Wᵀ`.
    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = quant::activations(self.name(), storage, layout, self.inp)?;
        let rows = x.len() / self.inp;
        let mut y = vec![0f32; rows * self.out];
        quant::gemm(&mut y, self.out, View::rows(x, rows, self.inp), self.matrix().t(), 1., true);
        Ok((CpuStorage::F32(y), quant::with_last_dim(layout, self.out)))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&FrozenGrad(self.clone()))?))
    }
}

/// The gradient of [`Frozen`] for its input: `g · W`.
struct FrozenGrad(Frozen);

impl CustomOp1 for FrozenGrad {
    fn name(&self) -> &'static str {
        "frozen-linear-grad"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let w = &self.0;
        let g = quant::activations(self.name(), storage, layout, w.out)?;
        let rows = g.len() / w.out;
        let mut x = vec![0f32; rows * w.inp];
        quant::gemm(&mut x, w.inp, View::rows(g, rows, w.out), w.matrix(), 1., true);
        Ok((CpuStorage::F32(x), quant::with_last_dim(layout, w.inp)))
    }
}

/// The mean negative log-likelihood of the targets under `softmax(h · Wᵀ)`, over the positions
/// whose mask is 1, for hidden states `h` `[.., dim]` and frozen output weights `W`
/// `[vocab, dim]`; a scalar.
pub(super) struct OutputLoss {
    output: Frozen,
    targets: Vec<u32>,
    mask: Vec<f32>,
    /// The softmax of the last forward pass, for the gradient.
    probs: Arc<Mutex<Vec<f32>>>,
}

impl OutputLoss {
    pub(super) fn new(output: &Frozen, targets: &Tensor, mask: &Tensor) -> Result<Self> {
        Ok(Self {
            output: output.clone(),
            targets: targets.flatten_all()?.to_vec1()?,
            mask: mask.flatten_all()?.to_vec1()?,
            probs: Arc::new(Mutex::new(Vec::new())),
        })
    }

    fn weight(&self) -> f32 {
        1. / self.mask.iter().sum::<f32>().max(1.)
    }
}

impl CustomOp1 for OutputLoss {
    fn name(&self) -> &'static str {
        "output-cross-entropy"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let w = &self.output;
        let h = quant::activations(self.name(), storage, layout, w.inp)?;
        let rows = h.len() / w.inp;
        if rows != self.targets.len() || rows != self.mask.len() {
            candle_core::bail!("{rows} positions against {} targets", self.targets.len());
        }
        if let Some(&t) = self.targets.iter().find(|&&t| t as usize >= w.out) {
            candle_core::bail!("target {t} outside the vocabulary of {}", w.out);
        }
        let mut probs = vec![0f32; rows * w.out];
        quant::gemm(&mut probs, w.out, View::rows(h, rows, w.inp), w.matrix().t(), 1., true);
        let total: f64 = probs
            .par_chunks_mut(w.out)
            .zip(self.targets.par_iter().zip(&self.mask))
            .map(|(row, (&t, &m))| {
                let picked = row[t as usize];
                let log_norm = quant::softmax_in_place(row);
                f64::from(m) * f64::from(log_norm - picked)
            })
            .sum();
        let loss = total as f32 * self.weight();
        *self.probs.lock().map_err(|_| candle_core::Error::Msg("a training thread panicked".into()))? = probs;
        Ok((CpuStorage::F32(vec![loss]), Shape::from(())))
    }

    /// `∂loss/∂h = g · mask/Σmask · (softmax − onehot(target)) · W`.
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let w = &self.output;
        let g = grad.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let g = g.first().copied().unwrap_or(1.) * self.weight();
        let mut probs = std::mem::take(
            &mut *self
                .probs
                .lock()
                .map_err(|_| candle_core::Error::Msg("a training thread panicked".into()))?,
        );
        let rows = self.targets.len();
        if probs.len() != rows * w.out {
            candle_core::bail!("the output loss's gradient was asked for before its forward pass");
        }
        probs.par_chunks_mut(w.out).zip(self.targets.par_iter().zip(&self.mask)).for_each(
            |(row, (&t, &m))| {
                row[t as usize] -= 1.;
                let scale = g * m;
                row.iter_mut().for_each(|v| *v *= scale);
            },
        );
        let mut dh = vec![0f32; rows * w.inp];
        quant::gemm(&mut dh, w.inp, View::rows(&probs, rows, w.out), w.matrix(), 1., true);
        Ok(Some(Tensor::from_vec(dh, arg.shape(), arg.device())?))
    }
}
