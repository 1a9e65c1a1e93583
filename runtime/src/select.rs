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
    if let Ok(hip) = hip() {
        return hip;
    }
    Box::new(CpuBackend::default())
}

/// The CUDA backend on the first GPU; Unavailable, with the reason, when libcuda does not load,
/// sees no GPU, or the GPU is older than sm_90. Always built: libcuda is opened at run time.
fn cuda() -> Result<Box<dyn Backend>, RuntimeError> {
    Ok(Box::new(crate::cuda::CudaBackend::new()?))
}

/// The HIP backend on the first gfx942 device; Unavailable (with HIP's words) when there is
/// none or HIP fails to start.
#[cfg(feature = "hip")]
fn hip() -> Result<Box<dyn Backend>, RuntimeError> {
    Ok(Box::new(crate::hip::HipBackend::open()?))
}

/// Without the `hip` feature there is no HIP backend to open: it links libamdhip64 at build
/// time, which would stop this binary from starting on machines without ROCm.
#[cfg(not(feature = "hip"))]
fn hip() -> Result<Box<dyn Backend>, RuntimeError> {
    Err(RuntimeError::Unavailable {
        backend: "hip",
        reason: "this greta was built without the `hip` feature".into(),
    })
}

/// The backend called `name`; a missing driver or library is an error saying so.
pub fn select_named(name: &str) -> Result<Box<dyn Backend>, RuntimeError> {
    match name {
        "cpu" => Ok(Box::new(CpuBackend::default())),
        "cuda" => cuda(),
        "hip" => hip(),
        other => Err(RuntimeError::UnknownBackend(other.to_string())),
    }
}

#[cfg(all(test, not(feature = "hip")))]
mod tests {
    use super::*;

    #[test]
    fn hip_without_the_feature_says_how_to_get_it() {
        match select_named("hip") {
            Err(RuntimeError::Unavailable { backend, reason }) => {
                assert_eq!(backend, "hip");
                assert!(reason.contains("`hip` feature"), "{reason}");
            }
            Err(other) => panic!("expected Unavailable, got {other}"),
            Ok(_) => panic!("hip selected without the feature"),
        }
    }
}
