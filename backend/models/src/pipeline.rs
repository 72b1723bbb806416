//! From a population to a ready model: fit the transform, train the embedding network,
//! keep a background cohort, and calibrate scores on people the network never saw.

use crate::data::Population;
use crate::device::{Compute, CpuTrainBackend, to_cpu};
use crate::embedding::{
    Calibration, ModelArtifact, ModelMeta, NetShape, TrainConfig, TrainSet, TrainStats,
    TrainingMeta, train,
};
use crate::logistic::Logistic;
use crate::template::{EnrolConfig, FactorModel};
use crate::transform::{Compression, FeatureTransform};
use crate::{FactorKind, ModelError, SplitMix64};

/// Settings of [`build_model`].
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Network training.
    pub train: TrainConfig,
    /// Enrolment rules (used for calibration and evaluation).
    pub enrol: EnrolConfig,
    /// Share of the training people held out of network training to fit the
    /// calibration (at least 2 people when there are 6 or more).
    pub calibration_fraction: f64,
    /// Largest background cohort kept in the artifact.
    pub max_background: usize,
    /// Backend for training.
    pub compute: Compute,
}

impl PipelineConfig {
    /// Defaults for a factor.
    pub fn for_factor(factor: FactorKind) -> Self {
        PipelineConfig {
            train: TrainConfig::default(),
            enrol: EnrolConfig::for_factor(factor),
            calibration_fraction: 0.2,
            max_background: 4000,
            compute: Compute::Cpu,
        }
    }
}

/// Progress of [`build_model`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stage {
    /// A training step finished: `(step, steps, loss)`.
    Train(usize, usize, f64),
    /// Calibration is running.
    Calibrating,
}

/// The feature compression each factor uses: timings (keystroke) are log-compressed.
pub fn compression_for(factor: FactorKind) -> Compression {
    match factor {
        FactorKind::KeystrokeFixed | FactorKind::KeystrokeFree => Compression::LogTime,
        FactorKind::Gait => Compression::None,
    }
}

