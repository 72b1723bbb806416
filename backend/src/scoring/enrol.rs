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
    enrol_stored(store, user_id, f, windows, max_vectors)
        .await
        .map(|(o, _)| o)
}

/// [`enrol_one`], also returning the template it stored.
async fn enrol_stored(
    store: &dyn Store,
    user_id: &str,
    f: &ConfiguredFactor,
    windows: &[super::Window],
    max_vectors: usize,
) -> Result<(EnrolOutcome, Option<StoredTemplate>), StoreError> {
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
            return Ok((
                outcome(
                    EnrolStatus::Refused,
                    0,
                    Some(format!(
                        "the windows are feature schema v{}, the model scores v{want}",
                        have.schema_version
                    )),
                ),
                None,
            ));
        }
        return Ok((outcome(EnrolStatus::NoData, 0, None), None));
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
                    built_with: stored.model_version.clone().unwrap_or_default(),
                })
                .await?;
            let status = if stored.fallback {
                EnrolStatus::Fallback
            } else {
                EnrolStatus::Enrolled
            };
            Ok((outcome(status, samples, None), Some(stored)))
        }
        Err(FactorError::Refused(m)) => Ok((outcome(EnrolStatus::Refused, samples, Some(m)), None)),
        Err(FactorError::Unavailable(m)) => {
            Ok((outcome(EnrolStatus::Unavailable, samples, Some(m)), None))
        }
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

/// Whether `t` was built by a model other than the one factor `f` serves now. Only
/// known versions are compared: a factor that does not name the model at enrolment is
/// trusted to keep its templates valid (docs/factor-api.md), and one whose current
/// version the client does not know yet is checked on its answer instead.
pub fn is_stale(f: &ConfiguredFactor, t: &StoredTemplate) -> bool {
    stale(
        t.model_version.as_deref(),
        f.client.model_version().as_deref(),
    )
}

fn stale(built_with: Option<&str>, serving: Option<&str>) -> bool {
    matches!((built_with, serving), (Some(b), Some(s)) if b != s)
}

#[cfg(test)]
mod tests {
    use super::stale;

    #[test]
    fn only_known_versions_make_a_template_stale() {
        assert!(stale(Some("a"), Some("b")));
        assert!(!stale(Some("a"), Some("a")));
        assert!(
            !stale(None, Some("b")),
            "a factor that never names its model"
        );
        assert!(
            !stale(Some("a"), None),
            "a remote factor not heard from yet"
        );
    }
}

/// Rebuilds a template that another model built, with the factor's current model,
/// from the windows the old one was built from (those up to its enrolment mark): the
/// windows after the mark stay unseen, so scoring goes on where it was. Returns what
/// happened and the new template, which is stored too.
pub async fn rebuild(
    store: &dyn Store,
    f: &ConfiguredFactor,
    settings: &AuthSettings,
    user_id: &str,
    old: &StoredTemplate,
) -> Result<(EnrolOutcome, Option<StoredTemplate>), StoreError> {
    let mut windows = read_windows(store, user_id, 0, ENROL_LOOKBACK_ENVELOPES).await?;
    windows.retain(|w| w.start_ms <= old.enrolled_until_ms);
    enrol_stored(store, user_id, f, &windows, settings.max_enrol_vectors).await
}

/// What one round of [`rebuild_stale`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Templates rebuilt with the current model.
    pub rebuilt: u64,
    /// Templates that could not be rebuilt (their windows are gone or the factor
    /// refuses them) and were deleted: the user enrols again.
    pub dropped: u64,
    /// Rebuilds put off because the factor could not answer.
    pub deferred: u64,
}

/// One round of background rebuilding: for every factor whose model version is known,
/// up to `limit` templates built by another version (oldest first) are rebuilt. A
/// template that cannot be rebuilt is deleted (it can never be scored again), one whose
/// factor is down waits for the next round.
pub async fn rebuild_stale(
    store: &dyn Store,
    factors: &Factors,
    settings: &AuthSettings,
    limit: u32,
) -> Result<RebuildReport, StoreError> {
    let mut report = RebuildReport::default();
    for f in factors.iter() {
        let Some(current) = f.client.model_version() else {
            continue;
        };
        for user in store.stale_templates(&f.name, &current, limit).await? {
            let old = store
                .templates(&user)
                .await?
                .into_iter()
                .find(|t| t.factor == f.name)
                .and_then(|t| serde_json::from_slice::<StoredTemplate>(&t.blob).ok());
            let outcome = match &old {
                Some(old) => rebuild(store, f, settings, &user, old).await?.0.status,
                None => EnrolStatus::NoData,
            };
            match outcome {
                EnrolStatus::Enrolled | EnrolStatus::Fallback => report.rebuilt += 1,
                EnrolStatus::Unavailable => {
                    report.deferred += 1;
                    // The factor is down: the rest of its templates wait too.
                    break;
                }
                EnrolStatus::NoData | EnrolStatus::Refused => {
                    store.delete_template(&user, &f.name).await?;
                    report.dropped += 1;
                }
            }
        }
    }
    Ok(report)
}
