//! The rows and outcomes the storage layer hands out, and the checks on what comes in.

use super::error::{StoreError, StoreResult};

/// Longest user id, in bytes.
pub const MAX_USER_ID_LEN: usize = 128;

/// A registered device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    /// The device id (`tacit_shared::identity`: hash of the algorithm and key).
    pub device_id: [u8; 16],
    /// The user the device was enrolled for.
    pub user_id: String,
    /// The signature algorithm tag of `public_key`.
    pub algorithm: u8,
    /// The device's public key, in the encoding of `algorithm`.
    pub public_key: Vec<u8>,
    /// When the device was registered (server clock, Unix ms).
    pub created_at_ms: u64,
    /// Whether the device was revoked (`POST /v1/devices/{id}/revoke`): its uploads
    /// and authentications are refused.
    pub revoked: bool,
}

/// What the gateway knows about an envelope it is about to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeMeta {
    /// The sending device (the envelope header's device id).
    pub device_id: [u8; 16],
    /// The user that device belongs to.
    pub user_id: String,
    /// The envelope's per-device sequence number.
    pub sequence: u64,
    /// The envelope's random id.
    pub envelope_id: [u8; 16],
    /// The envelope's creation time (device clock, Unix ms).
    pub created_at_ms: u64,
    /// When the gateway received it (server clock, Unix ms).
    pub received_at_ms: u64,
    /// How many feature records the payload held.
    pub records: u32,
}

/// An envelope to store: what the gateway knows of it, and its encoded features.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEnvelope {
    /// Its row.
    pub meta: EnvelopeMeta,
    /// Its encoded payload (`tacit_shared::payload::Payload::encode`).
    pub features: Vec<u8>,
}

/// What [`Store::store_envelopes`](super::Store::store_envelopes) did, in the terms of
/// `tacit_shared::replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// New: the features and the row are durable now; acknowledge.
    Stored,
    /// The same `(device, sequence, envelope id)` was stored before: acknowledge again;
    /// nothing was stored twice.
    Duplicate,
    /// The sequence number belongs to another envelope of this device: reject. Nothing
    /// of it is stored.
    SequenceReused,
}

/// What [`Store::delete_user`](super::Store::delete_user) removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeletionReport {
    /// Device rows.
    pub devices: u64,
    /// Envelope rows (the replay memory and index of the feature objects).
    pub envelopes: u64,
    /// Feature objects in the object store.
    pub objects: u64,
    /// Unused enrolment tokens.
    pub tokens: u64,
    /// Model template rows.
    pub templates: u64,
    /// Recorded decisions.
    pub decisions: u64,
}

/// A decision of `POST /v1/authenticate` as recorded for the relying party: what was
/// decided and the signed verdict; no biometric data.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRow {
    /// The verdict's `jti`.
    pub token_id: String,
    /// The user.
    pub user_id: String,
    /// The device that asked.
    pub device_id: [u8; 16],
    /// When (server clock, Unix ms).
    pub decided_at_ms: u64,
    /// `accept`, `step_up` or `reject`.
    pub decision: String,
    /// The answer's confidence.
    pub confidence: f64,
    /// The fused log-likelihood ratio.
    pub llr: f64,
    /// Whether a factor holding a template could not answer.
    pub degraded: bool,
    /// The factors whose evidence counted.
    pub factors: Vec<String>,
    /// The relying party's nonce, if the request carried one.
    pub nonce: Option<String>,
    /// The signed verdict.
    pub token: String,
}

/// A user's template for one factor (opaque to the store: the factor service's
/// template wrapped with the gateway's enrolment facts, see `crate::scoring`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRow {
    /// The user.
    pub user_id: String,
    /// The factor's configured name (`gait`, `keystroke-fixed`, `py-keystroke`, ...).
    pub factor: String,
    /// Format version of `blob`.
    pub format: u32,
    /// The template bytes.
    pub blob: Vec<u8>,
    /// When it was written (server clock, Unix ms).
    pub updated_at_ms: u64,
    /// The model version that built it (`""` when the factor did not say).
    pub built_with: String,
}

