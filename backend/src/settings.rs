//! Server settings: defaults that work offline on a laptop, overridden by a TOML file
//! and then by `TACIT_*` environment variables (the container-friendly way).

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tacit_shared::payload::FactorKind;

/// All settings. Every field has a default; unknown keys in the file are errors.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// admin endpoints answer 403. Never shown (`Debug` and `config` print `[REDACTED]`).
    #[serde(serialize_with = "redacted", deserialize_with = "secret")]
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
    /// The bearer token between the gateway and its factor services.
    pub factor_auth: FactorAuthSettings,
    /// How long feature batches are kept.
    pub retention: RetentionSettings,
    /// Retraining the population models from the users' uploads in the embedded
    /// default (`serve --role all`).
    pub learning: LearningSettings,
    /// Trace export.
    pub telemetry: TelemetrySettings,
    /// The signed verdict of an authentication and the relying party's read of
    /// decisions.
    pub verdict: VerdictSettings,
}

/// Longest verdict lifetime allowed, in seconds: a verdict answers one request.
pub const MAX_VERDICT_TTL_S: u64 = 600;

/// The signed verdict (`crate::verdict`) and the decisions kept for the relying party
/// (`GET /v1/users/{id}/decisions`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerdictSettings {
    /// The verdict's `iss` claim (`TACIT_VERDICT_ISSUER`): relying parties check it.
    pub issuer: String,
    /// The verdict's `aud` claim, when set (`TACIT_VERDICT_AUDIENCE`): the relying
    /// party's own name, for deployments where one gateway serves several.
    pub audience: Option<String>,
    /// Lifetime of a verdict in seconds, 1..=600 (`TACIT_VERDICT_TTL_S`): long enough to
    /// travel from the phone to the relying party, short enough that a stolen token
    /// is soon worthless. Also how long a retired signing key must stay published.
    pub ttl_s: u64,
    /// Bearer token of the relying party's server for `GET /v1/users/{id}/decisions`
    /// (`TACIT_RELYING_PARTY_TOKEN`); the admin token works too. Never shown.
    #[serde(serialize_with = "redacted", deserialize_with = "secret")]
    pub relying_party_token: Option<SecretString>,
    /// Newest decisions kept per user, 1..=10000 (`TACIT_DECISIONS_KEPT`); older ones
    /// are deleted as new ones are recorded.
    pub decisions_kept: u32,
    /// Days a decision is kept at most, 1..=3650 (`TACIT_DECISION_RETENTION_DAYS`); the
    /// retention sweep deletes older ones.
    pub decision_days: u64,
}

impl Default for VerdictSettings {
    fn default() -> Self {
        VerdictSettings {
            issuer: "tacit".into(),
            audience: None,
            ttl_s: 120,
            relying_party_token: None,
            decisions_kept: 100,
            decision_days: 30,
        }
    }
}

/// Trace export (logs always go to stderr).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Base URL of an OpenTelemetry collector's OTLP/HTTP receiver
    /// (`http://otel-collector:4318`); the request spans go to `URL/v1/traces`
    /// (`TACIT_OTLP_ENDPOINT`). Unset: no export.
    pub otlp_endpoint: Option<String>,
}

/// Encryption of templates and features at rest (`store::at_rest`), on by default. The
/// key is a file of 32 bytes or 64 hex characters, mode 0600: by default
/// `KEYS_DIR/at-rest.key`, which `tacit-backend keygen` writes; in production mounted
/// from a secret store, or a data key decrypted by a KMS at deployment (`tacit-backend
/// keys at-rest-keygen` makes one). Every service that reads features (gateway and
/// factor services) needs the same keys. Without a key, `serve` refuses to start unless
/// encryption at rest is turned off explicitly.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    #[serde(deserialize_with = "path_list")]
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

/// The bearer token of gateway → factor calls (`crate::factor::auth`), on by default. It
/// is a file of at least 32 characters, mode 0600: by default `KEYS_DIR/factor.token`,
/// which `tacit-backend keygen` writes; in production a Secret mounted into the gateway
/// and every factor service. A factor service (`serve --role factor:NAME`) and a gateway
/// with remote factors refuse to start without it unless it is turned off explicitly.
/// Factors that run in the gateway's process (`--role all`) need none.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FactorAuthSettings {
    /// Whether factor calls carry and require the token (`TACIT_FACTOR_AUTH=on|off`);
    /// `off` only where the network alone keeps everyone but the gateway away from the
    /// factor services.
    pub enabled: bool,
    /// The token file (`TACIT_FACTOR_TOKEN_FILE`); default `KEYS_DIR/factor.token`. The
    /// settings hold only its path: the token itself is never shown or logged.
    pub token_file: Option<PathBuf>,
}

impl Default for FactorAuthSettings {
    fn default() -> Self {
        FactorAuthSettings {
            enabled: true,
            token_file: None,
        }
    }
}

/// The name of the factor token in the key directory, when no file is configured.
pub const DEFAULT_FACTOR_TOKEN: &str = "factor.token";

/// Retraining in the embedded default: every `retrain_interval_h` hours each built-in
/// factor is retrained from the uploads of the users who consented to training, judged
/// by the gate and promoted when it passes (`tacit-backend retrain`, in-process). A
/// cluster runs the CronJobs of `deploy/k8s/overlays/cluster/retrain.yaml` instead.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LearningSettings {
    /// Hours between retrainings (`TACIT_RETRAIN_INTERVAL_H`); 0, the default: never.
    /// Training takes the gateway's CPU for minutes (gait longer), so a deployment
    /// turns it on knowingly.
    pub retrain_interval_h: u64,
}

/// How long feature batches are kept: a sweep deletes older ones (object and row).
#[derive(Debug, Clone, Deserialize, Serialize)]
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

/// Shown redacted, as in `Debug`: serialising is for showing (`tacit-backend config`).
impl Serialize for DatabaseUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::store::redact_url(&self.0))
    }
}

