//! Gait features: from raw accelerometer streams to one feature vector per walking
//! window (layout: `tacit_shared::schema::GAIT_V1`).
//!
//! Pipeline, per continuous segment (a gap longer than `max_gap_ns` starts a new one):
//! validate → resample to 50 Hz (linear) → gravity by a 0.3 Hz Butterworth low-pass
//! per axis → orientation-independent signals (vertical `v` = body acceleration along
//! gravity, horizontal `h` = magnitude of the rest, `m` = |a|) → 256-sample windows
//! with 50% overlap → spectra (Hann + real FFT), autocorrelation (FFT), statistics →
//! walking detection → features.
//!
//! [`GaitExtractor`] is the streaming form: feed samples in chunks of any size and it
//! reports exactly the windows one batch call over the same samples reports, holding
//! only one window of state. After construction it does not allocate.

use tacit_shared::payload::{FactorKind, FeatureRecord};
use tacit_shared::schema::GAIT_V1;

use crate::dsp::filter::LowPass;
use crate::dsp::input::{MotionReport, SampleVerdict, check_motion_sample, check_sample_rate};
use crate::dsp::resample::Resampler;
use crate::dsp::spectrum::SpectrumWorkspace;
use crate::dsp::stats::{mean, mean_abs_diff_rate, moments_zero_mean, p10_p90, zero_cross_rate};
use crate::dsp::{DspError, MotionSample};

/// Number of gait features (schema v1).
pub const GAIT_DIM: usize = 50;

/// Pipeline parameters. The defaults define gait schema v1; changing them changes what
/// the features mean, so records are only produced with the defaults' schema version.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaitConfig {
    /// Resampling rate (Hz).
    pub rate_hz: f64,
    /// Window length in resampled samples.
    pub window: usize,
    /// Hop between window starts.
    pub hop: usize,
    /// Gravity low-pass cut-off (Hz).
    pub gravity_cutoff_hz: f64,
    /// A longer gap between raw samples starts a new segment (ns).
    pub max_gap_ns: i64,
    /// Windows fed by fewer raw samples per second than this are skipped.
    pub min_raw_rate_hz: f64,
}

impl Default for GaitConfig {
    fn default() -> Self {
        GaitConfig {
            rate_hz: 50.0,
            window: 256,
            hop: 128,
            gravity_cutoff_hz: 0.3,
            max_gap_ns: 500_000_000,
            min_raw_rate_hz: 10.0,
        }
    }
}

impl GaitConfig {
    fn check(&self) -> Result<(), DspError> {
        if !(10.0..=1000.0).contains(&self.rate_hz) {
            return Err(DspError::Config("rate_hz must be within 10..=1000"));
        }
        if self.window < 64 || self.window > 4096 || !self.window.is_multiple_of(2) {
            return Err(DspError::Config("window must be even and within 64..=4096"));
        }
        if self.hop == 0 || self.hop > self.window {
            return Err(DspError::Config("hop must be within 1..=window"));
        }
        if !(self.gravity_cutoff_hz > 0.0 && self.gravity_cutoff_hz < self.rate_hz / 4.0) {
            return Err(DspError::Config(
                "gravity_cutoff_hz must be within (0, rate/4)",
            ));
        }
        if self.max_gap_ns <= 0 {
            return Err(DspError::Config("max_gap_ns must be positive"));
        }
        Ok(())
    }
}

/// The analysis of one window.
#[derive(Debug, Clone, PartialEq)]
pub struct GaitWindow {
    /// Time of the window's first resampled sample (the input's clock, ns).
    pub start_ns: i64,
    /// Window length in ns.
    pub duration_ns: i64,
    /// Whether the window looks like walking (only those feed the gait factor).
    pub walking: bool,
    /// The features in `GAIT_V1` order.
    pub features: [f64; GAIT_DIM],
}

impl GaitWindow {
    /// The feature record for this window, with its start given in Unix ms.
    pub fn to_record(&self, window_start_unix_ms: u64) -> FeatureRecord {
        FeatureRecord {
            factor: FactorKind::Gait,
            schema_version: 1,
            window_start_ms: window_start_unix_ms,
            window_ms: (self.duration_ns / 1_000_000) as u32,
            context: None,
            values: self.features.iter().map(|&v| v as f32).collect(),
        }
    }

