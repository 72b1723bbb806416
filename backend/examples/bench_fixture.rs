//! The fixture of the serving benchmark (`scripts/bench-serve.sh`): trains a gait model
//! exactly as `tacit-backend train` does (default pipeline), on a real gait folder or,
//! without one, on the synthetic population of the tests, and writes OIP v2 infer
//! bodies that score real enrolment templates.
//!
//! ```sh
//! cargo run --release -p tacit-backend --example bench_fixture -- --out DIR [--data GAIT_DIR]
//! ```
//!
//! Writes `DIR/model.tcm`, `DIR/infer-8.jsonl` (one template + 8 vectors per body) and
//! `DIR/infer-1.jsonl` (one template + 1 vector), the same requests with binary tensors
//! (`DIR/infer-{8,1}-binary.jsonl`, the load generator's request lines), and prints what
//! it used.

#[path = "../tests/support/gait.rs"]
mod gait;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use tacit_models::pipeline::{PipelineConfig, build_model};

/// Trains the benchmark's model and writes its request bodies.
#[derive(Parser)]
struct Args {
    /// Output folder (created).
    #[arg(long)]
    out: PathBuf,
    /// A gait folder (`manifest.csv` + `sessions/`); the synthetic population without it.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Training steps.
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    /// Bodies per file.
    #[arg(long, default_value_t = 512)]
    bodies: usize,
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_fixture: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let pop = match &args.data {
        Some(d) => tacit_backend::commands::load(d, tacit_backend::commands::DataFormat::Gait)?,
        None => gait::gait_population(),
    };
    if pop.factor != tacit_models::FactorKind::Gait {
        bail!("the benchmark serves the gait factor");
    }
    // Enough vectors per person for a full template and some queries.
    if pop.people.iter().take(4).any(|p| p.samples.len() < 40) {
        bail!("each of the first 4 people needs at least 40 vectors");
    }
    let mut cfg = PipelineConfig::for_factor(pop.factor);
    cfg.train.steps = args.steps;
    let people: Vec<usize> = (0..pop.people.len()).collect();
    let started = std::time::Instant::now();
    let (model, artifact) = build_model(&pop, &people, &cfg, &mut |_| {})?;
    std::fs::create_dir_all(&args.out).with_context(|| args.out.display().to_string())?;
    artifact.save(&args.out.join("model.tcm"))?;
    for rows in [8, 1] {
        let bodies = gait::infer_bodies(&model, &pop, 4, rows, args.bodies);
        let path = args.out.join(format!("infer-{rows}.jsonl"));
        std::fs::write(&path, bodies.join("\n") + "\n")
            .with_context(|| path.display().to_string())?;
        // The same requests with binary tensors, as the load generator's request lines.
        let lines = bodies
            .iter()
            .map(|b| gait::binary_request_line(b).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let path = args.out.join(format!("infer-{rows}-binary.jsonl"));
        std::fs::write(&path, lines.join("\n") + "\n")
            .with_context(|| path.display().to_string())?;
    }
    let s = artifact.meta.shape;
    println!(
        "model: {} ({} people, {} vectors), {} -> {} -> {} -> {}, {} steps, trained in {:.1} s; wrote {}",
        pop.source,
        pop.people.len(),
        pop.samples(),
        s.input,
        s.hidden,
        s.hidden,
        s.output,
        args.steps,
        started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
