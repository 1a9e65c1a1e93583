//! What differs between the AMD and the NVIDIA flavour of the generated C++: one [`Dialect`]
//! value per GPU family. The emitter never asks which target it is writing for; it asks the
//! dialect. The prelude's family-specific half is assembled from these fields (see
//! [`super::prelude`]), so a builtin name lives in exactly one place.

use greta_dsl::Family;

/// The per-family table. Strings are C++ fragments; `{n}` in `launch_bounds` is replaced by the
/// block's thread count.
#[derive(Debug)]
pub struct Dialect {
    /// Human name of the language mode, for the header comment.
    pub language: &'static str,
    /// `threadIdx.{x,y,z}`.
    pub thread_idx: [&'static str; 3],
    /// `blockIdx.{x,y,z}`.
    pub block_idx: [&'static str; 3],
    /// `blockDim.{x,y,z}` (only used when the kernel declares no block size).
    pub block_dim: [&'static str; 3],
    /// `gridDim.{x,y,z}`, in blocks.
    pub grid_dim: [&'static str; 3],
    /// The hardware lane within the wave.
    pub lane_id: &'static str,
    /// Statements of `greta_barrier()`: execution barrier plus workgroup memory fence.
    pub barrier: &'static str,
    /// Bodies of the 32-bit shuffle primitives; `v` is the value, `s` the mode's operand (xor
    /// mask, delta or source lane), `lane` the caller's lane. Each returns the value read.
    pub shfl_xor: &'static str,
    pub shfl_down: &'static str,
    pub shfl_up: &'static str,
    pub shfl_idx: &'static str,
    /// f32 builtins (never libm names: there is no device library).
    pub exp2: &'static str,
    pub log2: &'static str,
    pub sqrt: &'static str,
    pub rsqrt: &'static str,
    /// Memory scope of global atomics (`__scoped_atomic_*` builtins exist on both targets).
    pub atomic_scope: &'static str,
    /// Kernel attribute bounding the block size.
    pub launch_bounds: &'static str,
}

impl Dialect {
    pub fn for_family(family: Family) -> &'static Dialect {
        match family {
            Family::Amdgcn => &AMDGCN,
            Family::Nvptx => &NVPTX,
        }
    }

    pub fn launch_bounds(&self, threads: u32) -> String {
        self.launch_bounds.replace("{n}", &threads.to_string())
    }
}

/// HIP for gfx942 with `-nogpuinc -nogpulib`: clang builtins only. Block and grid sizes come
/// from the dispatch packet through clang's builtins; the grid size there is in work-items, so
/// the block count is a division. `ds_bpermute` addresses lanes in bytes (`lane * 4`) and wraps
/// modulo the wave, so `down`/`up` compute the clamped source lane themselves.
pub static AMDGCN: Dialect = Dialect {
    language: "HIP (clang -x hip, no ROCm headers or device libraries)",
    thread_idx: [
        "__builtin_amdgcn_workitem_id_x()",
        "__builtin_amdgcn_workitem_id_y()",
        "__builtin_amdgcn_workitem_id_z()",
    ],
    block_idx: [
        "__builtin_amdgcn_workgroup_id_x()",
        "__builtin_amdgcn_workgroup_id_y()",
        "__builtin_amdgcn_workgroup_id_z()",
    ],
    block_dim: [
        "__builtin_amdgcn_workgroup_size_x()",
        "__builtin_amdgcn_workgroup_size_y()",
        "__builtin_amdgcn_workgroup_size_z()",
    ],
    grid_dim: [
        "__builtin_amdgcn_grid_size_x() / __builtin_amdgcn_workgroup_size_x()",
        "__builtin_amdgcn_grid_size_y() / __builtin_amdgcn_workgroup_size_y()",
        "__builtin_amdgcn_grid_size_z() / __builtin_amdgcn_workgroup_size_z()",
    ],
    lane_id: "__builtin_amdgcn_mbcnt_hi(~0u, __builtin_amdgcn_mbcnt_lo(~0u, 0u))",
    barrier: "__builtin_amdgcn_fence(__ATOMIC_RELEASE, \"workgroup\");\n    \
              __builtin_amdgcn_s_barrier();\n    \
              __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, \"workgroup\");",
    shfl_xor: "return (u32)__builtin_amdgcn_ds_bpermute((int)((lane ^ s) << 2), (int)v);",
    shfl_down: "u32 src = lane + s < GRETA_WAVE_SIZE ? lane + s : lane;\n    \
                return (u32)__builtin_amdgcn_ds_bpermute((int)(src << 2), (int)v);",
    shfl_up: "u32 src = lane >= s ? lane - s : lane;\n    \
              return (u32)__builtin_amdgcn_ds_bpermute((int)(src << 2), (int)v);",
    shfl_idx: "return (u32)__builtin_amdgcn_ds_bpermute((int)(s << 2), (int)v);",
    exp2: "__builtin_amdgcn_exp2f",
    log2: "__builtin_amdgcn_logf",
    sqrt: "__builtin_sqrtf",
    rsqrt: "__builtin_amdgcn_rsqf",
    atomic_scope: "__MEMORY_SCOPE_DEVICE",
    launch_bounds: "__attribute__((amdgpu_flat_work_group_size(1, {n})))",
};

/// CUDA for sm_90 with `-nocudainc -nocudalib`: NVVM builtins (`__nvvm_read_ptx_sreg_*`,
/// `__nvvm_shfl_sync_*`, approximate `ex2`/`lg2`/`rsqrt` as CUDA's fast intrinsics use, and the
/// correctly rounded `sqrt.rn`). Shuffles use the full-warp mask: the IR requires all lanes of
/// the wave to take part. The `c` operand 0x1f makes out-of-range `down` reads keep the
/// caller's value, as the IR specifies; `up` uses 0 for the same reason.
pub static NVPTX: Dialect = Dialect {
    language: "CUDA (clang -x cuda, no CUDA headers or libdevice)",
    thread_idx: [
        "__nvvm_read_ptx_sreg_tid_x()",
        "__nvvm_read_ptx_sreg_tid_y()",
        "__nvvm_read_ptx_sreg_tid_z()",
    ],
    block_idx: [
        "__nvvm_read_ptx_sreg_ctaid_x()",
        "__nvvm_read_ptx_sreg_ctaid_y()",
        "__nvvm_read_ptx_sreg_ctaid_z()",
    ],
    block_dim: [
        "__nvvm_read_ptx_sreg_ntid_x()",
        "__nvvm_read_ptx_sreg_ntid_y()",
        "__nvvm_read_ptx_sreg_ntid_z()",
    ],
    grid_dim: [
        "__nvvm_read_ptx_sreg_nctaid_x()",
        "__nvvm_read_ptx_sreg_nctaid_y()",
        "__nvvm_read_ptx_sreg_nctaid_z()",
    ],
    lane_id: "__nvvm_read_ptx_sreg_laneid()",
    barrier: "__syncthreads();",
    shfl_xor:
        "(void)lane;\n    return (u32)__nvvm_shfl_sync_bfly_i32(0xffffffffu, (int)v, (int)s, 0x1f);",
    shfl_down:
        "(void)lane;\n    return (u32)__nvvm_shfl_sync_down_i32(0xffffffffu, (int)v, (int)s, 0x1f);",
    shfl_up:
        "(void)lane;\n    return (u32)__nvvm_shfl_sync_up_i32(0xffffffffu, (int)v, (int)s, 0);",
    shfl_idx:
        "(void)lane;\n    return (u32)__nvvm_shfl_sync_idx_i32(0xffffffffu, (int)v, (int)s, 0x1f);",
    exp2: "__nvvm_ex2_approx_f",
    log2: "__nvvm_lg2_approx_f",
    sqrt: "__nvvm_sqrt_rn_f",
    rsqrt: "__nvvm_rsqrt_approx_f",
    atomic_scope: "__MEMORY_SCOPE_DEVICE",
    launch_bounds: "__attribute__((launch_bounds({n})))",
};