/// A secret: a string, or a number written without quotes (`admin_token = 12345678`),
/// read as its text. Any other type is refused without quoting the value.
fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Text(String),
        Unsigned(u64),
        Signed(i64),
    }
    match Option::<Form>::deserialize(d) {
        Ok(None) => Ok(None),
        Ok(Some(Form::Text(s))) => Ok(Some(s.into())),
        Ok(Some(Form::Unsigned(n))) => Ok(Some(n.to_string().into())),
        Ok(Some(Form::Signed(n))) => Ok(Some(n.to_string().into())),
        Err(_) => Err(serde::de::Error::custom(
            "expected a string (the value is not shown: it is a secret)",
        )),
    }
}

/// Serialises a secret as `[REDACTED]` (never its value).
fn redacted<S: serde::Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_some("[REDACTED]"),
        None => s.serialize_none(),
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
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteFactorSettings {
    /// The factor's name: its OIP model name and the name in answers and templates.
    pub name: String,
    /// Base URL of the service (`http://gait:8080`).
    pub url: String,
    /// Which feature records it scores (`gait`, `keystroke-fixed`, `keystroke-free`);
    /// default: the factor of that name.
    #[serde(default)]
    pub records: Option<FactorKind>,
    /// Weight of its evidence in the fusion, 0..=1 (lower it when two factors score
    /// the same behaviour).
    #[serde(default = "full_weight")]
    pub weight: f64,
}

fn full_weight() -> f64 {
    1.0
}

/// How the gateway authenticates (`POST /v1/authenticate`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Factor services called over HTTP (`TACIT_FACTOR_URLS=name[:records]=url,...`).
    /// With `serve --role all`, the built-in factors not listed here run in-process.
    #[serde(deserialize_with = "factor_list")]
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
    /// Templates built by an older model rebuilt in the background per minute, after a
    /// new model is promoted (`TACIT_TEMPLATE_REBUILDS_PER_MINUTE`; 0: only when the
    /// user next authenticates). Each rebuild is one enrolment call to the factor.
    pub template_rebuilds_per_minute: u32,
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
            template_rebuilds_per_minute: 1_200,
            fusion: tacit_models::fusion::FusionPolicy::default(),
        }
    }
}

/// A `TACIT_FACTOR_URLS` entry that is not `name[:records]=http(s)://...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactorUrlError {
    /// Not of the form `name[:records]=url`.
    #[error("{0:?}: expected name[:records]=http(s)://...")]
    Form(String),
    /// The records are not a factor's.
    #[error("{entry:?}: {source}")]
    Records {
        /// The entry.
        entry: String,
        /// Cause.
        #[source]
        source: tacit_shared::payload::UnknownFactor,
    },
}

/// Parses `name[:records]=url,...` (`TACIT_FACTOR_URLS`).
pub fn parse_factor_urls(v: &str) -> Result<Vec<RemoteFactorSettings>, FactorUrlError> {
    v.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let form = || FactorUrlError::Form(entry.to_owned());
            let (name, url) = entry.split_once('=').ok_or_else(form)?;
            let (name, records) = match name.split_once(':') {
                Some((n, r)) => (
                    n.trim(),
                    Some(r.trim().parse().map_err(|source| FactorUrlError::Records {
                        entry: entry.to_owned(),
                        source,
                    })?),
                ),
                None => (name.trim(), None),
            };
            let url = url.trim();
            if name.is_empty() || !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(form());
            }
            Ok(RemoteFactorSettings {
                name: name.to_string(),
                url: url.trim_end_matches('/').to_string(),
                records,
                weight: 1.0,
            })
        })
        .collect()
}

/// The factor list: `[[auth.factors]]` tables, or the compact `name[:records]=url,...`.
fn factor_list<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<RemoteFactorSettings>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Compact(String),
        Tables(Vec<RemoteFactorSettings>),
    }
    match Form::deserialize(d)? {
        Form::Compact(s) => parse_factor_urls(&s).map_err(serde::de::Error::custom),
        Form::Tables(t) => Ok(t
            .into_iter()
            .map(|f| RemoteFactorSettings {
                url: f.url.trim_end_matches('/').to_owned(),
                ..f
            })
            .collect()),
    }
}

/// A list of paths: a TOML array, or one comma-separated string (blank items skipped).
fn path_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Compact(String),
        List(Vec<PathBuf>),
    }
    Ok(match Form::deserialize(d)? {
        Form::Compact(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect(),
        Form::List(l) => l,
    })
}

/// A list of networks: a TOML array, or one comma-separated string (the environment's
/// form); each an address or a CIDR network.
fn network_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Compact(String),
        List(Vec<String>),
    }
    let items = match Form::deserialize(d)? {
        Form::Compact(s) => s.split(',').map(str::to_owned).collect(),
        Form::List(l) => l,
    };
    items
        .iter()
        .map(|i| i.trim())
        .filter(|i| !i.is_empty())
        .map(|i| {
            i.parse::<ipnet::IpNet>()
                .or_else(|_| i.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "{i:?}: expected an address or a CIDR network"
                    ))
                })
        })
        .collect()
}

/// Settings of a factor service.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// Most jobs running at once (`TACIT_MAX_RUNNING_JOBS`); past it `/train` and
    /// `/input` answer 503 with `Retry-After`.
    pub max_running_jobs: usize,
    /// Most jobs one caller (source address) may have running at once
    /// (`TACIT_MAX_JOBS_PER_CALLER`); past it the caller gets 429 with `Retry-After`.
    pub max_jobs_per_caller: usize,
    /// Most job records kept (`TACIT_MAX_JOB_RECORDS`): the oldest finished ones are
    /// deleted to make room, so the job directory stays bounded whatever callers do.
    pub max_job_records: usize,
    /// Where the model's network runs (`TACIT_FACTOR_DEVICE`): `auto` (the default: the
    /// GPU when the binary is built with the `cuda` feature and a GPU answers, else the
    /// CPU), `cpu`, or `cuda` (the GPU, or the CPU with a warning). Also the device
    /// of population training (`/train`).
    pub device: String,
    /// Most forward passes running at once off the request threads: requests of more
    /// than 16 rows and `/output` (`TACIT_MAX_PASSES`); 0, the default, is one per core.
    pub max_passes: usize,
    /// Most such passes waiting for one of those places (`TACIT_MAX_QUEUED_PASSES`);
    /// past it a request is answered 503 with `Retry-After` at once.
    pub max_queued_passes: usize,
    /// Fewest rows of a forward pass that run on the GPU (`TACIT_FACTOR_GPU_MIN_ROWS`);
    /// smaller passes stay on the CPU, where the copy to the device would cost more
    /// than the pass (`scripts/gpu-check.sh` measures both).
    pub gpu_min_rows: usize,
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
            max_running_jobs: 16,
            max_jobs_per_caller: 4,
            max_job_records: 1_000,
            device: "auto".into(),
            gpu_min_rows: tacit_models::template::GPU_MIN_ROWS,
            max_passes: 0,
            max_queued_passes: 64,
        }
    }
}

