//! [`gemm`](crate::gemm) with Q8_0 weights: the weight tile is dequantised on its way into LDS
//! (`q · d`, rounded once to the activation type `T`), after which the multiply is the same
//! matrix-core main loop. `K` must be a multiple of 32 (GGUF's Q8_0 block), and so must `bk`.
//!
//! Rounding `q · d` to `T` costs at most half an ulp of `T` per weight (f16: 2⁻¹¹ relative,
//! bf16: 2⁻⁸); the reference rounds the same way, so the test compares like with like and the
//! tolerance stays the dense kernel's.
//!
//! Arguments, in order: `x: &[T]` (at least `M·K`), `scales: &[f16]` (at least `N·K/32`),
//! `quants: &[u32]` (at least `N·K/4`), `r: &[O]`, `y: &mut [O]` (at least `M·N`), `m`, `n`,
//! `k: u32`. Launch with [`crate::gemm::launch`].

use crate::gemm::{dtype_param_halves, OUT, RESIDUAL, TILE_PARAMS};
use crate::problem::{Inputs, Problem};
use crate::projection::Weights;
use crate::q8::QK8_0;
use crate::tiled::{gemm_body, TileParams, TileShape, Q8};
use crate::{dispatch, Config, KernelSpec, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::ir::Kernel;
use greta_dsl::prelude::*;
use greta_dsl::Target;

#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn gemm_q8<T: MatrixElem, O: Float>(
    x: &[T],
    scales: &[f16],
    quants: &[u32],
    r: &[O],
    y: &mut [O],
    m: u32,
    n: u32,
    k: u32,
    #[comptime] bm: u32,
    #[comptime] bn: u32,
    #[comptime] bk: u32,
    #[comptime] warps_m: u32,
    #[comptime] warps_n: u32,
    #[comptime] stages: u32,
    #[comptime] swizzle: bool,
    #[comptime] residual: bool,
) {
    #[comptime]
    let params = TileParams {
        bm,
        bn,
        bk,
        warps_m,
        warps_n,
        stages,
        swizzle,
    };
    #[comptime]
    let shape = TileShape::in_kernel(params, T::SCALAR);
    gemm_body::<T, O, Q8>(x, Q8 { scales, quants }, r, y, m, n, k, shape, residual);
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    crate::gemm::tile_shape("gemm_q8", cfg, target)?;
    let p = TileParams::of(cfg);
    if p.bk % QK8_0 as u32 != 0 {
        return Err(BuildError::Invalid {
            kernel: "gemm_q8".into(),
            message: format!("bk={} is not a multiple of Q8_0's 32-value blocks", p.bk),
        });
    }
    let res = cfg.bool("residual");
    let (bm, bn, bk, wm, wn, st, sw) =
        (p.bm, p.bn, p.bk, p.warps_m, p.warps_n, p.stages, p.swizzle);
    dispatch!(cfg, target, gemm_q8, Half, O; bm, bn, bk, wm, wn, st, sw, res)
}

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    let weights = Weights::Q8 { rounded: true };
    crate::projection::problem(
        "gemm_q8",
        SPEC.shape,
        shape,
        cfg,
        inputs,
        weights,
        crate::projection::Input::Plain,
        true,
        |cfg, m, n| {
            Ok((
                cfg.clone(),
                build(cfg, target)?,
                crate::gemm::launch(cfg, target, m, n),
            ))
        },
    )
}

pub static SPEC: KernelSpec = KernelSpec {
    name: "gemm_q8",
    summary: "y = x · Wᵀ (+ r) on matrix cores with Q8_0 weights, dequantised into LDS",
    params: &[
        dtype_param_halves(),
        OUT,
        RESIDUAL,
        TILE_PARAMS[0],
        TILE_PARAMS[1],
        TILE_PARAMS[2],
        TILE_PARAMS[3],
        TILE_PARAMS[4],
        TILE_PARAMS[5],
        TILE_PARAMS[6],
    ],
    shape: "m,n,k (k a multiple of 32)",
    test_shapes: &[
        &[1, 1, 32],
        &[7, 172, 64],
        &[3, 17, 4096],
        &[172, 7, 96],
        &[65, 130, 64],
    ],
    bench_shape: &[512, 4096, 4096],
    build,
    problem,
    available: crate::everywhere,
};
