use std::path::PathBuf;

use super::{CommandError, ModelArgs, bar, load, stage_bar};
use tacit_models::eval::{EvalConfig, EvalReport, det_svg, one_class, population};

/// Which protocols to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// Every protocol that applies to the data set.
    All,
    /// One-class detectors per person (the CMU paper's protocol).
    OneClass,
    /// Population embedding model, k-fold over people.
    Population,
}

/// `tacit-backend eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Data set and training settings.
    #[command(flatten)]
    pub common: ModelArgs,
    /// Protocols to run.
    #[arg(long, value_enum, default_value = "all")]
    pub protocol: Protocol,
    /// Folds over people (population protocol).
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Run only the first N folds (a quicker, reduced evaluation).
    #[arg(long)]
    pub max_folds: Option<usize>,
    /// Write the report as JSON to this file (`-` = stdout instead of the table).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a DET curve (SVG) to this file.
    #[arg(long)]
    pub det: Option<PathBuf>,
}

/// Runs the evaluation protocols and prints the table.
pub fn eval(args: EvalArgs, command_line: String) -> Result<EvalReport, CommandError> {
    let started = std::time::Instant::now();
    let mut pop = load(&args.common.data, args.common.format)?;
    let min_enrol = args.common.pipeline(pop.factor)?.enrol.min_samples;
    let known = pop.skipped.len();
    pop.retain_enrollable(min_enrol);
    for s in &pop.skipped[known..] {
        tracing::warn!("skipped {s}");
    }
    if pop.people.len() < 2 {
        return Err(CommandError::TooLittleData {
            path: args.common.data.clone(),
            reason: format!(
                "fewer than 2 people with enough entries to evaluate (skipped: {})",
                pop.skipped.len()
            ),
        });
    }
    let mut results = Vec::new();
    if matches!(args.protocol, Protocol::All | Protocol::OneClass) {
        let b = bar(pop.people.len() as u64, "one-class");
        results.extend(one_class(&pop, &mut |done, _| b.set_position(done as u64))?);
        b.finish_and_clear();
    }
    if matches!(args.protocol, Protocol::All | Protocol::Population) {
        let cfg = EvalConfig {
            folds: args.folds,
            max_folds: args.max_folds,
            seed: args.common.training.seed,
            pipeline: args.common.pipeline(pop.factor)?,
        };
        let b = bar(cfg.pipeline.train.steps as u64, "fold 1");
        let mut phase = String::new();
        results.extend(population(&pop, &cfg, &mut |fold, s| {
            b.set_prefix(format!("fold {}", fold + 1));
            stage_bar(&b, &mut phase, s)
        })?);
        b.finish_and_clear();
    }
    let report = EvalReport {
        dataset: pop.source.clone(),
        people: pop.people.len(),
        samples: pop.samples(),
        skipped: pop.skipped.clone(),
        settings: command_line,
        seconds: started.elapsed().as_secs_f64(),
        results,
    };
    match &args.json {
        Some(p) if p.as_os_str() == "-" => println!("{}", report.json()),
        Some(p) => {
            std::fs::write(p, report.json()).map_err(super::io_error(p))?;
            print!("{}", report.table());
        }
        None => print!("{}", report.table()),
    }
    if let Some(p) = &args.det {
        let refs: Vec<_> = report.results.iter().collect();
        let svg = det_svg(&report.dataset, &refs);
        std::fs::write(p, svg).map_err(super::io_error(p))?;
    }
    Ok(report)
}
