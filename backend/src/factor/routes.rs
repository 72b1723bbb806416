//! The factor service's HTTP routes: OIP v2 and the job API. Every error is
//! `{"error": "...", "code": "..."}` with a 4xx/5xx status. Every route but the
//! liveness and readiness probes requires the factor bearer token ([`super::auth`]),
//! and every request has the gateway's time limit (408 past it, body reading included,
//! so a client that trickles its body cannot hold a connection).

// Helpers return ready-made error responses for early returns; their size is irrelevant
// next to an HTTP round trip.
#![allow(clippy::result_large_err)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::FactorToken;
use super::oip::{self, InferRequest, InferResponse};
use super::{AdmitError, FactorService, JobError, JobRecord, JobTicket, LoadedModel};
use crate::error::ApiError;
use tacit_models::template::Template;

/// Requests of at most this many rows are computed on the async worker.
const INLINE_ROWS: usize = 16;

/// Seconds a caller refused for too many jobs is told to wait.
const JOB_RETRY_AFTER_S: u64 = 2;

/// State of the routes.
#[derive(Clone)]
struct Ctx {
    svc: Arc<FactorService>,
    max_body: usize,
}

/// How a factor service's router treats requests.
#[derive(Clone, Debug)]
pub struct FactorRouterOptions {
    /// Largest request body.
    pub max_body: usize,
    /// Time limit of a request, body reading included (answered 408).
    pub request_timeout: Duration,
    /// The bearer token every route but the probes requires (`None`: no token, when
    /// factor authentication is turned off).
    pub token: Option<Arc<FactorToken>>,
}

/// The stable code of a status, for the errors of this service that have no more
/// specific one.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "invalid_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ => "internal",
    }
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    ApiError::new(status, code_of(status), msg).into_response()
}

/// Seconds a request refused for a full pass queue is told to wait: passes take
/// milliseconds, so the queue moves on within one.
const BUSY_RETRY_AFTER_S: u64 = 1;

/// 503 `passes_busy` with `Retry-After`: every place to run or wait for a forward pass is taken.
fn busy(e: super::PassesBusy) -> Response {
    ApiError {
        retry_after_s: Some(BUSY_RETRY_AFTER_S),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            super::PASSES_BUSY,
            e.to_string(),
        )
    }
    .into_response()
}

/// The caller's address, for the per-caller job quota (the listener records it on
/// every connection; unspecified where none was recorded).
struct Caller(IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Caller(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip()),
        ))
    }
}

/// The routes of a factor service, with its own `/metrics` (request metrics of every
/// route, process metrics) and the request ids, spans and access log of the gateway.
pub fn factor_router(svc: Arc<FactorService>, opts: FactorRouterOptions) -> Router {
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let (shown, passes_of) = (metrics.clone(), svc.clone());
    let guarded = Router::new()
        .route("/v2", get(server_meta))
        .route("/v2/models/{name}", get(model_meta))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/train", post(train))
        .route("/enrol", post(enrol))
        .route("/input", post(input))
        .route("/output", post(output))
        .route("/status", get(status))
        .route(
            "/metrics",
            get(move || async move {
                // How full the forward passes' places are, read as they are scraped.
                let (passes, factor) = (passes_of.passes(), passes_of.factor.name());
                shown.with(|| {
                    let gauge = |name: &'static str, v: usize| {
                        metrics::gauge!(name, "factor" => factor).set(v as f64);
                    };
                    gauge("tacit_factor_passes_running", passes.running());
                    gauge("tacit_factor_passes_waiting", passes.waiting());
                    let (running, queued) = passes.limits();
                    gauge("tacit_factor_passes_limit", running);
                    gauge("tacit_factor_passes_queue_limit", queued);
                });
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    shown.render(),
                )
            }),
        )
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            opts.token.clone(),
            super::auth::require_token,
        ));
    // The probes stay open: the kubelet calls them without the token.
    let routes = Router::new()
        .route("/v2/health/live", get(|| async { StatusCode::OK }))
        .route("/v2/health/ready", get(ready))
        .merge(guarded)
        .layer(axum::extract::DefaultBodyLimit::disable())
        // The gateway's layers: 408 past the time limit (body reading included), and the
        // framework's own refusals (405, undecodable paths, 408) as JSON errors.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            opts.request_timeout,
        ))
        .layer(axum::middleware::map_response(crate::error::json_errors));
    crate::observe::observed(routes, metrics).with_state(Ctx {
        svc,
        max_body: opts.max_body,
    })
}

