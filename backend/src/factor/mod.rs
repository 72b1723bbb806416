//! The factor service role (`serve --role factor:NAME`): one factor's model behind the
//! common factor API (docs/factor-api.md) — the Open Inference Protocol v2 for scoring
//! and the job API of the original design for enrolment and batch scoring.
//!
//! The service is stateless with respect to users: the caller passes a user's template
//! with each scoring request. It owns only its model, which it reloads from the object
//! store when a new version appears there (requests in flight keep the version they
//! started with: they hold their own reference to it).

pub mod auth;
mod error;
mod jobs;
mod oip;
mod passes;
mod routes;

pub use error::{JobError, ModelLoadError};
pub use jobs::{AdmitError, JobLimits, JobRecord, JobStatus, JobStore, JobTicket};
pub use routes::{FactorRouterOptions, factor_router};

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tacit_models::embedding::ModelArtifact;
use tacit_models::template::{EnrolConfig, FactorModel, Score, Template};
use tacit_models::{FactorKind, ModelError};

pub use passes::{PASSES_BUSY, PassLimit, PassPermit, PassesBusy};

use crate::settings::Settings;
use crate::store::FeatureObjects;

/// The factors with a built-in model (a factor service of this binary can serve them).
pub const BUILT_IN: [FactorKind; 2] = [FactorKind::Gait, FactorKind::KeystrokeFixed];

/// The built-in factor of a name (any spelling [`FactorKind`] reads), `None` for other
/// names and for factors without a built-in model.
pub fn built_in(name: &str) -> Option<FactorKind> {
    name.parse().ok().filter(|f| BUILT_IN.contains(f))
}

/// A loaded model version.
#[derive(Debug)]
pub struct LoadedModel {
    /// The model.
    pub model: FactorModel,
    /// Version: the first 16 hex digits of the artifact's SHA-256.
    pub version: String,
    /// What the object store said about the artifact (to notice a new one).
    identity: String,
}

impl LoadedModel {
    /// Input dimension.
    pub fn dim(&self) -> usize {
        self.model.dim()
    }

    /// Embedding dimension.
    pub fn embedding_dim(&self) -> usize {
        self.model.meta().shape.output
    }

    /// Enrols raw vectors with the factor's default rules.
    pub fn enrol(&self, rows: &[Vec<f32>]) -> Result<Template, ModelError> {
        self.model
            .enrol(rows, &EnrolConfig::for_factor(self.model.meta().factor))
    }

    /// Scores raw vectors against a template.
    pub fn score(&self, t: &Template, rows: &[Vec<f32>]) -> Result<Vec<Score>, ModelError> {
        self.model.score(t, rows)
    }
}

/// Most templates kept parsed; the cache is emptied when it is full (simple, bounded).
const TEMPLATE_CACHE_ENTRIES: usize = 4096;

/// Parsed templates by their JSON text. The gateway sends a user's template with every
/// scoring call, so parsing it (a few hundred numbers) would otherwise be a large part of
/// the cost of a small request. Bounded; holds only what callers sent recently.
#[derive(Debug, Default)]
pub struct TemplateCache {
    map: std::sync::Mutex<std::collections::HashMap<String, Arc<Template>>>,
}

