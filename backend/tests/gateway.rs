//! The gateway end to end over real HTTP on loopback, driven by the real mobile-core
//! client, against the embedded storage (SQLite + files) and PostgreSQL + S3.

mod common;

use std::sync::Arc;

use common::{Backing, admin_user, backings, start, typing, walking};
use ring::rand::SystemRandom;
use serde_json::json;
use tacit_mobile_core::client::{Client, ClientConfig};
use tacit_mobile_core::queue::{Outbox, OutboxConfig};
use tacit_shared::api::{UploadResponse, b64_encode};
use tacit_shared::envelope::{Envelope, SealParams};
use tacit_shared::hpke::{RecipientKeyPair, Suite};
use tacit_shared::identity::{DeviceSigner, Ed25519Signer};
use tacit_shared::payload::{FactorKind, FeatureRecord, Payload};

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn record() -> Payload {
    Payload {
        face_images: Vec::new(),
        records: vec![FeatureRecord {
            factor: FactorKind::KeystrokeFixed,
            schema_version: 1,
            window_start_ms: now_ns() as u64 / 1_000_000 - 1_000,
            window_ms: 500,
            context: Some([3; 16]),
            values: vec![0.1, 0.2, 0.1, 0.09],
        }],
    }
}

async fn post_envelopes(http: &reqwest::Client, url: &str, envs: &[Vec<u8>]) -> UploadResponse {
    let body =
        serde_json::json!({ "envelopes": envs.iter().map(|e| b64_encode(e)).collect::<Vec<_>>() });
    let r = http
        .post(format!("{url}/v1/uploads"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn scenario(backing: Backing) {
    let ts = start(&backing, "scenario").await;
    let url = ts.server.url();
    let http = reqwest::Client::new();
    let user = format!("alice-{}", common::rand_suffix());
    let token = admin_user(&http, &url, &user).await;

    // The real client: enrol, record, seal, upload.
    let signer = Arc::new(Ed25519Signer::generate(&SystemRandom::new()).unwrap().0);
    let client_dir = ts.dir.join("phone");
    let cfg = ClientConfig::new(
        &url,
        ts.key.public_key().as_bytes(),
        &ts.key.key_id().to_hex(),
        client_dir.to_str().unwrap(),
        &user,
    )
    .unwrap();
    let client = Client::new(cfg, Some(signer.clone() as Arc<dyn DeviceSigner>)).unwrap();
    let reg = client.register_device(&token).await.unwrap();
    assert_eq!(reg.user_id, user);
    // The token is single use.
    assert!(client.register_device(&token).await.is_err());
    // A retry with a new token of the same user (the first answer was lost on the way)
    // registers the same key again; another user's token cannot take the key over.
    let new_token = |u: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let v: serde_json::Value = http
                .post(format!("{url}/v1/users/{u}/enrolment-tokens"))
                .bearer_auth(common::ADMIN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["token"].as_str().unwrap().to_string()
        }
    };
    let again = client
        .register_device(&new_token(user.clone()).await)
        .await
        .unwrap();
    assert_eq!(again.device_id, reg.device_id);
    let other = format!("{user}-other");
    let other_token = admin_user(&http, &url, &other).await;
    let err = client.register_device(&other_token).await.unwrap_err();
    assert!(err.to_string().contains("409"), "{err}");
    let t0 = now_ns() - 120_000_000_000;
    assert!(
        client
            .record_motion(&walking(60.0, t0))
            .unwrap()
            .feature_records
            > 10
    );
    assert_eq!(
        client
            .record_keys(&typing(200, t0))
            .unwrap()
            .feature_records,
        2
    );
    let sealed = client.seal().unwrap();
    assert!(sealed.envelopes >= 1);

    // Capture the envelopes as a network attacker would, before they are uploaded.
    let outbox = Outbox::open(&client_dir, OutboxConfig::default()).unwrap();
    let captured: Vec<Vec<u8>> = outbox
        .peek_oldest(100)
        .unwrap()
        .into_iter()
        .map(|q| q.bytes)
        .collect();
    assert_eq!(captured.len(), sealed.envelopes as usize);

    let up = client.upload_pending().await.unwrap();
    assert_eq!(up.report.stored, sealed.envelopes as u64, "{up:?}");
    assert_eq!(up.remaining, 0);
    let st = client.status().unwrap();
    assert_eq!(st.outbox_envelopes, 0);
    assert_eq!(st.acknowledged_total, sealed.envelopes as u64);
    let stored_before = ts.server.state.store.count_envelopes(&user).await.unwrap();
    assert_eq!(stored_before, sealed.envelopes as u64);

    // Export (the person's access and portability): the device, every record uploaded.
    let export = common::export(&http, &url, &user).await;
    assert_eq!(export["user_id"], user.as_str());
    assert_eq!(export["devices"].as_array().unwrap().len(), 1);
    assert_eq!(export["devices"][0]["device_id"], reg.device_id.as_str());
    assert_eq!(export["devices"][0]["revoked"], false);
    assert_eq!(
        export["training_consent"], false,
        "consent is off by default"
    );

    // Training consent through the admin API: recorded, read back, in the export;
    // refused without the admin token, for unknown users and for a malformed body.
    let consent_url = format!("{url}/v1/users/{user}/training-consent");
    let put = |body: serde_json::Value, token: &'static str, u: String| {
        http.put(u).bearer_auth(token).json(&body).send()
    };
    let r = put(
        json!({"training_consent": true}),
        common::ADMIN,
        consent_url.clone(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["training_consent"],
        true
    );
    let r = http
        .get(&consent_url)
        .bearer_auth(common::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["training_consent"],
        true
    );
    assert_eq!(
        common::export(&http, &url, &user).await["training_consent"],
        true
    );
    for (body, token, u, status) in [
        (
            json!({"training_consent": false}),
            "wrong",
            consent_url.clone(),
            401,
        ),
        (
            json!({"training_consent": "yes"}),
            common::ADMIN,
            consent_url.clone(),
            400,
        ),
        (
            json!({"consent": true}),
            common::ADMIN,
            consent_url.clone(),
            400,
        ),
        (
            json!({"training_consent": true}),
            common::ADMIN,
            format!("{url}/v1/users/nobody-here/training-consent"),
            404,
        ),
    ] {
        let r = put(body.clone(), token, u).await.unwrap();
        assert_eq!(r.status(), status, "{body}");
    }
    assert_eq!(
        ts.server.state.store.training_users().await.unwrap()[0].user_id,
        user
    );
    let batches = export["features"].as_array().unwrap();
    assert_eq!(batches.len() as u64, stored_before);
    let records: usize = batches
        .iter()
        .map(|b| b["records"].as_array().unwrap().len())
        .sum();
    assert_eq!(records as u32, sealed.records);
    assert!(
        batches[0]["records"][0]["values"]
            .as_array()
            .is_some_and(|v| !v.is_empty())
    );
    for (path, token, status) in [
        (format!("/v1/users/{user}/export"), "", 401),
        (
            "/v1/users/nobody-here/export".to_string(),
            common::ADMIN,
            404,
        ),
        ("/v1/users/-bad/export".to_string(), common::ADMIN, 400),
    ] {
        let r = http
            .get(format!("{url}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{path}");
    }

    // Duplicate (the same bytes again): acknowledged, not stored twice.
    let r = post_envelopes(&http, &url, &captured[..1]).await;
    assert_eq!(
        serde_json::to_value(r.results[0].status).unwrap(),
        "duplicate"
    );
    assert_eq!(
        ts.server.state.store.count_envelopes(&user).await.unwrap(),
        stored_before
    );

    // Tampered: one flipped bit.
    let mut bad = captured[0].clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 4;
    let r = post_envelopes(&http, &url, &[bad]).await;
    assert_eq!(r.results[0].reason.as_deref(), Some("bad_signature"));

    // A replay that is not an honest retry: an envelope older than the acceptance
    // window. (A sequence number re-used for new content means a cloned phone:
    // `authenticate.rs` shows the device revoked for it.)
    let env0 = Envelope::decode(&captured[0]).unwrap();
    let rng = SystemRandom::new();
    // An envelope of this phone's key, sealed by hand at a sequence number and time.
    let seal_at = |sequence: u64, created_at_ms: u64| {
        let p = SealParams {
            suite: Suite::X25519Sha256ChaCha20Poly1305,
            sequence,
            created_at_ms,
        };
        Envelope::seal(p, &record(), ts.key.public_key(), signer.as_ref(), &rng)
            .unwrap()
            .1
    };
    let ancient = seal_at(1_000_000, 1_000);
    let r = post_envelopes(&http, &url, &[ancient]).await;
    assert_eq!(r.results[0].reason.as_deref(), Some("expired"));

    // Wrong device: a key that was never enrolled, and one that claims a registered id.
    let stranger = Ed25519Signer::generate(&rng).unwrap().0;
    let p = SealParams {
        suite: Suite::X25519Sha256ChaCha20Poly1305,
        sequence: 7,
        created_at_ms: now_ns() as u64 / 1_000_000,
    };
    let (_, unknown) = Envelope::seal(p, &record(), ts.key.public_key(), &stranger, &rng).unwrap();
    let mut forged = env0.clone();
    forged.header.sequence = 999_999;
    forged.signature = stranger.sign(&forged.signed_bytes()).unwrap();
    // Unknown backend key.
    let other_backend = RecipientKeyPair::generate(&rng).unwrap();
    let (_, wrong_key) = Envelope::seal(
        p,
        &record(),
        other_backend.public_key(),
        signer.as_ref(),
        &rng,
    )
    .unwrap();
    let r = post_envelopes(
        &http,
        &url,
        &[unknown, forged.encode(), wrong_key, vec![1, 2, 3]],
    )
    .await;
    let reasons: Vec<_> = r
        .results
        .iter()
        .map(|x| x.reason.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        reasons,
        [
            "unknown_device",
            "bad_signature",
            "unknown_key_id",
            "truncated"
        ]
    );
    assert_eq!(
        ts.server.state.store.count_envelopes(&user).await.unwrap(),
        stored_before
    );

    // Revocation (a stolen phone): the administrator revokes the device; its next
    // upload is rejected and nothing more is stored.
    let device_hex = signer.public_key().device_id().to_hex();
    for (path, token, status) in [
        (format!("/v1/devices/{device_hex}/revoke"), "", 401),
        ("/v1/devices/not-hex/revoke".to_string(), common::ADMIN, 400),
        (
            format!("/v1/devices/{}/revoke", "ab".repeat(17)),
            common::ADMIN,
            400,
        ),
        (
            format!("/v1/devices/{}/revoke", "ee".repeat(16)),
            common::ADMIN,
            404,
        ),
        (
            format!("/v1/devices/{device_hex}/revoke"),
            common::ADMIN,
            200,
        ),
        (
            format!("/v1/devices/{device_hex}/revoke"),
            common::ADMIN,
            200,
        ),
    ] {
        let r = http
            .post(format!("{url}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{path}");
    }
    let after = seal_at(9_000, now_ns() as u64 / 1_000_000);
    let r = post_envelopes(&http, &url, &[after]).await;
    assert_eq!(r.results[0].reason.as_deref(), Some("device_revoked"));
    assert_eq!(
        ts.server.state.store.count_envelopes(&user).await.unwrap(),
        stored_before
    );

    // Encryption at rest is the default (`common::settings`): the directory or bucket
    // holds ciphertext only.
    let objects = ts.server.state.store.objects();
    let first = &ts
        .server
        .state
        .store
        .list_feature_objects(&user)
        .await
        .unwrap()[0];
    let raw = {
        use object_store::ObjectStoreExt;
        let p = object_store::path::Path::parse(first).unwrap();
        objects
            .object_store()
            .get(&p)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    };
    assert!(
        raw.starts_with(tacit_backend::store::at_rest::MAGIC),
        "{first}: not encrypted at rest"
    );
    let entries = objects.read_entries(first).await.unwrap();
    assert!(!entries.is_empty(), "{first}: an empty pack");
    for e in entries {
        assert!(tacit_shared::payload::Payload::decode(&e.payload).is_ok());
    }

    // Deletion: nothing of the user remains in the database or the object store.
    let other = format!("bob-{}", common::rand_suffix());
    let _ = admin_user(&http, &url, &other).await;
    let r = http
        .delete(format!("{url}/v1/users/{user}"))
        .bearer_auth(common::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let del: serde_json::Value = r.json().await.unwrap();
    assert_eq!(del["devices"], 1);
    assert_eq!(del["envelopes"].as_u64().unwrap(), stored_before);
    assert!(del["objects"].as_u64().unwrap() >= stored_before);
    let store = &ts.server.state.store;
    assert_eq!(store.count_envelopes(&user).await.unwrap(), 0);
    assert!(store.list_feature_objects(&user).await.unwrap().is_empty());
    assert!(
        store
            .get_device(signer.public_key().device_id().0)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!store.user_exists(&user).await.unwrap());
    assert!(
        store.user_exists(&other).await.unwrap(),
        "other users are untouched"
    );
    // The deleted device can no longer upload.
    let late = seal_at(10_000, now_ns() as u64 / 1_000_000);
    let r = post_envelopes(&http, &url, &[late]).await;
    assert_eq!(r.results[0].reason.as_deref(), Some("unknown_device"));
    ts.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrol_upload_replay_tamper_wrong_device_duplicate_delete() {
    for b in backings() {
        eprintln!("backing: {b:?}");
        scenario(b).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_4xx_json_errors() {
    let ts = start(&Backing::Embedded, "badinput").await;
    let url = ts.server.url();
    let http = reqwest::Client::new();
    let check = |r: reqwest::Response, status: u16| async move {
        assert_eq!(r.status().as_u16(), status);
        let v: serde_json::Value = r.json().await.expect("JSON error body");
        assert!(v["error"].is_string() && v["code"].is_string(), "{v}");
        v["code"].as_str().unwrap().to_string()
    };
    let up = format!("{url}/v1/uploads");
    let r = http
        .post(&up)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(check(r, 400).await, "malformed_json");
    let r = http
        .post(&up)
        .header("content-type", "application/json")
        .body("{\"envelopes\": 5}")
        .send()
        .await
        .unwrap();
    assert_eq!(check(r, 400).await, "invalid_body");
    let r = http.post(&up).body("{}").send().await.unwrap();
    assert_eq!(check(r, 415).await, "unsupported_media_type");
    let r = http
        .post(&up)
        .json(&serde_json::json!({"envelopes": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(check(r, 400).await, "invalid_batch");
    let many: Vec<String> = (0..257).map(|_| "AAAA".to_string()).collect();
    let r = http
        .post(&up)
        .json(&serde_json::json!({ "envelopes": many }))
        .send()
        .await
        .unwrap();
    assert_eq!(check(r, 400).await, "invalid_batch");
    let huge = "A".repeat(9 * 1024 * 1024);
    // Its own connection: the server answers 413 without reading the body and closes
    // the connection, which a pooled client would otherwise try to reuse.
    let r = reqwest::Client::new()
        .post(&up)
        .json(&serde_json::json!({ "envelopes": [huge] }))
        .send()
        .await
        .unwrap();
    assert_eq!(check(r, 413).await, "body_too_large");
    let r = post_envelopes(&http, &url, &[vec![0u8; 200], b"TCIT\x07".to_vec()]).await;
    assert_eq!(r.results[0].reason.as_deref(), Some("bad_magic"));
    assert_eq!(r.results[1].reason.as_deref(), Some("unsupported_version"));
    let r = http
        .post(&up)
        .json(&serde_json::json!({"envelopes": ["!!!!"]}))
        .send()
        .await
        .unwrap();
    let v: UploadResponse = r.json().await.unwrap();
    assert_eq!(v.results[0].reason.as_deref(), Some("bad_base64"));
    // Devices and admin.
    let r = http.post(format!("{url}/v1/devices")).json(&serde_json::json!({"enrolment_token": "x", "public_key": {"algorithm": "rsa", "key": "AAAA"}})).send().await.unwrap();
    assert_eq!(check(r, 400).await, "invalid_public_key");
    let key = b64_encode(
        Ed25519Signer::generate(&SystemRandom::new())
            .unwrap()
            .0
            .public_key()
            .as_bytes(),
    );
    let r = http.post(format!("{url}/v1/devices")).json(&serde_json::json!({"enrolment_token": "nope", "public_key": {"algorithm": "ed25519", "key": key}})).send().await.unwrap();
    assert_eq!(check(r, 403).await, "invalid_token");
    let r = http
        .post(format!("{url}/v1/users"))
        .json(&serde_json::json!({"user_id": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(check(r, 401).await, "unauthorized");
    let r = http
        .post(format!("{url}/v1/users"))
        .bearer_auth(common::ADMIN)
        .json(&serde_json::json!({"user_id": "bad id!"}))
        .send()
        .await
        .unwrap();
    assert_eq!(check(r, 400).await, "invalid_user_id");
    let r = http
        .delete(format!("{url}/v1/users/nobody"))
        .bearer_auth(common::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(check(r, 404).await, "not_found");
    let r = http
        .get(format!("{url}/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(check(r, 404).await, "not_found");
    // Health, readiness, metrics, OpenAPI.
    assert_eq!(
        http.get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{url}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let m = common::metrics_text(&http, &url).await;
    assert!(
        m.contains("tacit_envelopes_total{status=\"rejected\",reason=\"bad_magic\"} 1"),
        "{m}"
    );
    let doc: serde_json::Value = http
        .get(format!("{url}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    for p in [
        "/v1/uploads",
        "/v1/devices",
        "/v1/users",
        "/v1/users/{id}",
        "/v1/users/{id}/enrolment-tokens",
        "/v1/users/{id}/training-consent",
        "/v1/devices/{id}/revoke",
        "/v1/authenticate",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            paths.contains(&p),
            "{p} missing from /openapi.json: {paths:?}"
        );
    }
    ts.server.shutdown().await.unwrap();
}
