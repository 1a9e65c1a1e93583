//! Matrix times transposed weights: `y[m, n] = Σ_k x[m, k] · W[n, k]`, the projections of a
//! transformer layer. `x` is f32 activations (`M × K`, row-major), `W` is `N` rows of `K`
//! weights of type `T` (GGUF's layout: `ne[0] = K`), `y` is f32 (`M × N`); accumulation in f32.
//!
//! Each block computes a `rows × m_tile` tile of `y`: its threads stride over `K` with
//! `vec`-wide weight loads (16 bytes by default), each keeping `rows · m_tile` partial sums in
//! registers, and a block reduction per output combines them; thread 0 writes. Weights
//! are read once per tile, activations once per weight row of the tile, so `rows` trades
//! activation re-reads (from L2) against parallelism, and `m_tile` weight re-reads against
//! registers. A tile past the edge of `y` reads the last row instead (in bounds) and discards it.
//! `K % vec != 0` takes a scalar path (no row would start on a vector boundary).
//!
//! Floor: decode (`M = 1`) is a GEMV and memory bound: `N·K·size(T)` bytes of weights (plus
//! `K·4` of `x` and `N·4` of `y`) at full bandwidth, e.g. 4096 × 4096 f16 = 32 MiB ≈ 8 µs on an
//! H200 (4.2 TB/s). Prefill (`M` large) is compute bound and wants a tiled matrix-core GEMM; this
//! kernel re-reads `W` from L2 `M / m_tile` times and runs at CUDA-core rates there.
//!
//! Arguments, in order (what [`launch`] and `KernelArg`s must follow):
//! `x: &[f32]` (at least `M·K`), `w: &[T]` (at least `N·K`), `y: &mut [f32]` (at least `M·N`),
//! `m: u32`, `n: u32`, `k: u32`.

use crate::config::{block_param, u32_param, DTYPE, VEC};
use crate::helpers::{clamped_row_offsets, write_tile, zeroed_tile};
use crate::problem::{blocks_for, Expected, Inputs, Problem, ProblemArg, Tolerance};
use crate::{check_vec_width, dispatch, Config, KernelSpec, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::{Buffer, LaunchDims};
use greta_dsl::ir::{Const, Kernel, Scalar};
use greta_dsl::prelude::*;
use greta_dsl::Target;

#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn matmul<T: Float, const V: usize>(
    x: &[f32],
    w: &[T],
    y: &mut [f32],
    m: u32,
    n: u32,
    k: u32,
    #[comptime] block: u32,
    #[comptime] rows: u32,
    #[comptime] m_tile: u32,
) {
    block_size(block);
    #[comptime]
    let v = V as u32;
    let n0 = block_idx().x * rows;
    let m0 = block_idx().y * m_tile;
    let tid = thread_idx().x;
    // Row offsets of the tile, clamped to the last row so that edge tiles stay in bounds.
    let w_at = clamped_row_offsets(n0, n - 1u32, k, rows);
    let x_at = clamped_row_offsets(m0, m - 1u32, k, m_tile);
    // One partial sum per output of the tile; each lane of a vector is one more FMA into it.
    let acc = zeroed_tile(rows, m_tile);
    if k % v == 0u32 {
        let wl = local_array::<f32>(rows * v);
        for c in (tid * v..k).step_by(block * v) {
            for r in 0..rows {
                let wv = vload::<V, _>(&w, w_at[r] + c).to_f32();
                for l in 0..v {
                    wl[r * v + l] = wv.lane(l);
                }
            }
            for j in 0..m_tile {
                let xv = vload::<V, _>(&x, x_at[j] + c);
                for r in 0..rows {
                    let mut s = acc[r * m_tile + j];
                    for l in 0..v {
                        s = fma(wl[r * v + l], xv.lane(l), s);
                    }
                    acc[r * m_tile + j] = s;
                }
            }
        }
    } else {
        for c in (tid..k).step_by(block) {
            for r in 0..rows {
                let wr = w[w_at[r] + c].to_f32();
                for j in 0..m_tile {
                    acc[r * m_tile + j] = fma(wr, x[x_at[j] + c], acc[r * m_tile + j]);
                }
            }
        }
    }
    write_tile(acc, y, n0, m0, n, m, rows, m_tile, block);
}

