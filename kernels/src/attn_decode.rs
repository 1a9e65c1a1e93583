//! Split-K decode attention (flash-decoding): the KV cache of each query row is cut into
//! `splits` stretches of `chunk` keys; `attn_decode` runs one block per (stretch, head, token)
//! and writes each stretch's partial result, `attn_combine` one block per (token, head) that
//! weighs the partials into the output. One sequence at a 32k depth thus keeps every compute
//! unit busy: 32 heads alone would fill a quarter of an H200's 132 SMs, and each would read
//! 32k keys on its own.
//!
//! Inside a block, `warps` waves take `unroll` keys at a time in turn; each wave keeps the
//! online softmax of the row ([`crate::flash`]: dims spread over the lanes, every K and V row
//! read by consecutive lanes), and the block merges its waves through LDS.
//!
//! A partial is `head_dim + 2` f32 values: the stretch's maximum base-2 score `m`, its sum
//! `l = Σ 2^(s − m)` and its unnormalised output `Σ 2^(s − m) · v` — for an empty stretch
//! (past the row's causal end) `m = -inf`, `l = 0`, output 0. Partials are `[T·H, splits,
//! head_dim + 2]`. The combine adds them in stretch order, so the result does not depend on
//! which block ran first, and equals the unsplit result up to f32 rounding.
//!
//! `attn_decode` arguments, in order: `q: &[f32]` `[T, H, D]`, `k_cache: &[T]`, `v_cache: &[T]`
//! (`[≥ start + T, Hkv, D]`), `part: &mut [f32]` (at least `T·H·splits·(D + 2)`), `tokens: u32`,
//! `heads: u32`, `kv_heads: u32`, `head_dim: u32` (at most `max_head_dim`), `start: u32`,
//! `chunk: u32`, `splits: u32`, `scale_log2: f32` (`log2(e) / √D`). Launch with [`launch`].
//! `attn_combine` (its `dtype` is the output's): `part: &[f32]`, `out: &mut [O]` `[T, H, D]`, `head_dim: u32`, `splits: u32`;
//! launch with [`launch_combine`]. [`splits_for`] chooses the split.

use crate::config::{block_param, u32_param, Choices};
use crate::flash::{
    attend, attention_inputs, dims_per_lane, max_head_dim_for, part_weight, start_row, CacheRows,
    Shape, KV_DTYPE, LOG2_E, MAX_HEAD_DIM, OUT,
};
use crate::problem::{from_f64, Expected, Inputs, Problem, ProblemArg, Tolerance};
use crate::{dispatch, Config, KernelSpec, ParamDef, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::{Buffer, LaunchDims};
use greta_dsl::ir::{ConfigValue, Const, Kernel, Scalar};
use greta_dsl::prelude::*;
use greta_dsl::Target;

#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn attn_decode<T: Float>(
    q: &[f32],
    k_cache: &[T],
    v_cache: &[T],
    part: &mut [f32],
    tokens: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    start: u32,
    chunk: u32,
    splits: u32,
    scale_log2: f32,
    #[comptime] max_head_dim: u32,
    #[comptime] warps: u32,
    #[comptime] unroll: u32,
) {
    #[comptime]
    let wave = target().wave_size;
    block_size(warps * wave);
    #[comptime]
    let dpl = dims_per_lane(max_head_dim, wave);
    let split = block_idx().x;
    let h = block_idx().y;
    let t = block_idx().z;
    let lane = lane_id();
    let w = thread_idx().x / wave;
    let row = t * heads + h;
    let end = min(split * chunk + chunk, start + t + 1u32);
    let qd = local_array::<f32>(dpl);
    let ml = local_array::<f32>(2u32);
    let acc = local_array::<f32>(dpl);
    start_row(q, row, t < tokens, head_dim, qd, ml, acc, dpl);
    #[comptime]
    let src = CacheRows {
        k: k_cache,
        v: v_cache,
        stride: kv_heads * head_dim,
        head: h / (heads / kv_heads) * head_dim,
    };
    for p0 in (split * chunk + w * unroll..end).step_by(warps * unroll) {
        attend(src, p0, end, head_dim, qd, ml, acc, scale_log2, dpl, unroll);
    }
    // The block's waves, merged in wave order.
    let wm = shared::<f32>(warps);
    let wl = shared::<f32>(warps);
    let wacc = shared::<f32>(warps * max_head_dim);
    if lane == 0u32 {
        wm[w] = ml[0u32];
        wl[w] = ml[1u32];
    }
    for i in 0..dpl {
        let d = lane + i * wave;
        if d < head_dim {
            wacc[w * max_head_dim + d] = acc[i];
        }
    }
    barrier();
    let mut top = f32::NEG_INFINITY;
    for ww in 0..warps {
        top = max(top, wm[ww]);
    }
    let base = (row * splits + split) * (head_dim + 2u32);
    if thread_idx().x == 0u32 {
        let mut l = 0.0f32;
        for ww in 0..warps {
            l = l + part_weight(wm[ww], top) * wl[ww];
        }
        part[base] = top;
        part[base + 1u32] = l;
    }
    for d in (thread_idx().x..head_dim).step_by(warps * wave) {
        let mut a = 0.0f32;
        for ww in 0..warps {
            a = a + part_weight(wm[ww], top) * wacc[ww * max_head_dim + d];
        }
        part[base + 2u32 + d] = a;
    }
}

