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
    /// Cross-fitting folds of the calibration (2..=10): the training people are split
    /// into this many groups, and each group is scored by a network trained without it
    /// (its background cohort drawn from the other groups too), so every training person
    /// calibrates once, as someone the scoring network never saw. The tail a calibration
    /// supports grows with the square of its people (impostor attempts are pairs of
    /// them, within a group), and its estimate of that tail steadies with more people;
    /// each fold costs one more training run.
    pub calibration_folds: usize,
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
            calibration_folds: 3,
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
    /// Training of a calibration network starts: `(fold, folds)`, `fold` from 1. Its
    /// steps follow as [`Stage::Train`].
    CalibrationFold(usize, usize),
    /// Training of the network that is kept starts. Its steps follow as [`Stage::Train`].
    FinalNetwork,
    /// Calibration is running.
    Calibrating,
}

/// The feature compression each factor uses: timings (keystroke) are log-compressed.
pub fn compression_for(factor: FactorKind) -> Compression {
    match factor {
        FactorKind::KeystrokeFixed | FactorKind::KeystrokeFree => Compression::LogTime,
        FactorKind::Gait | FactorKind::Face => Compression::None,
    }
}

/// The groups of a cross-fitted calibration: `folds` groups of the shuffled `people`,
/// fewer when there are too few people for each group to hold 2 and leave 3 to train
/// on; none under 6 people (the model stays uncalibrated).
fn calibration_groups(people: &[usize], folds: usize, seed: u64) -> Vec<Vec<usize>> {
    let n = people.len();
    if n < 6 {
        return Vec::new();
    }
    let mut k = folds.clamp(2, 10).min(n / 2);
    while k > 2 && n - n.div_ceil(k) < 3 {
        k -= 1;
    }
    let mut order = people.to_vec();
    SplitMix64::new(seed ^ 0xca1b).shuffle(&mut order);
    let mut groups = vec![Vec::new(); k];
    for (i, p) in order.into_iter().enumerate() {
        groups[i % k].push(p);
    }
    groups
}

/// One trained network with its background cohort, ready to score.
struct Trained {
    model: FactorModel,
    net: crate::embedding::EmbeddingNet<crate::device::CpuBackend>,
}

/// Trains a network on `net_people` and keeps a background cohort drawn from them only
/// (a fixed stride), so anyone outside `net_people` is, to this model, an unseen user:
/// never a contrast negative, never in the normalisation cohort.
fn train_member(
    pop: &Population,
    net_people: &[usize],
    transformed: &std::collections::HashMap<usize, Vec<Vec<f64>>>,
    transform: &FeatureTransform,
    cfg: &PipelineConfig,
    progress: &mut dyn FnMut(Stage),
) -> Result<Trained, ModelError> {
    let mut set = TrainSet {
        rows: Vec::new(),
        labels: Vec::new(),
        people: net_people.len(),
    };
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
    let total: usize = net_people.iter().map(|p| transformed[p].len()).sum();
    let stride = total.div_ceil(cfg.max_background.max(2)).max(1);
    let background: Vec<Vec<f32>> = net_people
        .iter()
        .flat_map(|&p| transformed[&p].iter())
        .step_by(stride)
        .map(|z| z.iter().map(|&x| x as f32).collect())
        .collect();
    let meta = ModelMeta {
        factor: pop.factor,
        schema_version: pop.schema_version,
        shape,
        transform: transform.clone(),
        calibration: Calibration::default(),
        background,
        training: TrainingMeta {
            config: cfg.train.clone(),
            stats,
            people: net_people.len(),
            samples: set.rows.len(),
            calibration_people: 0,
            backend: cfg.compute.name().into(),
            dataset: pop.source.clone(),
            software: format!("tacit-models {}", env!("CARGO_PKG_VERSION")),
        },
    };
    Ok(Trained {
        model: FactorModel::new(meta, net.clone())?,
        net,
    })
}

