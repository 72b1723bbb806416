//! Model artifacts, enrolment rules and scoring on a synthetic population (fast; the
//! real-data accuracy lives in real_data.rs).

use tacit_models::data::{Person, Population, Sample};
use tacit_models::embedding::{ModelArtifact, TrainConfig};
use tacit_models::pipeline::{PipelineConfig, build_model};
use tacit_models::template::{EnrolConfig, FactorModel};
use tacit_models::{FactorKind, ModelError, SplitMix64};

/// People whose vectors scatter around a personal centre.
fn synthetic(people: usize, per_person: usize, dim: usize, seed: u64) -> Population {
    let mut rng = SplitMix64::new(seed);
    let people = (0..people)
        .map(|p| {
            let centre: Vec<f64> = (0..dim).map(|_| rng.normal()).collect();
            Person {
                id: format!("p{p}"),
                samples: (0..per_person)
                    .map(|i| Sample {
                        group: (i * 4 / per_person) as u32,
                        vector: centre
                            .iter()
                            .map(|c| (c + 0.5 * rng.normal()) as f32)
                            .collect(),
                    })
                    .collect(),
            }
        })
        .collect();
    Population {
        factor: FactorKind::Gait,
        schema_version: 1,
        dim,
        people,
        source: "synthetic".into(),
        skipped: vec![],
    }
}

fn quick() -> PipelineConfig {
    let mut c = PipelineConfig::for_factor(FactorKind::Gait);
    c.train = TrainConfig {
        steps: 60,
        batch: 64,
        hidden: 32,
        embedding: 8,
        ..TrainConfig::default()
    };
    c.enrol = EnrolConfig {
        min_samples: 6,
        full_samples: 16,
        ..EnrolConfig::for_factor(FactorKind::Gait)
    };
    c
}

#[test]
fn artifact_round_trip_is_exact_and_training_is_reproducible() {
    let pop = synthetic(12, 40, 10, 1);
    let people: Vec<usize> = (0..10).collect();
    let (model, artifact) = build_model(&pop, &people, &quick(), &mut |_| {}).unwrap();
    let (again_model, again) = build_model(&pop, &people, &quick(), &mut |_| {}).unwrap();
    // Same seed, same model: identical header (loss curve, calibration, cohort) and
    // identical embeddings. (The weight records differ only in burn's random parameter ids.)
    assert_eq!(
        artifact.meta.training, again.meta.training,
        "same seed, same training"
    );
    assert_eq!(artifact.meta.calibration, again.meta.calibration);
    assert!(artifact.meta == again.meta, "same seed, same header");
    let probe = model
        .represent(&[pop.people[11].samples[0].vector.clone()])
        .unwrap();
    let probe2 = again_model
        .represent(&[pop.people[11].samples[0].vector.clone()])
        .unwrap();
    assert!(probe == probe2, "same seed, same embeddings");
    assert_eq!(artifact.meta.training.calibration_people, 10);
    assert!(artifact.meta.training.stats.final_loss < artifact.meta.training.stats.first_loss);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gait.tcm");
    artifact.save(&path).unwrap();
    let loaded = ModelArtifact::load(&path).unwrap();
    assert!(
        loaded.meta.transform == artifact.meta.transform,
        "transform"
    );
    assert!(
        loaded.meta.background == artifact.meta.background,
        "background"
    );
    assert!(loaded.meta.training == artifact.meta.training, "training");
    assert!(
        loaded.meta.calibration == artifact.meta.calibration,
        "calibration"
    );
    assert!(loaded == artifact, "round trip");
    let reloaded = FactorModel::from_artifact(&loaded).unwrap();

    // An unseen person (10) enrols; their own later vectors outscore person 11's.
    let enrol = Person::vectors(&pop.people[10].samples.iter().take(20).collect::<Vec<_>>());
    let t = model.enrol(&enrol, &quick().enrol).unwrap();
    assert_eq!(t.is_fallback(), !artifact.meta.calibration.contrast_helps);
    let own = Person::vectors(&pop.people[10].samples.iter().skip(20).collect::<Vec<_>>());
    let other = Person::vectors(&pop.people[11].samples.iter().collect::<Vec<_>>());
    let a = model.score(&t, &own).unwrap();
    let b = reloaded.score(&t, &own).unwrap();
    assert_eq!(a, b, "a reloaded model scores identically");
    let mean =
        |v: &[tacit_models::template::Score]| v.iter().map(|s| s.llr).sum::<f64>() / v.len() as f64;
    let imp = model.score(&t, &other).unwrap();
    assert!(
        mean(&a) > 0.0 && mean(&imp) < 0.0,
        "genuine {} impostor {}",
        mean(&a),
        mean(&imp)
    );

    // Templates serialise (they are stored by the backend) and hold no vectors.
    let json = serde_json::to_string(&t).unwrap();
    let back: tacit_models::template::Template = serde_json::from_str(&json).unwrap();
    assert_eq!(back, t);
}