async fn body_bytes(ctx: &Ctx, body: Body) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, ctx.max_body).await.map_err(|_| {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body larger than {} bytes", ctx.max_body),
        )
    })
}

async fn body_json<T: serde::de::DeserializeOwned>(ctx: &Ctx, body: Body) -> Result<T, Response> {
    let bytes = body_bytes(ctx, body).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("bad JSON: {e}")))
}

fn loaded(ctx: &Ctx) -> Result<Arc<LoadedModel>, Response> {
    ctx.svc
        .model()
        .ok_or_else(|| error(StatusCode::SERVICE_UNAVAILABLE, "model not loaded yet"))
}

fn check_name(ctx: &Ctx, name: &str) -> Result<(), Response> {
    if name == ctx.svc.factor.name() {
        Ok(())
    } else {
        Err(error(
            StatusCode::NOT_FOUND,
            format!("unknown model {name:?}"),
        ))
    }
}

async fn server_meta() -> Response {
    axum::Json(json!({
        "name": "tacit-factor",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"]
    }))
    .into_response()
}

async fn ready(State(ctx): State<Ctx>) -> Response {
    match loaded(&ctx) {
        Ok(_) => StatusCode::OK.into_response(),
        Err(r) => r,
    }
}

async fn model_ready(State(ctx): State<Ctx>, Path(name): Path<String>) -> Response {
    if let Err(r) = check_name(&ctx, &name) {
        return r;
    }
    match loaded(&ctx) {
        Ok(_) => StatusCode::OK.into_response(),
        Err(r) => r,
    }
}

async fn model_meta(State(ctx): State<Ctx>, Path(name): Path<String>) -> Response {
    if let Err(r) = check_name(&ctx, &name) {
        return r;
    }
    let m = match loaded(&ctx) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let meta = m.model.meta();
    axum::Json(json!({
        "name": name,
        "versions": [m.version],
        "platform": "tacit-burn",
        "inputs": [
            {"name": "features", "datatype": "FP32", "shape": [-1, m.dim()]},
            {"name": "template", "datatype": "BYTES", "shape": [1]}
        ],
        "outputs": [
            {"name": "llr", "datatype": "FP32", "shape": [-1]},
            {"name": "raw", "datatype": "FP32", "shape": [-1]},
            {"name": "attempt_llr", "datatype": "FP32", "shape": [1]},
            {"name": "impostor_llr", "datatype": "FP32", "shape": [-1, 2]},
            {"name": "impostor_floor", "datatype": "FP32", "shape": [1]},
            {"name": "embedding", "datatype": "FP32", "shape": [-1, m.embedding_dim()]}
        ],
        "parameters": {
            "schema_version": meta.schema_version,
            // The data set's name, never where it lay on the training machine.
            "trained_on": dataset_name(&meta.training.dataset),
            "training_people": meta.training.people,
            // Where large batches are scored: `cuda` in a CUDA build with a GPU.
            "compute": ctx.svc.compute().name()
        }
    }))
    .into_response()
}

/// The last part of a data set's path or URL (what it is called, not where it was).
fn dataset_name(dataset: &str) -> &str {
    dataset
        .trim_end_matches(['/', '\\'])
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
}

