//! The learning loop on a real store (SQLite + feature objects, encrypted at rest) with
//! the in-process gait factor service: a population model trained from the consenting
//! users' uploads is judged by the gate, registered, promoted and picked up by the
//! factor service; templates of the old model are rebuilt (at the next authentication
//! or in the background) and never scored by the new one; a rollback works the same
//! way; and a candidate trained on poisoned uploads is refused by the gate.

#[path = "support/gait.rs"]
mod gait;
#[path = "support/uploads.rs"]
mod uploads;

use std::path::Path;
use std::time::Duration;

use tacit_backend::commands::{
    FactorChoice, ModelsCommand, RetrainArgs, TrainingArgs, models, retrain,
};
use tacit_backend::registry::{Manifest, Registry, TrainingData};
use tacit_backend::scoring::{Evidence, Factors, assess, enrol_user, rebuild_stale};
use tacit_backend::settings::Settings;
use tacit_backend::store::Store;
use tacit_models::FactorKind;
use tacit_models::data::Person;
use tacit_shared::api::FactorStatus;

const HOUR: u64 = 3600 * 1000;
const T0: u64 = 1_800_000_000_000;
/// Consenting users (their uploads train the candidates).
const USERS: usize = 50;
/// Synthetic people of the "research" model in service first: disjoint from the users.
const RESEARCH: std::ops::Range<usize> = 50..90;

fn settings(dir: &Path) -> Settings {
    let mut s = Settings {
        data_dir: dir.join("tacit-data"),
        ..Settings::default()
    };
    s.factor.model_poll_ms = 100;
    s
}

fn user(i: usize) -> String {
    format!("user-{i:03}")
}

async fn add_user(store: &dyn Store, i: usize) {
    uploads::add_user(store, &user(i), i, T0).await;
    store.set_training_consent(&user(i), true).await.unwrap();
}

/// Uploads the given sessions of `person` as user `i`, an hour apart.
async fn upload(store: &dyn Store, i: usize, person: &Person, sessions: std::ops::Range<u32>) {
    uploads::upload_gait(store, &user(i), i, person, sessions, T0, HOUR).await;
}

fn retrain_args() -> RetrainArgs {
    RetrainArgs {
        factor: FactorChoice::Gait,
        gate_share: 0.3,
        no_promote: false,
        json: None,
        training: TrainingArgs {
            steps: 80,
            seed: 1,
            loss: tacit_backend::commands::LossChoice::Proxy,
            device: "cpu".into(),
            calibration_folds: 2,
        },
    }
}

/// Waits until the in-process gait factor serves `version`.
async fn serving(factors: &Factors, version: &str) {
    let f = factors.get("gait").unwrap();
    for _ in 0..200 {
        if f.client.model_version().as_deref() == Some(version) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the factor still serves {:?}, not {version}",
        f.client.model_version()
    );
}

