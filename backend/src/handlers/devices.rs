//! Device enrolment: `POST /v1/devices` binds a device key to the user of a one-time
//! enrolment token.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use tacit_shared::api::{RegisterDeviceRequest, RegisterDeviceResponse};

use super::admin::token_hash;
use super::json_error;
use crate::error::ApiError;
use crate::state::{AppState, now_ms};
use crate::store::DeviceRow;

/// Registers a device.
#[utoipa::path(post, path = "/v1/devices", request_body = RegisterDeviceRequest,
    responses((status = 201, body = RegisterDeviceResponse), (status = 400, body = tacit_shared::api::ErrorBody),
        (status = 403, body = tacit_shared::api::ErrorBody), (status = 409, body = tacit_shared::api::ErrorBody),
        (status = 413, body = tacit_shared::api::ErrorBody), (status = 415, body = tacit_shared::api::ErrorBody), (status = 503, body = tacit_shared::api::ErrorBody)))]
pub async fn register_device(
    State(st): State<AppState>,
    body: Result<Json<RegisterDeviceRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<RegisterDeviceResponse>), ApiError> {
    let Json(req) = body.map_err(json_error)?;
    if req.enrolment_token.is_empty() || req.enrolment_token.len() > 256 {
        return Err(ApiError::bad_request(
            "invalid_token",
            "enrolment token must be 1..=256 bytes",
        ));
    }
    let key = req
        .public_key
        .to_key()
        .map_err(|e| ApiError::bad_request("invalid_public_key", e.to_string()))?;
    let device_id = key.device_id();
    // Single use: the token is consumed (atomically) before the device is bound; a
    // failure afterwards needs a new token, never a reused one.
    let user_id = st
        .store
        .consume_enrolment_token(token_hash(&req.enrolment_token), now_ms())
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid_token",
                "unknown, used or expired enrolment token",
            )
        })?;
    let row = DeviceRow {
        device_id: device_id.0,
        user_id: user_id.clone(),
        algorithm: key.algorithm().tag(),
        public_key: key.as_bytes().to_vec(),
        created_at_ms: now_ms(),
        revoked: false,
    };
    match st.store.register_device(row).await {
        Ok(()) => {}
        // A revoked key stays revoked: registering it again (with a new token) must not
        // look like success to a phone whose every upload will then be refused.
        Err(crate::store::StoreError::AlreadyExists(_))
            if st
                .store
                .get_device(device_id.0)
                .await?
                .is_some_and(|d| d.revoked) =>
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "device_revoked",
                "this device key was revoked: generate a new key and register that",
            ));
        }
        // The same key registered for the same user before (a retry whose first answer
        // was lost): success again, so that the phone can finish its registration.
        Err(crate::store::StoreError::AlreadyExists(_))
            if st
                .store
                .get_device(device_id.0)
                .await?
                .is_some_and(|d| d.user_id == user_id && d.public_key == key.as_bytes()) =>
        {
            tracing::info!(device = %device_id, user = %user_id, "device registered again (retry)");
            return Ok((
                StatusCode::CREATED,
                Json(RegisterDeviceResponse {
                    device_id: device_id.to_hex(),
                    user_id,
                }),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    st.metrics.count("tacit_devices_registered_total", &[], 1);
    tracing::info!(device = %device_id, user = %user_id, "device registered");
    Ok((
        StatusCode::CREATED,
        Json(RegisterDeviceResponse {
            device_id: device_id.to_hex(),
            user_id,
        }),
    ))
}
