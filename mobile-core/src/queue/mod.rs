//! The outbox: a crash-safe, bounded, persistent queue of sealed envelopes waiting for
//! upload.
//!
//! # Guarantees
//! * **An envelope is fully in or not at all.** [`Outbox::push`] is one SQLite
//!   transaction holding the insert, the evictions it needs and the counter updates.
//!   After [`Outbox::push`] returns `Ok`, the envelope survives a process kill, an OS
//!   crash and a power loss. If the process dies during the call, the envelope is
//!   either completely in (the commit reached the WAL before the kill) or completely
//!   absent, with the counters matching either way.
//! * **Acknowledgement is atomic too:** [`Outbox::acknowledge`] and [`Outbox::reject`]
//!   delete all the given envelopes and update the counters in one transaction.
//! * **Bounded:** at most [`OutboxConfig::max_bytes`] bytes of envelopes are kept; a
//!   push that would exceed it evicts the oldest envelopes first (counted in
//!   [`OutboxStats::evicted_total`]), because fresh behaviour is worth more than old.
//! * **Sequence numbers** from [`Outbox::allocate_sequence`] are persistent and
//!   strictly increasing across restarts (a committed counter, never reused). Losing
//!   the file restarts them; the backend's replay rule is uniqueness per device within
//!   a time window (`tacit_shared::replay`), and a lost outbox normally means a new
//!   device key as well.
//!
//! # Why SQLite in WAL mode
//! The outbox needs atomic multi-row updates (insert + evict + counters) that survive
//! being killed at any instruction, which is exactly what a database transaction is.
//! SQLite ships with both mobile platforms' toolchains (here it is compiled in with
//! rusqlite's `bundled` feature, so the version is ours), is one file, and its crash
//! behaviour is among the most tested code in existence.
//!
//! In write-ahead-log mode a commit *appends* the changed pages to `outbox.sqlite3-wal`,
//! followed by a commit frame; every frame carries a checksum chained over all the
//! frames before it and the WAL's random salt. The database file itself is only
//! changed later by a checkpoint, which copies committed pages from the WAL and can
//! be interrupted and redone. On the next open, SQLite replays the WAL up to the last
//! frame whose checksum verifies *and* that ends a transaction; anything after it (a
//! half-written transaction of a killed process) is ignored. So a reader sees every
//! committed transaction completely and never a part of an uncommitted one: "fully in
//! or not at all".
//!
//! A process kill never loses a write that `write(2)` accepted: it is in the kernel's
//! page cache. `PRAGMA synchronous = FULL` additionally makes every commit `fsync` the
//! WAL before returning, so "push returned" also means "on flash" and the caller may
//! discard the source data. The price is one `fsync` per push (about a millisecond on
//! phone flash), negligible at a few envelopes per minute.
//!
//! Alternatives rejected: one file per envelope (needs rename + directory `fsync`
//! discipline, and eviction/counters are no longer atomic with the insert), and a
//! hand-written append-only log (checksums, torn-tail recovery and compaction are
//! what SQLite's WAL already is).
//!
//! The whole crash argument is exercised by `tests/outbox_kill.rs`, which SIGKILLs a
//! pushing and acknowledging process at random moments and checks every reopen.
//!
//! # Concurrency
//! [`Outbox`] is `Send + Sync`: one connection behind a mutex. Every method is one short
//! transaction (plus one `fsync`), so callers in async code may call it inline.

mod error;
mod outbox;
mod schema;

pub use error::QueueError;
pub use outbox::{MAX_REASON_CHARS, Outbox};

/// File name of the outbox database inside its data directory. SQLite keeps two more
/// files beside it while open (`-wal` and `-shm`); all three belong to the outbox.
pub const OUTBOX_FILE: &str = "outbox.sqlite3";

/// Default [`OutboxConfig::max_bytes`]: 16 MiB, several days of features.
pub const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// Outbox settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxConfig {
    /// Most envelope bytes kept (the sum of the envelopes' lengths, not the file size,
    /// which adds SQLite's page and index overhead). Oldest envelopes are evicted to
    /// stay under it.
    pub max_bytes: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// One sealed envelope as the outbox stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEnvelope {
    /// The envelope's id (from its header); the server acknowledges by it.
    pub envelope_id: [u8; 16],
    /// The envelope's sequence number (from [`Outbox::allocate_sequence`]).
    pub sequence: u64,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: u64,
    /// The encoded envelope, exactly as it will be uploaded.
    pub bytes: Vec<u8>,
}

/// Counters and contents of an outbox, for diagnostics and scheduling.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboxStats {
    /// Envelopes waiting.
    pub envelopes: u64,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Envelopes evicted (oldest first) to stay under the byte limit, ever.
    pub evicted_total: u64,
    /// Envelopes the server rejected for good, ever.
    pub rejected_total: u64,
    /// Envelopes the server acknowledged (stored or duplicate), ever.
    pub acknowledged_total: u64,
    /// Time of the last successful upload, Unix milliseconds.
    pub last_upload_ms: Option<u64>,
    /// The server's reason code for the most recent rejection.
    pub last_reject_reason: Option<String>,
}

#[cfg(test)]
mod tests;
