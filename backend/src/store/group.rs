//! Group commit of the small writes that concurrent requests make: a request's write
//! joins a queue; a task takes everything queued (up to
//! [`Dialect::GROUP_LIMIT`](super::sql::Dialect::GROUP_LIMIT)), runs each
//! write in a savepoint of one transaction and commits once; every request hears its
//! own result only after that commit.
//!
//! Why: SQLite has one writer at a time (here one connection), and each commit is a
//! round trip to the database's thread and an fsync. Measured in a 1,000-person
//! simulated world, an authentication waited ~60 ms for each of its writes behind the
//! others' commits, although the disk and the CPU were not busy. Grouped, one fsync and
//! one hand-over between threads serve the whole queue.
//!
//! PostgreSQL has many writers and groups its WAL flushes itself, and a transaction of
//! several requests' writes would hold every row lock it took until its commit, in the
//! order the writes arrived: two gateways sharing the database could then lock two
//! devices' rows in opposite orders and deadlock (broken only after
//! `deadlock_timeout`, failing both groups). There
//! [`Dialect::GROUP_TASKS`](super::sql::Dialect::GROUP_TASKS) tasks each commit one
//! write at a time, side by side.
//!
//! A write that fails (its statement refused: a constraint, a deleted user) is rolled
//! back to its savepoint and answered with its own error; the others commit. If the
//! commit itself fails, nothing of the group is stored and every write hears so.

use sqlx::Acquire;
use tokio::sync::{mpsc, oneshot};

use super::model::ms_to_db;
use super::model::sequence_to_db;
use super::{DecisionRow, EnvelopeMeta, RejectCount, StoreError, StoreOutcome, sql};

/// Writes waiting for a group at most; a request beyond waits for room (backpressure).
const QUEUE: usize = 4096;

/// One write of a request, in the words of the store's tables.
#[derive(Debug)]
pub(crate) enum Write {
    /// Advances a device's request clock if `request_ms` is later than it.
    AuthClock {
        device_id: [u8; 16],
        request_ms: u64,
    },
    /// Changes a user's count of consecutive rejects.
    Rejects {
        user_id: String,
        change: RejectCount,
    },
    /// Records a decision and keeps the user's newest `keep`.
    Decision {
        row: DecisionRow,
        factors: String,
        keep: u32,
    },
    /// The uncommitted row of a pack about to be written.
    PackRow {
        key: String,
        user_id: String,
        device_id: [u8; 16],
        first_sequence: i64,
        last_sequence: i64,
        newest_ms: u64,
        written_ms: u64,
    },
    /// The rows of a pack's envelopes (the pack object durable already) and the mark
    /// that commits the pack.
    PackCommit {
        key: String,
        metas: Vec<EnvelopeMeta>,
    },
}

/// What a [`Write`] did.
#[derive(Debug)]
pub(crate) enum Written {
    /// Whether the clock advanced.
    AuthClock(bool),
    /// The count after the change (`None`: no such user).
    Rejects(Option<i64>),
    /// Recorded.
    Decision,
    /// Inserted.
    PackRow,
    /// What became of a pack's rows.
    PackCommit(PackCommitted),
}

/// What [`Write::PackCommit`] did. Everything but `Committed` stored nothing.
#[derive(Debug)]
pub(crate) enum PackCommitted {
    /// Every row is in, the pack committed.
    Committed,
    /// Rows already there: for each envelope that met one (its index in `metas`), what
    /// it met, up to the first reused sequence number.
    Conflicts(Vec<(usize, StoreOutcome)>),
    /// A row met moments ago vanished (a concurrent deletion of the user).
    Vanished,
    /// The pack's uncommitted row is gone (the user deleted, or the sweep claimed it).
    RowGone,
}

/// Why a [`Write`] was not stored.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// Its own statement failed (and was rolled back; the group committed).
    Statement(sqlx::Error),
    /// The group's transaction failed: nothing of it is stored.
    Group { transient: bool, message: String },
}