/// The envelope stored under a device's sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenEnvelope {
    /// Its id.
    pub envelope_id: [u8; 16],
    /// When the gateway stored it (server clock, Unix ms).
    pub received_at_ms: u64,
    /// Key of its feature object (what was stored, to judge a re-sent copy by).
    pub object_key: String,
}

/// A stored envelope, as the evidence of an authentication finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeRef {
    /// The envelope's id.
    pub envelope_id: [u8; 16],
    /// Key of its feature object.
    pub object_key: String,
    /// Its creation time (device clock, Unix ms).
    pub created_at_ms: u64,
    /// When the gateway first stored it (server clock, Unix ms).
    pub received_at_ms: u64,
}

/// A change of a user's consecutive-reject count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectCount {
    /// One more `reject`.
    Increment,
    /// Back to zero (an `accept`, or a successful step-up).
    Reset,
}

/// Checks a user id. User ids become a segment of object keys
/// (`features/{user_id}/…`), so they are limited to 1–128 bytes of ASCII letters,
/// digits, `_`, `-`, `.` and `@`, starting with a letter or digit: no separators,
/// no `.`/`..` segments, nothing an object store would encode differently.
pub fn validate_user_id(user_id: &str) -> StoreResult<()> {
    let ok = !user_id.is_empty()
        && user_id.len() <= MAX_USER_ID_LEN
        && user_id
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && user_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "user id {:?}: 1-{MAX_USER_ID_LEN} of [A-Za-z0-9_.@-], starting with a letter or digit",
            user_id
                .chars()
                .take(MAX_USER_ID_LEN + 1)
                .collect::<String>()
        )))
    }
}

/// Database integers are signed 64-bit; sequence numbers are `u64`. The bits are kept
/// as they are, so equality and uniqueness (all the replay rule needs) hold for the
/// whole `u64` range; only SQL ordering of sequences above `i64::MAX` would be off.
pub(crate) fn sequence_to_db(sequence: u64) -> i64 {
    i64::from_be_bytes(sequence.to_be_bytes())
}

/// Timestamps beyond `i64::MAX` ms (year 292 million) saturate.
pub(crate) fn ms_to_db(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A stored timestamp back; a negative one means the row was written by something else.
pub(crate) fn ms_from_db(ms: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(ms).map_err(|_| StoreError::corrupt(format!("negative {what} in the database")))
}

/// A stored 16-byte id back.
pub(crate) fn id16_from_db(bytes: &[u8], what: &str) -> StoreResult<[u8; 16]> {
    <[u8; 16]>::try_from(bytes).map_err(|_| {
        StoreError::corrupt(format!("{what} of {} bytes in the database", bytes.len()))
    })
}

/// A stored count back.
pub(crate) fn count_from_db(n: i64) -> StoreResult<u64> {
    u64::try_from(n).map_err(|_| StoreError::corrupt("negative count"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids() {
        for ok in ["u1", "alice@example.org", "A-b_c.d", &"x".repeat(128)] {
            assert!(validate_user_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "-a",
            "a b",
            "é",
            &"x".repeat(129),
            "a\0",
        ] {
            assert!(
                matches!(validate_user_id(bad), Err(StoreError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn conversions() {
        assert_eq!(sequence_to_db(0), 0);
        assert_eq!(sequence_to_db(u64::MAX), -1);
        assert_ne!(sequence_to_db(u64::MAX), sequence_to_db(u64::MAX - 1));
        assert_eq!(ms_to_db(u64::MAX), i64::MAX);
        assert!(ms_from_db(-1, "time").is_err());
        assert_eq!(ms_from_db(5, "time").ok(), Some(5));
        assert!(id16_from_db(&[0; 15], "device id").is_err());
        assert_eq!(id16_from_db(&[3; 16], "device id").ok(), Some([3; 16]));
    }
}

/// A user who consented to training (`Store::training_users`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainingUser {
    /// The user.
    pub user_id: String,
    /// When the account was created (server clock, Unix ms).
    pub created_at_ms: u64,
}
