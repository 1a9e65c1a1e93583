//! [`gemv`](crate::gemv) with Q8_0 weights: each lane loads 16 quants (four packed words, one
//! 16-byte access) and their block's f16 scale, forms the dot product with the activations in
//! f32 and scales it once. `K` must be a multiple of 32.
//!
//! Floor: `N·K·34/32` bytes of weights at the copy bandwidth (4096 × 4096: 17 MiB ≈ 4.2 µs on
//! an H200).
//!
//! Arguments, in order: `x: &[T]` (at least `M·K`), `scales: &[f16]` (at least `N·K/32`),
//! `quants: &[u32]` (at least `N·K/4`), `r: &[O]`, `y: &mut [O]` (at least `M·N`), `m`, `n`,
//! `k: u32`. Launch with [`crate::gemv::launch`].

use crate::gemm::{dtype_param_halves, OUT, RESIDUAL};
use crate::gemv::{fit_m, gemv_body, params, GemvParams, PlainRows, Q8Rows, GEMV_PARAMS};
use crate::problem::{Inputs, Problem};
use crate::projection::Weights;
use crate::{dispatch, Config, KernelSpec, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::ir::Kernel;
use greta_dsl::prelude::*;
use greta_dsl::Target;

#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn gemv_q8<T: Float, O: Float>(
    x: &[T],
    scales: &[f16],
    quants: &[u32],
    r: &[O],
    y: &mut [O],
    m: u32,
    n: u32,
    k: u32,
    #[comptime] rows: u32,
    #[comptime] unroll: u32,
    #[comptime] waves: u32,
    #[comptime] splits: u32,
    #[comptime] m_tile: u32,
    #[comptime] residual: bool,
    #[comptime] glu: bool,
) {
    #[comptime]
    let p = GemvParams::new(rows, unroll, waves, splits, m_tile, residual, glu);
    gemv_body::<T, O, Q8Rows, PlainRows<T>>(
        PlainRows(x),
        Q8Rows { scales, quants },
        r,
        y,
        m,
        n,
        k,
        p,
    );
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    let p = params("gemv_q8", cfg, target)?;
    dispatch!(cfg, target, gemv_q8, Half, O; p.rows, p.unroll, p.waves, p.splits, p.m_tile, p.residual, p.glu)
}

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    let weights = Weights::Q8 { rounded: false };
    crate::projection::problem(
        "gemv_q8",
        SPEC.shape,
        shape,
        cfg,
        inputs,
        weights,
        crate::projection::Input::Plain,
        false,
        |cfg, m, n| {
            let cfg = fit_m(cfg, m);
            let kernel = build(&cfg, target)?;
            let dims = crate::gemv::launch(&cfg, target, n);
            Ok((cfg, kernel, dims))
        },
    )
}

pub static SPEC: KernelSpec = KernelSpec {
    name: "gemv_q8",
    summary: "y = x · Wᵀ (+ r) for a few tokens with Q8_0 weights, at their bandwidth",
    params: &[
        dtype_param_halves(),
        OUT,
        RESIDUAL,
        GEMV_PARAMS[0],
        GEMV_PARAMS[1],
        GEMV_PARAMS[2],
        GEMV_PARAMS[3],
        GEMV_PARAMS[4],
        GEMV_PARAMS[5],
    ],
    shape: "m,n,k (k a multiple of 32)",
    test_shapes: &[
        &[1, 1, 32],
        &[1, 7, 160],
        &[1, 172, 4096],
        &[3, 9, 2048],
        &[8, 5, 512],
    ],
    bench_shape: &[1, 4096, 4096],
    build,
    problem,
    available: crate::everywhere,
};
