//! Enrolment and scoring.
//!
//! A vector is represented as `r = z ‖ e`: `z` the transformed features, `e` the
//! embedding of `z`. A user's [`Template`] holds
//! * a robust scaled-Manhattan detector on `z` (median/MAD of the enrolment vectors);
//! * a logistic regression on `r` fitted against the model's background cohort: what
//!   distinguishes this person from the population, not only what is typical of them;
//! * for each of the two, the mean and spread of its scores over a cohort of other
//!   people, so both are on a common scale (cohort z-normalisation) and can be added.
//!
//! The fused raw score is then mapped to a log-likelihood ratio by the model's
//! calibration ([`crate::calibration`]): per window, and for a whole attempt (the mean
//! raw score of its windows, mapped by the calibration of attempts of that length).
//! Fewer than `min_samples` enrolment vectors is "not enrolled yet"; fewer than
//! `full_samples` gives a fallback template (detector only), and so does any enrolment
//! when the calibration found that the contrast part does not help.
//! A template holds statistics and weights only, never an enrolment vector.

use burn::prelude::*;

use crate::detectors::{Centre, Detector, ScaledManhattan};
use crate::device::CpuBackend;
use crate::embedding::{Calibration, EmbeddingNet, ModelArtifact, ModelMeta, PlainNet};
use crate::logistic::Logistic;
use crate::transform::check_rows;
use crate::{FactorKind, ModelError};

/// Enrolment rules.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EnrolConfig {
    /// Below this many vectors: not enrolled.
    pub min_samples: usize,
    /// From this many vectors on: the full template; below, the fallback.
    pub full_samples: usize,
    /// Inverse regularisation of the per-user logistic regression.
    pub c: f64,
    /// At most this many background vectors per enrolment (bounds the cost).
    pub max_background: usize,
}

impl EnrolConfig {
    /// Defaults per factor: a keystroke entry is one phrase typed (or one block of free
    /// typing); a gait vector is one 5.12 s walking window.
    pub fn for_factor(factor: FactorKind) -> Self {
        match factor {
            FactorKind::KeystrokeFixed | FactorKind::KeystrokeFree => EnrolConfig {
                min_samples: 10,
                full_samples: 30,
                c: 1.0,
                max_background: 4000,
            },
            // A face template keeps at most ten images (the face factor's own rule).
            FactorKind::Face => EnrolConfig {
                min_samples: 3,
                full_samples: 10,
                c: 1.0,
                max_background: 4000,
            },
            FactorKind::Gait => EnrolConfig {
                min_samples: 12,
                full_samples: 36,
                c: 1.0,
                max_background: 4000,
            },
        }
    }
}

/// Cohort statistics of one score.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Norm {
    /// Mean cohort score.
    pub mean: f64,
    /// Spread of cohort scores (never 0).
    pub sd: f64,
}

impl Norm {
    fn of(scores: &[f64]) -> Norm {
        let (m, sd) = crate::eval::metrics::mean_sd(scores);
        Norm {
            mean: m,
            sd: if sd > 1e-12 { sd } else { 1.0 },
        }
    }

    fn apply(&self, s: f64) -> f64 {
        (s - self.mean) / self.sd
    }
}

/// One user's template for one factor.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Template {
    /// The factor.
    pub factor: FactorKind,
    /// Enrolment vectors used.
    pub samples: usize,
    /// Robust scaled Manhattan on the transformed features.
    pub detector: ScaledManhattan,
    /// Cohort normalisation of the detector score.
    pub detector_norm: Norm,
    /// The contrastive part, absent in a fallback template.
    pub contrast: Option<(Logistic, Norm)>,
}

impl Template {
    /// Whether this is a fallback (detector-only) template.
    pub fn is_fallback(&self) -> bool {
        self.contrast.is_none()
    }
}

/// A score: raw (fused, cohort-normalised) and calibrated.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Score {
    /// Fused cohort-normalised score (higher = more genuine).
    pub raw: f64,
    /// Log-likelihood ratio genuine vs impostor (natural log).
    pub llr: f64,
}

/// One factor's verdict on a whole authentication attempt.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttemptScore {
    /// Calibrated log-likelihood ratio of the attempt (natural log).
    pub llr: f64,
    /// Windows scored.
    pub windows: usize,
    /// Attempt length whose calibration was used (0: uncalibrated).
    pub calibrated_windows: usize,
    /// The LLRs of impostor attempts of that length on the calibration people.
    pub impostor: Option<crate::calibration::LlrHistogram>,
}

