//! Population models trained on what phones uploaded: the training set read back from a
//! real store (SQLite + feature objects, encrypted at rest) holds exactly the consenting
//! users, each split into sessions; `tacit-backend train --from-store` trains on it.

#[path = "support/gait.rs"]
mod gait;
#[path = "support/uploads.rs"]
mod uploads;

use std::path::Path;
use std::process::Command;

use gait::gait_population_of;
use tacit_backend::settings::Settings;
use tacit_backend::store::Store;
use tacit_backend::training::{StoreTrainingOptions, population_from_store};
use tacit_models::FactorKind;
use tacit_models::embedding::ModelArtifact;

const DAY: u64 = 24 * 3600 * 1000;
const T0: u64 = 1_800_000_000_000;

fn settings(dir: &Path) -> Settings {
    Settings {
        data_dir: dir.join("tacit-data"),
        ..Settings::default()
    }
}

/// Stores person `p` of the synthetic gait population as `user`: one envelope per
/// recording session, a day apart.
async fn upload(store: &dyn Store, user: &str, p: usize, n: u8) {
    let pop = gait_population_of(14);
    uploads::add_user(store, user, usize::from(n), T0).await;
    uploads::upload_gait(store, user, usize::from(n), &pop.people[p], 0..4, T0, DAY).await;
}

