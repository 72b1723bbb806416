//! Administrator endpoints of authentication: building a user's templates from their
//! stored features (`POST /v1/users/{id}/templates`) and clearing the reject lock after
//! a successful step-up (`POST /v1/users/{id}/unlock`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::admin::{authorize, valid_user_id};
use crate::error::ApiError;
use crate::scoring::{EnrolOutcome, enrol_user};
use crate::state::AppState;
use crate::store::RejectCount;

/// Most factor names in one enrolment request.
const MAX_FACTOR_NAMES: usize = 32;

/// `POST /v1/users/{id}/templates` body (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// Only these factors (default: every configured factor).
    #[serde(default)]
    pub factors: Option<Vec<String>>,
}

/// Result of an enrolment.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EnrolResponse {
    /// The user.
    pub user_id: String,
    /// Per factor.
    pub factors: Vec<EnrolOutcome>,
}

/// A user's reject count after an unlock.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UnlockResponse {
    /// The user.
    pub user_id: String,
    /// Always 0 after an unlock.
    pub consecutive_rejects: u32,
}

/// Builds (or rebuilds) a user's templates from the features stored so far.
#[utoipa::path(post, path = "/v1/users/{id}/templates", params(("id" = String, Path, description = "user id", pattern = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")),
    request_body(content = Option<EnrolRequest>, description = "optional: which factors"),
    security(("admin" = [])),
    responses((status = 200, body = EnrolResponse), (status = 400, body = tacit_shared::api::ErrorBody),
        (status = 401, body = tacit_shared::api::ErrorBody), (status = 404, body = tacit_shared::api::ErrorBody),
        (status = 409, body = tacit_shared::api::ErrorBody), (status = 503, body = tacit_shared::api::ErrorBody)))]
pub async fn enrol(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<EnrolResponse>, ApiError> {
    authorize(&st, &headers)?;
    valid_user_id(&id)?;
    let req: EnrolRequest = if body.iter().all(u8::is_ascii_whitespace) {
        EnrolRequest::default()
    } else {
        // A JSON object only (serde would also take `[null]` for the struct).
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::bad_request(
                "invalid_body",
                "the body must be a JSON object",
            ));
        }
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?
    };
    if let Some(names) = &req.factors {
        if names.len() > MAX_FACTOR_NAMES {
            return Err(ApiError::bad_request(
                "invalid_body",
                "too many factor names",
            ));
        }
        if let Some(unknown) = names.iter().find(|n| st.factors.get(n).is_none()) {
            return Err(ApiError::bad_request(
                "unknown_factor",
                format!(
                    "no factor named {:?} is configured",
                    unknown.chars().take(64).collect::<String>()
                ),
            ));
        }
    }
    if st.factors.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_factors",
            "this gateway has no factors configured (serve --role all, or TACIT_FACTOR_URLS)",
        ));
    }
    if !st.store.user_exists(&id).await? {
        return Err(ApiError::not_found(format!("no user {id}")));
    }
    let factors = enrol_user(
        st.store.as_ref(),
        &st.factors,
        &st.settings.auth,
        &id,
        req.factors.as_deref(),
    )
    .await?;
    for f in &factors {
        tracing::info!(user = %id, factor = %f.factor, status = ?f.status, samples = f.samples, "enrolment");
    }
    Ok(Json(EnrolResponse {
        user_id: id,
        factors,
    }))
}

/// Clears a user's consecutive rejects (the app's own step-up check succeeded).
#[utoipa::path(post, path = "/v1/users/{id}/unlock", params(("id" = String, Path, description = "user id", pattern = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")),
    security(("admin" = [])),
    responses((status = 200, body = UnlockResponse), (status = 400, body = tacit_shared::api::ErrorBody), (status = 401, body = tacit_shared::api::ErrorBody),
        (status = 404, body = tacit_shared::api::ErrorBody)))]
pub async fn unlock(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<UnlockResponse>, ApiError> {
    authorize(&st, &headers)?;
    valid_user_id(&id)?;
    let n = st.store.count_reject(&id, RejectCount::Reset).await?;
    tracing::info!(user = %id, "reject lock cleared");
    Ok(Json(UnlockResponse {
        user_id: id,
        consecutive_rejects: n,
    }))
}
