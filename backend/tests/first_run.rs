//! The first run as a new user has it: the real binary in an empty working directory
//! with the defaults, every spelling of a data directory, and errors that say why.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

fn backend(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tacit-backend"));
    c.current_dir(dir).env("TACIT_LOG", "warn");
    // Only what the test sets: no settings leak in from the environment of the run.
    for (k, _) in std::env::vars() {
        if k.starts_with("TACIT_") && k != "TACIT_LOG" {
            c.env_remove(k);
        }
    }
    c
}

fn run(mut c: Command) -> Output {
    c.output().expect("run tacit-backend")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn ready(url: &str, child: &mut Child) {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server exited with {status} before answering {url}");
        }
        if http.get(url).send().await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{url} never answered 200");
}

/// `keygen` then `serve` in an empty folder, with nothing set but the admin token and
/// (so that tests may run at once) the port: `/readyz` answers 200, and the data, keys
/// included, is under `./tacit-data`.
#[tokio::test]
async fn serve_from_an_empty_folder_with_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let out = run({
        let mut c = backend(dir.path());
        c.arg("keygen");
        c
    });
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("at_rest_key=./tacit-data/keys/at-rest.key"),
        "{stdout}"
    );
    // The verdict signing key: one, private, named by the kid keygen prints.
    let kid = stdout
        .lines()
        .find_map(|l| l.strip_prefix("verdict_kid="))
        .unwrap_or_else(|| panic!("no verdict_kid= in {stdout}"));
    let verdict_key = dir
        .path()
        .join(format!("tacit-data/keys/verdict-{kid}.key"));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&verdict_key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", verdict_key.display());
    }
    let port = common::free_port();
    let mut c = backend(dir.path());
    c.arg("serve")
        .env("TACIT_ADMIN_TOKEN", "change-me")
        .env("TACIT_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = Killed(c.spawn().unwrap());
    ready(&format!("http://127.0.0.1:{port}/readyz"), &mut child.0).await;
    let data = dir.path().join("tacit-data");
    for made in ["tacit.sqlite3", "objects", "keys/at-rest.key"] {
        assert!(data.join(made).exists(), "{made} missing");
    }
}

/// Encryption at rest is on by default: `serve` without its key refuses to start and
/// says how to make one; `TACIT_AT_REST=off` is the explicit way out.
#[tokio::test]
async fn serve_refuses_to_store_plaintext_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let out = run({
        let mut c = backend(dir.path());
        c.arg("serve")
            .env("TACIT_LISTEN", format!("127.0.0.1:{port}"));
        c
    });
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("encryption at rest is on"), "{err}");
    assert!(err.contains("tacit-backend keygen"), "{err}");
    assert!(err.contains("TACIT_AT_REST=off"), "{err}");

    // Turned off explicitly: keygen writes no at-rest key, serve starts.
    let out = run({
        let mut c = backend(dir.path());
        c.arg("keygen").env("TACIT_AT_REST", "off");
        c
    });
    assert!(out.status.success(), "{}", text(&out));
    assert!(!dir.path().join("tacit-data/keys/at-rest.key").exists());
    let mut c = backend(dir.path());
    c.arg("serve")
        .env("TACIT_AT_REST", "off")
        .env("TACIT_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = Killed(c.spawn().unwrap());
    ready(&format!("http://127.0.0.1:{port}/readyz"), &mut child.0).await;
}

/// Relative and absolute data directories, `file://` URLs and plain paths for the
/// objects: `migrate` works with each, from the working directory it is run in.
#[test]
fn every_spelling_of_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let abs = dir.path().join("abs-data");
    let abs = abs.to_str().unwrap();
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![("TACIT_DATA_DIR", "rel-data".into())],
        vec![("TACIT_DATA_DIR", "./dot-data".into())],
        vec![("TACIT_DATA_DIR", abs.into())],
        vec![("TACIT_OBJECTS_URL", "file://rel-objects".into())],
        vec![("TACIT_OBJECTS_URL", "file://./dot-objects".into())],
        vec![("TACIT_OBJECTS_URL", format!("file://{abs}/url-objects"))],
        vec![("TACIT_OBJECTS_URL", "plain-objects".into())],
        vec![("TACIT_DATABASE_URL", "sqlite://rel-db/tacit.sqlite3".into())],
    ];
    for vars in &cases {
        let mut c = backend(dir.path());
        c.arg("migrate");
        for (k, v) in vars {
            c.env(k, v);
        }
        if let Some((_, db)) = vars.iter().find(|(k, _)| *k == "TACIT_DATABASE_URL") {
            let file = dir.path().join(db.trim_start_matches("sqlite://"));
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        }
        let out = run(c);
        assert!(out.status.success(), "{vars:?}: {}", text(&out));
    }
    for made in [
        "rel-data/tacit.sqlite3",
        "dot-data/tacit.sqlite3",
        "abs-data/tacit.sqlite3",
        "rel-db/tacit.sqlite3",
    ] {
        assert!(dir.path().join(made).is_file(), "{made} missing");
    }
}

