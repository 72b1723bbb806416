//! `POST /v1/authenticate` and enrolment over real HTTP, against the embedded storage
//! and PostgreSQL + S3: in-process factors (the embedded default) and a factor service
//! over HTTP that goes away (degraded answers, circuit breaker). Users are synthetic
//! people of `common::gait_population`, people the model was not trained on.

mod common;

use std::time::Duration;

use common::{Backing, backings, calibrated_gait_model, gait_population_of, settings, temp_dir};
use ring::rand::SystemRandom;
use serde_json::{Value, json};
use tacit_backend::keys::KeyRing;
use tacit_backend::server;
use tacit_backend::settings::RemoteFactorSettings;
use tacit_shared::api::{
    AuthDecision, AuthenticateResponse, EnvelopeStatus, FactorStatus, authenticate_message,
    b64_encode,
};
use tacit_shared::envelope::{Envelope, SealParams};
use tacit_shared::hpke::{RecipientPublicKey, Suite};
use tacit_shared::identity::{DeviceSigner, Ed25519Signer};
use tacit_shared::payload::{FactorKind, FeatureRecord, Payload};

/// How long a re-sent envelope counts as a retry in these tests (short: the test
/// waits it out).
const FRESH_RETRY_S: u64 = 3;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A phone of the test: its key, its next sequence number, the backend key.
struct Phone {
    signer: Ed25519Signer,
    /// The key as stored on the phone, for copying it to a second phone.
    pkcs8: Vec<u8>,
    id: [u8; 16],
    sequence: u64,
    backend: RecipientPublicKey,
    last_ms: u64,
    /// Start of the next gait window: consecutive, as a walk would give them.
    next_window_ms: u64,
}

impl Phone {
    async fn register(
        http: &reqwest::Client,
        url: &str,
        user: &str,
        backend: RecipientPublicKey,
    ) -> Phone {
        let (signer, pkcs8) = Ed25519Signer::generate(&SystemRandom::new()).unwrap();
        common::register_device(http, url, user, &signer).await;
        let id = signer.public_key().device_id().0;
        Phone {
            signer,
            pkcs8,
            id,
            sequence: 0,
            backend,
            last_ms: 0,
            next_window_ms: now_ms() - 1_200_000,
        }
    }

    /// A second phone holding this phone's key and state (a cloned phone).
    fn copy(&self) -> Phone {
        Phone {
            signer: Ed25519Signer::from_pkcs8(&self.pkcs8).unwrap(),
            pkcs8: self.pkcs8.clone(),
            id: self.id,
            sequence: self.sequence,
            backend: self.backend,
            last_ms: self.last_ms,
            next_window_ms: self.next_window_ms,
        }
    }

    /// An envelope of gait windows ending just before now.
    fn envelope(&mut self, vectors: &[Vec<f32>]) -> Vec<u8> {
        self.envelope_created(vectors, now_ms())
    }

    /// An envelope created at `now` (the phone's clock).
    fn envelope_created(&mut self, vectors: &[Vec<f32>], now: u64) -> Vec<u8> {
        let records = vectors
            .iter()
            .map(|v| FeatureRecord {
                factor: FactorKind::Gait,
                schema_version: 1,
                window_start_ms: {
                    self.next_window_ms += 5120;
                    self.next_window_ms
                },
                window_ms: 5120,
                context: None,
                values: v.clone(),
            })
            .collect();
        self.sequence += 1;
        let p = SealParams {
            suite: Suite::X25519Sha256ChaCha20Poly1305,
            sequence: self.sequence,
            created_at_ms: now,
        };
        Envelope::seal(
            p,
            &Payload {
                records,
                face_images: Vec::new(),
            },
            &self.backend,
            &self.signer,
            &SystemRandom::new(),
        )
        .unwrap()
        .1
    }

    fn request(&mut self, envelopes: &[Vec<u8>]) -> Value {
        self.last_ms = now_ms().max(self.last_ms + 1);
        self.request_at(self.last_ms, envelopes)
    }

