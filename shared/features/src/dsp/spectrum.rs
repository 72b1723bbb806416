//! Windowed real FFTs with plans made once and buffers reused: after construction,
//! nothing here allocates.
//!
//! Real-to-complex transforms come from `realfft`, which runs a half-length complex
//! FFT from `rustfft` plus one post-processing pass.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

/// The periodic Hann window of length `n`: `0.5 - 0.5 cos(2πi/n)` (scipy's
/// `get_window("hann", n)`), the usual choice for spectral analysis.
pub fn hann(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect()
}

/// Forward FFT of length `n` with an optional window, plus the autocorrelation of a
/// length-`n` signal through a zero-padded `2n` transform pair. Owns every buffer.
pub struct SpectrumWorkspace {
    n: usize,
    window: Vec<f64>,
    fwd: Arc<dyn RealToComplex<f64>>,
    fwd2: Arc<dyn RealToComplex<f64>>,
    inv2: Arc<dyn ComplexToReal<f64>>,
    input: Vec<f64>,
    input2: Vec<f64>,
    spectrum: Vec<Complex<f64>>,
    spectrum2: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

impl SpectrumWorkspace {
    /// Plans the transforms for windows of `n` samples (`n` even).
    pub fn new(n: usize) -> Self {
        let mut planner = RealFftPlanner::<f64>::new();
        let fwd = planner.plan_fft_forward(n);
        let fwd2 = planner.plan_fft_forward(2 * n);
        let inv2 = planner.plan_fft_inverse(2 * n);
        let scratch_len = fwd
            .get_scratch_len()
            .max(fwd2.get_scratch_len())
            .max(inv2.get_scratch_len());
        SpectrumWorkspace {
            n,
            window: hann(n),
            input: vec![0.0; n],
            input2: vec![0.0; 2 * n],
            spectrum: fwd.make_output_vec(),
            spectrum2: fwd2.make_output_vec(),
            scratch: vec![Complex::new(0.0, 0.0); scratch_len],
            fwd,
            fwd2,
            inv2,
        }
    }

    /// Window length.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Always false (a workspace has a positive length).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Hann-windowed power spectrum `|X[k]|²`, k = 0..=n/2, written into `power`.
    /// `x.len()` and `power.len()` must be `n` and `n/2 + 1`.
    pub fn hann_power(&mut self, x: &[f64], power: &mut [f64]) {
        for ((dst, &v), &w) in self.input.iter_mut().zip(x).zip(&self.window) {
            *dst = v * w;
        }
        self.forward(power, false);
    }

    /// Hann-windowed magnitude spectrum `|X[k]|`.
    pub fn hann_magnitude(&mut self, x: &[f64], magnitude: &mut [f64]) {
        for ((dst, &v), &w) in self.input.iter_mut().zip(x).zip(&self.window) {
            *dst = v * w;
        }
        self.forward(magnitude, true);
    }

    /// Unwindowed magnitude spectrum (for comparisons with a plain `np.fft.rfft`).
    pub fn plain_magnitude(&mut self, x: &[f64], magnitude: &mut [f64]) {
        self.input.copy_from_slice(x);
        self.forward(magnitude, true);
    }

    fn forward(&mut self, out: &mut [f64], magnitude: bool) {
        // Lengths are fixed at construction, so the transform cannot fail.
        let _ =
            self.fwd
                .process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch);
        for (o, c) in out.iter_mut().zip(&self.spectrum) {
            let p = c.norm_sqr();
            *o = if magnitude { p.sqrt() } else { p };
        }
    }

    /// Biased autocorrelation `r[k] = Σ x[i] x[i+k]` for k = 0..n, via a zero-padded
    /// FFT of length 2n (no circular wrap-around).
    pub fn autocorrelation(&mut self, x: &[f64], r: &mut [f64]) {
        self.input2[..self.n].copy_from_slice(x);
        self.input2[self.n..].fill(0.0);
        let _ = self.fwd2.process_with_scratch(
            &mut self.input2,
            &mut self.spectrum2,
            &mut self.scratch,
        );
        for c in self.spectrum2.iter_mut() {
            *c = Complex::new(c.norm_sqr(), 0.0);
        }
        let _ = self.inv2.process_with_scratch(
            &mut self.spectrum2,
            &mut self.input2,
            &mut self.scratch,
        );
        let scale = 1.0 / (2 * self.n) as f64;
        for (o, v) in r.iter_mut().zip(&self.input2) {
            *o = v * scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pure_tone_peaks_at_its_bin() {
        let n = 256;
        let mut ws = SpectrumWorkspace::new(n);
        let k0 = 10.0;
        let x: Vec<f64> = (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * k0 * i as f64 / n as f64).sin())
            .collect();
        let mut mag = vec![0.0; n / 2 + 1];
        ws.plain_magnitude(&x, &mut mag);
        let peak = mag
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        assert_eq!(peak, 10);
        assert!((mag[10] - n as f64 / 2.0).abs() < 1e-9);
    }

    #[test]
    fn autocorrelation_matches_direct_sum() {
        let n = 64;
        let mut ws = SpectrumWorkspace::new(n);
        let x: Vec<f64> = (0..n).map(|i| ((i * 7919) % 13) as f64 - 6.0).collect();
        let mut r = vec![0.0; n];
        ws.autocorrelation(&x, &mut r);
        for k in 0..n {
            let direct: f64 = (0..n - k).map(|i| x[i] * x[i + k]).sum();
            assert!(
                (r[k] - direct).abs() < 1e-9,
                "lag {k}: {} vs {direct}",
                r[k]
            );
        }
    }
}