impl WriteError {
    /// As a store error, for failures the caller does not handle itself.
    pub(crate) fn into_store(self, context: &str, transient: fn(&str) -> bool) -> StoreError {
        match self {
            WriteError::Statement(e) => super::error::from_sqlx(context, e, transient),
            WriteError::Group {
                transient: true,
                message,
            } => StoreError::unavailable(context, message),
            WriteError::Group {
                transient: false,
                message,
            } => StoreError::internal(context, message),
        }
    }
}

type Job = (Write, Reply);

/// The queue of a store's group commit. Cloned with the store; the tasks end when the
/// last clone is dropped.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Job>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("waiting", &(QUEUE - self.queue.capacity()))
            .finish()
    }
}

impl GroupCommit {
    /// Whether the tasks have stopped (every write would fail). A panic inside a
    /// group does not stop its task: that group fails alone.
    pub(crate) fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Queues `write` and waits for the commit of its group.
    pub(crate) async fn write(&self, write: Write) -> Result<Written, WriteError> {
        let stopped = || WriteError::Group {
            transient: true,
            message: "the store is shutting down".into(),
        };
        let (tx, rx) = oneshot::channel();
        self.queue.send((write, tx)).await.map_err(|_| stopped())?;
        match rx.await {
            Ok(written) => written,
            Err(_) if self.queue.is_closed() => Err(stopped()),
            // A task dropped the answer without stopping: its group panicked.
            Err(_) => Err(WriteError::Group {
                transient: false,
                message: "the group commit of concurrent writes failed (a bug; logged)".into(),
            }),
        }
    }
}

type Reply = oneshot::Sender<Result<Written, WriteError>>;

impl Write {
    /// Whether every error of the write's statements but the first is one that fails
    /// the group anyway, and the first changes nothing when a constraint refuses it:
    /// then the write needs no savepoint where a constraint undoes only its statement.
    /// Not a pack's rows (several chunks, and a conflict rolls back rows inserted).
    fn fails_before_writing(&self) -> bool {
        !matches!(self, Write::PackCommit { .. })
    }
}

/// A statement refused by a constraint of the schema.
fn is_constraint(e: &sqlx::Error) -> bool {
    super::error::constraint_kind(e).is_some_and(|k| !matches!(k, sqlx::error::ErrorKind::Other))
}

/// Answers every write of a group that stored nothing.
fn fail<DB: super::sql::Dialect>(replies: impl IntoIterator<Item = Reply>, e: sqlx::Error) {
    let message = format!("the group commit of concurrent writes failed: {e}");
    let transient = super::error::from_sqlx("", e, DB::transient).is_transient();
    for reply in replies {
        let _ = reply.send(Err(WriteError::Group {
            transient,
            message: message.clone(),
        }));
    }
}

/// The tasks behind a [`GroupCommit`], over one database's writer.
pub(crate) struct GroupTask<DB>(std::marker::PhantomData<DB>);

