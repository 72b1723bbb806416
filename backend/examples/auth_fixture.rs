//! Prepares a running gateway for the `/v1/authenticate` benchmark and writes the
//! request bodies: `--users` users, each with a registered Ed25519 device, 45 enrolment
//! gait windows and `--rows` newer windows uploaded, enrolled through
//! `POST /v1/users/{id}/templates`; then `--requests` signed authentication requests
//! (round robin over the users, strictly increasing request times per device, no
//! attached envelopes) as JSON lines for `loadgen --bodies` (each body is valid once).
//!
//! The vectors are synthetic gait vectors inside the schema's ranges around a personal
//! centre (the generator of `backend/tests/common.rs`); the benchmark measures serving
//! cost, not accuracy.
//!
//! ```sh
//! cargo run --release -p tacit-backend --example auth_fixture -- \
//!   --url http://127.0.0.1:8080 --admin-token T --keys-dir DATA/keys \
//!   --users 200 --rows 8 --requests 20000 --out /tmp/auth.jsonl
//! ```
//! The device keys are kept next to `--out` (`OUT.keys/`); with `--bodies-only` the
//! users of an earlier run (same `--prefix`, `--out`) are reused and only new bodies are
//! written. Use at least twice as many users as the load's concurrency, so that two
//! requests of one device are never in flight together (their times must arrive in
//! order).

use std::io::Write;
use std::path::PathBuf;

use clap::Parser;
use ring::rand::SystemRandom;
use serde_json::{Value, json};
use tacit_backend::keys::KeyRing;
use tacit_models::SplitMix64;
use tacit_shared::api::{PublicKeyJson, authenticate_message, b64_encode};
use tacit_shared::envelope::{Envelope, SealParams};
use tacit_shared::hpke::{RecipientPublicKey, Suite};
use tacit_shared::identity::{DeviceSigner, Ed25519Signer};
use tacit_shared::payload::{FactorKind, FeatureRecord, Payload};
use tacit_shared::schema::GAIT_V1;

#[derive(Parser)]
struct Args {
    /// Gateway base URL.
    #[arg(long)]
    url: String,
    /// Admin bearer token of the gateway.
    #[arg(long)]
    admin_token: String,
    /// The gateway's key directory (the first key is used to seal).
    #[arg(long)]
    keys_dir: PathBuf,
    /// Users to create.
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// Windows per user newer than the enrolment (what each request scores).
    #[arg(long, default_value_t = 8)]
    rows: usize,
    /// Request bodies to write.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Output file (JSON lines).
    #[arg(long)]
    out: PathBuf,
    /// User id prefix.
    #[arg(long, default_value = "bench")]
    prefix: String,
    /// Seed of the vectors and device keys.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Only write bodies for users created by an earlier run.
    #[arg(long)]
    bodies_only: bool,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The user's device key: generated once, kept as PKCS#8 in `dir`.
fn device_key(dir: &std::path::Path, user: &str) -> Result<Ed25519Signer, String> {
    let path = dir.join(format!("{user}.pk8"));
    if let Ok(bytes) = std::fs::read(&path) {
        return Ed25519Signer::from_pkcs8(&bytes).map_err(|e| e.to_string());
    }
    let (signer, pkcs8) =
        Ed25519Signer::generate(&SystemRandom::new()).map_err(|e| e.to_string())?;
    std::fs::write(&path, pkcs8).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(signer)
}

fn vectors(rng: &mut SplitMix64, centre: &[f64], n: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            centre
                .iter()
                .zip(GAIT_V1)
                .map(|(c, d)| {
                    let top = d.max.min(d.min + 10.0);
                    let (mid, span) = (0.5 * (d.min + top), (top - d.min) / 8.0);
                    (mid + span * (c + 0.4 * rng.normal()) as f32).clamp(d.min, d.max)
                })
                .collect()
        })
        .collect()
}

async fn check(r: reqwest::Response, what: &str) -> Result<Value, String> {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!("{what}: HTTP {status}: {body}"));
    }
    Ok(body)
}

