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
use crate::dsp::stats::{
    PercentileScratch, mean, mean_abs_diff_rate, moments_zero_mean, p10_p90, sum_by,
    zero_cross_rate,
};
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
    percentiles: PercentileScratch,
    /// Spectral band of each bin (index into `BANDS`), `NO_BAND` outside 0.5..10 Hz;
    /// fixed by the window length and rate, so computed once.
    band_of: Vec<u8>,
}

/// The spectral bands of the band-energy features (Hz, half-open).
const BANDS: [(f64, f64); 7] = [
    (0.5, 1.0),
    (1.0, 1.5),
    (1.5, 2.0),
    (2.0, 3.0),
    (3.0, 4.0),
    (4.0, 6.0),
    (6.0, 10.0),
];

/// A bin in no band of [`BANDS`] (and outside the band total's 0.5..10 Hz).
const NO_BAND: u8 = u8::MAX;
/// A bin within 0.5..10 Hz that no band of [`BANDS`] holds (none do today; kept so the
/// total's range and the bands' stay independent definitions).
const TOTAL_ONLY: u8 = u8::MAX - 1;

/// Band of each of the `n / 2 + 1` bins of a window of `n` at `fs` Hz, with the same
/// frequency expression the analysis used per bin when it searched the bands.
fn band_table(n: usize, fs: f64) -> Vec<u8> {
    let df = fs / n as f64;
    (0..=n / 2)
        .map(|k| {
            let fk = k as f64 * df;
            if !(0.5..10.0).contains(&fk) {
                return NO_BAND;
            }
            BANDS
                .iter()
                .position(|&(lo, hi)| fk >= lo && fk < hi)
                .map_or(TOTAL_ONLY, |b| b as u8)
        })
        .collect()
}

/// Grid points resampled but not yet filtered, in arrays per axis so that the
/// filtering and the orientation-independent signals run as tight loops over many
/// points at once (vectorised where the arithmetic allows) instead of once per point
/// through the resampler's callback.
struct Stage {
    t: Vec<i64>,
    a: [Vec<f64>; 3],
    g: [Vec<f64>; 3],
    raw: Vec<u32>,
    len: usize,
}

/// Grid points staged before they are filtered.
const STAGE: usize = 128;

/// Streaming gait feature extractor.
pub struct GaitExtractor {
    resampler: Resampler,
    last_t: Option<i64>,
    pending_raw: u32,
    sink: Sink,
}

/// Everything after the resampler: the resampler's callback fills it while the
/// resampler itself is borrowed, so it is a separate struct.
struct Sink {
    cfg: GaitConfig,
    gravity: [LowPass; 3],
    stage: Stage,
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
            resampler: Resampler::new(cfg.rate_hz),
            last_t: None,
            pending_raw: 0,
            sink: Sink {
                cfg,
                gravity: [lp; 3],
                stage: Stage {
                    t: vec![0; STAGE],
                    a: std::array::from_fn(|_| vec![0.0; STAGE]),
                    g: std::array::from_fn(|_| vec![0.0; STAGE]),
                    raw: vec![0; STAGE],
                    len: 0,
                },
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
                    percentiles: PercentileScratch::new(n),
                    band_of: band_table(n, cfg.rate_hz),
                },
                out: GaitWindow {
                    start_ns: 0,
                    duration_ns: 0,
                    walking: false,
                    features: [0.0; GAIT_DIM],
                },
                report: MotionReport::default(),
            },
        })
    }

    /// Counts so far.
    pub fn report(&self) -> &MotionReport {
        &self.sink.report
    }

    /// Feeds a chunk of samples; `on_window` sees every complete window (walking or
    /// not) before this call returns.
    pub fn push(&mut self, samples: &[MotionSample], mut on_window: impl FnMut(&GaitWindow)) {
        let max_gap_ns = self.sink.cfg.max_gap_ns;
        for s in samples {
            match check_motion_sample(s, self.last_t, max_gap_ns, &mut self.sink.report) {
                SampleVerdict::Drop => continue,
                SampleVerdict::NewSegment => {
                    // Staged points belong to the segment that just ended.
                    self.sink.flush(&mut on_window);
                    self.reset_segment();
                }
                SampleVerdict::Keep => {}
            }
            self.last_t = Some(s.t_ns);
            self.pending_raw += 1;
            let Self {
                resampler,
                pending_raw,
                sink,
                ..
            } = self;
            resampler.push(s.t_ns, s.accel, |t, a| {
                sink.stage_point(t, a, std::mem::take(pending_raw));
                if sink.stage.len == STAGE {
                    sink.flush(&mut on_window);
                }
            });
        }
        self.sink.flush(&mut on_window);
    }

    fn reset_segment(&mut self) {
        self.resampler.reset();
        self.pending_raw = 0;
        let sink = &mut self.sink;
        for f in &mut sink.gravity {
            f.reset();
        }
        sink.stage.len = 0;
        sink.buf.fill = 0;
    }
}

