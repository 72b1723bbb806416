//! Calibration of a factor's scores on whole authentication attempts.
//!
//! The decision judges an *attempt*: the newest `n` windows of one factor (one walk, one
//! typing session), not independent windows. So the calibration is fitted on attempts
//! too, each calibration person scored by a network whose training people and
//! background cohort (the contrast regression's negatives and the normalisation cohort)
//! do not include them (cross-fitted: see [`crate::pipeline::build_model`]): each
//! calibration person enrols as a user would, and their later sessions are cut into
//! attempts of `n` consecutive windows, `n = 1..=MAX_ATTEMPT_WINDOWS`.
//!
//! For every `n` and template kind (full or fallback) the artifact keeps
//! * a map `llr = a·mean_raw + b` from the attempt's mean raw score to a log-likelihood
//!   ratio (class-balanced logistic fit on genuine against impostor attempts): the
//!   fusion adds these across factors;
//! * the histogram of the mapped impostor attempts ([`LlrHistogram`]): the estimated
//!   false-accept rate at an observed score is its tail share, and for several factors
//!   the tail of the convolution of their histograms (see [`crate::fusion`]).
//!
//! A rate is only claimed where the data can support it: at least [`MIN_TAIL_ATTEMPTS`]
//! impostor attempts above the threshold, coming from at least [`MIN_TAIL_PAIRS`]
//! distinct (impostor, enrolled person) pairs — the attempts of one pair are alike, so a
//! tail made of one or two lucky pairs says little about the next impostor. The smallest
//! rate a histogram supports ([`LlrHistogram::floor`]) is the larger of
//! `MIN_TAIL_ATTEMPTS / m` and its share of attempts at the `MIN_TAIL_PAIRS`-th highest
//! of the pairs' best attempts ([`LlrHistogram::min_far`]).

use serde::{Deserialize, Serialize};

/// Width of a histogram bin, in natural-log LLR units. Bin `k` holds the values that
/// round to `k·LLR_STEP`.
pub const LLR_STEP: f64 = 0.25;

/// Impostor attempts that must lie above a threshold before its false-accept rate is
/// claimed: the floor of a histogram of `m` attempts is `MIN_TAIL_ATTEMPTS / m`.
pub const MIN_TAIL_ATTEMPTS: f64 = 10.0;

/// Distinct (impostor, enrolled person) pairs that must reach a threshold before its
/// false-accept rate is claimed ([`LlrHistogram::with_pair_floor`]).
pub const MIN_TAIL_PAIRS: usize = 5;

/// Largest number of windows per attempt that is calibrated; longer attempts use the
/// calibration of this many (the gateway scores at most `auth.max_windows_scored`
/// windows, 16 by default).
pub const MAX_ATTEMPT_WINDOWS: usize = 16;

/// Most bins a histogram may span (±512 LLR units at 0.25): bounds what a factor
/// service may send and what the fusion convolves.
pub const MAX_BINS: usize = 4096;

/// Distribution of one factor's calibrated LLR over impostor attempts, on the fixed grid
/// `k·LLR_STEP`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlrHistogram {
    /// Grid index of the first bin.
    pub first: i32,
    /// Attempts per bin, from `first` on.
    pub counts: Vec<u32>,
    /// The smallest false-accept rate enough distinct impostor pairs support (0: not
    /// known, only the attempt count bounds the claim).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_far: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// Why a histogram received from elsewhere is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HistogramError {
    /// No attempts in it.
    #[error("the impostor histogram is empty")]
    Empty,
    /// More bins than [`MAX_BINS`], or bins beyond the grid's range.
    #[error("the impostor histogram spans more than {MAX_BINS} bins")]
    TooWide,
    /// A bin is not a whole, non-negative count or not on the grid.
    #[error("the impostor histogram has a malformed bin")]
    Malformed,
}

fn bin_of(v: f64) -> i64 {
    (v / LLR_STEP).round() as i64
}

impl LlrHistogram {
    /// The histogram of `values` (non-finite values are left out: they are a bug
    /// upstream, never a reason to panic here). `None` when nothing is left.
    pub fn of(values: &[f64]) -> Option<Self> {
        let bins: Vec<i64> = values
            .iter()
            .filter(|v| v.is_finite())
            .map(|&v| bin_of(v.clamp(-1e4, 1e4)))
            .collect();
        let lo = *bins.iter().min()?;
        let hi = *bins.iter().max()?;
        // Keep the range bounded from the top: the high tail is what the decision reads,
        // so a wild low outlier is folded into the lowest bin (never the other way round,
        // which would move every high value down and empty the tail).
        let lo = lo.max(hi - MAX_BINS as i64 + 1);
        let mut counts = vec![0u32; (hi - lo + 1) as usize];
        for b in bins {
            let i = (b.max(lo) - lo) as usize;
            counts[i] = counts[i].saturating_add(1);
        }
        Some(LlrHistogram {
            first: lo as i32,
            counts,
            min_far: 0.0,
        })
    }

