//! The gateway's decisions, without HTTP: device registration with single-use
//! enrolment tokens, and the per-envelope verdicts of an upload (`PROTOCOL.md`, "Order
//! of checks" and "Replay"). Everything lives in memory; nothing is persisted.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use tacit_shared::api::{
    self, EnvelopeResult, EnvelopeStatus, MAX_UPLOAD_BATCH, RegisterDeviceRequest,
    RegisterDeviceResponse, UploadRequest, UploadResponse,
};
use tacit_shared::envelope::MAX_ENVELOPE_LEN;
use tacit_shared::identity::DeviceId;
use tacit_shared::replay::{self, ReplayPolicy, ReplayVerdict};
use tacit_shared::{DevicePublicKey, Envelope, RecipientKeyPair};

/// Reason codes for rejections that are not an `EnvelopeError` (the protocol leaves
/// them to the gateway).
pub mod reason {
    /// The envelope string is not strict standard base64.
    pub const INVALID_BASE64: &str = "invalid_base64";
    /// The header's device id was never registered.
    pub const UNKNOWN_DEVICE: &str = "unknown_device";
    /// Same device and sequence as a stored envelope, different envelope id.
    pub const SEQUENCE_REUSED: &str = "sequence_reused";
    /// Created before the acceptance window.
    pub const EXPIRED: &str = "expired";
    /// Created too far ahead of the server clock.
    pub const FROM_THE_FUTURE: &str = "from_the_future";
}

/// An error answer: HTTP status, message and stable code (serialised as
/// [`api::ErrorBody`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// Human-readable message.
    pub error: String,
    /// Stable machine-readable code.
    pub code: &'static str,
}

impl ApiError {
    /// A new error answer.
    pub fn new(status: u16, code: &'static str, error: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            code,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> api::ErrorBody {
        api::ErrorBody {
            error: self.error.clone(),
            code: self.code.to_string(),
        }
    }
}

/// Counters served at `GET /test/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Registered devices.
    pub devices: u64,
    /// Envelopes stored (first acceptance).
    pub stored: u64,
    /// Envelopes acknowledged again without storing.
    pub duplicates: u64,
    /// Envelopes rejected.
    pub rejected: u64,
    /// Feature records inside the stored envelopes.
    pub records: u64,
}

struct Device {
    key: DevicePublicKey,
}

/// The in-memory gateway.
pub struct Gateway {
    key: RecipientKeyPair,
    user_id: String,
    tokens: HashSet<String>,
    devices: HashMap<DeviceId, Device>,
    /// `(device, sequence)` → envelope id of every stored envelope (never pruned: a
    /// test server lives minutes).
    seen: HashMap<(DeviceId, u64), [u8; 16]>,
    policy: ReplayPolicy,
    stats: Stats,
}

impl Gateway {
    /// A gateway holding `key`, accepting each of `tokens` once, enrolling devices for
    /// `user_id`.
    pub fn new(
        key: RecipientKeyPair,
        tokens: impl IntoIterator<Item = String>,
        user_id: String,
    ) -> Self {
        Gateway {
            key,
            user_id,
            tokens: tokens.into_iter().collect(),
            devices: HashMap::new(),
            seen: HashMap::new(),
            policy: ReplayPolicy::default(),
            stats: Stats::default(),
        }
    }

