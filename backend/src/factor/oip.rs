//! Open Inference Protocol v2 (KServe / Triton) over JSON, with the binary tensor data
//! extension (tensors as raw bytes after the JSON): types and the infer logic.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::sync::Arc;

use super::{LoadedModel, TemplateCache};
use tacit_models::template::Template;

/// Most vectors in one infer request.
pub const MAX_ROWS: usize = 4096;

/// Most parameters in one `parameters` object.
pub const MAX_PARAMETERS: usize = 64;

/// A `parameters` object: names to scalars (boolean, number, string), as the protocol
/// defines them. An array or object value is refused as soon as the parser meets it,
/// before any of it is built: read into a generic JSON tree, a body of small numbers
/// would take many times its size in memory, and be held while the request waits.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Parameters(serde_json::Map<String, Value>);

impl std::ops::Deref for Parameters {
    type Target = serde_json::Map<String, Value>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Parameters {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, Visitor};

        /// One parameter's value.
        struct Scalar(Value);

        impl<'de> Deserialize<'de> for Scalar {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = Scalar;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a boolean, number or string")
                    }
                    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                        Ok(Scalar(Value::Bool(v)))
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                        Ok(Scalar(Value::from(v)))
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                        Ok(Scalar(Value::from(v)))
                    }
                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                        serde_json::Number::from_f64(v)
                            .map(|n| Scalar(Value::Number(n)))
                            .ok_or_else(|| E::custom("a parameter is not a finite number"))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                        Ok(Scalar(Value::String(v.to_owned())))
                    }
                    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                        Ok(Scalar(Value::String(v)))
                    }
                }
                d.deserialize_any(V)
            }
        }

        struct M;
        impl<'de> Visitor<'de> for M {
            type Value = Parameters;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of parameters")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Parameters, A::Error> {
                let mut map = serde_json::Map::new();
                while let Some((name, Scalar(value))) = a.next_entry::<String, Scalar>()? {
                    if map.len() == MAX_PARAMETERS {
                        return Err(de::Error::custom(format!(
                            "more than {MAX_PARAMETERS} parameters"
                        )));
                    }
                    map.insert(name, value);
                }
                Ok(Parameters(map))
            }
        }
        d.deserialize_map(M)
    }
}

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
    /// Per-tensor parameters (`binary_data_size`: the data is binary, after the JSON).
    #[serde(default)]
    pub parameters: Option<Parameters>,
}

/// A requested output.
#[derive(Debug, Deserialize)]
pub struct RequestedOutput {
    /// Output name.
    pub name: String,
    /// Parameters (`binary_data`: return this output as binary data; others ignored).
    #[serde(default)]
    pub parameters: Option<Parameters>,
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
    /// Request parameters (`binary_data_output`: every output as binary data).
    #[serde(default)]
    pub parameters: Option<Parameters>,
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
    /// Row-major data (absent when it travels as binary data after the JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<f32>>,
    /// `binary_data_size` when the data travels as binary data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BinaryParameters>,
}

/// An output's parameters in the binary tensor data extension.
#[derive(Debug, Serialize)]
pub struct BinaryParameters {
    /// Bytes of this output in the binary part, which holds the outputs in order.
    pub binary_data_size: usize,
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

/// A boolean parameter, `None` when absent.
fn flag(p: &Option<Parameters>, name: &str) -> Result<Option<bool>, BadRequest> {
    match p.as_ref().and_then(|p| p.get(name)) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => bad(format!("parameter {name}: {v} (expected true or false)")),
    }
}

/// The response header (and request header) of the binary tensor data extension: the
/// length of the JSON part of a body; the rest is binary tensor data.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// Splits a body into its JSON part and its binary tensor data, given the value of
/// the [`HEADER_LENGTH`] header (without it: all JSON, and no binary data).
pub fn split_body<'a>(
    body: &'a [u8],
    header_length: Option<&[u8]>,
) -> Result<(&'a [u8], Option<&'a [u8]>), BadRequest> {
    let Some(v) = header_length else {
        return Ok((body, None));
    };
    let n = std::str::from_utf8(v)
        .ok()
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<usize>().ok())
        .ok_or_else(|| {
            BadRequest(
                "Inference-Header-Content-Length: not a number of bytes".into(),
                BadKind::Invalid,
            )
        })?;
    if n > body.len() {
        return bad(format!(
            "Inference-Header-Content-Length: {n} bytes, the body has {}",
            body.len()
        ));
    }
    let (json, binary) = body.split_at(n);
    Ok((json, Some(binary)))
}

