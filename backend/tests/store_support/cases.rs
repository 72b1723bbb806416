//! The storage suite: every case runs unchanged against every backend.

use std::collections::BTreeMap;
use std::sync::Arc;

use tacit_backend::store::{
    DecisionRow, DeletionReport, DeviceRow, EnvelopeMeta, Store, StoreError, StoreOutcome,
};

use super::Fixture;

const HOUR: u64 = 3600 * 1000;
const NOW: u64 = 1_800_000_000_000;

fn device(user_id: &str, n: u8) -> DeviceRow {
    DeviceRow {
        device_id: [n; 16],
        user_id: user_id.to_owned(),
        algorithm: 1,
        public_key: vec![n; 32],
        created_at_ms: NOW,
        revoked: false,
    }
}

fn meta(device: &DeviceRow, sequence: u64, envelope_id: [u8; 16]) -> EnvelopeMeta {
    EnvelopeMeta {
        device_id: device.device_id,
        user_id: device.user_id.clone(),
        sequence,
        envelope_id,
        created_at_ms: NOW - HOUR,
        received_at_ms: NOW,
        records: 7,
    }
}

fn features(sequence: u64, envelope_id: [u8; 16]) -> Vec<u8> {
    let mut bytes = sequence.to_be_bytes().to_vec();
    bytes.extend_from_slice(&envelope_id);
    bytes
}

fn decision(user_id: &str, n: u8, at_ms: u64) -> DecisionRow {
    DecisionRow {
        token_id: format!("{user_id}-{at_ms}-{n}"),
        user_id: user_id.to_owned(),
        device_id: [n; 16],
        decided_at_ms: at_ms,
        decision: "step_up".into(),
        confidence: 0.25,
        llr: -1.5,
        degraded: n.is_multiple_of(2),
        factors: vec!["gait".into(), "py-keystroke".into()],
        nonce: (!n.is_multiple_of(2)).then(|| format!("nonce-{n}-0123456789")),
        token: format!("header.claims-{n}.signature"),
    }
}

/// The key of the object (a pack) holding a stored envelope, from its row.
async fn key_of(s: &dyn Store, m: &EnvelopeMeta) -> String {
    s.seen(m.device_id, m.sequence)
        .await
        .unwrap()
        .expect("a stored envelope")
        .object_key
}

/// What a group of "new, sent again, reused, new" envelopes comes to: it stops at the
/// reuse, and the last one is not stored.
const MIXED_OUTCOMES: [StoreOutcome; 3] = [
    StoreOutcome::Stored,
    StoreOutcome::Duplicate,
    StoreOutcome::SequenceReused,
];

/// The envelope ids in the pack that holds `m`, in the pack's order.
async fn pack_of(s: &dyn Store, m: &EnvelopeMeta) -> Vec<[u8; 16]> {
    let key = key_of(s, m).await;
    s.objects()
        .read_entries(&key)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.envelope_id)
        .collect()
}

/// Running the migrations again — directly, or by opening the store from its
/// configuration — changes neither schema nor data.
pub async fn migrations_idempotent(fx: &Fixture) {
    let tables = fx.tables().await;
    assert_eq!(
        tables,
        [
            "decisions",
            "devices",
            "enrolment_tokens",
            "envelopes",
            "packs",
            "templates",
            "users"
        ]
    );
    fx.store.create_user("u1").await.unwrap();
    fx.store.migrate().await.unwrap();
    fx.store.migrate().await.unwrap();
    let reopened = fx.config.open().await.unwrap();
    assert!(reopened.user_exists("u1").await.unwrap());
    assert_eq!(fx.migrations_applied().await, 5);
    assert_eq!(fx.tables().await, tables);
    fx.assert_durable_commits().await;
}

