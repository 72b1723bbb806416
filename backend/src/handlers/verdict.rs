//! What the relying party (the app's own server) reads: the gateway's verdict keys
//! (`GET /.well-known/jwks.json`, public) and a user's latest decisions
//! (`GET /v1/users/{id}/decisions`, server to server, with the relying-party or the
//! admin bearer token).

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::admin::valid_user_id;
use super::constant_time_eq;
use crate::error::ApiError;
use crate::state::AppState;

/// How long relying parties may cache the JWKS, in seconds. Publish a new key at least
/// this long before it signs (`keys verdict-keygen --activate-in-hours`, 1 hour by
/// default; 0 makes it sign at once, for a first key or a compromised one), so that a
/// cached set holds the key in use.
pub const JWKS_MAX_AGE_S: u64 = 300;

/// Most decisions one read returns.
pub const MAX_DECISIONS_READ: u32 = 100;

/// The JSON Web Key Set of the verdict keys (RFC 7517), as the gateway serves it. This
/// type describes the document for OpenAPI; the answer is `jsonwebtoken`'s `JwkSet`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JwksDocument {
    /// Every live verdict key: the one signing now, ones published ahead of their
    /// start, and retired ones whose tokens may still be unexpired.
    pub keys: Vec<JwkDocument>,
}

/// One verdict key.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JwkDocument {
    /// Always `OKP`.
    #[schema(pattern = "^OKP$")]
    pub kty: String,
    /// Always `Ed25519`.
    #[schema(pattern = "^Ed25519$")]
    pub crv: String,
    /// The public key, base64url without padding (32 bytes).
    #[schema(pattern = "^[A-Za-z0-9_-]{43}$")]
    pub x: String,
    /// The key id a verdict's header names.
    pub kid: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    #[schema(pattern = "^sig$")]
    pub use_: String,
    /// Always `EdDSA`.
    #[schema(pattern = "^EdDSA$")]
    pub alg: String,
}

/// The public keys that verify verdicts. Public and cacheable for
/// [`JWKS_MAX_AGE_S`] seconds.
#[utoipa::path(get, path = "/.well-known/jwks.json", responses(
    (status = 200, description = "the verdict keys (JWKS)", body = JwksDocument)))]
pub async fn jwks(State(st): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CACHE_CONTROL,
            format!("public, max-age={JWKS_MAX_AGE_S}"),
        )],
        Json(st.verdict_keys.jwks()),
    )
}

/// Query of `GET /v1/users/{id}/decisions`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DecisionsQuery {
    /// How many of the newest decisions, 1..=100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// A user's latest decisions, newest first.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DecisionsResponse {
    /// The user.
    pub user_id: String,
    /// Newest first; at most `limit`, and only those still kept
    /// (`verdict.decisions_kept`, `verdict.decision_days`).
    pub decisions: Vec<DecisionRecord>,
}

/// One decision of `POST /v1/authenticate`. No biometric data.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DecisionRecord {
    /// When it was made (server clock, Unix ms).
    pub decided_at_ms: u64,
    /// The device that asked (hex).
    pub device_id: String,
    /// `accept`, `step_up` or `reject`.
    pub decision: tacit_shared::api::AuthDecision,
    /// The answer's confidence.
    pub confidence: f64,
    /// The fused log-likelihood ratio.
    pub llr: f64,
    /// Whether a factor holding a template could not answer.
    pub degraded: bool,
    /// The factors whose evidence counted.
    pub factors: Vec<String>,
    /// The relying party's nonce that the request carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The verdict's `jti`.
    pub token_id: String,
    /// The signed verdict as the device received it (it may have expired since).
    pub verdict: String,
}

/// The relying party's bearer token, or the admin's.
fn authorize_relying_party(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    use secrecy::ExposeSecret;
    let tokens: Vec<&str> = [
        st.settings.verdict.relying_party_token.as_ref(),
        st.settings.admin_token.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|t| t.expose_secret())
    .filter(|t| !t.is_empty())
    .collect();
    if tokens.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "relying_party_disabled",
            "no relying-party or admin token configured",
        ));
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Both compared, whichever matches: the time does not tell which one was tried.
    let matches = tokens.iter().fold(false, |ok, t| {
        constant_time_eq(given.as_bytes(), t.as_bytes()) | ok
    });
    if !matches {
        super::admin::audit_refusal(st, "relying_party", headers);
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong relying-party bearer token",
        ));
    }
    Ok(())
}

/// A user's latest decisions, for a relying party's server that asks rather than
/// verifying the verdict its app passed on (or does both).
#[utoipa::path(get, path = "/v1/users/{id}/decisions",
    params(("id" = String, Path, description = "user id", pattern = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$"), DecisionsQuery),
    security(("relying_party" = []), ("admin" = [])),
    responses((status = 200, body = DecisionsResponse), (status = 400, body = tacit_shared::api::ErrorBody),
        (status = 401, body = tacit_shared::api::ErrorBody), (status = 403, body = tacit_shared::api::ErrorBody),
        (status = 404, body = tacit_shared::api::ErrorBody), (status = 503, body = tacit_shared::api::ErrorBody)))]
pub async fn decisions(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<DecisionsQuery>, QueryRejection>,
) -> Result<Json<DecisionsResponse>, ApiError> {
    authorize_relying_party(&st, &headers)?;
    valid_user_id(&id)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=MAX_DECISIONS_READ).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be 1..={MAX_DECISIONS_READ}, got {limit}"),
        ));
    }
    if !st.store.user_exists(&id).await? {
        return Err(ApiError::not_found(format!("no user {id}")));
    }
    let decisions = records(st.store.decisions(&id, limit).await?)?;
    Ok(Json(DecisionsResponse {
        user_id: id,
        decisions,
    }))
}

/// Stored decisions as the API shows them.
pub(crate) fn records(
    rows: Vec<crate::store::DecisionRow>,
) -> Result<Vec<DecisionRecord>, ApiError> {
    rows.into_iter()
        .map(|d| {
            let decision = match d.decision.as_str() {
                "accept" => tacit_shared::api::AuthDecision::Accept,
                "reject" => tacit_shared::api::AuthDecision::Reject,
                "step_up" => tacit_shared::api::AuthDecision::StepUp,
                other => {
                    return Err(ApiError::internal(format!(
                        "stored decision {other:?} is not a decision"
                    )));
                }
            };
            Ok(DecisionRecord {
                decided_at_ms: d.decided_at_ms,
                device_id: hex::encode(d.device_id),
                decision,
                confidence: d.confidence,
                llr: d.llr,
                degraded: d.degraded,
                factors: d.factors,
                nonce: d.nonce,
                token_id: d.token_id,
                verdict: d.token,
            })
        })
        .collect()
}
