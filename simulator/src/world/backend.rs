//! The backend of a simulated world, one of three kinds ([`BackendKind`]):
//!
//! * in this process (the default): the embedded gateway (SQLite and a directory of
//!   feature objects) with the gait and keystroke factors in-process; a restart is a
//!   graceful shutdown and start on the same address;
//! * a `tacit-backend serve` child process on the same kind of storage; a restart is
//!   `SIGKILL` (nothing flushed, nothing finished) and a new process on the same port;
//! * a backend already running elsewhere (a URL): no restarts, and what it stored is
//!   read from its `/metrics`.
//!
//! The first two train their models on synthetic people who are not users of the world.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tacit_backend::error::Chain;
use tacit_backend::keys::KeyRing;
use tacit_backend::server::{self, RunningServer};
use tacit_backend::settings::Settings;
use tacit_backend::state::AppState;
use tacit_backend::store::Store;
use tacit_shared::hpke::RecipientPublicKey;

use crate::PopulationModel;
use crate::training::{gait_population, keystroke_population, train_model};
use crate::typing::CMU_KEYS;

/// Index of the first training person: far from the users (0..people).
pub const TRAINING_OFFSET: usize = 10_000_000;

/// How long a started backend process may take to answer `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Which backend a world runs against.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// In this process (the embedded default); restarts are graceful.
    #[default]
    InProcess,
    /// `tacit-backend serve` (this binary) as a child process; restarts are `kill -9`.
    Process(PathBuf),
    /// A backend running elsewhere. Its models must be loaded already; the world's
    /// users are created with the admin token; no restarts.
    Remote {
        /// Base URL, e.g. `http://10.0.0.5:8080`.
        url: String,
        /// Its admin token.
        admin_token: String,
        /// Its HPKE public key, base64 (`tacit-backend keygen` prints it).
        public_key: String,
    },
}

/// What runs the backend.
enum Runner {
    InProcess {
        server: tokio::sync::Mutex<Option<RunningServer>>,
        settings: Box<Settings>,
        state: AppState,
        /// Envelopes stored by earlier runs of the server (its counters restart at 0).
        stored_before: AtomicU64,
    },
    Process {
        bin: PathBuf,
        config: PathBuf,
        log: PathBuf,
        child: tokio::sync::Mutex<Option<tokio::process::Child>>,
        /// The storage, opened by this process too (for the accounting).
        store: Arc<dyn Store>,
        /// Stored envelopes read from `/metrics` of killed processes (approximate: a
        /// process may store a few more between the last read and the kill; the
        /// accounting at the end counts database rows instead).
        stored_before: AtomicU64,
    },
    Remote {
        /// `/metrics` stored count when the world started.
        stored_at_start: u64,
    },
}

/// A running backend, which can be restarted in place (same address, same storage,
/// same factors) while phones keep talking to it.
pub struct SimBackend {
    url: String,
    runner: Runner,
    restarts: AtomicU64,
    http: reqwest::Client,
    /// Its HPKE public key (pinned in the phones).
    pub key: RecipientPublicKey,
    /// Its admin token.
    pub admin_token: String,
}

/// Trains the gait and keystroke models on `training_people` synthetic people who are
/// not users and writes them where the factors load them (`objects/models/`).
pub async fn install_models(
    dir: &Path,
    world: &PopulationModel,
    training_people: usize,
    steps: usize,
    seed: u64,
) -> anyhow::Result<()> {
    let people = TRAINING_OFFSET..TRAINING_OFFSET + training_people;
    let (g, k) = (world.clone(), world.clone());
    let (gp, kp) = (people.clone(), people);
    let models = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let gait = train_model(&gait_population(&g, gp, 3, 90.0), steps, seed)
            .map_err(|e| anyhow::anyhow!("gait model: {e}"))?;
        let keys = train_model(&keystroke_population(&k, kp, 60, CMU_KEYS), steps, seed)
            .map_err(|e| anyhow::anyhow!("keystroke model: {e}"))?;
        Ok((gait, keys))
    })
    .await??;
    let models_dir = dir.join("objects").join("models");
    std::fs::create_dir_all(&models_dir)?;
    std::fs::write(models_dir.join("gait.tcm"), models.0)?;
    std::fs::write(models_dir.join("keystroke-fixed.tcm"), models.1).map_err(anyhow::Error::from)
}