/// S3 connection settings (`TACIT_S3_*`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    /// Endpoint URL for S3-compatible servers (`TACIT_S3_ENDPOINT`).
    pub endpoint: Option<String>,
    /// Region (`TACIT_S3_REGION`).
    pub region: Option<String>,
    /// Access key id (`TACIT_S3_ACCESS_KEY_ID`, else `AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// Secret (`TACIT_S3_SECRET_ACCESS_KEY`, else `AWS_SECRET_ACCESS_KEY`). Never shown.
    #[serde(serialize_with = "redacted", deserialize_with = "secret")]
    pub secret_access_key: Option<SecretString>,
    /// Allow plain HTTP (local test servers only) (`TACIT_S3_ALLOW_HTTP`).
    pub allow_http: bool,
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// The certificate chain, leaf first (PEM).
    pub cert_file: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// Limits on what the network may send.
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    /// Sustained rate, per client address, of work that does not authenticate:
    /// envelopes and authentication requests that fail verification (unknown device,
    /// bad signature, malformed). Past it the address is answered `429` before any
    /// verification (`TACIT_UNAUTHENTICATED_RATE`). Never charged to a device.
    pub unauthenticated_per_second_per_address: f64,
    /// Burst of such work per client address (`TACIT_UNAUTHENTICATED_BURST`).
    pub unauthenticated_burst_per_address: f64,
    /// Proxies (addresses or CIDR networks) whose `X-Forwarded-For` is believed when
    /// telling client addresses apart, e.g. the ingress's pod network
    /// (`TACIT_TRUSTED_PROXIES`, `["10.0.0.0/8"]`). Empty: the TCP peer is the client.
    #[serde(deserialize_with = "network_list")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
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
            unauthenticated_per_second_per_address: 10.0,
            unauthenticated_burst_per_address: 600.0,
            trusted_proxies: Vec::new(),
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
            factor_auth: FactorAuthSettings::default(),
            retention: RetentionSettings::default(),
            learning: LearningSettings::default(),
            telemetry: TelemetrySettings::default(),
            verdict: VerdictSettings::default(),
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
    /// The file is not valid TOML.
    #[error("{path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Parser message.
        message: String,
    },
    /// A value has the wrong type or shape, or a key is unknown: the message names the
    /// key and where the value came from (the file, or the environment variable).
    #[error("{0}")]
    Value(Box<figment::Error>),
    /// A value has the right type but is outside what the setting allows.
    #[error("{key} ({env}): {message}")]
    Invalid {
        /// The setting, as a TOML key path.
        key: &'static str,
        /// Its environment variable.
        env: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl From<figment::Error> for SettingsError {
    fn from(e: figment::Error) -> Self {
        SettingsError::Value(Box::new(e))
    }
}

/// Every setting's environment variable: one mapping, for every field (the TOML key
/// path → the variable). Values from the environment are strings; numbers and booleans
/// (`on`/`off`, `true`/`false`, `yes`/`no`, `1`/`0`) are read from them where the
/// setting is one, so a token or password of digits stays a string. Lists take a
/// comma-separated form (`TACIT_FACTOR_URLS=name[:records]=url,...`,
/// `TACIT_AT_REST_OLD_KEY_FILES=a,b`), which TOML accepts too.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("listen", "TACIT_LISTEN"),
    ("data_dir", "TACIT_DATA_DIR"),
    ("database_url", "TACIT_DATABASE_URL"),
    ("database_ca_file", "TACIT_DATABASE_CA_FILE"),
    ("objects_url", "TACIT_OBJECTS_URL"),
    ("keys_dir", "TACIT_KEYS_DIR"),
    ("admin_token", "TACIT_ADMIN_TOKEN"),
    ("max_envelope_age_days", "TACIT_MAX_ENVELOPE_AGE_DAYS"),
    ("max_future_skew_s", "TACIT_MAX_FUTURE_SKEW_S"),
    ("enrolment_token_ttl_s", "TACIT_ENROLMENT_TOKEN_TTL_S"),
    ("s3.endpoint", "TACIT_S3_ENDPOINT"),
    ("s3.region", "TACIT_S3_REGION"),
    ("s3.access_key_id", "TACIT_S3_ACCESS_KEY_ID"),
    ("s3.secret_access_key", "TACIT_S3_SECRET_ACCESS_KEY"),
    ("s3.allow_http", "TACIT_S3_ALLOW_HTTP"),
    ("limits.max_body_bytes", "TACIT_MAX_BODY_BYTES"),
    ("limits.request_timeout_ms", "TACIT_REQUEST_TIMEOUT_MS"),
    (
        "limits.header_read_timeout_ms",
        "TACIT_HEADER_READ_TIMEOUT_MS",
    ),
    ("limits.max_connections", "TACIT_MAX_CONNECTIONS"),
    (
        "limits.envelopes_per_second_per_device",
        "TACIT_RATE_PER_DEVICE",
    ),
    ("limits.burst_per_device", "TACIT_BURST_PER_DEVICE"),
    (
        "limits.unauthenticated_per_second_per_address",
        "TACIT_UNAUTHENTICATED_RATE",
    ),
    (
        "limits.unauthenticated_burst_per_address",
        "TACIT_UNAUTHENTICATED_BURST",
    ),
    ("limits.trusted_proxies", "TACIT_TRUSTED_PROXIES"),
    ("tls.cert_file", "TACIT_TLS_CERT_FILE"),
    ("tls.key_file", "TACIT_TLS_KEY_FILE"),
    ("factor.models_prefix", "TACIT_MODELS_PREFIX"),
    ("factor.model_url", "TACIT_MODEL_URL"),
    ("factor.model_poll_ms", "TACIT_MODEL_POLL_MS"),
    ("factor.jobs_dir", "TACIT_JOBS_DIR"),
    ("factor.job_ttl_s", "TACIT_JOB_TTL_S"),
    ("factor.max_job_files", "TACIT_MAX_JOB_FILES"),
    ("factor.device", "TACIT_FACTOR_DEVICE"),
    ("factor.gpu_min_rows", "TACIT_FACTOR_GPU_MIN_ROWS"),
    ("factor.max_passes", "TACIT_MAX_PASSES"),
    ("factor.max_queued_passes", "TACIT_MAX_QUEUED_PASSES"),
    ("factor.max_running_jobs", "TACIT_MAX_RUNNING_JOBS"),
    ("factor.max_jobs_per_caller", "TACIT_MAX_JOBS_PER_CALLER"),
    ("factor.max_job_records", "TACIT_MAX_JOB_RECORDS"),
    ("auth.factors", "TACIT_FACTOR_URLS"),
    ("auth.timeout_ms", "TACIT_FACTOR_TIMEOUT_MS"),
    ("auth.retries", "TACIT_FACTOR_RETRIES"),
    ("auth.breaker_failures", "TACIT_BREAKER_FAILURES"),
    ("auth.breaker_cooldown_ms", "TACIT_BREAKER_COOLDOWN_MS"),
    ("auth.max_request_skew_s", "TACIT_MAX_REQUEST_SKEW_S"),
    ("auth.max_windows_scored", "TACIT_MAX_WINDOWS_SCORED"),
    ("auth.lookback_envelopes", "TACIT_LOOKBACK_ENVELOPES"),
    ("auth.max_enrol_vectors", "TACIT_MAX_ENROL_VECTORS"),
    ("auth.fresh_retry_s", "TACIT_FRESH_RETRY_S"),
    (
        "auth.template_rebuilds_per_minute",
        "TACIT_TEMPLATE_REBUILDS_PER_MINUTE",
    ),
    ("auth.fusion.target_far", "TACIT_TARGET_FAR"),
    ("auth.fusion.reject_llr", "TACIT_REJECT_LLR"),
    ("auth.fusion.half_life_s", "TACIT_EVIDENCE_HALF_LIFE_S"),
    ("auth.fusion.max_age_s", "TACIT_MAX_EVIDENCE_AGE_S"),
    (
        "auth.fusion.max_consecutive_rejects",
        "TACIT_MAX_CONSECUTIVE_REJECTS",
    ),
    ("at_rest.enabled", "TACIT_AT_REST"),
    ("at_rest.key_file", "TACIT_AT_REST_KEY_FILE"),
    ("at_rest.old_key_files", "TACIT_AT_REST_OLD_KEY_FILES"),
    ("factor_auth.enabled", "TACIT_FACTOR_AUTH"),
    ("factor_auth.token_file", "TACIT_FACTOR_TOKEN_FILE"),
    ("retention.feature_days", "TACIT_RETENTION_DAYS"),
    ("retention.sweep_interval_s", "TACIT_RETENTION_SWEEP_S"),
    ("learning.retrain_interval_h", "TACIT_RETRAIN_INTERVAL_H"),
    ("telemetry.otlp_endpoint", "TACIT_OTLP_ENDPOINT"),
    ("verdict.issuer", "TACIT_VERDICT_ISSUER"),
    ("verdict.audience", "TACIT_VERDICT_AUDIENCE"),
    ("verdict.ttl_s", "TACIT_VERDICT_TTL_S"),
    ("verdict.relying_party_token", "TACIT_RELYING_PARTY_TOKEN"),
    ("verdict.decisions_kept", "TACIT_DECISIONS_KEPT"),
    ("verdict.decision_days", "TACIT_DECISION_RETENTION_DAYS"),
];

