//! Feature schemas: for each factor, the names, order, dimension, version and
//! plausible ranges of the values a feature record carries. The phone writes records
//! in this layout and the backend validates them against it, so both sides read the
//! same thing. Changing a layout means a new schema version.

use crate::payload::FactorKind;

/// One feature of a fixed-layout schema.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatureDef {
    /// Stable snake_case name.
    pub name: &'static str,
    /// Smallest plausible value (inclusive).
    pub min: f32,
    /// Largest plausible value (inclusive).
    pub max: f32,
}

const fn f(name: &'static str, min: f32, max: f32) -> FeatureDef {
    FeatureDef { name, min, max }
}

/// Gait schema version 1: one record per walking window of 256 samples at 50 Hz
/// (5.12 s, hop 2.56 s). Signals: `v` = vertical dynamic acceleration (projection on
/// the gravity estimate), `h` = horizontal dynamic acceleration magnitude (mean
/// removed), `m` = acceleration magnitude (mean removed). Units: Hz, m/s², m/s³.
pub const GAIT_V1: &[FeatureDef] = &[
    f("cadence_hz", 0.0, 5.0),
    f("step_regularity", -1.0, 1.0),
    f("stride_regularity", -1.0, 1.0),
    f("step_symmetry", -1000.0, 1000.0),
    f("dominant_freq_hz", 0.0, 25.0),
    f("stride_harmonic_1", 0.0, 1.0),
    f("stride_harmonic_2", 0.0, 1.0),
    f("stride_harmonic_3", 0.0, 1.0),
    f("stride_harmonic_4", 0.0, 1.0),
    f("stride_harmonic_5", 0.0, 1.0),
    f("stride_harmonic_6", 0.0, 1.0),
    f("stride_harmonic_7", 0.0, 1.0),
    f("stride_harmonic_8", 0.0, 1.0),
    f("harmonic_ratio_v", 0.0, 1.0e4),
    f("harmonic_ratio_h", 0.0, 1.0e4),
    f("band_energy_0p5_1hz", 0.0, 1.0),
    f("band_energy_1_1p5hz", 0.0, 1.0),
    f("band_energy_1p5_2hz", 0.0, 1.0),
    f("band_energy_2_3hz", 0.0, 1.0),
    f("band_energy_3_4hz", 0.0, 1.0),
    f("band_energy_4_6hz", 0.0, 1.0),
    f("band_energy_6_10hz", 0.0, 1.0),
    f("spectral_centroid_hz", 0.0, 25.0),
    f("spectral_entropy", 0.0, 1.0),
    f("spectral_flatness", 0.0, 1.0),
    f("v_std", 0.0, 200.0),
    f("v_skewness", -100.0, 100.0),
    f("v_kurtosis", -10.0, 1.0e4),
    f("v_p10", -600.0, 600.0),
    f("v_p90", -600.0, 600.0),
    f("v_range", 0.0, 1200.0),
    f("v_mean_abs_jerk", 0.0, 1.0e6),
    f("v_zero_cross_rate", 0.0, 50.0),
    f("h_std", 0.0, 200.0),
    f("h_skewness", -100.0, 100.0),
    f("h_kurtosis", -10.0, 1.0e4),
    f("h_p10", -600.0, 600.0),
    f("h_p90", -600.0, 600.0),
    f("h_range", 0.0, 1200.0),
    f("h_mean_abs_jerk", 0.0, 1.0e6),
    f("h_zero_cross_rate", 0.0, 50.0),
    f("m_std", 0.0, 200.0),
    f("m_skewness", -100.0, 100.0),
    f("m_kurtosis", -10.0, 1.0e4),
    f("m_p10", -600.0, 600.0),
    f("m_p90", -600.0, 600.0),
    f("m_range", 0.0, 1200.0),
    f("m_mean_abs_jerk", 0.0, 1.0e6),
    f("m_zero_cross_rate", 0.0, 50.0),
    f("vertical_energy_ratio", 0.0, 1.0),
];

