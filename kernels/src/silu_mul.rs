//! SwiGLU's gate: `out = silu(gate) * up` with `silu(g) = g / (1 + e^-g)`, elementwise.
//!
//! Floor: read gate and up, write out: `3·n·size` bytes. Same shape as [`crate::add`]: one
//! 16-byte vector per operand per thread, a scalar loop for the tail.

use crate::config::{block_param, DTYPE, VEC};
use crate::elementwise::Binary;
use crate::problem::{Inputs, Problem};
use crate::{check_vec_width, dispatch, Config, KernelSpec, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::LaunchDims;
use greta_dsl::ir::Kernel;
use greta_dsl::prelude::*;
use greta_dsl::Target;

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

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    check_vec_width("silu_mul", cfg)?;
    dispatch!(cfg, target, silu_mul, T, V; cfg.u32("block"))
}

/// Launch: one thread per `vec` elements.
pub fn launch(cfg: &Config, n: u32) -> LaunchDims {
    crate::elementwise::launch(cfg, n)
}

const PROBLEM: Binary = Binary {
    kernel: "silu_mul",
    shape_doc: "n, or rows,cols",
    build,
    ranges: [(-8.0, 8.0), (-2.0, 2.0)],
    reference,
    f32_rel: 4e-6,
};

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    PROBLEM.problem(cfg, target, shape, inputs)
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
    available: crate::everywhere,
};