/// The standard AWS variables, read for the S3 credentials when the `TACIT_S3_*` ones
/// are not set (SDKs and CI set these).
const AWS_FALLBACK: &[(&str, &str)] = &[
    ("s3.access_key_id", "AWS_ACCESS_KEY_ID"),
    ("s3.secret_access_key", "AWS_SECRET_ACCESS_KEY"),
];

/// The environment variable of a setting (`auth.fusion.target_far` → `TACIT_TARGET_FAR`).
pub fn env_var_of(key: &str) -> Option<&'static str> {
    ENV_VARS.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// The settings file as a figment layer: parsed here (not by figment's TOML provider)
/// so that a syntax error names the line without quoting it — the line may hold a
/// secret, an unquoted token or database URL.
struct TomlLayer {
    path: PathBuf,
    table: toml::Table,
}

impl TomlLayer {
    fn read(path: &Path) -> Result<TomlLayer, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let table = text
            .parse::<toml::Table>()
            .map_err(|e| SettingsError::Parse {
                path: path.to_path_buf(),
                message: match e.span() {
                    Some(span) => format!(
                        "line {}: {}",
                        text[..span.start.min(text.len())].matches('\n').count() + 1,
                        e.message()
                    ),
                    None => e.message().to_owned(),
                },
            })?;
        Ok(TomlLayer {
            path: path.to_path_buf(),
            table,
        })
    }
}

impl figment::Provider for TomlLayer {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("TOML file").source(self.path.display().to_string())
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        figment::providers::Serialized::defaults(&self.table).data()
    }
}

