//! Fuzz target: the phone's input validation, what a (possibly malicious) app feeds
//! the core. Arbitrary motion samples through the gait extractor and arbitrary key
//! events through the fixed-text and free-text extractors: never a panic, invalid
//! input is counted as dropped, and every feature record produced is finite.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tacit_features::dsp::{KeyClass, KeyEvent, MotionSample};
use tacit_features::factors::gait::{GaitConfig, GaitExtractor};
use tacit_features::factors::keystroke::{FreeTextExtractor, fixed_text_timings};

const CLASSES: [KeyClass; 7] = [
    KeyClass::Letter,
    KeyClass::Digit,
    KeyClass::Space,
    KeyClass::Punctuation,
    KeyClass::Backspace,
    KeyClass::Enter,
    KeyClass::Modifier,
];

fn f64_at(b: &[u8]) -> f64 {
    f64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

fn i64_at(b: &[u8]) -> i64 {
    i64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        // Motion: 33 bytes per sample; small time steps keep windows reachable.
        let mut t = 0i64;
        let samples: Vec<MotionSample> = rest
            .chunks_exact(33)
            .map(|c| {
                t = t.wrapping_add(if c[32] & 0x80 != 0 { i64_at(c) } else { i64::from(c[0]) * 200_000 });
                let a = |i: usize| if c[32] & 1 != 0 { f64_at(&c[8 * i..]) } else { f64::from(c[8 * i] as i8) / 8.0 };
                MotionSample {
                    t_ns: t,
                    accel: [a(1), a(2), a(3)],
                    gyro: (c[32] & 2 != 0).then(|| [a(1), a(3), a(2)]),
                }
            })
            .collect();
        // Repeat short inputs so that a full window can fill.
        let mut ex = GaitExtractor::new(GaitConfig::default()).expect("default config");
        for _ in 0..if samples.len() < 64 { 8 } else { 1 } {
            ex.push(&samples, |w| {
                let r = w.to_record(0);
                assert!(r.values.iter().all(|v| v.is_finite()), "non-finite gait feature");
            });
        }
    } else {
        let mut t = 0i64;
        let events: Vec<KeyEvent> = rest
            .chunks_exact(6)
            .map(|c| {
                t = t.wrapping_add(i64::from(u16::from_le_bytes([c[0], c[1]])) * 100_000);
                KeyEvent {
                    class: CLASSES[usize::from(c[2]) % CLASSES.len()],
                    down_ns: t,
                    up_ns: t + i64::from(i16::from_le_bytes([c[3], c[4]])) * 100_000,
                    pressure: (c[5] & 1 != 0).then(|| f64::from(c[5]) / 128.0),
                    area: (c[5] & 2 != 0).then(|| f64::from(c[5] as i8)),
                }
            })
            .collect();
        if let Ok(timings) = fixed_text_timings(&events, events.len()) {
            assert!(timings.iter().all(|v| v.is_finite()), "non-finite timing");
        }
        let mut ex = FreeTextExtractor::new(20).expect("block size");
        ex.push(&events, |features, _, _| {
            assert!(features.iter().all(|v| v.is_finite()), "non-finite free-text feature");
        });
    }
});
