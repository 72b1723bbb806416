//! Every call to a factor counted and timed: a [`FactorClient`] around another.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use metrics::{counter, histogram};

use super::client::{Enrolled, FactorClient, FactorError, Scored};
use crate::metrics::Metrics;

/// A factor client whose calls land in `tacit_factor_calls_total` and
/// `tacit_factor_call_duration_seconds` (by factor and operation).
#[derive(Debug)]
pub struct Metered {
    inner: Arc<dyn FactorClient>,
    factor: String,
    metrics: Arc<Metrics>,
}

impl Metered {
    /// Wraps `inner`, the factor called `factor`.
    pub fn new(inner: Arc<dyn FactorClient>, factor: String, metrics: Arc<Metrics>) -> Self {
        Metered {
            inner,
            factor,
            metrics,
        }
    }

    fn record<T>(&self, op: &'static str, started: Instant, r: &Result<T, FactorError>) {
        let outcome = match r {
            Ok(_) => "ok",
            Err(FactorError::Unavailable(_)) => "unavailable",
            Err(FactorError::Refused(_)) => "refused",
        };
        let factor = self.factor.clone();
        self.metrics.with(|| {
            counter!("tacit_factor_calls_total", "factor" => factor.clone(), "op" => op, "outcome" => outcome)
                .increment(1);
            histogram!("tacit_factor_call_duration_seconds", "factor" => factor, "op" => op)
                .record(started.elapsed().as_secs_f64());
        });
    }
}

#[async_trait]
impl FactorClient for Metered {
    async fn enrol(&self, rows: Vec<Vec<f32>>) -> Result<Enrolled, FactorError> {
        let started = Instant::now();
        let r = self.inner.enrol(rows).await;
        self.record("enrol", started, &r);
        r
    }

    async fn score(&self, template: &str, rows: Vec<Vec<f32>>) -> Result<Scored, FactorError> {
        let started = Instant::now();
        let r = self.inner.score(template, rows).await;
        self.record("score", started, &r);
        r
    }

    async fn embed_images(
        &self,
        images: &[tacit_shared::payload::FaceImage],
    ) -> Result<Vec<super::Embedded>, FactorError> {
        let started = Instant::now();
        let r = self.inner.embed_images(images).await;
        self.record("embed", started, &r);
        r
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    fn breaker_open(&self) -> bool {
        self.inner.breaker_open()
    }

    fn schema_version(&self) -> Option<u16> {
        self.inner.schema_version()
    }

    fn model_version(&self) -> Option<String> {
        self.inner.model_version()
    }
}
