//! Administrator endpoints: users, enrolment tokens, per-user deletion. Guarded by
//! the bearer token from the settings (compared in constant time).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use ring::digest;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use tacit_shared::api::b64_encode;

use super::{constant_time_eq, json_error};
use crate::error::ApiError;
use crate::state::{AppState, now_ms};
use crate::store::StoreError;

/// `POST /v1/users` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// The app's identifier for the person: 1..=128 characters of `[A-Za-z0-9_.@-]`,
    /// starting with a letter or digit.
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")]
    pub user_id: String,
    /// Whether the user's uploaded features may train population models (default
    /// `false`; change it later with `PUT /v1/users/{id}/training-consent`).
    #[serde(default)]
    pub training_consent: bool,
}

/// A user.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserResponse {
    /// The user id.
    pub user_id: String,
    /// Whether the user's uploaded features may train population models.
    pub training_consent: bool,
}

/// `PUT /v1/users/{id}/training-consent` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingConsentRequest {
    /// Whether the user's uploaded features may train population models. Withdrawing
    /// consent keeps the user out of every training set built afterwards; models
    /// already trained are not retrained by it (SECURITY.md).
    pub training_consent: bool,
}

/// A one-time enrolment token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EnrolmentTokenResponse {
    /// The token, to hand to the user's app once. Only its hash is stored.
    pub token: String,
    /// When it stops working (Unix ms).
    pub expires_at_ms: u64,
}

/// What a deletion removed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletionResponse {
    /// The user id.
    pub user_id: String,
    /// Devices removed.
    pub devices: u64,
    /// Envelope records removed.
    pub envelopes: u64,
    /// Feature objects removed.
    pub objects: u64,
    /// Enrolment tokens removed.
    pub tokens: u64,
    /// Recorded decisions removed.
    pub decisions: u64,
}

/// A revoked device.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RevokeResponse {
    /// The device id (hex).
    pub device_id: String,
    /// Always `true`.
    pub revoked: bool,
}

pub(crate) fn authorize(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = st
        .settings
        .admin_token
        .as_ref()
        .map(secrecy::ExposeSecret::expose_secret)
        .filter(|t| !t.is_empty())
    else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "no admin token configured",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        audit_refusal(st, "admin", headers);
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong admin bearer token",
        ));
    }
    Ok(())
}

/// The audit trail of a refused privileged request (`tacit::audit`, warn): which role
/// was tried, whether a token was presented at all, the client as the request names it
/// (`X-Forwarded-For`) and the request id — never the token itself.
pub(crate) fn audit_refusal(st: &AppState, role: &'static str, headers: &HeaderMap) {
    st.metrics
        .count("tacit_auth_refused_total", &[("role", role.to_string())], 1);
    let presented = headers.contains_key(header::AUTHORIZATION);
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(128).collect::<String>())
        .unwrap_or_default();
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::warn!(
        target: "tacit::audit",
        role,
        presented,
        forwarded_for = %forwarded,
        request_id,
        "privileged request refused: missing or wrong bearer token"
    );
}

/// Validates a user id from the network: the store's rule
/// ([`crate::store::validate_user_id`]), which the OpenAPI pattern states too.
pub fn valid_user_id(id: &str) -> Result<(), ApiError> {
    crate::store::validate_user_id(id).map_err(|e| match e {
        StoreError::Invalid(m) => ApiError::bad_request("invalid_user_id", m),
        other => ApiError::internal(other),
    })
}

/// Hash under which an enrolment token is stored and looked up.
pub fn token_hash(token: &str) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, token.as_bytes());
    let mut h = [0u8; 32];
    h.copy_from_slice(d.as_ref());
    h
}

/// Creates a user.
#[utoipa::path(post, path = "/v1/users", request_body = CreateUserRequest,
    security(("admin" = [])),
    responses((status = 201, body = UserResponse), (status = 400, body = tacit_shared::api::ErrorBody),
        (status = 401, body = tacit_shared::api::ErrorBody), (status = 409, body = tacit_shared::api::ErrorBody),
        (status = 415, body = tacit_shared::api::ErrorBody)))]
pub async fn create_user(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CreateUserRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<UserResponse>), ApiError> {
    authorize(&st, &headers)?;
    let Json(req) = body.map_err(json_error)?;
    valid_user_id(&req.user_id)?;
    st.store.create_user(&req.user_id).await?;
    // A failure between the two writes leaves consent off, the safe side.
    if req.training_consent {
        st.store.set_training_consent(&req.user_id, true).await?;
    }
    tracing::info!(user = %req.user_id, training_consent = req.training_consent, "user created");
    Ok((
        StatusCode::CREATED,
        Json(UserResponse {
            user_id: req.user_id,
            training_consent: req.training_consent,
        }),
    ))
}

/// Reads whether a user's uploaded features may train population models.
#[utoipa::path(get, path = "/v1/users/{id}/training-consent", params(("id" = String, Path, description = "user id", pattern = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")),
    security(("admin" = [])),
    responses((status = 200, body = UserResponse), (status = 400, body = tacit_shared::api::ErrorBody),
        (status = 401, body = tacit_shared::api::ErrorBody), (status = 404, body = tacit_shared::api::ErrorBody)))]
