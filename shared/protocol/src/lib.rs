//! # tacit-shared
//!
//! The wire protocol shared by the Tacit phone core and the Tacit backend:
//!
//! * [`hpke`] — RFC 9180 Hybrid Public Key Encryption, base mode, suite
//!   DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305 (and AES-128-GCM);
//! * [`identity`] — device signing keys (Ed25519, plus ECDSA P-256 verification for
//!   hardware key stores) with algorithm-tagged public keys;
//! * [`envelope`] — the versioned binary envelope v1 (see `PROTOCOL.md`);
//! * [`payload`] — the batch of feature records carried inside an envelope;
//! * [`schema`] — feature schemas (names, order, dimension, version) per factor;
//! * [`keylist`] — the root-signed list of backend HPKE keys (key rotation);
//! * [`replay`] — what the backend must remember per device to reject replays;
//! * [`api`] — the JSON bodies of the HTTP API (device registration, uploads, errors).
//!
//! The crate does no I/O and has no async code: it is pure protocol logic, so the
//! phone and the server run exactly the same bytes through exactly the same checks.
#![forbid(unsafe_code)]
#![warn(clippy::unwrap_used)]

pub mod api;
pub mod envelope;
pub mod hpke;
pub mod identity;
pub mod keylist;
pub mod payload;
pub mod replay;
pub mod schema;
mod wire;

pub use envelope::{Envelope, EnvelopeError, EnvelopeHeader, OpenedEnvelope};
pub use hpke::{HpkeError, KeyId, RecipientKeyPair, RecipientPublicKey, Suite};
pub use identity::{DevicePublicKey, DeviceSigner, SignatureAlgorithm};
pub use payload::{FactorKind, FeatureRecord, Payload, PayloadError};
