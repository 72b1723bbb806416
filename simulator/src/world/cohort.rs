//! A world run in cohorts: its people split into groups that live one after another,
//! each with a backend and phones of its own, so that a world of a million people
//! needs the disk of one cohort, not of everyone, and the memory of one cohort plus
//! what the report pools (about a hundred bytes per attempt). Each finished cohort is
//! saved (`DIR/cohorts/cohort-NNNN.json`: what the report counts, per attempt, and its
//! costs) before its folders are emptied for the next, so a run that stops part-way
//! resumes from the first unfinished cohort; the report pools every attempt of every
//! cohort, its rates taken at one threshold for everyone as in a single run.
//!
//! What a split changes: an impostor or a mimic is someone of the same cohort, the
//! models are trained (identically: the same seed) for each cohort's backend, the
//! attacks run on each cohort's phones, and each cohort's day has its own backend
//! restart.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::report::{AttackStats, Envelopes, RetrainRecord};
use super::{FaultCounts, WorldConfig};

/// Factor names as small numbers: a world of a million people keeps several million
/// attempts, each with its factors' scores, and a name per score would be most of it.
#[derive(Debug, Default)]
pub(super) struct FactorNames(std::sync::Mutex<Vec<String>>);

/// The most factor names a world numbers (a backend has a handful of factors); a saved
/// cohort naming more is refused.
pub(super) const MAX_FACTORS: usize = 64;

impl FactorNames {
    /// The number of `name`, given on first sight (names past [`MAX_FACTORS`] share
    /// the last number, which only a refused cohort file could bring).
    pub(super) fn id(&self, name: &str) -> u16 {
        let mut names = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match names.iter().position(|n| n == name) {
            Some(i) => i as u16,
            None if names.len() < MAX_FACTORS => {
                names.push(name.to_string());
                (names.len() - 1) as u16
            }
            None => (MAX_FACTORS - 1) as u16,
        }
    }

    /// Every name so far, by number.
    pub(super) fn all(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Who was holding the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Holder {
    /// Its owner (a genuine attempt).
    Owner,
    /// Someone else of the world (a zero-effort impostor).
    Impostor,
    /// Someone copying the owner's rhythm.
    Mimic,
}

/// One authentication as the phone saw it: only what the report counts (the scores and
/// the decision), not the whole answer with its signed verdict, so that a world of many
/// people keeps about a hundred bytes per attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Outcome {
    /// Who held the phone.
    pub holder: Holder,
    /// What the backend decided.
    pub decision: tacit_shared::api::AuthDecision,
    /// The fused log-likelihood ratio.
    pub llr: f64,
    /// The FAR estimated for the attempt and the floor of that estimate.
    pub judged: tacit_models::eval::metrics::Judged,
    /// Each scored factor's LLR, by its [`FactorNames`] number.
    pub factors: Vec<(u16, f64)>,
    /// From the phone's request to its answer, retries included, ms.
    pub latency_ms: f64,
}

/// What one cohort measured: everything the report is made of, per attempt where it
/// pools (rates, latencies), as totals where it adds up (envelopes, attacks, network).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Cohort {
    /// The world it belongs to ([`fingerprint`]): a saved cohort of another world is
    /// never pooled into this one.
    pub world: String,
    /// The `tacit-sim` build that ran it ([`build_id`]): a resumed world can be the
    /// work of several builds, and the report says so.
    pub build: String,
    /// Read from its file (it ran in an earlier process), not run by this one.
    #[serde(skip)]
    pub loaded: bool,
    /// Its number, from 0.
    pub index: usize,
    /// Its people: indexes in the population.
    pub people: Range<usize>,
    /// The factor names its outcomes number (in its own order).
    pub factor_names: Vec<String>,
    /// Every authentication of its days.
    pub outcomes: Vec<Outcome>,
    /// Its attacks and their successes.
    pub attacks: AttackStats,
    /// Its envelope accounting.
    pub envelopes: Envelopes,
    /// Its users whose every factor enrolled fully.
    pub enrolled_fully: usize,
    /// What its faulty network did.
    pub network: FaultCounts,
    /// Its backend's restarts.
    pub restarts: u64,
    /// Its retrainings (`--learn`, which runs in one go: empty in a saved cohort).
    pub learning: Vec<RetrainRecord>,
    /// Its stages: `(stage, seconds since the cohort's start, envelopes stored so far)`.
    pub timeline: Vec<(String, f64, u64)>,
    /// Its wall time, s, from emptying the folders to stopping its backend.
    pub wall_s: f64,
    /// Of which setup (training the models, starting the backend), s.
    pub setup_s: f64,
    /// CPU of the process while the cohort ran, s.
    pub cpu_s: f64,
    /// The process's peak resident memory when the cohort ended, MiB.
    pub peak_rss_mib: f64,
    /// The backend's folder after the attacks, before the accounting (the phones still
    /// there), bytes on disk (allocated blocks).
    pub backend_disk_bytes: u64,
    /// The phones' folder at the same moment, bytes allocated.
    pub phones_disk_bytes: u64,
}

