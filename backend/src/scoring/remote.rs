//! A factor service reached over HTTP (docs/factor-api.md): enrolment through the job
//! API's synchronous `POST /output`, scoring through the Open Inference Protocol's
//! `POST /v2/models/{name}/infer`. Every call has a time limit; failed calls
//! (connection errors, timeouts, 5xx, 503 "not ready") are retried with backoff and
//! counted by a circuit breaker; 4xx answers are the factor's verdict on the request
//! and are not retried.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use tacit_models::calibration::{LlrHistogram, MAX_BINS};
use tacit_models::template::AttemptScore;

use std::sync::Arc;

use super::breaker::Breaker;
use super::client::{Embedded, Enrolled, FactorClient, FactorError, Scored};
use crate::factor::PASSES_BUSY;
use crate::factor::auth::FactorToken;
use crate::settings::AuthSettings;

/// Largest answer read from a factor service.
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// A factor service at a URL.
#[derive(Debug)]
pub struct RemoteFactor {
    name: String,
    base_url: String,
    http: reqwest::Client,
    retries: u32,
    breaker: Breaker,
    /// The bearer token of every call (`None`: factor authentication is off).
    token: Option<Arc<FactorToken>>,
    /// The model version of the newest answer that named one.
    last_version: std::sync::Mutex<Option<String>>,
}

/// Longest model version taken from an answer (a hash or a tag; longer is refused).
const MAX_VERSION_CHARS: usize = 128;

/// A model version from an answer, if it has a usable one.
fn version_of(v: &Value) -> Option<String> {
    v.get("model_version")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= MAX_VERSION_CHARS)
        .filter(|s| s.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
}

impl RemoteFactor {
    /// A client of the factor `name` (its OIP model name) at `base_url`, sending
    /// `token` as the bearer token of every call.
    pub fn new(
        name: &str,
        base_url: &str,
        s: &AuthSettings,
        token: Option<Arc<FactorToken>>,
    ) -> Result<Self, super::FactorConfigError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(s.timeout_ms.max(1)))
            .connect_timeout(Duration::from_millis(s.timeout_ms.clamp(1, 1_000)))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|source| super::FactorConfigError::HttpClient {
                name: name.to_string(),
                source,
            })?;
        Ok(RemoteFactor {
            name: name.to_string(),
            base_url: base_url.trim_end_matches('/').to_string(),
            http,
            retries: s.retries,
            token,
            last_version: std::sync::Mutex::new(None),
            breaker: Breaker::new(
                s.breaker_failures,
                Duration::from_millis(s.breaker_cooldown_ms),
            ),
        })
    }

    fn saw_version(&self, version: Option<&str>) {
        if let Some(v) = version {
            *self
                .last_version
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(v.to_string());
        }
    }

    /// One POST with retries, backoff and the breaker. `Ok` carries a 2xx JSON body.
    async fn post(&self, path: &str, body: &Value) -> Result<Value, FactorError> {
        let url = format!("{}{path}", self.base_url);
        let mut last = FactorError::Unavailable("not called".into());
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(25 << attempt.min(6))).await;
            }
            let Some(call) = self.breaker.allow(Instant::now()) else {
                return Err(FactorError::Unavailable(
                    "circuit open after repeated failures".into(),
                ));
            };
            match self.attempt(&url, body).await {
                Ok(v) => {
                    call.success();
                    return Ok(v);
                }
                Err(Attempt::Failed(e @ FactorError::Refused(_))) => {
                    // The service works; it refused this request.
                    call.success();
                    return Err(e);
                }
                // A service that answered "busy" sheds load as it should: counting that
                // as a failure would open the circuit and take the factor away for the
                // whole cooldown after one burst. The call counts as neither (a trial
                // call leaves the trial to the next caller).
                Err(Attempt::Busy(e)) => {
                    drop(call);
                    last = e;
                }
                Err(Attempt::Failed(e)) => {
                    call.failure(Instant::now());
                    last = e;
                }
            }
        }
        Err(last)
    }

    async fn attempt(&self, url: &str, body: &Value) -> Result<Value, Attempt> {
        let unavailable = |m: String| FactorError::Unavailable(m);
        let mut req = self.http.post(url).json(body);
        if let Some(v) = self.token.as_ref().and_then(|t| t.header_value()) {
            req = req.header(reqwest::header::AUTHORIZATION, v);
        }
        let mut resp = req.send().await.map_err(|e| {
            unavailable(if e.is_timeout() {
                "timed out".to_string()
            } else if e.is_connect() {
                "connection refused or unreachable".to_string()
            } else {
                format!("request failed: {e}")
            })
        })?;
        let status = resp.status();
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
        {
            return Err(unavailable("answer too large".into()).into());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| {
            unavailable(if e.is_timeout() {
                "timed out".to_string()
            } else {
                format!("reading the answer: {e}")
            })
        })? {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(unavailable("answer too large".into()).into());
            }
            bytes.extend_from_slice(&chunk);
        }
        let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
        let message = || {
            parsed
                .as_ref()
                .and_then(|v| v.get("error"))
                .and_then(Value::as_str)
                .unwrap_or("no error message")
                .chars()
                .take(300)
                .collect::<String>()
        };
        if status.is_success() {
            return parsed.ok_or_else(|| unavailable("answer is not JSON".into()).into());
        }
        if status.as_u16() == 503
            && parsed
                .as_ref()
                .and_then(|v| v.get("code"))
                .and_then(Value::as_str)
                == Some(PASSES_BUSY)
        {
            return Err(Attempt::Busy(unavailable(format!(
                "busy (503 {PASSES_BUSY}): {}",
                message()
            ))));
        }
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(unavailable(format!("{status}: {}", message())).into());
        }
        Err(FactorError::Refused(format!("{status}: {}", message())).into())
    }
}

