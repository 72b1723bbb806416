//! Synthetic gait: a phone in the front trouser pocket of a walking person.
//!
//! The body's acceleration is a Fourier series in the *stride* phase (one stride = two
//! steps) on three body axes — anterior-posterior (AP), medio-lateral (ML) and vertical
//! (V) — with [`HARMONICS`] harmonics each. A person is a harmonic profile (amplitude
//! and phase per axis and harmonic), a cadence, a thigh swing (the pocket rotates with
//! the leg, which moves gravity between the phone's axes once per stride) and the way
//! the phone sits in the pocket. A walk then adds, per stride, a new stride duration
//! (coefficient of variation ≈ 2%, with a slow wander of the pace) and a slightly
//! different waveform; per session (day), a small drift of every parameter and a new
//! pocket orientation; per sample, irregular timestamps around 50 Hz and sensor noise.
//!
//! Fitted to / checked against the Hoang et al. Nexus One recordings in
//! `shared/data/gait/hoang-nexusone` (19 people, front trouser pocket, 25 Hz) as the
//! phone's gait pipeline sees them (real → simulated, per-person means, mean ± sd
//! across people): cadence 1.82 ± 0.15 → 1.81 ± 0.11 steps/s; `v_std` 2.9 → 3.3,
//! `h_std` 1.9 → 1.7, `m_std` 2.9 → 3.0 m/s²; the stride-harmonic profile of |a|
//! (1st 0.08 → 0.08, 2nd — the step — 0.35 → 0.38, 3rd 0.19 → 0.15); spectral
//! centroid 3.5 → 3.3 Hz; flatness 0.056 → 0.062; 98% → 98% of windows detected as
//! walking. The harmonic amplitudes, noise and jostle were set from those numbers; the
//! mean phases were chosen for the real skewness of the vertical signal (−0.2). The
//! size of the differences between people and within a person (day-to-day drift, the
//! coherent "vigour" variation) is not measured directly: it was set so that the
//! one-class scaled-Manhattan window EER is of the order of the real one (simulated
//! 0.07, real 0.106). `tests/real_data.rs` checks these against the files.

use tacit_features::dsp::MotionSample;

use crate::rng::{Draw, SplitMix64, derive};

/// Harmonics of the stride frequency per axis (the 16th of a 0.9 Hz stride is 14.6 Hz,
/// below the 25 Hz Nyquist limit of 50 Hz sampling).
pub const HARMONICS: usize = 16;

/// Gravity used by the simulator (m/s²).
pub const GRAVITY: f64 = 9.81;

/// Longest walk or still period one call produces (s); longer requests are cut.
pub const MAX_SECONDS: f64 = 86_400.0;

/// Axis order of the body frame in [`GaitProfile`]: anterior-posterior (forward).
pub const AP: usize = 0;
/// Medio-lateral (to the left).
pub const ML: usize = 1;
/// Vertical (up).
pub const V: usize = 2;

/// Population-mean amplitude (m/s²) of each stride harmonic, per axis `[AP, ML, V]`.
/// V peaks at the step (2nd harmonic); ML at the stride (1st); the tail is the heel
/// strike's impact (band 6–10 Hz ≈ 13% of the spectrum in the Hoang data).
pub const MEAN_AMPLITUDE: [[f64; HARMONICS]; 3] = [
    [
        0.7, 2.1, 1.0, 0.85, 0.45, 0.5, 0.4, 0.45, 0.35, 0.3, 0.25, 0.2, 0.16, 0.13, 0.1, 0.08,
    ],
    [
        1.2, 0.6, 0.7, 0.4, 0.35, 0.25, 0.2, 0.2, 0.15, 0.15, 0.12, 0.1, 0.08, 0.06, 0.05, 0.04,
    ],
    [
        0.7, 3.0, 1.5, 1.1, 0.45, 0.6, 0.45, 0.65, 0.6, 0.55, 0.5, 0.45, 0.4, 0.32, 0.25, 0.2,
    ],
];

/// Seed of the population-mean phases (a fixed waveform shape shared by everyone).
const MEAN_PHASE_SEED: u64 = 567;

const TAG_SESSION: u64 = 0x5E55;

/// Log change of the cadence per unit of vigour.
const VIGOUR_CADENCE: f64 = 0.04;
/// Log change of the thigh swing per unit of vigour.
const VIGOUR_SWING: f64 = 0.08;
/// Sd of the day-to-day vigour.
const SESSION_VIGOUR_SD: f64 = 1.0;
/// Stationary sd of the vigour's wander within a walk.
const WALK_VIGOUR_SD: f64 = 0.6;
/// Stride-to-stride correlation of the vigour within a walk (≈ 30 strides).
const WALK_VIGOUR_AR: f64 = 0.97;