/// Moves the binary tensor data into the inputs that declare a `binary_data_size`, in
/// their order: FP32 as 4-byte little-endian values, BYTES as elements of a 4-byte
/// little-endian length and that many bytes (UTF-8 here: the template is JSON). Every
/// byte must belong to exactly one input. `binary` is `None` for a body without the
/// [`HEADER_LENGTH`] header, where no input may declare binary data.
pub fn attach_binary(req: &mut InferRequest, binary: Option<&[u8]>) -> Result<(), BadRequest> {
    let declared = binary.is_some();
    let mut binary = binary.unwrap_or_default();
    for input in &mut req.inputs {
        let size = match input
            .parameters
            .as_ref()
            .and_then(|p| p.get("binary_data_size"))
        {
            None => continue,
            Some(v) => match v.as_u64().and_then(|n| usize::try_from(n).ok()) {
                Some(n) => n,
                None => {
                    return bad(format!(
                        "{}: binary_data_size {v} (expected a number of bytes)",
                        input.name
                    ));
                }
            },
        };
        if !declared {
            return bad(format!(
                "{}: binary_data_size without an Inference-Header-Content-Length header",
                input.name
            ));
        }
        if input.data != TensorData::default() {
            return bad(format!(
                "{}: both data and binary_data_size (send one)",
                input.name
            ));
        }
        let (mine, rest) = cut(&input.name, "binary_data_size", binary, size)?;
        binary = rest;
        // The shape says how many elements there are: no more are read (a body of empty
        // BYTES elements would otherwise become millions of strings).
        let elements = input
            .shape
            .iter()
            .try_fold(1usize, |n, &d| {
                usize::try_from(d).ok().and_then(|d| n.checked_mul(d))
            })
            .ok_or_else(|| {
                BadRequest(
                    format!("{}: shape {:?}", input.name, input.shape),
                    BadKind::Invalid,
                )
            })?;
        match input.datatype.as_str() {
            "FP32" => {
                if size % 4 != 0 || size / 4 != elements {
                    return bad(format!(
                        "{}: binary_data_size {size} is not the {elements} FP32 values of shape {:?}",
                        input.name, input.shape
                    ));
                }
                input.data.numbers = mine
                    .chunks_exact(4)
                    .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                    .collect();
            }
            "BYTES" => {
                let mut left = mine;
                while !left.is_empty() {
                    if input.data.strings.len() == elements {
                        return bad(format!(
                            "{}: more BYTES elements than the {elements} of shape {:?}",
                            input.name, input.shape
                        ));
                    }
                    let Some((len, tail)) = left.split_first_chunk::<4>() else {
                        return bad(format!("{}: a BYTES element's length is cut", input.name));
                    };
                    let len = u32::from_le_bytes(*len) as usize;
                    let (element, tail) = cut(&input.name, "a BYTES element", tail, len)?;
                    let Ok(text) = std::str::from_utf8(element) else {
                        return bad(format!("{}: a BYTES element is not UTF-8", input.name));
                    };
                    input.data.strings.push(text.to_owned());
                    left = tail;
                }
                if input.data.strings.len() != elements {
                    return bad(format!(
                        "{}: {} BYTES elements for shape {:?}",
                        input.name,
                        input.data.strings.len(),
                        input.shape
                    ));
                }
            }
            other => {
                return bad(format!(
                    "{}: binary data of datatype {other} (expected FP32 or BYTES)",
                    input.name
                ));
            }
        }
    }
    if !binary.is_empty() {
        return bad(format!(
            "{} bytes of binary data that no input declares",
            binary.len()
        ));
    }
    Ok(())
}

