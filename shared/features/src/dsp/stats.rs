//! Summary statistics with numpy/scipy definitions (population moments, linear
//! percentile interpolation), computed without allocating.
//!
//! Sums run in [`LANES`] independent accumulators, added together at the end. One
//! accumulator makes every addition wait for the previous one (about 4 cycles each);
//! several let the additions overlap and the compiler use SIMD. The rounding differs
//! from a left-to-right sum by a few ulps, as numpy's own pairwise summation does.

/// Accumulators per sum.
pub const LANES: usize = 4;

/// `Σ f(x[i])` in [`LANES`] accumulators.
#[inline]
pub fn sum_by(x: &[f64], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for &v in tail {
        s += f(v);
    }
    s
}

/// `Σ f(a[i], b[i])` over the common length, in [`LANES`] accumulators.
#[inline]
pub fn sum_pairs(a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += f(x[i], y[i]);
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (&x, &y) in ta.iter().zip(tb) {
        s += f(x, y);
    }
    s
}

/// Mean of `x` (0 for empty input).
pub fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        0.0
    } else {
        sum_by(x, |v| v) / x.len() as f64
    }
}

/// Central moments of a signal: standard deviation (ddof = 0), skewness (biased,
/// `scipy.stats.skew`) and excess kurtosis (biased, `scipy.stats.kurtosis`). A
/// (numerically) constant signal has skewness and kurtosis 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    /// Standard deviation.
    pub std: f64,
    /// Skewness.
    pub skewness: f64,
    /// Excess kurtosis.
    pub kurtosis: f64,
}

/// Moments of a zero-mean signal `x` (callers remove the mean first).
pub fn moments_zero_mean(x: &[f64]) -> Moments {
    let n = x.len().max(1) as f64;
    let (mut a2, mut a3, mut a4) = ([0.0; LANES], [0.0; LANES], [0.0; LANES]);
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            let v2 = c[i] * c[i];
            a2[i] += v2;
            a3[i] += v2 * c[i];
            a4[i] += v2 * v2;
        }
    }
    let fold = |a: [f64; LANES]| (a[0] + a[1]) + (a[2] + a[3]);
    let (mut m2, mut m3, mut m4) = (fold(a2), fold(a3), fold(a4));
    for &v in tail {
        let v2 = v * v;
        m2 += v2;
        m3 += v2 * v;
        m4 += v2 * v2;
    }
    m2 /= n;
    m3 /= n;
    m4 /= n;
    if m2 <= 1e-18 {
        return Moments {
            std: m2.max(0.0).sqrt(),
            skewness: 0.0,
            kurtosis: 0.0,
        };
    }
    Moments {
        std: m2.sqrt(),
        skewness: m3 / m2.powf(1.5),
        kurtosis: m4 / (m2 * m2) - 3.0,
    }
}

/// Percentiles `q` (0..=100) of `x` with numpy's default linear interpolation, using
/// `scratch` (same length as `x`) as working space. `out[i]` receives percentile
/// `qs[i]`. O(n) per percentile (selection, not sorting).
pub fn percentiles(x: &[f64], qs: &[f64], scratch: &mut [f64], out: &mut [f64]) {
    let n = x.len();
    if n == 0 {
        out.fill(0.0);
        return;
    }
    scratch[..n].copy_from_slice(x);
    let s = &mut scratch[..n];
    for (q, o) in qs.iter().zip(out.iter_mut()) {
        let pos = q / 100.0 * (n - 1) as f64;
        let lo = pos.floor() as usize;
        let frac = pos - lo as f64;
        let (_, &mut lo_v, right) = s.select_nth_unstable_by(lo, f64::total_cmp);
        let hi_v = if frac > 0.0 && !right.is_empty() {
            right.iter().copied().fold(f64::INFINITY, f64::min)
        } else {
            lo_v
        };
        *o = lo_v + frac * (hi_v - lo_v);
    }
}

/// Order-preserving map from f64 to i64 (IEEE total order), so selection can compare
/// plain integers instead of calling `f64::total_cmp` per comparison.
fn order_key(v: f64) -> i64 {
    let b = v.to_bits() as i64;
    b ^ (((b >> 63) as u64) >> 1) as i64
}

fn from_order_key(k: i64) -> f64 {
    f64::from_bits((k ^ (((k >> 63) as u64) >> 1) as i64) as u64)
}