/// Trains a model on the people `people` (indices into `pop.people`).
pub fn build_model(
    pop: &Population,
    people: &[usize],
    cfg: &PipelineConfig,
    progress: &mut dyn FnMut(Stage),
) -> Result<(FactorModel, ModelArtifact), ModelError> {
    if people.len() < 3 {
        return Err(ModelError::Data(format!(
            "training needs at least 3 people, got {}",
            people.len()
        )));
    }
    if people.iter().any(|&p| p >= pop.people.len()) {
        return Err(ModelError::Data("person index out of range".into()));
    }
    let all: Vec<Vec<f32>> = people
        .iter()
        .flat_map(|&p| pop.people[p].samples.iter().map(|s| s.vector.clone()))
        .collect();
    let transform = FeatureTransform::fit(&all, compression_for(pop.factor))?;

    // Calibration people: a seeded choice, never seen by the network.
    let mut order = people.to_vec();
    SplitMix64::new(cfg.train.seed ^ 0xca1b).shuffle(&mut order);
    let n_cal = if people.len() >= 6 {
        ((people.len() as f64 * cfg.calibration_fraction).round() as usize)
            .clamp(2, people.len() - 3)
    } else {
        0
    };
    let (cal_people, net_people) = order.split_at(n_cal);

    let mut set = TrainSet {
        rows: Vec::new(),
        labels: Vec::new(),
        people: net_people.len(),
    };
    // Every training person's vectors, transformed once: the network's training set
    // and the background cohort both draw from them.
    let mut transformed: std::collections::HashMap<usize, Vec<Vec<f64>>> = Default::default();
    for &p in people {
        let rows: Vec<Vec<f32>> = pop.people[p]
            .samples
            .iter()
            .map(|s| s.vector.clone())
            .collect();
        transformed.insert(p, transform.apply_all(&rows)?);
    }
    for (label, p) in net_people.iter().enumerate() {
        let rows = &transformed[p];
        set.rows.extend(rows.iter().cloned());
        set.labels.extend(std::iter::repeat_n(label, rows.len()));
    }
    let steps = cfg.train.steps;
    let mut on_step = |step: usize, loss: f64| progress(Stage::Train(step, steps, loss));
    let shape = NetShape {
        input: pop.dim,
        hidden: cfg.train.hidden,
        output: cfg.train.embedding,
    };
    let (net, stats): (_, TrainStats) = match cfg.compute {
        Compute::Cpu => {
            train::<CpuTrainBackend>(&set, &cfg.train, &Default::default(), &mut on_step)?
        }
        #[cfg(feature = "cuda")]
        Compute::Cuda => {
            let device = burn::backend::cuda::CudaDevice::default();
            let (net, stats) = train::<burn::backend::Autodiff<crate::device::CudaBackend>>(
                &set,
                &cfg.train,
                &device,
                &mut on_step,
            )?;
            (to_cpu(net, shape)?, stats)
        }
    };
    let net = to_cpu(net, shape)?;

    // Background: a fixed stride through every training person's vectors.
    let total: usize = people.iter().map(|p| transformed[p].len()).sum();
    let stride = total.div_ceil(cfg.max_background.max(2)).max(1);
    let tagged: Vec<(usize, Vec<f32>)> = people
        .iter()
        .flat_map(|&p| transformed[&p].iter().map(move |z| (p, z)))
        .step_by(stride)
        .map(|(p, z)| (p, z.iter().map(|&x| x as f32).collect()))
        .collect();
    let meta = ModelMeta {
        factor: pop.factor,
        schema_version: pop.schema_version,
        shape,
        transform,
        calibration: Calibration {
            full: [1.0, 0.0],
            fallback: [1.0, 0.0],
        },
        background: tagged.iter().map(|t| t.1.clone()).collect(),
        training: TrainingMeta {
            config: cfg.train.clone(),
            stats,
            people: net_people.len(),
            samples: set.rows.len(),
            calibration_people: cal_people.len(),
            backend: cfg.compute.name().into(),
            dataset: pop.source.clone(),
            software: format!("tacit-models {}", env!("CARGO_PKG_VERSION")),
        },
    };
    let artifact = ModelArtifact::new(meta.clone(), net.clone())?;
    let mut model = FactorModel::new(meta, net)?;

    if cal_people.len() >= 2 {
        progress(Stage::Calibrating);
        let tags: Vec<usize> = tagged.iter().map(|t| t.0).collect();
        let full = calibrate(&model, pop, cal_people, &tags, cfg.enrol)?;
        let mut fb_cfg = cfg.enrol;
        fb_cfg.full_samples = usize::MAX;
        let fallback = calibrate(&model, pop, cal_people, &tags, fb_cfg)?;
        model.set_calibration(Calibration { full, fallback });
    }
    let mut artifact = artifact;
    artifact.meta.calibration = model.meta().calibration;
    Ok((model, artifact))
}

/// Fits `llr = a·raw + b` on calibration people: each enrols on their first half
/// (against a background without their own vectors); genuine = their second half,
/// impostors = the other calibration people's second halves. Balanced class weights
/// make the fitted log-odds a likelihood ratio.
fn calibrate(
    model: &FactorModel,
    pop: &Population,
    cal_people: &[usize],
    tags: &[usize],
    enrol: EnrolConfig,
) -> Result<[f64; 2], ModelError> {
    let mut tests = Vec::new();
    let mut enrols = Vec::new();
    for &p in cal_people {
        let (a, b) = pop.people[p].halves();
        enrols.push(model.represent(&crate::data::Person::vectors(&a))?);
        tests.push(model.represent(&crate::data::Person::vectors(&b))?);
    }
    let (mut genuine, mut imp) = (Vec::new(), Vec::new());
    for (i, &p) in cal_people.iter().enumerate() {
        let bg: Vec<Vec<f64>> = model
            .background()
            .iter()
            .zip(tags)
            .filter(|(_, t)| **t != p)
            .map(|(r, _)| r.clone())
            .collect();
        let t = match model.enrol_represented(&enrols[i], &bg, &enrol) {
            Ok(t) => t,
            Err(ModelError::NotEnoughData { .. }) => continue,
            Err(e) => return Err(e),
        };
        for (j, rows) in tests.iter().enumerate() {
            let s = rows.iter().map(|r| vec![model.raw_score(&t, r)]);
            if i == j {
                genuine.extend(s)
            } else {
                imp.extend(s)
            }
        }
    }
    if genuine.is_empty() || imp.is_empty() {
        return Ok([1.0, 0.0]);
    }
    let g: Vec<&[f64]> = genuine.iter().map(Vec::as_slice).collect();
    let i: Vec<&[f64]> = imp.iter().map(Vec::as_slice).collect();
    let lr = Logistic::fit(&g, &i, 100.0)?;
    Ok([lr.w[0], lr.b])
}
