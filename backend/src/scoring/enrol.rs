//! Enrolment: a user's templates, built by each factor from the user's stored windows.

use serde::Serialize;

use super::evidence::{main_group, main_group_of, newest, read_windows, readable_by};
use super::stored::{STORED_TEMPLATE_FORMAT, StoredTemplate};
use super::{ConfiguredFactor, FactorError, Factors};
use crate::settings::AuthSettings;
use crate::store::{Store, StoreError, TemplateRow};

/// Newest envelopes read for an enrolment.
const ENROL_LOOKBACK_ENVELOPES: u32 = 1024;

/// What happened to one factor's enrolment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnrolStatus {
    /// A full template was stored.
    Enrolled,
    /// A reduced template was stored (few windows): scores are less reliable.
    Fallback,
    /// No windows of this factor are stored.
    NoData,
    /// The factor refused (too few windows, ...); `detail` says why.
    Refused,
    /// The factor could not be reached; nothing changed.
    Unavailable,
}

/// One factor's enrolment.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EnrolOutcome {
    /// The factor.
    pub factor: String,
    /// Outcome.
    pub status: EnrolStatus,
    /// Windows given to the factor.
    pub samples: usize,
    /// Why, when not enrolled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

async fn enrol_one(
    store: &dyn Store,
    user_id: &str,
    f: &ConfiguredFactor,
    windows: &[super::Window],
    max_vectors: usize,
) -> Result<EnrolOutcome, StoreError> {
    let outcome = |status, samples, detail: Option<String>| EnrolOutcome {
        factor: f.name.clone(),
        status,
        samples,
        detail,
    };
    let schema = f.client.schema_version();
    let windows = &*readable_by(windows, schema);
    let Some(group) = main_group_of(windows, f.records, schema) else {
        // Windows of this factor in another layout only: say so rather than "no data".
        if let (Some(want), Some(have)) = (schema, main_group(windows, f.records)) {
            return Ok(outcome(
                EnrolStatus::Refused,
                0,
                Some(format!(
                    "the windows are feature schema v{}, the model scores v{want}",
                    have.schema_version
                )),
            ));
        }
        return Ok(outcome(EnrolStatus::NoData, 0, None));
    };
    let chosen = newest(windows, f.records, &group, 0, max_vectors);
    let until = chosen.first().map_or(0, |w| w.start_ms);
    let rows: Vec<Vec<f32>> = chosen.iter().map(|w| w.values.clone()).collect();
    let samples = rows.len();
    match f.client.enrol(rows).await {
        Ok(e) => {
            let stored = StoredTemplate {
                group,
                enrolled_until_ms: until,
                samples,
                fallback: e.fallback,
                model_version: e.model_version,
                template: e.template,
            };
            let blob = serde_json::to_vec(&stored)
                .map_err(|e| StoreError::internal("encoding template", e))?;
            store
                .put_template(TemplateRow {
                    user_id: user_id.to_string(),
                    factor: f.name.clone(),
                    format: STORED_TEMPLATE_FORMAT,
                    blob,
                    updated_at_ms: crate::state::now_ms(),
                })
                .await?;
            let status = if stored.fallback {
                EnrolStatus::Fallback
            } else {
                EnrolStatus::Enrolled
            };
            Ok(outcome(status, samples, None))
        }
        Err(FactorError::Refused(m)) => Ok(outcome(EnrolStatus::Refused, samples, Some(m))),
        Err(FactorError::Unavailable(m)) => Ok(outcome(EnrolStatus::Unavailable, samples, Some(m))),
    }
}

/// (Re-)enrols a user with every factor (or those named in `only`) from the user's
/// stored windows: per factor, the newest `max_enrol_vectors` windows of its main
/// group. A factor that refuses or is down leaves its old template in place.
pub async fn enrol_user(
    store: &dyn Store,
    factors: &Factors,
    settings: &AuthSettings,
    user_id: &str,
    only: Option<&[String]>,
) -> Result<Vec<EnrolOutcome>, StoreError> {
    let windows = read_windows(store, user_id, 0, ENROL_LOOKBACK_ENVELOPES).await?;
    let chosen: Vec<&ConfiguredFactor> = factors
        .iter()
        .filter(|f| only.is_none_or(|o| o.iter().any(|n| n == &f.name)))
        .collect();
    let runs = chosen
        .iter()
        .map(|f| enrol_one(store, user_id, f, &windows, settings.max_enrol_vectors));
    futures::future::join_all(runs).await.into_iter().collect()
}
