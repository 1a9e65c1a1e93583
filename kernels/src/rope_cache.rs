//! RoPE fused with the KV-cache write: one launch takes a segment's queries, keys and values
//! as their projection wrote them (f32) and writes the rotated queries (f32, for attention),
//! the rotated keys and the values into the KV cache (its type `T`) at the segment's position —
//! what `rope` (queries), `rope` (keys) and two `copy` launches did, with the keys' f32
//! intermediate gone: one read of each input and one write of each output, the same roundings
//! (RoPE in f32, one rounding into the cache), so the results are bit-identical to the
//! unfused launches.
//!
//! The position comes from device memory (`start[0]`: the segment's first token's position), not
//! a launch argument, so that a decode step's launches are the same from step to step and a
//! captured graph of them serves every step (see greta-runtime's `Graph`).
//!
//! Arguments, in order: `q: &[f32]` `[T, H, D]`, `k: &[f32]`, `v: &[f32]` `[T, Hkv, D]`,
//! `qr: &mut [f32]` `[T, H, D]`, `k_cache: &mut [T]`, `v_cache: &mut [T]` (`[≥ start + T, Hkv,
//! D]`; rows outside `start..start + T` are not touched), `start: &[u32]` (one element),
//! `tokens`, `heads`, `kv_heads`, `head_dim`, `rot_dims: u32`, `freq_base: f32`. Threads
//! `0..T·(H + Hkv)/heads_per_thread·groups` rotate (each [`crate::rope::rope_rows`] over
//! `heads_per_thread` heads of one token, all queries or all keys: the host fits
//! `heads_per_thread` to divide both head counts), the next `T·Hkv·D/vec` copy a vector of
//! values each. Floor: read q, k, v and write qr, the keys and values once.

use crate::config::{block_param, u32_param, ParamDef};
use crate::flash::KV_DTYPE;
use crate::problem::{blocks_for, linear, zeros, Expected, Inputs, Problem, ProblemArg, Tolerance};
use crate::rope::rope_rows;
use crate::{dispatch, Config, KernelSpec, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::{Buffer, LaunchDims};
use greta_dsl::ir::{Const, Kernel, Scalar};
use greta_dsl::prelude::*;
use greta_dsl::Target;

#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn rope_cache<T: Float, const V: usize>(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    qr: &mut [f32],
    k_cache: &mut [T],
    v_cache: &mut [T],
    start: &[u32],
    tokens: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    rot_dims: u32,
    freq_base: f32,
    #[comptime] neox: bool,
    #[comptime] heads_per_thread: u32,
    #[comptime] block: u32,
) {
    block_size(block);
    #[comptime]
    let vec = V as u32;
    let groups = head_dim / (2u32 * vec);
    let q_chunks = heads / heads_per_thread;
    let head_chunks = q_chunks + kv_heads / heads_per_thread;
    let rotating = tokens * head_chunks * groups;
    let item = block_idx().x * block + thread_idx().x;
    let fits = head_dim % (2u32 * vec) == 0u32
        && rot_dims % (2u32 * vec) == 0u32
        && heads % heads_per_thread == 0u32
        && kv_heads % heads_per_thread == 0u32;
    let pos0 = start[0u32];
    if item < rotating && fits {
        let g = item % groups;
        let chunk = item / groups;
        let token = chunk / head_chunks;
        let c = chunk % head_chunks;
        let position = pos0 + token;
        if c < q_chunks {
            let row = token * heads + c * heads_per_thread;
            rope_rows::<f32, f32, V>(
                q,
                qr,
                row,
                row,
                g,
                position,
                head_dim,
                rot_dims,
                freq_base,
                neox,
                heads_per_thread,
            );
        } else {
            let kh = (c - q_chunks) * heads_per_thread;
            rope_rows::<f32, T, V>(
                k,
                k_cache,
                token * kv_heads + kh,
                position * kv_heads + kh,
                g,
                position,
                head_dim,
                rot_dims,
                freq_base,
                neox,
                heads_per_thread,
            );
        }
    } else if fits {
        // The values: one vector each, row for row into the cache.
        let i = (item - rotating) * vec;
        let row_len = kv_heads * head_dim;
        if i < tokens * row_len {
            let at = pos0 * row_len + i;
            vstore::<V, _>(&v_cache, at, vload::<V, _>(&v, i).cast::<T>());
        }
    }
}

