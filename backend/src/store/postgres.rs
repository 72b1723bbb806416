//! The server database: PostgreSQL.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::PgSslMode;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use super::error::{StoreError, StoreResult, from_sqlx};
use super::objects::FeatureObjects;
use super::sql::{Dialect, SqlStore};

/// Connections per gateway process. Each upload holds one for two short statements.
const MAX_CONNECTIONS: u32 = 16;

/// How long a call waits for a free connection before it fails as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`Store`](super::Store) on PostgreSQL plus [`FeatureObjects`].
pub type PostgresStore = SqlStore<sqlx::Postgres>;

impl SqlStore<sqlx::Postgres> {
    /// Connects (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=…]`), with
    /// `synchronous_commit=on` for every connection. Does not
    /// migrate: call [`Store::migrate`](super::Store::migrate), or use
    /// [`StoreConfig::open`](super::StoreConfig::open) which does both.
    pub async fn connect(url: &str, objects: FeatureObjects) -> StoreResult<Self> {
        Self::connect_with_ca(url, None, objects).await
    }

    /// [`PostgresStore::connect`] over TLS checked against `ca_file` (PEM), when given:
    /// `sslmode=verify-full` (the server's name must match its certificate) unless the
    /// URL asks for another mode. TLS is rustls on ring. The URL's own
    /// `sslmode=disable|prefer|require|verify-ca|verify-full` and `sslrootcert=FILE` work
    /// as in libpq; `prefer` (the default) uses TLS when the server offers it.
    pub async fn connect_with_ca(
        url: &str,
        ca_file: Option<&Path>,
        objects: FeatureObjects,
    ) -> StoreResult<Self> {
        // sqlx's parse error can quote the URL: show it redacted, never the password.
        let mut options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Invalid(format!(
                "PostgreSQL URL {}: {}",
                super::redact_url(url),
                e.to_string().replace(url, "<the URL>")
            ))
        })?;
        if let Some(ca) = ca_file {
            if !ca.is_file() {
                return Err(StoreError::Invalid(format!(
                    "PostgreSQL CA file {}: not a readable file",
                    ca.display()
                )));
            }
            let mode_in_url = url::Url::parse(url).ok().and_then(|u| {
                u.query_pairs()
                    .find(|(k, _)| k == "sslmode" || k == "ssl-mode")
                    .map(|(_, v)| v.to_ascii_lowercase())
            });
            options = options.ssl_root_cert(ca);
            // As libpq: with a root certificate, `require` checks the chain too.
            match mode_in_url.as_deref() {
                None => options = options.ssl_mode(PgSslMode::VerifyFull),
                Some("require") => options = options.ssl_mode(PgSslMode::VerifyCa),
                Some("verify-ca" | "verify-full") => {}
                Some(mode) => {
                    return Err(StoreError::Invalid(format!(
                        "PostgreSQL CA file {} with sslmode={mode}: that mode may connect \
                         without TLS or without checking the server; use verify-full (or \
                         drop the CA file)",
                        ca.display()
                    )));
                }
            }
        }
        // An acknowledged envelope must survive a crash, whatever the server's default
        // (`off` trades that for speed; the test cluster uses it).
        let options = options.options([("synchronous_commit", "on")]);
        let context = format!(
            "connecting to PostgreSQL at {}:{}",
            options.get_host(),
            options.get_port()
        );
        // One connection first, by hand: the pool retries a refused connection until
        // its acquire timeout and then reports only "pool timed out", which hides
        // whether the port was closed, TLS failed or the password was wrong.
        let deadline = tokio::time::Instant::now() + ACQUIRE_TIMEOUT;
        loop {
            match options.connect().await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    break;
                }
                // The server may be starting (a container beside this one): retry
                // until the deadline, then report the refusal itself.
                Err(sqlx::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::ConnectionRefused
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(from_sqlx(&context, e, is_transient)),
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| from_sqlx(&context, e, is_transient))?;
        Ok(SqlStore {
            writer: pool.clone(),
            group: super::group::GroupTask::start(pool.clone()),
            readers: pool,
            objects,
        })
    }
}

impl Dialect for sqlx::Postgres {
    fn transient(code: &str) -> bool {
        is_transient(code)
    }

    const CONSTRAINT_ERRORS_UNDO_THE_STATEMENT: bool = false;
    const GROUP_LIMIT: usize = 1;
    // Half the pool: while every task writes, reads still find connections. Nothing
    // keeps connections for writes, so a burst of reads can make writes wait (up to
    // the pool's acquire timeout, then a 503 the caller retries).
    const GROUP_TASKS: usize = MAX_CONNECTIONS as usize / 2;

    fn rows_affected(r: &sqlx::postgres::PgQueryResult) -> u64 {
        r.rows_affected()
    }

    /// The schema, from `backend/migrations/postgres/`, embedded in the binary.
    /// sqlx serializes concurrent migrations with an advisory lock, so gateway replicas
    /// may all migrate at start.
    fn migrator() -> Migrator {
        super::sql::migrator(&[
            (
                1,
                "init",
                include_str!("../../migrations/postgres/0001_init.sql"),
            ),
            (
                2,
                "authenticate",
                include_str!("../../migrations/postgres/0002_authenticate.sql"),
            ),
            (
                3,
                "decisions",
                include_str!("../../migrations/postgres/0003_decisions.sql"),
            ),
            (
                4,
                "learning",
                include_str!("../../migrations/postgres/0004_learning.sql"),
            ),
            (
                5,
                "packs",
                include_str!("../../migrations/postgres/0005_packs.sql"),
            ),
        ])
    }
}

/// SQLSTATE classes that mean "try again later": 08 connection exception, 40
/// transaction rollback (serialization failure, deadlock), 53 insufficient resources,
/// 57 operator intervention (shutdown, cannot connect now), 58 system error.
fn is_transient(code: &str) -> bool {
    matches!(code.get(..2), Some("08" | "40" | "53" | "57" | "58"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn transient_codes() {
        assert!(super::is_transient("57P01")); // admin_shutdown
        assert!(super::is_transient("40001")); // serialization_failure
        assert!(!super::is_transient("23505")); // unique_violation
        assert!(!super::is_transient(""));
    }
}
