//! DSL helpers the kernels share: block-wide reductions. They are `#[device]` functions, so
//! each call is recorded inline into the calling kernel.

use greta_dsl::prelude::*;

/// Sum (or, with `is_max`, maximum) of `v` over the block; every thread gets the result.
/// `block` must be a multiple of the target's wave size. Ends with a barrier, so it may be
/// called again (in a loop, or for a second reduction) without racing on its LDS. The LDS for
/// the per-wave partials and the combining loop are sized by the target's wave size, known
/// when the kernel is built.
#[device]
pub fn block_reduce(v: Val<f32>, #[comptime] block: u32, #[comptime] is_max: bool) -> Val<f32> {
    #[comptime]
    let waves = (block / target().wave_size).max(1);
    let partial = shared::<f32>(waves);
    let mut w = v;
    if is_max {
        w = wave_max(v);
    } else {
        w = wave_sum(v);
    }
    if lane_id() == 0 {
        partial[thread_idx().x / wave_size()] = w;
    }
    barrier();
    let mut total = partial[0];
    for k in 1..waves {
        if is_max {
            total = max(total, partial[k]);
        } else {
            total += partial[k];
        }
    }
    barrier();
    total
}

/// Sum of `v` over the block (see [`block_reduce`]).
#[device]
pub fn block_sum(v: Val<f32>, #[comptime] block: u32) -> Val<f32> {
    block_reduce(v, block, false)
}

/// Maximum of `v` over the block (see [`block_reduce`]).
#[device]
pub fn block_max(v: Val<f32>, #[comptime] block: u32) -> Val<f32> {
    block_reduce(v, block, true)
}

/// Element offsets of `count` consecutive rows of length `stride` starting at row `first`, each
/// clamped to row `last`, so that a tile at the edge of a matrix reads in bounds (its extra rows
/// are computed and not written; see [`write_tile`]).
#[device]
pub fn clamped_row_offsets(
    first: Val<u32>,
    last: Val<u32>,
    stride: Val<u32>,
    #[comptime] count: u32,
) -> Local<u32> {
    let at = local_array::<u32>(count);
    for r in 0..count {
        at[r] = min(first + r, last) * stride;
    }
    at
}

/// `rows × m_tile` partial sums, all zero.
#[device]
pub fn zeroed_tile(#[comptime] rows: u32, #[comptime] m_tile: u32) -> Local<f32> {
    let acc = local_array::<f32>(rows * m_tile);
    for i in 0..rows * m_tile {
        acc[i] = 0.0f32;
    }
    acc
}

/// Sums each partial of a matmul tile over the block and writes the ones inside the `m × n`
/// output: `y[(m0 + j)·n + n0 + r] = Σ acc[r·m_tile + j]`.
#[device]
#[allow(clippy::too_many_arguments)]
pub fn write_tile(
    acc: Local<f32>,
    y: Global<f32, ReadWrite>,
    n0: Val<u32>,
    m0: Val<u32>,
    n: Val<u32>,
    m: Val<u32>,
    #[comptime] rows: u32,
    #[comptime] m_tile: u32,
    #[comptime] block: u32,
) {
    for r in 0..rows {
        for j in 0..m_tile {
            let total = block_sum(acc[r * m_tile + j], block);
            if thread_idx().x == 0u32 && n0 + r < n && m0 + j < m {
                y[(m0 + j) * n + n0 + r] = total;
            }
        }
    }
}
