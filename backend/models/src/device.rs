//! Where models train and run: the NdArray CPU backend by default; with the `cuda`
//! cargo feature, the CUDA backend when a GPU and its driver answer a probe.
//! Without them the CUDA runtime panics on one of its worker threads, so the probe runs
//! on a thread of its own with a timeout and any failure means "use the CPU" with one
//! clear log line — never a crash.

use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};

use crate::ModelError;
use crate::embedding::{EmbeddingNet, NetShape};

/// The CPU backend.
pub type CpuBackend = burn::backend::NdArray<f32>;
/// The CPU backend with automatic differentiation (training).
pub type CpuTrainBackend = burn::backend::Autodiff<CpuBackend>;
/// The CUDA backend.
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Cuda<f32, i32>;

/// What the caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CUDA when compiled in and working, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA; falls back to the CPU (with a warning) when it does not work.
    Cuda,
}

impl std::str::FromStr for DeviceChoice {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda),
            _ => Err(ModelError::Config(format!(
                "device {s:?}: expected auto, cpu or cuda"
            ))),
        }
    }
}

/// The backend chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compute {
    /// NdArray on the CPU.
    Cpu,
    /// CUDA device 0.
    #[cfg(feature = "cuda")]
    Cuda,
}

impl Compute {
    /// Short name for logs and artifacts.
    pub fn name(self) -> &'static str {
        match self {
            Compute::Cpu => "cpu",
            #[cfg(feature = "cuda")]
            Compute::Cuda => "cuda",
        }
    }
}

/// Resolves a choice to a working backend, logging why when CUDA is not used.
pub fn select(choice: DeviceChoice) -> Compute {
    if choice == DeviceChoice::Cpu {
        return Compute::Cpu;
    }
    match cuda_probe() {
        Ok(()) => {
            #[cfg(feature = "cuda")]
            {
                tracing::info!("using the CUDA backend");
                Compute::Cuda
            }
            #[cfg(not(feature = "cuda"))]
            Compute::Cpu
        }
        Err(why) => {
            if choice == DeviceChoice::Cuda {
                tracing::warn!("CUDA requested but unavailable ({why}); using the CPU backend");
            } else {
                tracing::info!("CUDA unavailable ({why}); using the CPU backend");
            }
            Compute::Cpu
        }
    }
}

/// Whether a CUDA device answers; the reason when it does not. Cached per process.
pub fn cuda_probe() -> Result<(), String> {
    static PROBE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    PROBE.get_or_init(probe_once).clone()
}

#[cfg(not(feature = "cuda"))]
fn probe_once() -> Result<(), String> {
    Err("this build has no CUDA support (cargo feature `cuda`)".into())
}

#[cfg(feature = "cuda")]
fn probe_once() -> Result<(), String> {
    if !std::path::Path::new("/dev/nvidiactl").exists()
        && std::env::var_os("TACIT_FORCE_CUDA_PROBE").is_none()
    {
        return Err("no NVIDIA driver (/dev/nvidiactl is absent)".into());
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("cuda-probe".into())
        .spawn(move || {
            let r = std::panic::catch_unwind(|| {
                let device = burn::backend::cuda::CudaDevice::default();
                let t = Tensor::<CudaBackend, 1>::from_floats([1.0, 2.0, 3.0], &device);
                let s: f32 = t.sum().into_scalar().elem();
                s
            });
            let _ = tx.send(r.map_err(|_| ()));
        });
    if spawned.is_err() {
        return Err("cannot start the probe thread".into());
    }
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(Ok(s)) if (s - 6.0).abs() < 1e-6 => Ok(()),
        Ok(Ok(s)) => Err(format!("a test sum on the GPU gave {s}, not 6")),
        Ok(Err(())) => Err("the CUDA runtime failed (driver or library missing)".into()),
        Err(_) => Err("the CUDA runtime did not answer within 60 s".into()),
    }
}

/// Moves a network from any backend to the CPU backend (through its record).
pub fn to_cpu<B: Backend>(
    net: EmbeddingNet<B>,
    shape: NetShape,
) -> Result<EmbeddingNet<CpuBackend>, ModelError> {
    let rec = NamedMpkBytesRecorder::<FullPrecisionSettings>::default();
    let bytes = Recorder::<B>::record(&rec, net.into_record(), ())
        .map_err(|e| ModelError::Artifact(format!("cannot encode the weights: {e}")))?;
    let device = Default::default();
    let record = Recorder::<CpuBackend>::load(&rec, bytes, &device)
        .map_err(|e| ModelError::Artifact(format!("cannot decode the weights: {e}")))?;
    Ok(EmbeddingNet::<CpuBackend>::new(shape, &device).load_record(record))
}
