//! The synthetic gait population and model of the factor tests, and OIP v2 infer bodies
//! for them (also used by `examples/bench_fixture.rs`, which includes this file).
#![allow(dead_code)]

/// Gait vector width (`GAIT_V1`).
pub const GAIT_DIM: usize = 50;

/// 10 synthetic people × 60 gait vectors (4 sessions of 15), each around a personal
/// centre and inside the schema's ranges so that the records encode.
pub fn gait_population() -> tacit_models::data::Population {
    gait_population_of(10)
}

/// `n` synthetic people like those of [`gait_population`] (its first 10 are the same).
pub fn gait_population_of(n: usize) -> tacit_models::data::Population {
    tacit_models::data::synthetic_gait(n)
}

/// A small gait model artifact trained on the first `people` of `pop`.
pub fn gait_model(pop: &tacit_models::data::Population, people: usize, seed: u64) -> Vec<u8> {
    let people: Vec<usize> = (0..people).collect();
    train_small(pop, &people, seed, None)
}

/// A gait model trained and calibrated on people `10..` of `pop` (at least 40 people,
/// in two cross-fitting folds: enough impostor pairs to support a 5% false-accept rate), so that people
/// `0..10` are users it never saw. For tests of decisions.
pub fn calibrated_gait_model(pop: &tacit_models::data::Population, seed: u64) -> Vec<u8> {
    assert!(
        pop.people.len() >= 40,
        "a calibrated model needs 30 training people"
    );
    let people: Vec<usize> = (10..pop.people.len()).collect();
    train_small(pop, &people, seed, Some(2))
}

/// A small gait model artifact trained (and cross-fitted in `folds`) on `people` of
/// `pop`.
pub fn gait_model_of(
    pop: &tacit_models::data::Population,
    people: &[usize],
    seed: u64,
    folds: usize,
) -> Vec<u8> {
    train_small(pop, people, seed, Some(folds))
}

/// The small, quick pipeline of the factor tests on `people`.
fn train_small(
    pop: &tacit_models::data::Population,
    people: &[usize],
    seed: u64,
    calibration_folds: Option<usize>,
) -> Vec<u8> {
    use tacit_models::pipeline::{PipelineConfig, build_model};
    let mut cfg = PipelineConfig::for_factor(tacit_models::FactorKind::Gait);
    cfg.train = tacit_models::embedding::TrainConfig {
        steps: 80,
        batch: 64,
        hidden: 32,
        embedding: 16,
        seed,
        ..tacit_models::embedding::TrainConfig::default()
    };
    if let Some(f) = calibration_folds {
        cfg.calibration_folds = f;
    }
    let (_, a) = build_model(pop, people, &cfg, &mut |_| {}).expect("train");
    a.to_bytes().expect("encode")
}

/// OIP v2 infer bodies (one JSON object per string) for the serving benchmark and the
/// PyTorch peer equivalence test. Templates: for each of the first `people` people, a
/// full one (from their first 40 vectors) and, every other person, a fallback one (from
/// their first 16). Each body scores `rows` vectors against one template, the vectors
/// taken in turn from the whole population (genuine and impostor alike) and asks for the
/// per-window outputs `llr` and `raw`; `count` bodies in all, cycling through the
/// templates.
pub fn infer_bodies(
    model: &tacit_models::template::FactorModel,
    pop: &tacit_models::data::Population,
    people: usize,
    rows: usize,
    count: usize,
) -> Vec<String> {
    use tacit_models::template::EnrolConfig;
    let cfg = EnrolConfig::for_factor(pop.factor);
    let vectors = |p: usize, n: usize| -> Vec<Vec<f32>> {
        pop.people[p].samples[..n]
            .iter()
            .map(|s| s.vector.clone())
            .collect()
    };
    let mut templates = Vec::new();
    for p in 0..people.min(pop.people.len()) {
        let full = model.enrol(&vectors(p, 40), &cfg).expect("enrol");
        assert!(!full.is_fallback());
        templates.push(serde_json::to_string(&full).expect("template json"));
        if p % 2 == 1 {
            let fallback = model.enrol(&vectors(p, 16), &cfg).expect("enrol");
            assert!(fallback.is_fallback());
            templates.push(serde_json::to_string(&fallback).expect("template json"));
        }
    }
    let pool: Vec<&Vec<f32>> = pop
        .people
        .iter()
        .flat_map(|p| p.samples.iter().map(|s| &s.vector))
        .collect();
    // A stride through the pool so that consecutive rows come from different people.
    let stride = pool.len() / 7 + 1;
    (0..count)
        .map(|i| {
            let data: Vec<f32> = (0..rows)
                .flat_map(|j| pool[((i * rows + j) * stride) % pool.len()].iter().copied())
                .collect();
            serde_json::json!({
                "inputs": [
                    {"name": "features", "datatype": "FP32", "shape": [rows, pop.dim], "data": data},
                    {"name": "template", "datatype": "BYTES", "shape": [1], "data": [templates[i % templates.len()]]}
                ],
                // The per-window outputs the PyTorch peer serves too (the attempt
                // calibration stays in Tacit).
                "outputs": [{"name": "llr"}, {"name": "raw"}]
            })
            .to_string()
        })
        .collect()
}

/// An infer body of [`infer_bodies`] with binary tensor data (Triton's extension), as
/// the load generator's request line `{"headers": {...}, "body_base64": "..."}`: the
/// features as FP32 little-endian bytes and the template as one length-prefixed BYTES
/// element after the JSON. The numbers are FP32 values already, so the request is the
/// same.
pub fn binary_request_line(json: &str) -> Result<String, String> {
    let mut req: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut binary = Vec::new();
    let inputs = req["inputs"]
        .as_array_mut()
        .ok_or("a body without inputs")?;
    for input in inputs {
        let data = input
            .as_object_mut()
            .and_then(|o| o.remove("data"))
            .ok_or("an input without data")?;
        let data = data.as_array().ok_or("data not a list")?;
        let start = binary.len();
        match input["datatype"].as_str() {
            Some("FP32") => {
                for v in data {
                    let x = v.as_f64().ok_or("FP32 data not numbers")? as f32;
                    binary.extend_from_slice(&x.to_le_bytes());
                }
            }
            Some("BYTES") => {
                for v in data {
                    let text = v.as_str().ok_or("BYTES data not strings")?;
                    let len = u32::try_from(text.len()).map_err(|e| e.to_string())?;
                    binary.extend_from_slice(&len.to_le_bytes());
                    binary.extend_from_slice(text.as_bytes());
                }
            }
            other => return Err(format!("datatype {other:?}")),
        }
        input["parameters"] = serde_json::json!({ "binary_data_size": binary.len() - start });
    }
    let mut body = serde_json::to_vec(&req).map_err(|e| e.to_string())?;
    let header_length = body.len();
    body.extend_from_slice(&binary);
    Ok(serde_json::json!({
        "headers": {
            "Content-Type": "application/octet-stream",
            "Inference-Header-Content-Length": header_length.to_string(),
        },
        "body_base64": tacit_shared::api::b64_encode(&body),
    })
    .to_string())
}
