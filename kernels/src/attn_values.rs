//! Attention output: `out[t, h, d] = Σ_{p < L} P[h, t, p] · v_cache[p, h / (H/Hkv), d]`, with
//! `P` the softmaxed [`attn_scores`](crate::attn_scores) (`[H, T, L]`, masked positions exactly
//! 0) and `v_cache` `[C, Hkv, D]` (rows `0..L` read). `out` is `[T, H, D]` f32, the layout the
//! output projection takes as `x`. `dtype` is the element type of the V cache.
//!
//! Launch geometry, chosen for simplicity: one thread per output element (`d` fastest, so a
//! wave reads consecutive V elements of one row), each an `L`-long dot product. Floor: read
//! `L·Hkv·D·size` bytes of V cache and `H·T·L·4` of probabilities; this kernel re-reads each V
//! row `H/Hkv · T` times (from cache) and loops over masked positions too, so prefill is well
//! off that floor — a flash-attention kernel replaces it.
//!
//! Arguments, in order: `probs: &[f32]` (at least `H·T·L`), `v_cache: &[T]` (at least
//! `L·Hkv·D`), `out: &mut [f32]` (at least `T·H·D`), `tokens: u32` (T), `heads: u32` (H),
//! `kv_heads: u32` (Hkv), `head_dim: u32` (D), `len: u32` (L). Launch with [`launch`].

use crate::attn_scores::AttnShape;
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
pub fn attn_values<T: Float>(
    probs: &[f32],
    v_cache: &[T],
    out: &mut [f32],
    tokens: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    len: u32,
    #[comptime] block: u32,
) {
    block_size(block);
    let i = block_idx().x * block + thread_idx().x;
    if i < tokens * heads * head_dim {
        let d = i % head_dim;
        let th = i / head_dim;
        let h = th % heads;
        let t = th / heads;
        let kvh = h / (heads / kv_heads);
        let pb = (h * tokens + t) * len;
        let stride = kv_heads * head_dim;
        let vb = kvh * head_dim + d;
        let mut acc = 0.0f32;
        for p in 0..len {
            acc = fma(probs[pb + p], v_cache[p * stride + vb].to_f32(), acc);
        }
        out[i] = acc;
    }
}

/// The plain-Rust reference, in f64: `probs` is `[H, T, L]`, `v` is `[≥L, Hkv, D]`; returns
/// `[T, H, D]`.
pub fn reference(probs: &[f64], v: &[f64], s: AttnShape) -> Vec<f64> {
    let (t_n, h_n, hkv, d_n, l_n) = (s.tokens, s.heads, s.kv_heads, s.head_dim, s.used_len());
    let mut out = vec![0.0; t_n * h_n * d_n];
    for t in 0..t_n {
        for h in 0..h_n {
            let kvh = h / (h_n / hkv);
            for d in 0..d_n {
                out[(t * h_n + h) * d_n + d] = (0..l_n)
                    .map(|p| probs[(h * t_n + t) * l_n + p] * v[(p * hkv + kvh) * d_n + d])
                    .sum();
            }
        }
    }
    out
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    dispatch!(cfg, target, attn_values, T; cfg.u32("block"))
}

/// Launch: one thread per output element, `T·H·D` of them.
pub fn launch(cfg: &Config, tokens: u32, heads: u32, head_dim: u32) -> LaunchDims {
    let n = tokens as u64 * heads as u64 * head_dim as u64;
    linear(blocks_for(n, cfg.u32("block") as u64), cfg.u32("block"))
}

/// Causal probabilities `[H, T, L]`: rows of a softmax, 0 above the diagonal.
pub(crate) fn causal_probs(inputs: &mut Inputs, s: AttnShape) -> Vec<f64> {
    let l = s.used_len();
    let (_, raw) = inputs.uniform(Scalar::F32, s.heads * s.tokens * l, 0.0, 1.0);
    let mut probs = vec![0.0; raw.len()];
    for row in 0..s.heads * s.tokens {
        let t = row % s.tokens;
        let valid = s.start + t + 1;
        let sum: f64 = raw[row * l..row * l + valid].iter().sum();
        for p in 0..valid {
            probs[row * l + p] = ((raw[row * l + p] / sum) as f32) as f64;
        }
    }
    probs
}

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    let s = AttnShape::parse("attn_values", shape, SPEC.shape)?;
    let dtype = cfg.dtype("dtype");
    let l = s.used_len();
    let capacity = l + 3;
    let probs = causal_probs(inputs, s);
    let (vb, v) = inputs.uniform(dtype, capacity * s.kv_heads * s.head_dim, -1.0, 1.0);
    let n = s.tokens * s.heads * s.head_dim;
    Ok(Problem {
        config: cfg.clone(),
        kernel: build(cfg, target)?,
        dims: launch(cfg, s.tokens as u32, s.heads as u32, s.head_dim as u32),
        args: vec![
            ProblemArg::Buffer(Buffer::F32(probs.iter().map(|&p| p as f32).collect())),
            ProblemArg::Buffer(vb),
            ProblemArg::Buffer(Buffer::F32(vec![0.0; n])),
            ProblemArg::Value(Const::U32(s.tokens as u32)),
            ProblemArg::Value(Const::U32(s.heads as u32)),
            ProblemArg::Value(Const::U32(s.kv_heads as u32)),
            ProblemArg::Value(Const::U32(s.head_dim as u32)),
            ProblemArg::Value(Const::U32(l as u32)),
        ],
        expected: vec![Expected {
            arg: 2,
            values: reference(&probs, &v, s),
            tolerance: Tolerance {
                abs: 1e-6 * l as f64,
                rel: 1e-5,
            },
        }],
        min_bytes: (l * s.kv_heads * s.head_dim * dtype.size_bytes() as usize
            + 4 * (s.heads * s.tokens * l + n)) as u64,
        flops: 2 * (n * l) as u64,
    })
}

pub static SPEC: KernelSpec = KernelSpec {
    name: "attn_values",
    summary: "out = P · v against a KV cache (GQA)",
    params: &[
        dtype_param(Scalar::F32, "element type of the V cache"),
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
