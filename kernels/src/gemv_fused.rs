//! [`gemv`](crate::gemv) fused with the kernel before it in a Llama layer, so that a decode
//! step launches one kernel instead of two and the activations between them never go through
//! memory:
//!
//! - `gemv_norm`: `y = (h / rms(h) · g) · Wᵀ (+ r)` — RMSNorm into the projection's input (the
//!   attention's queries, keys and values, the FFN's gate and up, the logits). Each lane
//!   multiplies its slice of `h` by `g` as it loads it and also sums its squares; `1 / rms` is
//!   one number per token, so it factors out of the dot product and scales each finished sum
//!   (`rsqrt(Σh²/K + eps)`, combined across split-K waves like the sums themselves).
//! - `gemv_glu`: `y = (silu(gate) · up) · Wᵀ (+ r)` — SwiGLU into the down projection's input.
//!
//! Every block recomputes its input from the rows of `h` (or `gate` and `up`), which the L2
//! holds: a few KiB per token against the block's weights, and the launch and the write and
//! read of the normalised (gated) rows that the fusion removes. The numerics differ from the
//! unfused pair only in that the input stays f32 instead of being rounded to the activation
//! type between kernels.
//!
//! Same parameters, launch ([`crate::gemv::launch`]) and tuning as `gemv`: a model runs each
//! at the configuration tuned for the plain projection of the same shape.
//!
//! Arguments, in order: `gemv_norm`: `h: &[T]` (at least `M·K`), `g: &[T]` (at least `K`),
//! `w`, `r`, `y`, `m`, `n`, `k` as in `gemv`, then `eps: f32`; `gemv_glu`: `gate: &[T]`,
//! `up: &[T]` (at least `M·K` each), then `w`, `r`, `y`, `m`, `n`, `k`.

use crate::gemm::{dtype_param_halves, OUT, RESIDUAL};
use crate::gemv::{fit_m, gemv_body, params, DenseRows, GemvParams, RowInput, GEMV_PARAMS};
use crate::problem::{Inputs, Problem};
use crate::projection::{Input, Weights};
use crate::{dispatch, Config, KernelSpec, ProblemError};
use greta_dsl::front::load;
use greta_dsl::front::BuildError;
use greta_dsl::ir::Kernel;
use greta_dsl::prelude::*;
use greta_dsl::Target;

/// Rows of `h` normalised by RMSNorm with weights `g` (the division by `rms(h)` is left to the
/// kernel's epilogue, [`RowInput::NORM`]).
#[derive(Clone, Copy)]
pub struct NormRows<T: Float> {
    pub h: Global<T, Read>,
    pub g: Global<T, Read>,
    pub eps: Val<f32>,
}

impl<T: Float> RowInput for NormRows<T> {
    const NORM: bool = true;
    fn load(self, row: Val<u32>, c: Val<u32>, ok: Val<bool>) -> (Vec<Val<f32>>, Val<f32>) {
        let h = vload::<8, _>(&self.h, select(ok, row + c, 0u32)).to_f32();
        let g = vload::<8, _>(&self.g, select(ok, c, 0u32)).to_f32();
        let h = materialize("h", h);
        let squares = h * h;
        let mut sum = squares.lane(0);
        for l in 1..8 {
            sum = sum + squares.lane(l);
        }
        let x = materialize("x", h * g);
        ((0..8).map(|l| x.lane(l)).collect(), sum)
    }
    fn element(self, row: Val<u32>, c: Val<u32>) -> (Val<f32>, Val<f32>) {
        let h = materialize("h", load(&self.h, row + c).to_f32());
        (h * load(&self.g, c).to_f32(), h * h)
    }
    fn inv_rms(self, sum: Val<f32>, k: Val<u32>) -> Val<f32> {
        rsqrt(sum / k.to_f32() + self.eps)
    }
}

/// Rows of SwiGLU's `silu(gate) · up`.
#[derive(Clone, Copy)]
pub struct GluRows<T: Float> {
    pub gate: Global<T, Read>,
    pub up: Global<T, Read>,
}

impl<T: Float> RowInput for GluRows<T> {
    const NORM: bool = false;
    fn load(self, row: Val<u32>, c: Val<u32>, ok: Val<bool>) -> (Vec<Val<f32>>, Val<f32>) {
        let at = select(ok, row + c, 0u32);
        let g = vload::<8, _>(&self.gate, at).to_f32();
        let u = vload::<8, _>(&self.up, at).to_f32();
        let one = Val::<Vector<f32, 8>>::splat(1.0f32);
        let x = materialize("x", g / (one + (-g).exp()) * u);
        ((0..8).map(|l| x.lane(l)).collect(), Val::constant(0.0f32))
    }
    fn element(self, row: Val<u32>, c: Val<u32>) -> (Val<f32>, Val<f32>) {
        let g = load(&self.gate, row + c).to_f32();
        let x = g / (1.0f32 + (-g).exp()) * load(&self.up, row + c).to_f32();
        (x, Val::constant(0.0f32))
    }
    fn inv_rms(self, sum: Val<f32>, _k: Val<u32>) -> Val<f32> {
        sum
    }
}

