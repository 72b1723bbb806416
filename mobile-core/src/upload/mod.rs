//! Uploading the outbox: `POST {base}/v1/uploads` with retries, and draining the
//! [`Outbox`](crate::queue::Outbox) batch by batch.
//!
//! # Delivery
//! At-least-once sending, exactly-once storing: the server acknowledges envelopes by
//! their random id (`stored` the first time, `duplicate` after), so resending a batch
//! whose answer was lost is harmless, and the outbox deletes an envelope only after
//! an acknowledgement or a final rejection for it. Every failure leaves the envelopes
//! queued for the next [`Uploader::drain`].
//!
//! # Retries
//! Within one batch, [`Uploader::upload_batch`] retries network errors, timeouts,
//! 408 and 5xx answers up to [`UploadPolicy::max_attempts`] times, waiting a random
//! time in `[0, min(max_backoff, base_backoff * 2^(attempt-1))]` ("full jitter", so
//! that phones cut off together do not come back together). On 429 and 503 it waits
//! what `Retry-After` says (delta-seconds or HTTP-date), capped at
//! [`UploadPolicy::max_backoff`]. Other answers are final: a 4xx is
//! [`UploadError::Refused`], and a 2xx that does not answer the request is
//! [`UploadError::MalformedResponse`] (nothing is acknowledged from it).
//!
//! # Transport
//! `reqwest` over HTTP/1.1 with rustls and *ring* (no OpenSSL, no aws-lc), so the
//! library cross-compiles to iOS and Android with nothing beyond what *ring* needs.
//! Server certificates are verified by the platform ([`tls`]: its trust store and
//! policies) or against the app's pinned roots; no CA list is bundled. Redirects are not followed: an upload endpoint that
//! redirects is misconfigured, and following would resend the envelopes elsewhere.

mod drain;
mod error;
mod policy;
pub(crate) mod response;
mod retry_after;
pub mod tls;

use std::time::SystemTime;

use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use ring::rand::{SecureRandom, SystemRandom};
use tacit_shared::Envelope;
use tacit_shared::api::{MAX_UPLOAD_BATCH, UploadRequest, UploadResponse, b64_encode};

pub use drain::{DEVICE_REFUSALS, DrainReport};
pub use error::UploadError;
pub use policy::UploadPolicy;
pub(crate) use retry_after::parse_retry_after;

/// Uploads envelopes to one gateway. Cheap to share: `Send + Sync`, and the HTTP
/// client inside keeps connections alive between requests.
#[derive(Debug)]
pub struct Uploader {
    client: reqwest::Client,
    url: Url,
    policy: UploadPolicy,
    rng: SystemRandom,
    /// Learns the server's time from every answer (the client's stamping clock).
    clock: Option<std::sync::Arc<crate::client::clock::ServerClock>>,
}

/// The phone's HTTP client for `base_url`: rustls with ring, no redirects, `timeout`
/// per request. Certificates are verified by the platform (its trust store and
/// policies, see [`tls`]); with `roots_pem` (one or more PEM certificates) it trusts
/// those certificates alone instead: the app pins the backend's CA (or its self-signed
/// certificate), and a server presenting any other chain is refused.
///
/// For an `http://` backend (a development server, a relay on loopback) the client
/// gets no verifier and no roots at all: it never speaks TLS (redirects are off, and
/// every request goes to the backend's URL), and loading the platform's trust store
/// (on Linux, parsing every certificate of the system's store) was about 7% of a
/// simulated phone's CPU.
pub fn http_client(
    timeout: std::time::Duration,
    roots_pem: Option<&str>,
    base_url: &str,
) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tacit-mobile-core/", env!("CARGO_PKG_VERSION")));
    let plain_http = Url::parse(base_url).is_ok_and(|u| u.scheme() == "http");
    let builder = if plain_http && roots_pem.is_none() {
        // reqwest's own configuration without roots (which other crates' features
        // could otherwise bring in): any https URL would fail.
        builder.tls_built_in_root_certs(false)
    } else {
        builder.use_preconfigured_tls(tls::client_config(roots_pem)?)
    };
    builder.build().map_err(|e| error_chain(&e))
}

impl Uploader {
    /// An uploader for the gateway at `base_url` (`http` or `https`, with or without
    /// a trailing slash or path prefix, e.g. `https://tacit.example.com/api`).
    pub fn new(base_url: &str, policy: UploadPolicy) -> Result<Self, UploadError> {
        Self::with_roots(base_url, policy, None)
    }

    /// [`new`](Self::new), trusting only the certificates of `roots_pem` (see
    /// [`http_client`]).
    pub fn with_roots(
        base_url: &str,
        policy: UploadPolicy,
        roots_pem: Option<&str>,
    ) -> Result<Self, UploadError> {
        policy.validate()?;
        let url = uploads_url(base_url)?;
        let client = http_client(policy.request_timeout, roots_pem, url.as_str())
            .map_err(UploadError::Client)?;
        Ok(Uploader {
            client,
            url,
            policy,
            rng: SystemRandom::new(),
            clock: None,
        })
    }

    /// Lets every answer update `clock` (the client's).
    pub(crate) fn set_clock(&mut self, clock: std::sync::Arc<crate::client::clock::ServerClock>) {
        self.clock = Some(clock);
    }

    /// The policy in use.
    pub fn policy(&self) -> &UploadPolicy {
        &self.policy
    }

    /// The full upload URL (`{base}/v1/uploads`).
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// Sends one batch of encoded envelopes (`1..=MAX_UPLOAD_BATCH`) and returns the
    /// server's per-envelope results, retrying as the [module documentation](self)
    /// describes. The answer is checked against the request before it is returned.
    pub async fn upload_batch(&self, envelopes: &[Vec<u8>]) -> Result<UploadResponse, UploadError> {
        let mut retries = 0;
        self.upload_counting(envelopes, &mut retries).await
    }

