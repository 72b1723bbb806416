//! Cross-check of the feature code (`tacit-features`) against numpy/scipy, on synthetic
//! walks and on the public gait sessions (which is why it lives with the evaluation
//! readers): `shared/features/tests/reference/gait_reference.py` implements the same
//! pipeline with numpy/scipy primitives; every window's features must agree within
//! 1e-9 (relative, absolute below 1), and FFT magnitudes within 1e-9.
//!
//! Python comes from `$TACIT_PYTHON` (the test command creates a venv with numpy and
//! scipy and sets it); without it the test tries `python3`, and skips with a message
//! if numpy/scipy are missing — except under CI, where that is a failure.

#[path = "../../../shared/features/tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{rotation, walker};
use tacit_features::dsp::MotionSample;
use tacit_features::dsp::spectrum::SpectrumWorkspace;
use tacit_features::factors::gait::{GaitConfig, extract_gait};
use tacit_models::datasets::{data_dir, read_gait_manifest, read_gait_session};
use tacit_shared::schema::GAIT_V1;

fn python() -> Option<String> {
    let py = std::env::var("TACIT_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import numpy, scipy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return Some(py);
    }
    if std::env::var_os("CI").is_some() || std::env::var_os("TACIT_PYTHON").is_some() {
        panic!("numpy/scipy not importable from {py}; the test command must provide them");
    }
    eprintln!("SKIP: numpy/scipy not available (set TACIT_PYTHON to a python with both)");
    None
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/features/tests/reference/gait_reference.py")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tacit-numpy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn write_samples(path: &Path, samples: &[MotionSample]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for s in samples {
        f.write_all(&s.t_ns.to_le_bytes()).unwrap();
        let g = s.gyro.unwrap_or([0.0; 3]);
        for v in s.accel.iter().chain(&g) {
            f.write_all(&v.to_le_bytes()).unwrap();
        }
    }
}

fn run(py: &str, args: &[&str]) {
    let out = Command::new(py).arg(script()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn compare(py: &str, name: &str, samples: &[MotionSample]) -> usize {
    let input = tmp(&format!("{name}.bin"));
    let output = tmp(&format!("{name}.json"));
    write_samples(&input, samples);
    run(
        py,
        &[
            "features",
            input.to_str().unwrap(),
            output.to_str().unwrap(),
        ],
    );
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    let reference = reference["windows"].as_array().unwrap();
    let (ours, _) = extract_gait(samples, GaitConfig::default()).unwrap();
    assert_eq!(ours.len(), reference.len(), "{name}: window count");
    let mut worst = (0.0f64, "");
    for (w, r) in ours.iter().zip(reference) {
        assert_eq!(
            w.start_ns,
            r["start_ns"].as_i64().unwrap(),
            "{name}: window start"
        );
        assert_eq!(
            w.walking,
            r["walking"].as_bool().unwrap(),
            "{name}: walking at {}",
            w.start_ns
        );
        let rf: Vec<f64> = r["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(rf.len(), GAIT_V1.len());
        for (i, (a, b)) in w.features.iter().zip(&rf).enumerate() {
            let err = (a - b).abs() / b.abs().max(1.0);
            assert!(
                err <= 1e-9,
                "{name} window {} {}: rust {a} numpy {b}",
                w.start_ns,
                GAIT_V1[i].name
            );
            if err > worst.0 {
                worst = (err, GAIT_V1[i].name);
            }
        }
    }
    println!(
        "{name}: {} windows agree; worst relative difference {:.1e} ({})",
        ours.len(),
        worst.0,
        worst.1
    );
    ours.len()
}

#[test]
fn gait_features_match_numpy_scipy() {
    let Some(py) = python() else { return };
    let synthetic = walker(120.0, 100.0, 1.9, &rotation(0.7, -1.1, 0.4), 0.3, 21);
    assert!(compare(&py, "synthetic", &synthetic) > 30);
    let mut gapped = walker(60.0, 25.0, 1.6, &rotation(0.1, 0.2, 0.3), 0.4, 8);
    for s in &mut gapped[800..] {
        s.t_ns += 1_500_000_000;
    }
    assert!(compare(&py, "gapped", &gapped) > 10);
    if let Some(dir) = data_dir()
        .map(|d| d.join("gait/hoang-nexusone"))
        .filter(|d| d.is_dir())
    {
        for s in read_gait_manifest(&dir).unwrap().iter().step_by(60) {
            let mut samples = read_gait_session(&s.path).unwrap();
            // The reference expects clean input: apply the duplicate/out-of-order rule here.
            let mut last = i64::MIN;
            samples.retain(|x| {
                let keep = x.t_ns >= last.saturating_add(500_000);
                if keep {
                    last = x.t_ns;
                }
                keep
            });
            compare(&py, &format!("hoang-u{}-s{}", s.user, s.session), &samples);
        }
    } else {
        eprintln!("SKIP (partly): real gait sessions not found; synthetic input only");
    }
}

#[test]
fn fft_magnitudes_match_numpy() {
    let Some(py) = python() else { return };
    let n = 256;
    let x: Vec<f64> = walker(10.0, 50.0, 1.8, &rotation(0.3, 0.3, 0.3), 0.0, 4)
        .iter()
        .take(n)
        .map(|s| s.accel[0])
        .collect();
    let input = tmp("fft.bin");
    let output = tmp("fft.json");
    std::fs::write(
        &input,
        x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .unwrap();
    run(
        &py,
        &["fft", input.to_str().unwrap(), output.to_str().unwrap()],
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    let mut ws = SpectrumWorkspace::new(n);
    let mut mag = vec![0.0; n / 2 + 1];
    for (kind, want) in [("plain", &r["plain"]), ("hann", &r["hann"])] {
        if kind == "plain" {
            ws.plain_magnitude(&x, &mut mag);
        } else {
            ws.hann_magnitude(&x, &mut mag);
        }
        let want: Vec<f64> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(want.len(), mag.len());
        for (k, (a, b)) in mag.iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                "{kind} bin {k}: {a} vs {b}"
            );
        }
    }
}
