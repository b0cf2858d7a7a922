//! The numbers decisions are computed in.
//!
//! Tallies, the technical chamber's weights, the mixture and the board election are written once,
//! generic over [`Number`], and run in one of two arithmetics, chosen by the commons' state
//! encoding ([`Arithmetic::of`]):
//!
//! - [`Fixed`], for every commons founded with state encoding 3 or later: signed fixed point with
//!   40 fractional bits in an `i128`, saturating instead of overflowing, truncating on division
//!   and multiplication. Every operation is integer arithmetic, so a decision is the same bits on
//!   every platform and with every compiler; the half-life decay and the square root are computed
//!   in integers too (the decay from a table of 2^(−2^−k) that integer square roots build). A share
//!   the board set (a threshold, a cap) is read as the simplest fraction within 2^−40 of the
//!   number, so 0.6 means 3/5 and `2.0 / 3.0` means 2/3, and comparisons against it are exact.
//! - `f64`, for the commons founded before, whose logs replay with the arithmetic they were
//!   decided in. IEEE 754 addition, multiplication, division and square root are the same on
//!   every platform Rust supports with SSE2 or better; `powf` in the compute decay is libm's and
//!   is the reason the fixed arithmetic exists.
//!
//! Records keep `f64` fields: a fixed result is stored as the nearest `f64` (exact below 2^13 in
//! magnitude with all 40 bits, and below 2^53 units at any size), a deterministic conversion that
//! feeds nothing back into a decision.

use std::cmp::Ordering;
use std::fmt::Debug;
use std::ops::{Add, Div, Mul, Sub};
use std::sync::OnceLock;

/// Which arithmetic a commons decides in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Arithmetic {
    /// IEEE 754 binary64, as commons founded before state encoding 3 decided.
    #[default]
    Float,
    /// [`Fixed`]: integers only.
    Fixed,
}

impl Arithmetic {
    /// The arithmetic of a commons with `state_encoding`.
    pub fn of(state_encoding: u32) -> Arithmetic {
        if state_encoding >= 3 { Arithmetic::Fixed } else { Arithmetic::Float }
    }
}

/// What the decision algorithms need of a number.
pub trait Number:
    Copy
    + Debug
    + PartialEq
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    fn from_u64(n: u64) -> Self;
    /// A number read from the log (a ballot's weight, a cap) or a tolerance.
    fn from_f64(x: f64) -> Self;
    /// The value as the records store it.
    fn to_f64(self) -> f64;
    fn sqrt(self) -> Self;
    /// `self` · 2^(−`age` / `half_life`).
    fn decayed(self, age: u64, half_life: u64) -> Self;
    fn max(self, other: Self) -> Self;
    fn min(self, other: Self) -> Self;
    fn clamp(self, low: Self, high: Self) -> Self;
    fn abs(self) -> Self;
    fn total_cmp(&self, other: &Self) -> Ordering;
    /// Sums in order (an empty `f64` sum is −0, as the float fold always had it).
    fn sum<I: IntoIterator<Item = Self>>(items: I) -> Self;
    /// The bisection's next point between `low` and `high`, or `None` once they are as close as
    /// the arithmetic can tell apart.
    fn midpoint(low: Self, high: Self) -> Option<Self>;
    /// How far apart two results of a count of `total` may be and still be the same number: the
    /// rounding that many operations can gather. Nothing in `f64`, whose tolerances are absolute
    /// and far above its rounding; `total` · 2^−28 in fixed point, whose every product and
    /// quotient truncates by up to 2^−40 and a merged ballot multiplies that by its count.
    fn slack(total: Self) -> Self;
    /// Whether `a` > `share` · `b`.
    fn above(a: Self, share: f64, b: Self) -> bool;
    /// Whether `a` ≥ `share` · `b`.
    fn at_least(a: Self, share: f64, b: Self) -> bool;
}

impl Number for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;

    fn from_u64(n: u64) -> f64 {
        n as f64
    }

    fn from_f64(x: f64) -> f64 {
        x
    }

    fn to_f64(self) -> f64 {
        self
    }

    fn sqrt(self) -> f64 {
        f64::sqrt(self)
    }

    fn decayed(self, age: u64, half_life: u64) -> f64 {
        self * 0.5f64.powf(age as f64 / half_life as f64)
    }

    fn max(self, other: f64) -> f64 {
        f64::max(self, other)
    }

    fn min(self, other: f64) -> f64 {
        f64::min(self, other)
    }

    fn clamp(self, low: f64, high: f64) -> f64 {
        f64::clamp(self, low, high)
    }

    fn abs(self) -> f64 {
        f64::abs(self)
    }

    fn total_cmp(&self, other: &f64) -> Ordering {
        f64::total_cmp(self, other)
    }

    fn sum<I: IntoIterator<Item = f64>>(items: I) -> f64 {
        items.into_iter().sum()
    }

    fn midpoint(low: f64, high: f64) -> Option<f64> {
        (high - low > f64::EPSILON * high.max(f64::MIN_POSITIVE)).then(|| low + (high - low) / 2.0)
    }

    fn slack(_: f64) -> f64 {
        0.0
    }

    fn above(a: f64, share: f64, b: f64) -> bool {
        a > share * b
    }

    fn at_least(a: f64, share: f64, b: f64) -> bool {
        a >= share * b
    }
}

