//! Job records of the job API, one JSON file per job, written atomically. A job that
//! was running when the process stopped is reported failed after a restart — never
//! "running" forever — and finished records expire after the configured time.

use std::path::PathBuf;
use std::time::Duration;

use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::state::now_ms;

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

/// The job directory.
#[derive(Debug)]
pub struct JobStore {
    dir: PathBuf,
    ttl: Duration,
}

fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl JobStore {
    /// Opens (creating) the directory and marks jobs interrupted by a restart as failed.
    pub fn open(dir: PathBuf, ttl: Duration) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let store = JobStore { dir, ttl };
        for entry in std::fs::read_dir(&store.dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let Some(id) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if let Some(mut rec) = store.get(id)
                && rec.status == JobStatus::Running
            {
                rec.status = JobStatus::Failed;
                rec.error = Some("interrupted by a restart of the factor service".into());
                rec.finished_ms = Some(now_ms());
                store.write(&rec)?;
            }
        }
        store.expire();
        Ok(store)
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn write(&self, rec: &JobRecord) -> std::io::Result<()> {
        let tmp = self.dir.join(format!("{}.tmp", rec.id));
        std::fs::write(
            &tmp,
            serde_json::to_vec(rec).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, self.path(&rec.id))
    }

    /// Records a new running job.
    pub fn create(&self, kind: &str) -> std::io::Result<JobRecord> {
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
        self.write(&rec)?;
        Ok(rec)
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
        let rec: JobRecord = serde_json::from_slice(&bytes).ok()?;
        match rec.finished_ms {
            Some(f) if now_ms().saturating_sub(f) > self.ttl.as_millis() as u64 => None,
            _ => Some(rec),
        }
    }

    /// Deletes finished records older than the time to live.
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_jobs_fail_after_a_restart_and_results_expire() {
        let dir = tempfile::tempdir().unwrap();
        let s = JobStore::open(dir.path().into(), Duration::from_secs(60)).unwrap();
        let a = s.create("train").unwrap();
        let b = s.create("input").unwrap();
        s.finish(&b.id, Ok(serde_json::json!({"x": 1}))).unwrap();
        drop(s);
        let s = JobStore::open(dir.path().into(), Duration::from_secs(60)).unwrap();
        let a = s.get(&a.id).unwrap();
        assert_eq!(a.status, JobStatus::Failed);
        assert!(a.error.unwrap().contains("restart"));
        assert_eq!(s.get(&b.id).unwrap().result.unwrap()["x"], 1);
        assert!(s.get("../../etc/passwd").is_none());
        assert!(s.get("00000000000000000000000000000000").is_none());
        let s = JobStore::open(dir.path().into(), Duration::from_millis(0)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(s.get(&b.id).is_none());
        s.expire();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
