//! Embedding lookup: `out[t, :] = table[ids[t], :]`, one block per token, converting the
//! table's `T` (f16/bf16/f32) to the f32 activations the model computes in (exactly).
//!
//! Token ids are not checked here (a GPU kernel has no way to report them): the model checks
//! every id against the vocabulary before launching; the interpreter reports an out-of-range
//! row as an out-of-bounds load. Floor: read the rows and write them,
//! `tokens·dim·(size + 4)` bytes.
//!
//! Arguments, in order: `table: &[T]` (at least `vocab·dim`), `ids: &[u32]` (at least `tokens`),
//! `out: &mut [f32]` (at least `tokens·dim`), `dim: u32`. Launch with [`launch`].

use crate::config::{block_param, DTYPE, VEC};
use crate::problem::{linear, Expected, Inputs, Problem, ProblemArg, Tolerance};
use crate::{check_vec_width, dispatch, Config, KernelSpec, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::{Buffer, LaunchDims};
use greta_dsl::ir::{Const, Kernel};
use greta_dsl::prelude::*;
use greta_dsl::Target;

#[kernel]
pub fn embedding<T: Float, const V: usize>(
    table: &[T],
    ids: &[u32],
    out: &mut [f32],
    dim: u32,
    #[comptime] block: u32,
) {
    block_size(block);
    #[comptime]
    let v = V as u32;
    let t = block_idx().x;
    let src = ids[t] * dim;
    let dst = t * dim;
    if dim % v == 0 {
        for c in (thread_idx().x * v..dim).step_by(block * v) {
            vstore::<V, _>(&out, dst + c, vload::<V, _>(&table, src + c).to_f32());
        }
    } else {
        for c in (thread_idx().x..dim).step_by(block) {
            out[dst + c] = table[src + c].to_f32();
        }
    }
}

pub fn reference(table: &[f64], ids: &[u32], dim: usize) -> Vec<f64> {
    ids.iter()
        .flat_map(|&id| {
            table[id as usize * dim..(id as usize + 1) * dim]
                .iter()
                .copied()
        })
        .collect()
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    check_vec_width("embedding", cfg)?;
    dispatch!(cfg, target, embedding, T, V; cfg.u32("block"))
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
            kernel: "embedding",
            shape: shape.to_vec(),
            expected: SPEC.shape,
        });
    };
    if tokens == 0 || vocab == 0 || dim == 0 {
        return Err(ProblemError::Shape {
            kernel: "embedding",
            shape: shape.to_vec(),
            expected: SPEC.shape,
        });
    }
    let dtype = cfg.dtype("dtype");
    let (tb, table) = inputs.uniform(dtype, (vocab * dim) as usize, -1.0, 1.0);
    let ids = inputs.indices(tokens as usize, vocab);
    let want = reference(&table, &ids, dim as usize);
    let n = (tokens * dim) as usize;
    Ok(Problem {
        config: cfg.clone(),
        kernel: build(cfg, target)?,
        dims: launch(cfg, tokens),
        args: vec![
            ProblemArg::Buffer(tb),
            ProblemArg::Buffer(Buffer::U32(ids)),
            ProblemArg::Buffer(Buffer::F32(vec![0.0; n])),
            ProblemArg::Value(Const::U32(dim)),
        ],
        // A conversion to f32 is exact.
        expected: vec![Expected {
            arg: 2,
            values: want,
            tolerance: Tolerance { abs: 0.0, rel: 0.0 },
        }],
        min_bytes: n as u64 * (dtype.size_bytes() as u64 + 4) + 4 * tokens as u64,
        flops: 0,
    })
}

pub static SPEC: KernelSpec = KernelSpec {
    name: "embedding",
    summary: "out[t] = f32(table[ids[t]]) (row gather)",
    params: &[DTYPE, block_param(256), VEC],
    shape: "tokens,vocab,dim",
    test_shapes: &[
        &[1, 1, 1],
        &[7, 5, 7],
        &[3, 11, 172],
        &[2, 3, 4097],
        &[9, 100, 64],
    ],
    bench_shape: &[4096, 8192, 4096],
    build,
    problem,
    available: crate::everywhere,
};
