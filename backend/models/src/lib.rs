//! # tacit-models
//!
//! The factor models of the Tacit backend, in plain Rust (no HTTP, no storage):
//!
//! * [`embedding`] — the population embedding network per factor (burn), its training
//!   loop (proxy or triplet metric learning), and the versioned model artifact;
//! * [`device`] — CPU (NdArray) or CUDA backend selection with a runtime probe;
//! * [`template`] — enrolment (a user's template) and scoring, calibrated to
//!   log-likelihood ratios so that the gateway can fuse factors;
//! * [`fusion`] — per-factor evidence (calibrated LLRs, their age) fused into
//!   `accept | step_up | reject` at a target false-accept rate;
//! * [`detectors`] — classic one-class detectors (scaled Manhattan, Mahalanobis nearest
//!   neighbour): baselines and the fallback for small enrolments;
//! * [`transform`] — the feature transforms that feed every model;
//! * [`data`] — evaluation data sets (CMU, generic key-event CSV, gait folders) turned
//!   into features by the same `tacit-mobile-core` code that runs on the phone;
//! * [`eval`] — the evaluation protocols, error-rate metrics and reports (table, JSON,
//!   DET curve SVG).
//!
//! Vectors are `f32` rows in the order of the factor's feature schema.

#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used)]

pub mod data;
pub mod detectors;
pub mod device;
pub mod embedding;
mod error;
pub mod eval;
pub mod fusion;
mod linalg;
pub mod logistic;
pub mod pipeline;
mod rng;
pub mod template;
pub mod transform;

pub use error::ModelError;
pub use rng::SplitMix64;

/// Which factor a model or data set belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Factor {
    /// Fixed-text keystroke timings (hold, down-down, up-down per key pair).
    KeystrokeFixed,
    /// Gait window features (`GAIT_V1`).
    Gait,
}

impl Factor {
    /// The protocol's name for the factor.
    pub fn name(self) -> &'static str {
        match self {
            Factor::KeystrokeFixed => "keystroke-fixed",
            Factor::Gait => "gait",
        }
    }

    /// The wire protocol's factor kind.
    pub fn kind(self) -> tacit_shared::payload::FactorKind {
        match self {
            Factor::KeystrokeFixed => tacit_shared::payload::FactorKind::KeystrokeFixed,
            Factor::Gait => tacit_shared::payload::FactorKind::Gait,
        }
    }
}

impl std::fmt::Display for Factor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