/// The people of each cohort: `cohort` or fewer each, the sizes at most one apart (so
/// that with cohorts of at least 4, which a world's settings require, none is left
/// with fewer than 2 people: an impostor is someone else of the cohort).
pub(super) fn plan(people: usize, cohort: Option<usize>) -> Vec<Range<usize>> {
    let size = cohort.unwrap_or(people).clamp(1, people.max(1));
    let k = people.div_ceil(size).max(1);
    let (base, extra) = (people / k, people % k);
    let mut start = 0;
    (0..k)
        .map(|i| {
            let n = base + usize::from(i < extra);
            let r = start..start + n;
            start += n;
            r
        })
        .collect()
}

/// What makes two runs the same world: every setting but the folders, the resume
/// switch and how many people run at once (and a remote backend's admin token, which
/// must not be written down).
pub(super) fn fingerprint(cfg: &WorldConfig) -> String {
    let backend = match &cfg.backend {
        super::BackendKind::Remote {
            url, public_key, ..
        } => super::BackendKind::Remote {
            url: url.clone(),
            admin_token: String::new(),
            public_key: public_key.clone(),
        },
        other => other.clone(),
    };
    let same = WorldConfig {
        dir: PathBuf::new(),
        phones_dir: None,
        resume: false,
        parallel: 0,
        backend,
        ..cfg.clone()
    };
    format!("tacit-sim {} {same:?}", env!("CARGO_PKG_VERSION"))
}

