//! Where the store keeps its data, as URL-ish strings from configuration:
//! `sqlite://PATH` or `postgres://…` for the database, `file:///DIR` (or a plain path)
//! or `s3://BUCKET` for the feature objects.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use super::Store;
use super::error::{StoreError, StoreResult};
use super::objects::FeatureObjects;
use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;

/// An S3 bucket. Requests are path-style (`ENDPOINT/BUCKET/KEY`), which every
/// S3-compatible server accepts. Fields left `None` come from the standard `AWS_*`
/// environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
/// `AWS_ENDPOINT`, …), then from the instance's role.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Config {
    /// The bucket (must exist).
    pub bucket: String,
    /// The server, e.g. `http://127.0.0.1:55500`; `None` = AWS itself.
    pub endpoint: Option<String>,
    /// The region (any value for most S3-compatible servers).
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Allow plain `http://` endpoints (local test servers). [`ObjectsConfig::parse`]
    /// sets it exactly when the endpoint starts with `http://`.
    pub allow_http: bool,
}

// By hand, so that logging a configuration does not log its secret.
impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// Where the feature objects live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectsConfig {
    /// A local directory (the embedded default).
    Local(PathBuf),
    /// An S3 bucket.
    S3(S3Config),
}

impl ObjectsConfig {
    /// Parses `file:///DIR`, a plain path, or `s3://BUCKET` (with `endpoint` for
    /// S3-compatible servers; credentials from the environment).
    pub fn parse(url: &str, endpoint: Option<&str>) -> StoreResult<Self> {
        if let Some(bucket) = url.strip_prefix("s3://") {
            let bucket = bucket.trim_end_matches('/');
            if bucket.is_empty() || bucket.contains('/') {
                return Err(StoreError::Invalid(format!(
                    "object store {url:?}: expected s3://BUCKET"
                )));
            }
            return Ok(ObjectsConfig::S3(S3Config {
                bucket: bucket.to_owned(),
                endpoint: endpoint.map(str::to_owned),
                allow_http: endpoint.is_some_and(|e| e.starts_with("http://")),
                ..S3Config::default()
            }));
        }
        if url.starts_with("file:") {
            let path = url::Url::parse(url)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .ok_or_else(|| {
                    StoreError::Invalid(format!("object store {url:?}: expected file:///DIR"))
                })?;
            return Ok(ObjectsConfig::Local(path));
        }
        if url.is_empty() || url.contains("://") {
            return Err(StoreError::Invalid(format!(
                "object store {url:?}: expected file:///DIR, a directory or s3://BUCKET"
            )));
        }
        Ok(ObjectsConfig::Local(PathBuf::from(url)))
    }

    /// Opens the object store (for S3: builds the client; nothing is requested yet).
    pub fn open(&self) -> StoreResult<FeatureObjects> {
        match self {
            ObjectsConfig::Local(dir) => FeatureObjects::local(dir),
            ObjectsConfig::S3(s3) => FeatureObjects::s3(s3),
        }
    }
}

/// The whole storage configuration. `Debug` hides a password in the database URL.
#[derive(Clone)]
pub struct StoreConfig {
    /// `sqlite://PATH` (relative) or `sqlite:///ABSOLUTE/PATH`, or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?…]` (`postgresql://` too).
    pub database_url: String,
    /// Where the feature objects live.
    pub objects: ObjectsConfig,
    /// Encryption of features and templates at rest (`None`: stored as they are).
    pub at_rest: Option<Arc<super::at_rest::AtRestKeys>>,
}

// Keys are compared by identity: two configurations encrypt alike only with the same keys.
impl PartialEq for StoreConfig {
    fn eq(&self, other: &Self) -> bool {
        self.database_url == other.database_url
            && self.objects == other.objects
            && match (&self.at_rest, &other.at_rest) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

impl Eq for StoreConfig {}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let database_url = match url::Url::parse(&self.database_url) {
            Ok(mut u) if u.password().is_some() => {
                // Only fails for URLs without a host, which have no password.
                let _ = u.set_password(Some("<redacted>"));
                u.to_string()
            }
            _ => self.database_url.clone(),
        };
        f.debug_struct("StoreConfig")
            .field("database_url", &database_url)
            .field("objects", &self.objects)
            .field("at_rest", &self.at_rest)
            .finish()
    }
}