#[kernel]
pub fn attn_combine<O: Float>(
    part: &[f32],
    out: &mut [O],
    head_dim: u32,
    splits: u32,
    #[comptime] block: u32,
) {
    block_size(block);
    let row = block_idx().x;
    let width = head_dim + 2u32;
    let base = row * splits * width;
    let mut top = f32::NEG_INFINITY;
    for s in 0..splits {
        top = max(top, part[base + s * width]);
    }
    let mut l = 0.0f32;
    for s in 0..splits {
        let b = base + s * width;
        l = l + part_weight(part[b], top) * part[b + 1u32];
    }
    let inv = 1.0f32 / l;
    for d in (thread_idx().x..head_dim).step_by(block) {
        let mut a = 0.0f32;
        for s in 0..splits {
            let b = base + s * width;
            a = a + part_weight(part[b], top) * part[b + 2u32 + d];
        }
        out[row * head_dim + d] = O::from_f32(a * inv);
    }
}

/// The split for rows of up to `keys` keys, `rows` (tokens × heads) of them, on `target`: enough
/// blocks for two per compute unit, each stretch at least `min_chunk` keys. Returns `(chunk,
/// splits)`.
pub fn splits_for(keys: u32, rows: u32, target: &Target, min_chunk: u32) -> (u32, u32) {
    let wanted = (2 * target.compute_units).div_ceil(rows.max(1)).max(1);
    let most = keys.div_ceil(min_chunk.max(1)).max(1);
    let splits = wanted.min(most);
    (keys.div_ceil(splits), splits)
}

/// Keys a stretch holds at least (fewer would spend more on partials than on keys).
pub const MIN_CHUNK: u32 = 64;

/// Launch of `attn_decode`: grid `[splits, H, T]`.
pub fn launch(cfg: &Config, target: &Target, tokens: u32, heads: u32, splits: u32) -> LaunchDims {
    LaunchDims {
        grid: [splits, heads, tokens],
        block: [cfg.u32("warps") * target.wave_size, 1, 1],
    }
}

/// Launch of `attn_combine`: one block per (token, head).
pub fn launch_combine(cfg: &Config, rows: u32) -> LaunchDims {
    LaunchDims {
        grid: [rows, 1, 1],
        block: [cfg.u32("block"), 1, 1],
    }
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    let (mhd, warps, unroll) = (cfg.u32("max_head_dim"), cfg.u32("warps"), cfg.u32("unroll"));
    dispatch!(cfg, target, attn_decode, T; mhd, warps, unroll)
}

fn build_combine(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    let block = cfg.u32("block");
    match cfg.dtype("dtype") {
        Scalar::F16 => attn_combine::<f16>(target, block),
        Scalar::BF16 => attn_combine::<bf16>(target, block),
        _ => attn_combine::<f32>(target, block),
    }
}

