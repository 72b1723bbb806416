//! [`UploadPolicy`]: batch size, attempts, backoff and timeouts.

use std::time::Duration;

use tacit_shared::api::MAX_UPLOAD_BATCH;

use super::UploadError;

/// How the uploader batches and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadPolicy {
    /// Envelopes per request, `1..=MAX_UPLOAD_BATCH`.
    pub batch_size: usize,
    /// Attempts per batch (the first one included), at least 1.
    pub max_attempts: u32,
    /// Backoff ceiling before the second attempt; doubles per attempt.
    pub base_backoff: Duration,
    /// Largest wait between attempts, also the cap on a server's `Retry-After`.
    pub max_backoff: Duration,
    /// Limit for one whole request: connect, send, and read the answer.
    pub request_timeout: Duration,
}

impl Default for UploadPolicy {
    /// 64 envelopes per request (well under the server's 256, so one request stays
    /// small on a mobile link), 5 attempts, backoff 0.5 s doubling up to 30 s, 30 s
    /// per request.
    fn default() -> Self {
        UploadPolicy {
            batch_size: 64,
            max_attempts: 5,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl UploadPolicy {
    pub(super) fn validate(&self) -> Result<(), UploadError> {
        if self.batch_size == 0 || self.batch_size > MAX_UPLOAD_BATCH {
            return Err(UploadError::InvalidPolicy(format!(
                "batch_size {} is outside 1..={MAX_UPLOAD_BATCH}",
                self.batch_size
            )));
        }
        if self.max_attempts == 0 {
            return Err(UploadError::InvalidPolicy("max_attempts is 0".into()));
        }
        if self.request_timeout.is_zero() {
            return Err(UploadError::InvalidPolicy("request_timeout is 0".into()));
        }
        Ok(())
    }

    /// Exponential ceiling for the wait after failed attempt `attempt` (1-based):
    /// `min(max_backoff, base_backoff * 2^(attempt-1))`.
    pub(super) fn backoff_ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base_backoff
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.max_backoff)
    }

    /// "Full jitter" (uniform in `[0, ceiling]`): spreads the retries of many phones
    /// that failed together (a server restart) instead of synchronising them.
    /// `random` is a uniformly random `u64`.
    pub(super) fn jittered_backoff(&self, attempt: u32, random: u64) -> Duration {
        let ceiling = self.backoff_ceiling(attempt);
        let fraction = (random >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(fraction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_never_overflows() {
        let p = UploadPolicy {
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..UploadPolicy::default()
        };
        let ms: Vec<u128> = (1..=6).map(|a| p.backoff_ceiling(a).as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.backoff_ceiling(u32::MAX), Duration::from_secs(1));
        assert_eq!(p.jittered_backoff(3, 0), Duration::ZERO);
        assert!(p.jittered_backoff(3, u64::MAX) <= Duration::from_millis(400));
        assert!(p.jittered_backoff(3, u64::MAX) > Duration::from_millis(399));
    }

    #[test]
    fn invalid_policies_are_refused() {
        let ok = UploadPolicy::default();
        assert!(ok.validate().is_ok());
        for bad in [
            UploadPolicy {
                batch_size: 0,
                ..ok
            },
            UploadPolicy {
                batch_size: MAX_UPLOAD_BATCH + 1,
                ..ok
            },
            UploadPolicy {
                max_attempts: 0,
                ..ok
            },
            UploadPolicy {
                request_timeout: Duration::ZERO,
                ..ok
            },
        ] {
            assert!(matches!(bad.validate(), Err(UploadError::InvalidPolicy(_))));
        }
    }
}
