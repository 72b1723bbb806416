//! The SQL of the store — one text for SQLite and PostgreSQL — and the [`Store`]
//! implementation both databases share.
//!
//! The queries stay in the common subset: `$N` placeholders (sqlx's SQLite driver
//! accepts them), `ON CONFLICT … DO NOTHING`, `DELETE … RETURNING`, 64-bit integers,
//! byte strings. The implementation is written once, generic over the database
//! ([`SqlStore<DB>`] for any [`Dialect`]); sqlx's executor and codec bounds are stated
//! once per impl block. `sqlite.rs` and `postgres.rs` hold only what differs: how to
//! connect, the migrations, and which error codes are temporary.
//!
//! [`Store`]: super::Store

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::error::ErrorKind;
use sqlx::migrate::MigrateError;

use super::error::{StoreError, constraint_kind, from_sqlx};

pub(crate) const INSERT_USER: &str = "INSERT INTO users (user_id, created_at_ms) VALUES ($1, $2)";
pub(crate) const USER_EXISTS: &str = "SELECT COUNT(*) FROM users WHERE user_id = $1";

pub(crate) const INSERT_TOKEN: &str =
    "INSERT INTO enrolment_tokens (token_hash, user_id, expires_at_ms) VALUES ($1, $2, $3)";
/// Deleting is what makes a token single-use: of concurrent deletes of one row exactly
/// one returns it (PostgreSQL row lock; SQLite serializes writers).
pub(crate) const CONSUME_TOKEN: &str =
    "DELETE FROM enrolment_tokens WHERE token_hash = $1 RETURNING user_id, expires_at_ms";

pub(crate) const INSERT_DEVICE: &str = "INSERT INTO devices \
     (device_id, user_id, algorithm, public_key, created_at_ms, revoked) \
     VALUES ($1, $2, $3, $4, $5, $6)";
pub(crate) const GET_DEVICE: &str = "SELECT device_id, user_id, algorithm, public_key, \
     created_at_ms, revoked FROM devices WHERE device_id = $1";
pub(crate) const USER_DEVICES: &str = "SELECT device_id, user_id, algorithm, public_key, \
     created_at_ms, revoked FROM devices WHERE user_id = $1 ORDER BY created_at_ms, device_id";

/// Envelope rows, many per statement: the head, then `VALUES (...), (...)` from a query
/// builder, then the tail. `DO NOTHING` instead of catching the unique violation: on
/// PostgreSQL a failed statement would abort the surrounding transaction. RETURNING
/// (SQLite 3.35+, PostgreSQL) names the rows that were new.
pub(crate) const INSERT_ENVELOPES_HEAD: &str = "INSERT INTO envelopes \
     (device_id, sequence, envelope_id, user_id, created_at_ms, received_at_ms, records, object_key) ";
pub(crate) const INSERT_ENVELOPES_TAIL: &str =
    " ON CONFLICT (device_id, sequence) DO NOTHING RETURNING sequence";
/// Rows per multi-row insert: 8 parameters each, far below SQLite's 32,766 and
/// PostgreSQL's 65,535 parameters per statement.
pub(crate) const INSERT_CHUNK: usize = 256;
/// Attempts of a group commit whose envelopes keep meeting rows of concurrent uploads.
pub(crate) const GROUP_ATTEMPTS: usize = 4;
pub(crate) const SEEN: &str =
    "SELECT envelope_id FROM envelopes WHERE device_id = $1 AND sequence = $2";
pub(crate) const SEEN_AT: &str = "SELECT envelope_id, received_at_ms, object_key FROM envelopes WHERE device_id = $1 AND sequence = $2";
pub(crate) const SEEN_ONE: &str = "SELECT sequence, envelope_id, received_at_ms, object_key \
     FROM envelopes WHERE device_id = $1 AND sequence = $2";
/// A device's envelopes in a range of stored sequence numbers (the primary key).
pub(crate) const SEEN_RANGE: &str = "SELECT sequence, envelope_id, received_at_ms, object_key \
     FROM envelopes WHERE device_id = $1 AND sequence >= $2 AND sequence <= $3";
pub(crate) const COUNT_ENVELOPES: &str = "SELECT COUNT(*) FROM envelopes WHERE user_id = $1";

/// Child rows before the user row, so that the foreign keys hold at every statement.
/// The first statement writes, which makes SQLite take the write lock at once (a
/// deferred transaction that reads first could fail to upgrade under contention).
pub(crate) const DELETE_USER_ENVELOPES: &str = "DELETE FROM envelopes WHERE user_id = $1";
pub(crate) const DELETE_USER_TOKENS: &str = "DELETE FROM enrolment_tokens WHERE user_id = $1";
pub(crate) const DELETE_USER_TEMPLATES: &str = "DELETE FROM templates WHERE user_id = $1";
pub(crate) const DELETE_USER_DECISIONS: &str = "DELETE FROM decisions WHERE user_id = $1";
pub(crate) const DELETE_USER_DEVICES: &str = "DELETE FROM devices WHERE user_id = $1";
pub(crate) const DELETE_USER: &str = "DELETE FROM users WHERE user_id = $1";

/// One row per (user, factor): a new enrolment replaces the old template.
pub(crate) const PUT_TEMPLATE: &str = "INSERT INTO templates \
     (user_id, factor, model_version, blob, updated_at_ms, built_with) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (user_id, factor) DO UPDATE SET model_version = excluded.model_version, \
     blob = excluded.blob, updated_at_ms = excluded.updated_at_ms, built_with = excluded.built_with";
pub(crate) const GET_TEMPLATES: &str = "SELECT factor, model_version, blob, updated_at_ms, built_with \
     FROM templates WHERE user_id = $1 ORDER BY factor";
/// Templates of a factor built by another known model version, oldest first (the
/// `templates_factor_built_with` index). `''` (the factor did not name its model) is
/// never stale: rebuilding it would give `''` again.
pub(crate) const STALE_TEMPLATES: &str = "SELECT user_id FROM templates \
     WHERE factor = $1 AND built_with <> $2 AND built_with <> '' \
     ORDER BY updated_at_ms, user_id LIMIT $3";
pub(crate) const RECENT_ENVELOPES: &str = "SELECT envelope_id, object_key, created_at_ms, received_at_ms FROM envelopes \
     WHERE user_id = $1 AND created_at_ms >= $2 ORDER BY created_at_ms DESC LIMIT $3";
