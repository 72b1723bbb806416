//! The HTTP edge: routes, bounded bodies, JSON parsing and JSON error answers
//! (`{"error": "...", "code": "..."}`) for every failure, including unknown routes,
//! wrong methods and oversized bodies.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use tacit_shared::api::{RegisterDeviceRequest, UploadRequest};

use crate::gateway::{ApiError, Gateway};

type Shared = Arc<Mutex<Gateway>>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.body())).into_response()
    }
}

/// The routes, with bodies limited to `max_body_bytes`.
pub fn router(gateway: Shared, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/devices", post(register))
        .route("/v1/uploads", post(upload))
        .route("/test/stats", get(stats))
        .fallback(|| async { ApiError::new(404, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                405,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(gateway)
}

fn lock(gateway: &Shared) -> Result<MutexGuard<'_, Gateway>, ApiError> {
    gateway
        .lock()
        .map_err(|_| ApiError::new(500, "internal", "server state poisoned"))
}

/// Reads and parses a JSON body, turning every failure into a JSON error answer.
fn parse<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(413, "body_too_large", e.body_text())
        } else {
            ApiError::new(e.status().as_u16(), "bad_request", e.body_text())
        }
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(400, "bad_request", format!("invalid JSON body: {e}")))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn register(
    State(gateway): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: RegisterDeviceRequest = parse(body)?;
    let answer = lock(&gateway)?.register(&req);
    match &answer {
        Ok(r) => eprintln!("[tacit-test-server] registered device {}", r.device_id),
        Err(e) => eprintln!("[tacit-test-server] registration refused: {}", e.code),
    }
    Ok((StatusCode::CREATED, Json(answer?)).into_response())
}

async fn upload(
    State(gateway): State<Shared>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: UploadRequest = parse(body)?;
    let answer = lock(&gateway)?.upload(&req, now_ms())?;
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for r in &answer.results {
        let key = match &r.reason {
            Some(reason) => format!("rejected:{reason}"),
            None => format!("{:?}", r.status).to_lowercase(),
        };
        *counts.entry(key).or_default() += 1;
    }
    eprintln!(
        "[tacit-test-server] upload of {}: {counts:?}",
        answer.results.len()
    );
    Ok(Json(answer).into_response())
}

async fn stats(State(gateway): State<Shared>) -> Result<Response, ApiError> {
    let stats = lock(&gateway)?.stats();
    Ok(Json(stats).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use ring::rand::SystemRandom;
    use tacit_shared::RecipientKeyPair;
    use tacit_shared::api::{self, ErrorBody};
    use tower::ServiceExt;

    fn app(limit: usize) -> Router {
        let key = RecipientKeyPair::generate(&SystemRandom::new()).unwrap();
        let gw = Gateway::new(key, ["tok".to_string()], "alice".into());
        router(Arc::new(Mutex::new(gw)), limit)
    }

    async fn call(app: &Router, method: &str, uri: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status().as_u16();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, bytes.to_vec())
    }

    fn code(body: &[u8]) -> String {
        serde_json::from_slice::<ErrorBody>(body).unwrap().code
    }

    #[tokio::test]
    async fn every_error_is_a_json_error_body() {
        let app = app(1024);
        let (s, b) = call(&app, "POST", "/v1/devices", b"not json".to_vec()).await;
        assert_eq!((s, code(&b)), (400, "bad_request".into()));
        let (s, b) = call(&app, "POST", "/v1/uploads", vec![b' '; 4096]).await;
        assert_eq!((s, code(&b)), (413, "body_too_large".into()));
        let (s, b) = call(&app, "GET", "/nope", vec![]).await;
        assert_eq!((s, code(&b)), (404, "not_found".into()));
        let (s, b) = call(&app, "GET", "/v1/uploads", vec![]).await;
        assert_eq!((s, code(&b)), (405, "method_not_allowed".into()));
        let (s, b) = call(&app, "POST", "/v1/uploads", br#"{"envelopes":[]}"#.to_vec()).await;
        assert_eq!((s, code(&b)), (400, "invalid_batch".into()));
    }

    #[tokio::test]
    async fn register_then_stats() {
        let app = app(1 << 20);
        let body = serde_json::json!({
            "enrolment_token": "tok",
            "public_key": {"algorithm": "ed25519", "key": api::b64_encode(&[9; 32])},
        });
        let (s, b) = call(&app, "POST", "/v1/devices", body.to_string().into_bytes()).await;
        assert_eq!(s, 201);
        let r: api::RegisterDeviceResponse = serde_json::from_slice(&b).unwrap();
        assert_eq!(r.user_id, "alice");
        let (s, b) = call(&app, "POST", "/v1/devices", body.to_string().into_bytes()).await;
        assert_eq!((s, code(&b)), (403, "invalid_enrolment_token".into()));
        let (s, b) = call(&app, "GET", "/test/stats", vec![]).await;
        assert_eq!(s, 200);
        let stats: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(
            stats,
            serde_json::json!({"devices": 1, "stored": 0, "duplicates": 0, "rejected": 0, "records": 0})
        );
    }
}
