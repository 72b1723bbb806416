//! kill -9 of the server during a stream of uploads: every envelope the client saw
//! acknowledged is stored after restart, and none twice.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use ring::rand::SystemRandom;
use tacit_backend::settings::Settings;
use tacit_shared::api::{EnvelopeStatus, PublicKeyJson, UploadResponse, b64_encode};
use tacit_shared::envelope::{Envelope, SealParams};
use tacit_shared::hpke::Suite;
use tacit_shared::identity::{DeviceSigner, Ed25519Signer};
use tacit_shared::payload::{FactorKind, FeatureRecord, Payload};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_uploads_loses_no_acknowledged_envelope() {
    let dir = common::temp_dir("crash");
    let backend = common::keygen_process(&dir);

    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut server = common::serve_process(&dir, port);
    common::wait_ready(&http, &url).await;
    let token = common::admin_user(&http, &url, "crash-user").await;
    let rng = SystemRandom::new();
    let signer = Ed25519Signer::generate(&rng).unwrap().0;
    let r = http
        .post(format!("{url}/v1/devices"))
        .json(&serde_json::json!({"enrolment_token": token, "public_key": PublicKeyJson::from_key(&signer.public_key())}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let payload = Payload {
        face_images: Vec::new(),
        records: vec![FeatureRecord {
            factor: FactorKind::KeystrokeFixed,
            schema_version: 1,
            window_start_ms: now_ms,
            window_ms: 400,
            context: Some([5; 16]),
            values: vec![0.1, 0.2, 0.1, 0.1],
        }],
    };
    let total = 900u64;
    let envelopes: Vec<(String, Vec<u8>)> = (0..total)
        .map(|seq| {
            let p = SealParams {
                suite: Suite::X25519Sha256ChaCha20Poly1305,
                sequence: seq,
                created_at_ms: now_ms,
            };
            let (h, bytes) = Envelope::seal(p, &payload, &backend, &signer, &rng).unwrap();
            (tacit_shared::api::hex(&h.envelope_id), bytes)
        })
        .collect();

    let mut acknowledged: HashSet<String> = HashSet::new();
    let mut pending: Vec<usize> = (0..envelopes.len()).collect();
    let mut kills = 0;
    let mut failed_requests = 0;
    let mut round = 0u64;
    while !pending.is_empty() && round < 200 {
        round += 1;
        // Kill -9 the server every 5th batch (3 times), while the next request races it.
        let batch: Vec<usize> = pending.iter().copied().take(30).collect();
        let body = serde_json::json!({ "envelopes": batch.iter().map(|&i| b64_encode(&envelopes[i].1)).collect::<Vec<_>>() });
        let req = http.post(format!("{url}/v1/uploads")).json(&body).send();
        let kill_now = kills < 3 && round.is_multiple_of(5);
        let result = if kill_now {
            let killer = async {
                tokio::time::sleep(Duration::from_millis(3 + round % 7)).await;
                server.kill().ok(); // SIGKILL
            };
            let (r, _) = tokio::join!(req, killer);
            server.wait().ok();
            kills += 1;
            r
        } else {
            req.await
        };
        match result {
            Ok(r) if r.status() == 200 => {
                let resp: UploadResponse = r.json().await.unwrap();
                for res in resp.results {
                    assert_ne!(res.status, EnvelopeStatus::Rejected, "{res:?}");
                    acknowledged.insert(envelopes[batch[res.index]].0.clone());
                }
                pending.retain(|i| !acknowledged.contains(&envelopes[*i].0));
            }
            _ => failed_requests += 1,
        }
        if kill_now {
            // After the crash: check the store directly, then restart.
            let s = Settings {
                data_dir: dir.clone(),
                ..Settings::default()
            };
            let store = tacit_backend::server::open_store(&s).await.unwrap();
            let stored = store.count_envelopes("crash-user").await.unwrap();
            assert!(
                stored >= acknowledged.len() as u64,
                "stored {stored} < acknowledged {}",
                acknowledged.len()
            );
            drop(store);
            server = common::serve_process(&dir, port);
            common::wait_ready(&http, &url).await;
        }
    }
    assert!(
        pending.is_empty(),
        "{} envelopes never acknowledged",
        pending.len()
    );
    server.kill().ok();
    server.wait().ok();
    let s = Settings {
        data_dir: dir.clone(),
        ..Settings::default()
    };
    let store = tacit_backend::server::open_store(&s).await.unwrap();
    let stored = store.count_envelopes("crash-user").await.unwrap();
    println!(
        "crash test: {kills} kills, {failed_requests} failed requests, {} acknowledged, {stored} stored",
        acknowledged.len()
    );
    assert_eq!(kills, 3);
    assert_eq!(acknowledged.len() as u64, total);
    assert_eq!(stored, total, "every envelope stored exactly once");
    std::fs::remove_dir_all(&dir).ok();
}