    fn request_at(&self, request_ms: u64, envelopes: &[Vec<u8>]) -> Value {
        let sig = self
            .signer
            .sign(&authenticate_message(&self.id, request_ms, envelopes))
            .unwrap();
        json!({
            "device_id": hex::encode(self.id),
            "request_ms": request_ms,
            "envelopes": envelopes.iter().map(|e| b64_encode(e)).collect::<Vec<_>>(),
            "signature": b64_encode(&sig),
        })
    }
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let r = http
        .post(format!("{url}/v1/authenticate"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post_upload(http: &reqwest::Client, url: &str, envelope: &[u8]) -> Value {
    let r = http
        .post(format!("{url}/v1/uploads"))
        .json(&json!({ "envelopes": [b64_encode(envelope)] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn authenticate(http: &reqwest::Client, url: &str, body: &Value) -> AuthenticateResponse {
    let r = http
        .post(format!("{url}/v1/authenticate"))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    r.json().await.unwrap()
}

async fn enrol(http: &reqwest::Client, url: &str, user: &str) -> Value {
    let r = http
        .post(format!("{url}/v1/users/{user}/templates"))
        .bearer_auth(common::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// One factor's entry in an enrolment answer.
fn enrol_status<'a>(e: &'a Value, name: &str) -> &'a Value {
    e["factors"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["factor"] == name))
        .unwrap_or_else(|| panic!("no {name} in {e}"))
}

fn factor_of<'a>(r: &'a AuthenticateResponse, name: &str) -> &'a tacit_shared::api::FactorResult {
    r.factors.iter().find(|f| f.factor == name).unwrap()
}

/// The target false-accept rate of these tests: what the test model's calibration on 15
/// synthetic people supports.
const TARGET_FAR: f64 = 0.05;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authenticate_in_process_on_every_backing() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let pop = gait_population_of(40);
    let model = calibrated_gait_model(&pop, 3);
    for backing in backings() {
        in_process(&backing, &pop, model.clone()).await;
    }
}

async fn in_process(backing: &Backing, pop: &tacit_models::data::Population, model: Vec<u8>) {
    let dir = temp_dir("auth");
    common::ensure_bucket(backing).await;
    let mut s = settings(backing, &dir);
    // What the small calibration set of the test model supports (its floor is ~0.03).
    s.auth.fusion.target_far = TARGET_FAR;
    if let Backing::PostgresS3 { .. } = backing {
        // Separate model prefix per run: the bucket is shared between tests.
        s.factor.models_prefix = format!("models-{}", common::rand_suffix());
    }
    s.factor.model_poll_ms = 200;
    s.auth.fresh_retry_s = FRESH_RETRY_S;
    let keys_pair = KeyRing::generate(&s.keys_dir()).unwrap();
    let keys = KeyRing::load(&s.keys_dir()).unwrap();
    let store = server::open_store(&s).await.unwrap();
    {
        let objects = server::objects_config(&s).unwrap().open().unwrap();
        let path = object_store::path::Path::parse(format!("{}/gait.tcm", s.factor.models_prefix))
            .unwrap();
        object_store::ObjectStoreExt::put(objects.object_store().as_ref(), &path, model.into())
            .await
            .unwrap();
    }
    let factors = server::embedded_factors(&s, store.objects()).await.unwrap();
    let srv = server::spawn_with_factors(s, keys, store, factors)
        .await
        .unwrap();
    let url = srv.url();
    let http = reqwest::Client::new();
    let suffix = common::rand_suffix();
    let (alice_id, bob_id) = (format!("alice-{suffix}"), format!("bob-{suffix}"));
    let mut alice = Phone::register(&http, &url, &alice_id, *keys_pair.public_key()).await;
    let mut bob = Phone::register(&http, &url, &bob_id, *keys_pair.public_key()).await;
    let person = |p: usize, group: u32| -> Vec<Vec<f32>> {
        pop.people[p]
            .samples
            .iter()
            .filter(|s| s.group == group)
            .map(|s| s.vector.clone())
            .collect()
    };

    // Before enrolment: no template anywhere → step_up, nothing scored.
    let r = authenticate(&http, &url, &alice.request(&[])).await;
    assert_eq!(r.decision, AuthDecision::StepUp);
    assert!(
        r.factors
            .iter()
            .all(|f| f.status == FactorStatus::NoTemplate),
        "{r:?}"
    );

    // Enrolment: three sessions of people 7 (alice) and 8 (bob), never seen in training.
    for (phone, user, p) in [(&mut alice, &alice_id, 7), (&mut bob, &bob_id, 8)] {
        let vectors: Vec<Vec<f32>> = (0..3).flat_map(|g| person(p, g)).collect();
        let env = phone.envelope(&vectors);
        let up = http
            .post(format!("{url}/v1/uploads"))
            .json(&json!({"envelopes": [b64_encode(&env)]}))
            .send()
            .await
            .unwrap();
        assert_eq!(up.status(), 200);
        let e = enrol(&http, &url, user).await;
        let gait = enrol_status(&e, "gait");
        assert_eq!(gait["status"], "enrolled", "{e}");
        assert_eq!(gait["samples"], 45);
        // keystroke-fixed has no windows (and no model): nothing changes.
        let ks = enrol_status(&e, "keystroke-fixed");
        assert_eq!(ks["status"], "no_data", "{e}");
    }
    // Bad enrolment bodies are refused with a stable code.
    let too_many: Vec<String> = (0..33).map(|i| format!("f{i}")).collect();
    for (body, code) in [
        ("{\"factors\": [".to_string(), "invalid_body"),
        ("[1, 2]".to_string(), "invalid_body"),
        ("{\"factor\": [\"gait\"]}".to_string(), "invalid_body"),
        (json!({ "factors": too_many }).to_string(), "invalid_body"),
        (
            json!({ "factors": ["gait", "iris"] }).to_string(),
            "unknown_factor",
        ),
    ] {
        let r = http
            .post(format!("{url}/v1/users/{alice_id}/templates"))
            .bearer_auth(common::ADMIN)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let e: tacit_shared::api::ErrorBody = r.json().await.unwrap();
        assert_eq!(e.code, code, "{body}: {}", e.error);
    }
    // Enrolment windows are never scored: nothing newer yet.
    let r = authenticate(&http, &url, &alice.request(&[])).await;
    assert_eq!(
        factor_of(&r, "gait").status,
        FactorStatus::NoRecentData,
        "{r:?}"
    );

    // Genuine: alice's fourth session on alice's phone, sent with the request.
    let env = alice.envelope(&person(7, 3)[..6]);
    let r = authenticate(&http, &url, &alice.request(std::slice::from_ref(&env))).await;
    assert_eq!(r.envelopes.len(), 1);
    assert_eq!(
        r.envelopes[0].status,
        tacit_shared::api::EnvelopeStatus::Stored
    );
    let g = factor_of(&r, "gait");
    assert_eq!((g.status, g.windows), (FactorStatus::Scored, 6), "{r:?}");
    assert_eq!(r.decision, AuthDecision::Accept, "{r:?}");
    assert!(r.estimated_far <= TARGET_FAR && r.far_floor > 0.0 && r.far_floor <= TARGET_FAR);
    assert!((r.confidence - (1.0 - r.estimated_far)).abs() < 1e-12);
    assert!(!r.degraded && r.consecutive_rejects == 0);
    // Freshness: the weight halves every `half_life_s` of age of the newest window.
    let expected = 0.5f64.powf(g.age_s.unwrap() / 600.0);
    assert!(
        g.model_version.is_some() && (g.weight - expected).abs() < 1e-9,
        "{g:?}"
    );

    // The client retrying after a lost answer: the envelope is a duplicate now, and
    // still judged, since it arrived moments ago.
    let r = authenticate(&http, &url, &alice.request(std::slice::from_ref(&env))).await;
    assert_eq!(
        r.envelopes[0].status,
        tacit_shared::api::EnvelopeStatus::Duplicate
    );
    assert_eq!(factor_of(&r, "gait").windows, 6, "{r:?}");
    assert_eq!(r.decision, AuthDecision::Accept, "{r:?}");
    // Later the same envelope is a replay (someone with alice's device key re-sending
    // her captured walk): not evidence, so no accept.
    tokio::time::sleep(std::time::Duration::from_millis(FRESH_RETRY_S * 1000 + 300)).await;
    let r = authenticate(&http, &url, &alice.request(&[env])).await;
    assert_eq!(
        r.envelopes[0].status,
        tacit_shared::api::EnvelopeStatus::Duplicate
    );
    assert_eq!(
        factor_of(&r, "gait").status,
        FactorStatus::NoRecentData,
        "{r:?}"
    );
    assert_eq!(r.decision, AuthDecision::StepUp, "{r:?}");

    // With attached evidence only that evidence counts: bob's person walking with
    // alice's phone right after her accept is judged on his windows alone.
    let env = alice.envelope(&person(8, 3)[..6]);
    let r = authenticate(&http, &url, &alice.request(&[env])).await;
    assert_eq!(factor_of(&r, "gait").windows, 6, "{r:?}");
    assert_eq!(r.decision, AuthDecision::Reject, "{r:?}");
    assert_eq!(r.consecutive_rejects, 1);

    // Zero-effort impostor: alice walking with bob's phone, five times → locked.
    for attempt in 1..=6u32 {
        let env = bob.envelope(&person(7, 3)[6..12]);
        let r = authenticate(&http, &url, &bob.request(&[env])).await;
        assert_eq!(r.decision, AuthDecision::Reject, "attempt {attempt}: {r:?}");
        assert_eq!(r.consecutive_rejects, attempt);
        assert!(factor_of(&r, "gait").mean_llr.unwrap() < 0.0);
        if attempt == 6 {
            assert!(r.reason.contains("consecutive rejects"), "{}", r.reason);
        }
    }
    let r = http
        .post(format!("{url}/v1/users/{bob_id}/unlock"))
        .bearer_auth(common::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["consecutive_rejects"], 0);
    let r = http
        .post(format!("{url}/v1/users/nobody-{suffix}/unlock"))
        .bearer_auth(common::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // The request is signed, fresh, once-only and bounded.
    let body = alice.request(&[]);
    assert_eq!(post(&http, &url, &body).await.0, 200);
    let (status, e) = post(&http, &url, &body).await;
    assert_eq!(
        (status, e["code"].as_str()),
        (409, Some("replayed_request"))
    );
    let mut tampered = alice.request(&[]);
    tampered["request_ms"] = json!(tampered["request_ms"].as_u64().unwrap() + 1);
    assert_eq!(
        post(&http, &url, &tampered).await.1["code"],
        "bad_signature"
    );
    let old = alice.request_at(now_ms() - 3_600_000, &[]);
    assert_eq!(post(&http, &url, &old).await.1["code"], "stale_request");
    let signed_for = alice.envelope(&person(7, 3)[..1]);
    let mut envelope_swapped = alice.request(&[signed_for]);
    envelope_swapped["envelopes"] = json!([b64_encode(&alice.envelope(&person(8, 3)[..1]))]);
    assert_eq!(
        post(&http, &url, &envelope_swapped).await.1["code"],
        "bad_signature"
    );
    let mut stranger = alice.request(&[]);
    stranger["device_id"] = json!("00".repeat(16));
    assert_eq!(
        post(&http, &url, &stranger).await.1["code"],
        "unknown_device"
    );
    // Bob's envelope attached to alice's request: rejected, not stored for alice.
    let bobs = bob.envelope(&person(8, 3)[..2]);
    let r = authenticate(&http, &url, &alice.request(&[bobs])).await;
    assert_eq!(r.envelopes[0].reason.as_deref(), Some("wrong_device"));
    let many: Vec<Vec<u8>> = (0..17).map(|_| vec![0u8; 4]).collect();
    assert_eq!(
        post(&http, &url, &alice.request(&many)).await.1["code"],
        "too_many_envelopes"
    );
    for bad in [
        json!({}),
        json!({"device_id": "zz", "request_ms": 1, "signature": "AA=="}),
        json!({"device_id": hex::encode(alice.id), "request_ms": 1, "signature": "not base64"}),
    ] {
        let (status, e) = post(&http, &url, &bad).await;
        assert!((400..500).contains(&status), "{bad} -> {status} {e}");
        assert!(e["code"].is_string(), "{e}");
    }
    let r = http
        .post(format!("{url}/v1/users/{alice_id}/templates"))
        .bearer_auth(common::ADMIN)
        .json(&json!({"factors": ["nope"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .post(format!("{url}/v1/users/{alice_id}/templates"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Deleting a user removes the templates too.
    let r = http
        .delete(format!("{url}/v1/users/{alice_id}"))
        .bearer_auth(common::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        srv.state
            .store
            .templates(&alice_id)
            .await
            .unwrap()
            .is_empty()
    );
    // Two envelopes of one request under one sequence number: the later one in the
    // request is the reuse, also when the earlier one goes to another day's pack (a
    // request's packs commit in the order of their first envelopes).
    {
        let user = format!("dave-{}", common::rand_suffix());
        let mut owner = Phone::register(&http, &url, &user, *keys_pair.public_key()).await;
        let today = owner.envelope(&person(7, 3)[..2]);
        let mut thief = owner.copy();
        let day = 86_400_000;
        owner.next_window_ms -= day;
        let yesterday = owner.envelope_created(&person(7, 3)[..2], now_ms() - day);
        let reused = thief.envelope(&person(8, 3)[..2]);
        let r = http
            .post(format!("{url}/v1/uploads"))
            .json(&json!({ "envelopes": [b64_encode(&today), b64_encode(&yesterday), b64_encode(&reused)] }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let up: Value = r.json().await.unwrap();
        let results = &up["results"];
        assert_eq!(results[0]["status"], "stored", "{up}");
        assert_eq!(results[1]["status"], "stored", "{up}");
        assert_eq!(results[2]["reason"], "sequence_reused", "{up}");

        // The same envelope twice in one request: stored once, the copy a duplicate.
        let mut other =
            Phone::register(&http, &url, &format!("{user}-2"), *keys_pair.public_key()).await;
        let e = b64_encode(&other.envelope(&person(7, 3)[..2]));
        let r = http
            .post(format!("{url}/v1/uploads"))
            .json(&json!({ "envelopes": [e, e] }))
            .send()
            .await
            .unwrap();
        let up: Value = r.json().await.unwrap();
        assert_eq!(up["results"][0]["status"], "stored", "{up}");
        assert_eq!(up["results"][1]["status"], "duplicate", "{up}");
    }

    // A cloned phone (device key and state copied to another phone) is given away by
    // whichever of the two sends a sequence number second, on either path: the thief's
    // envelope reuses the sequence of the owner's. The device is revoked for both.
    for via_upload in [true, false] {
        let owner_id = format!("carol-{}", common::rand_suffix());
        let mut owner = Phone::register(&http, &url, &owner_id, *keys_pair.public_key()).await;
        let mut thief = owner.copy();
        let owners = owner.envelope(&person(7, 3)[..2]);
        let r = authenticate(&http, &url, &owner.request(&[owners])).await;
        assert_eq!(r.envelopes[0].status, EnvelopeStatus::Stored);
        let thiefs = thief.envelope(&person(8, 3)[..2]);
        thief.last_ms = owner.last_ms; // the thief's clock is as good as the owner's
        let (status, body) = if via_upload {
            let up = post_upload(&http, &url, &thiefs).await;
            assert_eq!(up["results"][0]["reason"], "sequence_reused", "{up}");
            post(&http, &url, &thief.request(&[])).await
        } else {
            post(&http, &url, &thief.request(&[thiefs])).await
        };
        let code = if via_upload {
            "device_revoked"
        } else {
            "device_cloned"
        };
        assert_eq!((status, body["code"].as_str()), (403, Some(code)), "{body}");
        // Neither phone gets anything in from now on: the owner registers anew.
        let (status, body) = post(&http, &url, &owner.request(&[])).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("device_revoked"))
        );
        let later = thief.envelope(&person(8, 3)[2..4]);
        let up = post_upload(&http, &url, &later).await;
        assert_eq!(up["results"][0]["reason"], "device_revoked", "{up}");
        assert_eq!(srv.state.store.count_envelopes(&owner_id).await.unwrap(), 1);
    }

    // A revoked device (bob's phone was stolen) is refused outright.
    let r = http
        .post(format!("{url}/v1/devices/{}/revoke", hex::encode(bob.id)))
        .bearer_auth(common::ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, body) = post(&http, &url, &bob.request(&[])).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("device_revoked"))
    );
    srv.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Gateway → gait factor over HTTP; the factor goes away: answers degrade, the
/// breaker opens (calls stop waiting for the timeout), and recover when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn remote_factor_down_degrades_and_recovers() {
    let pop = gait_population_of(40);
    let model_bytes = calibrated_gait_model(&pop, 5);
    let backing = Backing::Embedded;
    let dir = temp_dir("auth-remote");
    let mut fs = settings(&backing, &dir.join("factor"));
    let model_file = dir.join("gait.tcm");
    std::fs::write(&model_file, &model_bytes).unwrap();
    fs.factor.model_url = Some(format!("file://{}", model_file.display()));
    let factor = server::spawn_factor(fs.clone(), tacit_models::FactorKind::Gait)
        .await
        .unwrap();
    let factor_addr = factor.addr;

    let mut s = settings(&backing, &dir.join("gw"));
    s.auth.factors = vec![RemoteFactorSettings {
        name: "gait".into(),
        url: factor.url(),
        records: None,
        weight: 1.0,
    }];
    s.auth.fusion.target_far = TARGET_FAR;
    s.auth.timeout_ms = 500;
    s.auth.breaker_failures = 2;
    s.auth.breaker_cooldown_ms = 1_000;
    let pair = KeyRing::generate(&s.keys_dir()).unwrap();
    let keys = KeyRing::load(&s.keys_dir()).unwrap();
    let store = server::open_store(&s).await.unwrap();
    let srv = server::spawn(s, keys, store).await.unwrap();
    let url = srv.url();
    let http = reqwest::Client::new();
    let mut phone = Phone::register(&http, &url, "carol", *pair.public_key()).await;
    let vectors: Vec<Vec<f32>> = pop.people[9]
        .samples
        .iter()
        .map(|s| s.vector.clone())
        .collect();
    let env = phone.envelope(&vectors[..45]);
    let up = http
        .post(format!("{url}/v1/uploads"))
        .json(&json!({"envelopes": [b64_encode(&env)]}))
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 200);
    assert_eq!(
        enrol(&http, &url, "carol").await["factors"][0]["status"],
        "enrolled"
    );
    let env = phone.envelope(&vectors[45..]);
    let r = authenticate(&http, &url, &phone.request(&[env])).await;
    assert_eq!(
        (r.decision, r.degraded),
        (AuthDecision::Accept, false),
        "{r:?}"
    );
    // The factor service sent its impostor histogram over OIP: the rate is claimed
    // from data, not from the LLR bound.
    assert!(r.far_floor > 0.0 && r.estimated_far <= TARGET_FAR, "{r:?}");

    factor.shutdown().await.unwrap();
    // Down: still an answer, with the factor marked unavailable.
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let r = authenticate(&http, &url, &phone.request(&[])).await;
        assert!(r.degraded, "{r:?}");
        assert_eq!(r.decision, AuthDecision::StepUp);
        assert_eq!(factor_of(&r, "gait").status, FactorStatus::Unavailable);
        assert!(started.elapsed() < Duration::from_secs(3));
    }
    // The breaker is open now: refused without a call.
    let r = authenticate(&http, &url, &phone.request(&[])).await;
    assert!(
        factor_of(&r, "gait")
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("circuit open"),
        "{r:?}"
    );
    // Back on the same port: after the cooldown, answers are whole again.
    let mut fs2 = settings(&backing, &dir.join("factor2"));
    fs2.factor.model_url = fs.factor.model_url.clone();
    fs2.listen = factor_addr.to_string();
    let factor = server::spawn_factor(fs2, tacit_models::FactorKind::Gait)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let r = authenticate(&http, &url, &phone.request(&[])).await;
    assert_eq!(
        (r.decision, r.degraded),
        (AuthDecision::Accept, false),
        "{r:?}"
    );
    factor.shutdown().await.unwrap();
    srv.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
