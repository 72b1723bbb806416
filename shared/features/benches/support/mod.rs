//! Shared by the DSP benches: one hour of 100 Hz 6-axis walking data and the bare FFT
//! work of the pipeline's windows (the floor).
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use realfft::RealFftPlanner;
use realfft::num_complex::Complex;
use tacit_features::dsp::MotionSample;

/// `--name V` from the command line, else `default`.
pub fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One hour at 100 Hz with 20% timestamp jitter, accelerometer and gyroscope.
pub fn hour_of_walking() -> Vec<MotionSample> {
    walking(3600.0)
}

/// `seconds` of the same walk (a short run for the smoke test of the bench binaries).
pub fn walking(seconds: f64) -> Vec<MotionSample> {
    let rate = 100.0;
    let n = (seconds * rate) as usize;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let tau = 2.0 * std::f64::consts::PI;
    (0..n)
        .map(|i| {
            let t_ns = ((i as f64 + 0.2 * rnd()) * 1e7) as i64 + 1_000_000_000;
            let t = t_ns as f64 * 1e-9;
            // Cadence drifts slowly between 1.6 and 2.0 steps/s.
            let cadence = 1.8 + 0.2 * (tau * t / 600.0).sin();
            let step = tau * cadence * t;
            let up = 2.5 * step.sin() + 0.8 * (2.0 * step).sin() + 0.6 * (0.5 * step).sin();
            let fw = 1.2 * (step + 0.7).sin();
            let lat = 0.7 * (0.5 * step).sin();
            MotionSample {
                t_ns,
                accel: [
                    0.3 * fw + lat + 0.3 * rnd(),
                    0.8 * fw + 0.2 * up + 0.3 * rnd(),
                    9.81 + up + 0.3 * rnd(),
                ],
                gyro: Some([0.1 * rnd(), 0.1 * rnd(), 0.1 * rnd()]),
            }
        })
        .collect()
}

/// The transforms the pipeline runs per window (3 real FFTs of 256, one real FFT and
/// one inverse of 512), with nothing around them.
pub struct FftFloor {
    f256: Arc<dyn realfft::RealToComplex<f64>>,
    f512: Arc<dyn realfft::RealToComplex<f64>>,
    i512: Arc<dyn realfft::ComplexToReal<f64>>,
    a: Vec<f64>,
    b: Vec<f64>,
    sa: Vec<Complex<f64>>,
    sb: Vec<Complex<f64>>,
    scratch: Vec<Complex<f64>>,
}

impl FftFloor {
    pub fn new() -> Self {
        let mut p = RealFftPlanner::<f64>::new();
        let (f256, f512, i512) = (
            p.plan_fft_forward(256),
            p.plan_fft_forward(512),
            p.plan_fft_inverse(512),
        );
        let scratch = vec![Complex::new(0.0, 0.0); 1024];
        FftFloor {
            sa: f256.make_output_vec(),
            sb: f512.make_output_vec(),
            f256,
            f512,
            i512,
            a: vec![0.0; 256],
            b: vec![0.0; 512],
            scratch,
        }
    }

    /// One window's transforms over `x` (256 values). Returns a checksum.
    pub fn window(&mut self, x: &[f64], full: bool) -> f64 {
        let rounds = if full { 3 } else { 1 };
        for _ in 0..rounds {
            self.a.copy_from_slice(x);
            self.f256
                .process_with_scratch(&mut self.a, &mut self.sa, &mut self.scratch)
                .unwrap();
        }
        if full {
            self.b[..256].copy_from_slice(x);
            self.b[256..].fill(0.0);
            self.f512
                .process_with_scratch(&mut self.b, &mut self.sb, &mut self.scratch)
                .unwrap();
            for c in self.sb.iter_mut() {
                *c = Complex::new(c.norm_sqr(), 0.0);
            }
            self.i512
                .process_with_scratch(&mut self.sb, &mut self.b, &mut self.scratch)
                .unwrap();
        }
        self.sa[3].re + self.b[1]
    }
}

/// Every window start of the resampled hour (50 Hz, 256 samples, hop 128), as
/// offsets into a 50 Hz signal of the same length.
pub fn window_count(samples: &[MotionSample]) -> usize {
    let secs = (samples[samples.len() - 1].t_ns - samples[0].t_ns) as f64 * 1e-9;
    let n = (secs * 50.0) as usize + 1;
    (n - 256) / 128 + 1
}
