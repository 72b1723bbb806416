//! The serving benchmark's PyTorch peer (bench/python-peer/) scores like Tacit: a model
//! exported with `tacit-backend model-export`, served by the peer (FastAPI + PyTorch),
//! must give the same llr/raw as the factor service for the same OIP v2 requests, and
//! refuse the same bad requests (bench/python-peer/equivalence.py decides). A peer given
//! a slightly altered model must fail the same check (the check can fail).
//!
//! Needs a Python with torch, fastapi and uvicorn: `TACIT_PEER_PYTHON`, else the venv of
//! `bench/python-peer/venv.sh`. Without one the test is skipped with a message, unless
//! `TACIT_REQUIRE_PEER=1` (then it fails).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{binary_request_line, gait_model, gait_population, infer_bodies};
use tacit_backend::server::spawn_factor;
use tacit_models::FactorKind;
use tacit_models::embedding::ModelArtifact;
use tacit_models::template::FactorModel;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// A Python that can run the peer, or why not.
fn peer_python() -> Result<PathBuf, String> {
    let py = match std::env::var_os("TACIT_PEER_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            let tools = std::env::var_os("TACIT_TOOLS_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/var/tmp/tacit-tools"));
            tools.join("peer-venv/bin/python")
        }
    };
    let ok = Command::new(&py)
        .args(["-c", "import torch, fastapi, uvicorn, numpy"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(py)
    } else {
        Err(format!(
            "{} cannot import torch, fastapi, uvicorn (run bench/python-peer/venv.sh or set TACIT_PEER_PYTHON)",
            py.display()
        ))
    }
}

/// A peer process, killed when dropped.
struct Peer(Child, String);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_peer(py: &Path, model_json: &Path) -> Peer {
    let port = common::free_port();
    let child = Command::new(py)
        .args(["-m", "uvicorn", "--app-dir"])
        .arg(repo().join("bench/python-peer"))
        .args([
            "--factory",
            "tacit_peer:app_from_env",
            "--host",
            "127.0.0.1",
        ])
        .args(["--port", &port.to_string(), "--workers", "1"])
        .args(["--log-level", "warning"])
        .env("PEER_MODEL", model_json)
        .env("PEER_TORCH_THREADS", "1")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the peer");
    Peer(child, format!("http://127.0.0.1:{port}"))
}

async fn wait_ready(http: &reqwest::Client, peer: &mut Peer) {
    for _ in 0..300 {
        if let Ok(Some(status)) = peer.0.try_wait() {
            panic!("the peer exited: {status}");
        }
        let url = format!("{}/v2/health/ready", peer.1);
        if http.get(url).send().await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the peer at {} never became ready", peer.1);
}

/// Runs equivalence.py: (passed, its summary line, its mismatch lines).
fn equivalence(py: &Path, ours: &str, peer: &str, bodies: &[PathBuf]) -> (bool, String, String) {
    let mut cmd = Command::new(py);
    cmd.arg(repo().join("bench/python-peer/equivalence.py"))
        .args(["--ours", ours, "--peer", peer]);
    for b in bodies {
        cmd.arg("--bodies").arg(b);
    }
    let out = cmd.output().expect("run equivalence.py");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pytorch_peer_scores_like_tacit() {
    let py = match peer_python() {
        Ok(p) => p,
        Err(why) if std::env::var("TACIT_REQUIRE_PEER").as_deref() != Ok("1") => {
            eprintln!("SKIP: PyTorch peer equivalence: {why}");
            return;
        }
        Err(why) => panic!("TACIT_REQUIRE_PEER=1 but {why}"),
    };
    let dir = tempfile::tempdir().unwrap();
    let pop = gait_population();
    let bytes = gait_model(&pop, 8, 1);
    let tcm = dir.path().join("gait.tcm");
    std::fs::write(&tcm, &bytes).unwrap();

    // The exporter, as a user runs it.
    let json = dir.path().join("gait.json");
    let out = Command::new(env!("CARGO_BIN_EXE_tacit-backend"))
        .arg("model-export")
        .arg("--model")
        .arg(&tcm)
        .arg("--out")
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // The control: the same export with the input weights of one hidden unit (of 32)
    // changed by 0.05.
    let mut altered: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for w in altered["network"]["layers"][0]["weight"][0]
        .as_array_mut()
        .unwrap()
    {
        *w = serde_json::json!(w.as_f64().unwrap() + 0.05);
    }
    let altered_json = dir.path().join("altered.json");
    std::fs::write(&altered_json, altered.to_string()).unwrap();

    let mut peer = start_peer(&py, &json);
    let mut control = start_peer(&py, &altered_json);

    // Request bodies with real enrolment templates (full and fallback).
    let model = FactorModel::from_artifact(&ModelArtifact::from_bytes(&bytes).unwrap()).unwrap();
    let mut files = Vec::new();
    for (rows, count) in [(8, 40), (1, 20)] {
        let bodies = infer_bodies(&model, &pop, 4, rows, count);
        let path = dir.path().join(format!("infer-{rows}.jsonl"));
        std::fs::write(&path, bodies.join("\n")).unwrap();
        files.push(path);
        // The same requests with binary tensor data, for 8 rows.
        if rows == 8 {
            let lines: Vec<String> = bodies
                .iter()
                .take(10)
                .map(|b| binary_request_line(b).unwrap())
                .collect();
            let path = dir.path().join("infer-8-binary.jsonl");
            std::fs::write(&path, lines.join("\n")).unwrap();
            files.push(path);
        }
    }

    let mut settings = common::settings(&common::Backing::Embedded, dir.path());
    settings.factor.model_url = Some(format!("file://{}", tcm.display()));
    // The comparison is of scores, between two services that the equivalence script
    // calls alike and without a token (the peer has none): authentication is tested in
    // factor_service.rs.
    settings.factor_auth.enabled = false;
    let ours = spawn_factor(settings, FactorKind::Gait).await.unwrap();
    let http = reqwest::Client::new();
    wait_ready(&http, &mut peer).await;
    wait_ready(&http, &mut control).await;

    let (ok, summary, errors) = equivalence(&py, &ours.url(), &peer.1, &files);
    assert!(
        ok,
        "the peer does not score like Tacit:\n{summary}\n{errors}"
    );
    eprintln!("equivalence: {summary}");
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    // llr and raw of every vector.
    assert_eq!(summary["values"], 2 * (40 * 8 + 20 + 10 * 8), "{summary}");
    assert_eq!(summary["requests_with_binary_tensors"], 10, "{summary}");
    assert!(summary["requests_with_fallback_template"].as_u64().unwrap() > 0);
    assert_eq!(summary["bad_requests_refused_by_both"], 11, "{summary}");

    let (ok, summary, errors) = equivalence(&py, &ours.url(), &control.1, &files);
    assert!(
        !ok,
        "an altered model passed the equivalence check:\n{summary}"
    );
    eprintln!("control (altered model): {summary}");
    assert!(errors.contains("MISMATCH"), "{errors}");
    ours.shutdown().await.unwrap();
}