/// One forward pass of `rows` (transformed, `dim` wide) through `net` on `device`: the
/// flat embeddings (`rows.len() × k`).
fn forward<B: burn::tensor::backend::Backend>(
    net: &EmbeddingNet<B>,
    rows: &[Vec<f64>],
    dim: usize,
    k: usize,
    device: &B::Device,
) -> Result<Vec<f32>, ModelError> {
    let flat: Vec<f32> = rows
        .iter()
        .flat_map(|r| r.iter().map(|&x| x as f32))
        .collect();
    let x = Tensor::<B, 2>::from_data(TensorData::new(flat, [rows.len(), dim]), device);
    // A failed read-back must not shorten the output (the rows would then be silently
    // paired with the wrong embeddings).
    let e: Vec<f32> = net
        .forward(x)
        .into_data()
        .to_vec()
        .map_err(|e| ModelError::Data(format!("embedding read-back: {e:?}")))?;
    if e.len() != rows.len() * k {
        return Err(ModelError::Data(format!(
            "embedding read-back: {} values for {} rows of {k}",
            e.len(),
            rows.len()
        )));
    }
    Ok(e)
}

/// Most rows of a forward pass computed by [`PlainNet`] (without burn's per-call
/// overhead): scoring requests and small enrolments. Larger passes (the background cohort, training
/// sets, batch jobs) go through burn, whose matrix products win there.
pub const PLAIN_ROWS: usize = 64;

/// Fewest rows of one forward pass that go to the GPU by default: below it the copy to
/// the device and back costs more than the CPU's pass (`scripts/gpu-check.sh` measures
/// both across batch sizes; `factor.gpu_min_rows` changes it).
pub const GPU_MIN_ROWS: usize = 256;

/// A model ready to enrol and score: the artifact's network on the CPU backend plus the
/// representations of its background cohort; in CUDA builds on a machine with a GPU,
/// the same network on the GPU for large batches.
#[derive(Debug)]
pub struct FactorModel {
    meta: ModelMeta,
    net: EmbeddingNet<CpuBackend>,
    /// The same network as plain arrays, for passes of at most [`PLAIN_ROWS`] rows.
    plain: PlainNet,
    background: Vec<Vec<f64>>,
    /// The network on the GPU and the fewest rows of a pass that use it.
    #[cfg(feature = "cuda")]
    gpu: Option<(EmbeddingNet<crate::device::CudaBackend>, usize)>,
}

impl FactorModel {
    /// Loads the network of an artifact (on the CPU).
    pub fn from_artifact(a: &ModelArtifact) -> Result<Self, ModelError> {
        let net = a.net::<CpuBackend>(&Default::default())?;
        Self::new(a.meta.clone(), net)
    }

    /// Loads the network of an artifact, and with `compute` CUDA a copy on the GPU that
    /// forward passes of at least `gpu_min_rows` rows use (batch scoring, enrolment
    /// from many windows, the background cohort); smaller ones stay on the CPU. The
    /// two compute the same network: scores agree to float rounding.
    pub fn from_artifact_on(
        a: &ModelArtifact,
        compute: crate::device::Compute,
        gpu_min_rows: usize,
    ) -> Result<Self, ModelError> {
        #[cfg(feature = "cuda")]
        if compute == crate::device::Compute::Cuda {
            let net = a.net::<CpuBackend>(&Default::default())?;
            let gpu = a.net::<crate::device::CudaBackend>(&Default::default())?;
            let mut m = FactorModel {
                meta: a.meta.clone(),
                plain: PlainNet::of(&net)?,
                net,
                background: Vec::new(),
                gpu: Some((gpu, gpu_min_rows.max(1))),
            };
            let z: Vec<Vec<f64>> = m
                .meta
                .background
                .iter()
                .map(|r| r.iter().map(|&x| x as f64).collect())
                .collect();
            m.background = m.represent_transformed(z)?;
            return Ok(m);
        }
        let _ = (compute, gpu_min_rows);
        Self::from_artifact(a)
    }

    /// Where forward passes of `rows` rows run.
    pub fn compute_for(&self, rows: usize) -> crate::device::Compute {
        #[cfg(feature = "cuda")]
        if let Some((_, min)) = &self.gpu
            && rows >= *min
        {
            return crate::device::Compute::Cuda;
        }
        let _ = rows;
        crate::device::Compute::Cpu
    }

