//! Readers for the public research data sets used to test and evaluate the pipelines
//! (never shipped with the product): the CMU keystroke benchmark and walking
//! accelerometer sessions laid out as `manifest.csv` + `sessions/*.csv` (`t_ms,x,y,z`).
//! Both turn the files back into the same event types the phone produces, so the
//! evaluation runs the phone's own feature code.

use std::path::{Path, PathBuf};

use tacit_features::dsp::{KeyClass, KeyEvent, MotionSample};

/// Errors of the data set readers.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A line does not have the expected shape.
    #[error("{path}:{line}: {reason}")]
    Format {
        /// File.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

fn read(path: &Path) -> Result<String, DatasetError> {
    std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn format_err(path: &Path, line: usize, reason: impl Into<String>) -> DatasetError {
    DatasetError::Format {
        path: path.to_path_buf(),
        line,
        reason: reason.into(),
    }
}

/// The folder of the reference data sets: `$TACIT_DATA_DIR`, else `../shared/data`
/// beside the repository. `None` when it does not exist (callers skip with a message).
pub fn data_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("TACIT_DATA_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    };
    dir.is_dir().then_some(dir)
}

/// One row of the CMU keystroke benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct CmuRow {
    /// Subject label (e.g. `s002`).
    pub subject: String,
    /// Session 1..=8.
    pub session: u32,
    /// Repetition 1..=50 within the session.
    pub rep: u32,
    /// The 31 timings in the file's column order (seconds).
    pub timings: Vec<f64>,
}

/// Keys of the CMU password `.tie5Roanl` + Return, by class.
pub const CMU_KEY_CLASSES: [KeyClass; 11] = [
    KeyClass::Punctuation,
    KeyClass::Letter,
    KeyClass::Letter,
    KeyClass::Letter,
    KeyClass::Digit,
    KeyClass::Letter,
    KeyClass::Letter,
    KeyClass::Letter,
    KeyClass::Letter,
    KeyClass::Letter,
    KeyClass::Enter,
];

impl CmuRow {
    /// Rebuilds the key events of this entry (first key-down at `t0_ns`): hold times
    /// give the up times, down-down latencies give the next down times.
    pub fn to_key_events(&self, t0_ns: i64) -> Vec<KeyEvent> {
        let n = CMU_KEY_CLASSES.len();
        let mut events = Vec::with_capacity(n);
        let mut down = t0_ns as f64;
        for (k, class) in CMU_KEY_CLASSES.iter().enumerate() {
            let hold = self.timings[3 * k];
            events.push(KeyEvent {
                class: *class,
                down_ns: down.round() as i64,
                up_ns: (down + hold * 1e9).round() as i64,
                pressure: None,
                area: None,
            });
            if k + 1 < n {
                down += self.timings[3 * k + 1] * 1e9;
            }
        }
        events
    }
}

/// Reads `DSL-StrongPasswordData.csv`.
pub fn read_cmu(path: &Path) -> Result<Vec<CmuRow>, DatasetError> {
    let text = read(path)?;
    let mut lines = text.lines().enumerate();
    let header = lines
        .next()
        .ok_or_else(|| format_err(path, 1, "empty file"))?
        .1;
    let cols: Vec<&str> = header.split(',').collect();
    if cols.len() != 34 || cols[0] != "subject" || cols[3] != "H.period" || cols[33] != "H.Return" {
        return Err(format_err(
            path,
            1,
            "not the CMU header (subject,sessionIndex,rep,H.period,...,H.Return)",
        ));
    }
    let mut rows = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 34 {
            return Err(format_err(
                path,
                i + 1,
                format!("{} fields, expected 34", f.len()),
            ));
        }
        let num = |s: &str| {
            s.trim()
                .parse::<f64>()
                .map_err(|e| format_err(path, i + 1, format!("{s:?}: {e}")))
        };
        let timings = f[3..]
            .iter()
            .map(|s| num(s))
            .collect::<Result<Vec<_>, _>>()?;
        rows.push(CmuRow {
            subject: f[0].to_string(),
            session: num(f[1])? as u32,
            rep: num(f[2])? as u32,
            timings,
        });
    }
    Ok(rows)
}

/// One walking session listed in a gait manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct GaitSession {
    /// Person id.
    pub user: u32,
    /// Session number of that person.
    pub session: u32,
    /// Absolute path of the session's CSV.
    pub path: PathBuf,
}

/// Reads `manifest.csv` of a gait folder (`user,sex,session,file,...`).
pub fn read_gait_manifest(dir: &Path) -> Result<Vec<GaitSession>, DatasetError> {
    let path = dir.join("manifest.csv");
    let text = read(&path)?;
    let mut lines = text.lines().enumerate();
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| format_err(&path, 1, "empty file"))?
        .1
        .split(',')
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|c| c.trim() == name)
            .ok_or_else(|| format_err(&path, 1, format!("no column {name}")))
    };
    let (cu, cs, cf) = (col("user")?, col("session")?, col("file")?);
    let mut out = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let get = |c: usize| {
            f.get(c)
                .copied()
                .ok_or_else(|| format_err(&path, i + 1, "missing field"))
        };
        let int = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|e| format_err(&path, i + 1, format!("{s:?}: {e}")))
        };
        out.push(GaitSession {
            user: int(get(cu)?)?,
            session: int(get(cs)?)?,
            path: dir.join(get(cf)?.trim()),
        });
    }
    Ok(out)
}

/// Reads one session CSV (`t_ms,x,y,z`, m/s² with gravity) as motion samples.
pub fn read_gait_session(path: &Path) -> Result<Vec<MotionSample>, DatasetError> {
    let text = read(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 4 {
            return Err(format_err(path, i + 1, "expected t_ms,x,y,z"));
        }
        let num = |s: &str| {
            s.trim()
                .parse::<f64>()
                .map_err(|e| format_err(path, i + 1, format!("{s:?}: {e}")))
        };
        out.push(MotionSample {
            t_ns: (num(f[0])? * 1e6).round() as i64,
            accel: [num(f[1])?, num(f[2])?, num(f[3])?],
            gyro: None,
        });
    }
    Ok(out)
}
