//! The gateway's side of face images, over real HTTP on loopback, with a small
//! stand-in for the face factor (the real one, Python + dlib, is tested end to end by
//! `examples/face-factor/tests/test_gateway.py`): the stand-in answers the face
//! factor's image outputs from the image bytes, so that each gateway rule can be driven
//! exactly. Images become face records before anything is stored, never themselves;
//! refusals, replays from an earlier session, a missing or failing face factor.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use common::{Backing, settings, temp_dir};
use ring::rand::SystemRandom;
use serde_json::{Value, json};
use tacit_backend::settings::RemoteFactorSettings;
use tacit_shared::api::{b64_decode, b64_encode};
use tacit_shared::envelope::{Envelope, SealParams};
use tacit_shared::hpke::{RecipientPublicKey, Suite};
use tacit_shared::identity::Ed25519Signer;
use tacit_shared::payload::{FaceImage, ImageFormat, Payload};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// An image for the stand-in: `NOFACE...` is refused; otherwise its first 8 bytes are
/// the replay hash. 300 bytes, with a marker run that the store must never hold.
fn image(kind: &[u8], hash: u64, at_ms: u64) -> FaceImage {
    let mut bytes = kind.to_vec();
    if kind.is_empty() {
        bytes = hash.to_be_bytes().to_vec();
    }
    bytes.extend(
        b"IMAGE-PIXELS-NEVER-STORED"
            .iter()
            .cycle()
            .take(300 - bytes.len()),
    );
    FaceImage {
        format: ImageFormat::Jpeg,
        captured_at_ms: at_ms,
        bytes,
    }
}

/// The stand-in face factor: image inputs in, the face factor's outputs out; 503 while
/// `down` is set.
async fn infer(
    State(down): State<Arc<AtomicBool>>,
    Json(req): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if down.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "down"})),
        );
    }
    let data = req["inputs"][0]["data"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // An image the stand-in refuses as a request (a factor's 4xx).
    if data
        .iter()
        .any(|d| b64_decode(d.as_str().unwrap_or("")).is_some_and(|b| b.starts_with(b"BADREQ")))
    {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "refused"})));
    }
    let n = data.len();
    let (mut emb, mut quality, mut hash, mut refusal) = (vec![], vec![], vec![], vec![]);
    for d in data {
        let bytes = b64_decode(d.as_str().unwrap()).unwrap();
        if bytes.starts_with(b"NOFACE") {
            emb.extend([0.0f32; 128]);
            quality.push(0.0);
            hash.extend([0.0; 4]);
            refusal.push("no_face");
            continue;
        }
        let h = u64::from_be_bytes(bytes[..8].try_into().unwrap());
        emb.extend([0.05f32; 128]);
        quality.push(0.9);
        hash.extend((0..4).rev().map(|k| ((h >> (16 * k)) & 0xFFFF) as f32));
        refusal.push("");
    }
    let out = |name: &str, shape: Value, data: Value, dt: &str| json!({"name": name, "shape": shape, "datatype": dt, "data": data});
    (
        StatusCode::OK,
        Json(
            json!({"model_name": "face", "model_version": "stand-in", "outputs": [
                out("embedding", json!([n, 128]), json!(emb), "FP32"),
                out("quality", json!([n]), json!(quality), "FP32"),
                out("image_hash", json!([n, 4]), json!(hash), "FP32"),
                out("refusal", json!([n]), json!(refusal), "BYTES"),
            ]}),
        ),
    )
}

struct Phone {
    signer: Ed25519Signer,
    sequence: u64,
    backend: RecipientPublicKey,
}

impl Phone {
    fn envelope(&mut self, images: Vec<FaceImage>) -> String {
        self.sequence += 1;
        let p = SealParams {
            suite: Suite::X25519Sha256ChaCha20Poly1305,
            sequence: self.sequence,
            created_at_ms: now_ms(),
        };
        let payload = Payload {
            records: vec![],
            face_images: images,
        };
        let bytes = Envelope::seal(
            p,
            &payload,
            &self.backend,
            &self.signer,
            &SystemRandom::new(),
        )
        .unwrap()
        .1;
        b64_encode(&bytes)
    }
}

