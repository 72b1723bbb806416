//! Per-device token buckets for ingest: sustained rate plus a burst, in envelopes.
//! Memory is bounded: idle buckets (full again) are dropped when the map grows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

const MAX_TRACKED: usize = 100_000;

/// The limiter.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<[u8; 16], (f64, Instant)>>,
}

impl RateLimiter {
    /// `rate` tokens per second, at most `burst` saved up.
    pub fn new(rate: f64, burst: f64) -> Self {
        RateLimiter {
            rate: rate.max(0.001),
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `n` tokens for `device`; on refusal returns the seconds until they exist.
    pub fn take(&self, device: [u8; 16], n: f64, now: Instant) -> Result<(), u64> {
        let Ok(mut map) = self.buckets.lock() else {
            return Ok(());
        };
        if map.len() >= MAX_TRACKED {
            let (rate, burst) = (self.rate, self.burst);
            map.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let entry = map.entry(device).or_insert((self.burst, now));
        let tokens =
            (entry.0 + now.duration_since(entry.1).as_secs_f64() * self.rate).min(self.burst);
        if tokens >= n {
            *entry = (tokens - n, now);
            Ok(())
        } else {
            *entry = (tokens, now);
            Err(((n.min(self.burst) - tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let l = RateLimiter::new(10.0, 20.0);
        let t0 = Instant::now();
        let d = [1u8; 16];
        assert!(l.take(d, 20.0, t0).is_ok());
        let wait = l.take(d, 5.0, t0).unwrap_err();
        assert_eq!(wait, 1);
        assert!(l.take(d, 5.0, t0 + Duration::from_millis(600)).is_ok());
        assert!(
            l.take([2u8; 16], 20.0, t0).is_ok(),
            "buckets are per device"
        );
    }
}
