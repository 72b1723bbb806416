//! Classic one-class detectors (Killourhy & Maxion 2009): each is fitted on one
//! person's training vectors only and scores a vector by its closeness to them.
//! They are the baselines of the evaluation and the fallback for small enrolments.
//!
//! Scores follow one convention everywhere: higher = more like the enrolled person
//! (a negated distance).

mod mahalanobis;
mod manhattan;

pub use mahalanobis::MahalanobisNn;
pub use manhattan::{Centre, ScaledManhattan};

use crate::ModelError;

/// A fitted one-class detector.
pub trait Detector {
    /// Score of one vector (higher = more genuine).
    fn score(&self, x: &[f64]) -> f64;
}

pub(crate) fn check_training(rows: &[Vec<f64>], min: usize) -> Result<usize, ModelError> {
    if rows.len() < min {
        return Err(ModelError::NotEnoughData {
            have: rows.len(),
            need: min,
        });
    }
    let dim = rows[0].len();
    crate::transform::check_rows(rows, dim)?;
    Ok(dim)
}