/// A factor service in an empty folder, with the objects and the model as relative
/// `file://` URLs: it starts and is live.
#[tokio::test]
async fn factor_service_with_relative_urls() {
    let dir = tempfile::tempdir().unwrap();
    let out = run({
        let mut c = backend(dir.path());
        c.arg("keygen");
        c
    });
    assert!(out.status.success(), "{}", text(&out));
    let port = common::free_port();
    let mut c = backend(dir.path());
    c.args(["serve", "--role", "factor:gait"])
        .env("TACIT_LISTEN", format!("127.0.0.1:{port}"))
        .env("TACIT_OBJECTS_URL", "file://tacit-data/objects")
        .env("TACIT_MODEL_URL", "file://models/gait.tcm")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = Killed(c.spawn().unwrap());
    ready(
        &format!("http://127.0.0.1:{port}/v2/health/live"),
        &mut child.0,
    )
    .await;
}

/// Secrets never printed: `migrate` names the database without its password, and a
/// failing start shows no admin token, S3 secret or password either.
#[test]
fn secrets_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = backend(dir.path());
    c.arg("serve")
        .env("TACIT_ADMIN_TOKEN", "admin-hunter1")
        .env("TACIT_S3_ACCESS_KEY_ID", "id")
        .env("TACIT_S3_SECRET_ACCESS_KEY", "s3-hunter2")
        .env(
            "TACIT_DATABASE_URL",
            "postgres://tacit:pg-hunter3@127.0.0.1:1/tacit",
        )
        .env("TACIT_OBJECTS_URL", "s3://bucket")
        .env("TACIT_S3_ENDPOINT", "http://127.0.0.1:1")
        .env("TACIT_AT_REST", "off")
        .env("TACIT_LOG", "debug");
    let out = run(c);
    assert!(!out.status.success());
    let all = text(&out);
    assert!(!all.contains("hunter"), "{all}");
    assert!(all.contains("127.0.0.1:1"), "{all}");

    let Some(url) = std::env::var("PG_PASSWORD_URL").ok() else {
        return skip_pg("secrets_are_never_printed (migrate on PostgreSQL)");
    };
    let mut c = backend(dir.path());
    c.arg("migrate")
        .env("TACIT_DATABASE_URL", &url)
        .env("TACIT_LOG", "debug");
    let out = run(c);
    assert!(out.status.success(), "{}", text(&out));
    let all = text(&out);
    assert!(!all.contains("tacit-right-password"), "{all}");
    assert!(all.contains("migrated postgres://tacit_password:"), "{all}");
}

/// `tacit-backend config`: the settings in force, file then environment, secrets
/// redacted; a bad value fails it as it would fail `serve`, naming the variable.
#[test]
fn config_prints_the_settings_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/settings.example.toml");
    let mut c = backend(dir.path());
    c.arg("--config")
        .arg(&example)
        .arg("config")
        .env("TACIT_LISTEN", "127.0.0.1:7001")
        .env("TACIT_ADMIN_TOKEN", "admin-hunter1");
    let out = run(c);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("listen = \"127.0.0.1:7001\""), "{shown}");
    assert!(shown.contains("target_far = 0.001"), "{shown}");
    assert!(shown.contains("admin_token = \"[REDACTED]\""), "{shown}");
    assert!(!text(&out).contains("hunter"), "{}", text(&out));
    assert!(!shown.contains("example-password"), "{shown}");
    // The printed settings read back as a settings file (secrets aside).
    let back = dir.path().join("shown.toml");
    std::fs::write(&back, shown.as_bytes()).unwrap();
    let mut c = backend(dir.path());
    c.arg("--config").arg(&back).arg("config");
    let again = run(c);
    assert!(again.status.success(), "{}", text(&again));

    let mut c = backend(dir.path());
    c.arg("config").env("TACIT_TARGET_FAR", "0.9");
    let out = run(c);
    assert!(!out.status.success());
    let err = text(&out);
    assert!(
        err.contains("TACIT_TARGET_FAR") && err.contains("expected a rate in (0, 0.5)"),
        "{err}"
    );
}

