//! Split-K decode attention (flash-decoding): the KV cache of each query row is cut into
//! `splits` stretches of `chunk` keys; `attn_decode` runs one block per (stretch, K/V head
//! group, token) and writes each stretch's partial result, `attn_combine` one block per (token,
//! head) that weighs the partials into the output. One sequence at a 32k depth thus keeps every
//! compute unit busy: 32 heads alone would fill a quarter of an H200's 132 SMs, and each would
//! read 32k keys on its own.
//!
//! Decode is a stream over the cache, so the kernel is built to keep many bytes in flight:
//! - a key's row is read by `lanes = max_head_dim / vec` consecutive lanes (at most a wave), each
//!   with one `vec`-element access (16 bytes for f16 rows of 8), so a wave reads `wave / lanes`
//!   keys per access — its *groups* — and `unroll` accesses before it uses the first;
//! - a block takes `qheads` query heads that share one K/V head (grouped-query attention), so
//!   every K and V row read serves all of them: GQA 32/8 reads the cache once, not four times;
//! - each group keeps the online softmax of its keys for each of its query heads
//!   ([`crate::flash`]); a score is the group's lanes' partial dot products summed with xor
//!   shuffles; at the end the groups of a wave merge by shuffles, the waves of a block through
//!   LDS.
//!
//! A partial is `head_dim + 2` f32 values: the stretch's maximum base-2 score `m`, its sum
//! `l = Σ 2^(s − m)` and its unnormalised output `Σ 2^(s − m) · v` — for an empty stretch
//! (past the row's causal end) `m = -inf`, `l = 0`, output 0. Partials are `[T·H, splits,
//! head_dim + 2]`. The combine adds them in stretch order, so the result does not depend on
//! which block ran first, and equals the unsplit result up to f32 rounding.
//!
//! `attn_decode` arguments, in order: `q: &[f32]` `[T, H, D]`, `k_cache: &[T]`, `v_cache: &[T]`
//! (`[≥ start + T, Hkv, D]`), `part: &mut [f32]` (at least `T·H·splits·(D + 2)`), `tokens: u32`,
//! `heads: u32`, `kv_heads: u32`, `head_dim: u32` (at most `max_head_dim`, a multiple of `vec`),
//! `start: &[u32]` (one element: the first token's position, in device memory so that a decode
//! step's launch is the same at every position and one captured graph serves them all),
//! `chunk: u32`, `splits: u32`, `scale_log2: f32` (`log2(e) / √D`); `chunk · splits` may exceed
//! the keys (stretches past a row's end are empty: how a graph captured for a range of depths
//! runs the shallower ones); `qheads`
//! must divide `heads / kv_heads`. Launch with [`launch`] after [`fit`]ting the configuration
//! to the model. `attn_combine` (its `dtype` is the output's): `part: &[f32]`, `out: &mut [O]`
//! `[T, H, D]`, `head_dim: u32`, `splits: u32`; launch with [`launch_combine`]. [`splits_for`]
//! chooses the split.

use crate::config::{block_param, u32_param, Choices, VEC};
use crate::flash::{
    attention_inputs, max_head_dim_for, part_weight, Shape, KV_DTYPE, LOG2_E, MAX_HEAD_DIM, OUT,
};
use crate::problem::{from_f64, zeros, Expected, Inputs, Problem, ProblemArg, Tolerance};
use crate::{dispatch, Config, KernelSpec, ParamDef, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::{Buffer, LaunchDims};
use greta_dsl::ir::{ConfigValue, Const, Kernel, Scalar};
use greta_dsl::prelude::*;
use greta_dsl::Target;

/// How a wave's lanes share out key rows of up to `max_head_dim` elements read `vec` at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyLanes {
    /// Lanes that read one key's row together (a power of two, at most a wave).
    pub lanes: u32,
    /// Accesses each of them makes per row (more than one only when a wave is too narrow).
    pub per: u32,
    /// Keys a wave reads per access (`wave / lanes`).
    pub groups: u32,
}

impl KeyLanes {
    pub fn new(max_head_dim: u32, vec: u32, wave: u32) -> KeyLanes {
        let lanes = (max_head_dim / vec).clamp(1, wave);
        KeyLanes {
            lanes,
            per: (max_head_dim / (lanes * vec)).max(1),
            groups: wave / lanes,
        }
    }
}

/// The row's elements `at..at + V` (`at` a multiple of `V`) as f32, in one access.
fn load_run<T: Float, const V: usize>(mem: &Global<T, Read>, at: Val<u32>) -> Vec<Val<f32>> {
    let run = materialize("kv", vload::<V, _>(mem, at)).to_f32();
    (0..V as u32).map(|e| run.lane(e)).collect()
}

