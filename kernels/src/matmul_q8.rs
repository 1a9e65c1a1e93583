//! [`matmul`](crate::matmul) with Q8_0 weights: `y[m, n] = Σ_k x[m, k] · d[n, k/32] · q[n, k]`,
//! the weights given as the scales and packed quants of [`crate::q8`] and dequantised in
//! registers. `K` must be a multiple of 32 (a launch with another `K` writes nothing).
//!
//! Same tiling as `matmul`: a block computes `rows × m_tile` outputs; each thread takes `vec`
//! quant words (`4·vec` quants, one load; at most one Q8_0 block, so one scale) per step,
//! sign-extends each byte, forms the dot product with the matching activations in f32, and adds
//! it times the block's scale into its partial sum; a block reduction per output finishes.
//!
//! `dtype` is the element type of the activations `x` (the model's are f32, the default).
//!
//! Floor (decode, `M = 1`): `N·K·34/32` bytes of weights, e.g. 4096 × 4096 = 17 MiB ≈ 4.2 µs on
//! an H200; prefill as for `matmul`.
//!
//! Arguments, in order: `x: &[T]` (at least `M·K`), `scales: &[f16]` (at least `N·K/32`),
//! `quants: &[u32]` (at least `N·K/4`), `y: &mut [f32]` (at least `M·N`), `m: u32`, `n: u32`,
//! `k: u32`. Launch with [`launch`].

use crate::config::{block_param, dtype_param, u32_param};
use crate::helpers::{clamped_row_offsets, write_tile, zeroed_tile};
use crate::matmul::{dot_tolerance, mnk, M_TILE, ROWS};
use crate::problem::{Expected, Inputs, Problem, ProblemArg};
use crate::q8::{quant, QK8_0};
use crate::{dispatch, Config, KernelSpec, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::{Buffer, LaunchDims};
use greta_dsl::ir::{Const, Kernel, Scalar};
use greta_dsl::prelude::*;
use greta_dsl::Target;
use half::f16;

#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn matmul_q8<T: Float, const V: usize>(
    x: &[T],
    scales: &[f16],
    quants: &[u32],
    y: &mut [f32],
    m: u32,
    n: u32,
    k: u32,
    #[comptime] block: u32,
    #[comptime] rows: u32,
    #[comptime] m_tile: u32,
) {
    block_size(block);
    // `V` quant words per load, `q` quants.
    #[comptime]
    let v = V as u32;
    #[comptime]
    let q = 4u32 * v;
    let n0 = block_idx().x * rows;
    let m0 = block_idx().y * m_tile;
    let tid = thread_idx().x;
    // Element offsets of the tile's rows, clamped to the last row so that edge tiles stay in
    // bounds.
    let w_at = clamped_row_offsets(n0, n - 1u32, k, rows);
    let x_at = clamped_row_offsets(m0, m - 1u32, k, m_tile);
    let acc = zeroed_tile(rows, m_tile);
    if k % 32u32 == 0u32 {
        // The packed quant words and the scale of the current step, per weight row; bytes
        // are sign-extended where they are used (for each activation row), which keeps the
        // registers at `rows · vec` words rather than `rows · 4 · vec` floats.
        let words = local_array::<u32>(rows * v);
        let wd = local_array::<f32>(rows);
        for c in (tid * q..k).step_by(block * q) {
            for r in 0..rows {
                let at = w_at[r] + c;
                let wv = vload::<V, _>(&quants, at / 4u32);
                for i in 0..v {
                    words[r * v + i] = wv.lane(i);
                }
                wd[r] = scales[at / 32u32].to_f32();
            }
            for j in 0..m_tile {
                let xl = local_array::<f32>(q);
                for i in 0..v {
                    let xv = vload::<4, _>(&x, x_at[j] + c + 4u32 * i).to_f32();
                    for b in 0..4u32 {
                        xl[4u32 * i + b] = xv.lane(b);
                    }
                }
                for r in 0..rows {
                    let mut dot = 0.0f32;
                    for i in 0..v {
                        for b in 0..4u32 {
                            dot = fma(quant(words[r * v + i], b), xl[4u32 * i + b], dot);
                        }
                    }
                    acc[r * m_tile + j] = fma(dot, wd[r], acc[r * m_tile + j]);
                }
            }
        }
        write_tile(acc, y, n0, m0, n, m, rows, m_tile, block);
    }
}