/// Fractional bits of [`Fixed`].
pub const FRACTION_BITS: u32 = 40;
const ONE_RAW: i128 = 1 << FRACTION_BITS;

/// Signed fixed point, 40 fractional bits in an `i128`: integers underneath, saturating at the
/// ends of the range, truncating toward −∞ after a multiplication and toward 0 after a division;
/// a division by zero is zero (the algorithms never divide by a zero they have not tested for).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fixed(i128);

impl Fixed {
    /// The value in units of 2^−40.
    pub fn raw(self) -> i128 {
        self.0
    }

    pub fn from_raw(raw: i128) -> Fixed {
        Fixed(raw)
    }
}

impl Add for Fixed {
    type Output = Fixed;
    fn add(self, other: Fixed) -> Fixed {
        Fixed(self.0.saturating_add(other.0))
    }
}

impl Sub for Fixed {
    type Output = Fixed;
    fn sub(self, other: Fixed) -> Fixed {
        Fixed(self.0.saturating_sub(other.0))
    }
}

impl Mul for Fixed {
    type Output = Fixed;
    fn mul(self, other: Fixed) -> Fixed {
        match self.0.checked_mul(other.0) {
            Some(product) => Fixed(product >> FRACTION_BITS),
            None if (self.0 < 0) != (other.0 < 0) => Fixed(i128::MIN),
            None => Fixed(i128::MAX),
        }
    }
}

impl Div for Fixed {
    type Output = Fixed;
    fn div(self, other: Fixed) -> Fixed {
        if other.0 == 0 {
            return Fixed(0);
        }
        match self.0.checked_mul(ONE_RAW) {
            Some(scaled) => Fixed(scaled / other.0),
            None => Fixed((self.0 / other.0).saturating_mul(ONE_RAW)),
        }
    }
}

impl Number for Fixed {
    const ZERO: Fixed = Fixed(0);
    const ONE: Fixed = Fixed(ONE_RAW);

    fn from_u64(n: u64) -> Fixed {
        Fixed(i128::from(n) << FRACTION_BITS)
    }

    /// The nearest value (halves away from zero); NaN is 0 and the infinities saturate. Scaling by
    /// 2^40 is exact in binary64 and rounding to an integer is exact, so no libm is involved.
    fn from_f64(x: f64) -> Fixed {
        Fixed((x * ONE_RAW as f64).round() as i128)
    }

    fn to_f64(self) -> f64 {
        self.0 as f64 / ONE_RAW as f64
    }

    /// The square root truncated to 40 fractional bits; 0 for a negative number.
    fn sqrt(self) -> Fixed {
        if self.0 <= 0 {
            return Fixed(0);
        }
        let raw = self.0 as u128;
        // sqrt(raw · 2^-40) · 2^40 = sqrt(raw · 2^40).
        match raw.checked_mul(ONE_RAW as u128) {
            Some(scaled) => Fixed(scaled.isqrt() as i128),
            None => Fixed((raw.isqrt() << (FRACTION_BITS / 2)) as i128),
        }
    }

    fn decayed(self, age: u64, half_life: u64) -> Fixed {
        let half_life = half_life.max(1);
        let halvings = age / half_life;
        if halvings >= 127 || self.0 == 0 {
            return Fixed(0);
        }
        // The fractional halving as 40 bits: 2^-(r/h) = Π 2^-(2^-k) over the bits k set in r/h.
        let fraction = (u128::from(age % half_life) << FRACTION_BITS) / u128::from(half_life);
        let table = halving_table();
        let mut factor: u128 = 1 << 64; // Q64
        for (k, root) in table.iter().enumerate() {
            if fraction & (1 << (FRACTION_BITS as usize - 1 - k)) != 0 {
                factor = (factor * root) >> 64;
            }
        }
        let magnitude = self.0.unsigned_abs();
        // magnitude · factor / 2^64, split so the product cannot overflow.
        let scaled = (magnitude >> 64) * factor + (((magnitude & u128::from(u64::MAX)) * factor) >> 64);
        let value = (scaled >> halvings).min(i128::MAX as u128) as i128;
        Fixed(if self.0 < 0 { -value } else { value })
    }

