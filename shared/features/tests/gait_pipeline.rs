//! Gait pipeline behaviour on synthetic input: walking detection, cadence,
//! orientation independence, streaming = batch, and every bad-input rule.

mod common;

use common::{rotation, still, walker};
use tacit_features::dsp::{DspError, MotionSample};
use tacit_features::factors::gait::{GaitConfig, GaitExtractor, GaitWindow, extract_gait};
use tacit_shared::schema::GAIT_V1;

#[test]
fn walker_is_walking_at_its_cadence_and_features_fit_the_schema() {
    for cadence in [1.5, 1.8, 2.1] {
        let s = walker(60.0, 100.0, cadence, &rotation(0.3, 1.2, -0.4), 0.2, 7);
        let (ws, report) = extract_gait(&s, GaitConfig::default()).unwrap();
        assert!(ws.len() >= 20);
        assert_eq!(report.walking_windows, report.windows, "{report:?}");
        for w in &ws {
            let c = w.feature("cadence_hz").unwrap();
            assert!((c - cadence).abs() < 0.05, "cadence {c} vs {cadence}");
            w.to_record(1_700_000_000_000).validate().unwrap();
        }
    }
}

#[test]
fn still_phone_is_not_walking() {
    let (ws, report) = extract_gait(&still(60.0, 50.0, 3), GaitConfig::default()).unwrap();
    assert!(!ws.is_empty());
    assert_eq!(report.walking_windows, 0, "{report:?}");
}

#[test]
fn features_do_not_depend_on_phone_orientation() {
    let a = walker(30.0, 50.0, 1.8, &rotation(0.0, 0.0, 0.0), 0.0, 11);
    let b = walker(30.0, 50.0, 1.8, &rotation(2.0, -0.9, 1.3), 0.0, 11);
    let (wa, _) = extract_gait(&a, GaitConfig::default()).unwrap();
    let (wb, _) = extract_gait(&b, GaitConfig::default()).unwrap();
    assert_eq!(wa.len(), wb.len());
    for (x, y) in wa.iter().zip(&wb) {
        for (i, (p, q)) in x.features.iter().zip(&y.features).enumerate() {
            assert!(
                (p - q).abs() <= 1e-6 * (1.0 + p.abs()),
                "{}: {p} vs {q}",
                GAIT_V1[i].name
            );
        }
    }
}

fn stream(samples: &[MotionSample], chunk: impl Fn(usize) -> usize) -> Vec<GaitWindow> {
    let mut ex = GaitExtractor::new(GaitConfig::default()).unwrap();
    let mut out = Vec::new();
    let mut i = 0;
    let mut k = 0;
    while i < samples.len() {
        let n = chunk(k).max(1).min(samples.len() - i);
        ex.push(&samples[i..i + n], |w| out.push(w.clone()));
        i += n;
        k += 1;
    }
    out
}

#[test]
fn streaming_in_any_chunk_size_equals_batch() {
    let mut s = walker(40.0, 60.0, 1.7, &rotation(0.5, 0.5, 0.5), 0.3, 5);
    // Messy input too: a gap, a NaN, a duplicate and an out-of-order sample.
    s[500].accel[1] = f64::NAN;
    s[600].t_ns = s[599].t_ns;
    s.swap(700, 701);
    for x in &mut s[1500..] {
        x.t_ns += 2_000_000_000;
    }
    let (batch, _) = extract_gait(&s, GaitConfig::default()).unwrap();
    assert!(batch.len() > 5);
    for chunking in [
        Box::new(|_| 1usize) as Box<dyn Fn(usize) -> usize>,
        Box::new(|_| 7),
        Box::new(|_| 256),
        Box::new(|k| (k * 7919) % 300),
        Box::new(|_| usize::MAX),
    ] {
        assert_eq!(stream(&s, chunking), batch);
    }
}

#[test]
fn bad_input_gets_typed_errors_or_counted_repairs() {
    let cfg = GaitConfig::default();
    assert_eq!(extract_gait(&[], cfg).unwrap_err(), DspError::Empty);

    let mut s = walker(20.0, 50.0, 1.8, &rotation(0.0, 0.0, 0.0), 0.0, 1);
    let n = s.len();
    s[10].accel[0] = f64::NAN;
    s[11].accel[2] = f64::INFINITY;
    s[12].gyro = Some([f64::NAN, 0.0, 0.0]);
    s[20].accel[1] = 1e6;
    s[30].t_ns = s[29].t_ns; // duplicate
    s[41].t_ns = s[39].t_ns - 1; // out of order
    s[50].t_ns = s[49].t_ns + 100_000; // 10 kHz: too dense
    let (_, r) = extract_gait(&s, cfg).unwrap();
    assert_eq!(r.dropped_non_finite, 3);
    assert_eq!(r.dropped_out_of_range, 1);
    assert_eq!(r.dropped_duplicate, 1);
    assert_eq!(r.dropped_out_of_order, 1);
    assert_eq!(r.dropped_too_dense, 1);
    assert_eq!(r.accepted + r.dropped(), n as u64);

    // Gaps split segments: no window spans one.
    let mut g = walker(30.0, 50.0, 1.8, &rotation(0.0, 0.0, 0.0), 0.0, 2);
    for x in &mut g[700..] {
        x.t_ns += 3_000_000_000;
    }
    let (ws, r) = extract_gait(&g, cfg).unwrap();
    assert_eq!(r.gaps, 1);
    let gap_start = g[699].t_ns;
    let gap_end = g[700].t_ns;
    for w in &ws {
        assert!(w.start_ns + w.duration_ns <= gap_start + 20_000_000 || w.start_ns >= gap_end);
    }

    // Absurd rates: timestamps in ms passed as ns, or one sample a second.
    let mut ms = s.clone();
    for (i, x) in ms.iter_mut().enumerate() {
        x.t_ns = i as i64 * 20;
    }
    assert!(matches!(
        extract_gait(&ms, cfg),
        Err(DspError::AbsurdSampleRate { .. })
    ));
    let slow: Vec<MotionSample> = (0..100)
        .map(|i| MotionSample {
            t_ns: i * 1_000_000_000,
            accel: [0.0, 0.0, 9.8],
            gyro: None,
        })
        .collect();
    assert!(matches!(
        extract_gait(&slow, cfg),
        Err(DspError::AbsurdSampleRate { .. })
    ));

    // Everything invalid.
    let all_nan: Vec<MotionSample> = (0..100)
        .map(|i| MotionSample {
            t_ns: i * 20_000_000,
            accel: [f64::NAN; 3],
            gyro: None,
        })
        .collect();
    assert!(matches!(
        extract_gait(&all_nan, cfg),
        Err(DspError::NoValidSamples(_))
    ));

    // A sparse stream (5 Hz inside a 50 Hz-looking batch) makes low-rate windows.
    let sparse: Vec<MotionSample> = walker(60.0, 50.0, 1.8, &rotation(0.0, 0.0, 0.0), 0.0, 3)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i < 50 || i % 10 == 0)
        .map(|(_, s)| s)
        .collect();
    let mut ex = GaitExtractor::new(cfg).unwrap();
    ex.push(&sparse, |_| {});
    assert!(ex.report().low_rate_windows > 0, "{:?}", ex.report());

    // Bad configuration.
    assert!(GaitExtractor::new(GaitConfig { hop: 0, ..cfg }).is_err());
    assert!(GaitExtractor::new(GaitConfig { window: 255, ..cfg }).is_err());
    assert!(
        GaitExtractor::new(GaitConfig {
            rate_hz: 1.0,
            ..cfg
        })
        .is_err()
    );
}