impl TemplateCache {
    /// The parsed template of `text` (parsed once while it stays in the cache).
    pub fn parse(&self, text: &str) -> Result<Arc<Template>, serde_json::Error> {
        let lock = || {
            self.map
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(t) = lock().get(text) {
            return Ok(t.clone());
        }
        let t: Arc<Template> = Arc::new(serde_json::from_str(text)?);
        let mut map = lock();
        if map.len() >= TEMPLATE_CACHE_ENTRIES {
            map.clear();
        }
        map.insert(text.to_owned(), t.clone());
        Ok(t)
    }
}

/// One factor's service state.
#[derive(Debug)]
pub struct FactorService {
    /// The factor served.
    pub factor: FactorKind,
    objects: FeatureObjects,
    model_key: String,
    model_file: Option<std::path::PathBuf>,
    current: RwLock<Option<Arc<LoadedModel>>>,
    /// Identity of the last artifact refused (not retried until it changes).
    refused: std::sync::Mutex<Option<String>>,
    /// The job records.
    pub jobs: JobStore,
    /// Most feature files per job.
    pub max_job_files: usize,
    /// Templates parsed recently.
    pub templates: TemplateCache,
    /// The prefix of the model registry (`factor.models_prefix`).
    models_prefix: String,
    /// One population training at a time: it takes the service's CPU (or GPU) for
    /// minutes.
    training: Arc<tokio::sync::Semaphore>,
    /// Where the network runs: the GPU for passes of at least `gpu_min_rows` rows when
    /// this is CUDA.
    compute: tacit_models::device::Compute,
    gpu_min_rows: usize,
    /// The device choice of population training.
    device: String,
    /// Room for the forward passes that run off the async workers.
    passes: PassLimit,
}

impl FactorService {
    /// Opens the job store (reporting interrupted jobs as failed), loads the model if the
    /// object store has one, and starts watching it for new versions.
    pub async fn start(
        factor: FactorKind,
        objects: FeatureObjects,
        settings: &Settings,
    ) -> std::io::Result<Arc<Self>> {
        let f = &settings.factor;
        let jobs_dir = f
            .jobs_dir
            .clone()
            .unwrap_or_else(|| settings.data_dir.join("jobs").join(factor.name()));
        let limits = JobLimits {
            ttl: Duration::from_secs(f.job_ttl_s),
            max_running: f.max_running_jobs,
            max_per_caller: f.max_jobs_per_caller,
            max_records: f.max_job_records,
        };
        let jobs = JobStore::open(jobs_dir, limits, objects.at_rest_keys())?;
        let svc = Arc::new(FactorService {
            factor,
            objects,
            model_key: format!(
                "{}/{}.tcm",
                f.models_prefix.trim_end_matches('/'),
                factor.name()
            ),
            model_file: match f.model_url.as_deref() {
                Some(url) => Some(crate::store::local_path(url).map_err(std::io::Error::other)?),
                None => None,
            },
            current: RwLock::new(None),
            refused: std::sync::Mutex::new(None),
            jobs,
            max_job_files: f.max_job_files,
            templates: TemplateCache::default(),
            models_prefix: f.models_prefix.clone(),
            training: Arc::new(tokio::sync::Semaphore::new(1)),
            compute: tacit_models::device::select(
                f.device
                    .parse()
                    .map_err(|e: ModelError| std::io::Error::other(e.to_string()))?,
            ),
            gpu_min_rows: f.gpu_min_rows,
            device: f.device.clone(),
            passes: PassLimit::new(
                match f.max_passes {
                    0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                    n => n,
                },
                f.max_queued_passes,
            ),
        });
        tracing::info!(factor = %factor, compute = svc.compute.name(), gpu_min_rows = svc.gpu_min_rows, "factor service scoring backend");
        if let Err(e) = svc.reload().await {
            tracing::warn!(factor = %factor, key = %svc.model_key, file = ?svc.model_file, "no model yet: {e}");
        }
        let weak = Arc::downgrade(&svc);
        let every = Duration::from_millis(f.model_poll_ms.max(100));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The gateway writes the at-rest marker when it first opens the store; a
            // factor service that started before it learns it here.
            let mut marker_known = false;
            loop {
                tick.tick().await;
                let Some(svc) = weak.upgrade() else { break };
                if !marker_known && svc.objects.at_rest().is_some() {
                    marker_known = svc.objects.apply_at_rest_marker().await.unwrap_or(false);
                }
                if let Err(e) = svc.reload().await {
                    tracing::debug!(factor = %svc.factor, "model check: {e}");
                }
                svc.jobs.expire();
            }
        });
        Ok(svc)
    }

    /// The model in use, if any.
    pub fn model(&self) -> Option<Arc<LoadedModel>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The object store of the feature files.
    pub fn objects(&self) -> &FeatureObjects {
        &self.objects
    }

    /// The model registry this service's model pointer belongs to.
    pub fn registry(&self) -> crate::registry::Registry {
        crate::registry::Registry::new(self.objects.clone(), &self.models_prefix)
    }

    /// Whether the service serves a fixed model file (`TACIT_MODEL_URL=file://...`),
    /// which a promotion in the registry does not change.
    pub fn serves_fixed_file(&self) -> bool {
        self.model_file.is_some()
    }

    /// Where the network's large passes run (`cpu` or `cuda`).
    pub fn compute(&self) -> tacit_models::device::Compute {
        self.compute
    }

    /// The device choice of population training (`factor.device`).
    pub fn training_device(&self) -> &str {
        &self.device
    }

    /// The limit of forward passes run off the async workers (requests of more than a
    /// few rows, `/output`).
    pub fn passes(&self) -> &PassLimit {
        &self.passes
    }

    /// The place of the one population training that may run, if it is free.
    pub fn training_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.training.clone().try_acquire_owned().ok()
    }

    /// Loads the artifact when the object store holds a version other than the one in
    /// use. Returns whether a new version was swapped in. A broken artifact is logged
    /// and the old model stays in service.
    pub async fn reload(&self) -> Result<bool, ModelLoadError> {
        let identity = match &self.model_file {
            Some(file) => {
                let meta = std::fs::metadata(file).map_err(|source| ModelLoadError::File {
                    path: file.clone(),
                    source,
                })?;
                format!("{:?}/{}", meta.modified().ok(), meta.len())
            }
            None => {
                use object_store::ObjectStoreExt;
                let path = object_store::path::Path::parse(&self.model_key).map_err(|source| {
                    ModelLoadError::Key {
                        key: self.model_key.clone(),
                        source,
                    }
                })?;
                let meta = self.objects.object_store().head(&path).await?;
                format!("{:?}/{}/{}", meta.e_tag, meta.last_modified, meta.size)
            }
        };
        if let Some(m) = self.model()
            && m.identity == identity
        {
            return Ok(false);
        }
        if self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_deref()
            == Some(identity.as_str())
        {
            return Ok(false);
        }
        let bytes = match &self.model_file {
            Some(file) => tokio::fs::read(file)
                .await
                .map_err(|source| ModelLoadError::File {
                    path: file.clone(),
                    source,
                })?,
            None => self.objects.read_maybe_sealed(&self.model_key).await?,
        };
        let factor = self.factor;
        let (compute, gpu_min_rows) = (self.compute, self.gpu_min_rows);
        let seen = identity.clone();
        let loaded = tokio::task::spawn_blocking(move || -> Result<LoadedModel, ModelError> {
            let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
            let a = ModelArtifact::from_bytes(&bytes)?;
            let m = &a.meta;
            a.check_for(factor, m.schema_version, m.shape.input)?;
            Ok(LoadedModel {
                model: FactorModel::from_artifact_on(&a, compute, gpu_min_rows)?,
                version: hex::encode(&digest.as_ref()[..8]),
                identity,
            })
        })
        .await?;
        match loaded {
            Ok(m) => {
                tracing::info!(factor = %self.factor, version = %m.version, "model loaded");
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(m));
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(factor = %self.factor, key = %self.model_key, "new model refused, keeping the old one: {e}");
                *self
                    .refused
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(seen);
                Err(e.into())
            }
        }
    }
}
