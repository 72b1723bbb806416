//! # tacit-backend
//!
//! The server side of Tacit:
//!
//! * the axum gateway — [`router`], [`handlers`], [`server`] (graceful shutdown),
//!   [`settings`] (TOML + `TACIT_*`), [`keys`] (the HPKE key ring), [`verdict`] (the
//!   signed verdict of an authentication and its keys), [`metrics`]
//!   and [`observe`] (request ids, spans, access log, request metrics),
//!   [`ratelimit`], [`rebuild`] (templates of a replaced model), [`serve`] (the listener: TLS, header deadline, connection bound);
//!   the `serve`, `keygen` and `migrate` commands;
//! * [`store`] — the storage layer: users, enrolment tokens, devices, replay memory,
//!   templates and reject counts on SQLite or PostgreSQL, feature batches on a
//!   directory or S3;
//! * [`factor`] — the factor service role (`serve --role factor:NAME`, the common
//!   factor API); [`scoring`] — the gateway's factor clients (in-process or HTTP),
//!   enrolment and the fused decision of `POST /v1/authenticate`;
//! * [`commands`] — `train`, `eval`, `retrain`, `models` (models: the `tacit-models`
//!   crate); [`training`] — training sets read from the store (consenting users'
//!   uploads); [`registry`] — versioned models, promotion and rollback.
#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used)]

pub mod commands;
pub mod error;
pub mod factor;
pub mod handlers;
pub mod keys;
pub mod metrics;
pub mod observe;
pub mod ratelimit;
pub mod rebuild;
pub mod registry;
pub mod retention;
pub mod router;
pub mod scoring;
pub mod serve;
pub mod server;
pub mod settings;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod training;
pub mod verdict;

pub use tacit_shared as protocol;