    /// The HPKE key pair envelopes must be sealed to.
    pub fn key(&self) -> &RecipientKeyPair {
        &self.key
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// `POST /v1/devices`. The token is consumed only when the key is valid.
    /// Registering the same key again (with a fresh token) is accepted and yields the
    /// same device id.
    pub fn register(
        &mut self,
        req: &RegisterDeviceRequest,
    ) -> Result<RegisterDeviceResponse, ApiError> {
        let key = req.public_key.to_key().map_err(|e| {
            ApiError::new(
                400,
                "invalid_public_key",
                format!("invalid public key: {e}"),
            )
        })?;
        if !self.tokens.remove(&req.enrolment_token) {
            return Err(ApiError::new(
                403,
                "invalid_enrolment_token",
                "unknown or already used enrolment token",
            ));
        }
        let device_id = key.device_id();
        if self.devices.insert(device_id, Device { key }).is_none() {
            self.stats.devices += 1;
        }
        Ok(RegisterDeviceResponse {
            device_id: device_id.to_hex(),
            user_id: self.user_id.clone(),
        })
    }

    /// `POST /v1/uploads`: one result per envelope, in request order. `now_ms` is the
    /// server clock (Unix milliseconds) for the replay window.
    pub fn upload(&mut self, req: &UploadRequest, now_ms: u64) -> Result<UploadResponse, ApiError> {
        let n = req.envelopes.len();
        if n == 0 || n > MAX_UPLOAD_BATCH {
            return Err(ApiError::new(
                400,
                "invalid_batch",
                format!("an upload holds 1..={MAX_UPLOAD_BATCH} envelopes, got {n}"),
            ));
        }
        let results = req
            .envelopes
            .iter()
            .enumerate()
            .map(|(index, b64)| {
                let (envelope_id, verdict) = self.one(b64, now_ms);
                let (status, reason) = match verdict {
                    Ok(status) => (status, None),
                    Err(code) => {
                        self.stats.rejected += 1;
                        (EnvelopeStatus::Rejected, Some(code.to_string()))
                    }
                };
                EnvelopeResult {
                    index,
                    envelope_id: envelope_id.map(|id| api::hex(&id)),
                    status,
                    reason,
                }
            })
            .collect();
        Ok(UploadResponse { results })
    }

    /// Decides one envelope: its id (when decodable) and stored/duplicate or a reason.
    fn one(
        &mut self,
        b64: &str,
        now_ms: u64,
    ) -> (Option<[u8; 16]>, Result<EnvelopeStatus, &'static str>) {
        // Size first, before decoding anything (as the receiver's check order demands).
        if b64.len() > MAX_ENVELOPE_LEN.div_ceil(3) * 4 {
            return (None, Err("oversized"));
        }
        let Some(bytes) = api::b64_decode(b64) else {
            return (None, Err(reason::INVALID_BASE64));
        };
        let env = match Envelope::decode(&bytes) {
            Ok(env) => env,
            Err(e) => return (None, Err(e.code())),
        };
        let header = env.header;
        let id = Some(header.envelope_id);
        let Some(device) = self.devices.get(&header.device_id) else {
            // The key id is checked before the device (PROTOCOL.md, order of checks).
            if header.key_id != self.key.key_id() {
                return (id, Err("unknown_key_id"));
            }
            return (id, Err(reason::UNKNOWN_DEVICE));
        };
        let key = &self.key;
        let opened =
            match Envelope::open(&bytes, &device.key, |k| (*k == key.key_id()).then_some(key)) {
                Ok(opened) => opened,
                Err(e) => return (id, Err(e.code())),
            };
        let slot = (header.device_id, header.sequence);
        let verdict = replay::check(
            &self.policy,
            now_ms,
            header.created_at_ms,
            &header.envelope_id,
            self.seen.get(&slot),
        );
        match verdict {
            ReplayVerdict::Fresh => {
                self.seen.insert(slot, header.envelope_id);
                self.stats.stored += 1;
                self.stats.records += opened.payload.records.len() as u64;
                (id, Ok(EnvelopeStatus::Stored))
            }
            ReplayVerdict::Duplicate => {
                self.stats.duplicates += 1;
                (id, Ok(EnvelopeStatus::Duplicate))
            }
            ReplayVerdict::SequenceReused => (id, Err(reason::SEQUENCE_REUSED)),
            ReplayVerdict::Expired => (id, Err(reason::EXPIRED)),
            ReplayVerdict::FromTheFuture => (id, Err(reason::FROM_THE_FUTURE)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use tacit_shared::api::PublicKeyJson;
    use tacit_shared::envelope::SealParams;
    use tacit_shared::identity::{Ed25519Signer, P256Signer};
    use tacit_shared::schema::{self, GAIT_V1};
    use tacit_shared::{DeviceSigner, FactorKind, FeatureRecord, Payload, Suite};

    const NOW: u64 = 1_800_000_000_000;

    fn payload(n: usize) -> Payload {
        let values = GAIT_V1
            .iter()
            .map(|d| (d.min.max(0.0) + d.max.min(1.0)) / 2.0)
            .collect::<Vec<f32>>();
        let record = FeatureRecord {
            factor: FactorKind::Gait,
            schema_version: schema::current_version(FactorKind::Gait),
            window_start_ms: NOW - 10_000,
            window_ms: 5120,
            context: None,
            values,
        };
        Payload {
            records: vec![record; n],
        }
    }

    fn seal(gw: &Gateway, signer: &dyn DeviceSigner, seq: u64, created: u64) -> String {
        let rng = SystemRandom::new();
        let params = SealParams {
            suite: Suite::X25519Sha256ChaCha20Poly1305,
            sequence: seq,
            created_at_ms: created,
        };
        let (_, bytes) =
            Envelope::seal(params, &payload(3), gw.key().public_key(), signer, &rng).unwrap();
        api::b64_encode(&bytes)
    }

    fn gateway() -> Gateway {
        let rng = SystemRandom::new();
        Gateway::new(
            RecipientKeyPair::generate(&rng).unwrap(),
            ["t1".to_string(), "t2".to_string()],
            "alice".into(),
        )
    }

    fn register(
        gw: &mut Gateway,
        signer: &dyn DeviceSigner,
        token: &str,
    ) -> Result<RegisterDeviceResponse, ApiError> {
        gw.register(&RegisterDeviceRequest {
            enrolment_token: token.into(),
            public_key: PublicKeyJson::from_key(&signer.public_key()),
        })
    }

    fn statuses(r: &UploadResponse) -> Vec<(EnvelopeStatus, Option<&str>)> {
        r.results
            .iter()
            .map(|r| (r.status, r.reason.as_deref()))
            .collect()
    }

    #[test]
    fn tokens_are_single_use_and_keys_validated() {
        let rng = SystemRandom::new();
        let mut gw = gateway();
        let dev = Ed25519Signer::generate(&rng).unwrap().0;
        let r = register(&mut gw, &dev, "t1").unwrap();
        assert_eq!(r.device_id, dev.public_key().device_id().to_hex());
        assert_eq!(r.user_id, "alice");
        assert_eq!(
            register(&mut gw, &dev, "t1").unwrap_err().code,
            "invalid_enrolment_token"
        );
        assert_eq!(register(&mut gw, &dev, "nope").unwrap_err().status, 403);
        let bad = gw
            .register(&RegisterDeviceRequest {
                enrolment_token: "t2".into(),
                public_key: PublicKeyJson {
                    algorithm: "ed25519".into(),
                    key: api::b64_encode(&[1; 5]),
                },
            })
            .unwrap_err();
        assert_eq!((bad.status, bad.code), (400, "invalid_public_key"));
        // The token survived the invalid key.
        let p256 = P256Signer::generate(&rng).unwrap().0;
        register(&mut gw, &p256, "t2").unwrap();
        assert_eq!(gw.stats().devices, 2);
    }

    #[test]
    fn uploads_store_dedupe_and_reject() {
        let rng = SystemRandom::new();
        let mut gw = gateway();
        let dev = Ed25519Signer::generate(&rng).unwrap().0;
        let stranger = Ed25519Signer::generate(&rng).unwrap().0;
        register(&mut gw, &dev, "t1").unwrap();
        let a = seal(&gw, &dev, 1, NOW);
        let b = seal(&gw, &dev, 2, NOW);
        let reused = seal(&gw, &dev, 1, NOW);
        let old = seal(&gw, &dev, 3, NOW - 15 * 24 * 3600 * 1000);
        let unknown = seal(&gw, &stranger, 1, NOW);
        let mut tampered = api::b64_decode(&b).unwrap();
        tampered[120] ^= 1;
        let req = UploadRequest {
            envelopes: vec![
                a.clone(),
                b,
                a,
                reused,
                old,
                unknown,
                api::b64_encode(&tampered),
                "!!".into(),
                api::b64_encode(b"TCIT"),
            ],
        };
        let r = gw.upload(&req, NOW).unwrap();
        use EnvelopeStatus::*;
        assert_eq!(
            statuses(&r),
            vec![
                (Stored, None),
                (Stored, None),
                (Duplicate, None),
                (Rejected, Some("sequence_reused")),
                (Rejected, Some("expired")),
                (Rejected, Some("unknown_device")),
                (Rejected, Some("bad_signature")),
                (Rejected, Some("invalid_base64")),
                (Rejected, Some("truncated")),
            ]
        );
        assert!(r.results.iter().enumerate().all(|(i, x)| x.index == i));
        assert!(
            r.results[0]
                .envelope_id
                .as_ref()
                .is_some_and(|s| s.len() == 32)
        );
        assert_eq!(r.results[7].envelope_id, None);
        assert_eq!(
            gw.stats(),
            Stats {
                devices: 1,
                stored: 2,
                duplicates: 1,
                rejected: 6,
                records: 6
            }
        );
    }

    #[test]
    fn batch_bounds_and_foreign_keys() {
        let rng = SystemRandom::new();
        let mut gw = gateway();
        let other = gateway();
        let dev = Ed25519Signer::generate(&rng).unwrap().0;
        register(&mut gw, &dev, "t1").unwrap();
        let empty = UploadRequest { envelopes: vec![] };
        assert_eq!(gw.upload(&empty, NOW).unwrap_err().code, "invalid_batch");
        let huge = UploadRequest {
            envelopes: vec![String::new(); MAX_UPLOAD_BATCH + 1],
        };
        assert_eq!(gw.upload(&huge, NOW).unwrap_err().status, 400);
        let sealed_elsewhere = seal(&other, &dev, 1, NOW);
        let r = gw
            .upload(
                &UploadRequest {
                    envelopes: vec![sealed_elsewhere, "A".repeat(2 * MAX_ENVELOPE_LEN)],
                },
                NOW,
            )
            .unwrap();
        assert_eq!(
            statuses(&r),
            vec![
                (EnvelopeStatus::Rejected, Some("unknown_key_id")),
                (EnvelopeStatus::Rejected, Some("oversized")),
            ]
        );
    }
}