impl StoreConfig {
    /// Connects to both stores and brings the schema up to date (migrations are
    /// idempotent, so every start may run them). Nothing is requested from S3 yet: a
    /// missing bucket shows in [`Store::health`] and in the first upload.
    pub async fn open(&self) -> StoreResult<Arc<dyn Store>> {
        let objects = self.objects.open()?.with_at_rest(self.at_rest.clone());
        match DatabaseKind::parse(&self.database_url)? {
            DatabaseKind::Sqlite(path) => {
                let store = SqliteStore::open(&path, objects).await?;
                store.migrate().await?;
                Ok(Arc::new(store))
            }
            DatabaseKind::Postgres => {
                let store = PostgresStore::connect(&self.database_url, objects).await?;
                store.migrate().await?;
                Ok(Arc::new(store))
            }
        }
    }
}

/// Which database a URL names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DatabaseKind {
    Sqlite(PathBuf),
    Postgres,
}

impl DatabaseKind {
    pub(crate) fn parse(url: &str) -> StoreResult<Self> {
        if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            // Connection options are fixed by SqliteStore (WAL, synchronous=FULL), so
            // query parameters would only mislead.
            if rest.is_empty() || rest.contains('?') || rest.contains(":memory:") {
                return Err(StoreError::Invalid(format!(
                    "database {url:?}: expected sqlite://PATH to one file, without options"
                )));
            }
            return Ok(DatabaseKind::Sqlite(PathBuf::from(rest)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseKind::Postgres);
        }
        Err(StoreError::Invalid(
            "database URL: expected sqlite://PATH or postgres://…".to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(
            DatabaseKind::parse("sqlite://data/tacit.db").ok(),
            Some(DatabaseKind::Sqlite("data/tacit.db".into()))
        );
        assert_eq!(
            DatabaseKind::parse("sqlite:///var/lib/tacit.db").ok(),
            Some(DatabaseKind::Sqlite("/var/lib/tacit.db".into()))
        );
        assert_eq!(
            DatabaseKind::parse("postgres://u@h/db").ok(),
            Some(DatabaseKind::Postgres)
        );
        assert_eq!(
            DatabaseKind::parse("postgresql://u@h/db").ok(),
            Some(DatabaseKind::Postgres)
        );
        for bad in [
            "mysql://x",
            "sqlite://",
            "sqlite::memory:",
            "sqlite://a.db?mode=ro",
        ] {
            assert!(DatabaseKind::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn object_urls() {
        assert_eq!(
            ObjectsConfig::parse("file:///var/lib/tacit", None).ok(),
            Some(ObjectsConfig::Local("/var/lib/tacit".into()))
        );
        assert_eq!(
            ObjectsConfig::parse("data/objects", None).ok(),
            Some(ObjectsConfig::Local("data/objects".into()))
        );
        let s3 = ObjectsConfig::parse("s3://feat/", Some("http://127.0.0.1:9000")).ok();
        assert_eq!(
            s3,
            Some(ObjectsConfig::S3(S3Config {
                bucket: "feat".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                allow_http: true,
                ..S3Config::default()
            }))
        );
        let aws = ObjectsConfig::parse("s3://feat", None).ok();
        assert!(matches!(aws, Some(ObjectsConfig::S3(c)) if !c.allow_http && c.endpoint.is_none()));
        for bad in ["s3://", "s3://a/b", "gs://x", "", "file://host-only"] {
            assert!(ObjectsConfig::parse(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let config = StoreConfig {
            database_url: "postgres://tacit:hunter2@db/tacit".into(),
            objects: ObjectsConfig::S3(S3Config {
                bucket: "b".into(),
                secret_access_key: Some("hunter3".into()),
                ..S3Config::default()
            }),
            at_rest: None,
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(
            shown.contains("postgres://tacit:%3Credacted%3E@db/tacit"),
            "{shown}"
        );
    }
}
