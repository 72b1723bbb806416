//! Signed verdicts: the decision of `POST /v1/authenticate` as a compact JWS that the
//! relying party (the app's own server) verifies with the gateway's public keys, so
//! that a modified app cannot report an `accept` the gateway never gave.
//!
//! * Token: JWS compact serialisation, `alg` EdDSA (Ed25519), `typ`
//!   [`VERDICT_TYPE`], `kid` naming the signing key; claims [`VerdictClaims`]. Made
//!   and checked by the `jsonwebtoken` crate (no JOSE code of our own).
//! * Keys: every `verdict-<kid>.key` in the keys directory (PKCS#8 Ed25519, mode 0600,
//!   refused otherwise, like the HPKE keys) is live and listed in the JWKS
//!   (`GET /.well-known/jwks.json`). The kid is `<start>-<hash>`: the Unix second
//!   from which the key signs and 16 hex characters of the SHA-256 of its public key.
//!   The newest key whose start has passed signs (if none has yet, the oldest), so a
//!   new key can be published before it signs, and relying parties' JWKS caches learn
//!   it first.
//! * Rotation (SECURITY.md): `tacit-backend keys verdict-keygen --activate-in-hours H`
//!   adds a key that signs from H hours on; restart the gateways (they read keys at
//!   start); delete the old key file once every token it signed has expired (its
//!   successor's start plus `verdict.ttl_s`), and restart again.

use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::KeyPair;
use serde::{Deserialize, Serialize};

use crate::keys::{KeyError, is_private, write_new_private};

/// The JWS `typ` of a verdict (explicit typing, RFC 8725 section 3.11): a relying party
/// that checks it cannot take another token of the same issuer for a verdict.
pub const VERDICT_TYPE: &str = "tacit-verdict+jwt";

const PREFIX: &str = "verdict-";
const SUFFIX: &str = ".key";

/// What a verdict says. Times are Unix seconds (JWT NumericDate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictClaims {
    /// Issuer (`verdict.issuer`).
    pub iss: String,
    /// The user the decision is about.
    pub sub: String,
    /// Audience (`verdict.audience`), when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// The device that asked (hex id).
    pub device: String,
    /// `accept`, `step_up` or `reject`.
    pub decision: String,
    /// The answer's `confidence` (`1 − estimated_far`).
    pub confidence: f64,
    /// The answer's estimated false-accept rate at this attempt's score: the share of
    /// zero-effort impostor attempts on held-out calibration people that score as high
    /// (an `accept` means it is at most the gateway's target).
    pub estimated_far: f64,
    /// The answer's fused log-likelihood ratio.
    pub llr: f64,
    /// Whether a factor holding a template could not answer.
    pub degraded: bool,
    /// What was judged: `attached` (the behaviour sent with this request) or `stored`
    /// (the user's newest stored windows, up to the fusion's maximum age: weaker
    /// evidence that the person holding the phone now is the user).
    pub evidence: String,
    /// Seconds since the newest window that counted (absent when none counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_age_s: Option<u64>,
    /// The factors whose evidence counted (weight above 0), by name.
    pub factors: Vec<String>,
    /// The relying party's nonce that the device's request carried (absent when it
    /// carried none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Issued at.
    pub iat: u64,
    /// Expires at (`iat` + `verdict.ttl_s`).
    pub exp: u64,
    /// A random id (32 hex characters), for the relying party's replay cache.
    pub jti: String,
}

/// Signing failed (an Ed25519 signature cannot fail with a key that loaded; this is the
/// crate's error, kept for the logs).
#[derive(Debug, thiserror::Error)]
#[error("signing the verdict: {0}")]
pub struct SignError(String);

/// One signing key.
struct SigningKey {
    kid: String,
    starts_at_s: u64,
    jwk: Jwk,
    encoding: EncodingKey,
}

/// The live verdict signing keys, oldest start first.
#[derive(Default)]
pub struct VerdictKeys {
    keys: Vec<SigningKey>,
}

impl std::fmt::Debug for VerdictKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| &k.kid))
            .finish()
    }
}

