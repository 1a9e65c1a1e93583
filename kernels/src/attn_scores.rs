//! Attention scores against a KV cache, causal:
//! `scores[h, t, p] = (q[t, h, :] · k_cache[p, h / (H/Hkv), :]) · scale` for `p ≤ start + t`,
//! `-inf` for `p > start + t` (so that the [`softmax`](crate::softmax) of a row gives those
//! positions exactly 0: `exp2(-inf) = 0`, and every row has at least position 0 unmasked).
//!
//! Shapes: `q` is `[T, H, D]` (the `T` new tokens), `k_cache` is `[C, Hkv, D]` of which rows
//! `0..start + T` are valid (`C` the capacity is not needed: only rows below `L` are read),
//! `scores` is `[H, T, L]` with `L ≥ start + T` the row length (normally `L = start + T`).
//! Grouped-query attention: query head `h` reads KV head `h / (H / Hkv)`; `H` must be a
//! multiple of `Hkv`. `dtype` is the element type of the K cache; arithmetic is f32.
//!
//! Launch geometry, chosen for simplicity: one thread per score (`p` fastest), each a `D`-long
//! dot product. Floor: read `L·Hkv·D·size` bytes of K cache and write `H·T·L·4` bytes of
//! scores; this kernel re-reads each K row `H/Hkv · T` times (from cache) and its loads across
//! a wave are `Hkv·D` apart (one row per thread), so it is well off that floor — a
//! flash-attention kernel that keeps scores on chip replaces it.
//!
//! Arguments, in order: `q: &[f32]` (at least `T·H·D`), `k_cache: &[T]` (at least `L·Hkv·D`),
//! `scores: &mut [f32]` (at least `H·T·L`), `tokens: u32` (T), `heads: u32` (H),
//! `kv_heads: u32` (Hkv), `head_dim: u32` (D), `start: u32`, `len: u32` (L), `scale: f32`
//! (normally `1/√D`). Launch with [`launch`].

use crate::config::{block_param, dtype_param};
use crate::problem::{blocks_for, linear, Expected, Inputs, Problem, ProblemArg, Tolerance};
use crate::{dispatch, Config, KernelSpec, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::{Buffer, LaunchDims};
use greta_dsl::ir::{Const, Kernel, Scalar};
use greta_dsl::prelude::*;
use greta_dsl::Target;

#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn attn_scores<T: Float>(
    q: &[f32],
    k_cache: &[T],
    scores: &mut [f32],
    tokens: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    start: u32,
    len: u32,
    scale: f32,
    #[comptime] block: u32,
) {
    block_size(block);
    let i = block_idx().x * block + thread_idx().x;
    if i < heads * tokens * len {
        let p = i % len;
        let ht = i / len;
        let t = ht % tokens;
        let h = ht / tokens;
        if p <= start + t {
            let kvh = h / (heads / kv_heads);
            let qb = (t * heads + h) * head_dim;
            let kb = (p * kv_heads + kvh) * head_dim;
            let mut acc = 0.0f32;
            for d in 0..head_dim {
                acc = fma(q[qb + d], k_cache[kb + d].to_f32(), acc);
            }
            scores[i] = acc * scale;
        } else {
            scores[i] = f32::NEG_INFINITY;
        }
    }
}

/// The shape of an attention problem: `tokens, heads, kv_heads, head_dim, start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnShape {
    pub tokens: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub start: usize,
}

impl AttnShape {
    pub(crate) fn parse(
        kernel: &'static str,
        shape: &[u32],
        expected: &'static str,
    ) -> Result<AttnShape, ProblemError> {
        match *shape {
            [t, h, hkv, d, start] if t > 0 && hkv > 0 && d > 0 && h > 0 && h % hkv == 0 => {
                Ok(AttnShape {
                    tokens: t as usize,
                    heads: h as usize,
                    kv_heads: hkv as usize,
                    head_dim: d as usize,
                    start: start as usize,
                })
            }
            _ => Err(ProblemError::Shape {
                kernel,
                shape: shape.to_vec(),
                expected,
            }),
        }
    }

    /// `L = start + T`, the used length of the cache.
    pub fn used_len(&self) -> usize {
        self.start + self.tokens
    }