/// The environment as a figment layer: the variables of [`ENV_VARS`] (and the AWS
/// fallbacks) that are set, each a string at its key path. Hand-rolled over figment's
/// `Env` provider because that one parses every value (`1234` becomes a number and no
/// longer deserialises as a token) and turns on every `TACIT_*` variable, including
/// those of the tools around the server; errors name the variable, not the key path.
///
/// Floating-point settings are the exception: figment's lossy reading parses a short
/// decimal as `f32` (`0.001` became 0.0010000000474974513) and no exponent form, so a
/// variable whose setting is a float in the defaults is parsed here, as `f64`.
struct EnvLayer {
    values: Vec<(&'static str, figment::value::Value)>,
}

impl EnvLayer {
    fn read(get: &dyn Fn(&str) -> Option<String>) -> EnvLayer {
        let defaults =
            figment::Figment::from(figment::providers::Serialized::defaults(Settings::default()));
        let is_float = |key: &str| {
            matches!(
                defaults.find_value(key),
                Ok(figment::value::Value::Num(
                    _,
                    figment::value::Num::F64(_) | figment::value::Num::F32(_)
                ))
            )
        };
        let mut values = Vec::new();
        for (key, var) in ENV_VARS {
            let fallback = AWS_FALLBACK
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, aws)| get(aws));
            let Some(v) = get(var).or(fallback) else {
                continue;
            };
            let value = match v.trim().parse::<f64>() {
                Ok(x) if is_float(key) => x.into(),
                _ => v.into(),
            };
            values.push((*key, value));
        }
        EnvLayer { values }
    }
}

impl figment::Provider for EnvLayer {
    fn metadata(&self) -> figment::Metadata {
        // Errors name the variable; a table's error (a missing field) names its
        // variables.
        figment::Metadata::named("environment").interpolater(|_, keys: &[&str]| {
            let key = keys.join(".");
            if let Some(var) = env_var_of(&key) {
                return var.to_owned();
            }
            let prefix = format!("{key}.");
            let vars: Vec<&str> = ENV_VARS
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(_, v)| *v)
                .collect();
            if vars.is_empty() {
                key
            } else {
                vars.join(" and ")
            }
        })
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let mut dict = figment::value::Dict::new();
        for (key, value) in &self.values {
            insert_at(&mut dict, key, value.clone());
        }
        Ok(figment::Profile::Default.collect(dict))
    }
}

/// Sets `value` at the dotted `path` of `dict`, making the tables on the way.
fn insert_at(dict: &mut figment::value::Dict, path: &str, value: figment::value::Value) {
    match path.split_once('.') {
        None => {
            dict.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let entry = dict
                .entry(head.to_owned())
                .or_insert_with(|| figment::value::Dict::new().into());
            if let figment::value::Value::Dict(_, inner) = entry {
                insert_at(inner, rest, value);
            }
        }
    }
}

