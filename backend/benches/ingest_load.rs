//! Ingest load generator: starts `tacit-backend serve` as a separate process over
//! loopback (SQLite by default; PostgreSQL + S3 when `DATABASE_URL`/`S3_ENDPOINT` are
//! set), registers devices, pre-seals envelopes, then uploads them from concurrent
//! connections and reports envelopes/s, feature windows/s, request p50/p99 and the
//! server's CPU time per envelope (from /proc) against the crypto floor, measured in the
//! same run.
//!
//! `cargo bench -p tacit-backend --bench ingest_load -- [--envelopes N] [--concurrency C] [--batch B]`
#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Instant;

use ring::rand::SystemRandom;
use support::{arg, cpu_seconds, register_device, start_server};
use tacit_shared::api::{UploadResponse, b64_decode, b64_encode};
use tacit_shared::envelope::{Envelope, SealParams};
use tacit_shared::hpke::Suite;
use tacit_shared::payload::{FactorKind, FeatureRecord, Payload};
use tacit_shared::schema::GAIT_V1;

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let total = arg("--envelopes", 6000);
    let concurrency = arg("--concurrency", 8);
    let batch = arg("--batch", 32);
    let windows_per_envelope = arg("--windows", 18);
    let dir = std::env::temp_dir().join(format!("tacit-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let server = start_server(&dir, &http).await;
    let (url, backend, storage) = (server.url.clone(), server.backend, server.storage);
    // One device per connection, so the per-device rate limit is not what we measure.
    let rng = SystemRandom::new();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let record = FeatureRecord {
        factor: FactorKind::Gait,
        schema_version: 1,
        window_start_ms: now_ms,
        window_ms: 5120,
        context: None,
        values: vec![0.5; GAIT_V1.len()],
    };
    let payload = Payload {
        face_images: Vec::new(),
        records: vec![record; windows_per_envelope],
    };
    let mut work: Vec<Vec<String>> = Vec::new();
    let per_conn = total / concurrency;
    for c in 0..concurrency {
        // Named per run: a PostgreSQL database outlives the run.
        let user = format!("load-{}-{c}", std::process::id());
        let signer = register_device(&http, &url, &user).await;
        work.push(
            (0..per_conn as u64)
                .map(|seq| {
                    let p = SealParams {
                        suite: Suite::X25519Sha256ChaCha20Poly1305,
                        sequence: seq,
                        created_at_ms: now_ms,
                    };
                    b64_encode(
                        &Envelope::seal(p, &payload, &backend, &signer, &rng)
                            .unwrap()
                            .1,
                    )
                })
                .collect(),
        );
    }
    let envelope_bytes = b64_decode(&work[0][0]).unwrap().len();
    // The floor, in this run: the two public-key operations every envelope needs on
    // the gateway, bare (ring's X25519 agreement and Ed25519 verification, as in the
    // crypto bench), best of 5 rounds.
    let floor_n = if total < 1_000 { 50 } else { 2_000 };
    let floor_us = crypto_floor_us(&rng, floor_n);
    let dalek_us = dalek_floor_us(floor_n);
    let pid = server.child.id();
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for envs in work {
        let http = http.clone();
        let url = url.clone();
        let latencies = latencies.clone();
        tasks.push(tokio::spawn(async move {
            let mut stored = 0usize;
            for chunk in envs.chunks(batch) {
                let t = Instant::now();
                let r = http
                    .post(format!("{url}/v1/uploads"))
                    .json(&serde_json::json!({"envelopes": chunk}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let resp: UploadResponse = r.json().await.unwrap();
                latencies
                    .lock()
                    .unwrap()
                    .push(t.elapsed().as_secs_f64() * 1000.0);
                stored += resp.results.iter().filter(|x| x.reason.is_none()).count();
            }
            stored
        }));
    }
    let mut stored = 0;
    for t in tasks {
        stored += t.await.unwrap();
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    drop(server);
    std::fs::remove_dir_all(&dir).ok();
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    println!(
        "storage: {storage}; {stored} envelopes of {envelope_bytes} B ({windows_per_envelope} gait windows each), {concurrency} connections, batches of {batch}"
    );
    let cpu_us = cpu / stored as f64 * 1e6;
    println!(
        "| storage | envelopes/s | feature windows/s | request p50 | request p99 | server CPU per envelope | crypto floor, ring (same run) | ratio | the gateway's own primitives, bare (dalek) | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {storage} | {:.0} | {:.0} | {:.1} ms | {:.1} ms | {cpu_us:.1} µs | {floor_us:.1} µs | {:.2}× | {dalek_us:.1} µs | {:.2}× |",
        stored as f64 / wall,
        (stored * windows_per_envelope) as f64 / wall,
        q(0.5),
        q(0.99),
        cpu_us / floor_us,
        cpu_us / dalek_us
    );
}

/// The same two operations with the libraries the gateway uses for them (static-key
/// X25519 of x25519-dalek for HPKE, ed25519-dalek's strict verification with the key
/// parsed once), µs (best of 5 rounds of `n`).
fn dalek_floor_us(n: usize) -> f64 {
    use ed25519_dalek::{Signer, SigningKey};
    let secret = x25519_dalek::StaticSecret::from([7u8; 32]);
    let peer = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from([9u8; 32]));
    let signing = SigningKey::from_bytes(&[5u8; 32]);
    let key = signing.verifying_key();
    let sig = signing.sign(b"floor");
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(secret.diffie_hellman(std::hint::black_box(&peer)));
            key.verify_strict(std::hint::black_box(b"floor"), &sig)
                .unwrap();
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    best
}

/// One X25519 agreement plus one Ed25519 verification, µs (best of 5 rounds of `n`).
fn crypto_floor_us(rng: &SystemRandom, n: usize) -> f64 {
    use ring::agreement;
    use ring::signature::{self, KeyPair};
    let peer = agreement::EphemeralPrivateKey::generate(&agreement::X25519, rng).unwrap();
    let peer_pub = peer.compute_public_key().unwrap();
    let pair = signature::Ed25519KeyPair::from_pkcs8(
        signature::Ed25519KeyPair::generate_pkcs8(rng)
            .unwrap()
            .as_ref(),
    )
    .unwrap();
    let sig = pair.sign(b"floor");
    let pk =
        signature::UnparsedPublicKey::new(&signature::ED25519, pair.public_key().as_ref().to_vec());
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..n {
            let k = agreement::EphemeralPrivateKey::generate(&agreement::X25519, rng).unwrap();
            let p = agreement::UnparsedPublicKey::new(&agreement::X25519, peer_pub.as_ref());
            std::hint::black_box(agreement::agree_ephemeral(k, &p, |s| s[0]).unwrap());
            pk.verify(std::hint::black_box(b"floor"), sig.as_ref())
                .unwrap();
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    best
}
