use std::path::PathBuf;

use super::{CommandError, DataFormat, TrainingArgs, bar, load, stage_bar};
use tacit_models::data::Population;
use tacit_models::embedding::ModelArtifact;
use tacit_models::pipeline::build_model;

/// Factors a population model can be trained for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FactorChoice {
    /// Gait (motion windows).
    Gait,
    /// Keystrokes of a fixed phrase.
    KeystrokeFixed,
}

impl From<FactorChoice> for tacit_models::FactorKind {
    fn from(f: FactorChoice) -> Self {
        match f {
            FactorChoice::Gait => tacit_models::FactorKind::Gait,
            FactorChoice::KeystrokeFixed => tacit_models::FactorKind::KeystrokeFixed,
        }
    }
}

/// `tacit-backend train`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Data set: a CSV file or a gait folder.
    #[arg(
        long,
        required_unless_present = "from_store",
        conflicts_with = "from_store"
    )]
    pub data: Option<PathBuf>,
    /// Data format of `--data`.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: DataFormat,
    /// Train on the features phones uploaded, of the users who consented to training,
    /// read from the store the settings name (as `serve` opens it; at-rest encrypted
    /// objects are decrypted with the configured key) instead of a data set.
    #[arg(long, requires = "factor")]
    pub from_store: bool,
    /// With `--from-store`: the factor to train.
    #[arg(long, value_enum, requires = "from_store")]
    pub factor: Option<FactorChoice>,
    /// Training settings.
    #[command(flatten)]
    pub training: TrainingArgs,
    /// Where to write the model artifact.
    #[arg(long)]
    pub out: PathBuf,
}

/// Trains a factor model on every person of a data set (`--data`) and writes the
/// artifact. `--from-store` is read by the binary (it needs the settings and the
/// store) and trained with [`train_population`].
pub fn train(args: TrainArgs) -> Result<(), CommandError> {
    let Some(data) = &args.data else {
        return Err(CommandError::Format {
            path: PathBuf::new(),
            reason: "train needs --data or --from-store",
        });
    };
    let pop = load(data, args.format)?;
    train_population(&pop, &args.training, &args.out).map(|_| ())
}

/// Trains a factor model on every person of `pop`, writes the artifact to `out` and
/// returns it.
pub fn train_population(
    pop: &Population,
    training: &TrainingArgs,
    out: &std::path::Path,
) -> Result<ModelArtifact, CommandError> {
    let cfg = training.pipeline(pop.factor)?;
    let people: Vec<usize> = (0..pop.people.len()).collect();
    let b = bar(cfg.train.steps as u64, "training");
    let started = std::time::Instant::now();
    let mut phase = String::new();
    let (_, artifact) = build_model(pop, &people, &cfg, &mut |s| stage_bar(&b, &mut phase, &s))?;
    b.finish_and_clear();
    artifact.save(out)?;
    let t = &artifact.meta.training;
    println!(
        "trained {} model on {} people ({} vectors, {} cross-fitted for calibration) in {:.1} s on {}: loss {:.3} -> {:.3}",
        artifact.meta.factor,
        t.people,
        t.samples,
        t.calibration_people,
        started.elapsed().as_secs_f64(),
        t.backend,
        t.stats.first_loss,
        t.stats.final_loss
    );
    println!("wrote {}", out.display());
    Ok(artifact)
}

/// `train --from-store`: reads the consenting users' windows of `args.factor` from the
/// store, drops people with too little to enrol and judge, and trains on the rest (on
/// a blocking thread). Returns the artifact and what the training set held.
pub async fn train_from_store(
    store: &dyn crate::store::Store,
    args: TrainArgs,
) -> Result<(ModelArtifact, crate::training::StorePopulation), CommandError> {
    let Some(factor) = args.factor else {
        return Err(CommandError::Format {
            path: PathBuf::new(),
            reason: "--from-store needs --factor",
        });
    };
    let cfg = args.training.pipeline(factor.into())?;
    let (mut set, dropped) =
        super::read_store_set(store, factor.into(), cfg.enrol.min_samples).await?;
    println!(
        "training set: {} consenting users, {} with enough {} windows ({} dropped), {} windows, schema v{} ({} values)",
        set.consenting_users,
        set.population.people.len(),
        set.population.factor,
        dropped,
        set.windows,
        set.group.schema_version,
        set.group.dim
    );
    if set.population.people.len() < 6 {
        return Err(CommandError::TooLittleData {
            path: PathBuf::from("store"),
            reason: format!(
                "{} people with enough {} windows; training and its cross-fitted \
                 calibration need at least 6",
                set.population.people.len(),
                set.population.factor
            ),
        });
    }
    let pop = set.population.clone();
    let artifact =
        tokio::task::spawn_blocking(move || train_population(&pop, &args.training, &args.out))
            .await
            .map_err(|e| {
                CommandError::Model(tacit_models::ModelError::Data(format!("training: {e}")))
            })??;
    // The windows are no longer needed: keep only the description.
    set.population.people.clear();
    Ok((artifact, set))
}
