use std::path::Path;

use crate::datasets::{read_gait_manifest, read_gait_session};
use tacit_features::factors::gait::{GAIT_DIM, GaitConfig, extract_gait};

use super::{Population, group_people};
use crate::{FactorKind, ModelError};

/// Reads a gait folder (`manifest.csv` + `sessions/*.csv` with `t_ms,x,y,z`): every
/// session goes through the phone's gait pipeline; its walking windows become vectors.
/// Sessions without a walking window are listed in `skipped`. `progress(done, total)`
/// is called after each session.
pub fn read_gait_folder(
    dir: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Population, ModelError> {
    let sessions = read_gait_manifest(dir)?;
    if sessions.is_empty() {
        return Err(ModelError::Data(format!(
            "{}: empty manifest",
            dir.display()
        )));
    }
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        let samples = read_gait_session(&s.path)?;
        match extract_gait(&samples, GaitConfig::default()) {
            Ok((windows, _)) => {
                let before = rows.len();
                for w in windows.iter().filter(|w| w.walking) {
                    rows.push((
                        s.user.to_string(),
                        s.session,
                        w.features.iter().map(|&x| x as f32).collect(),
                    ));
                }
                if rows.len() == before {
                    skipped.push(format!("{}: no walking window", s.path.display()));
                }
            }
            Err(e) => skipped.push(format!("{}: {e}", s.path.display())),
        }
        progress(i + 1, sessions.len());
    }
    Ok(Population {
        factor: FactorKind::Gait,
        schema_version: 1,
        dim: GAIT_DIM,
        people: group_people(rows),
        source: format!("gait folder ({})", dir.display()),
        skipped,
    })
}
