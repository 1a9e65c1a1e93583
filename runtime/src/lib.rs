//! greta-runtime: runs compiled kernels.
//!
//! - [`Backend`]: one trait over the CPU interpreter ([`cpu`]), NVIDIA through the CUDA driver
//!   API ([`cuda`], loaded at run time) and AMD through HIP (`hip`, behind the `hip` feature);
//! - [`DeviceBuffer`]: typed device memory (element type and length travel with the handle);
//! - [`graph`]: launch sequences recorded once and replayed with one call ([`Backend::capture`]);
//! - [`check`]: launches are checked against the kernel's signature (argument count, kinds,
//!   element types, buffer lengths) before anything reaches a device, with errors naming the
//!   argument;
//! - [`select`]: picks the backend at run time (`GRETA_BACKEND=cpu|cuda|hip`, else the best one
//!   present), so one binary starts on machines with neither GPU library;
//! - [`compile()`], [`emit`]: compiling a kernel, for crates outside greta that depend on
//!   greta-dsl and greta-runtime only (module [`mod@compile`]);
//! - [`cache`], [`bundle`], [`objects`]: where GPU code objects come from: the content-addressed
//!   compile cache (`GRETA_CACHE_DIR`), or a prebuilt bundle (`greta build`) on machines
//!   without a compiler;
//! - [`tuning`]: the tuning database (`greta tune`'s winners, keyed by kernel content);
//! - [`input`]: files read where a user points are regular files (never a FIFO that blocks);
//! - [`output`]: the one policy for files greta writes where a user points it (regular files
//!   only, through symbolic links, modes kept, atomic, temporaries removed on interrupt).

pub mod backend;
pub mod bundle;
pub mod cache;
pub mod check;
pub mod compile;
pub mod cpu;
/// NVIDIA GPUs through the CUDA driver API; libcuda is opened at run time.
pub mod cuda;
pub mod graph;
/// AMD GPUs through HIP; only with the `hip` feature (it links libamdhip64 at build time).
#[cfg(feature = "hip")]
pub mod hip;
pub mod input;
pub mod objects;
pub mod output;
mod select;
pub mod tuning;

pub use backend::{
    Backend, BackendKind, CodeObject, DeviceBuffer, KernelArg, LoadedKernel, ObjectFormat,
    RuntimeError, Signature,
};
pub use bundle::{Bundle, BundleError, BundleWriter};
pub use cache::{CacheError, CacheOutcome, CompileCache};
// With the codegen types this crate's own signatures name (`CompileCache::get_or_compile`
// returns `Resources`, `CacheError` wraps `CodegenError`), so that a caller needs no
// greta-codegen dependency.
pub use compile::{compile, emit, CodegenError, Compiled, Format, Resources, Via};
pub use graph::Graph;
pub use greta_dsl::interp::{Buffer, LaunchDims};
pub use objects::{ObjectError, ObjectSource, Origin};
pub use select::{select, select_named};
