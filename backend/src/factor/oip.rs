//! Open Inference Protocol v2 (KServe / Triton) over JSON: types and the infer logic.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::sync::Arc;

use super::{LoadedModel, TemplateCache};
use tacit_models::template::Template;

/// Most vectors in one infer request.
pub const MAX_ROWS: usize = 4096;

/// An input tensor.
#[derive(Debug, Deserialize)]
pub struct InferInput {
    /// Tensor name.
    pub name: String,
    /// Shape.
    pub shape: Vec<i64>,
    /// Datatype (`FP32`, `BYTES`, ...).
    pub datatype: String,
    /// Row-major data, flat or nested.
    #[serde(default)]
    pub data: TensorData,
    /// Per-tensor parameters (the binary-data extension is not supported).
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// A requested output.
#[derive(Debug, Deserialize)]
pub struct RequestedOutput {
    /// Output name.
    pub name: String,
    /// Parameters (ignored except for the binary-data flag, which is refused).
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// An infer request.
#[derive(Debug, Deserialize)]
pub struct InferRequest {
    /// Request id, echoed.
    #[serde(default)]
    pub id: Option<String>,
    /// Inputs.
    pub inputs: Vec<InferInput>,
    /// Requested outputs (all that apply when absent).
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutput>>,
}

/// An output tensor.
#[derive(Debug, Serialize)]
pub struct OutputTensor {
    /// Name.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Datatype.
    pub datatype: &'static str,
    /// Row-major data.
    pub data: Vec<f32>,
}

/// An infer response.
#[derive(Debug, Serialize)]
pub struct InferResponse {
    /// Model name.
    pub model_name: String,
    /// Model version.
    pub model_version: String,
    /// Echoed request id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Outputs.
    pub outputs: Vec<OutputTensor>,
}

/// What is wrong with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadKind {
    /// Malformed or not fitting the model: 400 `invalid_request`.
    Invalid,
    /// Too large: 413 `too_large`.
    TooLarge,
    /// The template gives no finite score (zero spread, overflowing values): 422
    /// `degenerate_template`, never a 200 with `null` scores.
    DegenerateTemplate,
}

/// A client error with its message.
#[derive(Debug)]
pub struct BadRequest(pub String, pub BadKind);

impl BadRequest {
    /// The HTTP status.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self.1 {
            BadKind::Invalid => StatusCode::BAD_REQUEST,
            BadKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BadKind::DegenerateTemplate => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self.1 {
            BadKind::Invalid => "invalid_request",
            BadKind::TooLarge => "too_large",
            BadKind::DegenerateTemplate => "degenerate_template",
        }
    }
}

fn bad<T>(m: impl Into<String>) -> Result<T, BadRequest> {
    Err(BadRequest(m.into(), BadKind::Invalid))
}

/// The refusal of a template whose scores are not finite numbers.
pub fn degenerate() -> BadRequest {
    BadRequest(
        "template: degenerate (its scores are not finite numbers): enrol again".into(),
        BadKind::DegenerateTemplate,
    )
}

fn binary_requested(p: &Option<Value>) -> bool {
    p.as_ref()
        .and_then(|p| p.get("binary_data"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// A tensor's `data`, flattened while it is parsed (no intermediate JSON tree: the
/// numbers go straight into one vector, which is most of the cost of an infer call).
#[derive(Debug, Default, PartialEq)]
pub struct TensorData {
    /// The numbers, row-major.
    pub numbers: Vec<f64>,
    /// The strings (BYTES tensors).
    pub strings: Vec<String>,
    /// Whether anything else (booleans, nulls, objects) was found.
    pub other: bool,
}

struct Collect<'a>(&'a mut TensorData);

impl<'de> serde::de::DeserializeSeed<'de> for Collect<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Collect<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("numbers or strings, in nested lists")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Collect(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        if self.0.numbers.capacity() == 0 {
            // A request's tensor holds tens to thousands of numbers: growing from one
            // by doubling would reallocate up to a dozen times.
            self.0.numbers.reserve(64);
        }
        self.0.numbers.push(v);
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.numbers.push(v as f64);
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.numbers.push(v as f64);
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.strings.push(v.to_owned());
        Ok(())
    }

    fn visit_string<E>(self, v: String) -> Result<(), E> {
        self.0.strings.push(v);
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.0.other = true;
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.other = true;
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.other = true;
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(())
    }
}

impl<'de> Deserialize<'de> for TensorData {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut data = TensorData::default();
        serde::de::DeserializeSeed::deserialize(Collect(&mut data), d)?;
        Ok(data)
    }
}

