//! Uploads against a real local HTTP server (axum) that implements `POST /v1/uploads`
//! per `tacit_shared::api` and misbehaves on a seeded schedule: it drops connections,
//! hangs past the client's timeout, answers 500, throttles with `Retry-After: 1`,
//! answers slowly, and sometimes stores a batch but then fails the answer (so the
//! client's retry finds duplicates). The envelopes are real: sealed, signed, and opened
//! by the server.
//!
//! Seed: `TACIT_UPLOAD_SEED` (default fixed).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use ring::rand::SystemRandom;
use tacit_mobile_core::protocol::api::{
    EnvelopeResult, EnvelopeStatus, ErrorBody, MAX_UPLOAD_BATCH, UploadRequest, UploadResponse,
    b64_decode, hex,
};
use tacit_mobile_core::protocol::envelope::SealParams;
use tacit_mobile_core::protocol::identity::Ed25519Signer;
use tacit_mobile_core::protocol::{
    DevicePublicKey, DeviceSigner, Envelope, FactorKind, FeatureRecord, Payload, RecipientKeyPair,
    Suite,
};
use tacit_mobile_core::queue::{Outbox, OutboxConfig, QueuedEnvelope};
use tacit_mobile_core::upload::{DrainReport, UploadError, UploadPolicy, Uploader};

// ---------------------------------------------------------------------------------
// The test server
// ---------------------------------------------------------------------------------

/// What the server does with one request in flaky mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Behaviour {
    Normal,
    /// Closes the connection without answering.
    DropBeforeStore,
    /// Stores, then closes the connection without answering.
    StoreThenDrop,
    /// Stores, then starts a 200 answer whose body breaks off (the connection closes
    /// mid-answer).
    StoreThenAbortBody,
    Fail500,
    /// Stores, then answers 500.
    StoreThen500,
    Throttle429,
    Throttle503,
    /// Answers correctly after a delay shorter than the client's timeout.
    Slow,
    /// Answers (500, nothing stored) only after the client's timeout.
    Hang,
}

/// Cumulative per-mille thresholds of the flaky schedule (about 55 % failures).
const SCHEDULE: [(u64, Behaviour); 9] = [
    (100, Behaviour::DropBeforeStore),
    (180, Behaviour::StoreThenDrop),
    (260, Behaviour::StoreThenAbortBody),
    (340, Behaviour::Fail500),
    (420, Behaviour::StoreThen500),
    (470, Behaviour::Throttle429),
    (520, Behaviour::Throttle503),
    (570, Behaviour::Slow),
    (610, Behaviour::Hang),
];

const SLOW: Duration = Duration::from_millis(150);
const HANG: Duration = Duration::from_millis(1500);

/// Broken success answers.
#[derive(Debug, Clone, Copy)]
enum Malformation {
    NotJson,
    MissingResult,
    WrongIndex,
    OtherEnvelopeIds,
    /// 5 MiB with a `Content-Length`.
    HugeDeclared,
    /// 5 MiB streamed without a length.
    HugeStreamed,
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Flaky,
    /// 400 with an `ErrorBody` to everything.
    Refuse,
    Malformed(Malformation),
    /// The first request gets this status and `Retry-After` value, then all is well.
    ThrottleFirst(u16, &'static str),
    /// Every request is answered correctly after this delay.
    SlowAll(Duration),
    /// Every envelope is rejected as `device_revoked` (an administrator revoked it).
    Revoked,
}

struct Server {
    mode: Mode,
    recipient: Arc<RecipientKeyPair>,
    device: DevicePublicKey,
    rng: Mutex<u64>,
    /// Envelope id -> how many times it was stored (must end at exactly 1).
    stored: Mutex<HashMap<[u8; 16], u32>>,
    duplicates: AtomicU64,
    requests: AtomicU64,
    behaviours: Mutex<BTreeMap<Behaviour, u64>>,
    throttled_at: Mutex<Option<Instant>>,
    /// Time between a throttling answer and the next request.
    gaps_after_throttle: Mutex<Vec<Duration>>,
}

impl Server {
    fn next_behaviour(&self) -> Behaviour {
        let mut s = self.rng.lock().unwrap();
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        let roll = *s % 1000;
        SCHEDULE
            .iter()
            .find(|(limit, _)| roll < *limit)
            .map_or(Behaviour::Normal, |(_, b)| *b)
    }

