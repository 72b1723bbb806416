//! Storage: users, enrolment tokens, devices and the replay memory in a SQL database
//! (SQLite embedded, or PostgreSQL), feature batches as objects (a directory, or S3).
//!
//! The gateway holds one `Arc<dyn Store>`, opened with [`StoreConfig::open`].
//!
//! # Layout
//! * `error.rs` — [`StoreError`], one variant per HTTP status class;
//! * `model.rs` — rows, outcomes, the user id rule;
//! * `config.rs` — `sqlite://` / `postgres://` and `file://` / `s3://` configuration;
//! * `objects.rs` — [`FeatureObjects`], the object store side;
//! * `pack.rs` — the layout of a pack: several envelopes' features in one object;
//! * `at_rest.rs` — [`at_rest::AtRestKeys`], AES-256-GCM of features and templates at
//!   rest, bound to where each blob lives;
//! * `sql.rs` — the queries (one text for both databases) and the shared [`Store`]
//!   implementation; `sqlite.rs` / `postgres.rs` — connection, pragmas, migrations and
//!   error codes of each database. Schemas: `backend/migrations/{sqlite,postgres}/`.
//!
//! # Envelopes, packs and the replay rule
//! Ingest stores a request's envelopes of one device as a group commit
//! ([`Store::store_envelopes`]): a `packs` row marked uncommitted, then one object
//! holding every envelope's features ([`pack`]), fsynced once, then one transaction
//! that inserts the envelope rows and marks the pack committed. The acknowledgement
//! follows that commit. The envelope row's primary key `(device_id, sequence)` is the
//! replay rule's uniqueness (`tacit_shared::replay`), so two racing uploads of one
//! sequence number cannot both be `Stored`. A pack holds only envelopes that are
//! stored: an attempt whose rows meet rows already there (sent again, or a reused
//! sequence number) rolls back, removes its pack and commits the rest in a new one. A crash before the commit leaves an uncommitted pack row, by
//! which [`Store::sweep_unfinished_packs`] deletes the object nobody indexes; the
//! client's retry stores the envelopes in a new pack. `delete_user` removes every
//! object by key prefix, indexed or not.
//!
//! Envelope rows are kept as long as their packs: they are the index of the objects as
//! well as the replay memory, and they are small (~100 bytes against up to 1 MiB of
//! features). Keeping them longer than the acceptance window is harmless
//! (`replay::check` answers `Duplicate` for a remembered envelope of any age). The
//! retention job deletes whole packs with their rows once a pack's newest envelope was
//! created before `ReplayPolicy::prune_before(now)` — [`Store::expire_envelopes`]; a
//! pack holds one day of creation times, so nothing outlives its retention by more
//! than a day.

pub mod at_rest;
mod config;
mod error;
mod group;
mod model;
mod objects;
pub mod pack;
mod postgres;
mod sql;
mod sqlite;

use async_trait::async_trait;

#[cfg(test)]
pub(crate) use config::DatabaseKind;
pub use config::{NotALocalPath, ObjectsConfig, S3Config, StoreConfig, local_path, redact_url};
pub use error::{BoxError, StoreError, StoreResult};
pub use model::{
    DecisionRow, DeletionReport, DeviceRow, EnvelopeMeta, EnvelopeRef, MAX_USER_ID_LEN,
    NewEnvelope, RejectCount, SeenEnvelope, StoreOutcome, TemplateRow, TrainingUser,
    validate_user_id,
};
pub use objects::FeatureObjects;
pub use postgres::PostgresStore;
pub use sql::{Dialect, SqlStore};
pub use sqlite::SqliteStore;

