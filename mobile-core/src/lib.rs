//! # tacit-mobile-core
//!
//! The Rust core that runs on the phone. Today it re-exports the sealing side of the
//! protocol ([`tacit_shared`]); the rest arrives with its issues:
//!
//! * `dsp/` and `factors/` — resampling, filtering, windowing and FFT features for gait,
//!   timing features for keystrokes (issue #3);
//! * `queue`, `upload`, `client` and the uniffi `ffi` edge — the crash-safe outbox,
//!   batched idempotent uploads and the exported `TacitClient` (issue #4).
//!
//! Nothing here pretends to do more than it does: there is no placeholder API.

pub use tacit_shared as protocol;
