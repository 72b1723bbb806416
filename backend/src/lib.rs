//! # tacit-backend
//!
//! The server side of Tacit:
//!
//! * the axum gateway — [`router`], [`handlers`], [`server`] (graceful shutdown),
//!   [`settings`] (TOML + `TACIT_*`), [`keys`] (the HPKE key ring), [`metrics`],
//!   [`ratelimit`]; the `serve`, `keygen` and `migrate` commands;
//! * [`store`] — the storage layer: users, enrolment tokens, devices and replay memory
//!   on SQLite or PostgreSQL, feature batches on a directory or S3.
//!
//! Still to come, each with its issue: the burn models, `train` and `eval` (#6); the
//! factor services, fusion and `/v1/authenticate` (#7).
#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used)]

pub mod commands;
pub mod error;
pub mod factor;
pub mod handlers;
pub mod keys;
pub mod metrics;
pub mod ratelimit;
pub mod router;
pub mod server;
pub mod settings;
pub mod state;
pub mod store;

pub use tacit_shared as protocol;