impl Sink {
    /// Stages one grid point (the stage has room: it is flushed when full).
    #[inline]
    fn stage_point(&mut self, t: i64, a: [f64; 3], raw: u32) {
        let st = &mut self.stage;
        let j = st.len;
        st.t[j] = t;
        st.a[0][j] = a[0];
        st.a[1][j] = a[1];
        st.a[2][j] = a[2];
        st.raw[j] = raw;
        st.len += 1;
    }

    /// Filters the staged points and moves them into the window, analysing every
    /// window they complete.
    fn flush(&mut self, on_window: &mut impl FnMut(&GaitWindow)) {
        let k = self.stage.len;
        if k == 0 {
            return;
        }
        self.stage.len = 0;
        let Self {
            cfg,
            gravity,
            stage,
            buf,
            an,
            out,
            report,
        } = self;
        // The three low-passes are recursions (each output needs the previous one);
        // one loop runs the three chains side by side.
        let [g0, g1, g2] = &mut stage.g;
        let [a0, a1, a2] = &stage.a;
        for j in 0..k {
            g0[j] = gravity[0].step(a0[j]);
            g1[j] = gravity[1].step(a1[j]);
            g2[j] = gravity[2].step(a2[j]);
        }
        let mut j = 0;
        while j < k {
            let i = buf.fill;
            let take = (k - j).min(cfg.window - i);
            if i == 0 {
                buf.start_ns = stage.t[j];
            }
            body_signals(stage, j, take, buf, i);
            buf.raw[i..i + take].copy_from_slice(&stage.raw[j..j + take]);
            buf.fill += take;
            j += take;
            if buf.fill == cfg.window {
                complete_window(cfg, buf, an, out, report, on_window);
            }
        }
    }
}

/// The orientation-independent signals of staged points `j..j + take`, written to
/// the window at `i..`: vertical `v` (body acceleration along gravity), horizontal
/// `h` (the rest's magnitude), `m` = |a| and |body acceleration|². Point by point,
/// with no dependence between points, so the loop vectorises.
fn body_signals(stage: &Stage, j: usize, take: usize, buf: &mut WindowBuffers, i: usize) {
    let r = j..j + take;
    let (ax, ay, az) = (
        &stage.a[0][r.clone()],
        &stage.a[1][r.clone()],
        &stage.a[2][r.clone()],
    );
    let (gx, gy, gz) = (
        &stage.g[0][r.clone()],
        &stage.g[1][r.clone()],
        &stage.g[2][r],
    );
    let w = i..i + take;
    let v_out = &mut buf.v[w.clone()];
    let h_out = &mut buf.h[w.clone()];
    let m_out = &mut buf.m[w.clone()];
    let d_out = &mut buf.dyn2[w];
    for p in 0..take {
        let (a, g) = ([ax[p], ay[p], az[p]], [gx[p], gy[p], gz[p]]);
        let d = [a[0] - g[0], a[1] - g[1], a[2] - g[2]];
        let g_norm = (g[0] * g[0] + g[1] * g[1] + g[2] * g[2]).sqrt();
        let v = if g_norm > 1e-9 {
            (d[0] * g[0] + d[1] * g[1] + d[2] * g[2]) / g_norm
        } else {
            0.0
        };
        let dyn2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
        v_out[p] = v;
        h_out[p] = (dyn2 - v * v).max(0.0).sqrt();
        m_out[p] = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();
        d_out[p] = dyn2;
    }
}

/// A full window: analyse it (unless too few raw samples fed it), report it, and
/// shift by one hop.
fn complete_window(
    cfg: &GaitConfig,
    buf: &mut WindowBuffers,
    an: &mut Analysis,
    out: &mut GaitWindow,
    report: &mut MotionReport,
    on_window: &mut impl FnMut(&GaitWindow),
) {
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

    let mut band = [0.0; 7];
    let mut band_total = 0.0;
    for (&pk, &b) in p.iter().zip(&an.band_of) {
        if b != NO_BAND {
            band_total += pk;
            if let Some(acc) = band.get_mut(b as usize) {
                *acc += pk;
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
        let pct = p10_p90(x, &mut an.percentiles);
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
    let sum_v2 = sum_by(&buf.v, |v| v * v);
    let sum_d2 = sum_by(&buf.dyn2, |d| d);
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
