//! Records and enums exported to Swift/Kotlin/Python, with their conversions.

use crate::client::{RecordOutcome, SealOutcome, Status, UploadOutcome};
use crate::dsp;

/// Client configuration.
#[derive(Debug, Clone, uniffi::Record)]
pub struct TacitConfig {
    /// Backend base URL, e.g. `https://auth.example.com`.
    pub backend_url: String,
    /// The backend's X25519 HPKE public key (32 bytes), pinned in the app.
    pub backend_public_key: Vec<u8>,
    /// Its key id (16 hex characters); must match the key.
    pub backend_key_id: String,
    /// A private directory for the outbox, the device key and the registration.
    /// Exclude it from device backups (iOS: `isExcludedFromBackup`; Android:
    /// `android:fullBackupContent` rules): a restored copy would reuse sequence numbers,
    /// which the backend takes for a cloned phone and revokes the device.
    pub data_dir: String,
    /// The app's identifier for the person.
    pub user_id: String,
    /// Upload behaviour (see `default_upload_settings()`).
    pub upload: UploadSettings,
    /// PEM certificates to trust instead of the platform's verification: pins the
    /// backend's CA (or its self-signed certificate), so that a server with any other
    /// certificate is refused. Needs an `https://` backend URL. Default (none): the
    /// certificate is verified as the platform verifies it — its trust store with the
    /// CAs an enterprise or the user installed where the platform honours them (iOS
    /// Security framework, Android `X509TrustManager` after
    /// `dev.tacit.sdk.android.PlatformTrust.initialize(context)`, the system store on
    /// Linux); no CA list is bundled.
    #[uniffi(default = None)]
    pub tls_roots_pem: Option<String>,
    /// The backend's root public key (Ed25519, 32 bytes, printed by `tacit-backend keys
    /// root-keygen`). When set, the client learns rotated backend keys from the
    /// root-signed key list (`GET /v1/keys`, checked before uploads every few hours) and
    /// refuses lists with another signature or an older serial. Default: none, the
    /// pinned `backend_public_key` only.
    #[uniffi(default = None)]
    pub key_list_root: Option<Vec<u8>>,
}

/// Upload behaviour.
#[derive(Debug, Clone, uniffi::Record)]
pub struct UploadSettings {
    /// Envelopes per request (1..=256).
    pub batch_size: u32,
    /// Outbox bound in bytes; the oldest envelopes are dropped (and counted) beyond it.
    pub max_outbox_bytes: u64,
    /// Upload only on unmetered networks.
    pub wifi_only: bool,
    /// Attempts per request before giving up until the next `upload_pending`.
    pub max_attempts: u32,
    /// Timeout of one request in milliseconds.
    pub request_timeout_ms: u64,
    /// Records are sealed on the SDK's own thread when an envelope's worth (1,024) is
    /// pending, or when the oldest has waited this long (milliseconds, at least 1000).
    #[uniffi(default = 60000)]
    pub seal_after_ms: u64,
}

/// A 3-D vector.
#[derive(Debug, Clone, Copy, uniffi::Record)]
pub struct Vector3 {
    /// x component.
    pub x: f64,
    /// y component.
    pub y: f64,
    /// z component.
    pub z: f64,
}

/// One motion sensor reading.
#[derive(Debug, Clone, Copy, uniffi::Record)]
pub struct MotionReading {
    /// Unix-epoch timestamp in nanoseconds.
    pub timestamp_ns: i64,
    /// Acceleration in m/s², gravity included, device frame.
    pub accel: Vector3,
    /// Rotation rate in rad/s, if the device has a gyroscope.
    pub gyro: Option<Vector3>,
}

impl From<MotionReading> for dsp::MotionSample {
    fn from(r: MotionReading) -> Self {
        dsp::MotionSample {
            t_ns: r.timestamp_ns,
            accel: [r.accel.x, r.accel.y, r.accel.z],
            gyro: r.gyro.map(|g| [g.x, g.y, g.z]),
        }
    }
}

/// The class of a key. The character itself is never passed to Tacit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum KeyClass {
    /// A letter.
    Letter,
    /// A digit.
    Digit,
    /// Space.
    Space,
    /// Punctuation or a symbol.
    Punctuation,
    /// Backspace / delete.
    Backspace,
    /// Return / enter.
    Enter,
    /// Shift, control and similar.
    Modifier,
    /// Anything else.
    Other,
}

