//! Residual add: `out = a + b`, elementwise, computed in f32 and rounded once.
//!
//! Floor: read a and b, write out: `3·n·size` bytes. Each thread moves one 16-byte vector per
//! operand; the last partial vector is done element by element.

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
pub fn add<T: Float, const V: usize>(
    a: &[T],
    b: &[T],
    out: &mut [T],
    n: u32,
    #[comptime] block: u32,
) {
    block_size(block);
    #[comptime]
    let v = V as u32;
    let i = (block_idx().x * block + thread_idx().x) * v;
    if i + v <= n {
        let sum = vload::<V, _>(&a, i).to_f32() + vload::<V, _>(&b, i).to_f32();
        vstore::<V, _>(&out, i, sum.cast::<T>());
    } else {
        for k in i..n {
            out[k] = T::from_f32(a[k].to_f32() + b[k].to_f32());
        }
    }
}

pub fn reference(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    check_vec_width("add", cfg)?;
    dispatch!(cfg, target, add, T, V; cfg.u32("block"))
}

/// Launch: one thread per `vec` elements.
pub fn launch(cfg: &Config, n: u32) -> LaunchDims {
    crate::elementwise::launch(cfg, n)
}

const PROBLEM: Binary = Binary {
    kernel: "add",
    shape_doc: "n, or rows,cols",
    build,
    ranges: [(-4.0, 4.0), (-4.0, 4.0)],
    reference,
    f32_rel: 1e-7,
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
    name: "add",
    summary: "out = a + b (residual add)",
    params: &[DTYPE, block_param(256), VEC],
    shape: "n, or rows,cols",
    test_shapes: &[&[1], &[7], &[172], &[4097], &[3, 4096]],
    bench_shape: &[4096, 4096],
    build,
    problem,
    available: crate::everywhere,
};