    /// A model from its parts (training builds one before its calibration exists).
    pub fn new(meta: ModelMeta, net: EmbeddingNet<CpuBackend>) -> Result<Self, ModelError> {
        let z: Vec<Vec<f64>> = meta
            .background
            .iter()
            .map(|r| r.iter().map(|&x| x as f64).collect())
            .collect();
        let mut m = FactorModel {
            meta,
            plain: PlainNet::of(&net)?,
            net,
            background: Vec::new(),
            #[cfg(feature = "cuda")]
            gpu: None,
        };
        m.background = m.represent_transformed(z)?;
        Ok(m)
    }

    /// The header of the model.
    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// Replaces the calibration.
    pub fn set_calibration(&mut self, c: Calibration) {
        self.meta.calibration = c;
    }

    /// Input dimension.
    pub fn dim(&self) -> usize {
        self.meta.shape.input
    }

    /// Embeds already-transformed vectors.
    pub fn embed(&self, z: &[Vec<f64>]) -> Result<Vec<Vec<f64>>, ModelError> {
        let k = self.meta.shape.output;
        if let Some(e) = self.embed_plain(z)? {
            return Ok(e
                .chunks(k.max(1))
                .map(|r| r.iter().map(|&v| v as f64).collect())
                .collect());
        }
        let mut out = Vec::with_capacity(z.len());
        for chunk in z.chunks(1024) {
            #[cfg(feature = "cuda")]
            let e = match &self.gpu {
                Some((net, min)) if chunk.len() >= *min => {
                    forward(net, chunk, self.dim(), k, &Default::default())?
                }
                _ => forward(&self.net, chunk, self.dim(), k, &Default::default())?,
            };
            #[cfg(not(feature = "cuda"))]
            let e = forward(&self.net, chunk, self.dim(), k, &Default::default())?;
            out.extend(e.chunks(k).map(|r| r.iter().map(|&x| x as f64).collect()));
        }
        Ok(out)
    }

    /// The embeddings of a few rows by the plain network, row after row, or `None`
    /// where the pass belongs to burn (many rows, a GPU, another shape).
    fn embed_plain(&self, z: &[Vec<f64>]) -> Result<Option<Vec<f32>>, ModelError> {
        let plain = z.len() <= PLAIN_ROWS
            && self.compute_for(z.len()) == crate::device::Compute::Cpu
            && self.plain.input() == self.dim()
            && self.plain.output() == self.meta.shape.output
            && z.iter().all(|r| r.len() == self.dim());
        if !plain {
            return Ok(None);
        }
        let mut x = Vec::with_capacity(z.len() * self.dim());
        x.extend(z.iter().flatten().map(|&v| v as f32));
        self.plain.forward_rows(&x, z.len()).map(Some)
    }

    fn represent_transformed(&self, z: Vec<Vec<f64>>) -> Result<Vec<Vec<f64>>, ModelError> {
        if let Some(e) = self.embed_plain(&z)? {
            let k = self.meta.shape.output.max(1);
            return Ok(z
                .into_iter()
                .zip(e.chunks(k))
                .map(|(mut zi, ei)| {
                    zi.extend(ei.iter().map(|&v| v as f64));
                    zi
                })
                .collect());
        }
        let e = self.embed(&z)?;
        Ok(z.into_iter()
            .zip(e)
            .map(|(mut zi, ei)| {
                zi.extend(ei);
                zi
            })
            .collect())
    }

    /// `z ‖ e` for raw feature vectors (validated: dimension and finiteness).
    pub fn represent(&self, rows: &[Vec<f32>]) -> Result<Vec<Vec<f64>>, ModelError> {
        check_rows(rows, self.dim())?;
        let z = self
            .meta
            .transform
            .apply_all_with_room(rows, self.meta.shape.output)?;
        self.represent_transformed(z)
    }

    /// Builds a template from raw enrolment vectors.
    pub fn enrol(&self, rows: &[Vec<f32>], cfg: &EnrolConfig) -> Result<Template, ModelError> {
        let r = self.represent(rows)?;
        self.enrol_represented(&r, &self.background, cfg)
    }

