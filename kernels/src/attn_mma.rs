//! Fused causal attention on matrix cores (v4 in the attention issue's numbering): what
//! [`attn_flash`](crate::attn_flash) computes, with `Q·Kᵀ` and `P·V` as matrix-instruction
//! tiles (`mma.sync` m16n8k16 on sm_90, MFMA 16x16x16 on gfx942) instead of one wave sum per
//! score. f16/bf16 caches only (the multiplicands); f32 models use `attn_flash`.
//!
//! One block takes `16 · warps` query rows of one head, 16 per wave; the rows' queries are
//! rounded to the cache type and staged in LDS once. The block walks the
//! keys its last row sees in tiles of `tile` keys:
//! 1. the waves copy the K and V tile into LDS (dims past `head_dim` as zeros: a head of 8 is
//!    padded to the instruction's 16);
//! 2. each wave multiplies its Q fragments by the K tile (B operand, K stored key-major: the
//!    transposed load) into f32 accumulators, scales them to base 2, masks keys past each row's
//!    causal end to `-inf` and stores the scores in LDS;
//! 3. one thread per row updates the row's online softmax (running maximum, sum, the rescale
//!    of the old output) and writes the weights `P`, rounded to the cache type, into LDS;
//! 4. each wave rescales its output accumulators by its rows' factors and adds `P · V` (P as A
//!    fragments, V as B fragments, V key-major: the plain load).
//! Barriers separate the four phases. The output, divided by each row's sum, is written once in
//! the activation type.
//!
//! Arguments as `attn_flash`; `max_head_dim` is the padded head size the tiles hold. Launch
//! with [`launch`].

use crate::attn_decode::fit_head_dim;
use crate::config::u32_param;
use crate::flash::{fused_problem, part_weight, Shape, MAX_HEAD_DIM, OUT};
use crate::problem::{Inputs, Problem, Tolerance};
use crate::{dispatch, Config, KernelSpec, ParamDef, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::LaunchDims;
use greta_dsl::ir::{ConfigValue, Kernel, MmaShape, Scalar};
use greta_dsl::prelude::*;
use greta_dsl::Target;

/// The matrix instruction the kernel uses on `target` for `ab` multiplicands: the 16 × n × 16
/// shape (m16n8k16 on sm_90, 16x16x16 on gfx942), so that a wave's 16 query rows are one
/// fragment row.
pub fn instruction(target: &Target, ab: Scalar) -> Option<&'static MatrixInst> {
    [MmaShape::new(16, 16, 16), MmaShape::new(16, 8, 16)]
        .into_iter()
        .find_map(|s| target.mma(s, ab))
}

/// [`instruction`] for the target being built; a build error where it has none.
fn instruction_for<T: MatrixElem>() -> &'static MatrixInst {
    instruction(target(), T::SCALAR).unwrap_or_else(matrix_inst::<T>)
}

/// A build error unless the head and key tiles are whole instruction tiles.
fn check_tiles(max_head_dim: u32, tile: u32, inst: &MatrixInst) {
    let (n, k) = (inst.shape.n, inst.shape.k);
    if max_head_dim % k != 0 || tile % k != 0 || tile % n != 0 {
        build_error(format!(
            "max_head_dim={max_head_dim} and tile={tile} must be multiples of {}'s {k} and {n}",
            inst.name
        ));
    }
}

