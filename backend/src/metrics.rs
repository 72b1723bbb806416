//! Metrics through the `metrics` facade, rendered in the Prometheus text format by
//! `metrics-exporter-prometheus`, with process metrics from `metrics-process`.
//!
//! Each server (gateway or factor service) has its own recorder rather than the
//! process-global one: tests and the simulator run several servers in one process, and
//! each `/metrics` must count only its own traffic. Recording goes through
//! [`Metrics::with`], which makes the server's recorder the local one for the call.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Latency buckets in seconds: 1 ms to 10 s.
const BUCKETS_S: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Every metric the servers record, with its unit and help text (`# HELP` lines).
fn describe() {
    describe_counter!(
        "tacit_http_requests_total",
        Unit::Count,
        "HTTP requests answered, by route template, method and status"
    );
    describe_histogram!(
        "tacit_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by route template and method"
    );
    describe_gauge!(
        "tacit_http_requests_in_flight",
        Unit::Count,
        "HTTP requests being answered now, by route template (the autoscaling signal)"
    );
    describe_counter!(
        "tacit_envelopes_total",
        Unit::Count,
        "Envelopes ingested, by status (stored, duplicate, rejected) and rejection reason"
    );
    describe_counter!(
        "tacit_retention_unfinished_packs_total",
        Unit::Count,
        "Packs of group commits a crash interrupted, deleted by the retention sweep"
    );
    describe_counter!(
        "tacit_group_commits_total",
        Unit::Count,
        "Group commits of ingest: one pack object and one transaction each"
    );
    describe_counter!(
        "tacit_feature_records_total",
        Unit::Count,
        "Feature records in newly stored envelopes"
    );
    describe_counter!(
        "tacit_devices_registered_total",
        Unit::Count,
        "Devices registered"
    );
    describe_counter!(
        "tacit_devices_cloned_total",
        Unit::Count,
        "Devices revoked because a validly signed envelope reused a sequence number"
    );
    describe_counter!(
        "tacit_rate_limited_total",
        Unit::Count,
        "Requests refused by the per-device rate limit"
    );
    describe_counter!(
        "tacit_auth_refused_total",
        Unit::Count,
        "Privileged requests (admin, relying party) refused for a missing or wrong token"
    );
    describe_counter!(
        "tacit_unauthenticated_limited_total",
        Unit::Count,
        "Requests refused because their address spent its budget of work that failed verification"
    );
    describe_counter!(
        "tacit_authentications_total",
        Unit::Count,
        "Authentications answered, by decision and whether a factor could not answer"
    );
    describe_counter!(
        "tacit_retention_expired_total",
        Unit::Count,
        "Feature batches deleted by the retention sweep"
    );
    describe_counter!(
        "tacit_retention_decisions_expired_total",
        Unit::Count,
        "Recorded decisions deleted by the retention sweep"
    );
    describe_counter!(
        "tacit_factor_calls_total",
        Unit::Count,
        "Calls to factors, by factor, operation (enrol, score) and outcome (ok, unavailable, refused)"
    );
    describe_histogram!(
        "tacit_factor_call_duration_seconds",
        Unit::Seconds,
        "Time of a call to a factor, by factor and operation"
    );
    describe_gauge!(
        "tacit_factor_passes_running",
        Unit::Count,
        "Forward passes running now off the async workers, by factor (a factor service's own)"
    );
    describe_gauge!(
        "tacit_factor_passes_waiting",
        Unit::Count,
        "Forward passes waiting for a place to run, by factor: past factor.max_queued_passes \
         a factor service answers 503 passes_busy"
    );
    describe_gauge!(
        "tacit_factor_passes_limit",
        Unit::Count,
        "The most forward passes that run at once (factor.max_passes), by factor"
    );
    describe_gauge!(
        "tacit_factor_passes_queue_limit",
        Unit::Count,
        "The most forward passes that wait besides (factor.max_queued_passes), by factor"
    );
    describe_gauge!(
        "tacit_factor_breaker_open",
        Unit::Count,
        "1 while a factor's circuit breaker refuses calls, else 0"
    );
}