    /// [`upload_batch`](Self::upload_batch), adding the retries it made to `retries`.
    async fn upload_counting(
        &self,
        envelopes: &[Vec<u8>],
        retries: &mut u64,
    ) -> Result<UploadResponse, UploadError> {
        if envelopes.is_empty() || envelopes.len() > MAX_UPLOAD_BATCH {
            return Err(UploadError::InvalidBatch {
                len: envelopes.len(),
                max: MAX_UPLOAD_BATCH,
            });
        }
        let request = UploadRequest {
            envelopes: envelopes.iter().map(|e| b64_encode(e)).collect(),
        };
        let body = serde_json::to_vec(&request)
            .map_err(|e| UploadError::Client(format!("encoding the request: {e}")))?;
        // The ids the answer must carry, position by position. An envelope that does
        // not decode (the server will reject it) has no id to compare.
        let sent_ids: Vec<Option<[u8; 16]>> = envelopes
            .iter()
            .map(|bytes| Envelope::decode(bytes).ok().map(|e| e.header.envelope_id))
            .collect();
        let mut attempt = 1;
        loop {
            let error = match self.attempt(&body, &sent_ids).await {
                Ok(response) => return Ok(response),
                Err(e) => e,
            };
            if !error.is_retryable() || attempt >= self.policy.max_attempts {
                return Err(error);
            }
            let wait = match &error {
                UploadError::Throttled {
                    retry_after: Some(after),
                    ..
                } => (*after).min(self.policy.max_backoff),
                _ => self.policy.jittered_backoff(attempt, self.random_u64()),
            };
            tokio::time::sleep(wait).await;
            *retries += 1;
            attempt += 1;
        }
    }

    /// One request, classified.
    async fn attempt(
        &self,
        body: &[u8],
        sent_ids: &[Option<[u8; 16]>],
    ) -> Result<UploadResponse, UploadError> {
        let response = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .await
            .map_err(transport_error)?;
        if let Some(clock) = &self.clock {
            clock.observe(response.headers());
        }
        let status = response.status();
        if status.is_success() {
            let bytes = response::read_bounded(response, response::MAX_RESPONSE_BYTES).await?;
            return response::parse_upload_response(&bytes, sent_ids);
        }
        match status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after::parse_retry_after(v, SystemTime::now()));
                Err(UploadError::Throttled {
                    status: status.as_u16(),
                    retry_after,
                })
            }
            // 408: the server (or a proxy) gave up waiting for our request; the same
            // request may simply be sent again.
            StatusCode::REQUEST_TIMEOUT => Err(UploadError::Timeout),
            s if s.is_server_error() => Err(UploadError::Server { status: s.as_u16() }),
            s => {
                let bytes = response::read_bounded(response, response::MAX_ERROR_BODY_BYTES)
                    .await
                    .unwrap_or_default();
                Err(UploadError::Refused {
                    status: s.as_u16(),
                    body: response::error_body(&bytes),
                })
            }
        }
    }

    fn random_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        match self.rng.fill(&mut b) {
            Ok(()) => u64::from_le_bytes(b),
            // Without randomness, wait half the ceiling rather than fail the upload.
            Err(_) => u64::MAX / 2,
        }
    }
}

/// `{base}/v1/uploads`, keeping any path prefix of the base.
fn uploads_url(base_url: &str) -> Result<Url, UploadError> {
    let invalid = |reason: String| UploadError::InvalidBaseUrl {
        url: base_url.to_string(),
        reason,
    };
    let url = Url::parse(&format!("{}/v1/uploads", base_url.trim_end_matches('/')))
        .map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!("scheme {:?} is not http(s)", url.scheme())));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a base URL has no query or fragment".into()));
    }
    Ok(url)
}

/// Network failures, with the causes reqwest keeps in its source chain (its own
/// message is only "error sending request").
fn transport_error(e: reqwest::Error) -> UploadError {
    if e.is_timeout() {
        UploadError::Timeout
    } else {
        UploadError::Transport(error_chain(&e))
    }
}

pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Milliseconds since the Unix epoch by the device clock (0 if it is before 1970).
fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_urls_keep_prefixes_and_refuse_other_schemes() {
        for (base, url) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1/uploads"),
            ("https://t.example/", "https://t.example/v1/uploads"),
            ("https://t.example/api/", "https://t.example/api/v1/uploads"),
        ] {
            assert_eq!(uploads_url(base).unwrap().as_str(), url);
        }
        for bad in ["ftp://t.example", "not a url", "https://t.example/?x=1", ""] {
            assert!(
                matches!(uploads_url(bad), Err(UploadError::InvalidBaseUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn uploader_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Uploader>();
    }

    #[test]
    fn drain_futures_can_move_between_threads() {
        fn check<T: Send>(_: &T) {}
        let dir = std::env::temp_dir().join(format!("tacit-upload-send-{}", std::process::id()));
        let outbox = crate::queue::Outbox::open(&dir, Default::default()).unwrap();
        let up = Uploader::new("http://127.0.0.1:9", UploadPolicy::default()).unwrap();
        check(&up.drain(&outbox));
        check(&up.upload_batch(&[]));
        drop(outbox);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn invalid_batches_are_refused_before_sending() {
        let up = Uploader::new("http://127.0.0.1:9", UploadPolicy::default()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let too_many = vec![vec![0u8; 4]; MAX_UPLOAD_BATCH + 1];
        for batch in [&[][..], &too_many[..]] {
            assert!(matches!(
                rt.block_on(up.upload_batch(batch)),
                Err(UploadError::InvalidBatch { .. })
            ));
        }
    }
}
