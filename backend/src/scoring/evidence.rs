//! A user's feature windows: from the payloads opened in the request itself, or read
//! back from the stored envelopes when the request attaches none.

use std::collections::HashMap;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tacit_shared::payload::{FactorKind, Payload};

use crate::store::{Store, StoreResult};

/// Windows that one template can be built from and compared with: records of one
/// schema version, one context (the phrase of fixed-text keystrokes) and one width.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupKey {
    /// Schema version of the records.
    pub schema_version: u16,
    /// Context (hex), if the records have one.
    pub context: Option<String>,
    /// Values per record.
    pub dim: usize,
}

/// One feature record with its provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Factor of the record.
    pub kind: FactorKind,
    /// Its group.
    pub group: GroupKey,
    /// Window start (device clock, Unix ms).
    pub start_ms: u64,
    /// Window end (device clock, Unix ms).
    pub end_ms: u64,
    /// The features.
    pub values: Vec<f32>,
    /// Id (hex) of the envelope it came in.
    pub envelope_id: String,
    /// When the gateway first stored that envelope (server clock, Unix ms).
    pub received_at_ms: u64,
}

/// Feature objects read at once.
const READ_CONCURRENCY: usize = 8;

/// The records of a user's newest `limit` envelopes created at or after `since_ms`.
/// An object that cannot be read as a payload is skipped with a warning (it was
/// validated on ingest; only outside tampering with the store can cause that).
pub async fn read_windows(
    store: &dyn Store,
    user_id: &str,
    since_ms: u64,
    limit: u32,
) -> StoreResult<Vec<Window>> {
    let envelopes = store.recent_envelopes(user_id, since_ms, limit).await?;
    let objects = store.objects();
    // A pack holds many of the envelopes: each object is read once.
    let mut keys: Vec<String> = envelopes.iter().map(|e| e.object_key.clone()).collect();
    keys.sort_unstable();
    keys.dedup();
    let reads: Vec<_> = futures::stream::iter(keys)
        .map(|k| async move {
            let entries = objects.read_entries(&k).await;
            (k, entries)
        })
        .buffer_unordered(READ_CONCURRENCY)
        .collect()
        .await;
    let mut by_id: HashMap<[u8; 16], Vec<u8>> = HashMap::new();
    for (key, entries) in reads {
        let entries = match entries {
            Ok(e) => e,
            // Expired or deleted between the listing and the read.
            Err(crate::store::StoreError::NotFound(_)) => continue,
            // A pack that does not decode (only outside tampering can cause that).
            Err(crate::store::StoreError::Internal { source: None, .. }) => {
                tracing::warn!(object = %key, "stored feature object does not decode; skipped");
                continue;
            }
            Err(e) => return Err(e),
        };
        by_id.extend(entries.into_iter().map(|e| (e.envelope_id, e.payload)));
    }
    let mut windows = Vec::new();
    for e in envelopes {
        let Some(bytes) = by_id.remove(&e.envelope_id) else {
            tracing::warn!(object = %e.object_key, "stored envelope missing from its object; skipped");
            continue;
        };
        let Ok(payload) = Payload::decode(&bytes) else {
            tracing::warn!(object = %e.object_key, "stored feature object does not decode; skipped");
            continue;
        };
        windows.extend(windows_of(payload, e.envelope_id, e.received_at_ms));
    }
    Ok(windows)
}

/// The windows of one opened payload, stored at `received_at_ms`.
pub fn windows_of(
    payload: Payload,
    envelope_id: [u8; 16],
    received_at_ms: u64,
) -> impl Iterator<Item = Window> {
    let envelope_id = hex::encode(envelope_id);
    payload.records.into_iter().map(move |r| Window {
        envelope_id: envelope_id.clone(),
        received_at_ms,
        kind: r.factor,
        group: GroupKey {
            schema_version: r.schema_version,
            context: r.context.map(hex::encode),
            dim: r.values.len(),
        },
        // A window cannot end after the gateway received it: times are clamped to the
        // arrival, so that a stored window with a poisoned time (from before times were
        // checked at ingest) can neither stay "fresh" for ever nor push a template's
        // "built until" mark past every later window.
        start_ms: r.window_start_ms.min(received_at_ms),
        end_ms: r
            .window_start_ms
            .saturating_add(u64::from(r.window_ms))
            .min(received_at_ms),
        values: r.values,
    })
}