/// The validated inputs of a request.
pub struct Parsed {
    /// Feature vectors.
    pub rows: Vec<Vec<f32>>,
    /// The template, if given.
    pub template: Option<Arc<Template>>,
    /// Output names to return.
    pub outputs: Vec<String>,
}

/// Validates a request against the model (`templates`: the service's parse cache).
pub fn parse(
    req: &InferRequest,
    m: &LoadedModel,
    templates: &TemplateCache,
) -> Result<Parsed, BadRequest> {
    let dim = m.dim();
    let mut rows = None;
    let mut template = None;
    if req.inputs.len() > 2 {
        return bad("expected the inputs `features` and optionally `template`");
    }
    for input in &req.inputs {
        if binary_requested(&input.parameters) {
            return bad("the binary tensor data extension is not supported: send JSON data");
        }
        match input.name.as_str() {
            "features" => {
                if input.datatype != "FP32" {
                    return bad(format!(
                        "features: datatype {} (expected FP32)",
                        input.datatype
                    ));
                }
                let (n, d) = match input.shape.as_slice() {
                    [n, d] if *n >= 1 && *d >= 1 => (*n as usize, *d as usize),
                    _ => {
                        return bad(format!(
                            "features: shape {:?} (expected [n, {dim}])",
                            input.shape
                        ));
                    }
                };
                if d != dim {
                    return bad(format!(
                        "features: {d} values per row, the model takes {dim}"
                    ));
                }
                if n > MAX_ROWS {
                    return Err(BadRequest(
                        format!("features: {n} rows, at most {MAX_ROWS} per request"),
                        BadKind::TooLarge,
                    ));
                }
                let data = &input.data;
                if data.other || !data.strings.is_empty() {
                    return bad("features: data must hold numbers only");
                }
                let flat = &data.numbers;
                if flat.len() != n * d {
                    return bad(format!(
                        "features: {} values for shape [{n}, {d}]",
                        flat.len()
                    ));
                }
                let mut out = Vec::with_capacity(n);
                for (r, chunk) in flat.chunks(d).enumerate() {
                    let mut row = Vec::with_capacity(d);
                    for (c, v) in chunk.iter().enumerate() {
                        let x = *v as f32;
                        if !x.is_finite() {
                            return bad(format!("features[{r}][{c}] is not a finite number"));
                        }
                        row.push(x);
                    }
                    out.push(row);
                }
                rows = Some(out);
            }
            "template" => {
                if input.datatype != "BYTES" {
                    return bad(format!(
                        "template: datatype {} (expected BYTES)",
                        input.datatype
                    ));
                }
                let data = &input.data;
                let [s] = data.strings.as_slice() else {
                    return bad("template: expected one string");
                };
                if data.other || !data.numbers.is_empty() {
                    return bad("template: expected one string");
                }
                if s.len() > 1 << 20 {
                    return bad("template: larger than 1 MiB");
                }
                let t = templates.parse(s).map_err(|e| {
                    BadRequest(format!("template: not a template ({e})"), BadKind::Invalid)
                })?;
                if t.factor != m.model.meta().factor {
                    return bad(format!(
                        "template: for factor {}, this is {}",
                        t.factor,
                        m.model.meta().factor
                    ));
                }
                if t.detector.centre.len() != dim
                    || t.contrast
                        .as_ref()
                        .is_some_and(|(lr, _)| lr.w.len() != dim + m.embedding_dim())
                {
                    return bad("template: does not fit this model's dimensions");
                }
                template = Some(t);
            }
            other => {
                return bad(format!(
                    "unknown input {other:?} (expected features, template)"
                ));
            }
        }
    }
    let Some(rows) = rows else {
        return bad("missing input `features`");
    };
    let allowed: &[&str] = if template.is_some() {
        &[
            "llr",
            "raw",
            "attempt_llr",
            "impostor_llr",
            "impostor_floor",
        ]
    } else {
        &["embedding"]
    };
    let outputs = match &req.outputs {
        None => allowed.iter().map(|s| s.to_string()).collect(),
        Some(list) => {
            let mut v = Vec::new();
            for o in list {
                if binary_requested(&o.parameters) {
                    return bad("the binary tensor data extension is not supported");
                }
                if !allowed.contains(&o.name.as_str()) {
                    return bad(format!(
                        "unknown output {:?} for this request (available: {})",
                        o.name,
                        allowed.join(", ")
                    ));
                }
                v.push(o.name.clone());
            }
            v
        }
    };
    Ok(Parsed {
        rows,
        template,
        outputs,
    })
}

