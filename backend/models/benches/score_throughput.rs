//! Batch scoring throughput of a factor model's network (rows/s of `FactorModel::embed`,
//! the pass a factor service's batch scoring and enrolment spend their time in), on the
//! CPU and, in CUDA builds on a machine with a GPU, on the GPU, across batch sizes: the
//! measure behind `factor.gpu_min_rows`. The GPU's embeddings are checked against the
//! CPU's (largest absolute difference printed). Run by `scripts/gpu-check.sh`; here
//! `cargo bench -p tacit-models --bench score_throughput` gives the CPU rows.
//!
//! Output: one JSON line per backend and batch size.

use std::time::Instant;

use tacit_models::SplitMix64;
use tacit_models::device::Compute;
use tacit_models::embedding::ModelArtifact;
use tacit_models::pipeline::{PipelineConfig, build_model};
use tacit_models::template::FactorModel;

fn main() {
    let pop = tacit_models::data::synthetic_gait(12);
    let mut cfg = PipelineConfig::for_factor(tacit_models::FactorKind::Gait);
    // The production network's shape; few steps: the weights do not change the cost.
    cfg.train.steps = 20;
    cfg.calibration_folds = 2;
    let people: Vec<usize> = (0..pop.people.len()).collect();
    let (_, artifact) = build_model(&pop, &people, &cfg, &mut |_| {}).expect("train");
    let artifact =
        ModelArtifact::from_bytes(&artifact.to_bytes().expect("encode")).expect("decode");
    let cpu = FactorModel::from_artifact(&artifact).expect("load");
    let rows: Vec<Vec<f64>> = {
        let mut rng = SplitMix64::new(3);
        (0..4096)
            .map(|_| (0..cpu.dim()).map(|_| rng.normal()).collect())
            .collect()
    };
    let budget_s: f64 = std::env::var("TACIT_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let measure = |name: &str, m: &FactorModel, reference: Option<&FactorModel>| {
        for batch in [16usize, 64, 256, 1024, 4096] {
            let x = &rows[..batch];
            let e = m.embed(x).expect("embed"); // warm-up (and the GPU's kernels)
            let diff = reference.map(|r| {
                let c = r.embed(x).expect("embed");
                e.iter()
                    .flatten()
                    .zip(c.iter().flatten())
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f64, f64::max)
            });
            let (mut n, t) = (0usize, Instant::now());
            while t.elapsed().as_secs_f64() < budget_s {
                m.embed(x).expect("embed");
                n += 1;
            }
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{{\"backend\":\"{name}\",\"batch\":{batch},\"passes\":{n},\"rows_per_s\":{:.0},\"ms_per_pass\":{:.4}{}}}",
                (n * batch) as f64 / secs,
                1e3 * secs / n as f64,
                diff.map_or(String::new(), |d| format!(
                    ",\"max_abs_diff_vs_cpu\":{d:.3e}"
                ))
            );
        }
    };
    measure("ndarray-cpu", &cpu, None);
    match tacit_models::device::cuda_probe() {
        Ok(()) => {
            let gpu = FactorModel::from_artifact_on(&artifact, cuda(), 1).expect("load on the GPU");
            measure("cuda", &gpu, Some(&cpu));
        }
        Err(why) => eprintln!("cuda: skipped ({why})"),
    }
}

/// The CUDA compute of a CUDA build (the probe answered, so the build has it).
#[cfg(feature = "cuda")]
fn cuda() -> Compute {
    Compute::Cuda
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> Compute {
    Compute::Cpu
}
