//! # tacit-backend
//!
//! The server side of Tacit. It will hold, each with its issue:
//!
//! * [`store`] — the storage layer: users, enrolment tokens, devices and replay memory
//!   on SQLite or PostgreSQL, feature batches on a directory or S3 (issue #5, item 4);
//! * the axum gateway — device enrolment, encrypted ingest, storage on SQLite or
//!   PostgreSQL plus files or S3, and the `serve`, `keygen` and `migrate` commands
//!   (issue #5);
//! * the burn models, training and evaluation (`train`, `eval`) (issue #6);
//! * the factor services, fusion and `/v1/authenticate` (issue #7).
//!
//! The protocol it speaks — envelope v1, HPKE, device signatures, replay rules — is
//! already complete in [`tacit_shared`], which this crate re-exports.

#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used)]

pub use tacit_shared as protocol;

pub mod store;
