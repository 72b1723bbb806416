//! Why an upload failed.

use std::time::Duration;

use tacit_shared::api::ErrorBody;

/// Why an upload failed. After [`UploadError::is_retryable`] errors the envelopes are
/// still in the outbox and a later drain sends them again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    /// The base URL does not parse or is not `http(s)`.
    #[error("invalid base URL {url:?}: {reason}")]
    InvalidBaseUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The [`UploadPolicy`](super::UploadPolicy) is unusable.
    #[error("invalid upload policy: {0}")]
    InvalidPolicy(String),
    /// The HTTP client could not be built (TLS initialisation).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// A batch must hold `1..=max` envelopes.
    #[error("a batch must hold 1..={max} envelopes, got {len}")]
    InvalidBatch {
        /// Envelopes given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No answer: connection refused or dropped, DNS or TLS failure, or the answer's
    /// body broke off. Retried.
    #[error("network error: {0}")]
    Transport(String),
    /// No complete answer within the request timeout. Retried.
    #[error("request timed out")]
    Timeout,
    /// The server failed (5xx other than 503). Retried.
    #[error("server error: HTTP {status}")]
    Server {
        /// HTTP status.
        status: u16,
    },
    /// The server asked to come back later (429 or 503). Retried after `retry_after`.
    #[error("throttled: HTTP {status}")]
    Throttled {
        /// HTTP status.
        status: u16,
        /// The server's `Retry-After`, if it gave a valid one (uncapped).
        retry_after: Option<Duration>,
    },
    /// The server refused the request (4xx other than 429, or an unexpected status).
    /// Not retried: sending the same request again will not help.
    #[error("refused: HTTP {status}: {} ({})", body.error, body.code)]
    Refused {
        /// HTTP status.
        status: u16,
        /// The server's error body; a non-JSON body becomes `error` (truncated) with
        /// an empty `code`.
        body: ErrorBody,
    },
    /// The answer's body exceeds the uploader's limit.
    #[error("response body exceeds {limit} bytes")]
    ResponseTooLarge {
        /// The limit.
        limit: usize,
    },
    /// A success answer that is not a valid answer to this request (not JSON, wrong
    /// number of results, out of order, or for other envelopes). Not retried within
    /// the batch; nothing is acknowledged.
    #[error("malformed response: {0}")]
    MalformedResponse(String),
}

impl UploadError {
    /// Whether the uploader retries after this error (within a batch's attempts).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            UploadError::Transport(_)
                | UploadError::Timeout
                | UploadError::Server { .. }
                | UploadError::Throttled { .. }
        )
    }
}