fn skip_pg(test: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{test}: CI run without the test PostgreSQL (PG_CA_FILE, PG_PASSWORD_URL)");
    }
    eprintln!("SKIP {test}: PG_CA_FILE / PG_PASSWORD_URL not set (scripts/tools/postgres.sh)");
}

/// A CA that did not sign the test server's certificate.
fn wrong_ca(dir: &Path) -> std::path::PathBuf {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let path = dir.join("wrong-ca.pem");
    std::fs::write(&path, cert.pem()).unwrap();
    path
}

/// Every failure to reach PostgreSQL says why, through the whole cause chain: a
/// refused port, a certificate from an unknown CA, and a wrong password.
#[test]
fn connection_errors_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let migrate = |url: &str, ca: Option<&Path>| {
        let mut c = backend(dir.path());
        c.arg("migrate").env("TACIT_DATABASE_URL", url);
        if let Some(ca) = ca {
            c.env("TACIT_DATABASE_CA_FILE", ca);
        }
        let out = run(c);
        assert!(!out.status.success(), "{url}: {}", text(&out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    let closed = common::free_port();
    let err = migrate(
        &format!("postgres://postgres@127.0.0.1:{closed}/tacit"),
        None,
    );
    assert!(
        err.contains(&format!("connecting to PostgreSQL at 127.0.0.1:{closed}")),
        "{err}"
    );
    assert!(err.contains("Connection refused"), "{err}");

    let (Ok(base), Ok(pw_url)) = (
        std::env::var("DATABASE_URL"),
        std::env::var("PG_PASSWORD_URL"),
    ) else {
        return skip_pg("connection_errors_say_why (TLS and password)");
    };
    let err = migrate(&base, Some(&wrong_ca(dir.path())));
    assert!(err.contains("connecting to PostgreSQL"), "{err}");
    assert!(
        err.contains("UnknownIssuer") || err.contains("unknown issuer"),
        "{err}"
    );

    let wrong = pw_url.replace("tacit-right-password", "wrong-password");
    let err = migrate(&wrong, None);
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("wrong-password"), "{err}");
}

/// PostgreSQL over TLS (rustls): `verify-full` and `verify-ca` pass with the server's
/// CA and fail with another, `require` encrypts without checking, and the connection the
/// store uses is TLS.
#[tokio::test]
async fn postgres_over_tls() {
    use tacit_backend::store::{FeatureObjects, PostgresStore};
    let (Ok(base), Ok(ca)) = (std::env::var("DATABASE_URL"), std::env::var("PG_CA_FILE")) else {
        return skip_pg("postgres_over_tls");
    };
    let dir = tempfile::tempdir().unwrap();
    let objects = || FeatureObjects::local(dir.path()).unwrap();
    let ca = std::path::PathBuf::from(ca);
    let wrong = wrong_ca(dir.path());
    let with = |mode: &str| {
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}sslmode={mode}")
    };
    async fn is_tls(store: &PostgresStore) -> bool {
        let (ssl,): (bool,) =
            sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(store.pool())
                .await
                .unwrap();
        ssl
    }

    // The CA setting alone means verify-full.
    let s = PostgresStore::connect_with_ca(&base, Some(&ca), objects())
        .await
        .expect("verify-full with the right CA");
    assert!(is_tls(&s).await);
    for mode in ["verify-full", "verify-ca"] {
        let s = PostgresStore::connect_with_ca(&with(mode), Some(&ca), objects())
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert!(is_tls(&s).await, "{mode}");
        let err = PostgresStore::connect_with_ca(&with(mode), Some(&wrong), objects())
            .await
            .expect_err("a wrong CA must fail");
        let shown = tacit_backend::error::Chain(&err).to_string();
        assert!(shown.contains("UnknownIssuer"), "{mode}: {shown}");
    }
    // The URL's own sslrootcert works as in libpq.
    let s = PostgresStore::connect(
        &format!("{}&sslrootcert={}", with("verify-full"), ca.display()),
        objects(),
    )
    .await
    .expect("sslrootcert in the URL");
    assert!(is_tls(&s).await);
    let s = PostgresStore::connect(&with("require"), objects())
        .await
        .expect("require");
    assert!(is_tls(&s).await);
    // verify-full without any CA that knows the server: the bundled public roots
    // do not, so it fails instead of falling back to an unchecked connection.
    assert!(
        PostgresStore::connect(&with("verify-full"), objects())
            .await
            .is_err()
    );
    // With the CA, `require` checks the chain as in libpq; a mode that could skip TLS
    // or the check is refused.
    assert!(
        PostgresStore::connect_with_ca(&with("require"), Some(&wrong), objects())
            .await
            .is_err()
    );
    let err = PostgresStore::connect_with_ca(&with("prefer"), Some(&ca), objects())
        .await
        .expect_err("prefer with a CA file");
    assert!(err.to_string().contains("sslmode=prefer"), "{err}");
    // A missing CA file is a clear configuration error.
    let err = PostgresStore::connect_with_ca(&base, Some(&dir.path().join("nope.pem")), objects())
        .await
        .expect_err("missing CA file");
    assert!(err.to_string().contains("nope.pem"), "{err}");
}

