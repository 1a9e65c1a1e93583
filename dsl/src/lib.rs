//! greta-dsl: the kernel IR and everything that works on it without a GPU.
//!
//! - [`ir`]: the IR itself (types, expressions, statements, kernels);
//! - [`front`]: the builder the `#[kernel]` macro expands into (typed value handles);
//! - [`launch`]: the typed argument structs `#[kernel]` generates for launching a kernel;
//! - [`valid`]: the verifier that rejects ill-typed IR;
//! - [`print`](mod@print): a human-readable printer;
//! - [`interp`]: the CPU interpreter (the `cpu` backend);
//! - [`target`]: the one description of what differs between GPU targets.

// The `#[kernel]` expansion names this crate as `::greta_dsl`, also inside it.
extern crate self as greta_dsl;

pub mod front;
pub mod interp;
pub mod ir;
pub mod launch;
pub mod print;
pub mod target;
pub mod valid;

pub use target::{Family, Target};

/// Everything a kernel author needs: `use greta_dsl::prelude::*;`.
pub mod prelude {
    pub use crate::front::{
        abs, atomic_add, atomic_max, barrier, block_dim, block_idx, block_size, block_size_3d,
        build_error, cos, exp, exp2, floor, fma, fragments, global_tile, grid_dim, lane_id,
        lds_tiles, ln, local_array, log2, materialize, matrix_inst, matrix_inst_shaped, max, min,
        mma, rsqrt, select, shared, shfl, shfl_down, shfl_up, shfl_xor, sin, sqrt, tanh, target,
        thread_idx, vload, vstore, wave_max, wave_min, wave_size, wave_sum, Accum, BuildError,
        Elem, Float, Frag, Frags, Global, LdsTiles, Local, MatA, MatB, MatrixElem, Numeric, Read,
        ReadWrite, Shared, Tile, TileLayout, Val, Vector,
    };
    pub use crate::front::{
        async_commit, async_copy, async_wait, fence_async_lds, warpgroup_accumulators,
        warpgroup_tiles, wgmma, wgmma_commit, wgmma_fence, wgmma_wait, WgAcc, WgAccs,
    };
    pub use crate::ir::{Kernel, Swizzle};
    pub use crate::target::{MatrixInst, Target};
    pub use greta_dsl_macros::{device, kernel};
    pub use half::{bf16, f16};
}
