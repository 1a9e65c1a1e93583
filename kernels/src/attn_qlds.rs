//! Fused causal attention with the queries staged in LDS (v3, "Q-LDS", in the attention issue's
//! numbering): [`attn_flash`](crate::attn_flash)'s online softmax, with each wave taking `rows`
//! query rows instead of one.
//!
//! The design this project comes from staged the Q tile in LDS so that a wave could serve several
//! query rows without holding all their queries in registers — on MI300X that was what took its
//! attention to zero scratch. Here a block takes `warps · rows` consecutive query rows of one
//! head; their queries go into LDS once (f32, zeros past the head and past the last token). Then,
//! per K/V tile (as in `attn_flash`: staged in LDS in the cache's type, shared by the block), each
//! wave walks its rows in turn: it loads the row's queries from LDS into registers (one element
//! per lane per `wave` dims, consecutive lanes: no bank conflicts) and attends the row to the
//! tile's keys ([`crate::flash::attend`]). Only each row's running state — its maximum, sum and
//! `head_dim / wave` outputs per lane — stays in registers across tiles. Every K/V tile thus
//! serves `rows` times more query rows per block than in `attn_flash`.
//!
//! Arguments as `attn_flash`. Launch with [`launch`] after [`fit`].

use crate::attn_decode::fit_head_dim;
use crate::config::u32_param;
use crate::flash::{attend, dims_per_lane, TileRows, KV_DTYPE, MAX_HEAD_DIM, OUT};
use crate::problem::{Inputs, Problem};
use crate::{dispatch, Config, KernelSpec, ParamDef, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::LaunchDims;
use greta_dsl::ir::{ConfigValue, Kernel};
use greta_dsl::prelude::*;
use greta_dsl::Target;

/// One row's running state in registers: `(maximum and sum, the lane's outputs)`.
fn row_states(rows: u32, dims_per_lane: u32) -> Vec<(Local<f32>, Local<f32>)> {
    (0..rows)
        .map(|_| (local_array::<f32>(2u32), local_array::<f32>(dims_per_lane)))
        .collect()
}

/// Row `r`'s state of [`row_states`].
fn state(states: &[(Local<f32>, Local<f32>)], r: u32) -> (Local<f32>, Local<f32>) {
    states[r as usize]
}

#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn attn_qlds<T: Float, O: Float>(
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
    #[comptime] rows: u32,
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
    #[comptime]
    let block_rows = warps * rows;
    let t0 = block_idx().x * block_rows;
    let h = block_idx().y;
    let tid = thread_idx().x;
    let lane = lane_id();
    let w = tid / wave;
    // The block's queries, f32, `max_head_dim` apart.
    let qs = shared::<f32>(block_rows * max_head_dim);
    for i in (tid..block_rows * max_head_dim).step_by(threads) {
        let t = t0 + i / max_head_dim;
        let d = i % max_head_dim;
        let ok = t < tokens && d < head_dim;
        qs[i] = select(
            ok,
            q[select(ok, (t * heads + h) * head_dim + d, 0u32)],
            0.0f32,
        );
    }
    #[comptime]
    let states = row_states(rows, dpl);
    for r in 0..rows {
        let (ml, acc) = state(&states, r);
        ml[0u32] = f32::NEG_INFINITY;
        ml[1u32] = 0.0f32;
        for i in 0..dpl {
            acc[i] = 0.0f32;
        }
    }
    let qd = local_array::<f32>(dpl);
    let ks = shared::<T>(tile * max_head_dim);
    let vs = shared::<T>(tile * max_head_dim);
    let stride = kv_heads * head_dim;
    let head = h / (heads / kv_heads) * head_dim;
    let block_end = start + min(t0 + block_rows, tokens);
    for k0 in (0u32..block_end).step_by(tile) {
        // The tile's rows (rows past the block's end repeat its last key: never weighed).
        for i in (tid..tile * head_dim).step_by(threads) {
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
        for r in 0..rows {
            let (ml, acc) = state(&states, r);
            let row = w * rows + r;
            let t = t0 + row;
            let end = select(t < tokens, start + t + 1u32, 0u32);
            let tile_end = min(end, k0 + tile);
            if k0 < tile_end {
                for i in 0..dpl {
                    qd[i] = qs[row * max_head_dim + min(lane + i * wave, max_head_dim - 1u32)];
                }
                for u0 in (k0..tile_end).step_by(unroll) {
                    attend(
                        src, u0, tile_end, head_dim, qd, ml, acc, scale_log2, dpl, unroll,
                    );
                }
            }
        }
        barrier();
    }
    for r in 0..rows {
        let (ml, acc) = state(&states, r);
        let t = t0 + w * rows + r;
        if t < tokens {
            let inv = 1.0f32 / ml[1u32];
            for i in 0..dpl {
                let d = lane + i * wave;
                if d < head_dim {
                    out[(t * heads + h) * head_dim + d] = O::from_f32(acc[i] * inv);
                }
            }
        }
    }
}

/// Launch: grid `[⌈T / (warps · rows)⌉, H]`.
pub fn launch(cfg: &Config, target: &Target, tokens: u32, heads: u32) -> LaunchDims {
    let (warps, rows) = (cfg.u32("warps"), cfg.u32("rows"));
    LaunchDims {
        grid: [tokens.div_ceil(warps * rows).max(1), heads, 1],
        block: [warps * target.wave_size, 1, 1],
    }
}

/// Bytes of LDS at `cfg`: the f32 queries and the K and V tiles.
fn lds_bytes(cfg: &Config) -> u32 {
    let d = cfg.u32("max_head_dim");
    let queries = cfg.u32("warps") * cfg.u32("rows") * d * 4;
    queries + 2 * cfg.u32("tile") * d * cfg.dtype("dtype").size_bytes()
}

/// `cfg` fitted to heads of `head_dim` on `target`: `max_head_dim` raised to hold them, then
/// `tile` (down to `unroll`) and then `rows` (down to 1) halved until the LDS holds the arrays.
pub fn fit(cfg: &Config, head_dim: u32, target: &Target) -> Config {
    let mut cfg = fit_head_dim(cfg, head_dim);
    let least_tile = cfg.u32("unroll");
    for (param, least) in [("tile", least_tile), ("rows", 1)] {
        while lds_bytes(&cfg) > target.lds_bytes_max && cfg.u32(param) > least {
            let half = cfg.u32(param) / 2;
            cfg = cfg.with(param, ConfigValue::U32(half));
        }
    }
    cfg
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    let (mhd, warps, rows) = (cfg.u32("max_head_dim"), cfg.u32("warps"), cfg.u32("rows"));
    let (tile, unroll) = (cfg.u32("tile"), cfg.u32("unroll"));
    if tile % unroll != 0 {
        return Err(BuildError::Invalid {
            kernel: "attn_qlds".into(),
            message: format!("unroll={unroll} does not divide tile={tile}"),
        });
    }
    dispatch!(cfg, target, attn_qlds, T, O; mhd, warps, rows, tile, unroll)
}

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    crate::flash::simt_problem(&SPEC, fit, launch, cfg, target, shape, inputs)
}

const WARPS: ParamDef = u32_param("warps", &[1, 2, 4, 8], 8, "waves per block");
const ROWS: ParamDef = u32_param(
    "rows",
    &[1, 2, 4, 8],
    4,
    "query rows each wave takes (their queries in LDS)",
);
const TILE: ParamDef = u32_param("tile", &[16, 32, 64], 32, "keys per K/V tile staged in LDS");
const UNROLL: ParamDef = u32_param(
    "unroll",
    &[1, 2, 4, 8],
    4,
    "keys a wave reads before using the first (loads in flight)",
);

pub static SPEC: KernelSpec = KernelSpec {
    name: "attn_qlds",
    summary:
        "fused causal attention, the block's queries staged in LDS, several rows per wave (v3)",
    params: &[KV_DTYPE, OUT, MAX_HEAD_DIM, WARPS, ROWS, TILE, UNROLL],
    shape: "tokens,heads,kv_heads,head_dim,start",
    test_shapes: crate::flash::PREFILL_TEST_SHAPES,
    bench_shape: &[4096, 32, 32, 128, 0],
    build,
    problem,
    available: crate::everywhere,
};