/// Free-text keystroke schema version 1: digraph timing statistics (seconds) over key
/// classes for one stretch of typing. Where a class or class pair has fewer than two
/// observations the value is the statistic over all keys (documented repair, never NaN).
pub const KEYSTROKE_FREE_V1: &[FeatureDef] = &[
    f("hold_mean_letter", 0.0, 10.0),
    f("hold_sd_letter", 0.0, 10.0),
    f("hold_mean_space", 0.0, 10.0),
    f("hold_sd_space", 0.0, 10.0),
    f("hold_mean_digit_punct", 0.0, 10.0),
    f("hold_sd_digit_punct", 0.0, 10.0),
    f("hold_mean_backspace", 0.0, 10.0),
    f("hold_sd_backspace", 0.0, 10.0),
    f("dd_mean_letter_letter", 0.0, 60.0),
    f("dd_sd_letter_letter", 0.0, 60.0),
    f("ud_mean_letter_letter", -10.0, 60.0),
    f("ud_sd_letter_letter", 0.0, 60.0),
    f("dd_mean_letter_space", 0.0, 60.0),
    f("dd_sd_letter_space", 0.0, 60.0),
    f("ud_mean_letter_space", -10.0, 60.0),
    f("ud_sd_letter_space", 0.0, 60.0),
    f("dd_mean_space_letter", 0.0, 60.0),
    f("dd_sd_space_letter", 0.0, 60.0),
    f("ud_mean_space_letter", -10.0, 60.0),
    f("ud_sd_space_letter", 0.0, 60.0),
    f("dd_median_all", 0.0, 60.0),
    f("ud_median_all", -10.0, 60.0),
    f("keys_per_second", 0.0, 50.0),
    f("backspace_rate", 0.0, 1.0),
    f("pause_rate", 0.0, 1.0),
    f("rollover_rate", 0.0, 1.0),
    f("digraph_count", 2.0, 100_000.0),
];

/// Fixed-text keystroke schema version 1: for a phrase of `n` keys, the `3n - 2`
/// timings in the CMU benchmark's column order: `H.k1, DD.k1.k2, UD.k1.k2, H.k2, ...,
/// H.kn` (seconds). The record's context id is the salted hash of the phrase.
///
/// Fixed-text keystroke schema version 2 (touch screens): the same `3n - 2` timings,
/// then the `n` touch pressures in key order (`P.k1 .. P.kn`), then the `n` touch areas
/// in key order (`A.k1 .. A.kn`): `5n - 2` values. Pressure and area are what the
/// platform reports, normalised (Android `MotionEvent.getPressure`/`getSize`, about
/// 0..1; iOS `force / maximumPossibleForce`); plausible range 0..=[`TOUCH_MAX`]. A
/// phone writes version 2 only when every key of the entry reports both values;
/// otherwise version 1, so the first `3n - 2` values of a version-2 record are exactly
/// the version-1 record of the same entry.
pub const KEYSTROKE_FIXED_MIN_KEYS: usize = 2;
/// Longest phrase accepted by the fixed-text schema.
pub const KEYSTROKE_FIXED_MAX_KEYS: usize = 128;

/// Fixed-text schema version of timings only (`3n - 2` values).
pub const KEYSTROKE_FIXED_V1: u16 = 1;
/// Fixed-text schema version of timings, per-key pressure and per-key area (`5n - 2`
/// values).
pub const KEYSTROKE_FIXED_TOUCH_V2: u16 = 2;
/// Largest plausible touch pressure or area (normalised platform units; 0..1 on most
/// phones, some report a little above 1).
pub const TOUCH_MAX: f32 = 10.0;

/// The role of value `i` in a fixed-text timing vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixedTextTiming {
    /// Hold time of key `k` (0-based).
    Hold(usize),
    /// Key-down of `k` to key-down of `k + 1`.
    DownDown(usize),
    /// Key-up of `k` to key-down of `k + 1` (negative when keys overlap).
    UpDown(usize),
}

/// Maps index `i` of a fixed-text vector to its timing.
pub fn fixed_text_timing(i: usize) -> FixedTextTiming {
    match i % 3 {
        0 => FixedTextTiming::Hold(i / 3),
        1 => FixedTextTiming::DownDown(i / 3),
        _ => FixedTextTiming::UpDown(i / 3),
    }
}

/// Number of keys of a fixed-text vector of `dimension` values, if it is valid.
pub fn fixed_text_keys(dimension: usize) -> Option<usize> {
    if dimension % 3 != 1 {
        return None;
    }
    let n = dimension.div_ceil(3);
    (KEYSTROKE_FIXED_MIN_KEYS..=KEYSTROKE_FIXED_MAX_KEYS)
        .contains(&n)
        .then_some(n)
}

