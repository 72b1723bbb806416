//! `tacit-backend train` and `eval` as a user runs them: the real binary on a generated
//! key-event CSV (no data set needed), then the artifact it wrote.

use std::path::Path;
use std::process::Command;

use tacit_models::FactorKind;
use tacit_models::embedding::ModelArtifact;

/// 8 typists × 2 sessions × 20 entries of a 6-key phrase, each with a personal rhythm.
fn write_keys(path: &Path) {
    let mut s = String::from("user,session,sample,key,down_ms,up_ms\n");
    let mut x: u64 = 7;
    let mut noise = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 33) as f64 / (1u64 << 31) as f64) - 0.5
    };
    for u in 0..8 {
        for session in 1..=2 {
            for sample in 1..=20 {
                let mut t = 10_000.0 * (session * 100 + sample) as f64;
                for (k, key) in ["h", "e", "l", "l", "o", "Return"].iter().enumerate() {
                    let hold = 60.0 + 12.0 * ((u * 3 + k) % 5) as f64 + 8.0 * noise();
                    s.push_str(&format!(
                        "u{u},{session},{sample},{key},{t:.1},{:.1}\n",
                        t + hold
                    ));
                    t += 110.0 + 25.0 * ((u * 7 + k * 3) % 6) as f64 + 15.0 * noise();
                }
            }
        }
    }
    std::fs::write(path, s).unwrap();
}

fn backend(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tacit-backend"))
        .args(args)
        .env("TACIT_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn train_and_eval_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.csv");
    write_keys(&keys);
    let k = keys.to_str().unwrap();
    let json = dir.path().join("eval.json");
    let det = dir.path().join("det.svg");
    let out = backend(&[
        "eval",
        "--data",
        k,
        "--folds",
        "4",
        "--steps",
        "40",
        "--json",
        json.to_str().unwrap(),
        "--det",
        det.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("scaled Manhattan (Killourhy & Maxion)"),
        "{stdout}"
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["people"], 8);
    assert_eq!(report["samples"], 320);
    let results = report["results"].as_array().unwrap();
    assert!(results.len() >= 7);
    for r in results {
        let eer = r["eer_mean"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&eer), "{r}");
    }
    // Distinct rhythms: the fused template separates these typists well.
    let fused = results
        .iter()
        .find(|r| r["method"].as_str().unwrap().starts_with("tacit"))
        .unwrap();
    assert!(fused["eer_mean"].as_f64().unwrap() < 0.2, "{fused}");
    let svg = std::fs::read_to_string(&det).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));

    let model = dir.path().join("keys.tcm");
    let out = backend(&[
        "train",
        "--data",
        k,
        "--steps",
        "40",
        "--out",
        model.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("trained keystroke-fixed model on"));
    let a = ModelArtifact::load(&model).unwrap();
    a.check_for(FactorKind::KeystrokeFixed, 1, 16).unwrap(); // 6 keys → 3·6−2 timings
    assert_eq!(a.meta.training.config.steps, 40);
}

/// A person with too few entries to enrol (a short session, typos) and entries with
/// a key missing are skipped and listed with the reason, in the table and the JSON;
/// the others are evaluated.
#[test]
fn a_person_with_too_few_entries_is_skipped_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.csv");
    write_keys(&keys);
    let mut csv = std::fs::read_to_string(&keys).unwrap();
    for (k, key) in ["h", "e", "l", "o", "Return"].iter().enumerate() {
        let down = 9_000_000.0 + 150.0 * k as f64;
        csv.push_str(&format!("u1,3,1,{key},{down:.1},{:.1}\n", down + 70.0));
    }
    for sample in 1..=3 {
        let t = 1_000_000.0 * f64::from(sample);
        for (k, key) in ["h", "e", "l", "l", "o", "Return"].iter().enumerate() {
            let down = t + 150.0 * k as f64;
            csv.push_str(&format!(
                "short,1,{sample},{key},{down:.1},{:.1}\n",
                down + 70.0
            ));
        }
    }
    std::fs::write(&keys, csv).unwrap();
    let json = dir.path().join("eval.json");
    let out = backend(&[
        "eval",
        "--data",
        keys.to_str().unwrap(),
        "--folds",
        "4",
        "--max-folds",
        "1",
        "--steps",
        "20",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["people"], 8);
    let skipped: Vec<&str> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    assert!(
        skipped
            .iter()
            .any(|s| s.starts_with("person short: 3 usable entries")),
        "{skipped:?}"
    );
    let missing = "1 entries skipped for a key count other than the phrase's 6 (the most \
                   common): user u1, session 3, sample 1 has 5";
    assert!(skipped.contains(&missing), "{skipped:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("skipped: person short"), "{table}");
    assert!(table.contains(&format!("skipped: {missing}")), "{table}");
    assert!(
        report["dataset"]
            .as_str()
            .is_some_and(|d| d.contains("6 keys, schema v1: timings only")),
        "{}",
        report["dataset"]
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.csv");
    let out = backend(&["eval", "--data", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.csv"));

    let keys = dir.path().join("keys.csv");
    write_keys(&keys);
    let k = keys.to_str().unwrap();
    for (args, want) in [
        (
            vec!["eval", "--data", k, "--loss", "hinge"],
            "[possible values: proxy, triplet]",
        ),
        (
            vec!["eval", "--data", k, "--device", "tpu"],
            "expected auto, cpu or cuda",
        ),
        (
            vec!["eval", "--data", k, "--folds", "40"],
            "folds must be within",
        ),
        (
            vec!["train", "--data", k, "--steps", "0", "--out", "/dev/null"],
            "steps must be",
        ),
    ] {
        let out = backend(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{args:?}: {err}"
        );
    }
    let garbage = dir.path().join("g.csv");
    std::fs::write(&garbage, "a,b,c\n1,2,3\n").unwrap();
    let out = backend(&["eval", "--data", garbage.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot tell the format"));
}
