//! Attacks found by probing the gateway from outside, each replayed over real HTTP on
//! loopback against the embedded storage: forged traffic naming a victim's device,
//! poisoned window times, weak device keys, a revoked key registered again, an upload
//! racing its user's deletion, framework errors without the JSON error body, files
//! readable by other users, and refused admin requests without a trace.

mod common;

use std::time::Duration;

use common::{ADMIN, Backing, admin_user, start};
use ring::rand::SystemRandom;
use serde_json::{Value, json};
use tacit_shared::api::{
    PublicKeyJson, UploadResponse, authenticate_message_with_nonce, b64_encode,
};
use tacit_shared::envelope::{Envelope, SealParams};
use tacit_shared::hpke::Suite;
use tacit_shared::identity::{DeviceSigner, Ed25519Signer};
use tacit_shared::payload::{FactorKind, FeatureRecord, Payload};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn payload(window_start_ms: u64) -> Payload {
    Payload {
        face_images: Vec::new(),
        records: vec![FeatureRecord {
            factor: FactorKind::KeystrokeFixed,
            schema_version: 1,
            window_start_ms,
            window_ms: 500,
            context: Some([3; 16]),
            values: vec![0.1, 0.2, 0.1, 0.09],
        }],
    }
}

/// A phone: its key, device id and next sequence number.
struct Phone {
    signer: Ed25519Signer,
    id: [u8; 16],
    sequence: u64,
    last_request_ms: u64,
}

impl Phone {
    async fn register(http: &reqwest::Client, url: &str, user: &str) -> Phone {
        let signer = Ed25519Signer::generate(&SystemRandom::new()).unwrap().0;
        common::register_device(http, url, user, &signer).await;
        let id = signer.public_key().device_id().0;
        Phone {
            signer,
            id,
            sequence: 0,
            last_request_ms: 0,
        }
    }

    fn seal(&mut self, ts: &common::TestServer, p: &Payload) -> Vec<u8> {
        self.sequence += 1;
        let params = SealParams {
            suite: Suite::X25519Sha256ChaCha20Poly1305,
            sequence: self.sequence,
            created_at_ms: now_ms(),
        };
        Envelope::seal(
            params,
            p,
            ts.key.public_key(),
            &self.signer,
            &SystemRandom::new(),
        )
        .unwrap()
        .1
    }

    /// A signed authentication request carrying `envelopes`.
    fn auth_request(&mut self, envelopes: &[Vec<u8>]) -> Value {
        self.last_request_ms = now_ms().max(self.last_request_ms + 1);
        let sig = self
            .signer
            .sign(&authenticate_message_with_nonce(
                &self.id,
                self.last_request_ms,
                envelopes,
                None,
            ))
            .unwrap();
        json!({
            "device_id": hex::encode(self.id),
            "request_ms": self.last_request_ms,
            "envelopes": envelopes.iter().map(|e| b64_encode(e)).collect::<Vec<_>>(),
            "signature": b64_encode(&sig),
        })
    }
}