    /// Cache rows query row `t` sees (causal): `0..=start + t`.
    pub fn keys(&self, t: usize) -> usize {
        self.start + t + 1
    }

    /// The K/V head query head `h` reads.
    pub fn kv_head(&self, h: usize) -> usize {
        h / (self.heads / self.kv_heads)
    }
}

/// The plain-Rust reference, in f64: `[H, T, L]` scores, `-inf` where masked.
pub fn reference(q: &[f64], k: &[f64], s: AttnShape, scale: f64) -> Vec<f64> {
    let (t_n, h_n, hkv, d_n, l_n) = (s.tokens, s.heads, s.kv_heads, s.head_dim, s.used_len());
    let mut out = vec![f64::NEG_INFINITY; h_n * t_n * l_n];
    for h in 0..h_n {
        let kvh = h / (h_n / hkv);
        for t in 0..t_n {
            for p in 0..=(s.start + t) {
                let dot: f64 = (0..d_n)
                    .map(|d| q[(t * h_n + h) * d_n + d] * k[(p * hkv + kvh) * d_n + d])
                    .sum();
                out[(h * t_n + t) * l_n + p] = dot * scale;
            }
        }
    }
    out
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    dispatch!(cfg, target, attn_scores, T; cfg.u32("block"))
}

/// Launch: one thread per score, `H·T·L` of them.
pub fn launch(cfg: &Config, heads: u32, tokens: u32, len: u32) -> LaunchDims {
    let n = heads as u64 * tokens as u64 * len as u64;
    linear(blocks_for(n, cfg.u32("block") as u64), cfg.u32("block"))
}

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    let s = AttnShape::parse("attn_scores", shape, SPEC.shape)?;
    let dtype = cfg.dtype("dtype");
    let l = s.used_len();
    // A cache with spare capacity past L, as the model's is.
    let capacity = l + 3;
    let (qb, q) = inputs.uniform(Scalar::F32, s.tokens * s.heads * s.head_dim, -1.0, 1.0);
    let (kb, k) = inputs.uniform(dtype, capacity * s.kv_heads * s.head_dim, -1.0, 1.0);
    let scale = 1.0 / (s.head_dim as f32).sqrt();
    let n = s.heads * s.tokens * l;
    Ok(Problem {
        config: cfg.clone(),
        kernel: build(cfg, target)?,
        dims: launch(cfg, s.heads as u32, s.tokens as u32, l as u32),
        args: vec![
            ProblemArg::Buffer(qb),
            ProblemArg::Buffer(kb),
            ProblemArg::Buffer(Buffer::F32(vec![0.0; n])),
            ProblemArg::Value(Const::U32(s.tokens as u32)),
            ProblemArg::Value(Const::U32(s.heads as u32)),
            ProblemArg::Value(Const::U32(s.kv_heads as u32)),
            ProblemArg::Value(Const::U32(s.head_dim as u32)),
            ProblemArg::Value(Const::U32(s.start as u32)),
            ProblemArg::Value(Const::U32(l as u32)),
            ProblemArg::Value(Const::F32(scale)),
        ],
        expected: vec![Expected {
            arg: 2,
            values: reference(&q, &k, s, scale as f64),
            tolerance: Tolerance {
                abs: 1e-6 * s.head_dim as f64,
                rel: 1e-5,
            },
        }],
        min_bytes: (l * s.kv_heads * s.head_dim * dtype.size_bytes() as usize
            + 4 * (s.tokens * s.heads * s.head_dim + n)) as u64,
        flops: 2 * (n * s.head_dim) as u64,
    })
}

pub static SPEC: KernelSpec = KernelSpec {
    name: "attn_scores",
    summary: "causal q·kᵀ·scale against a KV cache (GQA), -inf above the diagonal",
    params: &[
        dtype_param(Scalar::F32, "element type of the K cache"),
        block_param(256),
    ],
    shape: "tokens,heads,kv_heads,head_dim,start",
    test_shapes: &[
        &[1, 1, 1, 1, 0],
        &[1, 8, 4, 8, 5],
        &[3, 8, 4, 8, 0],
        &[4, 8, 4, 8, 6],
        &[2, 4, 1, 12, 3],
        &[5, 6, 6, 7, 2],
    ],
    bench_shape: &[1, 32, 8, 128, 4095],
    build,
    problem,
    available: crate::everywhere,
};