/// The partials of `attn_decode` in f64 (see the module docs for their layout).
pub fn reference_partials(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    s: Shape,
    scale: f64,
    chunk: usize,
    splits: usize,
) -> Vec<f64> {
    let (hn, hkv, dn) = (s.heads, s.kv_heads, s.head_dim);
    let width = dn + 2;
    let mut out = vec![0.0; s.tokens * hn * splits * width];
    let log2e = std::f64::consts::LOG2_E;
    for t in 0..s.tokens {
        for h in 0..hn {
            let kvh = s.kv_head(h);
            let qrow = &q[(t * hn + h) * dn..][..dn];
            for sp in 0..splits {
                let keys = sp * chunk..((sp + 1) * chunk).min(s.keys(t));
                let at = ((t * hn + h) * splits + sp) * width;
                let scores: Vec<(usize, f64)> = keys
                    .map(|p| {
                        let krow = &k[(p * hkv + kvh) * dn..][..dn];
                        let dot: f64 = qrow.iter().zip(krow).map(|(a, b)| a * b).sum();
                        (p, dot * scale * log2e)
                    })
                    .collect();
                let top = scores.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max);
                out[at] = top;
                for &(p, sc) in &scores {
                    let e = (sc - top).exp2();
                    out[at + 1] += e;
                    for d in 0..dn {
                        out[at + 2 + d] += e * v[(p * hkv + kvh) * dn + d];
                    }
                }
            }
        }
    }
    out
}

/// `attn_combine` in f64: partials `[rows, splits, D + 2]` into `[rows, D]`.
pub fn reference_combine(part: &[f64], rows: usize, head_dim: usize, splits: usize) -> Vec<f64> {
    let width = head_dim + 2;
    let mut out = vec![0.0; rows * head_dim];
    for r in 0..rows {
        let parts: Vec<&[f64]> = (0..splits)
            .map(|s| &part[(r * splits + s) * width..][..width])
            .collect();
        let top = parts.iter().map(|p| p[0]).fold(f64::NEG_INFINITY, f64::max);
        let weight = |p: &[f64]| {
            if p[0] == f64::NEG_INFINITY {
                0.0
            } else {
                (p[0] - top).exp2()
            }
        };
        let l: f64 = parts.iter().map(|p| weight(p) * p[1]).sum();
        for d in 0..head_dim {
            let a: f64 = parts.iter().map(|p| weight(p) * p[2 + d]).sum();
            out[r * head_dim + d] = a / l;
        }
    }
    out
}

/// A shape `tokens,heads,kv_heads,head_dim,start[,splits]` (splits by default from
/// [`splits_for`] on the target).
fn parse(shape: &[u32]) -> Result<(Shape, Option<u32>), ProblemError> {
    let (dims, splits) = match shape {
        [dims @ .., s] if shape.len() == 6 && *s > 0 => (dims, Some(*s)),
        _ => (shape, None),
    };
    Ok((Shape::parse("attn_decode", dims, SPEC.shape)?, splits))
}

/// `cfg` with `max_head_dim` raised to hold `head_dim` where needed.
pub fn fit_head_dim(cfg: &Config, head_dim: u32) -> Config {
    if head_dim <= cfg.u32("max_head_dim") {
        return cfg.clone();
    }
    cfg.with("max_head_dim", ConfigValue::U32(max_head_dim_for(head_dim)))
}

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    let (s, splits) = parse(shape)?;
    let cfg = &fit_head_dim(cfg, s.head_dim as u32);
    let dtype = cfg.dtype("dtype");
    let ((qb, q), (kb, k), (vb, v), scale) = attention_inputs(inputs, dtype, s);
    let keys = s.keys(s.tokens - 1) as u32;
    let rows = (s.tokens * s.heads) as u32;
    let (chunk, splits) = match splits {
        Some(n) => (keys.div_ceil(n), n),
        None => splits_for(keys, rows, target, MIN_CHUNK),
    };
    let width = s.head_dim + 2;
    let n = rows as usize * splits as usize * width;
    let values = if inputs.references() {
        let scale = scale as f64;
        reference_partials(&q, &k, &v, s, scale, chunk as usize, splits as usize)
    } else {
        Vec::new()
    };
    let u = |x: usize| ProblemArg::Value(Const::U32(x as u32));
    Ok(Problem {
        config: cfg.clone(),
        kernel: build(cfg, target)?,
        dims: launch(cfg, target, s.tokens as u32, s.heads as u32, splits),
        args: vec![
            ProblemArg::Buffer(qb),
            ProblemArg::Buffer(kb),
            ProblemArg::Buffer(vb),
            ProblemArg::Buffer(Buffer::F32(vec![0.0; n])),
            u(s.tokens),
            u(s.heads),
            u(s.kv_heads),
            u(s.head_dim),
            u(s.start),
            u(chunk as usize),
            u(splits as usize),
            ProblemArg::Value(Const::F32(scale * LOG2_E)),
        ],
        expected: vec![Expected {
            arg: 3,
            values,
            // Sums of up to `chunk` f32 products of values in [-1, 1], weights ≤ 1.
            tolerance: Tolerance {
                abs: 2e-6 * (chunk as f64).sqrt() * s.head_dim as f64,
                rel: 1e-5,
            },
        }],
        min_bytes: (2 * keys as usize * s.kv_heads * s.head_dim * dtype.size_bytes() as usize
            + 4 * n) as u64,
        flops: 4 * (rows as u64) * keys as u64 * s.head_dim as u64,
    })
}

