//! A simulated world: a population of synthetic people, each with a phone
//! running the real mobile-core [`Client`](tacit_mobile_core::client::Client), living a
//! number of days against a real backend (in this process, the embedded default), with
//! genuine authentications at random moments and attackers; the outcome is a
//! [`Report`].
//!
//! * `backend.rs` — the backend: in this process (the default), a `tacit-backend`
//!   child process killed with `SIGKILL` to restart, or a remote URL; models trained
//!   on other synthetic people;
//! * `network.rs` — the faulty network between the phones and the backend;
//! * `phone.rs` — one person's phone and what they do with it in a day;
//! * `attacks.rs` — replayed and tampered envelopes and requests, a stolen device key;
//! * `report.rs` — what a run measured, as a table and JSON;
//! * `run.rs` — the days.

mod attacks;
mod backend;
mod network;
mod phone;
mod report;
mod run;
pub mod workdir;

pub use backend::{BackendKind, SimBackend, install_models};
pub use network::{FaultCounts, Faults, FaultyNetwork};
pub use report::{AttackStats, Envelopes, FactorRates, Report};
pub use run::{Progress, run};

use std::path::PathBuf;

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct WorldConfig {
    /// People with an enrolled phone.
    pub people: usize,
    /// Days lived after the enrolment day.
    pub days: u32,
    /// Seed of the population and of everything random in the run.
    pub seed: u64,
    /// People (not users) the models are trained on.
    pub training_people: usize,
    /// Training steps of each model.
    pub training_steps: usize,
    /// Genuine authentications per person and day.
    pub auths_per_day: u32,
    /// Probability, per person and day, that someone else (a zero-effort impostor)
    /// picks the phone up and the app authenticates.
    pub impostor_rate: f64,
    /// Probability, per person and day, of a mimicry attack on the phone.
    pub mimic_rate: f64,
    /// How much of the victim's rhythm a mimic copies (0..=1).
    pub mimic_strength: f64,
    /// People simulated at once.
    pub parallel: usize,
    /// Faults of the network between the phones and the backend.
    pub faults: Faults,
    /// Restart the backend midway through every day (not a remote one).
    pub restarts: bool,
    /// Which backend the phones talk to.
    pub backend: BackendKind,
    /// Working directory (backend data, phones' data). Emptied first only when the
    /// simulator made it (its marker file is there); any other non-empty folder is
    /// refused ([`workdir::prepare`]).
    pub dir: PathBuf,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            people: 200,
            days: 3,
            seed: 1,
            training_people: 40,
            training_steps: 300,
            auths_per_day: 2,
            impostor_rate: 0.5,
            mimic_rate: 0.25,
            mimic_strength: 0.5,
            parallel: 4,
            faults: Faults::bad(),
            restarts: true,
            backend: BackendKind::InProcess,
            dir: std::env::temp_dir().join("tacit-sim-world"),
        }
    }
}

impl WorldConfig {
    /// Checks the numbers (clear errors instead of a run that means nothing).
    pub fn check(&self) -> anyhow::Result<()> {
        if self.people < 2 {
            return Err(anyhow::anyhow!(
                "people: at least 2 (impostors are other people)"
            ));
        }
        if self.training_people < 4 {
            return Err(anyhow::anyhow!("training people: at least 4"));
        }
        for (name, p) in [
            ("impostor rate", self.impostor_rate),
            ("mimic rate", self.mimic_rate),
            ("mimic strength", self.mimic_strength),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(anyhow::anyhow!("{name}: {p} outside 0..=1"));
            }
        }
        self.faults.check()?;
        if let BackendKind::Remote {
            url,
            admin_token,
            public_key,
        } = &self.backend
        {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(anyhow::anyhow!(
                    "backend URL {url:?}: expected http(s)://..."
                ));
            }
            if admin_token.is_empty() {
                return Err(anyhow::anyhow!(
                    "a remote backend needs its admin token (--admin-token or TACIT_ADMIN_TOKEN)"
                ));
            }
            if public_key.is_empty() {
                return Err(anyhow::anyhow!(
                    "a remote backend needs its HPKE public key (--backend-key)"
                ));
            }
        }
        if let BackendKind::Process(bin) = &self.backend
            && !bin.is_file()
        {
            return Err(anyhow::anyhow!(
                "backend binary {}: not a file",
                bin.display()
            ));
        }
        if self.parallel == 0 {
            return Err(anyhow::anyhow!("parallel: at least 1"));
        }
        Ok(())
    }
}
