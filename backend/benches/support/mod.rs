//! What the load benches share: a `tacit-backend serve` child process over loopback
//! (SQLite by default; PostgreSQL + S3 when `DATABASE_URL`/`S3_ENDPOINT` are set),
//! devices registered through the real API, and /proc readings of the server.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ring::rand::SystemRandom;
use tacit_shared::api::{PublicKeyJson, b64_decode};
use tacit_shared::hpke::RecipientPublicKey;
use tacit_shared::identity::{DeviceSigner, Ed25519Signer};

pub const ADMIN: &str = "load";

/// `--name N` from the command line, else `default`.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User + system CPU seconds of a process.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Resident memory of a process, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of a process.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A running `tacit-backend serve`.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub backend: RecipientPublicKey,
    pub storage: &'static str,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Generates a key in `dir`, starts the server on a free port and waits until ready.
pub async fn start_server(dir: &Path, http: &reqwest::Client) -> Server {
    // Another build of the server (an earlier commit's, say) to measure beside this
    // one with the same load: `BENCH_SERVER=/path/to/tacit-backend`.
    let bin = std::env::var_os("BENCH_SERVER")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_tacit-backend").into());
    let out = Command::new(&bin)
        .arg("keygen")
        .env("TACIT_DATA_DIR", dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let pk: [u8; 32] = b64_decode(
        text.lines()
            .find_map(|l| l.strip_prefix("public_key="))
            .unwrap(),
    )
    .unwrap()
    .try_into()
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(&bin);
    cmd.arg("serve")
        .env("TACIT_DATA_DIR", dir)
        .env("TACIT_LISTEN", format!("127.0.0.1:{port}"))
        .env("TACIT_ADMIN_TOKEN", ADMIN)
        .env("TACIT_RATE_PER_DEVICE", "1000000")
        .env("TACIT_LOG", "warn")
        .stdout(Stdio::null());
    let storage =
        if let (Ok(db), Ok(s3)) = (std::env::var("DATABASE_URL"), std::env::var("S3_ENDPOINT")) {
            // A bucket of this run (its at-rest marker is sealed under this run's
            // key), made with a path-style CreateBucket; the test S3 server takes any
            // credentials.
            let bucket = std::env::var("S3_BUCKET")
                .unwrap_or_else(|_| format!("tacit-load-{}", std::process::id()));
            let _ = http.put(format!("{s3}/{bucket}")).send().await;
            cmd.env("TACIT_DATABASE_URL", db)
                .env("TACIT_OBJECTS_URL", format!("s3://{}", bucket))
                .env("TACIT_S3_ENDPOINT", s3)
                .env("TACIT_S3_ALLOW_HTTP", "true");
            "PostgreSQL + S3 (moto)"
        } else {
            "SQLite + local files"
        };
    let child = cmd.spawn().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if http
            .get(format!("{url}/readyz"))
            .send()
            .await
            .map(|r| r.status() == 200)
            .unwrap_or(false)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server {
        child,
        url,
        backend: RecipientPublicKey::from_bytes(pk),
        storage,
    }
}

/// Creates `user` and registers a new device key for it.
pub async fn register_device(http: &reqwest::Client, url: &str, user: &str) -> Ed25519Signer {
    let r = http
        .post(format!("{url}/v1/users"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({ "user_id": user }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let t: serde_json::Value = http
        .post(format!("{url}/v1/users/{user}/enrolment-tokens"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let signer = Ed25519Signer::generate(&SystemRandom::new()).unwrap().0;
    let r = http
        .post(format!("{url}/v1/devices"))
        .json(&serde_json::json!({"enrolment_token": t["token"], "public_key": PublicKeyJson::from_key(&signer.public_key())}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    signer
}