/// The backend's persistent state. Every method is safe to call concurrently; results
/// are durable when a method returns `Ok`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Brings the schema up to date; running it again changes nothing.
    async fn migrate(&self) -> StoreResult<()>;

    /// Creates a user. [`StoreError::AlreadyExists`] if it exists,
    /// [`StoreError::Invalid`] if the id breaks [`validate_user_id`].
    async fn create_user(&self, user_id: &str) -> StoreResult<()>;

    /// Whether a user exists.
    async fn user_exists(&self, user_id: &str) -> StoreResult<bool>;

    /// Records whether a user's uploaded features may train population models (off
    /// when a user is created). `false` when there is no such user.
    async fn set_training_consent(&self, user_id: &str, consent: bool) -> StoreResult<bool>;

    /// A user's training consent; `None` when there is no such user.
    async fn training_consent(&self, user_id: &str) -> StoreResult<Option<bool>>;

    /// The users whose uploaded features may train population models, in id order,
    /// with when each account was created (the gate draws only on accounts older than
    /// the model in service). A deleted user is gone from this list with everything
    /// else of theirs.
    async fn training_users(&self) -> StoreResult<Vec<TrainingUser>>;

    /// Up to `limit` users whose template of `factor` (its configured name) was built
    /// by a known model version other than `current`, oldest template first: the
    /// templates to rebuild after a new model is promoted. Templates whose factor did
    /// not name its model (`built_with` empty) are never listed.
    async fn stale_templates(
        &self,
        factor: &str,
        current: &str,
        limit: u32,
    ) -> StoreResult<Vec<String>>;

    /// Deletes a user's template of one factor (its configured name); `false` when
    /// there was none.
    async fn delete_template(&self, user_id: &str, factor: &str) -> StoreResult<bool>;

    /// Deletes a user with everything stored for it: devices, envelope rows, unused
    /// tokens, templates, and every feature object under its prefix (database first,
    /// so that an upload racing the deletion fails instead of leaving data behind).
    /// Calling it again after a partial failure finishes the job;
    /// [`StoreError::NotFound`] only when there was nothing at all.
    async fn delete_user(&self, user_id: &str) -> StoreResult<DeletionReport>;

    /// Stores an enrolment token for an existing user ([`StoreError::NotFound`]
    /// otherwise). Only the token's SHA-256 is stored.
    async fn create_enrolment_token(
        &self,
        user_id: &str,
        token_hash: [u8; 32],
        expires_at_ms: u64,
    ) -> StoreResult<()>;

    /// Uses up a token: returns its user if it existed and `now_ms < expires_at_ms`.
    /// The token is gone afterwards either way; of concurrent calls with the same token
    /// at most one gets `Some`.
    async fn consume_enrolment_token(
        &self,
        token_hash: [u8; 32],
        now_ms: u64,
    ) -> StoreResult<Option<String>>;

    /// Registers a device of an existing user. [`StoreError::AlreadyExists`] if the
    /// device id is registered, [`StoreError::NotFound`] if the user does not exist.
    async fn register_device(&self, device: DeviceRow) -> StoreResult<()>;

    /// Looks a device up.
    async fn get_device(&self, device_id: [u8; 16]) -> StoreResult<Option<DeviceRow>>;

    /// The user's devices, oldest first (for the user's data export).
    async fn user_devices(&self, user_id: &str) -> StoreResult<Vec<DeviceRow>>;

    /// Stores the decrypted features of envelopes of one device as one group commit
    /// (see the module docs): one pack object, then every row in one transaction.
    /// Outcomes in order; after a [`StoreOutcome::SequenceReused`] the rest of the
    /// group is not stored and has no outcome (the device's key is on two phones).
    /// [`StoreError::NotFound`] if the device is not registered for the user,
    /// [`StoreError::Invalid`] for a group of several devices.
    async fn store_envelopes(&self, group: Vec<NewEnvelope>) -> StoreResult<Vec<StoreOutcome>>;

    /// Stores one envelope's features: a group commit of one.
    async fn store_envelope(
        &self,
        meta: EnvelopeMeta,
        features: Vec<u8>,
    ) -> StoreResult<StoreOutcome> {
        self.store_envelopes(vec![NewEnvelope { meta, features }])
            .await?
            .pop()
            .ok_or_else(|| StoreError::corrupt("a group commit of one gave no outcome"))
    }

    /// The envelope stored for `(device_id, sequence)` (for `replay::check`), with when
    /// it was stored.
    async fn seen(&self, device_id: [u8; 16], sequence: u64) -> StoreResult<Option<SeenEnvelope>>;

    /// The envelopes stored for some of a device's sequence numbers (the replay check
    /// of a batch in one query), as `(sequence, envelope)` in no particular order;
    /// numbers with nothing stored are absent.
    async fn seen_range(
        &self,
        device_id: [u8; 16],
        sequences: &[u64],
    ) -> StoreResult<Vec<(u64, SeenEnvelope)>>;

    /// How many envelopes are stored for a user.
    async fn count_envelopes(&self, user_id: &str) -> StoreResult<u64>;

    /// The keys of a user's feature objects, sorted.
    async fn list_feature_objects(&self, user_id: &str) -> StoreResult<Vec<String>>;

    /// Writes (inserts or replaces) a user's template for one factor.
    /// [`StoreError::NotFound`] if the user does not exist.
    async fn put_template(&self, row: TemplateRow) -> StoreResult<()>;

    /// A user's templates, sorted by factor name.
    async fn templates(&self, user_id: &str) -> StoreResult<Vec<TemplateRow>>;

    /// A user's newest envelopes created at or after `since_ms` (device clock), newest
    /// first, at most `limit`.
    async fn recent_envelopes(
        &self,
        user_id: &str,
        since_ms: u64,
        limit: u32,
    ) -> StoreResult<Vec<EnvelopeRef>>;

    /// Records the time of a device's authentication request: `true` (and stored) if
    /// it is later than every earlier one, `false` otherwise (a replay or a reordered
    /// request) or when the device does not exist. Of concurrent calls with the same
    /// time at most one gets `true`.
    async fn advance_auth_clock(&self, device_id: [u8; 16], request_ms: u64) -> StoreResult<bool>;

    /// Deletes up to `limit` of the oldest packs whose newest envelope was created
    /// before `created_before_ms` (device clock, Unix ms): each pack's object, then its
    /// envelope rows. Returns how many envelopes went; call again until it returns 0.
    /// The caller keeps the cut below the replay window
    /// (`ReplayPolicy::prune_before`): the rows are the replay memory.
    async fn expire_envelopes(&self, created_before_ms: u64, limit: u32) -> StoreResult<u64>;

    /// Deletes up to `limit` packs whose group commit never finished (a crash or
    /// failure between writing the object and committing its rows) and that were
    /// written before `written_before_ms` (server clock): the objects, then their
    /// rows. Returns how many went.
    async fn sweep_unfinished_packs(&self, written_before_ms: u64, limit: u32) -> StoreResult<u64>;

    /// Marks a device revoked (its uploads and authentications are refused from then
    /// on); `false` when there is no such device. Revoking twice is not an error.
    async fn revoke_device(&self, device_id: [u8; 16]) -> StoreResult<bool>;

    /// A user's consecutive `reject` decisions ([`StoreError::NotFound`] for no user).
    async fn consecutive_rejects(&self, user_id: &str) -> StoreResult<u32>;

    /// Changes a user's consecutive-reject count and returns the new value.
    /// [`StoreError::NotFound`] if the user does not exist.
    async fn count_reject(&self, user_id: &str, change: RejectCount) -> StoreResult<u32>;

    /// Records a decision and deletes the user's older ones beyond the newest `keep`,
    /// in one transaction. [`StoreError::NotFound`] if the user does not exist.
    async fn record_decision(&self, row: DecisionRow, keep: u32) -> StoreResult<()>;

    /// A user's newest decisions, newest first, at most `limit`.
    async fn decisions(&self, user_id: &str, limit: u32) -> StoreResult<Vec<DecisionRow>>;

    /// Deletes every decision made before `before_ms` (server clock, Unix ms); returns
    /// how many went.
    async fn expire_decisions(&self, before_ms: u64) -> StoreResult<u64>;

    /// The object store, for readers of the features.
    fn objects(&self) -> &FeatureObjects;

    /// Checks both stores: `SELECT 1` and one object listing.
    /// [`StoreError::Unavailable`] when either does not answer.
    async fn health(&self) -> StoreResult<()>;
}
