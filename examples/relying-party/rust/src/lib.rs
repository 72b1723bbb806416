//! How a relying party — the app's own server — verifies a Tacit verdict, with nothing
//! but the `jsonwebtoken` crate and serde (no Tacit crate: this is what your server
//! would write).
//!
//! The flow: your server issues a random nonce and hands it to the app; the app calls
//! `authenticate(…, nonce)` and sends the answer's `verdict` back; your server checks
//! it here before it believes the decision:
//!
//! 1. header: `alg` is EdDSA (nothing else is accepted, so no algorithm confusion),
//!    `typ` is `tacit-verdict+jwt`, `kid` names a key of the gateway's JWKS
//!    (`GET /.well-known/jwks.json`; an unknown kid means: fetch the JWKS again once);
//! 2. the Ed25519 signature over header and claims;
//! 3. `iss` (and `aud`, when the gateway sets one), `exp` and `iat` with a small
//!    leeway for clock skew;
//! 4. the nonce is the one *this* session issued;
//! 5. the `jti` was not seen before (a replayed token): kept until the token expires.
//!
//! Only then read `decision` (`accept` | `step_up` | `reject`), `sub` (the user) and
//! `device`.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::Mutex;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

/// The `typ` of a Tacit verdict.
pub const VERDICT_TYPE: &str = "tacit-verdict+jwt";

/// The claims of a verdict that a relying party reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The issuer (the gateway's `verdict.issuer`).
    pub iss: String,
    /// The user the decision is about.
    pub sub: String,
    /// The audience, when the gateway sets one.
    #[serde(default)]
    pub aud: Option<String>,
    /// The device that asked (hex id).
    pub device: String,
    /// `accept`, `step_up` or `reject`.
    pub decision: String,
    /// The gateway's confidence in the decision (`1 − estimated_far`).
    pub confidence: f64,
    /// The estimated false-accept rate at the attempt's score (absent from tokens of
    /// gateways before the attempt calibration).
    #[serde(default)]
    pub estimated_far: Option<f64>,
    /// What the gateway judged: `attached` (behaviour sent with this request) or
    /// `stored` (the user's newest stored windows: weaker evidence of who holds the
    /// phone now; a relying party may demand `attached` for sensitive actions).
    #[serde(default)]
    pub evidence: String,
    /// Seconds since the newest window that counted.
    #[serde(default)]
    pub evidence_age_s: Option<u64>,
    /// The fused log-likelihood ratio.
    pub llr: f64,
    /// Whether a factor could not answer.
    pub degraded: bool,
    /// The factors whose evidence counted.
    pub factors: Vec<String>,
    /// The nonce the request carried.
    #[serde(default)]
    pub nonce: Option<String>,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expires at (Unix seconds).
    pub exp: u64,
    /// The token's id.
    pub jti: String,
}

/// Why a verdict is not believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a JWS compact token, or its header or claims do not parse.
    Malformed(String),
    /// The header's `alg` is not EdDSA.
    WrongAlgorithm,
    /// The header's `typ` is not [`VERDICT_TYPE`].
    WrongType,
    /// The header names no key, or one the JWKS does not hold (fetch the JWKS again
    /// once, then refuse).
    UnknownKey(String),
    /// The signature does not verify: the token was altered or signed by another key.
    BadSignature,
    /// Past its `exp` (beyond the leeway).
    Expired,
    /// Issued in the future (beyond the leeway).
    NotYetValid,
    /// Another issuer.
    WrongIssuer,
    /// Another audience.
    WrongAudience,
    /// Not the nonce this session issued (or none at all).
    WrongNonce,
    /// Another user than the one the session is about.
    WrongUser,
    /// This token was presented before.
    Replayed,
    /// The JWKS is unusable.
    BadJwks(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Malformed(m) => write!(f, "malformed token: {m}"),
            Refusal::WrongAlgorithm => f.write_str("wrong algorithm (expected EdDSA)"),
            Refusal::WrongType => write!(f, "wrong token type (expected {VERDICT_TYPE})"),
            Refusal::UnknownKey(kid) => write!(f, "unknown key {kid:?}"),
            Refusal::BadSignature => f.write_str("bad signature"),
            Refusal::Expired => f.write_str("expired"),
            Refusal::NotYetValid => f.write_str("issued in the future"),
            Refusal::WrongIssuer => f.write_str("wrong issuer"),
            Refusal::WrongAudience => f.write_str("wrong audience"),
            Refusal::WrongNonce => f.write_str("wrong nonce"),
            Refusal::WrongUser => f.write_str("wrong user"),
            Refusal::Replayed => f.write_str("replayed token"),
            Refusal::BadJwks(m) => write!(f, "unusable JWKS: {m}"),
        }
    }
}