/// Why one attempt of a call failed.
enum Attempt {
    /// The service answered that it is busy (shedding load, not failing).
    Busy(FactorError),
    /// Anything else.
    Failed(FactorError),
}

impl From<FactorError> for Attempt {
    fn from(e: FactorError) -> Self {
        Attempt::Failed(e)
    }
}

fn malformed(what: &str) -> FactorError {
    FactorError::Unavailable(format!("malformed answer: {what}"))
}

/// The `data` of output `name` of an OIP answer: `None` when there is no such output.
fn output_data<'a>(v: &'a Value, name: &str) -> Option<Option<&'a Value>> {
    Some(
        v.get("outputs")
            .and_then(Value::as_array)?
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some(name))?
            .get("data"),
    )
}

/// The numbers of output `name` of an OIP answer: `None` when absent, an error when
/// not a list of finite numbers.
fn output_of(v: &Value, name: &str) -> Option<Result<Vec<f64>, FactorError>> {
    let data = output_data(v, name)?;
    Some(
        data.and_then(Value::as_array)
            .and_then(|d| {
                d.iter()
                    .map(|x| x.as_f64().filter(|x| x.is_finite()))
                    .collect::<Option<Vec<f64>>>()
            })
            .ok_or_else(|| malformed(&format!("{name} is not a list of finite numbers"))),
    )
}

