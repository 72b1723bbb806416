//! The evaluation protocols.
//!
//! * **One-class** (Killourhy & Maxion 2009): per person, a detector is fitted on the
//!   first half of their vectors; genuine = their second half; impostors = the first 5
//!   vectors of every other person.
//! * **Population**: k-fold over people. The model (network, background, calibration) is
//!   built from the other folds only; each held-out person enrols on their first half
//!   and is tested on their second half; impostors come only from the held-out fold
//!   (their second halves; for keystroke also, as in the one-class protocol, their
//!   first 5 vectors). Gait is also scored per session (mean of window scores).
//!   The **decision** row judges whole attempts as the gateway does: held-out people
//!   enrol like users, their later sessions are cut into attempts
//!   ([`attempt_windows`]), and each attempt is accepted at a target false-accept rate
//!   when the fusion's estimated FAR is at most the target; its `operating_points`
//!   are the realised rates at 0.001, 0.01 and 0.05, pooled over people.

use super::metrics::{Judged, error_rates, mean_sd, operating_points};
use super::report::MethodResult;
use crate::calibration::split_sessions;
use crate::data::{Person, Population, Sample};
use crate::detectors::{Centre, Detector, MahalanobisNn, ScaledManhattan};
use crate::fusion::{FactorEvidence, FusionPolicy};
use crate::pipeline::{PipelineConfig, Stage, build_model, compression_for};
use crate::{FactorKind, ModelError, SplitMix64};

/// Settings of the population protocol.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// Folds over people.
    pub folds: usize,
    /// Run only this many folds (a reduced, quicker evaluation); `None` = all.
    pub max_folds: Option<usize>,
    /// Seed of the fold assignment.
    pub seed: u64,
    /// Model building.
    pub pipeline: PipelineConfig,
}

/// Per-person scores of one method.
#[derive(Default)]
struct Scores {
    genuine: Vec<Vec<f64>>,
    impostor: Vec<Vec<f64>>,
}

impl Scores {
    fn push(&mut self, g: Vec<f64>, i: Vec<f64>) {
        self.genuine.push(g);
        self.impostor.push(i);
    }

    fn result(&self, protocol: &str, method: &str, level: &str, impostors: &str) -> MethodResult {
        let mut eer = Vec::new();
        let (mut far, mut frr) = (Vec::new(), Vec::new());
        for (g, i) in self.genuine.iter().zip(&self.impostor) {
            if let Some(r) = error_rates(g, i) {
                eer.push(r.eer);
                far.push(r.far_at_frr5);
                frr.push(r.frr_at_far1);
            }
        }
        let pooled_g: Vec<f64> = self.genuine.concat();
        let pooled_i: Vec<f64> = self.impostor.concat();
        let (m, sd) = mean_sd(&eer);
        MethodResult {
            protocol: protocol.into(),
            method: method.into(),
            level: level.into(),
            impostors: impostors.into(),
            people: eer.len(),
            eer_mean: m,
            eer_sd: sd,
            far_at_frr5: mean_sd(&far).0,
            frr_at_far1: mean_sd(&frr).0,
            pooled_eer: error_rates(&pooled_g, &pooled_i).map_or(f64::NAN, |r| r.eer),
            per_person_eer: eer,
            det: super::report::thin_det(&pooled_g, &pooled_i),
            operating_points: Vec::new(),
        }
    }
}

fn vectors(s: &[&Sample]) -> Vec<Vec<f32>> {
    Person::vectors(s)
}

fn as_f64(rows: &[Vec<f32>], c: crate::transform::Compression) -> Vec<Vec<f64>> {
    rows.iter()
        .map(|r| r.iter().map(|&x| c.apply(x as f64)).collect())
        .collect()
}

