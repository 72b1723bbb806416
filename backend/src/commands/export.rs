//! `tacit-backend model-export`: a model artifact as plain JSON, so that another runtime
//! (the PyTorch peer of the serving benchmark, `bench/python-peer/`) scores with exactly
//! the same model without reading burn's weight records.
//!
//! The JSON holds what scoring needs and nothing else (no background cohort: templates
//! are made by enrolment, which stays in Tacit). Scoring a raw vector `x` with it:
//!
//! 1. `z = (compress(x) - transform.mean) / transform.scale` in float64, `compress` the
//!    identity (`none`) or `sign(x)·ln(1 + 10|x|)` (`log-time`);
//! 2. `e = network(z)` in float32: for each layer `h = weight·h + bias` (`weight` is
//!    `[out][in]`, PyTorch's `nn.Linear` layout), then its `activation` (`relu` or
//!    `none`), and finally `e / max(‖e‖₂, 1e-12)` (`output: l2-normalize`);
//! 3. with a template (docs/factor-api.md): `r = z ‖ e`, `raw = (−Σ|zᵢ − cᵢ|/sᵢ − m_d)/sd_d`
//!    (+ `((w·r + b) − m_c)/sd_c` when it has a contrast part), and `llr = a·raw + b'`
//!    with `calibration.full` for a template enrolled on at least
//!    `calibration.full_samples` vectors (its `samples`), else `calibration.fallback`.

use std::path::PathBuf;

use serde::Serialize;
use tacit_models::embedding::{DenseLayer, ModelArtifact, NetShape};
use tacit_models::transform::FeatureTransform;

/// `tacit-backend model-export`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// The model artifact (`.tcm`, as written by `train`).
    #[arg(long)]
    pub model: PathBuf,
    /// Where to write the JSON.
    #[arg(long)]
    pub out: PathBuf,
}

/// Version of the JSON layout below.
pub const EXPORT_FORMAT: u32 = 2;

/// The exported model.
#[derive(Debug, Serialize)]
pub struct ExportedModel {
    /// Always `tacit-model-json`.
    pub format: &'static str,
    /// [`EXPORT_FORMAT`].
    pub format_version: u32,
    /// The factor (`gait`, `keystroke-fixed`): templates of other factors are refused.
    pub factor: tacit_models::FactorKind,
    /// Feature schema version of the input vectors.
    pub schema_version: u16,
    /// The version the factor service reports: first 16 hex digits of the artifact's
    /// SHA-256.
    pub model_version: String,
    /// Input, hidden and embedding dimensions.
    pub shape: NetShape,
    /// Compression and standardisation of the raw features.
    pub transform: FeatureTransform,
    /// The embedding network.
    pub network: Network,
    /// Raw score of one window to log-likelihood ratio.
    pub calibration: WindowCalibration,
}

/// The one-window score maps (whole attempts, impostor histograms and the fusion stay
/// in Tacit).
#[derive(Debug, Serialize)]
pub struct WindowCalibration {
    /// `(a, b)` of `llr = a·raw + b` for templates enrolled on at least `full_samples`
    /// vectors.
    pub full: [f64; 2],
    /// `(a, b)` for templates enrolled on fewer.
    pub fallback: [f64; 2],
    /// The enrolment size (a template's `samples`) from which `full` applies.
    pub full_samples: usize,
}

/// The embedding MLP.
#[derive(Debug, Serialize)]
pub struct Network {
    /// Dense layers in forward order, each with its activation.
    pub layers: Vec<Layer>,
    /// Applied to the last layer's output: `l2-normalize`.
    pub output: &'static str,
    /// The precision the network runs in: `float32`.
    pub dtype: &'static str,
}

/// One dense layer and its activation.
#[derive(Debug, Serialize)]
pub struct Layer {
    /// `relu` or `none`.
    pub activation: &'static str,
    /// Weights and bias.
    #[serde(flatten)]
    pub dense: DenseLayer,
}

/// Reads an artifact and writes its JSON export.
pub fn export(args: ExportArgs) -> Result<(), super::CommandError> {
    use super::CommandError;
    let bytes = std::fs::read(&args.model).map_err(super::io_error(&args.model))?;
    let a = ModelArtifact::from_bytes(&bytes).map_err(|source| CommandError::Artifact {
        path: args.model.clone(),
        source,
    })?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    let meta = &a.meta;
    let dense = a.dense_layers()?;
    let s = meta.shape;
    let expected = [
        (s.input, s.hidden),
        (s.hidden, s.hidden),
        (s.hidden, s.output),
    ];
    let got: Vec<(usize, usize)> = dense
        .iter()
        .map(|l| (l.weight.first().map_or(0, Vec::len), l.weight.len()))
        .collect();
    if got != expected {
        return Err(CommandError::Shape {
            got,
            declared: format!("{s:?}"),
        });
    }
    let n = dense.len();
    let layers = dense
        .into_iter()
        .enumerate()
        .map(|(i, dense)| Layer {
            activation: if i + 1 < n { "relu" } else { "none" },
            dense,
        })
        .collect();
    let out = ExportedModel {
        format: "tacit-model-json",
        format_version: EXPORT_FORMAT,
        factor: meta.factor,
        schema_version: meta.schema_version,
        model_version: hex::encode(&digest.as_ref()[..8]),
        shape: s,
        transform: meta.transform.clone(),
        network: Network {
            layers,
            output: "l2-normalize",
            dtype: "float32",
        },
        calibration: WindowCalibration {
            full: meta.calibration.full.window_map(),
            fallback: meta.calibration.fallback.window_map(),
            full_samples: meta.calibration.full_samples,
        },
    };
    let json = serde_json::to_vec(&out)?;
    std::fs::write(&args.out, json).map_err(super::io_error(&args.out))?;
    println!(
        "exported {} model {} ({} → {} → {} → {}) to {}",
        meta.factor,
        out.model_version,
        s.input,
        s.hidden,
        s.hidden,
        s.output,
        args.out.display()
    );
    Ok(())
}
