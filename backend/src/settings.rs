//! Server settings: defaults that work offline on a laptop, overridden by a TOML file
//! and then by `TACIT_*` environment variables (the container-friendly way).

use std::path::{Path, PathBuf};

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
    /// `sqlite://DATA_DIR/tacit.sqlite3`.
    pub database_url: Option<String>,
    /// `file://DIR` or `s3://BUCKET` (`TACIT_OBJECTS_URL`); default `file://DATA_DIR/objects`.
    pub objects_url: Option<String>,
    /// Directory of the HPKE key ring (`TACIT_KEYS_DIR`); default `DATA_DIR/keys`.
    pub keys_dir: Option<PathBuf>,
    /// Bearer token for the admin endpoints (`TACIT_ADMIN_TOKEN`). Without it the
    /// admin endpoints answer 403.
    pub admin_token: Option<String>,
    /// S3 connection (used when `objects_url` is `s3://`).
    pub s3: S3Settings,
    /// Request limits.
    pub limits: Limits,
    /// Oldest acceptable envelope, in days (`TACIT_MAX_ENVELOPE_AGE_DAYS`).
    pub max_envelope_age_days: u64,
    /// Largest accepted clock lead of a phone, in seconds.
    pub max_future_skew_s: u64,
    /// Lifetime of an enrolment token, in seconds.
    pub enrolment_token_ttl_s: u64,
    /// Factor services (`serve --role factor:NAME`).
    pub factor: FactorSettings,
}

/// Settings of a factor service.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FactorSettings {
    /// Object-store prefix of the model artifacts, `PREFIX/FACTOR.tcm`
    /// (`TACIT_MODELS_PREFIX`).
    pub models_prefix: String,
    /// The model artifact as a local file instead (`file:///models/gait.tcm`), e.g. a
    /// volume written by a training Job (`TACIT_MODEL_URL`).
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
    /// Secret (`TACIT_S3_SECRET_ACCESS_KEY`, else `AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key: Option<String>,
    /// Allow plain HTTP (local test servers only) (`TACIT_S3_ALLOW_HTTP`).
    pub allow_http: bool,
}

/// Limits on what the network may send.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body (`TACIT_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Per-request timeout in ms.
    pub request_timeout_ms: u64,
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
            objects_url: None,
            keys_dir: None,
            admin_token: None,
            s3: S3Settings::default(),
            limits: Limits::default(),
            max_envelope_age_days: 14,
            max_future_skew_s: 600,
            enrolment_token_ttl_s: 24 * 3600,
            factor: FactorSettings::default(),
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
                toml::from_str(&text).map_err(|e| SettingsError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string(),
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
            self.database_url = Some(v);
        }
        if let Some(v) = get("TACIT_OBJECTS_URL") {
            self.objects_url = Some(v);
        }
        if let Some(v) = get("TACIT_KEYS_DIR") {
            self.keys_dir = Some(v.into());
        }
        if let Some(v) = get("TACIT_ADMIN_TOKEN") {
            self.admin_token = Some(v);
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
            self.s3.secret_access_key = Some(v);
        }
        if let Some(v) = get("TACIT_S3_ALLOW_HTTP") {
            self.s3.allow_http = matches!(v.as_str(), "1" | "true" | "yes");
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
            if !v.starts_with("file://") {
                return Err(SettingsError::Env {
                    name: "TACIT_MODEL_URL",
                    message: format!("{v:?}: only file:// URLs (objects use TACIT_MODELS_PREFIX)"),
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
        if let Some(v) = get("TACIT_MAX_ENVELOPE_AGE_DAYS") {
            self.max_envelope_age_days = num("TACIT_MAX_ENVELOPE_AGE_DAYS", &v)?;
        }
        Ok(())
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!("sqlite://{}", self.data_dir.join("tacit.sqlite3").display())
        })
    }

    /// The object store URL in force.
    pub fn objects_url(&self) -> String {
        self.objects_url
            .clone()
            .unwrap_or_else(|| format!("file://{}", self.data_dir.join("objects").display()))
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
        assert_eq!(s.database_url(), "sqlite://./tacit-data/tacit.sqlite3");
        assert_eq!(s.objects_url(), "file://./tacit-data/objects");
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
        std::fs::write(&f, "listn = 1\n").unwrap();
        assert!(matches!(
            Settings::load(Some(&f)),
            Err(SettingsError::Parse { .. })
        ));
        std::fs::remove_dir_all(&dir).ok();
    }
}