/// The one-class protocol with the classic detectors.
pub fn one_class(
    pop: &Population,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<MethodResult>, ModelError> {
    if pop.people.len() < 2 {
        return Err(ModelError::Data(
            "the one-class protocol needs at least 2 people".into(),
        ));
    }
    let none = crate::transform::Compression::None;
    let ours = compression_for(pop.factor);
    let firsts: Vec<Vec<Vec<f32>>> = pop
        .people
        .iter()
        .map(|p| p.samples.iter().take(5).map(|s| s.vector.clone()).collect())
        .collect();
    let (mut sm, mut mnn, mut robust) = (Scores::default(), Scores::default(), Scores::default());
    for (k, p) in pop.people.iter().enumerate() {
        let h = p.samples.len() / 2;
        let train: Vec<Vec<f32>> = p.samples[..h].iter().map(|s| s.vector.clone()).collect();
        let test: Vec<Vec<f32>> = p.samples[h..].iter().map(|s| s.vector.clone()).collect();
        let imp: Vec<Vec<f32>> = firsts
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != k)
            .flat_map(|(_, v)| v.iter().cloned())
            .collect();
        let score = |d: &dyn Detector, c| -> (Vec<f64>, Vec<f64>) {
            (
                as_f64(&test, c).iter().map(|x| d.score(x)).collect(),
                as_f64(&imp, c).iter().map(|x| d.score(x)).collect(),
            )
        };
        let raw = as_f64(&train, none);
        let d = ScaledManhattan::fit(&raw, Centre::Mean)?;
        let (g, i) = score(&d, none);
        sm.push(g, i);
        let d = MahalanobisNn::fit(&raw)?;
        let (g, i) = score(&d, none);
        mnn.push(g, i);
        let d = ScaledManhattan::fit(&as_f64(&train, ours), Centre::Median)?;
        let (g, i) = score(&d, ours);
        robust.push(g, i);
        progress(k + 1, pop.people.len());
    }
    let level = level_name(pop.factor);
    let imp = "first 5 of every other person";
    let robust_name = match ours {
        crate::transform::Compression::LogTime => "robust scaled Manhattan, log timings (ours)",
        crate::transform::Compression::None => "robust scaled Manhattan (ours)",
    };
    Ok(vec![
        sm.result(
            "one-class",
            "scaled Manhattan (Killourhy & Maxion)",
            level,
            imp,
        ),
        mnn.result("one-class", "nearest neighbour, Mahalanobis", level, imp),
        robust.result("one-class", robust_name, level, imp),
    ])
}

fn level_name(f: FactorKind) -> &'static str {
    match f {
        FactorKind::KeystrokeFixed => "entry",
        FactorKind::Gait => "window",
        FactorKind::KeystrokeFree => "block",
        FactorKind::Face => "image",
    }
}

/// Fold assignment: a seeded permutation of the people, fold `f` = every `folds`-th.
fn folds(n: usize, folds: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut perm: Vec<usize> = (0..n).collect();
    SplitMix64::new(seed).shuffle(&mut perm);
    (0..folds)
        .map(|f| perm.iter().skip(f).step_by(folds).copied().collect())
        .collect()
}

/// Mean score per session of a person's test vectors.
fn per_session(samples: &[&Sample], scores: &[f64]) -> Vec<f64> {
    let mut out: Vec<(u32, f64, usize)> = Vec::new();
    for (s, &v) in samples.iter().zip(scores) {
        match out.last_mut() {
            Some(last) if last.0 == s.group => {
                last.1 += v;
                last.2 += 1;
            }
            _ => out.push((s.group, v, 1)),
        }
    }
    out.into_iter().map(|(_, s, n)| s / n as f64).collect()
}

