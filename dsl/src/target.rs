//! The one description of what differs between targets. Everything target-specific that kernel
//! builders, the verifier, the interpreter and the backends need to know is a field here, so
//! that a difference between AMD and NVIDIA is a value in a table, not an `if` somewhere in a
//! backend.
//!
//! Kernel builders see the target (every `#[kernel]` function takes it as its first argument):
//! a kernel picks its matrix instruction, fragment shapes and tile sizes from these facts, and
//! the kernel it builds is for that target only ([`crate::ir::Kernel::target`]).

mod matrix;

pub use matrix::{
    Coord, FragLayout, MatrixInst, Term, WarpgroupInst, GFX942_MATRIX, SM_90_MATRIX,
    SM_90_WARPGROUP,
};

use crate::ir::{MmaShape, Scalar};
use std::fmt;

/// The GPU family, which picks the code generator's dialect (builtins, prelude, toolchain).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// AMD GCN/CDNA through the AMDGPU LLVM backend.
    Amdgcn,
    /// NVIDIA through the NVPTX LLVM backend.
    Nvptx,
}

/// How LDS is split into banks: accesses of one wave to different addresses of one bank are
/// serialised. A tile's padding or swizzle is chosen against these numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LdsBanks {
    pub banks: u32,
    pub bank_bytes: u32,
}

/// The register file of one SIMD (AMD) or SM sub-partition (NVIDIA), for occupancy figures:
/// how many waves can be resident given a kernel's registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RegisterFile {
    /// 32-bit registers per lane available to the waves of one SIMD (gfx942: 512, shared by
    /// arch VGPRs and AGPRs).
    pub regs_per_lane: u32,
    /// Registers are allocated in blocks of this many.
    pub granule: u32,
    /// Most waves one SIMD holds whatever their registers.
    pub max_waves: u32,
    /// SIMDs per compute unit (a block's waves are spread over them).
    pub simds_per_cu: u32,
    /// LDS per compute unit, shared by the resident blocks.
    pub lds_per_cu: u32,
    /// General-purpose registers one thread (lane) can address: gfx942 256 arch VGPRs (its 256
    /// AGPRs hold matrix accumulators only where the compiler chooses to), sm_90 255. Tile rules
    /// bound a kernel's accumulators against it before anything is compiled.
    pub max_per_thread: u32,
}

/// One GPU target: the facts a kernel builder sizes itself by (wave size, LDS, banks,
/// registers, matrix instructions) and the code generator's settings. Every `#[kernel]` builder
/// takes one as its first argument; `Target::GFX942` and `Target::SM_90` are the two there are.
/// Inside a kernel body, `target()` is the one being built for.
///
/// Example: `#[comptime] let waves = block / target().wave_size;` (waves per block).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// The name users type: `gfx942`, `sm_90`.
    pub name: &'static str,
    pub family: Family,
    /// Threads per wave (AMD) / warp (NVIDIA).
    pub wave_size: u32,
    /// LDS (shared memory) a block may allocate statically.
    pub lds_bytes: u32,
    /// LDS a block may allocate at most. On sm_90 above 48 KiB this needs the dynamic opt-in
    /// (the code generator switches to dynamic shared memory, the runtime raises the limit);
    /// a fast GEMM needs it there.
    pub lds_bytes_max: u32,
    pub lds_banks: LdsBanks,
    /// Largest block (threads) the hardware launches.
    pub max_block_threads: u32,
    /// Compute units (AMD) / streaming multiprocessors (NVIDIA) of the reference part (MI300X,
    /// H100/H200): how many blocks run at once, for sizing split-K grids. The runtime reports
    /// the real device's count where it differs.
    pub compute_units: u32,
    pub registers: RegisterFile,
    /// The matrix-core instructions, with their fragment layouts.
    pub matrix: &'static [MatrixInst],
    /// The warpgroup matrix engine, where the target has one (sm_90a's `wgmma`).
    pub warpgroup: Option<WarpgroupInst>,
    /// Whether global→LDS copies can run asynchronously (`cp.async`); elsewhere an
    /// `AsyncCopy` is an ordinary load and store.
    pub async_copy: bool,
    /// LLVM target triple.
    pub triple: &'static str,
    /// LLVM CPU name (`-mcpu`).
    pub cpu: &'static str,
}

