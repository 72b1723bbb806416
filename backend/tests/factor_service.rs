//! The factor service role over real HTTP on loopback: OIP v2, the job API, bad input,
//! and a hot model reload under load — on local files and (under the test command) on
//! S3 (moto).

mod common;

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

async fn wait_job(http: &reqwest::Client, base: &str, id: &str) -> Value {
    for _ in 0..200 {
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
        let http = reqwest::Client::new();

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
        let (s, v) = post(
            &http,
            format!("{base}/output"),
            json!({"op": "enrol", "features": rows(&pop, 8, 0..30)}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        let template = v["output"]["template"].clone();
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

        // The job API over feature objects in the store.
        let mut keys = Vec::new();
        for (k, chunk) in pop.people[8].samples[..30].chunks(10).enumerate() {
            let payload = Payload {
                records: chunk
                    .iter()
                    .map(|s| FeatureRecord {
                        factor: FactorKind::Gait,
                        schema_version: 1,
                        window_start_ms: 1_700_000_000_000 + k as u64,
                        window_ms: 5120,
                        context: None,
                        values: s.vector.clone(),
                    })
                    .collect(),
            };
            let key = format!("features/u-{}/dev/{k:020}-x.bin", common::rand_suffix());
            // As the gateway writes them (encrypted at rest on PostgreSQL + S3).
            f.service
                .objects()
                .put_durable(&key, payload.encode().unwrap())
                .await
                .unwrap();
            keys.push(key);
        }
        let (s, v) = post(&http, format!("{base}/train"), json!({"files": keys})).await;
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
            format!("{base}/train"),
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
                format!("{base}/train")
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
            "tacit_http_requests_total{route=\"/train\",method=\"POST\",status=\"202\"}",
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
