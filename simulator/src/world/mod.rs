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
//! * `learn.rs` — population models trained from the world's own uploads, the gate,
//!   and a poisoned retraining the gate must refuse;
//! * `run.rs` — the days;
//! * `cohort.rs` — a world run in cohorts, one after another (a world of a million
//!   people in the disk of one cohort), saved as they finish and pooled.

mod attacks;
mod backend;
mod cohort;
mod learn;
mod network;
mod phone;
mod report;
mod run;
pub mod workdir;

pub use backend::{BackendKind, SimBackend, install_models};
pub use network::{FaultCounts, Faults, FaultyNetwork};
pub use report::{AttackStats, CohortCost, Envelopes, FactorRates, Report, RetrainRecord};
pub use run::{Progress, run};

use std::path::PathBuf;

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct WorldConfig {
    /// People with an enrolled phone.
    pub people: usize,
    /// Run the people in cohorts of at most this many, one after another, each with a
    /// backend and phones of its own (folders emptied in between), and pool them in
    /// the report (`None`: everyone at once); each finished cohort is saved in
    /// `dir/cohorts`. Impostors and mimics are then people of the same cohort. At
    /// least 4; not with `learn`, nor (with fewer people than the world) with `faces`
    /// or a remote backend.
    pub cohort: Option<usize>,
    /// Keep the cohorts that an earlier run of the same world saved in `dir` (it
    /// stopped part-way) and run only the rest. Needs `cohort`.
    pub resume: bool,
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
    /// Sessions of activity on the enrolment day, an hour apart on the phone's clock:
    /// 1 is a walk of 150 s and 30 typed entries; more are each a walk of 90 s and 20
    /// entries (a model trained from the uploads needs people with several sessions:
    /// they enrol on the first and are judged on the later ones).
    pub day0_sessions: u32,
    /// Train the population models from the world's own day-0 uploads (every person
    /// consents), gate them against the research-trained models, promote them, and
    /// after the last day retrain on uploads poisoned by `poison_accounts` crafted
    /// accounts (that candidate must be refused). Needs the backend's storage (not a
    /// remote backend) and `day0_sessions` of at least 3.
    pub learn: bool,
    /// Consenting accounts with crafted uploads added before the second retraining.
    pub poison_accounts: usize,
    /// Working directory (backend data, phones' data). Emptied first only when the
    /// simulator made it (its marker file is there); any other non-empty folder is
    /// refused ([`workdir::prepare`]).
    pub dir: PathBuf,
    /// Where the phones keep their data (`None`: `dir/phones`); prepared like `dir`, and
    /// apart from it. A folder in memory (tmpfs, such as `/dev/shm/...`) keeps the
    /// phones' storage, whose every outbox commit is flushed to disk as on a real
    /// phone's own flash, off the disk of the machine running the world: its disk
    /// then holds the backend's data only.
    pub phones_dir: Option<PathBuf>,
    /// Faces: the world's third factor (`None`: gait and keystrokes only).
    pub faces: Option<FaceWorld>,
}

/// Faces in a world: real people's images for the synthetic people
/// ([`crate::faces::FaceSet`]) and the face factor service the backend sends them to.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceWorld {
    /// A folder of `<person>/<images>` (binary PGM or JPEG): person `i` of the world is
    /// its person `i`, while there are enough; people beyond have no face.
    pub data: PathBuf,
    /// The face factor's URL (`python -m tacitface serve` with `TACIT_FACTOR_AUTH=off`
    /// on loopback: the world's backend is made at the start of the run, so the service
    /// cannot hold its factor token, and calls it without one).
    pub factor_url: String,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            people: 200,
            cohort: None,
            resume: false,
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
            day0_sessions: 1,
            learn: false,
            poison_accounts: 40,
            dir: std::env::temp_dir().join("tacit-sim-world"),
            phones_dir: None,
            faces: None,
        }
    }
}

