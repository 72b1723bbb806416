//! Running the gateway: open storage and keys, bind, serve until SIGTERM/SIGINT, and
//! finish in-flight requests before exiting.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use crate::serve::ServeOptions;
use tokio::sync::oneshot;

use crate::keys::KeyRing;
use crate::router::router;
use crate::scoring::{ConfiguredFactor, Factors, LocalFactor};
use crate::settings::Settings;
use crate::state::AppState;
use crate::store::{self, Store};

/// Startup errors.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Keys could not be loaded.
    #[error("keys: {0}")]
    Keys(#[from] crate::keys::KeyError),
    /// Storage could not be opened.
    #[error("storage: {0}")]
    Store(#[from] store::StoreError),
    /// The listen address could not be bound.
    #[error("listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The server failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    /// The settings are inconsistent.
    #[error("configuration: {0}")]
    Config(String),
    /// The configured factors cannot be used.
    #[error("configuration: {0}")]
    Factors(#[from] crate::scoring::FactorConfigError),
    /// The factor bearer token cannot be used.
    #[error("configuration: {0}")]
    FactorToken(#[from] crate::factor::auth::FactorTokenError),
}

/// The object store named by the settings.
pub fn objects_config(settings: &Settings) -> Result<store::ObjectsConfig, ServeError> {
    let mut objects =
        store::ObjectsConfig::parse(&settings.objects_url(), settings.s3.endpoint.as_deref())?;
    if let store::ObjectsConfig::S3(s3) = &mut objects {
        let c = &settings.s3;
        s3.region = c.region.clone().or(s3.region.take());
        s3.access_key_id = c.access_key_id.clone().or(s3.access_key_id.take());
        s3.secret_access_key = c
            .secret_access_key
            .as_ref()
            .map(|k| secrecy::ExposeSecret::expose_secret(k).to_owned())
            .or(s3.secret_access_key.take());
        s3.allow_http |= c.allow_http;
    }
    Ok(objects)
}

/// The at-rest keys named by the settings (`None`: encryption at rest is turned off).
/// Encryption at rest is on by default: a missing key file is an error that says how
/// to make one, never a silent fall back to storing plaintext.
pub fn at_rest_keys(
    settings: &Settings,
) -> Result<Option<Arc<store::at_rest::AtRestKeys>>, ServeError> {
    let Some(current) = settings.at_rest_key_file() else {
        tracing::warn!(
            "encryption at rest is off (TACIT_AT_REST=off): templates and features are \
             stored unencrypted"
        );
        return Ok(None);
    };
    if !current.exists() {
        return Err(ServeError::Config(format!(
            "encryption at rest is on and its key {0} does not exist: run `tacit-backend \
             keygen` (it writes one there), or `tacit-backend keys at-rest-keygen --out {0}`, \
             or set TACIT_AT_REST=off to store templates and features unencrypted",
            current.display()
        )));
    }
    let older: Vec<&std::path::Path> = settings
        .at_rest
        .old_key_files
        .iter()
        .map(PathBuf::as_path)
        .collect();
    Ok(Some(Arc::new(store::at_rest::AtRestKeys::load(
        &current, &older,
    )?)))
}

/// Opens the store named by the settings (running migrations). With encryption at rest
/// off, a store that is encrypted (it holds the at-rest marker) is refused.
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, ServeError> {
    let at_rest = at_rest_keys(settings)?;
    let off = at_rest.is_none();
    let store = open_store_with(settings, at_rest).await?;
    if off {
        store.objects().apply_at_rest_marker().await?;
    }
    Ok(store)
}

/// Creates or upgrades the schema of the store named by the settings. Reads no blob,
/// so it needs no at-rest key (a migration job need not mount it).
pub async fn migrate_store(settings: &Settings) -> Result<(), ServeError> {
    open_store_with(settings, None).await.map(drop)
}

async fn open_store_with(
    settings: &Settings,
    at_rest: Option<Arc<store::at_rest::AtRestKeys>>,
) -> Result<Arc<dyn Store>, ServeError> {
    if settings.database_url.is_none() || settings.objects_url.is_none() {
        // The embedded defaults live under the data directory: created for the
        // service's user only (an existing directory keeps the mode it was given).
        let mut dir = std::fs::DirBuilder::new();
        dir.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
        dir.create(&settings.data_dir)?;
    }
    let cfg = store::StoreConfig {
        database_url: settings.database_url().expose().to_owned(),
        database_ca_file: settings.database_ca_file.clone(),
        objects: objects_config(settings)?,
        at_rest,
    };
    Ok(cfg.open().await?)
}

/// A router served in the background until shut down gracefully (the servers here, and
/// anything else that needs one in tests or the simulator).
pub struct Serving {
    /// The bound address.
    pub addr: SocketAddr,
    /// Whether it speaks TLS.
    pub tls: bool,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Serving {
    /// Binds `listen` (e.g. `127.0.0.1:0`) and serves `app` in the background.
    pub async fn start(
        listen: &str,
        app: axum::Router,
        opts: ServeOptions,
    ) -> Result<Serving, ServeError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: listen.to_string(),
                source,
            })?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let tls = opts.tls.is_some();
        let task = tokio::spawn(crate::serve::serve(listener, app, opts, rx));
        Ok(Serving {
            addr,
            tls,
            shutdown: Some(tx),
            task,
        })
    }

    /// Stops accepting, finishes in-flight requests and waits for the server task.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// A server running in the background (tests, the simulator).
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// The shared state (metrics, store) for inspection.
    pub state: AppState,
    serving: Serving,
    retention: tokio::task::JoinHandle<()>,
    rebuild: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Base URL, e.g. `http://127.0.0.1:PORT` (`https://` with TLS).
    pub fn url(&self) -> String {
        crate::serve::url_of(self.addr, self.serving.tls)
    }

    /// Graceful shutdown: stop accepting, finish in-flight requests.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.retention.abort();
        self.rebuild.abort();
        self.serving.stop().await
    }
}

