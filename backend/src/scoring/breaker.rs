//! A circuit breaker per remote factor: after `threshold` consecutive failures the
//! factor is not called for `cooldown`; then one trial call decides (success closes
//! the circuit, failure opens it again). It keeps a dead factor from adding its
//! timeout to every authentication.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    trial_running: bool,
}

/// The breaker.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

impl Breaker {
    /// Opens after `threshold` (at least 1) consecutive failures, for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a call may go out now. While open, `false` until the cooldown has
    /// passed; then `true` for one trial call at a time.
    pub fn allow(&self, now: Instant) -> bool {
        let mut s = self.state();
        match s.open_until {
            None => true,
            Some(t) if now >= t && !s.trial_running => {
                s.trial_running = true;
                true
            }
            Some(_) => false,
        }
    }

    /// A call succeeded: close.
    pub fn success(&self) {
        *self.state() = State::default();
    }

    /// A call failed: count it, open at the threshold (or again after a failed trial).
    pub fn failure(&self, now: Instant) {
        let mut s = self.state();
        s.failures = s.failures.saturating_add(1);
        s.trial_running = false;
        if s.failures >= self.threshold {
            s.open_until = Some(now + self.cooldown);
        }
    }

    /// Whether the circuit is open (calls refused) at `now`.
    pub fn is_open(&self, now: Instant) -> bool {
        self.state().open_until.is_some_and(|t| now < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_and_recovers_through_one_trial() {
        let b = Breaker::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(b.allow(t0));
        b.failure(t0);
        assert!(b.allow(t0), "one failure is below the threshold");
        b.failure(t0);
        assert!(b.is_open(t0) && !b.allow(t0));
        let later = t0 + Duration::from_secs(11);
        assert!(b.allow(later), "the trial call");
        assert!(!b.allow(later), "only one trial at a time");
        b.failure(later);
        assert!(
            !b.allow(later + Duration::from_secs(1)),
            "failed trial: open again"
        );
        let much_later = later + Duration::from_secs(20);
        assert!(b.allow(much_later));
        b.success();
        assert!(b.allow(much_later) && b.allow(much_later) && !b.is_open(much_later));
    }
}