fn kid_of(starts_at_s: u64, public: &[u8]) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, public);
    format!("{starts_at_s}-{}", hex::encode(&hash.as_ref()[..8]))
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl VerdictKeys {
    /// Loads every `verdict-*.key` in `dir` (a missing directory is an empty set). A
    /// file readable by others, or whose name does not match its key, is an error.
    pub fn load(dir: &Path) -> Result<VerdictKeys, KeyError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(VerdictKeys::default());
            }
            Err(source) => {
                return Err(KeyError::Io {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        };
        let mut keys = Vec::new();
        for entry in entries {
            let path = entry.map_err(io_error(dir))?.path();
            let Some(kid) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(PREFIX))
                .and_then(|n| n.strip_suffix(SUFFIX))
                .map(str::to_owned)
            else {
                continue;
            };
            if !is_private(&path).map_err(io_error(&path))? {
                return Err(KeyError::Permissions(path));
            }
            let pkcs8 = std::fs::read(&path).map_err(io_error(&path))?;
            let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
                .map_err(|_| KeyError::Malformed(path.clone()))?;
            let public: [u8; 32] = pair
                .public_key()
                .as_ref()
                .try_into()
                .map_err(|_| KeyError::Malformed(path.clone()))?;
            let starts_at_s = kid
                .split_once('-')
                .and_then(|(s, _)| s.parse::<u64>().ok())
                .ok_or_else(|| KeyError::Malformed(path.clone()))?;
            if kid_of(starts_at_s, &public) != kid {
                return Err(KeyError::Malformed(path));
            }
            // The crate's own JWK of the public key (base64url `x`), with our kid.
            let mut jwk =
                Jwk::from_decoding_key(&DecodingKey::from_ed_der(&public), Some(Algorithm::EdDSA))
                    .map_err(|_| KeyError::Malformed(path.clone()))?;
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            jwk.common.key_id = Some(kid.clone());
            keys.push(SigningKey {
                kid,
                starts_at_s,
                jwk,
                encoding: EncodingKey::from_ed_der(&pkcs8),
            });
        }
        keys.sort_by(|a, b| (a.starts_at_s, &a.kid).cmp(&(b.starts_at_s, &b.kid)));
        Ok(VerdictKeys { keys })
    }

    /// Writes a new signing key into `dir` (mode 0600) that signs from `starts_at_s`
    /// on; returns its kid.
    pub fn generate(dir: &Path, starts_at_s: u64) -> Result<String, KeyError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        let kid = kid_of(starts_at_s, pair.public_key().as_ref());
        let path = dir.join(format!("{PREFIX}{kid}{SUFFIX}"));
        write_new_private(&path, pkcs8.as_ref()).map_err(io_error(&path))?;
        Ok(kid)
    }

    /// The keys of `dir`; when there is none, one is made there first that signs at
    /// once (a first start). The second value is the kid of the key made, if any.
    pub fn load_or_create(
        dir: &Path,
        now_s: u64,
    ) -> Result<(VerdictKeys, Option<String>), KeyError> {
        let keys = VerdictKeys::load(dir)?;
        if !keys.is_empty() {
            return Ok((keys, None));
        }
        let kid = VerdictKeys::generate(dir, now_s)?;
        Ok((VerdictKeys::load(dir)?, Some(kid)))
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The kids, oldest start first.
    pub fn kids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.kid.clone()).collect()
    }

    fn signing(&self, now_s: u64) -> Option<&SigningKey> {
        self.keys
            .iter()
            .rev()
            .find(|k| k.starts_at_s <= now_s)
            .or_else(|| self.keys.first())
    }

    /// The kid that signs at `now_s`.
    pub fn signing_kid(&self, now_s: u64) -> Option<&str> {
        self.signing(now_s).map(|k| k.kid.as_str())
    }

    /// Signs `claims` with the key in force at `claims.iat`. `None`: no key.
    pub fn sign(&self, claims: &VerdictClaims) -> Option<Result<String, SignError>> {
        let key = self.signing(claims.iat)?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(VERDICT_TYPE.to_owned());
        header.kid = Some(key.kid.clone());
        Some(
            jsonwebtoken::encode(&header, claims, &key.encoding)
                .map_err(|e| SignError(e.to_string())),
        )
    }

    /// Every live key as a JWK (`kty` OKP, `crv` Ed25519, `use` sig, `alg` EdDSA).
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.keys.iter().map(|k| k.jwk.clone()).collect(),
        }
    }
}

