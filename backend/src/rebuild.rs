//! Background rebuilding of templates after a new factor model is promoted: a template
//! built by another model version is never scored (the gateway refuses it, or rebuilds
//! it when its user authenticates); this task rebuilds the rest at a bounded rate, so
//! that a promotion neither stalls users nor floods the factor services.

use std::time::Duration;

use crate::scoring::rebuild_stale;
use crate::state::AppState;

/// How often a round runs.
const ROUND: Duration = Duration::from_secs(3);

/// Rounds per minute (see [`ROUND`]).
const ROUNDS_PER_MINUTE: u32 = 20;

/// One round with the gateway's settings: at most `auth.template_rebuilds_per_minute /
/// 20` templates per factor. Counts what it did in `tacit_templates_rebuilt_total`.
pub async fn rebuild_now(
    st: &AppState,
) -> crate::store::StoreResult<crate::scoring::RebuildReport> {
    let per_minute = st.settings.auth.template_rebuilds_per_minute;
    let limit = per_minute.div_ceil(ROUNDS_PER_MINUTE);
    if limit == 0 {
        return Ok(Default::default());
    }
    let r = rebuild_stale(st.store.as_ref(), &st.factors, &st.settings.auth, limit).await?;
    for (outcome, n) in [
        ("rebuilt", r.rebuilt),
        ("dropped", r.dropped),
        ("deferred", r.deferred),
    ] {
        if n > 0 {
            st.metrics.count(
                "tacit_templates_rebuilt_total",
                &[("outcome", outcome.to_string())],
                n,
            );
        }
    }
    if r.rebuilt + r.dropped > 0 {
        tracing::info!(
            rebuilt = r.rebuilt,
            dropped = r.dropped,
            deferred = r.deferred,
            "templates of a replaced model rebuilt"
        );
    }
    Ok(r)
}

/// Runs [`rebuild_now`] every 3 s until the task is aborted; a failed round (store
/// down) is logged and retried at the next.
pub fn spawn(st: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(ROUND);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = rebuild_now(&st).await {
                tracing::warn!(error = %crate::error::Chain(&e), "template rebuild round failed; retrying at the next");
            }
        }
    })
}
