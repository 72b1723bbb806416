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