async fn infer(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = check_name(&ctx, &name) {
        return r;
    }
    let bytes = match body_bytes(&ctx, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut lengths = headers.get_all(oip::HEADER_LENGTH).iter();
    let header_length = lengths.next().map(|v| v.as_bytes());
    if lengths.next().is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "Inference-Header-Content-Length given more than once",
        );
    }
    let bad = |e: oip::BadRequest| ApiError::new(e.status(), e.code(), e.0).into_response();
    let (json_part, binary) = match oip::split_body(&bytes, header_length) {
        Ok(parts) => parts,
        Err(e) => return bad(e),
    };
    let mut req: InferRequest = match serde_json::from_slice(json_part) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad JSON: {e}")),
    };
    if let Err(e) = oip::attach_binary(&mut req, binary) {
        return bad(e);
    }
    // Everything the request holds is in `req` now: the body need not outlive the pass.
    drop(bytes);
    let m = match loaded(&ctx) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let parsed = match oip::parse(&req, &m, &ctx.svc.templates) {
        Ok(p) => p,
        Err(e) => return ApiError::new(e.status(), e.code(), e.0).into_response(),
    };
    // The parsed rows are all the pass needs: the request's own copy of its numbers (and
    // anything else it carried) is not held while the request waits for a place.
    let id = req.id.take();
    drop(req);
    // A few rows take tens of microseconds: less than handing them to the blocking pool
    // and back. Larger requests must not hold an async worker.
    let wanted = parsed.outputs.clone();
    let outputs = if parsed.rows.len() <= INLINE_ROWS {
        Ok(oip::run(parsed, &m))
    } else {
        let permit = match ctx.svc.passes().enter().await {
            Ok(p) => p,
            Err(e) => return busy(e),
        };
        let model = m.clone();
        permit.run_blocking(move || oip::run(parsed, &model)).await
    };
    match outputs {
        Ok(Ok(mut outputs)) => {
            let binary = oip::binary_outputs(&mut outputs, &wanted);
            let answer = InferResponse {
                model_name: name,
                model_version: m.version.clone(),
                id,
                outputs,
            };
            if !wanted.iter().any(|w| w.binary) {
                return axum::Json(answer).into_response();
            }
            // The binary tensor data extension: the JSON, then the outputs' bytes.
            let mut body = match serde_json::to_vec(&answer) {
                Ok(b) => b,
                Err(e) => {
                    return error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("encoding the answer: {e}"),
                    );
                }
            };
            let json_length = body.len();
            body.extend_from_slice(&binary);
            (
                [
                    (
                        CONTENT_TYPE,
                        HeaderValue::from_static("application/octet-stream"),
                    ),
                    (
                        HeaderName::from_static(oip::HEADER_LENGTH),
                        HeaderValue::from(json_length),
                    ),
                ],
                body,
            )
                .into_response()
        }
        Ok(Err(e)) => ApiError::new(e.status(), e.code(), e.0).into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("inference task: {e}"),
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobBody {
    files: Vec<String>,
    #[serde(default)]
    template: Option<Template>,
}

/// Reads the vectors of this factor from feature files (encoded payloads).
async fn read_vectors(
    svc: &FactorService,
    files: &[String],
    m: &LoadedModel,
) -> Result<Vec<Vec<f32>>, JobError> {
    let meta = m.model.meta();
    let mut rows = Vec::new();
    for key in files {
        let entries = svc
            .objects()
            .read_entries(key)
            .await
            .map_err(|source| JobError::Read {
                key: key.clone(),
                source,
            })?;
        for entry in entries {
            let payload =
                tacit_shared::payload::Payload::decode(&entry.payload).map_err(|source| {
                    JobError::Decode {
                        key: key.clone(),
                        source,
                    }
                })?;
            rows.extend(
                payload
                    .records
                    .into_iter()
                    .filter(|r| {
                        r.factor == meta.factor
                            && r.schema_version == meta.schema_version
                            && r.values.len() == m.dim()
                    })
                    .map(|r| r.values),
            );
        }
    }
    Ok(rows)
}

/// The store keys of a job's files (store keys, or `s3://BUCKET/KEY` of this service's
/// bucket), bounded in number; anything else is a 400 naming the first bad entry.
fn job_keys(ctx: &Ctx, files: &[String]) -> Result<Vec<String>, Response> {
    if files.is_empty() {
        return Err(error(StatusCode::BAD_REQUEST, "files: empty"));
    }
    if files.len() > ctx.svc.max_job_files {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "files: {} keys, at most {}",
                files.len(),
                ctx.svc.max_job_files
            ),
        ));
    }
    // Only feature objects: never models or anything else in the bucket.
    files
        .iter()
        .map(|f| {
            ctx.svc
                .objects()
                .job_file_key(f)
                .map_err(|e| error(StatusCode::BAD_REQUEST, format!("files: {e}")))
        })
        .collect()
}

