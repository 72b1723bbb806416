use burn::module::{AutodiffModule, Param};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::backend::AutodiffBackend;

use super::net::{EmbeddingNet, NetShape, l2_normalize};
use crate::{ModelError, SplitMix64};

/// The metric-learning loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// Normalised softmax over one learned proxy per training person with an additive
    /// cosine margin (CosFace). Chosen: on the CMU population protocol its embeddings
    /// give a lower EER than batch-hard triplets (EVALUATION.md) and it trains faster.
    Proxy,
    /// Batch-hard triplet loss on P people × K samples per batch.
    Triplet,
}

/// Training hyper-parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Hidden width.
    pub hidden: usize,
    /// Embedding dimension.
    pub embedding: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// Samples per batch.
    pub batch: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// The loss.
    pub loss: Loss,
    /// Proxy loss: logit scale.
    pub scale: f64,
    /// Proxy loss: cosine margin; triplet loss: distance margin.
    pub margin: f64,
    /// Seed of initialisation and batch sampling.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            hidden: 128,
            embedding: 64,
            steps: 2000,
            batch: 256,
            learning_rate: 1e-3,
            loss: Loss::Proxy,
            scale: 16.0,
            margin: 0.2,
            seed: 1,
        }
    }
}

impl TrainConfig {
    fn check(&self) -> Result<(), ModelError> {
        let bad = |m: &str| Err(ModelError::Config(m.into()));
        if !(1..=4096).contains(&self.hidden) || !(2..=1024).contains(&self.embedding) {
            return bad("hidden must be 1..=4096 and embedding 2..=1024");
        }
        if self.steps == 0 || self.steps > 10_000_000 {
            return bad("steps must be 1..=10000000");
        }
        if !(4..=65_536).contains(&self.batch) {
            return bad("batch must be 4..=65536");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate < 1.0) {
            return bad("learning_rate must be in (0, 1)");
        }
        if !(self.scale > 0.0 && self.scale.is_finite() && self.margin >= 0.0 && self.margin < 2.0)
        {
            return bad("scale must be positive and margin within [0, 2)");
        }
        Ok(())
    }
}

/// Transformed vectors with the index of the person each belongs to.
#[derive(Debug, Clone)]
pub struct TrainSet {
    /// Vectors (all of one dimension).
    pub rows: Vec<Vec<f64>>,
    /// Person index of each row, `0..people`.
    pub labels: Vec<usize>,
    /// Number of people.
    pub people: usize,
}

/// What training measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainStats {
    /// Mean loss over the first 1% of steps.
    pub first_loss: f64,
    /// Mean loss over the last 1% of steps.
    pub final_loss: f64,
    /// Steps run.
    pub steps: usize,
}

#[derive(Module, Debug)]
struct ProxyModel<B: Backend> {
    net: EmbeddingNet<B>,
    proxies: Param<Tensor<B, 2>>,
}

