//! `tacit-backend retrain` (train from the store → gate → register → promote) and
//! `tacit-backend models list|add|promote|rollback`.

use std::path::PathBuf;

use tacit_models::embedding::ModelArtifact;
use tacit_models::eval::judge;
use tacit_models::gate::{GateReport, compare};
use tacit_models::pipeline::build_model;
use tacit_models::template::FactorModel;
use tacit_models::{FactorKind, SplitMix64};

use super::{CommandError, FactorChoice, TrainingArgs, bar, stage_bar};
use crate::registry::{Manifest, Registry, RegistryError, TrainingData};
use crate::store::Store;

/// Fewest people on either side of the train / gate split.
const MIN_SIDE: usize = 6;

/// `tacit-backend retrain`.
#[derive(Debug, Clone, clap::Args)]
pub struct RetrainArgs {
    /// The factor to retrain.
    #[arg(long, value_enum)]
    pub factor: FactorChoice,
    /// Share of the consenting people held out as the gate cohort (0.1..=0.5; at least
    /// 6 people): the candidate and the model in service are judged on them.
    #[arg(long, default_value_t = 0.3)]
    pub gate_share: f64,
    /// Judge and register the candidate, but leave the model in service alone.
    #[arg(long)]
    pub no_promote: bool,
    /// Write the candidate's manifest (training data, the gate's verdict) as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Training settings.
    #[command(flatten)]
    pub training: TrainingArgs,
}

/// What a retraining did.
#[derive(Debug, Clone)]
pub struct RetrainOutcome {
    /// The registered candidate (with the gate's verdict).
    pub manifest: Manifest,
    /// Whether it was put in service.
    pub promoted: bool,
}

fn registry_error(e: RegistryError) -> CommandError {
    CommandError::Registry(e)
}

fn blocking_error(e: tokio::task::JoinError) -> CommandError {
    CommandError::Model(tacit_models::ModelError::Data(format!(
        "training task: {e}"
    )))
}

/// People indices split into (train, gate), people-disjoint, by the seed. The gate
/// draws only on `eligible` people (accounts older than the model in service) when
/// there are enough of them: accounts made to poison a training set then cannot also
/// be the people it is judged on. Returns whether it could.
fn split(
    eligible: &[bool],
    gate_share: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>, bool), CommandError> {
    let n = eligible.len();
    let gate_n = ((n as f64 * gate_share).round() as usize).max(MIN_SIDE);
    if n < gate_n + MIN_SIDE {
        return Err(CommandError::TooLittleData {
            path: PathBuf::from("store"),
            reason: format!(
                "{n} people with enough windows; training and the gate need at least \
                 {MIN_SIDE} each ({gate_n} held out for the gate)"
            ),
        });
    }
    let mut order: Vec<usize> = (0..n).collect();
    SplitMix64::new(seed ^ 0x6a7e_c0de).shuffle(&mut order);
    let established = eligible.iter().filter(|&&e| e).count() >= gate_n;
    let mut gate: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&p| !established || eligible[p])
        .take(gate_n)
        .collect();
    let mut train: Vec<usize> = (0..n).filter(|p| !gate.contains(p)).collect();
    gate.sort_unstable();
    train.sort_unstable();
    Ok((train, gate, established))
}

/// The model in service, if it reads windows of this schema version and width.
async fn current_model(
    registry: &Registry,
    factor: FactorKind,
    schema_version: u16,
    dim: usize,
    say: &(dyn Fn(&str) + Send + Sync),
) -> Result<Option<FactorModel>, CommandError> {
    let Some(bytes) = registry
        .served_artifact(factor)
        .await
        .map_err(registry_error)?
    else {
        return Ok(None);
    };
    let a = ModelArtifact::from_bytes(&bytes)?;
    if a.check_for(factor, schema_version, dim).is_err() {
        say(&format!(
            "the model in service reads schema v{} ({} values), the data is v{schema_version} ({dim}): judged against the targets alone",
            a.meta.schema_version, a.meta.shape.input
        ));
        return Ok(None);
    }
    Ok(Some(FactorModel::from_artifact(&a)?))
}