/// Settings of a local backend under `dir`: simulated phones upload far faster than
/// people do, so the per-device rate limit is lifted.
fn local_settings(dir: &Path, listen: String, admin_token: &str) -> Settings {
    let mut settings = Settings {
        listen,
        data_dir: dir.to_path_buf(),
        admin_token: Some(admin_token.into()),
        ..Settings::default()
    };
    settings.limits.envelopes_per_second_per_device = 1e6;
    settings.limits.burst_per_device = 1e6;
    // Days pass in seconds: a re-sent envelope is a client's retry for 1 s, not 2 min.
    settings.auth.fresh_retry_s = FRESH_RETRY_S;
    // A phone's activities are laid end to end on its sensor clock, which runs ahead of
    // the wall clock that seals its envelopes (days in seconds): its windows end up to
    // hours after their envelope's creation, which a real phone's never do.
    settings.max_future_skew_s = MAX_FUTURE_SKEW_S;
    // The production shape: features and templates encrypted at rest.
    settings.at_rest.key_file = Some(dir.join("at-rest.key"));
    // A promoted model is picked up within half a second (days pass in seconds).
    settings.factor.model_poll_ms = MODEL_POLL_MS;
    settings
}

/// How often a local backend's factors check for a promoted model, ms.
const MODEL_POLL_MS: u64 = 500;

/// Writes the at-rest key of a local backend's settings unless it exists.
fn ensure_at_rest_key(settings: &Settings) -> anyhow::Result<()> {
    match &settings.at_rest.key_file {
        Some(k) if !k.exists() => {
            std::fs::create_dir_all(k.parent().unwrap_or(Path::new(".")))?;
            tacit_backend::store::at_rest::AtRestKeys::generate(k).map_err(anyhow::Error::from)
        }
        _ => Ok(()),
    }
}

/// The gateway's retry window of a local backend ([`local_settings`]).
const FRESH_RETRY_S: u64 = 1;

/// How far a local backend lets windows (and envelopes) run ahead of the clock
/// ([`local_settings`]): a day, the most the settings allow.
const MAX_FUTURE_SKEW_S: u64 = 24 * 3600;

/// The value of `tacit_envelopes_total{status="stored"}` in a `/metrics` text.
fn stored_in_metrics(text: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with("tacit_envelopes_total") && l.contains(STORED))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

