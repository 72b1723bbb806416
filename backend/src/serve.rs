//! The listener: accepts TCP connections (optionally TLS, rustls with ring), serves
//! HTTP/1.1 and HTTP/2 with hyper, and shuts down gracefully.
//!
//! Its own accept loop rather than `axum::serve` for three defences the latter cannot
//! configure: a deadline on a connection's request head (a slow-loris client that
//! trickles its headers is cut off after `header_read_timeout`, and so is a TLS
//! handshake that does not finish in that time), a bound on open connections (past it
//! new connections are closed at once instead of exhausting file descriptors), and
//! TLS termination in the process.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use crate::settings::Settings;

/// How the listener treats connections.
#[derive(Clone)]
pub struct ServeOptions {
    /// Longest wait for a request head (and for a TLS handshake).
    pub header_read_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// TLS, when the settings name a certificate and key.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServeOptions {
    /// Plain HTTP, 10 s for a request head, 10,000 connections.
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            tls: None,
        }
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the certificate and key.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

impl ServeOptions {
    /// The options of the settings' `limits` and `tls` sections.
    pub fn from_settings(s: &Settings) -> Result<ServeOptions, TlsError> {
        let tls = match &s.tls {
            Some(t) => Some(Arc::new(server_tls(&t.cert_file, &t.key_file)?)),
            None => None,
        };
        Ok(ServeOptions {
            header_read_timeout: Duration::from_millis(s.limits.header_read_timeout_ms.max(1)),
            max_connections: s.limits.max_connections.max(1),
            tls,
        })
    }
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3, HTTP/2 and
/// HTTP/1.1 by ALPN) from a PEM certificate chain and a PEM private key.
pub fn server_tls(cert_file: &Path, key_file: &Path) -> Result<rustls::ServerConfig, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pem_err = |path: &Path, message: String| TlsError::Pem {
        path: path.display().to_string(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| pem_err(cert_file, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(cert_file, e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_err(cert_file, "no certificate in the file".into()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key_file).map_err(|e| pem_err(key_file, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Serves `app` on `listener` until `shutdown` fires, then stops accepting and waits
/// for the open connections to finish their requests.
pub(crate) async fn serve(
    listener: TcpListener,
    app: axum::Router,
    opts: ServeOptions,
    mut shutdown: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(opts.max_connections));
    let acceptor = opts.tls.clone().map(TlsAcceptor::from);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = opts.max_connections, "connection limit reached: closing");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let watcher = graceful.watcher();
        // The peer's address travels with each request, as axum's `ConnectInfo` (what
        // `axum::serve` would set): per-address limits of work that does not
        // authenticate, per-caller job quotas.
        let service = TowerToHyperService::new(tower_http::add_extension::AddExtension::new(
            app.clone(),
            axum::extract::ConnectInfo(peer),
        ));
        let acceptor = acceptor.clone();
        let head_timeout = opts.header_read_timeout;
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(head_timeout);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(Duration::from_secs(30)));
            let result = match acceptor {
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
                    watcher.watch(conn.into_owned()).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(head_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let conn =
                                builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                            watcher.watch(conn.into_owned()).await
                        }
                        Ok(Err(e)) => Err(format!("TLS handshake: {e}").into()),
                        Err(_) => Err("TLS handshake timed out".into()),
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The base URL of a listener on `addr`.
pub fn url_of(addr: SocketAddr, tls: bool) -> String {
    format!("{}://{addr}", if tls { "https" } else { "http" })
}