/// Trains a model on the people `people` (indices into `pop.people`).
///
/// The kept network is trained on all of them. Its calibration is cross-fitted: the
/// people are split into [`PipelineConfig::calibration_folds`] groups, a network (and
/// background cohort) is trained without each group, and that group's people enrol and
/// are judged on it as users are (see [`crate::calibration`]). The calibration networks
/// see a share `1 - 1/folds` of the people, the kept one all of them, so the kept model
/// separates people at least as well as the one the calibration describes: its rates are
/// estimated on the cautious side.
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
    if !(2..=10).contains(&cfg.calibration_folds) {
        return Err(ModelError::Config(format!(
            "calibration folds {}: expected 2..=10",
            cfg.calibration_folds
        )));
    }
    let all: Vec<Vec<f32>> = people
        .iter()
        .flat_map(|&p| pop.people[p].samples.iter().map(|s| s.vector.clone()))
        .collect();
    let transform = FeatureTransform::fit(&all, compression_for(pop.factor))?;
    // Every training person's vectors, transformed once: every network's training set
    // and background cohort draw from them.
    let mut transformed: std::collections::HashMap<usize, Vec<Vec<f64>>> = Default::default();
    for &p in people {
        let rows: Vec<Vec<f32>> = pop.people[p]
            .samples
            .iter()
            .map(|s| s.vector.clone())
            .collect();
        transformed.insert(p, transform.apply_all(&rows)?);
    }

    // Cross-fitted calibration grids: each group scored by a network that never saw it.
    let groups = calibration_groups(people, cfg.calibration_folds, cfg.train.seed);
    let mut grids = CalibrationGrids::default();
    for (k, group) in groups.iter().enumerate() {
        progress(Stage::CalibrationFold(k + 1, groups.len()));
        let others: Vec<usize> = people
            .iter()
            .copied()
            .filter(|p| !group.contains(p))
            .collect();
        let member = train_member(pop, &others, &transformed, &transform, cfg, progress)?;
        progress(Stage::Calibrating);
        grids.add(&member.model, pop, group, cfg.enrol)?;
    }

    // The kept network learns from everyone. Kept on a share of the people like the
    // calibration networks, it would match their calibration exactly but separate
    // people less well; measured on CMU and Hoang gait, training it on everyone gave
    // the better model and realised rates at or below the targets.
    progress(Stage::FinalNetwork);
    let kept = train_member(pop, people, &transformed, &transform, cfg, progress)?;
    let mut meta = kept.model.meta().clone();
    if !groups.is_empty() {
        meta.training.calibration_people = people.len();
        meta.calibration = grids.fit(people.len(), cfg.enrol)?;
    }
    let artifact = ModelArtifact::new(meta.clone(), kept.net.clone())?;
    let model = FactorModel::new(meta, kept.net)?;
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

