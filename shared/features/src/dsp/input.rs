//! What the app hands the core: motion samples and key events, with the rules that
//! decide what is usable. Every rule is either a typed error or a documented, counted
//! repair — never a panic and never a silently wrong feature.

/// One motion sensor reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MotionSample {
    /// Timestamp in nanoseconds (any monotonic epoch; only differences matter).
    pub t_ns: i64,
    /// Accelerometer x, y, z in m/s², gravity included (device frame).
    pub accel: [f64; 3],
    /// Gyroscope x, y, z in rad/s, when the device has one. Validated; gait schema v1
    /// does not use it.
    pub gyro: Option<[f64; 3]>,
}

/// The class of a key — never the character itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyClass {
    /// A letter (shifted or not).
    Letter,
    /// A digit.
    Digit,
    /// The space bar.
    Space,
    /// Punctuation and symbols.
    Punctuation,
    /// Backspace / delete.
    Backspace,
    /// Return / enter.
    Enter,
    /// Shift, control, alt and similar.
    Modifier,
    /// Anything else.
    Other,
}

/// One key press.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyEvent {
    /// Key class.
    pub class: KeyClass,
    /// Key-down time, nanoseconds.
    pub down_ns: i64,
    /// Key-up time, nanoseconds.
    pub up_ns: i64,
    /// Touch pressure (0..=1 on most phones), if reported. Non-finite or negative
    /// values are discarded (set to `None`).
    pub pressure: Option<f64>,
    /// Touch area, if reported. Same repair as `pressure`.
    pub area: Option<f64>,
}

/// Largest plausible accelerometer component: 16 g. Phone accelerometers saturate at
/// ±8 g or ±16 g; beyond that the value is a glitch.
pub const MAX_ACCEL: f64 = 16.0 * 9.80665;
/// Largest plausible gyroscope component (rad/s): 2000 °/s, the usual full scale.
pub const MAX_GYRO: f64 = 35.0;
/// Samples closer than this to the previous one are dropped (above 2 kHz no phone
/// sensor is real; such timestamps are duplicates with jitter or unit mistakes).
pub const MIN_INTERVAL_NS: i64 = 500_000;
/// Longest hold accepted (a key held longer is stuck or the event is broken).
pub const MAX_HOLD_NS: i64 = 10_000_000_000;

/// Typed errors of the signal-processing layer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DspError {
    /// Nothing to process.
    #[error("empty input")]
    Empty,
    /// Every sample was dropped by the validation rules.
    #[error("no valid samples ({0:?})")]
    NoValidSamples(Box<MotionReport>),
    /// The median sampling rate of a batch is outside 10 Hz ..= 2 kHz.
    #[error("absurd sample rate: median interval {median_interval_ns} ns")]
    AbsurdSampleRate {
        /// Median interval between consecutive samples.
        median_interval_ns: i64,
    },
    /// A key's up time precedes its down time.
    #[error("key {index}: key-up before key-down")]
    KeyUpBeforeDown {
        /// Index of the event.
        index: usize,
    },
    /// A key was held longer than [`MAX_HOLD_NS`].
    #[error("key {index}: held longer than 10 s")]
    KeyHeldTooLong {
        /// Index of the event.
        index: usize,
    },
    /// Key-down times go backwards (or repeat) inside one fixed-text entry.
    #[error("key {index}: key-down not after the previous key-down")]
    KeysOutOfOrder {
        /// Index of the event.
        index: usize,
    },
    /// A fixed-text entry has a different number of keys than the phrase.
    #[error("entry has {got} keys, the phrase has {expected}")]
    EntryLength {
        /// Keys in the entry.
        got: usize,
        /// Keys in the phrase.
        expected: usize,
    },
    /// A fixed-text entry contains corrections (backspace): its rhythm is not the
    /// phrase's rhythm.
    #[error("entry contains corrections")]
    CorrectedEntry,
    /// The phrase is too short or too long for the fixed-text schema.
    #[error("phrase length {0} outside 2..=128 keys")]
    PhraseLength(usize),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(&'static str),
}

/// What the motion validation did, counted (a documented repair is never silent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MotionReport {
    /// Samples used.
    pub accepted: u64,
    /// Dropped: a NaN or infinite value.
    pub dropped_non_finite: u64,
    /// Dropped: a component beyond the sensor's plausible full scale.
    pub dropped_out_of_range: u64,
    /// Dropped: same timestamp as the previous kept sample.
    pub dropped_duplicate: u64,
    /// Dropped: timestamp before the previous kept sample.
    pub dropped_out_of_order: u64,
    /// Dropped: less than [`MIN_INTERVAL_NS`] after the previous kept sample.
    pub dropped_too_dense: u64,
    /// Gaps longer than the configured maximum (each starts a new segment).
    pub gaps: u64,
    /// Complete windows analysed.
    pub windows: u64,
    /// Windows classified as walking (they produce gait records).
    pub walking_windows: u64,
    /// Windows skipped because too few raw samples fed them (rate below 10 Hz).
    pub low_rate_windows: u64,
}

