//! Replay semantics — the one place that defines them.
//!
//! An envelope is identified by `(device_id, sequence)` and carries a random
//! `envelope_id`. The backend must remember, for every device, the
//! `(sequence, envelope_id)` of every envelope it has **stored** whose `created_at` is
//! within the acceptance window (`max_age` into the past, `max_future_skew` into the
//! future). Anything older than the window is rejected by age alone, so older entries
//! may be pruned without weakening the check. With that memory, [`check`] decides:
//!
//! * never seen → [`ReplayVerdict::Fresh`]: store it, then acknowledge;
//! * the same `(sequence, envelope_id)` again → [`ReplayVerdict::Duplicate`]: an
//!   honest retry (the acknowledgement was lost); acknowledge again, do not store again;
//! * the same sequence with another envelope id → [`ReplayVerdict::SequenceReused`]:
//!   a forgery or a cloned device; reject;
//! * `created_at` outside the window → [`ReplayVerdict::Expired`] /
//!   [`ReplayVerdict::FromTheFuture`]; reject.
//!
//! Sequence numbers need not arrive in order (outboxes evict, batches retry), so there
//! is no "highest sequence" rule; uniqueness per device within the window is what
//! stops replays. A captured envelope replayed later is either a `Duplicate` (harmless:
//! the server already holds it, nothing is stored twice and nothing new is learnt) or
//! `Expired`.

/// The acceptance window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayPolicy {
    /// Oldest acceptable `created_at`, relative to the server clock (ms). Outboxes hold
    /// envelopes while the phone is offline, so this is days, not seconds.
    pub max_age_ms: u64,
    /// How far ahead of the server clock a phone's clock may run (ms).
    pub max_future_skew_ms: u64,
}

impl Default for ReplayPolicy {
    fn default() -> Self {
        ReplayPolicy {
            max_age_ms: 14 * 24 * 3600 * 1000,
            max_future_skew_ms: 10 * 60 * 1000,
        }
    }
}

impl ReplayPolicy {
    /// Entries older than this (server clock, ms) can be forgotten.
    pub fn prune_before(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.max_age_ms)
    }
}

/// The outcome of a replay check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayVerdict {
    /// New: store, then acknowledge.
    Fresh,
    /// Already stored with the same envelope id: acknowledge again, store nothing.
    Duplicate,
    /// The sequence number was used by a different envelope: reject.
    SequenceReused,
    /// Created before the acceptance window: reject.
    Expired,
    /// Created too far in the future: reject.
    FromTheFuture,
}

impl ReplayVerdict {
    /// Whether the envelope is acknowledged (stored now or before).
    pub fn is_acknowledged(self) -> bool {
        matches!(self, ReplayVerdict::Fresh | ReplayVerdict::Duplicate)
    }
}

/// Decides one envelope. `seen` is the envelope id the backend stored earlier for the
/// same device and sequence number, if any.
pub fn check(
    policy: &ReplayPolicy,
    now_ms: u64,
    created_at_ms: u64,
    envelope_id: &[u8; 16],
    seen: Option<&[u8; 16]>,
) -> ReplayVerdict {
    // A stored duplicate is acknowledged even if it has since aged out of the window
    // (until pruned), so an honest retry never turns into a rejection.
    match seen {
        Some(id) if id == envelope_id => return ReplayVerdict::Duplicate,
        Some(_) => return ReplayVerdict::SequenceReused,
        None => {}
    }
    if created_at_ms < policy.prune_before(now_ms) {
        return ReplayVerdict::Expired;
    }
    if created_at_ms > now_ms.saturating_add(policy.max_future_skew_ms) {
        return ReplayVerdict::FromTheFuture;
    }
    ReplayVerdict::Fresh
}

/// Where a feature record's window lies relative to its envelope, when it may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WindowTimeError {
    /// The window ends after the envelope was sealed (beyond the allowed skew): a
    /// window is observed before it is sealed, on the same device clock.
    #[error("record {index}: window ends after its envelope was created")]
    AfterEnvelope {
        /// The record's index in the payload.
        index: usize,
    },
    /// The window starts more than the acceptance window before its envelope.
    #[error("record {index}: window starts before the acceptance window")]
    BeforeWindow {
        /// The record's index in the payload.
        index: usize,
    },
}

impl WindowTimeError {
    /// The stable rejection code: `window_out_of_range`.
    pub fn code(&self) -> &'static str {
        "window_out_of_range"
    }
}