/// Genuine and impostor attempt means of `n` windows from score grids, the impostor
/// attempts by (impostor, enrolled person) pair.
fn attempts_by_pair(grids: &[ScoreGrid], n: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for (i, row) in grids.iter().flat_map(|g| g.iter().enumerate()) {
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

/// Genuine and impostor attempt means of `n` windows from score grids.
fn attempts_of(grids: &[ScoreGrid], n: usize) -> (Vec<f64>, Vec<f64>) {
    let (genuine, pairs) = attempts_by_pair(grids, n);
    (genuine, pairs.into_iter().flatten().collect())
}

/// Fits the attempt calibrations of one template kind, `n = 1..=MAX_ATTEMPT_WINDOWS`,
/// stopping at the first length with no genuine or impostor attempt.
fn fit_kind(grids: &[ScoreGrid]) -> Result<KindCalibration, ModelError> {
    let mut attempts = Vec::new();
    for n in 1..=MAX_ATTEMPT_WINDOWS {
        let (g, pairs) = attempts_by_pair(grids, n);
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

fn pooled_eer(grids: &[ScoreGrid]) -> Option<f64> {
    let (g, i) = attempts_of(grids, 1);
    crate::eval::metrics::error_rates(&g, &i).map(|r| r.eer)
}

/// The score grids of the calibration groups, per template kind: full templates with
/// and without the contrast part, and fallback templates. Impostor pairs lie within a
/// group (both people unseen by the group's network).
#[derive(Default)]
struct CalibrationGrids {
    with_contrast: Vec<ScoreGrid>,
    detector_only: Vec<ScoreGrid>,
    fallback: Vec<ScoreGrid>,
}

impl CalibrationGrids {
    /// Scores the group `people` on `model`, which never saw them: each enrols as a user
    /// does and is judged on whole attempts of their later sessions (see
    /// [`crate::calibration`]): full templates on `full_samples` vectors, fallback
    /// templates on the middle of the fallback range.
    fn add(
        &mut self,
        model: &FactorModel,
        pop: &Population,
        people: &[usize],
        enrol: EnrolConfig,
    ) -> Result<(), ModelError> {
        let mut reps = Vec::with_capacity(people.len());
        let mut groups = Vec::with_capacity(people.len());
        for &p in people {
            let samples = &pop.people[p].samples;
            reps.push(
                model.represent(&samples.iter().map(|s| s.vector.clone()).collect::<Vec<_>>())?,
            );
            groups.push(samples.iter().map(|s| s.group).collect::<Vec<u32>>());
        }
        let raw = |t: &Template, r: &[f64]| model.raw_score(t, r);
        let full_n = full_size(enrol);
        let detector_cfg = detector_only(enrol);
        self.with_contrast
            .push(score_grid(model, &reps, &groups, full_n, enrol, &raw)?);
        self.detector_only.push(score_grid(
            model,
            &reps,
            &groups,
            full_n,
            detector_cfg,
            &raw,
        )?);
        let fallback_n = (enrol.min_samples.max(2) + full_n) / 2;
        self.fallback.push(score_grid(
            model,
            &reps,
            &groups,
            fallback_n,
            detector_cfg,
            &raw,
        )?);
        Ok(())
    }

    /// Fits the calibration of `people` calibration people. Whether full templates use
    /// the contrast part at all is decided here, on the same people: they keep it only
    /// if it separates people at least as well as the detector alone.
    fn fit(&self, people: usize, enrol: EnrolConfig) -> Result<Calibration, ModelError> {
        let checked_eer = [
            pooled_eer(&self.with_contrast),
            pooled_eer(&self.detector_only),
        ];
        // Equal or better (too little data to tell keeps the contrast part).
        let contrast_helps = match checked_eer {
            [Some(with), Some(without)] => with <= without,
            _ => true,
        };
        let full = fit_kind(if contrast_helps {
            &self.with_contrast
        } else {
            &self.detector_only
        })?;
        let fallback = fit_kind(&self.fallback)?;
        Ok(Calibration {
            full,
            fallback,
            full_samples: enrol.full_samples,
            people,
            contrast_helps,
            checked_eer,
        })
    }
}

/// The enrolment size full templates are calibrated at.
fn full_size(enrol: EnrolConfig) -> usize {
    enrol.full_samples.max(enrol.min_samples).max(2)
}

/// `enrol` with the contrast part switched off (every template detector only).
fn detector_only(enrol: EnrolConfig) -> EnrolConfig {
    EnrolConfig {
        full_samples: usize::MAX,
        ..enrol
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_groups_partition_the_people() {
        let people: Vec<usize> = (100..141).collect();
        let groups = calibration_groups(&people, 3, 7);
        assert_eq!(groups.len(), 3);
        let mut all: Vec<usize> = groups.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, people, "every person in exactly one group");
        let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
        assert!(sizes.iter().all(|&s| s == 13 || s == 14), "{sizes:?}");
        assert_eq!(groups, calibration_groups(&people, 3, 7), "seeded");
        assert_ne!(
            groups,
            calibration_groups(&people, 3, 8),
            "the seed matters"
        );
    }

    #[test]
    fn small_populations_get_fewer_groups_or_none() {
        let p = |n: usize| (0..n).collect::<Vec<usize>>();
        assert!(
            calibration_groups(&p(5), 3, 1).is_empty(),
            "under 6: uncalibrated"
        );
        for n in 6..40 {
            for folds in 2..=10 {
                let g = calibration_groups(&p(n), folds, 1);
                assert!((2..=folds).contains(&g.len()), "{n} people, {folds} folds");
                for group in &g {
                    assert!(group.len() >= 2, "{n}/{folds}: a group of one has no pairs");
                    assert!(n - group.len() >= 3, "{n}/{folds}: too few to train on");
                }
            }
        }
    }
}