impl Settings {
    /// Defaults, then `file` (if given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        Settings::load_with_env(file, &|k| std::env::var(k).ok())
    }

    /// [`Settings::load`] with the environment read through `get` (tests).
    pub fn load_with_env(
        file: Option<&Path>,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, SettingsError> {
        let mut figment = figment::Figment::new();
        if let Some(path) = file {
            figment = figment.merge(TomlLayer::read(path)?);
        }
        // Lossy: a string of digits or `on`/`off` is read as a number or boolean where
        // the setting is one — from the environment (all strings) and from TOML alike.
        let settings: Settings = figment.merge(EnvLayer::read(get)).extract_lossy()?;
        settings.validate()?;
        Ok(settings)
    }

    /// The checks beyond types, the same whichever layer set the value.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key: &'static str, message: String| SettingsError::Invalid {
            key,
            env: env_var_of(key).unwrap_or("-"),
            message,
        };
        let far = self.auth.fusion.target_far;
        if !(far > 0.0 && far < 0.5) {
            return Err(invalid(
                "auth.fusion.target_far",
                format!("{far}: expected a rate in (0, 0.5)"),
            ));
        }
        // Floats: finite and in their range (a NaN rate or an infinite half-life would
        // quietly turn a protection off).
        let fusion = &self.auth.fusion;
        for (key, v, ok, expected) in [
            (
                "limits.envelopes_per_second_per_device",
                self.limits.envelopes_per_second_per_device,
                self.limits.envelopes_per_second_per_device > 0.0,
                "a rate above 0",
            ),
            (
                "limits.burst_per_device",
                self.limits.burst_per_device,
                self.limits.burst_per_device >= 1.0,
                "at least 1",
            ),
            (
                "limits.unauthenticated_per_second_per_address",
                self.limits.unauthenticated_per_second_per_address,
                self.limits.unauthenticated_per_second_per_address > 0.0,
                "a rate above 0",
            ),
            (
                "limits.unauthenticated_burst_per_address",
                self.limits.unauthenticated_burst_per_address,
                self.limits.unauthenticated_burst_per_address >= 1.0,
                "at least 1",
            ),
            (
                "auth.fusion.half_life_s",
                fusion.half_life_s,
                fusion.half_life_s > 0.0,
                "seconds above 0",
            ),
            (
                "auth.fusion.max_age_s",
                fusion.max_age_s,
                fusion.max_age_s > 0.0,
                "seconds above 0",
            ),
            (
                "auth.fusion.reject_llr",
                fusion.reject_llr,
                fusion.reject_llr < 0.0,
                "below 0 (a reject needs evidence against the user)",
            ),
        ] {
            if !(v.is_finite() && ok) {
                return Err(invalid(key, format!("{v}: expected {expected}")));
            }
        }
        if let Err(e) = self
            .factor
            .device
            .parse::<tacit_models::device::DeviceChoice>()
        {
            return Err(invalid("factor.device", e.to_string()));
        }
        if self.factor.gpu_min_rows == 0 {
            return Err(invalid(
                "factor.gpu_min_rows",
                "0: expected at least 1 row".into(),
            ));
        }
        // Durations multiplied into milliseconds: bounded so that no product overflows.
        const DAY_S: u64 = 24 * 3600;
        for (key, v, max) in [
            ("max_envelope_age_days", self.max_envelope_age_days, 3650),
            ("max_future_skew_s", self.max_future_skew_s, DAY_S),
            (
                "enrolment_token_ttl_s",
                self.enrolment_token_ttl_s,
                365 * DAY_S,
            ),
            (
                "auth.max_request_skew_s",
                self.auth.max_request_skew_s,
                DAY_S,
            ),
            ("auth.fresh_retry_s", self.auth.fresh_retry_s, DAY_S),
            (
                "auth.template_rebuilds_per_minute",
                u64::from(self.auth.template_rebuilds_per_minute),
                600_000,
            ),
            ("retention.feature_days", self.retention.feature_days, 36500),
            (
                "learning.retrain_interval_h",
                self.learning.retrain_interval_h,
                24 * 366,
            ),
            // Each running pass is one of tokio's 512 blocking threads, which the object
            // store's writes and model loads need too; each waiting one holds its
            // request's rows (up to 4,096 × the model's width).
            ("factor.max_passes", self.factor.max_passes as u64, 256),
            (
                "factor.max_queued_passes",
                self.factor.max_queued_passes as u64,
                4096,
            ),
        ] {
            if v > max {
                return Err(invalid(key, format!("{v}: at most {max}")));
            }
        }
        let v = &self.verdict;
        for (key, value, lo, hi) in [
            ("verdict.ttl_s", v.ttl_s, 1, MAX_VERDICT_TTL_S),
            (
                "verdict.decisions_kept",
                u64::from(v.decisions_kept),
                1,
                10_000,
            ),
            ("verdict.decision_days", v.decision_days, 1, 3650),
        ] {
            if !(lo..=hi).contains(&value) {
                return Err(invalid(key, format!("{value}: expected {lo}..={hi}")));
            }
        }
        // Claims a relying party compares as they are: printable ASCII, no spaces.
        let claim_ok =
            |c: &str| (1..=256).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_graphic());
        if !claim_ok(&v.issuer) {
            return Err(invalid(
                "verdict.issuer",
                format!(
                    "{:?}: expected 1-256 printable ASCII characters, no spaces",
                    v.issuer
                ),
            ));
        }
        if let Some(aud) = &v.audience
            && !claim_ok(aud)
        {
            return Err(invalid(
                "verdict.audience",
                format!("{aud:?}: expected 1-256 printable ASCII characters, no spaces"),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for f in &self.auth.factors {
            let bad = |message: String| invalid("auth.factors", format!("{}: {message}", f.name));
            if f.name.is_empty() {
                return Err(invalid("auth.factors", "a factor without a name".into()));
            }
            if !names.insert(f.name.as_str()) {
                return Err(bad("configured twice".into()));
            }
            if !(f.url.starts_with("http://") || f.url.starts_with("https://")) {
                return Err(bad(format!("url {:?}: expected http(s)://...", f.url)));
            }
            if !(0.0..=1.0).contains(&f.weight) {
                return Err(bad(format!("weight {} outside 0..=1", f.weight)));
            }
            if f.records.is_none() && f.name.parse::<FactorKind>().is_err() {
                return Err(bad(
                    "not a built-in factor, say which records it scores (records = ..., or \
                     name:records=url)"
                        .into(),
                ));
            }
        }
        if let Some(url) = &self.telemetry.otlp_endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(
                "telemetry.otlp_endpoint",
                format!("{url:?}: expected http(s)://HOST:PORT (OTLP/HTTP)"),
            ));
        }
        if let Some(url) = &self.factor.model_url
            && let Err(e) = crate::store::local_path(url)
        {
            return Err(invalid(
                "factor.model_url",
                format!("{e} (objects use factor.models_prefix)"),
            ));
        }
        Ok(())
    }

    /// The effective settings as TOML, secrets redacted (`tacit-backend config`): every
    /// field, defaults included, in the layout of the settings file.
    pub fn shown(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
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
        self.secret_file(
            self.at_rest.enabled,
            &self.at_rest.key_file,
            DEFAULT_AT_REST_KEY,
        )
    }

    /// The factor token file in force (`None`: factor calls are not authenticated).
    pub fn factor_token_file(&self) -> Option<PathBuf> {
        self.secret_file(
            self.factor_auth.enabled,
            &self.factor_auth.token_file,
            DEFAULT_FACTOR_TOKEN,
        )
    }

    /// A secret file that is on by default: the configured one, else `name` in the key
    /// directory; `None` when turned off.
    fn secret_file(&self, enabled: bool, file: &Option<PathBuf>, name: &str) -> Option<PathBuf> {
        enabled.then(|| file.clone().unwrap_or_else(|| self.keys_dir().join(name)))
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

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn example() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/settings.example.toml")
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tacit-settings-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("tacit.toml")
    }

    #[test]
    fn defaults_file_and_env_layer_in_order() {
        let s = Settings::load_with_env(None, &no_env).unwrap();
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert_eq!(
            s.database_url().expose(),
            "sqlite://./tacit-data/tacit.sqlite3"
        );
        assert_eq!(s.objects_url(), "./tacit-data/objects");
        let f = scratch("layers");
        std::fs::write(
            &f,
            "listen = \"0.0.0.0:9000\"\n[limits]\nmax_body_bytes = 1000\n",
        )
        .unwrap();
        let s = Settings::load_with_env(Some(&f), &no_env).unwrap();
        assert_eq!(s.listen, "0.0.0.0:9000");
        assert_eq!(s.limits.max_body_bytes, 1000);
        // The environment wins over the file; what it does not set stays.
        let s =
            Settings::load_with_env(Some(&f), &env(&[("TACIT_LISTEN", "127.0.0.1:1")])).unwrap();
        assert_eq!(s.listen, "127.0.0.1:1");
        assert_eq!(s.limits.max_body_bytes, 1000);
        let s = Settings::load_with_env(
            None,
            &env(&[(
                "TACIT_FACTOR_URLS",
                "gait=http://g:1/, py:keystroke-fixed=https://p",
            )]),
        )
        .unwrap();
        assert_eq!(s.auth.factors.len(), 2);
        assert_eq!(s.auth.factors[0].url, "http://g:1");
        assert_eq!(s.auth.factors[1].records, Some(FactorKind::KeystrokeFixed));
        // The old spelling of a factor is still read from settings.
        let s = Settings::load_with_env(
            None,
            &env(&[("TACIT_FACTOR_URLS", "py:keystroke_fixed=http://p")]),
        )
        .unwrap();
        assert_eq!(s.auth.factors[0].records, Some(FactorKind::KeystrokeFixed));
        // Old-key lists: comma-separated, blanks skipped.
        let s = Settings::load_with_env(
            None,
            &env(&[("TACIT_AT_REST_OLD_KEY_FILES", " /k/a, ,/k/b ")]),
        )
        .unwrap();
        assert_eq!(
            s.at_rest.old_key_files,
            [PathBuf::from("/k/a"), PathBuf::from("/k/b")]
        );
        // Encryption at rest: on by default with the key in the key directory; off
        // only when asked for.
        assert_eq!(
            Settings::default().at_rest_key_file(),
            Some(PathBuf::from("./tacit-data/keys/at-rest.key"))
        );
        let off = Settings::load_with_env(None, &env(&[("TACIT_AT_REST", "off")])).unwrap();
        assert_eq!(off.at_rest_key_file(), None);
        // A token of digits stays a string.
        let s =
            Settings::load_with_env(None, &env(&[("TACIT_ADMIN_TOKEN", "0123456789")])).unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(
            s.admin_token.as_ref().map(|t| t.expose_secret()),
            Some("0123456789")
        );
        // Variables of the tools around the server are not settings.
        Settings::load_with_env(None, &env(&[("TACIT_PYTHON", "/usr/bin/python3")])).unwrap();
        // A parse error names the line, never quotes it (it may hold a secret).
        std::fs::write(&f, "listen = \"x\"\nadmin_token = hunter-secret\n").unwrap();
        let err = Settings::load_with_env(Some(&f), &no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("hunter"), "{err}");
        std::fs::write(&f, "listn = 1\n").unwrap();
        let err = Settings::load_with_env(Some(&f), &no_env).unwrap_err();
        assert!(matches!(err, SettingsError::Value(_)), "{err}");
        assert!(err.to_string().contains("listn"), "{err}");
        std::fs::remove_dir_all(f.parent().unwrap()).ok();
    }

    /// The leaves of a TOML table as (key path, value); `auth.factors` is one leaf.
    fn leaves(prefix: &str, t: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(inner) => leaves(&key, inner, out),
                _ => out.push((key, v.clone())),
            }
        }
    }

    /// The environment's spelling of a TOML value.
    fn env_value(key: &str, v: &toml::Value) -> String {
        match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Array(items) if key == "auth.factors" => items
                .iter()
                .map(|f| {
                    let name = f["name"].as_str().unwrap();
                    let url = f["url"].as_str().unwrap();
                    match f.get("records").and_then(toml::Value::as_str) {
                        Some(r) => format!("{name}:{r}={url}"),
                        None => format!("{name}={url}"),
                    }
                })
                .collect::<Vec<_>>()
                .join(","),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        }
    }

    #[test]
    fn every_setting_reads_the_same_from_the_file_and_from_the_environment() {
        let path = example();
        let text = std::fs::read_to_string(&path).unwrap();
        let table: toml::Table = text.parse().unwrap();
        let mut all = Vec::new();
        leaves("", &table, &mut all);
        let in_file: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
        // One mapping for every field, and the example file sets every field.
        for (key, _) in ENV_VARS {
            assert!(in_file.contains(key), "{key} is not in {}", path.display());
        }
        for key in &in_file {
            assert!(
                env_var_of(key).is_some(),
                "{key} has no environment variable"
            );
        }
        let vars: Vec<(String, String)> = all
            .iter()
            .map(|(k, v)| (env_var_of(k).unwrap().to_owned(), env_value(k, v)))
            .collect();
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let from_file = Settings::load_with_env(Some(&path), &no_env).unwrap();
        let from_env = Settings::load_with_env(None, &get).unwrap();
        // Every value differs from the default (so that the comparison means something).
        let defaults = Settings::default().shown().unwrap();
        let shown = from_file.shown().unwrap();
        for line in shown.lines().filter(|l| l.contains(" = ")) {
            assert!(
                !defaults.lines().any(|d| d == line) || line.starts_with("weight"),
                "default in the example: {line}"
            );
        }
        assert_eq!(shown, from_env.shown().unwrap());
        // Secrets are redacted in what `config` prints, present in the values.
        assert!(!shown.contains("example-password"), "{shown}");
        assert!(!shown.contains("example-admin-token"), "{shown}");
        assert!(!shown.contains("example-secret"), "{shown}");
        assert!(!shown.contains("example-rp-token"), "{shown}");
        assert!(shown.contains("[REDACTED]"));
        assert!(
            from_env
                .database_url()
                .expose()
                .contains("example-password")
        );
        // Floats keep full precision, in any notation.
        let far = Settings::load_with_env(None, &env(&[("TACIT_TARGET_FAR", "1e-3")])).unwrap();
        assert_eq!(far.auth.fusion.target_far, 0.001);
        // The AWS variables stand in for the S3 credentials when TACIT_S3_* are unset.
        let aws = Settings::load_with_env(
            None,
            &env(&[
                ("AWS_ACCESS_KEY_ID", "aws-id"),
                ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
            ]),
        )
        .unwrap();
        assert_eq!(aws.s3.access_key_id.as_deref(), Some("aws-id"));
    }

    #[test]
    fn the_file_and_the_environment_are_checked_alike() {
        let f = scratch("checks");
        // (TOML, variable, value, what the error says)
        for (toml, var, value, want) in [
            (
                "[auth.fusion]\ntarget_far = 0.9\n",
                "TACIT_TARGET_FAR",
                "0.9",
                "expected a rate in (0, 0.5)",
            ),
            (
                "[auth.fusion]\ntarget_far = 0.0\n",
                "TACIT_TARGET_FAR",
                "0",
                "expected a rate in (0, 0.5)",
            ),
            (
                "[limits]\nmax_body_bytes = \"lots\"\n",
                "TACIT_MAX_BODY_BYTES",
                "lots",
                "found string \"lots\"",
            ),
            (
                "[retention]\nfeature_days = \"forever\"\n",
                "TACIT_RETENTION_DAYS",
                "forever",
                "found string \"forever\"",
            ),
            (
                "[at_rest]\nenabled = \"maybe\"\n",
                "TACIT_AT_REST",
                "maybe",
                "found string \"maybe\"",
            ),
            (
                "[auth.fusion]\nhalf_life_s = \"soon\"\n",
                "TACIT_EVIDENCE_HALF_LIFE_S",
                "soon",
                "found string \"soon\"",
            ),
            (
                "[factor]\nmodel_url = \"s3://b/m.tcm\"\n",
                "TACIT_MODEL_URL",
                "s3://b/m.tcm",
                "expected a path or a file:// URL",
            ),
            (
                "[auth]\nfactors = \"gait=ftp://x\"\n",
                "TACIT_FACTOR_URLS",
                "gait=ftp://x",
                "expected name[:records]=http(s)://",
            ),
            (
                "[auth]\nfactors = \"gait\"\n",
                "TACIT_FACTOR_URLS",
                "gait",
                "expected name[:records]=http(s)://",
            ),
            (
                "[auth]\nfactors = \"py=http://p\"\n",
                "TACIT_FACTOR_URLS",
                "py=http://p",
                "not a built-in factor",
            ),
            (
                "[auth]\nfactors = \"py:keystrokes=http://p\"\n",
                "TACIT_FACTOR_URLS",
                "py:keystrokes=http://p",
                "unknown factor",
            ),
            (
                "[auth]\nfactors = \"gait=http://a,gait=http://b\"\n",
                "TACIT_FACTOR_URLS",
                "gait=http://a,gait=http://b",
                "configured twice",
            ),
            (
                "[tls]\ncert_file = \"/c.pem\"\n",
                "TACIT_TLS_CERT_FILE",
                "/c.pem",
                "key_file",
            ),
            // Floats must be finite and in range, durations bounded.
            (
                "[limits]\nenvelopes_per_second_per_device = nan\n",
                "TACIT_RATE_PER_DEVICE",
                "nan",
                "expected a rate above 0",
            ),
            (
                "[limits]\nburst_per_device = inf\n",
                "TACIT_BURST_PER_DEVICE",
                "inf",
                "expected at least 1",
            ),
            (
                "[auth.fusion]\nreject_llr = nan\n",
                "TACIT_REJECT_LLR",
                "NaN",
                "below 0",
            ),
            (
                "[auth.fusion]\nhalf_life_s = inf\n",
                "TACIT_EVIDENCE_HALF_LIFE_S",
                "inf",
                "seconds above 0",
            ),
            (
                "max_envelope_age_days = 99999999999999\n",
                "TACIT_MAX_ENVELOPE_AGE_DAYS",
                "99999999999999",
                "at most 3650",
            ),
            // Each running pass takes one of tokio's blocking threads; each waiting one
            // holds its rows.
            (
                "[factor]\nmax_passes = 257\n",
                "TACIT_MAX_PASSES",
                "257",
                "257: at most 256",
            ),
            (
                "[factor]\nmax_queued_passes = 4097\n",
                "TACIT_MAX_QUEUED_PASSES",
                "4097",
                "4097: at most 4096",
            ),
            (
                "[verdict]\nttl_s = 3600\n",
                "TACIT_VERDICT_TTL_S",
                "3600",
                "expected 1..=600",
            ),
            (
                "[verdict]\nttl_s = 0\n",
                "TACIT_VERDICT_TTL_S",
                "0",
                "expected 1..=600",
            ),
            (
                "[verdict]\ndecisions_kept = 0\n",
                "TACIT_DECISIONS_KEPT",
                "0",
                "expected 1..=10000",
            ),
            (
                "[verdict]\nissuer = \"a b\"\n",
                "TACIT_VERDICT_ISSUER",
                "a b",
                "printable ASCII",
            ),
        ] {
            std::fs::write(&f, toml).unwrap();
            let by_file = Settings::load_with_env(Some(&f), &no_env)
                .expect_err(toml)
                .to_string();
            let by_env = Settings::load_with_env(None, &env(&[(var, value)]))
                .expect_err(var)
                .to_string();
            assert!(by_file.contains(want), "{toml}: {by_file}");
            assert!(by_env.contains(want), "{var}={value}: {by_env}");
            // The environment's errors name the variable.
            assert!(by_env.contains(var), "{var}={value}: {by_env}");
        }
        // A secret written as a bare number is read as its text; a wrong type is refused
        // without showing the value.
        std::fs::write(&f, "admin_token = 12345678\n").unwrap();
        let s = Settings::load_with_env(Some(&f), &no_env).unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(
            s.admin_token.as_ref().map(|t| t.expose_secret()),
            Some("12345678")
        );
        std::fs::write(&f, "admin_token = [\"hunter-in-a-list\"]\n").unwrap();
        let err = Settings::load_with_env(Some(&f), &no_env)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter"), "{err}");
        // Tables of factors are checked like the compact form.
        std::fs::write(
            &f,
            "[[auth.factors]]\nname = \"gait\"\nurl = \"http://g\"\nweight = 1.5\n",
        )
        .unwrap();
        let err = Settings::load_with_env(Some(&f), &no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("weight 1.5 outside 0..=1"), "{err}");
        std::fs::remove_dir_all(f.parent().unwrap()).ok();
    }

    #[test]
    fn debug_shows_no_secret() {
        let s = Settings::load_with_env(
            None,
            &env(&[
                ("TACIT_ADMIN_TOKEN", "admin-hunter1"),
                ("TACIT_DATABASE_URL", "postgres://tacit:pg-hunter2@db/tacit"),
                ("AWS_SECRET_ACCESS_KEY", "s3-hunter3"),
                ("TACIT_RELYING_PARTY_TOKEN", "rp-hunter4"),
            ]),
        )
        .unwrap();
        let shown = format!("{s:?} {s:#?} {} {}", s.database_url(), s.shown().unwrap());
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
