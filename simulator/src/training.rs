//! Training and evaluation populations from synthetic people, built through the
//! phone's own feature code (`tacit_features::factors`), exactly as
//! `tacit_models::data` reads the real data sets: gait sessions go through
//! [`extract_gait`] and keep their walking windows; phrase entries go through
//! [`fixed_text_vector`] (timings, and the touch of every key: schema version 2 when the
//! population has touch habits). Plus a small, fast model training and a verification
//! check (enrol on the first half of each person's sessions, score the second halves).

use std::ops::Range;

use tacit_features::factors::gait::{GAIT_DIM, GaitConfig, extract_gait};
use tacit_features::factors::keystroke::fixed_text_vector;
use tacit_models::data::{Person as DataPerson, Population, Sample};
use tacit_models::embedding::{ModelArtifact, TrainConfig};
use tacit_models::eval::metrics::error_rates;
use tacit_models::pipeline::{PipelineConfig, build_model};
use tacit_models::template::{EnrolConfig, FactorModel};
use tacit_models::{FactorKind, ModelError};
use tacit_shared::schema::{
    KEYSTROKE_FIXED_TOUCH_V2, KEYSTROKE_FIXED_V1, fixed_text_dim, fixed_text_keys_in,
};

use crate::people::{Person, PopulationModel};
use crate::rng::{SplitMix64, derive};

/// Start of the synthetic recordings: 2026-01-01T00:00:00Z in Unix-epoch ns. Session
/// `s` of a person starts `s` days later.
pub const EPOCH_NS: i64 = 1_767_225_600_000_000_000;

/// One day in ns.
pub const DAY_NS: i64 = 86_400_000_000_000;

/// Sessions (days) over which [`keystroke_population`] spreads a person's entries.
pub const KEYSTROKE_SESSIONS: u32 = 4;

const TAG_GAIT_POP: u64 = 0x6A1B;
const TAG_KEYS_POP: u64 = 0x4E75;