/// Compare-and-set in one statement: the row lock (PostgreSQL) or the single writer
/// (SQLite) makes the comparison and the write atomic.
pub(crate) const ADVANCE_AUTH_CLOCK: &str =
    "UPDATE devices SET last_auth_ms = $2 WHERE device_id = $1 AND last_auth_ms < $2";
/// A pack's row before its object is written (see `store_envelopes`).
pub(crate) const INSERT_PACK: &str = "INSERT INTO packs \
     (object_key, user_id, device_id, first_sequence, last_sequence, newest_created_at_ms, \
     written_at_ms, committed) VALUES ($1, $2, $3, $4, $5, $6, $7, FALSE)";
/// In the transaction of the pack's envelope rows; 0 rows when the row was deleted or
/// claimed by the sweep of unfinished packs (`written_at_ms` 0).
pub(crate) const COMMIT_PACK: &str = "UPDATE packs SET committed = TRUE \
     WHERE object_key = $1 AND committed = FALSE AND written_at_ms > 0";
/// The sweep of unfinished packs claims a row before deleting its object, so that a
/// commit arriving late fails instead of naming a deleted object (the row lock, or
/// SQLite's single writer, orders the two updates).
pub(crate) const CLAIM_UNFINISHED_PACK: &str =
    "UPDATE packs SET written_at_ms = 0 WHERE object_key = $1 AND committed = FALSE";
/// The oldest committed packs whose newest envelope was created before a time (the
/// `packs_expiry` index).
pub(crate) const EXPIRED_PACKS: &str = "SELECT object_key, device_id, first_sequence, last_sequence \
     FROM packs WHERE committed = TRUE AND newest_created_at_ms < $1 \
     ORDER BY newest_created_at_ms LIMIT $2";
/// A pack's envelope rows, through the primary key (a device's sequence range).
pub(crate) const DELETE_PACK_ENVELOPES: &str = "DELETE FROM envelopes \
     WHERE device_id = $1 AND sequence >= $2 AND sequence <= $3 AND object_key = $4";
pub(crate) const DELETE_PACK: &str = "DELETE FROM packs WHERE object_key = $1";
/// Packs whose commit never came (a crash or failure between the object and the
/// rows), oldest first (the `packs_unfinished` index).
pub(crate) const UNFINISHED_PACKS: &str = "SELECT object_key FROM packs \
     WHERE committed = FALSE AND written_at_ms < $1 ORDER BY written_at_ms LIMIT $2";
pub(crate) const DELETE_UNFINISHED_PACK: &str =
    "DELETE FROM packs WHERE object_key = $1 AND committed = FALSE";
pub(crate) const DELETE_USER_PACKS: &str = "DELETE FROM packs WHERE user_id = $1";
pub(crate) const REVOKE_DEVICE: &str = "UPDATE devices SET revoked = $2 WHERE device_id = $1";
/// The newest templates and feature objects, sampled when encryption at rest is first
/// turned on over a store: are any of them unencrypted?
pub(crate) const SAMPLE_TEMPLATE_BLOBS: &str =
    "SELECT blob FROM templates ORDER BY updated_at_ms DESC LIMIT 16";
pub(crate) const SAMPLE_OBJECT_KEYS: &str =
    "SELECT object_key FROM envelopes ORDER BY received_at_ms DESC LIMIT 16";
pub(crate) const SET_TRAINING_CONSENT: &str =
    "UPDATE users SET training_consent = $2 WHERE user_id = $1";
pub(crate) const GET_TRAINING_CONSENT: &str =
    "SELECT training_consent FROM users WHERE user_id = $1";
pub(crate) const TRAINING_USERS: &str =
    "SELECT user_id, created_at_ms FROM users WHERE training_consent ORDER BY user_id";
pub(crate) const DELETE_TEMPLATE: &str = "DELETE FROM templates WHERE user_id = $1 AND factor = $2";
pub(crate) const GET_REJECTS: &str = "SELECT consecutive_rejects FROM users WHERE user_id = $1";
pub(crate) const INCREMENT_REJECTS: &str = "UPDATE users SET consecutive_rejects = \
     consecutive_rejects + 1 WHERE user_id = $1 RETURNING consecutive_rejects";
pub(crate) const RESET_REJECTS: &str =
    "UPDATE users SET consecutive_rejects = 0 WHERE user_id = $1 RETURNING consecutive_rejects";

pub(crate) const INSERT_DECISION: &str = "INSERT INTO decisions \
     (token_id, user_id, device_id, decided_at_ms, decision, confidence, llr, degraded, factors, nonce, token) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
/// Keeps the user's newest `$2` decisions (ties broken by token id, so the cut is exact).
pub(crate) const PRUNE_DECISIONS: &str = "DELETE FROM decisions WHERE user_id = $1 AND token_id NOT IN \
     (SELECT token_id FROM decisions WHERE user_id = $1 ORDER BY decided_at_ms DESC, token_id DESC LIMIT $2)";
pub(crate) const USER_DECISIONS: &str = "SELECT token_id, device_id, decided_at_ms, decision, confidence, llr, \
     degraded, factors, nonce, token FROM decisions WHERE user_id = $1 \
     ORDER BY decided_at_ms DESC, token_id DESC LIMIT $2";
pub(crate) const EXPIRE_DECISIONS: &str = "DELETE FROM decisions WHERE decided_at_ms < $1";

/// A `decisions` row as USER_DECISIONS selects it.
pub(crate) type DecisionDbRow = (
    String,
    Vec<u8>,
    i64,
    String,
    f64,
    f64,
    bool,
    String,
    String,
    String,
);

/// A decision from its database row.
pub(crate) fn decision_from_db(
    user_id: &str,
    (token_id, device_id, at, decision, confidence, llr, degraded, factors, nonce, token): DecisionDbRow,
) -> super::StoreResult<super::DecisionRow> {
    use super::model::{id16_from_db, ms_from_db};
    Ok(super::DecisionRow {
        token_id,
        user_id: user_id.to_owned(),
        device_id: id16_from_db(&device_id, "device id")?,
        decided_at_ms: ms_from_db(at, "decision time")?,
        decision,
        confidence,
        llr,
        degraded,
        factors: serde_json::from_str(&factors)
            .map_err(|_| StoreError::corrupt("decision factors are not a JSON list"))?,
        nonce: (!nonce.is_empty()).then_some(nonce),
        token,
    })
}

pub(crate) const PING: &str = "SELECT 1";

/// What a template's at-rest encryption is bound to: its user, factor and format.
pub(crate) fn template_context(user_id: &str, factor: &str, format: u32) -> String {
    format!("templates/{user_id}/{factor}/{format}")
}