/// 12 users uploaded; 10 consented, one of those is then deleted and one withdraws.
async fn world(dir: &Path) -> Settings {
    let s = settings(dir);
    let key = s.at_rest_key_file().expect("at rest is on by default");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    tacit_backend::store::at_rest::AtRestKeys::generate(&key).unwrap();
    let store = tacit_backend::server::open_store(&s).await.unwrap();
    for p in 0..12 {
        let user = format!("user-{p:02}");
        upload(&*store, &user, p, p as u8 + 1).await;
        if p < 10 {
            assert!(store.set_training_consent(&user, true).await.unwrap());
        }
    }
    store.delete_user("user-09").await.unwrap();
    store.set_training_consent("user-08", false).await.unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_training_set_holds_the_consenting_users_in_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let s = world(dir.path()).await;
    let store = tacit_backend::server::open_store(&s).await.unwrap();
    // The objects are encrypted at rest: the set is read through the key.
    let objects = store.list_feature_objects("user-00").await.unwrap();
    let raw = store.objects().read_raw(&objects[0]).await.unwrap();
    assert!(tacit_backend::store::at_rest::is_encrypted(&raw));

    let mut calls = 0;
    let set = population_from_store(
        &*store,
        &StoreTrainingOptions::for_factor(FactorKind::Gait),
        &mut |_, total| {
            calls += 1;
            assert_eq!(total, 8);
        },
    )
    .await
    .unwrap();
    assert_eq!(calls, 8);
    assert_eq!(set.consenting_users, 8);
    let ids: Vec<&str> = set
        .population
        .people
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(
        ids,
        (0..8).map(|p| format!("user-{p:02}")).collect::<Vec<_>>()
    );
    assert_eq!(set.windows, 8 * 60);
    assert_eq!(set.group.schema_version, 1);
    assert_eq!(set.group.dim, gait::GAIT_DIM);
    assert_eq!(set.data_window_ms, Some((T0, T0 + 3 * DAY + 14 * 5_000)));
    let pop = gait_population_of(14);
    for (i, person) in set.population.people.iter().enumerate() {
        let groups: Vec<u32> = person.samples.iter().map(|s| s.group).collect();
        let want: Vec<u32> = pop.people[i].samples.iter().map(|s| s.group).collect();
        assert_eq!(groups, want, "sessions of {}", person.id);
        let vectors: Vec<&Vec<f32>> = person.samples.iter().map(|s| &s.vector).collect();
        let uploaded: Vec<&Vec<f32>> = pop.people[i].samples.iter().map(|s| &s.vector).collect();
        assert_eq!(vectors, uploaded, "values of {}", person.id);
    }

    // Bounded: a sample of the consenting people, each with at most so many windows,
    // evenly over their time (every session stays).
    let bounded = population_from_store(
        &*store,
        &StoreTrainingOptions {
            max_people: 5,
            max_windows_per_person: 20,
            ..StoreTrainingOptions::for_factor(FactorKind::Gait)
        },
        &mut |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(bounded.consenting_users, 8);
    assert_eq!(bounded.population.people.len(), 5);
    assert_eq!(bounded.windows, 5 * 20);
    assert!(
        bounded.population.source.contains("a sample of 5 of 8"),
        "{}",
        bounded.population.source
    );
    for person in &bounded.population.people {
        let mut groups: Vec<u32> = person.samples.iter().map(|s| s.group).collect();
        groups.dedup();
        assert_eq!(groups.len(), 4, "every session of {} kept", person.id);
    }

    // Nobody consenting with keystrokes: a clear error, not an empty model.
    let err = population_from_store(
        &*store,
        &StoreTrainingOptions::for_factor(FactorKind::KeystrokeFixed),
        &mut |_, _| {},
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("training-consent"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn train_from_store_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let s = world(dir.path()).await;
    let out = dir.path().join("gait-store.tcm");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tacit-backend"))
            .arg("train")
            .args(extra)
            .env("TACIT_DATA_DIR", &s.data_dir)
            .env("TACIT_LOG", "warn")
            .output()
            .unwrap()
    };
    let o = run(&[
        "--from-store",
        "--factor",
        "gait",
        "--steps",
        "40",
        "--calibration-folds",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("training set: 8 consenting users, 8 with enough gait windows"),
        "{stdout}"
    );
    let artifact = ModelArtifact::from_bytes(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(artifact.meta.factor, FactorKind::Gait);
    assert_eq!(artifact.meta.training.people, 8);
    assert_eq!(artifact.meta.training.samples, 8 * 60);
    assert!(
        artifact.meta.training.dataset.starts_with("store:"),
        "{}",
        artifact.meta.training.dataset
    );

    // The registry from the command line: register and promote the artifact, list.
    let models = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tacit-backend"))
            .arg("models")
            .args(extra)
            .env("TACIT_DATA_DIR", &s.data_dir)
            .env("TACIT_LOG", "warn")
            .output()
            .unwrap()
    };
    let ok = |o: std::process::Output| {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "{text}");
        text
    };
    let add = ok(models(&[
        "add",
        "--factor",
        "gait",
        "--model",
        out.to_str().unwrap(),
        "--promote",
    ]));
    assert!(
        add.contains("registered gait v1") && add.contains("promoted gait v1"),
        "{add}"
    );
    let list = ok(models(&["list", "--factor", "gait"]));
    assert!(list.starts_with("* v1"), "{list}");
    let served = std::fs::read(s.data_dir.join("objects/models/gait.tcm")).unwrap();
    assert!(
        tacit_backend::store::at_rest::is_encrypted(&served),
        "the served artifact holds training windows: sealed at rest"
    );
    let o = models(&["rollback", "--factor", "gait"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no earlier promoted version"),
        "{o:?}"
    );
    // Eight people are too few to train and hold out a gate cohort: a clear error.
    let o = Command::new(env!("CARGO_BIN_EXE_tacit-backend"))
        .args(["retrain", "--factor", "gait", "--steps", "20"])
        .env("TACIT_DATA_DIR", &s.data_dir)
        .env("TACIT_LOG", "warn")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("training and the gate need at least 6 each"),
        "{err}"
    );

    // Misuse is a clear error: no factor, both sources, no consenting keystroke users.
    for (args, want) in [
        (vec!["--from-store", "--out", "x.tcm"], "--factor"),
        (
            vec![
                "--from-store",
                "--factor",
                "gait",
                "--data",
                "a.csv",
                "--out",
                "x.tcm",
            ],
            "cannot be used with",
        ),
        (
            vec![
                "--from-store",
                "--factor",
                "keystroke-fixed",
                "--out",
                "x.tcm",
            ],
            "no consenting user has keystroke",
        ),
    ] {
        let o = run(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}
