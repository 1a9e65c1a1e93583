//! LLVM in process (inkwell, LLVM 19): the module text of [`crate::back::llvm`] parsed, verified,
//! optimised at O3 and emitted, with no compiler process. AMDGPU objects still go through
//! `ld.lld` to become a code object (LLVM's C API has no linker); NVPTX emits PTX text, which
//! `ptxas` assembles as on the HIP path.
//!
//! Without the `llvm` feature every entry here is an error that says so.

use greta_dsl::{Family, Target};

use crate::CodegenError;

/// What LLVM emits for a module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    /// An ELF relocatable object (AMDGPU), to be linked into a code object.
    Object,
    /// The target's assembly: AMDGCN, or PTX for NVPTX.
    Assembly,
}

/// The LLVM version compiled in, for cache keys (`None` without the `llvm` feature).
pub fn version() -> Option<String> {
    imp::version()
}

/// Parses `ir` (a module for `target`), verifies and optimises it (O3), and emits `what`.
/// `name` names the kernel in errors.
pub fn compile(ir: &str, name: &str, target: &Target, what: Emit) -> Result<Vec<u8>, CodegenError> {
    imp::compile(ir, name, target, what)
}

/// The target machine's data layout for `target` (tests compare it with the writer's).
pub fn data_layout(target: &Target) -> Result<String, CodegenError> {
    imp::data_layout(target)
}

/// The target features LLVM needs beyond the CPU: `+ptx80` (the PTX ISA that has sm_90 and the
/// warpgroup instructions; clang without a CUDA install assumes an older one).
#[cfg_attr(not(feature = "llvm"), allow(dead_code))]
fn features(target: &Target) -> &'static str {
    match target.family {
        Family::Amdgcn => "",
        Family::Nvptx => "+ptx80",
    }
}

#[cfg(feature = "llvm")]
mod imp {
    use super::*;
    use inkwell::context::Context;
    use inkwell::memory_buffer::MemoryBuffer;
    use inkwell::passes::PassBuilderOptions;
    use inkwell::targets::{
        CodeModel, FileType, InitializationConfig, RelocMode, Target as LlvmTarget, TargetMachine,
        TargetTriple,
    };
    use inkwell::OptimizationLevel;
    use std::sync::Once;

    fn fail(name: &str, stage: &str, message: impl ToString) -> CodegenError {
        CodegenError::Llvm {
            kernel: name.to_string(),
            stage: stage.to_string(),
            message: message.to_string(),
        }
    }

    fn init() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let config = InitializationConfig::default();
            LlvmTarget::initialize_amd_gpu(&config);
            LlvmTarget::initialize_nvptx(&config);
        });
    }

    pub fn version() -> Option<String> {
        let (major, minor, patch) = inkwell::support::get_llvm_version();
        Some(format!("LLVM {major}.{minor}.{patch} (in process)"))
    }

    fn machine(target: &Target, name: &str) -> Result<TargetMachine, CodegenError> {
        init();
        let triple =
            TargetTriple::create(super::super::back::llvm::Family::of(target.family).triple);
        let llvm_target = LlvmTarget::from_triple(&triple).map_err(|e| fail(name, "target", e))?;
        llvm_target
            .create_target_machine(
                &triple,
                target.cpu,
                features(target),
                OptimizationLevel::Aggressive,
                RelocMode::PIC,
                CodeModel::Default,
            )
            .ok_or_else(|| {
                fail(
                    name,
                    "target machine",
                    format!("LLVM refused cpu {}", target.cpu),
                )
            })
    }

    pub fn data_layout(target: &Target) -> Result<String, CodegenError> {
        let tm = machine(target, "(data layout)")?;
        Ok(tm
            .get_target_data()
            .get_data_layout()
            .as_str()
            .to_string_lossy()
            .into_owned())
    }

    pub fn compile(
        ir: &str,
        name: &str,
        target: &Target,
        what: Emit,
    ) -> Result<Vec<u8>, CodegenError> {
        let tm = machine(target, name)?;
        let context = Context::create();
        let buffer = MemoryBuffer::create_from_memory_range_copy(ir.as_bytes(), name);
        let module = context
            .create_module_from_ir(buffer)
            .map_err(|e| fail(name, "parse", e.to_string_lossy()))?;
        module
            .verify()
            .map_err(|e| fail(name, "verify", e.to_string_lossy()))?;
        module
            .run_passes("default<O3>", &tm, PassBuilderOptions::create())
            .map_err(|e| fail(name, "optimise", e.to_string_lossy()))?;
        let file_type = match what {
            Emit::Object => FileType::Object,
            Emit::Assembly => FileType::Assembly,
        };
        let out = tm
            .write_to_memory_buffer(&module, file_type)
            .map_err(|e| fail(name, "emit", e.to_string_lossy()))?;
        Ok(out.as_slice().to_vec())
    }
}

#[cfg(not(feature = "llvm"))]
mod imp {
    use super::*;

    pub fn version() -> Option<String> {
        None
    }

    fn missing(name: &str) -> CodegenError {
        CodegenError::Llvm {
            kernel: name.to_string(),
            stage: "build".to_string(),
            message: "this greta was built without the `llvm` feature (LLVM in process); \
                      rebuild with default features, or use --via hip"
                .to_string(),
        }
    }

    pub fn data_layout(_target: &Target) -> Result<String, CodegenError> {
        Err(missing("(data layout)"))
    }

    pub fn compile(_ir: &str, name: &str, _t: &Target, _w: Emit) -> Result<Vec<u8>, CodegenError> {
        Err(missing(name))
    }
}
