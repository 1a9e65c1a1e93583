//! greta-codegen: from the kernel IR to GPU code.
//!
//! The IR is the centre; backends are peers around it (naga's `back/*`), each one module with
//! one entry that takes the verified kernel and what the verifier learnt about it
//! ([`greta_dsl::valid::KernelInfo`]):
//! - [`back::hip`]: IR → HIP C++, one writer for AMD (gfx942) and NVIDIA (sm_90); what differs
//!   per family is one [`back::hip::Dialect`] table;
//! - [`back::llvm`]: IR → LLVM IR text for `amdgcn-amd-amdhsa` and `nvptx64-nvidia-cuda`,
//!   compiled in process (inkwell, the `llvm` feature) by [`llvm`];
//!
//! callers name a [`Via`] and never a backend's internals.
//!
//! Around them:
//! - [`toolchain`]: drivers for clang, ptxas and llvm-readelf (source → code object / AMDGCN
//!   assembly / PTX → cubin), located once, with typed errors;
//! - [`resources`]: register, LDS and scratch/spill figures read back from the tools, and the
//!   count of matrix instructions in the result.
//!
//! The top-level [`emit`] and [`compile`] are what the runtime and the CLI call: they verify the
//! kernel, check it was built for the target asked for, and hand both to the backend.

pub mod back;
pub mod llvm;
pub mod math;
pub mod resources;
pub mod toolchain;

mod error;

use greta_dsl::ir::Kernel;
use greta_dsl::valid::KernelInfo;
use greta_dsl::{Family, Target};

pub use error::CodegenError;
pub use resources::Resources;
pub use toolchain::{ToolVersions, Toolchain};

/// Which lowering of the IR produces the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Via {
    /// HIP C++ (CUDA dialect for NVIDIA) compiled by clang.
    Hip,
    /// LLVM IR compiled in process (AMDGPU object linked by ld.lld; NVPTX PTX through ptxas).
    Llvm,
}

impl Via {
    pub const ALL: [Via; 2] = [Via::Hip, Via::Llvm];

