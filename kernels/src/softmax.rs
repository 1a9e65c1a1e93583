//! Row-wise softmax, numerically stable: `y = exp(x - max) / Σ exp(x - max)`, one block per
//! row, f32 arithmetic, `exp` as `exp2(x · log2 e)`.
//!
//! Rows may hold `-inf` (masked attention scores): they come out as exactly 0, as long as each
//! row has one finite entry (a row of only `-inf` would be NaN: `-inf - -inf`).
//!
//! Floor: read x twice (the second from L2 for rows that fit) and write y: `2·rows·cols·size`
//! bytes at best.

use crate::config::{block_param, DTYPE};
use crate::helpers::{block_max, block_sum};
use crate::problem::{from_f64, linear, zeros, Expected, Inputs, Problem, ProblemArg, Tolerance};
use crate::{dispatch, Config, KernelSpec, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::LaunchDims;
use greta_dsl::ir::{Const, Kernel};
use greta_dsl::prelude::*;
use greta_dsl::Target;

#[kernel]
pub fn softmax<T: Float>(x: &[T], y: &mut [T], cols: u32, #[comptime] block: u32) {
    block_size(block);
    let base = block_idx().x * cols;
    let tid = thread_idx().x;
    let mut m = f32::NEG_INFINITY;
    for c in (tid..cols).step_by(block) {
        m = max(m, x[base + c].to_f32());
    }
    let row_max = block_max(m, block);
    let mut s = 0.0f32;
    for c in (tid..cols).step_by(block) {
        s += exp2((x[base + c].to_f32() - row_max) * std::f32::consts::LOG2_E);
    }
    let inv = 1.0f32 / block_sum(s, block);
    for c in (tid..cols).step_by(block) {
        y[base + c] =
            T::from_f32(exp2((x[base + c].to_f32() - row_max) * std::f32::consts::LOG2_E) * inv);
    }
}

pub fn reference(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut y = vec![0.0; rows * cols];
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|v| (v - m).exp()).sum();
        for c in 0..cols {
            y[r * cols + c] = (row[c] - m).exp() / sum;
        }
    }
    y
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    dispatch!(cfg, target, softmax, T; cfg.u32("block"))
}

/// Launch: one block per row.
pub fn launch(cfg: &Config, rows: u32) -> LaunchDims {
    linear(rows, cfg.u32("block"))
}

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    let (rows, cols, causal) = match *shape {
        [rows, cols] => (rows, cols, false),
        [rows, cols, causal] if rows <= cols => (rows, cols, causal != 0),
        _ => {
            return Err(ProblemError::Shape {
                kernel: "softmax",
                shape: shape.to_vec(),
                expected: SPEC.shape,
            })
        }
    };
    if rows == 0 || cols == 0 {
        return Err(ProblemError::Shape {
            kernel: "softmax",
            shape: shape.to_vec(),
            expected: SPEC.shape,
        });
    }
    let dtype = cfg.dtype("dtype");
    let n = (rows * cols) as usize;
    let (_, mut x) = inputs.uniform(dtype, n, -10.0, 10.0);
    if causal {
        // Attention's mask: row r (token r of the last `rows`) sees columns 0..=cols-rows+r.
        for r in 0..rows as usize {
            for c in (cols - rows) as usize + r + 1..cols as usize {
                x[r * cols as usize + c] = f64::NEG_INFINITY;
            }
        }
    }
    let xb = from_f64(dtype, &x);
    let want = reference(&x, rows as usize, cols as usize);
    Ok(Problem {
        config: cfg.clone(),
        kernel: build(cfg, target)?,
        dims: launch(cfg, rows),
        args: vec![
            ProblemArg::Buffer(xb),
            ProblemArg::Buffer(zeros(dtype, n)),
            ProblemArg::Value(Const::U32(cols)),
        ],
        expected: vec![Expected {
            arg: 1,
            values: want,
            tolerance: Tolerance::for_dtype(dtype, 1e-5),
        }],
        min_bytes: 2 * n as u64 * dtype.size_bytes() as u64,
        flops: 0,
    })
}

pub static SPEC: KernelSpec = KernelSpec {
    name: "softmax",
    summary: "row-wise numerically stable softmax",
    params: &[DTYPE, block_param(256)],
    shape: "rows,cols[,causal]",
    test_shapes: &[
        &[1, 1],
        &[3, 7],
        &[2, 172],
        &[2, 4097],
        &[4, 4096],
        &[5, 9, 1],
        &[3, 300, 1],
    ],
    bench_shape: &[4096, 4096],
    build,
    problem,
    available: crate::everywhere,
};
