//! Quantized matrix products and small f32 vector kernels on the CPU, computed as llama.cpp
//! computes them.
//!
//! Two weight formats have kernels here: Q4_1 (candle has no SIMD kernel for it, and its scalar
//! one forms the Q8_1 block sum `s` in half precision, which moves this model's logits by up to
//! a third of a unit against llama.cpp) and Q8_0 (candle's kernel runs on a spinning thread pool
//! of its own, which on two cores fights rayon's for the CPU). Each activation row is quantized
//! once, exactly as ggml's AVX2 code does (scale `max/127` rounded to f16, values times
//! `127/max` rounded half to even, and for Q8_1 the block sum `s`, the f32 product `d·Σq`
//! rounded once to f16); the same row serves every matrix that reads it. Each dot product keeps
//! ggml's eight partial sums, fused multiply-adds and final reduction order, written from ggml's
//! AVX2 code so as to give the same floats (compared with llama.cpp only through the logits and
//! tokens of the fixtures).
//!
//! The AVX2 paths are taken when the CPU has AVX2 and FMA; otherwise scalar paths with the same
//! arithmetic run. Output columns are spread over rayon's threads.

#![allow(unsafe_code)]

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use half::f16;
use rayon::prelude::*;

const QK: usize = 32;
/// Output columns per task of a one-row product.
const COLUMNS_PER_TASK: usize = 64;

/// The weight formats with a kernel here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// Per block: f16 scale `d`, f16 minimum `m`, 32 four-bit values.
    Q4_1,
    /// Per block: f16 scale `d`, 32 signed bytes.
    Q8_0,
}

impl Format {
    fn of(dtype: GgmlDType) -> Option<Self> {
        match dtype {
            GgmlDType::Q4_1 => Some(Self::Q4_1),
            GgmlDType::Q8_0 => Some(Self::Q8_0),
            _ => None,
        }
    }

    /// Bytes of one block in a GGUF file.
    fn block_bytes(self) -> usize {
        match self {
            Self::Q4_1 => 20,
            Self::Q8_0 => 34,
        }
    }

    /// Bytes of quantized values in one block.
    fn value_bytes(self) -> usize {
        match self {
            Self::Q4_1 => 16,
            Self::Q8_0 => 32,
        }
    }
}

/// A `[n, k]` quantized weight matrix, blocks row by row, with scales widened to f32.
#[derive(Debug)]
pub struct QMatrix {
    format: Format,
    n: usize,
    k: usize,
    d: Vec<f32>,
    /// Block minimums (Q4_1 only).
    m: Vec<f32>,
    qs: Vec<u8>,
}

/// One activation row in Q8_1: Q8_0's values and scale, plus the block sums Q4_1 needs.
pub struct Q81Row {
    d: Vec<f32>,
    s: Vec<f32>,
    qs: Vec<[i8; QK]>,
}

/// One row of weights as a dot product sees it: block scales, block minimums (Q4_1; empty for
/// Q8_0) and the blocks' values.
type Row<'a> = (&'a [f32], &'a [f32], &'a [u8]);

