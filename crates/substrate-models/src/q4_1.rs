//! Q4_1 matrix products on the CPU, computed as llama.cpp computes them.
//!
//! candle has no SIMD kernel for Q4_1, and its scalar one forms the Q8_1 block sum `s` in
//! half precision, which moves this model's logits by up to a third of a unit against
//! llama.cpp. Here each activation row is quantized to Q8_1 exactly as ggml's AVX2 code does
//! (scale `max/127` rounded to f16, values times `127/max` rounded half to even, `s` the f32
//! product `d·Σq` rounded once to f16), and each dot product keeps ggml's eight partial sums,
//! fused multiply-adds and final reduction order, written from ggml's AVX2 code so as to give
//! the same floats (compared with llama.cpp only through the logits and tokens of the fixtures).
//!
//! The AVX2 path is taken when the CPU has AVX2 and FMA; otherwise a scalar path with the same
//! arithmetic runs. Rows are spread over rayon's threads.

#![allow(unsafe_code)]

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use half::f16;
use rayon::prelude::*;

const QK: usize = 32;
/// Bytes of one Q4_1 block in a GGUF file: f16 scale, f16 minimum, 16 bytes of nibbles.
const BLOCK_BYTES: usize = 20;

/// A `[n, k]` Q4_1 weight matrix, blocks row by row.
#[derive(Debug)]
pub struct Q41Matrix {
    n: usize,
    k: usize,
    d: Vec<f32>,
    m: Vec<f32>,
    qs: Vec<[u8; 16]>,
}

/// One activation row in Q8_1.
struct Q81Row {
    d: Vec<f32>,
    s: Vec<f32>,
    qs: Vec<[i8; QK]>,
}

impl Q41Matrix {
    /// The matrix of a Q4_1 tensor of two dimensions; `None` for any other tensor.
    pub fn from_qtensor(qt: &QTensor) -> candle_core::Result<Option<Self>> {
        let Ok((n, k)) = qt.shape().dims2() else { return Ok(None) };
        if qt.dtype() != GgmlDType::Q4_1 || k % QK != 0 {
            return Ok(None);
        }
        let data = qt.data()?;
        let blocks = n * k / QK;
        if data.len() != blocks * BLOCK_BYTES {
            candle_core::bail!(
                "Q4_1 tensor of {n}x{k} holds {} bytes, not {}",
                data.len(),
                blocks * BLOCK_BYTES
            );
        }
        let (mut d, mut m, mut qs) =
            (Vec::with_capacity(blocks), Vec::with_capacity(blocks), Vec::with_capacity(blocks));
        for block in data.chunks_exact(BLOCK_BYTES) {
            d.push(f16::from_le_bytes([block[0], block[1]]).to_f32());
            m.push(f16::from_le_bytes([block[2], block[3]]).to_f32());
            let mut q = [0u8; 16];
            q.copy_from_slice(&block[4..]);
            qs.push(q);
        }
        Ok(Some(Self { n, k, d, m, qs }))
    }

    /// `x · Wᵀ` for `x` of shape `[.., k]`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.apply_op1_no_bwd(self)
    }

    fn matmul(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let acts: Vec<Q81Row> = x.chunks_exact(self.k).map(quantize_row).collect();
        let mut out = vec![0f32; rows * self.n];
        let avx2 = has_avx2_fma();
        let nb = self.k / QK;
        let dot = |col: usize, act: &Q81Row| {
            let range = col * nb..(col + 1) * nb;
            let w = (&self.d[range.clone()], &self.m[range.clone()], &self.qs[range]);
            if avx2 {
                // SAFETY: AVX2 and FMA were detected on this CPU just above.
                unsafe { dot_avx2(w, act) }
            } else {
                dot_scalar(w, act)
            }
        };
        if rows == 1 {
            out.par_chunks_mut(64).enumerate().for_each(|(chunk, dst)| {
                for (i, v) in dst.iter_mut().enumerate() {
                    *v = dot(chunk * 64 + i, &acts[0]);
                }
            });
        } else {
            out.par_chunks_mut(self.n).zip(acts.par_iter()).for_each(|(dst, act)| {
                for (col, v) in dst.iter_mut().enumerate() {
                    *v = dot(col, act);
                }
            });
        }
        out
    }
}

impl CustomOp1 for Q41Matrix {
    fn name(&self) -> &'static str {
        "q4_1-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("the Q4_1 product takes f32 activations");
        };
        let dims = layout.shape().dims();
        let Some((&k, lead)) = dims.split_last() else {
            candle_core::bail!("the Q4_1 product needs a matrix")
        };
        if k != self.k {
            candle_core::bail!("activations of width {k} against a Q4_1 matrix of width {}", self.k);
        }
        let x = match layout.contiguous_offsets() {
            Some((start, end)) => &data[start..end],
            None => candle_core::bail!("the Q4_1 product needs contiguous activations"),
        };
        let rows = lead.iter().product();
        let mut out_dims = lead.to_vec();
        out_dims.push(self.n);
        Ok((CpuStorage::F32(self.matmul(x, rows)), Shape::from(out_dims)))
    }
}

fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// ggml's `quantize_row_q8_1` (AVX2 variant).
fn quantize_row(x: &[f32]) -> Q81Row {
    let nb = x.len() / QK;
    let mut row = Q81Row { d: Vec::with_capacity(nb), s: Vec::with_capacity(nb), qs: Vec::with_capacity(nb) };
    for block in x.chunks_exact(QK) {
        let max = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = max / 127.;
        let id = if max != 0. { 127. / max } else { 0. };
        let mut qs = [0i8; QK];
        let mut sum = 0i32;
        for (q, v) in qs.iter_mut().zip(block) {
            *q = (v * id).round_ties_even() as i8;
            sum += i32::from(*q);
        }
        row.d.push(f16::from_f32(d).to_f32());
        row.s.push(f16::from_f32(d * sum as f32).to_f32());
        row.qs.push(qs);
    }
    row
}

/// ggml's reduction of eight lanes: ((x4+x0)+(x6+x2)) + ((x5+x1)+(x7+x3)).
fn hsum8(x: [f32; 8]) -> f32 {
    let r = [x[4] + x[0], x[5] + x[1], x[6] + x[2], x[7] + x[3]];
    (r[0] + r[2]) + (r[1] + r[3])
}

type Weights<'a> = (&'a [f32], &'a [f32], &'a [[u8; 16]]);

fn dot_scalar((d, m, qs): Weights<'_>, act: &Q81Row) -> f32 {
    let mut acc = [0f32; 8];
    let mut summs = 0f32;
    for b in 0..qs.len() {
        summs += m[b] * act.s[b];
        let scale = d[b] * act.d[b];
        let mut lanes = [0i32; 8];
        for j in 0..16 {
            lanes[j / 4] += i32::from(qs[b][j] & 0x0f) * i32::from(act.qs[b][j]);
            lanes[4 + j / 4] += i32::from(qs[b][j] >> 4) * i32::from(act.qs[b][16 + j]);
        }
        for (a, l) in acc.iter_mut().zip(lanes) {
            *a = scale.mul_add(l as f32, *a);
        }
    }
    hsum8(acc) + summs
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2((d, m, qs): Weights<'_>, act: &Q81Row) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0f32;
    let low = _mm256_set1_epi8(0x0f);
    let ones = _mm256_set1_epi16(1);
    for b in 0..qs.len() {
        summs += m[b] * act.s[b];
        let scale = _mm256_set1_ps(d[b] * act.d[b]);
        // SAFETY: both loads read exactly the 16 and 32 bytes of the blocks they are given.
        let (nibbles, y) = unsafe {
            (_mm_loadu_si128(qs[b].as_ptr().cast()), _mm256_loadu_si256(act.qs[b].as_ptr().cast()))
        };
        let x = _mm256_and_si256(low, _mm256_set_m128i(_mm_srli_epi16(nibbles, 4), nibbles));
        let pairs = _mm256_maddubs_epi16(x, y);
        let lanes = _mm256_cvtepi32_ps(_mm256_madd_epi16(ones, pairs));
        acc = _mm256_fmadd_ps(scale, lanes, acc);
    }
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` is 8 f32s, the width of one store.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
    hsum8(lanes) + summs
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn dot_avx2(w: Weights<'_>, act: &Q81Row) -> f32 {
    dot_scalar(w, act)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_avx2_and_scalar_paths_give_the_same_floats() {
        let (n, k) = (8, 96);
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 37 % 101) as f32 - 50.) / 40.).collect();
        let w = Tensor::from_vec(w, (n, k), &candle_core::Device::Cpu).unwrap();
        let qt = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        let q = Q41Matrix::from_qtensor(&qt).unwrap().unwrap();
        // Against the dequantized weights, only the activations' 8-bit rounding differs.
        let w = qt.dequantize(&candle_core::Device::Cpu).unwrap();
        let x: Vec<f32> = (0..k).map(|i| ((i * 13 % 29) as f32 - 14.) / 7.).collect();
        let act = quantize_row(&x);
        let nb = k / QK;
        for col in 0..n {
            let r = col * nb..(col + 1) * nb;
            let weights = (&q.d[r.clone()], &q.m[r.clone()], &q.qs[r]);
            let scalar = dot_scalar(weights, &act);
            if has_avx2_fma() {
                // SAFETY: detected just above.
                assert_eq!(unsafe { dot_avx2(weights, &act) }.to_bits(), scalar.to_bits());
            }
            let exact: f32 =
                x.iter().zip(w.get(col).unwrap().to_vec1::<f32>().unwrap()).map(|(a, b)| a * b).sum();
            assert!((scalar - exact).abs() < 0.02 * exact.abs().max(1.), "{scalar} vs {exact}");
        }
    }
}
