//! Server settings: defaults that work offline on a laptop, overridden by a TOML file
//! and then by `TACIT_*` environment variables (the container-friendly way).

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

/// All settings. Every field has a default; unknown keys in the file are errors.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on (`TACIT_LISTEN`).
    pub listen: String,
    /// Base directory for the embedded defaults (`TACIT_DATA_DIR`).
    pub data_dir: PathBuf,
    /// `sqlite://FILE` or `postgres://...` (`TACIT_DATABASE_URL`); default
    /// `sqlite://DATA_DIR/tacit.sqlite3`. Shown with its password redacted.
    pub database_url: Option<DatabaseUrl>,
    /// CA certificate (PEM) that PostgreSQL's server certificate must chain to; with it
    /// the connection is `sslmode=verify-full` unless the URL names another mode
    /// (`TACIT_DATABASE_CA_FILE`).
    pub database_ca_file: Option<PathBuf>,
    /// A directory (plain path or `file:` URL, relative or absolute) or `s3://BUCKET`
    /// (`TACIT_OBJECTS_URL`); default `DATA_DIR/objects`.
    pub objects_url: Option<String>,
    /// Directory of the HPKE key ring (`TACIT_KEYS_DIR`); default `DATA_DIR/keys`.
    pub keys_dir: Option<PathBuf>,
    /// Bearer token for the admin endpoints (`TACIT_ADMIN_TOKEN`). Without it the
    /// admin endpoints answer 403. Never shown (`Debug` prints `[REDACTED]`).
    pub admin_token: Option<SecretString>,
    /// S3 connection (used when `objects_url` is `s3://`).
    pub s3: S3Settings,
    /// Request and connection limits.
    pub limits: Limits,
    /// TLS termination in the process (`TACIT_TLS_CERT_FILE`, `TACIT_TLS_KEY_FILE`);
    /// without it the listener speaks plain HTTP (behind a TLS proxy or ingress).
    pub tls: Option<TlsSettings>,
    /// Oldest acceptable envelope, in days (`TACIT_MAX_ENVELOPE_AGE_DAYS`).
    pub max_envelope_age_days: u64,
    /// Largest accepted clock lead of a phone, in seconds.
    pub max_future_skew_s: u64,
    /// Lifetime of an enrolment token, in seconds.
    pub enrolment_token_ttl_s: u64,
    /// Factor services (`serve --role factor:NAME`).
    pub factor: FactorSettings,
    /// Authentication: factors the gateway calls, fusion and decision.
    pub auth: AuthSettings,
    /// Encryption of templates and features at rest.
    pub at_rest: AtRestSettings,
    /// How long feature batches are kept.
    pub retention: RetentionSettings,
}

/// Encryption of templates and features at rest (`store::at_rest`), on by default. The
/// key is a file of 32 bytes or 64 hex characters, mode 0600: by default
/// `KEYS_DIR/at-rest.key`, which `tacit-backend keygen` writes; in production mounted
/// from a secret store, or a data key decrypted by a KMS at deployment (`tacit-backend
/// keys at-rest-keygen` makes one). Every service that reads features (gateway and
/// factor services) needs the same keys. Without a key, `serve` refuses to start unless
/// encryption at rest is turned off explicitly.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AtRestSettings {
    /// Whether templates and features are encrypted at rest (`TACIT_AT_REST=on|off`);
    /// `off` stores them as they are, and only where the disk or bucket is encrypted
    /// and trusted by other means.
    pub enabled: bool,
    /// The key new blobs are encrypted with (`TACIT_AT_REST_KEY_FILE`); default
    /// `KEYS_DIR/at-rest.key`.
    pub key_file: Option<PathBuf>,
    /// Earlier keys, for reading what they encrypted until it expires
    /// (`TACIT_AT_REST_OLD_KEY_FILES`, comma-separated).
    pub old_key_files: Vec<PathBuf>,
}

impl Default for AtRestSettings {
    fn default() -> Self {
        AtRestSettings {
            enabled: true,
            key_file: None,
            old_key_files: Vec::new(),
        }
    }
}

/// The name of the at-rest key in the key directory, when no file is configured.
pub const DEFAULT_AT_REST_KEY: &str = "at-rest.key";

