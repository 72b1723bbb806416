//! Fixtures for the storage suite: one fresh store per test, on SQLite + a temp
//! directory, or on PostgreSQL (`DATABASE_URL`) + S3 (`S3_ENDPOINT`, `AWS_*`).
//!
//! Each PostgreSQL test gets its own database and each S3 test its own bucket, so that
//! tests may run in parallel and may assert on whole tables and whole buckets.

pub mod cases;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::TryStreamExt;
use sqlx::{PgPool, SqlitePool};
use tacit_backend::store::{
    FeatureObjects, ObjectsConfig, PostgresStore, S3Config, SqliteStore, Store, StoreConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The PostgreSQL server (any database on it; tests create their own).
pub const DATABASE_URL: &str = "DATABASE_URL";
/// The S3-compatible server (path-style; moto in `scripts/tools/s3.sh`).
pub const S3_ENDPOINT: &str = "S3_ENDPOINT";

/// Reads a variable the backend needs. Unset: skip with a message, or fail under CI,
/// where a skipped backend would look like a passed one.
pub fn required_env(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: {var} is not set but CI is: start the service \
                 (scripts/tools/postgres.sh, scripts/tools/s3.sh) and export {var}"
            );
            eprintln!("SKIPPED {test}: set {var} to run it against a real server");
            None
        }
    }
}

/// Raw access to the database under the store, for assertions the API does not offer.
#[derive(Clone)]
pub enum Raw {
    /// The SQLite pool of the store.
    Sqlite(SqlitePool),
    /// The PostgreSQL pool of the store.
    Postgres(PgPool),
}

/// Runs one expression against whichever pool `Raw` holds (the queries are portable).
macro_rules! on_pool {
    ($raw:expr, $pool:ident => $body:expr) => {
        match $raw {
            Raw::Sqlite($pool) => $body,
            Raw::Postgres($pool) => $body,
        }
    };
}

/// One test's store and what is needed to look under it.
pub struct Fixture {
    /// The store under test, as the gateway holds it.
    pub store: Arc<dyn Store>,
    /// The configuration that opens the same store again.
    pub config: StoreConfig,
    /// The database under the store.
    pub raw: Raw,
    /// A PostgreSQL connection to the server's original database (to drop ours).
    admin: Option<(PgPool, String)>,
    _tmp: tempfile::TempDir,
}

fn unique_name(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    // Bucket names allow lower-case letters, digits and `-`; keep the case's name
    // readable for whoever inspects a leftover.
    let case = test.rsplit("::").next().unwrap_or(test);
    let case: String = case
        .chars()
        .take(24)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("t-{case}-{}-{nanos}-{n}", std::process::id())
}

impl Fixture {
    /// SQLite file + local directory, in a fresh temp dir.
    pub async fn sqlite_local(_test: &str) -> Option<Fixture> {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("tacit.db");
        let objects_dir = tmp.path().join("objects");
        let store = SqliteStore::open(&db, FeatureObjects::local(&objects_dir).unwrap())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let config = StoreConfig {
            database_url: format!("sqlite://{}", db.display()),
            database_ca_file: None,
            objects: ObjectsConfig::Local(objects_dir),
            at_rest: None,
        };
        Some(Fixture {
            raw: Raw::Sqlite(store.pool().clone()),
            store: Arc::new(store),
            config,
            admin: None,
            _tmp: tmp,
        })
    }

