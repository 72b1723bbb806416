//! Shared helpers for the gateway tests: a real server on port 0 over a chosen store.
#![allow(dead_code, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;

use tacit_backend::keys::KeyRing;
use tacit_backend::server::{self, RunningServer};
use tacit_backend::settings::Settings;
use tacit_shared::hpke::RecipientKeyPair;

// The synthetic gait population and model (shared with the serving benchmark's fixture).
#[path = "support/gait.rs"]
mod gait;
#[allow(unused_imports)]
pub use gait::*;

pub const ADMIN: &str = "test-admin-token";

/// Which storage a test runs against.
#[derive(Debug, Clone)]
pub enum Backing {
    /// SQLite file + local object directory (the embedded default).
    Embedded,
    /// PostgreSQL (`DATABASE_URL`) + S3 (`S3_ENDPOINT`).
    PostgresS3 {
        database_url: String,
        s3_endpoint: String,
        bucket: String,
    },
}

/// The backings available here: embedded always; PostgreSQL + S3 when the test
/// command started them (required under CI).
pub fn backings() -> Vec<Backing> {
    let mut v = vec![Backing::Embedded];
    match (std::env::var("DATABASE_URL"), std::env::var("S3_ENDPOINT")) {
        (Ok(database_url), Ok(s3_endpoint)) => {
            let bucket = std::env::var("S3_BUCKET").unwrap_or_else(|_| "tacit-test".into());
            v.push(Backing::PostgresS3 {
                database_url,
                s3_endpoint,
                bucket,
            })
        }
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI run without DATABASE_URL and S3_ENDPOINT")
        }
        _ => eprintln!("SKIP (partly): DATABASE_URL / S3_ENDPOINT not set; embedded storage only"),
    }
    v
}

pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "tacit-gw-{name}-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

pub fn rand_suffix() -> String {
    let mut b = [0u8; 6];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).expect("rng");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn settings(backing: &Backing, dir: &std::path::Path) -> Settings {
    let mut s = Settings {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        admin_token: Some(ADMIN.into()),
        ..Settings::default()
    };
    if let Backing::PostgresS3 {
        database_url,
        s3_endpoint,
        bucket,
    } = backing
    {
        s.database_url = Some(database_url.as_str().into());
        s.objects_url = Some(format!("s3://{bucket}"));
        s.s3.endpoint = Some(s3_endpoint.clone());
        s.s3.allow_http = true;
        s.s3.region = Some("us-east-1".into());
        s.s3.access_key_id = Some("test".into());
        s.s3.secret_access_key = Some("test".into());
    }
    // The default: templates and features encrypted at rest, so every gateway test
    // reads its features and templates through it. One key per test process: a test's
    // gateway and factor services share it.
    s.at_rest.key_file = Some(at_rest_key().clone());
    // Factor calls are authenticated by default: a test's gateway and factor services
    // share the process's token.
    s.factor_auth.token_file = Some(factor_token().clone());
    s
}

/// The factor bearer token of the tests' gateways and factor services, one per test
/// process (mode 0600, as the services require).
pub fn factor_token() -> &'static PathBuf {
    static TOKEN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        let p = temp_dir("factor-token").join("factor.token");
        tacit_backend::factor::auth::FactorToken::generate(&p).expect("factor token file");
        p
    })
}

/// The text of the tests' factor token.
pub fn factor_token_text() -> String {
    std::fs::read_to_string(factor_token()).expect("factor token")
}

/// An HTTP client that sends the tests' factor token on every request, as the gateway
/// does.
pub fn factor_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {}", factor_token_text())
            .parse()
            .expect("header value"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

/// The at-rest key of the tests: one fixed value for every test process, because the
/// PostgreSQL + S3 tests share one bucket, and a bucket's at-rest marker (sealed under
/// the key by whichever process opened it first) must open in all of them — a store
/// opened with another key is refused at start, as it should be. Tests of a wrong key
/// make their own.
pub fn at_rest_key() -> &'static PathBuf {
    static KEY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let p = temp_dir("at-rest").join("at-rest.key");
        let mut f = std::fs::OpenOptions::new();
        f.write(true).create_new(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut f, 0o600);
        std::io::Write::write_all(
            &mut f.open(&p).expect("at-rest key file"),
            "7e".repeat(32).as_bytes(),
        )
        .expect("write at-rest key");
        p
    })
}

pub struct TestServer {
    pub server: RunningServer,
    pub key: Arc<RecipientKeyPair>,
    pub dir: PathBuf,
}

/// Creates the test bucket when the backing is S3 (moto accepts an unsigned bucket
/// creation; an existing bucket is fine too).
pub async fn ensure_bucket(backing: &Backing) {
    if let Backing::PostgresS3 {
        s3_endpoint,
        bucket,
        ..
    } = backing
    {
        let _ = reqwest::Client::new()
            .put(format!("{s3_endpoint}/{bucket}"))
            .send()
            .await;
    }
}

pub async fn start(backing: &Backing, name: &str) -> TestServer {
    let dir = temp_dir(name);
    ensure_bucket(backing).await;
    let (server, pair) = spawn_with(settings(backing, &dir)).await;
    TestServer {
        server,
        key: Arc::new(pair),
        dir,
    }
}

/// A server on these settings with a new HPKE key in its key directory.
pub async fn spawn_with(s: Settings) -> (RunningServer, RecipientKeyPair) {
    let pair = KeyRing::generate(&s.keys_dir()).expect("keygen");
    let keys = KeyRing::load(&s.keys_dir()).expect("load keys");
    let store = server::open_store(&s).await.expect("open store");
    (server::spawn(s, keys, store).await.expect("spawn"), pair)
}