impl<DB> GroupTask<DB>
where
    DB: super::sql::Dialect,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> f64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Vec<u8>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'r> i64: sqlx::Decode<'r, DB>,
    for<'r> Vec<u8>: sqlx::Decode<'r, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    /// Starts the tasks ([`Dialect::GROUP_TASKS`](super::sql::Dialect::GROUP_TASKS))
    /// that commit the writes queued in the answer through `writer`.
    pub(crate) fn start(writer: sqlx::Pool<DB>) -> GroupCommit {
        let (queue, jobs) = mpsc::channel::<Job>(QUEUE);
        let jobs = std::sync::Arc::new(tokio::sync::Mutex::new(jobs));
        for _ in 0..DB::GROUP_TASKS.max(1) {
            let (jobs, writer) = (jobs.clone(), writer.clone());
            tokio::spawn(async move {
                while let Some(group) = Self::next_group(&jobs).await {
                    Self::commit(&writer, group).await;
                }
            });
        }
        GroupCommit { queue }
    }

    /// The next group: the first write to come, and whatever queued with it while the
    /// previous group committed. No waiting window, so a lone request pays nothing for
    /// the grouping. `None` once every sender is gone.
    async fn next_group(jobs: &tokio::sync::Mutex<mpsc::Receiver<Job>>) -> Option<Vec<Job>> {
        let mut jobs = jobs.lock().await;
        let mut group = vec![jobs.recv().await?];
        while group.len() < DB::GROUP_LIMIT {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        Some(group)
    }

    /// Runs `group` in one transaction, each write in a savepoint; answers every write
    /// after the commit (or with the reason there was none).
    async fn commit(writer: &sqlx::Pool<DB>, group: Vec<Job>) {
        let mut conn = match writer.acquire().await {
            Ok(conn) => conn,
            Err(e) => return fail::<DB>(group.into_iter().map(|(_, reply)| reply), e),
        };
        // A bug must not stop every later write: the group's callers hear that it
        // failed (their answers are dropped: `GroupCommit::write` says so), and the
        // next group runs.
        let run = std::panic::AssertUnwindSafe(Self::commit_on(&mut conn, group));
        let committed = match futures::FutureExt::catch_unwind(run).await {
            Ok(committed) => committed,
            Err(_) => {
                tracing::error!("a group commit panicked; its writes were refused");
                false
            }
        };
        if !committed {
            // After a failure the database may have ended the transaction by itself
            // (SQLite does on a full disk or an I/O error) while sqlx still counts it
            // open: its next BEGIN would be a savepoint of nothing and later commits
            // would store nothing. A fresh connection replaces this one.
            conn.close_on_drop();
        }
    }

    /// Of a statement's error and the error of undoing it, the one the group fails
    /// with: the undoing's when it is transient (the connection went away: worth a
    /// retry), else the statement's own (the database ended the transaction by
    /// itself, and "no such savepoint" would hide why).
    fn worse(statement: sqlx::Error, undoing: sqlx::Error) -> sqlx::Error {
        if super::error::sqlx_is_transient(&undoing, DB::transient) {
            undoing
        } else {
            statement
        }
    }

    /// [`Self::commit`] on one connection; false when anything failed.
    async fn commit_on(conn: &mut DB::Connection, mut group: Vec<Job>) -> bool {
        if group.len() == 1
            && let Some((write, reply)) = group.pop()
        {
            return Self::commit_alone(conn, write, reply).await;
        }
        let mut tx = match sqlx::Connection::begin(&mut *conn).await {
            Ok(tx) => tx,
            Err(e) => {
                fail::<DB>(group.into_iter().map(|(_, reply)| reply), e);
                return false;
            }
        };
        let mut done: Vec<(Reply, Result<Written, WriteError>)> = Vec::with_capacity(group.len());
        let mut group = group.into_iter();
        while let Some((write, reply)) = group.next() {
            let result = if DB::CONSTRAINT_ERRORS_UNDO_THE_STATEMENT && write.fails_before_writing()
            {
                // No savepoint (two round trips to the database's thread fewer): a
                // constraint undoes the statement that met it, and these writes meet
                // one only in their first statement. Any other error may have undone
                // the whole transaction, so it fails the group.
                match Self::apply(&mut tx, &write).await {
                    Ok((w, _)) => Ok(Ok(w)),
                    Err(e) if is_constraint(&e) => Ok(Err(WriteError::Statement(e))),
                    Err(e) => Err(e),
                }
            } else {
                match (&mut tx).begin().await {
                    Ok(mut point) => match Self::apply(&mut point, &write).await {
                        Ok((w, true)) => point.commit().await.map(|()| Ok(w)),
                        // Answered, but what it wrote is not to be kept.
                        Ok((w, false)) => point.rollback().await.map(|()| Ok(w)),
                        Err(e) => match point.rollback().await {
                            Ok(()) => Ok(Err(WriteError::Statement(e))),
                            Err(r) => Err(Self::worse(e, r)),
                        },
                    },
                    Err(e) => Err(e),
                }
            };
            match result {
                Ok(r) => done.push((reply, r)),
                // A savepoint that cannot be taken or left, or an error that may have
                // ended the transaction: it is unusable.
                Err(e) => {
                    drop(tx);
                    let replies = done.into_iter().map(|(r, _)| r);
                    let rest = group.map(|(_, r)| r);
                    fail::<DB>(replies.chain(std::iter::once(reply)).chain(rest), e);
                    return false;
                }
            }
        }
        match tx.commit().await {
            Ok(()) => {
                for (reply, r) in done {
                    let _ = reply.send(r);
                }
                true
            }
            Err(e) => {
                fail::<DB>(done.into_iter().map(|(r, _)| r), e);
                false
            }
        }
    }

    /// A group of one write: its own transaction, without a savepoint (two round trips
    /// to the database fewer), rolled back when the write fails or is not to be kept.
    /// False when anything but the write's own statement failed.
    async fn commit_alone(conn: &mut DB::Connection, write: Write, reply: Reply) -> bool {
        let once = |reply| std::iter::once(reply);
        let mut tx = match sqlx::Connection::begin(&mut *conn).await {
            Ok(tx) => tx,
            Err(e) => {
                fail::<DB>(once(reply), e);
                return false;
            }
        };
        let (answer, ended) = match Self::apply(&mut tx, &write).await {
            Ok((w, true)) => (Ok(w), tx.commit().await),
            // Answered, but what it wrote is not to be kept.
            Ok((w, false)) => (Ok(w), tx.rollback().await),
            Err(e) => match tx.rollback().await {
                Ok(()) => (Err(WriteError::Statement(e)), Ok(())),
                Err(r) => {
                    fail::<DB>(once(reply), Self::worse(e, r));
                    return false;
                }
            },
        };
        match ended {
            Ok(()) => {
                let _ = reply.send(answer);
                true
            }
            Err(e) => {
                fail::<DB>(once(reply), e);
                false
            }
        }
    }

    /// One write's statements, on the group's connection; with whether to keep them.
    async fn apply(
        conn: &mut DB::Connection,
        write: &Write,
    ) -> Result<(Written, bool), sqlx::Error> {
        match write {
            Write::AuthClock {
                device_id,
                request_ms,
            } => {
                let r = sqlx::query(sql::ADVANCE_AUTH_CLOCK)
                    .bind(&device_id[..])
                    .bind(ms_to_db(*request_ms))
                    .execute(&mut *conn)
                    .await?;
                Ok((Written::AuthClock(DB::rows_affected(&r) == 1), true))
            }
            Write::Rejects { user_id, change } => {
                let query = match change {
                    RejectCount::Increment => sql::INCREMENT_REJECTS,
                    RejectCount::Reset => sql::RESET_REJECTS,
                };
                let n: Option<i64> = sqlx::query_scalar(query)
                    .bind(user_id.as_str())
                    .fetch_optional(&mut *conn)
                    .await?;
                Ok((Written::Rejects(n), true))
            }
            Write::Decision { row, factors, keep } => {
                sqlx::query(sql::INSERT_DECISION)
                    .bind(row.token_id.as_str())
                    .bind(row.user_id.as_str())
                    .bind(&row.device_id[..])
                    .bind(ms_to_db(row.decided_at_ms))
                    .bind(row.decision.as_str())
                    .bind(row.confidence)
                    .bind(row.llr)
                    .bind(row.degraded)
                    .bind(factors.as_str())
                    .bind(row.nonce.as_deref().unwrap_or(""))
                    .bind(row.token.as_str())
                    .execute(&mut *conn)
                    .await?;
                sqlx::query(sql::PRUNE_DECISIONS)
                    .bind(row.user_id.as_str())
                    .bind(i64::from(*keep))
                    .execute(&mut *conn)
                    .await?;
                Ok((Written::Decision, true))
            }
            Write::PackRow {
                key,
                user_id,
                device_id,
                first_sequence,
                last_sequence,
                newest_ms,
                written_ms,
            } => {
                sqlx::query(sql::INSERT_PACK)
                    .bind(key.as_str())
                    .bind(user_id.as_str())
                    .bind(&device_id[..])
                    .bind(*first_sequence)
                    .bind(*last_sequence)
                    .bind(ms_to_db(*newest_ms))
                    .bind(ms_to_db(*written_ms))
                    .execute(&mut *conn)
                    .await?;
                Ok((Written::PackRow, true))
            }
            Write::PackCommit { key, metas } => {
                let done = Self::commit_pack(conn, key, metas).await?;
                let keep = matches!(done, PackCommitted::Committed);
                Ok((Written::PackCommit(done), keep))
            }
        }
    }

    /// The rows of a pack in multi-row statements (one round trip per `INSERT_CHUNK` rows;
    /// RETURNING says which were new), then the pack's commit mark.
    async fn commit_pack(
        conn: &mut DB::Connection,
        key: &str,
        metas: &[EnvelopeMeta],
    ) -> Result<PackCommitted, sqlx::Error> {
        let mut inserted: std::collections::HashSet<i64> = std::collections::HashSet::new();
        // In order of sequence number (stable: of two envelopes with one number, the
        // first stays first), whatever order the request had: two gateways inserting
        // the same device's rows (a retry sent elsewhere, a cloned key) then take the
        // rows' locks in one order and cannot deadlock.
        let mut in_order: Vec<&EnvelopeMeta> = metas.iter().collect();
        in_order.sort_by_key(|m| m.sequence);
        for chunk in in_order.chunks(sql::INSERT_CHUNK) {
            let mut q = sqlx::QueryBuilder::<DB>::new(sql::INSERT_ENVELOPES_HEAD);
            q.push_values(chunk, |mut row, meta| {
                row.push_bind(meta.device_id.to_vec())
                    .push_bind(sequence_to_db(meta.sequence))
                    .push_bind(meta.envelope_id.to_vec())
                    .push_bind(meta.user_id.clone())
                    .push_bind(ms_to_db(meta.created_at_ms))
                    .push_bind(ms_to_db(meta.received_at_ms))
                    .push_bind(i64::from(meta.records))
                    .push_bind(key.to_owned());
            });
            q.push(sql::INSERT_ENVELOPES_TAIL);
            let rows: Vec<(i64,)> = q.build_query_as().fetch_all(&mut *conn).await?;
            inserted.extend(rows.into_iter().map(|(s,)| s));
        }
        // Each sequence number the statement returned belongs to the first envelope of
        // this pack that carries it; any other envelope met a row already there.
        let mut conflicts = Vec::new();
        for (k, meta) in metas.iter().enumerate() {
            if inserted.remove(&sequence_to_db(meta.sequence)) {
                continue;
            }
            let stored: Option<Vec<u8>> = sqlx::query_scalar(sql::SEEN)
                .bind(&meta.device_id[..])
                .bind(sequence_to_db(meta.sequence))
                .fetch_optional(&mut *conn)
                .await?;
            match stored {
                // Stored before (by an earlier request, or earlier in this one).
                Some(id) if id == meta.envelope_id => conflicts.push((k, StoreOutcome::Duplicate)),
                // Another envelope holds the sequence number: nothing after it counts.
                Some(_) => {
                    conflicts.push((k, StoreOutcome::SequenceReused));
                    break;
                }
                None => return Ok(PackCommitted::Vanished),
            }
        }
        if !conflicts.is_empty() {
            return Ok(PackCommitted::Conflicts(conflicts));
        }
        let marked = sqlx::query(sql::COMMIT_PACK)
            .bind(key)
            .execute(&mut *conn)
            .await?;
        Ok(if DB::rows_affected(&marked) == 1 {
            PackCommitted::Committed
        } else {
            PackCommitted::RowGone
        })
    }
}
