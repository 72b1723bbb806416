use std::path::PathBuf;

use super::{CommandError, ModelArgs, bar, load, stage_bar};
use tacit_models::pipeline::build_model;

/// `tacit-backend train`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Data set and training settings.
    #[command(flatten)]
    pub common: ModelArgs,
    /// Where to write the model artifact.
    #[arg(long)]
    pub out: PathBuf,
}

/// Trains a factor model on every person of a data set and writes the artifact.
pub fn train(args: TrainArgs) -> Result<(), CommandError> {
    let pop = load(&args.common.data, args.common.format)?;
    let cfg = args.common.pipeline(pop.factor)?;
    let people: Vec<usize> = (0..pop.people.len()).collect();
    let b = bar(cfg.train.steps as u64, "training");
    let started = std::time::Instant::now();
    let mut phase = String::new();
    let (_, artifact) = build_model(&pop, &people, &cfg, &mut |s| stage_bar(&b, &mut phase, &s))?;
    b.finish_and_clear();
    artifact.save(&args.out)?;
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
    println!("wrote {}", args.out.display());
    Ok(())
}