/// The role of a value in a fixed-text vector of any schema version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixedTextValue {
    /// One of the `3n - 2` timings (both versions).
    Timing(FixedTextTiming),
    /// Touch pressure of key `k` (version 2).
    Pressure(usize),
    /// Touch area of key `k` (version 2).
    Area(usize),
}

/// Number of values of a fixed-text record of `keys` keys in schema `version` (`None`
/// for an unknown version or a key count outside 2..=128).
pub fn fixed_text_dim(version: u16, keys: usize) -> Option<usize> {
    if !(KEYSTROKE_FIXED_MIN_KEYS..=KEYSTROKE_FIXED_MAX_KEYS).contains(&keys) {
        return None;
    }
    match version {
        KEYSTROKE_FIXED_V1 => Some(3 * keys - 2),
        KEYSTROKE_FIXED_TOUCH_V2 => Some(5 * keys - 2),
        _ => None,
    }
}

/// Number of keys of a fixed-text vector of `dimension` values in schema `version`,
/// if that dimension is valid for it.
pub fn fixed_text_keys_in(version: u16, dimension: usize) -> Option<usize> {
    match version {
        KEYSTROKE_FIXED_V1 => fixed_text_keys(dimension),
        KEYSTROKE_FIXED_TOUCH_V2 => {
            let n = (dimension + 2) / 5;
            (fixed_text_dim(version, n) == Some(dimension)).then_some(n)
        }
        _ => None,
    }
}

/// Maps index `i` of a fixed-text vector of `keys` keys in schema `version` to its
/// role (`None` past the end or for an unknown version).
pub fn fixed_text_value(version: u16, keys: usize, i: usize) -> Option<FixedTextValue> {
    let dim = fixed_text_dim(version, keys)?;
    let timings = 3 * keys - 2;
    if i >= dim {
        None
    } else if i < timings {
        Some(FixedTextValue::Timing(fixed_text_timing(i)))
    } else if i < timings + keys {
        Some(FixedTextValue::Pressure(i - timings))
    } else {
        Some(FixedTextValue::Area(i - timings - keys))
    }
}

/// Face schema version 1: one record per accepted face image, written by the gateway
/// from the face factor's answer (the image itself is never stored). Values: the
/// [`FACE_EMBEDDING_DIM`] embedding components, then the image's quality score (0..1),
/// then its 64-bit difference hash as [`FACE_HASH_CHUNKS`] 16-bit chunks, most
/// significant first (whole numbers 0..=65535, exact in binary32), which the factor
/// uses to recognise a replayed image.
pub const FACE_V1: u16 = 1;
/// Embedding components of a face record.
pub const FACE_EMBEDDING_DIM: usize = 128;
/// 16-bit chunks of the image hash in a face record.
pub const FACE_HASH_CHUNKS: usize = 4;
/// Values of a face record of schema version 1.
pub const FACE_V1_DIM: usize = FACE_EMBEDDING_DIM + 1 + FACE_HASH_CHUNKS;
/// Largest plausible magnitude of one embedding component (dlib's embeddings are
/// about unit length, so a component beyond 1 is already implausible).
pub const FACE_COMPONENT_MAX: f32 = 2.0;

/// The role of value `i` of a face record of schema version 1.
fn face_value(i: usize) -> FeatureDef {
    if i < FACE_EMBEDDING_DIM {
        f("embedding", -FACE_COMPONENT_MAX, FACE_COMPONENT_MAX)
    } else if i == FACE_EMBEDDING_DIM {
        f("quality", 0.0, 1.0)
    } else {
        f("image_hash", 0.0, 65_535.0)
    }
}