async fn setup_user(
    http: &reqwest::Client,
    a: &Args,
    backend: &RecipientPublicKey,
    user: &str,
    signer: &Ed25519Signer,
    rng: &mut SplitMix64,
) -> Result<(), String> {
    let url = &a.url;
    check(
        http.post(format!("{url}/v1/users"))
            .bearer_auth(&a.admin_token)
            .json(&json!({ "user_id": user }))
            .send()
            .await
            .map_err(|e| e.to_string())?,
        "create user",
    )
    .await?;
    let t = check(
        http.post(format!("{url}/v1/users/{user}/enrolment-tokens"))
            .bearer_auth(&a.admin_token)
            .send()
            .await
            .map_err(|e| e.to_string())?,
        "token",
    )
    .await?;
    check(
        http.post(format!("{url}/v1/devices"))
            .json(&json!({ "enrolment_token": t["token"], "public_key": PublicKeyJson::from_key(&signer.public_key()) }))
            .send()
            .await
            .map_err(|e| e.to_string())?,
        "register device",
    )
    .await?;
    let centre: Vec<f64> = (0..GAIT_V1.len()).map(|_| rng.normal()).collect();
    let start = now_ms() - 1_800_000;
    let mut window = 0u64;
    for (sequence, n) in [(1u64, 45usize), (2, a.rows)] {
        let records = vectors(rng, &centre, n)
            .into_iter()
            .map(|values| {
                window += 1;
                FeatureRecord {
                    factor: FactorKind::Gait,
                    schema_version: 1,
                    window_start_ms: start + window * 5_120,
                    window_ms: 5_120,
                    context: None,
                    values,
                }
            })
            .collect();
        let params = SealParams {
            suite: Suite::X25519Sha256ChaCha20Poly1305,
            sequence,
            created_at_ms: now_ms(),
        };
        let (_, env) = Envelope::seal(
            params,
            &Payload {
                records,
                face_images: Vec::new(),
            },
            backend,
            signer,
            &SystemRandom::new(),
        )
        .map_err(|e| e.to_string())?;
        let r = check(
            http.post(format!("{url}/v1/uploads"))
                .json(&json!({ "envelopes": [b64_encode(&env)] }))
                .send()
                .await
                .map_err(|e| e.to_string())?,
            "upload",
        )
        .await?;
        if r["results"][0]["status"] != "stored" {
            return Err(format!("upload not stored: {r}"));
        }
        if sequence == 1 {
            let e = check(
                http.post(format!("{url}/v1/users/{user}/templates"))
                    .bearer_auth(&a.admin_token)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?,
                "enrol",
            )
            .await?;
            let gait = e["factors"]
                .as_array()
                .and_then(|f| f.iter().find(|f| f["factor"] == "gait"))
                .cloned()
                .unwrap_or(Value::Null);
            if gait["status"] != "enrolled" {
                return Err(format!("gait enrolment: {e}"));
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let a = Args::parse();
    if a.users == 0 {
        return Err("--users must be at least 1".into());
    }
    let ring = KeyRing::load(&a.keys_dir).map_err(|e| e.to_string())?;
    let id = ring
        .ids()
        .into_iter()
        .next()
        .ok_or("no key in --keys-dir")?;
    let backend = *ring.get(&id).ok_or("key vanished")?.public_key();
    let key_dir = a.out.with_extension("keys");
    std::fs::create_dir_all(&key_dir).map_err(|e| e.to_string())?;
    let http = reqwest::Client::new();
    let mut rng = SplitMix64::new(a.seed);
    let mut signers = Vec::with_capacity(a.users);
    for i in 0..a.users {
        let user = format!("{}-{i}", a.prefix);
        let signer = device_key(&key_dir, &user)?;
        if !a.bodies_only {
            setup_user(&http, &a, &backend, &user, &signer, &mut rng).await?;
        }
        signers.push(signer);
    }
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(&a.out).map_err(|e| e.to_string())?);
    // Request times: now, +1 ms per round, so every body of a device is later than the
    // previous one and all are within the gateway's clock window for a few minutes.
    let base = now_ms();
    for i in 0..a.requests {
        let u = i % a.users;
        let request_ms = base + (i / a.users) as u64 + 1;
        let signer = &signers[u];
        let device = signer.public_key().device_id();
        let sig = signer
            .sign(&authenticate_message(&device.0, request_ms, &[]))
            .map_err(|e| e.to_string())?;
        let body = json!({
            "device_id": device.to_hex(),
            "request_ms": request_ms,
            "envelopes": [],
            "signature": b64_encode(&sig),
        });
        writeln!(out, "{body}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    eprintln!(
        "{} users ready, {} bodies in {}",
        a.users,
        a.requests,
        a.out.display()
    );
    Ok(())
}