/// The cohort a file of the cohorts' folder holds, by its name (`cohort-NNNN.json`).
fn saved_index(name: &str) -> Option<usize> {
    name.strip_prefix("cohort-")?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// Where cohort `index` of a world in `dir` is saved.
pub(super) fn saved_at(dir: &Path, index: usize) -> PathBuf {
    dir.join("cohorts").join(format!("cohort-{index:04}.json"))
}

impl Cohort {
    /// Saves the cohort where [`saved_at`] says, whole or not at all (a stop while it
    /// is written leaves the previous state: no file, so the cohort runs again).
    pub(super) fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let path = saved_at(dir, self.index);
        let folder = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(folder)
            .map_err(|e| anyhow::anyhow!("{}: {e}", folder.display()))?;
        let part = path.with_extension("json.part");
        let write = || -> std::io::Result<()> {
            let file = std::fs::File::create(&part)?;
            let mut out = std::io::BufWriter::new(file);
            serde_json::to_writer(&mut out, self)?;
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            std::fs::rename(&part, &path)
        };
        write()
            .map_err(|e| anyhow::anyhow!("saving cohort {}: {}: {e}", self.index, path.display()))
    }

    /// The saved cohorts of `cfg`'s world, by number (`None`: not saved; the list may
    /// end early); an error when a file in the cohorts' folder is not one of this
    /// world's `cohorts` (another seed or size, another version, a stray file).
    pub(super) fn load_all(
        cfg: &WorldConfig,
        cohorts: usize,
    ) -> anyhow::Result<Vec<Option<Cohort>>> {
        let folder = cfg.dir.join("cohorts");
        let entries = match std::fs::read_dir(&folder) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", folder.display())),
        };
        let mut found = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| anyhow::anyhow!("{}: {e}", folder.display()))?
                .path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".json.part") {
                // A save that a stop cut short: its cohort runs again.
                continue;
            }
            let index = saved_index(name).filter(|&i| i < cohorts && saved_at(&cfg.dir, i) == path);
            match index {
                Some(i) => found.push(i),
                None => {
                    return Err(anyhow::anyhow!(
                        "{}: not one of this world's {cohorts} cohorts; --resume \
                         continues only the same world: run without --resume to start over",
                        path.display()
                    ));
                }
            }
        }
        let mut all: Vec<Option<Cohort>> = Vec::new();
        all.resize_with(cohorts, || None);
        for i in found {
            all[i] = Cohort::load(cfg, i)?;
        }
        Ok(all)
    }

    /// The saved cohort `index` of `cfg`'s world, if there is one; an error when the
    /// file is not a cohort of this world (another seed or size, another version).
    fn load(cfg: &WorldConfig, index: usize) -> anyhow::Result<Option<Cohort>> {
        let path = saved_at(&cfg.dir, index);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
        };
        let mut cohort: Cohort = serde_json::from_reader(std::io::BufReader::new(file))
            .map_err(|e| anyhow::anyhow!("{}: not a saved cohort: {e}", path.display()))?;
        if cohort.world != fingerprint(cfg) || cohort.index != index {
            return Err(anyhow::anyhow!(
                "{}: a cohort of another world (other settings or another tacit-sim \
                 version); --resume continues only the same world: run without --resume \
                 to start over",
                path.display()
            ));
        }
        // A file edited or damaged since it was saved would otherwise count wrongly.
        let planned = plan(cfg.people, cfg.cohort).get(index).cloned();
        let names = cohort.factor_names.len();
        let why = if planned.as_ref() != Some(&cohort.people) {
            Some(format!(
                "its people {:?}, not the planned {planned:?}",
                cohort.people
            ))
        } else if names > MAX_FACTORS {
            Some(format!("{names} factor names (at most {MAX_FACTORS})"))
        } else if cohort
            .outcomes
            .iter()
            .any(|o| o.factors.iter().any(|(f, _)| usize::from(*f) >= names))
        {
            Some("a score of a factor it does not name".to_string())
        } else if cohort.outcomes.len() > 64 * cohort.people.len().max(1) {
            Some(format!(
                "{} attempts of {} people",
                cohort.outcomes.len(),
                cohort.people.len()
            ))
        } else {
            None
        };
        if let Some(why) = why {
            return Err(anyhow::anyhow!(
                "{}: not a cohort as this world saves them ({why}); remove it to run that \
                 cohort again",
                path.display()
            ));
        }
        cohort.loaded = true;
        Ok(Some(cohort))
    }

    /// The outcomes with their factors renumbered by `names` (the pooled numbering).
    pub(super) fn renumbered(&mut self, names: &FactorNames) {
        let ids: Vec<u16> = self.factor_names.iter().map(|n| names.id(n)).collect();
        for o in &mut self.outcomes {
            for (f, _) in &mut o.factors {
                *f = ids.get(usize::from(*f)).copied().unwrap_or(u16::MAX);
            }
        }
        self.factor_names = names.all();
    }
}

/// How many cohorts are saved in the world folder `dir` (files `cohorts/cohort-*.json`).
pub(super) fn saved_count(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("cohorts")).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| saved_index(&e.file_name().to_string_lossy()).is_some())
            .count()
    })
}

