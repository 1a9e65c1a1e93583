//! Fused causal attention on matrix cores (v4 in the attention issue's numbering): what
//! [`attn_flash`](crate::attn_flash) computes, with `Q·Kᵀ` and `P·V` as matrix-instruction
//! tiles (`mma.sync` m16n8k16 on sm_90, MFMA 16x16x16 on gfx942) and the softmax in registers
//! (flash attention 2's structure). f16/bf16 caches only (the multiplicands); f32 models use
//! `attn_flash`.
//!
//! One block takes `16 · warps` query rows of one head, 16 per wave; the rows' queries are
//! rounded to the cache type, staged in LDS once and held by each wave as fragments. The block
//! walks the keys its last row sees in tiles of `tile` keys, K and V double-buffered in LDS
//! (`async_copy`: `cp.async` on sm_90, plain loads on gfx942; zeros past the head and past the
//! block's last key). Per tile, each wave on its own:
//! 1. multiplies its queries by the K tile into f32 accumulators — the scores, base 2;
//! 2. masks keys past each row's causal end to `-inf`, takes each row's maximum across the
//!    accumulator elements it holds and the lanes that share the row (xor shuffles over the
//!    lanes the target's layout says hold it), rescales the row's sum and output, and turns the
//!    scores into weights `2^(s − m)` in place;
//! 3. hands the weights to `P·V` as operand fragments straight from the accumulators, rounded
//!    to the cache type: the target's layouts say how ([`Plan`]). On sm_90 two n8 score
//!    accumulators are one A fragment of `P`; on gfx942 the MFMA accumulator is the B layout, so
//!    the wave computes the transposes, `Sᵀ = K·Qᵀ` and `Oᵀ = Vᵀ·Pᵀ`, with `Pᵀ` as B.
//! Waves skip the tiles wholly past their rows' causal ends; blocks start from the last rows
//! (the most keys), so the short ones fill the tail. Each row's sum is reduced across its
//! lanes once at the end; the output, divided by it, is written once in the activation type.
//!
//! Arguments as `attn_flash`; `max_head_dim` is the padded head size the tiles hold (a head of
//! 8 is padded to the instruction's 16), `vec` the elements per cache access (dividing
//! `head_dim`). Launch with [`launch`] after [`fit`].

