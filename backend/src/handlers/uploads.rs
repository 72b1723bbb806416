//! Encrypted ingest: `POST /v1/uploads`.
//!
//! Per envelope, in order: base64 → strict decoding → key id known → device known and
//! not revoked → signature → HPKE open → payload/schema validation → replay window;
//! then the fresh envelopes are stored in one group commit per device and day (a pack
//! object, then one database transaction) → acknowledgement. One result per
//! envelope; only infrastructure failures fail the whole request (503, Retry-After),
//! and a client retrying that batch is safe because acknowledgement is by envelope id.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::Instant;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::{Extension, Json};
use tacit_shared::api::{
    EnvelopeResult, EnvelopeStatus, MAX_UPLOAD_BATCH, UploadRequest, UploadResponse, b64_decode,
    hex,
};
use tacit_shared::envelope::{Envelope, EnvelopeError};
use tacit_shared::identity::DevicePublicKey;
use tacit_shared::payload::Payload;
use tacit_shared::replay::{self, ReplayVerdict};

use super::{DeviceRefusal, active_device, faces, json_error};
use crate::error::ApiError;
use crate::ratelimit::{PeerAddr, address_key, client_ip};
use crate::state::{AppState, now_ms};
use crate::store::{DeviceRow, EnvelopeMeta, NewEnvelope, SeenEnvelope, StoreOutcome};

fn rejected(index: usize, id: Option<[u8; 16]>, reason: &str) -> EnvelopeResult {
    EnvelopeResult {
        index,
        envelope_id: id.map(|i| hex(&i)),
        status: EnvelopeStatus::Rejected,
        reason: Some(reason.to_string()),
    }
}

/// The rejection reason of a validly signed envelope whose sequence number belongs to
/// another stored envelope of its device.
const SEQUENCE_REUSED: &str = "sequence_reused";

/// An accepted envelope's payload as the request opened it: evidence that needs no
/// read-back from the store.
pub(crate) struct Accepted {
    /// The envelope's id.
    pub envelope_id: [u8; 16],
    /// Its payload.
    pub payload: Payload,
    /// When the gateway first stored it: now, or, for an envelope sent again, when the
    /// earlier request stored it.
    pub received_at_ms: u64,
    /// When the phone created it (device clock, Unix ms).
    pub created_at_ms: u64,
}

/// What ingesting a batch did.
pub(crate) struct Ingested {
    /// One result per envelope, in request order (the answer's `results`).
    pub results: Vec<EnvelopeResult>,
    /// The envelopes stored now or before, opened.
    pub accepted: Vec<Accepted>,
    /// A validly signed envelope reused a sequence number: its device's key is on two
    /// phones, and the device was revoked.
    pub cloned: bool,
}

/// A validly signed envelope reusing a sequence number means two holders of one device
/// key (a cloned phone, or a phone restored from a backup of its key): the device is
/// revoked, so neither can upload or authenticate until the owner registers anew. The
/// clone is caught by whichever of the two uploads second; the signature check before
/// this point means nobody without the key can trigger it.
async fn revoke_cloned(st: &AppState, device_id: [u8; 16]) -> Result<(), ApiError> {
    st.store.revoke_device(device_id).await?;
    st.metrics.count("tacit_devices_cloned_total", &[], 1);
    tracing::warn!(device = %hex(&device_id), "sequence number reused by a validly signed envelope: device key on two phones, device revoked");
    Ok(())
}

/// An envelope whose result is decided, before it becomes an [`EnvelopeResult`].
struct Done {
    index: usize,
    envelope_id: [u8; 16],
    created_at_ms: u64,
    /// The payload to judge (authentication) and count; `None` once rejected.
    payload: Option<Payload>,
    /// The status and when the envelope was first stored, or the rejection reason.
    outcome: Result<(EnvelopeStatus, u64), &'static str>,
}

impl Done {
    fn fail(mut self, reason: &'static str) -> Done {
        self.payload = None;
        self.outcome = Err(reason);
        self
    }
}

