//! Routes, middleware and the OpenAPI document (generated from the same handler
//! annotations, so it cannot drift from the routes).

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use crate::error::ApiError;
use crate::handlers::{
    admin, authenticate, devices, export, health, keys, templates, uploads, verdict,
};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Tacit gateway", description = "Device enrolment, encrypted ingest of behavioural features, and authentication."),
    paths(
        health::healthz,
        health::readyz,
        health::metrics,
        admin::create_user,
        admin::create_enrolment_token,
        admin::delete_user,
        admin::get_training_consent,
        admin::put_training_consent,
        admin::revoke_device,
        export::export_user,
        keys::key_list,
        devices::register_device,
        uploads::upload,
        authenticate::authenticate,
        templates::enrol,
        templates::unlock,
        verdict::jwks,
        verdict::decisions,
    ),
    modifiers(&AdminSecurity)
)]
struct ApiDoc;

struct AdminSecurity;

impl utoipa::Modify for AdminSecurity {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "relying_party",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The OpenAPI document served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// The gateway's router.
pub fn router(state: AppState) -> Router {
    let limits = state.settings.limits.clone();
    let metrics = state.metrics.clone();
    let routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi))
        .route("/v1/users", post(admin::create_user))
        .route("/v1/users/{id}", delete(admin::delete_user))
        .route(
            "/v1/users/{id}/training-consent",
            get(admin::get_training_consent).put(admin::put_training_consent),
        )
        .route("/v1/users/{id}/export", get(export::export_user))
        .route("/v1/users/{id}/decisions", get(verdict::decisions))
        .route("/.well-known/jwks.json", get(verdict::jwks))
        .route(
            "/v1/users/{id}/enrolment-tokens",
            post(admin::create_enrolment_token),
        )
        .route("/v1/keys", get(keys::key_list))
        .route("/v1/devices", post(devices::register_device))
        .route("/v1/devices/{id}/revoke", post(admin::revoke_device))
        .route("/v1/uploads", post(uploads::upload))
        .route("/v1/authenticate", post(authenticate::authenticate))
        .route("/v1/users/{id}/templates", post(templates::enrol))
        .route("/v1/users/{id}/unlock", post(templates::unlock))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(limits.request_timeout_ms),
        ))
        .layer(axum::middleware::map_response(crate::error::json_errors));
    crate::observe::observed(routes, metrics).with_state(state)
}