    /// Opens every envelope; stores new ones, reports old ones as duplicates.
    fn store(&self, req: &UploadRequest) -> Vec<EnvelopeResult> {
        let mut stored = self.stored.lock().unwrap();
        req.envelopes
            .iter()
            .enumerate()
            .map(|(index, b64)| {
                let rejected = |envelope_id: Option<String>, reason: &str| EnvelopeResult {
                    index,
                    envelope_id,
                    status: EnvelopeStatus::Rejected,
                    reason: Some(reason.into()),
                };
                let Some(bytes) = b64_decode(b64) else {
                    return rejected(None, "bad_base64");
                };
                let opened = Envelope::open(&bytes, &self.device, |id| {
                    (*id == self.recipient.key_id()).then_some(&*self.recipient)
                });
                let header = match opened {
                    Ok(o) => o.header,
                    Err(e) => {
                        let id = Envelope::decode(&bytes)
                            .ok()
                            .map(|e| hex(&e.header.envelope_id));
                        return rejected(id, e.code());
                    }
                };
                let count = stored.entry(header.envelope_id).or_insert(0);
                let status = if *count == 0 {
                    *count = 1;
                    EnvelopeStatus::Stored
                } else {
                    self.duplicates.fetch_add(1, Ordering::Relaxed);
                    EnvelopeStatus::Duplicate
                };
                EnvelopeResult {
                    index,
                    envelope_id: Some(hex(&header.envelope_id)),
                    status,
                    reason: None,
                }
            })
            .collect()
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ErrorBody {
        error: message.into(),
        code: code.into(),
    };
    (status, Json(body)).into_response()
}

fn throttle(status: u16, retry_after: &str) -> Response {
    let mut r = error(
        StatusCode::from_u16(status).unwrap(),
        "throttled",
        "come back later",
    );
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_str(retry_after).unwrap(),
    );
    r
}

/// Aborts the connection task: hyper's connection future is dropped with the socket,
/// so the client sees the connection close without an answer. `resume_unwind` does
/// not run the panic hook, so nothing is printed.
fn drop_connection() -> ! {
    std::panic::resume_unwind(Box::new("simulated connection drop"))
}

fn answer(results: Vec<EnvelopeResult>) -> Response {
    Json(UploadResponse { results }).into_response()
}

async fn uploads(State(s): State<Arc<Server>>, body: Bytes) -> Response {
    let n = s.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(at) = s.throttled_at.lock().unwrap().take() {
        s.gaps_after_throttle.lock().unwrap().push(at.elapsed());
    }
    let Ok(req) = serde_json::from_slice::<UploadRequest>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "not an upload request",
        );
    };
    if req.envelopes.is_empty() || req.envelopes.len() > MAX_UPLOAD_BATCH {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_batch_size",
            "1..=256 envelopes",
        );
    }
    let behaviour = match s.mode {
        Mode::Refuse => {
            return error(
                StatusCode::BAD_REQUEST,
                "unknown_device",
                "device not registered",
            );
        }
        Mode::Malformed(m) => return malformed(m, &req),
        Mode::ThrottleFirst(status, retry_after) if n == 0 => {
            *s.throttled_at.lock().unwrap() = Some(Instant::now());
            return throttle(status, retry_after);
        }
        Mode::ThrottleFirst(..) => Behaviour::Normal,
        Mode::Revoked => {
            let results = (0..req.envelopes.len())
                .map(|index| EnvelopeResult {
                    index,
                    envelope_id: None,
                    status: EnvelopeStatus::Rejected,
                    reason: Some("device_revoked".into()),
                })
                .collect();
            return answer(results);
        }
        Mode::SlowAll(delay) => {
            tokio::time::sleep(delay).await;
            Behaviour::Normal
        }
        Mode::Flaky => s.next_behaviour(),
    };
    *s.behaviours.lock().unwrap().entry(behaviour).or_default() += 1;
    match behaviour {
        Behaviour::DropBeforeStore => drop_connection(),
        Behaviour::Fail500 => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "boom"),
        Behaviour::Throttle429 | Behaviour::Throttle503 => {
            *s.throttled_at.lock().unwrap() = Some(Instant::now());
            let status = if behaviour == Behaviour::Throttle429 {
                429
            } else {
                503
            };
            return throttle(status, "1");
        }
        Behaviour::Hang => {
            tokio::time::sleep(HANG).await;
            return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "too late");
        }
        Behaviour::Slow => tokio::time::sleep(SLOW).await,
        _ => {}
    }
    let results = s.store(&req);
    match behaviour {
        Behaviour::StoreThenDrop => drop_connection(),
        Behaviour::StoreThen500 => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "boom"),
        Behaviour::StoreThenAbortBody => {
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(br#"{"results":[{"index":0,"#)),
                Err(std::io::Error::other("simulated abort")),
            ];
            Response::new(Body::from_stream(futures_util::stream::iter(chunks)))
        }
        _ => answer(results),
    }
}

