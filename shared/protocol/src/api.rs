//! JSON bodies of the HTTP API between phones and the gateway (`PROTOCOL.md`, "HTTP
//! API"). Shared so that the client, the server and test servers cannot drift apart.
//! Binary values travel as standard base64 (with padding); ids as lower-case hex.

use serde::{Deserialize, Serialize};

use crate::identity::{DevicePublicKey, IdentityError, SignatureAlgorithm};

/// Most envelopes accepted in one `POST /v1/uploads`.
pub const MAX_UPLOAD_BATCH: usize = 256;

/// Wire name of a signature algorithm.
pub fn algorithm_name(alg: SignatureAlgorithm) -> &'static str {
    match alg {
        SignatureAlgorithm::Ed25519 => "ed25519",
        SignatureAlgorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
    }
}

/// Parses a wire name of a signature algorithm.
pub fn algorithm_from_name(name: &str) -> Option<SignatureAlgorithm> {
    match name {
        "ed25519" => Some(SignatureAlgorithm::Ed25519),
        "ecdsa-p256-sha256" => Some(SignatureAlgorithm::EcdsaP256Sha256),
        _ => None,
    }
}

/// A device public key in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublicKeyJson {
    /// `ed25519` or `ecdsa-p256-sha256`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(ed25519|ecdsa-p256-sha256)$"))]
    pub algorithm: String,
    /// The raw key, base64.
    pub key: String,
}

impl PublicKeyJson {
    /// From a device key.
    pub fn from_key(k: &DevicePublicKey) -> Self {
        PublicKeyJson {
            algorithm: algorithm_name(k.algorithm()).into(),
            key: b64_encode(k.as_bytes()),
        }
    }

    /// To a validated device key.
    pub fn to_key(&self) -> Result<DevicePublicKey, IdentityError> {
        let alg = algorithm_from_name(&self.algorithm).ok_or(IdentityError::UnknownAlgorithm(0))?;
        let bytes = b64_decode(&self.key).ok_or(IdentityError::MalformedPublicKey(alg))?;
        DevicePublicKey::new(alg, &bytes)
    }
}

/// `POST /v1/devices`: bind a device key to a user with a one-time enrolment token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterDeviceRequest {
    /// The one-time token an administrator created for the user.
    pub enrolment_token: String,
    /// The device's public key.
    pub public_key: PublicKeyJson,
}

/// Answer to [`RegisterDeviceRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterDeviceResponse {
    /// The device id (hex), derived from the key.
    pub device_id: String,
    /// The user the device now belongs to.
    pub user_id: String,
}

/// `POST /v1/uploads`: a batch of encoded envelopes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadRequest {
    /// Envelopes, base64, at most [`MAX_UPLOAD_BATCH`]; each at most 1 MiB decoded
    /// (`shared/protocol/PROTOCOL.md`). The sealed payload holds feature records and at
    /// most 4 face image records (tag 16: a JPEG of 128..=98304 bytes, at most 640
    /// pixels a side), which the gateway turns into face records and never stores.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 256))]
    pub envelopes: Vec<String>,
}

/// What happened to one envelope of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EnvelopeStatus {
    /// Stored now (durably committed before this answer).
    Stored,
    /// Stored earlier: acknowledged again, not stored twice.
    Duplicate,
    /// Refused for good; `reason` says why. Sending it again will not help.
    Rejected,
}

/// The result for one envelope, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvelopeResult {
    /// Position in the request.
    pub index: usize,
    /// Envelope id (hex), when the envelope could be decoded that far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope_id: Option<String>,
    /// Outcome.
    pub status: EnvelopeStatus,
    /// Stable reason code for rejections (see `EnvelopeError::code`; for face images
    /// also `face_not_served`, `face_refused`, `face_replay` and `no_face`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Answer to [`UploadRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadResponse {
    /// One result per envelope, in request order.
    pub results: Vec<EnvelopeResult>,
}

