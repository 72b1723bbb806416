use std::path::PathBuf;

/// Everything that can go wrong in training, enrolment, scoring or evaluation.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A vector has the wrong number of features for this model.
    #[error("expected {expected} features, got {got}")]
    Dimension {
        /// The model's input dimension.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// A feature value is NaN or infinite.
    #[error("feature {index} of vector {row} is not finite")]
    NotFinite {
        /// Which vector.
        row: usize,
        /// Which feature.
        index: usize,
    },
    /// Too little enrolment data to build a template: "not enrolled yet", not a guess.
    #[error("not enrolled yet: {have} usable samples, at least {need} needed")]
    NotEnoughData {
        /// Samples given.
        have: usize,
        /// Samples needed.
        need: usize,
    },
    /// The data cannot train or evaluate anything (too few people, empty input, ...).
    #[error("unusable data: {0}")]
    Data(String),
    /// A model artifact is unreadable, corrupt, or for another factor/schema.
    #[error("model artifact: {0}")]
    Artifact(String),
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    Config(String),
    /// A data set file could not be read or parsed.
    #[error(transparent)]
    Dataset(#[from] crate::datasets::DatasetError),
    /// File system error with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl ModelError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
