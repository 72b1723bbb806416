//! Signal processing primitives for the on-phone feature pipelines: input types and
//! their validation, resampling, filtering, windowed FFTs and summary statistics.
//! Factor-specific feature extraction lives in [`crate::factors`].

pub mod filter;
pub mod input;
pub mod resample;
pub mod spectrum;
pub mod stats;

pub use input::{DspError, KeyClass, KeyEvent, MotionSample};