    /// Feature by schema name.
    pub fn feature(&self, name: &str) -> Option<f64> {
        tacit_shared::schema::index_of(GAIT_V1, name).map(|i| self.features[i])
    }
}

/// Window-level buffers, allocated once.
struct WindowBuffers {
    v: Vec<f64>,
    h: Vec<f64>,
    m: Vec<f64>,
    dyn2: Vec<f64>,
    raw: Vec<u32>,
    fill: usize,
    start_ns: i64,
}

/// Scratch space for the analysis of one window, allocated once.
struct Analysis {
    ws: SpectrumWorkspace,
    v0: Vec<f64>,
    h0: Vec<f64>,
    m0: Vec<f64>,
    power: Vec<f64>,
    mag_v: Vec<f64>,
    mag_h: Vec<f64>,
    acf: Vec<f64>,
    keys: Vec<i64>,
}

/// Streaming gait feature extractor.
pub struct GaitExtractor {
    cfg: GaitConfig,
    resampler: Resampler,
    gravity: [LowPass; 3],
    last_t: Option<i64>,
    pending_raw: u32,
    buf: WindowBuffers,
    an: Analysis,
    out: GaitWindow,
    report: MotionReport,
}

impl GaitExtractor {
    /// An extractor with the given configuration.
    pub fn new(cfg: GaitConfig) -> Result<Self, DspError> {
        cfg.check()?;
        let n = cfg.window;
        let lp = LowPass::butterworth(cfg.gravity_cutoff_hz, cfg.rate_hz);
        Ok(GaitExtractor {
            cfg,
            resampler: Resampler::new(cfg.rate_hz),
            gravity: [lp; 3],
            last_t: None,
            pending_raw: 0,
            buf: WindowBuffers {
                v: vec![0.0; n],
                h: vec![0.0; n],
                m: vec![0.0; n],
                dyn2: vec![0.0; n],
                raw: vec![0; n],
                fill: 0,
                start_ns: 0,
            },
            an: Analysis {
                ws: SpectrumWorkspace::new(n),
                v0: vec![0.0; n],
                h0: vec![0.0; n],
                m0: vec![0.0; n],
                power: vec![0.0; n / 2 + 1],
                mag_v: vec![0.0; n / 2 + 1],
                mag_h: vec![0.0; n / 2 + 1],
                acf: vec![0.0; n],
                keys: vec![0; n],
            },
            out: GaitWindow {
                start_ns: 0,
                duration_ns: 0,
                walking: false,
                features: [0.0; GAIT_DIM],
            },
            report: MotionReport::default(),
        })
    }

    /// Counts so far.
    pub fn report(&self) -> &MotionReport {
        &self.report
    }

    /// Feeds a chunk of samples; `on_window` sees every complete window (walking or
    /// not) as soon as it is complete.
    pub fn push(&mut self, samples: &[MotionSample], mut on_window: impl FnMut(&GaitWindow)) {
        for s in samples {
            match check_motion_sample(s, self.last_t, self.cfg.max_gap_ns, &mut self.report) {
                SampleVerdict::Drop => continue,
                SampleVerdict::NewSegment => self.reset_segment(),
                SampleVerdict::Keep => {}
            }
            self.last_t = Some(s.t_ns);
            self.pending_raw += 1;
            // Split borrows: the resampler emits into the rest of the state.
            let Self {
                resampler,
                gravity,
                pending_raw,
                buf,
                an,
                out,
                report,
                cfg,
                ..
            } = self;
            resampler.push(s.t_ns, s.accel, |t, a| {
                push_grid_point(
                    cfg,
                    gravity,
                    pending_raw,
                    buf,
                    an,
                    out,
                    report,
                    t,
                    a,
                    &mut on_window,
                )
            });
        }
    }

    fn reset_segment(&mut self) {
        self.resampler.reset();
        for f in &mut self.gravity {
            f.reset();
        }
        self.buf.fill = 0;
        self.pending_raw = 0;
    }
}

