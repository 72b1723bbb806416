//! The embedded default: one SQLite file in WAL mode with `synchronous=FULL`.

use std::path::Path;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::error::{StoreResult, from_sqlx};
use super::objects::FeatureObjects;
use super::sql::{Dialect, SqlStore};

/// Read-only connections, beside the one that writes: in WAL mode readers do not wait
/// for the writer's commit.
const READERS: u32 = 4;

/// How long a writer waits for the write lock before the call fails as unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`Store`](super::Store) on one SQLite file plus [`FeatureObjects`].
pub type SqliteStore = SqlStore<sqlx::Sqlite>;

impl SqlStore<sqlx::Sqlite> {
    /// Opens (creating if missing) the database file. Does not migrate: call
    /// [`Store::migrate`](super::Store::migrate), or use
    /// [`StoreConfig::open`](super::StoreConfig::open) which does both.
    pub async fn open(path: &Path, objects: FeatureObjects) -> StoreResult<Self> {
        // The database holds device keys, templates and decisions: the service's user
        // only. SQLite gives its -wal and -shm files the database file's mode.
        let restrict = || -> std::io::Result<()> {
            if !path.exists() {
                let mut o = std::fs::OpenOptions::new();
                o.write(true).create(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
                o.open(path)?;
            }
            super::objects::owner_only(path, 0o600)
        };
        restrict().map_err(|e| {
            super::StoreError::internal(format!("creating SQLite database {}", path.display()), e)
        })?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            // WAL: readers do not block the writer. FULL: a commit is on disk when it
            // returns (NORMAL, the usual WAL pairing, may lose the last commits on
            // power loss — and an acknowledged envelope must not be lost).
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let open_error = |e| {
            from_sqlx(
                &format!("opening SQLite database {}", path.display()),
                e,
                is_transient,
            )
        };
        // The writer first: it creates the file and puts it in WAL mode, which the
        // read-only connections then find.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(open_error)?;
        // Read-only: a write sent to this pool by mistake fails loudly instead of
        // queueing beside the writer on SQLite's lock.
        let pool = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options.read_only(true))
            .await
            .map_err(open_error)?;
        Ok(SqlStore {
            readers: pool,
            group: super::group::GroupTask::start(writer.clone()),
            writer,
            objects,
        })
    }
}

impl Dialect for sqlx::Sqlite {
    fn transient(code: &str) -> bool {
        is_transient(code)
    }

    const CONSTRAINT_ERRORS_UNDO_THE_STATEMENT: bool = true;
    const GROUP_LIMIT: usize = 256;
    const GROUP_TASKS: usize = 1;

    fn rows_affected(r: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        r.rows_affected()
    }

    /// The schema, from `backend/migrations/sqlite/`, embedded in the binary.
    fn migrator() -> Migrator {
        super::sql::migrator(&[
            (
                1,
                "init",
                include_str!("../../migrations/sqlite/0001_init.sql"),
            ),
            (
                2,
                "authenticate",
                include_str!("../../migrations/sqlite/0002_authenticate.sql"),
            ),
            (
                3,
                "decisions",
                include_str!("../../migrations/sqlite/0003_decisions.sql"),
            ),
            (
                4,
                "learning",
                include_str!("../../migrations/sqlite/0004_learning.sql"),
            ),
            (
                5,
                "packs",
                include_str!("../../migrations/sqlite/0005_packs.sql"),
            ),
        ])
    }
}

/// SQLite result codes (primary code = low byte of the extended code) that mean "try
/// again later": BUSY, LOCKED, NOMEM, IOERR, FULL, CANTOPEN.
fn is_transient(code: &str) -> bool {
    code.parse::<i32>()
        .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 7 | 10 | 13 | 14))
}

#[cfg(test)]
mod tests {
    #[test]
    fn transient_codes() {
        assert!(super::is_transient("5")); // SQLITE_BUSY
        assert!(super::is_transient("517")); // SQLITE_BUSY_SNAPSHOT
        assert!(super::is_transient("266")); // SQLITE_IOERR_READ
        assert!(!super::is_transient("2067")); // SQLITE_CONSTRAINT_UNIQUE
        assert!(!super::is_transient("x"));
    }
}