use crate::attn_decode::fit_head_dim;
use crate::config::{u32_param, VEC};
use crate::flash::{fused_problem, part_weight, Shape, MAX_HEAD_DIM, OUT};
use crate::problem::{Inputs, Problem, Tolerance};
use crate::{Config, KernelSpec, ParamDef, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::LaunchDims;
use greta_dsl::ir::{ConfigValue, Kernel, MmaShape, Operand, Scalar};
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

/// How the kernel lays attention on an instruction's fragment layouts (comptime facts, all
/// from the [`MatrixInst`]'s tables).
#[derive(Clone, Debug)]
pub struct Plan {
    /// `S = Q·Kᵀ` with `P` as A (true), or `Sᵀ = K·Qᵀ` with `Pᵀ` as B (false).
    pub normal: bool,
    /// Per element of the `P` operand fragment: `(accumulator, element)` it comes from, the
    /// accumulators of one `k` step counted from 0 ([`MatrixInst::operand_from_acc`]).
    pub p_from: Vec<(u32, u32)>,
    /// Keys per score accumulator (its columns, or its rows when transposed).
    pub keys: u32,
    /// Head dims per output accumulator.
    pub dims: u32,
    /// Per accumulator element: which of the lane's query rows it belongs to.
    pub row_of: Vec<u32>,
    /// Query rows a lane holds elements of.
    pub rows: u32,
    /// Xor masks over the lanes that share a query row.
    pub lanes: Vec<u32>,
}

impl Plan {
    /// The plan for `inst` on a wave of `wave` lanes, or `None` where no orientation keeps the
    /// weights in registers.
    pub fn new(inst: &MatrixInst, wave: u32) -> Option<Plan> {
        let (m, n) = (inst.shape.m, inst.shape.n);
        let (normal, p_from) = match inst.operand_from_acc(Operand::A, wave) {
            Some(map) => (true, map),
            None => (false, inst.operand_from_acc(Operand::B, wave)?),
        };
        let query = if normal { inst.acc.row } else { inst.acc.col };
        let mut parts: Vec<u32> = (0..inst.acc.len).map(|e| query.elem_part(e)).collect();
        let row_of = parts.clone();
        parts.sort_unstable();
        parts.dedup();
        let row_of = row_of
            .iter()
            .map(|p| parts.iter().position(|x| x == p).unwrap_or(0) as u32)
            .collect();
        Some(Plan {
            normal,
            p_from,
            keys: if normal { n } else { m },
            dims: if normal { n } else { m },
            row_of,
            rows: parts.len() as u32,
            lanes: query.lanes_sharing(wave),
        })
    }
}

impl Plan {
    /// Which of the lane's query rows accumulator element `e` belongs to.
    pub fn row(&self, e: u32) -> u32 {
        self.row_of[e as usize]
    }

    /// Where element `i` of the `P` operand fragment comes from (see [`Plan::p_from`]).
    pub fn p_source(&self, i: u32) -> (u32, u32) {
        self.p_from[i as usize]
    }
}

/// [`Plan::new`] for the instruction being built; a build error where there is none.
fn plan_for(inst: &MatrixInst) -> Plan {
    Plan::new(inst, target().wave_size).unwrap_or_else(|| {
        build_error(format!(
            "{}: no accumulator layout is an operand layout, so attention cannot keep its weights in registers",
            inst.name
        ));
        Plan {
            normal: true,
            p_from: Vec::new(),
            keys: 1,
            dims: 1,
            row_of: Vec::new(),
            rows: 1,
            lanes: Vec::new(),
        }
    })
}

/// The queries' LDS tile: stage 1's K and V tiles (free until the second K/V fetch) where the
/// rows fit in them, else a tile of their own.
fn query_tile<T: MatrixElem>(
    kv: LdsTiles<T>,
    rows: u32,
    tile: u32,
    dmax: u32,
    layout: TileLayout,
) -> Tile<T> {
    if rows <= 2 * tile {
        kv.stage(2u32)
    } else {
        lds_tiles::<T>(1, rows, dmax, layout).stage(0u32)
    }
}

/// Scales a tile's scores (keys from `k0`) to base 2 and takes each of the lane's rows'
/// maximum into `tile_max`; with `masked`, first sets keys past a row's causal end (`first_end`
/// for the wave's first row, one more per row) to `-inf`.
#[device]
pub fn scale_scores(
    fs: Frags<f32, Accum>,
    #[comptime] plan: &Plan,
    tile_max: Local<f32>,
    scale_log2: Val<f32>,
    k0: Val<u32>,
    first_end: Val<u32>,
    #[comptime] masked: bool,
) {
    for j in 0..fs.count() {
        let f = fs.at(j);
        for e in 0..f.elems() {
            let mut s = f.get(e) * scale_log2;
            if masked {
                let (fr, fc) = f.coord(e);
                let (r, c) = oriented(plan.normal, fr, fc);
                s = select(
                    k0 + j * plan.keys + c <= first_end + r,
                    s,
                    f32::NEG_INFINITY,
                );
            }
            f.set(e, s);
            #[comptime]
            let g = plan.row(e);
            tile_max[g] = max(tile_max[g], s);
        }
    }
}

/// An accumulator element's `(query row, key or dim)` from its `(row, column)`: the same, or
/// exchanged where the plan computes transposes.
fn oriented(normal: bool, row: Val<u32>, col: Val<u32>) -> (Val<u32>, Val<u32>) {
    if normal {
        (row, col)
    } else {
        (col, row)
    }
}

/// Fragments of the queries as A and as B: `count` in the plan's orientation, 1 (unused) in
/// the other.
fn oriented_counts(normal: bool, count: u32) -> (u32, u32) {
    if normal {
        (count, 1)
    } else {
        (1, count)
    }
}

/// A build error unless the head and key tiles are whole instruction tiles.
fn check_tiles(max_head_dim: u32, tile: u32, inst: &MatrixInst) {
    let (m, n, k) = (inst.shape.m, inst.shape.n, inst.shape.k);
    if max_head_dim % k != 0 || max_head_dim % m != 0 || tile % k != 0 || tile % n != 0 {
        build_error(format!(
            "max_head_dim={max_head_dim} and tile={tile} must be multiples of {}'s {m}, {n} and {k}",
            inst.name
        ));
    }
}

/// Starts copying keys `k0..k0 + rows` of K/V head `kvh` into the tiles `tk`/`tv`, `V` elements
/// per access, zeros past `end` and past `head_dim`.
#[device]
#[allow(clippy::too_many_arguments)]
pub fn fetch_kv<T: MatrixElem, const V: usize>(
    tk: Tile<T>,
    tv: Tile<T>,
    k_cache: Global<T, Read>,
    v_cache: Global<T, Read>,
    k0: Val<u32>,
    end: Val<u32>,
    row_len: Val<u32>,
    head: Val<u32>,
    head_dim: Val<u32>,
    #[comptime] rows: u32,
    #[comptime] dmax: u32,
    #[comptime] threads: u32,
) {
    #[comptime]
    let vec = V as u32;
    #[comptime]
    let single = V == 1;
    for i in (thread_idx().x..rows * dmax / vec).step_by(threads) {
        let r = i / (dmax / vec);
        let d = i % (dmax / vec) * vec;
        let ok = k0 + r < end && d < head_dim;
        let at = select(ok, (k0 + r) * row_len + head + d, 0u32);
        if single {
            // One element is 2 bytes, below the 4 an asynchronous copy moves.
            tk.store(r, d, select(ok, k_cache[at], T::from_f32(0.0f32)));
            tv.store(r, d, select(ok, v_cache[at], T::from_f32(0.0f32)));
        } else {
            async_copy::<V, T, Read>(&tk, r, d, &k_cache, at, ok);
            async_copy::<V, T, Read>(&tv, r, d, &v_cache, at, ok);
        }
    }
}

#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn attn_mma<T: MatrixElem, O: Float, const V: usize>(
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
    let kd = inst.shape.k;
    #[comptime]
    let plan = plan_for(inst);
    #[comptime]
    let normal = plan.normal;
    #[comptime]
    let rows = 16u32 * warps;
    #[comptime]
    let dmax = max_head_dim;
    check_tiles(dmax, tile, inst);
    // The last rows first: they see the most keys.
    let q0 = ((tokens + rows - 1u32) / rows - 1u32 - block_idx().x) * rows;
    let h = block_idx().y;
    let tid = thread_idx().x;
    let wq0 = tid / wave * 16u32;
    let head = h / (heads / kv_heads) * head_dim;
    let row_len = kv_heads * head_dim;
    #[comptime]
    let layout = TileLayout::swizzled_for(target(), T::SCALAR, dmax);
    // K and V of stage s are tiles 2s and 2s + 1; the queries pass through stage 1's.
    let kv = lds_tiles::<T>(4, tile, dmax, layout);
    let tq = query_tile(kv, rows, tile, dmax, layout);
    let block_end = start + min(q0 + rows, tokens);
    fetch_kv::<T, V>(
        kv.stage(0u32),
        kv.stage(1u32),
        k_cache,
        v_cache,
        Val::constant(0u32),
        block_end,
        row_len,
        head,
        head_dim,
        tile,
        dmax,
        threads,
    );
    async_commit();
    // Queries, rounded to T, zero past the head and past the last token.
    for i in (tid..rows * dmax).step_by(threads) {
        let r = i / dmax;
        let d = i % dmax;
        let t = q0 + r;
        let ok = t < tokens && d < head_dim;
        let at = select(ok, (t * heads + h) * head_dim + d, 0u32);
        tq.store(r, d, T::from_f32(select(ok, q[at], 0.0f32)));
    }
    barrier();
    // The wave's queries as operand fragments, held for the whole walk: A of `Q·Kᵀ`, or B
    // (`Qᵀ`) of `K·Qᵀ`. The other orientation's array is never used (a single fragment).
    #[comptime]
    let (qa_count, qb_count) = oriented_counts(normal, dmax / kd);
    let qa = fragments::<T, MatA>(inst, qa_count);
    let qb = fragments::<T, MatB>(inst, qb_count);
    for kk in 0..dmax / kd {
        if normal {
            qa.at(kk).load(&tq, wq0, kk * kd);
        } else {
            qb.at(kk).load_transposed(&tq, wq0, kk * kd);
        }
    }
    // Every wave has its queries before the first fetch overwrites them.
    barrier();
    let fs = fragments::<f32, Accum>(inst, tile / plan.keys);
    let fo = fragments::<f32, Accum>(inst, dmax / plan.dims);
    fo.fill(0.0f32);
    let fa = fragments::<T, MatA>(inst, 1);
    let fb = fragments::<T, MatB>(inst, 1);
    // Per query row the lane holds: running maximum, the lane's part of the sum, the factor
    // of this tile's rescale, and the tile's maximum.
    let row_max = local_array::<f32>(plan.rows);
    let row_sum = local_array::<f32>(plan.rows);
    let rescale = local_array::<f32>(plan.rows);
    let tile_max = local_array::<f32>(plan.rows);
    for g in 0..plan.rows {
        row_max[g] = f32::NEG_INFINITY;
        row_sum[g] = 0.0f32;
    }
    // The wave's last row's last key: tiles past it hold nothing the wave weighs.
    let wave_end = start + q0 + wq0 + 16u32;
    let tiles = (block_end + tile - 1u32) / tile;
    for it in 0u32..tiles {
        let k0 = it * tile;
        if it + 1u32 < tiles {
            let next = (it + 1u32) % 2u32 * 2u32;
            fetch_kv::<T, V>(
                kv.stage(next),
                kv.stage(next + 1u32),
                k_cache,
                v_cache,
                k0 + tile,
                block_end,
                row_len,
                head,
                head_dim,
                tile,
                dmax,
                threads,
            );
        }
        async_commit();
        async_wait(1);
        barrier();
        let tk = kv.stage(it % 2u32 * 2u32);
        let tv = kv.stage(it % 2u32 * 2u32 + 1u32);
        if k0 < wave_end {
            // 1. Scores.
            fs.fill(0.0f32);
            for kk in 0..dmax / kd {
                for j in 0..tile / plan.keys {
                    if normal {
                        fb.at(0).load_transposed(&tk, j * plan.keys, kk * kd);
                        mma(qa.at(kk), fb.at(0), fs.at(j), fs.at(j));
                    } else {
                        fa.at(0).load(&tk, j * plan.keys, kk * kd);
                        mma(fa.at(0), qb.at(kk), fs.at(j), fs.at(j));
                    }
                }
            }
            // 2. Base 2, causal mask (on the tiles that cross a row's end), the rows' maxima,
            //    weights in place.
            for g in 0..plan.rows {
                tile_max[g] = f32::NEG_INFINITY;
            }
            if k0 + tile > start + q0 + wq0 + 1u32 {
                scale_scores(fs, &plan, tile_max, scale_log2, k0, start + q0 + wq0, true);
            } else {
                scale_scores(fs, &plan, tile_max, scale_log2, k0, start + q0 + wq0, false);
            }
            for g in 0..plan.rows {
                let mut top = tile_max[g];
                for m in plan.lanes.iter().copied() {
                    top = max(top, shfl_xor(top, m));
                }
                top = max(top, row_max[g]);
                rescale[g] = part_weight(row_max[g], top);
                row_max[g] = top;
                row_sum[g] = row_sum[g] * rescale[g];
            }
            for j in 0..tile / plan.keys {
                let f = fs.at(j);
                for e in 0..f.elems() {
                    #[comptime]
                    let g = plan.row(e);
                    let p = part_weight(f.get(e), row_max[g]);
                    f.set(e, p);
                    row_sum[g] = row_sum[g] + p;
                }
            }
            for jd in 0..dmax / plan.dims {
                let f = fo.at(jd);
                for e in 0..f.elems() {
                    #[comptime]
                    let g = plan.row(e);
                    f.set(e, f.get(e) * rescale[g]);
                }
            }
            // 3. O += P · V (or Oᵀ += Vᵀ · Pᵀ), P from the score accumulators.
            #[comptime]
            let per_k = kd / plan.keys;
            for kk in 0..tile / kd {
                for i in 0..plan.p_from.len() as u32 {
                    #[comptime]
                    let (acc, e) = plan.p_source(i);
                    let p = T::from_f32(fs.at(kk * per_k + acc).get(e));
                    if normal {
                        fa.at(0).set(i, p);
                    } else {
                        fb.at(0).set(i, p);
                    }
                }
                for jd in 0..dmax / plan.dims {
                    if normal {
                        fb.at(0).load(&tv, kk * kd, jd * plan.dims);
                    } else {
                        fa.at(0).load_transposed(&tv, kk * kd, jd * plan.dims);
                    }
                    mma(fa.at(0), fb.at(0), fo.at(jd), fo.at(jd));
                }
            }
        }
        barrier();
    }
    // Each row's sum across its lanes; the output divided by it.
    for g in 0..plan.rows {
        let mut l = row_sum[g];
        for m in plan.lanes.iter().copied() {
            l = l + shfl_xor(l, m);
        }
        rescale[g] = 1.0f32 / l;
    }
    for jd in 0..dmax / plan.dims {
        let f = fo.at(jd);
        for e in 0..f.elems() {
            let (fr, fc) = f.coord(e);
            let (r, c) = oriented(normal, fr, fc);
            let t = q0 + wq0 + r;
            let d = jd * plan.dims + c;
            #[comptime]
            let g = plan.row(e);
            if t < tokens && d < head_dim {
                out[(t * heads + h) * head_dim + d] = O::from_f32(f.get(e) * rescale[g]);
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

/// Bytes of LDS the kernel's arrays take at `cfg` on `target` (as `lds_tiles` lays them out):
/// two stages of K and V, and the queries where they do not fit in one stage's tiles.
fn lds_bytes(cfg: &Config, target: &Target) -> u32 {
    let (d, tile, rows) = (
        cfg.u32("max_head_dim"),
        cfg.u32("tile"),
        16 * cfg.u32("warps"),
    );
    let half = cfg.dtype("dtype");
    let stride = match TileLayout::swizzled_for(target, half, d) {
        TileLayout::Padded(pad) => d + pad,
        TileLayout::Swizzled(_) => d,
    };
    let query_rows = if rows <= 2 * tile { 0 } else { rows };
    (query_rows + 4 * tile) * stride * half.size_bytes()
}

/// `cfg` fitted to heads of `head_dim` on `target`: `max_head_dim` raised to hold them, `vec`
/// lowered to divide them, then `tile` (down to 16) and then `warps` (down to 1) halved until
/// the LDS holds the tiles.
pub fn fit(cfg: &Config, head_dim: u32, target: &Target) -> Config {
    let mut cfg = fit_head_dim(cfg, head_dim).lowered("vec", |v| head_dim % v == 0);
    for (param, least) in [("tile", 16), ("warps", 1)] {
        while lds_bytes(&cfg, target) > target.lds_bytes_max && cfg.u32(param) > least {
            let half = cfg.u32(param) / 2;
            cfg = cfg.with(param, ConfigValue::U32(half));
        }
    }
    cfg
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    crate::check_vec_width("attn_mma", cfg)?;
    let (mhd, warps, tile) = (cfg.u32("max_head_dim"), cfg.u32("warps"), cfg.u32("tile"));
    crate::dispatch!(cfg, target, attn_mma, Half, O, V; mhd, warps, tile)
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
const TILE: ParamDef = u32_param("tile", &[16, 32, 64], 64, "keys per K/V tile staged in LDS");

pub static SPEC: KernelSpec = KernelSpec {
    name: "attn_mma",
    summary: "fused causal attention on matrix cores (Q·Kᵀ and P·V as mma tiles, online softmax)",
    params: &[
        crate::gemm::dtype_param_halves(),
        OUT,
        MAX_HEAD_DIM,
        WARPS,
        TILE,
        VEC,
    ],
    shape: "tokens,heads,kv_heads,head_dim,start",
    test_shapes: crate::flash::PREFILL_TEST_SHAPES,
    bench_shape: &[4096, 32, 32, 128, 0],
    build,
    problem,
    available: crate::everywhere,
};