/// With `TACIT_OTLP_ENDPOINT`, the request spans reach an OTLP/HTTP receiver (decoded
/// with the protocol's own protobuf types) carrying the request id the caller sent,
/// which also comes back on the answer and in the access log; a graceful stop flushes
/// what is buffered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_are_exported_over_otlp() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    use std::sync::{Arc, Mutex};

    /// A received span: its name and string attributes.
    type Span = (String, Vec<(String, String)>);
    let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
    let got = spans.clone();
    let receiver = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let got = got.clone();
            async move {
                let req = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                for span in req
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .flat_map(|s| &s.spans)
                {
                    let attrs = span
                        .attributes
                        .iter()
                        .map(|kv| {
                            let v = kv.value.as_ref().and_then(|v| v.value.as_ref());
                            let text = match v {
                                Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => s.clone(),
                                other => format!("{other:?}"),
                            };
                            (kv.key.clone(), text)
                        })
                        .collect();
                    got.lock().unwrap().push((span.name.clone(), attrs));
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let dir = tempfile::tempdir().unwrap();
    assert!(
        run({
            let mut c = backend(dir.path());
            c.arg("keygen");
            c
        })
        .status
        .success()
    );
    let port = common::free_port();
    let mut c = backend(dir.path());
    c.arg("serve")
        .env("TACIT_LISTEN", format!("127.0.0.1:{port}"))
        .env("TACIT_OTLP_ENDPOINT", &otlp)
        .env("TACIT_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = Killed(c.spawn().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    ready(&format!("{base}/readyz"), &mut child.0).await;
    let r = reqwest::Client::new()
        .get(format!("{base}/healthz"))
        .header("x-request-id", "probe-7f3a")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "probe-7f3a");
    // A graceful stop (SIGTERM) flushes the batch of spans.
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Waited for off the runtime: the receiver must keep answering meanwhile.
    let stderr = child.0.stderr.take();
    let out = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        if let Some(mut stderr) = stderr {
            std::io::Read::read_to_end(&mut stderr, &mut out).unwrap();
        }
        out
    })
    .await
    .unwrap();
    let _ = child.0.wait();
    let log = String::from_utf8_lossy(&out);
    assert!(!log.contains("flushing traces"), "{log}");
    assert!(
        log.lines().any(|l| l.contains("probe-7f3a")
            && l.contains("answered")
            && l.contains("status=200")),
        "no access-log line for the request:\n{log}"
    );
    let spans = spans.lock().unwrap().clone();
    assert!(
        spans.iter().any(|(name, attrs)| name == "request"
            && attrs.contains(&("request_id".into(), "probe-7f3a".into()))
            && attrs.contains(&("route".into(), "/healthz".into()))),
        "no request span with the id: {spans:?}"
    );
}
