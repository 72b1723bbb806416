//! Keystroke features: fixed-text timing vectors and their errors, free-text
//! statistics, streaming = batch, and the privacy of phrase identifiers.

use tacit_features::dsp::{DspError, KeyClass, KeyEvent};
use tacit_features::factors::keystroke::{
    FreeTextExtractor, fixed_text_record, fixed_text_timings, fixed_text_touch, fixed_text_vector,
    free_text_features, phrase_id,
};
use tacit_shared::schema::KEYSTROKE_FREE_V1;

const MS: i64 = 1_000_000;

fn key(class: KeyClass, down_ms: i64, up_ms: i64) -> KeyEvent {
    KeyEvent {
        class,
        down_ns: down_ms * MS,
        up_ns: up_ms * MS,
        pressure: None,
        area: None,
    }
}

#[test]
fn fixed_text_timings_follow_cmu_order_and_allow_rollover() {
    use KeyClass::*;
    // Third key goes down before the second is released (rollover): UD < 0.
    let e = [
        key(Letter, 0, 100),
        key(Letter, 250, 400),
        key(Digit, 380, 450),
    ];
    let t = fixed_text_timings(&e, 3).unwrap();
    let want = [0.1, 0.25, 0.15, 0.15, 0.13, -0.02, 0.07];
    assert_eq!(t.len(), want.len());
    for (a, b) in t.iter().zip(want) {
        assert!((a - b).abs() < 1e-12, "{t:?}");
    }
    let r = fixed_text_record(phrase_id(b"salt", "ab1"), &e, 3, 1_700_000_000_000).unwrap();
    r.validate().unwrap();
    assert_eq!(r.window_ms, 450);
}

fn touched(k: KeyEvent, pressure: f64, area: f64) -> KeyEvent {
    KeyEvent {
        pressure: Some(pressure),
        area: Some(area),
        ..k
    }
}

/// With pressure and area on every key the record is version 2: the version-1 timings
/// unchanged, then the pressures, then the areas, in key order.
#[test]
fn fixed_text_touch_extends_the_timings() {
    use KeyClass::*;
    let plain = [
        key(Letter, 0, 100),
        key(Letter, 250, 400),
        key(Digit, 380, 450),
    ];
    let touch = [
        touched(plain[0], 0.31, 0.05),
        touched(plain[1], 0.42, 0.06),
        touched(plain[2], 0.53, 0.07),
    ];
    let v = fixed_text_vector(&touch, 3).unwrap();
    assert_eq!(v.schema_version, 2);
    let t = fixed_text_timings(&plain, 3).unwrap();
    assert_eq!(&v.values[..7], &t[..]);
    assert_eq!(&v.values[7..], &[0.31, 0.42, 0.53, 0.05, 0.06, 0.07]);
    let id = phrase_id(b"salt", "ab1");
    let r = fixed_text_record(id, &touch, 3, 1_700_000_000_000).unwrap();
    r.validate().unwrap();
    assert_eq!((r.schema_version, r.values.len()), (2, 13));
    // Without touch: version 1, the very record of before.
    let r1 = fixed_text_record(id, &plain, 3, 1_700_000_000_000).unwrap();
    assert_eq!((r1.schema_version, r1.values.len()), (1, 7));
    assert_eq!(r1.values[..], r.values[..7]);
}

/// Touch on only some keys, a value the validation repairs away (NaN, negative) or an
/// implausible one: the entry is version 1, never an error.
#[test]
fn partial_or_broken_touch_falls_back_to_timings() {
    use KeyClass::*;
    let a = key(Letter, 0, 100);
    let b = key(Letter, 250, 400);
    let cases = [
        [touched(a, 0.3, 0.05), b],
        [
            touched(a, 0.3, 0.05),
            KeyEvent {
                pressure: Some(0.4),
                ..b
            },
        ],
        [touched(a, 0.3, 0.05), touched(b, f64::NAN, 0.05)],
        [touched(a, 0.3, 0.05), touched(b, 0.4, -1.0)],
        [touched(a, 0.3, 0.05), touched(b, 0.4, f64::INFINITY)],
        [touched(a, 0.3, 0.05), touched(b, 1e6, 0.05)],
    ];
    for events in cases {
        assert_eq!(fixed_text_touch(&events), None, "{events:?}");
        let v = fixed_text_vector(&events, 2).unwrap();
        assert_eq!((v.schema_version, v.values.len()), (1, 4), "{events:?}");
        let r = fixed_text_record([1; 16], &events, 2, 0).unwrap();
        r.validate().unwrap();
    }
    assert_eq!(fixed_text_touch(&[]), None);
    // Zero is a value (a phone without a pressure sensor may report a constant).
    assert!(fixed_text_touch(&[touched(a, 0.0, 0.0), touched(b, 0.0, 0.0)]).is_some());
    // Timing errors stay errors with touch.
    assert_eq!(
        fixed_text_vector(&[touched(a, 0.3, 0.05)], 2),
        Err(DspError::EntryLength {
            got: 1,
            expected: 2
        })
    );
}