    fn max(self, other: Fixed) -> Fixed {
        Ord::max(self, other)
    }

    fn min(self, other: Fixed) -> Fixed {
        Ord::min(self, other)
    }

    fn clamp(self, low: Fixed, high: Fixed) -> Fixed {
        Ord::clamp(self, low, high)
    }

    fn abs(self) -> Fixed {
        Fixed(self.0.saturating_abs())
    }

    fn total_cmp(&self, other: &Fixed) -> Ordering {
        self.cmp(other)
    }

    fn sum<I: IntoIterator<Item = Fixed>>(items: I) -> Fixed {
        items.into_iter().fold(Fixed(0), |sum, x| sum + x)
    }

    fn midpoint(low: Fixed, high: Fixed) -> Option<Fixed> {
        (high.0 - low.0 > 1).then(|| Fixed(low.0 + (high.0 - low.0) / 2))
    }

    fn slack(total: Fixed) -> Fixed {
        Fixed((total.0.max(0) >> 28) + 1)
    }

    fn above(a: Fixed, share: f64, b: Fixed) -> bool {
        let (p, q) = simplest_fraction(share);
        // a > (p / q) · b  ⇔  a · q > p · b, with both sides in i128 or, past it, wider.
        compare_products(a.0, q, b.0, p) == Ordering::Greater
    }

    fn at_least(a: Fixed, share: f64, b: Fixed) -> bool {
        let (p, q) = simplest_fraction(share);
        compare_products(a.0, q, b.0, p) != Ordering::Less
    }
}

/// 2^(−2^−k) for k = 1..=40 in Q64, each the integer square root of the one before.
fn halving_table() -> &'static [u128; FRACTION_BITS as usize] {
    static TABLE: OnceLock<[u128; FRACTION_BITS as usize]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = [0u128; FRACTION_BITS as usize];
        // 2^-1/2 · 2^64 = sqrt(2^127).
        let mut root = (1u128 << 127).isqrt();
        for slot in &mut table {
            *slot = root;
            root = (root << 64).isqrt();
        }
        table
    })
}

/// The fraction p/q with the smallest q within 2^−40 of `share` (clamped to [0, 1]), found by
/// the continued fraction of `share` to 64 binary places: 0.6 is 3/5, 0.1 is 1/10 and
/// `2.0 / 3.0` is 2/3, whatever rounding their binary forms carry.
pub fn simplest_fraction(share: f64) -> (u64, u64) {
    if share.is_nan() || share <= 0.0 {
        return (0, 1);
    }
    if share >= 1.0 {
        return (1, 1);
    }
    // share to 64 binary places (exact scaling, exact rounding): far finer than the 2^-40 sought.
    let (numerator, denominator) = ((share * (1u128 << 64) as f64).round() as u128, 1u128 << 64);
    // Convergents h/k of numerator/denominator; stop at the first within 2^-40.
    let within = |h: u128, k: u128| {
        // |h/k - n/d| <= 2^-40  ⇔  |h·d - n·k| · 2^40 <= k·d (d = 2^64 and k <= 2^41 keep every
        // product but the last inside u128; that one is checked).
        let (hd, nk) = (h * denominator, numerator * k);
        let gap = hd.abs_diff(nk);
        gap.checked_mul(1 << FRACTION_BITS).is_some_and(|g| g <= k * denominator)
    };
    let (mut h0, mut h1, mut k0, mut k1) = (0u128, 1u128, 1u128, 0u128);
    let (mut n, mut d) = (numerator, denominator);
    while d != 0 {
        let a = n / d;
        let (h, k) = (a * h1 + h0, a * k1 + k0);
        (h0, h1, k0, k1) = (h1, h, k1, k);
        if within(h, k) || k > 1 << 40 {
            break;
        }
        (n, d) = (d, n - a * d);
    }
    (h1 as u64, k1 as u64)
}

/// The order of x·y against u·v, exactly: x, u ∈ i128 and y, v below 2^64.
fn compare_products(x: i128, y: u64, u: i128, v: u64) -> Ordering {
    match (x.checked_mul(i128::from(y)), u.checked_mul(i128::from(v))) {
        (Some(left), Some(right)) => left.cmp(&right),
        // Out of i128: compare signs, then magnitudes as 192-bit numbers.
        _ => {
            let sign = |a: i128| a.signum();
            match sign(x).cmp(&sign(u)) {
                Ordering::Equal if x >= 0 => wide(x.unsigned_abs(), y).cmp(&wide(u.unsigned_abs(), v)),
                Ordering::Equal => wide(u.unsigned_abs(), v).cmp(&wide(x.unsigned_abs(), y)),
                unequal => unequal,
            }
        }
    }
}