#[allow(clippy::too_many_arguments)]
fn push_grid_point(
    cfg: &GaitConfig,
    gravity: &mut [LowPass; 3],
    pending_raw: &mut u32,
    buf: &mut WindowBuffers,
    an: &mut Analysis,
    out: &mut GaitWindow,
    report: &mut MotionReport,
    t: i64,
    a: [f64; 3],
    on_window: &mut impl FnMut(&GaitWindow),
) {
    let g = [
        gravity[0].step(a[0]),
        gravity[1].step(a[1]),
        gravity[2].step(a[2]),
    ];
    let d = [a[0] - g[0], a[1] - g[1], a[2] - g[2]];
    let g_norm = (g[0] * g[0] + g[1] * g[1] + g[2] * g[2]).sqrt();
    let v = if g_norm > 1e-9 {
        (d[0] * g[0] + d[1] * g[1] + d[2] * g[2]) / g_norm
    } else {
        0.0
    };
    let dyn2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
    let h = (dyn2 - v * v).max(0.0).sqrt();
    let m = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();

    let i = buf.fill;
    if i == 0 {
        buf.start_ns = t;
    }
    buf.v[i] = v;
    buf.h[i] = h;
    buf.m[i] = m;
    buf.dyn2[i] = dyn2;
    buf.raw[i] = std::mem::take(pending_raw);
    buf.fill += 1;

    if buf.fill == cfg.window {
        let step_ns = (1e9 / cfg.rate_hz).round() as i64;
        let raw: u64 = buf.raw.iter().map(|&r| r as u64).sum();
        let duration_s = cfg.window as f64 / cfg.rate_hz;
        report.windows += 1;
        if (raw as f64) / duration_s < cfg.min_raw_rate_hz {
            report.low_rate_windows += 1;
        } else {
            out.start_ns = buf.start_ns;
            out.duration_ns = step_ns * cfg.window as i64;
            out.walking = analyse_window(cfg.rate_hz, buf, an, &mut out.features);
            if out.walking {
                report.walking_windows += 1;
            }
            on_window(out);
        }
        let hop = cfg.hop;
        buf.v.copy_within(hop.., 0);
        buf.h.copy_within(hop.., 0);
        buf.m.copy_within(hop.., 0);
        buf.dyn2.copy_within(hop.., 0);
        buf.raw.copy_within(hop.., 0);
        buf.fill -= hop;
        buf.start_ns += hop as i64 * step_ns;
    }
}

fn remove_mean(src: &[f64], dst: &mut [f64]) {
    let mu = mean(src);
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s - mu;
    }
}

fn is_local_max(a: &[f64], k: usize) -> bool {
    k > 0 && k + 1 < a.len() && a[k] > a[k - 1] && a[k] >= a[k + 1]
}

/// Highest local maximum of `a` with lag in `lo..=hi`.
fn best_peak(a: &[f64], lo: usize, hi: usize) -> Option<usize> {
    let hi = hi.min(a.len().saturating_sub(2));
    (lo.max(1)..=hi)
        .filter(|&k| is_local_max(a, k))
        .max_by(|&x, &y| a[x].total_cmp(&a[y]))
}

/// Sub-sample peak position by a parabola through three points.
fn parabolic_offset(l: f64, c: f64, r: f64) -> f64 {
    let den = l - 2.0 * c + r;
    if den < 0.0 {
        (0.5 * (l - r) / den).clamp(-0.5, 0.5)
    } else {
        0.0
    }
}

/// Gait-cycle timing from the normalised autocorrelation `acf` (lag 0 = 1).
struct Cycle {
    step_lag: usize,
    stride_lag: usize,
    cadence_hz: f64,
}

fn find_cycle(acf: &[f64], fs: f64) -> Option<Cycle> {
    // Steps last 0.25..1 s (1-4 steps/s).
    let lo = (0.25 * fs).ceil() as usize;
    let hi = fs.floor() as usize;
    let first = best_peak(acf, lo, hi)?;
    // The strongest peak may be a stride (two steps): prefer a clear peak at half lag.
    let half_lo = ((0.4 * first as f64).ceil() as usize).max(lo);
    let half_hi = (0.6 * first as f64).floor() as usize;
    let step_lag = match best_peak(acf, half_lo, half_hi) {
        Some(h) if half_lo <= half_hi && acf[h] >= 0.4 * acf[first] => h,
        _ => first,
    };
    let stride_lag = best_peak(
        acf,
        (1.6 * step_lag as f64).round() as usize,
        (2.4 * step_lag as f64).round() as usize,
    )
    .unwrap_or_else(|| (2 * step_lag).min(acf.len() - 1));
    let refined =
        step_lag as f64 + parabolic_offset(acf[step_lag - 1], acf[step_lag], acf[step_lag + 1]);
    Some(Cycle {
        step_lag,
        stride_lag,
        cadence_hz: fs / refined,
    })
}