#[test]
fn enrolment_rules_and_bad_input() {
    let pop = synthetic(8, 30, 6, 2);
    let people: Vec<usize> = (0..7).collect();
    let (model, artifact) = build_model(&pop, &people, &quick(), &mut |_| {}).unwrap();
    let v = Person::vectors(&pop.people[7].samples.iter().collect::<Vec<_>>());
    let cfg = quick().enrol;
    assert!(matches!(
        model.enrol(&v[..5], &cfg),
        Err(ModelError::NotEnoughData { have: 5, need: 6 })
    ));
    assert!(model.enrol(&v[..8], &cfg).unwrap().is_fallback());
    assert_eq!(
        model.enrol(&v[..16], &cfg).unwrap().is_fallback(),
        !artifact.meta.calibration.contrast_helps
    );
    let t = model.enrol(&v[..16], &cfg).unwrap();
    assert!(matches!(
        model.score(&t, &[vec![0.0; 5]]),
        Err(ModelError::Dimension {
            expected: 6,
            got: 5
        })
    ));
    let mut nan = v[0].clone();
    nan[2] = f32::NAN;
    assert!(matches!(
        model.score(&t, &[v[1].clone(), nan.clone()]),
        Err(ModelError::NotFinite { row: 1, index: 2 })
    ));
    assert!(matches!(
        model.enrol(&[nan], &cfg),
        Err(ModelError::NotFinite { .. })
    ));

    // The artifact refuses another factor, schema or width, and corrupt bytes.
    artifact.check_for(FactorKind::Gait, 1, 6).unwrap();
    for (f, v, d) in [
        (FactorKind::KeystrokeFixed, 1, 6),
        (FactorKind::Gait, 2, 6),
        (FactorKind::Gait, 1, 7),
    ] {
        let e = artifact.check_for(f, v, d).unwrap_err();
        assert!(matches!(e, ModelError::Artifact(_)), "{e}");
    }
    let bytes = artifact.to_bytes().unwrap();
    let mut bad_magic = bytes.clone();
    bad_magic[0] ^= 1;
    let mut bad_version = bytes.clone();
    bad_version[8] = 9;
    let mut bad_weights = bytes.clone();
    let n = bad_weights.len();
    bad_weights.truncate(n - 40);
    for (what, b) in [
        ("magic", bad_magic),
        ("version", bad_version),
        ("truncated", bytes[..20].to_vec()),
        ("weights", bad_weights),
        ("empty", vec![]),
    ] {
        let r = ModelArtifact::from_bytes(&b).and_then(|a| FactorModel::from_artifact(&a));
        assert!(matches!(r, Err(ModelError::Artifact(_))), "{what}: {r:?}");
    }
}

#[test]
fn triplet_loss_trains_too() {
    let pop = synthetic(8, 30, 6, 3);
    let mut cfg = quick();
    cfg.train.loss = tacit_models::embedding::Loss::Triplet;
    let people: Vec<usize> = (0..8).collect();
    let (_, a) = build_model(&pop, &people, &cfg, &mut |_| {}).unwrap();
    assert!(a.meta.training.stats.final_loss.is_finite());
    assert!(build_model(&pop, &people[..2], &cfg, &mut |_| {}).is_err());
}

#[test]
fn calibration_is_fitted_on_held_out_people_and_whole_attempts() {
    let pop = synthetic(30, 40, 10, 5);
    let people: Vec<usize> = (0..30).collect();
    let (model, artifact) = build_model(&pop, &people, &quick(), &mut |_| {}).unwrap();
    let c = &artifact.meta.calibration;
    // Three cross-fitting folds of 10: every training person calibrates once, scored by
    // a network (and background cohort) trained on the other 20, so no one is a
    // contrast negative or in the normalisation cohort of the network that judges them.
    // The kept network learns from all 30, and its cohort holds all of them (40 vectors
    // each, below the cohort's bound).
    assert_eq!(
        (c.people, artifact.meta.training.calibration_people),
        (30, 30)
    );
    assert_eq!(artifact.meta.training.people, 30);
    assert_eq!(artifact.meta.background.len(), 30 * 40);
    assert_eq!(c.full_samples, 16);
    // Sessions of 10 vectors: full templates enrol on sessions 1–2 and are judged on
    // attempts of 1..=10 windows of sessions 3–4; impostor attempts are ordered pairs
    // of people within one fold (both unseen by its network).
    assert_eq!(c.full.attempts.len(), 10);
    for (i, a) in c.full.attempts.iter().enumerate() {
        let n = i + 1;
        assert_eq!(a.windows, n);
        assert_eq!(a.genuine, 30 * 2 * (10 / n));
        assert_eq!(a.impostor.attempts(), (3 * 10 * 9 * 2 * (10 / n)) as u64);
    }
    assert!(!c.fallback.attempts.is_empty());
    assert!(c.checked_eer.iter().all(Option::is_some));
    // An attempt is scored with the calibration of its length and carries its histogram.
    let own = Person::vectors(&pop.people[0].samples.iter().collect::<Vec<_>>());
    let t = model.enrol(&own[..16], &quick().enrol).unwrap();
    let s = model.score(&t, &own[20..24]).unwrap();
    let a = model.attempt(&t, &s).unwrap();
    assert_eq!((a.windows, a.calibrated_windows), (4, 4));
    assert_eq!(a.impostor.as_ref(), Some(&c.full.attempts[3].impostor));
    let long = model.score(&t, &own[16..40]).unwrap();
    assert_eq!(model.attempt(&t, &long).unwrap().calibrated_windows, 10);

    // An artifact of the per-window format is refused with what to do.
    let mut old = artifact.to_bytes().unwrap();
    old[8..12].copy_from_slice(&1u32.to_le_bytes());
    let e = ModelArtifact::from_bytes(&old).unwrap_err().to_string();
    assert!(e.contains("retrain"), "{e}");
}
