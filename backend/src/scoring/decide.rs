//! Authentication: score the user's recent windows with every enrolled factor, fuse the
//! calibrated evidence, decide, and keep the consecutive-reject count.

use tacit_models::fusion::FactorEvidence;
use tacit_shared::api::{AuthDecision, AuthenticateResponse, FactorResult, FactorStatus};
use tacit_shared::payload::FactorKind;

use super::evidence::{newest, read_windows};
use super::stored::StoredTemplate;
use super::{ConfiguredFactor, FactorError, Factors, Window};
use crate::settings::AuthSettings;
use crate::store::{RejectCount, Store, StoreError};

/// One factor's contribution before fusion.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// What the answer reports.
    pub result: FactorResult,
    /// What the fusion uses (`None`: no evidence).
    pub evidence: Option<FactorEvidence>,
}

fn result(f: &ConfiguredFactor, status: FactorStatus, detail: Option<String>) -> FactorResult {
    FactorResult {
        factor: f.name.clone(),
        status,
        mean_llr: None,
        llr: None,
        windows: 0,
        age_s: None,
        weight: 0.0,
        model_version: None,
        detail,
    }
}

async fn assess_one(
    f: &ConfiguredFactor,
    stored: Option<StoredTemplate>,
    windows: &[Window],
    settings: &AuthSettings,
    now_ms: u64,
) -> Assessment {
    let plain = |status, detail| Assessment {
        result: result(f, status, detail),
        evidence: None,
    };
    let Some(t) = stored else {
        return plain(FactorStatus::NoTemplate, None);
    };
    // A template of another layout (the model was replaced by one of another schema
    // version) is refused here, before any window of it reaches the model.
    if let Some(want) = f.client.schema_version()
        && want != t.group.schema_version
    {
        return plain(
            FactorStatus::Refused,
            Some(format!(
                "the template is of feature schema v{}, the model scores v{want}: enrol again",
                t.group.schema_version
            )),
        );
    }
    // A template of another model (one was promoted since, and rebuilding it failed)
    // means nothing to the model in service: its scores would be noise.
    if super::enrol::is_stale(f, &t) {
        return plain(
            FactorStatus::Refused,
            Some(format!(
                "the template was built by model {}, the factor serves {}: it is rebuilt \
                 in the background, or enrol again",
                t.model_version.as_deref().unwrap_or("(unknown)"),
                f.client.model_version().unwrap_or_default()
            )),
        );
    }
    let windows = &*super::evidence::readable_by(windows, f.client.schema_version());
    let chosen = newest(
        windows,
        f.records,
        &t.group,
        t.enrolled_until_ms,
        settings.max_windows_scored,
    );
    let Some(newest_end) = chosen.iter().map(|w| w.end_ms).max() else {
        return plain(FactorStatus::NoRecentData, None);
    };
    let rows: Vec<Vec<f32>> = chosen.iter().map(|w| w.values.clone()).collect();
    let n = rows.len();
    match f.client.score(&t.template, rows).await {
        // The model changed between the check above and the call (a remote factor's
        // version is known only from its answers): the score is not used.
        Ok(s)
            if s.model_version.is_some()
                && t.model_version.is_some()
                && s.model_version != t.model_version =>
        {
            plain(
                FactorStatus::Refused,
                Some(format!(
                    "scored by model {}, the template was built by {}: it is rebuilt in \
                     the background, or enrol again",
                    s.model_version.unwrap_or_default(),
                    t.model_version.as_deref().unwrap_or_default()
                )),
            )
        }
        Ok(s) => {
            let mean = s.llr.iter().sum::<f64>() / n as f64;
            // The attempt's own calibration when the factor gives one; else the mean
            // window LLR stands for the attempt (and the fusion claims only its bound).
            let (llr, impostor) = match s.attempt {
                Some(a) => (a.llr, a.impostor),
                None => (mean, None),
            };
            // Device clock against server clock: a phone ahead of the server counts
            // as fresh, not as negative age.
            let age_s = now_ms.saturating_sub(newest_end) as f64 / 1000.0;
            let evidence = FactorEvidence {
                factor: f.name.clone(),
                llr,
                windows: n,
                age_s,
                weight: f.weight,
                impostor,
            };
            Assessment {
                result: FactorResult {
                    factor: f.name.clone(),
                    status: FactorStatus::Scored,
                    mean_llr: Some(mean),
                    llr: Some(llr),
                    windows: n as u32,
                    age_s: Some(age_s),
                    weight: 0.0, // set from the fusion's weights
                    model_version: s.model_version,
                    detail: None,
                },
                evidence: Some(evidence),
            }
        }
        Err(FactorError::Unavailable(m)) => plain(FactorStatus::Unavailable, Some(m)),
        Err(FactorError::Refused(m)) => plain(FactorStatus::Refused, Some(m)),
    }
}