/// The population protocol. `progress` receives a line of text per stage and every
/// training step as `Stage`.
pub fn population(
    pop: &Population,
    cfg: &EvalConfig,
    progress: &mut dyn FnMut(usize, &Stage),
) -> Result<Vec<MethodResult>, ModelError> {
    if cfg.folds < 2 || cfg.folds > pop.people.len() {
        return Err(ModelError::Config(format!(
            "folds must be within 2..={} (the number of people)",
            pop.people.len()
        )));
    }
    let assignment = folds(pop.people.len(), cfg.folds, cfg.seed);
    let run = cfg.max_folds.unwrap_or(cfg.folds).min(cfg.folds);
    let gait = pop.factor == FactorKind::Gait;
    let mut fused = Scores::default();
    let mut fused5 = Scores::default();
    let mut fused_session = Scores::default();
    let mut detector_only = Scores::default();
    let mut embedding_only = Scores::default();
    let mut classic = Scores::default();
    let mut classic_session = Scores::default();
    let attempt_n = attempt_windows(pop.factor);
    let mut decided = Scores::default();
    let mut judged: [Vec<Judged>; 2] = Default::default();
    for (f, test_people) in assignment.iter().take(run).enumerate() {
        if test_people.len() < 2 {
            return Err(ModelError::Data(format!(
                "fold {f} has fewer than 2 people"
            )));
        }
        let train_people: Vec<usize> = (0..pop.people.len())
            .filter(|p| !test_people.contains(p))
            .collect();
        let (model, _) = build_model(pop, &train_people, &cfg.pipeline, &mut |s| progress(f, &s))?;
        decide_attempts(
            &model,
            pop,
            test_people,
            &cfg.pipeline.enrol,
            attempt_n,
            &mut decided,
            &mut judged,
        )?;
        let halves: Vec<(Vec<&Sample>, Vec<&Sample>)> = test_people
            .iter()
            .map(|&p| pop.people[p].halves())
            .collect();
        let tests: Vec<Vec<Vec<f64>>> = halves
            .iter()
            .map(|(_, b)| model.represent(&vectors(b)))
            .collect::<Result<_, _>>()?;
        let firsts: Vec<Vec<Vec<f64>>> = test_people
            .iter()
            .map(|&p| {
                let v: Vec<Vec<f32>> = pop.people[p]
                    .samples
                    .iter()
                    .take(5)
                    .map(|s| s.vector.clone())
                    .collect();
                model.represent(&v)
            })
            .collect::<Result<_, _>>()?;
        for (i, (enrol, _)) in halves.iter().enumerate() {
            let enrol_r = model.represent(&vectors(enrol))?;
            let t = model.enrol_represented(&enrol_r, model.background(), &cfg.pipeline.enrol)?;
            let score_all = |rows: &[Vec<f64>], s: &dyn Fn(&[f64]) -> f64| -> Vec<f64> {
                rows.iter().map(|r| s(r)).collect()
            };
            let others = |score: &dyn Fn(&[f64]) -> f64, set: &[Vec<Vec<f64>>]| -> Vec<f64> {
                set.iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .flat_map(|(_, rows)| score_all(rows, score))
                    .collect()
            };
            let llr = |r: &[f64]| model.calibrate(&t, model.raw_score(&t, r)).llr;
            let g = score_all(&tests[i], &llr);
            fused.push(g.clone(), others(&llr, &tests));
            if gait {
                let imp_s: Vec<f64> = halves
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .flat_map(|(j, (_, b))| per_session(b, &score_all(&tests[j], &llr)))
                    .collect();
                fused_session.push(per_session(&halves[i].1, &g), imp_s);
            } else {
                fused5.push(g, others(&llr, &firsts));
            }
            let det = |r: &[f64]| t.detector.score(&r[..model.dim()]);
            detector_only.push(score_all(&tests[i], &det), others(&det, &tests));
            let centroid = centroid(&enrol_r, model.dim());
            let cos = |r: &[f64]| {
                r[model.dim()..]
                    .iter()
                    .zip(&centroid)
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
            };
            embedding_only.push(score_all(&tests[i], &cos), others(&cos, &tests));
            // The classic baseline under the same split: CMU scaled Manhattan on the
            // untransformed features.
            let raw = |s: &[&Sample]| as_f64(&vectors(s), crate::transform::Compression::None);
            let sm = ScaledManhattan::fit(&raw(enrol), Centre::Mean)?;
            let sms = |s: &[&Sample]| raw(s).iter().map(|x| sm.score(x)).collect::<Vec<f64>>();
            let g = sms(&halves[i].1);
            let imp: Vec<f64> = halves
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .flat_map(|(_, (_, b))| sms(b))
                .collect();
            classic.push(g.clone(), imp);
            if gait {
                let imp_s: Vec<f64> = halves
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .flat_map(|(_, (_, b))| per_session(b, &sms(b)))
                    .collect();
                classic_session.push(per_session(&halves[i].1, &g), imp_s);
            }
        }
    }
    let proto = format!("population, {}-fold over people ({run} run)", cfg.folds);
    let level = level_name(pop.factor);
    let second = "second halves of the other held-out people";
    let mut out = vec![fused.result(
        &proto,
        "tacit: fused template (calibrated LLR)",
        level,
        second,
    )];
    if gait {
        out.push(fused_session.result(
            &proto,
            "tacit: fused template (calibrated LLR)",
            "session",
            second,
        ));
    } else {
        out.push(fused5.result(
            &proto,
            "tacit: fused template (calibrated LLR)",
            level,
            "first 5 of the other held-out people",
        ));
    }
    let mut decision = decided.result(
        &proto,
        "tacit: decision (attempt calibration)",
        &format!("attempt of {attempt_n}"),
        "later sessions of the other held-out people",
    );
    decision.operating_points = operating_points(&judged[0], &judged[1]);
    out.push(decision);
    out.push(detector_only.result(&proto, "component: robust scaled Manhattan", level, second));
    out.push(embedding_only.result(
        &proto,
        "component: embedding cosine to enrolment mean",
        level,
        second,
    ));
    out.push(classic.result(
        &proto,
        "baseline: scaled Manhattan (one-class)",
        level,
        second,
    ));
    if gait {
        out.push(classic_session.result(
            &proto,
            "baseline: scaled Manhattan (one-class)",
            "session",
            second,
        ));
    }
    Ok(out)
}

