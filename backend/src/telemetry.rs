//! Logging and traces of the binary: `tracing` to stderr (text, or JSON with
//! `TACIT_LOG_FORMAT=json`, filtered by `TACIT_LOG`), and, when
//! `telemetry.otlp_endpoint` is set, the same spans exported over OTLP/HTTP (protobuf)
//! to an OpenTelemetry collector — the request spans of [`crate::observe`] carry the
//! request id, method and route template.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Why trace export could not start.
#[derive(Debug, thiserror::Error)]
#[error("OTLP exporter for {endpoint}: {source}")]
pub struct TelemetryError {
    endpoint: String,
    #[source]
    source: opentelemetry_otlp::ExporterBuildError,
}

/// The installed logging; flushes and stops the trace export when dropped.
#[must_use = "dropping it stops the trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("tacit-backend: flushing traces: {e}");
        }
    }
}

fn filter() -> EnvFilter {
    EnvFilter::try_from_env("TACIT_LOG").unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber. Call outside an async runtime: the OTLP exporter's
/// blocking HTTP client runs on the batch processor's own thread.
pub fn init(otlp_endpoint: Option<&str>, service: &str) -> Result<Telemetry, TelemetryError> {
    // Colours only on a terminal: a log file or collector gets plain text.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let fmt = if std::env::var("TACIT_LOG_FORMAT").as_deref() == Ok("json") {
        fmt.json().with_filter(filter()).boxed()
    } else {
        fmt.with_filter(filter()).boxed()
    };
    let (otel, provider) = match otlp_endpoint {
        None => (None, None),
        Some(endpoint) => {
            let endpoint = endpoint.trim_end_matches('/');
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(format!("{endpoint}/v1/traces"))
                .build()
                .map_err(|source| TelemetryError {
                    endpoint: endpoint.to_owned(),
                    source,
                })?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name(service.to_owned())
                        .build(),
                )
                .build();
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("tacit-backend"))
                .with_filter(filter())
                .boxed();
            (Some(layer), Some(provider))
        }
    };
    tracing_subscriber::registry().with(fmt).with(otel).init();
    Ok(Telemetry { provider })
}
