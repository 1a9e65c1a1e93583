//! Embedding lookup from a Q8_0 table: `out[t, c] = d[ids[t], c/32] · q[ids[t], c]`, the table
//! given as the scales and packed quants of [`crate::q8`]; one block per token, one quant word
//! (4 values, one 4-wide store) per thread and step. `dim` must be a multiple of 32 (a launch
//! with another `dim` writes nothing). Token ids are not checked (see [`crate::embedding`]).
//!
//! `dtype` is the element type of `out` (the model's activations are f32, the default).
//!
//! Floor: read the rows (`tokens·dim·34/32` bytes) and write them (`tokens·dim·size`).
//!
//! Arguments, in order: `scales: &[f16]` (at least `vocab·dim/32`), `quants: &[u32]` (at least
//! `vocab·dim/4`), `ids: &[u32]` (at least `tokens`), `out: &mut [T]` (at least `tokens·dim`),
//! `dim: u32`. Launch with [`launch`].

use crate::config::{block_param, dtype_param};
use crate::problem::{linear, zeros, Expected, Inputs, Problem, ProblemArg, Tolerance};
use crate::q8::{quant, QK8_0};
use crate::{dispatch, Config, KernelSpec, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::{Buffer, LaunchDims};
use greta_dsl::ir::{Const, Kernel, Scalar};
use greta_dsl::prelude::*;
use greta_dsl::Target;
use half::f16;

#[kernel]
pub fn embedding_q8<T: Float>(
    scales: &[f16],
    quants: &[u32],
    ids: &[u32],
    out: &mut [T],
    dim: u32,
    #[comptime] block: u32,
) {
    block_size(block);
    let t = block_idx().x;
    let words = dim / 4u32;
    let src = ids[t] * words;
    let dst = t * dim;
    if dim % 32u32 == 0u32 {
        for i in (thread_idx().x..words).step_by(block) {
            let word = quants[src + i];
            let d = scales[(src + i) / 8u32].to_f32();
            let v = Val::<Vector<f32, 4>>::from_lanes([
                quant(word, 0u32) * d,
                quant(word, 1u32) * d,
                quant(word, 2u32) * d,
                quant(word, 3u32) * d,
            ]);
            vstore::<4, _>(&out, dst + 4u32 * i, v.cast::<T>());
        }
    }
}

/// The plain-Rust reference: the dequantised table (`vocab × dim`, f64) gathered by `ids`.
pub fn reference(table: &[f64], ids: &[u32], dim: usize) -> Vec<f64> {
    crate::embedding::reference(table, ids, dim)
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    dispatch!(cfg, target, embedding_q8, T; cfg.u32("block"))
}

/// Launch: one block per token.
pub fn launch(cfg: &Config, tokens: u32) -> LaunchDims {
    linear(tokens, cfg.u32("block"))
}

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    let &[tokens, vocab, dim] = shape else {
        return Err(ProblemError::Shape {
            kernel: "embedding_q8",
            shape: shape.to_vec(),
            expected: SPEC.shape,
        });
    };
    if tokens == 0 || vocab == 0 || dim == 0 || dim % QK8_0 as u32 != 0 {
        return Err(ProblemError::Shape {
            kernel: "embedding_q8",
            shape: shape.to_vec(),
            expected: SPEC.shape,
        });
    }
    let dtype = cfg.dtype("dtype");
    let (scales, quants, table) =
        crate::q8::random(inputs, vocab as usize, dim as usize, -1.0, 1.0);
    let ids = inputs.indices(tokens as usize, vocab);
    let want = reference(&table, &ids, dim as usize);
    let n = (tokens * dim) as usize;
    Ok(Problem {
        config: cfg.clone(),
        kernel: build(cfg, target)?,
        dims: launch(cfg, tokens),
        args: vec![
            ProblemArg::Buffer(Buffer::F16(scales)),
            ProblemArg::Buffer(Buffer::U32(quants)),
            ProblemArg::Buffer(Buffer::U32(ids)),
            ProblemArg::Buffer(zeros(dtype, n)),
            ProblemArg::Value(Const::U32(dim)),
        ],
        // d · q is one f32 rounding (then one to the output type).
        expected: vec![Expected {
            arg: 3,
            values: want,
            tolerance: Tolerance::for_dtype(dtype, 1e-7),
        }],
        min_bytes: (n / QK8_0 * 34 + n * dtype.size_bytes() as usize + 4 * tokens as usize) as u64,
        flops: 0,
    })
}

pub static SPEC: KernelSpec = KernelSpec {
    name: "embedding_q8",
    summary: "out[t] = dequant(table[ids[t]]) from a Q8_0 table",
    params: &[
        dtype_param(Scalar::F32, "element type of the output rows"),
        block_param(256),
    ],
    shape: "tokens,vocab,dim (dim a multiple of 32)",
    test_shapes: &[&[1, 1, 32], &[7, 5, 96], &[3, 11, 4096], &[9, 100, 64]],
    bench_shape: &[4096, 8192, 4096],
    build,
    problem,
    available: crate::everywhere,
};
