//! RMSNorm: `y = x / sqrt(mean(x²) + eps) * w`, one block per row, f32 accumulation.
//!
//! Floor: it must read x and w and write y once: `2·rows·cols·size + cols·size` bytes (w is
//! reused from cache across rows). Each thread sums the squares of its strided slice with
//! `V`-wide (16-byte) loads, a block reduction combines them, and a second pass re-reads x (from
//! L2 for rows that fit) to scale it.

use crate::config::{block_param, Choices, ParamDef, DTYPE, VEC};
use crate::helpers::block_sum;
use crate::problem::{zeros, Expected, Inputs, Problem, ProblemArg, Tolerance};
use crate::{check_vec_width, dispatch, Config, KernelSpec, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::LaunchDims;
use greta_dsl::ir::{ConfigValue, Const, Kernel};
use greta_dsl::prelude::*;
use greta_dsl::Target;

/// `rows_per_block` rows share a block: their loads are in flight together and the weights are
/// loaded once for all of them. The host fits it to divide the row count ([`fit`]).
#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn rmsnorm<T: Float, const V: usize>(
    x: &[T],
    w: &[T],
    y: &mut [T],
    cols: u32,
    eps: f32,
    #[comptime] block: u32,
    #[comptime] cache: u32,
    #[comptime] rows_per_block: u32,
) {
    block_size(block);
    #[comptime]
    let v = V as u32;
    let first = block_idx().x * rows_per_block;
    let tid = thread_idx().x;
    // 16-byte accesses need every row to start on a multiple of V elements.
    let aligned = cols % v == 0u32;
    // A row that fits in the block's registers (`cache` vectors per thread) is read once.
    let cached = aligned && cols <= block * v * cache;
    let held = local_array::<f32>(u32::max(rows_per_block * cache * v, 1u32));
    // The weights too, loaded with the rows, so no load latency remains after the reduction.
    let weights = local_array::<T>(u32::max(cache * v, 1u32));
    let acc = local_array::<f32>(rows_per_block);
    if cached {
        for r in 0..rows_per_block {
            acc[r] = 0.0f32;
        }
        // Branch-free so that all loads are in flight at once: a thread past the row's end
        // reads the row's last vector (in bounds) and counts it as zero.
        for k in 0..cache {
            let c = (tid + k * block) * v;
            let at = min(c, cols - v);
            let wv = vload::<V, _>(&w, at);
            let keep = Val::<Vector<f32, V>>::splat(select(c < cols, 1.0f32, 0.0f32));
            for l in 0..v {
                weights[k * v + l] = wv.lane(l);
            }
            for r in 0..rows_per_block {
                let xv = vload::<V, _>(&x, (first + r) * cols + at).to_f32();
                let sq = xv * xv * keep;
                let mut sum = acc[r];
                for l in 0..v {
                    held[(r * cache + k) * v + l] = xv.lane(l);
                    sum += sq.lane(l);
                }
                acc[r] = sum;
            }
        }
    } else {
        for r in 0..rows_per_block {
            let base = (first + r) * cols;
            let mut sum = 0.0f32;
            if aligned {
                for c in (tid * v..cols).step_by(block * v) {
                    let xv = vload::<V, _>(&x, base + c).to_f32();
                    let sq = xv * xv;
                    for l in 0..v {
                        sum += sq.lane(l);
                    }
                }
            } else {
                for c in (tid..cols).step_by(block) {
                    let e = x[base + c].to_f32();
                    sum += e * e;
                }
            }
            acc[r] = sum;
        }
    }
    let inv = local_array::<f32>(rows_per_block);
    for r in 0..rows_per_block {
        inv[r] = rsqrt(block_sum(acc[r], block) / cols.to_f32() + eps);
    }
    if cached {
        for r in 0..rows_per_block {
            let base = (first + r) * cols;
            let scale = Val::<Vector<f32, V>>::splat(inv[r]);
            for k in 0..cache {
                let c = (tid + k * block) * v;
                #[comptime]
                let mut lanes = [tid.to_f32(); V];
                for l in 0..v {
                    lanes[l as usize] = held[(r * cache + k) * v + l] * weights[k * v + l].to_f32();
                }
                let out = Val::<Vector<f32, V>>::from_lanes(lanes) * scale;
                if c < cols {
                    vstore::<V, _>(&y, base + c, out.cast::<T>());
                }
            }
        }
    } else {
        for r in 0..rows_per_block {
            let base = (first + r) * cols;
            let row_inv = inv[r];
            let scale = Val::<Vector<f32, V>>::splat(row_inv);
            if aligned {
                for c in (tid * v..cols).step_by(block * v) {
                    let xv = vload::<V, _>(&x, base + c).to_f32();
                    let wv = vload::<V, _>(&w, c).to_f32();
                    vstore::<V, _>(&y, base + c, (xv * scale * wv).cast::<T>());
                }
            } else {
                for c in (tid..cols).step_by(block) {
                    y[base + c] = T::from_f32(x[base + c].to_f32() * row_inv * w[c].to_f32());
                }
            }
        }
    }
}

