//! The bearer token between the gateway and its factor services: one shared secret,
//! a file of mode 0600 mounted into the gateway and every factor service. The gateway
//! sends it as `Authorization: Bearer TOKEN` on every factor call; a factor service
//! answers every route but its liveness and readiness probes 401 without it.
//!
//! The token never appears in settings output, logs or errors: it is held in a
//! [`SecretString`] and compared through SHA-256 digests in constant time, so neither
//! the time of a comparison nor its length says anything about it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ring::rand::SecureRandom;
use secrecy::{ExposeSecret, SecretString};

use crate::error::ApiError;
use crate::settings::Settings;

/// Shortest token accepted, in characters: a token is a key, not a password.
pub const MIN_TOKEN_LEN: usize = 32;

/// Why the factor token cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FactorTokenError {
    /// Factor calls are authenticated (the default) and the token file is missing.
    #[error(
        "factor calls are authenticated and the token {0} does not exist: run \
         `tacit-backend keygen` (it writes one there) and give the same file to the \
         gateway and every factor service, or set TACIT_FACTOR_AUTH=off where only the \
         network keeps others away from the factor services"
    )]
    Missing(PathBuf),
    /// The file is readable by group or others.
    #[error("factor token {0}: readable by group or others (chmod 600)")]
    Permissions(PathBuf),
    /// The file could not be read or written.
    #[error("factor token {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold a usable token (too short, not one line of printable
    /// ASCII). The content is never quoted.
    #[error(
        "factor token {0}: expected one line of at least {MIN_TOKEN_LEN} printable ASCII \
         characters without spaces"
    )]
    Malformed(PathBuf),
}

/// The shared bearer token of factor calls.
pub struct FactorToken {
    token: SecretString,
    digest: [u8; 32],
}

impl std::fmt::Debug for FactorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FactorToken([REDACTED])")
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

impl FactorToken {
    /// A token from its text (trailing white space removed). Refused when shorter
    /// than [`MIN_TOKEN_LEN`] or not printable ASCII without spaces (it goes into a
    /// header).
    pub fn new(text: &str) -> Option<FactorToken> {
        let t = text.trim_end();
        let ok = t.len() >= MIN_TOKEN_LEN && t.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| FactorToken {
            digest: sha256(t.as_bytes()),
            token: t.to_owned().into(),
        })
    }

    /// Reads the token file. A missing file, one readable by group or others (the
    /// same rule as every key file of the backend) or a malformed one is an error.
    pub fn load(path: &Path) -> Result<FactorToken, FactorTokenError> {
        let io = |source| FactorTokenError::Io {
            path: path.to_path_buf(),
            source,
        };
        if !path.exists() {
            return Err(FactorTokenError::Missing(path.to_path_buf()));
        }
        if !crate::keys::is_private(path).map_err(io)? {
            return Err(FactorTokenError::Permissions(path.to_path_buf()));
        }
        let bytes = std::fs::read(path).map_err(io)?;
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(FactorToken::new)
            .ok_or_else(|| FactorTokenError::Malformed(path.to_path_buf()))
    }

    /// Writes a new random token (64 hex characters, mode 0600; never over an existing
    /// file).
    pub fn generate(path: &Path) -> Result<(), FactorTokenError> {
        let io = |source| FactorTokenError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut raw = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| io(std::io::Error::other("no randomness")))?;
        crate::keys::write_new_private(path, hex::encode(raw).as_bytes()).map_err(io)
    }

    /// Whether `given` is the token, in time independent of where they differ.
    pub fn matches(&self, given: &str) -> bool {
        crate::handlers::constant_time_eq(&sha256(given.as_bytes()), &self.digest)
    }

    /// The `Authorization` header value of a call, marked sensitive (kept out of
    /// HTTP-level debug output).
    pub fn header_value(&self) -> Option<HeaderValue> {
        let mut v =
            HeaderValue::from_str(&format!("Bearer {}", self.token.expose_secret())).ok()?;
        v.set_sensitive(true);
        Some(v)
    }
}

/// The token a factor service requires (`serve --role factor:NAME`): `None` only when
/// factor authentication is turned off (`TACIT_FACTOR_AUTH=off`, logged as a warning).
pub fn for_factor_service(
    settings: &Settings,
) -> Result<Option<Arc<FactorToken>>, FactorTokenError> {
    match settings.factor_token_file() {
        None => {
            tracing::warn!(
                "factor authentication is off (TACIT_FACTOR_AUTH=off): anyone who reaches \
                 this factor service can call it"
            );
            Ok(None)
        }
        Some(path) => FactorToken::load(&path).map(|t| Some(Arc::new(t))),
    }
}

/// The token a gateway sends to its remote factors: `None` when it has none configured
/// (in-process factors need no token) or factor authentication is turned off.
pub fn for_gateway(settings: &Settings) -> Result<Option<Arc<FactorToken>>, FactorTokenError> {
    if settings.auth.factors.is_empty() {
        return Ok(None);
    }
    match settings.factor_token_file() {
        None => {
            tracing::warn!(
                "factor authentication is off (TACIT_FACTOR_AUTH=off): factor calls carry \
                 no token"
            );
            Ok(None)
        }
        Some(path) => FactorToken::load(&path).map(|t| Some(Arc::new(t))),
    }
}

/// Middleware of a factor service's guarded routes: without the right bearer token the
/// request is answered 401 before any handler (or body read) runs.
pub(crate) async fn require_token(
    State(token): State<Option<Arc<FactorToken>>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(token) = token else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if token.matches(given) {
        return next.run(req).await;
    }
    let mut r = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or wrong factor bearer token",
    )
    .into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tokens_are_private_long_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("factor.token");
        assert!(matches!(
            FactorToken::load(&p),
            Err(FactorTokenError::Missing(_))
        ));
        FactorToken::generate(&p).unwrap();
        assert!(FactorToken::generate(&p).is_err(), "never overwritten");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = std::fs::read_to_string(&p).unwrap();
        let t = FactorToken::load(&p).unwrap();
        assert!(t.matches(&text));
        assert!(!t.matches(&text[1..]));
        assert!(!t.matches(""));
        assert!(!format!("{t:?}").contains(&text));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            FactorToken::load(&p),
            Err(FactorTokenError::Permissions(_))
        ));
        let short = dir.path().join("short");
        crate::keys::write_new_private(&short, b"hunter2").unwrap();
        let e = FactorToken::load(&short).unwrap_err().to_string();
        assert!(e.contains("at least") && !e.contains("hunter2"), "{e}");
    }
}
