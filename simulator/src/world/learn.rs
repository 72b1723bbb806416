//! Population models trained from the world's own uploads (`--learn`): the
//! research-trained models are registered as v1, candidates trained on the consenting
//! users' uploads are judged against them by the gate on users held out from training
//! and promoted when it passes; after the last day a retraining on uploads poisoned by
//! crafted accounts must be refused.

use tacit_backend::commands::{FactorChoice, LossChoice, RetrainArgs, TrainingArgs, retrain};
use tacit_backend::registry::{Manifest, Registry, TrainingData};
use tacit_backend::settings::Settings;
use tacit_backend::store::{DeviceRow, EnvelopeMeta, Store};
use tacit_models::FactorKind;
use tacit_models::embedding::ModelArtifact;
use tacit_shared::payload::{FeatureRecord, Payload};

use super::WorldConfig;
use super::report::RetrainRecord;
use crate::SplitMix64;

/// The registry of a local backend (its settings' models prefix).
pub fn registry(store: &dyn Store) -> Registry {
    Registry::new(
        store.objects().clone(),
        &Settings::default().factor.models_prefix,
    )
}

/// Registers the models the world installed (trained on synthetic people who are not
/// users) as the first version of each factor and puts them in service.
pub async fn register_research(store: &dyn Store) -> anyhow::Result<()> {
    let registry = registry(store);
    for factor in [FactorKind::Gait, FactorKind::KeystrokeFixed] {
        let bytes = registry
            .served_artifact(factor)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no {factor} model installed"))?;
        let a = ModelArtifact::from_bytes(&bytes)?;
        let m = registry
            .register(
                bytes,
                Manifest::draft(factor, None, TrainingData::of_artifact(&a.meta), None),
            )
            .await?;
        registry
            .promote(factor, m.version, "research-trained")
            .await?;
    }
    Ok(())
}

/// Retrains `factors` from the uploads of every consenting user (train → gate →
/// register → promote when it passes). Returns what happened and the `(factor, model
/// version)` of each promoted candidate.
pub async fn retrain_factors(
    store: &dyn Store,
    stage: &str,
    cfg: &WorldConfig,
    factors: &[FactorChoice],
) -> anyhow::Result<(Vec<RetrainRecord>, Vec<(String, String)>)> {
    let registry = registry(store);
    let mut records = Vec::new();
    let mut promoted = Vec::new();
    for &factor in factors {
        let args = RetrainArgs {
            factor,
            gate_share: 0.3,
            no_promote: false,
            json: None,
            training: TrainingArgs {
                steps: cfg.training_steps,
                seed: cfg.seed,
                loss: LossChoice::Proxy,
                device: "cpu".into(),
                calibration_folds: 3,
            },
        };
        let out = retrain(store, &registry, args).await.map_err(|e| {
            let f: FactorKind = factor.into();
            anyhow::anyhow!("retraining {f}: {e}")
        })?;
        let m = &out.manifest;
        let gate = m.gate.clone();
        if out.promoted {
            promoted.push((m.factor.name().to_string(), m.model_version.clone()));
        }
        records.push(RetrainRecord {
            stage: stage.to_string(),
            factor: m.factor.name().to_string(),
            version: m.version,
            model_version: m.model_version.clone(),
            train_people: m.data.train_people,
            gate_people: m.data.gate_people,
            windows: m.data.windows,
            passed: gate.as_ref().is_some_and(|g| g.passed),
            promoted: out.promoted,
            reasons: gate.as_ref().map(|g| g.reasons.clone()).unwrap_or_default(),
            candidate: gate
                .as_ref()
                .map(|g| g.candidate.operating_points.clone())
                .unwrap_or_default(),
            in_service: gate
                .and_then(|g| g.current)
                .map(|j| j.operating_points)
                .unwrap_or_default(),
        });
    }
    Ok((records, promoted))
}

/// Adds `n` consenting accounts whose gait uploads are crafted: every value at an
/// edge of its range in the schema (alternating by account, window and feature, with a
/// little noise), four walks of 15 windows an hour apart. They are written to the
/// store as the gateway stores uploads (the gateway accepts such windows: they are
/// inside the schema's ranges). Windows like these swamp the feature scaling every
/// window is standardised with, which is what the gate must catch.
pub async fn poison(store: &dyn Store, n: usize, seed: u64, now_ms: u64) -> anyhow::Result<()> {
    const HOUR: u64 = 3600 * 1000;
    let mut rng = SplitMix64::new(crate::rng::derive(seed, 0x0090_150a, 0));
    let start = now_ms.saturating_sub(5 * HOUR);
    for i in 0..n {
        let user = format!("crafted-{i}");
        let mut device_id = [0xc4; 16];
        device_id[..8].copy_from_slice(&(i as u64).to_be_bytes());
        store.create_user(&user).await?;
        store
            .register_device(DeviceRow {
                device_id,
                user_id: user.clone(),
                algorithm: 1,
                public_key: vec![0xc4; 32],
                created_at_ms: start,
                revoked: false,
            })
            .await?;
        store.set_training_consent(&user, true).await?;
        for walk in 0..4u64 {
            let t0 = start + walk * HOUR;
            let records: Vec<FeatureRecord> = (0..15u64)
                .map(|k| FeatureRecord {
                    factor: FactorKind::Gait,
                    schema_version: 1,
                    window_start_ms: t0 + k * 5_000,
                    window_ms: 5_000,
                    context: None,
                    values: tacit_shared::schema::GAIT_V1
                        .iter()
                        .enumerate()
                        .map(|(j, d)| {
                            let edge = if (i + j + k as usize).is_multiple_of(2) {
                                d.max
                            } else {
                                d.min
                            };
                            let jitter = 0.01 * (d.max - d.min) * rng.normal() as f32;
                            (edge + jitter).clamp(d.min, d.max)
                        })
                        .collect(),
                })
                .collect();
            let mut envelope_id = device_id;
            envelope_id[15] = walk as u8;
            let meta = EnvelopeMeta {
                device_id,
                user_id: user.clone(),
                sequence: walk + 1,
                envelope_id,
                created_at_ms: t0 + 100_000,
                received_at_ms: t0 + 200_000,
                records: records.len() as u32,
            };
            store
                .store_envelope(
                    meta,
                    Payload {
                        face_images: Vec::new(),
                        records,
                    }
                    .encode()?,
                )
                .await?;
        }
    }
    Ok(())
}