/// Working space for [`p10_p90`], allocated once for a window length.
#[derive(Debug, Clone)]
pub struct PercentileScratch {
    keys: Vec<i64>,
    sample: Vec<i64>,
    low: Vec<i64>,
    high: Vec<i64>,
}

/// Every how many elements [`p10_p90`] samples its thresholds.
const SAMPLE_STRIDE: usize = 8;

impl PercentileScratch {
    /// Space for signals of up to `n` values.
    pub fn new(n: usize) -> Self {
        PercentileScratch {
            keys: vec![0; n],
            sample: vec![0; n.div_ceil(SAMPLE_STRIDE)],
            low: vec![0; n],
            high: vec![0; n],
        }
    }
}

/// Rank and interpolation weight of percentile `q` (a fraction) among `n` values, as
/// numpy's linear method places it.
fn rank_of(q: f64, n: usize) -> (usize, f64) {
    let pos = q * (n - 1) as f64;
    let r = pos.floor() as usize;
    (r, pos - r as f64)
}

/// Value at rank `r` of `keys` (selection in place), interpolated towards rank `r + 1`
/// with weight `frac`; `keys` must hold every element of rank up to `r + 1` when
/// `frac > 0`.
fn interpolated(keys: &mut [i64], r: usize, frac: f64) -> f64 {
    let (_, lo, right) = keys.select_nth_unstable(r);
    let lo = from_order_key(*lo);
    match right.iter().min() {
        Some(&hi) if frac > 0.0 => lo + frac * (from_order_key(hi) - lo),
        _ => lo,
    }
}

/// The 10th and 90th percentiles (numpy's linear interpolation) of `x` (at most the
/// scratch's length). Same result as [`percentiles`], about five times as fast for a
/// window of 256.
///
/// Selection runs on integer order keys, not on floats with `total_cmp`. It does not
/// select among all `n` values: every 8th value is sorted, which gives a threshold
/// below which a few more than the needed smallest values lie (and one above which
/// the largest lie). Only the values beyond the thresholds, gathered without branches,
/// go through selection. When a threshold gathers too few (possible for adversarial
/// orderings), the whole signal is selected instead, so the result is always exact.
pub fn p10_p90(x: &[f64], scratch: &mut PercentileScratch) -> (f64, f64) {
    let n = x.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let PercentileScratch {
        keys,
        sample,
        low,
        high,
    } = scratch;
    let keys = &mut keys[..n];
    for (k, &v) in keys.iter_mut().zip(x) {
        *k = order_key(v);
    }
    let (r10, f10) = rank_of(0.1, n);
    let (r90, f90) = rank_of(0.9, n);
    // The smallest `need_low` values hold ranks r10 and r10 + 1; the largest
    // `need_high` hold ranks r90 and above.
    let need_low = (r10 + 2).min(n);
    let need_high = n - r90;
    let m = n.div_ceil(SAMPLE_STRIDE);
    if m >= 8 {
        let sample = &mut sample[..m];
        for (s, &k) in sample
            .iter_mut()
            .zip(keys.iter().skip(SAMPLE_STRIDE / 2).step_by(SAMPLE_STRIDE))
        {
            *s = k;
        }
        // `n / 2` is not a multiple of the stride: the sample may be one short.
        let m = keys
            .iter()
            .skip(SAMPLE_STRIDE / 2)
            .step_by(SAMPLE_STRIDE)
            .len();
        let sample = &mut sample[..m];
        sample.sort_unstable();
        let margin = |need: usize| (need.div_ceil(SAMPLE_STRIDE) + 2).min(m - 1);
        let t_low = sample[margin(need_low)];
        let t_high = sample[m - 1 - margin(need_high)];
        let (mut nl, mut nh) = (0, 0);
        for &k in keys.iter() {
            low[nl] = k;
            nl += (k <= t_low) as usize;
            high[nh] = k;
            nh += (k >= t_high) as usize;
        }
        if nl >= need_low && nh >= need_high {
            let p10 = interpolated(&mut low[..nl], r10, f10);
            // `high` holds the `nh` largest: global rank r is rank r - (n - nh) there.
            let p90 = interpolated(&mut high[..nh], r90 - (n - nh), f90);
            return (p10, p90);
        }
    }
    let p10 = interpolated(keys, r10, f10);
    let p90 = interpolated(keys, r90, f90);
    (p10, p90)
}

