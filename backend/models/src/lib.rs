//! # tacit-models
//!
//! The factor models of the Tacit backend, in plain Rust (no HTTP, no storage):
//!
//! * [`embedding`] — the population embedding network per factor (burn), its training
//!   loop (proxy or triplet metric learning), and the versioned model artifact;
//! * [`device`] — CPU (NdArray) or CUDA backend selection with a runtime probe;
//! * [`calibration`] — score maps and impostor-score histograms fitted on whole
//!   authentication attempts of held-out people (what makes a configured false-accept
//!   rate a property, not a label);
//! * [`template`] — enrolment (a user's template) and scoring, calibrated to
//!   log-likelihood ratios so that the gateway can fuse factors;
//! * [`fusion`] — per-factor evidence (calibrated LLRs, their age) fused into
//!   `accept | step_up | reject` at a target false-accept rate;
//! * [`detectors`] — classic one-class detectors (scaled Manhattan, Mahalanobis nearest
//!   neighbour): baselines and the fallback for small enrolments;
//! * [`transform`] — the feature transforms that feed every model;
//! * [`data`] — evaluation data sets (CMU, generic key-event CSV, gait folders) turned
//!   into features by the same `tacit-features` code that runs on the phone;
//! * [`datasets`] — readers for the public research data sets (evaluation and tests
//!   only, never shipped), producing the same event types the phone does;
//! * [`eval`] — the evaluation protocols, error-rate metrics and reports (table, JSON,
//!   DET curve SVG);
//! * [`gate`] — whether a candidate model may replace the one in service, judged on
//!   people neither was trained on.
//!
//! Vectors are `f32` rows in the order of the factor's feature schema.

#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used)]

pub mod calibration;
pub mod data;
pub mod datasets;
pub mod detectors;
pub mod device;
pub mod embedding;
mod error;
pub mod eval;
pub mod fusion;
pub mod gate;
mod linalg;
pub mod logistic;
pub mod pipeline;
mod rng;
pub mod template;
pub mod transform;

pub use error::ModelError;
pub use rng::SplitMix64;

/// Which factor a model or data set belongs to: the protocol's one factor vocabulary.
pub use tacit_shared::payload::FactorKind;