/// Narrows `rows_per_block` to the largest power of two not above it that divides `rows`.
pub fn fit(cfg: &Config, rows: u32) -> Config {
    let mut r = cfg.u32("rows_per_block");
    while r > 1 && rows % r != 0 {
        r /= 2;
    }
    cfg.with("rows_per_block", ConfigValue::U32(r))
}

/// The plain-Rust reference, in f64: `x` is `rows × cols`.
pub fn reference(x: &[f64], w: &[f64], rows: usize, cols: usize, eps: f64) -> Vec<f64> {
    let mut y = vec![0.0; rows * cols];
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let mean_sq = row.iter().map(|v| v * v).sum::<f64>() / cols as f64;
        let inv = 1.0 / (mean_sq + eps).sqrt();
        for c in 0..cols {
            y[r * cols + c] = row[c] * inv * w[c];
        }
    }
    y
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    check_vec_width("rmsnorm", cfg)?;
    dispatch!(cfg, target, rmsnorm, T, V; cfg.u32("block"), cfg.u32("cache"), cfg.u32("rows_per_block"))
}

/// Launch: one block per `rows_per_block` rows (`cfg` fitted with [`fit`]).
pub fn launch(cfg: &Config, rows: u32) -> LaunchDims {
    crate::problem::linear(rows / cfg.u32("rows_per_block"), cfg.u32("block"))
}

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    let &[rows, cols] = shape else {
        return Err(ProblemError::Shape {
            kernel: "rmsnorm",
            shape: shape.to_vec(),
            expected: SPEC.shape,
        });
    };
    if rows == 0 || cols == 0 {
        return Err(ProblemError::Shape {
            kernel: "rmsnorm",
            shape: shape.to_vec(),
            expected: SPEC.shape,
        });
    }
    let cfg = &fit(cfg, rows);
    let dtype = cfg.dtype("dtype");
    let (r, c) = (rows as usize, cols as usize);
    let eps = 1e-5;
    let (xb, x) = inputs.uniform(dtype, r * c, -2.0, 2.0);
    let (wb, w) = inputs.uniform(dtype, c, 0.5, 1.5);
    let want = reference(&x, &w, r, c, eps as f64);
    let size = dtype.size_bytes() as u64;
    Ok(Problem {
        config: cfg.clone(),
        kernel: build(cfg, target)?,
        dims: launch(cfg, rows),
        args: vec![
            ProblemArg::Buffer(xb),
            ProblemArg::Buffer(wb),
            ProblemArg::Buffer(zeros(dtype, r * c)),
            ProblemArg::Value(Const::U32(cols)),
            ProblemArg::Value(Const::F32(eps)),
        ],
        expected: vec![Expected {
            arg: 2,
            values: want,
            tolerance: Tolerance::for_dtype(dtype, 2e-6),
        }],
        min_bytes: (2 * r * c + c) as u64 * size,
        flops: 0,
    })
}

/// Vectors per thread kept in registers between the two passes; by default 32 bytes of input
/// per thread, which holds a 4096-wide row with 256 threads (0 turns the cache off).
const CACHE: ParamDef = ParamDef {
    name: "cache",
    choices: Choices::U32(&[0, 1, 2, 4, 8]),
    default: ConfigValue::U32(2),
    default_for_dtype: Some(|dtype| ConfigValue::U32(if dtype.size_bytes() == 4 { 4 } else { 2 })),
    tunable: true,
    doc: "vectors per thread held in registers between passes",
};

/// Rows sharing one block (see the kernel).
const ROWS_PER_BLOCK: ParamDef = ParamDef {
    name: "rows_per_block",
    choices: Choices::U32(&[1, 2, 4]),
    default: ConfigValue::U32(1),
    default_for_dtype: None,
    tunable: true,
    doc: "rows normalised by one block together",
};

pub static SPEC: KernelSpec = KernelSpec {
    name: "rmsnorm",
    summary: "y = x * rsqrt(mean(x^2) + eps) * w, per row",
    params: &[DTYPE, block_param(256), VEC, CACHE, ROWS_PER_BLOCK],
    shape: "rows,cols",
    test_shapes: &[
        &[1, 1],
        &[3, 7],
        &[2, 172],
        &[2, 4097],
        &[4, 4096],
        &[2, 8192],
        &[3, 1000],
        &[8, 64],
        &[4, 1000],
    ],
    bench_shape: &[4096, 4096],
    build,
    problem,
    available: crate::everywhere,
};
