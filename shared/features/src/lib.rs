//! # tacit-features
//!
//! The feature computation both sides run: the phone turns raw sensor and key events into
//! feature records with it, and the backend, the simulator and the evaluation tools compute
//! exactly the same features from the same code. Pure: no I/O, no FFI, no async runtime.
//!
//! * [`dsp`] — input validation, resampling, filtering, windowed FFTs, statistics;
//! * [`factors`] — gait features per walking window, keystroke timing features.
//!
//! The record layouts are fixed by the protocol crate ([`tacit_shared::schema`]).

#![warn(clippy::unwrap_used)]

pub mod dsp;
pub mod factors;