/// Log change of harmonic `j`'s amplitude per unit of vigour.
fn vigour_gain(j: usize) -> f64 {
    0.09 * (1.0 + j as f64 / HARMONICS as f64)
}

/// Population-level gait parameters: what varies between people and by how much.
#[derive(Debug, Clone, PartialEq)]
pub struct GaitPopulation {
    /// Mean cadence across people (steps/s). Hoang data: 1.82.
    pub cadence_mean_hz: f64,
    /// Standard deviation of the cadence across people (steps/s). Hoang data: 0.15
    /// (0.12 without its slowest walker).
    pub cadence_sd_hz: f64,
    /// Log-sd of a person's overall movement intensity (scales every amplitude).
    /// Hoang data: `v_std` varies by ±28% across people.
    pub intensity_sd: f64,
    /// Log-sd of a person's amplitude of each harmonic around the population mean.
    pub harmonic_sd: f64,
    /// Standard deviation (rad) of a person's phase of each harmonic around the
    /// population mean (the shape of their waveform).
    pub phase_sd: f64,
    /// Mean thigh swing amplitude (rad) of a pocket-carried phone.
    pub swing_mean_rad: f64,
    /// Sampling rate (Hz) of the phone's accelerometer.
    pub rate_hz: f64,
    /// Sensor noise per axis (m/s²).
    pub noise_sd: f64,
    /// Broadband, non-periodic movement of the phone in the pocket per axis (m/s²).
    pub jostle_sd: f64,
}

impl Default for GaitPopulation {
    fn default() -> Self {
        GaitPopulation {
            cadence_mean_hz: 1.82,
            cadence_sd_hz: 0.13,
            intensity_sd: 0.25,
            harmonic_sd: 0.25,
            phase_sd: 0.45,
            swing_mean_rad: 0.3,
            rate_hz: 50.0,
            noise_sd: 0.05,
            jostle_sd: 0.45,
        }
    }
}

/// One person's gait (or one session's, after [`GaitProfile::session`]).
#[derive(Debug, Clone, PartialEq)]
pub struct GaitProfile {
    /// Steps per second.
    pub cadence_hz: f64,
    /// Amplitude (m/s²) of each stride harmonic per body axis `[AP, ML, V]`.
    pub amplitude: [[f64; HARMONICS]; 3],
    /// Phase (rad) of each stride harmonic per body axis.
    pub phase: [[f64; HARMONICS]; 3],
    /// Thigh swing amplitude (rad): the phone pitches with the leg once per stride.
    pub swing_rad: f64,
    /// Phase of the thigh swing relative to the stride (rad).
    pub swing_phase: f64,
    /// How the phone sits in the pocket: yaw, pitch, roll (rad) relative to an upright
    /// phone with its screen facing forward.
    pub mount: [f64; 3],
    /// Coefficient of variation of the stride duration.
    pub stride_cv: f64,
    /// Stride-to-stride variability of the waveform: log-sd of each harmonic's
    /// amplitude and sd (rad) of its phase, per stride.
    pub shape_jitter: f64,
    /// Sensor noise per axis (m/s²).
    pub noise_sd: f64,
    /// Non-periodic jostling of the phone in the pocket while walking, per axis (m/s²).
    pub jostle_sd: f64,
    /// Sampling rate (Hz).
    pub rate_hz: f64,
}

/// The population-mean phase of each harmonic per axis (fixed for every population).
pub fn mean_phase() -> [[f64; HARMONICS]; 3] {
    let mut g = SplitMix64::new(MEAN_PHASE_SEED);
    let mut out = [[0.0; HARMONICS]; 3];
    for axis in &mut out {
        for p in axis.iter_mut() {
            *p = g.between(-std::f64::consts::PI, std::f64::consts::PI);
        }
    }
    out
}