impl QMatrix {
    /// The matrix of a Q4_1 or Q8_0 tensor of two dimensions; `None` for any other tensor.
    pub fn from_qtensor(qt: &QTensor) -> candle_core::Result<Option<Self>> {
        let Ok((n, k)) = qt.shape().dims2() else { return Ok(None) };
        let Some(format) = Format::of(qt.dtype()) else { return Ok(None) };
        if k % QK != 0 {
            return Ok(None);
        }
        let data = qt.data()?;
        let blocks = n * k / QK;
        if data.len() != blocks * format.block_bytes() {
            candle_core::bail!(
                "{:?} tensor of {n}x{k} holds {} bytes, not {}",
                qt.dtype(),
                data.len(),
                blocks * format.block_bytes()
            );
        }
        let mut matrix = Self {
            format,
            n,
            k,
            d: Vec::with_capacity(blocks),
            m: Vec::new(),
            qs: Vec::with_capacity(blocks * format.value_bytes()),
        };
        let half = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]).to_f32();
        for block in data.chunks_exact(format.block_bytes()) {
            matrix.d.push(half(block));
            match format {
                Format::Q4_1 => {
                    matrix.m.push(half(&block[2..]));
                    matrix.qs.extend_from_slice(&block[4..]);
                }
                Format::Q8_0 => matrix.qs.extend_from_slice(&block[2..]),
            }
        }
        Ok(Some(matrix))
    }

    /// `x · Wᵀ` for `x` of shape `[.., k]`, as a candle op.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.apply_op1_no_bwd(self)
    }

    /// Row `col` of the weights times one quantized activation row.
    fn dot(&self, col: usize, act: &Q81Row, avx2: bool) -> f32 {
        let nb = self.k / QK;
        let blocks = col * nb..(col + 1) * nb;
        let width = self.format.value_bytes();
        let qs = &self.qs[blocks.start * width..blocks.end * width];
        match (self.format, avx2) {
            // SAFETY: `avx2` is true only when AVX2 and FMA were detected on this CPU.
            (Format::Q4_1, true) => unsafe {
                dot_q4_1_avx2((&self.d[blocks.clone()], &self.m[blocks], qs), act)
            },
            (Format::Q4_1, false) => dot_q4_1_scalar((&self.d[blocks.clone()], &self.m[blocks], qs), act),
            // SAFETY: as above.
            (Format::Q8_0, true) => unsafe { dot_q8_0_avx2((&self.d[blocks], &[], qs), act) },
            (Format::Q8_0, false) => dot_q8_0_scalar((&self.d[blocks], &[], qs), act),
        }
    }

    /// `x · Wᵀ` for rows already quantized with [`quantize`]: `[acts.len(), n]`, row by row.
    pub fn matmul_quantized(&self, acts: &[Q81Row]) -> Vec<f32> {
        let avx2 = has_avx2_fma();
        let mut out = vec![0f32; acts.len() * self.n];
        if let [act] = acts {
            out.par_chunks_mut(COLUMNS_PER_TASK).enumerate().for_each(|(chunk, dst)| {
                for (i, v) in dst.iter_mut().enumerate() {
                    *v = self.dot(chunk * COLUMNS_PER_TASK + i, act, avx2);
                }
            });
            return out;
        }
        // Several rows: each task takes a band of columns through every row, so that a band's
        // weights are read from memory once and stay in cache for the other rows.
        let band = COLUMNS_PER_TASK.min(self.n).max(1);
        let bands: Vec<(usize, Vec<f32>)> = (0..self.n.div_ceil(band))
            .into_par_iter()
            .map(|b| {
                let cols = b * band..((b + 1) * band).min(self.n);
                let mut part = Vec::with_capacity(acts.len() * cols.len());
                for act in acts {
                    part.extend(cols.clone().map(|col| self.dot(col, act, avx2)));
                }
                (cols.start, part)
            })
            .collect();
        for (start, part) in bands {
            let width = part.len() / acts.len();
            for (row, values) in part.chunks_exact(width).enumerate() {
                out[row * self.n + start..][..width].copy_from_slice(values);
            }
        }
        out
    }

    /// `x · Wᵀ` for `rows` rows of `k` floats.
    pub fn matmul(&self, x: &[f32]) -> Vec<f32> {
        self.matmul_quantized(&quantize(x, self.k))
    }
}

impl CustomOp1 for QMatrix {
    fn name(&self) -> &'static str {
        "quantized-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = activations(self.name(), storage, layout, self.k)?;
        Ok((CpuStorage::F32(self.matmul(x)), with_last_dim(layout, self.n)))
    }
}

/// The f32 values of a custom op's contiguous input whose last dimension is `width`.
pub fn activations<'a>(
    op: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
    width: usize,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op} takes f32 activations");
    };
    match layout.dims().last() {
        Some(&k) if k == width => {}
        k => candle_core::bail!("{op}: activations of width {k:?} against a matrix of width {width}"),
    }
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op} needs contiguous activations"),
    }
}

/// The input's shape with its last dimension replaced by `last`.
pub fn with_last_dim(layout: &Layout, last: usize) -> Shape {
    let mut dims = layout.dims().to_vec();
    if let Some(d) = dims.last_mut() {
        *d = last;
    }
    Shape::from(dims)
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

/// Rows of `k` floats in Q8_1, as ggml's `quantize_row_q8_1` (AVX2 variant) makes them. Their
/// values and scales are also ggml's Q8_0 of the same rows.
pub fn quantize(x: &[f32], k: usize) -> Vec<Q81Row> {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: AVX2 and FMA were detected on this CPU just above.
        return x.chunks_exact(k).map(|row| unsafe { quantize_row_avx2(row) }).collect();
    }
    x.chunks_exact(k).map(quantize_row).collect()
}