/// The windows as a model of schema version `want` can read them. A touch record of a
/// fixed phrase (version 2) begins with the whole timing record (version 1) of the same
/// entry, so for a timings-only model it is cut to that: phones that start reporting
/// touch keep authenticating against the deployed timings model until it is retrained.
/// Everything else is returned as it is (`want` unknown, other factors, other versions).
pub fn readable_by(windows: &[Window], want: Option<u16>) -> std::borrow::Cow<'_, [Window]> {
    use tacit_shared::schema::{
        KEYSTROKE_FIXED_TOUCH_V2, KEYSTROKE_FIXED_V1, fixed_text_dim, fixed_text_keys_in,
    };
    let cut = |w: &Window| -> Option<Window> {
        if w.kind != FactorKind::KeystrokeFixed
            || w.group.schema_version != KEYSTROKE_FIXED_TOUCH_V2
        {
            return None;
        }
        let keys = fixed_text_keys_in(KEYSTROKE_FIXED_TOUCH_V2, w.group.dim)?;
        let dim = fixed_text_dim(KEYSTROKE_FIXED_V1, keys)?;
        let mut v = w.clone();
        v.values.truncate(dim);
        v.group.schema_version = KEYSTROKE_FIXED_V1;
        v.group.dim = dim;
        Some(v)
    };
    if want != Some(KEYSTROKE_FIXED_V1) || !windows.iter().any(|w| cut(w).is_some()) {
        return std::borrow::Cow::Borrowed(windows);
    }
    std::borrow::Cow::Owned(
        windows
            .iter()
            .map(|w| cut(w).unwrap_or_else(|| w.clone()))
            .collect(),
    )
}

/// The group with the most windows of `kind` (ties: the one with the newest window).
pub fn main_group(windows: &[Window], kind: FactorKind) -> Option<GroupKey> {
    main_group_of(windows, kind, None)
}

/// [`main_group`] among the groups of schema version `schema` (any when `None`).
pub fn main_group_of(
    windows: &[Window],
    kind: FactorKind,
    schema: Option<u16>,
) -> Option<GroupKey> {
    let mut counts: HashMap<&GroupKey, (usize, u64)> = HashMap::new();
    for w in windows
        .iter()
        .filter(|w| w.kind == kind && schema.is_none_or(|v| w.group.schema_version == v))
    {
        let c = counts.entry(&w.group).or_default();
        c.0 += 1;
        c.1 = c.1.max(w.start_ms);
    }
    counts
        .into_iter()
        .max_by_key(|(_, c)| *c)
        .map(|(g, _)| g.clone())
}

