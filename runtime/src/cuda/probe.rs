//! Is there a usable CUDA driver library? Answered without letting cudarc panic.
//!
//! cudarc's `dynamic-loading` opens libcuda lazily on the first driver call and **panics** when no
//! candidate library loads (`panic_no_lib_found`), and again, per function, when a symbol is
//! missing (`Missing symbol ...`). A panic is not an answer a backend selector can fall back on,
//! and under `panic = "abort"` it would end the process. So before any cudarc call we do what
//! cudarc will do, with `libloading`, but returning errors:
//!
//! 1. open the candidate names in cudarc's own order ([`cudarc::get_lib_name_candidates`]), so
//!    the first one that loads here is the one cudarc will load;
//! 2. check that it exports every driver symbol this backend calls ([`REQUIRED`]), so none of
//!    cudarc's per-symbol lookups can fail later.
//!
//! With both passing, cudarc's panic paths are unreachable for the calls we make; the backend
//! still runs its initialisation under `catch_unwind` as a last resort (see
//! `CudaBackend::on_device`), chosen over relying on it alone because a caught panic still prints
//! through the panic hook and does not help under `panic = "abort"`.

use std::sync::OnceLock;

/// Every driver entry point the cuda backend reaches through cudarc (`result::*` and the safe
/// `CudaContext`/`CudaStream`/`CudaEvent` methods it uses), by the exact symbol name the
/// `cuda-12090` bindings look up. Keep in step with `cuda/mod.rs`.
pub(crate) const REQUIRED: &[&str] = &[
    "cuInit",
    "cuGetErrorName",
    "cuGetErrorString",
    "cuDeviceGet",
    "cuDeviceGetCount",
    "cuDeviceGetName",
    "cuDeviceGetAttribute",
    "cuDevicePrimaryCtxRetain",
    "cuDevicePrimaryCtxRelease_v2",
    "cuCtxGetCurrent",
    "cuCtxSetCurrent",
    "cuCtxSynchronize",
    "cuStreamCreate",
    "cuStreamDestroy_v2",
    "cuStreamSynchronize",
    "cuMemAlloc_v2",
    "cuMemFree_v2",
    "cuMemGetInfo_v2",
    "cuMemsetD8Async",
    "cuMemcpyHtoDAsync_v2",
    "cuMemcpyDtoHAsync_v2",
    "cuMemcpyDtoDAsync_v2",
    "cuModuleLoadDataEx",
    "cuModuleGetFunction",
    "cuModuleUnload",
    "cuLaunchKernel",
    "cuEventCreate",
    "cuEventDestroy_v2",
    "cuEventRecord",
    "cuEventSynchronize",
    "cuEventElapsedTime",
];

/// `Ok(library file name)` when a CUDA driver library loads and has every [`REQUIRED`] symbol;
/// otherwise the reason, as a sentence for `RuntimeError::Unavailable`. Probed once per process.
pub(crate) fn driver_library() -> Result<&'static str, String> {
    static PROBE: OnceLock<Result<String, String>> = OnceLock::new();
    PROBE
        .get_or_init(|| probe(&cudarc::get_lib_name_candidates("cuda"), REQUIRED))
        .as_deref()
        .map_err(Clone::clone)
}

/// Opens the first of `candidates` that loads and checks it exports `required`.
pub(crate) fn probe(candidates: &[String], required: &[&str]) -> Result<String, String> {
    for name in candidates {
        // SAFETY: loading a shared library runs its initialisers. The candidates are the CUDA
        // driver's names (the same list cudarc itself dlopens), whose initialisers are the
        // vendor's and safe to run; `Library::new` returns an error rather than panicking
        // when the file is absent or not loadable.
        let Ok(lib) = (unsafe { libloading::Library::new(name.as_str()) }) else {
            continue;
        };
        let missing: Vec<&str> = required
            .iter()
            .copied()
            // SAFETY: only looks the symbol up (dlsym); the pointer is never called or read,
            // and the `Symbol` is dropped before `lib`.
            .filter(|sym| unsafe { lib.get::<*const std::ffi::c_void>(*sym) }.is_err())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{name} was loaded but lacks {} (the NVIDIA driver is too old or not a CUDA \
                 driver; greta needs a CUDA 12 driver, 525 or newer)",
                missing.join(", ")
            ));
        }
        return Ok(name.clone());
    }
    Err(format!(
        "libcuda.so could not be loaded: no NVIDIA driver on this machine (searched {}; set \
         LD_LIBRARY_PATH if the driver is installed elsewhere)",
        short_list(candidates)
    ))
}

/// The first few candidate names, for an error message that stays one line.
fn short_list(candidates: &[String]) -> String {
    let mut names: Vec<&str> = candidates.iter().map(String::as_str).take(3).collect();
    if let Some(last) = candidates.last().filter(|_| candidates.len() > 3) {
        names.push("…");
        names.push(last);
    }
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_a_sentence_not_a_panic() {
        let err = probe(&["libgreta-no-such-driver.so.1".to_string()], REQUIRED).unwrap_err();
        assert!(err.starts_with("libcuda.so could not be loaded"), "{err}");
        assert!(err.contains("libgreta-no-such-driver.so.1"), "{err}");
    }

    #[test]
    fn a_library_without_the_driver_symbols_is_named_with_what_it_lacks() {
        // libc loads everywhere and has no CUDA symbols: it stands in for a wrong libcuda.
        let err = probe(&["libc.so.6".to_string()], &["cuInit", "cuLaunchKernel"]).unwrap_err();
        assert!(err.contains("libc.so.6 was loaded but lacks cuInit, cuLaunchKernel"));
    }

    #[test]
    fn a_library_with_the_symbols_passes() {
        assert_eq!(
            probe(&["libc.so.6".to_string()], &["malloc", "free"]),
            Ok("libc.so.6".to_string())
        );
    }

    #[test]
    fn the_candidate_list_ends_in_libcuda_so_1() {
        let c = cudarc::get_lib_name_candidates("cuda");
        assert_eq!(c.first().map(String::as_str), Some("libcuda.so"));
        assert!(c.iter().any(|n| n == "libcuda.so.1"));
        let s = short_list(&c);
        assert!(
            s.starts_with("libcuda.so, ") && s.ends_with("libcuda.so.1"),
            "{s}"
        );
    }
}