/// `path` made absolute and resolved as far as it exists (symbolic links, `.`, `..`),
/// one component at a time as `realpath -m` does: how two folders compare whether or
/// not they exist yet. A `..` after a missing folder goes back to its parent, so
/// `missing/../w` is `w`; a `..` after a symbolic link goes back from where the link
/// leads. A symbolic link that leads nowhere (or in a loop) is an error.
fn resolved(path: &std::path::Path) -> std::io::Result<PathBuf> {
    use std::path::Component;
    let mut real = PathBuf::new();
    for part in std::path::absolute(path)?.components() {
        match part {
            Component::Prefix(_) | Component::RootDir => real.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                real.pop();
            }
            Component::Normal(name) => {
                real.push(name);
                if std::fs::symlink_metadata(&real).is_ok() {
                    real = real.canonicalize()?;
                }
            }
        }
    }
    Ok(real)
}

impl WorldConfig {
    /// Checks the numbers (clear errors instead of a run that means nothing).
    pub fn check(&self) -> anyhow::Result<()> {
        if self.people < 2 {
            return Err(anyhow::anyhow!(
                "people: at least 2 (impostors are other people)"
            ));
        }
        if let Some(n) = self.cohort {
            if n < 4 {
                return Err(anyhow::anyhow!(
                    "--cohort {n}: at least 4 people (impostors are other people of the cohort)"
                ));
            }
            if self.learn {
                return Err(anyhow::anyhow!(
                    "--cohort with --learn: the models are trained on the whole world's \
                     uploads, which no cohort holds; run it in one go, without --cohort"
                ));
            }
            if n < self.people && matches!(self.backend, BackendKind::Remote { .. }) {
                return Err(anyhow::anyhow!(
                    "--cohort with --backend-url: each cohort needs a backend of its own"
                ));
            }
            if n < self.people && self.faces.is_some() {
                return Err(anyhow::anyhow!(
                    "--cohort with --faces: the face sets have a few dozen people; run \
                     them in one go"
                ));
            }
        } else if self.resume {
            return Err(anyhow::anyhow!(
                "--resume continues a world run in cohorts: give its --cohort"
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
        if let Some(phones) = &self.phones_dir {
            // One inside the other would empty the other's contents at the start.
            let resolve = |p: &PathBuf, flag: &str| {
                resolved(p).map_err(|e| anyhow::anyhow!("{flag} {}: {e}", p.display()))
            };
            let (a, b) = (
                resolve(&self.dir, "--dir")?,
                resolve(phones, "--phones-dir")?,
            );
            if a.starts_with(&b) || b.starts_with(&a) {
                return Err(anyhow::anyhow!(
                    "--phones-dir {}: must be apart from --dir {} (not the same folder, \
                     nor one inside the other; without --phones-dir the phones' data \
                     goes in --dir's phones folder)",
                    phones.display(),
                    self.dir.display()
                ));
            }
        }
        if let Some(f) = &self.faces {
            if !matches!(self.backend, BackendKind::InProcess) {
                return Err(anyhow::anyhow!(
                    "faces: the in-process backend only (its factor list gets the face factor)"
                ));
            }
            if !(f.factor_url.starts_with("http://") || f.factor_url.starts_with("https://")) {
                return Err(anyhow::anyhow!(
                    "face factor URL {:?}: expected http(s)://...",
                    f.factor_url
                ));
            }
        }
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
        if !(1..=8).contains(&self.day0_sessions) {
            return Err(anyhow::anyhow!(
                "day-0 sessions: {} outside 1..=8",
                self.day0_sessions
            ));
        }
        if self.learn {
            if matches!(self.backend, BackendKind::Remote { .. }) {
                return Err(anyhow::anyhow!(
                    "--learn trains from the backend's storage: not with a remote backend"
                ));
            }
            if self.day0_sessions < 3 {
                return Err(anyhow::anyhow!(
                    "--learn needs at least 3 day-0 sessions (people enrol on the first \
                     and are judged on the later ones), got {}",
                    self.day0_sessions
                ));
            }
        }
        if self.parallel == 0 {
            return Err(anyhow::anyhow!("parallel: at least 1"));
        }
        Ok(())
    }
}