/// The gait template's model version of a user.
async fn built_with(store: &dyn Store, i: usize) -> Option<String> {
    store
        .templates(&user(i))
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.factor == "gait")
        .map(|t| t.built_with)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrain_gate_promote_rebuild_rollback_and_refuse_poison() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path());
    let key = s.at_rest_key_file().unwrap();
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    tacit_backend::store::at_rest::AtRestKeys::generate(&key).unwrap();
    let store = tacit_backend::server::open_store(&s).await.unwrap();
    let registry = Registry::new(store.objects().clone(), &s.factor.models_prefix);
    let pop = gait::gait_population_of(RESEARCH.end);

    // v1: the model trained elsewhere ("research data": people nobody here is).
    let research = gait::gait_model_of(&pop, &RESEARCH.collect::<Vec<_>>(), 1, 2);
    let v1 = registry
        .register(
            research,
            Manifest::draft(
                FactorKind::Gait,
                None,
                TrainingData {
                    source: "synthetic research people".into(),
                    consenting_users: 0,
                    train_people: RESEARCH.len(),
                    gate_people: 0,
                    gate_cohort: String::new(),
                    windows: RESEARCH.len() * 60,
                    data_window_ms: None,
                    schema_version: 1,
                    dim: gait::GAIT_DIM,
                },
                None,
            ),
        )
        .await
        .unwrap();
    registry
        .promote(FactorKind::Gait, v1.version, "manual")
        .await
        .unwrap();
    let factors = tacit_backend::server::embedded_factors(&s, store.objects())
        .await
        .unwrap();
    serving(&factors, &v1.model_version).await;

    // The users walk for two hours and enrol on them; later they walk twice more.
    for i in 0..USERS {
        add_user(&*store, i).await;
        upload(&*store, i, &pop.people[i], 0..2).await;
        let out = enrol_user(&*store, &factors, &s.auth, &user(i), Some(&["gait".into()]))
            .await
            .unwrap();
        assert_eq!(
            out[0].status,
            tacit_backend::scoring::EnrolStatus::Fallback,
            "{out:?}"
        );
        upload(&*store, i, &pop.people[i], 2..4).await;
    }
    assert_eq!(
        built_with(&*store, 0).await.as_deref(),
        Some(v1.model_version.as_str())
    );

    // v2: trained from the uploads, judged against v1 on 15 held-out users, promoted.
    let out = retrain(&*store, &registry, retrain_args()).await.unwrap();
    let gate = out.manifest.gate.clone().unwrap();
    assert!(out.promoted, "gate: {:?}", gate.reasons);
    assert_eq!(out.manifest.version, 2);
    assert_eq!(out.manifest.parent, Some(1));
    assert_eq!(out.manifest.data.gate_people, 15);
    assert_eq!(out.manifest.data.train_people, 35);
    assert!(
        gate.current.is_some(),
        "v1 reads these windows: judged against it"
    );
    let v2 = out.manifest;
    serving(&factors, &v2.model_version).await;

    // A user authenticating now: their v1 template is rebuilt first, from the windows
    // it was built from, and only then scored, by v2.
    let now = T0 + 3 * HOUR + 600_000;
    let answer = assess(&*store, &factors, &s.auth, &user(0), now, Evidence::Stored)
        .await
        .unwrap();
    let g = answer.factors.iter().find(|f| f.factor == "gait").unwrap();
    assert_eq!(g.status, FactorStatus::Scored, "{g:?}");
    assert_eq!(g.model_version.as_deref(), Some(v2.model_version.as_str()));
    assert_eq!(
        built_with(&*store, 0).await.as_deref(),
        Some(v2.model_version.as_str())
    );

    // Everyone else in the background, at the bounded rate: 20 per round here.
    let gait_f = factors.get("gait").unwrap();
    let mut rounds = 0;
    loop {
        let r = rebuild_stale(&*store, &factors, &s.auth, 20).await.unwrap();
        assert_eq!((r.dropped, r.deferred), (0, 0), "{r:?}");
        if r.rebuilt == 0 {
            break;
        }
        assert!(r.rebuilt <= 20);
        rounds += 1;
    }
    assert_eq!(rounds, 3, "49 templates at 20 per round");
    let current = gait_f.client.model_version().unwrap();
    assert!(
        store
            .stale_templates("gait", &current, 100)
            .await
            .unwrap()
            .is_empty(),
        "no template of v1 is left"
    );
    for i in 0..USERS {
        assert_eq!(
            built_with(&*store, i).await.as_deref(),
            Some(current.as_str())
        );
    }

    // Rollback: v1 in service again, the templates follow it.
    let (back, served) = registry.rollback(FactorKind::Gait).await.unwrap();
    assert_eq!(back, 1);
    assert_eq!(served.history.last().unwrap().reason, "rollback from v2");
    serving(&factors, &v1.model_version).await;
    let answer = assess(&*store, &factors, &s.auth, &user(1), now, Evidence::Stored)
        .await
        .unwrap();
    let g = answer.factors.iter().find(|f| f.factor == "gait").unwrap();
    assert_eq!(
        g.model_version.as_deref(),
        Some(v1.model_version.as_str()),
        "{g:?}"
    );
    registry
        .promote(FactorKind::Gait, 2, "manual")
        .await
        .unwrap();
    serving(&factors, &v2.model_version).await;

    // Poisoning: 40 more consenting accounts upload windows at the edges of the
    // schema's ranges (an attacker's crafted uploads): they swamp the feature scaling
    // every window is standardised with. The candidate trained on that is refused.
    let mut rng = tacit_models::SplitMix64::new(99);
    for i in USERS..USERS + 40 {
        add_user(&*store, i).await;
        let crafted = Person {
            id: user(i),
            samples: (0..60)
                .map(|k| tacit_models::data::Sample {
                    group: (k / 15) as u32,
                    vector: tacit_shared::schema::GAIT_V1
                        .iter()
                        .enumerate()
                        .map(|(j, d)| {
                            let edge = if (i + j + k).is_multiple_of(2) {
                                d.max
                            } else {
                                d.min
                            };
                            let jitter = 0.01 * (d.max - d.min) * rng.normal() as f32;
                            (edge + jitter).clamp(d.min, d.max)
                        })
                        .collect(),
                })
                .collect(),
        };
        upload(&*store, i, &crafted, 0..4).await;
    }
    let out = retrain(&*store, &registry, retrain_args()).await.unwrap();
    let gate = out.manifest.gate.clone().unwrap();
    assert!(
        !out.promoted,
        "a poisoned candidate was promoted: {:?}",
        gate.reasons
    );
    assert!(!gate.passed);
    assert_eq!(
        out.manifest.data.gate_cohort, "accounts older than the model in service",
        "the crafted accounts are not among the people the candidate is judged on"
    );
    assert!(
        gate.reasons
            .iter()
            .any(|r| r.contains("above 1.5× the target")),
        "{:?}",
        gate.reasons
    );
    assert_eq!(out.manifest.version, 3);
    let served = registry.served(FactorKind::Gait).await.unwrap();
    assert_eq!(served.current(), Some(2), "v2 stays in service");
    let list = registry.list(FactorKind::Gait).await.unwrap();
    assert_eq!(
        list.iter().map(|m| m.version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    eprintln!("poisoned candidate refused: {}", gate.reasons.join("; "));

    // The refused version cannot be promoted without saying so; forced, it can, and a
    // rollback puts v2 back.
    let promote = |force| ModelsCommand::Promote {
        factor: FactorChoice::Gait,
        version: 3,
        force,
    };
    let err = models(&registry, promote(false)).await.unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(
        registry.served(FactorKind::Gait).await.unwrap().current(),
        Some(2)
    );
    models(&registry, promote(true)).await.unwrap();
    assert_eq!(
        registry.served(FactorKind::Gait).await.unwrap().current(),
        Some(3)
    );
    models(
        &registry,
        ModelsCommand::Rollback {
            factor: FactorChoice::Gait,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        registry.served(FactorKind::Gait).await.unwrap().current(),
        Some(2)
    );
    // An unknown version, a gait artifact added as a keystroke model, a gate share out
    // of range: refused with a reason, nothing registered.
    let err = models(
        &registry,
        ModelsCommand::Promote {
            factor: FactorChoice::Gait,
            version: 99,
            force: true,
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("99"), "{err}");
    let file = dir.path().join("gait.tcm");
    std::fs::write(&file, registry.artifact(FactorKind::Gait, 2).await.unwrap()).unwrap();
    let err = models(
        &registry,
        ModelsCommand::Add {
            factor: FactorChoice::KeystrokeFixed,
            model: file,
            promote: true,
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("another factor"), "{err}");
    assert!(
        registry
            .list(FactorKind::KeystrokeFixed)
            .await
            .unwrap()
            .is_empty()
    );
    let err = retrain(
        &*store,
        &registry,
        RetrainArgs {
            gate_share: 0.9,
            ..retrain_args()
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("0.1..=0.5"), "{err}");
    assert_eq!(registry.list(FactorKind::Gait).await.unwrap().len(), 3);
}
