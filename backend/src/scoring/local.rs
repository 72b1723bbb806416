//! A factor running in the gateway's process (`serve --role all`, the embedded default).

use std::sync::Arc;

use async_trait::async_trait;
use tacit_models::ModelError;

use super::client::{Enrolled, FactorClient, FactorError, Scored};
use crate::factor::FactorService;

/// The in-process client of a [`FactorService`]: the same model, template format and
/// rules as the HTTP service of that factor, without the network.
#[derive(Debug, Clone)]
pub struct LocalFactor {
    service: Arc<FactorService>,
}

impl LocalFactor {
    /// Wraps a running factor service.
    pub fn new(service: Arc<FactorService>) -> Self {
        LocalFactor { service }
    }
}

fn refused(e: ModelError) -> FactorError {
    FactorError::Refused(e.to_string())
}

#[async_trait]
impl FactorClient for LocalFactor {
    async fn enrol(&self, rows: Vec<Vec<f32>>) -> Result<Enrolled, FactorError> {
        let m = self
            .service
            .model()
            .ok_or_else(|| FactorError::Unavailable("model not loaded".into()))?;
        let version = m.version.clone();
        let t = self
            .service
            .passes()
            .wait_to_run()
            .await
            .run_blocking(move || m.enrol(&rows))
            .await
            .map_err(|e| FactorError::Unavailable(format!("enrolment task: {e}")))?
            .map_err(refused)?;
        Ok(Enrolled {
            template: serde_json::to_string(&t)
                .map_err(|e| FactorError::Unavailable(format!("template encoding: {e}")))?,
            fallback: t.is_fallback(),
            model_version: Some(version),
        })
    }

    async fn score(&self, template: &str, rows: Vec<Vec<f32>>) -> Result<Scored, FactorError> {
        let m = self
            .service
            .model()
            .ok_or_else(|| FactorError::Unavailable("model not loaded".into()))?;
        let t = self
            .service
            .templates
            .parse(template)
            .map_err(|e| FactorError::Refused(format!("not a template of this factor: {e}")))?;
        let meta = m.model.meta();
        if t.factor != meta.factor || t.detector.centre.len() != m.dim() {
            return Err(FactorError::Refused(
                "template does not fit this model".into(),
            ));
        }
        let version = m.version.clone();
        let pass = move || {
            let s = m.score(&t, &rows)?;
            let a = m.model.attempt(&t, &s);
            Ok::<_, ModelError>((s, a))
        };
        let (scores, attempt) = self
            .service
            .passes()
            .wait_to_run()
            .await
            .run_blocking(pass)
            .await
            .map_err(|e| FactorError::Unavailable(format!("scoring task: {e}")))?
            .map_err(refused)?;
        Ok(Scored {
            llr: scores.iter().map(|s| s.llr).collect(),
            attempt,
            model_version: Some(version),
        })
    }

    fn location(&self) -> String {
        "in-process".into()
    }

    fn schema_version(&self) -> Option<u16> {
        self.service.model().map(|m| m.model.meta().schema_version)
    }

    fn model_version(&self) -> Option<String> {
        self.service.model().map(|m| m.version.clone())
    }
}