/// Computes the 50 features of one full window into `f`; returns "walking".
fn analyse_window(
    fs: f64,
    buf: &WindowBuffers,
    an: &mut Analysis,
    f: &mut [f64; GAIT_DIM],
) -> bool {
    let n = buf.v.len();
    let half = n / 2;
    let df = fs / n as f64;
    remove_mean(&buf.v, &mut an.v0);
    remove_mean(&buf.h, &mut an.h0);
    remove_mean(&buf.m, &mut an.m0);

    // Spectrum of the magnitude signal.
    an.ws.hann_power(&an.m0, &mut an.power);
    let p = &an.power;
    let freq = |k: usize| k as f64 * df;
    let k_lo = (0.5 / df).ceil() as usize;
    let k_hi = ((5.0 / df).floor() as usize).min(half - 1);
    let k_dom = (k_lo..=k_hi)
        .max_by(|&a, &b| p[a].total_cmp(&p[b]))
        .unwrap_or(k_lo);
    let dominant = (k_dom as f64
        + parabolic_offset(p[k_dom - 1].sqrt(), p[k_dom].sqrt(), p[k_dom + 1].sqrt()))
        * df;

    const BANDS: [(f64, f64); 7] = [
        (0.5, 1.0),
        (1.0, 1.5),
        (1.5, 2.0),
        (2.0, 3.0),
        (3.0, 4.0),
        (4.0, 6.0),
        (6.0, 10.0),
    ];
    let mut band = [0.0; 7];
    let mut band_total = 0.0;
    for (k, &pk) in p.iter().enumerate() {
        let fk = freq(k);
        if (0.5..10.0).contains(&fk) {
            band_total += pk;
            if let Some(b) = BANDS.iter().position(|&(lo, hi)| fk >= lo && fk < hi) {
                band[b] += pk;
            }
        }
    }
    // One logarithm per bin serves both flatness and entropy:
    // entropy = -Σ q ln q with q = P/S is ln S - Σ P ln P / S (using ln(P + 1e-12)).
    let (mut sum_p, mut sum_fp, mut sum_log, mut sum_plog) = (0.0, 0.0, 0.0, 0.0);
    for (k, &pk) in p.iter().enumerate().skip(1) {
        let l = (pk + 1e-12).ln();
        sum_p += pk;
        sum_fp += freq(k) * pk;
        sum_log += l;
        sum_plog += pk * l;
    }
    let bins = (p.len() - 1) as f64;
    let (centroid, entropy) = if sum_p > 1e-12 {
        (
            sum_fp / sum_p,
            ((sum_p.ln() - sum_plog / sum_p) / bins.ln()).clamp(0.0, 1.0),
        )
    } else {
        (0.0, 0.0)
    };
    let flatness = (sum_log / bins).exp() / (sum_p / bins + 1e-12);

    // Autocorrelation of the magnitude signal: cadence and regularity.
    an.ws.autocorrelation(&an.m0, &mut an.acf);
    let r0 = an.acf[0];
    if r0 > 1e-12 {
        for r in an.acf.iter_mut() {
            *r /= r0;
        }
    } else {
        an.acf.fill(0.0);
    }
    let cycle = find_cycle(&an.acf, fs);
    let (cadence, step_reg, stride_reg) = match &cycle {
        Some(c) => (c.cadence_hz, an.acf[c.step_lag], an.acf[c.stride_lag]),
        None => (0.0, 0.0, 0.0),
    };
    let symmetry = if stride_reg.abs() < 1e-6 {
        0.0
    } else {
        (step_reg / stride_reg).clamp(-1000.0, 1000.0)
    };

    // Harmonics of the stride frequency.
    let stride_hz = cadence / 2.0;
    let bin_of = |hz: f64| (hz / df).round() as usize;
    let mut harmonics = [0.0; 8];
    if cycle.is_some() {
        for (j, h) in harmonics.iter_mut().enumerate() {
            let b = bin_of((j + 1) as f64 * stride_hz);
            *h = if b <= half { p[b].sqrt() } else { 0.0 };
        }
        let s: f64 = harmonics.iter().sum();
        if s > 1e-12 {
            harmonics.iter_mut().for_each(|h| *h /= s);
        }
    }
    an.ws.hann_magnitude(&an.v0, &mut an.mag_v);
    an.ws.hann_magnitude(&an.h0, &mut an.mag_h);
    let harmonic_ratio = |mag: &[f64]| {
        if cycle.is_none() {
            return 0.0;
        }
        let (mut even, mut odd) = (0.0, 0.0);
        for j in 1..=10usize {
            let b = bin_of(j as f64 * stride_hz);
            if b > half {
                break;
            }
            if j % 2 == 0 {
                even += mag[b]
            } else {
                odd += mag[b]
            }
        }
        if odd < 1e-12 {
            0.0
        } else {
            (even / odd).min(1e4)
        }
    };
    let hr_v = harmonic_ratio(&an.mag_v);
    let hr_h = harmonic_ratio(&an.mag_h);

    f[0] = cadence;
    f[1] = step_reg;
    f[2] = stride_reg;
    f[3] = symmetry;
    f[4] = dominant;
    f[5..13].copy_from_slice(&harmonics);
    f[13] = hr_v;
    f[14] = hr_h;
    for (j, b) in band.iter().enumerate() {
        f[15 + j] = if band_total > 1e-12 {
            b / band_total
        } else {
            0.0
        };
    }
    f[22] = centroid;
    f[23] = entropy;
    f[24] = flatness;

    let mut m_std = 0.0;
    for (s, x) in [&an.v0, &an.h0, &an.m0].into_iter().enumerate() {
        let mo = moments_zero_mean(x);
        let pct = p10_p90(x, &mut an.keys);
        let (lo, hi) = x
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
                (l.min(v), h.max(v))
            });
        let base = 25 + 8 * s;
        f[base] = mo.std;
        f[base + 1] = mo.skewness;
        f[base + 2] = mo.kurtosis;
        f[base + 3] = pct.0;
        f[base + 4] = pct.1;
        f[base + 5] = hi - lo;
        f[base + 6] = mean_abs_diff_rate(x, fs);
        f[base + 7] = zero_cross_rate(x, fs);
        if s == 2 {
            m_std = mo.std;
        }
    }
    let sum_v2: f64 = buf.v.iter().map(|v| v * v).sum();
    let sum_d2: f64 = buf.dyn2.iter().sum();
    f[49] = if sum_d2 > 1e-12 {
        (sum_v2 / sum_d2).min(1.0)
    } else {
        0.0
    };

    is_walking(m_std, cadence, step_reg, stride_reg)
}

/// Walking: the body moves (std of |a| in 0.5..30 m/s²), at a human step rate
/// (1..3.5 steps/s), and the movement repeats (autocorrelation at the step or the
/// stride lag ≥ 0.2; a still or randomly shaken phone stays well below).
pub fn is_walking(
    m_std: f64,
    cadence_hz: f64,
    step_regularity: f64,
    stride_regularity: f64,
) -> bool {
    (0.5..=30.0).contains(&m_std)
        && (1.0..=3.5).contains(&cadence_hz)
        && step_regularity.max(stride_regularity) >= 0.2
}

/// Batch form: every window of `samples`, with the validation report. Errors when the
/// input is empty, its rate is absurd, or nothing survives validation.
pub fn extract_gait(
    samples: &[MotionSample],
    cfg: GaitConfig,
) -> Result<(Vec<GaitWindow>, MotionReport), DspError> {
    check_sample_rate(samples)?;
    let mut ex = GaitExtractor::new(cfg)?;
    let mut windows = Vec::new();
    ex.push(samples, |w| windows.push(w.clone()));
    let report = ex.report().clone();
    if report.accepted == 0 {
        return Err(DspError::NoValidSamples(Box::new(report)));
    }
    Ok((windows, report))
}