impl GaitProfile {
    /// Draws a person's gait from the population.
    pub fn draw(pop: &GaitPopulation, rng: &mut SplitMix64) -> GaitProfile {
        let cadence_hz = rng
            .gauss(pop.cadence_mean_hz, pop.cadence_sd_hz)
            .clamp(1.3, 2.5);
        let intensity = rng.gauss(0.0, pop.intensity_sd).exp();
        let mean_phase = mean_phase();
        let mut amplitude = [[0.0; HARMONICS]; 3];
        let mut phase = [[0.0; HARMONICS]; 3];
        for axis in 0..3 {
            let axis_gain = rng.gauss(0.0, 0.5 * pop.harmonic_sd).exp();
            for j in 0..HARMONICS {
                amplitude[axis][j] = MEAN_AMPLITUDE[axis][j]
                    * intensity
                    * axis_gain
                    * rng.gauss(0.0, pop.harmonic_sd).exp();
                phase[axis][j] = mean_phase[axis][j] + rng.gauss(0.0, pop.phase_sd);
            }
        }
        let facing = if rng.chance(0.5) {
            0.0
        } else {
            std::f64::consts::PI
        };
        GaitProfile {
            cadence_hz,
            amplitude,
            phase,
            swing_rad: rng
                .gauss(pop.swing_mean_rad, 0.25 * pop.swing_mean_rad)
                .clamp(0.02, 0.7),
            swing_phase: rng.gauss(0.0, 0.4),
            mount: [
                facing + rng.gauss(0.0, 0.3),
                rng.gauss(0.0, 0.2),
                rng.gauss(0.0, 0.2),
            ],
            stride_cv: rng.gauss(0.02, 0.004).clamp(0.008, 0.05),
            shape_jitter: rng.gauss(0.16, 0.03).clamp(0.05, 0.3),
            noise_sd: pop.noise_sd,
            jostle_sd: pop.jostle_sd * rng.gauss(0.0, 0.3).exp(),
            rate_hz: pop.rate_hz,
        }
    }

    /// This gait on recording day `session`: every parameter drifts slightly (cadence
    /// ±3.5%, amplitudes ±8% plus a common ±10%, phases ±0.15 rad, swing ±15%) and the
    /// phone sits a little differently in the pocket (±0.12 rad per angle).
    /// Deterministic in `(person_seed, session)`.
    pub fn session(&self, person_seed: u64, session: u32) -> GaitProfile {
        let mut g = SplitMix64::new(derive(person_seed, TAG_SESSION, session as u64));
        let mut p = self.with_vigour(g.gauss(0.0, SESSION_VIGOUR_SD));
        p.cadence_hz *= g.gauss(0.0, 0.025).exp();
        let intensity = g.gauss(0.0, 0.1).exp();
        for axis in 0..3 {
            for j in 0..HARMONICS {
                p.amplitude[axis][j] *= intensity * g.gauss(0.0, 0.08).exp();
                p.phase[axis][j] += g.gauss(0.0, 0.15);
            }
        }
        p.swing_rad *= g.gauss(0.0, 0.15).exp();
        for m in &mut p.mount {
            *m += g.gauss(0.0, 0.12);
        }
        p
    }

    /// This gait walked more briskly (`z` > 0) or more slowly (`z` < 0), `z` in units
    /// of the typical day-to-day variation: the cadence changes by 4% per unit, every
    /// harmonic's amplitude by 9–18% (the higher, the more) and the thigh swing by 8%.
    /// Speed moves all gait features together, as in real walking; this coherent
    /// variation is what makes a person's windows hard to tell from someone similar.
    pub fn with_vigour(&self, z: f64) -> GaitProfile {
        let mut p = self.clone();
        p.cadence_hz *= (VIGOUR_CADENCE * z).exp();
        for axis in &mut p.amplitude {
            for (j, a) in axis.iter_mut().enumerate() {
                *a *= (vigour_gain(j) * z).exp();
            }
        }
        p.swing_rad *= (VIGOUR_SWING * z).exp();
        p
    }

    /// `seconds` of walking starting at `t0_ns`, with this profile as it is (no
    /// session drift: see [`GaitProfile::session`]).
    pub fn walk(&self, seconds: f64, t0_ns: i64, rng: &mut SplitMix64) -> Vec<MotionSample> {
        Walker::new(self, rng).run(self, seconds, t0_ns, rng)
    }

    /// `seconds` of a still phone (standing, sitting, on a table in the pocket's
    /// orientation): gravity, a little body sway and sensor noise. The phone's gait
    /// pipeline must not call this walking.
    pub fn still(&self, seconds: f64, t0_ns: i64, rng: &mut SplitMix64) -> Vec<MotionSample> {
        let device = device_matrix(self.mount);
        let mut sway = [0.0f64; 3];
        let mut out = Vec::new();
        let mut t = t0_ns;
        let end = end_ns(t0_ns, seconds);
        while t < end {
            for s in &mut sway {
                *s = 0.98 * *s + rng.gauss(0.0, 0.01);
            }
            let f_body = [sway[0], sway[1], GRAVITY + sway[2]];
            let a = mat_vec(&device, f_body);
            out.push(MotionSample {
                t_ns: t,
                accel: a.map(|x| x + rng.gauss(0.0, self.noise_sd)),
                gyro: None,
            });
            t += next_interval_ns(self.rate_hz, rng);
        }
        out
    }
}

