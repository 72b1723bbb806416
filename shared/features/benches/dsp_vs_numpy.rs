//! Comparison harness: the same one hour of 100 Hz 6-axis data through (a) our Rust
//! pipeline, (b) the bare FFTs of the same windows (the floor), and (c) the numpy/scipy
//! implementation in `tests/reference/gait_reference.py`, all in one run. Prints a
//! Markdown table for BENCHMARKS.md.
//!
//! `cargo bench -p tacit-features --bench dsp_vs_numpy` (Python from `$TACIT_PYTHON`
//! or `python3`; needs numpy and scipy).
#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use std::hint::black_box;
use std::io::Write;
use std::time::Instant;

use tacit_features::factors::gait::{GaitConfig, GaitExtractor};

fn best_of(runs: usize, mut f: impl FnMut() -> f64) -> (f64, f64) {
    let mut best = f64::INFINITY;
    let mut check = 0.0;
    for _ in 0..runs {
        let t = Instant::now();
        check += f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    (best, check)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // `--seconds S` (default an hour) and `--runs R` (default 7): the test command
    // runs this binary on a few seconds once, so that it cannot rot.
    let seconds = support::arg("--seconds", 3600.0);
    let runs = support::arg("--runs", 7.0) as usize;
    let samples = support::walking(seconds);
    let windows = support::window_count(&samples);

    let (rust_s, walking) = best_of(runs, || {
        let mut ex = GaitExtractor::new(GaitConfig::default()).unwrap();
        let mut n = 0.0;
        ex.push(black_box(&samples), |w| n += w.walking as u8 as f64);
        n
    });
    let signal: Vec<f64> = (0..256).map(|i| (i as f64 * 0.37).sin()).collect();
    let mut floor = support::FftFloor::new();
    let (floor_s, _) = best_of(runs, || {
        (0..windows)
            .map(|_| floor.window(black_box(&signal), true))
            .sum()
    });
    let (floor1_s, _) = best_of(runs, || {
        (0..windows)
            .map(|_| floor.window(black_box(&signal), false))
            .sum()
    });

    let path = std::env::temp_dir().join(format!("tacit-hour-{}.bin", std::process::id()));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for s in &samples {
        f.write_all(&s.t_ns.to_le_bytes()).unwrap();
        for v in s.accel.iter().chain(s.gyro.as_ref().unwrap()) {
            f.write_all(&v.to_le_bytes()).unwrap();
        }
    }
    drop(f);
    let py = std::env::var("TACIT_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/gait_reference.py"
    );
    let out = std::process::Command::new(&py)
        .args([script, "bench", path.to_str().unwrap(), "3"])
        .output();
    std::fs::remove_file(&path).ok();
    let numpy = match out {
        Ok(o) if o.status.success() => serde_json::from_slice::<serde_json::Value>(&o.stdout).ok(),
        Ok(o) => {
            eprintln!("numpy peer failed: {}", String::from_utf8_lossy(&o.stderr));
            None
        }
        Err(e) => {
            eprintln!("numpy peer not run ({py}: {e})");
            None
        }
    };

    println!(
        "input: {} samples ({seconds} s, 100 Hz, 6 axes); {windows} windows, {} walking",
        samples.len(),
        walking / runs as f64
    );
    println!("| what | time (best of runs) | per window | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| Rust pipeline (validate, resample, gravity, 3 spectra, autocorrelation, 50 features) | {:.2} ms | {:.2} µs | 1 |",
        rust_s * 1e3,
        rust_s * 1e6 / windows as f64
    );
    println!(
        "| bare rustfft, the same transforms (3 × rFFT 256 + rFFT/irFFT 512) | {:.2} ms | {:.2} µs | pipeline = {:.2}× this floor |",
        floor_s * 1e3,
        floor_s * 1e6 / windows as f64,
        rust_s / floor_s
    );
    println!(
        "| bare rustfft, one rFFT 256 per window | {:.2} ms | {:.2} µs | pipeline = {:.2}× |",
        floor1_s * 1e3,
        floor1_s * 1e6 / windows as f64,
        rust_s / floor1_s
    );
    if let Some(v) = numpy {
        let s = v["seconds"].as_f64().unwrap();
        let w = v["windows"].as_u64().unwrap();
        println!(
            "| numpy {} / scipy {} reference (same pipeline, {w} windows) | {:.1} ms | {:.1} µs | Rust is {:.0}× faster |",
            v["numpy"].as_str().unwrap_or("?"),
            v["scipy"].as_str().unwrap_or("?"),
            s * 1e3,
            s * 1e6 / w as f64,
            s / rust_s
        );
    }
}
