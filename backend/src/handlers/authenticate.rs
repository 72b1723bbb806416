//! `POST /v1/authenticate`: "is this still the enrolled person?", asked by the device.
//!
//! Order of checks: shape and bounds → device known, not revoked → signature over the
//! request (device id, time, attached envelopes) → request time within the clock window
//! → request time later than the device's previous one (no replay, on any replica) →
//! attached envelopes ingested like an upload (a reused sequence number revokes the
//! device: 403 `device_cloned`) → evidence (the attached envelopes' windows
//! when there are any, else the newest stored ones), fusion, decision → the signed
//! verdict (`crate::verdict`: a JWS binding user, device, decision, scores, factors,
//! the relying party's nonce and a short expiry) → the decision recorded for the
//! relying party's read (`GET /v1/users/{id}/decisions`).

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::{Extension, Json};
use tacit_shared::api::{
    AuthenticateRequest, AuthenticateResponse, MAX_AUTH_ENVELOPES, MAX_NONCE_LEN, MIN_NONCE_LEN,
    authenticate_message_with_nonce, b64_decode, valid_nonce,
};

use super::uploads::{client_key, ingest, unauthenticated_limited};
use super::{DeviceRefusal, active_device, json_error};
use crate::error::ApiError;
use crate::ratelimit::PeerAddr;
use crate::scoring::{Evidence, assess, windows_of};
use crate::state::{AppState, now_ms};
use crate::store::DecisionRow;
use crate::verdict::{VerdictClaims, new_jti};

fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

/// Authenticates the person using a device.
#[utoipa::path(post, path = "/v1/authenticate", request_body = AuthenticateRequest,
    responses((status = 200, body = AuthenticateResponse), (status = 400, body = tacit_shared::api::ErrorBody),
        (status = 401, body = tacit_shared::api::ErrorBody), (status = 403, body = tacit_shared::api::ErrorBody),
        (status = 409, body = tacit_shared::api::ErrorBody), (status = 413, body = tacit_shared::api::ErrorBody), (status = 415, body = tacit_shared::api::ErrorBody),
        (status = 429, body = tacit_shared::api::ErrorBody), (status = 503, body = tacit_shared::api::ErrorBody)))]
pub async fn authenticate(
    State(st): State<AppState>,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Result<Json<AuthenticateRequest>, JsonRejection>,
) -> Result<Json<AuthenticateResponse>, ApiError> {
    // The user (and with them the device) deleted while the request ran: the store
    // says "not found" somewhere on the way; to the phone that is an unknown device.
    judge(st, peer, headers, body).await.map_err(|e| {
        if e.status == StatusCode::NOT_FOUND {
            unauthorized(DeviceRefusal::Unknown.code(), "unknown device")
        } else {
            e
        }
    })
}

