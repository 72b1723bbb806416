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

/// `url` with its password (if any) replaced by `<redacted>`, for messages and logs:
/// `postgres://tacit:hunter2@db/tacit` → `postgres://tacit:<redacted>@db/tacit`.
///
/// Textual rather than through a URL parser: a password with an unescaped `/`, `#`,
/// `?` or `@` makes a parser see another host, path or fragment, and then the password
/// would be shown as one of those. Everything between `://` and the last `@` is the
/// user information; what follows its first `:` is the password. A libpq-style
/// `password=` query parameter is redacted too. A value without `://` that holds an `@`
/// or the word `password` is not shown at all.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return if url.contains('@') || url.contains("password") {
            "<unparsable URL>".to_owned()
        } else {
            url.to_owned()
        };
    };
    let mut out = match rest.rfind('@') {
        Some(at) => {
            let (userinfo, host) = rest.split_at(at);
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:<redacted>{host}"),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    };
    if let Some((base, query)) = out.split_once('?') {
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=<redacted>"),
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{base}?{}", query.join("&"));
    }
    out
}

/// A local path given as a plain path or a `file:` URL, relative or absolute:
///
/// * `DIR`, `./DIR`, `/ABS/DIR` — the path as it is;
/// * `file:///ABS/DIR`, `file://localhost/ABS/DIR`, `file:/ABS/DIR` — an absolute path
///   (RFC 8089; percent-escapes decoded);
/// * `file://DIR`, `file://./DIR`, `file:DIR` — a path relative to the working directory,
///   taken literally. Strictly the first segment of `file://DIR` would be a host, but
///   a host is meaningless for a local store, and `sqlite://DIR` means the same
///   relative path, so the same spelling works for both.
///
/// The error names the value and what was expected.
pub fn local_path(value: &str) -> Result<PathBuf, NotALocalPath> {
    let expected = || NotALocalPath(value.to_owned());
    let Some(rest) = value.strip_prefix("file:") else {
        // `s3://…`, `http://…`: another scheme is not a local path.
        if value.is_empty() || value.contains("://") {
            return Err(expected());
        }
        return Ok(PathBuf::from(value));
    };
    if rest == "//localhost" {
        return Err(expected());
    }
    let absolute = rest.starts_with("///") || rest.starts_with("//localhost/");
    let path = if absolute || (rest.starts_with('/') && !rest.starts_with("//")) {
        url::Url::parse(value)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .ok_or_else(expected)?
    } else {
        PathBuf::from(rest.strip_prefix("//").unwrap_or(rest))
    };
    if path.as_os_str().is_empty() || rest.contains(['?', '#']) {
        return Err(expected());
    }
    Ok(path)
}

/// A value that is neither a path nor a `file:` URL ([`local_path`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: expected a path or a file:// URL")]
pub struct NotALocalPath(pub String);

/// Where the feature objects live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectsConfig {
    /// A local directory (the embedded default).
    Local(PathBuf),
    /// An S3 bucket.
    S3(S3Config),
}

impl ObjectsConfig {
    /// Parses a directory (a plain path or a `file:` URL, relative or absolute:
    /// [`local_path`]) or `s3://BUCKET` (with `endpoint` for S3-compatible servers;
    /// credentials from the environment).
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
        if url.is_empty() || (url.contains("://") && !url.starts_with("file:")) {
            return Err(StoreError::Invalid(format!(
                "object store {url:?}: expected a directory, file://DIR or s3://BUCKET"
            )));
        }
        local_path(url)
            .map(ObjectsConfig::Local)
            .map_err(|e| StoreError::Invalid(format!("object store {e}")))
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
    /// A CA certificate file (PEM) that PostgreSQL's server certificate must chain to;
    /// with it, the connection is `sslmode=verify-full` unless the URL says otherwise.
    /// Without it, `sslmode=verify-ca|verify-full` in the URL check against the URL's
    /// `sslrootcert` or the bundled Mozilla roots.
    pub database_ca_file: Option<PathBuf>,
    /// Where the feature objects live.
    pub objects: ObjectsConfig,
    /// Encryption of features and templates at rest (`None`: stored as they are).
    pub at_rest: Option<Arc<super::at_rest::AtRestKeys>>,
}

// Keys are compared by identity: two configurations encrypt alike only with the same keys.
impl PartialEq for StoreConfig {
    fn eq(&self, other: &Self) -> bool {
        self.database_url == other.database_url
            && self.database_ca_file == other.database_ca_file
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
        f.debug_struct("StoreConfig")
            .field("database_url", &redact_url(&self.database_url))
            .field("database_ca_file", &self.database_ca_file)
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
                store.note_at_rest().await?;
                Ok(Arc::new(store))
            }
            DatabaseKind::Postgres => {
                let store = PostgresStore::connect_with_ca(
                    &self.database_url,
                    self.database_ca_file.as_deref(),
                    objects,
                )
                .await?;
                store.migrate().await?;
                store.note_at_rest().await?;
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
        // Every spelling of a local directory, relative and absolute.
        for (given, path) in [
            ("data/objects", "data/objects"),
            ("./tacit-data/objects", "./tacit-data/objects"),
            ("/var/lib/tacit", "/var/lib/tacit"),
            ("file://./tacit-data/objects", "./tacit-data/objects"),
            (
                "file://tacit-sim-world/backend/objects",
                "tacit-sim-world/backend/objects",
            ),
            ("file:data/objects", "data/objects"),
            ("file:/var/lib/tacit", "/var/lib/tacit"),
            ("file://localhost/var/lib/tacit", "/var/lib/tacit"),
            ("file:///var/lib/my%20data", "/var/lib/my data"),
        ] {
            assert_eq!(
                ObjectsConfig::parse(given, None).ok(),
                Some(ObjectsConfig::Local(path.into())),
                "{given}"
            );
        }
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
        for bad in [
            "s3://",
            "s3://a/b",
            "gs://x",
            "",
            "file://",
            "file:",
            "file:///a?x=1",
            "file://localhost",
            "http://h/x",
        ] {
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
            database_ca_file: None,
            at_rest: None,
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(
            shown.contains("postgres://tacit:<redacted>@db/tacit"),
            "{shown}"
        );
    }

    #[test]
    fn urls_are_redacted() {
        for (given, shown) in [
            (
                "postgres://u:hunter2@db:5432/t?sslmode=require",
                "postgres://u:<redacted>@db:5432/t?sslmode=require",
            ),
            (
                "postgres://u@db/t?password=hunter2&sslmode=verify-full",
                "postgres://u@db/t?password=<redacted>&sslmode=verify-full",
            ),
            // Unescaped characters that would make a URL parser misread the password.
            (
                "postgres://u:123#hunter2@h/db",
                "postgres://u:<redacted>@h/db",
            ),
            (
                "postgresql://u:pa@ss/hunter2@h/db",
                "postgresql://u:<redacted>@h/db",
            ),
            (
                "postgres://u:p?hunter2@h/db",
                "postgres://u:<redacted>@h/db",
            ),
            (
                "postgres://u:hunter2%40x@h/db",
                "postgres://u:<redacted>@h/db",
            ),
            ("postgres://u@db/t", "postgres://u@db/t"),
            ("sqlite://data/tacit.db", "sqlite://data/tacit.db"),
            ("data/tacit.db", "data/tacit.db"),
            ("u:hunter2@db", "<unparsable URL>"),
        ] {
            assert_eq!(redact_url(given), shown, "{given}");
            assert!(!redact_url(given).contains("hunter2"));
        }
    }
}