/// How long feature batches are kept: a sweep deletes older ones (object and row).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Feature batches older than this many days (by creation time) are deleted
    /// (`TACIT_RETENTION_DAYS`); 0 keeps them until the user is deleted. Never less
    /// than the envelope acceptance window in effect: the rows are the replay memory.
    pub feature_days: u64,
    /// Seconds between sweeps (`TACIT_RETENTION_SWEEP_S`); the first runs at start.
    pub sweep_interval_s: u64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            feature_days: 180,
            sweep_interval_s: 3600,
        }
    }
}

/// A database URL. It may hold a password, so `Debug` and `Display` show it redacted
/// ([`crate::store::redact_url`]); [`DatabaseUrl::expose`] gives the real one.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL itself, password included: for connecting, never for printing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for DatabaseUrl {
    fn from(url: String) -> Self {
        DatabaseUrl(url)
    }
}

impl From<&str> for DatabaseUrl {
    fn from(url: &str) -> Self {
        DatabaseUrl(url.to_owned())
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", crate::store::redact_url(&self.0))
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::store::redact_url(&self.0))
    }
}

/// A factor service the gateway calls over HTTP.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteFactorSettings {
    /// The factor's name: its OIP model name and the name in answers and templates.
    pub name: String,
    /// Base URL of the service (`http://gait:8080`).
    pub url: String,
    /// Which feature records it scores (`gait`, `keystroke_fixed`, `keystroke_free`);
    /// default: the factor of that name.
    #[serde(default)]
    pub records: Option<String>,
    /// Weight of its evidence in the fusion, 0..=1 (lower it when two factors score
    /// the same behaviour).
    #[serde(default = "full_weight")]
    pub weight: f64,
}

fn full_weight() -> f64 {
    1.0
}

/// How the gateway authenticates (`POST /v1/authenticate`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Factor services called over HTTP (`TACIT_FACTOR_URLS=name[:records]=url,...`).
    /// With `serve --role all`, the built-in factors not listed here run in-process.
    pub factors: Vec<RemoteFactorSettings>,
    /// Time limit of one call to a factor service, in ms (`TACIT_FACTOR_TIMEOUT_MS`).
    pub timeout_ms: u64,
    /// Extra attempts after a failed call (connection error, timeout, 5xx).
    pub retries: u32,
    /// Consecutive failures that open a factor's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before one trial call, in ms.
    pub breaker_cooldown_ms: u64,
    /// Largest difference between a request's time and the server clock, in seconds.
    pub max_request_skew_s: u64,
    /// Newest windows scored per factor and request.
    pub max_windows_scored: usize,
    /// Newest envelopes read for the evidence of one request.
    pub lookback_envelopes: u32,
    /// Newest vectors used for an enrolment.
    pub max_enrol_vectors: usize,
    /// An envelope attached to an authentication that the gateway had already stored
    /// counts as evidence only if it was stored at most this many seconds ago (the
    /// client retrying after a lost answer); an older one is a replay of captured
    /// behaviour and is not judged.
    pub fresh_retry_s: u64,
    /// Thresholds and evidence rules (`TACIT_TARGET_FAR` sets `target_far`).
    pub fusion: tacit_models::fusion::FusionPolicy,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            factors: Vec::new(),
            timeout_ms: 2_000,
            retries: 1,
            breaker_failures: 3,
            breaker_cooldown_ms: 5_000,
            max_request_skew_s: 300,
            max_windows_scored: 16,
            lookback_envelopes: 64,
            max_enrol_vectors: 300,
            fresh_retry_s: 120,
            fusion: tacit_models::fusion::FusionPolicy::default(),
        }
    }
}

/// Parses `name[:records]=url,...` (`TACIT_FACTOR_URLS`).
pub fn parse_factor_urls(v: &str) -> Result<Vec<RemoteFactorSettings>, String> {
    v.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (name, url) = entry
                .split_once('=')
                .ok_or_else(|| format!("{entry:?}: expected name[:records]=url"))?;
            let (name, records) = match name.split_once(':') {
                Some((n, r)) => (n.trim(), Some(r.trim().to_string())),
                None => (name.trim(), None),
            };
            if name.is_empty() || !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("{entry:?}: expected name[:records]=http(s)://..."));
            }
            Ok(RemoteFactorSettings {
                name: name.to_string(),
                url: url.trim().trim_end_matches('/').to_string(),
                records,
                weight: 1.0,
            })
        })
        .collect()
}

