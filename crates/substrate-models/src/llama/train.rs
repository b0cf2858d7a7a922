//! Frozen f32 weights, as a candle op with a hand-written gradient for the tensor pass.
//!
//! candle's matmul also computes (and allocates) the gradient of a constant weight matrix;
//! [`Frozen`] gives a gradient for its input only. The training pass over buffers
//! (`llama/grad.rs`) reads the same floats directly.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

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

    pub(super) fn values(&self) -> &[f32] {
        &self.weight
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
