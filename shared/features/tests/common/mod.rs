//! Synthetic motion for tests: a walker with a given cadence, phone orientation and
//! timestamp jitter, and a phone lying still.
#![allow(dead_code, missing_docs)]

use tacit_features::dsp::MotionSample;

/// Small deterministic PRNG (xorshift), so tests need no extra crates.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.next_f64().max(1e-12), self.next_f64());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Rotation matrix from yaw/pitch/roll (radians).
pub fn rotation(yaw: f64, pitch: f64, roll: f64) -> [[f64; 3]; 3] {
    let (cy, sy, cp, sp, cr, sr) = (
        yaw.cos(),
        yaw.sin(),
        pitch.cos(),
        pitch.sin(),
        roll.cos(),
        roll.sin(),
    );
    [
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ]
}

pub fn rotate(r: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    [
        r[0][0] * v[0] + r[0][1] * v[1] + r[0][2] * v[2],
        r[1][0] * v[0] + r[1][1] * v[1] + r[1][2] * v[2],
        r[2][0] * v[0] + r[2][1] * v[1] + r[2][2] * v[2],
    ]
}

/// A walker: vertical acceleration at the step frequency with stride harmonics,
/// forward/lateral sway, noise; seen by a phone in orientation `rot`, sampled at
/// `rate_hz` with timestamp jitter (fraction of the period).
pub fn walker(
    seconds: f64,
    rate_hz: f64,
    cadence: f64,
    rot: &[[f64; 3]; 3],
    jitter: f64,
    seed: u64,
) -> Vec<MotionSample> {
    let mut rng = Rng(seed | 1);
    let period = 1e9 / rate_hz;
    let n = (seconds * rate_hz) as usize;
    let tau = 2.0 * std::f64::consts::PI;
    (0..n)
        .map(|i| {
            let t_ns = (i as f64 * period + jitter * period * (rng.next_f64() - 0.5)) as i64
                + 1_000_000_000;
            let t = t_ns as f64 / 1e9;
            let step = tau * cadence * t;
            let vertical = 2.5 * step.sin() + 0.8 * (2.0 * step).sin() + 0.6 * (0.5 * step).sin();
            let forward = 1.2 * (step + 0.7).sin() + 0.3 * (0.5 * step + 0.2).sin();
            let lateral = 0.7 * (0.5 * step).sin();
            let world = [
                lateral + 0.15 * rng.normal(),
                forward + 0.15 * rng.normal(),
                9.81 + vertical + 0.15 * rng.normal(),
            ];
            MotionSample {
                t_ns,
                accel: rotate(rot, world),
                gyro: Some([0.01, 0.02, 0.03]),
            }
        })
        .collect()
}

/// A phone lying still: gravity plus sensor noise.
pub fn still(seconds: f64, rate_hz: f64, seed: u64) -> Vec<MotionSample> {
    let mut rng = Rng(seed | 1);
    let n = (seconds * rate_hz) as usize;
    (0..n)
        .map(|i| MotionSample {
            t_ns: (i as f64 * 1e9 / rate_hz) as i64,
            accel: [
                0.02 * rng.normal(),
                0.02 * rng.normal(),
                9.81 + 0.02 * rng.normal(),
            ],
            gyro: None,
        })
        .collect()
}
