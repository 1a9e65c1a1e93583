//! SwiGLU's gate: `out = silu(gate) * up` with `silu(g) = g / (1 + e^-g)`, elementwise.
//!
//! Floor: read gate and up, write out: `3·n·size` bytes. Same shape as [`crate::add`]: one
//! 16-byte vector per operand per thread, a scalar loop for the tail.

use crate::config::{block_param, DTYPE, VEC};
use crate::problem::{
    blocks_for, from_f64, linear, Expected, Inputs, Problem, ProblemArg, Tolerance,
};
use crate::{check_vec_width, dispatch, Config, KernelSpec, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::LaunchDims;
use greta_dsl::ir::{Const, Kernel};
use greta_dsl::prelude::*;

#[kernel]
pub fn silu_mul<T: Float, const V: usize>(
    gate: &[T],
    up: &[T],
    out: &mut [T],
    n: u32,
    #[comptime] block: u32,
) {
    block_size(block);
    #[comptime]
    let v = V as u32;
    let i = (block_idx().x * block + thread_idx().x) * v;
    if i + v <= n {
        let g = vload::<V, _>(&gate, i).to_f32();
        let u = vload::<V, _>(&up, i).to_f32();
        let one = Val::<Vector<f32, V>>::splat(1.0f32);
        let r = g / (one + (-g).exp()) * u;
        vstore::<V, _>(&out, i, r.cast::<T>());
    } else {
        for k in i..n {
            let g = gate[k].to_f32();
            out[k] = T::from_f32(g / (1.0f32 + (-g).exp()) * up[k].to_f32());
        }
    }
}

pub fn reference(gate: &[f64], up: &[f64]) -> Vec<f64> {
    gate.iter()
        .zip(up)
        .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
        .collect()
}

fn build(cfg: &Config) -> Result<Kernel, BuildError> {
    check_vec_width("silu_mul", cfg)?;
    dispatch!(cfg, silu_mul, T, V; cfg.u32("block"))
}

/// Launch: one thread per `vec` elements.
pub fn launch(cfg: &Config, n: u32) -> LaunchDims {
    let per_block = cfg.u32("block") as u64 * cfg.u32("vec") as u64;
    linear(blocks_for(n as u64, per_block), cfg.u32("block"))
}

fn problem(cfg: &Config, shape: &[u32], inputs: &mut Inputs) -> Result<Problem, ProblemError> {
    let n = crate::elementwise_len("silu_mul", shape, SPEC.shape)?;
    let dtype = cfg.dtype("dtype");
    let (gb, g) = inputs.uniform(dtype, n as usize, -8.0, 8.0);
    let (ub, u) = inputs.uniform(dtype, n as usize, -2.0, 2.0);
    Ok(Problem {
        config: cfg.clone(),
        kernel: build(cfg)?,
        dims: launch(cfg, n),
        args: vec![
            ProblemArg::Buffer(gb),
            ProblemArg::Buffer(ub),
            ProblemArg::Buffer(from_f64(dtype, &vec![0.0; n as usize])),
            ProblemArg::Value(Const::U32(n)),
        ],
        expected: vec![Expected {
            arg: 2,
            values: reference(&g, &u),
            tolerance: Tolerance::for_dtype(dtype, 4e-6),
        }],
        min_bytes: 3 * n as u64 * dtype.size_bytes() as u64,
        flops: 0,
    })
}

pub static SPEC: KernelSpec = KernelSpec {
    name: "silu_mul",
    summary: "out = silu(gate) * up (SwiGLU)",
    params: &[DTYPE, block_param(256), VEC],
    shape: "n, or rows,cols",
    test_shapes: &[&[1], &[7], &[172], &[4097], &[3, 4096]],
    bench_shape: &[4096, 4096],
    build,
    problem,
};
