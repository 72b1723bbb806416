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
    /// The trial call running now, by number: only its own outcome (or its drop)
    /// ends it, not a slower call from before the circuit opened.
    trial: Option<u64>,
    /// The number of the last trial.
    trials: u64,
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

    /// A call that may go out now, or `None`. While open, `None` until the cooldown
    /// has passed; then one trial call at a time. The call reports how it went
    /// ([`Call::success`], [`Call::failure`]); a call dropped without an outcome (its
    /// caller gone, or an answer that says nothing of the service's health, such as
    /// "busy") changes nothing, except that a trial is free again for the next caller.
    pub fn allow(&self, now: Instant) -> Option<Call<'_>> {
        let mut s = self.state();
        let trial = match s.open_until {
            None => None,
            Some(t) if now >= t && s.trial.is_none() => {
                s.trials = s.trials.wrapping_add(1);
                s.trial = Some(s.trials);
                s.trial
            }
            Some(_) => return None,
        };
        Some(Call {
            breaker: self,
            trial,
        })
    }

    /// A call succeeded: close.
    fn success(&self) {
        let mut s = self.state();
        s.failures = 0;
        s.open_until = None;
        s.trial = None;
    }

    /// A call failed: count it, open at the threshold (or again after a failed trial,
    /// `trial` being that call's number).
    fn failure(&self, now: Instant, trial: Option<u64>) {
        let mut s = self.state();
        s.failures = s.failures.saturating_add(1);
        if trial.is_some() && s.trial == trial {
            s.trial = None;
        }
        if s.failures >= self.threshold {
            s.open_until = Some(now + self.cooldown);
        }
    }

    /// Whether the circuit is open (calls refused) at `now`.
    pub fn is_open(&self, now: Instant) -> bool {
        self.state().open_until.is_some_and(|t| now < t)
    }
}

/// One call let through by [`Breaker::allow`].
#[derive(Debug)]
#[must_use = "a call reports its outcome; dropped, it counts as neither"]
pub struct Call<'a> {
    breaker: &'a Breaker,
    /// The number of the trial, for the one trial call of an open circuit.
    trial: Option<u64>,
}

impl Call<'_> {
    /// The service answered well (or refused the request itself): close the circuit.
    pub fn success(mut self) {
        self.trial = None;
        self.breaker.success();
    }

    /// The service failed: count it.
    pub fn failure(mut self, now: Instant) {
        let trial = self.trial.take();
        self.breaker.failure(now, trial);
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        // A trial without an outcome (its caller cancelled, or the service only said
        // it is busy) must not keep every later trial out: the circuit would stay open
        // for good while reporting itself closed.
        if let Some(trial) = self.trial {
            let mut s = self.breaker.state();
            if s.trial == Some(trial) {
                s.trial = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_and_recovers_through_one_trial() {
        let b = Breaker::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        b.allow(t0).unwrap().failure(t0);
        assert!(b.allow(t0).is_some(), "one failure is below the threshold");
        b.allow(t0).unwrap().failure(t0);
        assert!(b.is_open(t0) && b.allow(t0).is_none());
        let later = t0 + Duration::from_secs(11);
        let trial = b.allow(later).expect("the trial call");
        assert!(b.allow(later).is_none(), "only one trial at a time");
        trial.failure(later);
        assert!(
            b.allow(later + Duration::from_secs(1)).is_none(),
            "failed trial: open again"
        );
        let much_later = later + Duration::from_secs(20);
        b.allow(much_later).unwrap().success();
        assert!(b.allow(much_later).is_some() && b.allow(much_later).is_some());
        assert!(!b.is_open(much_later));
    }

    #[test]
    fn a_trial_without_an_outcome_frees_the_trial() {
        let b = Breaker::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        b.allow(t0).unwrap().failure(t0);
        let later = t0 + Duration::from_secs(11);
        // Cancelled, or answered "busy": neither closes nor reopens the circuit.
        drop(b.allow(later).expect("the trial call"));
        let again = b
            .allow(later)
            .expect("another trial, not a circuit open for good");
        assert!(b.allow(later).is_none(), "still one trial at a time");
        again.success();
        assert!(!b.is_open(later) && b.allow(later).is_some());
        // A call dropped while closed changes nothing either.
        let closed = Breaker::new(2, Duration::from_secs(10));
        closed.allow(t0).unwrap().failure(t0);
        drop(closed.allow(t0).unwrap());
        closed.allow(t0).unwrap().failure(t0);
        assert!(
            closed.is_open(t0),
            "two failures in a row, with nothing between"
        );
    }

    #[test]
    fn only_a_trial_ends_its_own_trial() {
        let b = Breaker::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        // A slow call from before the circuit opened.
        let slow = b.allow(t0).unwrap();
        b.allow(t0).unwrap().failure(t0);
        let later = t0 + Duration::from_secs(11);
        let first = b.allow(later).expect("the first trial");
        // The slow call fails: the circuit opens again; the first trial still runs.
        slow.failure(later);
        let much_later = later + Duration::from_secs(11);
        assert!(b.allow(much_later).is_none(), "the first trial still runs");
        drop(first);
        let second = b.allow(much_later).expect("the second trial");
        assert!(b.allow(much_later).is_none(), "one trial at a time");
        second.success();
        assert!(b.allow(much_later).is_some());
    }
}