    /// Builds a histogram from `(bin centre, count)` pairs (how a factor service sends
    /// it), checking every bound.
    pub fn from_pairs(pairs: &[(f64, f64)]) -> Result<Self, HistogramError> {
        let mut bins = Vec::with_capacity(pairs.len());
        for &(centre, count) in pairs {
            let k = centre / LLR_STEP;
            if !k.is_finite()
                || (k - k.round()).abs() > 1e-3
                || k.abs() > 1e6
                || !count.is_finite()
                || count < 0.0
                || count.fract() != 0.0
                || count > u32::MAX as f64
            {
                return Err(HistogramError::Malformed);
            }
            bins.push((k.round() as i64, count as u32));
        }
        let lo = bins
            .iter()
            .map(|b| b.0)
            .min()
            .ok_or(HistogramError::Empty)?;
        let hi = bins
            .iter()
            .map(|b| b.0)
            .max()
            .ok_or(HistogramError::Empty)?;
        if hi - lo >= MAX_BINS as i64 {
            return Err(HistogramError::TooWide);
        }
        let mut counts = vec![0u32; (hi - lo + 1) as usize];
        for (k, c) in bins {
            let i = (k - lo) as usize;
            counts[i] = counts[i].saturating_add(c);
        }
        let h = LlrHistogram {
            first: lo as i32,
            counts,
            min_far: 0.0,
        };
        if h.attempts() == 0 {
            return Err(HistogramError::Empty);
        }
        Ok(h)
    }

    /// The non-empty bins as `(bin centre, count)` pairs.
    pub fn pairs(&self) -> Vec<(f64, f64)> {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, &c)| ((self.first as i64 + i as i64) as f64 * LLR_STEP, c as f64))
            .collect()
    }

    /// Sets [`LlrHistogram::min_far`] from the highest attempt LLR of each impostor pair
    /// (one entry per (impostor, enrolled person) pair): the share of attempts at or above
    /// the [`MIN_TAIL_PAIRS`]-th highest, on the histogram's grid; 1 with fewer pairs.
    pub fn with_pair_floor(mut self, pair_maxima: &[f64]) -> Self {
        let mut m: Vec<f64> = pair_maxima
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        m.sort_by(|a, b| b.total_cmp(a));
        self.min_far = match m.get(MIN_TAIL_PAIRS - 1) {
            Some(&t) => self.tail(bin_of(t.clamp(-1e4, 1e4)) as f64 * LLR_STEP),
            None => 1.0,
        };
        self
    }

    /// Checks a histogram read from a file or the network.
    pub fn check(&self) -> Result<(), HistogramError> {
        if self.counts.len() > MAX_BINS || (self.first as i64).abs() > 1_000_000 {
            return Err(HistogramError::TooWide);
        }
        if !(0.0..=1.0).contains(&self.min_far) {
            return Err(HistogramError::Malformed);
        }
        if self.attempts() == 0 {
            return Err(HistogramError::Empty);
        }
        Ok(())
    }

    /// Impostor attempts counted.
    pub fn attempts(&self) -> u64 {
        self.counts.iter().map(|&c| c as u64).sum()
    }

    /// Share of impostor attempts at or above `llr` (the empirical false-accept rate of
    /// the threshold `llr`).
    pub fn tail(&self, llr: f64) -> f64 {
        let n = self.attempts();
        if n == 0 {
            return 1.0;
        }
        let above: u64 = self
            .counts
            .iter()
            .enumerate()
            .filter(|(i, _)| (self.first as i64 + *i as i64) as f64 * LLR_STEP >= llr - 1e-9)
            .map(|(_, &c)| c as u64)
            .sum();
        above as f64 / n as f64
    }

    /// The smallest false-accept rate these attempts support:
    /// `MIN_TAIL_ATTEMPTS / attempts` or [`LlrHistogram::min_far`], whichever is larger,
    /// at most 1.
    pub fn floor(&self) -> f64 {
        (MIN_TAIL_ATTEMPTS / self.attempts().max(1) as f64)
            .max(self.min_far)
            .min(1.0)
    }
}

/// The calibration of attempts of one length for one template kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptCalibration {
    /// Windows per attempt.
    pub windows: usize,
    /// `(a, b)` of `llr = a·mean_raw + b`.
    pub map: [f64; 2],
    /// Genuine attempts the map was fitted on.
    pub genuine: usize,
    /// The mapped LLRs of the impostor attempts.
    pub impostor: LlrHistogram,
}

