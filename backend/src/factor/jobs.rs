//! Job records of the job API, one file per job, written atomically. A job that was
//! running when the process stopped is reported failed after a restart — never
//! "running" forever — and finished records expire after the configured time.
//!
//! Jobs are bounded: at most so many run at once, and one caller (source address) at
//! most so many of them; the records kept are bounded in number (the oldest finished
//! ones make room) as well as in age. A record holds a user's template or scores, so
//! it is written mode 0600 in a directory of mode 0700 and, with encryption at rest on,
//! sealed under the at-rest key with its job id as associated data (a record copied
//! under another id does not open).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::state::now_ms;
use crate::store::at_rest::AtRestKeys;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Still working.
    Running,
    /// Done; `result` holds the output.
    Completed,
    /// Gave up; `error` says why.
    Failed,
}

/// One job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Job id (32 hex digits).
    #[serde(rename = "jobId")]
    pub id: String,
    /// `train` or `input`.
    pub kind: String,
    /// Status.
    pub status: JobStatus,
    /// Creation time (Unix ms).
    pub created_ms: u64,
    /// End time (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    /// Output of a completed job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Reason of a failed job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How many jobs may run and how many records are kept.
#[derive(Debug, Clone, Copy)]
pub struct JobLimits {
    /// How long a finished record is kept.
    pub ttl: Duration,
    /// Most jobs running at once.
    pub max_running: usize,
    /// Most jobs of one caller running at once.
    pub max_per_caller: usize,
    /// Most records kept.
    pub max_records: usize,
}

/// Why a job was not started.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// As many jobs as allowed are running.
    #[error("{0} jobs are running, the most this service runs at once: retry later")]
    Busy(usize),
    /// This caller has as many jobs running as one caller may.
    #[error("{0} jobs of this caller are running, the most one caller may have: retry later")]
    CallerQuota(usize),
    /// The record could not be written.
    #[error("job store: {0}")]
    Io(#[from] std::io::Error),
}

/// What is running, and the records in creation order (oldest first).
#[derive(Debug, Default)]
struct Books {
    running: HashMap<String, IpAddr>,
    per_caller: HashMap<IpAddr, usize>,
    order: VecDeque<String>,
}

/// The job directory.
#[derive(Debug)]
pub struct JobStore {
    dir: PathBuf,
    limits: JobLimits,
    at_rest: Option<Arc<AtRestKeys>>,
    books: Arc<Mutex<Books>>,
}

/// A running job's place in the bounds: released when the job ends (dropped), whatever
/// way it ends.
#[derive(Debug)]
pub struct JobTicket {
    id: String,
    books: Arc<Mutex<Books>>,
}

impl Drop for JobTicket {
    fn drop(&mut self) {
        let mut b = self
            .books
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(caller) = b.running.remove(&self.id)
            && let Some(n) = b.per_caller.get_mut(&caller)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                b.per_caller.remove(&caller);
            }
        }
    }
}

/// The associated data of a job record sealed at rest: its id, so that a record
/// renamed to another id does not open.
fn aad(id: &str) -> String {
    format!("jobs/{id}")
}

