//! The phone's reading of the server's clock.
//!
//! Envelopes carry their creation time and authentication requests their request time,
//! and the server refuses times too far from its own (an envelope more than 10 minutes
//! ahead, a request more than 5 minutes off). Phone clocks are wrong often enough —
//! set by hand, a dead battery, a test device — that the client keeps the offset to the
//! server learned from the `Date` header of every answer it gets, and stamps with
//! `system clock + offset`. The offset only moves when it changes by more than
//! [`JITTER_MS`] (`Date` has a one-second resolution) and is kept in the data directory
//! so an app restart offline still stamps correctly.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::header::{DATE, HeaderMap};

/// Offsets closer than this to the current one are `Date`'s rounding, not skew.
pub const JITTER_MS: i64 = 2_000;

/// The file holding the offset (decimal milliseconds).
const OFFSET_FILE: &str = "clock_offset_ms";

/// The server's time as the phone sees it.
#[derive(Debug)]
pub(crate) struct ServerClock {
    offset_ms: AtomicI64,
    /// Added to the system clock: a phone whose clock is wrong (simulation, tests).
    simulated_skew_ms: i64,
    file: PathBuf,
}

fn system_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl ServerClock {
    /// The clock of the data directory `dir` (offset 0 when none was learned yet).
    pub(crate) fn open(dir: &Path, simulated_skew_ms: i64) -> ServerClock {
        let file = dir.join(OFFSET_FILE);
        let offset = std::fs::read_to_string(&file)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            // A stored offset beyond ten years is damage, not skew.
            .filter(|o| o.abs() < 10 * 365 * 86_400_000)
            .unwrap_or(0);
        ServerClock {
            offset_ms: AtomicI64::new(offset),
            simulated_skew_ms,
            file,
        }
    }

    /// The phone's own clock (the system clock, plus any simulated skew).
    fn local_ms(&self) -> i64 {
        system_ms().saturating_add(self.simulated_skew_ms)
    }

    /// Now, on the server's clock as last learned (Unix ms).
    pub(crate) fn now_ms(&self) -> u64 {
        self.local_ms()
            .saturating_add(self.offset_ms.load(Ordering::Relaxed))
            .max(0) as u64
    }

    /// The offset in use (server minus phone, ms).
    pub(crate) fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// Learns from an answer's `Date` header; returns whether the offset changed.
    pub(crate) fn observe(&self, headers: &HeaderMap) -> bool {
        let Some(server) = headers
            .get(DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        else {
            return false;
        };
        // `Date` is truncated to the second: the middle of that second is the estimate.
        let offset = server.as_millis() as i64 + 500 - self.local_ms();
        let current = self.offset_ms.load(Ordering::Relaxed);
        if (offset - current).abs() <= JITTER_MS {
            return false;
        }
        self.offset_ms.store(offset, Ordering::Relaxed);
        tracing::warn!(
            offset_ms = offset,
            "the phone's clock differs from the server's; stamping with the server's time"
        );
        // Best effort: without the file the offset is learned again at the next answer.
        let tmp = self.file.with_extension("tmp");
        if std::fs::write(&tmp, offset.to_string()).is_ok() {
            let _ = std::fs::rename(&tmp, &self.file);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date_header(at: SystemTime) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(DATE, httpdate::fmt_http_date(at).parse().expect("header"));
        h
    }

    #[test]
    fn learns_keeps_and_persists_the_offset() {
        let dir = std::env::temp_dir().join(format!("tacit-clock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let _ = std::fs::remove_file(dir.join(OFFSET_FILE));
        // The phone is two hours ahead of the server.
        let c = ServerClock::open(&dir, 7_200_000);
        assert!(c.observe(&date_header(SystemTime::now())));
        assert!(
            (c.offset_ms() + 7_200_000).abs() < 1_500,
            "{}",
            c.offset_ms()
        );
        assert!((c.now_ms() as i64 - system_ms()).abs() < 1_500);
        // Within the jitter: unchanged; a missing or garbage Date: unchanged.
        assert!(!c.observe(&date_header(SystemTime::now())));
        assert!(!c.observe(&HeaderMap::new()));
        let mut bad = HeaderMap::new();
        bad.insert(DATE, "yesterday".parse().expect("header"));
        assert!(!c.observe(&bad));
        // Reopened (the app restarted offline): the same offset.
        let again = ServerClock::open(&dir, 7_200_000);
        assert_eq!(again.offset_ms(), c.offset_ms());
        // A damaged file is ignored.
        std::fs::write(dir.join(OFFSET_FILE), "not a number").expect("write");
        assert_eq!(ServerClock::open(&dir, 0).offset_ms(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