/// The calibration of one template kind, by attempt length.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct KindCalibration {
    /// Entry `i` is for attempts of `i + 1` windows (empty: not calibrated).
    pub attempts: Vec<AttemptCalibration>,
}

impl KindCalibration {
    /// The calibration for an attempt of `windows` windows: longer attempts than
    /// calibrated use the longest; `None` when uncalibrated or `windows` is 0.
    pub fn for_windows(&self, windows: usize) -> Option<&AttemptCalibration> {
        if windows == 0 {
            return None;
        }
        self.attempts
            .get(windows.min(self.attempts.len()).checked_sub(1)?)
    }

    /// `(a, b)` for one window (per-window scores, model exports): identity when
    /// uncalibrated.
    pub fn window_map(&self) -> [f64; 2] {
        self.attempts.first().map_or([1.0, 0.0], |a| a.map)
    }
}

/// A model's calibration: by template kind and attempt length, fitted on people outside
/// the network's training set and the background cohort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Templates enrolled on at least `full_samples` vectors.
    pub full: KindCalibration,
    /// Templates enrolled on fewer (detector only).
    pub fallback: KindCalibration,
    /// The enrolment size from which a template is judged by `full`.
    pub full_samples: usize,
    /// People whose attempts it was fitted on.
    pub people: usize,
    /// Whether full templates (detector and contrast) beat the detector alone on the
    /// calibration people; when they do not, every template is detector-only, so a
    /// template is never worse than its own detector component.
    pub contrast_helps: bool,
    /// Pooled one-window equal error rates on the calibration people at the calibrated
    /// enrolment size, `(with the contrast part, detector only)` (`None`: too little data).
    pub checked_eer: [Option<f64>; 2],
}

impl Default for Calibration {
    /// Uncalibrated: per-window scores pass through (`llr = raw`) and no false-accept
    /// rate is claimed.
    fn default() -> Self {
        Calibration {
            full: KindCalibration::default(),
            fallback: KindCalibration::default(),
            full_samples: 0,
            people: 0,
            contrast_helps: true,
            checked_eer: [None; 2],
        }
    }
}

impl Calibration {
    /// The calibration of a template enrolled on `samples` vectors.
    pub fn kind(&self, samples: usize) -> &KindCalibration {
        if samples >= self.full_samples {
            &self.full
        } else {
            &self.fallback
        }
    }
}

/// Splits one person's vectors for calibration or evaluation: the enrolment is the
/// first `enrol` vectors of their earliest sessions, taking whole sessions until there
/// are enough (at most all but the last session); the test is every later session.
/// A person with one session is split in their vectors: the enrolment first, the rest
/// the test. Returns the enrolment and the test sessions (each in time order).
pub fn split_sessions<T>(
    samples: &[T],
    group: impl Fn(&T) -> u32,
    enrol: usize,
) -> (Vec<&T>, Vec<Vec<&T>>) {
    let mut sessions: Vec<Vec<&T>> = Vec::new();
    for s in samples {
        match sessions.last_mut() {
            Some(last) if last.first().is_some_and(|f| group(f) == group(s)) => last.push(s),
            _ => sessions.push(vec![s]),
        }
    }
    if sessions.len() < 2 {
        let all: Vec<&T> = sessions.into_iter().flatten().collect();
        let cut = enrol.min(all.len() / 2);
        let test = all[cut..].to_vec();
        let mut e = all;
        e.truncate(cut);
        return (e, if test.is_empty() { vec![] } else { vec![test] });
    }
    let mut taken = 0;
    let mut used = 0;
    while used < sessions.len() - 1 && taken < enrol {
        taken += sessions[used].len();
        used += 1;
    }
    let test = sessions.split_off(used);
    let mut e: Vec<&T> = sessions.into_iter().flatten().collect();
    e.truncate(enrol);
    (e, test)
}

