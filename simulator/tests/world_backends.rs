//! The world against a backend in another process: a `tacit-backend` child killed with
//! `SIGKILL` midway through every day (nothing flushed, requests cut off), and a
//! backend already running at a URL. Nothing may be lost or duplicated either way.

use std::process::Command;

use tacit_simulator::PopulationModel;
use tacit_simulator::world::{BackendKind, Report, WorldConfig, install_models, run};

mod support;
use support::{backend_binary, free_port, spawn, wait_ready};

fn world(name: &str, backend: BackendKind) -> WorldConfig {
    WorldConfig {
        people: 8,
        days: 2,
        seed: 11,
        training_people: 30,
        training_steps: 200,
        parallel: 4,
        backend,
        dir: std::env::temp_dir().join(format!("tacit-{name}-{}", std::process::id())),
        ..WorldConfig::default()
    }
}

/// What must hold whatever the backend: every envelope created was acknowledged and
/// stored exactly once, and the traffic attacks failed.
fn nothing_lost(r: &Report) {
    println!("{}", r.table());
    support::attacks_failed_nothing_lost(r);
    assert!(
        r.genuine[0] > 0 && r.genuine[1] * 10 >= r.genuine[0] * 7,
        "{:?}",
        r.genuine
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_process_killed_with_sigkill_every_day_loses_nothing() {
    let cfg = world("world-kill", BackendKind::Process(backend_binary()));
    let r = run(&cfg, &|_, _, _| {}).await.expect("run");
    nothing_lost(&r);
    assert_eq!(r.restarts, u64::from(cfg.days), "one kill -9 per day");
    let _ = std::fs::remove_dir_all(&cfg.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_backend_by_url_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("tacit-remote-backend-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (bin, port, token) = (backend_binary(), free_port(), "remote-admin");
    install_models(&dir, &PopulationModel::with_seed(11), 30, 200, 11)
        .await
        .expect("models");
    let keygen = Command::new(&bin)
        .arg("keygen")
        .env("TACIT_DATA_DIR", &dir)
        .output()
        .expect("keygen");
    assert!(keygen.status.success(), "{keygen:?}");
    let stdout = String::from_utf8_lossy(&keygen.stdout);
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("public_key="))
        .expect("public_key= in keygen output")
        .to_string();
    let mut cmd = Command::new(&bin);
    cmd.args(["serve", "--role", "all"])
        .env("TACIT_DATA_DIR", &dir)
        .env("TACIT_LISTEN", format!("127.0.0.1:{port}"))
        .env("TACIT_ADMIN_TOKEN", token)
        .env("TACIT_RATE_PER_DEVICE", "1000000")
        .env("TACIT_LOG", "warn");
    let mut server = spawn("remote backend", cmd, &dir);
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(
        &reqwest::Client::new(),
        &mut server,
        &format!("{url}/readyz"),
    )
    .await;

    // A bad key or token is refused before anything runs.
    let mut bad = world(
        "world-remote-bad",
        BackendKind::Remote {
            url: url.clone(),
            admin_token: token.into(),
            public_key: "not base64!".into(),
        },
    );
    assert!(run(&bad, &|_, _, _| {}).await.is_err());
    bad.backend = BackendKind::Remote {
        url: url.clone(),
        admin_token: String::new(),
        public_key: key.clone(),
    };
    assert!(bad.check().is_err());

    let cfg = world(
        "world-remote",
        BackendKind::Remote {
            url: url.clone(),
            admin_token: token.into(),
            public_key: key,
        },
    );
    let r = run(&cfg, &|_, _, _| {}).await.expect("run");
    nothing_lost(&r);
    assert_eq!(r.restarts, 0, "a remote backend is never restarted");
    // The gateway's /metrics after a whole world, judged by a Prometheus parser.
    support::every_route_has_samples(&url, token).await;
    server.kill();
    let _ = std::fs::remove_dir_all(&cfg.dir);
    let _ = std::fs::remove_dir_all(&dir);
}