/// `POST /v1/uploads` from `client` (an `X-Forwarded-For` address; the test gateway
/// trusts loopback as its proxy): status and body.
async fn upload_from(
    http: &reqwest::Client,
    url: &str,
    client: &str,
    envelopes: &[Vec<u8>],
) -> (u16, Value) {
    let body = json!({ "envelopes": envelopes.iter().map(|e| b64_encode(e)).collect::<Vec<_>>() });
    let r = http
        .post(format!("{url}/v1/uploads"))
        .header("x-forwarded-for", client)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// A gateway on the embedded storage with the given per-device budget, behind
/// "proxies" on loopback (so tests can speak as several client addresses).
async fn gateway(name: &str, device_rate: f64, device_burst: f64) -> common::TestServer {
    let dir = common::temp_dir(name);
    let mut s = common::settings(&Backing::Embedded, &dir);
    s.limits.envelopes_per_second_per_device = device_rate;
    s.limits.burst_per_device = device_burst;
    s.limits.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    let (server, pair) = common::spawn_with(s).await;
    common::TestServer {
        server,
        key: std::sync::Arc::new(pair),
        dir,
    }
}

/// Forged envelopes and authentication requests that name the victim's device (its id
/// is in clear in every envelope) but carry a wrong signature cost the victim nothing:
/// its uploads and authentications go on while the forger is throttled by address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_traffic_naming_a_device_does_not_silence_it() {
    // A small device budget, so that before the fix 600 forged envelopes emptied it.
    let ts = gateway("attack-silence", 1.0, 50.0).await;
    let url = ts.server.url();
    let http = reqwest::Client::new();
    let mut victim =
        Phone::register(&http, &url, &format!("victim-{}", common::rand_suffix())).await;

    // Forgeries: the victim's real envelope with its signature flipped.
    let genuine = victim.seal(&ts, &payload(now_ms() - 1_000));
    let mut forged = Envelope::decode(&genuine).unwrap();
    forged.signature[0] ^= 1;
    let forged = forged.encode();
    let attacker = "203.0.113.7";
    let mut throttled = 0;
    // The budget is checked before a batch and charged after it (into debt): the batch
    // that crosses the burst is still served, the next one is refused. Up to 8 batches,
    // because how many tokens refill meanwhile (10/s) depends on the machine's speed.
    for _ in 0..8 {
        if throttled > 0 {
            break;
        }
        let (status, body) = upload_from(&http, &url, attacker, &vec![forged.clone(); 200]).await;
        match status {
            200 => {
                let r: UploadResponse = serde_json::from_value(body).unwrap();
                assert!(
                    r.results
                        .iter()
                        .all(|e| e.reason.as_deref() == Some("bad_signature"))
                );
            }
            429 => {
                assert_eq!(body["code"], "unauthenticated_rate_limited", "{body}");
                throttled += 1;
            }
            other => panic!("forged batch answered {other}: {body}"),
        }
    }
    assert!(
        throttled > 0,
        "1,600 failed verifications from one address, with a burst of 600, and no 429"
    );

    // The forger keeps going (about 45 requests/s) while the victim uploads and
    // authenticates from its own address.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let forger = {
        let (http, url, stop, forged) = (http.clone(), url.clone(), stop.clone(), forged.clone());
        let victim_id = hex::encode(victim.id);
        tokio::spawn(async move {
            let mut sent = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = upload_from(&http, &url, attacker, &vec![forged.clone(); 16]).await;
                // A forged authentication naming the victim: a random signature.
                let _ = http
                    .post(format!("{url}/v1/authenticate"))
                    .header("x-forwarded-for", attacker)
                    .json(&json!({
                        "device_id": victim_id,
                        "request_ms": now_ms(),
                        "envelopes": [],
                        "signature": b64_encode(&[7u8; 64]),
                    }))
                    .send()
                    .await;
                sent += 2;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            sent
        })
    };
    let phone_address = "198.51.100.9";
    for i in 0..10 {
        let env = victim.seal(&ts, &payload(now_ms() - 1_000));
        let (status, body) = upload_from(&http, &url, phone_address, &[env]).await;
        assert_eq!(status, 200, "victim upload {i}: {body}");
        assert_eq!(body["results"][0]["status"], "stored", "{body}");
        let env = victim.seal(&ts, &payload(now_ms() - 1_000));
        let req = victim.auth_request(&[env]);
        let r = http
            .post(format!("{url}/v1/authenticate"))
            .header("x-forwarded-for", phone_address)
            .json(&req)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 200, "victim authentication {i}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = forger.await.unwrap();
    assert!(sent >= 20, "the forger ran alongside ({sent} requests)");
}

/// A window time near `u64::MAX` (or before the acceptance window) is refused with a
/// stable code; an honest one beside it is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poisoned_window_times_are_refused() {
    let ts = start(&Backing::Embedded, "attack-window").await;
    let url = ts.server.url();
    let http = reqwest::Client::new();
    let mut phone = Phone::register(&http, &url, &format!("w-{}", common::rand_suffix())).await;
    let far_future = phone.seal(&ts, &payload(u64::MAX - 1_000));
    let long_ago = phone.seal(&ts, &payload(now_ms() - 30 * 24 * 3600 * 1000));
    let honest = phone.seal(&ts, &payload(now_ms() - 1_000));
    let (status, body) =
        upload_from(&http, &url, "127.0.0.1", &[far_future, long_ago, honest]).await;
    assert_eq!(status, 200, "{body}");
    let r: UploadResponse = serde_json::from_value(body).unwrap();
    let reasons: Vec<_> = r.results.iter().map(|e| e.reason.as_deref()).collect();
    assert_eq!(
        reasons,
        [
            Some("window_out_of_range"),
            Some("window_out_of_range"),
            None
        ]
    );
    assert_eq!(
        r.results[2].status,
        tacit_shared::api::EnvelopeStatus::Stored
    );
}

