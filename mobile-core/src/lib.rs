//! # tacit-mobile-core
//!
//! The Rust core that runs on the phone.
//!
//! * [`dsp`] and [`factors`] — the feature computation, re-exported from
//!   [`tacit_features`] (shared with the backend, which computes the same features);
//! * [`queue`] — the crash-safe outbox of sealed envelopes (SQLite, WAL, bounded);
//! * [`upload`] — batched uploads of the outbox with retries, backoff and `Retry-After`;
//! * [`client`] — the client in plain Rust: capture → features → sealed envelopes in
//!   the outbox → uploads;
//! * [`ffi`] — the uniffi edge exported to Swift/Kotlin/Python (`TacitClient`).
//!
//! The protocol itself is [`tacit_shared`], re-exported as [`protocol`].

#![warn(clippy::unwrap_used)]

pub mod client;
pub mod ffi;
pub mod queue;
pub mod upload;

pub use tacit_features::{dsp, factors};
pub use tacit_shared as protocol;

// The generated FFI scaffolding is the one place with `unsafe` (extern "C" entry
// points); everything else in the crate denies it.
#[allow(unsafe_code)]
mod scaffolding {
    uniffi::setup_scaffolding!("tacit");
}
pub(crate) use scaffolding::*;
