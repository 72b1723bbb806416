//! Versioned factor models in the object store.
//!
//! Every trained candidate is kept as `PREFIX/FACTOR/vN.tcm` beside its manifest
//! `PREFIX/FACTOR/vN.json` (what it was trained on, the gate's verdict, the version in
//! service when it was made). The model in service is `PREFIX/FACTOR.tcm`, the object
//! every factor service watches and reloads; `PREFIX/FACTOR/served.json` says which
//! version that is and keeps the history of promotions, so that a rollback knows
//! where to go. Artifacts trained from the store hold training people's feature
//! windows (the background cohort), so every object here is sealed like the feature
//! objects when encryption at rest is on.

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use tacit_models::gate::GateReport;

use crate::store::{FeatureObjects, StoreError, StoreResult};
use tacit_shared::payload::FactorKind;

/// The version a factor service reports for an artifact: the first 16 hex digits of
/// the SHA-256 of its bytes.
pub fn model_version_of(artifact: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, artifact);
    hex::encode(&d.as_ref()[..8])
}

/// What a candidate was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingData {
    /// Where the data came from (`store: ...` or a data set path).
    pub source: String,
    /// Users who had consented when the set was read (store data).
    pub consenting_users: usize,
    /// People the candidate was trained and calibrated on.
    pub train_people: usize,
    /// People held out for the gate.
    pub gate_people: usize,
    /// Whom the gate cohort was drawn from.
    #[serde(default)]
    pub gate_cohort: String,
    /// Windows of the training people.
    pub windows: usize,
    /// Oldest and newest window start in the set (device clock, Unix ms).
    pub data_window_ms: Option<(u64, u64)>,
    /// Feature schema version and values per window.
    pub schema_version: u16,
    /// Values per window.
    pub dim: usize,
}

impl TrainingData {
    /// What an artifact trained elsewhere (`train --data`) says of its training data.
    pub fn of_artifact(meta: &tacit_models::embedding::ModelMeta) -> Self {
        TrainingData {
            source: meta.training.dataset.clone(),
            consenting_users: 0,
            train_people: meta.training.people,
            gate_people: 0,
            gate_cohort: String::new(),
            windows: meta.training.samples,
            data_window_ms: None,
            schema_version: meta.schema_version,
            dim: meta.shape.input,
        }
    }
}

/// A registered model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Its number (`vN`), from 1.
    pub version: u32,
    /// The factor.
    pub factor: FactorKind,
    /// What factor services report for it ([`model_version_of`]).
    pub model_version: String,
    /// When it was registered (server clock, Unix ms).
    pub created_at_ms: u64,
    /// The version in service when it was trained (`None`: none, or an unregistered
    /// artifact).
    pub parent: Option<u32>,
    /// What it was trained on.
    pub data: TrainingData,
    /// The gate's verdict (`None`: registered without one).
    pub gate: Option<GateReport>,
}

impl Manifest {
    /// A manifest for [`Registry::register`], which fills in the version number, the
    /// model version and the time.
    pub fn draft(
        factor: FactorKind,
        parent: Option<u32>,
        data: TrainingData,
        gate: Option<GateReport>,
    ) -> Self {
        Manifest {
            version: 0,
            factor,
            model_version: String::new(),
            created_at_ms: 0,
            parent,
            data,
            gate,
        }
    }
}

/// One promotion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    /// The version put in service.
    pub version: u32,
    /// When (server clock, Unix ms).
    pub at_ms: u64,
    /// Why: `gate passed`, `manual`, `rollback from vN`.
    pub reason: String,
}

/// Which version is in service, and the promotions so far (oldest first).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Served {
    /// Every promotion; the last one is in service.
    pub history: Vec<Promotion>,
}

impl Served {
    /// The version in service.
    pub fn current(&self) -> Option<u32> {
        self.history.last().map(|p| p.version)
    }
}

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The object store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such version.
    #[error("{factor} has no model v{version}")]
    NoVersion {
        /// The factor.
        factor: FactorKind,
        /// The version asked for.
        version: u32,
    },
    /// Nothing to roll back to.
    #[error("{0} has no earlier promoted version to roll back to")]
    NoEarlier(FactorKind),
    /// A manifest or the served record does not decode.
    #[error("{key}: {source}")]
    Corrupt {
        /// The object.
        key: String,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
}

/// The model registry over an object store.
#[derive(Debug, Clone)]
pub struct Registry {
    objects: FeatureObjects,
    prefix: String,
}