    /// A fresh database on `DATABASE_URL`'s server + a fresh bucket on `S3_ENDPOINT`.
    pub async fn postgres_s3(test: &str) -> Option<Fixture> {
        let admin_url = required_env(DATABASE_URL, test)?;
        let endpoint = required_env(S3_ENDPOINT, test)?;
        let name = unique_name(test);

        let admin = PgPool::connect(&admin_url).await.unwrap();
        let db_name = name.replace('-', "_");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{db_name}\""
        )))
        .execute(&admin)
        .await
        .unwrap();
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&db_name);

        create_bucket(&endpoint, &name).await;
        let objects = ObjectsConfig::parse(&format!("s3://{name}"), Some(&endpoint)).unwrap();
        let config = StoreConfig {
            database_url: url.to_string(),
            database_ca_file: None,
            objects,
            at_rest: None,
        };
        let store = PostgresStore::connect(&config.database_url, config.objects.open().unwrap())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        Some(Fixture {
            raw: Raw::Postgres(store.pool().clone()),
            store: Arc::new(store),
            config,
            admin: Some((admin, db_name)),
            _tmp: tempfile::tempdir().unwrap(),
        })
    }

    /// Drops the test database (its bucket dies with the throwaway S3 server).
    pub async fn cleanup(self) {
        if let Raw::Postgres(pool) = &self.raw {
            pool.close().await;
        }
        if let Some((admin, db_name)) = &self.admin {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)"
            )))
            .execute(admin)
            .await
            .unwrap();
        }
    }

    /// A second store on the same database whose object store is gone: a removed
    /// directory, or a bucket that does not exist.
    pub async fn store_without_objects(&self) -> Arc<dyn Store> {
        match (&self.config.objects, &self.raw) {
            (ObjectsConfig::Local(_), Raw::Sqlite(_)) => {
                let gone = self._tmp.path().join("gone");
                let objects = FeatureObjects::local(&gone).unwrap();
                std::fs::remove_dir(&gone).unwrap();
                let path = self.config.database_url.trim_start_matches("sqlite://");
                Arc::new(SqliteStore::open(path.as_ref(), objects).await.unwrap())
            }
            (ObjectsConfig::S3(s3), Raw::Postgres(_)) => {
                let objects = FeatureObjects::s3(&S3Config {
                    bucket: format!("{}-missing", s3.bucket),
                    ..s3.clone()
                })
                .unwrap();
                Arc::new(
                    PostgresStore::connect(&self.config.database_url, objects)
                        .await
                        .unwrap(),
                )
            }
            _ => unreachable!("fixtures pair SQLite with files and PostgreSQL with S3"),
        }
    }

    /// A second store on the same objects whose database pool is closed.
    pub async fn store_without_database(&self) -> Arc<dyn Store> {
        let objects = self.config.objects.open().unwrap();
        match &self.raw {
            Raw::Sqlite(_) => {
                let path = self.config.database_url.trim_start_matches("sqlite://");
                let store = SqliteStore::open(path.as_ref(), objects).await.unwrap();
                store.close().await;
                Arc::new(store)
            }
            Raw::Postgres(_) => {
                let store = PostgresStore::connect(&self.config.database_url, objects)
                    .await
                    .unwrap();
                store.close().await;
                Arc::new(store)
            }
        }
    }

    /// The application tables (not sqlx's bookkeeping), sorted.
    pub async fn tables(&self) -> Vec<String> {
        let mut tables: Vec<String> = match &self.raw {
            Raw::Sqlite(pool) => sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
            )
            .fetch_all(pool)
            .await
            .unwrap(),
            Raw::Postgres(pool) => sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
            )
            .fetch_all(pool)
            .await
            .unwrap(),
        };
        tables.sort();
        tables
    }

    /// Rows of `table` that belong to `user_id` (every table has a `user_id` column:
    /// that is what makes `delete_user` complete).
    pub async fn rows_of(&self, table: &str, user_id: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE user_id = $1");
        on_pool!(&self.raw, pool => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .fetch_one(pool)
            .await
            .unwrap_or_else(|e| panic!("{table} has no user_id column? {e}")))
    }

    /// Runs a statement with one text parameter on the database under the store
    /// (to put it in a state only a crash can leave); returns the rows changed.
    pub async fn exec(&self, sql: &'static str, param: &str) -> u64 {
        on_pool!(&self.raw, pool => sqlx::query(sql)
            .bind(param)
            .execute(pool)
            .await
            .unwrap()
            .rows_affected())
    }

    /// Makes every deletion from `table` fail inside its transaction, the way the
    /// database ends one by itself: on SQLite a trigger's `RAISE(ROLLBACK)` rolls the
    /// whole transaction back at once; on PostgreSQL an exception aborts it.
    pub async fn fail_deletes_of(&self, table: &str) {
        let trigger = format!("fail_deletes_of_{table}");
        let statements = match &self.raw {
            Raw::Sqlite(_) => vec![format!(
                "CREATE TRIGGER {trigger} BEFORE DELETE ON {table} \
                 BEGIN SELECT RAISE(ROLLBACK, 'injected failure'); END"
            )],
            Raw::Postgres(_) => vec![
                "CREATE OR REPLACE FUNCTION injected_failure() RETURNS trigger \
                 LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$"
                    .to_owned(),
                format!(
                    "CREATE TRIGGER {trigger} BEFORE DELETE ON {table} \
                     FOR EACH ROW EXECUTE FUNCTION injected_failure()"
                ),
            ],
        };
        for sql in statements {
            on_pool!(&self.raw, pool => sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(pool)
                .await
                .map(|_| ())
                .unwrap());
        }
    }

    /// Undoes [`Fixture::fail_deletes_of`].
    pub async fn allow_deletes_of(&self, table: &str) {
        let sql = match &self.raw {
            Raw::Sqlite(_) => format!("DROP TRIGGER fail_deletes_of_{table}"),
            Raw::Postgres(_) => format!("DROP TRIGGER fail_deletes_of_{table} ON {table}"),
        };
        on_pool!(&self.raw, pool => sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(pool)
            .await
            .map(|_| ())
            .unwrap());
    }

    /// Whether any idle connection of the store's writing pool believes a transaction
    /// is open (its next transaction would silently be a savepoint of it).
    pub async fn writer_in_transaction(&self) -> bool {
        async fn any_open<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> bool {
            // A connection being returned (or closed) is in neither count yet: wait until
            // every open connection is idle, then take them all at once, so that none is
            // missed or looked at twice.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while pool.num_idle() < pool.size() as usize {
                assert!(
                    std::time::Instant::now() < deadline,
                    "connections still busy"
                );
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            let idle = pool.num_idle().max(1);
            let conns = futures::future::try_join_all((0..idle).map(|_| pool.acquire()))
                .await
                .unwrap();
            conns
                .iter()
                .any(|c| sqlx::Connection::is_in_transaction(&**c))
        }
        on_pool!(&self.raw, pool => any_open(pool).await)
    }

    /// All rows of `table`.
    pub async fn rows(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        on_pool!(&self.raw, pool => sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .unwrap())
    }

    /// The settings that make a returned `Ok` durable: WAL with `synchronous=FULL` on
    /// SQLite, `synchronous_commit=on` on PostgreSQL.
    pub async fn assert_durable_commits(&self) {
        match &self.raw {
            Raw::Sqlite(pool) => {
                let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                    .fetch_one(pool)
                    .await
                    .unwrap();
                let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(pool)
                    .await
                    .unwrap();
                assert_eq!((mode.as_str(), sync), ("wal", 2), "2 = FULL");
            }
            Raw::Postgres(pool) => {
                let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
                    .fetch_one(pool)
                    .await
                    .unwrap();
                assert_eq!(sync, "on");
            }
        }
    }

    /// Applied migrations.
    pub async fn migrations_applied(&self) -> i64 {
        self.rows("_sqlx_migrations").await
    }

    /// A template row, written directly (the template API has its own tests).
    pub async fn insert_template(&self, user_id: &str, factor: &str) {
        let sql = "INSERT INTO templates (user_id, factor, model_version, blob, updated_at_ms) \
                   VALUES ($1, $2, $3, $4, $5)";
        on_pool!(&self.raw, pool => sqlx::query(sql)
            .bind(user_id)
            .bind(factor)
            .bind(1_i64)
            .bind(vec![1_u8, 2, 3])
            .bind(0_i64)
            .execute(pool)
            .await
            .map(|_| ())
            .unwrap());
    }

    /// Every object key in the whole directory or bucket, sorted.
    /// A second store on the same database and objects that encrypts at rest.
    pub async fn store_with_at_rest(
        &self,
        keys: Arc<tacit_backend::store::at_rest::AtRestKeys>,
    ) -> Arc<dyn Store> {
        self.try_store_with_at_rest(keys).await.unwrap()
    }

    /// [`Fixture::store_with_at_rest`], or why it does not open.
    pub async fn try_store_with_at_rest(
        &self,
        keys: Arc<tacit_backend::store::at_rest::AtRestKeys>,
    ) -> tacit_backend::store::StoreResult<Arc<dyn Store>> {
        StoreConfig {
            at_rest: Some(keys),
            ..self.config.clone()
        }
        .open()
        .await
    }

    /// A template's blob as the database holds it.
    pub async fn raw_template(&self, user_id: &str, factor: &str) -> Vec<u8> {
        const Q: &str = "SELECT blob FROM templates WHERE user_id = $1 AND factor = $2";
        match &self.raw {
            Raw::Sqlite(p) => {
                sqlx::query_scalar(Q)
                    .bind(user_id)
                    .bind(factor)
                    .fetch_one(p)
                    .await
            }
            Raw::Postgres(p) => {
                sqlx::query_scalar(Q)
                    .bind(user_id)
                    .bind(factor)
                    .fetch_one(p)
                    .await
            }
        }
        .unwrap()
    }

    /// An object as stored (no decryption).
    pub async fn raw_object(&self, key: &str) -> Vec<u8> {
        use object_store::ObjectStoreExt;
        let path = object_store::path::Path::parse(key).unwrap();
        let got = self
            .store
            .objects()
            .object_store()
            .get(&path)
            .await
            .unwrap();
        got.bytes().await.unwrap().to_vec()
    }

    pub async fn all_objects(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .store
            .objects()
            .object_store()
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        keys.sort();
        keys
    }
}

/// Creates a bucket with an unsigned `PUT /BUCKET` (moto checks no credentials;
/// `object_store` has no bucket API).
async fn create_bucket(endpoint: &str, bucket: &str) {
    let url = url::Url::parse(endpoint).unwrap();
    let host = url.host_str().unwrap();
    let port = url.port_or_known_default().unwrap();
    let mut conn = tokio::net::TcpStream::connect((host, port))
        .await
        .unwrap_or_else(|e| panic!("S3 endpoint {endpoint} unreachable: {e}"));
    let request = format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "creating bucket {bucket}: {}",
        response.lines().next().unwrap_or("")
    );
}
