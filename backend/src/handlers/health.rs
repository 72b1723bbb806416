//! Liveness, readiness, metrics and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::error::ApiError;
use crate::state::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "alive")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database and the object store answer.
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "ready"),
    (status = 503, description = "a dependency is down", body = tacit_shared::api::ErrorBody)))]
pub async fn readyz(State(st): State<AppState>) -> Result<&'static str, ApiError> {
    if st.keys.is_empty() {
        return Err(ApiError::unavailable(
            "no HPKE key configured (run `tacit-backend keygen`)",
        ));
    }
    st.store
        .health()
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok("ready")
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "metrics", content_type = "text/plain")))]
pub async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    st.metrics.with(|| {
        for f in st.factors.iter() {
            let open = if f.client.breaker_open() { 1.0 } else { 0.0 };
            metrics::gauge!("tacit_factor_breaker_open", "factor" => f.name.clone()).set(open);
        }
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
}

/// The OpenAPI document of this server.
pub async fn openapi() -> impl IntoResponse {
    Json(crate::router::openapi())
}
