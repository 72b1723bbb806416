//! Touch features (fixed-text schema version 2) end to end on synthetic data: the
//! key-event CSV loader's layout choice and its robustness to odd entries, the
//! mismatch between a version-2 model and version-1 vectors, and the check that touch
//! habits lower the population protocol's error when timings alone barely separate
//! people.

mod synthetic;

use tacit_models::data::{Population, read_key_csv};
use tacit_models::embedding::TrainConfig;
use tacit_models::eval::{EvalConfig, MethodResult, population};
use tacit_models::pipeline::{PipelineConfig, build_model};
use tacit_models::template::EnrolConfig;
use tacit_models::{FactorKind, ModelError};

use synthetic::{KEYS, Layout, SyntheticTyping};

fn load(csv: &str) -> Result<Population, ModelError> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("keys.csv");
    std::fs::write(&path, csv).expect("write csv");
    read_key_csv(&path)
}

/// A small synthetic data set and the populations read from its file with the touch
/// columns and without them.
fn small(people: usize, entries_per_session: u32) -> (SyntheticTyping, Population, Population) {
    let data = SyntheticTyping {
        people,
        sessions: 2,
        entries_per_session,
        ..SyntheticTyping::default()
    };
    let touch = load(&data.csv(Layout::Touch)).expect("touch csv");
    let plain = load(&data.csv(Layout::Timings)).expect("plain csv");
    (data, touch, plain)
}

/// 10 keys: v1 = 28 timings; v2 = 28 timings + 10 pressures + 10 areas.
#[test]
fn the_loader_builds_v2_only_with_touch_on_every_row() {
    let (data, touch, plain) = small(4, 5);
    assert_eq!((touch.schema_version, touch.dim), (2, 5 * KEYS - 2));
    assert_eq!((plain.schema_version, plain.dim), (1, 3 * KEYS - 2));
    assert!(touch.source.contains("schema v2"), "{}", touch.source);
    assert_eq!(touch.samples(), 40);
    for (a, b) in touch.people.iter().zip(&plain.people) {
        for (x, y) in a.samples.iter().zip(&b.samples) {
            assert_eq!(x.vector.len(), touch.dim);
            // The v2 vector starts with the v1 vector of the same entry.
            assert_eq!(&x.vector[..plain.dim], &y.vector[..]);
            assert!(
                x.vector[plain.dim..]
                    .iter()
                    .all(|v| (0.0..=1.0).contains(v))
            );
        }
    }
    // One row without an area: the whole file falls back to v1, and says why.
    let mut csv = data.csv(Layout::Touch);
    let line = csv.lines().nth(7).expect("a row").to_string();
    let cut = line.rsplit_once(',').expect("area column").0.to_string() + ",";
    csv = csv.replacen(&line, &cut, 1);
    let partial = load(&csv).expect("partial touch csv");
    assert_eq!((partial.schema_version, partial.dim), (1, 3 * KEYS - 2));
    assert_eq!(partial.samples(), 40);
    assert!(
        partial
            .source
            .contains("touch dropped (1 of 40 entries lack a usable pressure or area"),
        "{}",
        partial.source
    );
}

/// Entries with another key count than the phrase, or that the feature code refuses,
/// are skipped and counted; a huge session number, a person with very many entries and
/// a tie between entry lengths do not panic; only a file with nothing usable fails.
#[test]
fn odd_entries_are_skipped_and_counted_not_fatal() {
    let (data, ..) = small(3, 4);
    let mut csv = data.csv(Layout::Touch);
    // Two entries missing a key, one with an extra key, one with a key up before down.
    let header = "user,session,sample,key,down_ms,up_ms,pressure,area\n";
    let mut extra = String::new();
    for (user, session, sample, keys) in [("p0", 9, 1, KEYS - 1), ("p1", 9, 2, KEYS - 1)] {
        for k in 0..keys {
            let down = 1000.0 * sample as f64 + 200.0 * k as f64;
            extra.push_str(&format!(
                "{user},{session},{sample},a,{down},{},0.5,0.1\n",
                down + 80.0
            ));
        }
    }
    for k in 0..=KEYS {
        let down = 200.0 * k as f64;
        extra.push_str(&format!("p2,9,3,a,{down},{},0.5,0.1\n", down + 80.0));
    }
    for k in 0..KEYS {
        let down = 200.0 * k as f64;
        let up = if k == 3 { down - 10.0 } else { down + 80.0 };
        extra.push_str(&format!("p2,9,4,a,{down},{up},0.5,0.1\n"));
    }
    // A session number at the top of the range and a person with many entries.
    for sample in 0..300u32 {
        for k in 0..KEYS {
            let down = 1e4 * f64::from(sample) + 200.0 * k as f64;
            extra.push_str(&format!(
                "busy,4294967295,{sample},a,{down},{},0.4,0.08\n",
                down + 90.0
            ));
        }
    }
    csv.push_str(&extra);
    let pop = load(&csv).expect("odd entries are not fatal");
    assert_eq!((pop.schema_version, pop.dim), (2, 5 * KEYS - 2));
    assert_eq!(pop.samples(), 3 * 8 + 300);
    let busy = pop.people.iter().find(|p| p.id == "busy").expect("busy");
    assert_eq!(busy.samples.len(), 300);
    assert!(busy.samples.iter().all(|s| s.group == u32::MAX));
    let all = pop.skipped.join("\n");
    assert!(
        all.contains("3 entries skipped for a key count other than the phrase's 10")
            && all.contains("user p0, session 9, sample 1 has 9")
            && all.contains("1 entries skipped as unusable: user p2, session 9, sample 4"),
        "{all}"
    );

    // A tie between two entry lengths: the longer is the phrase, deterministically.
    let mut tie = String::from(header);
    for (sample, keys) in [(1, 4), (2, 4), (3, 5), (4, 5)] {
        for k in 0..keys {
            let down = 1000.0 * f64::from(sample) + 200.0 * k as f64;
            tie.push_str(&format!("u,1,{sample},a,{down},{},0.3,0.05\n", down + 70.0));
        }
    }
    let pop = load(&tie).expect("a tie is not fatal");
    assert_eq!((pop.samples(), pop.dim), (2, 5 * 5 - 2));
    assert!(
        pop.skipped[0].starts_with("2 entries skipped for a key count other than the phrase's 5")
    );

    // Nothing usable: an error that says why.
    let mut none = String::from(header);
    for k in 0..3 {
        none.push_str(&format!("u,1,1,a,{},{},0.3,0.05\n", 100 * k, 100 * k - 50));
    }
    let e = load(&none).expect_err("nothing usable").to_string();
    assert!(
        e.contains("no usable entries") && e.contains("key-up before key-down"),
        "{e}"
    );
}