fn problem_combine(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    let (rows, head_dim, splits) = match *shape {
        [r, d, s] if r > 0 && d > 0 && s > 0 => (r as usize, d as usize, s as usize),
        _ => {
            return Err(ProblemError::Shape {
                kernel: "attn_combine",
                shape: shape.to_vec(),
                expected: SPEC_COMBINE.shape,
            })
        }
    };
    let out = cfg.dtype("dtype");
    let width = head_dim + 2;
    // Partials as attn_decode writes them: maxima in [-8, 8] (every other row's last split
    // empty, -inf), sums in [1, 64], outputs bounded by the sums.
    let (_, raw) = inputs.uniform(Scalar::F32, rows * splits * width, -1.0, 1.0);
    let mut part = raw;
    for r in 0..rows {
        for s in 0..splits {
            let at = (r * splits + s) * width;
            if s > 0 && s == splits - 1 && r % 2 == 1 {
                part[at] = f64::NEG_INFINITY;
                part[at + 1] = 0.0;
                part[at + 2..at + width].fill(0.0);
                continue;
            }
            part[at] *= 8.0;
            let l = 1.0 + 63.0 * (part[at + 1] + 1.0) / 2.0;
            part[at + 1] = l;
            for d in 0..head_dim {
                part[at + 2 + d] *= l;
            }
        }
    }
    let pb = from_f64(Scalar::F32, &part);
    let part = crate::problem::to_f64(&pb);
    Ok(Problem {
        config: cfg.clone(),
        kernel: build_combine(cfg, target)?,
        dims: launch_combine(cfg, rows as u32),
        args: vec![
            ProblemArg::Buffer(pb),
            ProblemArg::Buffer(from_f64(out, &vec![0.0; rows * head_dim])),
            ProblemArg::Value(Const::U32(head_dim as u32)),
            ProblemArg::Value(Const::U32(splits as u32)),
        ],
        expected: vec![Expected {
            arg: 1,
            values: reference_combine(&part, rows, head_dim, splits),
            tolerance: Tolerance::for_dtype(out, 1e-5),
        }],
        min_bytes: (4 * part.len() + rows * head_dim * out.size_bytes() as usize) as u64,
        flops: 0,
    })
}

const WARPS: ParamDef = u32_param("warps", &[1, 2, 4, 8], 4, "waves per block");
const UNROLL: ParamDef = u32_param(
    "unroll",
    &[1, 2, 4, 8],
    4,
    "keys a wave reads before using the first (loads in flight)",
);

pub static SPEC: KernelSpec = KernelSpec {
    name: "attn_decode",
    summary: "split-K decode attention: each block one stretch of the KV cache, online softmax, partials out",
    params: &[KV_DTYPE, MAX_HEAD_DIM, WARPS, UNROLL],
    shape: "tokens,heads,kv_heads,head_dim,start[,splits]",
    test_shapes: &[
        &[1, 1, 1, 1, 0],
        &[1, 8, 4, 8, 5],
        &[1, 4, 1, 7, 172],
        &[2, 8, 1, 12, 63, 3],
        &[1, 8, 8, 64, 4096, 7],
        &[3, 4, 4, 130, 9],
        &[1, 2, 2, 16, 300, 1],
    ],
    bench_shape: &[1, 32, 32, 128, 4095],
    build,
    problem,
    available: crate::everywhere,
};

pub static SPEC_COMBINE: KernelSpec = KernelSpec {
    name: "attn_combine",
    summary: "the split-K decode partials weighed into the attention output",
    params: &[
        crate::ParamDef {
            name: "dtype",
            choices: Choices::DType(crate::config::FLOATS),
            ..OUT
        },
        block_param(128),
    ],
    shape: "rows,head_dim,splits",
    test_shapes: &[&[1, 1, 1], &[3, 8, 4], &[5, 130, 7], &[2, 128, 1]],
    bench_shape: &[32, 128, 16],
    build: build_combine,
    problem: problem_combine,
    available: crate::everywhere,
};
