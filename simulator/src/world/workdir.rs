//! The simulator's working directory: emptied before each run (unless `--resume`
//! continues the run that made it), so it must never be a
//! folder of someone else's. A run writes a marker file into the folder it makes; only
//! a folder with that marker (or an empty one, or none) is used.

use std::path::Path;

/// The marker file the simulator writes into a working directory it made.
pub const MARKER: &str = ".tacit-sim-world";

const MARKER_TEXT: &str = "This folder was made by tacit-sim and is emptied by its next run \
(unless --resume continues it).\n\
It holds private keys (the backend's HPKE and at-rest keys, the phones' device keys).\n";

/// Makes `dir` ready for a run: creates it if missing, uses it if empty, empties it if
/// it carries the simulator's marker, and refuses anything else (an existing non-empty
/// folder without the marker, or a file) with a message saying why and what to do.
pub fn prepare(dir: &Path) -> anyhow::Result<()> {
    prepare_as(dir, "--dir")
}

/// What a working directory holds now, as far as a run is concerned.
enum Found {
    /// Nothing there, or an empty folder: nothing to empty.
    Nothing,
    /// A folder of an earlier run (it carries the marker): emptied before use.
    EarlierRun,
}

/// What `dir` (the option `flag`'s folder) holds, or why a run must not use it.
fn inspect(dir: &Path, flag: &str) -> anyhow::Result<Found> {
    let shown = dir.display();
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Found::Nothing),
        Err(e) => Err(anyhow::anyhow!("{flag} {shown}: {e}")),
        Ok(meta) if !meta.is_dir() => Err(anyhow::anyhow!(
            "{flag} {shown}: exists and is not a folder; choose another {flag}"
        )),
        Ok(_) => {
            let mut entries =
                std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("{flag} {shown}: {e}"))?;
            if entries.next().is_none() {
                Ok(Found::Nothing)
            } else if dir.join(MARKER).is_file() {
                Ok(Found::EarlierRun)
            } else {
                Err(anyhow::anyhow!(
                    "{flag} {shown}: the folder exists, is not empty and was not made by \
                     tacit-sim (no {MARKER} in it); refusing to empty it. Choose another \
                     {flag}, or remove the folder yourself"
                ))
            }
        }
    }
}

/// Whether [`prepare_as`] would use `dir` (the option `flag`'s folder), touching
/// nothing: a run checks every folder before it empties any.
pub fn check_as(dir: &Path, flag: &str) -> anyhow::Result<()> {
    inspect(dir, flag).map(|_| ())
}

/// Makes `dir` (the option `flag`'s folder) ready for a run that continues an earlier
/// one in it: like [`prepare_as`], but an earlier run's folder is kept as it is.
pub fn keep_as(dir: &Path, flag: &str) -> anyhow::Result<()> {
    let shown = dir.display();
    if let Found::Nothing = inspect(dir, flag)? {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{flag} {shown}: {e}"))?;
        std::fs::write(dir.join(MARKER), MARKER_TEXT)
            .map_err(|e| anyhow::anyhow!("{flag} {shown}: writing {MARKER}: {e}"))?;
    }
    Ok(())
}

/// [`prepare`] for the folder of the option `flag` (named in the errors).
pub fn prepare_as(dir: &Path, flag: &str) -> anyhow::Result<()> {
    let shown = dir.display();
    if let Found::EarlierRun = inspect(dir, flag)? {
        // The contents, not the folder: it may be a mount point, or have permissions
        // of its own.
        for entry in std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("{flag} {shown}: {e}"))? {
            let path = entry
                .map_err(|e| anyhow::anyhow!("{flag} {shown}: {e}"))?
                .path();
            let removed = if path.is_dir() && !path.is_symlink() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|e| {
                anyhow::anyhow!(
                    "{flag} {shown}: emptying the previous run: {}: {e}",
                    path.display()
                )
            })?;
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{flag} {shown}: {e}"))?;
    std::fs::write(dir.join(MARKER), MARKER_TEXT)
        .map_err(|e| anyhow::anyhow!("{flag} {shown}: writing {MARKER}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("tacit-workdir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn makes_reuses_and_refuses() {
        // Missing: made, with the marker.
        let d = scratch("new");
        prepare(&d).unwrap();
        assert!(d.join(MARKER).is_file());
        // Made by a run: emptied by the next.
        std::fs::write(d.join("report.json"), "{}").unwrap();
        prepare(&d).unwrap();
        assert!(!d.join("report.json").exists());
        assert!(d.join(MARKER).is_file());
        std::fs::remove_dir_all(&d).unwrap();

        // Empty and not ours: used.
        std::fs::create_dir_all(&d).unwrap();
        prepare(&d).unwrap();
        assert!(d.join(MARKER).is_file());
        std::fs::remove_dir_all(&d).unwrap();

        // Somebody's folder: refused, and nothing in it touched.
        let home = scratch("home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(home.join("thesis.tex"), "years of work").unwrap();
        let err = prepare(&home).unwrap_err();
        assert!(err.to_string().contains("not made by tacit-sim"), "{err}");
        assert!(err.to_string().contains(MARKER), "{err}");
        assert_eq!(
            std::fs::read_to_string(home.join("thesis.tex")).unwrap(),
            "years of work"
        );
        assert!(!home.join(MARKER).exists());
        // A file: refused.
        let file = home.join("thesis.tex");
        assert!(
            prepare(&file)
                .unwrap_err()
                .to_string()
                .contains("not a folder")
        );
        std::fs::remove_dir_all(&home).unwrap();
    }
}