/// Why a record does not fit its schema.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    /// No schema of that version for the factor.
    #[error("unknown schema version {version} for factor {factor:?}")]
    UnknownVersion {
        /// The factor.
        factor: FactorKind,
        /// The version the record claims.
        version: u16,
    },
    /// Wrong number of values.
    #[error("{factor:?} v{version}: {got} values, expected {expected}")]
    Dimension {
        /// The factor.
        factor: FactorKind,
        /// The schema version.
        version: u16,
        /// Values present.
        got: usize,
        /// Values the schema needs (for fixed text: 3n-2 for 2..=128 keys).
        expected: String,
    },
    /// A value is NaN or infinite.
    #[error("value {index} ({name}) is not finite")]
    NotFinite {
        /// Index of the value.
        index: usize,
        /// Feature name.
        name: String,
    },
    /// A value is outside its plausible range.
    #[error("value {index} ({name}) = {value} outside [{min}, {max}]")]
    OutOfRange {
        /// Index of the value.
        index: usize,
        /// Feature name.
        name: String,
        /// The value.
        value: f32,
        /// Range minimum.
        min: f32,
        /// Range maximum.
        max: f32,
    },
    /// Context id present where the schema needs none, or missing where it needs one.
    #[error("{0:?} records {1} a context id")]
    Context(FactorKind, &'static str),
}

/// Current baseline schema version of each factor: the version a record without
/// optional inputs has. Fixed-text keystrokes are written as
/// [`KEYSTROKE_FIXED_TOUCH_V2`] instead when every key carries touch pressure and area.
pub fn current_version(factor: FactorKind) -> u16 {
    match factor {
        FactorKind::Gait
        | FactorKind::KeystrokeFixed
        | FactorKind::KeystrokeFree
        | FactorKind::Face => 1,
    }
}

/// The fixed layout of a factor's schema version (`None` for the variable-length
/// fixed-text keystroke layout or an unknown version).
pub fn fixed_layout(factor: FactorKind, version: u16) -> Option<&'static [FeatureDef]> {
    match (factor, version) {
        (FactorKind::Gait, 1) => Some(GAIT_V1),
        (FactorKind::KeystrokeFree, 1) => Some(KEYSTROKE_FREE_V1),
        _ => None,
    }
}

/// Index of a named feature in a fixed layout.
pub fn index_of(layout: &[FeatureDef], name: &str) -> Option<usize> {
    layout.iter().position(|d| d.name == name)
}

fn check_values(values: &[f32], def: impl Fn(usize) -> FeatureDef) -> Result<(), SchemaError> {
    for (index, &value) in values.iter().enumerate() {
        let d = def(index);
        if !value.is_finite() {
            return Err(SchemaError::NotFinite {
                index,
                name: d.name.to_string(),
            });
        }
        if value < d.min || value > d.max {
            return Err(SchemaError::OutOfRange {
                index,
                name: d.name.to_string(),
                value,
                min: d.min,
                max: d.max,
            });
        }
    }
    Ok(())
}