/// Checks that every record's window lies within `[created_at − max_age, created_at +
/// max_future_skew]` of its envelope (whose `created_at` [`check`] bounds against the
/// server clock, so every time in an accepted payload is bounded by the server clock).
/// A window far in the future would otherwise count as fresh evidence for ever.
pub fn check_windows(
    policy: &ReplayPolicy,
    created_at_ms: u64,
    payload: &crate::payload::Payload,
) -> Result<(), WindowTimeError> {
    let earliest = created_at_ms.saturating_sub(policy.max_age_ms);
    let latest = created_at_ms.saturating_add(policy.max_future_skew_ms);
    for (index, r) in payload.records.iter().enumerate() {
        if r.window_start_ms < earliest {
            return Err(WindowTimeError::BeforeWindow { index });
        }
        if r.window_start_ms.saturating_add(u64::from(r.window_ms)) > latest {
            return Err(WindowTimeError::AfterEnvelope { index });
        }
    }
    // Face images follow the records (their index continues the records').
    for (k, im) in payload.face_images.iter().enumerate() {
        let index = payload.records.len() + k;
        if im.captured_at_ms < earliest {
            return Err(WindowTimeError::BeforeWindow { index });
        }
        if im.captured_at_ms > latest {
            return Err(WindowTimeError::AfterEnvelope { index });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 24 * 3600 * 1000;

    #[test]
    fn verdicts() {
        let p = ReplayPolicy::default();
        let now = 100 * DAY;
        let id = [7u8; 16];
        assert_eq!(check(&p, now, now - DAY, &id, None), ReplayVerdict::Fresh);
        assert_eq!(
            check(&p, now, now - DAY, &id, Some(&id)),
            ReplayVerdict::Duplicate
        );
        assert_eq!(
            check(&p, now, now - DAY, &id, Some(&[8; 16])),
            ReplayVerdict::SequenceReused
        );
        assert_eq!(
            check(&p, now, now - 15 * DAY, &id, None),
            ReplayVerdict::Expired
        );
        assert_eq!(
            check(&p, now, now - 15 * DAY, &id, Some(&id)),
            ReplayVerdict::Duplicate
        );
        assert_eq!(
            check(&p, now, now + DAY, &id, None),
            ReplayVerdict::FromTheFuture
        );
        assert_eq!(
            check(&p, now, now + 60_000, &id, None),
            ReplayVerdict::Fresh
        );
        assert!(ReplayVerdict::Duplicate.is_acknowledged());
        assert!(!ReplayVerdict::SequenceReused.is_acknowledged());
    }

    #[test]
    fn record_windows_are_bounded_by_their_envelope() {
        use crate::payload::{FactorKind, FeatureRecord, Payload};
        let p = ReplayPolicy::default();
        let created = 100 * DAY;
        let payload = |start: u64, len: u32| Payload {
            face_images: Vec::new(),
            records: vec![FeatureRecord {
                factor: FactorKind::Gait,
                schema_version: 1,
                window_start_ms: start,
                window_ms: len,
                context: None,
                values: vec![],
            }],
        };
        assert_eq!(
            check_windows(&p, created, &payload(created - 5_000, 5_000)),
            Ok(())
        );
        assert_eq!(
            check_windows(&p, created, &payload(created - 13 * DAY, 1)),
            Ok(())
        );
        assert_eq!(
            check_windows(&p, created, &payload(u64::MAX - 10, 5_000)),
            Err(WindowTimeError::AfterEnvelope { index: 0 })
        );
        assert_eq!(
            check_windows(&p, created, &payload(created, u32::MAX)),
            Err(WindowTimeError::AfterEnvelope { index: 0 })
        );
        assert_eq!(
            check_windows(&p, created, &payload(created - 15 * DAY, 1)),
            Err(WindowTimeError::BeforeWindow { index: 0 })
        );
        assert_eq!(
            check_windows(&p, created, &payload(0, 1)).map_err(|e| e.code()),
            Err("window_out_of_range")
        );
    }

    #[test]
    fn window_edges_do_not_overflow() {
        let p = ReplayPolicy::default();
        assert_eq!(check(&p, 0, 0, &[0; 16], None), ReplayVerdict::Fresh);
        assert_eq!(
            check(&p, u64::MAX, u64::MAX, &[0; 16], None),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            check(&p, 0, u64::MAX, &[0; 16], None),
            ReplayVerdict::FromTheFuture
        );
    }
}