/// The first `n` bytes of `bytes` and the rest, or the refusal of `what` of input
/// `name` for declaring more than is there.
fn cut<'a>(
    name: &str,
    what: &str,
    bytes: &'a [u8],
    n: usize,
) -> Result<(&'a [u8], &'a [u8]), BadRequest> {
    if n > bytes.len() {
        return bad(format!(
            "{name}: {what} of {n} bytes, {} bytes of binary data left",
            bytes.len()
        ));
    }
    Ok(bytes.split_at(n))
}

/// Moves the data of the outputs wanted as binary into one buffer (in output order),
/// leaving their `binary_data_size`; the buffer is empty when none is.
pub fn binary_outputs(outputs: &mut [OutputTensor], wanted: &[Wanted]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in outputs {
        if !wanted.iter().any(|w| w.binary && w.name == t.name) {
            continue;
        }
        let data = t.data.take().unwrap_or_default();
        out.reserve(4 * data.len());
        for v in &data {
            out.extend_from_slice(&v.to_le_bytes());
        }
        t.parameters = Some(BinaryParameters {
            binary_data_size: 4 * data.len(),
        });
    }
    out
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
    /// Outputs to return.
    pub outputs: Vec<Wanted>,
}

/// An output to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// Its name.
    pub name: String,
    /// Whether its data travels as binary data after the JSON.
    pub binary: bool,
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
        match input.name.as_str() {
            "features" if rows.is_some() => return bad("input `features` given twice"),
            "template" if template.is_some() => return bad("input `template` given twice"),
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
    let all_binary = flag(&req.parameters, "binary_data_output")?.unwrap_or(false);
    let outputs = match &req.outputs {
        None => allowed
            .iter()
            .map(|s| Wanted {
                name: s.to_string(),
                binary: all_binary,
            })
            .collect(),
        Some(list) => {
            let mut v = Vec::new();
            for o in list {
                if !allowed.contains(&o.name.as_str()) {
                    return bad(format!(
                        "unknown output {:?} for this request (available: {})",
                        o.name,
                        allowed.join(", ")
                    ));
                }
                if v.iter().any(|w: &Wanted| w.name == o.name) {
                    return bad(format!("output {:?} requested twice", o.name));
                }
                // An output's own `binary_data` overrides the request's
                // `binary_data_output` (the extension's rule).
                v.push(Wanted {
                    name: o.name.clone(),
                    binary: flag(&o.parameters, "binary_data")?.unwrap_or(all_binary),
                });
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
            for Wanted { name, .. } in &p.outputs {
                match name.as_str() {
                    "llr" | "raw" => out.push(OutputTensor {
                        name: name.clone(),
                        shape: vec![n],
                        datatype: "FP32",
                        data: Some(
                            scores
                                .iter()
                                .map(|s| if name == "llr" { s.llr } else { s.raw } as f32)
                                .collect(),
                        ),
                        parameters: None,
                    }),
                    "attempt_llr" => {
                        if let Some(a) = &attempt {
                            out.push(OutputTensor {
                                name: name.clone(),
                                shape: vec![1],
                                datatype: "FP32",
                                data: Some(vec![a.llr as f32]),
                                parameters: None,
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
                                data: Some(vec![h.min_far as f32]),
                                parameters: None,
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
                                data: Some(
                                    pairs
                                        .iter()
                                        .flat_map(|&(c, k)| [c as f32, k as f32])
                                        .collect(),
                                ),
                                parameters: None,
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
                data: Some(data),
                parameters: None,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> InferRequest {
        serde_json::from_str(json).expect("request")
    }

    fn features(size: i64) -> String {
        format!(
            r#"{{"inputs": [{{"name": "features", "shape": [1, 2], "datatype": "FP32",
            "parameters": {{"binary_data_size": {size}}}}}]}}"#
        )
    }

    #[test]
    fn parameters_are_scalars_and_few() {
        let r = request(
            r#"{"inputs": [], "parameters": {"a": true, "b": 3, "c": -1.5, "d": "x"},
               "outputs": [{"name": "llr", "parameters": {"binary_data": false}}]}"#,
        );
        let p = r.parameters.expect("parameters");
        assert_eq!(p.len(), 4);
        assert_eq!(p.get("c"), Some(&serde_json::json!(-1.5)));
        assert!(
            serde_json::from_str::<InferRequest>(r#"{"inputs": [], "parameters": null}"#)
                .expect("null")
                .parameters
                .is_none()
        );
        // Nested values are refused as they are met; so are too many names.
        for nested in [r#"{"a": [0, 0, 0]}"#, r#"{"a": {"b": 1}}"#, "[1]", "3"] {
            let body = format!(r#"{{"inputs": [], "parameters": {nested}}}"#);
            assert!(
                serde_json::from_str::<InferRequest>(&body).is_err(),
                "{nested}"
            );
        }
        let many: Vec<String> = (0..=MAX_PARAMETERS)
            .map(|i| format!(r#""p{i}": 1"#))
            .collect();
        let body = format!(r#"{{"inputs": [], "parameters": {{{}}}}}"#, many.join(","));
        let err = serde_json::from_str::<InferRequest>(&body).unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
    }

    #[test]
    fn the_header_splits_the_body() {
        let body = b"{}abcd";
        assert_eq!(split_body(body, None).unwrap(), (&body[..], None));
        assert_eq!(
            split_body(body, Some(b"2")).unwrap(),
            (&b"{}"[..], Some(&b"abcd"[..]))
        );
        assert_eq!(split_body(body, Some(b"6")).unwrap().1, Some(&b""[..]));
        for bad in [
            &b"7"[..],
            b"",
            b"-1",
            b"+2",
            b" 2",
            b"2x",
            b"99999999999999999999999",
        ] {
            assert!(split_body(body, Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn binary_inputs_are_read_in_order() {
        let mut req = request(
            r#"{"inputs": [
                {"name": "template", "shape": [1], "datatype": "BYTES",
                 "parameters": {"binary_data_size": 12}},
                {"name": "features", "shape": [1, 2], "datatype": "FP32",
                 "parameters": {"binary_data_size": 8}}]}"#,
        );
        let mut binary = vec![8, 0, 0, 0];
        binary.extend_from_slice(b"{\"a\": 1}");
        binary.extend_from_slice(&1.5f32.to_le_bytes());
        binary.extend_from_slice(&(-0.25f32).to_le_bytes());
        attach_binary(&mut req, Some(&binary)).unwrap();
        assert_eq!(req.inputs[0].data.strings, vec!["{\"a\": 1}".to_string()]);
        assert_eq!(req.inputs[1].data.numbers, vec![1.5, -0.25]);
    }

    #[test]
    fn binary_data_must_match_what_the_inputs_declare() {
        let eight = [0u8; 8];
        attach_binary(&mut request(&features(8)), Some(&eight)).unwrap();
        for (json, bytes) in [
            (features(12), &eight[..]),   // more declared than sent
            (features(4), &eight[..]),    // bytes left over
            (features(6), &eight[..6]),   // not whole FP32 values
            (features(-8), &eight[..]),   // not a size
            (features(8), &[0u8; 0][..]), // nothing sent
        ] {
            assert!(
                attach_binary(&mut request(&json), Some(bytes)).is_err(),
                "{json}"
            );
        }
        // Binary data declared in a body without the header.
        assert!(attach_binary(&mut request(&features(8)), None).is_err());
        assert!(attach_binary(&mut request(&features(0)), None).is_err());
        // Undeclared bytes with no binary input at all.
        let json = r#"{"inputs": [{"name": "features", "shape": [1, 1], "datatype": "FP32", "data": [1]}]}"#;
        assert!(attach_binary(&mut request(json), Some(&[0])).is_err());
        attach_binary(&mut request(json), Some(&[])).unwrap();
        // Both data and binary data.
        let both = r#"{"inputs": [{"name": "features", "shape": [1, 1], "datatype": "FP32",
            "data": [1], "parameters": {"binary_data_size": 4}}]}"#;
        assert!(attach_binary(&mut request(both), Some(&[0; 4])).is_err());
        // Another datatype.
        let int = r#"{"inputs": [{"name": "features", "shape": [1, 1], "datatype": "INT32",
            "parameters": {"binary_data_size": 4}}]}"#;
        assert!(attach_binary(&mut request(int), Some(&[0; 4])).is_err());
        // BYTES: a cut length, an element longer than what is left, not UTF-8.
        let text = |size: usize| {
            format!(
                r#"{{"inputs": [{{"name": "template", "shape": [1], "datatype": "BYTES",
                "parameters": {{"binary_data_size": {size}}}}}]}}"#
            )
        };
        for bytes in [
            &[1u8, 0][..],
            &[9, 0, 0, 0, b'a'],
            &[2, 0, 0, 0, 0xff, 0xfe],
        ] {
            assert!(
                attach_binary(&mut request(&text(bytes.len())), Some(bytes)).is_err(),
                "{bytes:?}"
            );
        }
        // As many BYTES elements as the shape says, no more and no fewer.
        let two = [1u8, 0, 0, 0, b'a', 1, 0, 0, 0, b'b'];
        assert!(attach_binary(&mut request(&text(10)), Some(&two)).is_err());
        assert!(attach_binary(&mut request(&text(0)), Some(&[])).is_err());
        let mut req = request(&text(10).replace("[1]", "[2]"));
        attach_binary(&mut req, Some(&two)).unwrap();
        assert_eq!(req.inputs[0].data.strings, ["a", "b"]);
        // A length of 2³² - 1 with little behind it is refused, not allocated.
        let huge = [0xff, 0xff, 0xff, 0xff, 1];
        assert!(attach_binary(&mut request(&text(5)), Some(&huge)).is_err());
    }

    #[test]
    fn binary_outputs_move_their_data_after_the_json() {
        let tensor = |name: &str, data: Vec<f32>| OutputTensor {
            name: name.into(),
            shape: vec![data.len()],
            datatype: "FP32",
            data: Some(data),
            parameters: None,
        };
        let mut outputs = vec![tensor("llr", vec![1.0, -2.0]), tensor("raw", vec![0.5])];
        let wanted = [
            Wanted {
                name: "llr".into(),
                binary: true,
            },
            Wanted {
                name: "raw".into(),
                binary: false,
            },
        ];
        let bytes = binary_outputs(&mut outputs, &wanted);
        let mut want = 1.0f32.to_le_bytes().to_vec();
        want.extend_from_slice(&(-2.0f32).to_le_bytes());
        assert_eq!(bytes, want);
        let json = serde_json::to_value(&outputs).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"name": "llr", "shape": [2], "datatype": "FP32",
                 "parameters": {"binary_data_size": 8}},
                {"name": "raw", "shape": [1], "datatype": "FP32", "data": [0.5]}
            ])
        );
    }

    #[test]
    fn any_bytes_give_an_answer_not_a_panic() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5000 {
            let len = (next() % 64) as usize;
            let body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let header = (next() % 80).to_string();
            let Ok((_, Some(binary))) = split_body(&body, Some(header.as_bytes())) else {
                continue;
            };
            let (a, b) = (next() % 40, next() % 40);
            let kind = ["FP32", "BYTES", "INT8"][(next() % 3) as usize];
            let mut req = request(&format!(
                r#"{{"inputs": [
                {{"name": "template", "shape": [1], "datatype": "{kind}",
                  "parameters": {{"binary_data_size": {a}}}}},
                {{"name": "features", "shape": [1, 2], "datatype": "FP32",
                  "parameters": {{"binary_data_size": {b}}}}}]}}"#
            ));
            if attach_binary(&mut req, Some(binary)).is_ok() {
                assert_eq!(a + b, binary.len() as u64);
            }
        }
    }

    #[test]
    fn binary_flags_must_be_booleans() {
        let p = |v: Value| {
            Some(
                serde_json::from_value::<Parameters>(serde_json::json!({ "binary_data": v }))
                    .unwrap(),
            )
        };
        assert_eq!(
            flag(&p(Value::Bool(true)), "binary_data").unwrap(),
            Some(true)
        );
        assert_eq!(
            flag(&p(Value::Bool(false)), "binary_data").unwrap(),
            Some(false)
        );
        assert_eq!(flag(&None, "binary_data").unwrap(), None);
        assert!(flag(&p(Value::from("yes")), "binary_data").is_err());
    }
}
