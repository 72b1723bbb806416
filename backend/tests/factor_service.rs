//! The factor service role over real HTTP on loopback: OIP v2, the job API, bad input,
//! and a hot model reload under load — on local files and (under the test command) on
//! S3 (moto).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{gait_model, gait_population};
use object_store::ObjectStoreExt;
use serde_json::{Value, json};
use tacit_backend::server::spawn_factor;
use tacit_models::data::Population;
use tacit_shared::payload::{FactorKind, FeatureRecord, Payload};

const DIM: usize = common::GAIT_DIM;

fn rows(pop: &Population, person: usize, range: std::ops::Range<usize>) -> Vec<Vec<f32>> {
    pop.people[person].samples[range]
        .iter()
        .map(|s| s.vector.clone())
        .collect()
}

fn features(rows: &[Vec<f32>]) -> Value {
    json!({"name": "features", "datatype": "FP32", "shape": [rows.len(), DIM],
           "data": rows.iter().flatten().copied().collect::<Vec<f32>>()})
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = http.post(url).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(http: &reqwest::Client, url: String) -> (u16, Value) {
    let r = http.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Enrols `person` synchronously (`POST /output`): the template.
async fn enrol(http: &reqwest::Client, base: &str, pop: &Population, person: usize) -> Value {
    let (s, v) = post(
        http,
        format!("{base}/output"),
        json!({"op": "enrol", "features": rows(pop, person, 0..30)}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["output"]["template"].clone()
}

/// Waits for a job to finish: a training job trains one network per calibration fold
/// and the kept one, and CI runs several jobs at once on 2 cores, so allow two minutes.
async fn wait_job(http: &reqwest::Client, base: &str, id: &str) -> Value {
    for _ in 0..2400 {
        let (s, v) = get(http, format!("{base}/status?taskID={id}")).await;
        assert_eq!(s, 200, "{v}");
        if v["status"] != "running" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} still running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factor_service_over_http() {
    let pop = gait_population();
    let first = gait_model(&pop, 8, 1);
    let second = gait_model(&pop, 8, 2);
    for backing in common::backings() {
        let dir = common::temp_dir("factor");
        common::ensure_bucket(&backing).await;
        let mut settings = common::settings(&backing, &dir);
        settings.factor.model_poll_ms = 100;
        settings.factor.models_prefix = format!("models-{}", common::rand_suffix());
        let prefix = settings.factor.models_prefix.clone();
        let f = spawn_factor(settings, FactorKind::Gait).await.unwrap();
        let base = f.url();
        let http = common::factor_client();

        // Live before any model; ready only once one is there.
        assert_eq!(get(&http, format!("{base}/v2/health/live")).await.0, 200);
        let (s, v) = get(&http, format!("{base}/v2/health/ready")).await;
        assert_eq!(s, 503, "{v}");
        assert!(v["error"].as_str().unwrap().contains("not loaded"));
        let store = f.service.objects().object_store().clone();
        let model_path = object_store::path::Path::parse(format!("{prefix}/gait.tcm")).unwrap();
        store.put(&model_path, first.clone().into()).await.unwrap();
        for _ in 0..100 {
            if get(&http, format!("{base}/v2/health/ready")).await.0 == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            get(&http, format!("{base}/v2/models/gait/ready")).await.0,
            200
        );
        let (_, server) = get(&http, format!("{base}/v2")).await;
        assert_eq!(server["name"], "tacit-factor");
        let (s, meta) = get(&http, format!("{base}/v2/models/gait")).await;
        assert_eq!(s, 200);
        assert_eq!(meta["inputs"][0]["shape"], json!([-1, DIM]));
        let v1 = meta["versions"][0].as_str().unwrap().to_string();
        assert_eq!(get(&http, format!("{base}/v2/models/nope")).await.0, 404);

        // Embeddings without a template.
        let infer = format!("{base}/v2/models/gait/infer");
        let (s, v) = post(
            &http,
            infer.clone(),
            json!({"id": "a", "inputs": [features(&rows(&pop, 8, 0..3))]}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["id"], "a");
        assert_eq!(v["outputs"][0]["name"], "embedding");
        assert_eq!(v["outputs"][0]["shape"], json!([3, 16]));

        // Enrol person 8 (synchronously), then score them and person 9.
        let template = enrol(&http, &base, &pop, 8).await;
        let tjson = template.to_string();
        let score = |who: usize| {
            json!({"inputs": [features(&rows(&pop, who, 30..60)),
                   {"name": "template", "datatype": "BYTES", "shape": [1], "data": [tjson.clone()]}],
                   "outputs": [{"name": "llr"}]})
        };
        let (s, g) = post(&http, infer.clone(), score(8)).await;
        assert_eq!(s, 200, "{g}");
        let (_, i) = post(&http, infer.clone(), score(9)).await;
        let mean = |v: &Value| {
            let d = v["outputs"][0]["data"].as_array().unwrap();
            d.iter().map(|x| x.as_f64().unwrap()).sum::<f64>() / d.len() as f64
        };
        assert_eq!(g["outputs"].as_array().unwrap().len(), 1);
        assert!(
            mean(&g) > 0.0 && mean(&i) < 0.0,
            "genuine {} impostor {}",
            mean(&g),
            mean(&i)
        );

        // Bad requests: 4xx with {"error"}, never a 500.
        let bad = [
            (
                json!({"inputs": [{"name": "features", "datatype": "FP32", "shape": [2, DIM], "data": [1.0]}]}),
                400,
            ),
            (
                json!({"inputs": [{"name": "features", "datatype": "INT32", "shape": [1, DIM], "data": vec![1; DIM]}]}),
                400,
            ),
            (
                json!({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}),
                400,
            ),
            (
                json!({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, DIM], "data": vec![Value::Null; DIM]}]}),
                400,
            ),
            (
                json!({"inputs": [{"name": "features", "datatype": "FP32", "shape": [5000, DIM], "data": []}]}),
                413,
            ),
            (
                json!({"inputs": [features(&rows(&pop, 8, 0..1))], "outputs": [{"name": "llr"}]}),
                400,
            ),
            (
                json!({"inputs": [features(&rows(&pop, 8, 0..1)), {"name": "template", "datatype": "BYTES", "shape": [1], "data": ["{}"]}]}),
                400,
            ),
            (json!({"inputs": []}), 400),
            (json!({"nothing": 1}), 400),
        ];
        for (body, want) in bad {
            let (s, v) = post(&http, infer.clone(), body.clone()).await;
            assert_eq!(s, want, "{body} -> {v}");
            assert!(v["error"].is_string(), "{v}");
        }
        let (s, v) = post(
            &http,
            format!("{base}/v2/models/other/infer"),
            json!({"inputs": []}),
        )
        .await;
        assert_eq!((s, v["error"].is_string()), (404, true));
        let r = http
            .post(infer.clone())
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let r = http
            .post(infer.clone())
            .body(vec![b' '; 9 << 20])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413);

        // The job API over feature objects in the store (as the gateway writes them:
        // encrypted at rest).
        let keys = feature_files(&f, &pop, 8).await;
        let (s, v) = post(&http, format!("{base}/enrol"), json!({"files": keys})).await;
        assert_eq!(s, 202, "{v}");
        let done = wait_job(&http, &base, v["jobId"].as_str().unwrap()).await;
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(done["result"]["samples"], 30);
        let t2 = done["result"]["template"].clone();
        let (s, v) = post(
            &http,
            format!("{base}/input"),
            json!({"files": keys, "template": t2}),
        )
        .await;
        assert_eq!(s, 202, "{v}");
        let done = wait_job(&http, &base, v["jobId"].as_str().unwrap()).await;
        assert_eq!(done["status"], "completed", "{done}");
        assert!(done["result"]["mean_llr"].as_f64().unwrap() > 0.0);
        let (s, v) = post(
            &http,
            format!("{base}/enrol"),
            json!({"files": ["features/u/x/missing.bin"]}),
        )
        .await;
        assert_eq!(s, 202);
        let done = wait_job(&http, &base, v["jobId"].as_str().unwrap()).await;
        assert_eq!(done["status"], "failed", "{done}");
        for body in [
            json!({"files": []}),
            json!({"files": [format!("{prefix}/gait.tcm")]}),
            json!({"files": ["features/../models/x"]}),
            json!({"files": keys.clone()}),
        ] {
            let url = if body["files"] == json!(keys) {
                format!("{base}/input")
            } else {
                format!("{base}/enrol")
            };
            let (s, v) = post(&http, url, body.clone()).await;
            assert_eq!(s, 400, "{body} -> {v}");
        }
        assert_eq!(
            get(
                &http,
                format!("{base}/status?taskID=0123456789abcdef0123456789abcdef")
            )
            .await
            .0,
            404
        );
        assert_eq!(get(&http, format!("{base}/status")).await.0, 400);

        // Bad input around every request: a caller's request id that is too long or has
        // other characters is replaced (it would go into every log line), and a made-up
        // HTTP method is labelled `other` (each label value is a series kept forever).
        for bad in [
            "x".repeat(65),
            "id with spaces".to_owned(),
            "a=b".to_owned(),
        ] {
            let r = http
                .get(format!("{base}/v2"))
                .header("x-request-id", &bad)
                .send()
                .await
                .unwrap();
            let echoed = r.headers()["x-request-id"].to_str().unwrap().to_owned();
            assert!(echoed != bad && echoed.len() <= 64, "{bad:?} -> {echoed:?}");
        }
        let r = http
            .get(format!("{base}/v2"))
            .header("x-request-id", "ok-id_1.2")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-request-id"], "ok-id_1.2");
        let brew = reqwest::Method::from_bytes(b"BREW").unwrap();
        http.request(brew, format!("{base}/v2"))
            .send()
            .await
            .unwrap();

        // The factor service's own /metrics: its routes by template, with a request id
        // sent back on every answer.
        let r = http.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().contains_key("x-request-id"));
        let text = r.text().await.unwrap();
        for series in [
            "tacit_http_requests_total{route=\"/v2/models/:name/infer\",method=\"POST\",status=\"200\"}",
            "tacit_http_requests_total{route=\"/enrol\",method=\"POST\",status=\"202\"}",
            // The gauge the cluster's autoscalers scale on (deploy/k8s/monitoring).
            "tacit_http_requests_in_flight{route=\"/v2/models/:name/infer\"}",
            "tacit_http_request_duration_seconds_bucket{route=\"/v2/models/:name/infer\"",
            "# HELP tacit_http_requests_total",
            "tacit_http_requests_total{route=\"/v2\",method=\"other\"",
        ] {
            assert!(text.contains(series), "{series} not in:\n{text}");
        }
        assert!(!text.contains("BREW"), "{text}");

        // Hot reload under load: no request fails while the new version swaps in.
        let load = {
            let (http, infer, body) = (http.clone(), infer.clone(), score(8));
            tokio::spawn(async move {
                let mut versions = std::collections::BTreeSet::new();
                for _ in 0..60 {
                    let r = http.post(&infer).json(&body).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    let v: Value = r.json().await.unwrap();
                    versions.insert(v["model_version"].as_str().unwrap().to_string());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                versions
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        store.put(&model_path, second.clone().into()).await.unwrap();
        let versions = load.await.unwrap();
        let (_, meta) = get(&http, format!("{base}/v2/models/gait")).await;
        let v2 = meta["versions"][0].as_str().unwrap().to_string();
        assert_ne!(v1, v2, "the new model is in service");
        assert!(versions.contains(&v1), "{versions:?}");

        // A broken upload is refused and the service stays on the good model.
        store
            .put(&model_path, b"not a model".to_vec().into())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(get(&http, format!("{base}/v2/health/ready")).await.0, 200);
        let (_, meta) = get(&http, format!("{base}/v2/models/gait")).await;
        assert_eq!(meta["versions"][0].as_str().unwrap(), v2);
        f.shutdown().await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    // A model from a local file (TACIT_MODEL_URL=file://...), e.g. a training Job's volume.
    let dir = common::temp_dir("factor-file");
    let file = dir.join("gait.tcm");
    let mut settings = common::settings(&common::Backing::Embedded, &dir);
    settings.factor.model_poll_ms = 100;
    settings.factor.model_url = Some(format!("file://{}", file.display()));
    let f = spawn_factor(settings, FactorKind::Gait).await.unwrap();
    assert!(f.service.model().is_none());
    std::fs::write(&file, &first).unwrap();
    for _ in 0..100 {
        if f.service.model().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(f.service.model().is_some(), "the file's model is loaded");
    f.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A gait factor service serving `model` from a file, with `tune` applied to its
/// settings; waits until the model is loaded.
async fn factor_with_model(
    dir: &std::path::Path,
    model: &[u8],
    tune: impl FnOnce(&mut tacit_backend::settings::Settings),
) -> tacit_backend::server::RunningFactor {
    factor_of_kind(dir, FactorKind::Gait, model, tune).await
}

/// A factor service of `kind` serving `model` from a file, with `tune` applied to its
/// settings; waits until the model is loaded.
async fn factor_of_kind(
    dir: &std::path::Path,
    kind: FactorKind,
    model: &[u8],
    tune: impl FnOnce(&mut tacit_backend::settings::Settings),
) -> tacit_backend::server::RunningFactor {
    let file = dir.join(format!("{}.tcm", kind.name()));
    std::fs::write(&file, model).unwrap();
    let mut settings = common::settings(&common::Backing::Embedded, dir);
    settings.factor.model_url = Some(format!("file://{}", file.display()));
    tune(&mut settings);
    let f = spawn_factor(settings, kind).await.unwrap();
    for _ in 0..100 {
        if f.service.model().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(f.service.model().is_some(), "model loaded");
    f
}

/// [`factor_with_model`] with the small gait model of the tests, in a new directory
/// named after `name`.
async fn gait_factor(
    name: &str,
    tune: impl FnOnce(&mut tacit_backend::settings::Settings),
) -> (
    Population,
    std::path::PathBuf,
    tacit_backend::server::RunningFactor,
) {
    let pop = gait_population();
    let dir = common::temp_dir(name);
    let f = factor_with_model(&dir, &gait_model(&pop, 8, 1), tune).await;
    (pop, dir, f)
}

/// Stops the factor and deletes its directory.
async fn stop(f: tacit_backend::server::RunningFactor, dir: &std::path::Path) {
    f.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// Writes `samples` as one upload under `key` as the gateway writes it (encrypted at
/// rest): gait windows from `start_ms`, `step_ms` apart.
async fn put_upload(
    f: &tacit_backend::server::RunningFactor,
    key: &str,
    samples: &[tacit_models::data::Sample],
    start_ms: u64,
    step_ms: u64,
) {
    let payload = Payload {
        face_images: Vec::new(),
        records: samples
            .iter()
            .enumerate()
            .map(|(i, s)| FeatureRecord {
                factor: FactorKind::Gait,
                schema_version: 1,
                window_start_ms: start_ms + i as u64 * step_ms,
                window_ms: 5120,
                context: None,
                values: s.vector.clone(),
            })
            .collect(),
    };
    f.service
        .objects()
        .put_durable(key, payload.encode().unwrap())
        .await
        .unwrap();
}

/// Feature objects of `person` as the gateway writes them (encrypted at rest), in
/// chunks of 10 windows.
async fn feature_files(
    f: &tacit_backend::server::RunningFactor,
    pop: &Population,
    person: usize,
) -> Vec<String> {
    let mut keys = Vec::new();
    for (k, chunk) in pop.people[person].samples[..30].chunks(10).enumerate() {
        let key = format!("features/u-{}/dev/{k:020}-x.bin", common::rand_suffix());
        put_upload(f, &key, chunk, 1_700_000_000_000 + k as u64, 0).await;
        keys.push(key);
    }
    keys
}

/// Every route but the probes needs the factor token: without it, or with a wrong one,
/// 401 `unauthorized` before anything is read; with it, the routes work. A factor
/// service without a token file does not start unless authentication is turned off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factor_routes_require_the_bearer_token() {
    let (pop, dir, f) = gait_factor("factor-auth", |_| {}).await;
    let base = f.url();
    let keys = feature_files(&f, &pop, 8).await;
    let template = enrol(&common::factor_client(), &base, &pop, 8)
        .await
        .to_string();
    let infer_body = json!({"inputs": [features(&rows(&pop, 8, 30..33)),
        {"name": "template", "datatype": "BYTES", "shape": [1], "data": [template.clone()]}]});
    let calls: Vec<(reqwest::Method, String, Option<Value>)> = vec![
        (
            reqwest::Method::POST,
            "/train".into(),
            Some(json!({"files": keys})),
        ),
        (
            reqwest::Method::POST,
            "/enrol".into(),
            Some(json!({"files": keys})),
        ),
        (
            reqwest::Method::POST,
            "/input".into(),
            Some(
                json!({"files": keys, "template": serde_json::from_str::<Value>(&template).unwrap()}),
            ),
        ),
        (
            reqwest::Method::POST,
            "/v2/models/gait/infer".into(),
            Some(infer_body.clone()),
        ),
        (
            reqwest::Method::POST,
            "/output".into(),
            Some(json!({"op": "enrol", "features": rows(&pop, 8, 0..30)})),
        ),
        (
            reqwest::Method::GET,
            "/status?taskID=0123456789abcdef0123456789abcdef".into(),
            None,
        ),
        (reqwest::Method::GET, "/v2/models/gait".into(), None),
        (reqwest::Method::GET, "/v2/models/gait/ready".into(), None),
        (reqwest::Method::GET, "/v2".into(), None),
        (reqwest::Method::GET, "/metrics".into(), None),
        (reqwest::Method::GET, "/no/such/route".into(), None),
    ];
    // A new connection per call: a refused call's body is never read, so the service
    // closes the connection after the answer (a pooled one could be reused meanwhile).
    let plain = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let token = common::factor_token_text();
    let wrong = format!("{}0", token.trim());
    for (method, path, body) in &calls {
        for auth in [
            None,
            Some(format!("Bearer {wrong}")),
            Some(format!("Bearer {}", &token.trim()[1..])),
            Some(format!("Basic {}", token.trim())),
            Some(token.trim().to_owned()),
        ] {
            let mut req = plain.request(method.clone(), format!("{base}{path}"));
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            assert_eq!(status, 401, "{method} {path} with {auth:?}: {v}");
            assert_eq!(v["code"], "unauthorized", "{v}");
            assert!(v["error"].is_string(), "{v}");
            assert!(!v.to_string().contains(token.trim()), "{v}");
        }
    }
    // The probes answer without the token.
    assert_eq!(get(&plain, format!("{base}/v2/health/live")).await.0, 200);
    assert_eq!(get(&plain, format!("{base}/v2/health/ready")).await.0, 200);
    // Nothing was started by the refused calls.
    assert_eq!(
        std::fs::read_dir(dir.join("jobs/gait")).unwrap().count(),
        0,
        "refused calls left job records"
    );
    // With the token: every call works.
    let http = common::factor_client();
    let (s, v) = post(&http, format!("{base}/v2/models/gait/infer"), infer_body).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post(&http, format!("{base}/enrol"), json!({"files": keys})).await;
    assert_eq!(s, 202, "{v}");
    let done = wait_job(&http, &base, v["jobId"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    // The framework's own refusals are JSON errors too: a method the route lacks, a
    // path parameter that does not decode.
    for (method, path, status) in [
        (reqwest::Method::GET, "/v2/models/gait/infer", 405),
        (reqwest::Method::DELETE, "/train", 405),
        (reqwest::Method::GET, "/v2/models/%ff", 400),
    ] {
        let r = http
            .request(method.clone(), format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(
            v["error"].is_string() && v["code"].is_string(),
            "{method} {path}: {v}"
        );
    }
    f.shutdown().await.unwrap();

    // Secure by default: no token file, no factor service; a token readable by others
    // is refused like any key; turned off explicitly, it starts (and asks for nothing).
    let mut s = common::settings(&common::Backing::Embedded, &dir.join("no-token"));
    s.factor_auth.token_file = Some(dir.join("missing.token"));
    let e = spawn_factor(s.clone(), FactorKind::Gait)
        .await
        .err()
        .expect("refused without a token")
        .to_string();
    assert!(
        e.contains("TACIT_FACTOR_AUTH=off") && e.contains("keygen"),
        "{e}"
    );
    let open = dir.join("open.token");
    std::fs::write(&open, "a".repeat(64)).unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    s.factor_auth.token_file = Some(open);
    let e = spawn_factor(s.clone(), FactorKind::Gait)
        .await
        .err()
        .expect("refused with a public token")
        .to_string();
    assert!(e.contains("chmod 600"), "{e}");
    s.factor_auth.enabled = false;
    let f = spawn_factor(s, FactorKind::Gait).await.unwrap();
    assert_eq!(get(&plain, format!("{}/v2", f.url())).await.0, 200);
    stop(f, &dir).await;
}

/// A flood of jobs is bounded: per caller and in all (429 / 503 with `Retry-After` and
/// a JSON error), and the records left on disk are at most the bound, mode 0600 in a
/// 0700 directory, sealed at rest (no template in clear).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_flood_is_bounded_and_records_are_sealed() {
    const RECORDS: usize = 20;
    let (pop, dir, f) = gait_factor("factor-flood", |s| {
        s.factor.max_running_jobs = 4;
        s.factor.max_jobs_per_caller = 3;
        s.factor.max_job_records = RECORDS;
    })
    .await;
    let base = f.url();
    let keys = feature_files(&f, &pop, 8).await;
    let http = common::factor_client();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..500 {
        let (http, url, body) = (
            http.clone(),
            format!("{base}/enrol"),
            json!({"files": keys}),
        );
        calls.spawn(async move {
            let r = http.post(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            let retry = r.headers().get("retry-after").is_some();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            (status, retry, v)
        });
    }
    let (mut accepted, mut refused) = (0, 0);
    let mut ids = Vec::new();
    while let Some(r) = calls.join_next().await {
        let (status, retry, v) = r.unwrap();
        match status {
            202 => {
                accepted += 1;
                ids.push(v["jobId"].as_str().unwrap().to_owned());
            }
            429 | 503 => {
                refused += 1;
                assert!(retry, "{status} without Retry-After: {v}");
                assert!(
                    ["too_many_jobs", "jobs_busy"].contains(&v["code"].as_str().unwrap_or("")),
                    "{v}"
                );
                assert!(v["error"].is_string(), "{v}");
            }
            other => panic!("{other}: {v}"),
        }
    }
    assert!(accepted >= 1 && refused >= 1, "{accepted} / {refused}");
    // Every accepted job ends: its record then completed, or deleted to make room for
    // newer ones (answers arrive in any order, so which ones are kept is not known
    // here), and the records kept are readable.
    let mut kept = 0;
    for id in &ids {
        let mut last = (0, Value::Null);
        for _ in 0..500 {
            last = get(&http, format!("{base}/status?taskID={id}")).await;
            if last.0 == 404 || last.1["status"] != "running" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        match last {
            (404, _) => {}
            (200, v) => {
                assert_eq!(v["status"], "completed", "{v}");
                kept += 1;
            }
            (s, v) => panic!("{s}: {v}"),
        }
    }
    assert!(kept >= 1, "no record of {} accepted jobs kept", ids.len());
    let jobs = dir.join("jobs/gait");
    let mode = |p: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(&jobs), 0o700);
    let files: Vec<_> = std::fs::read_dir(&jobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        files.len() <= RECORDS,
        "{} job files, bound {RECORDS}",
        files.len()
    );
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
        let bytes = std::fs::read(file).unwrap();
        assert!(
            bytes.starts_with(b"TAR1"),
            "{} is not sealed",
            file.display()
        );
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("template") && !text.contains("jobId"),
            "{text}"
        );
    }
    stop(f, &dir).await;
}

/// Clients that trickle a body hold no connection past the request time limit (the
/// gateway's: 408, JSON), so the probes are served while they go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_bodies_are_cut_and_the_probes_still_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const CONNECTIONS: usize = 6;
    let (_, dir, f) = gait_factor("factor-trickle", |s| {
        s.limits.max_connections = CONNECTIONS;
        s.limits.request_timeout_ms = 1_000;
    })
    .await;
    let addr = f.addr;
    let token = common::factor_token_text();
    let started = std::time::Instant::now();
    let mut trickles = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let token = token.trim().to_owned();
        trickles.spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let head = format!(
                "POST /v2/models/gait/infer HTTP/1.1\r\nhost: x\r\nauthorization: Bearer \
                 {token}\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n"
            );
            s.write_all(head.as_bytes()).await.unwrap();
            // One byte every 200 ms for up to 8 s, or until the server hangs up.
            for _ in 0..40 {
                if s.write_all(b" ").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(1), s.read_to_end(&mut answer)).await;
            String::from_utf8_lossy(&answer).into_owned()
        });
    }
    // Past the time limit, the slots are free again: a probe is answered while the
    // trickling clients still try.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut ok = false;
    for _ in 0..10 {
        if let Ok(r) = plain
            .get(format!("{}/v2/health/live", f.url()))
            .send()
            .await
            && r.status() == 200
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ok && started.elapsed() < Duration::from_secs(5),
        "no probe answered while bodies trickled ({:?})",
        started.elapsed()
    );
    while let Some(answer) = trickles.join_next().await {
        let answer = answer.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        assert!(
            answer.contains("\"code\":\"request_timeout\""),
            "{answer:?}"
        );
    }
    stop(f, &dir).await;
}

/// A template that cannot give a finite score is refused (422 `degenerate_template`),
/// never answered 200 with `null` scores; the model's metadata names its training data
/// without the path it had on the training machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degenerate_templates_are_refused_and_metadata_shows_no_path() {
    let pop = gait_population();
    let mut artifact =
        tacit_models::embedding::ModelArtifact::from_bytes(&gait_model(&pop, 8, 1)).unwrap();
    artifact.meta.training.dataset = "/home/alice/private/gait-sessions".into();
    let dir = common::temp_dir("factor-degenerate");
    let f = factor_with_model(&dir, &artifact.to_bytes().unwrap(), |_| {}).await;
    let base = f.url();
    let http = common::factor_client();
    let (s, meta) = get(&http, format!("{base}/v2/models/gait")).await;
    assert_eq!(s, 200, "{meta}");
    assert!(!meta.to_string().contains("/home/alice"), "{meta}");
    assert_eq!(meta["parameters"]["trained_on"], "gait-sessions", "{meta}");

    let mut template = enrol(&http, &base, &pop, 8).await;
    let dim = template["detector"]["scale"].as_array().unwrap().len();
    template["detector"]["scale"] = json!(vec![0.0; dim]);
    let infer = json!({"inputs": [features(&rows(&pop, 8, 30..33)),
        {"name": "template", "datatype": "BYTES", "shape": [1], "data": [template.to_string()]}]});
    let (s, v) = post(&http, format!("{base}/v2/models/gait/infer"), infer).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["code"], "degenerate_template", "{v}");
    let (s, v) = post(
        &http,
        format!("{base}/output"),
        json!({"op": "score", "features": rows(&pop, 8, 30..33), "template": template}),
    )
    .await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["code"], "degenerate_template", "{v}");
    stop(f, &dir).await;
}

/// Forward passes off the async workers are bounded: with the one place to run taken
/// and the one place to wait filled, a large request is refused at once (503
/// `passes_busy` with `Retry-After`), on `/output` too; small requests are answered
/// meanwhile, and the waiting one when the place frees.
#[tokio::test]
async fn large_passes_wait_in_a_bounded_queue_then_are_refused() {
    let (pop, dir, f) = gait_factor("factor-passes", |s| {
        s.factor.max_passes = 1;
        s.factor.max_queued_passes = 1;
    })
    .await;
    let base = f.url();
    let url = format!("{base}/v2/models/gait/infer");
    let http = common::factor_client();
    let template = enrol(&http, &base, &pop, 8).await;
    let infer = |range: std::ops::Range<usize>| {
        json!({"inputs": [features(&rows(&pop, 8, range)),
            {"name": "template", "datatype": "BYTES", "shape": [1], "data": [template.to_string()]}]})
    };
    // A pass in progress holds the place to run.
    let running = f.service.passes().enter().await.unwrap();
    let waiting = tokio::spawn({
        let (http, url, body) = (http.clone(), url.clone(), infer(30..50));
        async move { post(&http, url, body).await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while f.service.passes().in_use() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the request never queued"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // What an operator sees: one pass running, one waiting, of one place to run.
    let gauges = |http: reqwest::Client, base: String| async move {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        ["running", "waiting", "limit", "queue_limit"].map(|g| {
            let series = format!("tacit_factor_passes_{g}{{factor=\"gait\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(series.as_str()))
                .unwrap_or_else(|| panic!("{series} not in:\n{text}"))
                .to_string()
        })
    };
    assert_eq!(
        gauges(http.clone(), base.clone()).await,
        ["1", "1", "1", "1"]
    );
    for (url, body) in [
        (url.clone(), infer(40..60)),
        (
            format!("{base}/output"),
            json!({"op": "score", "features": rows(&pop, 8, 30..33), "template": template}),
        ),
    ] {
        let r = http.post(&url).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 503, "{url}");
        assert_eq!(r.headers()["retry-after"], "1", "{url}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["code"], "passes_busy", "{v}");
    }
    let (s, v) = post(&http, url.clone(), infer(30..33)).await;
    assert_eq!(s, 200, "a small request is computed at once: {v}");
    // The gateway's client hears "unavailable" but keeps its circuit closed: a busy
    // service is shedding load, not failing.
    let auth = tacit_backend::settings::AuthSettings {
        breaker_failures: 1,
        ..Default::default()
    };
    let token = tacit_backend::factor::auth::FactorToken::load(common::factor_token()).unwrap();
    let gateway_side =
        tacit_backend::scoring::RemoteFactor::new("gait", &base, &auth, Some(Arc::new(token)))
            .unwrap();
    use tacit_backend::scoring::{FactorClient, FactorError};
    for _ in 0..3 {
        let busy = gateway_side.enrol(rows(&pop, 8, 0..30)).await;
        assert!(
            matches!(&busy, Err(FactorError::Unavailable(m)) if m.contains("passes_busy")),
            "{busy:?}"
        );
    }
    assert!(!gateway_side.breaker_open());
    assert!(!waiting.is_finished(), "answered without a place to run");
    drop(running);
    let (s, v) = waiting.await.unwrap();
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["outputs"][0]["shape"], json!([20]), "{v}");
    assert_eq!(f.service.passes().in_use(), 0);
    assert_eq!(
        gauges(http.clone(), base.clone()).await,
        ["0", "0", "1", "1"]
    );
    stop(f, &dir).await;
}

/// A keystroke factor whose model was trained on touch vectors (fixed-text schema v2)
/// tells the gateway its version, and refuses the timing-only (v1) vectors of the same
/// phrase at enrolment and at scoring: a refusal with the reason, never a score. (The
/// gateway also keeps windows of another version away from it, `scoring::enrol` and
/// `scoring::decide`.)
#[tokio::test]
async fn a_touch_model_refuses_timing_only_vectors() {
    use tacit_backend::scoring::{FactorClient, FactorError, LocalFactor};
    use tacit_models::data::{Person, Sample};
    let keys = 6;
    let (v1, v2) = (3 * keys - 2, 5 * keys - 2);
    let mut rng = tacit_models::SplitMix64::new(5);
    let people = (0..10)
        .map(|p| {
            let centre: Vec<f64> = (0..v2).map(|_| 0.3 + 0.1 * rng.normal().abs()).collect();
            Person {
                id: format!("p{p}"),
                samples: (0..40)
                    .map(|i| Sample {
                        group: i / 10,
                        vector: centre
                            .iter()
                            .map(|c| (c * (1.0 + 0.1 * rng.normal())) as f32)
                            .collect(),
                    })
                    .collect(),
            }
        })
        .collect();
    let pop = Population {
        factor: FactorKind::KeystrokeFixed,
        schema_version: 2,
        dim: v2,
        people,
        source: "synthetic touch".into(),
        skipped: vec![],
    };
    let mut cfg = tacit_models::pipeline::PipelineConfig::for_factor(FactorKind::KeystrokeFixed);
    cfg.train = tacit_models::embedding::TrainConfig {
        steps: 20,
        batch: 64,
        hidden: 16,
        embedding: 8,
        ..tacit_models::embedding::TrainConfig::default()
    };
    let (_, artifact) =
        tacit_models::pipeline::build_model(&pop, &(0..8).collect::<Vec<_>>(), &cfg, &mut |_| {})
            .expect("train");
    let dir = common::temp_dir("touch-model");
    let model = artifact.to_bytes().expect("encode");
    let f = factor_of_kind(&dir, FactorKind::KeystrokeFixed, &model, |_| {}).await;
    let local = LocalFactor::new(f.service.clone());
    assert_eq!(local.schema_version(), Some(2));
    let touch: Vec<Vec<f32>> = rows(&pop, 9, 0..40);
    let timings: Vec<Vec<f32>> = touch.iter().map(|r| r[..v1].to_vec()).collect();
    match local.enrol(timings.clone()).await {
        Err(FactorError::Refused(m)) => assert!(m.contains(&format!("{v1}")), "{m}"),
        other => panic!("v1 rows enrolled on a v2 model: {other:?}"),
    }
    let t = local.enrol(touch[..30].to_vec()).await.expect("v2 enrols");
    match local.score(&t.template, timings[30..].to_vec()).await {
        Err(FactorError::Refused(m)) => assert!(m.contains(&format!("{v1}")), "{m}"),
        other => panic!("v1 rows scored on a v2 model: {other:?}"),
    }
    local
        .score(&t.template, touch[30..].to_vec())
        .await
        .expect("v2 scores");
    stop(f, &dir).await;
}

/// Feature objects of every person of `pop` as the gateway writes them: one upload per
/// session of 15 windows, sessions two hours apart.
async fn population_files(
    f: &tacit_backend::server::RunningFactor,
    pop: &Population,
) -> Vec<String> {
    let run = common::rand_suffix();
    let mut keys = Vec::new();
    for (p, person) in pop.people.iter().enumerate() {
        for (k, chunk) in person.samples.chunks(15).enumerate() {
            let key = format!("features/t{run}-p{p}/dev/{k:020}-{:032x}.bin", p * 100 + k);
            put_upload(
                f,
                &key,
                chunk,
                1_700_000_000_000 + k as u64 * 7_200_000,
                6_000,
            )
            .await;
            keys.push(key);
        }
    }
    keys
}

/// `/train` trains a population model from the people in the files it names, judges it
/// on people held out, registers it and promotes it; the service then serves it. Bad
/// requests are 400 and nothing is trained; a service on a fixed model file refuses a
/// promotion (409); too few people fail the job with a message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_train_job_trains_gates_registers_and_promotes_a_population_model() {
    let pop = common::gait_population_of(50);
    let dir = common::temp_dir("factor-train");
    let mut settings = common::settings(&common::Backing::Embedded, &dir);
    settings.factor.model_poll_ms = 100;
    let f = spawn_factor(settings, FactorKind::Gait).await.unwrap();
    assert!(f.service.model().is_none(), "no model in service yet");
    let base = f.url();
    let http = common::factor_client();
    let keys = population_files(&f, &pop).await;

    for (body, what) in [
        (json!({"files": keys, "gate_share": 0.9}), "gate share"),
        (json!({"files": keys, "steps": 0}), "steps"),
        (json!({"files": keys, "nope": 1}), "unknown field"),
        (
            json!({"files": ["s3://any/features/u/d/1.bin"]}),
            "s3 on a directory",
        ),
        (
            json!({"files": ["gs://b/features/u/d/1.bin"]}),
            "another scheme",
        ),
        (
            json!({"files": ["features/u/../../models/gait.tcm"]}),
            "escape",
        ),
        (
            json!({"files": ["models/gait.tcm"]}),
            "not a feature object",
        ),
        (json!({"files": []}), "no files"),
    ] {
        let (s, v) = post(&http, format!("{base}/train"), body).await;
        assert_eq!(s, 400, "{what}: {v}");
        assert_eq!(v["code"], "invalid_request", "{what}: {v}");
    }
    assert!(
        f.service
            .registry()
            .list(FactorKind::Gait)
            .await
            .unwrap()
            .is_empty()
    );

    // Too few people: the job fails and says why.
    let (s, v) = post(
        &http,
        format!("{base}/train"),
        json!({"files": keys[..12], "steps": 20}),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let done = wait_job(&http, &base, v["jobId"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(done["error"].as_str().unwrap().contains("people"), "{done}");

    let (s, v) = post(
        &http,
        format!("{base}/train"),
        json!({"files": keys, "steps": 150, "seed": 3}),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let done = wait_job(&http, &base, v["jobId"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    let r = &done["result"];
    assert_eq!(r["version"], 1, "{r}");
    assert_eq!(
        r["data"]["train_people"].as_u64().unwrap() + r["data"]["gate_people"].as_u64().unwrap(),
        50,
        "{r}"
    );
    assert!(r["gate"]["passed"].as_bool().unwrap(), "{r}");
    assert_eq!(r["promoted"], true, "{r}");
    let version = r["model_version"].as_str().unwrap().to_owned();
    // The service follows the registry's pointer.
    let mut served = String::new();
    for _ in 0..100 {
        if let Some(m) = f.service.model() {
            served = m.version.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served, version);
    let (s, v) = get(&http, format!("{base}/v2/models/gait")).await;
    assert_eq!(
        (s, v["versions"][0].as_str()),
        (200, Some(version.as_str())),
        "{v}"
    );
    // A second candidate, not promoted: registered as v2, the service keeps v1.
    let (s, v) = post(
        &http,
        format!("{base}/train"),
        json!({"files": keys, "steps": 150, "seed": 4, "promote": false}),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let done = wait_job(&http, &base, v["jobId"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        (
            done["result"]["version"].as_u64(),
            done["result"]["promoted"].as_bool()
        ),
        (Some(2), Some(false)),
        "{done}"
    );
    assert_eq!(done["result"]["parent"], 1, "{done}");
    let reg = f.service.registry();
    assert_eq!(
        reg.served(FactorKind::Gait).await.unwrap().current(),
        Some(1)
    );
    stop(f, &dir).await;

    // A service on a fixed model file cannot promote into it.
    let (_, dir, f) = gait_factor("factor-train-fixed", |_| {}).await;
    let base = f.url();
    let (s, v) = post(
        &http,
        format!("{base}/train"),
        json!({"files": ["features/u/d/1.bin"]}),
    )
    .await;
    assert_eq!((s, v["code"].as_str()), (409, Some("conflict")), "{v}");
    stop(f, &dir).await;
}