/// End time of a period of `seconds` from `t0_ns` (non-finite or negative: empty;
/// longer than [`MAX_SECONDS`]: cut).
fn end_ns(t0_ns: i64, seconds: f64) -> i64 {
    if !(seconds.is_finite() && seconds > 0.0) {
        return t0_ns;
    }
    t0_ns.saturating_add((seconds.min(MAX_SECONDS) * 1e9) as i64)
}

/// The interval to the next sample: the nominal period with a 4% jitter, and now and
/// then (0.3%) a late sample (one to three periods missing), as phone sensor
/// timestamps do.
fn next_interval_ns(rate_hz: f64, rng: &mut SplitMix64) -> i64 {
    let period = 1e9 / rate_hz.clamp(10.0, 1000.0);
    let mut dt = period * rng.gauss(0.0, 0.04).exp();
    if rng.chance(0.003) {
        dt += period * rng.between(1.0, 3.0);
    }
    dt.round().max(600_000.0) as i64
}

type Mat3 = [[f64; 3]; 3];

fn mat_vec(m: &Mat3, v: [f64; 3]) -> [f64; 3] {
    [
        m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
        m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
        m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
    ]
}

fn mat_mul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, x) in row.iter_mut().enumerate() {
            *x = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

fn transpose(a: &Mat3) -> Mat3 {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in a.iter().enumerate() {
        for (j, x) in row.iter().enumerate() {
            out[j][i] = *x;
        }
    }
    out
}

/// Maps a specific force in the (thigh-attached) body frame `[AP, ML, V]` to the
/// phone's axes. The reference pose is an upright phone (device y up) with its screen
/// facing forward (device z forward, x to the left); `mount` = yaw (about V), pitch
/// (about ML), roll (about AP) of the phone relative to it.
fn device_matrix(mount: [f64; 3]) -> Mat3 {
    let (sy, cy) = mount[0].sin_cos();
    let (sp, cp) = mount[1].sin_cos();
    let (sr, cr) = mount[2].sin_cos();
    let rz = [[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]];
    let ry = [[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]];
    let rx = [[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]];
    let r = mat_mul(&mat_mul(&rz, &ry), &rx);
    // Rows: device x, y, z in body coordinates (a cyclic permutation, det +1).
    let reference = [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]];
    mat_mul(&reference, &transpose(&r))
}

/// Complex Fourier coefficients `(A cos φ, A sin φ)` of one stride's waveform.
type Coeffs = [[(f64, f64); HARMONICS]; 3];

/// The state of a walk: current stride, its waveform at its start and end (linearly
/// blended across the stride), the slow wander of the vigour.
struct Walker {
    start: Coeffs,
    end: Coeffs,
    swing: (f64, f64),
    stride_hz: f64,
    vigour: f64,
    theta: f64,
    bias: [f64; 3],
    device: Mat3,
}

impl Walker {
    fn new(p: &GaitProfile, rng: &mut SplitMix64) -> Walker {
        let mut w = Walker {
            start: [[(0.0, 0.0); HARMONICS]; 3],
            end: [[(0.0, 0.0); HARMONICS]; 3],
            swing: (p.swing_rad, p.swing_rad),
            stride_hz: 0.5 * p.cadence_hz,
            vigour: rng.gauss(0.0, WALK_VIGOUR_SD),
            theta: rng.uniform(),
            bias: [0.0; 3].map(|_: f64| rng.gauss(0.0, 0.05)),
            device: device_matrix(p.mount),
        };
        w.start = stride_coeffs(p, w.vigour, rng);
        w.end = stride_coeffs(p, w.vigour, rng);
        w.next_stride_rate(p, rng);
        w
    }

    fn next_stride_rate(&mut self, p: &GaitProfile, rng: &mut SplitMix64) {
        // AR(1) wander of the vigour (half-minute scale) plus independent
        // stride-to-stride variation of the duration.
        let innovation = WALK_VIGOUR_SD * (1.0 - WALK_VIGOUR_AR * WALK_VIGOUR_AR).sqrt();
        self.vigour = WALK_VIGOUR_AR * self.vigour + rng.gauss(0.0, innovation);
        self.stride_hz = 0.5
            * p.cadence_hz
            * (VIGOUR_CADENCE * self.vigour + rng.gauss(0.0, p.stride_cv))
                .exp()
                .clamp(0.7, 1.4);
    }