/// Small-order and off-curve device keys are refused at registration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_device_keys_are_refused() {
    let ts = start(&Backing::Embedded, "attack-keys").await;
    let url = ts.server.url();
    let http = reqwest::Client::new();
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut off_curve = [0u8; 65];
    off_curve[0] = 4;
    for (algorithm, key) in [
        ("ed25519", identity.to_vec()),
        ("ed25519", vec![0u8; 32]),
        ("ecdsa-p256-sha256", off_curve.to_vec()),
    ] {
        let token = admin_user(&http, &url, &format!("weak-{}", common::rand_suffix())).await;
        let r = http
            .post(format!("{url}/v1/devices"))
            .json(&json!({
                "enrolment_token": token,
                "public_key": { "algorithm": algorithm, "key": b64_encode(&key) },
            }))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 400, "{algorithm} {key:02x?}: {body}");
        assert_eq!(body["code"], "invalid_public_key");
    }
}

/// A revoked key registered again with a new token is refused (403 `device_revoked`),
/// not answered 201 while staying revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_cannot_register_again() {
    let ts = start(&Backing::Embedded, "attack-revoked").await;
    let url = ts.server.url();
    let http = reqwest::Client::new();
    let user = format!("rv-{}", common::rand_suffix());
    let phone = Phone::register(&http, &url, &user).await;
    let r = http
        .post(format!("{url}/v1/devices/{}/revoke", hex::encode(phone.id)))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{url}/v1/users/{user}/enrolment-tokens"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let token: Value = r.json().await.unwrap();
    let r = http
        .post(format!("{url}/v1/devices"))
        .json(&json!({
            "enrolment_token": token["token"],
            "public_key": PublicKeyJson::from_key(&phone.signer.public_key()),
        }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("device_revoked")),
        "{body}"
    );
}

/// Uploads racing the deletion of their user get the documented answers (200 with a
/// per-envelope result, or 401/403 for the device), never an undocumented 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_racing_a_deletion_get_documented_answers() {
    let ts = start(&Backing::Embedded, "attack-race").await;
    let url = ts.server.url();
    let http = reqwest::Client::new();
    for round in 0..12 {
        let user = format!("race-{round}-{}", common::rand_suffix());
        let mut phone = Phone::register(&http, &url, &user).await;
        let batch: Vec<Vec<u8>> = (0..64)
            .map(|_| phone.seal(&ts, &payload(now_ms() - 1_000)))
            .collect();
        let upload = upload_from(&http, &url, "127.0.0.1", &batch);
        let delete = async {
            tokio::time::sleep(Duration::from_millis(round % 4)).await;
            http.delete(format!("{url}/v1/users/{user}"))
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        };
        let ((status, body), deleted) = tokio::join!(upload, delete);
        assert!(deleted == 200 || deleted == 204, "round {round}: {deleted}");
        assert_eq!(status, 200, "round {round}: {body}");
        for r in body["results"].as_array().unwrap() {
            let reason = r["reason"].as_str();
            assert!(
                matches!(reason, None | Some("unknown_device")),
                "round {round}: {r}"
            );
        }
    }
}