#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn attn_decode<T: Float, const V: usize>(
    q: &[f32],
    k_cache: &[T],
    v_cache: &[T],
    part: &mut [f32],
    tokens: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    start: &[u32],
    chunk: u32,
    splits: u32,
    scale_log2: f32,
    #[comptime] max_head_dim: u32,
    #[comptime] warps: u32,
    #[comptime] unroll: u32,
    #[comptime] qheads: u32,
) {
    #[comptime]
    let wave = target().wave_size;
    #[comptime]
    let threads = warps * wave;
    block_size(threads);
    #[comptime]
    let vec = V as u32;
    #[comptime]
    let kl = KeyLanes::new(max_head_dim, vec, wave);
    // Elements of a row each lane holds (of the query, of the output).
    #[comptime]
    let held = kl.per * vec;
    let split = block_idx().x;
    let h0 = block_idx().y * qheads;
    let t = block_idx().z;
    let lane = lane_id();
    let w = thread_idx().x / wave;
    let group = lane / kl.lanes;
    let sub = lane % kl.lanes;
    let end = min(split * chunk + chunk, start[0u32] + t + 1u32);
    let stride = kv_heads * head_dim;
    let head = h0 / (heads / kv_heads) * head_dim;
    // The lane's query elements for each of the block's heads, and each head's running state.
    let qd = local_array::<f32>(qheads * held);
    let ml = local_array::<f32>(2u32 * qheads);
    let acc = local_array::<f32>(qheads * held);
    for j in 0..qheads {
        for a in 0..kl.per {
            for e in 0..vec {
                let d = (a * kl.lanes + sub) * vec + e;
                let inside = t < tokens && d < head_dim;
                let at = select(inside, (t * heads + h0 + j) * head_dim + d, 0u32);
                qd[j * held + a * vec + e] = select(inside, q[at], 0.0f32);
                acc[j * held + a * vec + e] = 0.0f32;
            }
        }
        ml[2u32 * j] = f32::NEG_INFINITY;
        ml[2u32 * j + 1u32] = 0.0f32;
    }
    #[comptime]
    let span = kl.groups * unroll;
    for p0 in (split * chunk + w * span..end).step_by(warps * span) {
        // Every access first: the group's `unroll` keys, `lanes` lanes per row. Keys past the
        // end read the last one (in bounds, weight 0); dims past the head read its first (the
        // query there is 0, the output never written).
        #[comptime]
        let mut ks = Vec::new();
        #[comptime]
        let mut vs = Vec::new();
        for u in 0..unroll {
            let key = min(p0 + u * kl.groups + group, end - 1u32);
            for a in 0..kl.per {
                let d0 = (a * kl.lanes + sub) * vec;
                let at = key * stride + head + select(d0 < head_dim, d0, 0u32);
                ks.extend(load_run::<T, V>(&k_cache, at));
                vs.extend(load_run::<T, V>(&v_cache, at));
            }
        }
        for j in 0..qheads {
            // The group's scores for head j: the lanes' partial dots, summed over the group.
            #[comptime]
            let mut scores = Vec::new();
            for u in 0..unroll {
                let mut dot = 0.0f32;
                for a in 0..kl.per {
                    for e in 0..vec {
                        #[comptime]
                        let kd = ks[((u * kl.per + a) * vec + e) as usize];
                        dot = fma(qd[j * held + a * vec + e], kd, dot);
                    }
                }
                for m in group_masks(kl.lanes) {
                    dot = dot + shfl_xor(dot, m);
                }
                let key = p0 + u * kl.groups + group;
                scores.push(select(key < end, dot * scale_log2, f32::NEG_INFINITY));
            }
            let old = ml[2u32 * j];
            let mut top = old;
            for u in 0..unroll {
                top = max(top, scores[u as usize]);
            }
            let rescale = part_weight(old, top);
            let mut l = ml[2u32 * j + 1u32] * rescale;
            for i in 0..held {
                acc[j * held + i] = acc[j * held + i] * rescale;
            }
            for u in 0..unroll {
                let p = part_weight(scores[u as usize], top);
                l = l + p;
                for a in 0..kl.per {
                    for e in 0..vec {
                        #[comptime]
                        let vd = vs[((u * kl.per + a) * vec + e) as usize];
                        let i = j * held + a * vec + e;
                        acc[i] = fma(p, vd, acc[i]);
                    }
                }
            }
            ml[2u32 * j] = top;
            ml[2u32 * j + 1u32] = l;
        }
    }
    // The wave's groups merged by shuffles (lanes `sub` of every group hold the same dims),
    // then the block's waves through LDS, in wave order.
    let wm = shared::<f32>(warps * qheads);
    let wl = shared::<f32>(warps * qheads);
    let wacc = shared::<f32>(warps * qheads * max_head_dim);
    for j in 0..qheads {
        let old = ml[2u32 * j];
        let mut top = old;
        for m in wave_masks(kl.lanes, wave) {
            top = max(top, shfl_xor(top, m));
        }
        let rescale = part_weight(old, top);
        let mut l = ml[2u32 * j + 1u32] * rescale;
        for m in wave_masks(kl.lanes, wave) {
            l = l + shfl_xor(l, m);
        }
        for i in 0..held {
            let mut a = acc[j * held + i] * rescale;
            for m in wave_masks(kl.lanes, wave) {
                a = a + shfl_xor(a, m);
            }
            acc[j * held + i] = a;
        }
        if lane == 0u32 {
            wm[w * qheads + j] = top;
            wl[w * qheads + j] = l;
        }
        if group == 0u32 {
            for a in 0..kl.per {
                for e in 0..vec {
                    let d = (a * kl.lanes + sub) * vec + e;
                    if d < head_dim {
                        wacc[(w * qheads + j) * max_head_dim + d] = acc[j * held + a * vec + e];
                    }
                }
            }
        }
    }
    barrier();
    for j in 0..qheads {
        let mut top = f32::NEG_INFINITY;
        for ww in 0..warps {
            top = max(top, wm[ww * qheads + j]);
        }
        let base = ((t * heads + h0 + j) * splits + split) * (head_dim + 2u32);
        if thread_idx().x == 0u32 {
            let mut l = 0.0f32;
            for ww in 0..warps {
                l = l + part_weight(wm[ww * qheads + j], top) * wl[ww * qheads + j];
            }
            part[base] = top;
            part[base + 1u32] = l;
        }
        for d in (thread_idx().x..head_dim).step_by(threads) {
            let mut a = 0.0f32;
            for ww in 0..warps {
                let at = ww * qheads + j;
                a = a + part_weight(wm[at], top) * wacc[at * max_head_dim + d];
            }
            part[base + 2u32 + d] = a;
        }
    }
}