impl Target {
    /// AMD Instinct MI300X (CDNA3): 304 CUs, 4 SIMDs each, 64 KiB LDS per CU in 32 banks of
    /// 4 bytes, 512 VGPRs per lane per SIMD (arch VGPRs and AGPRs together, granule 8).
    pub const GFX942: Target = Target {
        name: "gfx942",
        family: Family::Amdgcn,
        wave_size: 64,
        lds_bytes: 64 * 1024,
        lds_bytes_max: 64 * 1024,
        lds_banks: LdsBanks {
            banks: 32,
            bank_bytes: 4,
        },
        max_block_threads: 1024,
        compute_units: 304,
        registers: RegisterFile {
            regs_per_lane: 512,
            granule: 8,
            max_waves: 8,
            simds_per_cu: 4,
            lds_per_cu: 64 * 1024,
            max_per_thread: 256,
        },
        matrix: GFX942_MATRIX,
        warpgroup: None,
        async_copy: false,
        triple: "amdgcn-amd-amdhsa",
        cpu: "gfx942",
    };

    /// NVIDIA H100/H200 (Hopper): 132 SMs, 4 sub-partitions of 16384 registers, 228 KiB of
    /// shared memory per SM of which a block may use 227 KiB with the dynamic opt-in (48 KiB
    /// statically), 32 banks of 4 bytes.
    pub const SM_90: Target = Target {
        name: "sm_90",
        family: Family::Nvptx,
        wave_size: 32,
        lds_bytes: 48 * 1024,
        lds_bytes_max: 227 * 1024,
        lds_banks: LdsBanks {
            banks: 32,
            bank_bytes: 4,
        },
        max_block_threads: 1024,
        compute_units: 132,
        registers: RegisterFile {
            regs_per_lane: 512,
            granule: 8,
            max_waves: 16,
            simds_per_cu: 4,
            lds_per_cu: 228 * 1024,
            max_per_thread: 255,
        },
        matrix: SM_90_MATRIX,
        warpgroup: Some(SM_90_WARPGROUP),
        async_copy: true,
        triple: "nvptx64-nvidia-cuda",
        cpu: "sm_90",
    };

    /// Every GPU target greta compiles for.
    pub const ALL: [&'static Target; 2] = [&Target::GFX942, &Target::SM_90];

    pub fn by_name(name: &str) -> Option<&'static Target> {
        Target::ALL.into_iter().find(|t| t.name == name)
    }

    /// The matrix instruction of `shape` taking `ab` inputs, if the target has one.
    pub fn mma(&self, shape: MmaShape, ab: Scalar) -> Option<&'static MatrixInst> {
        self.matrix.iter().find(|i| i.shape == shape && i.ab == ab)
    }

    /// The matrix instructions taking `ab` inputs, preferred first.
    pub fn mma_for(&self, ab: Scalar) -> impl Iterator<Item = &'static MatrixInst> {
        self.matrix.iter().filter(move |i| i.ab == ab)
    }

    /// The preferred matrix instruction for `ab` inputs (the first of [`Target::mma_for`]).
    pub fn preferred_mma(&self, ab: Scalar) -> Option<&'static MatrixInst> {
        self.mma_for(ab).next()
    }

    /// Waves one SIMD can hold for a kernel using `regs` registers per lane (arch VGPRs plus
    /// AGPRs on gfx942), ignoring every other limit.
    pub fn waves_per_simd_by_registers(&self, regs: u32) -> u32 {
        let r = &self.registers;
        let per_wave = regs.max(1).div_ceil(r.granule) * r.granule;
        (r.regs_per_lane / per_wave).min(r.max_waves)
    }

    /// Waves per SIMD that LDS allows for blocks of `block_threads` threads using `lds` bytes
    /// each (`u32::MAX` when the kernel uses no LDS).
    pub fn waves_per_simd_by_lds(&self, lds: u32, block_threads: u32) -> u32 {
        if lds == 0 {
            return u32::MAX;
        }
        let r = &self.registers;
        let blocks = r.lds_per_cu / lds;
        let waves_per_block = block_threads.div_ceil(self.wave_size);
        blocks * waves_per_block / r.simds_per_cu
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}
