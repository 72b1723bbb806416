//! Per-device rate limit (429 + Retry-After) and graceful shutdown on SIGTERM.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Backing, register_device as register};
use ring::rand::SystemRandom;
use tacit_backend::keys::KeyRing;
use tacit_backend::server;
use tacit_shared::api::{UploadResponse, b64_encode};
use tacit_shared::envelope::{Envelope, SealParams};
use tacit_shared::hpke::{RecipientPublicKey, Suite};
use tacit_shared::identity::Ed25519Signer;
use tacit_shared::payload::{FactorKind, FeatureRecord, Payload};
use tacit_shared::schema::GAIT_V1;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn sealed(
    n: u64,
    windows: usize,
    backend: &RecipientPublicKey,
    signer: &Ed25519Signer,
) -> Vec<String> {
    let rng = SystemRandom::new();
    let record = FeatureRecord {
        factor: FactorKind::Gait,
        schema_version: 1,
        window_start_ms: now_ms(),
        window_ms: 5120,
        context: None,
        values: vec![0.5; GAIT_V1.len()],
    };
    let payload = Payload {
        face_images: Vec::new(),
        records: vec![record; windows],
    };
    (0..n)
        .map(|seq| {
            let p = SealParams {
                suite: Suite::X25519Sha256ChaCha20Poly1305,
                sequence: seq,
                created_at_ms: now_ms(),
            };
            b64_encode(
                &Envelope::seal(p, &payload, backend, signer, &rng)
                    .unwrap()
                    .1,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_device_rate_limit_answers_429_with_retry_after() {
    let dir = common::temp_dir("ratelimit");
    let mut s = common::settings(&Backing::Embedded, &dir);
    s.limits.envelopes_per_second_per_device = 1.0;
    s.limits.burst_per_device = 5.0;
    let pair = KeyRing::generate(&s.keys_dir()).unwrap();
    let keys = KeyRing::load(&s.keys_dir()).unwrap();
    let store = server::open_store(&s).await.unwrap();
    let srv = server::spawn(s, keys, store).await.unwrap();
    let url = srv.url();
    let http = reqwest::Client::new();
    let signer = Ed25519Signer::generate(&SystemRandom::new()).unwrap().0;
    register(&http, &url, "limited", &signer).await;
    let envs = sealed(8, 1, pair.public_key(), &signer);
    let r = http
        .post(format!("{url}/v1/uploads"))
        .json(&serde_json::json!({"envelopes": envs[..5]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{url}/v1/uploads"))
        .json(&serde_json::json!({"envelopes": envs[5..]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3).contains(&wait), "Retry-After {wait}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    assert_eq!(
        srv.state.store.count_envelopes("limited").await.unwrap(),
        5,
        "nothing of the refused batch stored"
    );
    srv.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests() {
    let dir = common::temp_dir("sigterm");
    let backend = common::keygen_process(&dir);
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = common::serve_process(&dir, port);
    let http = reqwest::Client::new();
    common::wait_ready(&http, &url).await;
    let signer = Ed25519Signer::generate(&SystemRandom::new()).unwrap().0;
    register(&http, &url, "graceful", &signer).await;
    // A large batch keeps the server busy for a while; SIGTERM arrives meanwhile.
    let envs = sealed(256, 64, &backend, &signer);
    let req = http
        .post(format!("{url}/v1/uploads"))
        .json(&serde_json::json!({ "envelopes": envs }))
        .send();
    let pid = child.id().to_string();
    let term = async {
        tokio::time::sleep(Duration::from_millis(40)).await;
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    };
    let (resp, _) = tokio::join!(req, term);
    let resp = resp.expect("the in-flight request is answered, not cut off");
    assert_eq!(resp.status(), 200);
    let body: UploadResponse = resp.json().await.unwrap();
    assert_eq!(body.results.len(), 256);
    assert!(
        body.results.iter().all(|r| r.reason.is_none()),
        "all stored"
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
    std::fs::remove_dir_all(&dir).ok();
}
