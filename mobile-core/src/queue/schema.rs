//! The outbox's SQLite file: connection settings, tables and schema versioning.

use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use super::QueueError;

/// Schema version stored in `PRAGMA user_version`.
pub(super) const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for another connection's lock before failing with
/// [`QueueError::Busy`]. Only one process should use an outbox; this covers a
/// second connection briefly overlapping (e.g. during an app restart).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Both tables are STRICT, so a value of the wrong type cannot be stored by this code
/// and reading one means the file was damaged or written by something else.
const CREATE: &str = "
CREATE TABLE envelopes (
    -- Insertion order: the smallest position is the oldest envelope.
    position      INTEGER PRIMARY KEY,
    envelope_id   BLOB    NOT NULL UNIQUE CHECK (length(envelope_id) = 16),
    sequence      INTEGER NOT NULL CHECK (sequence >= 0),
    created_at_ms INTEGER NOT NULL CHECK (created_at_ms >= 0),
    bytes         BLOB    NOT NULL
) STRICT;
-- One row. Kept in the same transactions as the envelopes, so counters and contents
-- can never disagree, whatever moment the process dies at.
CREATE TABLE counters (
    id                 INTEGER PRIMARY KEY CHECK (id = 0),
    next_sequence      INTEGER NOT NULL CHECK (next_sequence >= 0),
    queued_bytes       INTEGER NOT NULL CHECK (queued_bytes >= 0),
    evicted_total      INTEGER NOT NULL,
    rejected_total     INTEGER NOT NULL,
    acknowledged_total INTEGER NOT NULL,
    last_upload_ms     INTEGER,
    last_reject_reason TEXT
) STRICT;
INSERT INTO counters VALUES (0, 1, 0, 0, 0, 0, NULL, NULL);
";

/// Opens (creating if needed) the database at `path` with the settings the crash-safety
/// argument relies on, checks it, and brings its schema to [`SCHEMA_VERSION`].
pub(super) fn open(path: &std::path::Path) -> Result<Connection, QueueError> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The first statement that reads the file: a foreign or damaged file fails here
    // with SQLITE_NOTADB, which becomes `QueueError::Corrupt`.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(QueueError::WalUnavailable(mode));
    }
    // FULL: every commit fsyncs the WAL, so a push that returned survives power loss
    // too, not only a process kill (NORMAL would only guarantee the latter).
    conn.pragma_update(None, "synchronous", "FULL")?;
    check_integrity(&conn)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// `quick_check` reads every page (O(file size), a few milliseconds for a full 16 MiB
/// outbox) and catches damage at open rather than in the middle of an upload.
fn check_integrity(conn: &Connection) -> Result<(), QueueError> {
    let verdict: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0))?;
    if verdict == "ok" {
        Ok(())
    } else {
        Err(QueueError::Corrupt(format!("quick_check: {verdict}")))
    }
}

fn migrate(conn: &mut Connection) -> Result<(), QueueError> {
    // IMMEDIATE takes the write lock before reading the version, so two connections
    // opening a fresh file cannot both try to create the tables.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    match version {
        0 => {
            // DDL and user_version are transactional in SQLite: a kill during creation
            // leaves an empty file, which the next open creates again.
            tx.execute_batch(CREATE)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        SCHEMA_VERSION => {}
        found if found > SCHEMA_VERSION => {
            return Err(QueueError::UnsupportedSchema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        found => {
            return Err(QueueError::Corrupt(format!(
                "invalid schema version {found}"
            )));
        }
    }
    let rows: i64 = tx.query_row("SELECT count(*) FROM counters WHERE id = 0", [], |r| {
        r.get(0)
    })?;
    if rows != 1 {
        return Err(QueueError::Corrupt("the counters row is missing".into()));
    }
    tx.commit()?;
    Ok(())
}
