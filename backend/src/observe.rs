//! What every server does around each request, gateway and factor services alike: a
//! request id (`x-request-id`, taken from the caller or made, and sent back), a tracing
//! span carrying it with the method and route template, one access-log line per answer
//! (target `tacit::access`: status and latency, inside that span), and the request
//! metrics of [`crate::metrics::track_requests`]. Routes are logged and labelled by
//! template (`/v1/users/{id}`): user ids never reach logs or metrics from here.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::MatchedPath;
use axum::http::{HeaderName, Request, Response};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::metrics::{Metrics, track_requests};

/// The request id header.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest request id taken from a caller.
const MAX_REQUEST_ID: usize = 64;

/// Drops a caller's `x-request-id` that is not 1..=64 characters of `[A-Za-z0-9._-]`,
/// so that a new one is made: the id goes into every log line and span, and a long or
/// odd one could flood the logs or fake fields in them.
async fn sanitize_request_id(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let ok = req.headers().get(REQUEST_ID).is_none_or(|v| {
        let b = v.as_bytes();
        !b.is_empty()
            && b.len() <= MAX_REQUEST_ID
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    });
    if !ok {
        req.headers_mut().remove(REQUEST_ID);
    }
    next.run(req).await
}

/// `router` with request ids, spans, the access log and request metrics.
pub fn observed<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    metrics: Arc<Metrics>,
) -> Router<S> {
    let header = HeaderName::from_static(REQUEST_ID);
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &Request<_>| {
            let id = req
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", MatchedPath::as_str);
            tracing::info_span!("request", request_id = %id, method = %req.method(), route = %route)
        })
        .on_request(())
        .on_response(|res: &Response<_>, latency: Duration, _: &Span| {
            tracing::info!(
                target: "tacit::access",
                status = res.status().as_u16(),
                latency_ms = latency.as_secs_f64() * 1000.0,
                "answered"
            );
        })
        .on_failure(());
    router
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            track_requests,
        ))
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(SetRequestIdLayer::new(header, MakeRequestUuid))
        .layer(axum::middleware::from_fn(sanitize_request_id))
}
