//! From a population to a ready model: fit the transform, train the embedding network,
//! keep a background cohort, and calibrate scores on people the network never saw.

use crate::calibration::{
    AttemptCalibration, KindCalibration, LlrHistogram, MAX_ATTEMPT_WINDOWS, attempt_means,
    split_sessions,
};
use crate::data::Population;
use crate::device::{Compute, CpuTrainBackend, to_cpu};
use crate::embedding::{
    Calibration, ModelArtifact, ModelMeta, NetShape, TrainConfig, TrainSet, TrainStats,
    TrainingMeta, train,
};
use crate::logistic::Logistic;
use crate::template::{EnrolConfig, FactorModel, Template};
use crate::transform::{Compression, FeatureTransform};
use crate::{FactorKind, ModelError, SplitMix64};

/// Settings of [`build_model`].
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Network training.
    pub train: TrainConfig,
    /// Enrolment rules (used for calibration and evaluation).
    pub enrol: EnrolConfig,
    /// Share of the training people held out of network training and of the background
    /// cohort to fit the calibration (at least 2 people when there are 6 or more). The
    /// tail a calibration supports grows with the square of its people (impostor
    /// attempts are pairs of them), so it is a large share.
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
            calibration_fraction: 0.4,
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

    // Background: a fixed stride through the network's training people only. The
    // calibration people stay out of it (and so out of every template's contrast
    // negatives and normalisation cohort), as users do.
    let total: usize = net_people.iter().map(|p| transformed[p].len()).sum();
    let stride = total.div_ceil(cfg.max_background.max(2)).max(1);
    let tagged: Vec<(usize, Vec<f32>)> = net_people
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
        calibration: Calibration::default(),
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
        let c = calibrate(&model, pop, cal_people, cfg.enrol)?;
        model.set_calibration(c);
    }
    let mut artifact = artifact;
    artifact.meta.calibration = model.meta().calibration.clone();
    Ok((model, artifact))
}

/// The scores of each calibration person's template on every calibration person's
/// test sessions: `scores[i][j]` = sessions of person `j` scored against template `i`
/// (`None`: person `i` has too little data for this enrolment size).
type ScoreGrid = Vec<Option<Vec<Vec<Vec<f64>>>>>;

/// Enrols every calibration person on `enrol` vectors (`contrast`: full templates, else
/// detector only) and scores everyone's later sessions with `score`.
fn score_grid(
    model: &FactorModel,
    reps: &[Vec<Vec<f64>>],
    groups: &[Vec<u32>],
    enrol: usize,
    cfg: EnrolConfig,
    score: &dyn Fn(&Template, &[f64]) -> f64,
) -> Result<ScoreGrid, ModelError> {
    let splits: Vec<(Vec<usize>, Vec<Vec<usize>>)> = groups
        .iter()
        .map(|g| {
            let idx: Vec<(usize, u32)> = g.iter().copied().enumerate().collect();
            let (e, t) = split_sessions(&idx, |x| x.1, enrol);
            (
                e.iter().map(|x| x.0).collect(),
                t.iter().map(|s| s.iter().map(|x| x.0).collect()).collect(),
            )
        })
        .collect();
    let mut grid = Vec::with_capacity(reps.len());
    for (i, (e, _)) in splits.iter().enumerate() {
        if e.len() < enrol {
            grid.push(None);
            continue;
        }
        let rows: Vec<Vec<f64>> = e.iter().map(|&k| reps[i][k].clone()).collect();
        let t = match model.enrol_represented(&rows, model.background(), &cfg) {
            Ok(t) => t,
            Err(ModelError::NotEnoughData { .. }) => {
                grid.push(None);
                continue;
            }
            Err(e) => return Err(e),
        };
        let per_person = splits
            .iter()
            .enumerate()
            .map(|(j, (_, tests))| {
                tests
                    .iter()
                    .map(|s| s.iter().map(|&k| score(&t, &reps[j][k])).collect())
                    .collect()
            })
            .collect();
        grid.push(Some(per_person));
    }
    Ok(grid)
}

/// Genuine and impostor attempt means of `n` windows from a score grid, the impostor
/// attempts by (impostor, enrolled person) pair.
fn attempts_by_pair(grid: &ScoreGrid, n: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for (i, row) in grid.iter().enumerate() {
        let Some(row) = row else { continue };
        for (j, sessions) in row.iter().enumerate() {
            let means = sessions.iter().flat_map(|s| attempt_means(s, n));
            if i == j {
                genuine.extend(means);
            } else {
                impostor.push(means.collect::<Vec<f64>>());
            }
        }
    }
    impostor.retain(|p| !p.is_empty());
    (genuine, impostor)
}