/// Validates the values (and context id use) of one record against its schema.
pub fn validate(
    factor: FactorKind,
    version: u16,
    values: &[f32],
    has_context: bool,
) -> Result<(), SchemaError> {
    match (factor, version) {
        (FactorKind::KeystrokeFixed, KEYSTROKE_FIXED_V1 | KEYSTROKE_FIXED_TOUCH_V2) => {
            let Some(keys) = fixed_text_keys_in(version, values.len()) else {
                return Err(SchemaError::Dimension {
                    factor,
                    version,
                    got: values.len(),
                    expected: if version == KEYSTROKE_FIXED_V1 {
                        "3n-2 for 2..=128 keys".into()
                    } else {
                        "5n-2 for 2..=128 keys".into()
                    },
                });
            };
            if !has_context {
                return Err(SchemaError::Context(factor, "need"));
            }
            check_values(values, |i| match fixed_text_value(version, keys, i) {
                Some(FixedTextValue::Timing(FixedTextTiming::Hold(_))) => f("hold", 0.0, 10.0),
                Some(FixedTextValue::Timing(FixedTextTiming::DownDown(_))) => {
                    f("down_down", 0.0, 60.0)
                }
                Some(FixedTextValue::Timing(FixedTextTiming::UpDown(_))) => {
                    f("up_down", -10.0, 60.0)
                }
                Some(FixedTextValue::Pressure(_)) => f("pressure", 0.0, TOUCH_MAX),
                // Only `Area` is left: `keys` was derived from this very length.
                Some(FixedTextValue::Area(_)) | None => f("area", 0.0, TOUCH_MAX),
            })
        }
        (FactorKind::Face, FACE_V1) => {
            if values.len() != FACE_V1_DIM {
                return Err(SchemaError::Dimension {
                    factor,
                    version,
                    got: values.len(),
                    expected: FACE_V1_DIM.to_string(),
                });
            }
            if has_context {
                return Err(SchemaError::Context(factor, "must not carry"));
            }
            check_values(values, face_value)?;
            // The hash chunks are whole numbers: a fraction would not round-trip.
            match values[FACE_EMBEDDING_DIM + 1..]
                .iter()
                .position(|v| v.fract() != 0.0)
            {
                Some(k) => Err(SchemaError::OutOfRange {
                    index: FACE_EMBEDDING_DIM + 1 + k,
                    name: "image_hash".into(),
                    value: values[FACE_EMBEDDING_DIM + 1 + k],
                    min: 0.0,
                    max: 65_535.0,
                }),
                None => Ok(()),
            }
        }
        _ => {
            let layout = fixed_layout(factor, version)
                .ok_or(SchemaError::UnknownVersion { factor, version })?;
            if values.len() != layout.len() {
                return Err(SchemaError::Dimension {
                    factor,
                    version,
                    got: values.len(),
                    expected: layout.len().to_string(),
                });
            }
            if has_context {
                return Err(SchemaError::Context(factor, "must not carry"));
            }
            check_values(values, |i| layout[i])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_ranges_sane() {
        for layout in [GAIT_V1, KEYSTROKE_FREE_V1] {
            let mut names: Vec<_> = layout.iter().map(|d| d.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), layout.len());
            assert!(layout.iter().all(|d| d.min < d.max));
        }
        assert_eq!(GAIT_V1.len(), 50);
        assert_eq!(index_of(GAIT_V1, "cadence_hz"), Some(0));
    }

    #[test]
    fn face_records_carry_an_embedding_a_quality_and_a_whole_hash() {
        let mut v = vec![0.1f32; FACE_V1_DIM];
        v[FACE_EMBEDDING_DIM] = 0.8;
        v[FACE_EMBEDDING_DIM + 1..].copy_from_slice(&[65_535.0, 0.0, 1.0, 4_096.0]);
        assert_eq!(validate(FactorKind::Face, FACE_V1, &v, false), Ok(()));
        assert!(validate(FactorKind::Face, FACE_V1, &v, true).is_err());
        assert!(validate(FactorKind::Face, 2, &v, false).is_err());
        assert!(validate(FactorKind::Face, FACE_V1, &v[1..], false).is_err());
        for (i, bad) in [
            (0, 2.5),
            (5, f32::NAN),
            (FACE_EMBEDDING_DIM, 1.5),
            (FACE_EMBEDDING_DIM + 1, 65_536.0),
            (FACE_EMBEDDING_DIM + 2, 0.5),
            (FACE_EMBEDDING_DIM + 3, -1.0),
        ] {
            let mut w = v.clone();
            w[i] = bad;
            assert!(
                validate(FactorKind::Face, FACE_V1, &w, false).is_err(),
                "value {i} = {bad}"
            );
        }
    }

    #[test]
    fn fixed_text_dimensions() {
        assert_eq!(fixed_text_keys(31), Some(11)); // the CMU password plus Return
        assert_eq!(fixed_text_keys(4), Some(2));
        assert_eq!(fixed_text_keys(1), None);
        assert_eq!(fixed_text_keys(30), None);
        assert_eq!(fixed_text_keys(3 * 129 - 2), None);
        assert_eq!(fixed_text_timing(0), FixedTextTiming::Hold(0));
        assert_eq!(fixed_text_timing(1), FixedTextTiming::DownDown(0));
        assert_eq!(fixed_text_timing(2), FixedTextTiming::UpDown(0));
        assert_eq!(fixed_text_timing(30), FixedTextTiming::Hold(10));
    }

    #[test]
    fn touch_layout_follows_the_timings() {
        assert_eq!(fixed_text_dim(1, 10), Some(28));
        assert_eq!(fixed_text_dim(2, 10), Some(48));
        assert_eq!(fixed_text_dim(3, 10), None);
        assert_eq!(fixed_text_dim(2, 1), None);
        assert_eq!(fixed_text_keys_in(2, 48), Some(10));
        assert_eq!(fixed_text_keys_in(2, 8), Some(2));
        assert_eq!(fixed_text_keys_in(2, 47), None);
        assert_eq!(fixed_text_keys_in(2, 3), None);
        assert_eq!(fixed_text_keys_in(2, 5 * 129 - 2), None);
        assert_eq!(fixed_text_keys_in(1, 28), Some(10));
        assert_eq!(fixed_text_keys_in(7, 28), None);
        // 2 keys: H DD UD H | P P | A A
        assert_eq!(
            fixed_text_value(2, 2, 3),
            Some(FixedTextValue::Timing(FixedTextTiming::Hold(1)))
        );
        assert_eq!(fixed_text_value(2, 2, 4), Some(FixedTextValue::Pressure(0)));
        assert_eq!(fixed_text_value(2, 2, 5), Some(FixedTextValue::Pressure(1)));
        assert_eq!(fixed_text_value(2, 2, 6), Some(FixedTextValue::Area(0)));
        assert_eq!(fixed_text_value(2, 2, 7), Some(FixedTextValue::Area(1)));
        assert_eq!(fixed_text_value(2, 2, 8), None);
        assert_eq!(fixed_text_value(1, 2, 4), None);
    }

    #[test]
    fn touch_records_are_validated() {
        let mut v2 = vec![0.1f32; 8];
        assert!(validate(FactorKind::KeystrokeFixed, 2, &v2, true).is_ok());
        // A v1 length under v2 and the reverse are dimension errors.
        assert!(matches!(
            validate(FactorKind::KeystrokeFixed, 2, &[0.1; 4], true),
            Err(SchemaError::Dimension { version: 2, .. })
        ));
        assert!(matches!(
            validate(FactorKind::KeystrokeFixed, 1, &v2, true),
            Err(SchemaError::Dimension { version: 1, .. })
        ));
        assert!(matches!(
            validate(FactorKind::KeystrokeFixed, 2, &v2, false),
            Err(SchemaError::Context(..))
        ));
        v2[5] = -0.1;
        match validate(FactorKind::KeystrokeFixed, 2, &v2, true) {
            Err(SchemaError::OutOfRange { index: 5, name, .. }) => assert_eq!(name, "pressure"),
            other => panic!("{other:?}"),
        }
        v2[5] = 0.5;
        v2[7] = TOUCH_MAX * 2.0;
        match validate(FactorKind::KeystrokeFixed, 2, &v2, true) {
            Err(SchemaError::OutOfRange { index: 7, name, .. }) => assert_eq!(name, "area"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            validate(FactorKind::KeystrokeFixed, 3, &[0.1; 8], true),
            Err(SchemaError::UnknownVersion { version: 3, .. })
        ));
    }

    #[test]
    fn validation_errors_are_specific() {
        let good = vec![0.1f32; 4];
        assert!(validate(FactorKind::KeystrokeFixed, 1, &good, true).is_ok());
        assert!(matches!(
            validate(FactorKind::KeystrokeFixed, 1, &good, false),
            Err(SchemaError::Context(..))
        ));
        assert!(matches!(
            validate(FactorKind::KeystrokeFixed, 1, &[0.1; 5], true),
            Err(SchemaError::Dimension { .. })
        ));
        assert!(matches!(
            validate(
                FactorKind::KeystrokeFixed,
                1,
                &[0.1, f32::NAN, 0.1, 0.1],
                true
            ),
            Err(SchemaError::NotFinite { index: 1, .. })
        ));
        assert!(matches!(
            validate(FactorKind::KeystrokeFixed, 1, &[-0.1, 0.1, 0.1, 0.1], true),
            Err(SchemaError::OutOfRange { index: 0, .. })
        ));
        assert!(matches!(
            validate(FactorKind::Gait, 2, &[0.0; 50], false),
            Err(SchemaError::UnknownVersion { .. })
        ));
        assert!(matches!(
            validate(FactorKind::Gait, 1, &[0.0; 49], false),
            Err(SchemaError::Dimension { .. })
        ));
        let mut gait = vec![0.0f32; 50];
        assert!(validate(FactorKind::Gait, 1, &gait, false).is_ok());
        gait[0] = 7.0;
        assert!(matches!(
            validate(FactorKind::Gait, 1, &gait, false),
            Err(SchemaError::OutOfRange { index: 0, .. })
        ));
    }
}