    /// The name users type (`--via hip`).
    pub fn name(self) -> &'static str {
        match self {
            Via::Hip => "hip",
            Via::Llvm => "llvm",
        }
    }

    pub fn by_name(name: &str) -> Option<Via> {
        Via::ALL.into_iter().find(|v| v.name() == name)
    }

    /// Bump whenever this backend's output may change for the same IR (prelude, writer,
    /// compiler flags): compile caches and bundles key on it.
    pub fn version(self) -> &'static str {
        match self {
            Via::Hip => "hip-2",
            Via::Llvm => "llvm-1",
        }
    }
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A textual output of [`emit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The backend's generated source (HIP C++ for [`Via::Hip`], LLVM IR for [`Via::Llvm`]).
    Source,
    /// PTX (NVIDIA targets only).
    Ptx,
    /// The target's assembly: AMDGCN for AMD, PTX for NVIDIA.
    Asm,
}

/// A kernel compiled for one target.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub via: Via,
    /// The backend's generated source.
    pub source: String,
    /// The PTX (NVIDIA only): what the CUDA driver can also load and JIT.
    pub ptx: Option<String>,
    /// The loadable binary: an AMDGPU code object (hsaco) or a cubin.
    pub object: Vec<u8>,
    pub resources: Resources,
}

/// Verifies `kernel`, checks that it was built for `target`, and returns what the verifier
/// learnt with the target to compile for: `target` itself, or its architecture-specific variant
/// when the kernel uses instructions only that has (the warpgroup engine: `sm_90a`).
fn prepare(kernel: &Kernel, target: &Target) -> Result<(KernelInfo, Target), CodegenError> {
    if kernel.target != target {
        return Err(CodegenError::Unsupported {
            kernel: kernel.name.clone(),
            message: format!(
                "it was built for {} and cannot be compiled for {}: build it for the target \
                 it is compiled for",
                kernel.target.name, target.name
            ),
        });
    }
    let info =
        greta_dsl::valid::validate(kernel).map_err(|e| CodegenError::Invalid(Box::new(e)))?;
    let mut effective = target.clone();
    if let (false, Some(wg)) = (info.warpgroup.is_empty(), target.warpgroup) {
        effective.cpu = wg.arch;
    }
    Ok((info, effective))
}

/// The generated source of `kernel` for `target`, by `via`.
pub fn emit_source(kernel: &Kernel, target: &Target, via: Via) -> Result<String, CodegenError> {
    Ok(lower(kernel, target, via)?.0)
}

/// The generated source and the target to compile it for (see [`prepare`]).
fn lower(kernel: &Kernel, target: &Target, via: Via) -> Result<(String, Target), CodegenError> {
    let (info, effective) = prepare(kernel, target)?;
    let source = match via {
        Via::Hip => back::hip::write_string(kernel, &info, &effective)?,
        Via::Llvm => back::llvm::write_string(kernel, &info, &effective)?,
    };
    Ok((source, effective))
}

/// One textual output for `kernel` on `target`, using the process-wide [`Toolchain`].
pub fn emit(kernel: &Kernel, target: &Target, format: Format) -> Result<String, CodegenError> {
    emit_with(Toolchain::global(), kernel, target, Via::Hip, format)
}

/// [`emit`] with an explicit toolchain and lowering.
pub fn emit_with(
    tools: &Toolchain,
    kernel: &Kernel,
    target: &Target,
    via: Via,
    format: Format,
) -> Result<String, CodegenError> {
    let (source, target) = lower(kernel, target, via)?;
    let target = &target;
    match (format, target.family, via) {
        (Format::Source, _, _) => Ok(source),
        (Format::Ptx, Family::Amdgcn, _) => Err(CodegenError::FormatUnavailable {
            format: "PTX",
            target: target.name.to_string(),
            reason: "PTX is NVIDIA's assembly; ask for Asm to get AMDGCN assembly".into(),
        }),
        (Format::Ptx | Format::Asm, Family::Nvptx, Via::Hip) => {
            tools.hip_to_ptx(&source, &kernel.name, target)
        }
        (Format::Asm, Family::Amdgcn, Via::Hip) => tools.hip_to_asm(&source, &kernel.name, target),
        (Format::Ptx | Format::Asm, _, Via::Llvm) => {
            let text = llvm::compile(&source, &kernel.name, target, llvm::Emit::Assembly)?;
            String::from_utf8(text).map_err(|_| CodegenError::Llvm {
                kernel: kernel.name.clone(),
                stage: "emit".into(),
                message: "the assembly is not UTF-8".into(),
            })
        }
    }
}

/// Generate, compile and assemble `kernel` for `target`, and read back its resource usage.
pub fn compile(kernel: &Kernel, target: &Target) -> Result<Compiled, CodegenError> {
    compile_with(Toolchain::global(), kernel, target, Via::Hip)
}

/// [`compile`] with an explicit toolchain and lowering.
pub fn compile_with(
    tools: &Toolchain,
    kernel: &Kernel,
    target: &Target,
    via: Via,
) -> Result<Compiled, CodegenError> {
    let (source, target) = lower(kernel, target, via)?;
    let target = &target;
    match target.family {
        Family::Amdgcn => {
            let object = match via {
                Via::Hip => tools.hip_to_code_object(&source, &kernel.name, target)?,
                Via::Llvm => {
                    let o = llvm::compile(&source, &kernel.name, target, llvm::Emit::Object)?;
                    tools.link_code_object(&o, &kernel.name)?
                }
            };
            let notes = tools.code_object_notes(&object)?;
            let mut resources = resources::parse_amd_notes(&notes, &kernel.name)?;
            let asm = tools.disassemble(&object, target)?;
            resources.matrix_instructions = resources::count_matrix_instructions(&asm, target);
            Ok(Compiled {
                via,
                source,
                ptx: None,
                object,
                resources,
            })
        }
        Family::Nvptx => {
            let ptx = match via {
                Via::Hip => tools.hip_to_ptx(&source, &kernel.name, target)?,
                // Not through `emit_with`: `target` is already the effective target (sm_90a
                // for the warpgroup engine), which the kernel was not built for.
                Via::Llvm => {
                    let text = llvm::compile(&source, &kernel.name, target, llvm::Emit::Assembly)?;
                    String::from_utf8(text).map_err(|_| CodegenError::Llvm {
                        kernel: kernel.name.clone(),
                        stage: "emit".into(),
                        message: "the PTX is not UTF-8".into(),
                    })?
                }
            };
            let (object, report) = tools.ptx_to_cubin(&ptx, &kernel.name, target)?;
            let mut resources = resources::parse_ptxas(&report, &kernel.name)?;
            // ptxas counts static shared memory only.
            if let Some(d) = kernel.dynamic_lds() {
                resources.lds_bytes += d.bytes;
            }
            resources.matrix_instructions = resources::count_matrix_instructions(&ptx, target);
            Ok(Compiled {
                via,
                source,
                ptx: Some(ptx),
                object,
                resources,
            })
        }
    }
}