/// Settings of a factor service.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FactorSettings {
    /// Object-store prefix of the model artifacts, `PREFIX/FACTOR.tcm`
    /// (`TACIT_MODELS_PREFIX`).
    pub models_prefix: String,
    /// The model artifact as a local file instead (`/models/gait.tcm`,
    /// `file:///models/gait.tcm` or a relative path), e.g. a volume written by a
    /// training Job (`TACIT_MODEL_URL`).
    pub model_url: Option<String>,
    /// How often the model artifact is checked for a new version, in ms
    /// (`TACIT_MODEL_POLL_MS`).
    pub model_poll_ms: u64,
    /// Directory of the job records; default `DATA_DIR/jobs/FACTOR` (`TACIT_JOBS_DIR`).
    pub jobs_dir: Option<PathBuf>,
    /// How long finished job results are kept, in seconds (`TACIT_JOB_TTL_S`).
    pub job_ttl_s: u64,
    /// Most feature files one job may read.
    pub max_job_files: usize,
}

impl Default for FactorSettings {
    fn default() -> Self {
        FactorSettings {
            models_prefix: "models".into(),
            model_url: None,
            model_poll_ms: 5_000,
            jobs_dir: None,
            job_ttl_s: 3_600,
            max_job_files: 10_000,
        }
    }
}

/// S3 connection settings (`TACIT_S3_*`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// Endpoint URL for S3-compatible servers (`TACIT_S3_ENDPOINT`).
    pub endpoint: Option<String>,
    /// Region (`TACIT_S3_REGION`).
    pub region: Option<String>,
    /// Access key id (`TACIT_S3_ACCESS_KEY_ID`, else `AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// Secret (`TACIT_S3_SECRET_ACCESS_KEY`, else `AWS_SECRET_ACCESS_KEY`). Never shown.
    pub secret_access_key: Option<SecretString>,
    /// Allow plain HTTP (local test servers only) (`TACIT_S3_ALLOW_HTTP`).
    pub allow_http: bool,
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// The certificate chain, leaf first (PEM).
    pub cert_file: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// Limits on what the network may send.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body (`TACIT_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Per-request timeout in ms.
    pub request_timeout_ms: u64,
    /// Longest wait for a request head or a TLS handshake, in ms: a client that
    /// trickles its headers (slow loris) is cut off (`TACIT_HEADER_READ_TIMEOUT_MS`).
    pub header_read_timeout_ms: u64,
    /// Most connections open at once; past it new ones are closed at once
    /// (`TACIT_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// Sustained envelopes per second per device (`TACIT_RATE_PER_DEVICE`).
    pub envelopes_per_second_per_device: f64,
    /// Burst size per device, in envelopes.
    pub burst_per_device: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 8 * 1024 * 1024,
            request_timeout_ms: 30_000,
            header_read_timeout_ms: 10_000,
            max_connections: 10_000,
            envelopes_per_second_per_device: 20.0,
            burst_per_device: 600.0,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./tacit-data"),
            database_url: None,
            database_ca_file: None,
            objects_url: None,
            keys_dir: None,
            admin_token: None,
            s3: S3Settings::default(),
            limits: Limits::default(),
            tls: None,
            max_envelope_age_days: 14,
            max_future_skew_s: 600,
            enrolment_token_ttl_s: 24 * 3600,
            factor: FactorSettings::default(),
            auth: AuthSettings::default(),
            at_rest: AtRestSettings::default(),
            retention: RetentionSettings::default(),
        }
    }
}