fn admit(
    ctx: &Ctx,
    kind: &'static str,
    caller: IpAddr,
) -> Result<(JobRecord, JobTicket), Response> {
    ctx.svc.jobs.create(kind, caller).map_err(|e| {
        let (status, code) = match e {
            AdmitError::CallerQuota(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_jobs"),
            AdmitError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "jobs_busy"),
            AdmitError::Io(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        };
        let mut err = ApiError::new(status, code, e.to_string());
        err.retry_after_s = Some(JOB_RETRY_AFTER_S);
        err.into_response()
    })
}

async fn start_job(ctx: Ctx, caller: IpAddr, body: Body, kind: &'static str) -> Response {
    let job: JobBody = match body_json(&ctx, body).await {
        Ok(j) => j,
        Err(r) => return r,
    };
    let keys = match job_keys(&ctx, &job.files) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let m = match loaded(&ctx) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let template = match (kind, job.template) {
        ("input", None) => return error(StatusCode::BAD_REQUEST, "template: required to score"),
        ("enrol", Some(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "template: an enrolment builds one (to score, POST /input)",
            );
        }
        (_, t) => t,
    };
    let (rec, ticket) = match admit(&ctx, kind, caller) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let id = rec.id.clone();
    let svc = ctx.svc.clone();
    tokio::spawn(async move {
        let outcome = match read_vectors(&svc, &keys, &m).await {
            Err(e) => Err(e),
            Ok(rows) => {
                let m2 = m.clone();
                tokio::task::spawn_blocking(move || compute(&m2, rows, template.as_ref()))
                    .await
                    .unwrap_or_else(|e| Err(JobError::Task(e)))
            }
        };
        if let Err(e) = svc.jobs.finish(&id, outcome) {
            tracing::warn!("job {id}: cannot record the result: {e}");
        }
        // Counted as running until its result is recorded.
        drop(ticket);
    });
    (StatusCode::ACCEPTED, axum::Json(json!({ "jobId": rec.id }))).into_response()
}

/// Enrols (no template) or scores (with one).
fn compute(
    m: &LoadedModel,
    rows: Vec<Vec<f32>>,
    template: Option<&Template>,
) -> Result<Value, JobError> {
    match template {
        None => {
            let t = m.enrol(&rows)?;
            Ok(
                json!({ "template": t, "samples": rows.len(), "fallback": t.is_fallback(), "model_version": m.version }),
            )
        }
        Some(t) => {
            if rows.is_empty() {
                return Err(JobError::NoVectors);
            }
            let s = m.score(t, &rows)?;
            let llr: Vec<f64> = s.iter().map(|s| s.llr).collect();
            let mean = llr.iter().sum::<f64>() / llr.len() as f64;
            let attempt = m.model.attempt(t, &s);
            // As in `infer`: no `null` scores from a template that cannot score.
            if !(mean as f32).is_finite()
                || s.iter().any(|s| !(s.raw as f32).is_finite())
                || attempt
                    .as_ref()
                    .is_some_and(|a| !(a.llr as f32).is_finite())
            {
                return Err(JobError::DegenerateTemplate);
            }
            Ok(
                json!({ "scores": llr, "mean_llr": mean, "attempt": attempt, "samples": rows.len(), "model_version": m.version }),
            )
        }
    }
}

async fn enrol(State(ctx): State<Ctx>, Caller(caller): Caller, body: Body) -> Response {
    start_job(ctx, caller, body, "enrol").await
}

/// The body of `/train`: the feature files of the people to train on, and how.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainBody {
    files: Vec<String>,
    /// Put the candidate in service when the gate passes (default true).
    #[serde(default = "default_true")]
    promote: bool,
    /// Share of the people held out as the gate cohort (default 0.3).
    #[serde(default)]
    gate_share: Option<f64>,
    /// Training steps of the embedding network (default: the command line's).
    #[serde(default)]
    steps: Option<usize>,
    /// Seed of training, sampling and the split.
    #[serde(default)]
    seed: Option<u64>,
}

fn default_true() -> bool {
    true
}

/// Most training steps a job may ask for.
const MAX_TRAIN_STEPS: usize = 100_000;

