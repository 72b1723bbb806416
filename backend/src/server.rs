//! Running the gateway: open storage and keys, bind, serve until SIGTERM/SIGINT, and
//! finish in-flight requests before exiting.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::keys::KeyRing;
use crate::router::router;
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
}

/// Opens the store named by the settings (running migrations).
pub async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, ServeError> {
    if settings.database_url.is_none() || settings.objects_url.is_none() {
        // The embedded defaults live under the data directory.
        std::fs::create_dir_all(&settings.data_dir)?;
    }
    let mut objects =
        store::ObjectsConfig::parse(&settings.objects_url(), settings.s3.endpoint.as_deref())?;
    if let store::ObjectsConfig::S3(s3) = &mut objects {
        let c = &settings.s3;
        s3.region = c.region.clone().or(s3.region.take());
        s3.access_key_id = c.access_key_id.clone().or(s3.access_key_id.take());
        s3.secret_access_key = c.secret_access_key.clone().or(s3.secret_access_key.take());
        s3.allow_http |= c.allow_http;
    }
    let cfg = store::StoreConfig {
        database_url: settings.database_url(),
        objects,
    };
    Ok(cfg.open().await?)
}

/// A server running in the background (tests, the simulator).
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// The shared state (metrics, store) for inspection.
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Base URL, e.g. `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful shutdown: stop accepting, finish in-flight requests.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Binds `settings.listen` and serves in the background with the given keys and store.
pub async fn spawn(
    settings: Settings,
    keys: KeyRing,
    store: Arc<dyn Store>,
) -> Result<RunningServer, ServeError> {
    let listener = TcpListener::bind(&settings.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: settings.listen.clone(),
            source,
        })?;
    let addr = listener.local_addr()?;
    let state = AppState::new(settings, keys, store);
    let app = router(state.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    Ok(RunningServer {
        addr,
        state,
        shutdown: Some(tx),
        task,
    })
}

/// `tacit-backend serve`: runs until SIGTERM or SIGINT.
pub async fn serve(settings: Settings) -> Result<(), ServeError> {
    let keys = KeyRing::load(&settings.keys_dir())?;
    if keys.is_empty() {
        tracing::warn!(dir = %settings.keys_dir().display(), "no HPKE key: uploads will be refused until `tacit-backend keygen` has run");
    }
    let store = open_store(&settings).await?;
    let server = spawn(settings, keys, store).await?;
    tracing::info!(addr = %server.addr, "listening");
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
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
