//! Model commands of the binary: `train`, `eval`, `model-export` (offline), and
//! `retrain` and `models` (over the store and the model registry).

mod eval;
mod export;
mod retrain;
mod train;

pub use eval::{EvalArgs, eval};
pub use export::{EXPORT_FORMAT, ExportArgs, ExportedModel, Layer, Network, export};
pub use retrain::{
    GatedTraining, ModelsCommand, RetrainArgs, RetrainOutcome, check_gate_share, models, retrain,
    spawn_periodic, train_gated,
};
pub use train::{FactorChoice, TrainArgs, train, train_from_store, train_population};

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use tacit_models::ModelError;
use tacit_models::data::{Population, read_cmu, read_gait_folder, read_key_csv};
use tacit_models::device::{DeviceChoice, select};
use tacit_models::embedding::Loss;
use tacit_models::pipeline::{PipelineConfig, Stage};

/// Why an offline model command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The data set's format cannot be told from its path or header.
    #[error("{path}: {reason}")]
    Format {
        /// The data set.
        path: PathBuf,
        /// What is missing.
        reason: &'static str,
    },
    /// Too little data to do what was asked.
    #[error("{path}: {reason}")]
    TooLittleData {
        /// The data set.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The model crate refused (reading data, training, evaluating, an artifact).
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A model artifact does not decode.
    #[error("{path}: {source}")]
    Artifact {
        /// The artifact file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: ModelError,
    },
    /// The artifact's network does not have the shape its header declares.
    #[error("the network's layers {got:?} do not match the declared shape {declared}")]
    Shape {
        /// (inputs, outputs) per layer found.
        got: Vec<(usize, usize)>,
        /// The declared shape.
        declared: String,
    },
    /// The model registry failed.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// The operation was refused; the message says why and what would allow it.
    #[error("{0}")]
    Refused(String),
    /// The training set could not be read from the store.
    #[error(transparent)]
    TrainingSet(#[from] crate::training::TrainingSetError),
    /// The export could not be encoded.
    #[error("cannot encode the export: {0}")]
    Encode(#[from] serde_json::Error),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CommandError + '_ {
    move |source| CommandError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Metric-learning losses (`--loss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LossChoice {
    /// Proxy-anchor style loss against learned class proxies.
    Proxy,
    /// Triplet loss with mined triplets.
    Triplet,
}

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DataFormat {
    /// Decide from the path: a folder with `manifest.csv` is gait, a CSV whose header
    /// starts with `subject,sessionIndex` is CMU, one with `user,session,sample,key` is
    /// a key-event CSV.
    Auto,
    /// The CMU keystroke benchmark CSV.
    Cmu,
    /// Key-event CSV: `user,session,sample,key,down_ms,up_ms[,pressure,area]`.
    Keys,
    /// Gait folder: `manifest.csv` + `sessions/*.csv` (`t_ms,x,y,z`).
    Gait,
}

/// Settings shared by `train` and `eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// Data set: a CSV file or a gait folder.
    #[arg(long)]
    pub data: PathBuf,
    /// Data format.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: DataFormat,
    /// Training settings.
    #[command(flatten)]
    pub training: TrainingArgs,
}

/// How networks are trained and calibrated (`train`, `eval`).
#[derive(Debug, Clone, clap::Args)]
pub struct TrainingArgs {
    /// Training steps of the embedding network.
    #[arg(long, default_value_t = 2000)]
    pub steps: usize,
    /// Seed (training, sampling, fold assignment): same seed, same result on the CPU.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Metric-learning loss: proxy or triplet.
    #[arg(long, value_enum, default_value = "proxy")]
    pub loss: LossChoice,
    /// Backend: auto, cpu or cuda (falls back to the CPU when CUDA does not work).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Cross-fitting folds of the calibration (2..=10): each fold's people are scored by
    /// a network trained without them, so every training person calibrates once. More
    /// folds train the calibration networks on more people, at one training run each.
    #[arg(long, default_value_t = 3)]
    pub calibration_folds: usize,
}

impl Default for TrainingArgs {
    /// The command line's defaults.
    fn default() -> Self {
        TrainingArgs {
            steps: 2000,
            seed: 1,
            loss: LossChoice::Proxy,
            device: "cpu".into(),
            calibration_folds: 3,
        }
    }
}

impl ModelArgs {
    fn pipeline(&self, factor: tacit_models::FactorKind) -> Result<PipelineConfig, CommandError> {
        self.training.pipeline(factor)
    }
}

impl TrainingArgs {
    /// The pipeline settings for a factor.
    pub fn pipeline(
        &self,
        factor: tacit_models::FactorKind,
    ) -> Result<PipelineConfig, CommandError> {
        let mut cfg = PipelineConfig::for_factor(factor);
        cfg.train.steps = self.steps;
        cfg.train.seed = self.seed;
        if !(2..=10).contains(&self.calibration_folds) {
            return Err(CommandError::Model(ModelError::Config(format!(
                "--calibration-folds {}: expected 2..=10",
                self.calibration_folds
            ))));
        }
        cfg.calibration_folds = self.calibration_folds;
        cfg.train.loss = match self.loss {
            LossChoice::Proxy => Loss::Proxy,
            LossChoice::Triplet => Loss::Triplet,
        };
        let choice: DeviceChoice = self.device.parse()?;
        cfg.compute = select(choice);
        Ok(cfg)
    }
}

/// The training set of `factor` read from the store with a progress bar, without the
/// people who have too little to enrol and be judged (`train --from-store` and
/// `retrain`). Returns it and how many people were dropped.
async fn read_store_set(
    store: &dyn crate::store::Store,
    factor: tacit_models::FactorKind,
    min_samples: usize,
) -> Result<(crate::training::StorePopulation, usize), CommandError> {
    let opts = crate::training::StoreTrainingOptions::for_factor(factor);
    let b = bar(0, "reading");
    let mut set = crate::training::population_from_store(store, &opts, &mut |done, total| {
        b.set_length(total as u64);
        b.set_position(done as u64);
    })
    .await?;
    b.finish_and_clear();
    let dropped = set.population.retain_enrollable(min_samples);
    for s in &set.population.skipped {
        tracing::info!("skipped {s}");
    }
    Ok((set, dropped))
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
    ) {
        b.set_style(style.progress_chars("=> "));
    }
    b.set_prefix(what.to_string());
    b
}

fn detect(path: &Path) -> Result<DataFormat, CommandError> {
    if path.is_dir() {
        return if path.join("manifest.csv").is_file() {
            Ok(DataFormat::Gait)
        } else {
            Err(CommandError::Format {
                path: path.to_path_buf(),
                reason: "a folder without manifest.csv",
            })
        };
    }
    let text = std::fs::read(path).map_err(io_error(path))?;
    let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first).to_ascii_lowercase();
    if first.starts_with("subject,sessionindex") {
        Ok(DataFormat::Cmu)
    } else if ["user", "session", "sample", "key"]
        .iter()
        .all(|c| first.split(',').any(|h| h.trim() == *c))
    {
        Ok(DataFormat::Keys)
    } else {
        Err(CommandError::Format {
            path: path.to_path_buf(),
            reason: "cannot tell the format from the header; pass --format",
        })
    }
}

/// Reads a data set with a progress bar for the slow (gait) path.
pub fn load(path: &Path, format: DataFormat) -> Result<Population, CommandError> {
    let format = match format {
        DataFormat::Auto => detect(path)?,
        f => f,
    };
    let pop = match format {
        DataFormat::Cmu => read_cmu(path),
        DataFormat::Keys => read_key_csv(path),
        DataFormat::Gait | DataFormat::Auto => {
            let b = bar(0, "reading");
            let r = read_gait_folder(path, &mut |done, total| {
                b.set_length(total as u64);
                b.set_position(done as u64);
            });
            b.finish_and_clear();
            r
        }
    }?;
    for s in &pop.skipped {
        tracing::warn!("skipped {s}");
    }
    if pop.people.is_empty() {
        return Err(CommandError::TooLittleData {
            path: path.to_path_buf(),
            reason: "no usable vectors".into(),
        });
    }
    Ok(pop)
}

/// Shows a pipeline stage on a progress bar. `phase` remembers which network is
/// training (a calibration network or the kept one), shown before the loss.
fn stage_bar(b: &ProgressBar, phase: &mut String, s: &Stage) {
    match *s {
        Stage::Train(step, steps, loss) => {
            b.set_length(steps as u64);
            b.set_position(step as u64);
            if step % 50 == 0 || step == steps {
                b.set_message(format!("{phase}loss {loss:.3}"));
            }
        }
        Stage::CalibrationFold(k, n) => *phase = format!("calibration network {k}/{n}, "),
        Stage::FinalNetwork => *phase = "network, ".into(),
        Stage::Calibrating => b.set_message(format!("{phase}calibrating")),
    }
}