/// a · b as (high 128 bits, low 64 bits) of the 192-bit product, comparable as a pair.
fn wide(a: u128, b: u64) -> (u128, u64) {
    let b = u128::from(b);
    let low = (a & u128::from(u64::MAX)) * b;
    let high = (a >> 64) * b + (low >> 64);
    (high, low as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shares_are_read_as_the_fractions_people_write() {
        assert_eq!(simplest_fraction(0.6), (3, 5));
        assert_eq!(simplest_fraction(0.1), (1, 10));
        assert_eq!(simplest_fraction(0.15), (3, 20));
        assert_eq!(simplest_fraction(2.0 / 3.0), (2, 3));
        assert_eq!(simplest_fraction(0.5), (1, 2));
        assert_eq!(simplest_fraction(0.0), (0, 1));
        assert_eq!(simplest_fraction(1.0), (1, 1));
        assert_eq!(simplest_fraction(f64::NAN), (0, 1));
        assert_eq!(simplest_fraction(1e-30), (0, 1));
    }

    #[test]
    fn thresholds_compare_exactly_where_binary_fractions_would_round() {
        let n = Fixed::from_u64;
        // 3 of 5 is not more than 0.6, and 1 of 10 is at least 0.1.
        assert!(!Fixed::above(n(3), 0.6, n(5)));
        assert!(Fixed::above(n(3) + Fixed(1), 0.6, n(5)));
        assert!(Fixed::at_least(n(1), 0.1, n(10)));
        assert!(!Fixed::at_least(n(1) - Fixed(1), 0.1, n(10)));
        // 2 of 3 is not more than two thirds; 200,001 of 300,000 is.
        assert!(!Fixed::above(n(2), 2.0 / 3.0, n(3)));
        assert!(Fixed::above(n(200_001), 2.0 / 3.0, n(300_000)));
        // Far past i128 the order is still exact.
        let huge = Fixed(i128::MAX / 2);
        assert!(Fixed::above(huge, 0.5, Fixed(i128::MAX / 2 - 1) + Fixed(i128::MAX / 2 - 1)));
        assert!(!Fixed::above(huge, 0.5, huge + huge));
    }

    #[test]
    fn decay_halves_per_half_life_in_integers() {
        let hundred = Fixed::from_u64(100);
        assert_eq!(hundred.decayed(0, 10), hundred);
        assert_eq!(hundred.decayed(10, 10), Fixed::from_u64(50));
        assert_eq!(hundred.decayed(30, 10), Fixed::from_u64(25) / Fixed::from_u64(2));
        // Half a half-life: 100/sqrt(2) to about 12 digits.
        let half = hundred.decayed(5, 10).to_f64();
        assert!((half - 100.0 / 2f64.sqrt()).abs() < 1e-9, "{half}");
        assert_eq!(hundred.decayed(u64::MAX, 1), Fixed::ZERO);
    }

    #[test]
    fn square_roots_are_truncated_integers() {
        assert_eq!(Fixed::from_u64(49).sqrt(), Fixed::from_u64(7));
        assert_eq!(Fixed::ZERO.sqrt(), Fixed::ZERO);
        let two = Fixed::from_u64(2).sqrt().to_f64();
        assert!((two - std::f64::consts::SQRT_2).abs() < 1e-12);
        assert!(Fixed(i128::MAX).sqrt() > Fixed::ZERO);
    }

    #[test]
    fn nothing_overflows() {
        let big = Fixed(i128::MAX);
        assert_eq!(big + big, big);
        assert_eq!(big * big, big);
        assert_eq!(Fixed(i128::MIN) * big, Fixed(i128::MIN));
        assert_eq!(big / Fixed::ZERO, Fixed::ZERO);
        assert!(big / Fixed(1) > Fixed::ZERO);
        assert_eq!(Fixed::from_f64(f64::NAN), Fixed::ZERO);
    }

    proptest! {
        #[test]
        fn the_simplest_fraction_is_within_resolution(share in 0.0f64..1.0) {
            let (p, q) = simplest_fraction(share);
            prop_assert!(q > 0 && p <= q);
            prop_assert!((p as f64 / q as f64 - share).abs() <= 2f64.powi(-40) * 1.0001, "{share} -> {p}/{q}");
        }

        #[test]
        fn comparisons_agree_with_rationals(a in 0u32..1000, b in 1u32..1000, p in 0u32..100, q in 1u32..100) {
            let share = f64::from(p.min(q)) / f64::from(q);
            let (sp, sq) = simplest_fraction(share);
            let exact = u64::from(a) * sq > sp * u64::from(b);
            prop_assert_eq!(Fixed::above(Fixed::from_u64(a.into()), share, Fixed::from_u64(b.into())), exact);
        }
    }
}