async fn judge(
    st: AppState,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Result<Json<AuthenticateRequest>, JsonRejection>,
) -> Result<Json<AuthenticateResponse>, ApiError> {
    let Json(req) = body.map_err(json_error)?;
    if req.envelopes.len() > MAX_AUTH_ENVELOPES {
        return Err(ApiError::bad_request(
            "too_many_envelopes",
            format!(
                "at most {MAX_AUTH_ENVELOPES} envelopes per request, got {}",
                req.envelopes.len()
            ),
        ));
    }
    if let Some(n) = &req.nonce
        && !valid_nonce(n)
    {
        return Err(ApiError::bad_request(
            "invalid_nonce",
            format!(
                "nonce must be {MIN_NONCE_LEN}-{MAX_NONCE_LEN} characters of [A-Za-z0-9._~+/=-]"
            ),
        ));
    }
    let device_id: [u8; 16] = hex::decode(&req.device_id)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            ApiError::bad_request("invalid_device_id", "device id must be 32 hex characters")
        })?;
    let signature = b64_decode(&req.signature)
        .filter(|s| !s.is_empty() && s.len() <= 128)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_signature",
                "signature must be 1..=128 bytes of base64",
            )
        })?;
    let envelopes: Vec<Vec<u8>> = req
        .envelopes
        .iter()
        .map(|e| b64_decode(e))
        .collect::<Option<_>>()
        .ok_or_else(|| ApiError::bad_request("bad_base64", "an envelope is not valid base64"))?;

    // Requests that fail verification are charged to the client's address, never to
    // the device named in them (anyone can name it).
    let client = client_key(&st, peer, &headers);
    let started = std::time::Instant::now();
    if let Some(addr) = client
        && let Err(wait) = st.unauthenticated.check(addr, started)
    {
        return Err(unauthenticated_limited(&st, wait));
    }
    let charge = |e: ApiError| {
        if let Some(addr) = client {
            st.unauthenticated.charge(addr, 1.0, started);
        }
        e
    };
    let row = st.store.get_device(device_id).await?;
    let (device, key) = active_device(row.as_ref())
        .map_err(|r| match r {
            DeviceRefusal::Unknown => unauthorized(r.code(), "unknown device"),
            DeviceRefusal::Revoked => {
                ApiError::new(StatusCode::FORBIDDEN, r.code(), "device revoked")
            }
            DeviceRefusal::BrokenStoredKey => {
                ApiError::internal("stored device key does not parse")
            }
        })
        .map_err(charge)?;
    key.verify(
        &authenticate_message_with_nonce(
            &device_id,
            req.request_ms,
            &envelopes,
            req.nonce.as_deref(),
        ),
        &signature,
    )
    .map_err(|_| charge(unauthorized("bad_signature", "signature does not verify")))?;

    let now = now_ms();
    let window_ms = st.settings.auth.max_request_skew_s.saturating_mul(1000);
    if now.abs_diff(req.request_ms) > window_ms {
        return Err(unauthorized(
            "stale_request",
            format!(
                "request time is {} s away from the server clock (at most {} s): check the phone's clock",
                now.abs_diff(req.request_ms) / 1000,
                st.settings.auth.max_request_skew_s
            ),
        ));
    }
    if !st
        .store
        .advance_auth_clock(device_id, req.request_ms)
        .await?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "replayed_request",
            "request time not later than this device's previous request",
        ));
    }
    // A relying party's nonce answers one authentication: otherwise someone holding the
    // phone could retry one nonce until an accept and the relying party would never see
    // the refusals. (Recorded decisions are the memory; a nonce lives for a session.)
    if let Some(nonce) = req.nonce.as_deref()
        && st
            .store
            .decisions(&device.user_id, st.settings.verdict.decisions_kept)
            .await?
            .iter()
            .any(|d| d.nonce.as_deref() == Some(nonce))
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "nonce_used",
            "this nonce already has a verdict: ask the relying party for a new one",
        ));
    }
    let attached = !req.envelopes.is_empty();

    // Attached envelopes are ingested like an upload (stored: they are the replay
    // memory and the user's data), and their payloads, opened in memory, are what gets
    // judged.
    let (evidence, envelope_results) = if req.envelopes.is_empty() {
        (Evidence::Stored, Vec::new())
    } else {
        let ingested = ingest(&st, &req.envelopes, Some(device_id), client).await?;
        // A reused sequence number revoked the device (its key is on two phones).
        if ingested.cloned {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "device_cloned",
                "this device's key is in use on another phone: the device was revoked; register again",
            ));
        }
        // As for stored evidence: envelopes created longer than the fusion's maximum age
        // ago are not judged (a phone attaches its oldest waiting envelopes first).
        let max_age_ms = (st.settings.auth.fusion.max_age_s.max(0.0) * 1000.0) as u64;
        let windows = ingested
            .accepted
            .into_iter()
            .filter(|a| a.created_at_ms >= now.saturating_sub(max_age_ms))
            .flat_map(|a| windows_of(a.payload, a.envelope_id, a.received_at_ms))
            .collect();
        (Evidence::Attached(windows), ingested.results)
    };
    let mut answer = assess(
        st.store.as_ref(),
        &st.factors,
        &st.settings.auth,
        &device.user_id,
        now,
        evidence,
    )
    .await?;
    answer.envelopes = envelope_results;
    let decision = answer.decision.name();
    // The verdict for the relying party, and the decision kept for its read.
    let claims = VerdictClaims {
        iss: st.settings.verdict.issuer.clone(),
        sub: device.user_id.clone(),
        aud: st.settings.verdict.audience.clone(),
        device: hex::encode(device_id),
        decision: decision.to_owned(),
        confidence: finite(answer.confidence),
        estimated_far: finite(answer.estimated_far),
        llr: finite(answer.llr),
        degraded: answer.degraded,
        evidence: if attached { "attached" } else { "stored" }.to_owned(),
        evidence_age_s: answer
            .factors
            .iter()
            .filter(|f| f.weight > 0.0)
            .filter_map(|f| f.age_s)
            .filter(|a| a.is_finite())
            .reduce(f64::min)
            .map(|a| a.round().max(0.0) as u64),
        factors: answer
            .factors
            .iter()
            .filter(|f| f.weight > 0.0)
            .map(|f| f.factor.clone())
            .collect(),
        nonce: req.nonce.clone(),
        iat: now / 1000,
        exp: now / 1000 + st.settings.verdict.ttl_s,
        jti: new_jti().map_err(|e| ApiError::internal(e.to_string()))?,
    };
    answer.verdict = st
        .verdict_keys
        .sign(&claims)
        .ok_or_else(|| ApiError::internal("no verdict signing key"))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    st.store
        .record_decision(
            DecisionRow {
                token_id: claims.jti,
                user_id: device.user_id.clone(),
                device_id,
                decided_at_ms: now,
                decision: claims.decision,
                confidence: claims.confidence,
                llr: claims.llr,
                degraded: claims.degraded,
                factors: claims.factors,
                nonce: claims.nonce,
                token: answer.verdict.clone(),
            },
            st.settings.verdict.decisions_kept,
        )
        .await?;
    st.metrics.count(
        "tacit_authentications_total",
        &[
            ("decision", decision.to_owned()),
            ("degraded", answer.degraded.to_string()),
        ],
        1,
    );
    tracing::info!(user = %device.user_id, decision, degraded = answer.degraded, "authentication");
    Ok(Json(answer))
}

/// A number a JSON claim and a database column can hold: non-finite values (which the
/// fusion does not produce) become the nearest finite one, NaN becomes 0.
fn finite(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(f64::MIN, f64::MAX)
    }
}