impl SimBackend {
    /// Trains the models and starts the backend under `dir` (or connects to a remote
    /// one, which needs neither).
    pub async fn start(
        kind: &BackendKind,
        dir: &Path,
        world: &PopulationModel,
        training_people: usize,
        steps: usize,
        seed: u64,
        face_factor: Option<&str>,
    ) -> anyhow::Result<SimBackend> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        if let BackendKind::Remote {
            url,
            admin_token,
            public_key,
        } = kind
        {
            let bytes = tacit_shared::api::b64_decode(public_key)
                .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "backend public key: expected 32 bytes in base64 (keygen's public_key=)"
                    )
                })?;
            let url = url.trim_end_matches('/').to_string();
            let backend = SimBackend {
                url,
                runner: Runner::Remote { stored_at_start: 0 },
                restarts: AtomicU64::new(0),
                http,
                key: RecipientPublicKey::from_bytes(bytes),
                admin_token: admin_token.clone(),
            };
            let stored_at_start = backend.scrape_stored().await?;
            return Ok(SimBackend {
                runner: Runner::Remote { stored_at_start },
                ..backend
            });
        }
        install_models(dir, world, training_people, steps, seed).await?;
        let admin_token = format!("sim-{seed:x}-{}", std::process::id());
        match kind {
            BackendKind::Process(bin) => {
                // A free port, released for the child (which binds it again after
                // every kill: the listening socket reuses the address).
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())?
                    .port();
                let settings = local_settings(dir, format!("127.0.0.1:{port}"), &admin_token);
                ensure_at_rest_key(&settings)?;
                let pair = KeyRing::generate(&settings.keys_dir())?;
                let config = dir.join("backend.toml");
                let toml = format!(
                    "listen = \"127.0.0.1:{port}\"\ndata_dir = {:?}\nadmin_token = {:?}\n\
                     max_future_skew_s = {MAX_FUTURE_SKEW_S}\n\n\
                     [limits]\nenvelopes_per_second_per_device = 1e6\nburst_per_device = 1e6\n\n\
                     [auth]\nfresh_retry_s = {FRESH_RETRY_S}\n\n\
                     [at_rest]\nkey_file = {:?}\n\n\
                     [factor]\nmodel_poll_ms = {MODEL_POLL_MS}\n",
                    dir.display().to_string(),
                    admin_token,
                    dir.join("at-rest.key").display().to_string()
                );
                std::fs::write(&config, toml)?;
                let mut backend = SimBackend {
                    url: format!("http://127.0.0.1:{port}"),
                    runner: Runner::Remote { stored_at_start: 0 },
                    restarts: AtomicU64::new(0),
                    http,
                    key: *pair.public_key(),
                    admin_token,
                };
                let log = dir.join("backend.log");
                let child = backend.spawn_process(bin, &config, &log).await?;
                // Opened after the child has migrated the database.
                let store = server::open_store(&settings)
                    .await
                    .map_err(|e| anyhow::anyhow!("storage: {}", Chain(&e)))?;
                backend.runner = Runner::Process {
                    bin: bin.clone(),
                    config,
                    log,
                    child: tokio::sync::Mutex::new(Some(child)),
                    store,
                    stored_before: AtomicU64::new(0),
                };
                Ok(backend)
            }
            _ => {
                let mut settings = local_settings(dir, "127.0.0.1:0".into(), &admin_token);
                if let Some(url) = face_factor {
                    settings
                        .auth
                        .factors
                        .push(tacit_backend::settings::RemoteFactorSettings {
                            name: "face".into(),
                            url: url.to_string(),
                            records: None,
                            weight: 1.0,
                        });
                    // An image takes the face factor a few hundred ms on a CPU, and the
                    // world's phones send many at once.
                    settings.auth.timeout_ms = settings.auth.timeout_ms.max(15_000);
                    // A world runs on loopback with a face service started beside it,
                    // which cannot know the token of a keys directory made just now.
                    settings.factor_auth.enabled = false;
                }
                ensure_at_rest_key(&settings)?;
                let pair = KeyRing::generate(&settings.keys_dir())?;
                let keys = KeyRing::load(&settings.keys_dir())?;
                let store = server::open_store(&settings)
                    .await
                    .map_err(|e| anyhow::anyhow!("storage: {}", Chain(&e)))?;
                let factors = server::embedded_factors(&settings, store.objects())
                    .await
                    .map_err(|e| anyhow::anyhow!("factors: {}", Chain(&e)))?;
                let mut settings = settings;
                let server = server::spawn_with_factors(settings.clone(), keys, store, factors)
                    .await
                    .map_err(|e| anyhow::anyhow!("gateway: {}", Chain(&e)))?;
                settings.listen = server.addr.to_string();
                Ok(SimBackend {
                    url: server.url(),
                    runner: Runner::InProcess {
                        state: server.state.clone(),
                        server: tokio::sync::Mutex::new(Some(server)),
                        settings: Box::new(settings),
                        stored_before: AtomicU64::new(0),
                    },
                    restarts: AtomicU64::new(0),
                    http,
                    key: *pair.public_key(),
                    admin_token,
                })
            }
        }
    }

    /// The backend's storage, when this process can open it (not a remote backend):
    /// for training from the world's uploads and for the accounting.
    pub fn store(&self) -> Option<Arc<dyn Store>> {
        match &self.runner {
            Runner::InProcess { state, .. } => Some(state.store.clone()),
            Runner::Process { store, .. } => Some(store.clone()),
            Runner::Remote { .. } => None,
        }
    }

    /// Waits until the backend's factors have loaded what the registry serves: the
    /// in-process factors are asked; a backend process checks every
    /// [`MODEL_POLL_MS`], so twice that is waited.
    pub async fn models_loaded(&self, versions: &[(String, String)]) {
        let Runner::InProcess { state, .. } = &self.runner else {
            tokio::time::sleep(Duration::from_millis(3 * MODEL_POLL_MS)).await;
            return;
        };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            let loaded = versions.iter().all(|(factor, version)| {
                state
                    .factors
                    .get(factor)
                    .and_then(|f| f.client.model_version())
                    .as_deref()
                    == Some(version.as_str())
            });
            if loaded {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts `bin --config CONFIG serve` with a clean environment (no `TACIT_*` of
    /// this process leaks in), logging to `log`, and waits until it is ready.
    async fn spawn_process(
        &self,
        bin: &Path,
        config: &Path,
        log: &Path,
    ) -> anyhow::Result<tokio::process::Child> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| anyhow::anyhow!("{}: {e}", log.display()))?;
        let err = out.try_clone()?;
        let mut child = tokio::process::Command::new(bin)
            .arg("--config")
            .arg(config)
            .args(["serve", "--role", "all"])
            .env_clear()
            .env("TACIT_LOG", "warn")
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| anyhow::anyhow!("{}: {e}", bin.display()))?;
        let t0 = Instant::now();
        while t0.elapsed() < READY_TIMEOUT {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(anyhow::anyhow!(
                    "backend process exited ({status}) before it was ready; see {}",
                    log.display()
                ));
            }
            let ready = self
                .http
                .get(format!("{}/readyz", self.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(child);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill().await;
        Err(anyhow::anyhow!(
            "backend process not ready within {READY_TIMEOUT:?}; see {}",
            log.display()
        ))
    }

    async fn scrape_stored(&self) -> anyhow::Result<u64> {
        let r = self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}/metrics: {e}", self.url))?;
        if !r.status().is_success() {
            return Err(anyhow::anyhow!("{}/metrics: HTTP {}", self.url, r.status()));
        }
        Ok(stored_in_metrics(&r.text().await?))
    }

    /// Base URL.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Envelopes stored since the start, over restarts, by the servers' own counters
    /// (for the timeline; see [`SimBackend::stored_by`] for the exact count).
    pub async fn stored_so_far(&self) -> u64 {
        match &self.runner {
            Runner::InProcess {
                server,
                state,
                stored_before,
                ..
            } => {
                let now = server
                    .try_lock()
                    .ok()
                    .and_then(|s| s.as_ref().map(|s| s.state.clone()))
                    .unwrap_or_else(|| state.clone())
                    .metrics
                    .counter_value("tacit_envelopes_total", &[("status", "stored")]);
                stored_before.load(Ordering::Relaxed) + now
            }
            Runner::Process { stored_before, .. } => {
                stored_before.load(Ordering::Relaxed) + self.scrape_stored().await.unwrap_or(0)
            }
            Runner::Remote { stored_at_start } => self
                .scrape_stored()
                .await
                .unwrap_or(0)
                .saturating_sub(*stored_at_start),
        }
    }

    /// Envelopes stored for these users: rows in the database where this process can
    /// read it; for a remote backend, what its `/metrics` counted since the start
    /// (exact only if nothing else uploads to it and it was not restarted).
    pub async fn stored_by(&self, users: &[String]) -> anyhow::Result<u64> {
        let store: &dyn Store = match &self.runner {
            Runner::InProcess { state, .. } => state.store.as_ref(),
            Runner::Process { store, .. } => store.as_ref(),
            Runner::Remote { .. } => return Ok(self.stored_so_far().await),
        };
        let mut counting = futures::stream::iter(users)
            .map(|u| store.count_envelopes(u))
            .buffer_unordered(8);
        let mut n = 0;
        while let Some(c) = counting.next().await {
            n += c?;
        }
        Ok(n)
    }

    /// Restarts so far.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// How long the gateway takes a re-sent envelope for a client's retry (`None`: not
    /// known, a remote backend).
    pub fn fresh_retry(&self) -> Option<Duration> {
        match self.runner {
            Runner::Remote { .. } => None,
            _ => Some(Duration::from_secs(FRESH_RETRY_S)),
        }
    }

    /// Whether [`SimBackend::restart`] can restart this backend.
    pub fn can_restart(&self) -> bool {
        !matches!(self.runner, Runner::Remote { .. })
    }

    /// In this process: stops the server gracefully (in-flight requests finish; new
    /// connections are refused meanwhile) and starts it again on the same address with
    /// the same storage and factors, as a deployment does. A child process is killed
    /// with `SIGKILL` instead (what a crash or the OOM killer does) and started again.
    /// A remote backend is left alone.
    pub async fn restart(&self) -> anyhow::Result<()> {
        match &self.runner {
            Runner::InProcess {
                server,
                settings,
                state,
                stored_before,
            } => {
                let mut slot = server.lock().await;
                if let Some(old) = slot.take() {
                    let stored = old
                        .state
                        .metrics
                        .counter_value("tacit_envelopes_total", &[("status", "stored")]);
                    let factors = (*old.state.factors).clone();
                    old.shutdown().await?;
                    stored_before.fetch_add(stored, Ordering::Relaxed);
                    let keys = KeyRing::load(&settings.keys_dir())?;
                    let new = server::spawn_with_factors(
                        (**settings).clone(),
                        keys,
                        state.store.clone(),
                        factors,
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("restart: {e}"))?;
                    *slot = Some(new);
                    self.restarts.fetch_add(1, Ordering::Relaxed);
                }
            }
            Runner::Process {
                bin,
                config,
                log,
                child,
                stored_before,
                ..
            } => {
                let mut slot = child.lock().await;
                if let Some(mut old) = slot.take() {
                    stored_before
                        .fetch_add(self.scrape_stored().await.unwrap_or(0), Ordering::Relaxed);
                    old.kill()
                        .await
                        .map_err(|e| anyhow::anyhow!("kill -9: {e}"))?;
                    *slot = Some(self.spawn_process(bin, config, log).await?);
                    self.restarts.fetch_add(1, Ordering::Relaxed);
                }
            }
            Runner::Remote { .. } => {}
        }
        Ok(())
    }

    /// Stops the server (gracefully; a child process by `SIGTERM`).
    pub async fn stop(&self) -> anyhow::Result<()> {
        match &self.runner {
            Runner::InProcess { server, .. } => {
                if let Some(s) = server.lock().await.take() {
                    s.shutdown().await?;
                }
            }
            Runner::Process { child, .. } => {
                if let Some(mut c) = child.lock().await.take() {
                    // SIGTERM through kill(1), which keeps this crate free of unsafe
                    // code; where there is none, the process is stopped hard.
                    let term = match c.id() {
                        Some(pid) => tokio::process::Command::new("kill")
                            .args(["-TERM", &pid.to_string()])
                            .status()
                            .await
                            .is_ok_and(|s| s.success()),
                        None => false,
                    };
                    if !term {
                        let _ = c.kill().await;
                        return Ok(());
                    }
                    match tokio::time::timeout(Duration::from_secs(30), c.wait()).await {
                        Ok(Ok(s)) if s.success() => {}
                        Ok(Ok(s)) => {
                            return Err(anyhow::anyhow!("backend process stopped with {s}"));
                        }
                        Ok(Err(e)) => return Err(e.into()),
                        Err(_) => {
                            let _ = c.kill().await;
                            return Err(anyhow::anyhow!(
                                "backend process ignored SIGTERM for 30 s"
                            ));
                        }
                    }
                }
            }
            Runner::Remote { .. } => {}
        }
        Ok(())
    }
}

const STORED: &str = "status=\"stored\"";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_count_is_read_from_metrics_text() {
        let text = "# HELP tacit_envelopes_total envelopes\n\
                    tacit_envelopes_total{status=\"stored\"} 41\n\
                    tacit_envelopes_total{status=\"duplicate\"} 3\n\
                    tacit_uploads_total 9\n";
        assert_eq!(stored_in_metrics(text), 41);
        assert_eq!(stored_in_metrics(""), 0);
    }
}