/// Windows (entries) per authentication attempt in the evaluation: about what a phone
/// sends in one authentication (a minute of walking gives ~20 gait windows, of which
/// the gateway scores the newest 16; a login types the phrase a handful of times).
pub fn attempt_windows(factor: FactorKind) -> usize {
    match factor {
        FactorKind::Gait => 16,
        FactorKind::KeystrokeFixed | FactorKind::KeystrokeFree => 5,
        // An authentication takes a few frames.
        FactorKind::Face => 3,
    }
}

/// The decision's realised rates for a model on people it never saw.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Judgement {
    /// Realised rates at [`super::metrics::TARGET_FARS`], pooled over the people.
    pub operating_points: Vec<super::metrics::OperatingPoint>,
    /// Pooled equal error rate of the attempt LLRs (`None`: no genuine or no impostor
    /// attempt).
    pub eer: Option<f64>,
    /// People who could enrol.
    pub people: usize,
}

/// Judges `model` on `people` of `pop` (held out from its training) exactly as the
/// evaluation's decision row does: each enrols like a user, every later session is cut
/// into attempts of [`attempt_windows`] windows, each accepted at a target when its
/// estimated FAR is at most the target.
pub fn judge(
    model: &crate::template::FactorModel,
    pop: &Population,
    people: &[usize],
    enrol: &crate::template::EnrolConfig,
) -> Result<Judgement, ModelError> {
    if people.iter().any(|&p| p >= pop.people.len()) {
        return Err(ModelError::Data("person index out of range".into()));
    }
    let mut scores = Scores::default();
    let mut judged: [Vec<Judged>; 2] = Default::default();
    decide_attempts(
        model,
        pop,
        people,
        enrol,
        attempt_windows(pop.factor),
        &mut scores,
        &mut judged,
    )?;
    let eer = error_rates(&scores.genuine.concat(), &scores.impostor.concat()).map(|r| r.eer);
    Ok(Judgement {
        operating_points: operating_points(&judged[0], &judged[1]),
        eer,
        people: scores.genuine.len(),
    })
}