fn malformed(m: Malformation, req: &UploadRequest) -> Response {
    let n = req.envelopes.len();
    let stored = |index: usize, id: Option<String>| EnvelopeResult {
        index,
        envelope_id: id,
        status: EnvelopeStatus::Stored,
        reason: None,
    };
    const FIVE_MIB: usize = 5 * 1024 * 1024;
    match m {
        Malformation::NotJson => "<html>gateway says hi</html>".into_response(),
        Malformation::MissingResult => answer((0..n - 1).map(|i| stored(i, None)).collect()),
        Malformation::WrongIndex => answer((0..n).map(|i| stored(n - 1 - i, None)).collect()),
        Malformation::OtherEnvelopeIds => {
            answer((0..n).map(|i| stored(i, Some("ab".repeat(16)))).collect())
        }
        Malformation::HugeDeclared => " ".repeat(FIVE_MIB).into_response(),
        Malformation::HugeStreamed => {
            let chunks = (0..80).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 65536])));
            Response::new(Body::from_stream(futures_util::stream::iter(chunks)))
        }
    }
}

// ---------------------------------------------------------------------------------
// Fixture: keys, envelopes, outbox, server
// ---------------------------------------------------------------------------------

struct Fixture {
    recipient: Arc<RecipientKeyPair>,
    signer: Ed25519Signer,
    rng: SystemRandom,
    dir: std::path::PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Self {
        let rng = SystemRandom::new();
        let dir = std::env::temp_dir().join(format!("tacit-upload-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Fixture {
            recipient: Arc::new(RecipientKeyPair::generate(&rng).unwrap()),
            signer: Ed25519Signer::generate(&rng).unwrap().0,
            rng,
            dir,
        }
    }

    fn outbox(&self) -> Outbox {
        Outbox::open(&self.dir, OutboxConfig::default()).unwrap()
    }

    /// Seals `n` tiny valid envelopes into the outbox; returns their ids.
    fn fill(&self, outbox: &Outbox, n: usize) -> Vec<[u8; 16]> {
        (0..n)
            .map(|i| {
                let sequence = outbox.allocate_sequence().unwrap();
                let created_at_ms = 1_700_000_000_000 + i as u64 * 1000;
                let payload = Payload {
                    face_images: Vec::new(),
                    records: vec![FeatureRecord {
                        factor: FactorKind::KeystrokeFixed,
                        schema_version: 1,
                        window_start_ms: created_at_ms,
                        window_ms: 2_000,
                        context: Some([3; 16]),
                        values: vec![0.1, 0.25, 0.05, 0.11],
                    }],
                };
                let params = SealParams {
                    suite: Suite::X25519Sha256ChaCha20Poly1305,
                    sequence,
                    created_at_ms,
                };
                let (header, bytes) = Envelope::seal(
                    params,
                    &payload,
                    self.recipient.public_key(),
                    &self.signer,
                    &self.rng,
                )
                .unwrap();
                outbox
                    .push(&QueuedEnvelope {
                        envelope_id: header.envelope_id,
                        sequence,
                        created_at_ms,
                        bytes,
                    })
                    .unwrap();
                header.envelope_id
            })
            .collect()
    }

    async fn serve(&self, mode: Mode, seed: u64) -> (Arc<Server>, String) {
        let server = Arc::new(Server {
            mode,
            recipient: self.recipient.clone(),
            device: self.signer.public_key(),
            rng: Mutex::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            stored: Mutex::default(),
            duplicates: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            behaviours: Mutex::default(),
            throttled_at: Mutex::default(),
            gaps_after_throttle: Mutex::default(),
        });
        let app = Router::new()
            .route("/v1/uploads", post(uploads))
            .with_state(server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (server, base)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn quick_policy() -> UploadPolicy {
    UploadPolicy {
        batch_size: 16,
        max_attempts: 5,
        base_backoff: Duration::from_millis(20),
        // Large enough to honour `Retry-After: 1` in full.
        max_backoff: Duration::from_secs(1),
        request_timeout: Duration::from_millis(400),
    }
}

// ---------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------

/// A seed whose schedule shows every behaviour and makes some drains fail outright.
const DEFAULT_SEED: u64 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_server_stores_every_envelope_exactly_once() {
    const ENVELOPES: usize = 300;
    const MAX_DRAINS: usize = 30;
    let seed: u64 = std::env::var("TACIT_UPLOAD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let started = Instant::now();
    let fx = Fixture::new("flaky");
    let outbox = fx.outbox();
    let mut ids = fx.fill(&outbox, ENVELOPES / 2);
    // Two envelopes the server must reject for good, among the valid ones.
    for (i, junk) in [&b"not an envelope"[..], &[0u8; 300][..]]
        .iter()
        .enumerate()
    {
        outbox
            .push(&QueuedEnvelope {
                envelope_id: [0xee - i as u8; 16],
                sequence: outbox.allocate_sequence().unwrap(),
                created_at_ms: 1_700_000_000_000,
                bytes: junk.to_vec(),
            })
            .unwrap();
    }
    ids.extend(fx.fill(&outbox, ENVELOPES - ENVELOPES / 2));
    let filled = started.elapsed();

    let (server, base) = fx.serve(Mode::Flaky, seed).await;
    let uploader = Uploader::new(&base, quick_policy()).unwrap();
    let mut total = DrainReport::default();
    let mut drains = 0;
    let mut failed_drains = 0;
    while outbox.stats().unwrap().envelopes > 0 {
        assert!(
            drains < MAX_DRAINS,
            "outbox not empty after {MAX_DRAINS} drains"
        );
        drains += 1;
        let r = uploader.drain(&outbox).await;
        for (sum, part) in [
            (&mut total.batches, r.batches),
            (&mut total.sent, r.sent),
            (&mut total.stored, r.stored),
            (&mut total.duplicate, r.duplicate),
            (&mut total.rejected, r.rejected),
            (&mut total.failed, r.failed),
            (&mut total.retries, r.retries),
        ] {
            *sum += part;
        }
        if let Some(e) = r.error {
            failed_drains += 1;
            assert!(r.failed > 0, "{e}");
            // What a scheduler would do: wait before trying again.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    let stored = server.stored.lock().unwrap().clone();
    let server_ids: HashSet<[u8; 16]> = stored.keys().copied().collect();
    assert_eq!(server_ids, ids.iter().copied().collect::<HashSet<_>>());
    assert_eq!(stored.len(), ENVELOPES);
    assert!(stored.values().all(|&n| n == 1), "an envelope stored twice");
    let stats = outbox.stats().unwrap();
    assert_eq!((stats.envelopes, stats.bytes), (0, 0));
    assert_eq!(stats.acknowledged_total, ENVELOPES as u64);
    assert_eq!(stats.rejected_total, 2);
    assert!(stats.last_reject_reason.is_some());
    assert!(stats.last_upload_ms.is_some());
    assert_eq!(total.stored + total.duplicate, ENVELOPES as u64);
    assert_eq!(total.rejected, 2);
    let server_duplicates = server.duplicates.load(Ordering::Relaxed);
    assert!(total.duplicate > 0, "no duplicate was acknowledged");
    assert!(server_duplicates >= total.duplicate);
    assert!(total.retries > 0);
    let gaps = server.gaps_after_throttle.lock().unwrap().clone();
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(950)),
        "Retry-After: 1 not honoured: {gaps:?}"
    );
    let behaviours = server.behaviours.lock().unwrap().clone();
    if seed == DEFAULT_SEED {
        assert_eq!(behaviours.len(), SCHEDULE.len() + 1, "{behaviours:?}");
        assert!(failed_drains > 0);
    }
    println!(
        "upload flaky test: {ENVELOPES} envelopes + 2 junk, seed {seed:#x}: {} requests \
         {behaviours:?}; {drains} drains ({failed_drains} failed), {} batches, {} retries; \
         client saw {} stored, {} duplicate, {} rejected; server saw {server_duplicates} \
         duplicates; {} waits after throttling (min {:?}); {:.1} s ({:.1} s sealing+pushing)",
        server.requests.load(Ordering::Relaxed),
        total.batches,
        total.retries,
        total.stored,
        total.duplicate,
        total.rejected,
        gaps.len(),
        gaps.iter().min(),
        started.elapsed().as_secs_f64(),
        filled.as_secs_f64(),
    );
}

#[tokio::test]
async fn a_refusal_is_final_and_keeps_the_envelopes() {
    let fx = Fixture::new("refused");
    let outbox = fx.outbox();
    fx.fill(&outbox, 3);
    let (server, base) = fx.serve(Mode::Refuse, 1).await;
    let uploader = Uploader::new(&base, quick_policy()).unwrap();

    let batch: Vec<Vec<u8>> = outbox
        .peek_oldest(3)
        .unwrap()
        .into_iter()
        .map(|e| e.bytes)
        .collect();
    match uploader.upload_batch(&batch).await {
        Err(UploadError::Refused { status: 400, body }) => {
            assert_eq!(body.code, "unknown_device");
            assert_eq!(body.error, "device not registered");
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert_eq!(
        server.requests.load(Ordering::Relaxed),
        1,
        "a refusal was retried"
    );

    let report = uploader.drain(&outbox).await;
    assert_eq!(
        (report.batches, report.sent, report.failed, report.retries),
        (1, 3, 3, 0)
    );
    assert!(report.error.unwrap().contains("unknown_device"));
    let stats = outbox.stats().unwrap();
    assert_eq!(
        (
            stats.envelopes,
            stats.acknowledged_total,
            stats.last_upload_ms
        ),
        (3, 0, None)
    );
}

#[tokio::test]
async fn malformed_answers_acknowledge_nothing_and_are_not_retried() {
    let fx = Fixture::new("malformed");
    let outbox = fx.outbox();
    fx.fill(&outbox, 3);
    let batch: Vec<Vec<u8>> = outbox
        .peek_oldest(3)
        .unwrap()
        .into_iter()
        .map(|e| e.bytes)
        .collect();
    for m in [
        Malformation::NotJson,
        Malformation::MissingResult,
        Malformation::WrongIndex,
        Malformation::OtherEnvelopeIds,
        Malformation::HugeDeclared,
        Malformation::HugeStreamed,
    ] {
        let (server, base) = fx.serve(Mode::Malformed(m), 1).await;
        let uploader = Uploader::new(&base, quick_policy()).unwrap();
        let err = uploader.upload_batch(&batch).await.unwrap_err();
        match m {
            Malformation::HugeDeclared | Malformation::HugeStreamed => assert!(
                matches!(err, UploadError::ResponseTooLarge { limit: 4194304 }),
                "{m:?}: {err:?}"
            ),
            _ => assert!(
                matches!(err, UploadError::MalformedResponse(_)),
                "{m:?}: {err:?}"
            ),
        }
        assert_eq!(
            server.requests.load(Ordering::Relaxed),
            1,
            "{m:?} was retried"
        );
        let report = uploader.drain(&outbox).await;
        assert_eq!((report.failed, report.stored), (3, 0), "{m:?}");
        assert_eq!(outbox.stats().unwrap().envelopes, 3, "{m:?}");
    }
}

#[tokio::test]
async fn retry_after_is_honoured_in_both_forms_and_capped() {
    let fx = Fixture::new("retry-after");
    let outbox = fx.outbox();
    let patient = UploadPolicy {
        max_backoff: Duration::from_secs(5),
        ..quick_policy()
    };
    let impatient = UploadPolicy {
        max_backoff: Duration::from_millis(200),
        ..quick_policy()
    };
    for (status, retry_after, policy, at_least, below) in [
        (503, "1", patient, 950, 2500),
        (429, "DATE", patient, 950, 3500),
        (429, "30", impatient, 150, 950),
    ] {
        // An HTTP-date two seconds ahead (truncated to the second): 1 to 2 s away.
        let retry_after: &'static str = match retry_after {
            "DATE" => Box::leak(
                httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2))
                    .into_boxed_str(),
            ),
            other => other,
        };
        fx.fill(&outbox, 2);
        let (server, base) = fx.serve(Mode::ThrottleFirst(status, retry_after), 1).await;
        let uploader = Uploader::new(&base, policy).unwrap();
        let started = Instant::now();
        let report = uploader.drain(&outbox).await;
        let took = started.elapsed();
        assert!(report.is_complete(), "{report:?}");
        assert_eq!((report.stored, report.retries), (2, 1));
        assert_eq!(server.requests.load(Ordering::Relaxed), 2);
        assert!(
            took >= Duration::from_millis(at_least) && took < Duration::from_millis(below),
            "{status} Retry-After {retry_after:?}: waited {took:?}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_server_exhausts_the_attempts_and_keeps_the_envelopes() {
    let fx = Fixture::new("unreachable");
    let outbox = fx.outbox();
    fx.fill(&outbox, 2);
    // A port that was just free: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let uploader = Uploader::new(&format!("http://127.0.0.1:{port}"), quick_policy()).unwrap();
    let report = uploader.drain(&outbox).await;
    assert_eq!((report.failed, report.retries), (2, 4));
    assert!(report.error.unwrap().starts_with("network error"));
    assert_eq!(outbox.stats().unwrap().envelopes, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_within_a_budget_stops_in_time_and_loses_nothing() {
    let fx = Fixture::new("budget");
    let outbox = fx.outbox();
    let ids = fx.fill(&outbox, 40);
    // Each request takes 300 ms; batches of 16: the first batch is answered at 0.3 s,
    // the second is cut off by the 0.5 s budget.
    let (server, base) = fx.serve(Mode::SlowAll(Duration::from_millis(300)), 1).await;
    let policy = UploadPolicy {
        request_timeout: Duration::from_secs(5),
        ..quick_policy()
    };
    let uploader = Uploader::new(&base, policy).unwrap();
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    let report = uploader.drain_until(&outbox, Some(deadline)).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(650),
        "the budget was overrun: {took:?}"
    );
    assert!(report.out_of_time && report.is_complete(), "{report:?}");
    assert_eq!((report.batches, report.stored, report.failed), (2, 16, 16));
    assert_eq!(outbox.stats().unwrap().envelopes, 24);

    // A budget already spent sends nothing.
    let report = uploader
        .drain_until(&outbox, Some(tokio::time::Instant::now()))
        .await;
    assert!(report.out_of_time && report.batches == 0, "{report:?}");

    // The next drain delivers the rest; nothing is stored twice.
    let report = uploader.drain(&outbox).await;
    assert!(report.is_complete() && !report.out_of_time, "{report:?}");
    assert_eq!(outbox.stats().unwrap().envelopes, 0);
    let stored = server.stored.lock().unwrap();
    assert_eq!(stored.len(), ids.len());
    assert!(stored.values().all(|&n| n == 1));
}

#[tokio::test]
async fn a_device_refusal_stops_the_drain_and_keeps_the_rest() {
    let fx = Fixture::new("revoked");
    let outbox = fx.outbox();
    fx.fill(&outbox, 40);
    let (server, base) = fx.serve(Mode::Revoked, 1).await;
    let uploader = Uploader::new(&base, quick_policy()).unwrap();
    let report = uploader.drain(&outbox).await;
    // The first batch of 16 is refused for good; the drain stops there, so that the
    // 24 others wait (re-registration, or a refusal undone by the administrator).
    assert_eq!((report.batches, report.rejected), (1, 16), "{report:?}");
    assert_eq!(report.rejected_reasons.get("device_revoked"), Some(&16));
    assert_eq!(server.requests.load(Ordering::Relaxed), 1);
    assert_eq!(outbox.stats().unwrap().envelopes, 24);
}