/// Creates `dir` (and missing parents) with mode 0700, and makes an existing one 0700.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl JobStore {
    /// Opens (creating, mode 0700) the directory and marks jobs interrupted by a
    /// restart as failed. `at_rest`: the keys records are sealed with (`None`: stored
    /// as they are, encryption at rest being off).
    pub fn open(
        dir: PathBuf,
        limits: JobLimits,
        at_rest: Option<Arc<AtRestKeys>>,
    ) -> std::io::Result<Self> {
        private_dir(&dir)?;
        let store = JobStore {
            dir,
            limits,
            at_rest,
            books: Arc::default(),
        };
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&store.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let Some(id) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if let Some(mut rec) = store.get(id) {
                if rec.status == JobStatus::Running {
                    rec.status = JobStatus::Failed;
                    rec.error = Some("interrupted by a restart of the factor service".into());
                    rec.finished_ms = Some(now_ms());
                    store.write(&rec)?;
                }
                found.push((rec.created_ms, rec.id));
            }
        }
        found.sort();
        store.lock().order = found.into_iter().map(|(_, id)| id).collect();
        store.expire();
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn write(&self, rec: &JobRecord) -> std::io::Result<()> {
        let tmp = self.dir.join(format!("{}.tmp", rec.id));
        let json = serde_json::to_vec(rec).map_err(std::io::Error::other)?;
        let bytes = match &self.at_rest {
            Some(k) => k
                .seal(&aad(&rec.id), &json)
                .map_err(std::io::Error::other)?,
            None => json,
        };
        let _ = std::fs::remove_file(&tmp);
        crate::keys::write_new_private(&tmp, &bytes)?;
        std::fs::rename(&tmp, self.path(&rec.id))
    }

    /// Deletes the oldest finished records until one more fits under the bound.
    fn make_room(&self, b: &mut Books) {
        while b.order.len() >= self.limits.max_records.max(1) {
            let Some(pos) = b.order.iter().position(|id| !b.running.contains_key(id)) else {
                return;
            };
            if let Some(id) = b.order.remove(pos) {
                let _ = std::fs::remove_file(self.path(&id));
            }
        }
    }

    /// Records a new running job of `caller`, within the bounds: the job counts as
    /// running until the returned ticket is dropped.
    pub fn create(&self, kind: &str, caller: IpAddr) -> Result<(JobRecord, JobTicket), AdmitError> {
        let mut raw = [0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| std::io::Error::other("no randomness"))?;
        let rec = JobRecord {
            id: hex::encode(raw),
            kind: kind.into(),
            status: JobStatus::Running,
            created_ms: now_ms(),
            finished_ms: None,
            result: None,
            error: None,
        };
        let mut b = self.lock();
        let l = &self.limits;
        if b.running.len() >= l.max_running.max(1) {
            return Err(AdmitError::Busy(b.running.len()));
        }
        let mine = b.per_caller.get(&caller).copied().unwrap_or(0);
        if mine >= l.max_per_caller.max(1) {
            return Err(AdmitError::CallerQuota(mine));
        }
        self.make_room(&mut b);
        if b.order.len() >= l.max_records.max(1) {
            // Every record is a running job's: as busy as can be.
            return Err(AdmitError::Busy(b.running.len()));
        }
        self.write(&rec)?;
        b.order.push_back(rec.id.clone());
        b.running.insert(rec.id.clone(), caller);
        *b.per_caller.entry(caller).or_default() += 1;
        drop(b);
        let ticket = JobTicket {
            id: rec.id.clone(),
            books: self.books.clone(),
        };
        Ok((rec, ticket))
    }

    /// Records the end of a job.
    pub fn finish(&self, id: &str, outcome: Result<Value, super::JobError>) -> std::io::Result<()> {
        let Some(mut rec) = self.get(id) else {
            return Ok(()); // expired or deleted meanwhile
        };
        rec.finished_ms = Some(now_ms());
        match outcome {
            Ok(v) => {
                rec.status = JobStatus::Completed;
                rec.result = Some(v);
            }
            Err(e) => {
                rec.status = JobStatus::Failed;
                rec.error = Some(e.to_string());
            }
        }
        self.write(&rec)
    }

    /// A job by id (`None` when unknown, malformed or expired).
    pub fn get(&self, id: &str) -> Option<JobRecord> {
        if !valid_id(id) {
            return None;
        }
        let bytes = std::fs::read(self.path(id)).ok()?;
        let bytes = match &self.at_rest {
            Some(k) => k.open(&aad(id), &bytes).ok()?,
            None => bytes,
        };
        let rec: JobRecord = serde_json::from_slice(&bytes).ok()?;
        if rec.id != id {
            return None;
        }
        match rec.finished_ms {
            Some(f) if now_ms().saturating_sub(f) > self.limits.ttl.as_millis() as u64 => None,
            _ => Some(rec),
        }
    }

    /// Deletes finished records older than the time to live (and records that do not
    /// open: written under another key, or altered).
    pub fn expire(&self) {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in dir.flatten() {
            let path = entry.path();
            let Some(id) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if valid_id(id)
                && path.extension().is_some_and(|e| e == "json")
                && self.get(id).is_none()
            {
                let _ = std::fs::remove_file(&path);
            }
        }
        let mut b = self.lock();
        let dir = &self.dir;
        b.order.retain(|id| dir.join(format!("{id}.json")).exists());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn limits(ttl: Duration) -> JobLimits {
        JobLimits {
            ttl,
            max_running: 8,
            max_per_caller: 8,
            max_records: 100,
        }
    }

    fn keys() -> Option<Arc<AtRestKeys>> {
        Some(Arc::new(AtRestKeys::new([7; 32], &[]).unwrap()))
    }

    #[test]
    fn running_jobs_fail_after_a_restart_and_results_expire() {
        let dir = tempfile::tempdir().unwrap();
        let l = limits(Duration::from_secs(60));
        let s = JobStore::open(dir.path().into(), l, keys()).unwrap();
        let (a, _ta) = s.create("train", HOME).unwrap();
        let (b, _tb) = s.create("input", HOME).unwrap();
        s.finish(&b.id, Ok(serde_json::json!({"x": 1}))).unwrap();
        drop(s);
        let s = JobStore::open(dir.path().into(), l, keys()).unwrap();
        let a = s.get(&a.id).unwrap();
        assert_eq!(a.status, JobStatus::Failed);
        assert!(a.error.unwrap().contains("restart"));
        assert_eq!(s.get(&b.id).unwrap().result.unwrap()["x"], 1);
        assert!(s.get("../../etc/passwd").is_none());
        assert!(s.get("00000000000000000000000000000000").is_none());
        let s = JobStore::open(dir.path().into(), limits(Duration::ZERO), keys()).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(s.get(&b.id).is_none());
        s.expire();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn records_are_private_sealed_to_their_id_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = dir.path().join("jobs");
        let l = JobLimits {
            ttl: Duration::from_secs(60),
            max_running: 3,
            max_per_caller: 2,
            max_records: 5,
        };
        let s = JobStore::open(jobs.clone(), l, keys()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&jobs), 0o700);
        let (a, ta) = s.create("train", HOME).unwrap();
        s.finish(
            &a.id,
            Ok(serde_json::json!({"template": {"secret": "centre"}})),
        )
        .unwrap();
        let file = jobs.join(format!("{}.json", a.id));
        assert_eq!(mode(&file), 0o600);
        let bytes = std::fs::read(&file).unwrap();
        assert!(crate::store::at_rest::is_encrypted(&bytes));
        assert!(!String::from_utf8_lossy(&bytes).contains("centre"));
        // Moved under another id, the record does not open.
        let (b, tb) = s.create("train", HOME).unwrap();
        std::fs::copy(&file, jobs.join(format!("{}.json", b.id))).unwrap();
        assert!(s.get(&b.id).is_none());
        assert!(s.get(&a.id).is_some());
        // Per caller, then in all.
        assert!(matches!(
            s.create("train", HOME),
            Err(AdmitError::CallerQuota(2))
        ));
        let other = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));
        let (_, tc) = s.create("train", other).unwrap();
        let third = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 3));
        assert!(matches!(s.create("train", third), Err(AdmitError::Busy(3))));
        drop((ta, tb, tc));
        // Records: the oldest finished make room; never more than the bound.
        for _ in 0..20 {
            let (r, t) = s.create("input", third).unwrap();
            s.finish(&r.id, Ok(serde_json::json!(1))).unwrap();
            drop(t);
        }
        assert!(std::fs::read_dir(&jobs).unwrap().count() <= 5);
    }
}
