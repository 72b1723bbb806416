//! A small simulated world end to end (fixed seed): real clients, the backend in this
//! process behind a faulty network and restarted every day, two days of use, impostors
//! and attacks. What must hold in any world: nothing
//! lost or duplicated, replayed and tampered traffic never works, genuine users are
//! mostly accepted and zero-effort impostors mostly not.

use tacit_simulator::world::{WorldConfig, run};

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_world_keeps_every_envelope_and_refuses_the_attacks() {
    let cfg = WorldConfig {
        people: 10,
        days: 2,
        seed: 7,
        training_people: 30,
        training_steps: 200,
        impostor_rate: 1.0,
        mimic_rate: 0.5,
        parallel: 4,
        dir: std::env::temp_dir().join(format!("tacit-world-{}", std::process::id())),
        // The phones apart from the backend (in memory where /dev/shm is).
        phones_dir: Some(
            std::path::Path::new("/dev/shm")
                .canonicalize()
                .unwrap_or_else(|_| std::env::temp_dir())
                .join(format!("tacit-world-phones-{}", std::process::id())),
        ),
        ..WorldConfig::default()
    };
    let r = run(&cfg, &|_, _, _| {}).await.expect("run");
    println!("{}", r.table());
    support::attacks_failed_nothing_lost(&r);
    let phones_dir = cfg.phones_dir.as_ref().expect("set above");
    assert!(!cfg.dir.join("phones").exists());
    assert!(
        phones_dir
            .join(tacit_simulator::world::workdir::MARKER)
            .is_file()
    );
    // Inside each other (however spelt), or somebody's folder: refused before anything
    // is emptied.
    let someones = std::env::temp_dir().join(format!("tacit-world-home-{}", std::process::id()));
    std::fs::create_dir_all(&someones).expect("folder");
    std::fs::write(someones.join("notes.txt"), "mine").expect("file");
    for (phones, why) in [
        (cfg.dir.join("phones"), "apart from --dir"),
        (
            cfg.dir.join("backend").join("..").join("p"),
            "apart from --dir",
        ),
        // `..` after a folder that does not exist: --dir itself.
        (
            cfg.dir
                .parent()
                .expect("a parent")
                .join("tacit-no-such-folder")
                .join("..")
                .join(cfg.dir.file_name().expect("a name")),
            "apart from --dir",
        ),
        (someones.clone(), "not made by tacit-sim"),
    ] {
        let refused = WorldConfig {
            phones_dir: Some(phones.clone()),
            ..cfg.clone()
        };
        let refused = run(&refused, &|_, _, _| {})
            .await
            .expect_err("refused folders");
        assert!(
            refused.to_string().contains(why),
            "{}: {refused}",
            phones.display()
        );
        assert!(cfg.dir.join("backend").exists(), "emptied before refusing");
    }
    assert!(someones.join("notes.txt").is_file());
    let _ = std::fs::remove_dir_all(&someones);
    let _ = std::fs::remove_dir_all(phones_dir);
    // Through a faulty network and a backend restart every day.
    assert_eq!(r.restarts, u64::from(cfg.days));
    let n = &r.network;
    assert!(
        n.dropped_requests + n.dropped_responses + n.duplicated + n.garbage > 0,
        "{n:?}"
    );
    // A person whose phone misses many walking windows gets a fallback gait template.
    assert!(
        r.enrolled_fully * 10 >= cfg.people * 8,
        "{} fully enrolled",
        r.enrolled_fully
    );
    let genuine_accept = r.genuine[1] as f64 / r.genuine[0] as f64;
    let impostor_accept = r.impostor[1] as f64 / r.impostor[0] as f64;
    assert!(
        r.genuine[0] >= 40 && r.impostor[0] >= 20,
        "{:?} {:?}",
        r.genuine,
        r.impostor
    );
    assert!(
        genuine_accept >= 0.8,
        "genuine accept rate {genuine_accept}"
    );
    assert!(
        impostor_accept <= 0.2,
        "zero-effort accept rate {impostor_accept}"
    );
    let fused = r.rates.iter().find(|f| f.factor == "fused").expect("fused");
    assert!(fused.eer.is_some_and(|e| e < 0.2), "{fused:?}");
    // The JSON report carries the same numbers.
    let v: serde_json::Value = serde_json::to_value(&r).expect("json");
    assert_eq!(v["envelopes"]["lost"], 0);
    // The operating points, under the keys scripts check (EVALUATION.md).
    for key in ["operating_points", "mimic_operating_points"] {
        let points = v[key].as_array().expect(key);
        let targets: Vec<f64> = points
            .iter()
            .filter_map(|p| p["target_far"].as_f64())
            .collect();
        assert_eq!(targets, vec![0.001, 0.01, 0.05], "{key}");
        for p in points {
            for field in [
                "far",
                "frr",
                "far_interval",
                "genuine_attempts",
                "impostor_attempts",
                "calibration_floor",
                "status",
            ] {
                assert!(!p[field].is_null(), "{key}.{field}: {p}");
            }
        }
    }
    // The decision's own rule: at the configured target (0.01) the operating point's
    // acceptances are the decision's (the reject lock aside, which never applies here
    // to a genuine user: the app's step-up clears it).
    let at = &r.operating_points[1];
    assert_eq!(at.genuine_attempts as u64, r.genuine[0]);
    assert!((1.0 - at.frr - genuine_accept).abs() < 1e-9, "{at:?}");
    let _ = std::fs::remove_dir_all(&cfg.dir);
}