#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn gemv_norm<T: Float, O: Float>(
    h: &[T],
    g: &[T],
    w: &[T],
    r: &[O],
    y: &mut [O],
    m: u32,
    n: u32,
    k: u32,
    eps: f32,
    #[comptime] rows: u32,
    #[comptime] unroll: u32,
    #[comptime] waves: u32,
    #[comptime] splits: u32,
    #[comptime] m_tile: u32,
    #[comptime] residual: bool,
) {
    #[comptime]
    let p = GemvParams {
        rows,
        unroll,
        waves,
        splits,
        m_tile,
        residual,
    };
    #[comptime]
    let input = NormRows { h, g, eps };
    gemv_body::<T, O, DenseRows<T>, NormRows<T>>(input, DenseRows(w), r, y, m, n, k, p);
}

#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn gemv_glu<T: Float, O: Float>(
    gate: &[T],
    up: &[T],
    w: &[T],
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
) {
    #[comptime]
    let p = GemvParams {
        rows,
        unroll,
        waves,
        splits,
        m_tile,
        residual,
    };
    #[comptime]
    let input = GluRows { gate, up };
    gemv_body::<T, O, DenseRows<T>, GluRows<T>>(input, DenseRows(w), r, y, m, n, k, p);
}

fn build_norm(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    let p = params("gemv_norm", cfg, target)?;
    dispatch!(cfg, target, gemv_norm, Half, O; p.rows, p.unroll, p.waves, p.splits, p.m_tile, p.residual)
}

fn build_glu(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    let p = params("gemv_glu", cfg, target)?;
    dispatch!(cfg, target, gemv_glu, Half, O; p.rows, p.unroll, p.waves, p.splits, p.m_tile, p.residual)
}

/// The problem of the fused GEMV `name` (its `input`), built by `build`.
fn fused_problem(
    name: &'static str,
    input: Input,
    build: fn(&Config, &'static Target) -> Result<Kernel, BuildError>,
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    crate::projection::problem(
        name,
        SHAPE,
        shape,
        cfg,
        inputs,
        Weights::Dense,
        input,
        false,
        |cfg, m, n| {
            let cfg = fit_m(cfg, m);
            let kernel = build(&cfg, target)?;
            let dims = crate::gemv::launch(&cfg, target, n);
            Ok((cfg, kernel, dims))
        },
    )
}

fn problem_norm(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    fused_problem(
        "gemv_norm",
        Input::Norm,
        build_norm,
        cfg,
        target,
        shape,
        inputs,
    )
}

fn problem_glu(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    fused_problem(
        "gemv_glu",
        Input::Glu,
        build_glu,
        cfg,
        target,
        shape,
        inputs,
    )
}

const SHAPE: &str = "m,n,k";

/// The parameters of both (those of `gemv`, so a configuration of one is one of the others).
const PARAMS: &[crate::ParamDef] = &[
    dtype_param_halves(),
    OUT,
    RESIDUAL,
    GEMV_PARAMS[0],
    GEMV_PARAMS[1],
    GEMV_PARAMS[2],
    GEMV_PARAMS[3],
    GEMV_PARAMS[4],
];

/// Small shapes (the interpreter runs every configuration of them in CI): a `K` that is not a
/// multiple of 8 (the scalar path), a split-K-sized `K`, and several tokens.
const TEST_SHAPES: &[&[u32]] = &[
    &[1, 1, 1],
    &[1, 7, 172],
    &[1, 33, 1024],
    &[3, 9, 2056],
    &[8, 5, 520],
];

pub static NORM_SPEC: KernelSpec = KernelSpec {
    name: "gemv_norm",
    summary: "y = rmsnorm(h) · g · Wᵀ (+ r) for a few tokens: RMSNorm fused into the GEMV",
    params: PARAMS,
    shape: SHAPE,
    test_shapes: TEST_SHAPES,
    bench_shape: &[1, 4096, 4096],
    build: build_norm,
    problem: problem_norm,
    available: crate::everywhere,
};

pub static GLU_SPEC: KernelSpec = KernelSpec {
    name: "gemv_glu",
    summary: "y = (silu(gate) · up) · Wᵀ (+ r) for a few tokens: SwiGLU fused into the GEMV",
    params: PARAMS,
    shape: SHAPE,
    test_shapes: TEST_SHAPES,
    bench_shape: &[1, 4096, 11008],
    build: build_glu,
    problem: problem_glu,
    available: crate::everywhere,
};