/// One key press.
#[derive(Debug, Clone, Copy, uniffi::Record)]
pub struct KeyPress {
    /// Class of the key.
    pub key_class: KeyClass,
    /// Key-down time, Unix-epoch ns.
    pub down_ns: i64,
    /// Key-up time, Unix-epoch ns.
    pub up_ns: i64,
    /// Touch pressure, if the platform reports it, normalised (Android
    /// `MotionEvent.getPressure()`; iOS `force / maximumPossibleForce`).
    pub pressure: Option<f64>,
    /// Touch area, if the platform reports it, normalised (Android
    /// `MotionEvent.getSize()`). A phrase entry whose every key has both a pressure and
    /// an area is recorded with them (fixed-text schema version 2); otherwise its touch
    /// is left out (version 1).
    pub area: Option<f64>,
}

impl From<KeyPress> for dsp::KeyEvent {
    fn from(k: KeyPress) -> Self {
        use dsp::KeyClass as K;
        dsp::KeyEvent {
            class: match k.key_class {
                KeyClass::Letter => K::Letter,
                KeyClass::Digit => K::Digit,
                KeyClass::Space => K::Space,
                KeyClass::Punctuation => K::Punctuation,
                KeyClass::Backspace => K::Backspace,
                KeyClass::Enter => K::Enter,
                KeyClass::Modifier => K::Modifier,
                KeyClass::Other => K::Other,
            },
            down_ns: k.down_ns,
            up_ns: k.up_ns,
            pressure: k.pressure,
            area: k.area,
        }
    }
}

/// What a `record_*` call did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct RecordReport {
    /// Readings or key presses used.
    pub accepted: u64,
    /// Readings or key presses dropped by validation (NaN, duplicates, ...).
    pub dropped: u64,
    /// Windows (motion) or blocks/entries (keys) completed.
    pub windows: u64,
    /// Feature records produced.
    pub feature_records: u64,
}

impl From<RecordOutcome> for RecordReport {
    fn from(o: RecordOutcome) -> Self {
        RecordReport {
            accepted: o.accepted,
            dropped: o.dropped,
            windows: o.windows,
            feature_records: o.feature_records,
        }
    }
}

/// What `seal` did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SealReport {
    /// Envelopes written to the outbox.
    pub envelopes: u32,
    /// Feature records sealed.
    pub records: u32,
    /// Old envelopes dropped to respect the outbox bound.
    pub evicted: u64,
}

impl From<SealOutcome> for SealReport {
    fn from(o: SealOutcome) -> Self {
        SealReport {
            envelopes: o.envelopes,
            records: o.records,
            evicted: o.evicted,
        }
    }
}

/// What `upload_pending` did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct UploadSummary {
    /// Envelopes sent (including retries of a batch).
    pub sent: u64,
    /// Stored by the server now.
    pub stored: u64,
    /// Already stored earlier (acknowledged again).
    pub duplicate: u64,
    /// Refused for good by the server.
    pub rejected: u64,
    /// Not delivered this time (still in the outbox).
    pub failed: u64,
    /// Envelopes still waiting.
    pub remaining: u64,
    /// Why nothing was sent, if nothing was (offline, metered network).
    pub skipped_reason: Option<String>,
    /// The upload stopped because its time budget (`upload_pending_within`) ran out;
    /// `remaining` envelopes wait for the next one.
    pub out_of_time: bool,
    /// Why the upload stopped early, when it did for an error (network, server,
    /// outbox): `failed` envelopes wait for the next upload; retry later with backoff.
    pub error: Option<String>,
    /// When the backend throttled the upload: how long it asked to wait (ms) before
    /// the next one.
    pub retry_after_ms: Option<u64>,
}

