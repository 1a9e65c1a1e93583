//! What the fused attention kernels ([`attn_flash`](crate::attn_flash) for prefill,
//! [`attn_decode`](crate::attn_decode) for decode) share: the online softmax, their
//! parameters, and the f64 references.
//!
//! The online softmax (flash attention's): scores are taken in base 2 — `s = q·k · scale ·
//! log2(e)` — so that every exponential is one `exp2`. A wave processes one score per lane at a
//! time and keeps, per query row, the running maximum `m`, the running sum `l = Σ 2^(s − m)` and
//! the running output `acc = Σ 2^(s − m) · v`; when the maximum grows from `m` to `m'` the sums
//! are rescaled by `2^(m − m')`. A masked or absent score is `-inf`, weight exactly 0, and a
//! maximum that is still `-inf` rescales nothing (no `-inf − -inf` NaN anywhere).
//!
//! Values and accumulators are f32 whatever the K/V cache's type (`dtype`: f16, bf16 or f32);
//! the output is written once in `out`'s type (the activation type, so no conversion pass).

use crate::config::{Choices, FLOATS};
use crate::problem::{from_f64, to_f64, zeros, Expected, Inputs, Problem, ProblemArg, Tolerance};
use crate::{Config, ParamDef, ProblemError};
use greta_dsl::interp::{Buffer, LaunchDims};
use greta_dsl::ir::{ConfigValue, Const, Kernel, Scalar};
use greta_dsl::prelude::*;

/// `log2(e)`: natural-log scores times this are base-2 scores.
pub const LOG2_E: f32 = std::f32::consts::LOG2_E;

/// One step of the online softmax over a wave of base-2 scores `s` (one per lane, `-inf` where
/// there is none) for a row whose running maximum is `m`: the new maximum, the factor that
/// rescales the old sums, and each lane's weight `2^(s − m')`.
#[device]
pub fn online_step(s: Val<f32>, m: Val<f32>) -> (Val<f32>, Val<f32>, Val<f32>) {
    let grown = max(m, wave_max(s));
    let rescale = part_weight(m, grown);
    let weight = part_weight(s, grown);
    (grown, rescale, weight)
}

/// `2^(m − top)`, or 0 for an empty part (`m = -inf`): the weight of a partial result with
/// maximum `m` in a total whose maximum is `top`.
#[device]
pub fn part_weight(m: Val<f32>, top: Val<f32>) -> Val<f32> {
    // `top` is -inf only when `m` is too: the select keeps the NaN of -inf − -inf out.
    select(m == f32::NEG_INFINITY, 0.0f32, exp2(m - top))
}

/// Output dimensions each lane of a wave keeps, for heads up to `max_head_dim`.
pub fn dims_per_lane(max_head_dim: u32, wave: u32) -> u32 {
    max_head_dim.div_ceil(wave).max(1)
}

/// The largest head dimension a kernel is built for (a runtime `head_dim` up to it works).
pub const MAX_HEAD_DIM: ParamDef = ParamDef {
    name: "max_head_dim",
    choices: Choices::U32(&[32, 64, 128, 256]),
    default: ConfigValue::U32(128),
    default_for_dtype: None,
    tunable: false,
    doc: "the largest head_dim the kernel handles (each lane keeps max_head_dim / wave outputs)",
};

/// The element type of the K/V cache.
pub const KV_DTYPE: ParamDef = ParamDef {
    name: "dtype",
    choices: Choices::DType(FLOATS),
    default: ConfigValue::Type(Scalar::F16),
    default_for_dtype: None,
    tunable: false,
    doc: "element type of the K and V caches",
};

/// The element type of the attention output (the activations).
pub const OUT: ParamDef = ParamDef {
    name: "out",
    choices: Choices::DType(FLOATS),
    default: ConfigValue::Type(Scalar::F16),
    default_for_dtype: None,
    tunable: false,
    doc: "element type of the output",
};