impl MotionReport {
    /// Adds another report's counts to this one.
    pub fn merge(&mut self, o: &MotionReport) {
        self.accepted += o.accepted;
        self.dropped_non_finite += o.dropped_non_finite;
        self.dropped_out_of_range += o.dropped_out_of_range;
        self.dropped_duplicate += o.dropped_duplicate;
        self.dropped_out_of_order += o.dropped_out_of_order;
        self.dropped_too_dense += o.dropped_too_dense;
        self.gaps += o.gaps;
        self.windows += o.windows;
        self.walking_windows += o.walking_windows;
        self.low_rate_windows += o.low_rate_windows;
    }

    /// Total samples dropped by validation.
    pub fn dropped(&self) -> u64 {
        self.dropped_non_finite
            + self.dropped_out_of_range
            + self.dropped_duplicate
            + self.dropped_out_of_order
            + self.dropped_too_dense
    }
}

/// The verdict on one motion sample given the previous kept timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SampleVerdict {
    /// Use it, continuing the current segment.
    Keep,
    /// Use it as the first sample of a new segment (after a gap, or the very first).
    NewSegment,
    /// Drop it (already counted in the report).
    Drop,
}

/// Applies the per-sample rules, counting drops in `report`.
#[inline]
pub(crate) fn check_motion_sample(
    s: &MotionSample,
    last_t: Option<i64>,
    max_gap_ns: i64,
    report: &mut MotionReport,
) -> SampleVerdict {
    // One branch-free test for the common case: `|v| <= max` is false for NaN and
    // the infinities as well as for values out of range; which rule failed is sorted
    // out only for the samples dropped.
    let gyro = s.gyro.unwrap_or([0.0; 3]);
    let plausible = (s.accel[0].abs() <= MAX_ACCEL)
        & (s.accel[1].abs() <= MAX_ACCEL)
        & (s.accel[2].abs() <= MAX_ACCEL)
        & (gyro[0].abs() <= MAX_GYRO)
        & (gyro[1].abs() <= MAX_GYRO)
        & (gyro[2].abs() <= MAX_GYRO);
    if !plausible {
        let finite = s.accel.iter().chain(&gyro).all(|v| v.is_finite());
        if finite {
            report.dropped_out_of_range += 1;
        } else {
            report.dropped_non_finite += 1;
        }
        return SampleVerdict::Drop;
    }
    let Some(last) = last_t else {
        report.accepted += 1;
        return SampleVerdict::NewSegment;
    };
    let dt = s.t_ns.saturating_sub(last);
    if dt == 0 {
        report.dropped_duplicate += 1;
        SampleVerdict::Drop
    } else if dt < 0 {
        report.dropped_out_of_order += 1;
        SampleVerdict::Drop
    } else if dt < MIN_INTERVAL_NS {
        report.dropped_too_dense += 1;
        SampleVerdict::Drop
    } else if dt > max_gap_ns {
        report.gaps += 1;
        report.accepted += 1;
        SampleVerdict::NewSegment
    } else {
        report.accepted += 1;
        SampleVerdict::Keep
    }
}

/// Batch-level sanity check: the median interval between consecutive samples must
/// correspond to 10 Hz ..= 2 kHz. Catches unit mistakes (timestamps in ms or µs).
pub fn check_sample_rate(samples: &[MotionSample]) -> Result<(), DspError> {
    if samples.is_empty() {
        return Err(DspError::Empty);
    }
    if samples.len() < 3 {
        return Ok(());
    }
    let mut intervals: Vec<i64> = samples
        .windows(2)
        .map(|w| w[1].t_ns.saturating_sub(w[0].t_ns))
        .collect();
    let mid = intervals.len() / 2;
    let median = *intervals.select_nth_unstable(mid).1;
    if !(MIN_INTERVAL_NS..=100_000_000).contains(&median) {
        return Err(DspError::AbsurdSampleRate {
            median_interval_ns: median,
        });
    }
    Ok(())
}

impl KeyEvent {
    /// Hold time in nanoseconds.
    pub fn hold_ns(&self) -> i64 {
        self.up_ns.saturating_sub(self.down_ns)
    }