/// The impostor histogram of an answer (`impostor_llr` rows of `(bin centre, count)`)
/// with its pairs' floor (`impostor_floor`) when the factor sends one.
fn histogram_of(v: &Value) -> Result<Option<LlrHistogram>, FactorError> {
    let Some(h) = output_of(v, "impostor_llr") else {
        return Ok(None);
    };
    let h = h?;
    if h.len() % 2 != 0 || h.len() > 2 * MAX_BINS {
        return Err(malformed("impostor_llr is not rows of 2"));
    }
    let pairs: Vec<(f64, f64)> = h.chunks_exact(2).map(|p| (p[0], p[1])).collect();
    let mut h = LlrHistogram::from_pairs(&pairs).map_err(|e| malformed(&e.to_string()))?;
    if let Some(f) = output_of(v, "impostor_floor") {
        let [f] = f?[..] else {
            return Err(malformed("impostor_floor is not one number"));
        };
        if !(0.0..=1.0).contains(&f) {
            return Err(malformed("impostor_floor is not a rate"));
        }
        // Sent as FP32: rounded up a hair so that the claim never gets bolder on the way.
        h.min_far = (f * (1.0 + 1e-6)).min(1.0);
    }
    Ok(Some(h))
}

/// A scoring answer (OIP v2 response JSON) for `n` vectors, every bound checked.
fn scored_from(v: &Value, n: usize) -> Result<Scored, FactorError> {
    let llr = output_of(v, "llr").ok_or_else(|| malformed("no llr output"))??;
    if llr.len() != n {
        return Err(malformed("llr has the wrong length"));
    }
    let attempt = match output_of(v, "attempt_llr") {
        None => None,
        Some(a) => {
            let [llr] = a?[..] else {
                return Err(malformed("attempt_llr is not one number"));
            };
            Some(AttemptScore {
                llr,
                windows: n,
                calibrated_windows: 0,
                impostor: histogram_of(v)?,
            })
        }
    };
    Ok(Scored {
        llr,
        attempt,
        model_version: version_of(v),
    })
}

/// The strings of BYTES output `name` of an OIP answer.
fn strings_of(v: &Value, name: &str) -> Option<Result<Vec<String>, FactorError>> {
    let data = output_data(v, name)?;
    Some(
        data.and_then(Value::as_array)
            .and_then(|d| {
                d.iter()
                    .map(|x| x.as_str().filter(|s| s.len() <= 64).map(str::to_string))
                    .collect::<Option<Vec<String>>>()
            })
            .ok_or_else(|| malformed(&format!("{name} is not a list of short strings"))),
    )
}

/// An embedding answer for `n` images: per image its face record (validated against the
/// face schema, so nothing the store would refuse is kept) or the factor's refusal.
fn embedded_from(v: &Value, n: usize) -> Result<Vec<Embedded>, FactorError> {
    use tacit_shared::schema::{FACE_EMBEDDING_DIM, FACE_HASH_CHUNKS, FACE_V1};
    let need = |name: &str, per: usize| -> Result<Vec<f64>, FactorError> {
        let x = output_of(v, name).ok_or_else(|| malformed(&format!("no {name} output")))??;
        if x.len() != n * per {
            return Err(malformed(&format!("{name} has the wrong length")));
        }
        Ok(x)
    };
    let embedding = need("embedding", FACE_EMBEDDING_DIM)?;
    let quality = need("quality", 1)?;
    let hash = need("image_hash", FACE_HASH_CHUNKS)?;
    let refusal = strings_of(v, "refusal").ok_or_else(|| malformed("no refusal output"))??;
    if refusal.len() != n {
        return Err(malformed("refusal has the wrong length"));
    }
    (0..n)
        .map(|i| {
            if !refusal[i].is_empty() {
                return Ok(Embedded::Refused(refusal[i].clone()));
            }
            let values: Vec<f32> = embedding[i * FACE_EMBEDDING_DIM..(i + 1) * FACE_EMBEDDING_DIM]
                .iter()
                .chain(std::iter::once(&quality[i]))
                .chain(&hash[i * FACE_HASH_CHUNKS..(i + 1) * FACE_HASH_CHUNKS])
                .map(|&x| x as f32)
                .collect();
            tacit_shared::schema::validate(
                tacit_shared::payload::FactorKind::Face,
                FACE_V1,
                &values,
                false,
            )
            .map_err(|e| malformed(&format!("face record {i}: {e}")))?;
            Ok(Embedded::Face(values))
        })
        .collect()
}