/// The `max_head_dim` choice for heads of `head_dim` (the smallest that holds them).
pub fn max_head_dim_for(head_dim: u32) -> u32 {
    [32, 64, 128, 256]
        .into_iter()
        .find(|&m| head_dim <= m)
        .unwrap_or(256)
}

/// The awkward shapes every fused prefill kernel is tested at (`tokens,heads,kv_heads,head_dim,
/// start`): 1, 7 and 172 tokens; heads of 1, 8, 12, 16, 64 and 130 dims; GQA ratios 1, 2, 4 and
/// 8; a KV length of 4097 (past a 4096 boundary, not a multiple of a tile).
pub const PREFILL_TEST_SHAPES: &[&[u32]] = &[
    &[1, 1, 1, 1, 0],
    &[7, 8, 4, 8, 0],
    &[5, 8, 1, 12, 3],
    &[9, 4, 4, 130, 2],
    &[172, 2, 1, 16, 0],
    &[3, 8, 8, 64, 61],
    &[3, 4, 1, 16, 4094],
];

/// The shape of an attention problem (the v1 kernels' own): `T` new tokens at positions
/// `start..start + T`, `H` query heads, `Hkv` K/V heads, head dimension `D`.
pub use crate::attn_scores::AttnShape as Shape;

/// Causal grouped-query attention in f64: `q` is `[T, H, D]`, the caches `[≥ L, Hkv, D]`;
/// returns `[T, H, D]`.
pub fn reference(q: &[f64], k: &[f64], v: &[f64], s: Shape, scale: f64) -> Vec<f64> {
    let (hn, hkv, dn) = (s.heads, s.kv_heads, s.head_dim);
    let mut out = vec![0.0; s.tokens * hn * dn];
    for t in 0..s.tokens {
        for h in 0..hn {
            let kvh = s.kv_head(h);
            let qrow = &q[(t * hn + h) * dn..][..dn];
            let scores: Vec<f64> = (0..s.keys(t))
                .map(|p| dot(qrow, &k[(p * hkv + kvh) * dn..][..dn]) * scale)
                .collect();
            let top = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = scores.iter().map(|x| (x - top).exp()).collect();
            let sum: f64 = w.iter().sum();
            for d in 0..dn {
                out[(t * hn + h) * dn + d] = (0..s.keys(t))
                    .map(|p| w[p] / sum * v[(p * hkv + kvh) * dn + d])
                    .sum();
            }
        }
    }
    out
}

/// A test or benchmark problem of `attn_flash` or `attn_mma` (the same arguments): random
/// queries and caches of `shape` (`tokens,heads,kv_heads,head_dim,start`) with `dtype` caches,
/// the kernel `kernel` at `cfg`, the f64 reference on the queries as `round_q` rounds them
/// (`attn_mma` multiplies them in the cache type), within `tolerance`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fused_problem(
    name: &'static str,
    expected_shape: &'static str,
    shape: &[u32],
    cfg: &Config,
    inputs: &mut Inputs,
    kernel: Kernel,
    dims: LaunchDims,
    round_q: Option<Scalar>,
    tolerance: Tolerance,
) -> Result<Problem, ProblemError> {
    let s = Shape::parse(name, shape, expected_shape)?;
    let (dtype, out) = (cfg.dtype("dtype"), cfg.dtype("out"));
    let ((qb, q), (kb, k), (vb, v), scale) = attention_inputs(inputs, dtype, s);
    let n = s.tokens * s.heads * s.head_dim;
    let values = if !inputs.references() {
        Vec::new()
    } else if let Some(ty) = round_q {
        reference(&to_f64(&from_f64(ty, &q)), &k, &v, s, scale as f64)
    } else {
        reference(&q, &k, &v, s, scale as f64)
    };
    let u = |x: usize| ProblemArg::Value(Const::U32(x as u32));
    // Causal: row t sees start + t + 1 keys.
    let pairs: usize = (0..s.tokens).map(|t| s.keys(t)).sum::<usize>() * s.heads;
    let kv_bytes = 2 * s.keys(s.tokens - 1) * s.kv_heads * s.head_dim * dtype.size_bytes() as usize;
    Ok(Problem {
        config: cfg.clone(),
        kernel,
        dims,
        args: vec![
            ProblemArg::Buffer(qb),
            ProblemArg::Buffer(kb),
            ProblemArg::Buffer(vb),
            ProblemArg::Buffer(zeros(out, n)),
            u(s.tokens),
            u(s.heads),
            u(s.kv_heads),
            u(s.head_dim),
            u(s.start),
            ProblemArg::Value(Const::F32(scale * LOG2_E)),
        ],
        expected: vec![Expected {
            arg: 3,
            values,
            tolerance,
        }],
        min_bytes: (kv_bytes + 4 * n + n * out.size_bytes() as usize) as u64,
        flops: 4 * (pairs * s.head_dim) as u64,
    })
}