/// Binds `settings.listen` and serves in the background with the given keys and store;
/// the factors are the remote ones of the settings (`auth.factors`).
pub async fn spawn(
    settings: Settings,
    keys: KeyRing,
    store: Arc<dyn Store>,
) -> Result<RunningServer, ServeError> {
    let token = crate::factor::auth::for_gateway(&settings)?;
    let factors = Factors::remote(&settings.auth, token.as_ref())?;
    spawn_with_factors(settings, keys, store, factors).await
}

/// The verdict signing keys of the keys directory; on a first start, when there is
/// none, one is made there (mode 0600) and announced in the log. Gateways that share a
/// keys directory (or a Secret with the key in it) sign with the same keys; a
/// read-only directory without a key is an error that says how to make one.
pub fn verdict_keys(settings: &Settings) -> Result<crate::verdict::VerdictKeys, ServeError> {
    let dir = settings.keys_dir();
    let now_s = crate::state::now_ms() / 1000;
    match crate::verdict::VerdictKeys::load_or_create(&dir, now_s) {
        Ok((keys, made)) => {
            if let Some(kid) = made {
                tracing::warn!(
                    file = %crate::verdict::key_path(&dir, &kid).display(),
                    "no verdict signing key: created one (several gateways must share it: \
                     run `tacit-backend keygen` once and give every gateway the keys directory)"
                );
            }
            Ok(keys)
        }
        Err(crate::keys::KeyError::Io { path, source }) => Err(ServeError::Config(format!(
            "verdict signing keys in {}: {}: {source} (run `tacit-backend keygen` or \
             `tacit-backend keys verdict-keygen` where the keys directory is writable)",
            dir.display(),
            path.display()
        ))),
        Err(e) => Err(e.into()),
    }
}

/// [`spawn`] with the given factors (e.g. in-process ones from [`embedded_factors`]).
/// The verdict signing keys come from the keys directory ([`verdict_keys`]).
pub async fn spawn_with_factors(
    settings: Settings,
    keys: KeyRing,
    store: Arc<dyn Store>,
    factors: Factors,
) -> Result<RunningServer, ServeError> {
    let listen = settings.listen.clone();
    let verdicts = verdict_keys(&settings)?;
    let state = AppState::new(settings, keys, store, factors).with_verdict_keys(verdicts);
    let opts = ServeOptions::from_settings(&state.settings)
        .map_err(|e| ServeError::Config(e.to_string()))?;
    let serving = Serving::start(&listen, router(state.clone()), opts).await?;
    let retention = crate::retention::spawn(state.clone());
    let rebuild = crate::rebuild::spawn(state.clone());
    Ok(RunningServer {
        addr: serving.addr,
        state,
        serving,
        retention,
        rebuild,
    })
}

/// The factors of a gateway that also runs the built-in factors in-process (`--role
/// all`): the remote ones of the settings, plus gait and keystroke-fixed in this process
/// unless the settings name a URL for them. The in-process factors load their models
/// from the same object store (`models/FACTOR.tcm`) and watch it for new versions.
pub async fn embedded_factors(
    settings: &Settings,
    objects: &store::FeatureObjects,
) -> Result<Factors, ServeError> {
    let token = crate::factor::auth::for_gateway(settings)?;
    let mut factors = Factors::remote(&settings.auth, token.as_ref())?;
    for f in crate::factor::BUILT_IN {
        if factors.get(f.name()).is_some() {
            continue;
        }
        let service = crate::factor::FactorService::start(f, objects.clone(), settings).await?;
        factors.push(ConfiguredFactor {
            name: f.name().to_string(),
            records: f,
            weight: 1.0,
            client: Arc::new(LocalFactor::new(service)),
        })?;
    }
    Ok(factors)
}

