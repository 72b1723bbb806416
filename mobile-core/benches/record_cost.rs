//! What `record_motion` costs the app's thread, per call: 50 Hz walking fed in the
//! platform layers' batches of 50 readings (one second each), long enough that the
//! pending records fill several envelopes' worth, against
//!
//! * the floor: the gait extractor alone on the same batches (the feature work any
//!   design does on the caller's thread);
//! * sealing on the caller's thread (what `record_*` did before the sealer thread: the
//!   call that fills an envelope's worth seals it, HPKE, signature and fsync included).
//!
//! The calls are paced (`--pace-us`, 1 ms by default): an app calls once a second, and
//! back to back the whole run would be shorter than the sealing it causes, so the
//! caller would always share the CPU with the sealer thread — a load no phone sees.
//!
//! `cargo bench -p tacit-mobile-core --bench record_cost [-- --calls 20000 --pace-us 1000]`
//! (`--calls 200 --pace-us 0` is the smoke run of the test command.)

use std::hint::black_box;
use std::time::{Duration, Instant};

use tacit_mobile_core::client::{Client, ClientConfig};
use tacit_mobile_core::dsp::MotionSample;
use tacit_mobile_core::factors::gait::{GaitConfig, GaitExtractor};
use tacit_mobile_core::protocol::RecipientKeyPair;

const BATCH: usize = 50;
const RATE_HZ: f64 = 50.0;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Synthetic walking (1.8 steps/s) from `t0_ns`, `n` readings.
fn walking(t0_ns: i64, n: usize) -> Vec<MotionSample> {
    (0..n)
        .map(|i| {
            let s = i as f64 / RATE_HZ;
            let ph = 2.0 * std::f64::consts::PI * 1.8 * s;
            let noise = 0.05 * (i as f64 * 12.9898).sin() * (i as f64 * 78.233).cos();
            MotionSample {
                t_ns: t0_ns + (s * 1e9) as i64,
                accel: [
                    1.2 * (0.5 * ph + 0.3).sin(),
                    0.6 * (0.5 * ph).cos() + noise,
                    9.81 + 2.5 * ph.sin() + 0.8 * (2.0 * ph + 0.5).sin() + noise,
                ],
                gyro: Some([0.1 * ph.sin(), 0.05 * ph.cos(), 0.02]),
            }
        })
        .collect()
}

struct Stats {
    p50: Duration,
    p99: Duration,
    p999: Duration,
    max: Duration,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: v[v.len() - 1],
    }
}

fn client(background: bool, name: &str) -> (Client, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("tacit-record-cost-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let key = RecipientKeyPair::derive(b"record cost bench");
    let mut cfg = ClientConfig::new(
        "http://127.0.0.1:9",
        key.public_key().as_bytes(),
        &key.key_id().to_hex(),
        &dir.to_string_lossy(),
        "bench",
    )
    .expect("config");
    cfg.sealing.background = background;
    (Client::new(cfg, None).expect("client"), dir)
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn main() {
    let calls = arg("--calls", 20_000).max(10);
    let pace = Duration::from_micros(arg("--pace-us", 1_000) as u64);
    let t0 = 1_800_000_000_000_000_000i64;
    let samples = walking(t0, calls * BATCH);
    let batches: Vec<&[MotionSample]> = samples.chunks(BATCH).collect();

    // Floor: the extractor alone.
    let mut gait = GaitExtractor::new(GaitConfig::default()).expect("gait");
    let mut floor = Vec::with_capacity(calls);
    let mut windows = 0u64;
    for b in &batches {
        let t = Instant::now();
        gait.push(b, |w| windows += u64::from(w.walking));
        floor.push(t.elapsed());
        if !pace.is_zero() {
            std::thread::sleep(pace);
        }
    }
    black_box(windows);

    let mut rows = Vec::new();
    for (label, background) in [
        ("sealer thread (default)", true),
        ("sealed on the caller", false),
    ] {
        let (c, dir) = client(background, if background { "bg" } else { "inline" });
        let mut times = Vec::with_capacity(calls);
        for b in &batches {
            let t = Instant::now();
            black_box(c.record_motion(b).expect("record"));
            times.push(t.elapsed());
            if !pace.is_zero() {
                std::thread::sleep(pace);
            }
        }
        c.seal().expect("final seal");
        let envelopes = c.status().expect("status").outbox_envelopes;
        drop(c);
        let _ = std::fs::remove_dir_all(&dir);
        rows.push((label, stats(times), envelopes));
    }
    let floor = stats(floor);

    println!(
        "`record_motion`, {calls} calls of {BATCH} readings, {} µs apart (50 Hz walking, {windows} gait records):",
        pace.as_micros()
    );
    println!();
    println!(
        "| caller's thread | p50 µs | p99 µs | p99.9 µs | max µs | p99 / floor p99 | envelopes |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| floor: gait extractor alone | {} | {} | {} | {} | 1.00 | – |",
        us(floor.p50),
        us(floor.p99),
        us(floor.p999),
        us(floor.max)
    );
    for (label, s, envelopes) in &rows {
        println!(
            "| `record_motion`, {label} | {} | {} | {} | {} | {:.2} | {envelopes} |",
            us(s.p50),
            us(s.p99),
            us(s.p999),
            us(s.max),
            s.p99.as_secs_f64() / floor.p99.as_secs_f64().max(1e-9)
        );
    }
}