/// The attempts of `n` consecutive windows in a session's scores (non-overlapping,
/// from the start; a shorter remainder is not an attempt of `n`).
pub fn attempt_means(session: &[f64], n: usize) -> impl Iterator<Item = f64> + '_ {
    session
        .chunks_exact(n.max(1))
        .map(|c| c.iter().sum::<f64>() / c.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_needs_enough_distinct_pairs() {
        // 100 attempts: 90 low, and a tail of 10 high ones from only 2 pairs.
        let mut values = vec![-5.0; 90];
        values.extend([4.0; 10]);
        let h = LlrHistogram::of(&values).unwrap();
        assert!((h.floor() - 0.1).abs() < 1e-12, "10 attempts of 100");
        // Pair maxima: 2 pairs reach 4.0, the other pairs at most -5.0.
        let mut maxima = vec![4.0, 4.0];
        maxima.extend([-5.0; 8]);
        let h = h.with_pair_floor(&maxima);
        assert!(
            (h.min_far - 1.0).abs() < 1e-12,
            "the 5th pair is at -5: everything"
        );
        assert!((h.floor() - 1.0).abs() < 1e-12);
        // Five pairs reach 4.0: the tail there is supported.
        let h = h.with_pair_floor(&[4.0, 4.0, 4.0, 4.0, 4.0, -5.0]);
        assert!((h.min_far - 0.1).abs() < 1e-12);
        assert_eq!(h.check(), Ok(()));
        let few = LlrHistogram::of(&values)
            .unwrap()
            .with_pair_floor(&[1.0, 2.0]);
        assert_eq!(
            few.min_far, 1.0,
            "fewer pairs than required support nothing"
        );
        let bad = LlrHistogram {
            min_far: 2.0,
            ..few.clone()
        };
        assert_eq!(bad.check(), Err(HistogramError::Malformed));
    }

    #[test]
    fn histogram_tails_and_floor() {
        let v: Vec<f64> = (0..100).map(|i| i as f64 * 0.1 - 5.0).collect();
        let h = LlrHistogram::of(&v).expect("values");
        assert_eq!(h.attempts(), 100);
        assert!((h.tail(f64::NEG_INFINITY) - 1.0).abs() < 1e-12);
        assert_eq!(h.tail(100.0), 0.0);
        // Values ≥ 4.0 (rounded to the grid): 4.0 ... 4.9 → 10 attempts.
        assert!((h.tail(4.0) - 0.10).abs() < 0.02, "{}", h.tail(4.0));
        assert!((h.floor() - 0.1).abs() < 1e-12);
        let back = LlrHistogram::from_pairs(&h.pairs()).expect("round trip");
        assert_eq!(back, h);
        assert_eq!(LlrHistogram::of(&[f64::NAN]), None);
        assert_eq!(
            LlrHistogram::from_pairs(&[(0.1, 1.0)]),
            Err(HistogramError::Malformed)
        );
        assert_eq!(
            LlrHistogram::from_pairs(&[(0.0, 1.0), (5000.0, 1.0)]),
            Err(HistogramError::TooWide)
        );
        assert_eq!(
            LlrHistogram::from_pairs(&[(0.0, 0.0)]),
            Err(HistogramError::Empty)
        );
        assert_eq!(
            LlrHistogram::from_pairs(&[(0.0, -1.0)]),
            Err(HistogramError::Malformed)
        );
        // A low outlier folds into the lowest bin and leaves the high tail intact.
        let wide = LlrHistogram::of(&[-9000.0, 0.0, 1.0, 2.0]).expect("values");
        assert!(wide.counts.len() <= MAX_BINS);
        assert_eq!(wide.attempts(), 4);
        assert!((wide.tail(1.0) - 0.5).abs() < 1e-12, "{}", wide.tail(1.0));
        assert!((wide.tail(2.0) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn sessions_split_into_enrolment_and_test() {
        let groups = [0u32, 0, 0, 1, 1, 1, 2, 2, 2];
        let (e, t) = split_sessions(&groups, |g| *g, 4);
        assert_eq!(e.len(), 4);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].len(), 3);
        let (e, t) = split_sessions(&groups, |g| *g, 2);
        assert_eq!((e.len(), t.len()), (2, 2));
        // Never every session for the enrolment.
        let (e, t) = split_sessions(&groups, |g| *g, 100);
        assert_eq!((e.len(), t.len()), (6, 1));
        let one = [5u32; 10];
        let (e, t) = split_sessions(&one, |g| *g, 3);
        assert_eq!((e.len(), t[0].len()), (3, 7));
        let means: Vec<f64> = attempt_means(&[1.0, 3.0, 5.0, 7.0, 9.0], 2).collect();
        assert_eq!(means, vec![2.0, 6.0]);
    }

    #[test]
    fn kinds_pick_their_length() {
        let h = LlrHistogram::of(&[0.0]).expect("one value");
        let k = KindCalibration {
            attempts: (1..=3)
                .map(|n| AttemptCalibration {
                    windows: n,
                    map: [n as f64, 0.0],
                    genuine: 1,
                    impostor: h.clone(),
                })
                .collect(),
        };
        assert_eq!(k.for_windows(0), None);
        assert_eq!(k.for_windows(2).map(|a| a.windows), Some(2));
        assert_eq!(k.for_windows(9).map(|a| a.windows), Some(3));
        assert_eq!(k.window_map(), [1.0, 0.0]);
        assert_eq!(KindCalibration::default().for_windows(1), None);
    }
}
