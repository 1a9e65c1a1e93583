//! Fused causal attention for prefill (flash attention v2 in greta's numbering: one kernel,
//! online softmax, no scores in memory): `out[t, h] = softmax(q[t, h] · K[0..=start+t]ᵀ ·
//! scale) · V[0..=start+t]` for `T` new tokens against the KV cache, grouped-query heads.
//!
//! One block takes `warps` consecutive query rows of one head, one row per wave. The block walks
//! the keys its last row sees in tiles of `tile` keys: the waves copy each K and V tile into LDS
//! together (converted nowhere: the cache's type), then each wave attends its row to the tile's
//! keys `unroll` at a time ([`crate::flash::attend`]; dims spread over the lanes, so LDS reads
//! are consecutive and free of bank conflicts). Each cache row is thus read from memory once per
//! block instead of once per query row. Rows of a block whose causal end comes before a key
//! give it weight 0; the output is written once, in the activation type.
//!
//! Arguments, in order: `q: &[f32]` `[T, H, D]`, `k_cache: &[T]`, `v_cache: &[T]`
//! (`[≥ start + T, Hkv, D]`), `out: &mut [O]` `[T, H, D]`, `tokens: u32`, `heads: u32`, `kv_heads: u32`,
//! `head_dim: u32` (at most `max_head_dim`), `start: u32`, `scale_log2: f32` (`log2(e) / √D`).
//! Launch with [`launch`].

use crate::attn_decode::fit_head_dim;
use crate::config::u32_param;
use crate::flash::{attend, dims_per_lane, start_row, TileRows, KV_DTYPE, MAX_HEAD_DIM, OUT};
use crate::problem::{Inputs, Problem};
use crate::{dispatch, Config, KernelSpec, ParamDef, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::LaunchDims;
use greta_dsl::ir::Kernel;
use greta_dsl::prelude::*;
use greta_dsl::Target;

#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn attn_flash<T: Float, O: Float>(
    q: &[f32],
    k_cache: &[T],
    v_cache: &[T],
    out: &mut [O],
    tokens: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    start: u32,
    scale_log2: f32,
    #[comptime] max_head_dim: u32,
    #[comptime] warps: u32,
    #[comptime] tile: u32,
    #[comptime] unroll: u32,
) {
    #[comptime]
    let wave = target().wave_size;
    #[comptime]
    let threads = warps * wave;
    block_size(threads);
    #[comptime]
    let dpl = dims_per_lane(max_head_dim, wave);
    let t0 = block_idx().x * warps;
    let h = block_idx().y;
    let lane = lane_id();
    let t = t0 + thread_idx().x / wave;
    let valid = t < tokens;
    let row = t * heads + h;
    // This row's keys, and the block's (its last row's).
    let end = select(valid, start + t + 1u32, 0u32);
    let block_end = start + min(t0 + warps, tokens);
    let qd = local_array::<f32>(dpl);
    let ml = local_array::<f32>(2u32);
    let acc = local_array::<f32>(dpl);
    start_row(q, row, valid, head_dim, qd, ml, acc, dpl);
    let ks = shared::<T>(tile * max_head_dim);
    let vs = shared::<T>(tile * max_head_dim);
    let stride = kv_heads * head_dim;
    let head = h / (heads / kv_heads) * head_dim;
    for k0 in (0u32..block_end).step_by(tile) {
        // The tile's rows, each `head_dim` long, `max_head_dim` apart (rows past the block's
        // end repeat its last key: in bounds, never weighed).
        for i in (thread_idx().x..tile * head_dim).step_by(threads) {
            let r = i / head_dim;
            let d = i % head_dim;
            let at = min(k0 + r, block_end - 1u32) * stride + head + d;
            ks[r * max_head_dim + d] = k_cache[at];
            vs[r * max_head_dim + d] = v_cache[at];
        }
        barrier();
        #[comptime]
        let src = TileRows {
            k: ks,
            v: vs,
            first: k0,
            pitch: max_head_dim,
        };
        let tile_end = min(end, k0 + tile);
        for u0 in (k0..tile_end).step_by(unroll) {
            attend(
                src, u0, tile_end, head_dim, qd, ml, acc, scale_log2, dpl, unroll,
            );
        }
        barrier();
    }
    if valid {
        let inv = 1.0f32 / ml[1u32];
        for i in 0..dpl {
            let d = lane + i * wave;
            if d < head_dim {
                out[row * head_dim + d] = O::from_f32(acc[i] * inv);
            }
        }
    }
}

/// Launch: grid `[⌈T / warps⌉, H]`, one wave per query row.
pub fn launch(cfg: &Config, target: &Target, tokens: u32, heads: u32) -> LaunchDims {
    let warps = cfg.u32("warps");
    LaunchDims {
        grid: [tokens.div_ceil(warps).max(1), heads, 1],
        block: [warps * target.wave_size, 1, 1],
    }
}

/// `cfg` fitted to heads of `head_dim` on `target`: `max_head_dim` raised to hold them, then
/// `tile` halved until the two LDS tiles fit.
pub fn fit(cfg: &Config, head_dim: u32, target: &Target) -> Config {
    let mut cfg = fit_head_dim(cfg, head_dim);
    let bytes =
        |c: &Config| 2 * c.u32("tile") * c.u32("max_head_dim") * c.dtype("dtype").size_bytes();
    while bytes(&cfg) > target.lds_bytes_max && cfg.u32("tile") > cfg.u32("unroll") {
        let half = cfg.u32("tile") / 2;
        cfg = cfg.with("tile", greta_dsl::ir::ConfigValue::U32(half));
    }
    cfg
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    let (mhd, warps) = (cfg.u32("max_head_dim"), cfg.u32("warps"));
    let (tile, unroll) = (cfg.u32("tile"), cfg.u32("unroll"));
    if tile % unroll != 0 {
        return Err(BuildError::Invalid {
            kernel: "attn_flash".into(),
            message: format!("unroll={unroll} does not divide tile={tile}"),
        });
    }
    dispatch!(cfg, target, attn_flash, T, O; mhd, warps, tile, unroll)
}

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    crate::flash::simt_problem(&SPEC, fit, launch, cfg, target, shape, inputs)
}

const WARPS: ParamDef = u32_param("warps", &[1, 2, 4, 8], 8, "query rows (waves) per block");
const TILE: ParamDef = u32_param("tile", &[16, 32, 64], 64, "keys per K/V tile staged in LDS");
const UNROLL: ParamDef = u32_param(
    "unroll",
    &[1, 2, 4, 8],
    4,
    "keys a wave reads before using the first (loads in flight)",
);

pub static SPEC: KernelSpec = KernelSpec {
    name: "attn_flash",
    summary: "fused causal attention (online softmax, K/V tiles in LDS shared by a block's rows)",
    params: &[KV_DTYPE, OUT, MAX_HEAD_DIM, WARPS, TILE, UNROLL],
    shape: "tokens,heads,kv_heads,head_dim,start",
    test_shapes: crate::flash::PREFILL_TEST_SHAPES,
    bench_shape: &[4096, 32, 32, 128, 0],
    build,
    problem,
    available: crate::everywhere,
};