/// A world that trains its models from its own day-0 uploads: both candidates pass the
/// gate against the research-trained models and are promoted, the days run on them,
/// and the retraining on uploads poisoned by crafted accounts is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_learns_from_its_uploads_and_refuses_a_poisoned_retraining() {
    let cfg = WorldConfig {
        people: 60,
        days: 1,
        seed: 3,
        training_people: 30,
        training_steps: 150,
        impostor_rate: 1.0,
        mimic_rate: 0.0,
        parallel: 4,
        day0_sessions: 3,
        learn: true,
        poison_accounts: 30,
        faults: tacit_simulator::world::Faults::none(),
        restarts: false,
        dir: std::env::temp_dir().join(format!("tacit-learn-{}", std::process::id())),
        ..WorldConfig::default()
    };
    let r = run(&cfg, &|_, _, _| {}).await.expect("run");
    println!("{}", r.table());
    support::attacks_failed_nothing_lost(&r);
    let learned: Vec<(&str, &str, bool, bool)> = r
        .learning
        .iter()
        .map(|l| (l.factor.as_str(), l.stage.as_str(), l.passed, l.promoted))
        .collect();
    assert_eq!(
        learned,
        [
            ("gait", "day 0 uploads", true, true),
            ("keystroke-fixed", "day 0 uploads", true, true),
            (
                "gait",
                "after day 1, with 30 crafted accounts",
                false,
                false
            ),
        ],
        "{:#?}",
        r.learning
    );
    // The days ran on the promoted models.
    let genuine_accept = r.genuine[1] as f64 / r.genuine[0] as f64;
    assert!(
        genuine_accept >= 0.8,
        "genuine accept rate {genuine_accept}"
    );
    let impostor_accept = r.impostor[1] as f64 / r.impostor[0] as f64;
    assert!(
        impostor_accept <= 0.1,
        "zero-effort accept rate {impostor_accept}"
    );
    let v: serde_json::Value = serde_json::to_value(&r).expect("json");
    assert_eq!(
        v["learning"][0]["candidate"].as_array().map(Vec::len),
        Some(3)
    );
}