/// One server's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry with every metric described.
    pub fn new() -> Self {
        // The buckets are constant and non-empty, which is all the builder checks;
        // the fallback (summaries instead of histograms) is never taken.
        let builder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS_S)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let process = metrics_process::Collector::default();
        let m = Metrics {
            recorder,
            handle,
            process,
        };
        m.with(|| {
            describe();
            m.process.describe();
        });
        m
    }

    /// Runs `f` with this server's recorder as the local one: the `metrics` macros in
    /// `f` record here. `f` must not await (the local recorder is per thread).
    pub fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    /// Adds `n` to a counter with labels.
    pub fn count(&self, name: &'static str, labels: &[(&'static str, String)], n: u64) {
        let labels: Vec<metrics::Label> = labels
            .iter()
            .map(|(k, v)| metrics::Label::new(*k, v.clone()))
            .collect();
        self.with(|| counter!(name, labels).increment(n));
    }

    /// The text exposition format, process metrics refreshed.
    pub fn render(&self) -> String {
        self.with(|| self.process.collect());
        self.handle.run_upkeep();
        self.handle.render()
    }

    /// The value of a counter with exactly these labels, read back from the rendered
    /// text (tests and the simulator; 0 when absent).
    pub fn counter_value(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let text = self.render();
        let want: String = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect::<Vec<_>>()
            .join(",");
        let series = if want.is_empty() {
            name.to_owned()
        } else {
            format!("{name}{{{want}}}")
        };
        text.lines()
            .filter_map(|l| l.strip_prefix(series.as_str()))
            .filter_map(|rest| rest.strip_prefix(' '))
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    }
}

/// The `route` label of a route template: `/v1/users/{id}` → `/v1/users/:id`. Braces
/// are valid in Prometheus label values, but line-oriented parsers (prometheus-parse
/// 0.2 among them) end the label set at the first `}`; `:id` reads the same to people
/// and breaks none of them.
pub fn route_label(template: &str) -> String {
    template.replace('{', ":").replace('}', "")
}

/// Middleware of every server: per request, the in-flight gauge, the request counter
/// and the latency histogram, labelled with the route template (`/v1/users/:id`, never
/// the id itself), the method and the status.
pub async fn track_requests(
    State(metrics): State<Arc<Metrics>>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let route = matched.map_or_else(|| "unmatched".to_owned(), |p| route_label(p.as_str()));
    // Known methods only: HTTP allows any token as a method, and every new label value
    // is a new series kept for the life of the process.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "PATCH" | "HEAD" | "OPTIONS") => m,
        _ => "other",
    }
    .to_owned();
    let started = Instant::now();
    let in_flight = InFlight::start(metrics.clone(), route.clone());
    let response = next.run(req).await;
    drop(in_flight);
    let status = response.status().as_u16().to_string();
    metrics.with(|| {
        counter!("tacit_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
            .increment(1);
        histogram!("tacit_http_request_duration_seconds", "route" => route, "method" => method)
            .record(started.elapsed().as_secs_f64());
    });
    response
}

/// The in-flight gauge of one request, decremented however the request ends (also when
/// the client goes away and the handler is dropped).
struct InFlight {
    metrics: Arc<Metrics>,
    route: String,
}

impl InFlight {
    fn start(metrics: Arc<Metrics>, route: String) -> Self {
        metrics.with(|| {
            gauge!("tacit_http_requests_in_flight", "route" => route.clone()).increment(1.0)
        });
        InFlight { metrics, route }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let route = std::mem::take(&mut self.route);
        self.metrics
            .with(|| gauge!("tacit_http_requests_in_flight", "route" => route).decrement(1.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_help_and_process_metrics() {
        let m = Metrics::new();
        m.count("tacit_envelopes_total", &[("status", "stored".into())], 3);
        m.count("tacit_envelopes_total", &[("status", "stored".into())], 2);
        m.with(|| {
            histogram!("tacit_http_request_duration_seconds", "route" => "/x", "method" => "GET")
                .record(0.003)
        });
        let text = m.render();
        assert!(
            text.contains("tacit_envelopes_total{status=\"stored\"} 5"),
            "{text}"
        );
        assert!(text.contains("# HELP tacit_envelopes_total"), "{text}");
        assert!(
            text.contains(
                "tacit_http_request_duration_seconds_bucket{route=\"/x\",method=\"GET\",le=\"0.005\"} 1"
            ),
            "{text}"
        );
        assert_eq!(
            m.counter_value("tacit_envelopes_total", &[("status", "stored")]),
            5
        );
        // Two registries do not share counts.
        assert_eq!(
            Metrics::new().counter_value("tacit_envelopes_total", &[("status", "stored")]),
            0
        );
        #[cfg(target_os = "linux")]
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
    }
}