/// What an authentication judges.
#[derive(Debug, Clone, PartialEq)]
pub enum Evidence {
    /// The windows of the envelopes attached to the request, as the request opened
    /// them (no read-back): the request says "judge the behaviour of just now", and
    /// earlier windows (someone else's, if the phone changed hands) do not dilute it.
    Attached(Vec<Window>),
    /// No envelope attached: the user's newest stored windows.
    Stored,
}

/// Scores, fuses and decides for a user; updates the consecutive-reject count.
/// `envelopes` and `verdict` of the answer are left empty for the caller.
pub async fn assess(
    store: &dyn Store,
    factors: &Factors,
    settings: &AuthSettings,
    user_id: &str,
    now_ms: u64,
    evidence: Evidence,
) -> Result<AuthenticateResponse, StoreError> {
    let policy = &settings.fusion;
    let mut templates = std::collections::HashMap::new();
    for row in store.templates(user_id).await? {
        match serde_json::from_slice::<StoredTemplate>(&row.blob) {
            Ok(t) => {
                templates.insert(row.factor, t);
            }
            Err(_) => {
                tracing::warn!(factor = %row.factor, "stored template does not decode; ignored")
            }
        }
    }
    let windows = match evidence {
        _ if templates.is_empty() => Vec::new(),
        Evidence::Attached(mut windows) => {
            // An attached envelope stored by an earlier request is a client's retry
            // after a lost answer only if it arrived moments ago; later it is a replay
            // (someone with the device key re-sending the owner's captured behaviour)
            // and proves nothing about who holds the phone now.
            let retry_ms = settings.fresh_retry_s.saturating_mul(1000);
            windows.retain(|w| w.received_at_ms.saturating_add(retry_ms) >= now_ms);
            windows
        }
        Evidence::Stored => {
            let max_age_ms = (policy.max_age_s.max(0.0) * 1000.0) as u64;
            read_windows(
                store,
                user_id,
                now_ms.saturating_sub(max_age_ms),
                settings.lookback_envelopes,
            )
            .await?
            .into_iter()
            // A face proves presence only when captured for this authentication (an
            // attached envelope): stored ones include the enrolment images themselves,
            // which the face factor rightly takes for replays.
            .filter(|w| w.kind != FactorKind::Face)
            .collect()
        }
    };
    // Templates built by a model that has since been replaced are rebuilt first, from
    // the windows they were built from, so that a promotion does not interrupt anyone.
    for f in factors.iter() {
        let Some(old) = templates.get(&f.name) else {
            continue;
        };
        if !super::enrol::is_stale(f, old) {
            continue;
        }
        let old = old.clone();
        match super::enrol::rebuild(store, f, settings, user_id, &old).await? {
            (_, Some(new)) => {
                tracing::info!(factor = %f.name, from = ?old.model_version, to = ?new.model_version, "template rebuilt for the model in service");
                templates.insert(f.name.clone(), new);
            }
            (outcome, None) => {
                tracing::info!(factor = %f.name, status = ?outcome.status, detail = ?outcome.detail, "template of a replaced model could not be rebuilt");
            }
        }
    }
    let runs = factors.iter().map(|f| {
        let t = templates.remove(&f.name);
        assess_one(f, t, &windows, settings, now_ms)
    });
    let assessed = futures::future::join_all(runs).await;
    let evidence: Vec<FactorEvidence> =
        assessed.iter().filter_map(|a| a.evidence.clone()).collect();
    let rejects_before = store.consecutive_rejects(user_id).await?;
    let fused = policy.fuse(&evidence, rejects_before);
    let mut results: Vec<FactorResult> = assessed.into_iter().map(|a| a.result).collect();
    for r in &mut results {
        if let Some((_, w)) = fused.weights.iter().find(|(n, _)| n == &r.factor) {
            r.weight = *w;
        }
    }
    let degraded = results
        .iter()
        .any(|r| matches!(r.status, FactorStatus::Unavailable));
    let decision = fused.decision;
    let consecutive_rejects = match decision {
        // No write when there is nothing to reset: most answers are accepts.
        AuthDecision::Accept if rejects_before == 0 => 0,
        AuthDecision::Accept => store.count_reject(user_id, RejectCount::Reset).await?,
        AuthDecision::Reject => store.count_reject(user_id, RejectCount::Increment).await?,
        AuthDecision::StepUp => rejects_before,
    };
    let reason = if degraded {
        format!("{} (degraded: a factor could not answer)", fused.reason)
    } else {
        fused.reason
    };
    Ok(AuthenticateResponse {
        decision,
        confidence: fused.confidence,
        estimated_far: fused.estimated_far,
        far_floor: fused.far_floor,
        llr: fused.llr,
        reason,
        degraded,
        consecutive_rejects,
        factors: results,
        envelopes: Vec::new(),
        verdict: String::new(), // signed by the handler
    })
}
