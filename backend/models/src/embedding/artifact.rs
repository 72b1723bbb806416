//! The model artifact: one file holding everything needed to enrol and score for one
//! factor — the network weights (burn's named MessagePack record), the feature
//! transform, the score calibration, a bounded background cohort, and how it was made.
//!
//! Layout: `TACITMDL` (8 bytes), format version (u32 LE), header length (u32 LE), the
//! header as JSON ([`ModelMeta`]), then the weights. Loading checks every length and
//! refuses an artifact made for another factor, schema version or input dimension.

use std::path::Path;

use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};

use super::net::{DenseLayer, EmbeddingNet, NetShape};
use super::train::{TrainConfig, TrainStats};
use crate::transform::FeatureTransform;
use crate::{FactorKind, ModelError};

/// The artifact format this build writes and reads (2: calibration on whole attempts).
pub const ARTIFACT_FORMAT: u32 = 2;
const MAGIC: &[u8; 8] = b"TACITMDL";
/// Artifacts are small (≈ 100 kB weights + the cohort); anything larger is refused.
const MAX_ARTIFACT_BYTES: usize = 256 << 20;

pub use crate::calibration::Calibration;

/// How the model was trained (kept in the artifact for audits and reproduction).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainingMeta {
    /// Hyper-parameters, seed included.
    pub config: TrainConfig,
    /// Loss at the start and the end.
    pub stats: TrainStats,
    /// People whose vectors trained the network.
    pub people: usize,
    /// Vectors that trained the network.
    pub samples: usize,
    /// People held out to fit the calibration.
    pub calibration_people: usize,
    /// Backend that trained it (`cpu` or `cuda`).
    pub backend: String,
    /// Free-form description of the training data (no personal data).
    pub dataset: String,
    /// Version of the software that trained it.
    pub software: String,
}

/// Everything in the artifact except the weights.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelMeta {
    /// The factor.
    pub factor: FactorKind,
    /// Feature schema version of the input vectors.
    pub schema_version: u16,
    /// Network shape.
    pub shape: NetShape,
    /// Input transform.
    pub transform: FeatureTransform,
    /// Score calibration.
    pub calibration: Calibration,
    /// Transformed vectors of the training population that every template is
    /// contrasted with (bounded; the training population must have consented to this).
    pub background: Vec<Vec<f32>>,
    /// Provenance.
    pub training: TrainingMeta,
}

/// A loaded or freshly trained artifact.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelArtifact {
    /// The header.
    pub meta: ModelMeta,
    weights: Vec<u8>,
}

fn recorder() -> NamedMpkBytesRecorder<FullPrecisionSettings> {
    NamedMpkBytesRecorder::default()
}

impl ModelArtifact {
    /// Packs a trained network with its header.
    pub fn new<B: Backend>(meta: ModelMeta, net: EmbeddingNet<B>) -> Result<Self, ModelError> {
        let weights = Recorder::<B>::record(&recorder(), net.into_record(), ())
            .map_err(|e| ModelError::Artifact(format!("cannot encode the weights: {e}")))?;
        Ok(ModelArtifact { meta, weights })
    }

