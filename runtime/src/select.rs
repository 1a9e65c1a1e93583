//! Choosing a backend at run time.

use crate::backend::{Backend, RuntimeError};
use crate::cpu::CpuBackend;

/// The backend named by `GRETA_BACKEND` (cpu, cuda, hip), else the best one present: CUDA if
/// an NVIDIA driver loads, HIP if a ROCm runtime loads (with the `hip` feature), else the CPU.
pub fn select() -> Result<Box<dyn Backend>, RuntimeError> {
    match std::env::var("GRETA_BACKEND") {
        Ok(name) if !name.is_empty() => select_named(&name),
        _ => Ok(best()),
    }
}

fn best() -> Box<dyn Backend> {
    if let Ok(cuda) = cuda() {
        return cuda;
    }
    Box::new(CpuBackend::default())
}

/// The CUDA backend on the first GPU; Unavailable, with the reason, when libcuda does not load,
/// sees no GPU, or the GPU is older than sm_90. Always built: libcuda is opened at run time.
fn cuda() -> Result<Box<dyn Backend>, RuntimeError> {
    Ok(Box::new(crate::cuda::CudaBackend::new()?))
}

/// The backend called `name`; a missing driver or library is an error saying so.
pub fn select_named(name: &str) -> Result<Box<dyn Backend>, RuntimeError> {
    match name {
        "cpu" => Ok(Box::new(CpuBackend::default())),
        "cuda" => cuda(),
        "hip" => Err(RuntimeError::Unavailable {
            backend: "hip",
            reason: "not built yet".into(),
        }),
        other => Err(RuntimeError::UnknownBackend(other.to_string())),
    }
}