/// Trains an embedding network. `progress(step, loss)` is called after every step.
///
/// Deterministic for a given seed on the CPU backend (initialisation through the
/// backend's seed, batches through [`SplitMix64`]).
pub fn train<B: AutodiffBackend>(
    set: &TrainSet,
    cfg: &TrainConfig,
    device: &B::Device,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<(EmbeddingNet<B::InnerBackend>, TrainStats), ModelError> {
    cfg.check()?;
    let dim = set
        .rows
        .first()
        .map(Vec::len)
        .ok_or_else(|| ModelError::Data("no training vectors".into()))?;
    if set.labels.len() != set.rows.len() || set.labels.iter().any(|&l| l >= set.people) {
        return Err(ModelError::Data("labels do not match the rows".into()));
    }
    let mut by_person: Vec<Vec<usize>> = vec![Vec::new(); set.people];
    for (i, &l) in set.labels.iter().enumerate() {
        by_person[l].push(i);
    }
    let present: Vec<usize> = (0..set.people)
        .filter(|&p| by_person[p].len() >= 2)
        .collect();
    if present.len() < 2 {
        return Err(ModelError::Data(
            "training needs at least 2 people with 2 or more vectors each".into(),
        ));
    }
    if let Some(bad) = set.rows.iter().find(|r| r.len() != dim) {
        return Err(ModelError::Dimension {
            expected: dim,
            got: bad.len(),
        });
    }
    // The backend's RNG is process-wide: hold a lock from seeding to the last random
    // draw so that concurrent trainings cannot interleave their draws.
    static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = INIT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    B::seed(device, cfg.seed);
    let shape = NetShape {
        input: dim,
        hidden: cfg.hidden,
        output: cfg.embedding,
    };
    let proxies = Tensor::<B, 2>::random(
        [set.people, cfg.embedding],
        burn::tensor::Distribution::Normal(0.0, 0.1),
        device,
    );
    let mut model = ProxyModel {
        net: EmbeddingNet::new(shape, device),
        proxies: Param::from_tensor(proxies),
    };
    // burn initialises parameters lazily, on first use: use them all while seeded.
    let _ = model
        .net
        .forward(Tensor::<B, 2>::zeros([1, dim], device))
        .into_data();
    let _ = model.proxies.val().into_data();
    drop(guard);
    let mut optim = AdamConfig::new().init();
    let mut rng = SplitMix64::new(cfg.seed ^ 0x7ac1_7000);
    let window = (cfg.steps / 100).max(1);
    let (mut first, mut last) = (0.0, std::collections::VecDeque::with_capacity(window));
    let mut x = vec![0f32; cfg.batch * dim];
    for step in 0..cfg.steps {
        let batch_idx: Vec<usize> = match cfg.loss {
            Loss::Proxy => (0..cfg.batch).map(|_| rng.below(set.rows.len())).collect(),
            Loss::Triplet => {
                // P people × K samples: every anchor has positives and negatives.
                let k = 8.min(cfg.batch / 2).max(2);
                let p = (cfg.batch / k).min(present.len()).max(2);
                let mut people = present.clone();
                rng.shuffle(&mut people);
                people
                    .iter()
                    .take(p)
                    .flat_map(|&q| {
                        let ix = &by_person[q];
                        (0..k).map(|_| ix[rng.below(ix.len())]).collect::<Vec<_>>()
                    })
                    .collect()
            }
        };
        let n = batch_idx.len();
        x.resize(n * dim, 0.0);
        for (b, &i) in batch_idx.iter().enumerate() {
            for (dst, &v) in x[b * dim..(b + 1) * dim].iter_mut().zip(&set.rows[i]) {
                *dst = v as f32;
            }
        }
        let input = Tensor::<B, 2>::from_data(TensorData::new(x.clone(), [n, dim]), device);
        let labels: Vec<usize> = batch_idx.iter().map(|&i| set.labels[i]).collect();
        let emb = model.net.forward(input);
        let loss = match cfg.loss {
            Loss::Proxy => {
                let mut onehot = vec![0f32; n * set.people];
                for (b, &l) in labels.iter().enumerate() {
                    onehot[b * set.people + l] = 1.0;
                }
                let onehot =
                    Tensor::<B, 2>::from_data(TensorData::new(onehot, [n, set.people]), device);
                let p = l2_normalize(model.proxies.val());
                let cos = emb.matmul(p.transpose());
                let logits = (cos - onehot.clone() * cfg.margin) * cfg.scale;
                (log_softmax(logits, 1) * onehot).sum_dim(1).mean().neg()
            }
            Loss::Triplet => {
                let mut same = vec![0f32; n * n];
                for i in 0..n {
                    for j in 0..n {
                        same[i * n + j] = f32::from(labels[i] == labels[j]);
                    }
                }
                let same = Tensor::<B, 2>::from_data(TensorData::new(same, [n, n]), device);
                let sim = emb.clone().matmul(emb.transpose());
                let dist = (sim.neg() * 2.0 + 2.0).clamp_min(1e-12).sqrt();
                let hardest_pos = (dist.clone() * same.clone()).max_dim(1);
                let hardest_neg = (dist + same * 10.0).min_dim(1);
                relu(hardest_pos - hardest_neg + cfg.margin).mean()
            }
        };
        let value: f64 = loss.clone().into_scalar().elem();
        if !value.is_finite() {
            return Err(ModelError::Data(format!(
                "training diverged at step {step} (loss {value})"
            )));
        }
        if step < window {
            first += value / window as f64;
        }
        if last.len() == window {
            last.pop_front();
        }
        last.push_back(value);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(cfg.learning_rate, model, grads);
        progress(step + 1, value);
    }
    let final_loss = last.iter().sum::<f64>() / last.len().max(1) as f64;
    Ok((
        model.net.valid(),
        TrainStats {
            first_loss: first,
            final_loss,
            steps: cfg.steps,
        },
    ))
}
