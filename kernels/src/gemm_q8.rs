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

use crate::gemm::{dtype_param_halves, gemm_tolerance, reference, OUT, RESIDUAL, TILE_PARAMS};
use crate::matmul::mnk;
use crate::problem::{from_f64, to_f64, Expected, Inputs, Problem, ProblemArg};
use crate::q8::QK8_0;
use crate::tiled::{gemm_body, TileParams, TileShape, Q8};
use crate::{dispatch, Config, KernelSpec, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::Buffer;
use greta_dsl::ir::{Const, Kernel, Scalar};
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

/// Q8_0 weights as the kernels take them and as the reference must see them: dequantised and
/// rounded to `dtype` (what the kernel stores in LDS).
pub(crate) fn q8_weights(
    inputs: &mut Inputs,
    dtype: Scalar,
    n: usize,
    k: usize,
) -> (Buffer, Buffer, Vec<f64>) {
    let (scales, quants, w) = crate::q8::random(inputs, n, k, -1.0, 1.0);
    let rounded = to_f64(&from_f64(dtype, &w));
    (Buffer::F16(scales), Buffer::U32(quants), rounded)
}

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    let (m, n, k) = mnk("gemm_q8", shape, SPEC.shape, QK8_0 as u32)?;
    let (dtype, out) = (cfg.dtype("dtype"), cfg.dtype("out"));
    let (mu, nu, ku) = (m as usize, n as usize, k as usize);
    let (xb, x) = inputs.uniform(dtype, mu * ku, -1.0, 1.0);
    let (sb, qb, w) = q8_weights(inputs, dtype, nu, ku);
    let residual = cfg.bool("residual");
    let (rb, rv) = inputs.uniform(out, mu * nu, -1.0, 1.0);
    Ok(Problem {
        config: cfg.clone(),
        kernel: build(cfg, target)?,
        dims: crate::gemm::launch(cfg, target, m, n),
        args: vec![
            ProblemArg::Buffer(xb),
            ProblemArg::Buffer(sb),
            ProblemArg::Buffer(qb),
            ProblemArg::Buffer(rb),
            ProblemArg::Buffer(from_f64(out, &vec![0.0; mu * nu])),
            ProblemArg::Value(Const::U32(m)),
            ProblemArg::Value(Const::U32(n)),
            ProblemArg::Value(Const::U32(k)),
        ],
        expected: vec![Expected {
            arg: 4,
            values: if inputs.references() {
                reference(&x, &w, residual.then_some(&rv[..]), mu, nu, ku)
            } else {
                Vec::new()
            },
            tolerance: gemm_tolerance(out, k),
        }],
        min_bytes: (nu * ku / QK8_0 * 34
            + mu * ku * dtype.size_bytes() as usize
            + mu * nu * out.size_bytes() as usize * (1 + residual as usize))
            as u64,
        flops: 2 * (mu * nu * ku) as u64,
    })
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