/// A fresh envelope waiting for its group commit.
struct ToStore {
    done: Done,
    envelope: NewEnvelope,
}

/// A day, in ms: a pack holds envelopes created on one UTC day, so that retention,
/// which deletes whole packs, keeps nothing more than a day past its cut.
const PACK_SPAN_MS: u64 = 86_400_000;

/// The group commits of a request's fresh envelopes: one per (device, day of
/// creation), in order of each group's first envelope, request order within.
fn commit_groups(to_store: Vec<ToStore>) -> Vec<Vec<ToStore>> {
    let mut groups: Vec<Vec<ToStore>> = Vec::new();
    for t in to_store {
        let key = (
            t.envelope.meta.device_id,
            t.envelope.meta.created_at_ms / PACK_SPAN_MS,
        );
        match groups.iter_mut().find(|g| {
            let m = &g[0].envelope.meta;
            (m.device_id, m.created_at_ms / PACK_SPAN_MS) == key
        }) {
            Some(g) => g.push(t),
            None => groups.push(vec![t]),
        }
    }
    groups
}

/// An envelope that passed every cryptographic and schema check.
struct Opened {
    index: usize,
    envelope: Envelope,
    payload: Payload,
    user_id: String,
}

/// The bucket key of the client's address (behind trusted proxies, the forwarded one);
/// `None` when the request did not come through the listener.
pub(crate) fn client_key(
    st: &AppState,
    peer: Option<Extension<PeerAddr>>,
    headers: &HeaderMap,
) -> Option<[u8; 16]> {
    let Extension(axum::extract::ConnectInfo(peer)) = peer?;
    Some(address_key(client_ip(
        peer.ip(),
        headers,
        &st.settings.limits.trusted_proxies,
    )))
}

/// `429 unauthenticated_rate_limited`: the client's address spent its budget of work
/// that does not authenticate.
pub(crate) fn unauthenticated_limited(st: &AppState, wait_s: u64) -> ApiError {
    st.metrics
        .count("tacit_unauthenticated_limited_total", &[], 1);
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "unauthenticated_rate_limited",
        "too many requests from this address failed verification",
    );
    e.retry_after_s = Some(wait_s);
    e
}

/// An envelope sent again whose stored payload the request judges: its place in the
/// finished list, the object holding it and its id.
struct Resent {
    at: usize,
    object_key: String,
    envelope_id: [u8; 16],
}

/// Sets the payload of every envelope sent again to what was stored for it, reading
/// each feature object once however many of its envelopes come again. An envelope
/// whose object is gone (expired or deleted meanwhile) or whose payload does not
/// decode is left without one (with a warning): it is not judged. Storage failures
/// fail the request.
async fn load_stored_payloads(
    st: &AppState,
    mut resent: Vec<Resent>,
    done: &mut [Done],
) -> Result<(), ApiError> {
    resent.sort_by(|a, b| a.object_key.cmp(&b.object_key));
    for same_object in resent.chunk_by(|a, b| a.object_key == b.object_key) {
        let key = &same_object[0].object_key;
        let entries = match st.store.objects().read_entries(key).await {
            Ok(e) => e,
            Err(crate::store::StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        let by_id: HashMap<&[u8; 16], &[u8]> = entries
            .iter()
            .map(|e| (&e.envelope_id, e.payload.as_slice()))
            .collect();
        for r in same_object {
            let Some(bytes) = by_id.get(&r.envelope_id) else {
                continue;
            };
            let decoded = Payload::decode(bytes).inspect_err(|_| {
                tracing::warn!(object = %key, "stored feature object does not decode; not judged")
            });
            if let Some(d) = done.get_mut(r.at) {
                d.payload = decoded.ok();
            }
        }
    }
    Ok(())
}

/// Accepts a batch of envelopes.
#[utoipa::path(post, path = "/v1/uploads", request_body = UploadRequest,
    responses((status = 200, body = UploadResponse), (status = 400, body = tacit_shared::api::ErrorBody),
        (status = 413, body = tacit_shared::api::ErrorBody), (status = 415, body = tacit_shared::api::ErrorBody), (status = 429, body = tacit_shared::api::ErrorBody),
        (status = 503, body = tacit_shared::api::ErrorBody)))]