/// The newest `max` windows of `kind` in `group` that start after `after_ms`, newest
/// first.
pub fn newest<'a>(
    windows: &'a [Window],
    kind: FactorKind,
    group: &GroupKey,
    after_ms: u64,
    max: usize,
) -> Vec<&'a Window> {
    let mut v: Vec<&Window> = windows
        .iter()
        .filter(|w| w.kind == kind && &w.group == group && w.start_ms > after_ms)
        .collect();
    v.sort_by_key(|w| std::cmp::Reverse(w.start_ms));
    v.dedup_by(|a, b| a.start_ms == b.start_ms && a.values == b.values);
    v.truncate(max);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use tacit_shared::payload::FeatureRecord;

    /// Enrolment picks the main group among the model's schema version: more version-1
    /// windows do not outvote the version-2 windows a version-2 model can use.
    #[test]
    fn the_main_group_can_be_limited_to_a_schema_version() {
        let window = |version: u16, dim: usize, start: u64| Window {
            kind: FactorKind::KeystrokeFixed,
            group: GroupKey {
                schema_version: version,
                context: Some("ab".into()),
                dim,
            },
            start_ms: start,
            end_ms: start + 1,
            values: vec![0.1; dim],
            envelope_id: "00".into(),
            received_at_ms: start + 2,
        };
        let mut w: Vec<Window> = (0..5).map(|i| window(1, 28, i)).collect();
        w.extend((0..3).map(|i| window(2, 48, 10 + i)));
        let kind = FactorKind::KeystrokeFixed;
        assert_eq!(main_group(&w, kind).map(|g| g.schema_version), Some(1));
        assert_eq!(
            main_group_of(&w, kind, Some(2)).map(|g| (g.schema_version, g.dim)),
            Some((2, 48))
        );
        assert_eq!(main_group_of(&w, kind, Some(3)), None);
        assert_eq!(main_group_of(&w, FactorKind::Gait, None), None);
    }

    /// A timings-only model reads a touch record as its timing part, nothing else changes.
    #[test]
    fn touch_windows_are_cut_to_their_timings_for_a_timings_model() {
        let window = |kind, version: u16, dim: usize| Window {
            kind,
            group: GroupKey {
                schema_version: version,
                context: Some("ab".into()),
                dim,
            },
            start_ms: 1,
            end_ms: 2,
            values: (0..dim).map(|i| i as f32).collect(),
            envelope_id: "00".into(),
            received_at_ms: 3,
        };
        let keys = FactorKind::KeystrokeFixed;
        // 10 keys: 28 timings, then 10 pressures and 10 areas.
        let w = vec![
            window(keys, 2, 48),
            window(keys, 1, 28),
            window(FactorKind::Gait, 1, 48),
        ];
        let v1 = readable_by(&w, Some(1));
        assert_eq!(v1[0].group, w[1].group);
        assert_eq!(v1[0].values, w[1].values, "the timing part, in order");
        assert_eq!(&v1[1..], &w[1..], "other windows untouched");
        for want in [None, Some(2)] {
            assert!(matches!(
                readable_by(&w, want),
                std::borrow::Cow::Borrowed(_)
            ));
        }
        // A malformed width is left as it is (the model refuses it by dimension).
        let odd = vec![window(keys, 2, 47)];
        assert_eq!(readable_by(&odd, Some(1)).as_ref(), odd.as_slice());
    }

    /// A stored window whose time is far in the future (accepted before times were
    /// checked) is judged as ending when it arrived: it is neither fresh for ever nor
    /// newer than the windows that come after it.
    #[test]
    fn window_times_are_clamped_to_their_arrival() {
        let record = |start: u64| FeatureRecord {
            factor: FactorKind::Gait,
            schema_version: 1,
            window_start_ms: start,
            window_ms: 5_000,
            context: None,
            values: vec![0.0],
        };
        let received = 1_000_000;
        let poisoned = Payload {
            face_images: Vec::new(),
            records: vec![record(u64::MAX - 10)],
        };
        let w: Vec<Window> = windows_of(poisoned, [1; 16], received).collect();
        assert_eq!((w[0].start_ms, w[0].end_ms), (received, received));
        let later = Payload {
            face_images: Vec::new(),
            records: vec![record(received + 60_000)],
        };
        let l: Vec<Window> = windows_of(later, [2; 16], received + 70_000).collect();
        assert!(l[0].start_ms > w[0].start_ms, "a later window stays newer");
        let honest = Payload {
            face_images: Vec::new(),
            records: vec![record(received - 10_000)],
        };
        let h: Vec<Window> = windows_of(honest, [3; 16], received).collect();
        assert_eq!(
            (h[0].start_ms, h[0].end_ms),
            (received - 10_000, received - 5_000)
        );
    }
}