/// Xor masks that sum over the `lanes` consecutive lanes of a group.
fn group_masks(lanes: u32) -> Vec<u32> {
    (0..lanes.trailing_zeros()).map(|b| 1 << b).collect()
}

/// Xor masks that combine the groups of a wave (lanes `lanes` apart).
fn wave_masks(lanes: u32, wave: u32) -> Vec<u32> {
    (lanes.trailing_zeros()..wave.trailing_zeros())
        .map(|b| 1 << b)
        .collect()
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

/// The split for rows of up to `keys` keys when each stretch takes `blocks` blocks (tokens ×
/// head groups) on `target`: enough blocks for [`BLOCKS_PER_CU`] per compute unit, each
/// stretch at least `min_chunk` keys. Returns `(chunk, splits)`.
pub fn splits_for(keys: u32, blocks: u32, target: &Target, min_chunk: u32) -> (u32, u32) {
    let wanted = (BLOCKS_PER_CU * target.compute_units)
        .div_ceil(blocks.max(1))
        .max(1);
    let most = keys.div_ceil(min_chunk.max(1)).max(1);
    let splits = wanted.min(most);
    (keys.div_ceil(splits), splits)
}

/// Blocks per compute unit the split aims at: decode streams the cache, and four blocks of
/// eight waves keep enough accesses in flight to cover memory latency (two left an H200 at a
/// tenth of its bandwidth).
pub const BLOCKS_PER_CU: u32 = 4;

/// Keys a stretch holds at least (fewer would spend more on partials than on keys).
pub const MIN_CHUNK: u32 = 64;

/// Blocks of `attn_decode` per stretch for `tokens` tokens of `heads` query heads.
pub fn blocks_per_split(cfg: &Config, tokens: u32, heads: u32) -> u32 {
    tokens * (heads / cfg.u32("qheads"))
}

/// Launch of `attn_decode`: grid `[splits, H / qheads, T]`.
pub fn launch(cfg: &Config, target: &Target, tokens: u32, heads: u32, splits: u32) -> LaunchDims {
    LaunchDims {
        grid: [splits, heads / cfg.u32("qheads"), tokens],
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

/// `cfg` fitted to a model's heads: `max_head_dim` raised to hold `head_dim`, `vec` lowered to
/// divide it (rows start on `vec` boundaries), `qheads` lowered to divide `group` (query heads
/// per K/V head), and `unroll` to 2 where a block serves four heads or more.
pub fn fit(cfg: &Config, head_dim: u32, group: u32) -> Config {
    let cfg = fit_head_dim(cfg, head_dim);
    let bytes = cfg.dtype("dtype").size_bytes();
    let cfg = cfg
        .lowered("vec", |v| head_dim % v == 0 && v * bytes <= 16)
        .lowered("qheads", |n| group % n == 0);
    // Four heads' queries and outputs take the registers of two of the four accesses in
    // flight: keeping four blocks of a split per compute unit resident (BLOCKS_PER_CU) is
    // worth more (H200, GQA 32/8 at a 32k depth: 51.7 us at unroll 2, 67.5 at 4).
    let most = if cfg.u32("qheads") >= 4 { 2 } else { 8 };
    cfg.lowered("unroll", |u| u <= most)
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    crate::check_vec_width("attn_decode", cfg)?;
    let (mhd, warps) = (cfg.u32("max_head_dim"), cfg.u32("warps"));
    let (unroll, qheads) = (cfg.u32("unroll"), cfg.u32("qheads"));
    dispatch!(cfg, target, attn_decode, T, V; mhd, warps, unroll, qheads)
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

/// A shape `tokens,heads,kv_heads,head_dim,start[,splits[,chunk]]` (splits by default from
/// [`splits_for`] on the target; the chunk by default the fewest keys that cover the rows in
/// `splits` stretches, larger to leave trailing stretches empty).
fn parse(shape: &[u32]) -> Result<(Shape, Option<(u32, Option<u32>)>), ProblemError> {
    let (dims, split) = match shape {
        [dims @ .., s] if shape.len() == 6 && *s > 0 => (dims, Some((*s, None))),
        [dims @ .., s, c] if shape.len() == 7 && *s > 0 && *c > 0 => (dims, Some((*s, Some(*c)))),
        _ => (shape, None),
    };
    let s = Shape::parse("attn_decode", dims, SPEC.shape)?;
    if let Some((splits, Some(chunk))) = split {
        if (chunk as u64) * (splits as u64) < s.keys(s.tokens - 1) as u64 {
            return Err(ProblemError::Shape {
                kernel: "attn_decode",
                shape: shape.to_vec(),
                expected: "chunk · splits covering the keys",
            });
        }
    }
    Ok((s, split))
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
    let cfg = &fit(cfg, s.head_dim as u32, (s.heads / s.kv_heads) as u32);
    let dtype = cfg.dtype("dtype");
    let ((qb, q), (kb, k), (vb, v), scale) = attention_inputs(inputs, dtype, s);
    let keys = s.keys(s.tokens - 1) as u32;
    let rows = (s.tokens * s.heads) as u32;
    let blocks = blocks_per_split(cfg, s.tokens as u32, s.heads as u32);
    let (chunk, splits) = match splits {
        Some((n, Some(chunk))) => (chunk, n),
        Some((n, None)) => (keys.div_ceil(n), n),
        None => splits_for(keys, blocks, target, MIN_CHUNK),
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
            ProblemArg::Buffer(Buffer::U32(vec![s.start as u32])),
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
            ProblemArg::Buffer(zeros(out, rows * head_dim)),
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
    "accesses per lane before the first is used (keys in flight per group)",
);
const QHEADS: ParamDef = u32_param(
    "qheads",
    &[1, 2, 4, 8],
    4,
    "query heads a block serves from each K/V row it reads (grouped-query attention)",
);

pub static SPEC: KernelSpec = KernelSpec {
    name: "attn_decode",
    summary: "split-K decode attention: each block one stretch of the KV cache, online softmax, partials out",
    params: &[KV_DTYPE, MAX_HEAD_DIM, WARPS, UNROLL, VEC, QHEADS],
    shape: "tokens,heads,kv_heads,head_dim,start[,splits[,chunk]]",
    test_shapes: &[
        // Trailing stretches empty (as a decode graph's shallower steps run).
        &[1, 8, 2, 16, 40, 8, 16],
        &[1, 1, 1, 1, 0],
        &[1, 8, 4, 8, 5],
        &[1, 4, 1, 7, 172],
        &[2, 8, 1, 12, 63, 3],
        &[1, 8, 8, 64, 4096, 7],
        &[1, 8, 2, 128, 700, 2],
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