    /// Validates one event: up not before down, hold not absurd. Repairs the optional
    /// touch values (non-finite or negative → `None`).
    pub fn validated(mut self, index: usize) -> Result<KeyEvent, DspError> {
        if self.up_ns < self.down_ns {
            return Err(DspError::KeyUpBeforeDown { index });
        }
        if self.hold_ns() > MAX_HOLD_NS {
            return Err(DspError::KeyHeldTooLong { index });
        }
        let fix = |v: Option<f64>| v.filter(|x| x.is_finite() && *x >= 0.0);
        self.pressure = fix(self.pressure);
        self.area = fix(self.area);
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t_ns: i64, a: [f64; 3]) -> MotionSample {
        MotionSample {
            t_ns,
            accel: a,
            gyro: None,
        }
    }

    #[test]
    fn sample_rules() {
        let mut r = MotionReport::default();
        let g = 500_000_000;
        assert_eq!(
            check_motion_sample(&s(0, [0.0; 3]), None, g, &mut r),
            SampleVerdict::NewSegment
        );
        assert_eq!(
            check_motion_sample(&s(10, [f64::NAN, 0.0, 0.0]), Some(0), g, &mut r),
            SampleVerdict::Drop
        );
        assert_eq!(
            check_motion_sample(&s(10, [f64::INFINITY, 0.0, 0.0]), Some(0), g, &mut r),
            SampleVerdict::Drop
        );
        let bad_gyro = MotionSample {
            gyro: Some([0.0, f64::NAN, 0.0]),
            ..s(10, [0.0; 3])
        };
        assert_eq!(
            check_motion_sample(&bad_gyro, Some(0), g, &mut r),
            SampleVerdict::Drop
        );
        assert_eq!(r.dropped_non_finite, 3);
        assert_eq!(
            check_motion_sample(&s(10, [1e4, 0.0, 0.0]), Some(0), g, &mut r),
            SampleVerdict::Drop
        );
        assert_eq!(r.dropped_out_of_range, 1);
        assert_eq!(
            check_motion_sample(&s(0, [0.0; 3]), Some(0), g, &mut r),
            SampleVerdict::Drop
        );
        assert_eq!(r.dropped_duplicate, 1);
        assert_eq!(
            check_motion_sample(&s(-5, [0.0; 3]), Some(0), g, &mut r),
            SampleVerdict::Drop
        );
        assert_eq!(r.dropped_out_of_order, 1);
        assert_eq!(
            check_motion_sample(&s(1000, [0.0; 3]), Some(0), g, &mut r),
            SampleVerdict::Drop
        );
        assert_eq!(r.dropped_too_dense, 1);
        assert_eq!(
            check_motion_sample(&s(g + 1, [0.0; 3]), Some(0), g, &mut r),
            SampleVerdict::NewSegment
        );
        assert_eq!(r.gaps, 1);
        assert_eq!(
            check_motion_sample(&s(20_000_000, [0.0; 3]), Some(0), g, &mut r),
            SampleVerdict::Keep
        );
        assert_eq!(r.accepted, 3);
        assert_eq!(r.dropped(), 7);
    }

    #[test]
    fn absurd_rates_are_errors() {
        let mk = |dt: i64| (0..10).map(|i| s(i * dt, [0.0; 3])).collect::<Vec<_>>();
        assert_eq!(check_sample_rate(&[]), Err(DspError::Empty));
        assert!(check_sample_rate(&mk(20_000_000)).is_ok());
        // Milliseconds passed as nanoseconds: 50 "ns" apart.
        assert!(matches!(
            check_sample_rate(&mk(20)),
            Err(DspError::AbsurdSampleRate { .. })
        ));
        // One sample a second.
        assert!(matches!(
            check_sample_rate(&mk(1_000_000_000)),
            Err(DspError::AbsurdSampleRate { .. })
        ));
    }

    #[test]
    fn key_event_rules() {
        let k = KeyEvent {
            class: KeyClass::Letter,
            down_ns: 100,
            up_ns: 50,
            pressure: None,
            area: None,
        };
        assert_eq!(k.validated(3), Err(DspError::KeyUpBeforeDown { index: 3 }));
        let k = KeyEvent {
            up_ns: 100 + 11_000_000_000,
            ..k
        };
        assert_eq!(k.validated(0), Err(DspError::KeyHeldTooLong { index: 0 }));
        let k = KeyEvent {
            up_ns: 200,
            pressure: Some(f64::NAN),
            area: Some(-1.0),
            ..k
        };
        let v = k.validated(0).unwrap();
        assert_eq!((v.pressure, v.area), (None, None));
        let k = KeyEvent {
            pressure: Some(0.4),
            ..k
        };
        assert_eq!(k.validated(0).unwrap().pressure, Some(0.4));
    }
}