/// Most envelopes carried by one `POST /v1/authenticate` (fresh evidence).
pub const MAX_AUTH_ENVELOPES: usize = 16;

/// Domain separation of the authentication request signature.
const AUTH_CONTEXT: &[u8] = b"tacit-authenticate-v1\0";

/// Shortest nonce a relying party may have the device carry (characters).
pub const MIN_NONCE_LEN: usize = 16;
/// Longest nonce (characters).
pub const MAX_NONCE_LEN: usize = 128;

/// Whether `nonce` is one the gateway accepts in [`AuthenticateRequest::nonce`]:
/// [`MIN_NONCE_LEN`]..=[`MAX_NONCE_LEN`] characters of `[A-Za-z0-9._~+/=-]` — base64,
/// base64url, hex and UUIDs fit; nothing that needs escaping in JSON, logs or URLs.
pub fn valid_nonce(nonce: &str) -> bool {
    (MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&nonce.len())
        && nonce.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'+' | b'/' | b'=' | b'-')
        })
}

/// The bytes a device signs for `POST /v1/authenticate`: a fixed context string, the
/// device id, the request time (device clock, Unix ms, big-endian) and the SHA-256 of
/// each attached envelope, so that the signature covers exactly what the request
/// carries and a captured request cannot be altered. The same as
/// [`authenticate_message_with_nonce`] without a nonce.
pub fn authenticate_message(
    device_id: &[u8; 16],
    request_ms: u64,
    envelopes: &[Vec<u8>],
) -> Vec<u8> {
    authenticate_message_with_nonce(device_id, request_ms, envelopes, None)
}

/// [`authenticate_message`], and, when the request carries a relying party's nonce,
/// its length (big-endian `u16`) and bytes after the envelope hashes. Without a nonce
/// the bytes are exactly those of [`authenticate_message`] (clients that send none sign
/// what they always signed); with one, the message is longer than any message without
/// (the envelope count fixes where the hashes end), so neither can pass for the other,
/// and a nonce cannot be added to, changed in or removed from a signed request.
pub fn authenticate_message_with_nonce(
    device_id: &[u8; 16],
    request_ms: u64,
    envelopes: &[Vec<u8>],
    nonce: Option<&str>,
) -> Vec<u8> {
    let extra = nonce.map_or(0, |n| 2 + n.len());
    let mut m = Vec::with_capacity(AUTH_CONTEXT.len() + 26 + 32 * envelopes.len() + extra);
    m.extend_from_slice(AUTH_CONTEXT);
    m.extend_from_slice(device_id);
    m.extend_from_slice(&request_ms.to_be_bytes());
    m.extend_from_slice(&(envelopes.len() as u16).to_be_bytes());
    for e in envelopes {
        m.extend_from_slice(ring::digest::digest(&ring::digest::SHA256, e).as_ref());
    }
    if let Some(n) = nonce {
        // Callers validate the nonce first (at most MAX_NONCE_LEN bytes); a longer one
        // is cut at u16::MAX in the length only, and then never verifies.
        m.extend_from_slice(&(u16::try_from(n.len()).unwrap_or(u16::MAX)).to_be_bytes());
        m.extend_from_slice(n.as_bytes());
    }
    m
}

/// `POST /v1/authenticate`: "is this still the enrolled person?", signed by the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AuthenticateRequest {
    /// The device id (hex).
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-f]{32}$"))]
    pub device_id: String,
    /// When the request was made (device clock, Unix ms). Must be later than the
    /// device's previous request and within the server's clock window.
    pub request_ms: u64,
    /// Fresh envelopes (base64), at most [`MAX_AUTH_ENVELOPES`]: ingested like an
    /// upload, and then their windows alone are the evidence (without them: the newest
    /// stored windows).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 16))]
    pub envelopes: Vec<String>,
    /// Signature (base64) over [`authenticate_message_with_nonce`] (with this
    /// request's nonce, if any).
    #[cfg_attr(feature = "openapi", schema(min_length = 4, max_length = 172))]
    pub signature: String,
    /// A nonce from the relying party (the app's own server), echoed in the signed
    /// verdict of the answer so that the relying party knows the verdict answers its
    /// own challenge: [`MIN_NONCE_LEN`]..=[`MAX_NONCE_LEN`] characters of
    /// `[A-Za-z0-9._~+/=-]` ([`valid_nonce`]), covered by the signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 16,
            max_length = 128,
            pattern = "^[A-Za-z0-9._~+/=-]{16,128}$"
        )
    )]
    pub nonce: Option<String>,
}