#[async_trait]
impl FactorClient for RemoteFactor {
    async fn embed_images(
        &self,
        images: &[tacit_shared::payload::FaceImage],
    ) -> Result<Vec<Embedded>, FactorError> {
        let n = images.len();
        let data: Vec<String> = images
            .iter()
            .map(|im| tacit_shared::api::b64_encode(&im.bytes))
            .collect();
        let body = json!({
            "inputs": [{"name": "image", "shape": [n], "datatype": "BYTES", "data": data}]
        });
        let v = self
            .post(&format!("/v2/models/{}/infer", self.name), &body)
            .await?;
        embedded_from(&v, n)
    }

    async fn enrol(&self, rows: Vec<Vec<f32>>) -> Result<Enrolled, FactorError> {
        let v = self
            .post("/output", &json!({ "op": "enrol", "features": rows }))
            .await?;
        let out = v.get("output").ok_or_else(|| malformed("no output"))?;
        let template = out
            .get("template")
            .ok_or_else(|| malformed("no template"))?;
        Ok(Enrolled {
            template: serde_json::to_string(template).map_err(|_| malformed("template"))?,
            fallback: out
                .get("fallback")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            model_version: version_of(out),
        })
        .inspect(|e| self.saw_version(e.model_version.as_deref()))
    }

    async fn score(&self, template: &str, rows: Vec<Vec<f32>>) -> Result<Scored, FactorError> {
        let n = rows.len();
        let dim = rows.first().map_or(0, Vec::len);
        let flat: Vec<f32> = rows.into_iter().flatten().collect();
        let body = json!({
            "inputs": [
                {"name": "features", "shape": [n, dim], "datatype": "FP32", "data": flat},
                {"name": "template", "shape": [1], "datatype": "BYTES", "data": [template]}
            ]
            // No `outputs`: every output that applies. A factor that calibrates whole
            // attempts adds `attempt_llr` and `impostor_llr`; one that does not (a
            // foreign-runtime factor) answers `llr` alone and its mean stands for the attempt.
        });
        let v = self
            .post(&format!("/v2/models/{}/infer", self.name), &body)
            .await?;
        let scored = scored_from(&v, n)?;
        self.saw_version(scored.model_version.as_deref());
        Ok(scored)
    }

    fn location(&self) -> String {
        self.base_url.clone()
    }