/// Where the verdict keys of a keys directory are (for messages).
pub fn key_path(dir: &Path, kid: &str) -> PathBuf {
    dir.join(format!("{PREFIX}{kid}{SUFFIX}"))
}

/// A random token id: 16 bytes, hex.
pub fn new_jti() -> Result<String, SignError> {
    let mut b = [0u8; 16];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut b)
        .map_err(|_| SignError("no randomness for the token id".into()))?;
    Ok(hex::encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tacit-verdict-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn claims(iat: u64) -> VerdictClaims {
        VerdictClaims {
            iss: "tacit".into(),
            sub: "alice".into(),
            aud: None,
            device: "00".repeat(16),
            decision: "accept".into(),
            confidence: 0.99,
            estimated_far: 0.01,
            llr: 6.2,
            degraded: false,
            evidence: "attached".into(),
            evidence_age_s: Some(3),
            factors: vec!["gait".into()],
            nonce: Some("0123456789abcdef".into()),
            iat,
            exp: iat + 120,
            jti: new_jti().unwrap(),
        }
    }

    fn verify(token: &str, jwks: &JwkSet) -> (String, VerdictClaims) {
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.typ.as_deref(), Some(VERDICT_TYPE));
        let kid = header.kid.unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::EdDSA);
        v.validate_exp = false;
        v.set_required_spec_claims(&["iss", "sub"]);
        let claims = jsonwebtoken::decode::<VerdictClaims>(token, &key, &v)
            .unwrap()
            .claims;
        (kid, claims)
    }

    #[test]
    fn keys_sign_in_order_of_their_start_and_all_verify() {
        let d = dir("order");
        assert!(VerdictKeys::load(&d).unwrap().is_empty());
        let (keys, made) = VerdictKeys::load_or_create(&d, 1_000).unwrap();
        let first = made.unwrap();
        assert_eq!(keys.kids(), std::slice::from_ref(&first));
        // Loading again makes nothing.
        let (_, made) = VerdictKeys::load_or_create(&d, 1_000).unwrap();
        assert_eq!(made, None);
        // A key published ahead of its start: listed at once, signs from its start.
        let second = VerdictKeys::generate(&d, 5_000).unwrap();
        let keys = VerdictKeys::load(&d).unwrap();
        assert_eq!(keys.kids(), [first.clone(), second.clone()]);
        assert_eq!(keys.signing_kid(4_999), Some(first.as_str()));
        assert_eq!(keys.signing_kid(5_000), Some(second.as_str()));
        let jwks = keys.jwks();
        let json = serde_json::to_value(&jwks).unwrap();
        assert_eq!(json["keys"][0]["kty"], "OKP");
        assert_eq!(json["keys"][0]["crv"], "Ed25519");
        assert_eq!(json["keys"][0]["use"], "sig");
        assert_eq!(json["keys"][0]["alg"], "EdDSA");
        assert_eq!(json["keys"][0]["x"].as_str().unwrap().len(), 43);
        for (iat, kid) in [(4_000, &first), (6_000, &second)] {
            let c = claims(iat);
            let token = keys.sign(&c).unwrap().unwrap();
            assert_eq!(verify(&token, &jwks), (kid.clone(), c));
        }
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn bad_key_files_are_refused() {
        let d = dir("bad");
        let kid = VerdictKeys::generate(&d, 7).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let p = key_path(&d, &kid);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
            assert!(matches!(
                VerdictKeys::load(&d),
                Err(KeyError::Permissions(_))
            ));
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        // A key under another key's name is refused (the start in the name is the
        // operator's to choose; the hash must be the key's).
        let renamed = key_path(&d, "7-0000000000000000");
        std::fs::copy(key_path(&d, &kid), &renamed).unwrap();
        let r = VerdictKeys::load(&d);
        assert!(matches!(r, Err(KeyError::Malformed(_))), "{r:?}");
        std::fs::remove_file(&renamed).unwrap();
        write_new_private(&key_path(&d, "9-0011223344556677"), b"not a key").unwrap();
        assert!(matches!(VerdictKeys::load(&d), Err(KeyError::Malformed(_))));
        std::fs::remove_dir_all(&d).ok();
    }
}