#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn attn_mma<T: MatrixElem, O: Float>(
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
) {
    #[comptime]
    let wave = target().wave_size;
    #[comptime]
    let threads = warps * wave;
    block_size(threads);
    #[comptime]
    let inst = instruction_for::<T>();
    #[comptime]
    let (n, kd) = (inst.shape.n, inst.shape.k);
    #[comptime]
    let rows = 16u32 * warps;
    #[comptime]
    let dmax = max_head_dim;
    check_tiles(dmax, tile, inst);
    let q0 = block_idx().x * rows;
    let h = block_idx().y;
    let tid = thread_idx().x;
    let wq0 = tid / wave * 16u32;
    let kvh = h / (heads / kv_heads);
    #[comptime]
    let layout = TileLayout::swizzled_for(target(), T::SCALAR, dmax);
    let tq = lds_tiles::<T>(1, rows, dmax, layout).stage(0u32);
    let tk = lds_tiles::<T>(1, tile, dmax, layout).stage(0u32);
    let tv = lds_tiles::<T>(1, tile, dmax, layout).stage(0u32);
    let ts = lds_tiles::<f32>(1, rows, tile, TileLayout::Padded(1)).stage(0u32);
    #[comptime]
    let p_layout = TileLayout::swizzled_for(target(), T::SCALAR, tile);
    let tp = lds_tiles::<T>(1, rows, tile, p_layout).stage(0u32);
    let row_max = shared::<f32>(rows);
    let row_sum = shared::<f32>(rows);
    let row_scale = shared::<f32>(rows);
    // Queries, rounded to T, zero past the head and past the last token.
    for i in (tid..rows * dmax).step_by(threads) {
        let r = i / dmax;
        let d = i % dmax;
        let t = q0 + r;
        let ok = t < tokens && d < head_dim;
        let at = select(ok, (t * heads + h) * head_dim + d, 0u32);
        tq.store(r, d, T::from_f32(select(ok, q[at], 0.0f32)));
    }
    for r in (tid..rows).step_by(threads) {
        row_max[r] = f32::NEG_INFINITY;
        row_sum[r] = 0.0f32;
    }
    barrier();
    let fo = fragments::<f32, Accum>(inst, dmax / n);
    fo.fill(0.0f32);
    let fs = fragments::<f32, Accum>(inst, tile / n);
    // One A and one B fragment, reloaded from LDS as each product needs them: holding the
    // wave's whole Q row block in registers left too few for the output (255 on sm_90).
    let fa = fragments::<T, MatA>(inst, 1);
    let fb = fragments::<T, MatB>(inst, 1);
    let block_end = start + min(q0 + rows, tokens);
    for k0 in (0u32..block_end).step_by(tile) {
        // 1. The K and V tile.
        for i in (tid..tile * dmax).step_by(threads) {
            let r = i / dmax;
            let d = i % dmax;
            let ok = k0 + r < block_end && d < head_dim;
            let at = select(ok, ((k0 + r) * kv_heads + kvh) * head_dim + d, 0u32);
            tk.store(r, d, select(ok, k_cache[at], T::from_f32(0.0f32)));
            tv.store(r, d, select(ok, v_cache[at], T::from_f32(0.0f32)));
        }
        barrier();
        // 2. Scores of the wave's 16 rows, base 2, masked, into LDS.
        fs.fill(0.0f32);
        for kk in 0..dmax / kd {
            fa.at(0).load(&tq, wq0, kk * kd);
            for j in 0..tile / n {
                fb.at(0).load_transposed(&tk, j * n, kk * kd);
                mma(fa.at(0), fb.at(0), fs.at(j), fs.at(j));
            }
        }
        for j in 0..tile / n {
            let f = fs.at(j);
            for e in 0..f.elems() {
                let (fr, fc) = f.coord(e);
                let r = wq0 + fr;
                let key = k0 + j * n + fc;
                let seen = q0 + r < tokens && key <= start + q0 + r;
                ts.store(
                    r,
                    j * n + fc,
                    select(seen, f.get(e) * scale_log2, f32::NEG_INFINITY),
                );
            }
        }
        barrier();
        // 3. Each row's online softmax over the tile; the weights into LDS as T.
        for r in (tid..rows).step_by(threads) {
            let old = row_max[r];
            let mut top = old;
            for c in 0..tile {
                top = max(top, ts.vload::<1>(r, c).lane(0));
            }
            let mut sum = 0.0f32;
            for c in 0..tile {
                let e = part_weight(ts.vload::<1>(r, c).lane(0), top);
                tp.store(r, c, T::from_f32(e));
                sum = sum + e;
            }
            let rescale = part_weight(old, top);
            row_scale[r] = rescale;
            row_sum[r] = row_sum[r] * rescale + sum;
            row_max[r] = top;
        }
        barrier();
        // 4. O = O · rescale + P · V.
        for jd in 0..dmax / n {
            let f = fo.at(jd);
            for e in 0..f.elems() {
                let (fr, _fc) = f.coord(e);
                f.set(e, f.get(e) * row_scale[wq0 + fr]);
            }
        }
        for kk in 0..tile / kd {
            fa.at(0).load(&tp, wq0, kk * kd);
            for jd in 0..dmax / n {
                fb.at(0).load(&tv, kk * kd, jd * n);
                mma(fa.at(0), fb.at(0), fo.at(jd), fo.at(jd));
            }
        }
        barrier();
    }
    for jd in 0..dmax / n {
        let f = fo.at(jd);
        for e in 0..f.elems() {
            let (fr, fc) = f.coord(e);
            let r = wq0 + fr;
            let t = q0 + r;
            let d = jd * n + fc;
            if t < tokens && d < head_dim {
                out[(t * heads + h) * head_dim + d] = O::from_f32(f.get(e) / row_sum[r]);
            }
        }
    }
}

