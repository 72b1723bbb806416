//! Shared state of the running gateway.

use std::sync::Arc;

use tacit_shared::replay::ReplayPolicy;

use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::scoring::Factors;
use crate::settings::Settings;
use crate::store::Store;
use crate::verdict::VerdictKeys;

/// Everything a handler needs, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Settings in force.
    pub settings: Arc<Settings>,
    /// Live HPKE keys.
    pub keys: Arc<KeyRing>,
    /// Database + object store.
    pub store: Arc<dyn Store>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Per-device ingest limiter.
    pub limiter: Arc<RateLimiter>,
    /// Per-client-address buckets of work that did not authenticate.
    pub unauthenticated: Arc<RateLimiter>,
    /// Replay acceptance window.
    pub replay: ReplayPolicy,
    /// The factors authentication uses.
    pub factors: Arc<Factors>,
    /// The keys that sign verdicts (and the JWKS that publishes them).
    pub verdict_keys: Arc<VerdictKeys>,
}

impl AppState {
    /// Builds the state from its parts, without verdict keys (authentications are then
    /// refused with a 500 until [`AppState::with_verdict_keys`] gives some; the servers
    /// of [`crate::server`] load them from the keys directory).
    pub fn new(settings: Settings, keys: KeyRing, store: Arc<dyn Store>, factors: Factors) -> Self {
        let replay = ReplayPolicy {
            max_age_ms: settings.max_envelope_age_days * 24 * 3600 * 1000,
            max_future_skew_ms: settings.max_future_skew_s * 1000,
        };
        let limiter = RateLimiter::new(
            settings.limits.envelopes_per_second_per_device,
            settings.limits.burst_per_device,
        );
        let unauthenticated = RateLimiter::new(
            settings.limits.unauthenticated_per_second_per_address,
            settings.limits.unauthenticated_burst_per_address,
        );
        let metrics = Arc::new(Metrics::new());
        AppState {
            settings: Arc::new(settings),
            keys: Arc::new(keys),
            store,
            factors: Arc::new(factors.metered(&metrics)),
            metrics,
            limiter: Arc::new(limiter),
            unauthenticated: Arc::new(unauthenticated),
            replay,
            verdict_keys: Arc::new(VerdictKeys::default()),
        }
    }

    /// The state with these verdict signing keys.
    pub fn with_verdict_keys(mut self, keys: VerdictKeys) -> Self {
        self.verdict_keys = Arc::new(keys);
        self
    }
}

/// Current Unix time in ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