/// The same code compiled for AVX2, where rounding half to even is one instruction rather than a
/// library call.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_row_avx2(x: &[f32]) -> Q81Row {
    quantize_row(x)
}

#[inline(always)]
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

/// Adds one block's eight lane sums, scaled by `scale`, into `acc`.
fn accumulate(acc: &mut [f32; 8], scale: f32, lanes: [i32; 8]) {
    for (a, l) in acc.iter_mut().zip(lanes) {
        *a = scale.mul_add(l as f32, *a);
    }
}

fn dot_q4_1_scalar((d, m, qs): Row<'_>, act: &Q81Row) -> f32 {
    let mut acc = [0f32; 8];
    let mut summs = 0f32;
    for ((((&d, &m), w), &ad), (&s, a)) in
        d.iter().zip(m).zip(qs.chunks_exact(16)).zip(&act.d).zip(act.s.iter().zip(&act.qs))
    {
        summs += m * s;
        let mut lanes = [0i32; 8];
        for j in 0..16 {
            lanes[j / 4] += i32::from(w[j] & 0x0f) * i32::from(a[j]);
            lanes[4 + j / 4] += i32::from(w[j] >> 4) * i32::from(a[16 + j]);
        }
        accumulate(&mut acc, d * ad, lanes);
    }
    hsum8(acc) + summs
}