/// The problem of a SIMT fused prefill kernel (`attn_flash`, `attn_qlds`): the configuration
/// fitted to the shape's heads by `fit`, launched by `launch`, against the f64 reference within
/// f32 error and one rounding to `out` (a weighted mean of values in [-1, 1]).
#[allow(clippy::type_complexity)]
pub(crate) fn simt_problem(
    spec: &'static crate::KernelSpec,
    fit: fn(&Config, u32, &greta_dsl::Target) -> Config,
    launch: fn(&Config, &greta_dsl::Target, u32, u32) -> LaunchDims,
    cfg: &Config,
    target: &'static greta_dsl::Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    let s = Shape::parse(spec.name, shape, spec.shape)?;
    let cfg = &fit(cfg, s.head_dim as u32, target);
    let dims = launch(cfg, target, s.tokens as u32, s.heads as u32);
    let tolerance = Tolerance::for_dtype(cfg.dtype("out"), 2e-5);
    let kernel = (spec.build)(cfg, target)?;
    fused_problem(
        spec.name, spec.shape, shape, cfg, inputs, kernel, dims, None, tolerance,
    )
}

/// Queries and caches of a shape (the caches with three spare rows past the used ones, as the
/// model's have), and the scale `1/√D`.
pub(crate) fn attention_inputs(
    inputs: &mut Inputs,
    dtype: Scalar,
    s: Shape,
) -> (
    (Buffer, Vec<f64>),
    (Buffer, Vec<f64>),
    (Buffer, Vec<f64>),
    f32,
) {
    let rows = s.keys(s.tokens - 1) + 3;
    let q = inputs.uniform(Scalar::F32, s.tokens * s.heads * s.head_dim, -1.0, 1.0);
    let k = inputs.uniform(dtype, rows * s.kv_heads * s.head_dim, -1.0, 1.0);
    let v = inputs.uniform(dtype, rows * s.kv_heads * s.head_dim, -1.0, 1.0);
    (q, k, v, 1.0 / (s.head_dim as f32).sqrt())
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Where an attention kernel reads a key's and a value's elements: straight from the caches
/// (decode: every key is read once) or from a tile staged in LDS (prefill: the block's query
/// rows share it).
pub trait KeySource: Copy {
    /// Element `d` of key `key`'s K row and of its V row, as f32.
    fn kv(self, key: Val<u32>, d: Val<u32>) -> (Val<f32>, Val<f32>);
}

/// The caches, `[C, Hkv, D]`: key `p`'s row for K/V head `kvh` starts at `(p·Hkv + kvh)·D`.
#[derive(Clone, Copy)]
pub struct CacheRows<T: Float> {
    pub k: Global<T, Read>,
    pub v: Global<T, Read>,
    /// `Hkv · D`, the distance between two keys' rows.
    pub stride: Val<u32>,
    /// `kvh · D`, the K/V head's offset in a row.
    pub head: Val<u32>,
}

impl<T: Float> KeySource for CacheRows<T> {
    fn kv(self, key: Val<u32>, d: Val<u32>) -> (Val<f32>, Val<f32>) {
        let at = key * self.stride + self.head + d;
        (
            greta_dsl::front::load(&self.k, at).to_f32(),
            greta_dsl::front::load(&self.v, at).to_f32(),
        )
    }
}

/// A tile of keys `first..` staged in LDS, one row of `pitch` elements per key.
#[derive(Clone, Copy)]
pub struct TileRows<T: Float> {
    pub k: Shared<T>,
    pub v: Shared<T>,
    pub first: Val<u32>,
    pub pitch: u32,
}

impl<T: Float> KeySource for TileRows<T> {
    fn kv(self, key: Val<u32>, d: Val<u32>) -> (Val<f32>, Val<f32>) {
        let at = (key - self.first) * self.pitch + d;
        (
            greta_dsl::front::load(&self.k, at).to_f32(),
            greta_dsl::front::load(&self.v, at).to_f32(),
        )
    }
}

/// Attends one query row to keys `p0..p0 + unroll` (those at or past `end` do not count). The
/// row's dims are spread over the wave's lanes — lane `ℓ` holds dims `ℓ + i·wave` of `q` in
/// `qd[i]` and of the output in `acc[i]` — so every K and V row is read by consecutive lanes;
/// each score is a wave sum. `ml` holds the row's running maximum and sum (see the module
/// docs). All keys' loads are issued before the first score is used.
#[device]
#[allow(clippy::too_many_arguments)]
pub fn attend<S: KeySource>(
    #[comptime] src: S,
    p0: Val<u32>,
    end: Val<u32>,
    head_dim: Val<u32>,
    qd: Local<f32>,
    ml: Local<f32>,
    acc: Local<f32>,
    scale_log2: Val<f32>,
    #[comptime] dpl: u32,
    #[comptime] unroll: u32,
) {
    #[comptime]
    let wave = target().wave_size;
    let lane = lane_id();
    #[comptime]
    let mut loaded = Vec::new();
    for u in 0..unroll {
        // Keys past the end read the last one (in bounds) and get weight 0.
        let key = min(p0 + u, end - 1u32);
        for i in 0..dpl {
            let d = min(lane + i * wave, head_dim - 1u32);
            loaded.push(src.kv(key, d));
        }
    }
    #[comptime]
    let mut scores = Vec::new();
    for u in 0..unroll {
        let mut part = 0.0f32;
        for i in 0..dpl {
            #[comptime]
            let (kd, _) = loaded[(u * dpl + i) as usize];
            let inside = lane + i * wave < head_dim;
            part = fma(qd[i], select(inside, kd, 0.0f32), part);
        }
        let s = wave_sum(part) * scale_log2;
        scores.push(select(p0 + u < end, s, f32::NEG_INFINITY));
    }
    let mut top = ml[0u32];
    for u in 0..unroll {
        top = max(top, scores[u as usize]);
    }
    let rescale = part_weight(ml[0u32], top);
    let mut l = ml[1u32] * rescale;
    for i in 0..dpl {
        acc[i] = acc[i] * rescale;
    }
    for u in 0..unroll {
        let e = part_weight(scores[u as usize], top);
        l = l + e;
        for i in 0..dpl {
            #[comptime]
            let (_, vd) = loaded[(u * dpl + i) as usize];
            acc[i] = fma(e, vd, acc[i]);
        }
    }
    ml[0u32] = top;
    ml[1u32] = l;
}

/// A query row's state before its first key: maximum `-inf`, sum 0, output 0; `qd` gets the
/// lane's dims of query row `row` (0 past the head; `valid` false: all 0).
#[device]
pub fn start_row(
    q: Global<f32, Read>,
    row: Val<u32>,
    valid: Val<bool>,
    head_dim: Val<u32>,
    qd: Local<f32>,
    ml: Local<f32>,
    acc: Local<f32>,
    #[comptime] dpl: u32,
) {
    #[comptime]
    let wave = target().wave_size;
    let lane = lane_id();
    for i in 0..dpl {
        let d = lane + i * wave;
        let inside = valid && d < head_dim;
        qd[i] = select(inside, q[select(inside, row * head_dim + d, 0u32)], 0.0f32);
        acc[i] = 0.0f32;
    }
    ml[0u32] = f32::NEG_INFINITY;
    ml[1u32] = 0.0f32;
}
