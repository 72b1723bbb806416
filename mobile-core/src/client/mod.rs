//! The phone-side client, in plain Rust (the FFI edge in [`crate::ffi`] is a thin
//! wrapper): capture → features → sealed envelopes in the outbox → uploads.
//!
//! Raw samples and key events live only inside the extractors for the length of one
//! window or block; what is kept and sent are feature records.

mod answer;
mod authentication;
mod backend_keys;
pub(crate) mod clock;
pub mod face;
mod keystore;
mod registration;
mod sealing;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use tacit_shared::api::{AuthenticateResponse, MAX_AUTH_ENVELOPES};
use tacit_shared::hpke::{KeyId, RecipientPublicKey};
use tacit_shared::identity::DeviceSigner;

pub use keystore::{FileKeyStore, KEY_FILE};
pub use registration::Registration;
pub use sealing::{HARD_PENDING_RECORDS, MAX_PENDING_RECORDS, SealPolicy};

use crate::dsp::{DspError, KeyEvent, MotionSample};
use crate::factors::gait::{GaitConfig, GaitExtractor};
use crate::factors::keystroke::{
    FreeTextExtractor, fixed_text_record, free_text_record, phrase_id,
};
use crate::queue::{Outbox, OutboxConfig, QueueError};
use crate::upload::{DEVICE_REFUSALS, DrainReport, UploadPolicy, Uploader};
use clock::ServerClock;
use sealing::{Capture, Sealing};

/// Records per envelope. Small enough that one envelope is a few tens of KiB, large
/// enough that the per-envelope X25519 + signature cost is amortised.
pub const RECORDS_PER_ENVELOPE: usize = 256;
/// Keys per free-text block.
pub const FREE_TEXT_BLOCK_KEYS: usize = 100;

/// Internal errors of the client; the FFI maps them to its small public enum.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Input from the app is unusable.
    #[error("invalid input: {0}")]
    Input(#[from] DspError),
    /// Input from the app produced features outside the schema's plausible ranges.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Local storage failed.
    #[error("storage: {0}")]
    Storage(String),
    /// The outbox failed.
    #[error("outbox: {0}")]
    Queue(#[from] QueueError),
    /// The network or the server could not be reached.
    #[error("network: {0}")]
    Network(String),
    /// The server's answer is unusable (malformed, inconsistent, too large).
    #[error("server: {0}")]
    Server(String),
    /// The server refused the request: its HTTP status and error code (`ErrorBody`).
    #[error("server: {what} refused: HTTP {status}: {message} ({code})")]
    Refused {
        /// Which call (`registration`, `authentication`, `key list`).
        what: &'static str,
        /// The HTTP status.
        status: u16,
        /// The server's stable error code (e.g. `stale_request`, `device_revoked`).
        code: String,
        /// The server's message.
        message: String,
        /// How long the server asked the client to wait (`Retry-After` of a 429 or
        /// 503), when it said.
        retry_after_ms: Option<u64>,
    },
    /// The backend's key list was refused: not signed by the pinned root, older than
    /// the one held, or malformed. The held keys stay in use.
    #[error("key list refused: {0}")]
    KeyList(#[from] tacit_shared::keylist::KeyListError),
    /// The device must be registered first.
    #[error("device not registered")]
    NotRegistered,
    /// The device key could not be used.
    #[error("device key: {0}")]
    KeyStore(String),
    /// Sealing failed.
    #[error("sealing: {0}")]
    Seal(String),
}

/// Client configuration (Rust form).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Backend base URL, e.g. `https://auth.example.com`.
    pub backend_url: String,
    /// The backend's HPKE public key (pinned in the app): sealed to until a key list
    /// signed by `key_list_root` names another.
    pub backend_key: RecipientPublicKey,
    /// The backend's root public key (Ed25519, 32 bytes, from `tacit-backend keys
    /// root-keygen`): when set, the client learns rotated backend keys from the
    /// root-signed list at `GET /v1/keys`. `None`: `backend_key` only.
    pub key_list_root: Option<[u8; 32]>,
    /// Where the outbox, the device key and the registration live. Keep it out of
    /// device backups: a restored copy reuses sequence numbers, which the backend takes
    /// for a cloned phone (it revokes the device).
    pub data_dir: PathBuf,
    /// The app's id for the person.
    pub user_id: String,
    /// Upload behaviour.
    pub upload: UploadPolicy,
    /// Outbox bound.
    pub outbox: OutboxConfig,
    /// Upload only on unmetered networks.
    pub wifi_only: bool,
    /// When pending records are sealed (default: on the SDK's sealer thread, after at
    /// most 60 s).
    pub sealing: SealPolicy,
    /// PEM certificates to trust instead of the platform's verification (pinning the
    /// backend's CA or its self-signed certificate); needs an `https://` backend URL.
    /// `None`: the platform verifies the certificate ([`crate::upload::tls`]).
    pub tls_roots_pem: Option<String>,
    /// Added to the system clock: simulates a phone whose clock is wrong (the simulator
    /// and tests). 0 in apps; the client corrects a real phone's skew by itself from the
    /// server's `Date` headers.
    pub clock_skew_ms: i64,
}

impl ClientConfig {
    /// Builds a config, checking the pinned key id against the key.
    pub fn new(
        backend_url: &str,
        backend_key: &[u8],
        backend_key_id: &str,
        data_dir: &str,
        user_id: &str,
    ) -> Result<Self, ClientError> {
        let key: [u8; 32] = backend_key.try_into().map_err(|_| {
            ClientError::Config(format!(
                "backend key must be 32 bytes, got {}",
                backend_key.len()
            ))
        })?;
        let key = RecipientPublicKey::from_bytes(key);
        let id = KeyId::from_hex(backend_key_id).ok_or_else(|| {
            ClientError::Config("backend key id must be 16 hex characters".into())
        })?;
        if id != key.key_id() {
            return Err(ClientError::Config(format!(
                "backend key id {backend_key_id} does not match the key (expected {})",
                key.key_id()
            )));
        }
        if !(backend_url.starts_with("https://") || backend_url.starts_with("http://")) {
            return Err(ClientError::Config(
                "backend URL must start with https:// or http://".into(),
            ));
        }
        if user_id.is_empty() || user_id.len() > 256 {
            return Err(ClientError::Config("user id must be 1..=256 bytes".into()));
        }
        if data_dir.is_empty() {
            return Err(ClientError::Config("data directory must be set".into()));
        }
        Ok(ClientConfig {
            backend_url: backend_url.trim_end_matches('/').to_string(),
            backend_key: key,
            data_dir: PathBuf::from(data_dir),
            user_id: user_id.to_string(),
            upload: UploadPolicy::default(),
            outbox: OutboxConfig::default(),
            wifi_only: false,
            sealing: SealPolicy::default(),
            tls_roots_pem: None,
            key_list_root: None,
            clock_skew_ms: 0,
        })
    }
}

/// Connectivity as the app sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// Any network at all.
    pub online: bool,
    /// Wi-Fi or another unmetered network.
    pub unmetered: bool,
}