impl Registry {
    /// The registry under `prefix` (the factor services' `factor.models_prefix`).
    pub fn new(objects: FeatureObjects, prefix: &str) -> Self {
        Registry {
            objects,
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    /// The object factor services serve: `PREFIX/FACTOR.tcm`.
    pub fn served_key(&self, factor: FactorKind) -> String {
        format!("{}/{}.tcm", self.prefix, factor.name())
    }

    fn version_key(&self, factor: FactorKind, version: u32, ext: &str) -> String {
        format!("{}/{}/v{version}.{ext}", self.prefix, factor.name())
    }

    fn served_record_key(&self, factor: FactorKind) -> String {
        format!("{}/{}/served.json", self.prefix, factor.name())
    }

    /// Reads an object sealed when encryption at rest is on, or as it is (an artifact
    /// an operator copied in by hand).
    async fn read(&self, key: &str) -> StoreResult<Vec<u8>> {
        self.objects.read_maybe_sealed(key).await
    }

    async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, RegistryError> {
        match self.read(key).await {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| RegistryError::Corrupt {
                        key: key.to_string(),
                        source,
                    })
            }
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn write_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), RegistryError> {
        let bytes = serde_json::to_vec_pretty(value)
            .map_err(|e| StoreError::internal("encoding a manifest", e))?;
        Ok(self.objects.put_durable(key, bytes).await?)
    }

    /// The registered versions of a factor, oldest first.
    pub async fn list(&self, factor: FactorKind) -> Result<Vec<Manifest>, RegistryError> {
        let mut versions = self.versions(factor).await?;
        versions.sort_unstable();
        let mut out = Vec::with_capacity(versions.len());
        for v in versions {
            if let Some(m) = self.read_json(&self.version_key(factor, v, "json")).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    async fn versions(&self, factor: FactorKind) -> Result<Vec<u32>, RegistryError> {
        let prefix = object_store::path::Path::from(format!("{}/{}", self.prefix, factor.name()));
        let keys: Vec<String> = self
            .objects
            .object_store()
            .list(Some(&prefix))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .map_err(|e| StoreError::unavailable("listing models", e))?;
        Ok(keys
            .iter()
            .filter_map(|k| k.rsplit('/').next())
            .filter_map(|name| name.strip_prefix('v')?.strip_suffix(".json")?.parse().ok())
            .collect())
    }

    /// A version's manifest.
    pub async fn manifest(
        &self,
        factor: FactorKind,
        version: u32,
    ) -> Result<Manifest, RegistryError> {
        self.read_json(&self.version_key(factor, version, "json"))
            .await?
            .ok_or(RegistryError::NoVersion { factor, version })
    }

    /// A version's artifact bytes.
    pub async fn artifact(
        &self,
        factor: FactorKind,
        version: u32,
    ) -> Result<Vec<u8>, RegistryError> {
        match self.read(&self.version_key(factor, version, "tcm")).await {
            Ok(b) => Ok(b),
            Err(StoreError::NotFound(_)) => Err(RegistryError::NoVersion { factor, version }),
            Err(e) => Err(e.into()),
        }
    }

    /// The artifact in service (registered or copied in by hand), if any.
    pub async fn served_artifact(
        &self,
        factor: FactorKind,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        match self.read(&self.served_key(factor)).await {
            Ok(b) => Ok(Some(b)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Which registered version is in service, with the history.
    pub async fn served(&self, factor: FactorKind) -> Result<Served, RegistryError> {
        Ok(self
            .read_json(&self.served_record_key(factor))
            .await?
            .unwrap_or_default())
    }

    /// Registers a candidate: the artifact first, then its manifest (a version exists
    /// once its manifest does). `manifest.version`, `model_version` and `created_at_ms`
    /// are set here. Concurrent registrations of one factor are not supported (one
    /// training job per factor at a time: the CronJob's `concurrencyPolicy: Forbid`).
    pub async fn register(
        &self,
        artifact: Vec<u8>,
        mut manifest: Manifest,
    ) -> Result<Manifest, RegistryError> {
        let factor = manifest.factor;
        let version = self.versions(factor).await?.into_iter().max().unwrap_or(0) + 1;
        manifest.version = version;
        manifest.model_version = model_version_of(&artifact);
        manifest.created_at_ms = crate::state::now_ms();
        self.objects
            .put_durable(&self.version_key(factor, version, "tcm"), artifact)
            .await?;
        self.write_json(&self.version_key(factor, version, "json"), &manifest)
            .await?;
        Ok(manifest)
    }

    /// Puts a version in service: its artifact becomes `PREFIX/FACTOR.tcm` (factor
    /// services load it at their next check) and the promotion is recorded.
    pub async fn promote(
        &self,
        factor: FactorKind,
        version: u32,
        reason: &str,
    ) -> Result<Served, RegistryError> {
        let bytes = self.artifact(factor, version).await?;
        self.objects
            .put_durable(&self.served_key(factor), bytes)
            .await?;
        let mut served = self.served(factor).await?;
        served.history.push(Promotion {
            version,
            at_ms: crate::state::now_ms(),
            reason: reason.to_string(),
        });
        self.write_json(&self.served_record_key(factor), &served)
            .await?;
        Ok(served)
    }

    /// Puts back the version that was in service before the current one.
    pub async fn rollback(&self, factor: FactorKind) -> Result<(u32, Served), RegistryError> {
        let served = self.served(factor).await?;
        let current = served.current();
        let Some(previous) = served
            .history
            .iter()
            .rev()
            .map(|p| p.version)
            .find(|v| Some(*v) != current)
        else {
            return Err(RegistryError::NoEarlier(factor));
        };
        let reason = format!("rollback from v{}", current.unwrap_or(0));
        let served = self.promote(factor, previous, &reason).await?;
        Ok((previous, served))
    }
}
