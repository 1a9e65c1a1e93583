//! Copy into an offset: `y[dst_offset + i] = x[i]` for `i < n`, converting the f32 source to
//! the destination's `T`. The model appends a step's new K and V rows to its caches with it
//! (`x` = the new `[tokens, kv_heads, head_dim]` rows, `dst_offset = start·kv_heads·head_dim`).
//!
//! Each thread moves `vec` elements with one wide load and store when the destination offset is
//! a multiple of `vec` (else element by element); the last partial vector is done element by
//! element. Floor: `n·(4 + size(T))` bytes.
//!
//! `dtype` is the element type of `y` (an f32 or an f16/bf16 KV cache).
//!
//! Arguments, in order: `x: &[f32]` (at least `n`), `y: &mut [T]` (at least `dst_offset + n`),
//! `n: u32`, `dst_offset: u32`. Launch with [`launch`].

use crate::config::{block_param, dtype_param, u32_param};
use crate::problem::{
    blocks_for, from_f64, linear, Expected, Inputs, Problem, ProblemArg, Tolerance,
};
use crate::{dispatch, Config, KernelSpec, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::LaunchDims;
use greta_dsl::ir::{Const, Kernel, Scalar};
use greta_dsl::prelude::*;
use greta_dsl::Target;

#[kernel]
pub fn copy<T: Float, const V: usize>(
    x: &[f32],
    y: &mut [T],
    n: u32,
    dst_offset: u32,
    #[comptime] block: u32,
) {
    block_size(block);
    #[comptime]
    let v = V as u32;
    let i = (block_idx().x * block + thread_idx().x) * v;
    if i + v <= n && dst_offset % v == 0u32 {
        vstore::<V, _>(&y, dst_offset + i, vload::<V, _>(&x, i).cast::<T>());
    } else {
        for e in i..min(i + v, n) {
            y[dst_offset + e] = T::from_f32(x[e]);
        }
    }
}

/// The plain-Rust reference: `y` (initially `before`) with `x` written at `dst_offset`.
pub fn reference(before: &[f64], x: &[f64], dst_offset: usize) -> Vec<f64> {
    let mut y = before.to_vec();
    y[dst_offset..dst_offset + x.len()].copy_from_slice(x);
    y
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    dispatch!(cfg, target, copy, T, V; cfg.u32("block"))
}

/// Launch: one thread per `vec` elements.
pub fn launch(cfg: &Config, n: u32) -> LaunchDims {
    let per_block = cfg.u32("block") as u64 * cfg.u32("vec") as u64;
    linear(blocks_for(n as u64, per_block), cfg.u32("block"))
}

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    let (n, offset) = match *shape {
        [n] if n > 0 => (n, 0),
        [n, offset] if n > 0 => (n, offset),
        _ => {
            return Err(ProblemError::Shape {
                kernel: "copy",
                shape: shape.to_vec(),
                expected: SPEC.shape,
            })
        }
    };
    let dtype = cfg.dtype("dtype");
    let total = (offset + n + 3) as usize;
    // The source is rounded to the destination type first, so that the copy is exact.
    let (_, x) = inputs.uniform(dtype, n as usize, -4.0, 4.0);
    let (yb, before) = inputs.uniform(dtype, total, -4.0, 4.0);
    Ok(Problem {
        config: cfg.clone(),
        kernel: build(cfg, target)?,
        dims: launch(cfg, n),
        args: vec![
            ProblemArg::Buffer(from_f64(Scalar::F32, &x)),
            ProblemArg::Buffer(yb),
            ProblemArg::Value(Const::U32(n)),
            ProblemArg::Value(Const::U32(offset)),
        ],
        expected: vec![Expected {
            arg: 1,
            values: reference(&before, &x, offset as usize),
            tolerance: Tolerance { abs: 0.0, rel: 0.0 },
        }],
        min_bytes: n as u64 * (4 + dtype.size_bytes() as u64),
        flops: 0,
    })
}

pub static SPEC: KernelSpec = KernelSpec {
    name: "copy",
    summary: "y[dst_offset..][..n] = x (f32 to T; appends to KV caches)",
    params: &[
        dtype_param(Scalar::F32, "element type of the destination y"),
        block_param(256),
        u32_param(
            "vec",
            &[1, 2, 4],
            4,
            "elements per global memory access (vector width)",
        ),
    ],
    shape: "n or n,dst_offset",
    test_shapes: &[
        &[1],
        &[7, 3],
        &[172, 8],
        &[4097, 4096],
        &[1024, 2],
        &[3, 4096],
    ],
    bench_shape: &[1 << 24, 0],
    build,
    problem,
    available: crate::everywhere,
};
