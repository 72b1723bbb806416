//! The key property: a model trained on synthetic people 0..20 separates new synthetic
//! people 20..30 — with a realistic, not trivial, error rate — and mimicry raises an
//! impostor's scores.

use std::time::{Duration, Instant};

use tacit_features::factors::keystroke::fixed_text_vector;
use tacit_models::FactorKind;
use tacit_models::data::{Person as DataPerson, Population};
use tacit_models::embedding::ModelArtifact;
use tacit_models::template::{EnrolConfig, FactorModel};
use tacit_simulator::training::{gait_population, keystroke_population, train_model, verify};
use tacit_simulator::{CMU_KEYS, PopulationModel, SplitMix64};

#[test]
fn a_gait_model_separates_new_people() {
    let model = PopulationModel::default();
    let t = Instant::now();
    let train = gait_population(&model, 0..20, 4, 60.0);
    let test = gait_population(&model, 20..30, 4, 60.0);
    let t_data = t.elapsed();
    assert!(
        train.skipped.is_empty() && test.skipped.is_empty(),
        "{:?}",
        train.skipped
    );
    assert_eq!((train.people.len(), test.people.len()), (20, 10));
    let fewest = train.people.iter().map(|p| p.samples.len()).min();
    assert!(
        fewest >= Some(72),
        "fewest walking windows per person: {fewest:?}"
    );
    separates("gait", &train, &test, t_data);
}

#[test]
fn a_keystroke_model_separates_new_people() {
    let model = PopulationModel::default();
    let t = Instant::now();
    let train = keystroke_population(&model, 0..20, 80, CMU_KEYS);
    let test = keystroke_population(&model, 20..30, 80, CMU_KEYS);
    let t_data = t.elapsed();
    // 31 timings, 11 pressures, 11 areas: the simulated keys carry touch.
    assert_eq!((train.schema_version, train.dim), (2, 53));
    assert!(train.skipped.is_empty());
    assert!(train.people.iter().all(|p| p.samples.len() == 80));
    separates("keystroke", &train, &test, t_data);
}

/// Trains on `train`, verifies the 10 unseen people of `test` and checks that the
/// error rate is realistic: neither trivial nor useless.
fn separates(factor: &str, train: &Population, test: &Population, t_data: Duration) {
    let t = Instant::now();
    let artifact = train_model(train, 150, 1).expect("train");
    let t_train = t.elapsed();
    let t = Instant::now();
    let v = verify(&artifact, test).expect("verify");
    eprintln!(
        "{factor}: data {t_data:.1?}, training {t_train:.1?}, verification {:.1?}: {v:?}",
        t.elapsed()
    );
    assert_eq!((v.people, v.not_enrolled), (10, 0));
    for (what, eer) in [("mean", v.eer_mean), ("pooled", v.eer_pooled)] {
        assert!((0.005..=0.25).contains(&eer), "{factor} {what} EER {eer}");
    }
}

#[test]
fn mimicry_raises_an_impostors_scores() {
    let model = PopulationModel::default();
    let train = keystroke_population(&model, 0..20, 60, CMU_KEYS);
    let bytes = train_model(&train, 100, 2).expect("train");
    let fm = FactorModel::from_artifact(&ModelArtifact::from_bytes(&bytes).expect("artifact"))
        .expect("model");
    let victim = model.person(40);
    let enrol = keystroke_population(&model, 40..41, 40, CMU_KEYS);
    let rows = DataPerson::vectors(&enrol.people[0].samples.iter().collect::<Vec<_>>());
    let template = fm
        .enrol(&rows, &EnrolConfig::for_factor(FactorKind::KeystrokeFixed))
        .expect("enrol");
    let mean_llr = |strength: f64| {
        let attacker = model.person(41).mimic(&victim, strength);
        let mut rng = SplitMix64::new(7);
        let rows: Vec<Vec<f32>> = (0..40)
            .map(|e| {
                let ev = attacker.type_phrase(CMU_KEYS, e * 10_000_000_000, &mut rng);
                let v = fixed_text_vector(&ev, CMU_KEYS).expect("features");
                v.values.iter().map(|&x| x as f32).collect()
            })
            .collect();
        let s = fm.score(&template, &rows).expect("score");
        s.iter().map(|s| s.llr).sum::<f64>() / s.len() as f64
    };
    let (none, half, full) = (mean_llr(0.0), mean_llr(0.5), mean_llr(1.0));
    eprintln!("mimicry: mean LLR {none:.2} (none), {half:.2} (0.5), {full:.2} (1.0)");
    assert!(none < half && half < full, "{none} {half} {full}");
}
