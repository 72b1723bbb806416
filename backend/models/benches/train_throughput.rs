//! Training throughput of the embedding network (steps/s), for the ratio against the
//! PyTorch peer in `train_throughput_torch.py` (same model, loss, optimiser, batch and
//! data shape). Run with `scripts/bench-train.sh`, which runs both and prints the ratio.
//!
//! Output: one JSON line per backend.

use std::time::Instant;

use tacit_models::SplitMix64;
use tacit_models::device::CpuTrainBackend;
use tacit_models::embedding::{TrainConfig, TrainSet, train};

fn data(people: usize, per: usize, dim: usize) -> TrainSet {
    let mut rng = SplitMix64::new(5);
    let mut set = TrainSet {
        rows: Vec::new(),
        labels: Vec::new(),
        people,
    };
    for p in 0..people {
        let centre: Vec<f64> = (0..dim).map(|_| rng.normal()).collect();
        for _ in 0..per {
            set.rows
                .push(centre.iter().map(|c| c + 0.5 * rng.normal()).collect());
            set.labels.push(p);
        }
    }
    set
}

fn main() {
    let steps: usize = std::env::var("TACIT_BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    // CMU-shaped: 41 training people × 400 entries × 31 timings.
    let set = data(41, 400, 31);
    let cfg = |steps| TrainConfig {
        steps,
        ..TrainConfig::default()
    };
    let run = |name: &str, f: &dyn Fn(usize) -> f64| {
        f(50); // warm-up
        let secs = f(steps);
        println!(
            "{{\"impl\":\"burn-0.21\",\"backend\":\"{name}\",\"steps\":{steps},\"batch\":256,\"seconds\":{secs:.4},\"steps_per_s\":{:.2}}}",
            steps as f64 / secs
        );
    };
    run("ndarray-cpu", &|n| {
        let t = Instant::now();
        train::<CpuTrainBackend>(&set, &cfg(n), &Default::default(), &mut |_, _| {})
            .expect("train");
        t.elapsed().as_secs_f64()
    });
    #[cfg(feature = "cuda")]
    match tacit_models::device::cuda_probe() {
        Ok(()) => run("cuda", &|n| {
            type B = burn::backend::Autodiff<tacit_models::device::CudaBackend>;
            let device = burn::backend::cuda::CudaDevice::default();
            let t = Instant::now();
            train::<B>(&set, &cfg(n), &device, &mut |_, _| {}).expect("train");
            t.elapsed().as_secs_f64()
        }),
        Err(why) => eprintln!("cuda: skipped ({why})"),
    }
}
