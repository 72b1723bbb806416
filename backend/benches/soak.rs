//! Soak: a steady load on `tacit-backend serve` (a child process, over loopback) for a
//! bounded time, sampling the server's resident memory and open file descriptors.
//! Every second: `--uploads` upload requests (4 envelopes of 18 gait windows each, from
//! `--devices` devices in turn, every 10th request on a fresh connection) and
//! `--auths` signed authentication requests. Reports samples once a minute, the RSS
//! slope over the second half (least squares, KiB/min: growth after warm-up), the
//! descriptor range, and any answer other than 200/stored (must be 0).
//!
//! `cargo bench -p tacit-backend --bench soak -- [--seconds 600] [--uploads 20] [--auths 2] [--devices 50]`
#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use ring::rand::SystemRandom;
use support::{arg, cpu_seconds, open_fds, register_device, rss_kib, start_server};
use tacit_shared::api::{UploadResponse, authenticate_message, b64_encode};
use tacit_shared::envelope::{Envelope, SealParams};
use tacit_shared::hpke::Suite;
use tacit_shared::identity::{DeviceSigner, Ed25519Signer};
use tacit_shared::payload::{FactorKind, FeatureRecord, Payload};
use tacit_shared::schema::GAIT_V1;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, y) in points {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
    }
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

struct Device {
    signer: Ed25519Signer,
    id: [u8; 16],
    sequence: u64,
    last_ms: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let seconds = arg("--seconds", 600) as u64;
    let uploads = arg("--uploads", 20);
    let auths = arg("--auths", 2);
    let n_devices = arg("--devices", 50);
    let dir = std::env::temp_dir().join(format!("tacit-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let http = reqwest::Client::new();
    let server = start_server(&dir, &http).await;
    let (url, backend) = (server.url.clone(), server.backend);
    let pid = server.child.id();
    let mut devices = Vec::new();
    for d in 0..n_devices {
        let signer =
            register_device(&http, &url, &format!("soak-{}-{d}", std::process::id())).await;
        let id = signer.public_key().device_id().0;
        devices.push(Device {
            signer,
            id,
            sequence: 0,
            last_ms: 0,
        });
    }
    let rng = SystemRandom::new();
    let mut samples: Vec<(f64, u64, usize)> = Vec::new();
    let (mut requests, mut envelopes, mut bad) = (0u64, 0u64, 0u64);
    let cpu0 = cpu_seconds(pid);
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut next_device = 0;
    println!(
        "soak: {seconds} s, {uploads} uploads/s (4 envelopes each) + {auths} authentications/s, {n_devices} devices, {}",
        server.storage
    );
    println!("| t (s) | server RSS (MiB) | open fds | requests | envelopes stored |");
    println!("|---|---|---|---|---|");
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let t = started.elapsed().as_secs_f64();
        if samples.is_empty() || t - samples[samples.len() - 1].0 >= 5.0 {
            samples.push((t, rss_kib(pid), open_fds(pid)));
            if samples.len() % 12 == 1 {
                let (_, rss, fds) = samples[samples.len() - 1];
                println!(
                    "| {t:.0} | {:.1} | {fds} | {requests} | {envelopes} |",
                    rss as f64 / 1024.0
                );
            }
        }
        let mut calls = Vec::new();
        for u in 0..uploads {
            let dev = &mut devices[next_device % n_devices];
            next_device += 1;
            let now = now_ms();
            let records = (0..18)
                .map(|w| FeatureRecord {
                    factor: FactorKind::Gait,
                    schema_version: 1,
                    window_start_ms: now - 100_000 + w * 5120,
                    window_ms: 5120,
                    context: None,
                    values: vec![0.5; GAIT_V1.len()],
                })
                .collect();
            let payload = Payload {
                records,
                face_images: Vec::new(),
            };
            let batch: Vec<String> = (0..4)
                .map(|_| {
                    dev.sequence += 1;
                    let p = SealParams {
                        suite: Suite::X25519Sha256ChaCha20Poly1305,
                        sequence: dev.sequence,
                        created_at_ms: now,
                    };
                    b64_encode(
                        &Envelope::seal(p, &payload, &backend, &dev.signer, &rng)
                            .unwrap()
                            .1,
                    )
                })
                .collect();
            // Every 10th request on a fresh connection: connection churn must not leak.
            let client = if u % 10 == 9 {
                reqwest::Client::builder()
                    .pool_max_idle_per_host(0)
                    .build()
                    .unwrap()
            } else {
                http.clone()
            };
            let url = url.clone();
            calls.push(tokio::spawn(async move {
                let r = client
                    .post(format!("{url}/v1/uploads"))
                    .json(&serde_json::json!({ "envelopes": batch }))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let resp: UploadResponse = r.json().await.unwrap();
                        let ok = resp.results.iter().filter(|x| x.reason.is_none()).count();
                        (ok as u64, 4 - ok as u64)
                    }
                    _ => (0, 4),
                }
            }));
        }
        for _ in 0..auths {
            let dev = &mut devices[next_device % n_devices];
            next_device += 1;
            dev.last_ms = now_ms().max(dev.last_ms + 1);
            let sig = dev
                .signer
                .sign(&authenticate_message(&dev.id, dev.last_ms, &[]))
                .unwrap();
            let body = serde_json::json!({ "device_id": hex(&dev.id), "request_ms": dev.last_ms,
                "envelopes": [], "signature": b64_encode(&sig) });
            let (http, url) = (http.clone(), url.clone());
            calls.push(tokio::spawn(async move {
                let r = http
                    .post(format!("{url}/v1/authenticate"))
                    .json(&body)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => (0, 0),
                    _ => (0, 1),
                }
            }));
        }
        for c in calls {
            let (ok, failed) = c.await.unwrap();
            requests += 1;
            envelopes += ok;
            bad += failed;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    samples.push((wall, rss_kib(pid), open_fds(pid)));
    let half: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.0 >= wall / 2.0)
        .map(|s| (s.0 / 60.0, s.1 as f64))
        .collect();
    let first_half: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.0 < wall / 2.0)
        .map(|s| (s.0 / 60.0, s.1 as f64))
        .collect();
    let (fd_min, fd_max) = samples
        .iter()
        .fold((usize::MAX, 0), |(a, b), s| (a.min(s.2), b.max(s.2)));
    let rss_last = samples[samples.len() - 1].1 as f64 / 1024.0;
    let rss_peak = samples.iter().map(|s| s.1).max().unwrap_or(0) as f64 / 1024.0;
    println!(
        "| {wall:.0} | {rss_last:.1} | {} | {requests} | {envelopes} |",
        samples[samples.len() - 1].2
    );
    println!(
        "result: {requests} requests, {envelopes} envelopes stored, {bad} failed (must be 0); server CPU {cpu:.0} s ({:.0}%)",
        cpu / wall * 100.0
    );
    println!(
        "RSS slope: first half {:+.1} KiB/min (warm-up), second half {:+.1} KiB/min; peak {rss_peak:.1} MiB; open fds {fd_min}..={fd_max}",
        slope(&first_half),
        slope(&half)
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
