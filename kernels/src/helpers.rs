//! DSL helpers the kernels share: block-wide reductions. They are `#[device]` functions, so
//! each call is recorded inline into the calling kernel.

use greta_dsl::prelude::*;

/// The smallest wave size of any target (NVIDIA's 32). LDS for per-wave partials is sized for
/// it, so one kernel definition serves wave 32 and wave 64; the wave count itself is read at
/// run time.
pub const MIN_WAVE: u32 = 32;

/// Sum (or, with `is_max`, maximum) of `v` over the block; every thread gets the result.
/// `block` must be a multiple of the target's wave size. Ends with a barrier, so it may be
/// called again (in a loop, or for a second reduction) without racing on its LDS.
#[device]
pub fn block_reduce(v: Val<f32>, #[comptime] block: u32, #[comptime] is_max: bool) -> Val<f32> {
    let partial = shared::<f32>(block / MIN_WAVE);
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
    for k in 1..block / wave_size() {
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
