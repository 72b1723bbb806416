//! What can go wrong in a factor service, as types: loading a model version, and running
//! a job (whose record then carries the message).

use std::path::PathBuf;

use tacit_models::ModelError;
use tacit_shared::payload::PayloadError;

use crate::store::StoreError;

/// Why a model version could not be checked or loaded (the old one stays in service).
#[derive(Debug, thiserror::Error)]
pub enum ModelLoadError {
    /// The model file could not be read.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The configured object key is not a valid object path.
    #[error("model key {key:?}: {source}")]
    Key {
        /// The key.
        key: String,
        /// Cause.
        #[source]
        source: object_store::path::Error,
    },
    /// The object store could not say what is stored under the key.
    #[error("object store: {0}")]
    Head(#[from] object_store::Error),
    /// Reading the artifact from the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The artifact does not decode or does not fit this factor.
    #[error("artifact: {0}")]
    Artifact(#[from] ModelError),
    /// The loading task died.
    #[error("loading task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Why a job failed; its message is the job record's `error`.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A feature file could not be read.
    #[error("{key}: {source}")]
    Read {
        /// Object key.
        key: String,
        /// Cause.
        #[source]
        source: StoreError,
    },
    /// A feature file does not decode as a payload.
    #[error("{key}: {source}")]
    Decode {
        /// Object key.
        key: String,
        /// Cause.
        #[source]
        source: PayloadError,
    },
    /// Enrolment or scoring refused the vectors.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The template gives no finite score (zero spread, overflowing values).
    #[error("template: degenerate (its scores are not finite numbers): enrol again")]
    DegenerateTemplate,
    /// Scoring asked for, but the files hold no vectors of this factor.
    #[error("no vectors of this factor in the files")]
    NoVectors,
    /// Training a population model failed (too few people, a file that does not read,
    /// the registry unreachable): the message says which.
    #[error("training: {0}")]
    Training(String),
    /// The computing task died.
    #[error("job task: {0}")]
    Task(#[from] tokio::task::JoinError),
}
