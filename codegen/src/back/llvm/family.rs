//! What differs between the AMDGPU and the NVPTX flavour of the generated LLVM IR: one
//! [`Family`] table per GPU family, the LLVM counterpart of the HIP backend's `Dialect`. The
//! writer never asks which target it is writing for; it asks the table.

use greta_dsl::Family as GpuFamily;

/// The per-family table. Intrinsic names are LLVM's; `{axis}` in the id intrinsics is `x`, `y`
/// or `z`.
#[derive(Debug)]
pub struct Family {
    pub triple: &'static str,
    /// The target's data layout (LLVM 19's for the triple; a test with the `llvm` feature
    /// compares it with the target machine's). It must be in the text: it says that allocas
    /// live in address space 5 on AMDGPU.
    pub data_layout: &'static str,
    /// The kernel calling convention keyword.
    pub kernel_cc: &'static str,
    /// Address space of global buffers, of LDS, of per-thread allocas.
    pub global_as: u32,
    pub lds_as: u32,
    pub alloca_as: u32,
    /// Intrinsics returning the thread index, block index, block size and grid size (in blocks)
    /// along `{axis}`; `None` where the writer computes it (AMDGPU: from the dispatch packet).
    pub thread_idx: &'static str,
    pub block_idx: &'static str,
    pub block_dim: Option<&'static str>,
    pub grid_dim: Option<&'static str>,
    /// f32 math intrinsics (never libm names: there is no device library).
    pub exp2: &'static str,
    pub log2: &'static str,
    pub sqrt: &'static str,
    pub rsqrt: &'static str,
    /// The sync scope of global atomics (`syncscope("agent")`), empty for the default.
    pub atomic_scope: &'static str,
}

impl Family {
    pub fn of(family: GpuFamily) -> &'static Family {
        match family {
            GpuFamily::Amdgcn => &AMDGPU,
            GpuFamily::Nvptx => &NVPTX,
        }
    }
}

/// gfx942 through `amdgcn-amd-amdhsa`: workitem/workgroup id intrinsics; sizes from the HSA
/// dispatch packet (block size as three u16 at byte 4, grid size in work-items as three u32 at
/// byte 12); `ds_bpermute` for shuffles.
pub static AMDGPU: Family = Family {
    triple: "amdgcn-amd-amdhsa",
    data_layout: "e-p:64:64-p1:64:64-p2:32:32-p3:32:32-p4:64:64-p5:32:32-p6:32:32-p7:160:256:256:32-p8:128:128-p9:192:256:256:32-i64:64-v16:16-v24:32-v32:32-v48:64-v96:128-v192:256-v256:256-v512:512-v1024:1024-v2048:2048-n32:64-S32-A5-G1-ni:7:8:9",
    kernel_cc: "amdgpu_kernel",
    global_as: 1,
    lds_as: 3,
    alloca_as: 5,
    thread_idx: "llvm.amdgcn.workitem.id.{axis}",
    block_idx: "llvm.amdgcn.workgroup.id.{axis}",
    block_dim: None,
    grid_dim: None,
    exp2: "llvm.amdgcn.exp2.f32",
    log2: "llvm.amdgcn.log.f32",
    sqrt: "llvm.sqrt.f32",
    rsqrt: "llvm.amdgcn.rsq.f32",
    atomic_scope: " syncscope(\"agent\")",
};

/// sm_90 through `nvptx64-nvidia-cuda`: the PTX special registers, `shfl.sync`, and the
/// approximate `ex2`/`lg2`/`rsqrt` with the correctly rounded `sqrt.rn`, as the HIP path's CUDA
/// dialect uses.
pub static NVPTX: Family = Family {
    triple: "nvptx64-nvidia-cuda",
    data_layout: "e-i64:64-i128:128-v16:16-v32:32-n16:32:64",
    kernel_cc: "ptx_kernel",
    global_as: 1,
    lds_as: 3,
    alloca_as: 0,
    thread_idx: "llvm.nvvm.read.ptx.sreg.tid.{axis}",
    block_idx: "llvm.nvvm.read.ptx.sreg.ctaid.{axis}",
    block_dim: Some("llvm.nvvm.read.ptx.sreg.ntid.{axis}"),
    grid_dim: Some("llvm.nvvm.read.ptx.sreg.nctaid.{axis}"),
    exp2: "llvm.nvvm.ex2.approx.f",
    log2: "llvm.nvvm.lg2.approx.f",
    sqrt: "llvm.nvvm.sqrt.rn.f",
    rsqrt: "llvm.nvvm.rsqrt.approx.f",
    atomic_scope: "",
};