pub async fn upload(
    State(st): State<AppState>,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Result<Json<UploadRequest>, JsonRejection>,
) -> Result<Json<UploadResponse>, ApiError> {
    let Json(req) = body.map_err(json_error)?;
    if req.envelopes.is_empty() || req.envelopes.len() > MAX_UPLOAD_BATCH {
        return Err(ApiError::bad_request(
            "invalid_batch",
            format!(
                "a batch holds 1..={MAX_UPLOAD_BATCH} envelopes, got {}",
                req.envelopes.len()
            ),
        ));
    }
    let ingested = ingest(&st, &req.envelopes, None, client_key(&st, peer, &headers)).await?;
    Ok(Json(UploadResponse {
        results: ingested.results,
    }))
}

/// Verifies, opens, checks and durably stores envelopes (base64), one result per
/// envelope in order. With `only_device` (an authentication by that device), envelopes of
/// other devices are rejected (`wrong_device`) and the accepted payloads are kept as the
/// evidence (`Ingested::accepted`; for uploads it stays empty, and a re-sent envelope's
/// stored copy is not read). `client` is the bucket key of the client's address
/// ([`crate::ratelimit::address_key`]), `None` when unknown. Errors only for what fails
/// the whole batch: the device's or the address's rate limit (429) and infrastructure
/// (503).
pub(crate) async fn ingest(
    st: &AppState,
    envelopes: &[String],
    only_device: Option<[u8; 16]>,
    client: Option<[u8; 16]>,
) -> Result<Ingested, ApiError> {
    let n = envelopes.len();
    let mut results: Vec<Option<EnvelopeResult>> = vec![None; n];

    // Structural decoding (cheap, no secrets).
    let mut decoded = Vec::with_capacity(n);
    for (i, b64) in envelopes.iter().enumerate() {
        let Some(bytes) = b64_decode(b64) else {
            results[i] = Some(rejected(i, None, "bad_base64"));
            continue;
        };
        match Envelope::decode(&bytes) {
            Ok(env) if only_device.is_some_and(|d| d != env.header.device_id.0) => {
                results[i] = Some(rejected(i, Some(env.header.envelope_id), "wrong_device"));
            }
            Ok(env) => decoded.push((i, env)),
            Err(e) => results[i] = Some(rejected(i, None, e.code())),
        }
    }

    // Work that does not authenticate is bounded per client address: an address that
    // spent its budget on envelopes that failed verification is refused before any
    // device lookup or signature check.
    let started = Instant::now();
    if let Some(addr) = client
        && let Err(wait) = st.unauthenticated.check(addr, started)
    {
        return Err(unauthenticated_limited(st, wait));
    }
    let mut unverified = results.iter().filter(|r| r.is_some()).count();

    // Devices of this batch.
    let mut devices: HashMap<[u8; 16], Option<DeviceRow>> = HashMap::new();
    for (_, env) in &decoded {
        if let std::collections::hash_map::Entry::Vacant(v) = devices.entry(env.header.device_id.0)
        {
            v.insert(st.store.get_device(env.header.device_id.0).await?);
        }
    }

    // Signatures (CPU work, off the async threads). Only what verifies is charged to a
    // device's bucket: the device id travels in clear, so charging before the signature
    // would let anyone spend a device's budget and silence it.
    let verified = tokio::task::spawn_blocking(move || {
        // Each device's key parsed once for its whole batch.
        let keys: HashMap<[u8; 16], Result<(String, DevicePublicKey), DeviceRefusal>> = devices
            .iter()
            .map(|(id, row)| {
                let key = active_device(row.as_ref()).map(|(d, k)| (d.user_id.clone(), k));
                (*id, key)
            })
            .collect();
        decoded
            .into_iter()
            .map(|(i, env)| {
                let id = env.header.envelope_id;
                let (user_id, device_key) = match keys.get(&env.header.device_id.0) {
                    Some(Ok(k)) => k,
                    Some(Err(r)) => return Err(rejected(i, Some(id), r.code())),
                    None => return Err(rejected(i, Some(id), DeviceRefusal::Unknown.code())),
                };
                env.verify(device_key)
                    .map_err(|e| rejected(i, Some(id), e.code()))?;
                Ok((i, env, user_id.clone()))
            })
            .collect::<Vec<Result<_, EnvelopeResult>>>()
    })
    .await
    .map_err(ApiError::internal)?;
    // A device whose stored key does not parse is the server's fault: the whole batch
    // fails (503/500 are retried) rather than the phone's envelopes being rejected and
    // dropped.
    if verified.iter().any(|r| {
        r.as_ref()
            .is_err_and(|e| e.reason.as_deref() == Some(DeviceRefusal::BrokenStoredKey.code()))
    }) {
        return Err(ApiError::internal("a stored device key does not parse"));
    }
    unverified += verified.iter().filter(|r| r.is_err()).count();
    if let Some(addr) = client
        && unverified > 0
    {
        st.unauthenticated.charge(addr, unverified as f64, started);
    }

    // The per-device rate limit, on verified envelopes only (whole request: the client
    // retries the batch after Retry-After).
    let mut per_device: HashMap<[u8; 16], f64> = HashMap::new();
    for (_, env, _) in verified.iter().flatten() {
        *per_device.entry(env.header.device_id.0).or_default() += 1.0;
    }
    for (id, count) in &per_device {
        if let Err(wait) = st.limiter.take(*id, *count, started) {
            st.metrics.count("tacit_rate_limited_total", &[], 1);
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many envelopes from this device",
            );
            e.retry_after_s = Some(wait);
            return Err(e);
        }
    }

    // Decryption and schema validation.
    let keys = st.keys.clone();
    let checked = tokio::task::spawn_blocking(move || {
        verified
            .into_iter()
            .map(|v| {
                let (i, env, user_id) = v?;
                let id = env.header.envelope_id;
                let Some(key) = keys.get(&env.header.key_id) else {
                    return Err(rejected(
                        i,
                        Some(id),
                        EnvelopeError::UnknownKeyId(env.header.key_id).code(),
                    ));
                };
                let payload = env
                    .decrypt(key)
                    .map_err(|e| rejected(i, Some(id), e.code()))?;
                Ok(Opened {
                    index: i,
                    envelope: env,
                    payload,
                    user_id,
                })
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(ApiError::internal)?;

    // What the store holds under these sequence numbers: one query per device.
    let mut wanted: HashMap<[u8; 16], Vec<u64>> = HashMap::new();
    for o in checked.iter().flatten() {
        let h = &o.envelope.header;
        wanted.entry(h.device_id.0).or_default().push(h.sequence);
    }
    let mut stored_before: HashMap<([u8; 16], u64), SeenEnvelope> = HashMap::new();
    for (device, sequences) in wanted {
        for (sequence, seen) in st.store.seen_range(device, &sequences).await? {
            stored_before.insert((device, sequence), seen);
        }
    }

    // Replay rules, in request order; what is new waits for the group commit.
    let now_ms = now_ms();
    let mut cloned: Vec<[u8; 16]> = Vec::new();
    let mut done: Vec<Done> = Vec::new();
    let mut to_store: Vec<ToStore> = Vec::new();
    let mut resent: Vec<Resent> = Vec::new();
    let mut fresh_in_request: HashMap<([u8; 16], u64), [u8; 16]> = HashMap::new();
    let mut fresh_ids: std::collections::HashSet<([u8; 16], [u8; 16])> =
        std::collections::HashSet::new();
    for item in checked {
        let opened = match item {
            Ok(o) => o,
            Err(r) => {
                let i = r.index;
                results[i] = Some(r);
                continue;
            }
        };
        let h = &opened.envelope.header;
        let i = opened.index;
        let mut finished = Done {
            index: i,
            envelope_id: h.envelope_id,
            created_at_ms: h.created_at_ms,
            payload: None,
            outcome: Err("internal"),
        };
        if cloned.contains(&h.device_id.0) {
            results[i] = Some(rejected(i, Some(h.envelope_id), "device_revoked"));
            continue;
        }
        let seen = stored_before.get(&(h.device_id.0, h.sequence));
        let mut store_this = None;
        let verdict = replay::check(
            &st.replay,
            now_ms,
            h.created_at_ms,
            &h.envelope_id,
            seen.as_ref().map(|s| &s.envelope_id),
        );
        finished.outcome = match verdict {
            ReplayVerdict::Fresh => 'fresh: {
                // The same envelope (device and id) twice in one request: the first
                // copy to be stored is the one stored and judged; a later one is a
                // duplicate of it, whatever its contents or the day it claims.
                if fresh_ids.contains(&(h.device_id.0, h.envelope_id)) {
                    break 'fresh Ok((EnvelopeStatus::Duplicate, now_ms));
                }
                let mut fresh = opened.payload;
                // Every time in the payload is bounded by the envelope's, which the
                // replay check just bounded by the server clock.
                if let Err(e) = replay::check_windows(&st.replay, h.created_at_ms, &fresh) {
                    break 'fresh Err(e.code());
                }
                // Face images become face records here; no image is stored.
                if let Err(code) = faces::embed_faces(st, &opened.user_id, &mut fresh).await? {
                    break 'fresh Err(code);
                }
                // One sequence number on two envelopes of this request: the later one
                // is the reuse (as it would be against a stored row), whichever
                // day's pack either would go to.
                match fresh_in_request.entry((h.device_id.0, h.sequence)) {
                    Entry::Occupied(first) if *first.get() != h.envelope_id => {
                        revoke_cloned(st, h.device_id.0).await?;
                        cloned.push(h.device_id.0);
                        break 'fresh Err(SEQUENCE_REUSED);
                    }
                    Entry::Occupied(_) => {}
                    Entry::Vacant(v) => {
                        v.insert(h.envelope_id);
                    }
                }
                fresh_ids.insert((h.device_id.0, h.envelope_id));
                let features = fresh.encode().map_err(ApiError::internal)?;
                let meta = EnvelopeMeta {
                    device_id: h.device_id.0,
                    user_id: opened.user_id.clone(),
                    sequence: h.sequence,
                    envelope_id: h.envelope_id,
                    created_at_ms: h.created_at_ms,
                    received_at_ms: now_ms,
                    records: fresh.records.len() as u32,
                };
                finished.payload = Some(fresh);
                store_this = Some(NewEnvelope { meta, features });
                Ok((EnvelopeStatus::Stored, now_ms))
            }
            ReplayVerdict::Duplicate => {
                // What gets judged is what was stored: for an envelope sent again, the
                // stored payload, not this copy (the same header with other contents
                // must not count).
                // Read after the loop, each stored object once.
                if let (Some(s), Some(_)) = (&seen, only_device) {
                    resent.push(Resent {
                        at: done.len(),
                        object_key: s.object_key.clone(),
                        envelope_id: h.envelope_id,
                    });
                }
                // When the envelope was first stored (by the earlier request).
                let stored_at = seen.as_ref().map_or(now_ms, |s| s.received_at_ms);
                Ok((EnvelopeStatus::Duplicate, stored_at))
            }
            ReplayVerdict::SequenceReused => {
                revoke_cloned(st, h.device_id.0).await?;
                cloned.push(h.device_id.0);
                Err(SEQUENCE_REUSED)
            }
            ReplayVerdict::Expired => Err("expired"),
            ReplayVerdict::FromTheFuture => Err("from_the_future"),
        };
        match store_this {
            Some(envelope) => to_store.push(ToStore {
                done: finished,
                envelope,
            }),
            None => done.push(finished),
        }
    }

    load_stored_payloads(st, resent, &mut done).await?;

    // Durable storage: one group commit per device and day of creation (a pack each),
    // acknowledged only once it is committed.
    let mut cloned_now: Vec<[u8; 16]> = Vec::new();
    for group in commit_groups(to_store) {
        let device_id = group[0].envelope.meta.device_id;
        if cloned_now.contains(&device_id) {
            done.extend(group.into_iter().map(|t| t.done.fail("device_revoked")));
            continue;
        }
        let (finished, envelopes): (Vec<Done>, Vec<NewEnvelope>) =
            group.into_iter().map(|t| (t.done, t.envelope)).unzip();
        let outcomes = match st.store.store_envelopes(envelopes).await {
            Ok(o) => o,
            // The user (and with them the device) was deleted while this request ran:
            // the envelopes are refused like any of an unknown device.
            Err(crate::store::StoreError::NotFound(_)) => {
                let code = DeviceRefusal::Unknown.code();
                done.extend(finished.into_iter().map(|d| d.fail(code)));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        st.metrics.count("tacit_group_commits_total", &[], 1);
        for (k, mut d) in finished.into_iter().enumerate() {
            d.outcome = match outcomes.get(k) {
                Some(StoreOutcome::Stored) => Ok((EnvelopeStatus::Stored, now_ms)),
                // Stored by a request that raced this one just now.
                Some(StoreOutcome::Duplicate) => Ok((EnvelopeStatus::Duplicate, now_ms)),
                Some(StoreOutcome::SequenceReused) => {
                    revoke_cloned(st, device_id).await?;
                    cloned_now.push(device_id);
                    Err(SEQUENCE_REUSED)
                }
                // After a reused sequence number the rest of the group is not stored.
                None => Err("device_revoked"),
            };
            if d.outcome.is_err() {
                d.payload = None;
            }
            done.push(d);
        }
    }

    // Results and evidence in request order; an envelope sent twice in one request
    // is evidence once.
    done.sort_by_key(|d| d.index);
    let mut accepted: Vec<Accepted> = Vec::new();
    let mut evidence_ids = std::collections::HashSet::new();
    for d in done {
        let i = d.index;
        results[i] = Some(match d.outcome {
            Ok((status, received_at_ms)) => {
                if let Some(payload) = d.payload {
                    if status == EnvelopeStatus::Stored {
                        st.metrics.count(
                            "tacit_feature_records_total",
                            &[],
                            payload.records.len() as u64,
                        );
                    }
                    if only_device.is_some() && evidence_ids.insert(d.envelope_id) {
                        accepted.push(Accepted {
                            envelope_id: d.envelope_id,
                            payload,
                            received_at_ms,
                            created_at_ms: d.created_at_ms,
                        });
                    }
                }
                EnvelopeResult {
                    index: i,
                    envelope_id: Some(hex(&d.envelope_id)),
                    status,
                    reason: None,
                }
            }
            Err(reason) => rejected(i, Some(d.envelope_id), reason),
        });
    }
    cloned.extend(cloned_now);

    let results: Vec<EnvelopeResult> = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|| rejected(i, None, "internal")))
        .collect();
    for r in &results {
        let labels = match r.status {
            EnvelopeStatus::Stored => vec![("status", "stored".to_owned())],
            EnvelopeStatus::Duplicate => vec![("status", "duplicate".to_owned())],
            EnvelopeStatus::Rejected => vec![
                ("status", "rejected".to_owned()),
                ("reason", r.reason.clone().unwrap_or_default()),
            ],
        };
        st.metrics.count("tacit_envelopes_total", &labels, 1);
    }
    Ok(Ingested {
        results,
        accepted,
        cloned: !cloned.is_empty(),
    })
}
