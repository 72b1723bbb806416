//! The one error type of the storage layer, shaped for the gateway's HTTP mapping.

use std::error::Error as StdError;

/// A boxed source error.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What went wrong in the storage layer.
///
/// Each variant maps to one HTTP status ([`StoreError::http_status`]); the gateway
/// should log the `Display` text and its sources, and show clients only the status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The named thing (`"user"`, `"device"`, …) does not exist → 404.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The named thing already exists → 409.
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// An argument the caller passed cannot be stored (for example a user id with
    /// characters an object key cannot hold) → 400.
    #[error("invalid {0}")]
    Invalid(String),
    /// The database or the object store cannot be reached or is overloaded; retrying
    /// later may succeed → 503.
    #[error("storage unavailable: {context}")]
    Unavailable {
        /// The operation that failed.
        context: String,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// Anything else: a bug, a misconfiguration, or stored content that does not decode
    /// → 500.
    #[error("storage error: {context}")]
    Internal {
        /// The operation that failed, or what was wrong.
        context: String,
        /// The driver's error, if there was one.
        #[source]
        source: Option<BoxError>,
    },
}

/// Shorthand for results of the storage layer.
pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// The HTTP status the gateway should answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            StoreError::NotFound(_) => 404,
            StoreError::AlreadyExists(_) => 409,
            StoreError::Invalid(_) => 400,
            StoreError::Unavailable { .. } => 503,
            StoreError::Internal { .. } => 500,
        }
    }

    /// Whether the same call may succeed later without any change (503).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    /// An internal error without a source (corrupt or impossible content).
    pub(crate) fn corrupt(context: impl Into<String>) -> Self {
        StoreError::Internal {
            context: context.into(),
            source: None,
        }
    }

    pub(crate) fn internal(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Internal {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    pub(crate) fn unavailable(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        StoreError::Unavailable {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// Classifies a sqlx error. `transient_code` says whether a database error code of
/// this dialect means "try again later" (busy, I/O, shutdown, serialization failure).
pub(crate) fn from_sqlx(
    context: &str,
    err: sqlx::Error,
    transient_code: fn(&str) -> bool,
) -> StoreError {
    if sqlx_is_transient(&err, transient_code) {
        StoreError::unavailable(context, err)
    } else {
        StoreError::internal(context, err)
    }
}

/// Whether a sqlx error means "try again later" ([`from_sqlx`]'s classification).
pub(crate) fn sqlx_is_transient(err: &sqlx::Error, transient_code: fn(&str) -> bool) -> bool {
    match err {
        sqlx::Error::Database(db) => db.code().is_some_and(|c| transient_code(&c)),
        // Connection-level failures: the database is down, unreachable or saturated.
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        _ => false,
    }
}

/// The constraint kind of a database error, if it is one.
pub(crate) fn constraint_kind(err: &sqlx::Error) -> Option<sqlx::error::ErrorKind> {
    match err {
        sqlx::Error::Database(db) => Some(db.kind()),
        _ => None,
    }
}

/// Classifies an object store error.
pub(crate) fn from_object_store(context: &str, err: object_store::Error) -> StoreError {
    match err {
        object_store::Error::NotFound { .. } => StoreError::NotFound("object"),
        // HTTP and I/O failures of the store itself: S3 down, throttling, disk errors.
        object_store::Error::Generic { .. } | object_store::Error::JoinError { .. } => {
            StoreError::unavailable(context, err)
        }
        _ => StoreError::internal(context, err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(StoreError::NotFound("user").http_status(), 404);
        assert_eq!(StoreError::AlreadyExists("device").http_status(), 409);
        assert_eq!(StoreError::Invalid("user id".into()).http_status(), 400);
        let down = from_sqlx("x", sqlx::Error::PoolTimedOut, |_| false);
        assert_eq!(down.http_status(), 503);
        assert!(down.is_transient());
        let bug = from_sqlx("x", sqlx::Error::RowNotFound, |_| true);
        assert_eq!(bug.http_status(), 500);
        assert_eq!(StoreError::NotFound("user").to_string(), "user not found");
    }
}