/// Trains a candidate on the consenting users' uploads, judges it and the model in
/// service on people held out from training, registers it, and promotes it when the
/// gate passes (and `--no-promote` is not given).
pub async fn retrain(
    store: &dyn Store,
    registry: &Registry,
    args: RetrainArgs,
) -> Result<RetrainOutcome, CommandError> {
    check_gate_share(args.gate_share)?;
    let factor: FactorKind = args.factor.into();
    let cfg = args.training.pipeline(factor)?;
    let (set, _) = super::read_store_set(store, factor, cfg.enrol.min_samples).await?;
    let out = train_gated(
        registry,
        GatedTraining {
            cfg,
            set,
            gate_share: args.gate_share,
            promote: !args.no_promote,
            progress: true,
        },
        &|line| println!("{line}"),
    )
    .await?;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&out.manifest)?;
        std::fs::write(path, text).map_err(super::io_error(path))?;
    }
    Ok(out)
}

/// Refuses a gate share outside 0.1..=0.5.
pub fn check_gate_share(share: f64) -> Result<(), CommandError> {
    if (0.1..=0.5).contains(&share) {
        Ok(())
    } else {
        Err(CommandError::Model(tacit_models::ModelError::Config(
            format!("gate share {share}: expected 0.1..=0.5"),
        )))
    }
}

/// One gated training run: a training set, how to train, how much to hold out.
#[derive(Debug)]
pub struct GatedTraining {
    /// The pipeline settings (the factor is the training set's).
    pub cfg: tacit_models::pipeline::PipelineConfig,
    /// The training set (people with too few windows to enrol are dropped here).
    pub set: crate::training::StorePopulation,
    /// Share of the people held out as the gate cohort (0.1..=0.5).
    pub gate_share: f64,
    /// Promote the candidate when the gate passes.
    pub promote: bool,
    /// Draw progress bars (a terminal's command, not a service).
    pub progress: bool,
}

/// Trains a candidate on `job.set`, judges it and the model in service on people held
/// out from training, registers it, and promotes it when the gate passes and
/// `job.promote` is set. What it does is told, line by line, to `say`. Shared by
/// `retrain` (the store's consenting users) and the factor job API's `/train` (the
/// files a caller names).
pub async fn train_gated(
    registry: &Registry,
    job: GatedTraining,
    say: &(dyn Fn(&str) + Send + Sync),
) -> Result<RetrainOutcome, CommandError> {
    check_gate_share(job.gate_share)?;
    let GatedTraining {
        cfg,
        mut set,
        gate_share,
        promote,
        progress,
    } = job;
    let factor = set.population.factor;
    set.population.retain_enrollable(cfg.enrol.min_samples);
    let pop = std::sync::Arc::new(set.population);
    let served = registry.served(factor).await.map_err(registry_error)?;
    // Accounts older than the model in service (all of them when none is registered).
    let since = served.history.last().map_or(u64::MAX, |p| p.at_ms);
    let eligible: Vec<bool> = pop
        .people
        .iter()
        .map(|p| {
            set.account_created_ms
                .get(&p.id)
                .is_some_and(|&t| t < since)
        })
        .collect();
    let (train, gate, established) = split(&eligible, gate_share, cfg.train.seed)?;
    let gate_cohort = if established {
        "accounts older than the model in service"
    } else if set.account_created_ms.is_empty() {
        "all people of the training set (their accounts' ages are not known here)"
    } else {
        "all consenting accounts (too few are older than the model in service)"
    };
    say(&format!(
        "training {factor}: {} users, {} with enough windows: {} to train, {} for the gate ({gate_cohort})",
        set.consenting_users,
        pop.people.len(),
        train.len(),
        gate.len()
    ));
    let current = current_model(registry, factor, pop.schema_version, pop.dim, say).await?;

    let (p, tr, g) = (pop.clone(), train.clone(), gate.clone());
    let (artifact, report) = tokio::task::spawn_blocking(move || {
        let b = if progress {
            bar(cfg.train.steps as u64, "training")
        } else {
            indicatif::ProgressBar::hidden()
        };
        let mut phase = String::new();
        let (model, artifact) = build_model(&p, &tr, &cfg, &mut |s| stage_bar(&b, &mut phase, &s))?;
        b.finish_and_clear();
        let candidate = judge(&model, &p, &g, &cfg.enrol)?;
        let current = current
            .as_ref()
            .map(|m| judge(m, &p, &g, &cfg.enrol))
            .transpose()?;
        Ok::<_, CommandError>((artifact, compare(candidate, current)))
    })
    .await
    .map_err(blocking_error)??;
    gate_lines(&report).iter().for_each(|l| say(l));

    let windows: usize = train.iter().map(|&i| pop.people[i].samples.len()).sum();
    let manifest = Manifest::draft(
        factor,
        served.current(),
        TrainingData {
            source: pop.source.clone(),
            consenting_users: set.consenting_users,
            train_people: train.len(),
            gate_people: gate.len(),
            gate_cohort: gate_cohort.to_string(),
            windows,
            data_window_ms: set.data_window_ms,
            schema_version: pop.schema_version,
            dim: pop.dim,
        },
        Some(report),
    );
    let manifest = registry
        .register(artifact.to_bytes()?, manifest)
        .await
        .map_err(registry_error)?;
    let passed = manifest.gate.as_ref().is_some_and(|g| g.passed);
    let promoted = passed && promote;
    if promoted {
        registry
            .promote(factor, manifest.version, "gate passed")
            .await
            .map_err(registry_error)?;
    }
    say(&format!(
        "registered {factor} v{} ({}): {}",
        manifest.version,
        manifest.model_version,
        match (passed, promoted) {
            (true, true) => "gate passed, promoted: factor services load it at their next check",
            (true, false) => "gate passed, not promoted",
            _ => "refused by the gate, the model in service stays",
        }
    ));
    Ok(RetrainOutcome { manifest, promoted })
}