/// A world run in cohorts, one after another with a backend and phones of their own:
/// the report adds them up and pools their attempts; each finished cohort is saved, so
/// a run that stopped part-way resumes with the saved ones kept as they were, and a
/// saved cohort of another world is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_in_cohorts_pools_them_and_resumes_where_it_stopped() {
    let cfg = WorldConfig {
        people: 13,
        cohort: Some(5),
        days: 1,
        seed: 11,
        training_people: 30,
        training_steps: 150,
        impostor_rate: 1.0,
        mimic_rate: 0.5,
        parallel: 4,
        faults: tacit_simulator::world::Faults::none(),
        restarts: false,
        dir: std::env::temp_dir().join(format!("tacit-cohorts-{}", std::process::id())),
        ..WorldConfig::default()
    };
    let r = run(&cfg, &|_, _, _| {}).await.expect("run");
    println!("{}", r.table());
    support::attacks_failed_nothing_lost(&r);
    let sizes: Vec<usize> = r.cohorts.iter().map(|c| c.people).collect();
    assert_eq!(sizes, [5, 4, 4]);
    // The totals are the cohorts' own, added up.
    let stored: u64 = r.cohorts.iter().map(|c| c.stored).sum();
    assert_eq!(stored, r.envelopes.stored);
    assert!(r.cohorts.iter().all(|c| c.stored > 0 && c.lost == 0));
    let wall: f64 = r.cohorts.iter().map(|c| c.wall_s).sum();
    assert!((wall - r.wall_s).abs() < 1e-9, "{wall} {}", r.wall_s);
    assert!(r.cohorts.iter().all(|c| c.backend_disk_mb > 0.0));
    assert!(
        r.cohorts.iter().all(|c| c.build.len() == 16),
        "{:?}",
        r.cohorts
    );
    assert!(r.cpu_s > 0.0 && r.peak_rss_mib > 0.0);
    // Every person authenticates, and is impersonated once (impostor rate 1), by
    // someone of the same cohort.
    assert_eq!(r.genuine[0], 13 * 2 + 13 + r.mimic[0]);
    assert_eq!(r.impostor[0], 13);
    let replayed = r
        .attacks
        .attacks
        .iter()
        .find(|a| a.0 == "replayed envelope");
    assert_eq!(
        replayed.map(|a| a.1),
        Some(13),
        "each cohort's phones attacked"
    );
    assert_eq!(r.operating_points[1].impostor_attempts, 13);
    let saved = |i: usize| cfg.dir.join("cohorts").join(format!("cohort-{i:04}.json"));
    assert!((0..3).all(|i| saved(i).is_file()));
    // Hours of saved cohorts are not emptied by a run that forgot --resume.
    let forgot = run(&cfg, &|_, _, _| {}).await.expect_err("saved cohorts");
    assert!(
        forgot.to_string().contains("holds 3 saved cohorts"),
        "{forgot}"
    );
    assert!((0..3).all(|i| saved(i).is_file()));

    // Stopped after the first and the last cohorts: only the second runs again.
    std::fs::remove_file(saved(1)).expect("remove");
    let resumed = WorldConfig {
        resume: true,
        ..cfg.clone()
    };
    let again = run(&resumed, &|_, _, _| {}).await.expect("resumed");
    assert_eq!(again.cohorts[0], r.cohorts[0], "kept, not run again");
    assert_eq!(again.cohorts[2], r.cohorts[2], "kept, not run again");
    assert_ne!(again.cohorts[1].wall_s, r.cohorts[1].wall_s, "run again");
    // The same people doing the same things: the same attempts and decisions.
    assert_eq!(
        (again.genuine, again.impostor, again.mimic),
        (r.genuine, r.impostor, r.mimic)
    );
    support::attacks_failed_nothing_lost(&again);

    // Another world's cohorts are not pooled into this one, and nothing is emptied.
    let other = WorldConfig {
        seed: 12,
        ..resumed.clone()
    };
    let refused = run(&other, &|_, _, _| {}).await.expect_err("another world");
    assert!(refused.to_string().contains("another world"), "{refused}");
    assert!(saved(0).is_file() && saved(1).is_file());
    // Nor a file that is no cohort of this one: refused before anything runs.
    std::fs::write(saved(9), "{}").expect("stray");
    let refused = run(&resumed, &|_, _, _| {}).await.expect_err("stray");
    assert!(
        refused
            .to_string()
            .contains("not one of this world's 3 cohorts"),
        "{refused}"
    );
    assert!(saved(0).is_file() && saved(1).is_file() && saved(2).is_file());
    std::fs::remove_file(saved(9)).expect("remove");
    // Nor a cohort whose file was changed since: its people are not the planned ones.
    let kept = std::fs::read(saved(0)).expect("read");
    let mut edited: serde_json::Value = serde_json::from_slice(&kept).expect("json");
    edited["people"]["end"] = 6.into();
    std::fs::write(saved(0), edited.to_string()).expect("write");
    let refused = run(&resumed, &|_, _, _| {}).await.expect_err("edited");
    assert!(refused.to_string().contains("not the planned"), "{refused}");
    std::fs::write(saved(0), kept).expect("restore");
    for (bad, why) in [
        (
            WorldConfig {
                cohort: None,
                ..resumed.clone()
            },
            "give its --cohort",
        ),
        (
            WorldConfig {
                cohort: Some(3),
                ..cfg.clone()
            },
            "at least 4",
        ),
    ] {
        let e = run(&bad, &|_, _, _| {}).await.expect_err("refused");
        assert!(e.to_string().contains(why), "{e}");
    }
    let _ = std::fs::remove_dir_all(&cfg.dir);
}