/// Rate of sign changes per second of a zero-mean signal sampled at `fs` Hz: the
/// count of `i` with `(x[i-1] < 0) != (x[i] < 0)` divided by the duration `n / fs`.
pub fn zero_cross_rate(x: &[f64], fs: f64) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    // Branch-free count (the signs of a signal change unpredictably).
    let crossings: u32 = x[..x.len() - 1]
        .iter()
        .zip(&x[1..])
        .map(|(&a, &b)| ((a < 0.0) != (b < 0.0)) as u32)
        .sum();
    crossings as f64 / (x.len() as f64 / fs)
}

/// Mean absolute first difference times `fs` (mean absolute jerk for acceleration).
pub fn mean_abs_diff_rate(x: &[f64], fs: f64) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    sum_pairs(&x[..x.len() - 1], &x[1..], |a, b| (b - a).abs()) / (x.len() - 1) as f64 * fs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_match_numpy_linear() {
        // np.percentile([5, 1, 4, 2, 3], [10, 50, 90, 0, 100]) = [1.4, 3, 4.6, 1, 5]
        let x = [5.0, 1.0, 4.0, 2.0, 3.0];
        let mut scratch = [0.0; 5];
        let mut out = [0.0; 5];
        percentiles(&x, &[10.0, 50.0, 90.0, 0.0, 100.0], &mut scratch, &mut out);
        let want = [1.4, 3.0, 4.6, 1.0, 5.0];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-12, "{out:?}");
        }
    }

    fn check_against_full_selection(x: &[f64]) {
        let n = x.len();
        let mut scratch = vec![0.0; n];
        let mut want = [0.0; 2];
        percentiles(x, &[10.0, 90.0], &mut scratch, &mut want);
        let mut scratch = PercentileScratch::new(n);
        let got = p10_p90(x, &mut scratch);
        assert_eq!((got.0, got.1), (want[0], want[1]), "n {n}: {x:?}");
    }

    #[test]
    fn key_selection_percentiles_equal_float_selection() {
        let mut state = 12345u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % 1000) as f64 / 7.0 - 60.0
        };
        assert_eq!(from_order_key(order_key(-0.5)), -0.5);
        assert!(order_key(-1.0) < order_key(-0.5) && order_key(-0.5) < order_key(0.0));
        assert!(order_key(0.0) < order_key(1e-300) && order_key(1.0) < order_key(2.0));
        for n in [
            1usize, 2, 3, 10, 11, 63, 64, 65, 71, 72, 255, 256, 257, 1000,
        ] {
            for _ in 0..20 {
                let x: Vec<f64> = (0..n).map(|_| next()).collect();
                check_against_full_selection(&x);
            }
            // Orders and values that defeat the sampled thresholds, so the fallback
            // runs: sorted either way, constant, two values, and the sampled
            // positions holding the extremes.
            let ramp: Vec<f64> = (0..n).map(|i| i as f64).collect();
            check_against_full_selection(&ramp);
            let down: Vec<f64> = ramp.iter().rev().copied().collect();
            check_against_full_selection(&down);
            check_against_full_selection(&vec![2.5; n]);
            let two: Vec<f64> = (0..n).map(|i| (i % 2) as f64 - 0.0).collect();
            check_against_full_selection(&two);
            let spikes: Vec<f64> = (0..n)
                .map(|i| match i % SAMPLE_STRIDE {
                    4 => -1e6 - i as f64,
                    0 => 1e6 + i as f64,
                    _ => next(),
                })
                .collect();
            check_against_full_selection(&spikes);
            let zeros: Vec<f64> = (0..n)
                .map(|i| if i % 3 == 0 { -0.0 } else { 0.0 })
                .collect();
            check_against_full_selection(&zeros);
        }
    }

    #[test]
    fn moments_of_known_signals() {
        let x = [-1.0, 1.0, -1.0, 1.0];
        let m = moments_zero_mean(&x);
        assert!((m.std - 1.0).abs() < 1e-12);
        assert!(m.skewness.abs() < 1e-12);
        assert!((m.kurtosis + 2.0).abs() < 1e-12);
        let z = moments_zero_mean(&[0.0; 8]);
        assert_eq!((z.std, z.skewness, z.kurtosis), (0.0, 0.0, 0.0));
        assert_eq!(zero_cross_rate(&x, 4.0), 3.0);
        assert_eq!(mean_abs_diff_rate(&x, 1.0), 2.0);
    }
}