/// What one `record_*` call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordOutcome {
    /// Samples or events accepted.
    pub accepted: u64,
    /// Samples or events dropped by validation.
    pub dropped: u64,
    /// Windows or blocks completed.
    pub windows: u64,
    /// Feature records produced.
    pub feature_records: u64,
}

/// What one `seal` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealOutcome {
    /// Envelopes written to the outbox.
    pub envelopes: u32,
    /// Records sealed.
    pub records: u32,
    /// Old envelopes evicted to stay within the outbox bound.
    pub evicted: u64,
}

/// Result of an upload attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadOutcome {
    /// The drain, when one ran.
    pub report: DrainReport,
    /// Envelopes still waiting.
    pub remaining: u64,
    /// Why nothing was sent, when nothing was.
    pub skipped: Option<String>,
    /// The server refused envelopes for what the device is (`device_revoked`,
    /// `device_cloned`, `unknown_device`): it must register again.
    pub device_refused: Option<String>,
}

/// Snapshot of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The registration, if any.
    pub registration: Option<Registration>,
    /// Envelopes waiting in the outbox.
    pub outbox_envelopes: u64,
    /// Their size.
    pub outbox_bytes: u64,
    /// Envelopes evicted since the outbox was created.
    pub evicted_total: u64,
    /// Envelopes the server refused for good.
    pub rejected_total: u64,
    /// Envelopes the server acknowledged.
    pub acknowledged_total: u64,
    /// Feature records and face images not sealed yet.
    pub pending_records: u64,
    /// Why the last background seal failed (the records stay pending and are sealed
    /// again); `None` after a seal that succeeded.
    pub seal_error: Option<String>,
    /// Last successful upload (Unix ms).
    pub last_upload_unix_ms: Option<u64>,
    /// Id of the backend key new envelopes are sealed to (hex).
    pub backend_key_id: String,
    /// Serial of the root-signed key list in use (0: the pinned key alone).
    pub key_list_serial: u64,
    /// Current network state.
    pub network: Network,
}