/// Genuine and impostor attempt means of `n` windows from a score grid.
fn attempts_of(grid: &ScoreGrid, n: usize) -> (Vec<f64>, Vec<f64>) {
    let (genuine, pairs) = attempts_by_pair(grid, n);
    (genuine, pairs.into_iter().flatten().collect())
}

/// Fits the attempt calibrations of one template kind, `n = 1..=MAX_ATTEMPT_WINDOWS`,
/// stopping at the first length with no genuine or impostor attempt.
fn fit_kind(grid: &ScoreGrid) -> Result<KindCalibration, ModelError> {
    let mut attempts = Vec::new();
    for n in 1..=MAX_ATTEMPT_WINDOWS {
        let (g, pairs) = attempts_by_pair(grid, n);
        let i: Vec<f64> = pairs.iter().flatten().copied().collect();
        if g.len() < 2 || i.len() < 2 {
            break;
        }
        let gr: Vec<[f64; 1]> = g.iter().map(|&x| [x]).collect();
        let ir: Vec<[f64; 1]> = i.iter().map(|&x| [x]).collect();
        let gs: Vec<&[f64]> = gr.iter().map(|r| r.as_slice()).collect();
        let is: Vec<&[f64]> = ir.iter().map(|r| r.as_slice()).collect();
        // Balanced class weights make the fitted log-odds a likelihood ratio.
        let lr = Logistic::fit(&gs, &is, 100.0)?;
        let map = [lr.w[0], lr.b];
        let llr = |x: f64| map[0] * x + map[1];
        let llrs: Vec<f64> = i.iter().map(|&x| llr(x)).collect();
        // Each pair's best attempt: a rate is claimed only where enough pairs reach it.
        let pair_maxima: Vec<f64> = pairs
            .iter()
            .map(|p| p.iter().map(|&x| llr(x)).fold(f64::NEG_INFINITY, f64::max))
            .collect();
        let Some(impostor) = LlrHistogram::of(&llrs) else {
            break;
        };
        let impostor = impostor.with_pair_floor(&pair_maxima);
        attempts.push(AttemptCalibration {
            windows: n,
            map,
            genuine: g.len(),
            impostor,
        });
    }
    Ok(KindCalibration { attempts })
}

fn pooled_eer(grid: &ScoreGrid) -> Option<f64> {
    let (g, i) = attempts_of(grid, 1);
    crate::eval::metrics::error_rates(&g, &i).map(|r| r.eer)
}

/// Calibrates on the calibration people, who enrol as users do and are judged on whole
/// attempts of their later sessions (see [`crate::calibration`]): full templates on
/// `full_samples` vectors, fallback templates on the middle of the fallback range.
/// Whether the contrast part is used at all is decided here, on the same people: full
/// templates keep it only if they separate people at least as well as the detector alone.
fn calibrate(
    model: &FactorModel,
    pop: &Population,
    cal_people: &[usize],
    enrol: EnrolConfig,
) -> Result<Calibration, ModelError> {
    let mut reps = Vec::with_capacity(cal_people.len());
    let mut groups = Vec::with_capacity(cal_people.len());
    for &p in cal_people {
        let samples = &pop.people[p].samples;
        reps.push(model.represent(&samples.iter().map(|s| s.vector.clone()).collect::<Vec<_>>())?);
        groups.push(samples.iter().map(|s| s.group).collect::<Vec<u32>>());
    }
    let raw = |t: &Template, r: &[f64]| model.raw_score(t, r);
    let full_n = enrol.full_samples.max(enrol.min_samples).max(2);
    let detector_cfg = EnrolConfig {
        full_samples: usize::MAX,
        ..enrol
    };
    let with_contrast = score_grid(model, &reps, &groups, full_n, enrol, &raw)?;
    let detector_only = score_grid(model, &reps, &groups, full_n, detector_cfg, &raw)?;
    let checked_eer = [pooled_eer(&with_contrast), pooled_eer(&detector_only)];
    // Equal or better (too little data to tell keeps the contrast part).
    let contrast_helps = match checked_eer {
        [Some(with), Some(without)] => with <= without,
        _ => true,
    };
    let full = fit_kind(if contrast_helps {
        &with_contrast
    } else {
        &detector_only
    })?;
    let fallback_n = (enrol.min_samples.max(2) + full_n) / 2;
    let fallback = fit_kind(&score_grid(
        model,
        &reps,
        &groups,
        fallback_n,
        detector_cfg,
        &raw,
    )?)?;
    Ok(Calibration {
        full,
        fallback,
        full_samples: enrol.full_samples,
        people: cal_people.len(),
        contrast_helps,
        checked_eer,
    })
}
