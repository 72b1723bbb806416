//! Child processes for the tests that run `tacit-backend` binaries, and what every
//! simulated world must show (shared by the test files that `mod support;` it; not
//! every file uses every helper).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process killed when dropped.
pub struct Proc {
    pub name: &'static str,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `tacit-backend` binary: `TACIT_BACKEND_BIN` (the test command sets it: under
/// `cargo test --workspace` the binary is built before any test runs), else built now
/// (this test run alone). A build from inside a test must not run while other tests of
/// a workspace run share the target directory, hence the variable.
pub fn backend_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("TACIT_BACKEND_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.exists(),
            "TACIT_BACKEND_BIN={} does not exist",
            bin.display()
        );
        return bin;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "-q",
            "-p",
            "tacit-backend",
            "--bin",
            "tacit-backend",
        ])
        .current_dir(workspace_root())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building tacit-backend failed");
    let exe = std::env::current_exe().expect("test path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = dir.join("tacit-backend");
    assert!(bin.exists(), "{} missing", bin.display());
    bin
}

pub fn spawn(name: &'static str, mut cmd: Command, dir: &Path) -> Proc {
    let log = dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&log).expect("log file");
    let child = cmd
        .stdout(Stdio::from(file.try_clone().expect("log")))
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    Proc { name, child, log }
}

pub async fn wait_ready(http: &reqwest::Client, p: &mut Proc, url: &str) {
    for _ in 0..600 {
        if http
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        if let Ok(Some(status)) = p.child.try_wait() {
            panic!(
                "{} exited ({status}): {}",
                p.name,
                std::fs::read_to_string(&p.log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{} never became ready at {url}: {}",
        p.name,
        std::fs::read_to_string(&p.log).unwrap_or_default()
    );
}

/// What must hold in any world's report: every envelope accounted for (none lost or
/// duplicated, none of an honest phone refused), every attack that must fail failed,
/// and the cloned phones that raced their owner were measured and then caught.
pub fn attacks_failed_nothing_lost(r: &tacit_simulator::world::Report) {
    let e = &r.envelopes;
    assert_eq!(
        (e.lost, e.duplicated, e.queued, e.rejected),
        (0, 0, 0, 0),
        "{e:?}"
    );
    assert!(e.created > 0 && e.stored == e.acknowledged, "{e:?}");
    assert_eq!(e.created, e.acknowledged + e.rejected_in_attacks, "{e:?}");
    let names: Vec<&str> = r.attacks.attacks.iter().map(|a| a.0.as_str()).collect();
    for must in [
        "replayed envelope",
        "tampered envelope",
        "replayed request",
        "cloned phone, after the owner's next upload",
        "cloned phone, once the owner uploaded",
    ] {
        assert!(names.contains(&must), "{must} not run: {names:?}");
    }
    for (name, attempts, successes) in &r.attacks.attacks {
        assert!(*attempts > 0, "{name}");
        assert_eq!(*successes, 0, "{name}");
    }
    assert_eq!(r.attacks.measured.len(), 1, "{:?}", r.attacks.measured);
    // The clones that were caught had their envelopes refused.
    assert!(e.rejected_in_attacks > 0, "{e:?}");
}

/// `/metrics` of a server, parsed by a Prometheus text-format parser.
pub async fn scrape(http: &reqwest::Client, url: &str) -> prometheus_parse::Scrape {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("Prometheus text")
}

/// The routes with a `tacit_http_requests_total` sample, with the summed count.
pub fn requests_by_route(s: &prometheus_parse::Scrape) -> std::collections::BTreeMap<String, f64> {
    let mut by = std::collections::BTreeMap::new();
    for sample in s
        .samples
        .iter()
        .filter(|x| x.metric == "tacit_http_requests_total")
    {
        let n = match sample.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        };
        *by.entry(sample.labels.get("route").unwrap_or("").to_owned())
            .or_insert(0.0) += n;
    }
    by
}

/// After a world ran against the gateway at `url`: the world's own traffic shows in
/// the request metrics by route template; then every other route is called once, and
/// every route of the router (the OpenAPI document's paths, and `/openapi.json`) must
/// have samples. Every metric family has a `# HELP`.
pub async fn every_route_has_samples(url: &str, admin_token: &str) {
    let http = reqwest::Client::new();
    let after_world = requests_by_route(&scrape(&http, url).await);
    for route in [
        "/v1/devices",
        "/v1/uploads",
        "/v1/authenticate",
        "/v1/users/:id/templates",
        "/v1/users/:id/enrolment-tokens",
    ] {
        assert!(
            after_world.get(route).is_some_and(|n| *n > 0.0),
            "the world's {route} requests are not in /metrics: {after_world:?}"
        );
    }
    assert!(
        !after_world
            .keys()
            .any(|r| r.contains("user-") || r.contains("sim")),
        "a route label holds an id: {after_world:?}"
    );
    // The routes a world does not call, once each (any answer counts).
    let probe = "metrics-probe";
    let auth = |r: reqwest::RequestBuilder| r.bearer_auth(admin_token);
    let calls = [
        http.get(format!("{url}/healthz")),
        http.get(format!("{url}/openapi.json")),
        http.get(format!("{url}/v1/keys")),
        auth(http.post(format!("{url}/v1/users"))).json(&serde_json::json!({ "user_id": probe })),
        auth(http.post(format!("{url}/v1/users/{probe}/enrolment-tokens"))),
        auth(http.get(format!("{url}/v1/users/{probe}/export"))),
        auth(http.get(format!("{url}/v1/users/{probe}/decisions"))),
        auth(http.get(format!("{url}/v1/users/{probe}/training-consent"))),
        http.get(format!("{url}/.well-known/jwks.json")),
        auth(http.post(format!("{url}/v1/users/{probe}/unlock"))),
        auth(http.post(format!("{url}/v1/devices/{}/revoke", "0".repeat(32)))),
        auth(http.delete(format!("{url}/v1/users/{probe}"))),
        http.get(format!("{url}/no/such/route")),
    ];
    for c in calls {
        c.send().await.expect("probe request");
    }
    let s = scrape(&http, url).await;
    let routes = requests_by_route(&s);
    let doc = tacit_backend::router::openapi();
    let mut expected: Vec<String> = doc
        .paths
        .paths
        .keys()
        .map(|p| tacit_backend::metrics::route_label(p))
        .collect();
    expected.push("/openapi.json".into());
    for route in &expected {
        assert!(
            routes.get(route).is_some_and(|n| *n > 0.0),
            "no samples for {route}: {routes:?}"
        );
    }
    assert!(routes.contains_key("unmatched"), "{routes:?}");
    // Latency and in-flight series exist for the routes; every family is described.
    for family in [
        "tacit_http_request_duration_seconds",
        "tacit_http_requests_in_flight",
        "tacit_envelopes_total",
        "tacit_authentications_total",
        "tacit_factor_calls_total",
        "tacit_factor_call_duration_seconds",
        "tacit_factor_breaker_open",
        "process_resident_memory_bytes",
    ] {
        assert!(
            s.samples.iter().any(|x| x.metric.starts_with(family)),
            "no {family} samples"
        );
    }
    for name in s.samples.iter().map(|x| x.metric.as_str()) {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        assert!(
            s.docs.contains_key(family) || s.docs.contains_key(name),
            "{name} has no # HELP"
        );
    }
}