/// The decision as deployed, on held-out people: each enrols like a user (the first
/// `full_samples` vectors of their earliest sessions, [`split_sessions`]); every later
/// session of every held-out person is cut into attempts of up to `n` windows, scored,
/// calibrated as one attempt and judged by the fusion's own rule (its estimated FAR).
/// Genuine = a person's own attempts; impostor = everyone else's.
fn decide_attempts(
    model: &crate::template::FactorModel,
    pop: &Population,
    people: &[usize],
    enrol: &crate::template::EnrolConfig,
    n: usize,
    scores: &mut Scores,
    judged: &mut [Vec<Judged>; 2],
) -> Result<(), ModelError> {
    let mut templates = Vec::new();
    let mut tests = Vec::new();
    for &p in people {
        let (e, sessions) = split_sessions(&pop.people[p].samples, |s| s.group, enrol.full_samples);
        let t = if e.len() >= enrol.min_samples {
            Some(model.enrol(&vectors(&e), enrol)?)
        } else {
            None
        };
        templates.push(t);
        let reps: Vec<Vec<Vec<f64>>> = sessions
            .iter()
            .map(|s| model.represent(&vectors(s)))
            .collect::<Result<_, _>>()?;
        tests.push(reps);
    }
    let policy = FusionPolicy::default();
    for (i, t) in templates.iter().enumerate() {
        let Some(t) = t else { continue };
        let (mut g, mut imp) = (Vec::new(), Vec::new());
        for (j, sessions) in tests.iter().enumerate() {
            for session in sessions {
                for chunk in session.chunks(n.max(1)) {
                    let s: Vec<crate::template::Score> = chunk
                        .iter()
                        .map(|r| model.calibrate(t, model.raw_score(t, r)))
                        .collect();
                    let Some(a) = model.attempt(t, &s) else {
                        continue;
                    };
                    let fused = policy.fuse(
                        &[FactorEvidence {
                            factor: pop.factor.name().into(),
                            llr: a.llr,
                            windows: a.windows,
                            age_s: 0.0,
                            weight: 1.0,
                            impostor: a.impostor,
                        }],
                        0,
                    );
                    let k = usize::from(i != j);
                    judged[k].push((fused.estimated_far, fused.far_floor));
                    if i == j { &mut g } else { &mut imp }.push(a.llr);
                }
            }
        }
        scores.push(g, imp);
    }
    Ok(())
}

fn centroid(rows: &[Vec<f64>], skip: usize) -> Vec<f64> {
    let k = rows.first().map_or(0, |r| r.len() - skip);
    let mut c = vec![0.0; k];
    for r in rows {
        for (ci, x) in c.iter_mut().zip(&r[skip..]) {
            *ci += x;
        }
    }
    let n = c.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    c.iter().map(|x| x / n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_partition_the_people() {
        let f = folds(51, 5, 0);
        let mut all: Vec<usize> = f.concat();
        all.sort();
        assert_eq!(all, (0..51).collect::<Vec<_>>());
        assert!(f.iter().all(|x| x.len() == 10 || x.len() == 11));
        let s = [
            Sample {
                group: 1,
                vector: vec![],
            },
            Sample {
                group: 1,
                vector: vec![],
            },
            Sample {
                group: 2,
                vector: vec![],
            },
        ];
        let refs: Vec<&Sample> = s.iter().collect();
        assert_eq!(per_session(&refs, &[1.0, 3.0, 5.0]), vec![2.0, 5.0]);
    }
}
