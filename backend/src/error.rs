//! The one error type of the HTTP layer: a status, a stable code and a message,
//! rendered as `{"error": ..., "code": ...}`. Internal details are logged, not sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tacit_shared::api::ErrorBody;

/// An error with its whole cause chain, `outer: cause: root cause`, for logs and the
/// command line: "storage unavailable: connecting to PostgreSQL" alone hides whether
/// the port was refused, TLS failed or the password was wrong.
///
/// Hand-rolled rather than anyhow's `{:#}` because driver errors often repeat their
/// source's text in their own (sqlx: "error communicating with database: Connection
/// refused (os error 111)" over the io::Error "Connection refused (os error 111)"): a
/// cause whose text the previous message already ends with is left out.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            let text = e.to_string();
            if !text.is_empty() && !shown.ends_with(&text) {
                write!(f, ": {text}")?;
                shown = text;
            }
            cause = e.source();
        }
        Ok(())
    }
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable message (never includes biometric content).
    pub message: String,
    /// `Retry-After` seconds, for 429/503.
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// A 4xx/5xx with code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 503 with Retry-After: a dependency (database, object store) is down.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError {
            retry_after_s: Some(5),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
    }

    /// 500, with the detail logged instead of sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

/// Storage errors as answers: a missing or duplicate thing is the caller's (404, 409), a
/// store that is down is temporary (503 with `Retry-After`), anything else is ours (500,
/// with the cause chain logged, not sent).
impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            StoreError::AlreadyExists(what) => ApiError::new(
                StatusCode::CONFLICT,
                "already_exists",
                format!("{what} already exists"),
            ),
            StoreError::Invalid(m) => ApiError::bad_request("invalid", m),
            e @ StoreError::Unavailable { .. } => {
                tracing::warn!(error = %Chain(&e), "storage unavailable");
                ApiError::unavailable("storage temporarily unavailable")
            }
            other => ApiError::internal(Chain(&other)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            code: self.code.to_string(),
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(v) = self
            .retry_after_s
            .and_then(|s| HeaderValue::from_str(&s.to_string()).ok())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// Middleware (outermost): every error answer is `{"error", "code"}` JSON. The
/// framework's own refusals — an undecodable path parameter, a method the route does
/// not have (405), the request timeout (408), a body over the limit (413) — come as
/// plain text or empty; they get the JSON body of their status here, keeping their
/// headers (`Allow`, `Retry-After`).
pub async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    // The framework's texts are short and say what was wrong ("Invalid URL: ...");
    // anything longer or unreadable is replaced by the status's reason.
    let text = axum::body::to_bytes(body, 1024)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "error",
    };
    let body = ErrorBody {
        error: text.trim().to_string(),
        code: code.to_string(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut out = (status, axum::Json(body)).into_response();
    for (name, value) in parts.headers.iter() {
        if !out.headers().contains_key(name) {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Chain;

    #[derive(Debug, thiserror::Error)]
    #[error("storage unavailable: connecting to PostgreSQL")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("error communicating with database: {0}")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn chain_shows_every_cause_once() {
        let e = Outer(Middle(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        )));
        assert_eq!(
            Chain(&e).to_string(),
            "storage unavailable: connecting to PostgreSQL: error communicating with \
             database: Connection refused (os error 111)"
        );
    }
}