/// Settings errors.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for these settings.
    #[error("{path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// An environment variable has an unusable value.
    #[error("environment variable {name}: {message}")]
    Env {
        /// Variable.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl Settings {
    /// Defaults, then `file` (if given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        let mut s = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e: toml::de::Error| SettingsError::Parse {
                    path: path.to_path_buf(),
                    // The message and the line only: the full error quotes the line,
                    // which may hold a secret (an unquoted token or database URL).
                    message: match e.span() {
                        Some(span) => format!(
                            "line {}: {}",
                            text[..span.start.min(text.len())].matches('\n').count() + 1,
                            e.message()
                        ),
                        None => e.message().to_owned(),
                    },
                })?
            }
            None => Settings::default(),
        };
        s.apply_env(|k| std::env::var(k).ok())?;
        Ok(s)
    }

    /// Applies `TACIT_*` variables read through `get`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), SettingsError> {
        fn num<T: std::str::FromStr>(name: &'static str, v: &str) -> Result<T, SettingsError> {
            v.parse().map_err(|_| SettingsError::Env {
                name,
                message: format!("not a number: {v:?}"),
            })
        }
        if let Some(v) = get("TACIT_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = get("TACIT_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("TACIT_DATABASE_URL") {
            self.database_url = Some(v.into());
        }
        if let Some(v) = get("TACIT_DATABASE_CA_FILE") {
            self.database_ca_file = Some(v.into());
        }
        if let Some(v) = get("TACIT_OBJECTS_URL") {
            self.objects_url = Some(v);
        }
        if let Some(v) = get("TACIT_KEYS_DIR") {
            self.keys_dir = Some(v.into());
        }
        if let Some(v) = get("TACIT_ADMIN_TOKEN") {
            self.admin_token = Some(v.into());
        }
        if let Some(v) = get("TACIT_S3_ENDPOINT") {
            self.s3.endpoint = Some(v);
        }
        if let Some(v) = get("TACIT_S3_REGION") {
            self.s3.region = Some(v);
        }
        if let Some(v) = get("TACIT_S3_ACCESS_KEY_ID").or_else(|| get("AWS_ACCESS_KEY_ID")) {
            self.s3.access_key_id = Some(v);
        }
        if let Some(v) = get("TACIT_S3_SECRET_ACCESS_KEY").or_else(|| get("AWS_SECRET_ACCESS_KEY"))
        {
            self.s3.secret_access_key = Some(v.into());
        }
        if let Some(v) = get("TACIT_S3_ALLOW_HTTP") {
            self.s3.allow_http = matches!(v.as_str(), "1" | "true" | "yes");
        }
        if let Some(v) = get("TACIT_HEADER_READ_TIMEOUT_MS") {
            self.limits.header_read_timeout_ms = num("TACIT_HEADER_READ_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = get("TACIT_MAX_CONNECTIONS") {
            self.limits.max_connections = num("TACIT_MAX_CONNECTIONS", &v)?;
        }
        match (get("TACIT_TLS_CERT_FILE"), get("TACIT_TLS_KEY_FILE")) {
            (Some(cert), Some(key)) => {
                self.tls = Some(TlsSettings {
                    cert_file: cert.into(),
                    key_file: key.into(),
                });
            }
            (None, None) => {}
            _ => {
                return Err(SettingsError::Env {
                    name: "TACIT_TLS_CERT_FILE",
                    message: "TACIT_TLS_CERT_FILE and TACIT_TLS_KEY_FILE go together".into(),
                });
            }
        }
        if let Some(v) = get("TACIT_MAX_BODY_BYTES") {
            self.limits.max_body_bytes = num("TACIT_MAX_BODY_BYTES", &v)?;
        }
        if let Some(v) = get("TACIT_RATE_PER_DEVICE") {
            self.limits.envelopes_per_second_per_device = num("TACIT_RATE_PER_DEVICE", &v)?;
        }
        if let Some(v) = get("TACIT_MODELS_PREFIX") {
            self.factor.models_prefix = v;
        }
        if let Some(v) = get("TACIT_MODEL_URL") {
            if let Err(message) = crate::store::local_path(&v) {
                return Err(SettingsError::Env {
                    name: "TACIT_MODEL_URL",
                    message: format!("{message} (objects use TACIT_MODELS_PREFIX)"),
                });
            }
            self.factor.model_url = Some(v);
        }
        if let Some(v) = get("TACIT_MODEL_POLL_MS") {
            self.factor.model_poll_ms = num("TACIT_MODEL_POLL_MS", &v)?;
        }
        if let Some(v) = get("TACIT_JOBS_DIR") {
            self.factor.jobs_dir = Some(v.into());
        }
        if let Some(v) = get("TACIT_JOB_TTL_S") {
            self.factor.job_ttl_s = num("TACIT_JOB_TTL_S", &v)?;
        }
        if let Some(v) = get("TACIT_FACTOR_URLS") {
            self.auth.factors = parse_factor_urls(&v).map_err(|message| SettingsError::Env {
                name: "TACIT_FACTOR_URLS",
                message,
            })?;
        }
        if let Some(v) = get("TACIT_FACTOR_TIMEOUT_MS") {
            self.auth.timeout_ms = num("TACIT_FACTOR_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = get("TACIT_TARGET_FAR") {
            let far: f64 = num("TACIT_TARGET_FAR", &v)?;
            if !(far > 0.0 && far < 0.5) {
                return Err(SettingsError::Env {
                    name: "TACIT_TARGET_FAR",
                    message: format!("{v}: expected a rate in (0, 0.5)"),
                });
            }
            self.auth.fusion.target_far = far;
        }
        if let Some(v) = get("TACIT_MAX_ENVELOPE_AGE_DAYS") {
            self.max_envelope_age_days = num("TACIT_MAX_ENVELOPE_AGE_DAYS", &v)?;
        }
        if let Some(v) = get("TACIT_AT_REST") {
            self.at_rest.enabled = match v.to_ascii_lowercase().as_str() {
                "on" | "1" | "true" | "yes" => true,
                "off" | "0" | "false" | "no" => false,
                _ => {
                    return Err(SettingsError::Env {
                        name: "TACIT_AT_REST",
                        message: format!("{v:?}: expected on or off"),
                    });
                }
            };
        }
        if let Some(v) = get("TACIT_AT_REST_KEY_FILE") {
            self.at_rest.key_file = Some(v.into());
        }
        if let Some(v) = get("TACIT_AT_REST_OLD_KEY_FILES") {
            self.at_rest.old_key_files = v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect();
        }
        if let Some(v) = get("TACIT_RETENTION_DAYS") {
            self.retention.feature_days = num("TACIT_RETENTION_DAYS", &v)?;
        }
        if let Some(v) = get("TACIT_RETENTION_SWEEP_S") {
            self.retention.sweep_interval_s = num("TACIT_RETENTION_SWEEP_S", &v)?;
        }
        Ok(())
    }

    /// The database URL in force (with its password: for connecting, not printing).
    pub fn database_url(&self) -> DatabaseUrl {
        self.database_url.clone().unwrap_or_else(|| {
            DatabaseUrl(format!(
                "sqlite://{}",
                self.data_dir.join("tacit.sqlite3").display()
            ))
        })
    }

    /// The object store URL in force.
    pub fn objects_url(&self) -> String {
        // A plain path, not a `file://` URL: a relative data directory would read as
        // a host name in a URL.
        self.objects_url
            .clone()
            .unwrap_or_else(|| self.data_dir.join("objects").display().to_string())
    }

    /// The at-rest key file in force (`None`: encryption at rest is off).
    pub fn at_rest_key_file(&self) -> Option<PathBuf> {
        if !self.at_rest.enabled {
            return None;
        }
        Some(
            self.at_rest
                .key_file
                .clone()
                .unwrap_or_else(|| self.keys_dir().join(DEFAULT_AT_REST_KEY)),
        )
    }

    /// The key ring directory in force.
    pub fn keys_dir(&self) -> PathBuf {
        self.keys_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_file_and_env_layer_in_order() {
        let s = Settings::default();
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert_eq!(
            s.database_url().expose(),
            "sqlite://./tacit-data/tacit.sqlite3"
        );
        assert_eq!(s.objects_url(), "./tacit-data/objects");
        let dir = std::env::temp_dir().join(format!("tacit-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("tacit.toml");
        std::fs::write(
            &f,
            "listen = \"0.0.0.0:9000\"\n[limits]\nmax_body_bytes = 1000\n",
        )
        .unwrap();
        let mut s = Settings::load(Some(&f)).unwrap();
        assert_eq!(s.listen, "0.0.0.0:9000");
        assert_eq!(s.limits.max_body_bytes, 1000);
        s.apply_env(|k| (k == "TACIT_LISTEN").then(|| "127.0.0.1:1".to_string()))
            .unwrap();
        assert_eq!(s.listen, "127.0.0.1:1");
        assert!(
            s.apply_env(|k| (k == "TACIT_MAX_BODY_BYTES").then(|| "lots".to_string()))
                .is_err()
        );
        s.apply_env(|k| {
            (k == "TACIT_FACTOR_URLS")
                .then(|| "gait=http://g:1/, py:keystroke_fixed=https://p".to_string())
        })
        .unwrap();
        assert_eq!(s.auth.factors.len(), 2);
        assert_eq!(s.auth.factors[0].url, "http://g:1");
        assert_eq!(
            s.auth.factors[1].records.as_deref(),
            Some("keystroke_fixed")
        );
        for bad in ["gait", "gait=ftp://x", "=http://x"] {
            assert!(
                s.apply_env(|k| (k == "TACIT_FACTOR_URLS").then(|| bad.to_string()))
                    .is_err(),
                "{bad}"
            );
        }
        assert!(
            s.apply_env(|k| (k == "TACIT_TARGET_FAR").then(|| "0.9".to_string()))
                .is_err()
        );
        // Encryption at rest and retention.
        s.apply_env(|k| match k {
            "TACIT_AT_REST_KEY_FILE" => Some("/k/new".into()),
            "TACIT_AT_REST_OLD_KEY_FILES" => Some(" /k/a, ,/k/b ".into()),
            "TACIT_RETENTION_DAYS" => Some("30".into()),
            "TACIT_RETENTION_SWEEP_S" => Some("60".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.at_rest.key_file.as_deref(), Some(Path::new("/k/new")));
        assert_eq!(
            s.at_rest.old_key_files,
            [PathBuf::from("/k/a"), PathBuf::from("/k/b")]
        );
        assert_eq!(
            (s.retention.feature_days, s.retention.sweep_interval_s),
            (30, 60)
        );
        assert!(
            s.apply_env(|k| (k == "TACIT_RETENTION_DAYS").then(|| "forever".to_string()))
                .is_err()
        );
        // Encryption at rest: on by default with the key in the key directory; off
        // only when asked for.
        let d = Settings::default();
        assert_eq!(
            d.at_rest_key_file(),
            Some(PathBuf::from("./tacit-data/keys/at-rest.key"))
        );
        let mut off = Settings::default();
        off.apply_env(|k| (k == "TACIT_AT_REST").then(|| "off".to_string()))
            .unwrap();
        assert_eq!(off.at_rest_key_file(), None);
        assert!(
            off.apply_env(|k| (k == "TACIT_AT_REST").then(|| "maybe".to_string()))
                .is_err()
        );
        // The PostgreSQL CA file.
        s.apply_env(|k| (k == "TACIT_DATABASE_CA_FILE").then(|| "/etc/pg-ca.pem".to_string()))
            .unwrap();
        assert_eq!(
            s.database_ca_file.as_deref(),
            Some(Path::new("/etc/pg-ca.pem"))
        );
        // A parse error names the line, never quotes it (it may hold a secret).
        std::fs::write(&f, "listen = \"x\"\nadmin_token = hunter-secret\n").unwrap();
        let err = Settings::load(Some(&f)).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("hunter"), "{err}");
        std::fs::write(&f, "listn = 1\n").unwrap();
        assert!(matches!(
            Settings::load(Some(&f)),
            Err(SettingsError::Parse { .. })
        ));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn debug_shows_no_secret() {
        let mut s = Settings::default();
        s.apply_env(|k| match k {
            "TACIT_ADMIN_TOKEN" => Some("admin-hunter1".into()),
            "TACIT_DATABASE_URL" => Some("postgres://tacit:pg-hunter2@db/tacit".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("s3-hunter3".into()),
            _ => None,
        })
        .unwrap();
        let shown = format!("{s:?} {s:#?} {}", s.database_url());
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(
            shown.contains("postgres://tacit:<redacted>@db/tacit"),
            "{shown}"
        );
        // The values are still there for those that need them.
        use secrecy::ExposeSecret;
        assert_eq!(
            s.admin_token.as_ref().map(|t| t.expose_secret()),
            Some("admin-hunter1")
        );
        assert!(s.database_url().expose().contains("pg-hunter2"));
    }

    #[test]
    fn every_data_dir_form_gives_a_usable_store() {
        use crate::store::{DatabaseKind, ObjectsConfig};
        for dir in [
            "tacit-data",
            "./tacit-data",
            "../x/tacit-data",
            "/var/lib/tacit",
        ] {
            let s = Settings {
                data_dir: dir.into(),
                ..Settings::default()
            };
            let objects = ObjectsConfig::parse(&s.objects_url(), None).unwrap();
            assert_eq!(
                objects,
                ObjectsConfig::Local(Path::new(dir).join("objects")),
                "{dir}"
            );
            assert_eq!(
                DatabaseKind::parse(s.database_url().expose()).ok(),
                Some(DatabaseKind::Sqlite(Path::new(dir).join("tacit.sqlite3"))),
                "{dir}"
            );
        }
    }
}
