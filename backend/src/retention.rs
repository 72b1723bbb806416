//! Data retention: feature batches older than `retention.feature_days`, and recorded
//! decisions older than `verdict.decision_days`, are deleted by a sweep that runs at
//! start and then every `retention.sweep_interval_s`; so are the packs of group
//! commits a crash interrupted (`UNFINISHED_GRACE_MS` after they were written).
//!
//! The envelope rows are the replay memory as well as the index of the objects, so the
//! cut is never later than the acceptance window's start (`ReplayPolicy::prune_before`):
//! a retention shorter than the window keeps batches until the window has passed them.
//! Templates are kept until the user is deleted (they are re-derived on enrolment and
//! are the user's, not raw behaviour); tokens expire on their own.

use std::time::Duration;

use tacit_shared::replay::ReplayPolicy;

use crate::state::AppState;
use crate::store::{Store, StoreResult};

/// Packs deleted per store call.
pub const SWEEP_BATCH: u32 = 1_000;

/// How long a pack may stay uncommitted before the sweep takes it for the leftover of
/// a crash: far longer than any request may take (the request timeout is seconds).
pub const UNFINISHED_GRACE_MS: u64 = 10 * 60_000;

/// The creation time before which batches go, for a retention of `feature_days` at
/// `now_ms` (`None`: keep everything).
pub fn cutoff_ms(feature_days: u64, replay: &ReplayPolicy, now_ms: u64) -> Option<u64> {
    if feature_days == 0 {
        return None;
    }
    let by_age = now_ms.saturating_sub(feature_days.saturating_mul(86_400_000));
    Some(by_age.min(replay.prune_before(now_ms)))
}

/// Deletes every pack whose newest batch was created before `cutoff_ms`, in batches;
/// returns how many envelopes went.
pub async fn sweep(store: &dyn Store, cutoff_ms: u64) -> StoreResult<u64> {
    let mut total = 0;
    loop {
        let n = store.expire_envelopes(cutoff_ms, SWEEP_BATCH).await?;
        total += n;
        if n == 0 {
            return Ok(total);
        }
    }
}

/// Deletes the packs of group commits that never finished (a crash between writing a
/// pack and committing its rows) written before `written_before_ms`; returns how many.
pub async fn sweep_unfinished(store: &dyn Store, written_before_ms: u64) -> StoreResult<u64> {
    let mut total = 0;
    loop {
        let n = store
            .sweep_unfinished_packs(written_before_ms, SWEEP_BATCH)
            .await?;
        total += n;
        if n < u64::from(SWEEP_BATCH) {
            return Ok(total);
        }
    }
}

/// Deletes the decisions older than `verdict.decision_days`; returns how many went.
pub async fn sweep_decisions(st: &AppState) -> StoreResult<u64> {
    let days = st.settings.verdict.decision_days;
    let cut = crate::state::now_ms().saturating_sub(days.saturating_mul(86_400_000));
    let n = st.store.expire_decisions(cut).await?;
    if n > 0 {
        st.metrics
            .count("tacit_retention_decisions_expired_total", &[], n);
        tracing::info!(expired = n, "retention: old decisions deleted");
    }
    Ok(n)
}

/// One sweep of the feature batches with the gateway's settings and clock; logs and
/// counts what it did.
pub async fn sweep_now(st: &AppState) -> StoreResult<u64> {
    let now = crate::state::now_ms();
    // A failure here must not hold up the expiry below.
    let unfinished = match sweep_unfinished(
        st.store.as_ref(),
        now.saturating_sub(UNFINISHED_GRACE_MS),
    )
    .await
    {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %crate::error::Chain(&e), "sweep of unfinished packs failed; retrying at the next tick");
            0
        }
    };
    if unfinished > 0 {
        st.metrics
            .count("tacit_retention_unfinished_packs_total", &[], unfinished);
        tracing::info!(
            packs = unfinished,
            "retention: packs of unfinished group commits deleted"
        );
    }
    let Some(cut) = cutoff_ms(st.settings.retention.feature_days, &st.replay, now) else {
        return Ok(0);
    };
    let n = sweep(st.store.as_ref(), cut).await?;
    if n > 0 {
        st.metrics.count("tacit_retention_expired_total", &[], n);
        tracing::info!(expired = n, "retention: old feature batches deleted");
    }
    Ok(n)
}

/// Runs [`sweep_now`] and [`sweep_decisions`] at start and every
/// `retention.sweep_interval_s` until the task is aborted. A failed sweep (store down)
/// is logged and retried at the next tick.
pub fn spawn(st: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = Duration::from_secs(st.settings.retention.sweep_interval_s.max(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = sweep_now(&st).await {
                tracing::warn!(error = %crate::error::Chain(&e), "retention sweep failed; retrying at the next tick");
            }
            if let Err(e) = sweep_decisions(&st).await {
                tracing::warn!(error = %crate::error::Chain(&e), "retention sweep of decisions failed; retrying at the next tick");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_never_passes_the_replay_window() {
        let replay = ReplayPolicy {
            max_age_ms: 14 * 86_400_000,
            max_future_skew_ms: 0,
        };
        let now = 1_000 * 86_400_000;
        assert_eq!(cutoff_ms(0, &replay, now), None);
        assert_eq!(cutoff_ms(90, &replay, now), Some(now - 90 * 86_400_000));
        assert_eq!(cutoff_ms(1, &replay, now), Some(now - 14 * 86_400_000));
    }
}