/// The plain-Rust reference, in f64: `x` is `m × k`, `w` is `n × k`; returns `m × n`.
pub fn reference(x: &[f64], w: &[f64], m: usize, n: usize, k: usize) -> Vec<f64> {
    let mut y = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            y[i * n + j] = (0..k).map(|c| x[i * k + c] * w[j * k + c]).sum();
        }
    }
    y
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    check_vec_width("matmul", cfg)?;
    dispatch!(cfg, target, matmul, T, V; cfg.u32("block"), cfg.u32("rows"), cfg.u32("m_tile"))
}

/// Launch: grid `[⌈N / rows⌉, ⌈M / m_tile⌉, 1]`, `block` threads. (The same for `matmul_q8`.)
pub fn launch(cfg: &Config, m: u32, n: u32) -> LaunchDims {
    LaunchDims {
        grid: [
            blocks_for(n as u64, cfg.u32("rows") as u64),
            blocks_for(m as u64, cfg.u32("m_tile") as u64),
            1,
        ],
        block: [cfg.u32("block"), 1, 1],
    }
}

/// `m, n, k` from a problem shape.
pub(crate) fn mnk(
    kernel: &'static str,
    shape: &[u32],
    expected: &'static str,
    k_multiple: u32,
) -> Result<(u32, u32, u32), ProblemError> {
    match *shape {
        [m, n, k] if m > 0 && n > 0 && k > 0 && k % k_multiple == 0 => Ok((m, n, k)),
        _ => Err(ProblemError::Shape {
            kernel,
            shape: shape.to_vec(),
            expected,
        }),
    }
}

/// The tolerance of an f32 dot product of `k` terms of magnitude at most 1.
pub(crate) fn dot_tolerance(k: u32) -> Tolerance {
    Tolerance {
        abs: 1e-6 * k as f64,
        rel: 1e-5,
    }
}

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    let (m, n, k) = mnk("matmul", shape, SPEC.shape, 1)?;
    let dtype = cfg.dtype("dtype");
    let (mu, nu, ku) = (m as usize, n as usize, k as usize);
    let (xb, x) = inputs.uniform(Scalar::F32, mu * ku, -1.0, 1.0);
    let (wb, w) = inputs.uniform(dtype, nu * ku, -1.0, 1.0);
    Ok(Problem {
        config: cfg.clone(),
        kernel: build(cfg, target)?,
        dims: launch(cfg, m, n),
        args: vec![
            ProblemArg::Buffer(xb),
            ProblemArg::Buffer(wb),
            ProblemArg::Buffer(Buffer::F32(vec![0.0; mu * nu])),
            ProblemArg::Value(Const::U32(m)),
            ProblemArg::Value(Const::U32(n)),
            ProblemArg::Value(Const::U32(k)),
        ],
        expected: vec![Expected {
            arg: 2,
            values: reference(&x, &w, mu, nu, ku),
            tolerance: dot_tolerance(k),
        }],
        min_bytes: (nu * ku * dtype.size_bytes() as usize + 4 * (mu * ku + mu * nu)) as u64,
        flops: 2 * (mu * nu * ku) as u64,
    })
}

/// Output rows of `W` per block.
pub(crate) const ROWS: crate::ParamDef = u32_param(
    "rows",
    &[1, 2, 4, 8],
    2,
    "weight rows (outputs along N) per block",
);

/// Activation rows per block.
pub(crate) const M_TILE: crate::ParamDef = crate::config::fixed(u32_param(
    "m_tile",
    &[1, 2, 4, 8],
    1,
    "activation rows (outputs along M) per block; >1 for prefill",
));

pub static SPEC: KernelSpec = KernelSpec {
    name: "matmul",
    summary: "y = x · Wᵀ (f32 activations, f16/bf16/f32 weights)",
    params: &[DTYPE, block_param(128), VEC, ROWS, M_TILE],
    shape: "m,n,k",
    test_shapes: &[
        &[1, 1, 1],
        &[1, 1, 7],
        &[2, 3, 172],
        &[1, 5, 4097],
        &[3, 17, 64],
        &[9, 7, 256],
        &[1, 33, 1024],
    ],
    bench_shape: &[1, 4096, 4096],
    build,
    problem,
    available: crate::everywhere,
};
