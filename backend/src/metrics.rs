//! A small Prometheus registry: counters and one latency histogram, rendered in the
//! text exposition format at `/metrics`. Hand-rolled because we need a handful of
//! series, not a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

const BUCKETS_MS: [f64; 12] = [
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10000.0,
];

/// Process-wide metrics.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(String, String), u64>>,
    buckets: [AtomicU64; BUCKETS_MS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

impl Metrics {
    /// Adds `n` to counter `name{label}` (label may be empty).
    pub fn inc(&self, name: &str, label: &str, n: u64) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry((name.to_string(), label.to_string())).or_default() += n;
        }
    }

    /// Records one request latency.
    pub fn observe_ms(&self, ms: f64) {
        for (b, le) in self.buckets.iter().zip(BUCKETS_MS) {
            if ms <= le {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add((ms * 1000.0) as u64, Ordering::Relaxed);
    }

    /// The value of a counter (tests).
    pub fn get(&self, name: &str, label: &str) -> u64 {
        self.counters
            .lock()
            .map(|c| {
                c.get(&(name.to_string(), label.to_string()))
                    .copied()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    }

    /// Text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(c) = self.counters.lock() {
            let mut last = "";
            for ((name, label), v) in c.iter() {
                if name != last {
                    let _ = writeln!(out, "# TYPE {name} counter");
                    last = name;
                }
                if label.is_empty() {
                    let _ = writeln!(out, "{name} {v}");
                } else {
                    let _ = writeln!(out, "{name}{{{label}}} {v}");
                }
            }
        }
        let _ = writeln!(out, "# TYPE tacit_http_request_duration_ms histogram");
        for (b, le) in self.buckets.iter().zip(BUCKETS_MS) {
            let _ = writeln!(
                out,
                "tacit_http_request_duration_ms_bucket{{le=\"{le}\"}} {}",
                b.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "tacit_http_request_duration_ms_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "tacit_http_request_duration_ms_sum {}",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1000.0
        );
        let _ = writeln!(out, "tacit_http_request_duration_ms_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.inc("tacit_envelopes_total", "status=\"stored\"", 3);
        m.inc("tacit_envelopes_total", "status=\"stored\"", 2);
        m.observe_ms(3.0);
        let text = m.render();
        assert!(text.contains("tacit_envelopes_total{status=\"stored\"} 5"));
        assert!(text.contains("tacit_http_request_duration_ms_bucket{le=\"5\"} 1"));
        assert!(text.contains("tacit_http_request_duration_ms_bucket{le=\"2.5\"} 0"));
        assert_eq!(m.get("tacit_envelopes_total", "status=\"stored\""), 5);
    }
}