/// Users: create, exists, duplicate, invalid ids.
pub async fn users(fx: &Fixture) {
    let s = &fx.store;
    assert!(!s.user_exists("alice").await.unwrap());
    s.create_user("alice").await.unwrap();
    assert!(s.user_exists("alice").await.unwrap());
    assert!(matches!(
        s.create_user("alice").await,
        Err(StoreError::AlreadyExists("user"))
    ));
    assert!(matches!(
        s.create_user("../etc").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(!s.user_exists("bob").await.unwrap());
}

/// Training consent: off for a new user, recorded and withdrawn, listed only while
/// given, and gone with the user.
pub async fn training_consent(fx: &Fixture) {
    let s = &fx.store;
    for u in ["carol", "alice", "bob"] {
        s.create_user(u).await.unwrap();
        assert_eq!(s.training_consent(u).await.unwrap(), Some(false));
    }
    assert!(s.training_users().await.unwrap().is_empty());
    assert!(s.set_training_consent("carol", true).await.unwrap());
    assert!(s.set_training_consent("alice", true).await.unwrap());
    let ids = |v: Vec<tacit_backend::store::TrainingUser>| -> Vec<String> {
        v.into_iter().map(|u| u.user_id).collect()
    };
    let listed = s.training_users().await.unwrap();
    assert!(
        listed.iter().all(|u| u.created_at_ms > 1_700_000_000_000),
        "{listed:?}"
    );
    assert_eq!(ids(listed), ["alice", "carol"]);
    assert!(s.set_training_consent("carol", false).await.unwrap());
    assert_eq!(s.training_consent("carol").await.unwrap(), Some(false));
    assert_eq!(ids(s.training_users().await.unwrap()), ["alice"]);
    s.delete_user("alice").await.unwrap();
    assert!(s.training_users().await.unwrap().is_empty());
    assert_eq!(s.training_consent("alice").await.unwrap(), None);
    assert!(!s.set_training_consent("alice", true).await.unwrap());
    assert!(matches!(
        s.set_training_consent("../etc", true).await,
        Err(StoreError::Invalid(_))
    ));
}

/// Eight concurrent consumptions of one token: exactly one gets the user.
pub async fn token_single_use_concurrent(fx: &Fixture) {
    let s = &fx.store;
    s.create_user("u1").await.unwrap();
    let token = [9_u8; 32];
    s.create_enrolment_token("u1", token, NOW + HOUR)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store: Arc<dyn Store> = Arc::clone(s);
            tokio::spawn(async move { store.consume_enrolment_token(token, NOW).await })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        if let Some(user) = task.await.unwrap().unwrap() {
            winners.push(user);
        }
    }
    assert_eq!(winners, ["u1"]);
    assert_eq!(s.consume_enrolment_token(token, NOW).await.unwrap(), None);
    assert_eq!(fx.rows("enrolment_tokens").await, 0);
}

/// Expiry, unknown tokens, unknown users, duplicate hashes.
pub async fn token_expiry(fx: &Fixture) {
    let s = &fx.store;
    s.create_user("u1").await.unwrap();
    let (expired, valid) = ([1_u8; 32], [2_u8; 32]);
    s.create_enrolment_token("u1", expired, NOW).await.unwrap();
    s.create_enrolment_token("u1", valid, NOW + 1)
        .await
        .unwrap();
    // Valid strictly before `expires_at_ms`.
    assert_eq!(s.consume_enrolment_token(expired, NOW).await.unwrap(), None);
    // An expired token is used up too: an earlier clock does not revive it.
    assert_eq!(
        s.consume_enrolment_token(expired, NOW - HOUR)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.consume_enrolment_token(valid, NOW).await.unwrap(),
        Some("u1".to_owned())
    );
    assert_eq!(s.consume_enrolment_token([3; 32], NOW).await.unwrap(), None);
    assert!(matches!(
        s.create_enrolment_token("nobody", [4; 32], NOW + HOUR)
            .await,
        Err(StoreError::NotFound("user"))
    ));
    s.create_enrolment_token("u1", [5; 32], NOW + HOUR)
        .await
        .unwrap();
    assert!(matches!(
        s.create_enrolment_token("u1", [5; 32], NOW + HOUR).await,
        Err(StoreError::AlreadyExists(_))
    ));
}

/// Devices: register, read back, duplicates, unknown users.
pub async fn devices(fx: &Fixture) {
    let s = &fx.store;
    s.create_user("u1").await.unwrap();
    let d = DeviceRow {
        algorithm: 2,
        public_key: vec![0xee; 65],
        ..device("u1", 7)
    };
    assert_eq!(s.get_device(d.device_id).await.unwrap(), None);
    s.register_device(d.clone()).await.unwrap();
    assert_eq!(s.get_device(d.device_id).await.unwrap(), Some(d.clone()));
    assert!(matches!(
        s.register_device(d.clone()).await,
        Err(StoreError::AlreadyExists("device"))
    ));
    assert!(matches!(
        s.register_device(device("nobody", 8)).await,
        Err(StoreError::NotFound("user"))
    ));
    assert_eq!(s.get_device([8; 16]).await.unwrap(), None);

    // Revocation: sticks, is idempotent, and needs a device.
    assert!(s.revoke_device(d.device_id).await.unwrap());
    let revoked = s.get_device(d.device_id).await.unwrap().unwrap();
    assert!(revoked.revoked);
    assert_eq!(
        revoked,
        DeviceRow {
            revoked: true,
            ..d.clone()
        }
    );
    assert!(s.revoke_device(d.device_id).await.unwrap());
    assert!(!s.revoke_device([8; 16]).await.unwrap());

    // A user's devices (the export): oldest first, nobody else's.
    s.create_user("u2").await.unwrap();
    let older = DeviceRow {
        created_at_ms: d.created_at_ms - 1,
        ..device("u1", 9)
    };
    s.register_device(older.clone()).await.unwrap();
    s.register_device(device("u2", 10)).await.unwrap();
    let mine = s.user_devices("u1").await.unwrap();
    assert_eq!(mine, vec![older, revoked]);
    assert!(s.user_devices("nobody").await.unwrap().is_empty());
}

/// `store_envelope`: Stored, Duplicate, SequenceReused, the object and the replay
/// memory behind each, and unknown devices.
pub async fn envelopes(fx: &Fixture) {
    let s = &fx.store;
    s.create_user("u1").await.unwrap();
    s.create_user("u2").await.unwrap();
    let d = device("u1", 1);
    s.register_device(d.clone()).await.unwrap();
    s.register_device(device("u2", 2)).await.unwrap();

    let first = meta(&d, 1, [0xa1; 16]);
    let stored = s
        .store_envelope(first.clone(), features(1, [0xa1; 16]))
        .await
        .unwrap();
    assert_eq!(stored, StoreOutcome::Stored);
    assert_eq!(
        s.seen(d.device_id, 1).await.unwrap().map(|s| s.envelope_id),
        Some([0xa1; 16])
    );
    assert_eq!(
        s.seen(d.device_id, 2).await.unwrap().map(|s| s.envelope_id),
        None
    );
    // The receipt time comes back: an authentication judges a re-sent envelope by it.
    assert_eq!(
        s.seen(d.device_id, 1)
            .await
            .unwrap()
            .map(|s| s.received_at_ms),
        Some(first.received_at_ms)
    );
    let first_key = key_of(s.as_ref(), &first).await;
    assert!(first_key.ends_with(".pack"), "{first_key}");
    assert_eq!(
        s.objects()
            .read_envelope(&first_key, &first.envelope_id)
            .await
            .unwrap(),
        features(1, [0xa1; 16])
    );

    // An honest retry: acknowledged, nothing stored twice.
    let again = s
        .store_envelope(first.clone(), features(1, [0xa1; 16]))
        .await
        .unwrap();
    assert_eq!(again, StoreOutcome::Duplicate);

    // Another envelope under the same sequence: rejected, its object removed.
    let forged = meta(&d, 1, [0xf0; 16]);
    let reused = s
        .store_envelope(forged.clone(), b"forged".to_vec())
        .await
        .unwrap();
    assert_eq!(reused, StoreOutcome::SequenceReused);
    assert_eq!(
        s.seen(d.device_id, 1).await.unwrap().map(|s| s.envelope_id),
        Some([0xa1; 16])
    );
    // Neither the retry's pack nor the forger's stays: nothing indexes them.
    assert_eq!(
        s.list_feature_objects("u1").await.unwrap(),
        std::slice::from_ref(&first_key)
    );

    // The whole u64 range of sequence numbers.
    let last = meta(&d, u64::MAX, [0xa2; 16]);
    assert_eq!(
        s.store_envelope(last.clone(), vec![1]).await.unwrap(),
        StoreOutcome::Stored
    );
    assert_eq!(
        s.seen(d.device_id, u64::MAX)
            .await
            .unwrap()
            .map(|s| s.envelope_id),
        Some([0xa2; 16])
    );
    assert_eq!(s.count_envelopes("u1").await.unwrap(), 2);
    let last_key = key_of(s.as_ref(), &last).await;
    assert_eq!(
        s.list_feature_objects("u1").await.unwrap(),
        [first_key.clone(), last_key.clone()]
    );

    // An unregistered device, and a device claimed for the wrong user: nothing stays.
    let ghost = meta(&device("u1", 3), 1, [0xb0; 16]);
    assert!(matches!(
        s.store_envelope(ghost, vec![1]).await,
        Err(StoreError::NotFound("device"))
    ));
    let mut wrong_user = meta(&device("u2", 2), 1, [0xb1; 16]);
    wrong_user.user_id = "u1".to_owned();
    assert!(matches!(
        s.store_envelope(wrong_user, vec![1]).await,
        Err(StoreError::NotFound("device"))
    ));
    assert_eq!(s.count_envelopes("u1").await.unwrap(), 2);
    assert_eq!(s.count_envelopes("u2").await.unwrap(), 0);
    assert_eq!(fx.all_objects().await, [first_key, last_key]);
}

/// `store_envelopes`: a group commit is one object (a pack) and one transaction;
/// duplicates inside it are acknowledged, a reused sequence number ends it; groups of
/// several devices are refused.
pub async fn group_commit(fx: &Fixture) {
    use tacit_backend::store::NewEnvelope;
    let s = &fx.store;
    s.create_user("u1").await.unwrap();
    let d = device("u1", 1);
    s.register_device(d.clone()).await.unwrap();
    let new = |seq: u64, id: u8| {
        let m = meta(&d, seq, [id; 16]);
        NewEnvelope {
            features: features(seq, m.envelope_id),
            meta: m,
        }
    };
    let group: Vec<NewEnvelope> = (10..15).map(|seq| new(seq, seq as u8)).collect();
    let outcomes = s.store_envelopes(group.clone()).await.unwrap();
    assert_eq!(outcomes, vec![StoreOutcome::Stored; 5]);
    let objects = s.list_feature_objects("u1").await.unwrap();
    assert_eq!(objects.len(), 1, "one pack: {objects:?}");
    for e in &group {
        assert_eq!(key_of(s.as_ref(), &e.meta).await, objects[0]);
    }
    let entries = s.objects().read_entries(&objects[0]).await.unwrap();
    assert_eq!(
        entries
            .iter()
            .map(|e| (e.envelope_id, e.payload.clone()))
            .collect::<Vec<_>>(),
        group
            .iter()
            .map(|e| (e.meta.envelope_id, e.features.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(s.count_envelopes("u1").await.unwrap(), 5);
    assert_eq!(fx.rows_of("packs", "u1").await, 1);

    // New, sent again, reused (a second phone with the key), new: the group stops at
    // the reuse, the last one is not stored.
    let mixed = vec![new(15, 15), new(10, 10), new(11, 0xee), new(16, 16)];
    let outcomes = s.store_envelopes(mixed).await.unwrap();
    assert_eq!(outcomes, MIXED_OUTCOMES);
    assert_eq!(
        s.seen(d.device_id, 15)
            .await
            .unwrap()
            .map(|s| s.envelope_id),
        Some([15; 16])
    );
    assert_eq!(s.seen(d.device_id, 16).await.unwrap(), None);
    assert_eq!(
        s.seen(d.device_id, 11)
            .await
            .unwrap()
            .map(|s| s.envelope_id),
        Some([11; 16])
    );
    assert_eq!(s.count_envelopes("u1").await.unwrap(), 6);
    assert_eq!(s.list_feature_objects("u1").await.unwrap().len(), 2);
    // A pack holds only what was stored: neither the copy sent again nor the other
    // phone's envelope nor what came after it.
    assert_eq!(
        pack_of(s.as_ref(), &meta(&d, 15, [15; 16])).await,
        vec![[15; 16]]
    );

    // One sequence number three times in a group: the envelope, another phone's, the
    // envelope again. The first is stored and stays stored.
    let thrice = vec![
        new(30, 30),
        NewEnvelope {
            meta: meta(&d, 30, [0xdd; 16]),
            features: vec![9],
        },
        new(30, 30),
    ];
    assert_eq!(
        s.store_envelopes(thrice).await.unwrap(),
        vec![StoreOutcome::Stored, StoreOutcome::SequenceReused]
    );
    assert_eq!(
        s.seen(d.device_id, 30)
            .await
            .unwrap()
            .map(|s| s.envelope_id),
        Some([30; 16])
    );
    let k30 = key_of(s.as_ref(), &meta(&d, 30, [30; 16])).await;
    assert_eq!(s.objects().read_entries(&k30).await.unwrap().len(), 1);
    assert_eq!(s.count_envelopes("u1").await.unwrap(), 7);

    // One device per group; an empty group stores nothing.
    s.create_user("u2").await.unwrap();
    let d2 = device("u2", 2);
    s.register_device(d2.clone()).await.unwrap();
    let other = meta(&d2, 1, [0x21; 16]);
    let two_devices = vec![
        new(20, 20),
        NewEnvelope {
            features: vec![1],
            meta: other,
        },
    ];
    assert!(matches!(
        s.store_envelopes(two_devices).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(s.store_envelopes(Vec::new()).await.unwrap(), vec![]);
    assert_eq!(s.count_envelopes("u1").await.unwrap(), 7);
    assert_eq!(s.count_envelopes("u2").await.unwrap(), 0);

    // An object of the older layout (one envelope, named by it) reads as a pack of one.
    let old =
        tacit_backend::store::FeatureObjects::feature_key("u2", &[2; 16], 9, &[0x99; 16]).unwrap();
    s.objects()
        .put_durable(&old, b"old features".to_vec())
        .await
        .unwrap();
    let entries = s.objects().read_entries(&old).await.unwrap();
    assert_eq!(
        (
            entries.len(),
            entries[0].envelope_id,
            &entries[0].payload[..]
        ),
        (1, [0x99; 16], &b"old features"[..])
    );
    assert_eq!(
        s.objects().read_envelope(&old, &[0x99; 16]).await.unwrap(),
        b"old features"
    );
    assert!(matches!(
        s.objects().read_envelope(&old, &[0x98; 16]).await,
        Err(StoreError::NotFound(_))
    ));
}

/// A crash between a pack's object and its commit leaves an uncommitted pack row;
/// the sweep deletes that object and row once they are older than its cut, and
/// nothing committed.
pub async fn unfinished_packs(fx: &Fixture) {
    let s = &fx.store;
    s.create_user("u1").await.unwrap();
    let d = device("u1", 1);
    s.register_device(d.clone()).await.unwrap();
    let (kept, lost) = (meta(&d, 1, [1; 16]), meta(&d, 2, [2; 16]));
    for m in [&kept, &lost] {
        s.store_envelope(m.clone(), features(m.sequence, m.envelope_id))
            .await
            .unwrap();
    }
    let lost_key = key_of(s.as_ref(), &lost).await;
    // The state a kill -9 inside the group commit leaves: the object and the pack's
    // row are there, the transaction of the envelope rows never committed.
    assert_eq!(
        fx.exec("DELETE FROM envelopes WHERE object_key = $1", &lost_key)
            .await,
        1
    );
    assert_eq!(
        fx.exec(
            "UPDATE packs SET committed = FALSE WHERE object_key = $1",
            &lost_key
        )
        .await,
        1
    );
    assert_eq!(s.list_feature_objects("u1").await.unwrap().len(), 2);
    // Written now: not older than a cut in the past.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert_eq!(s.sweep_unfinished_packs(now - 60_000, 10).await.unwrap(), 0);
    assert_eq!(
        tacit_backend::retention::sweep_unfinished(s.as_ref(), now + 1)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.list_feature_objects("u1").await.unwrap(),
        [key_of(s.as_ref(), &kept).await]
    );
    assert_eq!(fx.rows_of("packs", "u1").await, 1);
    // The client's retry stores the envelope again, in a new pack.
    assert_eq!(
        s.store_envelope(lost.clone(), features(2, [2; 16]))
            .await
            .unwrap(),
        StoreOutcome::Stored
    );
    assert_eq!(s.count_envelopes("u1").await.unwrap(), 2);
}

/// Racing uploads of one sequence number: one `Stored`, and the others `Duplicate`
/// (same envelope) or `SequenceReused` (other envelopes, whose objects are removed).
pub async fn envelopes_concurrent(fx: &Fixture) {
    let s = &fx.store;
    s.create_user("u1").await.unwrap();
    let d = device("u1", 1);
    s.register_device(d.clone()).await.unwrap();

    let race = |metas: Vec<EnvelopeMeta>| {
        let tasks: Vec<_> = metas
            .into_iter()
            .map(|m| {
                let store = Arc::clone(s);
                tokio::spawn(async move {
                    let bytes = features(m.sequence, m.envelope_id);
                    (m.envelope_id, store.store_envelope(m, bytes).await.unwrap())
                })
            })
            .collect();
        async move {
            let mut outcomes = Vec::new();
            for t in tasks {
                outcomes.push(t.await.unwrap());
            }
            outcomes
        }
    };
    let tally = |outcomes: &[([u8; 16], StoreOutcome)]| {
        let mut counts = BTreeMap::new();
        for (_, o) in outcomes {
            *counts.entry(format!("{o:?}")).or_insert(0) += 1;
        }
        counts
    };

    let same = race((0..8).map(|_| meta(&d, 5, [0x55; 16])).collect()).await;
    assert_eq!(
        tally(&same),
        BTreeMap::from([("Duplicate".to_owned(), 7), ("Stored".to_owned(), 1)])
    );

    let different = race((0..8).map(|i| meta(&d, 6, [0x60 + i; 16])).collect()).await;
    assert_eq!(
        tally(&different),
        BTreeMap::from([("SequenceReused".to_owned(), 7), ("Stored".to_owned(), 1)])
    );
    let winner = different
        .iter()
        .find(|(_, o)| *o == StoreOutcome::Stored)
        .map(|(id, _)| *id)
        .unwrap();
    assert_eq!(
        s.seen(d.device_id, 6).await.unwrap().map(|s| s.envelope_id),
        Some(winner)
    );

    let expected = vec![
        key_of(s.as_ref(), &meta(&d, 5, [0x55; 16])).await,
        key_of(s.as_ref(), &meta(&d, 6, winner)).await,
    ];
    // The losers' packs went with their group commits.
    assert_eq!(s.list_feature_objects("u1").await.unwrap(), expected);
    assert_eq!(
        s.objects()
            .read_envelope(&expected[1], &winner)
            .await
            .unwrap(),
        features(6, winner)
    );
    assert_eq!(s.count_envelopes("u1").await.unwrap(), 2);
}

/// Deleting a user removes every row of it in every table and every object of it,
/// and nothing of another user.
pub async fn delete_user(fx: &Fixture) {
    let s = &fx.store;
    for (user, n) in [("gone", 1_u8), ("kept", 2)] {
        s.create_user(user).await.unwrap();
        let d = device(user, n);
        s.register_device(d.clone()).await.unwrap();
        s.create_enrolment_token(user, [n; 32], NOW + HOUR)
            .await
            .unwrap();
        for seq in 0..3 {
            let m = meta(&d, seq, [n + 0x10 * (seq as u8 + 1); 16]);
            let bytes = features(seq, m.envelope_id);
            assert_eq!(
                s.store_envelope(m, bytes).await.unwrap(),
                StoreOutcome::Stored
            );
        }
        fx.insert_template(user, "gait").await;
        s.record_decision(decision(user, n, NOW), 10).await.unwrap();
    }

    let tables = fx.tables().await;
    let mut kept_rows = Vec::new();
    for t in &tables {
        assert!(
            fx.rows_of(t, "gone").await > 0,
            "{t} holds nothing of the user"
        );
        kept_rows.push(fx.rows_of(t, "kept").await);
    }
    let kept_objects = s.list_feature_objects("kept").await.unwrap();
    assert_eq!(kept_objects.len(), 3);
    assert_eq!(s.list_feature_objects("gone").await.unwrap().len(), 3);

    let report = s.delete_user("gone").await.unwrap();
    assert_eq!(
        report,
        DeletionReport {
            devices: 1,
            envelopes: 3,
            objects: 3,
            tokens: 1,
            templates: 1,
            decisions: 1,
        }
    );

    for (t, kept) in tables.iter().zip(&kept_rows) {
        assert_eq!(fx.rows_of(t, "gone").await, 0, "{t} still holds the user");
        assert_eq!(fx.rows_of(t, "kept").await, *kept, "{t} lost another user");
        assert_eq!(fx.rows(t).await, *kept, "{t} holds rows of someone else");
    }
    assert_eq!(
        s.list_feature_objects("gone").await.unwrap(),
        Vec::<String>::new()
    );
    // The whole directory / bucket: only the other user's objects are left.
    assert_eq!(fx.all_objects().await, kept_objects);
    assert!(!s.user_exists("gone").await.unwrap());
    assert_eq!(s.get_device([1; 16]).await.unwrap(), None);
    assert!(s.get_device([2; 16]).await.unwrap().is_some());
    assert!(matches!(
        s.delete_user("gone").await,
        Err(StoreError::NotFound("user"))
    ));
    // The id is free again.
    s.create_user("gone").await.unwrap();
}

/// `health` passes on a working store and reports a missing bucket/directory or a
/// closed database as unavailable (503).
pub async fn health(fx: &Fixture) {
    fx.store.health().await.unwrap();
    let no_objects = fx.store_without_objects().await;
    let err = no_objects.health().await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.http_status(), 503);
    let no_db = fx.store_without_database().await;
    let err = no_db.health().await.unwrap_err();
    assert_eq!(err.http_status(), 503, "{err}");
}

/// Templates (upsert per user and factor), a user's newest envelopes, the device's
/// authentication clock (compare-and-set, also under concurrency) and reject counts.
pub async fn authentication_state(fx: &Fixture) {
    use tacit_backend::store::{RejectCount, TemplateRow};
    let s = &fx.store;
    s.create_user("u1").await.unwrap();
    let d = device("u1", 3);
    s.register_device(d.clone()).await.unwrap();

    let row = |factor: &str, blob: &[u8]| TemplateRow {
        user_id: "u1".into(),
        factor: factor.into(),
        format: 1,
        blob: blob.to_vec(),
        updated_at_ms: NOW,
        built_with: "model-a".into(),
    };
    s.put_template(row("gait", b"one")).await.unwrap();
    s.put_template(row("gait", b"two")).await.unwrap();
    s.put_template(row("py-keystroke", b"three")).await.unwrap();
    let t = s.templates("u1").await.unwrap();
    assert_eq!(t, vec![row("gait", b"two"), row("py-keystroke", b"three")]);

    // Templates of another model version, per factor, oldest first.
    s.create_user("u2").await.unwrap();
    s.put_template(TemplateRow {
        user_id: "u2".into(),
        updated_at_ms: NOW - HOUR,
        built_with: "model-b".into(),
        ..row("gait", b"four")
    })
    .await
    .unwrap();
    assert_eq!(
        s.stale_templates("gait", "model-c", 10).await.unwrap(),
        ["u2", "u1"]
    );
    assert_eq!(
        s.stale_templates("gait", "model-c", 1).await.unwrap(),
        ["u2"]
    );
    assert_eq!(
        s.stale_templates("gait", "model-a", 10).await.unwrap(),
        ["u2"]
    );
    assert_eq!(
        s.stale_templates("py-keystroke", "model-a", 10)
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        s.stale_templates("face", "model-a", 10).await.unwrap(),
        Vec::<String>::new()
    );
    // A template whose factor did not name its model is never stale.
    s.create_user("u3").await.unwrap();
    s.put_template(TemplateRow {
        user_id: "u3".into(),
        updated_at_ms: NOW - 2 * HOUR,
        built_with: String::new(),
        ..row("gait", b"five")
    })
    .await
    .unwrap();
    assert_eq!(
        s.stale_templates("gait", "model-c", 10).await.unwrap(),
        ["u2", "u1"]
    );
    assert!(s.delete_template("u2", "gait").await.unwrap());
    assert!(!s.delete_template("u2", "gait").await.unwrap());
    assert_eq!(
        s.stale_templates("gait", "model-c", 10).await.unwrap(),
        ["u1"]
    );
    assert!(matches!(
        s.put_template(TemplateRow {
            user_id: "nobody".into(),
            ..row("gait", b"x")
        })
        .await,
        Err(StoreError::NotFound("user"))
    ));
    assert!(s.templates("nobody").await.unwrap().is_empty());

    for (seq, created) in [(1, NOW - 3 * HOUR), (2, NOW - 2 * HOUR), (3, NOW - HOUR)] {
        let mut m = meta(&d, seq, [seq as u8; 16]);
        m.created_at_ms = created;
        s.store_envelope(m, features(seq, [seq as u8; 16]))
            .await
            .unwrap();
    }
    let recent = s.recent_envelopes("u1", NOW - 2 * HOUR, 10).await.unwrap();
    assert_eq!(
        recent.iter().map(|e| e.created_at_ms).collect::<Vec<_>>(),
        vec![NOW - HOUR, NOW - 2 * HOUR]
    );
    assert_eq!(
        recent.iter().map(|e| e.envelope_id).collect::<Vec<_>>(),
        vec![[3; 16], [2; 16]]
    );
    assert!(recent.iter().all(|e| e.received_at_ms == NOW), "{recent:?}");
    assert_eq!(s.recent_envelopes("u1", 0, 1).await.unwrap().len(), 1);
    assert_eq!(
        s.objects()
            .read_envelope(&recent[0].object_key, &recent[0].envelope_id)
            .await
            .unwrap(),
        features(3, [3; 16])
    );

    assert!(s.advance_auth_clock(d.device_id, 10).await.unwrap());
    assert!(
        !s.advance_auth_clock(d.device_id, 10).await.unwrap(),
        "same time twice"
    );
    assert!(
        !s.advance_auth_clock(d.device_id, 9).await.unwrap(),
        "older"
    );
    assert!(
        !s.advance_auth_clock([0x77; 16], 50).await.unwrap(),
        "unknown device"
    );
    let racing: Vec<_> = (0..16)
        .map(|_| {
            let s = Arc::clone(&fx.store);
            tokio::spawn(async move { s.advance_auth_clock([3; 16], 20).await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for r in racing {
        won += usize::from(r.await.unwrap());
    }
    assert_eq!(won, 1, "one request time is accepted once");

    assert_eq!(s.consecutive_rejects("u1").await.unwrap(), 0);
    assert_eq!(
        s.count_reject("u1", RejectCount::Increment).await.unwrap(),
        1
    );
    assert_eq!(
        s.count_reject("u1", RejectCount::Increment).await.unwrap(),
        2
    );
    assert_eq!(s.consecutive_rejects("u1").await.unwrap(), 2);
    assert_eq!(s.count_reject("u1", RejectCount::Reset).await.unwrap(), 0);
    assert!(matches!(
        s.count_reject("nobody", RejectCount::Increment).await,
        Err(StoreError::NotFound("user"))
    ));
    assert!(matches!(
        s.consecutive_rejects("nobody").await,
        Err(StoreError::NotFound("user"))
    ));

    // Deletion takes the templates with it.
    s.delete_user("u1").await.unwrap();
    assert!(s.templates("u1").await.unwrap().is_empty());
}

/// Encryption at rest: what the bucket or directory and the database hold is
/// ciphertext bound to its place; the store reads it back; another key, a moved blob
/// or a store without the key gets no plaintext.
pub async fn at_rest(fx: &Fixture) {
    use tacit_backend::store::TemplateRow;
    use tacit_backend::store::at_rest::{AtRestKeys, MAGIC};
    let keys = Arc::new(AtRestKeys::new([7; 32], &[]).unwrap());
    let s = fx.store_with_at_rest(keys).await;
    for u in ["u1", "u2"] {
        s.create_user(u).await.unwrap();
    }
    let (d1, d2) = (device("u1", 1), device("u2", 2));
    s.register_device(d1.clone()).await.unwrap();
    s.register_device(d2.clone()).await.unwrap();
    let secret = b"gait features of u1 ........".to_vec();
    let (m1, m2) = (meta(&d1, 1, [0xa1; 16]), meta(&d2, 1, [0xa2; 16]));
    s.store_envelope(m1.clone(), secret.clone()).await.unwrap();
    s.store_envelope(m2.clone(), b"features of u2".to_vec())
        .await
        .unwrap();
    let (k1, k2) = (key_of(s.as_ref(), &m1).await, key_of(s.as_ref(), &m2).await);
    let raw = fx.raw_object(&k1).await;
    assert_eq!(&raw[..4], MAGIC);
    assert!(!raw.windows(8).any(|w| secret.windows(8).any(|x| x == w)));
    assert_eq!(
        s.objects()
            .read_envelope(&k1, &m1.envelope_id)
            .await
            .unwrap(),
        secret
    );
    // The store without the key reads the ciphertext as it is, never the features.
    assert_eq!(fx.store.objects().read(&k1).await.unwrap(), raw);

    let template = TemplateRow {
        user_id: "u1".into(),
        factor: "gait".into(),
        format: 1,
        blob: b"the template of u1 ..........".to_vec(),
        updated_at_ms: NOW,
        built_with: String::new(),
    };
    s.put_template(template.clone()).await.unwrap();
    let raw_t = fx.raw_template("u1", "gait").await;
    assert_eq!(&raw_t[..4], MAGIC);
    assert_ne!(raw_t, template.blob);
    assert_eq!(s.templates("u1").await.unwrap(), vec![template.clone()]);

    // Another key: refused, not garbage.
    // Another key altogether: the store's sealed marker does not open, so the store
    // refuses to open at all (a wrong key is caught at start, not at the first read).
    let other = fx
        .try_store_with_at_rest(Arc::new(AtRestKeys::new([8; 32], &[]).unwrap()))
        .await;
    assert!(other.is_err());
    // Without any key, a store that is encrypted is refused too.
    let marked = fx.store.objects().apply_at_rest_marker().await;
    assert!(marked.is_err(), "{marked:?}");
    // Rotation: the new key writes, the old one still reads; the marker is sealed
    // again under the new key, so the store still opens once the old key is retired.
    let rotated = fx
        .store_with_at_rest(Arc::new(AtRestKeys::new([8; 32], &[[7; 32]]).unwrap()))
        .await;
    assert_eq!(
        rotated
            .objects()
            .read_envelope(&k1, &m1.envelope_id)
            .await
            .unwrap(),
        secret
    );
    assert_eq!(rotated.templates("u1").await.unwrap(), vec![template]);
    assert!(
        fx.try_store_with_at_rest(Arc::new(AtRestKeys::new([8; 32], &[]).unwrap()))
            .await
            .is_ok()
    );

    // An insider moving u1's features under u2's key: the blob no longer opens.
    {
        use object_store::{ObjectStoreExt, PutPayload};
        let to = object_store::path::Path::parse(k2.as_str()).unwrap();
        fx.store
            .objects()
            .object_store()
            .put(&to, PutPayload::from(raw))
            .await
            .unwrap();
    }
    assert!(s.objects().read(&k2).await.is_err());
    // An insider writing plaintext in place of a blob, in a store that started
    // encrypted: refused, not read as it is.
    {
        use object_store::{ObjectStoreExt, PutPayload};
        let to = object_store::path::Path::parse(k2.as_str()).unwrap();
        fx.store
            .objects()
            .object_store()
            .put(&to, PutPayload::from(b"forged plaintext features".to_vec()))
            .await
            .unwrap();
    }
    assert!(s.objects().read(&k2).await.is_err());
}

/// Turning encryption at rest on over a store that already holds unencrypted data
/// (an installation from before it was the default): that data keeps reading, every
/// new write is encrypted, and the fact is recorded once, so reopening keeps it.
pub async fn at_rest_upgrade(fx: &Fixture) {
    use tacit_backend::store::TemplateRow;
    use tacit_backend::store::at_rest::{AtRestKeys, MAGIC};
    let plain = &fx.store;
    plain.create_user("u1").await.unwrap();
    let d = device("u1", 1);
    plain.register_device(d.clone()).await.unwrap();
    let (m1, m2) = (meta(&d, 1, [0xb1; 16]), meta(&d, 2, [0xb2; 16]));
    let old = features(m1.sequence, m1.envelope_id);
    plain.store_envelope(m1.clone(), old.clone()).await.unwrap();
    let template = TemplateRow {
        user_id: "u1".into(),
        factor: "gait".into(),
        format: 1,
        blob: b"a template from before encryption".to_vec(),
        updated_at_ms: NOW,
        built_with: "v1".into(),
    };
    plain.put_template(template.clone()).await.unwrap();

    let keys = Arc::new(AtRestKeys::new([9; 32], &[]).unwrap());
    let s = fx.store_with_at_rest(keys.clone()).await;
    let k1 = key_of(s.as_ref(), &m1).await;
    assert_eq!(
        s.objects()
            .read_envelope(&k1, &m1.envelope_id)
            .await
            .unwrap(),
        old
    );
    assert_eq!(s.templates("u1").await.unwrap(), vec![template.clone()]);
    let new = features(m2.sequence, m2.envelope_id);
    s.store_envelope(m2.clone(), new.clone()).await.unwrap();
    let k2 = key_of(s.as_ref(), &m2).await;
    assert_eq!(&fx.raw_object(&k2).await[..4], MAGIC);
    assert_eq!(
        s.objects()
            .read_envelope(&k2, &m2.envelope_id)
            .await
            .unwrap(),
        new
    );
    s.put_template(template.clone()).await.unwrap();
    assert_eq!(&fx.raw_template("u1", "gait").await[..4], MAGIC);
    // Reopened with new keys object: the recorded fact holds.
    let again = fx
        .store_with_at_rest(Arc::new(AtRestKeys::new([9; 32], &[]).unwrap()))
        .await;
    assert_eq!(
        again
            .objects()
            .read_envelope(&k1, &m1.envelope_id)
            .await
            .unwrap(),
        old
    );
}

/// Retention: `expire_envelopes` removes the oldest batches, object and row, in
/// batches, and nothing newer than the cut.
pub async fn retention(fx: &Fixture) {
    let s = &fx.store;
    s.create_user("u1").await.unwrap();
    let d = device("u1", 1);
    s.register_device(d.clone()).await.unwrap();
    let mut metas = Vec::new();
    for i in 0..5u8 {
        let mut m = meta(&d, u64::from(i) + 1, [i; 16]);
        m.created_at_ms = NOW - (10 - u64::from(i)) * HOUR;
        s.store_envelope(m.clone(), features(m.sequence, m.envelope_id))
            .await
            .unwrap();
        metas.push(m);
    }
    // Created 10, 9, 8, 7 and 6 hours before NOW; the cut (strictly before 7 h) keeps
    // the two newest.
    let cut = NOW - 7 * HOUR;
    assert_eq!(s.expire_envelopes(cut, 2).await.unwrap(), 2);
    assert_eq!(s.expire_envelopes(cut, 2).await.unwrap(), 1);
    assert_eq!(s.expire_envelopes(cut, 2).await.unwrap(), 0);
    assert_eq!(s.count_envelopes("u1").await.unwrap(), 2);
    let kept = vec![
        key_of(s.as_ref(), &metas[3]).await,
        key_of(s.as_ref(), &metas[4]).await,
    ];
    assert_eq!(s.list_feature_objects("u1").await.unwrap(), kept);
    assert_eq!(fx.all_objects().await, kept);
    assert_eq!(
        s.seen(d.device_id, 1).await.unwrap().map(|s| s.envelope_id),
        None
    );
    assert_eq!(
        s.seen(d.device_id, 5).await.unwrap().map(|s| s.envelope_id),
        Some([4; 16])
    );
    // A sweep with the library's batching empties everything before a later cut.
    assert_eq!(
        tacit_backend::retention::sweep(s.as_ref(), NOW)
            .await
            .unwrap(),
        2
    );
    assert_eq!(s.count_envelopes("u1").await.unwrap(), 0);
    assert!(fx.all_objects().await.is_empty());
}

/// Recorded decisions: read back newest first and exactly as written, at most `keep`
/// per user (the oldest go), expired by time, refused for an unknown user.
pub async fn decisions(fx: &Fixture) {
    let s = &fx.store;
    for user in ["d1", "d2"] {
        s.create_user(user).await.unwrap();
    }
    assert!(s.decisions("d1", 10).await.unwrap().is_empty());
    for i in 0..5u8 {
        s.record_decision(decision("d1", i, NOW + u64::from(i) * 1000), 3)
            .await
            .unwrap();
    }
    s.record_decision(decision("d2", 9, NOW), 3).await.unwrap();
    let got = s.decisions("d1", 10).await.unwrap();
    let want: Vec<DecisionRow> = (2..5u8)
        .rev()
        .map(|i| decision("d1", i, NOW + u64::from(i) * 1000))
        .collect();
    assert_eq!(got, want, "the newest 3, newest first");
    assert_eq!(s.decisions("d1", 1).await.unwrap(), want[..1]);
    // The same token id twice is a conflict, never a second row.
    assert!(matches!(
        s.record_decision(decision("d1", 4, NOW + 4000), 3).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        s.record_decision(decision("nobody", 1, NOW), 3).await,
        Err(StoreError::NotFound("user"))
    ));
    // By age: everything before the cut, of every user.
    assert_eq!(s.expire_decisions(NOW + 3500).await.unwrap(), 3);
    assert_eq!(s.decisions("d1", 10).await.unwrap(), want[..1]);
    assert!(s.decisions("d2", 10).await.unwrap().is_empty());
}

/// The small writes of concurrent requests (request clocks, reject counts, decisions)
/// fired all at once, so that they share group commits: each answers as it would
/// alone, one that fails (no such user, a token id used twice) fails alone, and
/// everything else is stored.
pub async fn small_writes_concurrent(fx: &Fixture) {
    use tacit_backend::store::RejectCount;
    let s = &fx.store;
    let users: Vec<String> = (0..20u8).map(|i| format!("g{i}")).collect();
    for (i, u) in users.iter().enumerate() {
        s.create_user(u).await.unwrap();
        s.register_device(device(u, i as u8)).await.unwrap();
    }
    s.record_decision(decision("g0", 200, NOW), 100)
        .await
        .unwrap();
    enum Asked {
        Clock(u8, u64),
        Reject(u8),
        Decision(u8, u8),
        Nobody,
        Again,
    }
    let mut asked = Vec::new();
    for i in 0..20u8 {
        // Three requests of one device with one time: one of them is the first.
        for _ in 0..3 {
            asked.push(Asked::Clock(i, NOW));
        }
        asked.push(Asked::Clock(i, NOW - 1000));
        for _ in 0..5 {
            asked.push(Asked::Reject(i));
        }
        for n in 0..3 {
            asked.push(Asked::Decision(i, n));
        }
        asked.push(Asked::Nobody);
        asked.push(Asked::Again);
    }
    #[derive(Debug, PartialEq)]
    enum Got {
        Clock(u8, bool),
        Rejects(u8, u32),
        Decision(Result<(), String>),
    }
    let calls = asked.iter().map(|a| async move {
        match *a {
            Asked::Clock(i, t) => Got::Clock(i, s.advance_auth_clock([i; 16], t).await.unwrap()),
            Asked::Reject(i) => Got::Rejects(
                i,
                s.count_reject(&format!("g{i}"), RejectCount::Increment)
                    .await
                    .unwrap(),
            ),
            Asked::Decision(i, n) => Got::Decision(
                s.record_decision(decision(&format!("g{i}"), n, NOW + u64::from(n)), 100)
                    .await
                    .map_err(|e| e.to_string()),
            ),
            Asked::Nobody => Got::Decision(
                match s.record_decision(decision("nobody", 1, NOW), 100).await {
                    Err(StoreError::NotFound("user")) => Err("not found".into()),
                    other => Err(format!("unexpected: {other:?}")),
                },
            ),
            Asked::Again => Got::Decision(
                match s.record_decision(decision("g0", 200, NOW), 100).await {
                    Err(StoreError::AlreadyExists(_)) => Err("exists".into()),
                    other => Err(format!("unexpected: {other:?}")),
                },
            ),
        }
    });
    let got = futures::future::join_all(calls).await;
    for i in 0..20u8 {
        // The device's clock: exactly one of the requests at NOW advanced it (the one
        // at NOW - 1000 may have come first, or found it later already).
        let at_now = got
            .iter()
            .zip(&asked)
            .filter(|(_, a)| matches!(a, Asked::Clock(j, t) if *j == i && *t == NOW))
            .filter(|(g, _)| **g == Got::Clock(i, true))
            .count();
        assert_eq!(
            at_now, 1,
            "device {i}: one request at NOW advances the clock"
        );
        assert!(!s.advance_auth_clock([i; 16], NOW).await.unwrap());
        assert!(s.advance_auth_clock([i; 16], NOW + 1).await.unwrap());
        // Five increments, each answered with its own count: 1..=5 in some order.
        let mut counts: Vec<u32> = got
            .iter()
            .filter_map(|g| match g {
                Got::Rejects(j, n) if *j == i => Some(*n),
                _ => None,
            })
            .collect();
        counts.sort_unstable();
        assert_eq!(counts, [1, 2, 3, 4, 5], "user g{i}'s reject counts");
        assert_eq!(s.consecutive_rejects(&format!("g{i}")).await.unwrap(), 5);
        let kept = s.decisions(&format!("g{i}"), 100).await.unwrap();
        assert_eq!(
            kept.len(),
            if i == 0 { 4 } else { 3 },
            "user g{i}'s decisions"
        );
    }
    let decided: Vec<&Result<(), String>> = got
        .iter()
        .filter_map(|g| match g {
            Got::Decision(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(decided.iter().filter(|r| r.is_ok()).count(), 60);
    assert_eq!(
        decided
            .iter()
            .filter(|r| r.as_ref().err().map(String::as_str) == Some("not found"))
            .count(),
        20
    );
    assert_eq!(
        decided
            .iter()
            .filter(|r| r.as_ref().err().map(String::as_str) == Some("exists"))
            .count(),
        20
    );
}

/// A call whose transaction failed: a storage error (not a missing row, not a panic),
/// and no connection left believing the transaction open.
async fn refused_cleanly<T: std::fmt::Debug>(fx: &Fixture, refused: Result<T, StoreError>) {
    assert!(
        matches!(
            refused,
            Err(StoreError::Internal { .. } | StoreError::Unavailable { .. })
        ),
        "{refused:?}"
    );
    assert!(!fx.writer_in_transaction().await);
}

/// A transaction that the database ends by itself (SQLite: a trigger's
/// `RAISE(ROLLBACK)`, as on a full disk; PostgreSQL: an exception) fails its call with
/// an error and keeps every row; no connection is left believing a transaction is
/// open, and later calls commit as usual. (On PostgreSQL the failed transaction stays
/// open, aborted, and sqlx's rollback ends it: only SQLite can leave a connection
/// that believes otherwise, and only there does this case fail without the fix.)
pub async fn failed_transactions(fx: &Fixture) {
    let s = &fx.store;
    s.create_user("u1").await.unwrap();
    let d = device("u1", 1);
    s.register_device(d.clone()).await.unwrap();
    for i in 0..3u8 {
        let mut m = meta(&d, u64::from(i) + 1, [i + 1; 16]);
        m.created_at_ms = NOW - 10 * HOUR;
        let bytes = features(m.sequence, m.envelope_id);
        assert_eq!(
            s.store_envelope(m, bytes).await.unwrap(),
            StoreOutcome::Stored
        );
    }

    // Deleting a user: its device rows come last but one.
    fx.fail_deletes_of("devices").await;
    let refused = s.delete_user("u1").await;
    refused_cleanly(fx, refused).await;
    assert!(s.user_exists("u1").await.unwrap());
    assert_eq!(s.count_envelopes("u1").await.unwrap(), 3);
    assert_eq!(s.list_feature_objects("u1").await.unwrap().len(), 3);
    // Later writes, alone and grouped, are committed.
    s.create_user("u2").await.unwrap();
    s.record_decision(decision("u1", 1, NOW), 10).await.unwrap();
    assert!(s.user_exists("u2").await.unwrap());
    assert_eq!(fx.rows_of("decisions", "u1").await, 1);
    fx.allow_deletes_of("devices").await;

    // Retention: the first pack's rows cannot be deleted (its object is, first).
    fx.fail_deletes_of("packs").await;
    let refused = s.expire_envelopes(NOW - HOUR, 10).await;
    refused_cleanly(fx, refused).await;
    assert_eq!(s.count_envelopes("u1").await.unwrap(), 3);
    fx.allow_deletes_of("packs").await;
    // The next sweep finishes, the pack whose object went already included.
    assert_eq!(s.expire_envelopes(NOW - HOUR, 10).await.unwrap(), 3);
    assert_eq!(s.count_envelopes("u1").await.unwrap(), 0);
    assert!(fx.all_objects().await.is_empty());

    let report = s.delete_user("u1").await.unwrap();
    assert_eq!((report.devices, report.decisions), (1, 1));
    assert!(!s.user_exists("u1").await.unwrap());
    assert!(!fx.writer_in_transaction().await);
}

/// Two gateways sharing one database, each writing the same rows in the opposite
/// order, many writes at once: every write is stored and answered, none waits for a
/// deadlock to be broken (on PostgreSQL a group of several requests' writes would hold
/// their row locks in arrival order until its commit, and two such groups crossing
/// would deadlock).
pub async fn gateways_crossing_writes(fx: &Fixture) {
    use tacit_backend::store::RejectCount;
    let (a, b) = (&fx.store, &fx.config.open().await.unwrap());
    for i in 0..4u8 {
        let u = format!("x{i}");
        a.create_user(&u).await.unwrap();
        a.register_device(device(&u, i)).await.unwrap();
    }
    const ROUNDS: u64 = 150;
    let started = std::time::Instant::now();
    let writes = (0..ROUNDS).flat_map(|r| {
        (0..2).map(move |gateway| async move {
            let s = if gateway == 0 { a } else { b };
            let order: Vec<u8> = if gateway == 0 {
                vec![0, 1, 2, 3]
            } else {
                vec![3, 2, 1, 0]
            };
            let mut done = Vec::new();
            for i in order {
                // Not awaited one by one: the writes of a round queue together.
                done.push(async move {
                    s.advance_auth_clock([i; 16], NOW + r * 2 + gateway)
                        .await
                        .map(|_| ())?;
                    s.count_reject(&format!("x{i}"), RejectCount::Increment)
                        .await
                        .map(|_| ())
                });
            }
            futures::future::join_all(done).await
        })
    });
    let results: Vec<Result<(), StoreError>> = futures::future::join_all(writes)
        .await
        .into_iter()
        .flatten()
        .collect();
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        failed.first()
    );
    for i in 0..4u8 {
        assert_eq!(
            a.consecutive_rejects(&format!("x{i}")).await.unwrap() as u64,
            ROUNDS * 2,
            "user x{i}'s increments, from both gateways"
        );
    }
    // A deadlock is broken only after PostgreSQL's deadlock_timeout (1 s).
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// Packs that meet rows already there, committed at the same time as other requests'
/// writes (one group on SQLite): each such pack's rows are undone alone, its second
/// attempt stores only the new envelope, and the other writes of the group stay.
pub async fn packs_rolled_back_among_others(fx: &Fixture) {
    use tacit_backend::store::NewEnvelope;
    let s = &fx.store;
    let devices: Vec<DeviceRow> = (0..6u8)
        .map(|i| device(&format!("r{i}"), 0x40 + i))
        .collect();
    for d in &devices {
        s.create_user(&d.user_id).await.unwrap();
        s.register_device(d.clone()).await.unwrap();
    }
    let new = |d: &DeviceRow, seq: u64, id: u8| {
        let m = meta(d, seq, [id; 16]);
        NewEnvelope {
            features: features(seq, m.envelope_id),
            meta: m,
        }
    };
    for d in &devices {
        let first: Vec<NewEnvelope> = (10..15).map(|seq| new(d, seq, seq as u8)).collect();
        s.store_envelopes(first).await.unwrap();
    }
    // Every device at once: new, sent again, reused, new; and a clock write beside.
    let calls = devices.iter().map(|d| async move {
        let mixed = vec![
            new(d, 15, 15),
            new(d, 10, 10),
            new(d, 11, 0xee),
            new(d, 16, 16),
        ];
        let (stored, clock) = tokio::join!(
            s.store_envelopes(mixed),
            s.advance_auth_clock(d.device_id, NOW)
        );
        (stored.unwrap(), clock.unwrap())
    });
    for ((outcomes, clock), d) in futures::future::join_all(calls)
        .await
        .into_iter()
        .zip(&devices)
    {
        assert_eq!(outcomes, MIXED_OUTCOMES, "{}", d.user_id);
        assert!(clock, "{}: the clock write of the same group", d.user_id);
        let seen = |seq| s.seen(d.device_id, seq);
        assert_eq!(
            seen(15).await.unwrap().map(|r| r.envelope_id),
            Some([15; 16])
        );
        assert_eq!(seen(16).await.unwrap(), None);
        assert_eq!(
            seen(11).await.unwrap().map(|r| r.envelope_id),
            Some([11; 16])
        );
        assert_eq!(s.count_envelopes(&d.user_id).await.unwrap(), 6);
        assert_eq!(
            pack_of(s.as_ref(), &meta(d, 15, [15; 16])).await,
            vec![[15; 16]],
            "{}: the second attempt's pack",
            d.user_id
        );
    }
}