/// The plain-Rust reference, in f64, from the dequantised weights (`n × k`).
pub fn reference(x: &[f64], w: &[f64], m: usize, n: usize, k: usize) -> Vec<f64> {
    crate::matmul::reference(x, w, m, n, k)
}

/// Rejects tiles that do not fit in registers: past `rows · m_tile · vec = 128` the compilers
/// spill (sm_90) or use scratch and AGPRs (gfx942), as `greta inspect` shows.
fn check_tile(cfg: &Config) -> Result<(), BuildError> {
    let (rows, m_tile, vec) = (cfg.u32("rows"), cfg.u32("m_tile"), cfg.u32("vec"));
    if rows * m_tile * vec > 128 {
        return Err(BuildError::Invalid {
            kernel: "matmul_q8".to_string(),
            message: format!(
                "rows={rows} × m_tile={m_tile} × vec={vec} = {} exceeds 128: the tile does not fit in registers",
                rows * m_tile * vec
            ),
        });
    }
    Ok(())
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    check_tile(cfg)?;
    dispatch!(cfg, target, matmul_q8, T, V; cfg.u32("block"), cfg.u32("rows"), cfg.u32("m_tile"))
}

/// Launch: grid `[⌈N / rows⌉, ⌈M / m_tile⌉, 1]`, `block` threads.
pub fn launch(cfg: &Config, m: u32, n: u32) -> LaunchDims {
    crate::matmul::launch(cfg, m, n)
}

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    let (m, n, k) = mnk("matmul_q8", shape, SPEC.shape, QK8_0 as u32)?;
    let dtype = cfg.dtype("dtype");
    let (mu, nu, ku) = (m as usize, n as usize, k as usize);
    let (xb, x) = inputs.uniform(dtype, mu * ku, -1.0, 1.0);
    let (scales, quants, w) = crate::q8::random(inputs, nu, ku, -1.0, 1.0);
    Ok(Problem {
        config: cfg.clone(),
        kernel: build(cfg, target)?,
        dims: launch(cfg, m, n),
        args: vec![
            ProblemArg::Buffer(xb),
            ProblemArg::Buffer(Buffer::F16(scales)),
            ProblemArg::Buffer(Buffer::U32(quants)),
            ProblemArg::Buffer(Buffer::F32(vec![0.0; mu * nu])),
            ProblemArg::Value(Const::U32(m)),
            ProblemArg::Value(Const::U32(n)),
            ProblemArg::Value(Const::U32(k)),
        ],
        expected: vec![Expected {
            arg: 3,
            values: reference(&x, &w, mu, nu, ku),
            tolerance: dot_tolerance(k),
        }],
        min_bytes: (nu * ku / QK8_0 * 34 + mu * ku * dtype.size_bytes() as usize + 4 * mu * nu)
            as u64,
        flops: 2 * (mu * nu * ku) as u64,
    })
}

pub static SPEC: KernelSpec = KernelSpec {
    name: "matmul_q8",
    summary: "y = x · Wᵀ with Q8_0 weights (scales + packed quants)",
    params: &[
        dtype_param(Scalar::F32, "element type of the activations x"),
        block_param(128),
        u32_param(
            "vec",
            &[1, 2, 4, 8],
            4,
            "quant words (4 quants each) per load",
        ),
        ROWS,
        M_TILE,
    ],
    shape: "m,n,k (k a multiple of 32)",
    test_shapes: &[
        &[1, 1, 32],
        &[2, 3, 96],
        &[1, 5, 4096],
        &[3, 17, 64],
        &[9, 7, 256],
        &[1, 33, 1024],
    ],
    bench_shape: &[1, 4096, 4096],
    build,
    problem,
    available: crate::everywhere,
};
