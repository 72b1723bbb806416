//! Second-order Butterworth low-pass filter (biquad, direct form II transposed), used
//! to separate gravity from body acceleration.
//!
//! Coefficients are the bilinear transform with prewarping, identical to
//! `scipy.signal.butter(2, fc, fs=fs)`; the state starts in the steady state of the
//! first input (scipy's `lfilter_zi * x[0]`), so a stationary signal passes unchanged
//! from the first sample instead of ringing up from zero.

/// A biquad low-pass for one channel.
#[derive(Debug, Clone, Copy)]
pub struct LowPass {
    b: [f64; 3],
    a: [f64; 2],
    z: [f64; 2],
    primed: bool,
}

impl LowPass {
    /// Butterworth low-pass with cut-off `fc_hz` at sample rate `fs_hz`.
    pub fn butterworth(fc_hz: f64, fs_hz: f64) -> Self {
        let k = (std::f64::consts::PI * fc_hz / fs_hz).tan();
        let sqrt2 = std::f64::consts::SQRT_2;
        let norm = 1.0 / (1.0 + sqrt2 * k + k * k);
        let b0 = k * k * norm;
        LowPass {
            b: [b0, 2.0 * b0, b0],
            a: [2.0 * (k * k - 1.0) * norm, (1.0 - sqrt2 * k + k * k) * norm],
            z: [0.0; 2],
            primed: false,
        }
    }

    /// Coefficients `(b, a)` with `a[0] = 1` implied, for tests.
    pub fn coefficients(&self) -> ([f64; 3], [f64; 2]) {
        (self.b, self.a)
    }

    /// Forgets the state; the next sample primes it again.
    pub fn reset(&mut self) {
        self.primed = false;
    }

    /// Filters one sample.
    pub fn step(&mut self, x: f64) -> f64 {
        let [b0, b1, b2] = self.b;
        let [a1, a2] = self.a;
        if !self.primed {
            self.z[1] = (b2 - a2) * x;
            self.z[0] = (b1 - a1) * x + self.z[1];
            self.primed = true;
        }
        let y = b0 * x + self.z[0];
        self.z[0] = b1 * x - a1 * y + self.z[1];
        self.z[1] = b2 * x - a2 * y;
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_scipy_butter_coefficients() {
        // scipy.signal.butter(2, 0.3, fs=50): b = [3.4604e-4, 6.9208e-4, 3.4604e-4],
        // a = [1, -1.94669754, 0.94808170]
        let (b, a) = LowPass::butterworth(0.3, 50.0).coefficients();
        assert!((b[0] - 3.460_413_7e-4).abs() < 1e-9, "{b:?}");
        assert!((a[0] + 1.946_697_54).abs() < 1e-7, "{a:?}");
        assert!((a[1] - 0.948_081_70).abs() < 1e-7, "{a:?}");
    }

    #[test]
    fn constant_input_passes_unchanged_and_step_settles() {
        let mut f = LowPass::butterworth(0.3, 50.0);
        for _ in 0..10 {
            assert!((f.step(9.81) - 9.81).abs() < 1e-12);
        }
        let mut y = 0.0;
        for _ in 0..2000 {
            y = f.step(0.0);
        }
        assert!(y.abs() < 1e-6);
    }
}