#[test]
fn fixed_text_bad_input_errors() {
    use KeyClass::*;
    let ok = [key(Letter, 0, 100), key(Letter, 250, 400)];
    assert_eq!(fixed_text_timings(&[], 2), Err(DspError::Empty));
    assert_eq!(
        fixed_text_timings(&ok, 3),
        Err(DspError::EntryLength {
            got: 2,
            expected: 3
        })
    );
    assert_eq!(fixed_text_timings(&ok, 1), Err(DspError::PhraseLength(1)));
    assert_eq!(
        fixed_text_timings(&ok, 500),
        Err(DspError::PhraseLength(500))
    );
    let up_first = [key(Letter, 0, 100), key(Letter, 250, 200)];
    assert_eq!(
        fixed_text_timings(&up_first, 2),
        Err(DspError::KeyUpBeforeDown { index: 1 })
    );
    let order = [key(Letter, 300, 400), key(Letter, 250, 300)];
    assert_eq!(
        fixed_text_timings(&order, 2),
        Err(DspError::KeysOutOfOrder { index: 1 })
    );
    let dup = [key(Letter, 300, 400), key(Letter, 300, 400)];
    assert_eq!(
        fixed_text_timings(&dup, 2),
        Err(DspError::KeysOutOfOrder { index: 1 })
    );
    let corrected = [key(Letter, 0, 100), key(Backspace, 250, 300)];
    assert_eq!(
        fixed_text_timings(&corrected, 2),
        Err(DspError::CorrectedEntry)
    );
    let stuck = [key(Letter, 0, 20_000), key(Letter, 25_000, 25_100)];
    assert_eq!(
        fixed_text_timings(&stuck, 2),
        Err(DspError::KeyHeldTooLong { index: 0 })
    );
}

#[test]
fn phrase_ids_are_salted_and_reveal_nothing() {
    let a = phrase_id(b"user-1", "hunter2");
    assert_eq!(a, phrase_id(b"user-1", "hunter2"));
    assert_ne!(a, phrase_id(b"user-2", "hunter2"));
    assert_ne!(a, phrase_id(b"user-1", "hunter3"));
    // Salt/phrase boundary is unambiguous.
    assert_ne!(phrase_id(b"ab", "c"), phrase_id(b"a", "bc"));
    let hex: String = a.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!hex.contains("hunter"));
}

/// Typing of `n` keys: letters with a space every 5th key, a backspace every 23rd,
/// rollover now and then, and a 5 s pause every 60 keys.
fn typing(n: usize) -> Vec<KeyEvent> {
    let mut t = 0i64;
    (0..n)
        .map(|i| {
            let class = if i % 23 == 22 {
                KeyClass::Backspace
            } else if i % 5 == 4 {
                KeyClass::Space
            } else {
                KeyClass::Letter
            };
            t += if i % 60 == 59 {
                5000
            } else {
                120 + (i as i64 * 37 % 90)
            };
            let hold = 70 + (i as i64 * 13 % 60);
            key(class, t, t + hold)
        })
        .collect()
}

#[test]
fn free_text_features_have_the_schema_layout_and_sane_values() {
    let e = typing(200);
    let f = free_text_features(&e).unwrap();
    assert_eq!(f.len(), KEYSTROKE_FREE_V1.len());
    let get = |name: &str| {
        f[KEYSTROKE_FREE_V1
            .iter()
            .position(|d| d.name == name)
            .unwrap()]
    };
    assert!((get("hold_mean_letter") - 0.1).abs() < 0.03);
    assert!(get("rollover_rate") > 0.0);
    assert!((get("backspace_rate") - 8.0 / 200.0).abs() < 1e-12);
    assert!((get("pause_rate") - 3.0 / 199.0).abs() < 1e-12);
    assert_eq!(get("digraph_count"), 196.0);
    assert!(
        free_text_features(&e[..2]).is_none(),
        "one digraph is too few"
    );
}

#[test]
fn free_text_streaming_equals_batch_and_counts_bad_events() {
    let mut e = typing(1000);
    e[10].up_ns = e[10].down_ns - 1; // up before down: dropped
    e[20].down_ns = e[19].down_ns; // not after the previous: dropped
    let run = |chunk: usize| {
        let mut ex = FreeTextExtractor::new(100).unwrap();
        let mut out = Vec::new();
        for c in e.chunks(chunk) {
            ex.push(c, |f, start, end| out.push((f.to_vec(), start, end)));
        }
        (out, ex.report().clone(), ex.pending())
    };
    let (batch, report, pending) = run(e.len());
    assert_eq!(batch.len(), 9);
    assert_eq!(report.dropped_invalid, 1);
    assert_eq!(report.dropped_out_of_order, 1);
    assert_eq!(report.accepted, 998);
    assert_eq!(pending, 98);
    for chunk in [1, 3, 99, 100, 101] {
        assert_eq!(run(chunk).0, batch, "chunk {chunk}");
    }
    assert!(FreeTextExtractor::new(5).is_err());
}