/// Server clock, Unix ms.
/// A `devices` row as GET_DEVICE and USER_DEVICES select it.
pub(crate) type DeviceDbRow = (Vec<u8>, String, i64, Vec<u8>, i64, bool);

/// A device from its database row, checking what the database cannot.
pub(crate) fn device_from_db(
    (id, user_id, algorithm, public_key, created_at_ms, revoked): DeviceDbRow,
) -> super::StoreResult<super::DeviceRow> {
    use super::model::{id16_from_db, ms_from_db};
    Ok(super::DeviceRow {
        device_id: id16_from_db(&id, "device id")?,
        user_id,
        algorithm: u8::try_from(algorithm)
            .map_err(|_| StoreError::corrupt(format!("device algorithm {algorithm}")))?,
        public_key,
        created_at_ms: ms_from_db(created_at_ms, "device creation time")?,
        revoked,
    })
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Whether an error is a violation of a UNIQUE or PRIMARY KEY constraint.
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    constraint_kind(err) == Some(ErrorKind::UniqueViolation)
}

/// Whether an error is a violation of a FOREIGN KEY constraint.
pub(crate) fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    constraint_kind(err) == Some(ErrorKind::ForeignKeyViolation)
}

/// A migrator over `(version, description, sql)` steps, embedded in the binary.
pub(crate) fn migrator(steps: &[(i64, &'static str, &'static str)]) -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    Migrator::with_migrations(
        steps
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    std::borrow::Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// A reject count read back (`None`: no such user).
pub(crate) fn reject_count(n: Option<i64>) -> super::StoreResult<u32> {
    let n = n.ok_or(StoreError::NotFound("user"))?;
    u32::try_from(n).map_err(|_| StoreError::corrupt(format!("reject count {n}")))
}

/// Classifies a migration failure.
pub(crate) fn from_migrate(err: MigrateError, transient_code: fn(&str) -> bool) -> StoreError {
    match err {
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => {
            from_sqlx("running migrations", e, transient_code)
        }
        // The database holds a schema this binary does not know or that differs from
        // it: an operator must look.
        e => StoreError::internal("running migrations", e),
    }
}

/// A database the store runs on — SQLite or PostgreSQL: sqlx's type for it, which of
/// its error codes are temporary, and its embedded schema. Every query of the store is
/// written once, in [`SqlStore`], over this trait; the statements are portable
/// (`$1`-style parameters work on both).
pub trait Dialect: sqlx::Database {
    /// Whether a database error code means "try again later".
    fn transient(code: &str) -> bool;
    /// The schema migrations, embedded in the binary.
    fn migrator() -> sqlx::migrate::Migrator;
    /// Rows a statement changed.
    fn rows_affected(r: &Self::QueryResult) -> u64;
    /// Whether a statement refused by a constraint (unique, foreign key, check, not
    /// null) undoes only itself and leaves its transaction usable. True on SQLite
    /// (`ON CONFLICT ABORT`, the default); on PostgreSQL any error aborts the
    /// transaction until it rolls back (to a savepoint).
    const CONSTRAINT_ERRORS_UNDO_THE_STATEMENT: bool;
    /// Writes committed in one group at most ([`super::group`]): bounds the time a
    /// group holds the writer. 1 where the database has many writers (PostgreSQL):
    /// a group of several requests' writes would hold all their row locks, taken in
    /// arrival order, until its commit.
    const GROUP_LIMIT: usize;
    /// Tasks committing groups side by side: 1 where the database has one writer.
    const GROUP_TASKS: usize;
}

/// A [`Store`](super::Store) on a SQL database plus [`FeatureObjects`](super::FeatureObjects):
/// [`SqliteStore`](super::SqliteStore) and [`PostgresStore`](super::PostgresStore).
#[derive(Debug, Clone)]
pub struct SqlStore<DB: sqlx::Database> {
    /// Reads. On SQLite read-only connections; on PostgreSQL the same pool as `writer`.
    pub(crate) readers: sqlx::Pool<DB>,
    /// Every statement that writes. On SQLite a pool of one connection: the file has
    /// one writer at a time anyway, and writers queued here take their turn the moment
    /// the last one commits, where several connections would meet SQLite's lock and
    /// its busy handler, which sleeps 1-100 ms between tries (measured: thousands of
    /// such sleeps in a 200-person simulated world, ingest at ~120 envelopes/s). On
    /// PostgreSQL the one pool.
    pub(crate) writer: sqlx::Pool<DB>,
    /// The small writes of requests (request clocks, decisions, reject counts, packs'
    /// rows), committed in groups through `writer` ([`super::group`]).
    pub(crate) group: super::group::GroupCommit,
    pub(crate) objects: super::FeatureObjects,
}

impl<DB: sqlx::Database> SqlStore<DB> {
    /// The pool that writes (on PostgreSQL the only one), for diagnostics and tests.
    pub fn pool(&self) -> &sqlx::Pool<DB> {
        &self.writer
    }

    /// Closes every connection: later calls fail as unavailable.
    pub async fn close(&self) {
        self.writer.close().await;
        self.readers.close().await;
    }
}

/// Marks the connection of a transaction that failed to be closed instead of going back
/// to the pool, and hands the error on.
///
/// The database may have ended the transaction by itself (SQLite does on a full disk, an
/// I/O error or a trigger's `RAISE(ROLLBACK)`) while sqlx still counts it open: its
/// rollback then fails, the count stays, and the connection's next transaction would be
/// a savepoint. A fresh connection replaces this one. The group commit does the same.
pub(crate) fn retire_after<DB: sqlx::Database>(
    conn: &mut sqlx::pool::PoolConnection<DB>,
    error: sqlx::Error,
) -> sqlx::Error {
    conn.close_on_drop();
    error
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'r> String: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> Vec<u8>: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    /// Applies the store's at-rest marker ([`FeatureObjects::apply_at_rest_marker`]);
    /// the first time encryption is on, samples the newest templates and feature
    /// objects for unencrypted ones and writes the marker.
    ///
    /// [`FeatureObjects::apply_at_rest_marker`]: crate::store::FeatureObjects::apply_at_rest_marker
    pub(crate) async fn note_at_rest(&self) -> crate::store::StoreResult<()> {
        use crate::store::{StoreError, sql};
        // Without encryption there is nothing to decide (`server::open_store`
        // refuses a marked store then; a migration needs no key).
        if self.objects.at_rest().is_none() || self.objects.apply_at_rest_marker().await? {
            return Ok(());
        }
        let transient = DB::transient;
        let templates: Vec<(Vec<u8>,)> = sqlx::query_as(sql::SAMPLE_TEMPLATE_BLOBS)
            .fetch_all(&self.readers)
            .await
            .map_err(|e| crate::store::error::from_sqlx("sampling templates", e, transient))?;
        let objects: Vec<(String,)> = sqlx::query_as(sql::SAMPLE_OBJECT_KEYS)
            .fetch_all(&self.readers)
            .await
            .map_err(|e| {
                crate::store::error::from_sqlx("sampling feature objects", e, transient)
            })?;
        let encrypted = crate::store::at_rest::is_encrypted;
        let mut before = templates.iter().any(|(b,)| !encrypted(b));
        for (key,) in &objects {
            if before {
                break;
            }
            match self.objects.read_raw(key).await {
                Ok(b) => before = !encrypted(&b),
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.objects.write_at_rest_marker(before).await
    }

    /// Removes a pack that no envelope row names (its group stored nothing): the
    /// object, then its uncommitted row. A failure leaves both to the sweep of
    /// unfinished packs, which does the same later.
    pub(crate) async fn abandon_pack(&self, key: &str) {
        let deleted = match self.objects.delete(key).await {
            Ok(()) => sqlx::query(crate::store::sql::DELETE_UNFINISHED_PACK)
                .bind(key)
                .execute(&self.writer)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = deleted {
            tracing::warn!(object = %key, error = %e, "an unused pack stays for the sweep");
        }
    }
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Connection: sqlx::migrate::Migrate,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB>,
    for<'q> Vec<u8>: sqlx::Encode<'q, DB>,
    for<'q> i64: sqlx::Encode<'q, DB>,
    for<'q> bool: sqlx::Encode<'q, DB>,
    for<'q> f64: sqlx::Encode<'q, DB>,
    for<'r> f64: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> i64: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> bool: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> String: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> Vec<u8>: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    /// One attempt at a group commit of `group[i]` for `i` in `todo`: the pack's row
    /// (uncommitted), the pack object, then the rows in one transaction. `None` when
    /// all were new and are committed; otherwise nothing is stored (rolled back, the
    /// pack removed) and the answer holds the outcome of each envelope that met a row
    /// already there, in order, up to the first reused sequence number.
    async fn attempt_pack(
        &self,
        group: &[crate::store::NewEnvelope],
        todo: &[usize],
    ) -> crate::store::StoreResult<Option<Vec<(usize, crate::store::StoreOutcome)>>> {
        use crate::store::model::sequence_to_db;
        use crate::store::{FeatureObjects, StoreError, sql};
        let part: Vec<&crate::store::NewEnvelope> = todo.iter().map(|&i| &group[i]).collect();
        let (user_id, device_id) = (part[0].meta.user_id.clone(), part[0].meta.device_id);
        let group = &part;
        let first_sequence = group.iter().map(|e| e.meta.sequence).min().unwrap_or(0);
        // The row's range is over the stored (bit-cast, signed) sequence numbers, which
        // is what the deletion of the pack's rows scans.
        let db_sequences = || group.iter().map(|e| sequence_to_db(e.meta.sequence));
        let (db_first, db_last) = (
            db_sequences().min().unwrap_or(0),
            db_sequences().max().unwrap_or(0),
        );
        let newest = group
            .iter()
            .map(|e| e.meta.created_at_ms)
            .max()
            .unwrap_or(0);
        let mut pack_id = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut pack_id)
            .map_err(|_| StoreError::internal("drawing a pack id", "no system randomness"))?;
        let key = FeatureObjects::pack_key(&user_id, &device_id, first_sequence, &pack_id)?;

        // 1. The pack's row, uncommitted: from here on a crash leaves a row by which
        //    the retention sweep finds the object (`sweep_unfinished_packs`).
        let inserted = self
            .group
            .write(crate::store::group::Write::PackRow {
                key: key.clone(),
                user_id: user_id.clone(),
                device_id,
                first_sequence: db_first,
                last_sequence: db_last,
                newest_ms: newest,
                written_ms: sql::now_ms(),
            })
            .await;
        match inserted {
            Ok(_) => {}
            Err(crate::store::group::WriteError::Statement(e))
                if sql::is_foreign_key_violation(&e) =>
            {
                return Err(StoreError::NotFound("device"));
            }
            Err(e) => return Err(e.into_store("storing envelopes", DB::transient)),
        }

        // 2. The object, durable before any envelope row names it.
        let metas: Vec<&crate::store::EnvelopeMeta> = group.iter().map(|e| &e.meta).collect();
        let entries: Vec<(&[u8; 16], &[u8])> = group
            .iter()
            .map(|e| (&e.meta.envelope_id, e.features.as_slice()))
            .collect();
        if let Err(e) = self.objects.put_pack_durable(&key, &entries).await {
            // Deleting the user removes their objects, possibly under this write: then
            // the device is gone, which is not a storage failure.
            if matches!(
                crate::store::Store::get_device(self, device_id).await,
                Ok(None)
            ) {
                // Whatever of the object a failed write left (none, usually).
                self.abandon_pack(&key).await;
                return Err(StoreError::NotFound("device"));
            }
            return Err(e);
        }
        drop(entries);

        // 3. Every row and the pack's commit mark in one transaction (shared with the
        //    writes of concurrent requests: `group`): one durable commit acknowledges
        //    the whole pack.
        use crate::store::group::{PackCommitted, Write, WriteError, Written};
        let metas: Vec<crate::store::EnvelopeMeta> = metas.into_iter().cloned().collect();
        let written = self
            .group
            .write(Write::PackCommit {
                key: key.clone(),
                metas,
            })
            .await;
        let done = match written {
            Ok(Written::PackCommit(done)) => done,
            Ok(_) => return Err(StoreError::corrupt("storing envelopes")),
            // No such device for this user (deleted under this commit, or never
            // registered): nothing of the pack is stored.
            Err(WriteError::Statement(e)) if sql::is_foreign_key_violation(&e) => {
                self.abandon_pack(&key).await;
                return Err(StoreError::NotFound("device"));
            }
            Err(e) => return Err(e.into_store("storing envelopes", DB::transient)),
        };
        match done {
            PackCommitted::Committed => Ok(None),
            // Rolled back; the pack removed: the next attempt writes one without them.
            PackCommitted::Conflicts(conflicts) => {
                self.abandon_pack(&key).await;
                Ok(Some(
                    conflicts
                        .into_iter()
                        .map(|(k, outcome)| (todo[k], outcome))
                        .collect(),
                ))
            }
            // The conflicting row was deleted in between (a concurrent deletion of the
            // user): the client's retry sorts it out.
            PackCommitted::Vanished => Err(StoreError::Unavailable {
                context: "storing envelopes".to_owned(),
                source: "a conflicting row vanished".into(),
            }),
            // The pack's row went (the user was deleted, or the sweep of unfinished
            // packs claimed it): nothing stored.
            PackCommitted::RowGone => {
                if matches!(
                    crate::store::Store::get_device(self, device_id).await,
                    Ok(None)
                ) {
                    // The deletion's listing of the user's objects may have run before
                    // this object was written: remove it here. (A claimed row's object
                    // is the sweep's to delete.)
                    self.abandon_pack(&key).await;
                    return Err(StoreError::NotFound("device"));
                }
                Err(StoreError::Unavailable {
                    context: "storing envelopes".to_owned(),
                    source: "the pack's row was swept before its commit".into(),
                })
            }
        }
    }
}

#[async_trait::async_trait]
impl<DB> crate::store::Store for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Connection: sqlx::migrate::Migrate,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB>,
    for<'q> Vec<u8>: sqlx::Encode<'q, DB>,
    for<'q> i64: sqlx::Encode<'q, DB>,
    for<'q> bool: sqlx::Encode<'q, DB>,
    for<'q> f64: sqlx::Encode<'q, DB>,
    for<'r> f64: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> i64: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> bool: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> String: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> Vec<u8>: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    async fn migrate(&self) -> crate::store::StoreResult<()> {
        DB::migrator()
            .run(&self.writer)
            .await
            .map_err(|e| crate::store::sql::from_migrate(e, DB::transient))
    }

    async fn create_user(&self, user_id: &str) -> crate::store::StoreResult<()> {
        use crate::store::{StoreError, sql};
        crate::store::validate_user_id(user_id)?;
        let result = sqlx::query(sql::INSERT_USER)
            .bind(user_id)
            .bind(crate::store::model::ms_to_db(sql::now_ms()))
            .execute(&self.writer)
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if sql::is_unique_violation(&e) => Err(StoreError::AlreadyExists("user")),
            Err(e) => Err(crate::store::error::from_sqlx(
                "creating user",
                e,
                DB::transient,
            )),
        }
    }

    async fn user_exists(&self, user_id: &str) -> crate::store::StoreResult<bool> {
        let n: i64 = sqlx::query_scalar(crate::store::sql::USER_EXISTS)
            .bind(user_id)
            .fetch_one(&self.readers)
            .await
            .map_err(|e| crate::store::error::from_sqlx("looking up user", e, DB::transient))?;
        Ok(n > 0)
    }

    async fn delete_user(
        &self,
        user_id: &str,
    ) -> crate::store::StoreResult<crate::store::DeletionReport> {
        use crate::store::{DeletionReport, StoreError, sql};
        crate::store::validate_user_id(user_id)?;
        let db = |e| crate::store::error::from_sqlx("deleting user", e, DB::transient);
        let mut conn = self.writer.acquire().await.map_err(db)?;
        let deleted = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let mut delete = async |query: &'static str| -> Result<u64, sqlx::Error> {
                sqlx::query(query)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await
                    .map(|r| DB::rows_affected(&r))
            };
            let envelopes = delete(sql::DELETE_USER_ENVELOPES).await?;
            delete(sql::DELETE_USER_PACKS).await?;
            let tokens = delete(sql::DELETE_USER_TOKENS).await?;
            let templates = delete(sql::DELETE_USER_TEMPLATES).await?;
            let decisions = delete(sql::DELETE_USER_DECISIONS).await?;
            let devices = delete(sql::DELETE_USER_DEVICES).await?;
            let users = delete(sql::DELETE_USER).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>((envelopes, tokens, templates, decisions, devices, users))
        }
        .await;
        let (envelopes, tokens, templates, decisions, devices, users) = deleted
            .map_err(|e| retire_after(&mut conn, e))
            .map_err(db)?;
        drop(conn);
        // Objects after the commit: from here on no upload for this user can
        // insert a row, and one that wrote its object already is caught by
        // this listing or removes its object itself (foreign key failure).
        let objects = self.objects.delete_user(user_id).await?;
        if users == 0 && objects == 0 {
            return Err(StoreError::NotFound("user"));
        }
        Ok(DeletionReport {
            devices,
            envelopes,
            objects,
            tokens,
            templates,
            decisions,
        })
    }

    async fn create_enrolment_token(
        &self,
        user_id: &str,
        token_hash: [u8; 32],
        expires_at_ms: u64,
    ) -> crate::store::StoreResult<()> {
        use crate::store::{StoreError, sql};
        let result = sqlx::query(sql::INSERT_TOKEN)
            .bind(&token_hash[..])
            .bind(user_id)
            .bind(crate::store::model::ms_to_db(expires_at_ms))
            .execute(&self.writer)
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if sql::is_foreign_key_violation(&e) => Err(StoreError::NotFound("user")),
            Err(e) if sql::is_unique_violation(&e) => {
                Err(StoreError::AlreadyExists("enrolment token"))
            }
            Err(e) => Err(crate::store::error::from_sqlx(
                "creating enrolment token",
                e,
                DB::transient,
            )),
        }
    }

    async fn consume_enrolment_token(
        &self,
        token_hash: [u8; 32],
        now_ms: u64,
    ) -> crate::store::StoreResult<Option<String>> {
        let row: Option<(String, i64)> = sqlx::query_as(crate::store::sql::CONSUME_TOKEN)
            .bind(&token_hash[..])
            .fetch_optional(&self.writer)
            .await
            .map_err(|e| {
                crate::store::error::from_sqlx("consuming enrolment token", e, DB::transient)
            })?;
        Ok(row.and_then(|(user_id, expires_at_ms)| {
            (now_ms < u64::try_from(expires_at_ms).unwrap_or(0)).then_some(user_id)
        }))
    }

    async fn register_device(
        &self,
        device: crate::store::DeviceRow,
    ) -> crate::store::StoreResult<()> {
        use crate::store::{StoreError, sql};
        let result = sqlx::query(sql::INSERT_DEVICE)
            .bind(&device.device_id[..])
            .bind(&device.user_id)
            .bind(i64::from(device.algorithm))
            .bind(&device.public_key)
            .bind(crate::store::model::ms_to_db(device.created_at_ms))
            .bind(device.revoked)
            .execute(&self.writer)
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if sql::is_unique_violation(&e) => Err(StoreError::AlreadyExists("device")),
            Err(e) if sql::is_foreign_key_violation(&e) => Err(StoreError::NotFound("user")),
            Err(e) => Err(crate::store::error::from_sqlx(
                "registering device",
                e,
                DB::transient,
            )),
        }
    }

    async fn get_device(
        &self,
        device_id: [u8; 16],
    ) -> crate::store::StoreResult<Option<crate::store::DeviceRow>> {
        let row: Option<crate::store::sql::DeviceDbRow> =
            sqlx::query_as(crate::store::sql::GET_DEVICE)
                .bind(&device_id[..])
                .fetch_optional(&self.readers)
                .await
                .map_err(|e| {
                    crate::store::error::from_sqlx("looking up device", e, DB::transient)
                })?;
        row.map(crate::store::sql::device_from_db).transpose()
    }

    async fn user_devices(
        &self,
        user_id: &str,
    ) -> crate::store::StoreResult<Vec<crate::store::DeviceRow>> {
        let rows: Vec<crate::store::sql::DeviceDbRow> =
            sqlx::query_as(crate::store::sql::USER_DEVICES)
                .bind(user_id)
                .fetch_all(&self.readers)
                .await
                .map_err(|e| crate::store::error::from_sqlx("listing devices", e, DB::transient))?;
        rows.into_iter()
            .map(crate::store::sql::device_from_db)
            .collect()
    }

    async fn store_envelopes(
        &self,
        group: Vec<crate::store::NewEnvelope>,
    ) -> crate::store::StoreResult<Vec<crate::store::StoreOutcome>> {
        use crate::store::{StoreError, StoreOutcome, sql};
        let Some(first) = group.first() else {
            return Ok(Vec::new());
        };
        let (user_id, device_id) = (first.meta.user_id.clone(), first.meta.device_id);
        if group
            .iter()
            .any(|e| e.meta.user_id != user_id || e.meta.device_id != device_id)
        {
            return Err(StoreError::Invalid(
                "a group commit holds the envelopes of one device".into(),
            ));
        }
        // A pack holds only envelopes that are stored: an attempt that meets a row
        // already there (sent again, or a reused sequence number) learns its outcome,
        // rolls back, and the next attempt commits the rest. Conflicts are rare (a
        // retry racing its first copy, a cloned key), so nearly every group commits at
        // the first attempt.
        let mut outcomes: Vec<Option<StoreOutcome>> = vec![None; group.len()];
        let mut end = group.len();
        for _ in 0..sql::GROUP_ATTEMPTS {
            let todo: Vec<usize> = (0..end).filter(|&i| outcomes[i].is_none()).collect();
            if todo.is_empty() {
                break;
            }
            match self.attempt_pack(&group, &todo).await? {
                None => {
                    for i in todo {
                        outcomes[i] = Some(StoreOutcome::Stored);
                    }
                    break;
                }
                Some(found) => {
                    for (i, o) in found {
                        outcomes[i] = Some(o);
                        if o == StoreOutcome::SequenceReused {
                            // The device's key is on two phones: nothing after this
                            // envelope is stored.
                            end = end.min(i + 1);
                        }
                    }
                }
            }
        }
        let decided: Vec<StoreOutcome> = outcomes[..end].iter().map_while(|o| *o).collect();
        if decided.len() < end {
            return Err(StoreError::Unavailable {
                context: "storing envelopes".to_owned(),
                source: "concurrent uploads of the same envelopes kept conflicting".into(),
            });
        }
        Ok(decided)
    }

    async fn seen(
        &self,
        device_id: [u8; 16],
        sequence: u64,
    ) -> crate::store::StoreResult<Option<crate::store::SeenEnvelope>> {
        let row: Option<(Vec<u8>, i64, String)> = sqlx::query_as(crate::store::sql::SEEN_AT)
            .bind(&device_id[..])
            .bind(crate::store::model::sequence_to_db(sequence))
            .fetch_optional(&self.readers)
            .await
            .map_err(|e| crate::store::error::from_sqlx("looking up envelope", e, DB::transient))?;
        row.map(|(id, received, object_key)| {
            Ok(crate::store::SeenEnvelope {
                object_key,
                envelope_id: crate::store::model::id16_from_db(&id, "envelope id")?,
                received_at_ms: crate::store::model::ms_from_db(received, "envelope receipt time")?,
            })
        })
        .transpose()
    }

    async fn seen_range(
        &self,
        device_id: [u8; 16],
        sequences: &[u64],
    ) -> crate::store::StoreResult<Vec<(u64, crate::store::SeenEnvelope)>> {
        use crate::store::model::{id16_from_db, ms_from_db, sequence_to_db};
        let db = |e| crate::store::error::from_sqlx("looking up envelopes", e, DB::transient);
        let stored = sequences.iter().map(|&s| sequence_to_db(s));
        let (Some(lo), Some(hi)) = (stored.clone().min(), stored.max()) else {
            return Ok(Vec::new());
        };
        let mut found = Vec::new();
        // One range scan of the primary key when the numbers are close together (a
        // phone's batch is consecutive), else one lookup each: a scan of a wide range
        // would read rows nobody asked for.
        let wide = hi.abs_diff(lo) > 4 * sequences.len() as u64 + 64;
        let rows: Vec<(i64, Vec<u8>, i64, String)> = if wide {
            let mut rows = Vec::new();
            for &s in sequences {
                let row: Option<(i64, Vec<u8>, i64, String)> =
                    sqlx::query_as(crate::store::sql::SEEN_ONE)
                        .bind(&device_id[..])
                        .bind(sequence_to_db(s))
                        .fetch_optional(&self.readers)
                        .await
                        .map_err(db)?;
                rows.extend(row);
            }
            rows
        } else {
            sqlx::query_as(crate::store::sql::SEEN_RANGE)
                .bind(&device_id[..])
                .bind(lo)
                .bind(hi)
                .fetch_all(&self.readers)
                .await
                .map_err(db)?
        };
        for (sequence, id, received, object_key) in rows {
            let sequence = u64::from_be_bytes(sequence.to_be_bytes());
            if !sequences.contains(&sequence) {
                continue;
            }
            found.push((
                sequence,
                crate::store::SeenEnvelope {
                    object_key,
                    envelope_id: id16_from_db(&id, "envelope id")?,
                    received_at_ms: ms_from_db(received, "envelope receipt time")?,
                },
            ));
        }
        Ok(found)
    }

    async fn count_envelopes(&self, user_id: &str) -> crate::store::StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(crate::store::sql::COUNT_ENVELOPES)
            .bind(user_id)
            .fetch_one(&self.readers)
            .await
            .map_err(|e| crate::store::error::from_sqlx("counting envelopes", e, DB::transient))?;
        crate::store::model::count_from_db(n)
    }

    async fn list_feature_objects(&self, user_id: &str) -> crate::store::StoreResult<Vec<String>> {
        self.objects.list_user(user_id).await
    }

    async fn put_template(&self, row: crate::store::TemplateRow) -> crate::store::StoreResult<()> {
        use crate::store::{StoreError, sql};
        let blob = match self.objects.at_rest() {
            Some(k) => k.seal(
                &sql::template_context(&row.user_id, &row.factor, row.format),
                &row.blob,
            )?,
            None => row.blob,
        };
        let result = sqlx::query(sql::PUT_TEMPLATE)
            .bind(&row.user_id)
            .bind(&row.factor)
            .bind(i64::from(row.format))
            .bind(&blob)
            .bind(crate::store::model::ms_to_db(row.updated_at_ms))
            .bind(&row.built_with)
            .execute(&self.writer)
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if sql::is_foreign_key_violation(&e) => Err(StoreError::NotFound("user")),
            Err(e) => Err(crate::store::error::from_sqlx(
                "storing template",
                e,
                DB::transient,
            )),
        }
    }

    async fn templates(
        &self,
        user_id: &str,
    ) -> crate::store::StoreResult<Vec<crate::store::TemplateRow>> {
        use crate::store::{StoreError, TemplateRow};
        let rows: Vec<(String, i64, Vec<u8>, i64, String)> =
            sqlx::query_as(crate::store::sql::GET_TEMPLATES)
                .bind(user_id)
                .fetch_all(&self.readers)
                .await
                .map_err(|e| {
                    crate::store::error::from_sqlx("reading templates", e, DB::transient)
                })?;
        rows.into_iter()
            .map(|(factor, format, blob, at, built_with)| {
                let format = u32::try_from(format)
                    .map_err(|_| StoreError::corrupt(format!("template format {format}")))?;
                let blob = match self.objects.at_rest() {
                    Some(k) => k.open(
                        &crate::store::sql::template_context(user_id, &factor, format),
                        &blob,
                    )?,
                    None => blob,
                };
                Ok(TemplateRow {
                    user_id: user_id.to_owned(),
                    factor,
                    format,
                    blob,
                    updated_at_ms: crate::store::model::ms_from_db(at, "template time")?,
                    built_with,
                })
            })
            .collect()
    }

    async fn recent_envelopes(
        &self,
        user_id: &str,
        since_ms: u64,
        limit: u32,
    ) -> crate::store::StoreResult<Vec<crate::store::EnvelopeRef>> {
        use crate::store::model::{id16_from_db, ms_from_db, ms_to_db};
        let rows: Vec<(Vec<u8>, String, i64, i64)> =
            sqlx::query_as(crate::store::sql::RECENT_ENVELOPES)
                .bind(user_id)
                .bind(ms_to_db(since_ms))
                .bind(i64::from(limit))
                .fetch_all(&self.readers)
                .await
                .map_err(|e| {
                    crate::store::error::from_sqlx("listing envelopes", e, DB::transient)
                })?;
        rows.into_iter()
            .map(|(id, object_key, at, received)| {
                Ok(crate::store::EnvelopeRef {
                    envelope_id: id16_from_db(&id, "envelope id")?,
                    object_key,
                    created_at_ms: ms_from_db(at, "envelope time")?,
                    received_at_ms: ms_from_db(received, "envelope receipt time")?,
                })
            })
            .collect()
    }

    async fn advance_auth_clock(
        &self,
        device_id: [u8; 16],
        request_ms: u64,
    ) -> crate::store::StoreResult<bool> {
        use crate::store::group::{Write, Written};
        match self
            .group
            .write(Write::AuthClock {
                device_id,
                request_ms,
            })
            .await
        {
            Ok(Written::AuthClock(advanced)) => Ok(advanced),
            Ok(_) => Err(crate::store::StoreError::corrupt("recording request time")),
            Err(e) => Err(e.into_store("recording request time", DB::transient)),
        }
    }

    async fn expire_envelopes(
        &self,
        created_before_ms: u64,
        limit: u32,
    ) -> crate::store::StoreResult<u64> {
        use crate::store::{error::from_sqlx, model::ms_to_db, sql};
        let db = |e| from_sqlx("deleting expired envelopes", e, DB::transient);
        let packs: Vec<(String, Vec<u8>, i64, i64)> = sqlx::query_as(sql::EXPIRED_PACKS)
            .bind(ms_to_db(created_before_ms))
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await
            .map_err(|e| from_sqlx("listing expired packs", e, DB::transient))?;
        let mut n = 0;
        for (key, device_id, first, last) in packs {
            // Object first: a crash in between leaves rows whose object is gone,
            // which the next sweep finishes; never an object nobody indexes.
            self.objects.delete(&key).await?;
            let mut conn = self.writer.acquire().await.map_err(db)?;
            let deleted = async {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                let rows = sqlx::query(sql::DELETE_PACK_ENVELOPES)
                    .bind(&device_id)
                    .bind(first)
                    .bind(last)
                    .bind(&key)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sql::DELETE_PACK)
                    .bind(&key)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(DB::rows_affected(&rows))
            }
            .await;
            n += deleted
                .map_err(|e| retire_after(&mut conn, e))
                .map_err(db)?;
        }
        Ok(n)
    }

    async fn sweep_unfinished_packs(
        &self,
        written_before_ms: u64,
        limit: u32,
    ) -> crate::store::StoreResult<u64> {
        use crate::store::{error::from_sqlx, model::ms_to_db, sql};
        let keys: Vec<(String,)> = sqlx::query_as(sql::UNFINISHED_PACKS)
            .bind(ms_to_db(written_before_ms))
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await
            .map_err(|e| from_sqlx("listing unfinished packs", e, DB::transient))?;
        let mut n = 0;
        for (key,) in keys {
            let claimed = sqlx::query(sql::CLAIM_UNFINISHED_PACK)
                .bind(&key)
                .execute(&self.writer)
                .await
                .map_err(|e| from_sqlx("claiming an unfinished pack", e, DB::transient))?;
            if DB::rows_affected(&claimed) == 0 {
                continue; // committed meanwhile, or gone
            }
            // Row last: deleting it first and crashing would forget the object.
            self.objects.delete(&key).await?;
            sqlx::query(sql::DELETE_UNFINISHED_PACK)
                .bind(&key)
                .execute(&self.writer)
                .await
                .map_err(|e| from_sqlx("deleting an unfinished pack", e, DB::transient))?;
            n += 1;
        }
        Ok(n)
    }

    async fn revoke_device(&self, device_id: [u8; 16]) -> crate::store::StoreResult<bool> {
        let r = sqlx::query(crate::store::sql::REVOKE_DEVICE)
            .bind(&device_id[..])
            .bind(true)
            .execute(&self.writer)
            .await
            .map_err(|e| crate::store::error::from_sqlx("revoking a device", e, DB::transient))?;
        Ok(DB::rows_affected(&r) > 0)
    }

    async fn set_training_consent(
        &self,
        user_id: &str,
        consent: bool,
    ) -> crate::store::StoreResult<bool> {
        crate::store::validate_user_id(user_id)?;
        let r = sqlx::query(crate::store::sql::SET_TRAINING_CONSENT)
            .bind(user_id)
            .bind(consent)
            .execute(&self.writer)
            .await
            .map_err(|e| {
                crate::store::error::from_sqlx("recording training consent", e, DB::transient)
            })?;
        Ok(DB::rows_affected(&r) > 0)
    }

    async fn training_consent(&self, user_id: &str) -> crate::store::StoreResult<Option<bool>> {
        sqlx::query_scalar(crate::store::sql::GET_TRAINING_CONSENT)
            .bind(user_id)
            .fetch_optional(&self.readers)
            .await
            .map_err(|e| {
                crate::store::error::from_sqlx("reading training consent", e, DB::transient)
            })
    }

    async fn training_users(&self) -> crate::store::StoreResult<Vec<crate::store::TrainingUser>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(crate::store::sql::TRAINING_USERS)
            .fetch_all(&self.readers)
            .await
            .map_err(|e| {
                crate::store::error::from_sqlx("listing training users", e, DB::transient)
            })?;
        rows.into_iter()
            .map(|(user_id, at)| {
                Ok(crate::store::TrainingUser {
                    user_id,
                    created_at_ms: crate::store::model::ms_from_db(at, "account creation time")?,
                })
            })
            .collect()
    }

    async fn delete_template(
        &self,
        user_id: &str,
        factor: &str,
    ) -> crate::store::StoreResult<bool> {
        let r = sqlx::query(crate::store::sql::DELETE_TEMPLATE)
            .bind(user_id)
            .bind(factor)
            .execute(&self.writer)
            .await
            .map_err(|e| crate::store::error::from_sqlx("deleting a template", e, DB::transient))?;
        Ok(DB::rows_affected(&r) > 0)
    }

    async fn stale_templates(
        &self,
        factor: &str,
        current: &str,
        limit: u32,
    ) -> crate::store::StoreResult<Vec<String>> {
        sqlx::query_scalar(crate::store::sql::STALE_TEMPLATES)
            .bind(factor)
            .bind(current)
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await
            .map_err(|e| {
                crate::store::error::from_sqlx("listing stale templates", e, DB::transient)
            })
    }

    async fn consecutive_rejects(&self, user_id: &str) -> crate::store::StoreResult<u32> {
        let n: Option<i64> = sqlx::query_scalar(crate::store::sql::GET_REJECTS)
            .bind(user_id)
            .fetch_optional(&self.readers)
            .await
            .map_err(|e| {
                crate::store::error::from_sqlx("reading reject count", e, DB::transient)
            })?;
        crate::store::sql::reject_count(n)
    }

    async fn count_reject(
        &self,
        user_id: &str,
        change: crate::store::RejectCount,
    ) -> crate::store::StoreResult<u32> {
        use crate::store::group::{Write, Written};
        let written = self
            .group
            .write(Write::Rejects {
                user_id: user_id.to_owned(),
                change,
            })
            .await;
        match written {
            Ok(Written::Rejects(n)) => crate::store::sql::reject_count(n),
            Ok(_) => Err(crate::store::StoreError::corrupt("counting rejects")),
            Err(e) => Err(e.into_store("counting rejects", DB::transient)),
        }
    }

    async fn record_decision(
        &self,
        row: crate::store::DecisionRow,
        keep: u32,
    ) -> crate::store::StoreResult<()> {
        use crate::store::group::WriteError;
        use crate::store::{StoreError, sql};
        let factors = serde_json::to_string(&row.factors)
            .map_err(|e| StoreError::internal("recording a decision", e))?;
        let written = self
            .group
            .write(crate::store::group::Write::Decision { row, factors, keep })
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(WriteError::Statement(e)) if sql::is_foreign_key_violation(&e) => {
                Err(StoreError::NotFound("user"))
            }
            Err(WriteError::Statement(e)) if sql::is_unique_violation(&e) => {
                Err(StoreError::AlreadyExists("decision"))
            }
            Err(e) => Err(e.into_store("recording a decision", DB::transient)),
        }
    }

    async fn decisions(
        &self,
        user_id: &str,
        limit: u32,
    ) -> crate::store::StoreResult<Vec<crate::store::DecisionRow>> {
        let rows: Vec<crate::store::sql::DecisionDbRow> =
            sqlx::query_as(crate::store::sql::USER_DECISIONS)
                .bind(user_id)
                .bind(i64::from(limit))
                .fetch_all(&self.readers)
                .await
                .map_err(|e| {
                    crate::store::error::from_sqlx("reading decisions", e, DB::transient)
                })?;
        rows.into_iter()
            .map(|r| crate::store::sql::decision_from_db(user_id, r))
            .collect()
    }

    async fn expire_decisions(&self, before_ms: u64) -> crate::store::StoreResult<u64> {
        let r = sqlx::query(crate::store::sql::EXPIRE_DECISIONS)
            .bind(crate::store::model::ms_to_db(before_ms))
            .execute(&self.writer)
            .await
            .map_err(|e| {
                crate::store::error::from_sqlx("deleting old decisions", e, DB::transient)
            })?;
        Ok(DB::rows_affected(&r))
    }

    fn objects(&self) -> &crate::store::FeatureObjects {
        &self.objects
    }

    async fn health(&self) -> crate::store::StoreResult<()> {
        if self.group.is_closed() {
            return Err(crate::store::StoreError::unavailable(
                "database health check",
                "the group commit's task stopped: writes fail",
            ));
        }
        sqlx::query(crate::store::sql::PING)
            .execute(&self.readers)
            .await
            .map_err(|e| {
                crate::store::error::from_sqlx("database health check", e, DB::transient)
            })?;
        self.objects.health().await
    }
}