/// The embedded default's retraining (`learning.retrain_interval_h`): every `every`,
/// each built-in factor is retrained with the `retrain` defaults (train → gate →
/// register → promote when it passes), one after the other. A failure (too little data,
/// the store down) is logged and the next period tries again. The first run is one
/// period after the start.
pub fn spawn_periodic(
    store: std::sync::Arc<dyn Store>,
    registry: Registry,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            for factor in [FactorChoice::Gait, FactorChoice::KeystrokeFixed] {
                let args = RetrainArgs {
                    factor,
                    gate_share: 0.3,
                    no_promote: false,
                    json: None,
                    training: TrainingArgs::default(),
                };
                let kind: FactorKind = factor.into();
                match retrain(&*store, &registry, args).await {
                    Ok(out) => tracing::info!(
                        factor = %kind,
                        version = out.manifest.version,
                        promoted = out.promoted,
                        gate = ?out.manifest.gate.map(|g| g.reasons),
                        "scheduled retraining"
                    ),
                    Err(e) => {
                        tracing::warn!(factor = %kind, error = %crate::error::Chain(&e), "scheduled retraining failed; trying again next period")
                    }
                }
            }
        }
    })
}

/// The gate's verdict as lines for a person: each judged target of both models.
fn gate_lines(r: &GateReport) -> Vec<String> {
    let mut lines = vec![format!("gate cohort: {} people", r.candidate.people)];
    let mut rows = |name: &str, j: &tacit_models::eval::Judgement| {
        for p in &j.operating_points {
            lines.push(format!(
                "  {name:<10} target {:<6} FAR {:.4} [{:.4}, {:.4}]  FRR {:.4}  ({} impostor / {} genuine attempts, {:?})",
                p.target_far,
                p.far,
                p.far_interval[0],
                p.far_interval[1],
                p.frr,
                p.impostor_attempts,
                p.genuine_attempts,
                p.status
            ));
        }
    };
    rows("candidate", &r.candidate);
    if let Some(c) = &r.current {
        rows("in service", c);
    }
    lines.push(format!(
        "gate {}: {}",
        if r.passed { "passed" } else { "refused" },
        r.reasons.join("; ")
    ));
    lines
}

/// `tacit-backend models ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ModelsCommand {
    /// The registered versions of a factor, the one in service marked.
    List {
        /// The factor.
        #[arg(long, value_enum)]
        factor: FactorChoice,
        /// Print the manifests as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Register an artifact trained elsewhere (`train --data`) as the next version,
    /// without a gate verdict.
    Add {
        /// The factor.
        #[arg(long, value_enum)]
        factor: FactorChoice,
        /// The artifact (`.tcm`).
        #[arg(long)]
        model: PathBuf,
        /// Put it in service at once.
        #[arg(long)]
        promote: bool,
    },
    /// Put a registered version in service.
    Promote {
        /// The factor.
        #[arg(long, value_enum)]
        factor: FactorChoice,
        /// The version number (`vN`).
        #[arg(long)]
        version: u32,
        /// Promote a version the gate refused.
        #[arg(long)]
        force: bool,
    },
    /// Put back the version that was in service before the current one.
    Rollback {
        /// The factor.
        #[arg(long, value_enum)]
        factor: FactorChoice,
    },
}