impl From<UploadOutcome> for UploadSummary {
    fn from(o: UploadOutcome) -> Self {
        UploadSummary {
            sent: o.report.sent,
            stored: o.report.stored,
            duplicate: o.report.duplicate,
            rejected: o.report.rejected,
            failed: o.report.failed,
            remaining: o.remaining,
            skipped_reason: o.skipped,
            out_of_time: o.report.out_of_time,
            error: o.report.error,
            retry_after_ms: o
                .report
                .retry_after
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

/// Connectivity.
#[derive(Debug, Clone, Copy, uniffi::Record)]
pub struct NetworkState {
    /// Any network.
    pub online: bool,
    /// Wi-Fi or another unmetered network.
    pub unmetered: bool,
}

/// A registered device.
#[derive(Debug, Clone, uniffi::Record)]
pub struct DeviceInfo {
    /// Device id (hex).
    pub device_id: String,
    /// The user it belongs to.
    pub user_id: String,
}

/// Counters and state.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ClientStatus {
    /// Whether the device is registered.
    pub registered: bool,
    /// The registered device id.
    pub device_id: Option<String>,
    /// Envelopes waiting in the outbox.
    pub outbox_envelopes: u64,
    /// Bytes waiting in the outbox.
    pub outbox_bytes: u64,
    /// Envelopes evicted (outbox full) since it was created.
    pub evicted_total: u64,
    /// Envelopes the server refused for good.
    pub rejected_total: u64,
    /// Envelopes the server acknowledged.
    pub acknowledged_total: u64,
    /// Feature records and face images not sealed yet.
    pub pending_records: u64,
    /// Why the last seal on the SDK's thread failed (the records stay pending and are
    /// sealed again later); none after one that succeeded.
    pub seal_error: Option<String>,
    /// Last successful upload, Unix ms.
    pub last_upload_unix_ms: Option<u64>,
    /// Current network state.
    pub network: NetworkState,
    /// Id of the backend key new envelopes are sealed to (hex).
    pub backend_key_id: String,
    /// Serial of the root-signed key list in use (0: the pinned key alone).
    pub key_list_serial: u64,
}

impl From<Status> for ClientStatus {
    fn from(s: Status) -> Self {
        ClientStatus {
            registered: s.registration.is_some(),
            device_id: s.registration.map(|r| r.device_id),
            outbox_envelopes: s.outbox_envelopes,
            outbox_bytes: s.outbox_bytes,
            evicted_total: s.evicted_total,
            rejected_total: s.rejected_total,
            acknowledged_total: s.acknowledged_total,
            pending_records: s.pending_records,
            seal_error: s.seal_error,
            last_upload_unix_ms: s.last_upload_unix_ms,
            network: NetworkState {
                online: s.network.online,
                unmetered: s.network.unmetered,
            },
            backend_key_id: s.backend_key_id,
            key_list_serial: s.key_list_serial,
        }
    }
}

/// Algorithm of a foreign device key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum KeyAlgorithm {
    /// Ed25519.
    Ed25519,
    /// ECDSA P-256 with SHA-256 (Secure Enclave, Android Keystore).
    EcdsaP256Sha256,
}

/// The decision of an authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum AuthDecision {
    /// The behaviour matches the enrolled person at the backend's target false-accept
    /// rate: no further check needed.
    Accept,
    /// Not enough evidence either way: ask for an explicit check (password, biometric)
    /// and report its success to your backend (which unlocks the user).
    StepUp,
    /// The behaviour says someone else is using the phone.
    Reject,
}

/// What happened to one factor in an authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum FactorState {
    /// Scored: part of the decision.
    Scored,
    /// The user is not enrolled for this factor yet.
    NoTemplate,
    /// No recent windows of this factor (walk or type a little, then ask again).
    NoRecentData,
    /// The factor's service could not answer: the decision used the others.
    Unavailable,
    /// The factor's service refused the data.
    Refused,
}

/// One factor's part of an authentication.
#[derive(Debug, Clone, uniffi::Record)]
pub struct FactorScore {
    /// The factor's name (`gait`, `keystroke-fixed`, ...).
    pub factor: String,
    /// What happened.
    pub state: FactorState,
    /// Mean one-window log-likelihood ratio of the windows scored (for inspection).
    pub mean_llr: Option<f64>,
    /// Calibrated log-likelihood ratio of the windows judged together as one attempt:
    /// what the decision used.
    pub llr: Option<f64>,
    /// Windows scored.
    pub windows: u32,
    /// Age of the newest window scored, in seconds.
    pub age_s: Option<f64>,
    /// Weight of this factor's evidence in the decision.
    pub weight: f64,
    /// Why it did not score, when it did not.
    pub detail: Option<String>,
}

/// The backend's answer to "is this still the enrolled person?".
#[derive(Debug, Clone, uniffi::Record)]
pub struct AuthResult {
    /// The decision.
    pub decision: AuthDecision,
    /// `1 − estimated_far`, 0..=1.
    pub confidence: f64,
    /// The estimated false-accept rate at this attempt's score: the share of impostor
    /// attempts on the backend's held-out calibration people that score as high.
    /// `accept` means it is at most the backend's configured target.
    pub estimated_far: f64,
    /// The smallest false-accept rate the backend's calibration data support for the
    /// factors that answered (0 when a factor gave no calibration data).
    pub far_floor: f64,
    /// The fused log-likelihood ratio behind it.
    pub llr: f64,
    /// The decision in words (no biometric content).
    pub reason: String,
    /// Whether a factor could not answer (the decision used fewer factors).
    pub degraded: bool,
    /// The user's consecutive rejects, this one included.
    pub consecutive_rejects: u32,
    /// Per factor.
    pub factors: Vec<FactorScore>,
    /// Attached envelopes the server stored (or had stored before).
    pub envelopes_accepted: u32,
    /// Attached envelopes the server refused for good.
    pub envelopes_rejected: u32,
    /// The decision signed by the backend for your own server (the relying party): a
    /// compact JWS (EdDSA) with the user (`sub`), device, decision, confidence, LLR,
    /// factors used, your nonce, issue time and a short expiry (`exp`). Pass it on as
    /// it is; your server verifies it with the backend's JWKS
    /// (`/.well-known/jwks.json`). Trust it there, never in the app.
    pub verdict: String,
}