    /// Builds a template from represented vectors against a given background (training
    /// uses this to keep a calibration person out of their own background).
    pub fn enrol_represented(
        &self,
        r: &[Vec<f64>],
        background: &[Vec<f64>],
        cfg: &EnrolConfig,
    ) -> Result<Template, ModelError> {
        if r.len() < cfg.min_samples.max(2) {
            return Err(ModelError::NotEnoughData {
                have: r.len(),
                need: cfg.min_samples.max(2),
            });
        }
        let dim = self.dim();
        let z: Vec<Vec<f64>> = r.iter().map(|v| v[..dim].to_vec()).collect();
        let detector = ScaledManhattan::fit(&z, Centre::Median)?;
        // Cohort: a fixed stride through the background, at most 1000 vectors.
        let stride = background.len().div_ceil(1000).max(1);
        let cohort: Vec<&Vec<f64>> = background.iter().step_by(stride).collect();
        let det_scores: Vec<f64> = cohort.iter().map(|b| detector.score(&b[..dim])).collect();
        let detector_norm = Norm::of(&det_scores);
        // The calibration says whether the contrast part helps at all: a template is
        // never worse than its own detector on the calibration people.
        let contrast = if r.len() >= cfg.full_samples && self.meta.calibration.contrast_helps {
            let bstride = background.len().div_ceil(cfg.max_background.max(1)).max(1);
            let neg: Vec<&[f64]> = background
                .iter()
                .step_by(bstride)
                .map(Vec::as_slice)
                .collect();
            let pos: Vec<&[f64]> = r.iter().map(Vec::as_slice).collect();
            let lr = Logistic::fit(&pos, &neg, cfg.c)?;
            let s: Vec<f64> = cohort.iter().map(|b| lr.score(b)).collect();
            Some((lr, Norm::of(&s)))
        } else {
            None
        };
        Ok(Template {
            factor: self.meta.factor,
            samples: r.len(),
            detector,
            detector_norm,
            contrast,
        })
    }

    /// The uncalibrated fused score of one represented vector.
    pub fn raw_score(&self, t: &Template, r: &[f64]) -> f64 {
        let d = t.detector_norm.apply(t.detector.score(&r[..self.dim()]));
        match &t.contrast {
            Some((lr, norm)) => d + norm.apply(lr.score(r)),
            None => d,
        }
    }

    /// Calibrates the raw score of one window for a template (the one-window
    /// calibration of the template's kind).
    pub fn calibrate(&self, t: &Template, raw: f64) -> Score {
        let [a, b] = self.meta.calibration.kind(t.samples).window_map();
        Score {
            raw,
            llr: a * raw + b,
        }
    }

    /// The attempt made of the windows whose per-window scores are `scores`: its mean
    /// raw score mapped by the calibration of attempts of that many windows, with the
    /// histogram of impostor attempts of that length (`None` when the model is
    /// uncalibrated: the mean per-window LLR then stands, and no rate is claimed).
    pub fn attempt(&self, t: &Template, scores: &[Score]) -> Option<AttemptScore> {
        if scores.is_empty() {
            return None;
        }
        let n = scores.len();
        let mean_raw = scores.iter().map(|s| s.raw).sum::<f64>() / n as f64;
        Some(match self.meta.calibration.kind(t.samples).for_windows(n) {
            Some(c) => AttemptScore {
                llr: c.map[0] * mean_raw + c.map[1],
                windows: n,
                calibrated_windows: c.windows,
                impostor: Some(c.impostor.clone()),
            },
            None => AttemptScore {
                llr: scores.iter().map(|s| s.llr).sum::<f64>() / n as f64,
                windows: n,
                calibrated_windows: 0,
                impostor: None,
            },
        })
    }

    /// Scores raw feature vectors against a template.
    pub fn score(&self, t: &Template, rows: &[Vec<f32>]) -> Result<Vec<Score>, ModelError> {
        if t.factor != self.meta.factor {
            return Err(ModelError::Artifact(format!(
                "template is for {}, model for {}",
                t.factor, self.meta.factor
            )));
        }
        if t.detector.centre.len() != self.dim() {
            return Err(ModelError::Dimension {
                expected: self.dim(),
                got: t.detector.centre.len(),
            });
        }
        let r = self.represent(rows)?;
        Ok(r.iter()
            .map(|v| self.calibrate(t, self.raw_score(t, v)))
            .collect())
    }

    /// Represented background vectors.
    pub fn background(&self) -> &[Vec<f64>] {
        &self.background
    }
}