pub async fn get_training_consent(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<UserResponse>, ApiError> {
    authorize(&st, &headers)?;
    valid_user_id(&id)?;
    let Some(training_consent) = st.store.training_consent(&id).await? else {
        return Err(ApiError::not_found(format!("no user {id}")));
    };
    Ok(Json(UserResponse {
        user_id: id,
        training_consent,
    }))
}

/// Records whether a user's uploaded features may train population models. Only
/// training sets built afterwards follow it.
#[utoipa::path(put, path = "/v1/users/{id}/training-consent", params(("id" = String, Path, description = "user id", pattern = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")),
    request_body = TrainingConsentRequest,
    security(("admin" = [])),
    responses((status = 200, body = UserResponse), (status = 400, body = tacit_shared::api::ErrorBody),
        (status = 401, body = tacit_shared::api::ErrorBody), (status = 404, body = tacit_shared::api::ErrorBody),
        (status = 415, body = tacit_shared::api::ErrorBody)))]
pub async fn put_training_consent(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<TrainingConsentRequest>, JsonRejection>,
) -> Result<Json<UserResponse>, ApiError> {
    authorize(&st, &headers)?;
    valid_user_id(&id)?;
    let Json(req) = body.map_err(json_error)?;
    if !st
        .store
        .set_training_consent(&id, req.training_consent)
        .await?
    {
        return Err(ApiError::not_found(format!("no user {id}")));
    }
    tracing::info!(target: "tacit::audit", user = %id, training_consent = req.training_consent, "training consent recorded");
    Ok(Json(UserResponse {
        user_id: id,
        training_consent: req.training_consent,
    }))
}

/// Creates a one-time enrolment token for a user.
#[utoipa::path(post, path = "/v1/users/{id}/enrolment-tokens", params(("id" = String, Path, description = "user id", pattern = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")),
    security(("admin" = [])),
    responses((status = 201, body = EnrolmentTokenResponse), (status = 400, body = tacit_shared::api::ErrorBody), (status = 401, body = tacit_shared::api::ErrorBody),
        (status = 404, body = tacit_shared::api::ErrorBody)))]
pub async fn create_enrolment_token(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<EnrolmentTokenResponse>), ApiError> {
    authorize(&st, &headers)?;
    valid_user_id(&id)?;
    if !st.store.user_exists(&id).await? {
        return Err(ApiError::not_found(format!("no user {id}")));
    }
    let mut raw = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| ApiError::internal("rng failure"))?;
    let token = b64_encode(&raw)
        .replace('+', "-")
        .replace('/', "_")
        .trim_end_matches('=')
        .to_string();
    let expires_at_ms = now_ms() + st.settings.enrolment_token_ttl_s * 1000;
    st.store
        .create_enrolment_token(&id, token_hash(&token), expires_at_ms)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(EnrolmentTokenResponse {
            token,
            expires_at_ms,
        }),
    ))
}

/// Deletes a user and everything stored about them: devices, envelopes, feature
/// objects, tokens, templates.
#[utoipa::path(delete, path = "/v1/users/{id}", params(("id" = String, Path, description = "user id", pattern = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")),
    security(("admin" = [])),
    responses((status = 200, body = DeletionResponse), (status = 400, body = tacit_shared::api::ErrorBody), (status = 401, body = tacit_shared::api::ErrorBody),
        (status = 404, body = tacit_shared::api::ErrorBody)))]
pub async fn delete_user(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<DeletionResponse>, ApiError> {
    authorize(&st, &headers)?;
    valid_user_id(&id)?;
    if !st.store.user_exists(&id).await? {
        return Err(ApiError::not_found(format!("no user {id}")));
    }
    let r = st.store.delete_user(&id).await?;
    tracing::info!(user = %id, devices = r.devices, envelopes = r.envelopes, objects = r.objects, "user deleted");
    Ok(Json(DeletionResponse {
        user_id: id,
        devices: r.devices,
        envelopes: r.envelopes,
        objects: r.objects,
        tokens: r.tokens,
        decisions: r.decisions,
    }))
}

/// Revokes a device (a lost or stolen phone, a leaked device key): from then on its
/// uploads are rejected (`device_revoked`) and its authentication requests refused
/// with 403. What it uploaded before stays; the user can register a new device.
#[utoipa::path(post, path = "/v1/devices/{id}/revoke", params(("id" = String, Path, description = "device id, 32 hex digits", pattern = r"^[0-9a-f]{32}$")),
    security(("admin" = [])),
    responses((status = 200, body = RevokeResponse), (status = 400, body = tacit_shared::api::ErrorBody),
        (status = 401, body = tacit_shared::api::ErrorBody), (status = 404, body = tacit_shared::api::ErrorBody)))]
pub async fn revoke_device(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<RevokeResponse>, ApiError> {
    authorize(&st, &headers)?;
    let device_id: [u8; 16] = hex::decode(&id)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            ApiError::bad_request("invalid_device_id", "device id: expected 32 hex digits")
        })?;
    if !st.store.revoke_device(device_id).await? {
        return Err(ApiError::not_found("no such device".to_string()));
    }
    tracing::info!(device = %id, "device revoked");
    Ok(Json(RevokeResponse {
        device_id: hex::encode(device_id),
        revoked: true,
    }))
}