/// What a `serve` process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The gateway (devices, uploads, admin, authenticate) with remote factors only.
    Gateway,
    /// The gateway with the built-in factors in-process (the embedded default).
    All,
    /// One factor service.
    Factor(tacit_models::FactorKind),
}

impl std::fmt::Display for Role {
    /// As `--role` spells it: `gateway`, `all`, `factor:NAME`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Gateway => f.write_str("gateway"),
            Role::All => f.write_str("all"),
            Role::Factor(k) => write!(f, "factor:{k}"),
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gateway" => Ok(Role::Gateway),
            "all" => Ok(Role::All),
            _ => s
                .strip_prefix("factor:")
                .and_then(crate::factor::built_in)
                .map(Role::Factor)
                .ok_or_else(|| {
                    format!(
                        "role {s:?}: expected gateway, all, factor:gait or factor:keystroke-fixed"
                    )
                }),
        }
    }
}

/// A factor service running in the background (tests).
pub struct RunningFactor {
    /// The bound address.
    pub addr: SocketAddr,
    /// The service (model, jobs).
    pub service: Arc<crate::factor::FactorService>,
    serving: Serving,
}

impl RunningFactor {
    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful shutdown.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.serving.stop().await
    }
}

/// Binds `settings.listen` and serves one factor in the background.
pub async fn spawn_factor(
    settings: Settings,
    factor: tacit_models::FactorKind,
) -> Result<RunningFactor, ServeError> {
    // Secure by default: without a token (and no explicit opt-out) nothing starts.
    let token = crate::factor::auth::for_factor_service(&settings)?;
    if settings.objects_url.is_none() {
        std::fs::create_dir_all(&settings.data_dir)?;
    }
    let objects = objects_config(&settings)?
        .open()?
        .with_at_rest(at_rest_keys(&settings)?);
    // The gateway writes the at-rest marker; a factor service started first checks
    // again while it serves (`FactorService`).
    objects.apply_at_rest_marker().await?;
    let service = crate::factor::FactorService::start(factor, objects, &settings).await?;
    // The gateway's limits: its body limit and request time limit here, its listener
    // (head deadline, connection bound) below.
    let app = crate::factor::factor_router(
        service.clone(),
        crate::factor::FactorRouterOptions {
            max_body: settings.limits.max_body_bytes,
            request_timeout: std::time::Duration::from_millis(
                settings.limits.request_timeout_ms.max(1),
            ),
            token,
        },
    );
    let opts =
        ServeOptions::from_settings(&settings).map_err(|e| ServeError::Config(e.to_string()))?;
    let serving = Serving::start(&settings.listen, app, opts).await?;
    Ok(RunningFactor {
        addr: serving.addr,
        service,
        serving,
    })
}

/// `tacit-backend serve --role ROLE`: runs until SIGTERM or SIGINT.
pub async fn serve_role(settings: Settings, role: Role) -> Result<(), ServeError> {
    match role {
        Role::Gateway => serve(settings, false).await,
        Role::All => serve(settings, true).await,
        Role::Factor(f) => {
            let server = spawn_factor(settings, f).await?;
            tracing::info!(addr = %server.addr, factor = %f, "factor service listening");
            shutdown_signal().await;
            tracing::info!("shutting down: finishing in-flight requests");
            server.shutdown().await?;
            Ok(())
        }
    }
}

/// `tacit-backend serve` (gateway, or gateway and built-in factors with `embedded`):
/// runs until SIGTERM or SIGINT.
pub async fn serve(settings: Settings, embedded: bool) -> Result<(), ServeError> {
    let keys = KeyRing::load(&settings.keys_dir())?;
    if keys.is_empty() {
        tracing::warn!(dir = %settings.keys_dir().display(), "no HPKE key: uploads will be refused until `tacit-backend keygen` has run");
    }
    let store = open_store(&settings).await?;
    let factors = if embedded {
        embedded_factors(&settings, store.objects()).await?
    } else {
        let token = crate::factor::auth::for_gateway(&settings)?;
        Factors::remote(&settings.auth, token.as_ref())?
    };
    for f in factors.iter() {
        tracing::info!(factor = %f.name, at = %f.client.location(), records = f.records.name(), "factor");
    }
    let every_h = settings.learning.retrain_interval_h;
    let retraining = (embedded && every_h > 0).then(|| {
        tracing::info!(every_h, "retraining from the users' uploads on");
        crate::commands::spawn_periodic(
            store.clone(),
            crate::registry::Registry::new(store.objects().clone(), &settings.factor.models_prefix),
            std::time::Duration::from_secs(every_h * 3600),
        )
    });
    let server = spawn_with_factors(settings, keys, store, factors).await?;
    tracing::info!(addr = %server.addr, "listening");
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    if let Some(r) = retraining {
        r.abort();
    }
    server.shutdown().await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