/// Runs `f` for every person on up to 4 threads, keeping the order (results do not
/// depend on the number of threads: every person has their own seeded generator).
fn per_person<T: Send>(people: &[Person], f: impl Fn(&Person) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
        .min(people.len().max(1));
    let chunk = people.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = people
            .chunks(chunk)
            .map(|c| {
                let f = &f;
                scope.spawn(move || c.iter().map(f).collect::<Vec<T>>())
            })
            .collect();
        handles
            .into_iter()
            // A panic in `f` is a bug of this crate; re-raise it in the caller.
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

fn people_of(model: &PopulationModel, people: Range<usize>) -> Vec<Person> {
    people.map(|i| model.person(i as u64)).collect()
}

/// Gait vectors of `people`: each walks `seconds` in each of `sessions` sessions
/// (days); every walk goes through the phone's gait pipeline with the default
/// configuration and its walking windows become the person's samples, grouped by
/// session. Sessions without a walking window are listed in `skipped`.
pub fn gait_population(
    model: &PopulationModel,
    people: Range<usize>,
    sessions: u32,
    seconds: f64,
) -> Population {
    let persons = people_of(model, people);
    let rows = per_person(&persons, |p| {
        let mut samples = Vec::new();
        let mut skipped = Vec::new();
        for s in 0..sessions {
            let mut rng = SplitMix64::new(derive(p.seed, TAG_GAIT_POP, s as u64));
            let t0 = EPOCH_NS + s as i64 * DAY_NS;
            let motion = p.walk(seconds, t0, s, &mut rng);
            match extract_gait(&motion, GaitConfig::default()) {
                Ok((windows, _)) => {
                    let before = samples.len();
                    samples.extend(windows.iter().filter(|w| w.walking).map(|w| Sample {
                        group: s,
                        vector: w.features.iter().map(|&x| x as f32).collect(),
                    }));
                    if samples.len() == before {
                        skipped.push(format!("{} session {s}: no walking window", p.id()));
                    }
                }
                Err(e) => skipped.push(format!("{} session {s}: {e}", p.id())),
            }
        }
        (
            DataPerson {
                id: p.id(),
                samples,
            },
            skipped,
        )
    });
    assemble(
        FactorKind::Gait,
        GAIT_DIM,
        rows,
        format!(
            "tacit-simulator gait (population seed {:#x}, {sessions} sessions of {seconds} s)",
            model.seed
        ),
    )
}

/// A population from per-person rows: people without samples are left out, every
/// skipped input is listed.
fn assemble(
    factor: FactorKind,
    dim: usize,
    rows: Vec<(DataPerson, Vec<String>)>,
    source: String,
) -> Population {
    let mut skipped = Vec::new();
    let mut people = Vec::with_capacity(rows.len());
    for (person, s) in rows {
        skipped.extend(s);
        if !person.samples.is_empty() {
            people.push(person);
        }
    }
    Population {
        factor,
        schema_version: 1,
        dim,
        people,
        source,
        skipped,
    }
}

/// Fixed-phrase keystroke vectors of `people`: `entries_per_person` entries of a
/// phrase of `keys` keys each, spread evenly over [`KEYSTROKE_SESSIONS`] sessions
/// (fewer when there are fewer entries), through the phone's fixed-text feature code.
/// 11 keys gives the CMU layout (31 timings; 53 values with touch).
pub fn keystroke_population(
    model: &PopulationModel,
    people: Range<usize>,
    entries_per_person: usize,
    keys: usize,
) -> Population {
    let sessions = KEYSTROKE_SESSIONS.min(entries_per_person as u32).max(1);
    let per = entries_per_person.div_ceil(sessions as usize);
    let mut pop = keystroke_population_in_sessions(model, people, sessions, per, keys);
    for p in &mut pop.people {
        p.samples.truncate(entries_per_person);
    }
    pop
}

/// As [`keystroke_population`], with `entries_per_session` entries in each of
/// `sessions` sessions (days) per person.
pub fn keystroke_population_in_sessions(
    model: &PopulationModel,
    people: Range<usize>,
    sessions: u32,
    entries_per_session: usize,
    keys: usize,
) -> Population {
    let persons = people_of(model, people);
    // Simulated keys carry touch exactly when the population has touch habits, so one
    // layout holds for every entry (as on the phones).
    let version = if model.typing.touch.is_some() {
        KEYSTROKE_FIXED_TOUCH_V2
    } else {
        KEYSTROKE_FIXED_V1
    };
    let rows = per_person(&persons, |p| {
        let mut samples = Vec::new();
        let mut skipped = Vec::new();
        for s in 0..sessions {
            let mut rng = SplitMix64::new(derive(p.seed, TAG_KEYS_POP, s as u64));
            let mut typing = p.typing_session(s);
            let mut t = EPOCH_NS + s as i64 * DAY_NS;
            for e in 0..entries_per_session {
                let events = typing.entry(keys, t, &mut rng);
                match fixed_text_vector(&events, keys) {
                    Ok(v) if v.schema_version == version => samples.push(Sample {
                        group: s,
                        vector: v.values.iter().map(|&x| x as f32).collect(),
                    }),
                    Ok(v) => skipped.push(format!(
                        "{} session {s} entry {e}: schema v{}, the population is v{version}",
                        p.id(),
                        v.schema_version
                    )),
                    Err(err) => skipped.push(format!("{} session {s} entry {e}: {err}", p.id())),
                }
                t += 20_000_000_000;
            }
        }
        (
            DataPerson {
                id: p.id(),
                samples,
            },
            skipped,
        )
    });
    let mut pop = assemble(
        FactorKind::KeystrokeFixed,
        fixed_text_dim(version, keys).unwrap_or(0),
        rows,
        format!(
            "tacit-simulator typing (population seed {:#x}, {keys}-key phrase, \
             {sessions} sessions of {entries_per_session} entries)",
            model.seed
        ),
    );
    pop.schema_version = version;
    pop
}

/// The timings-only (schema version 1) view of a fixed-text population: a version-2
/// vector starts with the version-1 vector of the same entry, so this drops the touch
/// values. For comparisons with timing-only data (the CMU benchmark).
pub fn timings_only(mut pop: Population) -> Population {
    if pop.factor != FactorKind::KeystrokeFixed || pop.schema_version != KEYSTROKE_FIXED_TOUCH_V2 {
        return pop;
    }
    let Some(keys) = fixed_text_keys_in(KEYSTROKE_FIXED_TOUCH_V2, pop.dim) else {
        return pop;
    };
    let dim = 3 * keys - 2;
    for p in &mut pop.people {
        for s in &mut p.samples {
            s.vector.truncate(dim);
        }
    }
    pop.schema_version = KEYSTROKE_FIXED_V1;
    pop.dim = dim;
    pop
}

/// The small, fast training configuration of [`train_model`]: the factor's default
/// pipeline with a 32-wide network, 16-dimensional embedding, batches of 64, `steps`
/// optimiser steps, seed `seed`.
pub fn small_pipeline(factor: FactorKind, steps: usize, seed: u64) -> PipelineConfig {
    let mut cfg = PipelineConfig::for_factor(factor);
    cfg.train = TrainConfig {
        steps,
        batch: 64,
        hidden: 32,
        embedding: 16,
        seed,
        ..TrainConfig::default()
    };
    cfg
}

/// Trains a model on every person of `pop` with [`small_pipeline`] and returns the
/// model artifact's bytes (what the backend's factor service loads).
pub fn train_model(pop: &Population, steps: usize, seed: u64) -> Result<Vec<u8>, ModelError> {
    let people: Vec<usize> = (0..pop.people.len()).collect();
    let (_, artifact) = build_model(
        pop,
        &people,
        &small_pipeline(pop.factor, steps, seed),
        &mut |_| {},
    )?;
    artifact.to_bytes()
}

/// Verification error rates of a model on a population of people it was not trained on.
#[derive(Debug, Clone, PartialEq)]
pub struct Verification {
    /// People enrolled and tested.
    pub people: usize,
    /// People left out for having too few vectors to enrol.
    pub not_enrolled: usize,
    /// Mean of the per-person equal error rates.
    pub eer_mean: f64,
    /// Equal error rate of all scores pooled (one global threshold).
    pub eer_pooled: f64,
    /// Genuine scores.
    pub genuine: usize,
    /// Impostor scores.
    pub impostor: usize,
}

/// Enrols every person of `pop` on the first half of their sessions
/// ([`DataPerson::halves`]) with the factor's default enrolment rules; genuine scores
/// = their second half, impostor scores = every other person's second half. Scores
/// are the model's calibrated log-likelihood ratios.
pub fn verify(artifact: &[u8], pop: &Population) -> Result<Verification, ModelError> {
    let artifact = ModelArtifact::from_bytes(artifact)?;
    if artifact.meta.factor != pop.factor {
        return Err(ModelError::Data(format!(
            "model is for {}, population is {}",
            artifact.meta.factor, pop.factor
        )));
    }
    let model = FactorModel::from_artifact(&artifact)?;
    let cfg = EnrolConfig::for_factor(pop.factor);
    let mut templates = Vec::new();
    let mut tests = Vec::new();
    let mut not_enrolled = 0;
    for p in &pop.people {
        let (enrol, test) = p.halves();
        match model.enrol(&DataPerson::vectors(&enrol), &cfg) {
            Ok(t) => {
                templates.push(t);
                tests.push(model.represent(&DataPerson::vectors(&test))?);
            }
            Err(ModelError::NotEnoughData { .. }) => not_enrolled += 1,
            Err(e) => return Err(e),
        }
    }
    if templates.len() < 2 {
        return Err(ModelError::Data(format!(
            "verification needs at least 2 enrolled people, got {}",
            templates.len()
        )));
    }
    let (mut all_g, mut all_i) = (Vec::new(), Vec::new());
    let mut eers = Vec::new();
    for (i, t) in templates.iter().enumerate() {
        let score = |rows: &[Vec<f64>]| -> Vec<f64> {
            rows.iter()
                .map(|r| model.calibrate(t, model.raw_score(t, r)).llr)
                .collect()
        };
        let g = score(&tests[i]);
        let imp: Vec<f64> = tests
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .flat_map(|(_, rows)| score(rows))
            .collect();
        if let Some(r) = error_rates(&g, &imp) {
            eers.push(r.eer);
        }
        all_g.extend(g);
        all_i.extend(imp);
    }
    let pooled = error_rates(&all_g, &all_i)
        .ok_or_else(|| ModelError::Data("no genuine or impostor scores".into()))?;
    Ok(Verification {
        people: templates.len(),
        not_enrolled,
        eer_mean: eers.iter().sum::<f64>() / eers.len().max(1) as f64,
        eer_pooled: pooled.eer,
        genuine: all_g.len(),
        impostor: all_i.len(),
    })
}
