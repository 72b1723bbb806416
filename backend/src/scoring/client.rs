//! The one interface through which the gateway uses a factor, wherever it runs.

use async_trait::async_trait;

/// A template built by a factor.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrolled {
    /// The factor's template, as JSON text (opaque to the gateway: each factor has its
    /// own format; the gateway stores it and hands it back for scoring).
    pub template: String,
    /// Whether the factor built its reduced (fallback) template.
    pub fallback: bool,
    /// Model version that built it, when the factor says.
    pub model_version: Option<String>,
}

/// Scores of windows against a template.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Calibrated one-window log-likelihood ratio per window (natural log).
    pub llr: Vec<f64>,
    /// The windows judged together as one attempt, when the factor calibrates attempts
    /// (a factor that does not: the mean window LLR stands for the attempt).
    pub attempt: Option<tacit_models::template::AttemptScore>,
    /// Model version that scored.
    pub model_version: Option<String>,
}

/// What a face factor made of one image.
#[derive(Clone, PartialEq)]
pub enum Embedded {
    /// A usable face: the values of its face record (schema `FACE_V1`: embedding,
    /// quality, replay hash chunks), ready to store in place of the image.
    Face(Vec<f32>),
    /// No usable face; the factor's reason (`no_face`, `too_small`, `too_dark`,
    /// `too_bright`, `blurred`, `undecodable`).
    Refused(String),
}

impl std::fmt::Debug for Embedded {
    /// Embeddings are biometric data: only their length is printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Embedded::Face(v) => write!(f, "Face(<{} values>)", v.len()),
            Embedded::Refused(r) => write!(f, "Refused({r:?})"),
        }
    }
}

/// Why a factor call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FactorError {
    /// The factor cannot answer now (down, slow, no model loaded, circuit open):
    /// the authentication goes on without it.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The factor answered that the request is unusable (too few vectors, a template
    /// of another model): retrying will not help.
    #[error("refused: {0}")]
    Refused(String),
}

/// A factor as the gateway sees it: in-process ([`super::LocalFactor`]) or over HTTP
/// ([`super::RemoteFactor`]).
#[async_trait]
pub trait FactorClient: Send + Sync + std::fmt::Debug {
    /// Builds a template from enrolment vectors.
    async fn enrol(&self, rows: Vec<Vec<f32>>) -> Result<Enrolled, FactorError>;

    /// Scores vectors against a template from [`FactorClient::enrol`].
    async fn score(&self, template: &str, rows: Vec<Vec<f32>>) -> Result<Scored, FactorError>;

    /// Turns face images into face records (a face factor only): one answer per image,
    /// in order. Other factors refuse.
    async fn embed_images(
        &self,
        images: &[tacit_shared::payload::FaceImage],
    ) -> Result<Vec<Embedded>, FactorError> {
        let _ = images;
        Err(FactorError::Refused("this factor takes no images".into()))
    }

    /// Where it runs, for logs and health (`in-process`, a URL).
    fn location(&self) -> String;

    /// The feature schema version its model scores, when the client knows it (an
    /// in-process factor does). The gateway then never sends it windows of another
    /// version: two layouts can share a dimension (a 6-key phrase with touch and a
    /// 10-key one without both have 28 values), so the factor's dimension check alone
    /// cannot tell them apart. `None`: unknown, the factor checks dimensions only.
    fn schema_version(&self) -> Option<u16> {
        None
    }

    /// The version of the model it serves now, when the client knows it (an
    /// in-process factor does; an HTTP factor reports the version of its last answer).
    /// A template built by another version is never scored: it is rebuilt first.
    fn model_version(&self) -> Option<String> {
        None
    }

    /// Whether its circuit breaker refuses calls now (`tacit_factor_breaker_open`);
    /// clients without a breaker never do.
    fn breaker_open(&self) -> bool {
        false
    }
}
