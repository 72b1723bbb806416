//! [`Outbox`]: the operations, each one SQLite transaction.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use tacit_shared::api::hex;

use super::{OUTBOX_FILE, OutboxConfig, OutboxStats, QueueError, QueuedEnvelope, schema};

/// Longest rejection reason kept by [`Outbox::reject`] (reason codes are short words).
pub const MAX_REASON_CHARS: usize = 128;

/// The persistent outbox (see the [module documentation](super) for the guarantees).
#[derive(Debug)]
pub struct Outbox {
    conn: Mutex<Connection>,
    cfg: OutboxConfig,
    path: PathBuf,
}

/// Which counter a removal adds to.
#[derive(Clone, Copy)]
enum Removal<'a> {
    Acknowledged,
    Rejected(&'a str),
}

impl Outbox {
    /// Opens the outbox in `dir` (created if missing), recovering from any crash of a
    /// previous process, and checks the file's integrity.
    pub fn open(dir: &Path, cfg: OutboxConfig) -> Result<Self, QueueError> {
        std::fs::create_dir_all(dir).map_err(|source| QueueError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(OUTBOX_FILE);
        let conn = schema::open(&path)?;
        Ok(Outbox {
            conn: Mutex::new(conn),
            cfg,
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The settings it was opened with.
    pub fn config(&self) -> OutboxConfig {
        self.cfg
    }

    /// The next envelope sequence number: persistent and strictly increasing across
    /// restarts. A number allocated for an envelope that is never pushed is simply
    /// skipped; the backend only requires uniqueness.
    pub fn allocate_sequence(&self) -> Result<u64, QueueError> {
        let conn = self.lock()?;
        // One autocommit statement: the increment and the read are atomic.
        let seq: i64 = conn.query_row(
            "UPDATE counters SET next_sequence = next_sequence + 1 WHERE id = 0
             RETURNING next_sequence - 1",
            [],
            |r| r.get(0),
        )?;
        from_db("next_sequence", seq)
    }

    /// Stores `env`, first evicting the oldest envelopes while the outbox would
    /// otherwise exceed [`OutboxConfig::max_bytes`]. Returns how many were evicted.
    /// All of it is one transaction: durable when this returns `Ok`, absent otherwise.
    pub fn push(&self, env: &QueuedEnvelope) -> Result<u64, QueueError> {
        let len = env.bytes.len() as u64;
        if len > self.cfg.max_bytes {
            return Err(QueueError::EnvelopeTooLarge {
                len,
                max: self.cfg.max_bytes,
            });
        }
        let sequence = to_db("sequence", env.sequence)?;
        let created_at_ms = to_db("created_at_ms", env.created_at_ms)?;
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Checked before evicting, so that a rejected duplicate evicts nothing.
        let exists = tx
            .prepare_cached("SELECT 1 FROM envelopes WHERE envelope_id = ?1")?
            .query_row([&env.envelope_id[..]], |_| Ok(()))
            .optional()?;
        if exists.is_some() {
            return Err(QueueError::DuplicateEnvelope(hex(&env.envelope_id)));
        }
        let mut queued = queued_bytes(&tx)?;
        let mut evicted = 0u64;
        while queued.saturating_add(len) > self.cfg.max_bytes {
            let oldest: Option<(i64, i64)> = tx
                .prepare_cached(
                    "SELECT position, length(bytes) FROM envelopes ORDER BY position LIMIT 1",
                )?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((position, size)) = oldest else {
                return Err(QueueError::Corrupt(format!(
                    "{queued} bytes counted but no envelopes stored"
                )));
            };
            tx.prepare_cached("DELETE FROM envelopes WHERE position = ?1")?
                .execute([position])?;
            queued = queued.saturating_sub(from_db("length(bytes)", size)?);
            evicted += 1;
        }
        tx.prepare_cached(
            "INSERT INTO envelopes (envelope_id, sequence, created_at_ms, bytes)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            &env.envelope_id[..],
            sequence,
            created_at_ms,
            &env.bytes
        ])?;
        tx.prepare_cached(
            "UPDATE counters SET queued_bytes = ?1, evicted_total = evicted_total + ?2
             WHERE id = 0",
        )?
        .execute(params![
            to_db("queued_bytes", queued + len)?,
            to_db("evicted", evicted)?
        ])?;
        tx.commit()?;
        Ok(evicted)
    }

    /// Up to `max` envelopes, oldest first. They stay queued until acknowledged or
    /// rejected.
    pub fn peek_oldest(&self, max: usize) -> Result<Vec<QueuedEnvelope>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(
            "SELECT envelope_id, sequence, created_at_ms, bytes FROM envelopes
             ORDER BY position LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, sequence, created_at_ms, bytes) = row?;
            let envelope_id = <[u8; 16]>::try_from(id.as_slice())
                .map_err(|_| QueueError::Corrupt(format!("envelope id of {} bytes", id.len())))?;
            out.push(QueuedEnvelope {
                envelope_id,
                sequence: from_db("sequence", sequence)?,
                created_at_ms: from_db("created_at_ms", created_at_ms)?,
                bytes,
            });
        }
        Ok(out)
    }

    /// Deletes envelopes the server acknowledged (`stored` or `duplicate`). Ids not in
    /// the outbox (already acknowledged, or evicted) are ignored. Returns how many
    /// were deleted.
    pub fn acknowledge(&self, ids: &[[u8; 16]]) -> Result<u64, QueueError> {
        self.remove(ids, Removal::Acknowledged)
    }

    /// Deletes envelopes the server rejected for good and counts them, keeping
    /// `reason` (cut to [`MAX_REASON_CHARS`]) as the last rejection reason. Returns how
    /// many were deleted.
    pub fn reject(&self, ids: &[[u8; 16]], reason: &str) -> Result<u64, QueueError> {
        // The reason comes from the server: bound what it can make us store.
        let reason = match reason.char_indices().nth(MAX_REASON_CHARS) {
            Some((cut, _)) => &reason[..cut],
            None => reason,
        };
        self.remove(ids, Removal::Rejected(reason))
    }

    /// Records the time of a successful upload.
    pub fn set_last_upload(&self, unix_ms: u64) -> Result<(), QueueError> {
        let ms = to_db("last_upload_ms", unix_ms)?;
        let conn = self.lock()?;
        conn.execute("UPDATE counters SET last_upload_ms = ?1 WHERE id = 0", [ms])?;
        Ok(())
    }

    /// Current contents and lifetime counters, read in one consistent snapshot.
    pub fn stats(&self) -> Result<OutboxStats, QueueError> {
        let mut conn = self.lock()?;
        // A read transaction, so the count and the counters come from one snapshot.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let envelopes: i64 = tx.query_row("SELECT count(*) FROM envelopes", [], |r| r.get(0))?;
        let row = tx.query_row(
            "SELECT queued_bytes, evicted_total, rejected_total, acknowledged_total,
                    last_upload_ms, last_reject_reason
             FROM counters WHERE id = 0",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            },
        )?;
        tx.commit()?;
        let (bytes, evicted, rejected, acknowledged, last_upload, last_reason) = row;
        Ok(OutboxStats {
            envelopes: from_db("count", envelopes)?,
            bytes: from_db("queued_bytes", bytes)?,
            evicted_total: from_db("evicted_total", evicted)?,
            rejected_total: from_db("rejected_total", rejected)?,
            acknowledged_total: from_db("acknowledged_total", acknowledged)?,
            last_upload_ms: last_upload
                .map(|v| from_db("last_upload_ms", v))
                .transpose()?,
            last_reject_reason: last_reason,
        })
    }

    fn remove(&self, ids: &[[u8; 16]], why: Removal<'_>) -> Result<u64, QueueError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut deleted = 0u64;
        let mut freed = 0u64;
        for id in ids {
            let size: Option<i64> = tx
                .prepare_cached(
                    "DELETE FROM envelopes WHERE envelope_id = ?1 RETURNING length(bytes)",
                )?
                .query_row([&id[..]], |r| r.get(0))
                .optional()?;
            if let Some(size) = size {
                deleted += 1;
                freed += from_db("length(bytes)", size)?;
            }
        }
        if deleted > 0 {
            let queued = queued_bytes(&tx)?.checked_sub(freed).ok_or_else(|| {
                QueueError::Corrupt("byte counter below the stored envelopes".into())
            })?;
            let (queued, deleted_db) = (to_db("queued_bytes", queued)?, to_db("deleted", deleted)?);
            match why {
                Removal::Acknowledged => tx.execute(
                    "UPDATE counters SET queued_bytes = ?1,
                         acknowledged_total = acknowledged_total + ?2 WHERE id = 0",
                    params![queued, deleted_db],
                )?,
                Removal::Rejected(reason) => tx.execute(
                    "UPDATE counters SET queued_bytes = ?1,
                         rejected_total = rejected_total + ?2, last_reject_reason = ?3
                     WHERE id = 0",
                    params![queued, deleted_db, reason],
                )?,
            };
        }
        tx.commit()?;
        Ok(deleted)
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, QueueError> {
        // A panic inside a transaction rolls it back (Transaction's Drop), so the
        // connection would still be usable; failing loudly is nevertheless the safer
        // default for a queue whose invariants a panicking caller may have broken.
        self.conn.lock().map_err(|_| QueueError::Poisoned)
    }
}

fn queued_bytes(tx: &Transaction<'_>) -> Result<u64, QueueError> {
    let v: i64 = tx
        .prepare_cached("SELECT queued_bytes FROM counters WHERE id = 0")?
        .query_row([], |r| r.get(0))?;
    from_db("queued_bytes", v)
}

/// SQLite integers are signed 64-bit.
fn to_db(field: &'static str, value: u64) -> Result<i64, QueueError> {
    i64::try_from(value).map_err(|_| QueueError::OutOfRange { field, value })
}

/// A negative value can only come from a damaged file (the code never writes one).
fn from_db(field: &'static str, value: i64) -> Result<u64, QueueError> {
    u64::try_from(value).map_err(|_| QueueError::Corrupt(format!("{field} = {value}")))
}
