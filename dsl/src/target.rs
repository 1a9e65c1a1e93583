//! The one description of what differs between targets. Everything target-specific that the IR,
//! the interpreter and the backends need to know is a field here, so that a difference between
//! AMD and NVIDIA is a value in a table, not an `if` somewhere in a backend.

use std::fmt;

/// The GPU family, which picks the code generator's dialect (builtins, prelude, toolchain).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// AMD GCN/CDNA through the AMDGPU LLVM backend.
    Amdgcn,
    /// NVIDIA through the NVPTX LLVM backend.
    Nvptx,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// The name users type: `gfx942`, `sm_90`.
    pub name: &'static str,
    pub family: Family,
    /// Threads per wave (AMD) / warp (NVIDIA).
    pub wave_size: u32,
    /// LDS (shared memory) a block may allocate statically.
    pub lds_bytes: u32,
    /// Largest block (threads) the hardware launches.
    pub max_block_threads: u32,
    /// LLVM target triple.
    pub triple: &'static str,
    /// LLVM CPU name (`-mcpu`).
    pub cpu: &'static str,
}

impl Target {
    /// AMD Instinct MI300X (CDNA3).
    pub const GFX942: Target = Target {
        name: "gfx942",
        family: Family::Amdgcn,
        wave_size: 64,
        lds_bytes: 64 * 1024,
        max_block_threads: 1024,
        triple: "amdgcn-amd-amdhsa",
        cpu: "gfx942",
    };

    /// NVIDIA H100/H200 (Hopper). 48 KiB is the static shared-memory limit; more needs the
    /// dynamic opt-in, which greta does not use yet.
    pub const SM_90: Target = Target {
        name: "sm_90",
        family: Family::Nvptx,
        wave_size: 32,
        lds_bytes: 48 * 1024,
        max_block_threads: 1024,
        triple: "nvptx64-nvidia-cuda",
        cpu: "sm_90",
    };

    /// Every GPU target greta compiles for.
    pub const ALL: [&'static Target; 2] = [&Target::GFX942, &Target::SM_90];

    pub fn by_name(name: &str) -> Option<&'static Target> {
        Target::ALL.into_iter().find(|t| t.name == name)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}