impl std::error::Error for Refusal {}

/// What this relying party expects of a verdict.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// The gateway's issuer.
    pub issuer: &'a str,
    /// The audience, if the gateway is configured with one.
    pub audience: Option<&'a str>,
    /// The nonce this session issued.
    pub nonce: &'a str,
    /// The user this session is about (required: a nonce does not say whose session it
    /// is, so a token for another account carrying a leaked nonce must not pass).
    pub user: &'a str,
}

/// A verifier: the gateway's keys and the ids of tokens already accepted.
pub struct Verifier {
    keys: HashMap<String, DecodingKey>,
    /// Seconds of clock skew tolerated on `exp` and `iat`.
    pub leeway_s: u64,
    seen: Mutex<HashMap<String, u64>>,
}

/// Unix seconds now.
pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Verifier {
    /// A verifier for the keys of a JWKS document (the body of
    /// `GET /.well-known/jwks.json`). Only Ed25519 keys for EdDSA signatures are taken.
    pub fn from_jwks(json: &str) -> Result<Verifier, Refusal> {
        let set: JwkSet =
            serde_json::from_str(json).map_err(|e| Refusal::BadJwks(e.to_string()))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let AlgorithmParameters::OctetKeyPair(okp) = &jwk.algorithm else {
                continue;
            };
            let Some(kid) = &jwk.common.key_id else {
                continue;
            };
            // An Ed25519 public key is 32 bytes: 43 characters of base64url.
            if okp.curve != EllipticCurve::Ed25519 || okp.x.len() != 43 {
                return Err(Refusal::BadJwks(format!("key {kid}: not an Ed25519 key")));
            }
            let key = DecodingKey::from_jwk(jwk).map_err(|e| Refusal::BadJwks(e.to_string()))?;
            keys.insert(kid.clone(), key);
        }
        if keys.is_empty() {
            return Err(Refusal::BadJwks("no Ed25519 key".into()));
        }
        Ok(Verifier {
            keys,
            leeway_s: 5,
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// The key ids this verifier knows.
    pub fn kids(&self) -> Vec<&str> {
        let mut k: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        k.sort();
        k
    }

    /// Checks a verdict (see the crate documentation for the steps) at `now` (Unix
    /// seconds) and, when it is believed, remembers its `jti` until it expires.
    pub fn verify(
        &self,
        token: &str,
        expected: &Expected<'_>,
        now: u64,
    ) -> Result<Verdict, Refusal> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| Refusal::Malformed(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(Refusal::WrongAlgorithm);
        }
        if header.typ.as_deref() != Some(VERDICT_TYPE) {
            return Err(Refusal::WrongType);
        }
        let kid = header.kid.unwrap_or_default();
        let key = self
            .keys
            .get(&kid)
            .ok_or_else(|| Refusal::UnknownKey(kid.clone()))?;
        // Signature, issuer and audience by the crate; times below, against `now`.
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_issuer(&[expected.issuer]);
        match expected.audience {
            Some(aud) => v.set_audience(&[aud]),
            None => v.validate_aud = false,
        }
        v.validate_exp = false;
        v.set_required_spec_claims(&["iss", "sub"]);
        let claims = jsonwebtoken::decode::<Verdict>(token, key, &v)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::InvalidSignature => Refusal::BadSignature,
                    ErrorKind::InvalidIssuer => Refusal::WrongIssuer,
                    ErrorKind::InvalidAudience => Refusal::WrongAudience,
                    ErrorKind::InvalidAlgorithm => Refusal::WrongAlgorithm,
                    _ => Refusal::Malformed(e.to_string()),
                }
            })?
            .claims;
        if now > claims.exp.saturating_add(self.leeway_s) {
            return Err(Refusal::Expired);
        }
        if claims.iat > now.saturating_add(self.leeway_s) {
            return Err(Refusal::NotYetValid);
        }
        if claims.nonce.as_deref() != Some(expected.nonce) {
            return Err(Refusal::WrongNonce);
        }
        if claims.sub != expected.user {
            return Err(Refusal::WrongUser);
        }
        let mut seen = self
            .seen
            .lock()
            .map_err(|_| Refusal::Malformed("replay cache poisoned".into()))?;
        // Forget tokens that have expired: they fail on `exp` from now on.
        let leeway = self.leeway_s;
        seen.retain(|_, exp| exp.saturating_add(leeway) >= now);
        if seen.contains_key(&claims.jti) {
            return Err(Refusal::Replayed);
        }
        seen.insert(claims.jti.clone(), claims.exp);
        Ok(claims)
    }
}
