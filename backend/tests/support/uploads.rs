//! Feature windows of synthetic people stored as a gateway stores uploads (no HTTP):
//! for tests of what is built from the store (training sets, the learning loop).
#![allow(dead_code)]

use tacit_backend::store::{DeviceRow, EnvelopeMeta, Store, StoreOutcome};
use tacit_models::FactorKind;
use tacit_models::data::Person;
use tacit_shared::payload::{FeatureRecord, Payload};

/// A device id for user number `i`.
pub fn device(i: usize) -> [u8; 16] {
    let mut d = [0x5a; 16];
    d[..8].copy_from_slice(&(i as u64).to_be_bytes());
    d
}

/// Creates user `user` (number `i`) with one device registered at `t0_ms`.
pub async fn add_user(store: &dyn Store, user: &str, i: usize, t0_ms: u64) {
    store.create_user(user).await.unwrap();
    store
        .register_device(DeviceRow {
            device_id: device(i),
            user_id: user.into(),
            algorithm: 1,
            public_key: vec![7; 32],
            created_at_ms: t0_ms,
            revoked: false,
        })
        .await
        .unwrap();
}

/// Stores the given gait sessions of `person` as user `user` (number `i`): one
/// envelope per session, session `s` starting at `t0_ms + s * spacing_ms`, windows 5 s
/// apart.
pub async fn upload_gait(
    store: &dyn Store,
    user: &str,
    i: usize,
    person: &Person,
    sessions: std::ops::Range<u32>,
    t0_ms: u64,
    spacing_ms: u64,
) {
    for session in sessions {
        let start = t0_ms + u64::from(session) * spacing_ms;
        let records: Vec<FeatureRecord> = person
            .samples
            .iter()
            .filter(|s| s.group == session)
            .enumerate()
            .map(|(k, s)| FeatureRecord {
                factor: FactorKind::Gait,
                schema_version: 1,
                window_start_ms: start + k as u64 * 5_000,
                window_ms: 5_000,
                context: None,
                values: s.vector.clone(),
            })
            .collect();
        let n = records.len() as u32;
        let mut envelope_id = device(i);
        envelope_id[15] = session as u8;
        let meta = EnvelopeMeta {
            device_id: device(i),
            user_id: user.into(),
            sequence: u64::from(session) + 1,
            envelope_id,
            created_at_ms: start + 100_000,
            received_at_ms: start + 200_000,
            records: n,
        };
        let bytes = Payload {
            records,
            face_images: Vec::new(),
        }
        .encode()
        .unwrap();
        assert_eq!(
            store.store_envelope(meta, bytes).await.unwrap(),
            StoreOutcome::Stored
        );
    }
}