    fn model_version(&self) -> Option<String> {
        self.last_version
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn breaker_open(&self) -> bool {
        self.breaker.is_open(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(outputs: Value) -> Value {
        json!({ "model_name": "gait", "model_version": "v1", "outputs": outputs })
    }

    fn out(name: &str, data: Value) -> Value {
        json!({ "name": name, "datatype": "FP32", "shape": [1], "data": data })
    }

    #[test]
    fn an_embedding_answer_is_checked_image_by_image() {
        let ok = |hash: Value, quality: f64, refusal: Value| {
            answer(json!([
                out("embedding", json!(vec![0.1; 256])),
                out("quality", json!([quality, 0.0])),
                out("image_hash", json!(hash)),
                {"name": "refusal", "datatype": "BYTES", "shape": [2], "data": refusal},
            ]))
        };
        let got = embedded_from(
            &ok(json!([1, 2, 3, 4, 0, 0, 0, 0]), 0.9, json!(["", "no_face"])),
            2,
        )
        .unwrap();
        assert!(
            matches!(&got[0], Embedded::Face(v) if v.len() == 133 && v[128] == 0.9 && v[132] == 4.0)
        );
        assert_eq!(got[1], Embedded::Refused("no_face".into()));
        // Anything the face schema would refuse, or of the wrong shape, is a malformed
        // answer (the factor is at fault: the upload is retried, nothing stored).
        for bad in [
            ok(json!([1, 2, 3, 4, 0, 0, 0, 0]), 1.5, json!(["", ""])),
            ok(json!([1.5, 2, 3, 4, 0, 0, 0, 0]), 0.9, json!(["", ""])),
            ok(json!([70000, 2, 3, 4, 0, 0, 0, 0]), 0.9, json!(["", ""])),
            ok(json!([1, 2, 3, 4, 0, 0, 0]), 0.9, json!(["", ""])),
            ok(json!([1, 2, 3, 4, 0, 0, 0, 0]), 0.9, json!([""])),
            ok(json!([1, 2, 3, 4, 0, 0, 0, 0]), 0.9, json!(["", 7])),
            answer(json!([out("embedding", json!(vec![0.1; 256]))])),
        ] {
            assert!(
                matches!(embedded_from(&bad, 2), Err(FactorError::Unavailable(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_calibrated_answer_carries_its_histogram_and_floor() {
        let v = answer(json!([
            out("llr", json!([1.0, 2.0])),
            out("attempt_llr", json!([1.5])),
            out("impostor_llr", json!([-1.0, 90, 0.5, 10])),
            out("impostor_floor", json!([0.2])),
        ]));
        let s = scored_from(&v, 2).unwrap();
        let a = s.attempt.unwrap();
        assert_eq!(a.llr, 1.5);
        let h = a.impostor.unwrap();
        assert_eq!(h.attempts(), 100);
        assert!(h.min_far >= 0.2 && h.min_far < 0.2 + 1e-6);
        assert!(h.floor() >= 0.2);
        // Without the floor: only the attempt count bounds the claim.
        let v = answer(json!([
            out("llr", json!([1.0])),
            out("attempt_llr", json!([1.5])),
            out("impostor_llr", json!([0.5, 10])),
        ]));
        let h = scored_from(&v, 1)
            .unwrap()
            .attempt
            .unwrap()
            .impostor
            .unwrap();
        assert_eq!(h.min_far, 0.0);
        // A foreign-runtime factor: per-vector LLRs only.
        let v = answer(json!([out("llr", json!([1.0]))]));
        assert!(scored_from(&v, 1).unwrap().attempt.is_none());
    }

    #[test]
    fn malformed_answers_are_refused() {
        let base = |extra: Vec<Value>| {
            let mut o = vec![
                out("llr", json!([1.0])),
                out("attempt_llr", json!([1.5])),
                out("impostor_llr", json!([0.5, 10])),
            ];
            o.extend(extra);
            answer(Value::Array(o))
        };
        let cases = [
            (
                "floor above 1",
                base(vec![out("impostor_floor", json!([1.5]))]),
            ),
            (
                "negative floor",
                base(vec![out("impostor_floor", json!([-0.1]))]),
            ),
            (
                "two floors",
                base(vec![out("impostor_floor", json!([0.1, 0.2]))]),
            ),
            (
                "floor not a number",
                base(vec![out("impostor_floor", json!(["x"]))]),
            ),
            ("no llr", answer(json!([]))),
            (
                "llr of another length",
                answer(json!([out("llr", json!([1.0, 2.0]))])),
            ),
            (
                "two attempt LLRs",
                answer(json!([
                    out("llr", json!([1.0])),
                    out("attempt_llr", json!([1.0, 2.0]))
                ])),
            ),
            (
                "odd histogram",
                answer(json!([
                    out("llr", json!([1.0])),
                    out("attempt_llr", json!([1.0])),
                    out("impostor_llr", json!([0.5, 10, 1.0])),
                ])),
            ),
            (
                "histogram off the grid",
                answer(json!([
                    out("llr", json!([1.0])),
                    out("attempt_llr", json!([1.0])),
                    out("impostor_llr", json!([0.3, 10])),
                ])),
            ),
        ];
        for (what, v) in cases {
            assert!(
                matches!(scored_from(&v, 1), Err(FactorError::Unavailable(_))),
                "{what}"
            );
        }
    }
}