/// Launch: grid `[⌈T / (16 · warps)⌉, H]`.
pub fn launch(cfg: &Config, target: &Target, tokens: u32, heads: u32) -> LaunchDims {
    let warps = cfg.u32("warps");
    LaunchDims {
        grid: [tokens.div_ceil(16 * warps).max(1), heads, 1],
        block: [warps * target.wave_size, 1, 1],
    }
}

/// Bytes of LDS the kernel's arrays take at `cfg` on `target` (as `lds_tiles` lays them out).
fn lds_bytes(cfg: &Config, target: &Target) -> u32 {
    let (d, tile, rows) = (
        cfg.u32("max_head_dim"),
        cfg.u32("tile"),
        16 * cfg.u32("warps"),
    );
    let half = cfg.dtype("dtype");
    let stride = |cols: u32| match TileLayout::swizzled_for(target, half, cols) {
        TileLayout::Padded(pad) => cols + pad,
        TileLayout::Swizzled(_) => cols,
    };
    let h = half.size_bytes();
    (rows + 2 * tile) * stride(d) * h + rows * (tile + 1) * 4 + rows * stride(tile) * h + 12 * rows
}

/// `cfg` fitted to heads of `head_dim` on `target`: `max_head_dim` raised to hold them, then
/// `tile` (down to 16) and then `warps` (down to 1) halved until the LDS holds the tiles.
pub fn fit(cfg: &Config, head_dim: u32, target: &Target) -> Config {
    let mut cfg = fit_head_dim(cfg, head_dim);
    for (param, least) in [("tile", 16), ("warps", 1)] {
        while lds_bytes(&cfg, target) > target.lds_bytes_max && cfg.u32(param) > least {
            let half = cfg.u32(param) / 2;
            cfg = cfg.with(param, ConfigValue::U32(half));
        }
    }
    cfg
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    let (mhd, warps, tile) = (cfg.u32("max_head_dim"), cfg.u32("warps"), cfg.u32("tile"));
    dispatch!(cfg, target, attn_mma, Half, O; mhd, warps, tile)
}

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    let s = Shape::parse("attn_mma", shape, SPEC.shape)?;
    let cfg = &fit(cfg, s.head_dim as u32, target);
    let dims = launch(cfg, target, s.tokens as u32, s.heads as u32);
    // The kernel multiplies queries and weights rounded to the cache type: the reference sees
    // the same rounded queries, and the tolerance allows the weights' rounding (relative 2^-11
    // for f16, 2^-8 for bf16, on a weighted mean of values in [-1, 1]).
    let dtype = cfg.dtype("dtype");
    let weight_ulp = if dtype == Scalar::BF16 { 8e-3 } else { 1e-3 };
    let base = Tolerance::for_dtype(cfg.dtype("out"), 2e-5);
    let tolerance = Tolerance {
        abs: base.abs + weight_ulp,
        rel: base.rel + weight_ulp,
    };
    let kernel = build(cfg, target)?;
    fused_problem(
        "attn_mma",
        SPEC.shape,
        shape,
        cfg,
        inputs,
        kernel,
        dims,
        Some(dtype),
        tolerance,
    )
}

const WARPS: ParamDef = u32_param(
    "warps",
    &[1, 2, 4, 8],
    4,
    "waves per block, 16 query rows each",
);
const TILE: ParamDef = u32_param("tile", &[16, 32, 64], 32, "keys per K/V tile staged in LDS");

pub static SPEC: KernelSpec = KernelSpec {
    name: "attn_mma",
    summary: "fused causal attention on matrix cores (Q·Kᵀ and P·V as mma tiles, online softmax)",
    params: &[
        crate::gemm::dtype_param_halves(),
        OUT,
        MAX_HEAD_DIM,
        WARPS,
        TILE,
    ],
    shape: "tokens,heads,kv_heads,head_dim,start",
    test_shapes: &[
        &[1, 1, 1, 1, 0],
        &[7, 8, 4, 8, 0],
        &[5, 8, 1, 12, 3],
        &[9, 4, 4, 130, 2],
        &[172, 2, 1, 16, 0],
        &[3, 8, 8, 64, 61],
    ],
    bench_shape: &[4096, 32, 32, 128, 0],
    build,
    problem,
    available: crate::everywhere,
};