/// The configuration fitted to a model's heads: [`crate::rope::fit`]'s vector width and a
/// `heads_per_thread` that divides both head counts (a thread's heads are all queries or all
/// keys).
pub fn fit(cfg: &Config, heads: u32, kv_heads: u32, head_dim: u32, rot_dims: u32) -> Config {
    crate::rope::fit(cfg, gcd(heads, kv_heads), head_dim, rot_dims)
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Launch: the rotating threads, then a thread per vector of values (`cfg` fitted with
/// [`fit`]).
pub fn launch(cfg: &Config, tokens: u32, heads: u32, kv_heads: u32, head_dim: u32) -> LaunchDims {
    let (vec, hpt) = (cfg.u32("vec") as u64, cfg.u32("heads_per_thread") as u64);
    let (t, d) = (tokens as u64, head_dim as u64);
    let rotating = t * ((heads + kv_heads) as u64 / hpt) * (d / (2 * vec));
    let copying = t * kv_heads as u64 * d / vec;
    linear(
        blocks_for(rotating + copying, cfg.u32("block") as u64),
        cfg.u32("block"),
    )
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    // The vectors are f32 loads (at most 16 bytes: vec ≤ 4).
    if cfg.u32("vec") > 4 {
        return Err(BuildError::Invalid {
            kernel: "rope_cache".into(),
            message: format!(
                "vec={} of f32 is {} bytes; one access moves at most 16",
                cfg.u32("vec"),
                4 * cfg.u32("vec")
            ),
        });
    }
    let (neox, hpt, block) = (
        cfg.bool("neox"),
        cfg.u32("heads_per_thread"),
        cfg.u32("block"),
    );
    dispatch!(cfg, target, rope_cache, T, V; neox, hpt, block)
}

/// The shape `tokens,heads,kv_heads,head_dim,start[,rot_dims]`.
fn parse(shape: &[u32]) -> Option<(u32, u32, u32, u32, u32, u32)> {
    let (t, h, kvh, d, start, rot) = match *shape {
        [t, h, kvh, d, start] => (t, h, kvh, d, start, d),
        [t, h, kvh, d, start, rot] => (t, h, kvh, d, start, rot),
        _ => return None,
    };
    let ok = t > 0
        && kvh > 0
        && h % kvh == 0
        && d > 0
        && d % 2 == 0
        && rot > 0
        && rot % 2 == 0
        && rot <= d;
    ok.then_some((t, h, kvh, d, start, rot))
}

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    let (tokens, heads, kv_heads, head_dim, start, rot_dims) =
        parse(shape).ok_or_else(|| ProblemError::Shape {
            kernel: "rope_cache",
            shape: shape.to_vec(),
            expected: SPEC.shape,
        })?;
    let cfg = &fit(cfg, heads, kv_heads, head_dim, rot_dims);
    let dtype = cfg.dtype("dtype");
    let (t, d) = (tokens as usize, head_dim as usize);
    let (nq, nkv) = (t * heads as usize * d, t * kv_heads as usize * d);
    let row = kv_heads as usize * d;
    // The cache holds one row past the segment too: rows outside it must come back unchanged.
    let cache_len = (start as usize + t + 1) * row;
    let base = 10000.0f32;
    let (qb, q) = inputs.uniform(Scalar::F32, nq, -1.0, 1.0);
    let (kb, k) = inputs.uniform(Scalar::F32, nkv, -1.0, 1.0);
    let (vb, v) = inputs.uniform(Scalar::F32, nkv, -1.0, 1.0);
    let (kcb, mut k_cache) = inputs.uniform(dtype, cache_len, -1.0, 1.0);
    let (vcb, mut v_cache) = inputs.uniform(dtype, cache_len, -1.0, 1.0);
    let neox = cfg.bool("neox");
    let rope = |x: &[f64], heads: u32| {
        let (h, r) = (heads as usize, rot_dims as usize);
        crate::rope::reference(x, t, h, d, r, start as usize, base as f64, neox)
    };
    let qr = rope(&q, heads);
    let at = start as usize * row;
    k_cache[at..at + nkv].copy_from_slice(&rope(&k, kv_heads));
    v_cache[at..at + nkv].copy_from_slice(&v);
    // θ is computed in f32 as on GPUs: its rounding grows with the position (|θ| ≤ pos).
    let theta_err = (start + tokens) as f64 * 2.0 * f32::EPSILON as f64;
    let u = |x: u32| ProblemArg::Value(Const::U32(x));
    let expect = |arg: usize, values: Vec<f64>, ty: Scalar| Expected {
        arg,
        values,
        tolerance: Tolerance::for_dtype(ty, 1e-5 + theta_err),
    };
    Ok(Problem {
        config: cfg.clone(),
        kernel: build(cfg, target)?,
        dims: launch(cfg, tokens, heads, kv_heads, head_dim),
        args: vec![
            ProblemArg::Buffer(qb),
            ProblemArg::Buffer(kb),
            ProblemArg::Buffer(vb),
            ProblemArg::Buffer(zeros(Scalar::F32, nq)),
            ProblemArg::Buffer(kcb),
            ProblemArg::Buffer(vcb),
            ProblemArg::Buffer(Buffer::U32(vec![start])),
            u(tokens),
            u(heads),
            u(kv_heads),
            u(head_dim),
            u(rot_dims),
            ProblemArg::Value(Const::F32(base)),
        ],
        expected: vec![
            expect(3, qr, Scalar::F32),
            expect(4, k_cache, dtype),
            expect(5, v_cache, dtype),
        ],
        min_bytes: (4 * (2 * nq + 2 * nkv) + 2 * nkv * dtype.size_bytes() as usize) as u64,
        flops: 0,
    })
}

const VEC: ParamDef = u32_param(
    "vec",
    &[1, 2, 4],
    4,
    "f32 elements per access of the queries, keys and values",
);

pub static SPEC: KernelSpec = KernelSpec {
    name: "rope_cache",
    summary: "RoPE of queries and keys, keys and values into the KV cache at a position in memory",
    params: &[
        KV_DTYPE,
        block_param(256),
        VEC,
        crate::rope::HEADS_PER_THREAD,
        crate::rope::NEOX,
    ],
    shape: "tokens,heads,kv_heads,head_dim,start[,rot_dims]",
    test_shapes: &[
        &[1, 1, 1, 2, 0],
        &[1, 8, 4, 8, 5],
        &[3, 4, 4, 172, 9],
        &[2, 6, 2, 64, 3, 32],
        &[1, 32, 8, 128, 300],
        &[4, 8, 8, 96, 1, 48],
    ],
    bench_shape: &[1, 32, 32, 128, 4095],
    build,
    problem,
    available: crate::everywhere,
};

#[cfg(test)]
mod tests {
    use super::*;
    use greta_dsl::ir::ConfigValue;

    /// The head counts are fitted so that a thread's heads are all queries or all keys.
    #[test]
    fn heads_per_thread_divides_both_head_counts() {
        let cfg = SPEC
            .default_config()
            .with("heads_per_thread", ConfigValue::U32(8));
        assert_eq!(fit(&cfg, 32, 8, 128, 128).u32("heads_per_thread"), 8);
        assert_eq!(fit(&cfg, 12, 4, 128, 128).u32("heads_per_thread"), 4);
        assert_eq!(fit(&cfg, 6, 2, 64, 64).u32("heads_per_thread"), 2);
        assert_eq!(fit(&cfg, 7, 7, 64, 64).u32("heads_per_thread"), 1);
    }
}