/// A self-signed certificate for 127.0.0.1 and localhost: (certificate PEM, key PEM).
pub fn self_signed() -> (String, String) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

/// A gateway over embedded storage in `dir` serving TLS with a new self-signed
/// certificate: the server, its HPKE key and the certificate (PEM).
pub async fn spawn_tls(dir: &std::path::Path) -> (RunningServer, RecipientKeyPair, String) {
    let (cert, key) = self_signed();
    std::fs::write(dir.join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.join("key.pem"), &key).unwrap();
    let mut s = settings(&Backing::Embedded, dir);
    s.tls = Some(tacit_backend::settings::TlsSettings {
        cert_file: dir.join("cert.pem"),
        key_file: dir.join("key.pem"),
    });
    let (srv, pair) = spawn_with(s).await;
    (srv, pair, cert)
}

pub async fn admin_user(http: &reqwest::Client, url: &str, user: &str) -> String {
    let r = http
        .post(format!("{url}/v1/users"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({ "user_id": user }))
        .send()
        .await
        .expect("create user");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let r = http
        .post(format!("{url}/v1/users/{user}/enrolment-tokens"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("create token");
    assert_eq!(r.status(), 201);
    let v: serde_json::Value = r.json().await.expect("token json");
    v["token"].as_str().expect("token").to_string()
}

/// Creates `user` with the admin token and registers `signer`'s key as their device
/// (`POST /v1/devices`, must answer 201).
pub async fn register_device(
    http: &reqwest::Client,
    url: &str,
    user: &str,
    signer: &tacit_shared::identity::Ed25519Signer,
) {
    use tacit_shared::identity::DeviceSigner;
    let token = admin_user(http, url, user).await;
    let key = tacit_shared::api::PublicKeyJson::from_key(&signer.public_key());
    let r = http
        .post(format!("{url}/v1/devices"))
        .json(&serde_json::json!({ "enrolment_token": token, "public_key": key }))
        .send()
        .await
        .expect("register device");
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
}

/// `GET /metrics` of a server: its text exposition.
pub async fn metrics_text(http: &reqwest::Client, url: &str) -> String {
    http.get(format!("{url}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text")
}

/// `GET /v1/users/{user}/export` with the admin token: must answer 200; the JSON.
pub async fn export(http: &reqwest::Client, url: &str, user: &str) -> serde_json::Value {
    let r = http
        .get(format!("{url}/v1/users/{user}/export"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("export");
    assert_eq!(r.status(), 200);
    r.json().await.expect("export json")
}

/// Runs `tacit-backend keygen` in `dir` and returns the new public key.
pub fn keygen_process(dir: &std::path::Path) -> tacit_shared::hpke::RecipientPublicKey {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tacit-backend"))
        .arg("keygen")
        .env("TACIT_DATA_DIR", dir)
        .output()
        .expect("run keygen");
    assert!(out.status.success(), "keygen failed");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let b64 = text
        .lines()
        .find_map(|l| l.strip_prefix("public_key="))
        .expect("public_key= line");
    let pk: [u8; 32] = tacit_shared::api::b64_decode(b64)
        .expect("base64")
        .try_into()
        .expect("32 bytes");
    tacit_shared::hpke::RecipientPublicKey::from_bytes(pk)
}

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Starts `tacit-backend serve` as a separate process on `port` over `dir`.
pub fn serve_process(dir: &std::path::Path, port: u16) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_tacit-backend"))
        .arg("serve")
        .env("TACIT_DATA_DIR", dir)
        .env("TACIT_LISTEN", format!("127.0.0.1:{port}"))
        .env("TACIT_ADMIN_TOKEN", ADMIN)
        .env("TACIT_RATE_PER_DEVICE", "100000")
        .env("TACIT_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tacit-backend")
}

/// Waits until `GET /readyz` answers 200.
pub async fn wait_ready(http: &reqwest::Client, url: &str) {
    for _ in 0..200 {
        if http
            .get(format!("{url}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("server at {url} never became ready");
}

/// `seconds` of a clean walk at 50 Hz (1.8 steps/s) from `t0_ns`.
pub fn walking(seconds: f64, t0_ns: i64) -> Vec<tacit_mobile_core::dsp::MotionSample> {
    let n = (seconds * 50.0) as usize;
    let tau = 2.0 * std::f64::consts::PI;
    (0..n)
        .map(|i| {
            let t = i as f64 / 50.0;
            let s = tau * 1.8 * t;
            tacit_mobile_core::dsp::MotionSample {
                t_ns: t0_ns + (t * 1e9) as i64,
                accel: [
                    0.7 * (0.5 * s).sin(),
                    1.2 * (s + 0.7).sin(),
                    9.81 + 2.5 * s.sin() + 0.8 * (2.0 * s).sin(),
                ],
                gyro: None,
            }
        })
        .collect()
}

/// `n` key events of steady typing from `t0_ns`.
pub fn typing(n: usize, t0_ns: i64) -> Vec<tacit_mobile_core::dsp::KeyEvent> {
    (0..n as i64)
        .map(|i| tacit_mobile_core::dsp::KeyEvent {
            class: if i % 5 == 4 {
                tacit_mobile_core::dsp::KeyClass::Space
            } else {
                tacit_mobile_core::dsp::KeyClass::Letter
            },
            down_ns: t0_ns + i * 170_000_000,
            up_ns: t0_ns + i * 170_000_000 + 90_000_000 + (i % 7) * 5_000_000,
            pressure: None,
            area: None,
        })
        .collect()
}
