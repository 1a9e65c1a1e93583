//! greta-codegen: from the kernel IR to GPU code.
//!
//! - [`hip`]: IR → HIP C++, one emitter for AMD (gfx942) and NVIDIA (sm_90); what differs per
//!   family is one [`hip::Dialect`] table.
//! - [`toolchain`]: drivers for clang, ptxas and llvm-readelf (HIP → code object / AMDGCN
//!   assembly / PTX → cubin), located once, with typed errors.
//! - [`resources`]: register, LDS and scratch/spill figures read back from the tools.
//!
//! The top-level [`emit`] and [`compile`] are what the runtime and the CLI call.

pub mod hip;
pub mod resources;
pub mod toolchain;

mod error;

use greta_dsl::ir::Kernel;
use greta_dsl::{Family, Target};

pub use error::CodegenError;
pub use hip::emit_hip;
pub use resources::Resources;
pub use toolchain::{ToolVersions, Toolchain};

/// Bump whenever generated code may change for the same IR (prelude, emitter, compiler flags):
/// compile caches key on it.
pub const CODEGEN_VERSION: &str = "hip-1";

/// A textual output of [`emit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The generated HIP C++ source.
    Hip,
    /// PTX (NVIDIA targets only).
    Ptx,
    /// The target's assembly: AMDGCN for AMD, PTX for NVIDIA.
    Asm,
}

/// A kernel compiled for one target.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub hip_source: String,
    /// The PTX (NVIDIA only): what the CUDA driver can also load and JIT.
    pub ptx: Option<String>,
    /// The loadable binary: an AMDGPU code object (hsaco) or a cubin.
    pub object: Vec<u8>,
    pub resources: Resources,
}

/// One textual output for `kernel` on `target`, using the process-wide [`Toolchain`].
pub fn emit(kernel: &Kernel, target: &Target, format: Format) -> Result<String, CodegenError> {
    emit_with(Toolchain::global(), kernel, target, format)
}

/// [`emit`] with an explicit toolchain.
pub fn emit_with(
    tools: &Toolchain,
    kernel: &Kernel,
    target: &Target,
    format: Format,
) -> Result<String, CodegenError> {
    let source = emit_hip(kernel, target)?;
    match (format, target.family) {
        (Format::Hip, _) => Ok(source),
        (Format::Ptx | Format::Asm, Family::Nvptx) => {
            tools.hip_to_ptx(&source, &kernel.name, target)
        }
        (Format::Asm, Family::Amdgcn) => tools.hip_to_asm(&source, &kernel.name, target),
        (Format::Ptx, Family::Amdgcn) => Err(CodegenError::FormatUnavailable {
            format: "PTX",
            target: target.name.to_string(),
            reason: "PTX is NVIDIA's assembly; ask for Asm to get AMDGCN assembly".into(),
        }),
    }
}

/// Generate, compile and assemble `kernel` for `target`, and read back its resource usage.
pub fn compile(kernel: &Kernel, target: &Target) -> Result<Compiled, CodegenError> {
    compile_with(Toolchain::global(), kernel, target)
}

/// [`compile`] with an explicit toolchain.
pub fn compile_with(
    tools: &Toolchain,
    kernel: &Kernel,
    target: &Target,
) -> Result<Compiled, CodegenError> {
    let hip_source = emit_hip(kernel, target)?;
    match target.family {
        Family::Amdgcn => {
            let object = tools.hip_to_code_object(&hip_source, &kernel.name, target)?;
            let notes = tools.code_object_notes(&object)?;
            let resources = resources::parse_amd_notes(&notes, &kernel.name)?;
            Ok(Compiled {
                hip_source,
                ptx: None,
                object,
                resources,
            })
        }
        Family::Nvptx => {
            let ptx = tools.hip_to_ptx(&hip_source, &kernel.name, target)?;
            let (object, report) = tools.ptx_to_cubin(&ptx, &kernel.name, target)?;
            let resources = resources::parse_ptxas(&report, &kernel.name)?;
            Ok(Compiled {
                hip_source,
                ptx: Some(ptx),
                object,
                resources,
            })
        }
    }
}