async fn upload(http: &reqwest::Client, url: &str, envelope: String) -> (u16, Value) {
    let r = http
        .post(format!("{url}/v1/uploads"))
        .json(&json!({ "envelopes": [envelope] }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn outcome(v: &Value) -> (String, Option<String>) {
    let r = &v["results"][0];
    (
        r["status"].as_str().unwrap_or_default().to_string(),
        r["reason"].as_str().map(str::to_string),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn face_images_become_records_and_never_reach_the_store() {
    let down = Arc::new(AtomicBool::new(false));
    let app = axum::Router::new()
        .route("/v2/models/face/infer", post(infer))
        .with_state(down.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let factor_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = temp_dir("face-ingest");
    let backing = Backing::Embedded;
    let http = reqwest::Client::new();

    // Without a face factor, images are refused with a stable code.
    let mut plain = settings(&backing, &dir.join("plain"));
    plain.at_rest.enabled = false;
    let (srv, pair) = common::spawn_with(plain).await;
    let (signer, _) = Ed25519Signer::generate(&SystemRandom::new()).unwrap();
    common::register_device(&http, &srv.url(), "dora", &signer).await;
    let mut phone = Phone {
        signer,
        sequence: 0,
        backend: *pair.public_key(),
    };
    let (st, v) = upload(
        &http,
        &srv.url(),
        phone.envelope(vec![image(b"", 1, now_ms())]),
    )
    .await;
    assert_eq!(
        (st, outcome(&v)),
        (200, ("rejected".into(), Some("face_not_served".into())))
    );
    srv.shutdown().await.unwrap();

    // With one: stored as face records. (Encryption at rest off, so that a scan of the
    // files would see an image if one were written.)
    let mut s = settings(&backing, &dir.join("gw"));
    s.at_rest.enabled = false;
    s.factor_auth.enabled = false;
    s.auth.factors = vec![RemoteFactorSettings {
        name: "face".into(),
        url: factor_url,
        records: None,
        weight: 1.0,
    }];
    s.auth.timeout_ms = 2_000;
    s.auth.retries = 0;
    s.auth.breaker_failures = 100;
    let (srv, pair) = common::spawn_with(s).await;
    let url = srv.url();
    let (signer, _) = Ed25519Signer::generate(&SystemRandom::new()).unwrap();
    common::register_device(&http, &url, "erin", &signer).await;
    let mut phone = Phone {
        signer,
        sequence: 0,
        backend: *pair.public_key(),
    };
    let t0 = now_ms() - 20 * 60 * 1000;
    let h = 0x0123_4567_89AB_CDEF_u64;
    // A face and an image without one: the face is stored, the other dropped and counted.
    let (st, v) = upload(
        &http,
        &url,
        phone.envelope(vec![image(b"", h, t0), image(b"NOFACE", 0, t0 + 1)]),
    )
    .await;
    assert_eq!((st, outcome(&v)), (200, ("stored".into(), None)), "{v}");
    // Nothing usable at all: rejected, saying why.
    let (_, v) = upload(
        &http,
        &url,
        phone.envelope(vec![image(b"NOFACE", 0, t0 + 2)]),
    )
    .await;
    assert_eq!(outcome(&v), ("rejected".into(), Some("no_face".into())));
    // The same frame a minute later is the same sitting: kept.
    let (_, v) = upload(
        &http,
        &url,
        phone.envelope(vec![image(b"", h ^ 1, t0 + 60_000)]),
    )
    .await;
    assert_eq!(outcome(&v), ("stored".into(), None), "{v}");
    // Twenty minutes later, 2 bits away: a replay of the earlier frame.
    let (_, v) = upload(
        &http,
        &url,
        phone.envelope(vec![image(b"", h ^ 0b1001, now_ms())]),
    )
    .await;
    assert_eq!(
        outcome(&v),
        ("rejected".into(), Some("face_replay".into())),
        "{v}"
    );
    // Three bits away is another capture.
    let (_, v) = upload(
        &http,
        &url,
        phone.envelope(vec![image(b"", h ^ 0x70, now_ms())]),
    )
    .await;
    assert_eq!(outcome(&v), ("stored".into(), None), "{v}");

    // The factor refuses the request (4xx): the envelope is rejected for good, saying
    // why, and not retried.
    let (_, v) = upload(
        &http,
        &url,
        phone.envelope(vec![image(b"BADREQ", 0, now_ms())]),
    )
    .await;
    assert_eq!(
        outcome(&v),
        ("rejected".into(), Some("face_refused".into())),
        "{v}"
    );

    // The face factor is down: the request fails whole (the phone sends it again
    // later) and nothing is stored; back up, the same envelope is stored.
    down.store(true, Ordering::SeqCst);
    let env = phone.envelope(vec![image(b"", !h, now_ms())]);
    let r = http
        .post(format!("{url}/v1/uploads"))
        .json(&json!({ "envelopes": [env.clone()] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    down.store(false, Ordering::SeqCst);
    let (_, v) = upload(&http, &url, env).await;
    assert_eq!(outcome(&v), ("stored".into(), None), "{v}");

    let metrics = common::metrics_text(&http, &url).await;
    for (outcome, n) in [("face", 4), ("no_face", 2), ("replay", 1)] {
        assert!(
            metrics.contains(&format!(
                "tacit_face_images_total{{outcome=\"{outcome}\"}} {n}"
            )),
            "{outcome} {n}:\n{metrics}"
        );
    }
    srv.shutdown().await.unwrap();

    // No image bytes anywhere in the gateway's files.
    let mut files = vec![dir.join("gw")];
    let mut scanned = 0;
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            // Files a closing store removes meanwhile (SQLite's -wal and -shm) are gone.
            let Ok(blob) = std::fs::read(&p) else {
                continue;
            };
            scanned += 1;
            assert!(
                !blob.windows(25).any(|w| w == b"IMAGE-PIXELS-NEVER-STORED"),
                "{} holds image bytes",
                p.display()
            );
        }
    }
    assert!(scanned > 2, "{scanned} files");
    let _ = std::fs::remove_dir_all(&dir);
}