/// The client.
pub struct Client {
    cfg: ClientConfig,
    /// Capture, the outbox, the device key, the server's clock and the backend keys:
    /// what sealing needs, shared with the SDK's sealer thread.
    shared: Arc<Sealing>,
    uploader: Uploader,
    http: reqwest::Client,
    registration: Mutex<Option<Registration>>,
    /// Held for a whole authentication: one request at a time, so that their
    /// increasing times also arrive in order (the server refuses an older time).
    auth_in_flight: tokio::sync::Mutex<u64>,
}

fn ns_to_ms(ns: i64) -> u64 {
    (ns.max(0) / 1_000_000) as u64
}

impl Client {
    /// Opens (or creates) the client's state in `cfg.data_dir`. `signer` is the device
    /// key; `None` uses the built-in file-backed Ed25519 key.
    pub fn new(
        cfg: ClientConfig,
        signer: Option<Arc<dyn DeviceSigner>>,
    ) -> Result<Self, ClientError> {
        std::fs::create_dir_all(&cfg.data_dir)
            .map_err(|e| ClientError::Storage(format!("{}: {e}", cfg.data_dir.display())))?;
        let signer: Arc<dyn DeviceSigner> = match signer {
            Some(s) => s,
            None => Arc::new(FileKeyStore::open_or_create(&cfg.data_dir)?),
        };
        let outbox = Outbox::open(&cfg.data_dir, cfg.outbox)?;
        let roots = cfg.tls_roots_pem.as_deref();
        if roots.is_some() && !cfg.backend_url.starts_with("https://") {
            return Err(ClientError::Config(
                "pinned TLS roots need an https:// backend URL".into(),
            ));
        }
        let mut uploader = Uploader::with_roots(&cfg.backend_url, cfg.upload, roots)
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let clock = Arc::new(ServerClock::open(&cfg.data_dir, cfg.clock_skew_ms));
        uploader.set_clock(clock.clone());
        let http = crate::upload::http_client(cfg.upload.request_timeout, roots, &cfg.backend_url)
            .map_err(ClientError::Config)?;
        let registration = Registration::load(&cfg.data_dir)?;
        let backend_keys =
            backend_keys::BackendKeys::open(&cfg.data_dir, cfg.backend_key, cfg.key_list_root);
        let own_id = signer.public_key().device_id().to_hex();
        if registration.as_ref().is_some_and(|r| r.device_id != own_id) {
            tracing::warn!(
                "stored registration belongs to another device key; registration required"
            );
        }
        let registration = registration.filter(|r| r.device_id == own_id);
        let capture = Capture {
            gait: GaitExtractor::new(GaitConfig::default())?,
            free_text: FreeTextExtractor::new(FREE_TEXT_BLOCK_KEYS)?,
            pending: Vec::new(),
            pending_faces: Vec::new(),
            oldest: None,
            network: Network {
                online: true,
                unmetered: true,
            },
        };
        let shared = Arc::new(Sealing::new(
            outbox,
            signer,
            clock,
            backend_keys,
            cfg.sealing,
            capture,
        ));
        if cfg.sealing.background {
            shared.register();
        }
        Ok(Client {
            registration: Mutex::new(registration),
            auth_in_flight: tokio::sync::Mutex::new(0),
            cfg,
            shared,
            uploader,
            http,
        })
    }