    /// The network on a device of backend `B`.
    pub fn net<B: Backend>(&self, device: &B::Device) -> Result<EmbeddingNet<B>, ModelError> {
        let record = Recorder::<B>::load(&recorder(), self.weights.clone(), device)
            .map_err(|e| ModelError::Artifact(format!("corrupt weights: {e}")))?;
        let shape = self.meta.shape;
        // A record that decodes but does not fit the declared shape makes burn panic;
        // keep that inside this call.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            EmbeddingNet::<B>::new(shape, device).load_record(record)
        }))
        .map_err(|_| ModelError::Artifact("weights do not match the declared shape".into()))
    }

    /// The network's dense layers as plain numbers (for exporting it to other runtimes).
    pub fn dense_layers(&self) -> Result<Vec<DenseLayer>, ModelError> {
        self.net::<crate::device::CpuBackend>(&Default::default())?
            .dense_layers()
    }

    /// Serialises to bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ModelError> {
        let header = serde_json::to_vec(&self.meta)
            .map_err(|e| ModelError::Artifact(format!("cannot encode the header: {e}")))?;
        let header_len = u32::try_from(header.len())
            .map_err(|_| ModelError::Artifact("header too large".into()))?;
        let mut out = Vec::with_capacity(16 + header.len() + self.weights.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&ARTIFACT_FORMAT.to_le_bytes());
        out.extend_from_slice(&header_len.to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.weights);
        Ok(out)
    }

    /// Parses bytes written by [`ModelArtifact::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        let bad = |m: String| Err(ModelError::Artifact(m));
        if bytes.len() > MAX_ARTIFACT_BYTES {
            return bad(format!("{} bytes is larger than any model", bytes.len()));
        }
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return bad("not a Tacit model file".into());
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let format = u32_at(8);
        if format == 1 {
            return bad(
                "artifact format 1 has a per-window calibration that overstates its false-accept rate; \
                 retrain the model with this version (`tacit-backend train`)"
                    .into(),
            );
        }
        if format != ARTIFACT_FORMAT {
            return bad(format!(
                "artifact format {format}; this build reads format {ARTIFACT_FORMAT}"
            ));
        }
        let header_len = u32_at(12) as usize;
        let Some(header) = bytes.get(16..16 + header_len) else {
            return bad("truncated header".into());
        };
        let meta: ModelMeta = serde_json::from_slice(header)
            .map_err(|e| ModelError::Artifact(format!("bad header: {e}")))?;
        let weights = bytes[16 + header_len..].to_vec();
        if weights.is_empty() {
            return bad("no weights".into());
        }
        let a = ModelArtifact { meta, weights };
        a.check_consistent()?;
        Ok(a)
    }

    fn check_consistent(&self) -> Result<(), ModelError> {
        let m = &self.meta;
        let dim = m.shape.input;
        if m.transform.mean.len() != dim || m.transform.scale.len() != dim {
            return Err(ModelError::Artifact(
                "transform does not match the input".into(),
            ));
        }
        if m.background.iter().any(|r| r.len() != dim) {
            return Err(ModelError::Artifact(
                "background does not match the input".into(),
            ));
        }
        if m.background.len() < 2 {
            return Err(ModelError::Artifact("background cohort is empty".into()));
        }
        Ok(())
    }

    /// Checks that this artifact scores `factor` vectors of `schema_version` with `dim`
    /// features: a clear error instead of nonsense scores.
    pub fn check_for(
        &self,
        factor: FactorKind,
        schema_version: u16,
        dim: usize,
    ) -> Result<(), ModelError> {
        let m = &self.meta;
        if m.factor != factor {
            return Err(ModelError::Artifact(format!(
                "model is for factor {}, not {factor}",
                m.factor
            )));
        }
        if m.schema_version != schema_version {
            return Err(ModelError::Artifact(format!(
                "model is for {factor} schema v{}, the features are v{schema_version}",
                m.schema_version
            )));
        }
        if m.shape.input != dim {
            return Err(ModelError::Artifact(format!(
                "model takes {} features, the vectors have {dim}",
                m.shape.input
            )));
        }
        Ok(())
    }

    /// Writes the artifact (to a temporary file, then renamed: never a torn model).
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let bytes = self.to_bytes()?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes).map_err(|e| ModelError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e))
    }

    /// Reads an artifact.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let meta = std::fs::metadata(path).map_err(|e| ModelError::io(path, e))?;
        if meta.len() > MAX_ARTIFACT_BYTES as u64 {
            return Err(ModelError::Artifact(format!(
                "{}: {} bytes is larger than any model",
                path.display(),
                meta.len()
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        Self::from_bytes(&bytes)
    }
}
