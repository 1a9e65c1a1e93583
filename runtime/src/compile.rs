//! Compiling a kernel from a crate of its own: for kernel authors outside this repository, whose
//! crates depend on greta-dsl (to write and build the kernel) and greta-runtime (to run and
//! compile it) and on nothing else of greta's.
//!
//! These are the calls `greta emit` and `greta inspect` make, with the process-wide toolchain
//! (clang, ptxas, ld.lld, llvm-readelf, found as `greta` finds them: `GRETA_CLANG`,
//! `GRETA_PTXAS`, … else `PATH`). They compile every time; [`crate::CompileCache`] is the cached
//! form (`get_or_compile`), and what the GPU backends load from.
//!
//! ```ignore
//! let kernel = my_kernel::<f16, 8>(&Target::GFX942, 256)?;
//! let compiled = greta_runtime::compile(&kernel, &Target::GFX942, Via::Hip)?;
//! println!("{} bytes, {:?} VGPRs", compiled.object.len(), compiled.resources.vgpr);
//! ```
//!
//! [`Via::Llvm`] needs LLVM in process: greta-runtime's `llvm` feature (off by default, so that
//! a crate that only runs kernels does not link LLVM). Without it, compiling by LLVM is a clear
//! [`CodegenError`], and its IR can still be emitted as text.

use greta_codegen::Toolchain;
use greta_dsl::ir::Kernel;
use greta_dsl::Target;

pub use greta_codegen::{CodegenError, Compiled, Format, Resources, Via};

/// `kernel` compiled for `target` by `via`: the generated source, the loadable object (an
/// AMDGPU code object for gfx942, a cubin for sm_90; PTX as well for NVIDIA) and its resources
/// (registers, LDS, scratch or spills) as the tools report them. The kernel must have been built
/// for `target`; it is verified first.
pub fn compile(kernel: &Kernel, target: &Target, via: Via) -> Result<Compiled, CodegenError> {
    greta_codegen::compile_with(Toolchain::global(), kernel, target, via)
}

/// One textual output for `kernel` on `target` by `via`: the generated source (HIP C++ or LLVM
/// IR; needs no tools), PTX, or the target's assembly.
pub fn emit(
    kernel: &Kernel,
    target: &Target,
    via: Via,
    format: Format,
) -> Result<String, CodegenError> {
    greta_codegen::emit_with(Toolchain::global(), kernel, target, via, format)
}