/// What names this `tacit-sim` build: the start of the SHA-256 of its executable
/// (`unknown` when it cannot be read).
pub(super) fn build_id() -> String {
    std::env::current_exe()
        .and_then(std::fs::read)
        .map(|exe| {
            let d = ring::digest::digest(&ring::digest::SHA256, &exe);
            d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// Bytes allocated on disk under `path` (0 when it does not exist).
pub(super) fn disk_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let own = meta.blocks() * 512;
    if !meta.is_dir() {
        return own;
    }
    own + std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| disk_bytes(&e.path()))
                .sum::<u64>()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cohorts_cover_everyone_once_and_none_is_too_small() {
        for people in [2usize, 3, 4, 5, 7, 8, 9, 10, 99, 100, 101, 1_000_000] {
            for cohort in [
                None,
                Some(4),
                Some(5),
                Some(7),
                Some(50_000),
                Some(2_000_000),
            ] {
                let plan = plan(people, cohort);
                assert_eq!(plan[0].start, 0);
                assert_eq!(plan.last().map(|r| r.end), Some(people));
                for w in plan.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                }
                let size = cohort.unwrap_or(people).min(people);
                let (small, large) = (
                    plan.iter().map(|r| r.len()).min().unwrap_or(0),
                    plan.iter().map(|r| r.len()).max().unwrap_or(0),
                );
                assert!(large <= size, "{people} in {cohort:?}: {plan:?}");
                assert!(large - small <= 1, "{people} in {cohort:?}: {plan:?}");
                // At least 4 a cohort (the smallest allowed) leaves at least 2.
                assert!(small >= 2.min(people), "{people} in {cohort:?}: {plan:?}");
            }
        }
        assert_eq!(plan(1_000_000, Some(50_000)).len(), 20);
        assert_eq!(plan(10, Some(4)), vec![0..4, 4..7, 7..10]);
    }

    #[test]
    fn names_past_the_limit_share_the_last_number() {
        let names = FactorNames::default();
        for i in 0..MAX_FACTORS {
            assert_eq!(usize::from(names.id(&format!("f{i}"))), i);
        }
        let last = (MAX_FACTORS - 1) as u16;
        assert_eq!(names.id("one too many"), last);
        assert_eq!(names.all().len(), MAX_FACTORS);
        assert_eq!(names.id("f0"), 0);
    }

    #[test]
    fn saved_names_and_disk_bytes() {
        assert_eq!(saved_index("cohort-0007.json"), Some(7));
        for not in [
            "cohort-0007.json.part",
            "cohort-x.json",
            "notes.json",
            "cohort-.json",
        ] {
            assert_eq!(saved_index(not), None, "{not}");
        }
        let dir = std::env::temp_dir().join(format!("tacit-disk-bytes-{}", std::process::id()));
        assert_eq!(disk_bytes(&dir), 0, "missing");
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::write(dir.join("a").join("f"), vec![1u8; 100_000]).unwrap();
        std::fs::create_dir_all(dir.join("cohorts")).unwrap();
        std::fs::write(saved_at(&dir, 3), b"").unwrap();
        assert_eq!(saved_count(&dir), 1);
        let bytes = disk_bytes(&dir);
        assert!(bytes >= 100_000, "{bytes}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn factor_numbers_follow_the_pooled_names() {
        let pooled = FactorNames::default();
        assert_eq!(pooled.id("gait"), 0);
        let mut c = Cohort {
            world: String::new(),
            build: String::new(),
            loaded: false,
            index: 1,
            people: 0..2,
            factor_names: vec!["keystroke".into(), "gait".into()],
            outcomes: vec![Outcome {
                holder: Holder::Owner,
                decision: tacit_shared::api::AuthDecision::Accept,
                llr: 1.0,
                judged: (0.5, 0.001),
                factors: vec![(0, 2.0), (1, 3.0)],
                latency_ms: 1.0,
            }],
            attacks: AttackStats::default(),
            envelopes: Envelopes::default(),
            enrolled_fully: 2,
            network: FaultCounts::default(),
            restarts: 0,
            learning: Vec::new(),
            timeline: Vec::new(),
            wall_s: 0.0,
            setup_s: 0.0,
            cpu_s: 0.0,
            peak_rss_mib: 0.0,
            backend_disk_bytes: 0,
            phones_disk_bytes: 0,
        };
        c.renumbered(&pooled);
        assert_eq!(c.outcomes[0].factors, vec![(1, 2.0), (0, 3.0)]);
        assert_eq!(c.factor_names, vec!["gait", "keystroke"]);
    }
}