    fn capture(&self) -> Result<MutexGuard<'_, sealing::Capture>, ClientError> {
        self.shared.capture()
    }

    fn require_registration(&self) -> Result<(), ClientError> {
        match self
            .registration
            .lock()
            .map_err(|_| ClientError::Storage("poisoned".into()))?
            .is_some()
        {
            true => Ok(()),
            false => Err(ClientError::NotRegistered),
        }
    }

    /// The device id of the signing key (hex).
    pub fn device_id(&self) -> String {
        self.shared.signer.public_key().device_id().to_hex()
    }

    /// Registers the device key with a one-time enrolment token.
    pub async fn register_device(&self, token: &str) -> Result<Registration, ClientError> {
        let reg = registration::register(
            &self.http,
            &self.cfg,
            &self.shared.clock,
            self.shared.signer.as_ref(),
            token,
        )
        .await?;
        reg.store(&self.cfg.data_dir)?;
        *self
            .registration
            .lock()
            .map_err(|_| ClientError::Storage("poisoned".into()))? = Some(reg.clone());
        tracing::info!(device = %reg.device_id, "device registered");
        Ok(reg)
    }

    /// Feeds motion samples (Unix-epoch ns timestamps) to the gait extractor.
    pub fn record_motion(&self, samples: &[MotionSample]) -> Result<RecordOutcome, ClientError> {
        if samples.iter().any(|s| s.t_ns < 0) {
            return Err(DspError::Config(
                "timestamps must be Unix-epoch nanoseconds (non-negative)",
            )
            .into());
        }
        self.shared.make_room()?;
        let mut c = self.capture()?;
        let before = c.gait.report().clone();
        let mut produced = Vec::new();
        c.gait.push(samples, |w| {
            if w.walking {
                produced.push(w.to_record(ns_to_ms(w.start_ns)));
            }
        });
        let after = c.gait.report().clone();
        let n = produced.len() as u64;
        c.pending
            .extend(produced.into_iter().filter(|r| r.validate().is_ok()));
        c.appended();
        drop(c);
        self.shared.after_append()?;
        Ok(RecordOutcome {
            accepted: after.accepted - before.accepted,
            dropped: after.dropped() - before.dropped(),
            windows: after.windows - before.windows,
            feature_records: n,
        })
    }

    /// Feeds free-text key events.
    pub fn record_keys(&self, events: &[KeyEvent]) -> Result<RecordOutcome, ClientError> {
        self.shared.make_room()?;
        let mut c = self.capture()?;
        let before = c.free_text.report().clone();
        let mut produced = Vec::new();
        c.free_text.push(events, |f, start, end| {
            produced.push(free_text_record(
                f,
                ns_to_ms(start),
                end.saturating_sub(start),
            ));
        });
        let after = c.free_text.report().clone();
        let n = produced.len() as u64;
        c.pending
            .extend(produced.into_iter().filter(|r| r.validate().is_ok()));
        c.appended();
        drop(c);
        self.shared.after_append()?;
        Ok(RecordOutcome {
            accepted: after.accepted - before.accepted,
            dropped: (after.dropped_invalid + after.dropped_out_of_order)
                - (before.dropped_invalid + before.dropped_out_of_order),
            windows: after.blocks - before.blocks,
            feature_records: n,
        })
    }

    /// Records one entry of a fixed phrase (password/PIN). The phrase is hashed with the
    /// user id as salt and forgotten; only its hash and the features are kept: the
    /// timings, and the per-key touch pressure and area when every key reports both
    /// (fixed-text schema version 2, [`fixed_text_record`]; touch on only some keys is
    /// left out and the record is version 1).
    pub fn record_phrase_entry(
        &self,
        phrase: &str,
        events: &[KeyEvent],
    ) -> Result<RecordOutcome, ClientError> {
        let keys = phrase.chars().count();
        let id = phrase_id(self.cfg.user_id.as_bytes(), phrase);
        let start = events.first().map(|e| ns_to_ms(e.down_ns)).unwrap_or(0);
        let record = fixed_text_record(id, events, keys, start)?;
        record
            .validate()
            .map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        self.shared.make_room()?;
        {
            let mut c = self.capture()?;
            c.pending.push(record);
            c.appended();
        }
        self.shared.after_append()?;
        Ok(RecordOutcome {
            accepted: events.len() as u64,
            dropped: 0,
            windows: 1,
            feature_records: 1,
        })
    }

    /// Records one camera frame for the face factor: it is normalised here (orientation,
    /// at most 640 pixels a side, a JPEG without metadata; see [`face::normalise`]) and
    /// waits, in memory only, to be sealed; a full envelope's worth of frames is sealed
    /// at once. The phone runs no face model: the face factor finds the face and the
    /// gateway stores only its embedding.
    pub fn record_face(&self, frame: &face::CameraFrame) -> Result<RecordOutcome, ClientError> {
        self.shared.make_room()?;
        let image = face::normalise(frame, self.shared.clock.now_ms())
            .map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        {
            let mut c = self.capture()?;
            c.pending_faces.push(image);
            c.appended();
        }
        self.shared.after_append()?;
        Ok(RecordOutcome {
            accepted: 1,
            dropped: 0,
            windows: 0,
            feature_records: 0,
        })
    }

    /// Seals all pending records into envelopes in the outbox, on the caller's thread
    /// (apps call it from the SDK's executor, never the main thread; `record_*` seals by
    /// itself per [`ClientConfig::sealing`]).
    pub fn seal(&self) -> Result<SealOutcome, ClientError> {
        self.shared.seal()
    }

    /// Uploads what the outbox holds, if the network policy allows.
    pub async fn upload_pending(&self) -> Result<UploadOutcome, ClientError> {
        self.upload_pending_within(None).await
    }

    /// [`Client::upload_pending`] that ends within `budget` (when given): no request
    /// starts after it and one in flight is abandoned, its envelopes kept for the next
    /// upload (`report.out_of_time`). For the platform's background tasks, which are
    /// killed when their time is up.
    pub async fn upload_pending_within(
        &self,
        budget: Option<std::time::Duration>,
    ) -> Result<UploadOutcome, ClientError> {
        let deadline = budget.map(|b| tokio::time::Instant::now() + b);
        self.require_registration()?;
        let network = self.capture()?.network;
        let skipped = if !network.online {
            Some("offline")
        } else if self.cfg.wifi_only && !network.unmetered {
            Some("metered network and wifi_only is set")
        } else {
            None
        };
        if let Some(why) = skipped {
            let remaining = self.shared.outbox.stats()?.envelopes;
            return Ok(UploadOutcome {
                report: DrainReport::default(),
                remaining,
                skipped: Some(why.into()),
                device_refused: None,
            });
        }
        if self.shared.backend_keys.refresh_due()
            && budget.is_none_or(|b| b >= std::time::Duration::from_secs(5))
        {
            // Within the budget too (a quarter of it): the envelopes matter more.
            let refresh = self.refresh_backend_keys();
            let result = match budget {
                Some(b) => tokio::time::timeout(b / 4, refresh)
                    .await
                    .unwrap_or_else(|_| Err(ClientError::Network("timed out".into()))),
                None => refresh.await,
            };
            if let Err(e) = result {
                // The held keys stay in use; the next upload tries again.
                tracing::warn!(error = %e, "backend key list not refreshed");
            }
        }
        let report = self
            .uploader
            .drain_until(&self.shared.outbox, deadline)
            .await;
        let remaining = self.shared.outbox.stats()?.envelopes;
        // The server refused envelopes for what the device is, not for what they hold:
        // nothing this device sends will be stored until it registers again.
        let device_refused = report
            .rejected_reasons
            .keys()
            .find(|code| DEVICE_REFUSALS.contains(&code.as_str()))
            .cloned();
        if let Some(code) = &device_refused {
            tracing::warn!(code = %code, "uploads refused for this device");
        }
        tracing::info!(
            sent = report.sent,
            stored = report.stored,
            duplicate = report.duplicate,
            rejected = report.rejected,
            remaining,
            "upload finished"
        );
        Ok(UploadOutcome {
            report,
            remaining,
            skipped: None,
            device_refused,
        })
    }

    /// Asks the backend whether the enrolled person is still the one using the phone.
    ///
    /// With `include_fresh`, pending records are sealed first and the waiting
    /// envelopes (at most [`MAX_AUTH_ENVELOPES`], after an upload when more are
    /// waiting) travel with the request, so the answer uses the newest behaviour; the
    /// server stores them like an upload and they leave the outbox.
    pub async fn authenticate(
        &self,
        include_fresh: bool,
    ) -> Result<AuthenticateResponse, ClientError> {
        self.authenticate_with_nonce(include_fresh, None).await
    }

    /// [`Client::authenticate`] carrying a nonce that the app's own server (the relying
    /// party) issued: the answer's `verdict`, a token signed by the backend, then binds
    /// the decision to that nonce, and the app passes the token to its server, which
    /// verifies it (signature with the backend's JWKS, issuer, expiry, nonce). The
    /// nonce is 16..=128 characters of `[A-Za-z0-9._~+/=-]`
    /// (`tacit_shared::api::valid_nonce`) and is signed with the request.
    pub async fn authenticate_with_nonce(
        &self,
        include_fresh: bool,
        nonce: Option<&str>,
    ) -> Result<AuthenticateResponse, ClientError> {
        if let Some(n) = nonce
            && !tacit_shared::api::valid_nonce(n)
        {
            return Err(ClientError::InvalidInput(format!(
                "nonce must be {}-{} characters of [A-Za-z0-9._~+/=-]",
                tacit_shared::api::MIN_NONCE_LEN,
                tacit_shared::api::MAX_NONCE_LEN
            )));
        }
        self.require_registration()?;
        let envelopes = if include_fresh {
            self.seal()?;
            if self.shared.outbox.stats()?.envelopes > MAX_AUTH_ENVELOPES as u64 {
                self.upload_pending().await?;
            }
            self.shared.outbox.peek_oldest(MAX_AUTH_ENVELOPES)?
        } else {
            Vec::new()
        };
        // Strictly increasing request times, one request at a time: the server refuses
        // a time that is not later than the last one it saw from this device.
        let mut last = self.auth_in_flight.lock().await;
        let mut tries = 0;
        let r = loop {
            let request_ms = self.shared.clock.now_ms().max(*last + 1);
            *last = request_ms;
            let offset = self.shared.clock.offset_ms();
            match authentication::authenticate(
                &self.http,
                &self.cfg,
                &self.shared.clock,
                self.shared.signer.as_ref(),
                &self.shared.outbox,
                request_ms,
                envelopes.clone(),
                nonce,
            )
            .await
            {
                // Refused for the phone's clock, and the answer taught the right time:
                // once more, stamped with it.
                Err(ClientError::Refused { code, .. })
                    if tries == 0
                        && code == "stale_request"
                        && self.shared.clock.offset_ms() != offset =>
                {
                    tries += 1;
                    *last = 0;
                }
                other => break other?,
            }
        };
        drop(last);
        tracing::info!(decision = ?r.decision, degraded = r.degraded, "authenticated");
        Ok(r)
    }

    /// Fetches the backend's root-signed key list (`GET /v1/keys`), verifies it against
    /// the pinned root (`ClientConfig::key_list_root`) and keeps it; new envelopes are
    /// sealed to its current key from then on. Returns the list's serial (0 without a
    /// pinned root or a published list). Uploads call it by themselves every few hours;
    /// a refused list (bad signature, rollback) is an error and the held keys stay.
    pub async fn refresh_backend_keys(&self) -> Result<u64, ClientError> {
        self.shared
            .backend_keys
            .refresh(&self.http, &self.cfg.backend_url, &self.shared.clock)
            .await
    }

    /// Updates the network state used by the upload policy.
    pub fn set_network(&self, network: Network) -> Result<(), ClientError> {
        self.capture()?.network = network;
        Ok(())
    }

    /// A snapshot of the client.
    pub fn status(&self) -> Result<Status, ClientError> {
        let s = self.shared.outbox.stats()?;
        let c = self.capture()?;
        Ok(Status {
            registration: self
                .registration
                .lock()
                .map_err(|_| ClientError::Storage("poisoned".into()))?
                .clone(),
            outbox_envelopes: s.envelopes,
            outbox_bytes: s.bytes,
            evicted_total: s.evicted_total,
            rejected_total: s.rejected_total,
            acknowledged_total: s.acknowledged_total,
            pending_records: self.shared.pending(&c),
            seal_error: self.shared.last_error(),
            last_upload_unix_ms: s.last_upload_ms,
            backend_key_id: self
                .shared
                .backend_keys
                .key_for(self.shared.clock.now_ms())
                .key_id()
                .to_hex(),
            key_list_serial: self.shared.backend_keys.serial(),
            network: c.network,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use tacit_shared::hpke::RecipientKeyPair;

    fn key() -> RecipientKeyPair {
        RecipientKeyPair::derive(&[7u8; 32])
    }

    /// A config for an unreachable backend (nothing here goes over the network).
    fn offline_config(d: &str) -> ClientConfig {
        let k = key();
        ClientConfig::new(
            "http://127.0.0.1:9",
            k.public_key().as_bytes(),
            &k.key_id().to_hex(),
            d,
            "alice",
        )
        .unwrap()
    }

    fn dir(name: &str) -> String {
        let d = std::env::temp_dir().join(format!("tacit-client-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d.to_string_lossy().into_owned()
    }

    #[test]
    fn config_rejects_bad_values_with_clear_errors() {
        let k = key();
        let (pk, id) = (k.public_key().as_bytes().to_vec(), k.key_id().to_hex());
        let ok = ClientConfig::new("https://a.example", &pk, &id, "/tmp/x", "alice");
        assert!(ok.is_ok());
        let cases = [
            ClientConfig::new("https://a.example", &pk[..31], &id, "/tmp/x", "alice"),
            ClientConfig::new(
                "https://a.example",
                &pk,
                "00000000000000zz",
                "/tmp/x",
                "alice",
            ),
            ClientConfig::new(
                "https://a.example",
                &pk,
                "0000000000000000",
                "/tmp/x",
                "alice",
            ),
            ClientConfig::new("ftp://a.example", &pk, &id, "/tmp/x", "alice"),
            ClientConfig::new("https://a.example", &pk, &id, "", "alice"),
            ClientConfig::new("https://a.example", &pk, &id, "/tmp/x", ""),
        ];
        for (i, c) in cases.into_iter().enumerate() {
            assert!(matches!(c, Err(ClientError::Config(_))), "case {i}: {c:?}");
        }
    }

    #[test]
    fn offline_client_records_seals_and_refuses_unregistered_uploads() {
        let d = dir("offline");
        let cfg = offline_config(&d);
        let client = Client::new(cfg, None).unwrap();
        // A built-in key was created with owner-only permissions.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(std::path::Path::new(&d).join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0);
        }
        let bad = [MotionSample {
            t_ns: -1,
            accel: [0.0, 0.0, 9.8],
            gyro: None,
        }];
        assert!(matches!(
            client.record_motion(&bad),
            Err(ClientError::Input(_))
        ));
        let key_events = phrase_events();
        assert!(matches!(
            client.record_phrase_entry("abc", &key_events),
            Err(ClientError::Input(_))
        ));
        assert_eq!(
            client
                .record_phrase_entry("abcd", &key_events)
                .unwrap()
                .feature_records,
            1
        );
        // With touch on every key the record is version 2 (timings, pressures, areas);
        // touch on some keys only is dropped (version 1).
        let touched: Vec<KeyEvent> = key_events
            .iter()
            .enumerate()
            .map(|(i, k)| KeyEvent {
                pressure: Some(0.3 + 0.1 * i as f64),
                area: Some(0.05),
                ..*k
            })
            .collect();
        client.record_phrase_entry("abcd", &touched).unwrap();
        let mut partial = touched.clone();
        partial[2].area = None;
        client.record_phrase_entry("abcd", &partial).unwrap();
        {
            let c = client.capture().unwrap();
            let shape: Vec<(u16, usize)> = c
                .pending
                .iter()
                .map(|r| (r.schema_version, r.values.len()))
                .collect();
            assert_eq!(shape, [(1, 10), (2, 18), (1, 10)]);
            assert_eq!(c.pending[1].values[..10], c.pending[0].values[..]);
            assert_eq!(c.pending[1].values[10], 0.3);
        }
        let sealed = client.seal().unwrap();
        assert_eq!((sealed.envelopes, sealed.records), (1, 3));
        assert_eq!(client.status().unwrap().outbox_envelopes, 1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert!(matches!(
            rt.block_on(client.upload_pending()),
            Err(ClientError::NotRegistered)
        ));
        assert!(matches!(
            rt.block_on(client.authenticate(true)),
            Err(ClientError::NotRegistered)
        ));
        // The same data directory reopens with the same device and the envelope still queued.
        let id = client.device_id();
        drop(client);
        let cfg = offline_config(&d);
        let again = Client::new(cfg, None).unwrap();
        assert_eq!(again.device_id(), id);
        assert_eq!(again.status().unwrap().outbox_envelopes, 1);
        std::fs::remove_dir_all(&d).ok();
    }

    /// A device key that can be switched off (a key store that is locked) or made
    /// slow (one that asks the user).
    struct Switchable {
        inner: tacit_shared::identity::Ed25519Signer,
        fail: std::sync::atomic::AtomicBool,
        delay_ms: std::sync::atomic::AtomicU64,
        signs: std::sync::atomic::AtomicU64,
    }

    impl DeviceSigner for Switchable {
        fn public_key(&self) -> tacit_shared::DevicePublicKey {
            self.inner.public_key()
        }
        fn sign(&self, m: &[u8]) -> Result<Vec<u8>, tacit_shared::identity::IdentityError> {
            use std::sync::atomic::Ordering::Relaxed;
            self.signs.fetch_add(1, Relaxed);
            std::thread::sleep(std::time::Duration::from_millis(
                self.delay_ms.load(Relaxed),
            ));
            if self.fail.load(Relaxed) {
                return Err(tacit_shared::identity::IdentityError::Signer(
                    "locked".into(),
                ));
            }
            self.inner.sign(m)
        }
    }

    fn phrase_events() -> Vec<KeyEvent> {
        (0..4)
            .map(|i| KeyEvent {
                class: crate::dsp::KeyClass::Letter,
                down_ns: 1_700_000_000_000_000_000 + i * 200_000_000,
                up_ns: 1_700_000_000_000_000_000 + i * 200_000_000 + 80_000_000,
                pressure: None,
                area: None,
            })
            .collect()
    }

    fn switchable_client(
        name: &str,
        after: std::time::Duration,
    ) -> (Client, Arc<Switchable>, String) {
        let d = dir(name);
        let mut cfg = offline_config(&d);
        cfg.sealing.after = after;
        let (inner, _) =
            tacit_shared::identity::Ed25519Signer::generate(&SystemRandom::new()).unwrap();
        let signer = Arc::new(Switchable {
            inner,
            fail: false.into(),
            delay_ms: 0.into(),
            signs: 0.into(),
        });
        let client = Client::new(cfg, Some(signer.clone())).unwrap();
        (client, signer, d)
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !done() {
            assert!(
                std::time::Instant::now() < until,
                "timed out waiting for {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn records_are_sealed_off_the_callers_thread() {
        use std::sync::atomic::Ordering::Relaxed;
        let (client, signer, d) =
            switchable_client("background", std::time::Duration::from_secs(3600));
        let events = phrase_events();
        // Each signature takes 200 ms: a caller that sealed would wait for it.
        signer.delay_ms.store(200, Relaxed);
        let started = std::time::Instant::now();
        for _ in 0..MAX_PENDING_RECORDS + 10 {
            client.record_phrase_entry("abcd", &events).unwrap();
        }
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_millis(200),
            "record_* waited for sealing: {took:?}"
        );
        wait_for("the background seal", || {
            let s = client.status().unwrap();
            s.outbox_envelopes == 4 && s.pending_records == 10
        });
        assert_eq!(client.status().unwrap().seal_error, None);
        signer.delay_ms.store(0, Relaxed);

        // A key store that fails: the records stay pending, the error shows in the
        // status, and once the sealer is far behind the caller gets the error itself.
        signer.fail.store(true, Relaxed);
        for _ in 0..MAX_PENDING_RECORDS {
            client.record_phrase_entry("abcd", &events).unwrap();
        }
        wait_for("the failed seal", || {
            client.status().unwrap().seal_error.is_some()
        });
        let s = client.status().unwrap();
        assert_eq!(
            (s.outbox_envelopes, s.pending_records),
            (4, MAX_PENDING_RECORDS as u64 + 10)
        );
        assert!(s.seal_error.unwrap().contains("locked"));
        let mut refused = None;
        for i in 0..HARD_PENDING_RECORDS {
            if let Err(e) = client.record_phrase_entry("abcd", &events) {
                refused = Some((i, e));
                break;
            }
        }
        let (_, e) = refused.expect("the caller never saw the failing key store");
        // The key store's failure (or, if the sealer thread was trying it just then, a
        // refusal to wait for it) reaches the caller, whose input is not taken.
        assert!(
            matches!(&e, ClientError::KeyStore(m) if m.contains("locked"))
                || matches!(&e, ClientError::Seal(m) if m.contains("input refused")),
            "{e:?}"
        );
        // Memory stays bounded and nothing accepted was lost: exactly the hard bound
        // is pending.
        let pending = client.status().unwrap().pending_records;
        assert_eq!(pending, HARD_PENDING_RECORDS as u64);
        assert!(client.record_phrase_entry("abcd", &events).is_err());
        signer.fail.store(false, Relaxed);
        let sealed = client.seal().unwrap();
        assert_eq!(sealed.records as u64, pending);
        let s = client.status().unwrap();
        assert_eq!((s.pending_records, s.seal_error), (0, None));
        drop(client);
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn records_that_waited_long_enough_are_sealed() {
        let (client, signer, d) =
            switchable_client("seal-after", std::time::Duration::from_millis(300));
        client
            .record_phrase_entry("abcd", &phrase_events())
            .unwrap();
        assert_eq!(client.status().unwrap().pending_records, 1);
        // The sealer appends the envelope, then empties the pending buffer: wait for
        // both (a status read between the two steps sees the envelope and the record).
        wait_for("the timed seal", || {
            let s = client.status().unwrap();
            s.outbox_envelopes == 1 && s.pending_records == 0
        });

        // A key store that fails is not asked every tick: the background seals back off
        // (1 s, then 2 s, ...), where ticks alone would have asked about 5 times.
        use std::sync::atomic::Ordering::Relaxed;
        signer.fail.store(true, Relaxed);
        let before = signer.signs.load(Relaxed);
        client
            .record_phrase_entry("abcd", &phrase_events())
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2600));
        let asked = signer.signs.load(Relaxed) - before;
        assert!(
            (1..=3).contains(&asked),
            "key store asked {asked} times in 2.6 s"
        );
        assert!(client.status().unwrap().seal_error.is_some());
        drop(client);
        std::fs::remove_dir_all(&d).ok();
    }
}