/// Every error the framework itself produces has the `{"error","code"}` JSON body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json() {
    let dir = common::temp_dir("attack-json");
    let mut s = common::settings(&Backing::Embedded, &dir);
    s.limits.max_body_bytes = 4096;
    s.limits.request_timeout_ms = 500;
    let (server, _) = common::spawn_with(s).await;
    let url = server.url();
    let http = reqwest::Client::new();
    let check = |what: &str, status: u16, r: (u16, String, String)| {
        assert_eq!(r.0, status, "{what}: {}", r.2);
        assert!(
            r.1.starts_with("application/json"),
            "{what}: {} {}",
            r.1,
            r.2
        );
        let v: Value = serde_json::from_str(&r.2).unwrap_or_else(|_| panic!("{what}: {}", r.2));
        assert!(
            v["error"].is_string() && v["code"].is_string(),
            "{what}: {v}"
        );
    };
    async fn parts(r: reqwest::Response) -> (u16, String, String) {
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (status, ct, r.text().await.unwrap_or_default())
    }
    let r = http
        .get(format!("{url}/v1/users/%ff/export"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    check("undecodable path", 400, parts(r).await);
    let r = http.get(format!("{url}/v1/uploads")).send().await.unwrap();
    check("wrong method", 405, parts(r).await);
    let r = http
        .post(format!("{url}/v1/uploads"))
        .header("content-type", "application/json")
        .body(vec![b' '; 10_000])
        .send()
        .await
        .unwrap();
    check("body too large", 413, parts(r).await);
    // A body that trickles past the request timeout (one byte per 100 ms).
    let slow = raw_exchange(
        &url,
        b"POST /v1/uploads HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\nconnection: close\r\n\r\n",
        Some(30),
    )
    .await;
    check("request timeout", 408, slow);
    // A path longer than any user id allows. (A request line over 64 KiB never reaches
    // the router: hyper's parser answers a bare 414 and closes.)
    let long = raw_exchange(
        &url,
        format!(
            "GET /v1/users/{}/export HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ADMIN}\r\nconnection: close\r\n\r\n",
            "a".repeat(8_000)
        )
        .as_bytes(),
        None,
    )
    .await;
    assert!(long.0 == 400 || long.0 == 414, "long URI: {}", long.0);
    check("long URI", long.0, long);
}

/// Writes `head` (then `trickle`: one byte per 100 ms, `n` bytes) on a raw connection
/// and parses the answer: status, content type, body.
async fn raw_exchange(url: &str, head: &[u8], trickle: Option<usize>) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head).await.unwrap();
    let mut raw = Vec::new();
    let (mut rd, mut wr) = tcp.split();
    let feed = async {
        for _ in 0..trickle.unwrap_or(0) {
            if wr.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::future::pending::<()>().await
    };
    let read = tokio::time::timeout(Duration::from_secs(10), rd.read_to_end(&mut raw));
    tokio::select! {
        _ = read => {}
        _ = feed => {}
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, content_type, body)
}

/// The embedded store's files are the service user's only: database 0600, object
/// directory 0700, feature objects 0600.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let ts = start(&Backing::Embedded, "attack-modes").await;
    let url = ts.server.url();
    let http = reqwest::Client::new();
    let mut phone = Phone::register(&http, &url, &format!("m-{}", common::rand_suffix())).await;
    let env = phone.seal(&ts, &payload(now_ms() - 1_000));
    let (status, _) = upload_from(&http, &url, "127.0.0.1", &[env]).await;
    assert_eq!(status, 200);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let mut dbs = 0;
    let mut objects = 0;
    for entry in walk(&ts.dir) {
        let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".db") || name.ends_with(".sqlite3") {
            assert_eq!(mode(&entry), 0o600, "{}", entry.display());
            dbs += 1;
        }
        if name.ends_with(".pack") {
            assert_eq!(mode(&entry), 0o600, "{}", entry.display());
            objects += 1;
        }
        if entry.is_dir() && name == "objects" {
            assert_eq!(mode(&entry), 0o700, "{}", entry.display());
        }
    }
    assert!(
        dbs >= 1 && objects >= 1,
        "{dbs} databases, {objects} objects"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

/// A refused admin request leaves a trace (the `tacit_auth_refused_total` counter and
/// a `tacit::audit` warning), without the token it tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_admin_requests_are_counted() {
    let ts = start(&Backing::Embedded, "attack-audit").await;
    let url = ts.server.url();
    let http = reqwest::Client::new();
    for token in ["wrong-token", ""] {
        let r = http
            .post(format!("{url}/v1/users"))
            .bearer_auth(token)
            .json(&json!({ "user_id": "x" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let metrics = common::metrics_text(&http, &url).await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("tacit_auth_refused_total{role=\"admin\"}"))
        .unwrap_or_else(|| panic!("no refusal counter in:\n{metrics}"));
    assert!(line.ends_with(" 2"), "{line}");
    assert!(!metrics.contains("wrong-token"));
}
