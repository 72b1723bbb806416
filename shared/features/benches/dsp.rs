//! Criterion benches of the on-phone feature pipelines.
#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use tacit_features::dsp::{KeyClass, KeyEvent};
use tacit_features::factors::gait::{GaitConfig, GaitExtractor};
use tacit_features::factors::keystroke::free_text_features;

fn bench(c: &mut Criterion) {
    let samples = support::hour_of_walking();
    let windows = support::window_count(&samples);
    let mut g = c.benchmark_group("gait_1h_100Hz_6axis");
    g.sample_size(10);
    g.throughput(Throughput::Elements(windows as u64));
    g.bench_function("pipeline", |b| {
        b.iter(|| {
            let mut ex = GaitExtractor::new(GaitConfig::default()).unwrap();
            let mut n = 0;
            ex.push(black_box(&samples), |w| n += w.walking as usize);
            n
        })
    });
    let signal: Vec<f64> = (0..256).map(|i| (i as f64 * 0.37).sin()).collect();
    let mut floor = support::FftFloor::new();
    g.bench_function("fft_floor_same_transforms", |b| {
        b.iter(|| {
            (0..windows)
                .map(|_| floor.window(black_box(&signal), true))
                .sum::<f64>()
        })
    });
    g.bench_function("fft_floor_one_rfft_per_window", |b| {
        b.iter(|| {
            (0..windows)
                .map(|_| floor.window(black_box(&signal), false))
                .sum::<f64>()
        })
    });
    g.finish();

    let keys: Vec<KeyEvent> = (0..1000i64)
        .map(|i| KeyEvent {
            class: if i % 5 == 4 {
                KeyClass::Space
            } else {
                KeyClass::Letter
            },
            down_ns: i * 150_000_000,
            up_ns: i * 150_000_000 + 90_000_000,
            pressure: None,
            area: None,
        })
        .collect();
    c.bench_function("keystroke_free_text_1000_keys", |b| {
        b.iter(|| free_text_features(black_box(&keys)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