/// The decision of an authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuthDecision {
    /// The behaviour matches the enrolled person at the configured false-accept rate.
    Accept,
    /// Not enough evidence either way: ask for an explicit check (password, biometric).
    StepUp,
    /// The behaviour says someone else.
    Reject,
}

impl AuthDecision {
    /// The decision's name, as in JSON (`accept`, `step_up`, `reject`): metrics labels
    /// and logs.
    pub fn name(self) -> &'static str {
        match self {
            AuthDecision::Accept => "accept",
            AuthDecision::StepUp => "step_up",
            AuthDecision::Reject => "reject",
        }
    }
}

/// What happened to one factor in an authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FactorStatus {
    /// Scored: its evidence is part of the decision.
    Scored,
    /// The user has no template for this factor (not enrolled).
    NoTemplate,
    /// No windows of this factor newer than the enrolment and fresh enough.
    NoRecentData,
    /// The factor service is down, slow or not ready: the answer is degraded.
    Unavailable,
    /// The factor service refused the data (e.g. a template of an old model).
    Refused,
}

/// One factor's part of an authentication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FactorResult {
    /// The factor's name.
    pub factor: String,
    /// Outcome.
    pub status: FactorStatus,
    /// Mean one-window log-likelihood ratio of the windows scored (natural log; for
    /// inspection: the decision uses `llr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_llr: Option<f64>,
    /// Calibrated log-likelihood ratio of the attempt, all its windows judged together
    /// (what the fusion adds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llr: Option<f64>,
    /// Windows scored.
    pub windows: u32,
    /// Age of the newest window scored, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_s: Option<f64>,
    /// Weight of the evidence in the decision (configured weight × freshness).
    pub weight: f64,
    /// Model version that scored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// Why a factor did not score (no biometric content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Answer to [`AuthenticateRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthenticateResponse {
    /// The decision.
    pub decision: AuthDecision,
    /// `1 − estimated_far`.
    pub confidence: f64,
    /// Estimated false-accept rate at this attempt's score: the share of zero-effort
    /// impostor attempts on the calibration people that score at least as high (never
    /// below `far_floor`). `accept` means it is at most the configured target.
    #[serde(default = "one")]
    pub estimated_far: f64,
    /// The smallest false-accept rate the calibration data support for the factors that
    /// answered (0 when a factor gives no calibration data and `estimated_far` is the
    /// bound `e^-llr`).
    #[serde(default)]
    pub far_floor: f64,
    /// The fused log-likelihood ratio.
    pub llr: f64,
    /// The decision in words.
    pub reason: String,
    /// Whether a factor that holds a template could not answer.
    pub degraded: bool,
    /// The user's consecutive `reject` decisions, this one included.
    pub consecutive_rejects: u32,
    /// Per factor.
    pub factors: Vec<FactorResult>,
    /// Results of the attached envelopes, in request order.
    #[serde(default)]
    pub envelopes: Vec<EnvelopeResult>,
    /// The decision as a signed token for the relying party (the app's own server): a
    /// compact JWS (`alg` EdDSA, `typ` `tacit-verdict+jwt`) whose claims bind the user
    /// (`sub`), device, decision, confidence, LLR, the factors used, the request's
    /// nonce, issue time and a short expiry; verifiable with the gateway's JWKS
    /// (`GET /.well-known/jwks.json`). The app passes it on as it is.
    #[serde(default)]
    pub verdict: String,
}

