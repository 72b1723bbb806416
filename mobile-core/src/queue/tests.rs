//! Outbox unit tests: eviction, persistence across reopen, typed errors.
//! (Crash safety under SIGKILL is `tests/outbox_kill.rs`.)

use super::*;

fn env(n: u8, len: usize) -> QueuedEnvelope {
    QueuedEnvelope {
        envelope_id: [n; 16],
        sequence: n as u64,
        created_at_ms: 1_700_000_000_000 + n as u64,
        bytes: vec![n; len],
    }
}

fn tmp() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tacit-outbox-unit-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn outbox_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Outbox>();
}

#[test]
fn push_peek_acknowledge_round_trip() {
    let dir = tmp();
    let ob = Outbox::open(&dir, OutboxConfig::default()).unwrap();
    for n in 1..=5 {
        assert_eq!(ob.push(&env(n, 100)).unwrap(), 0);
    }
    let got = ob.peek_oldest(3).unwrap();
    assert_eq!(got, vec![env(1, 100), env(2, 100), env(3, 100)]);
    assert!(ob.peek_oldest(0).unwrap().is_empty());
    assert_eq!(ob.peek_oldest(usize::MAX).unwrap().len(), 5);

    // Unknown and repeated ids are ignored.
    assert_eq!(
        ob.acknowledge(&[[1; 16], [2; 16], [2; 16], [99; 16]])
            .unwrap(),
        2
    );
    assert_eq!(ob.reject(&[[3; 16]], "bad_signature").unwrap(), 1);
    assert_eq!(ob.reject(&[[3; 16]], "later").unwrap(), 0);

    ob.set_last_upload(1_700_000_123_456).unwrap();
    let s = ob.stats().unwrap();
    assert_eq!(
        s,
        OutboxStats {
            envelopes: 2,
            bytes: 200,
            evicted_total: 0,
            rejected_total: 1,
            acknowledged_total: 2,
            last_upload_ms: Some(1_700_000_123_456),
            last_reject_reason: Some("bad_signature".into()),
        }
    );
    assert_eq!(ob.peek_oldest(10).unwrap(), vec![env(4, 100), env(5, 100)]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rejection_reasons_are_bounded() {
    let dir = tmp();
    let ob = Outbox::open(&dir, OutboxConfig::default()).unwrap();
    ob.push(&env(9, 1)).unwrap();
    assert_eq!(ob.reject(&[[9; 16]], &"é".repeat(1000)).unwrap(), 1);
    let s = ob.stats().unwrap();
    assert_eq!(s.last_reject_reason, Some("é".repeat(MAX_REASON_CHARS)));
    assert_eq!((s.rejected_total, s.envelopes, s.bytes), (1, 0, 0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn push_evicts_oldest_while_over_the_limit() {
    let dir = tmp();
    let ob = Outbox::open(&dir, OutboxConfig { max_bytes: 1000 }).unwrap();
    for n in 1..=4 {
        assert_eq!(ob.push(&env(n, 250)).unwrap(), 0);
    }
    // Exactly full: the next 250 bytes evict one envelope, 600 bytes evict three.
    assert_eq!(ob.push(&env(5, 250)).unwrap(), 1);
    assert_eq!(ob.push(&env(6, 600)).unwrap(), 3);
    let left: Vec<u8> = ob
        .peek_oldest(10)
        .unwrap()
        .iter()
        .map(|e| e.envelope_id[0])
        .collect();
    assert_eq!(left, vec![5, 6]);
    let s = ob.stats().unwrap();
    assert_eq!((s.envelopes, s.bytes, s.evicted_total), (2, 850, 4));
    // An envelope of exactly max_bytes fits by evicting everything else.
    assert_eq!(ob.push(&env(7, 1000)).unwrap(), 2);
    assert_eq!(ob.stats().unwrap().evicted_total, 6);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn oversize_and_duplicate_pushes_are_typed_errors_that_change_nothing() {
    let dir = tmp();
    let ob = Outbox::open(&dir, OutboxConfig { max_bytes: 500 }).unwrap();
    ob.push(&env(1, 400)).unwrap();
    assert!(matches!(
        ob.push(&env(2, 501)),
        Err(QueueError::EnvelopeTooLarge { len: 501, max: 500 })
    ));
    // Would need an eviction, but is refused before evicting anything.
    assert!(matches!(
        ob.push(&env(1, 300)),
        Err(QueueError::DuplicateEnvelope(id)) if id == "01".repeat(16)
    ));
    let mut huge = env(3, 10);
    huge.sequence = u64::MAX;
    assert!(matches!(
        ob.push(&huge),
        Err(QueueError::OutOfRange {
            field: "sequence",
            ..
        })
    ));
    let s = ob.stats().unwrap();
    assert_eq!((s.envelopes, s.bytes, s.evicted_total), (1, 400, 0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sequences_and_contents_persist_across_reopen() {
    let dir = tmp();
    let mut last = 0;
    for round in 0..3u8 {
        let ob = Outbox::open(&dir, OutboxConfig::default()).unwrap();
        for _ in 0..4 {
            let seq = ob.allocate_sequence().unwrap();
            assert!(seq > last, "{seq} after {last}");
            last = seq;
        }
        ob.push(&env(round, 10)).unwrap();
        ob.acknowledge(&[[round.wrapping_sub(1); 16]]).unwrap();
    }
    assert_eq!(last, 12);
    let ob = Outbox::open(&dir, OutboxConfig::default()).unwrap();
    assert_eq!(ob.peek_oldest(10).unwrap(), vec![env(2, 10)]);
    let s = ob.stats().unwrap();
    assert_eq!((s.envelopes, s.bytes, s.acknowledged_total), (1, 10, 2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_foreign_or_damaged_file_is_a_typed_error() {
    let dir = tmp();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(OUTBOX_FILE), vec![0x5a; 8192]).unwrap();
    let err = Outbox::open(&dir, OutboxConfig::default()).unwrap_err();
    assert!(matches!(err, QueueError::Corrupt(_)), "{err:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tmp();
    drop(Outbox::open(&dir, OutboxConfig::default()).unwrap());
    let conn = rusqlite::Connection::open(dir.join(OUTBOX_FILE)).unwrap();
    conn.pragma_update(None, "user_version", 7).unwrap();
    drop(conn);
    let err = Outbox::open(&dir, OutboxConfig::default()).unwrap_err();
    assert!(
        matches!(
            err,
            QueueError::UnsupportedSchema {
                found: 7,
                supported: 1
            }
        ),
        "{err:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn values_breaking_the_schema_are_reported_as_corrupt() {
    let dir = tmp();
    let ob = Outbox::open(&dir, OutboxConfig::default()).unwrap();
    ob.push(&env(1, 10)).unwrap();
    drop(ob);
    // Bypass the CHECK constraints the way a damaged or foreign writer could.
    let conn = rusqlite::Connection::open(dir.join(OUTBOX_FILE)).unwrap();
    conn.execute_batch("PRAGMA ignore_check_constraints = ON; UPDATE envelopes SET sequence = -5;")
        .unwrap();
    drop(conn);
    // The integrity check at open already sees the broken constraint.
    let err = Outbox::open(&dir, OutboxConfig::default()).unwrap_err();
    assert!(
        matches!(err, QueueError::Corrupt(ref m) if m.contains("CHECK")),
        "{err:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