impl From<tacit_shared::api::AuthenticateResponse> for AuthResult {
    fn from(r: tacit_shared::api::AuthenticateResponse) -> Self {
        use tacit_shared::api::{self as api, EnvelopeStatus};
        let rejected = r
            .envelopes
            .iter()
            .filter(|e| e.status == EnvelopeStatus::Rejected)
            .count() as u32;
        AuthResult {
            decision: match r.decision {
                api::AuthDecision::Accept => AuthDecision::Accept,
                api::AuthDecision::StepUp => AuthDecision::StepUp,
                api::AuthDecision::Reject => AuthDecision::Reject,
            },
            confidence: r.confidence,
            estimated_far: r.estimated_far,
            far_floor: r.far_floor,
            llr: r.llr,
            reason: r.reason,
            degraded: r.degraded,
            consecutive_rejects: r.consecutive_rejects,
            factors: r
                .factors
                .into_iter()
                .map(|f| FactorScore {
                    factor: f.factor,
                    state: match f.status {
                        api::FactorStatus::Scored => FactorState::Scored,
                        api::FactorStatus::NoTemplate => FactorState::NoTemplate,
                        api::FactorStatus::NoRecentData => FactorState::NoRecentData,
                        api::FactorStatus::Unavailable => FactorState::Unavailable,
                        api::FactorStatus::Refused => FactorState::Refused,
                    },
                    mean_llr: f.mean_llr,
                    llr: f.llr,
                    windows: f.windows,
                    age_s: f.age_s,
                    weight: f.weight,
                    detail: f.detail,
                })
                .collect(),
            envelopes_accepted: r.envelopes.len() as u32 - rejected,
            envelopes_rejected: rejected,
            verdict: r.verdict,
        }
    }
}

/// The pixels of a camera frame for [`crate::ffi::TacitClient::record_face`].
#[derive(Clone, uniffi::Enum)]
pub enum FramePixels {
    /// An encoded JPEG (its EXIF orientation is applied; at most 16 MiB).
    Jpeg {
        /// The JPEG bytes.
        data: Vec<u8>,
    },
    /// 8-bit RGB, row-major, `width * height * 3` bytes.
    Rgb8 {
        /// Pixels per row (64..=8192).
        width: u32,
        /// Rows (64..=8192).
        height: u32,
        /// The pixels.
        data: Vec<u8>,
    },
    /// 8-bit RGBA (or BGRA-free RGBA from a bitmap), `width * height * 4` bytes; alpha
    /// is ignored.
    Rgba8 {
        /// Pixels per row (64..=8192).
        width: u32,
        /// Rows (64..=8192).
        height: u32,
        /// The pixels.
        data: Vec<u8>,
    },
    /// 8-bit grey (the Y plane of a YUV frame), `width * height` bytes.
    Grey8 {
        /// Pixels per row (64..=8192).
        width: u32,
        /// Rows (64..=8192).
        height: u32,
        /// The pixels.
        data: Vec<u8>,
    },
}

impl std::fmt::Debug for FramePixels {
    /// Pixels are biometric data: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&crate::client::face::FramePixels::from(self.clone()), f)
    }
}

impl From<FramePixels> for crate::client::face::FramePixels {
    fn from(p: FramePixels) -> Self {
        use crate::client::face::FramePixels as P;
        match p {
            FramePixels::Jpeg { data } => P::Jpeg(data),
            FramePixels::Rgb8 {
                width,
                height,
                data,
            } => P::Rgb8 {
                width,
                height,
                data,
            },
            FramePixels::Rgba8 {
                width,
                height,
                data,
            } => P::Rgba8 {
                width,
                height,
                data,
            },
            FramePixels::Grey8 {
                width,
                height,
                data,
            } => P::Grey8 {
                width,
                height,
                data,
            },
        }
    }
}

/// A camera frame for the face factor.
#[derive(Debug, Clone, uniffi::Record)]
pub struct CameraFrame {
    /// The pixels.
    pub pixels: FramePixels,
    /// Clockwise rotation (0, 90, 180 or 270) that makes the frame upright, after a
    /// JPEG's own EXIF orientation (Android CameraX: `ImageInfo.rotationDegrees`).
    #[uniffi(default = 0)]
    pub rotation_degrees: u16,
    /// Whether the frame is mirrored (front-camera preview); undone after rotating.
    #[uniffi(default = false)]
    pub mirrored: bool,
}

impl From<CameraFrame> for crate::client::face::CameraFrame {
    fn from(f: CameraFrame) -> Self {
        crate::client::face::CameraFrame {
            pixels: f.pixels.into(),
            rotation_degrees: f.rotation_degrees,
            mirrored: f.mirrored,
        }
    }
}
