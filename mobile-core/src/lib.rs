//! # tacit-mobile-core
//!
//! The Rust core that runs on the phone.
//!
//! * [`dsp`] — input validation, resampling, filtering, windowed FFTs, statistics;
//! * [`factors`] — gait features per walking window, keystroke timing features;
//! * [`datasets`] — readers for the public research data sets (tests and evaluation
//!   only), producing the same event types the phone does.
//! * [`queue`] — the crash-safe outbox of sealed envelopes (SQLite, WAL, bounded);
//! * [`upload`] — batched uploads of the outbox with retries, backoff and `Retry-After`.
//!
//! Still to come (issue #4): the crash-safe outbox, uploads, the exported
//! `TacitClient` and the uniffi edge. The protocol itself is [`tacit_shared`],
//! re-exported as [`protocol`].

#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used)]

pub mod datasets;
pub mod dsp;
pub mod factors;
pub mod queue;
pub mod upload;

pub use tacit_shared as protocol;