/// Trains a population model of this factor from the people in the files (one person
/// per user in the keys), judges it against the model in service on people held out,
/// registers it and (unless `promote` is false) promotes it when the gate passes: what
/// `tacit-backend retrain` does, on files the caller names.
async fn train(State(ctx): State<Ctx>, Caller(caller): Caller, body: Body) -> Response {
    let job: TrainBody = match body_json(&ctx, body).await {
        Ok(j) => j,
        Err(r) => return r,
    };
    let keys = match job_keys(&ctx, &job.files) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let gate_share = job.gate_share.unwrap_or(0.3);
    if let Err(e) = crate::commands::check_gate_share(gate_share) {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    let mut args = crate::commands::TrainingArgs {
        // `factor.device`: CUDA when the binary has it and a GPU answers, else the CPU.
        device: ctx.svc.training_device().to_string(),
        ..Default::default()
    };
    if let Some(steps) = job.steps {
        if !(1..=MAX_TRAIN_STEPS).contains(&steps) {
            return error(
                StatusCode::BAD_REQUEST,
                format!("steps {steps}: expected 1..={MAX_TRAIN_STEPS}"),
            );
        }
        args.steps = steps;
    }
    if let Some(seed) = job.seed {
        args.seed = seed;
    }
    let factor = ctx.svc.factor;
    let cfg = match args.pipeline(factor) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if job.promote && ctx.svc.serves_fixed_file() {
        return ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "this service serves a fixed model file (TACIT_MODEL_URL), which a promotion \
             does not change: send \"promote\": false, or serve from the model registry",
        )
        .into_response();
    }
    let Some(slot) = ctx.svc.training_slot() else {
        let mut err = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "jobs_busy",
            "a training job is running; this service trains one at a time",
        );
        err.retry_after_s = Some(60);
        return err.into_response();
    };
    let (rec, ticket) = match admit(&ctx, "train", caller) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let id = rec.id.clone();
    let svc = ctx.svc.clone();
    tokio::spawn(async move {
        let outcome = train_job(&svc, keys, cfg, gate_share, job.promote).await;
        if let Err(e) = &outcome {
            tracing::warn!(job = %id, factor = %svc.factor, "training job failed: {e}");
        }
        if let Err(e) = svc.jobs.finish(&id, outcome) {
            tracing::warn!("job {id}: cannot record the result: {e}");
        }
        drop((ticket, slot));
    });
    (StatusCode::ACCEPTED, axum::Json(json!({ "jobId": rec.id }))).into_response()
}

/// A line of a training job's progress, to the service's log.
fn log_training(line: &str) {
    tracing::info!("{line}");
}

/// The training job: the population of the files, the gated training, and its
/// manifest (with `promoted`) as the result.
async fn train_job(
    svc: &FactorService,
    keys: Vec<String>,
    cfg: tacit_models::pipeline::PipelineConfig,
    gate_share: f64,
    promote: bool,
) -> Result<Value, JobError> {
    let opts = crate::training::StoreTrainingOptions::for_factor(svc.factor);
    let set = crate::training::population_from_files(svc.objects(), &keys, &opts)
        .await
        .map_err(|e| JobError::Training(e.to_string()))?;
    let out = crate::commands::train_gated(
        &svc.registry(),
        crate::commands::GatedTraining {
            cfg,
            set,
            gate_share,
            promote,
            progress: false,
        },
        &log_training,
    )
    .await
    .map_err(|e| JobError::Training(crate::error::Chain(&e).to_string()))?;
    let mut v =
        serde_json::to_value(&out.manifest).map_err(|e| JobError::Training(e.to_string()))?;
    if let Some(o) = v.as_object_mut() {
        o.insert("promoted".into(), Value::Bool(out.promoted));
    }
    Ok(v)
}

async fn input(State(ctx): State<Ctx>, Caller(caller): Caller, body: Body) -> Response {
    start_job(ctx, caller, body, "input").await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputBody {
    op: String,
    features: Vec<Vec<f32>>,
    #[serde(default)]
    template: Option<Template>,
}

async fn output(State(ctx): State<Ctx>, body: Body) -> Response {
    let req: OutputBody = match body_json(&ctx, body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let m = match loaded(&ctx) {
        Ok(m) => m,
        Err(r) => return r,
    };
    if req.features.len() > oip::MAX_ROWS {
        return error(
            StatusCode::BAD_REQUEST,
            format!("features: at most {} rows", oip::MAX_ROWS),
        );
    }
    let template = match (req.op.as_str(), req.template) {
        ("enrol", _) => None,
        ("score", Some(t)) => Some(t),
        ("score", None) => return error(StatusCode::BAD_REQUEST, "template: required to score"),
        (op, _) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("op {op:?}: expected enrol or score"),
            );
        }
    };
    let permit = match ctx.svc.passes().enter().await {
        Ok(p) => p,
        Err(e) => return busy(e),
    };
    let rows = req.features;
    let r = permit
        .run_blocking(move || compute(&m, rows, template.as_ref()))
        .await;
    match r {
        Ok(Ok(v)) => axum::Json(json!({ "output": v })).into_response(),
        Ok(Err(e @ JobError::DegenerateTemplate)) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "degenerate_template",
            e.to_string(),
        )
        .into_response(),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("task: {e}")),
    }
}

async fn status(
    State(ctx): State<Ctx>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let Some(id) = q.get("taskID") else {
        return error(
            StatusCode::BAD_REQUEST,
            "query parameter taskID is required",
        );
    };
    match ctx.svc.jobs.get(id) {
        Some(rec) => axum::Json(rec).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("unknown or expired job {id:?}"),
        ),
    }
}