/// Runs the model (blocking: call from a blocking thread).
pub fn run(p: Parsed, m: &LoadedModel) -> Result<Vec<OutputTensor>, BadRequest> {
    let n = p.rows.len();
    let mut out = Vec::new();
    match &p.template {
        Some(t) => {
            let scores = m
                .score(t, &p.rows)
                .map_err(|e| BadRequest(e.to_string(), BadKind::Invalid))?;
            // A template with zero spread or overflowing numbers parses and fits, and
            // then scores NaN or infinity (in FP32), which JSON can only carry as `null`.
            if scores
                .iter()
                .any(|s| !((s.llr as f32).is_finite() && (s.raw as f32).is_finite()))
            {
                return Err(degenerate());
            }
            let attempt = m.model.attempt(t, &scores);
            if attempt
                .as_ref()
                .is_some_and(|a| !(a.llr as f32).is_finite())
            {
                return Err(degenerate());
            }
            for name in &p.outputs {
                match name.as_str() {
                    "llr" | "raw" => out.push(OutputTensor {
                        name: name.clone(),
                        shape: vec![n],
                        datatype: "FP32",
                        data: scores
                            .iter()
                            .map(|s| if name == "llr" { s.llr } else { s.raw } as f32)
                            .collect(),
                    }),
                    "attempt_llr" => {
                        if let Some(a) = &attempt {
                            out.push(OutputTensor {
                                name: name.clone(),
                                shape: vec![1],
                                datatype: "FP32",
                                data: vec![a.llr as f32],
                            })
                        }
                    }
                    // The smallest rate enough distinct impostor pairs support.
                    "impostor_floor" => {
                        if let Some(h) = attempt.as_ref().and_then(|a| a.impostor.as_ref()) {
                            out.push(OutputTensor {
                                name: name.clone(),
                                shape: vec![1],
                                datatype: "FP32",
                                data: vec![h.min_far as f32],
                            })
                        }
                    }
                    // `(bin centre, count)` rows of the impostor histogram of attempts of
                    // this length: both exact in FP32 (multiples of ¼, counts < 2²⁴).
                    _ => {
                        if let Some(h) = attempt.as_ref().and_then(|a| a.impostor.as_ref()) {
                            let pairs = h.pairs();
                            out.push(OutputTensor {
                                name: name.clone(),
                                shape: vec![pairs.len(), 2],
                                datatype: "FP32",
                                data: pairs
                                    .iter()
                                    .flat_map(|&(c, k)| [c as f32, k as f32])
                                    .collect(),
                            })
                        }
                    }
                }
            }
        }
        None => {
            let r = m
                .model
                .represent(&p.rows)
                .map_err(|e| BadRequest(e.to_string(), BadKind::Invalid))?;
            let k = m.embedding_dim();
            let data = r
                .iter()
                .flat_map(|v| v[m.dim()..].iter().map(|&x| x as f32))
                .collect();
            out.push(OutputTensor {
                name: "embedding".into(),
                shape: vec![n, k],
                datatype: "FP32",
                data,
            });
        }
    }
    Ok(out)
}