    fn run(
        mut self,
        p: &GaitProfile,
        seconds: f64,
        t0_ns: i64,
        rng: &mut SplitMix64,
    ) -> Vec<MotionSample> {
        let end = end_ns(t0_ns, seconds);
        let mut out = Vec::with_capacity(((end - t0_ns) as f64 * p.rate_hz / 1e9) as usize + 1);
        let mut t = t0_ns;
        let noise = p.noise_sd.hypot(p.jostle_sd);
        while t < end {
            let a = self.sample(p);
            out.push(MotionSample {
                t_ns: t,
                accel: [0, 1, 2].map(|i| a[i] + self.bias[i] + rng.gauss(0.0, noise)),
                gyro: None,
            });
            let dt = next_interval_ns(p.rate_hz, rng);
            t = t.saturating_add(dt);
            self.theta += self.stride_hz * dt as f64 * 1e-9;
            while self.theta >= 1.0 {
                self.theta -= 1.0;
                self.start = self.end;
                self.end = stride_coeffs(p, self.vigour, rng);
                self.swing = (
                    self.swing.1,
                    p.swing_rad
                        * (VIGOUR_SWING * self.vigour + rng.gauss(0.0, p.shape_jitter)).exp(),
                );
                self.next_stride_rate(p, rng);
            }
        }
        out
    }

    /// The acceleration the phone measures at the current stride phase.
    fn sample(&self, p: &GaitProfile) -> [f64; 3] {
        let w = self.theta;
        let x = 2.0 * std::f64::consts::PI * w;
        let (s1, c1) = x.sin_cos();
        let mut body = [0.0; 3];
        let (mut cj, mut sj) = (c1, s1);
        for j in 0..HARMONICS {
            for (axis, b) in body.iter_mut().enumerate() {
                let (a0, b0) = self.start[axis][j];
                let (a1, b1) = self.end[axis][j];
                let (a, bb) = (a0 + w * (a1 - a0), b0 + w * (b1 - b0));
                // A cos(jx + φ) = A cos φ cos jx − A sin φ sin jx.
                *b += a * cj - bb * sj;
            }
            (cj, sj) = (cj * c1 - sj * s1, sj * c1 + cj * s1);
        }
        let swing = self.swing.0 + w * (self.swing.1 - self.swing.0);
        let alpha = swing * (x + p.swing_phase).cos();
        let f = [body[AP], body[ML], GRAVITY + body[V]];
        // The thigh (and the phone with it) pitches by `alpha` about the ML axis.
        let (sa, ca) = alpha.sin_cos();
        let thigh = [ca * f[0] - sa * f[2], f[1], sa * f[0] + ca * f[2]];
        mat_vec(&self.device, thigh)
    }
}

/// One stride's waveform: the profile at the current vigour, with a per-stride gain
/// per axis and per-harmonic amplitude and phase jitter.
fn stride_coeffs(p: &GaitProfile, vigour: f64, rng: &mut SplitMix64) -> Coeffs {
    let mut c = [[(0.0, 0.0); HARMONICS]; 3];
    for (axis, row) in c.iter_mut().enumerate() {
        let gain = rng.gauss(0.0, 0.1).exp();
        for (j, x) in row.iter_mut().enumerate() {
            let a = p.amplitude[axis][j]
                * gain
                * (vigour_gain(j) * vigour + rng.gauss(0.0, p.shape_jitter)).exp();
            let phi = p.phase[axis][j] + rng.gauss(0.0, p.shape_jitter);
            *x = (a * phi.cos(), a * phi.sin());
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_matrix_is_a_rotation() {
        let m = device_matrix([0.7, -0.3, 0.2]);
        let mt = transpose(&m);
        let id = mat_mul(&m, &mt);
        for (i, row) in id.iter().enumerate() {
            for (j, x) in row.iter().enumerate() {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((x - want).abs() < 1e-12, "{id:?}");
            }
        }
        // Upright reference: gravity on device y.
        let g = mat_vec(&device_matrix([0.0; 3]), [0.0, 0.0, GRAVITY]);
        assert!((g[1] - GRAVITY).abs() < 1e-12 && g[0].abs() < 1e-12 && g[2].abs() < 1e-12);
    }

    #[test]
    fn bad_durations_give_nothing() {
        let p = GaitProfile::draw(&GaitPopulation::default(), &mut SplitMix64::new(1));
        let mut g = SplitMix64::new(2);
        assert!(p.walk(f64::NAN, 0, &mut g).is_empty());
        assert!(p.walk(-1.0, 0, &mut g).is_empty());
        assert!(p.still(0.0, 0, &mut g).is_empty());
        assert!(!p.walk(1.0, 0, &mut g).is_empty());
    }
}
