//! The server database: PostgreSQL.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::error::{StoreError, StoreResult, from_sqlx};
use super::objects::FeatureObjects;
use super::sql::impl_sql_store;

/// Connections per gateway process. Each upload holds one for two short statements.
const MAX_CONNECTIONS: u32 = 16;

/// How long a call waits for a free connection before it fails as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`Store`](super::Store) on PostgreSQL plus [`FeatureObjects`].
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    objects: FeatureObjects,
}

impl PostgresStore {
    /// Connects (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=…]`), with
    /// `synchronous_commit=on` for every connection. Does not
    /// migrate: call [`Store::migrate`](super::Store::migrate), or use
    /// [`StoreConfig::open`](super::StoreConfig::open) which does both.
    pub async fn connect(url: &str, objects: FeatureObjects) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("PostgreSQL URL: {e}")))?
            // An acknowledged envelope must survive a crash, whatever the server's
            // default (`off` trades that for speed; the test cluster uses it).
            .options([("synchronous_commit", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| from_sqlx("connecting to PostgreSQL", e, is_transient))?;
        Ok(PostgresStore { pool, objects })
    }

    /// The connection pool, for diagnostics and tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
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
        ])
    }
}

/// SQLSTATE classes that mean "try again later": 08 connection exception, 40
/// transaction rollback (serialization failure, deadlock), 53 insufficient resources,
/// 57 operator intervention (shutdown, cannot connect now), 58 system error.
fn is_transient(code: &str) -> bool {
    matches!(code.get(..2), Some("08" | "40" | "53" | "57" | "58"))
}

impl_sql_store!(PostgresStore, is_transient);

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
