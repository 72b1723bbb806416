//! The backend of a simulated world, in this process: the embedded default (SQLite and
//! a directory of feature objects) with the gait and keystroke factors in-process,
//! their models trained on synthetic people who are not users of the world.

use std::path::Path;

use std::sync::atomic::{AtomicU64, Ordering};
use tacit_backend::keys::KeyRing;

use tacit_backend::server::{self, RunningServer};
use tacit_backend::settings::Settings;
use tacit_backend::state::AppState;
use tacit_shared::hpke::RecipientPublicKey;

use crate::PopulationModel;
use crate::training::{gait_population, keystroke_population, train_model};
use crate::typing::CMU_KEYS;

/// Index of the first training person: far from the users (0..people).
pub const TRAINING_OFFSET: usize = 10_000_000;

/// A running backend, which can be restarted in place (same address, same storage,
/// same factors) while phones keep talking to it.
pub struct SimBackend {
    server: tokio::sync::Mutex<Option<RunningServer>>,
    addr: std::net::SocketAddr,
    settings: Settings,
    state: AppState,
    /// Envelopes stored by earlier runs of the server (its counters restart at 0).
    stored_before: AtomicU64,
    restarts: AtomicU64,
    /// Its HPKE public key (pinned in the phones).
    pub key: RecipientPublicKey,
    /// Its admin token.
    pub admin_token: String,
}

impl SimBackend {
    /// Trains the models and starts the backend under `dir`.
    pub async fn start(
        dir: &Path,
        world: &PopulationModel,
        training_people: usize,
        steps: usize,
        seed: u64,
    ) -> Result<SimBackend, String> {
        let people = TRAINING_OFFSET..TRAINING_OFFSET + training_people;
        let (g, k) = (world.clone(), world.clone());
        let (gp, kp) = (people.clone(), people);
        let models = tokio::task::spawn_blocking(move || -> Result<_, String> {
            let gait = train_model(&gait_population(&g, gp, 3, 90.0), steps, seed)
                .map_err(|e| format!("gait model: {e}"))?;
            let keys = train_model(&keystroke_population(&k, kp, 60, CMU_KEYS), steps, seed)
                .map_err(|e| format!("keystroke model: {e}"))?;
            Ok((gait, keys))
        })
        .await
        .map_err(|e| e.to_string())??;
        let models_dir = dir.join("objects").join("models");
        std::fs::create_dir_all(&models_dir).map_err(|e| e.to_string())?;
        std::fs::write(models_dir.join("gait.tcm"), models.0).map_err(|e| e.to_string())?;
        std::fs::write(models_dir.join("keystroke-fixed.tcm"), models.1)
            .map_err(|e| e.to_string())?;
        let admin_token = format!("sim-{seed:x}-{}", std::process::id());
        let mut settings = Settings {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.to_path_buf(),
            admin_token: Some(admin_token.clone()),
            ..Settings::default()
        };
        // Phones of a simulation upload far faster than people do.
        settings.limits.envelopes_per_second_per_device = 1e6;
        settings.limits.burst_per_device = 1e6;
        let pair = KeyRing::generate(&settings.keys_dir()).map_err(|e| e.to_string())?;
        let keys = KeyRing::load(&settings.keys_dir()).map_err(|e| e.to_string())?;
        let store = server::open_store(&settings)
            .await
            .map_err(|e| e.to_string())?;
        let factors = server::embedded_factors(&settings, store.objects())
            .await
            .map_err(|e| e.to_string())?;
        let server = server::spawn_with_factors(settings.clone(), keys, store, factors)
            .await
            .map_err(|e| e.to_string())?;
        settings.listen = server.addr.to_string();
        Ok(SimBackend {
            addr: server.addr,
            state: server.state.clone(),
            server: tokio::sync::Mutex::new(Some(server)),
            settings,
            stored_before: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            key: *pair.public_key(),
            admin_token,
        })
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The storage.
    pub fn store(&self) -> &dyn tacit_backend::store::Store {
        self.state.store.as_ref()
    }

    /// Envelopes stored since the start, over restarts.
    pub fn stored_envelopes(&self) -> u64 {
        let now = self
            .current_state()
            .metrics
            .get("tacit_envelopes_total", STORED);
        self.stored_before.load(Ordering::Relaxed) + now
    }

    /// Restarts so far.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    fn current_state(&self) -> AppState {
        self.server
            .try_lock()
            .ok()
            .and_then(|s| s.as_ref().map(|s| s.state.clone()))
            .unwrap_or_else(|| self.state.clone())
    }

    /// Stops the server gracefully (in-flight requests finish; new connections are
    /// refused meanwhile) and starts it again on the same address with the same
    /// storage and factors: what a deployment does, seen from the phones.
    pub async fn restart(&self) -> Result<(), String> {
        let mut slot = self.server.lock().await;
        if let Some(old) = slot.take() {
            let stored = old.state.metrics.get("tacit_envelopes_total", STORED);
            let factors = (*old.state.factors).clone();
            old.shutdown().await.map_err(|e| e.to_string())?;
            self.stored_before.fetch_add(stored, Ordering::Relaxed);
            let keys = KeyRing::load(&self.settings.keys_dir()).map_err(|e| e.to_string())?;
            let store = self.state.store.clone();
            let new = server::spawn_with_factors(self.settings.clone(), keys, store, factors)
                .await
                .map_err(|e| format!("restart: {e}"))?;
            *slot = Some(new);
            self.restarts.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Stops the server.
    pub async fn stop(&self) -> Result<(), String> {
        if let Some(s) = self.server.lock().await.take() {
            s.shutdown().await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

const STORED: &str = "status=\"stored\"";