/// A model trained on v2 vectors refuses v1 vectors (and the reverse) with a dimension
/// error at enrolment and at scoring — never a panic or a score. The artifact's
/// `check_for`, what a factor service runs on load, names both versions.
#[test]
fn a_model_refuses_vectors_of_the_other_layout() {
    let (_, v2, v1) = small(8, 15);
    let cfg = fast_pipeline(40);
    let people: Vec<usize> = (0..6).collect();
    for (train, other) in [(&v2, &v1), (&v1, &v2)] {
        let (model, artifact) = build_model(train, &people, &cfg, &mut |_| {}).expect("model");
        let rows = |pop: &Population| -> Vec<Vec<f32>> {
            pop.people[7]
                .samples
                .iter()
                .map(|s| s.vector.clone())
                .collect()
        };
        let e = model
            .enrol(&rows(other), &cfg.enrol)
            .expect_err("other layout");
        assert!(matches!(e, ModelError::Dimension { .. }), "{e}");
        let t = model.enrol(&rows(train), &cfg.enrol).expect("own layout");
        let e = model.score(&t, &rows(other)).expect_err("other layout");
        assert!(matches!(e, ModelError::Dimension { .. }), "{e}");
        let e = artifact
            .check_for(FactorKind::KeystrokeFixed, other.schema_version, other.dim)
            .expect_err("other layout")
            .to_string();
        assert!(
            e.contains(&format!("schema v{}", train.schema_version))
                && e.contains(&format!("features are v{}", other.schema_version)),
            "{e}"
        );
        artifact
            .check_for(FactorKind::KeystrokeFixed, train.schema_version, train.dim)
            .expect("own layout");
    }
}

/// The check: 30 people whose timings differ only weakly but whose touch habits are
/// their own. The population protocol's tacit row must be clearly better with the
/// touch columns than without; a touch path that loses or scrambles the values fails
/// the margin (measured: see EVALUATION.md, "Touch features").
#[test]
fn touch_habits_lower_the_population_error() {
    let data = SyntheticTyping::default();
    let eer = |layout: Layout| -> (f64, f64) {
        let pop = load(&data.csv(layout)).expect("csv");
        assert_eq!(pop.people.len(), 30);
        let cfg = EvalConfig {
            folds: 5,
            max_folds: None,
            seed: 1,
            pipeline: fast_pipeline(60),
        };
        let rows = population(&pop, &cfg, &mut |_, _| {}).expect("population protocol");
        let r: &MethodResult = rows
            .iter()
            .find(|r| r.method.starts_with("tacit: fused template") && r.level == "entry")
            .expect("tacit row");
        (r.pooled_eer, r.eer_mean)
    };
    let (touch_pooled, touch_mean) = eer(Layout::Touch);
    let (plain_pooled, plain_mean) = eer(Layout::Timings);
    eprintln!(
        "tacit fused template, 5 folds: pooled EER {plain_pooled:.4} → {touch_pooled:.4}, \
         mean EER {plain_mean:.4} → {touch_mean:.4} (timings → timings + touch)"
    );
    // Timings alone are weak by construction; touch must at least halve the error.
    assert!(plain_pooled > 0.15, "timings alone: {plain_pooled}");
    assert!(
        touch_pooled < 0.5 * plain_pooled && touch_mean < 0.5 * plain_mean,
        "touch {touch_pooled}/{touch_mean} vs timings {plain_pooled}/{plain_mean}"
    );
}

/// The factor's default pipeline with a small, quick network.
fn fast_pipeline(steps: usize) -> PipelineConfig {
    PipelineConfig {
        train: TrainConfig {
            hidden: 32,
            embedding: 16,
            batch: 64,
            steps,
            ..TrainConfig::default()
        },
        enrol: EnrolConfig::for_factor(FactorKind::KeystrokeFixed),
        ..PipelineConfig::for_factor(FactorKind::KeystrokeFixed)
    }
}
