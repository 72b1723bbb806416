//! The network between the phones and the backend, with faults: an HTTP relay on
//! loopback that, per request and seeded, delays it, drops it before it reaches the
//! backend, drops the answer after the backend acted on it (the worst case for
//! idempotency), delivers it twice, or answers with a captive portal's HTML page
//! instead. Reordering follows from the delays of concurrent requests. The phones see
//! exactly what a bad mobile network shows them: broken connections and wrong answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tacit_backend::server::Serving;

use crate::SplitMix64;
use crate::rng::Draw;

/// Largest request relayed.
const MAX_BODY: usize = 64 << 20;

/// Fault rates (each a probability per request) and the delay bound.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Faults {
    /// The request never reaches the backend (connection broken).
    pub drop_request: f64,
    /// The backend handles the request, the answer is lost (connection broken).
    pub drop_response: f64,
    /// The request reaches the backend twice.
    pub duplicate: f64,
    /// A captive portal answers `200` with an HTML page.
    pub garbage: f64,
    /// Every request waits a uniform random delay up to this, in ms.
    pub max_delay_ms: u64,
}

impl Faults {
    /// A clean network.
    pub fn none() -> Self {
        Faults {
            drop_request: 0.0,
            drop_response: 0.0,
            duplicate: 0.0,
            garbage: 0.0,
            max_delay_ms: 0,
        }
    }

    /// A bad mobile network: a few percent of each fault, up to 100 ms of delay.
    pub fn bad() -> Self {
        Faults {
            drop_request: 0.05,
            drop_response: 0.05,
            duplicate: 0.05,
            garbage: 0.02,
            max_delay_ms: 100,
        }
    }

    /// Checks the rates.
    pub fn check(&self) -> anyhow::Result<()> {
        let p = [
            self.drop_request,
            self.drop_response,
            self.duplicate,
            self.garbage,
        ];
        if p.iter().any(|p| !(0.0..=1.0).contains(p)) || p.iter().sum::<f64>() > 1.0 {
            return Err(anyhow::anyhow!(
                "fault rates must be in 0..=1 and add up to at most 1"
            ));
        }
        Ok(())
    }
}

/// What the relay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FaultCounts {
    /// Requests received from the phones.
    pub requests: u64,
    /// Dropped before the backend.
    pub dropped_requests: u64,
    /// Answers dropped after the backend acted.
    pub dropped_responses: u64,
    /// Requests delivered twice.
    pub duplicated: u64,
    /// Captive-portal answers.
    pub garbage: u64,
}

impl FaultCounts {
    /// Adds another relay's (a cohort's) counts to these.
    pub fn add(&mut self, o: &FaultCounts) {
        self.requests = self.requests.saturating_add(o.requests);
        self.dropped_requests = self.dropped_requests.saturating_add(o.dropped_requests);
        self.dropped_responses = self.dropped_responses.saturating_add(o.dropped_responses);
        self.duplicated = self.duplicated.saturating_add(o.duplicated);
        self.garbage = self.garbage.saturating_add(o.garbage);
    }
}

#[derive(Default)]
struct Counters([AtomicU64; 5]);

struct Relay {
    upstream: String,
    faults: Faults,
    rng: std::sync::Mutex<SplitMix64>,
    http: reqwest::Client,
    counters: Counters,
}

/// A running relay.
pub struct FaultyNetwork {
    relay: Arc<Relay>,
    serving: Serving,
}

/// An answer whose body fails: the client sees a broken connection.
fn broken() -> Response {
    let stream = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("connection dropped by the network"))
    });
    Response::new(Body::from_stream(stream))
}

async fn forward(
    r: &Relay,
    method: &axum::http::Method,
    path: &str,
    headers: &axum::http::HeaderMap,
    body: &Bytes,
) -> anyhow::Result<(StatusCode, Option<HeaderValue>, Bytes)> {
    let mut req = r
        .http
        .request(method.clone(), format!("{}{path}", r.upstream))
        .body(body.clone());
    for name in [header::CONTENT_TYPE, header::AUTHORIZATION] {
        if let Some(v) = headers.get(&name) {
            req = req.header(name, v.clone());
        }
    }
    let resp = req.send().await?;
    let status = resp.status();
    let ct = resp.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = resp.bytes().await?;
    Ok((status, ct, bytes))
}

async fn relay(State(r): State<Arc<Relay>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let count = |i: usize| r.counters.0[i].fetch_add(1, Ordering::Relaxed);
    count(0);
    let (delay, fault) = {
        let mut g = r
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (g.uniform(), g.uniform())
    };
    let f = &r.faults;
    tokio::time::sleep(Duration::from_millis(
        (delay * f.max_delay_ms as f64) as u64,
    ))
    .await;
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    // One fault at most per request: consecutive slices of [0, 1).
    let mut edge = f.drop_request;
    if fault < edge {
        count(1);
        return broken();
    }
    edge += f.garbage;
    if fault < edge {
        count(4);
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body><h1>Welcome!</h1>Accept the terms to use this Wi-Fi.</body></html>",
        )
            .into_response();
    }
    let first = forward(&r, &parts.method, &path, &parts.headers, &body).await;
    let duplicate = fault < edge + f.duplicate;
    edge += f.duplicate;
    if duplicate {
        count(3);
        let _ = forward(&r, &parts.method, &path, &parts.headers, &body).await;
    } else if fault < edge + f.drop_response {
        count(2);
        return broken();
    }
    match first {
        Ok((status, ct, bytes)) => {
            let mut resp = (status, bytes).into_response();
            if let Some(ct) = ct {
                resp.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            resp
        }
        Err(_) => broken(),
    }
}

impl FaultyNetwork {
    /// Starts a relay on a loopback port in front of `upstream`.
    pub async fn start(upstream: &str, faults: Faults, seed: u64) -> anyhow::Result<Self> {
        faults.check()?;
        let relay = Arc::new(Relay {
            upstream: upstream.trim_end_matches('/').to_string(),
            faults,
            rng: std::sync::Mutex::new(SplitMix64::new(seed)),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()?,
            counters: Counters::default(),
        });
        let app = axum::Router::new()
            .fallback(relay_handler)
            .with_state(relay.clone());
        let serving = Serving::start("127.0.0.1:0", app, Default::default()).await?;
        Ok(FaultyNetwork { relay, serving })
    }

    /// The URL the phones use.
    pub fn url(&self) -> String {
        format!("http://{}", self.serving.addr)
    }

    /// What the relay did so far.
    pub fn counts(&self) -> FaultCounts {
        let c = |i: usize| self.relay.counters.0[i].load(Ordering::Relaxed);
        FaultCounts {
            requests: c(0),
            dropped_requests: c(1),
            dropped_responses: c(2),
            duplicated: c(3),
            garbage: c(4),
        }
    }

    /// Stops the relay.
    pub async fn stop(self) {
        let _ = self.serving.stop().await;
    }
}

async fn relay_handler(state: State<Arc<Relay>>, req: Request) -> Response {
    relay(state, req).await
}
