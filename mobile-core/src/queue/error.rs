//! Why an outbox operation failed.

use std::path::PathBuf;

use rusqlite::ErrorCode;

/// Why an outbox operation failed. Nothing here panics: a damaged or foreign file, a
/// full disk or a poisoned lock are all values of this type.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The data directory could not be created.
    #[error("cannot create the outbox directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an SQLite database, fails its integrity check, or holds values
    /// the outbox never writes.
    #[error("the outbox database is corrupt or not an outbox: {0}")]
    Corrupt(String),
    /// The file was written by a newer build with a schema this build does not know.
    #[error("outbox schema version {found} is newer than this build understands ({supported})")]
    UnsupportedSchema {
        /// Version found in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// The file system refused write-ahead logging (the crash-safety argument needs it).
    #[error("the outbox could not enable WAL journaling (journal mode is {0:?})")]
    WalUnavailable(String),
    /// The envelope alone is larger than the outbox may hold.
    #[error("envelope of {len} bytes exceeds the outbox limit of {max} bytes")]
    EnvelopeTooLarge {
        /// Size of the envelope.
        len: u64,
        /// The configured limit ([`OutboxConfig::max_bytes`](super::OutboxConfig)).
        max: u64,
    },
    /// An envelope with this id is already queued.
    #[error("envelope {0} is already queued")]
    DuplicateEnvelope(String),
    /// A value does not fit SQLite's signed 64-bit integers.
    #[error("{field} = {value} does not fit the outbox's 63-bit integers")]
    OutOfRange {
        /// Which value.
        field: &'static str,
        /// The value.
        value: u64,
    },
    /// Another thread panicked while holding the outbox.
    #[error("the outbox lock was poisoned by a panic in another thread")]
    Poisoned,
    /// Another process holds a lock on the file for longer than the busy timeout.
    #[error("the outbox is locked by another connection: {0}")]
    Busy(String),
    /// The disk is full; the transaction was rolled back.
    #[error("the disk is full: {0}")]
    DiskFull(String),
    /// Any other SQLite failure (I/O error, permissions, ...).
    #[error("outbox database error: {0}")]
    Database(String),
}

impl From<rusqlite::Error> for QueueError {
    fn from(e: rusqlite::Error) -> Self {
        // Classified by SQLite's primary result code so that callers can tell "delete
        // the file and start over" (corrupt) from "try again later" (busy, disk full).
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                QueueError::Corrupt(e.to_string())
            }
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                QueueError::Busy(e.to_string())
            }
            Some(ErrorCode::DiskFull) => QueueError::DiskFull(e.to_string()),
            _ => match e {
                // A stored value of the wrong type can only come from a damaged or
                // foreign file: the outbox's tables are STRICT.
                rusqlite::Error::InvalidColumnType(..)
                | rusqlite::Error::IntegralValueOutOfRange(..)
                | rusqlite::Error::FromSqlConversionFailure(..) => {
                    QueueError::Corrupt(e.to_string())
                }
                other => QueueError::Database(other.to_string()),
            },
        }
    }
}