fn one() -> f64 {
    1.0
}

/// Every error answer: a human-readable message and a stable code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
    /// Stable machine-readable code.
    #[serde(default)]
    pub code: String,
}

/// Standard base64 with padding.
pub fn b64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Strict standard base64 decoding (padding required, no whitespace, no bits set in the
/// padding); `None` if invalid. The base64 crate: a hand-written decoder was a tenth
/// of the gateway's CPU time at full ingest.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(b64_encode(plain.as_bytes()), enc);
            assert_eq!(b64_decode(enc).unwrap(), plain.as_bytes());
        }
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Zh==", "Zm9v\n", "Zm9$"] {
            assert_eq!(b64_decode(bad), None, "{bad:?}");
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(b64_decode(&b64_encode(&all)).unwrap(), all);
    }

    #[test]
    fn nonces_are_bounded_and_signed() {
        for ok in [
            "0123456789abcdef",
            "2f1c9a0e-8d4b-4c55-9a31-7b0c2d6e9f10",
            "q5bI-Zk_0aT~x.Yy+/w=",
            &"n".repeat(MAX_NONCE_LEN),
        ] {
            assert!(valid_nonce(ok), "{ok}");
        }
        for bad in [
            "",
            "short",
            &"n".repeat(MAX_NONCE_LEN + 1),
            "0123456789abcdef ",
            "0123456789abcdef\"",
            "0123456789abcdé",
        ] {
            assert!(!valid_nonce(bad), "{bad:?}");
        }
        let id = [7u8; 16];
        let env = vec![vec![1u8, 2, 3]];
        // Without a nonce: the bytes every earlier client signs.
        assert_eq!(
            authenticate_message(&id, 5, &env),
            authenticate_message_with_nonce(&id, 5, &env, None)
        );
        let plain = authenticate_message(&id, 5, &env);
        let with = authenticate_message_with_nonce(&id, 5, &env, Some("0123456789abcdef"));
        assert_eq!(&with[..plain.len()], &plain[..]);
        assert_eq!(&with[plain.len()..plain.len() + 2], &[0, 16]);
        assert_ne!(
            with,
            authenticate_message_with_nonce(&id, 5, &env, Some("0123456789abcdeF"))
        );
        // A request without a nonce parses as before, and a nonce is not sent when absent.
        let r: AuthenticateRequest =
            serde_json::from_str(r#"{"device_id":"00","request_ms":1,"signature":"AA=="}"#)
                .unwrap();
        assert_eq!(r.nonce, None);
        assert!(!serde_json::to_string(&r).unwrap().contains("nonce"));
    }

    #[test]
    fn json_shapes_are_stable() {
        let r = EnvelopeResult {
            index: 0,
            envelope_id: None,
            status: EnvelopeStatus::Rejected,
            reason: Some("bad_signature".into()),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"index":0,"status":"rejected","reason":"bad_signature"}"#
        );
        let real = crate::identity::Ed25519Signer::generate(&ring::rand::SystemRandom::new())
            .unwrap()
            .0;
        let k = PublicKeyJson {
            algorithm: "ed25519".into(),
            key: b64_encode(crate::identity::DeviceSigner::public_key(&real).as_bytes()),
        };
        assert!(k.to_key().is_ok());
        assert!(
            PublicKeyJson {
                key: b64_encode(&[7; 32]),
                ..k.clone()
            }
            .to_key()
            .is_err(),
            "not a point of large order"
        );
        assert!(
            PublicKeyJson {
                algorithm: "rsa".into(),
                ..k.clone()
            }
            .to_key()
            .is_err()
        );
        assert!(
            PublicKeyJson {
                key: "!!".into(),
                ..k
            }
            .to_key()
            .is_err()
        );
    }
}