/// Runs a `models` subcommand.
pub async fn models(registry: &Registry, command: ModelsCommand) -> Result<(), CommandError> {
    match command {
        ModelsCommand::List { factor, json } => {
            let factor: FactorKind = factor.into();
            let list = registry.list(factor).await.map_err(registry_error)?;
            let current = registry
                .served(factor)
                .await
                .map_err(registry_error)?
                .current();
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            if list.is_empty() {
                println!("{factor}: no registered versions");
            }
            for m in &list {
                let gate = match &m.gate {
                    None => "no gate".to_string(),
                    Some(g) if g.passed => "gate passed".to_string(),
                    Some(_) => "gate refused".to_string(),
                };
                println!(
                    "{} v{:<4} {}  {} train / {} gate people, {} windows, schema v{}  {}  parent {}",
                    if Some(m.version) == current { "*" } else { " " },
                    m.version,
                    m.model_version,
                    m.data.train_people,
                    m.data.gate_people,
                    m.data.windows,
                    m.data.schema_version,
                    gate,
                    m.parent.map_or("-".into(), |p| format!("v{p}"))
                );
            }
            Ok(())
        }
        ModelsCommand::Add {
            factor,
            model,
            promote,
        } => {
            let factor: FactorKind = factor.into();
            let bytes = std::fs::read(&model).map_err(super::io_error(&model))?;
            let a = ModelArtifact::from_bytes(&bytes).map_err(|source| CommandError::Artifact {
                path: model.clone(),
                source,
            })?;
            if a.meta.factor != factor {
                return Err(CommandError::Format {
                    path: model,
                    reason: "the artifact is a model of another factor",
                });
            }
            let served = registry.served(factor).await.map_err(registry_error)?;
            let manifest = Manifest::draft(
                factor,
                served.current(),
                TrainingData::of_artifact(&a.meta),
                None,
            );
            let m = registry
                .register(bytes, manifest)
                .await
                .map_err(registry_error)?;
            println!("registered {factor} v{} ({})", m.version, m.model_version);
            if promote {
                registry
                    .promote(factor, m.version, "manual")
                    .await
                    .map_err(registry_error)?;
                println!("promoted {factor} v{}", m.version);
            }
            Ok(())
        }
        ModelsCommand::Promote {
            factor,
            version,
            force,
        } => {
            let factor: FactorKind = factor.into();
            let m = registry
                .manifest(factor, version)
                .await
                .map_err(registry_error)?;
            if m.gate.as_ref().is_some_and(|g| !g.passed) && !force {
                return Err(CommandError::Refused(format!(
                    "{factor} v{version} was refused by the gate ({}); pass --force to promote it anyway",
                    m.gate.map(|g| g.reasons.join("; ")).unwrap_or_default()
                )));
            }
            let reason = if force { "manual, forced" } else { "manual" };
            registry
                .promote(factor, version, reason)
                .await
                .map_err(registry_error)?;
            println!("promoted {factor} v{version} ({})", m.model_version);
            Ok(())
        }
        ModelsCommand::Rollback { factor } => {
            let factor: FactorKind = factor.into();
            let (v, _) = registry.rollback(factor).await.map_err(registry_error)?;
            println!("rolled {factor} back to v{v}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_people_disjoint_and_bounded() {
        let all = |n: usize| vec![true; n];
        let (train, gate, established) = split(&all(40), 0.3, 1).unwrap();
        assert!(established);
        assert_eq!((train.len(), gate.len()), (28, 12));
        assert!(train.iter().all(|p| !gate.contains(p)));
        assert_eq!(
            split(&all(40), 0.3, 1).unwrap(),
            (train, gate, true),
            "same seed, same split"
        );
        let (train, gate, _) = split(&all(12), 0.1, 1).unwrap();
        assert_eq!((train.len(), gate.len()), (6, 6));
        assert!(split(&all(11), 0.3, 1).is_err());
    }

    #[test]
    fn the_gate_draws_on_established_accounts_when_there_are_enough() {
        // People 0..20 are older than the model in service, 20..40 are new.
        let eligible: Vec<bool> = (0..40).map(|p| p < 20).collect();
        let (train, gate, established) = split(&eligible, 0.3, 7).unwrap();
        assert!(established);
        assert_eq!(gate.len(), 12);
        assert!(gate.iter().all(|&p| p < 20), "{gate:?}");
        assert_eq!(train.len(), 28);
        // Too few established accounts: everyone may be in the gate, and it says so.
        let eligible: Vec<bool> = (0..40).map(|p| p < 5).collect();
        let (_, gate, established) = split(&eligible, 0.3, 7).unwrap();
        assert!(!established);
        assert_eq!(gate.len(), 12);
    }
}