fn dot_q8_0_scalar((d, _, qs): Row<'_>, act: &Q81Row) -> f32 {
    let mut acc = [0f32; 8];
    for ((&d, w), (&ad, a)) in d.iter().zip(qs.chunks_exact(QK)).zip(act.d.iter().zip(&act.qs)) {
        let mut lanes = [0i32; 8];
        for (j, (&x, &y)) in w.iter().zip(a).enumerate() {
            lanes[j / 4] += i32::from(x as i8) * i32::from(y);
        }
        accumulate(&mut acc, d * ad, lanes);
    }
    hsum8(acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn store8(acc: std::arch::x86_64::__m256) -> [f32; 8] {
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` is 8 f32s, the width of one store.
    unsafe { std::arch::x86_64::_mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
    lanes
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_q4_1_avx2((d, m, qs): Row<'_>, act: &Q81Row) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0f32;
    let low = _mm256_set1_epi8(0x0f);
    let ones = _mm256_set1_epi16(1);
    for ((((&d, &m), w), &ad), (&s, a)) in
        d.iter().zip(m).zip(qs.chunks_exact(16)).zip(&act.d).zip(act.s.iter().zip(&act.qs))
    {
        summs += m * s;
        let scale = _mm256_set1_ps(d * ad);
        // SAFETY: the loads read exactly the 16 and 32 bytes of the blocks they are given.
        let (nibbles, y) =
            unsafe { (_mm_loadu_si128(w.as_ptr().cast()), _mm256_loadu_si256(a.as_ptr().cast())) };
        let x = _mm256_and_si256(low, _mm256_set_m128i(_mm_srli_epi16(nibbles, 4), nibbles));
        let pairs = _mm256_maddubs_epi16(x, y);
        let lanes = _mm256_cvtepi32_ps(_mm256_madd_epi16(ones, pairs));
        acc = _mm256_fmadd_ps(scale, lanes, acc);
    }
    hsum8(store8(acc)) + summs
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_q8_0_avx2((d, _, qs): Row<'_>, act: &Q81Row) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = _mm256_setzero_ps();
    let ones = _mm256_set1_epi16(1);
    for ((&d, w), (&ad, a)) in d.iter().zip(qs.chunks_exact(QK)).zip(act.d.iter().zip(&act.qs)) {
        let scale = _mm256_set1_ps(d * ad);
        // SAFETY: both loads read exactly the 32 bytes of the blocks they are given.
        let (x, y) =
            unsafe { (_mm256_loadu_si256(w.as_ptr().cast()), _mm256_loadu_si256(a.as_ptr().cast())) };
        // |x| times y with x's sign, so that the unsigned-by-signed byte product applies.
        let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
        let lanes = _mm256_cvtepi32_ps(_mm256_madd_epi16(ones, pairs));
        acc = _mm256_fmadd_ps(scale, lanes, acc);
    }
    hsum8(store8(acc))
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn dot_q4_1_avx2(row: Row<'_>, act: &Q81Row) -> f32 {
    dot_q4_1_scalar(row, act)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn dot_q8_0_avx2(row: Row<'_>, act: &Q81Row) -> f32 {
    dot_q8_0_scalar(row, act)
}

/// `a · b` over f32s of the same length.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: AVX2 and FMA were detected on this CPU just above.
        return unsafe { dot_f32_avx2(a, b) };
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `y += alpha · x` over f32s of the same length.
pub fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    debug_assert_eq!(x.len(), y.len());
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: AVX2 and FMA were detected on this CPU just above.
        return unsafe { axpy_f32_avx2(y, alpha, x) };
    }
    for (y, x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_f32_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let mut acc = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`, the length of both slices.
        let (x, y) = unsafe { (_mm256_loadu_ps(a.as_ptr().add(i)), _mm256_loadu_ps(b.as_ptr().add(i))) };
        acc = _mm256_fmadd_ps(x, y, acc);
        i += 8;
    }
    let mut sum = hsum8(store8(acc));
    for j in i..n {
        sum = a[j].mul_add(b[j], sum);
    }
    sum
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_f32_avx2(y: &mut [f32], alpha: f32, x: &[f32]) {
    use std::arch::x86_64::*;
    let n = x.len().min(y.len());
    let a = _mm256_set1_ps(alpha);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`, the length of both slices.
        unsafe {
            let v =
                _mm256_fmadd_ps(a, _mm256_loadu_ps(x.as_ptr().add(i)), _mm256_loadu_ps(y.as_ptr().add(i)));
            _mm256_storeu_ps(y.as_mut_ptr().add(i), v);
        }
        i += 8;
    }
    for j in i..n {
        y[j] = alpha.mul_add(x[j], y[j]);
    }
}

/// `e^x` for each value, to about 2 units in the last place, with no library call so that the
/// loop vectorizes: `2^n · p(r)` for `x = n·ln 2 + r`, `|r| ≤ ln 2 / 2`, `p` Taylor to degree 6.
pub fn exp_in_place(x: &mut [f32]) {
    map_in_place(x, exp);
}

/// GELU with the exact error function, `x/2 · (1 + erf(x/√2))`, for each value. `erf` is
/// Abramowitz and Stegun's 7.1.26 (absolute error below 1.5e-7) over [`exp`].
pub fn gelu_in_place(x: &mut [f32]) {
    map_in_place(x, gelu);
}

/// The logistic function `1 / (1 + e^-x)` for each value, over [`exp`].
pub fn sigmoid_in_place(x: &mut [f32]) {
    map_in_place(x, |v| 1. / (1. + exp(-v)));
}

/// `f` on each value, compiled for AVX2 and FMA where the CPU has them so that the loop
/// vectorizes (`f` is inlined into it).
#[inline(always)]
fn map_in_place(x: &mut [f32], f: impl Fn(f32) -> f32) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: AVX2 and FMA were detected on this CPU just above.
        return unsafe { map_avx2(x, f) };
    }
    for v in x {
        *v = f(*v);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn map_avx2(x: &mut [f32], f: impl Fn(f32) -> f32) {
    for v in x {
        *v = f(*v);
    }
}

#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 in two parts, so that n·ln 2 is exact for the n that occur.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87., 88.);
    let n = (x * LOG2_E + 0.5).floor();
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1. + r * (1. + r * (0.5 + r * (1. / 6. + r * (1. / 24. + r * (1. / 120. + r * (1. / 720.))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[inline(always)]
fn gelu(x: f32) -> f32 {
    let z = (x * std::f32::consts::FRAC_1_SQRT_2).abs();
    let t = 1. / (1. + 0.327_591_1 * z);
    let poly =
        t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
    let erf = 1. - poly * exp(-z * z);
    let erf = if x < 0. { -erf } else { erf };
    0.5 * x * (1. + erf)
}

/// A matrix inside a slice of f32s: element `(i, j)` is `data[i · row_stride + j · col_stride]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> View<'a> {
    /// A row-major `[rows, cols]` matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The transpose, without moving anything.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    fn fits(&self, len: usize) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride < len
    }
}

/// `out = scale · a · b`, where `out` holds `[a.rows, b.cols]` with rows `out_stride` apart.
/// With `parallel`, the product is spread over rayon's threads.
///
/// # Panics
/// If the shapes disagree or a view reaches outside its slice.
pub fn gemm(out: &mut [f32], out_stride: usize, a: View<'_>, b: View<'_>, scale: f32, parallel: bool) {
    product(out, out_stride, a, b, scale, parallel, false);
}

/// `out += scale · a · b`, otherwise as [`gemm`].
///
/// # Panics
/// If the shapes disagree or a view reaches outside its slice.
pub fn gemm_add(out: &mut [f32], out_stride: usize, a: View<'_>, b: View<'_>, scale: f32, parallel: bool) {
    product(out, out_stride, a, b, scale, parallel, true);
}

fn product(
    out: &mut [f32],
    out_stride: usize,
    a: View<'_>,
    b: View<'_>,
    scale: f32,
    parallel: bool,
    accumulate: bool,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "a [{m}, {k}] times b [{}, {n}]", b.rows);
    let dst = View { data: out, rows: m, cols: n, row_stride: out_stride, col_stride: 1 };
    assert!(out_stride >= n && dst.fits(out.len()) && a.fits(a.data.len()) && b.fits(b.data.len()));
    if m == 0 || n == 0 {
        return;
    }
    let parallelism = match parallel {
        true => gemm::Parallelism::Rayon(rayon::current_num_threads()),
        false => gemm::Parallelism::None,
    };
    let stride = |s: usize| s as isize;
    // SAFETY: every element each view addresses is inside its slice (checked above); the output
    // rows do not overlap (`out_stride >= n`) and `out` is borrowed mutably, apart from `a` and
    // `b`. Without `accumulate`, `out` is only written.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            stride(out_stride),
            accumulate,
            a.data.as_ptr(),
            stride(a.col_stride),
            stride(a.row_stride),
            b.data.as_ptr(),
            stride(b.col_stride),
            stride(b.row_stride),
            1.,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Softmax of one row in place, its maximum subtracted first. Returns the log of the
/// normalizer, `ln Σ e^x`, so that `x_i - ` it is the log-probability of `i`.
pub fn softmax_in_place(x: &mut [f32]) -> f32 {
    // Eight running lanes, so that the reductions vectorize.
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = l.max(v);
        }
    }
    let max = lanes.iter().fold(tail, |m, &v| m.max(v));
    x.iter_mut().for_each(|v| *v -= max);
    exp_in_place(x);
    let mut sums = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (s, &v) in sums.iter_mut().zip(c) {
            *s += v;
        }
    }
    let sum = sums.iter().sum::<f32>() + tail;
    let norm = 1. / sum;
    x.iter_mut().for_each(|v| *v *= norm);
    max + sum.ln()
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
        let x: Vec<f32> = (0..k).map(|i| ((i * 13 % 29) as f32 - 14.) / 7.).collect();
        let act = quantize_row(&x);
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let qt = QTensor::quantize(&w, dtype).unwrap();
            let q = QMatrix::from_qtensor(&qt).unwrap().unwrap();
            // Against the dequantized weights times the dequantized activations, only float
            // rounding (and Q4_1's half-precision block sums) differs.
            let dense = qt.dequantize(&candle_core::Device::Cpu).unwrap();
            let x_hat: Vec<f32> = act
                .qs
                .iter()
                .zip(&act.d)
                .flat_map(|(qs, d)| qs.iter().map(move |&q| f32::from(q) * d))
                .collect();
            for col in 0..n {
                let scalar = q.dot(col, &act, false);
                if has_avx2_fma() {
                    assert_eq!(q.dot(col, &act, true).to_bits(), scalar.to_bits(), "{dtype:?}");
                }
                let w = dense.get(col).unwrap().to_vec1::<f32>().unwrap();
                let exact: f64 = x_hat.iter().zip(&w).map(|(a, b)| f64::from(a * b)).sum();
                let size: f64 = x_hat.iter().zip(&w).map(|(a, b)| f64::from((a * b).abs())).sum();
                let err = (f64::from(scalar) - exact).abs();
                assert!(err < 2e-3 * size, "{dtype:?}: {scalar} vs {exact} (sum of sizes {size})");
            }
        }
    }

    #[test]
    fn several_rows_give_what_each_row_gives_alone() {
        let (n, k, rows) = (150, 64, 5);
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 31 % 97) as f32 - 48.) / 30.).collect();
        let w = Tensor::from_vec(w, (n, k), &candle_core::Device::Cpu).unwrap();
        let q = QMatrix::from_qtensor(&QTensor::quantize(&w, GgmlDType::Q4_1).unwrap()).unwrap().unwrap();
        let x: Vec<f32> = (0..rows * k).map(|i| ((i * 7 % 23) as f32 - 11.) / 5.).collect();
        let all = q.matmul(&x);
        for (row, expected) in x.chunks_exact(k).zip(all.chunks_exact(n)) {
            assert_eq!(q.matmul(row), expected);
        }
    }

    #[test]
    fn exp_and_gelu_agree_with_the_library_functions() {
        let xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 / 100.).collect();
        let mut e = xs.clone();
        exp_in_place(&mut e);
        let mut g = xs.clone();
        gelu_in_place(&mut g);
        for ((&x, e), g) in xs.iter().zip(e).zip(g) {
            let want = f64::from(x).exp();
            assert!((f64::from(e) - want).abs() <= 4e-7 * want, "exp({x}) = {e}, not {want}");
            // erf from its series, in f64, as the reference.
            let erf = |z: f64| {
                let mut term = z;
                let mut sum = z;
                for n in 1..200 {
                    term *= -z * z / n as f64;
                    sum += term / (2 * n + 1) as f64;
                }
                sum * 2. / std::f64::consts::PI.sqrt()
            };
            let z = f64::from(x) / 2f64.sqrt();
            let want = if z.abs() < 4. { 0.5 * f64::from(x) * (1. + erf(z)) } else { f64::from(x).max(0.) };
            assert!(
                (f64::from(g) - want).abs() < 1e-6 * f64::from(x).abs().max(1.),
                "gelu({x}) = {g}, not {want}"
            );
        }
    }

    #[test]
    fn gemm_on_strided_views_gives_the_plain_product() {
        // a is the middle 3 columns of a [4, 7] buffer; b is the transpose of a [5, 3] one.
        let abuf: Vec<f32> = (0..28).map(|i| i as f32 * 0.25 - 3.).collect();
        let bbuf: Vec<f32> = (0..15).map(|i| (i as f32 * 0.7).sin()).collect();
        let a = View { data: &abuf[2..], rows: 4, cols: 3, row_stride: 7, col_stride: 1 };
        let b = View::rows(&bbuf, 5, 3).t();
        let mut out = vec![f32::NAN; 4 * 6];
        gemm(&mut out, 6, a, b, 0.5, false);
        for i in 0..4 {
            for j in 0..5 {
                let want: f32 = (0..3).map(|k| abuf[2 + i * 7 + k] * bbuf[j * 3 + k]).sum::<f32>() * 0.5;
                assert!((out[i * 6 + j] - want).abs() < 1e-5, "({i}, {j}): {} vs {want}", out[i * 6 + j]);
            }
            assert!(out[i * 6 + 5].is_nan(), "the stride's gap is left alone");
        }
        let mut softmax = vec![1., 2., 3., 4., 5., 6., 7., 8., 9., 10., -1.];
        let lse = softmax_in_place(&mut softmax);
        let e: Vec<f64> =
            [1., 2., 3., 4., 5., 6., 7., 8., 9., 10., -1.].iter().map(|v: &f64| v.exp()).collect();
        let total: f64 = e.iter().sum();
        assert!((f64::from(lse) - total.ln()).abs() < 1e-5);
        for (s, e) in softmax.iter().zip(&e) {
            assert!((f64::from(*s) - e / total).abs() < 1e-6);
        }
    }

    #[test]
    fn the_sigmoid_agrees_with_the_library_exp() {
        let x: Vec<f32> = (0..203).map(|i| (i as f32 - 101.) * 0.9).collect();
        let mut s = x.clone();
        sigmoid_in_place(&mut s);
        for (x, s) in x.iter().zip(&s) {
            let want = 1. / (1. + (-f64::from(*x)).exp());
            assert!((f64::from(*s) - want).abs() < 1e-6, "sigmoid({x}) = {s}, not {want}");
        }
    }

    #[test]
    fn the_f32_kernels_agree_with_plain_loops() {
        let a: Vec<f32> = (0..67).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..67).map(|i| (i as f32 * 0.11).cos()).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-5);
        let mut y = b.clone();
        axpy(&mut y, 0.5, &a);
        for ((y, a), b) in y.iter().zip(&a).zip(&b) {
            assert!((y - (b + 0.5 * a)).abs() < 1e-6);
        }
    }
}
