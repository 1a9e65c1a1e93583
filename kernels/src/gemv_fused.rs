//! [`gemv`](crate::gemv) with RMSNorm fused into its input: `gemv_norm` computes
//! `y = (h / rms(h) · g) · Wᵀ (+ r)` — the attention's queries, keys and values, the FFN's gate
//! and up (with the SwiGLU epilogue, `glu`, the gate/up projection writes `silu(gate) · up`
//! directly), the logits — so that a decode step launches one kernel instead of two and the
//! normalised rows never go through memory. Each lane multiplies its slice of `h` by `g` as it
//! loads it and also sums its squares; `1 / rms` is one number per token, so it factors out of
//! the dot product and scales each finished sum (`rsqrt(Σh²/K + eps)`, combined across split-K
//! waves like the sums themselves).
//!
//! Every wave recomputes its input from the rows of `h`, which the L2 holds: two 16-byte loads
//! (`h`, `g`) and two multiplies per eight weights, against the launch and the write and read of
//! the normalised rows that the fusion removes. (SwiGLU fused the same way into the down
//! projection's input lost: every weight row's wave recomputes `silu` over all of `K`, 45 M
//! exponentials a 7B step, and the kernel ran at 35% of the DRAM peak on the H200 — hence the
//! epilogue, which computes each `silu` once.) The numerics differ from the unfused pair only
//! in that the input stays f32 instead of being rounded to the activation type between kernels.
//!
//! Same parameters and launch ([`crate::gemv::launch`]) as `gemv`; a model tunes it at its own
//! sites, else runs the plain projection's configuration. Measured on the H200 it does not beat
//! an RMSNorm launch plus the plain GEMV (BENCHMARKS.md, 2026-12-03), so models run it only when
//! asked (`--fuse norm`); staging the normalised row once per block in LDS is the next idea.
//!
//! Arguments, in order: `h: &[T]` (at least `M·K`), `g: &[T]` (at least `K`), then `w`, `r`,
//! `y`, `m`, `n`, `k` as in `gemv`, then `eps: f32`.

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
    #[comptime] glu: bool,
) {
    #[comptime]
    let p = GemvParams::new(rows, unroll, waves, splits, m_tile, residual, glu);
    #[comptime]
    let input = NormRows { h, g, eps };
    gemv_body::<T, O, DenseRows<T>, NormRows<T>>(input, DenseRows(w), r, y, m, n, k, p);
}

fn build_norm(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    let p = params("gemv_norm", cfg, target)?;
    dispatch!(cfg, target, gemv_norm, Half, O; p.rows, p.unroll, p.waves, p.splits, p.m_tile, p.residual, p.glu)
}

fn problem_norm(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    crate::projection::problem(
        "gemv_norm",
        SHAPE,
        shape,
        cfg,
        inputs,
        Weights::Dense,
        Input::Norm,
        false,
        |cfg, m, n| {
            let cfg = fit_m(cfg, m);
            let kernel = build_norm(&cfg, target)?;
            let dims = crate::gemv::launch(&cfg, target, n);
            Ok((cfg, kernel, dims))
        },
    )
}

const SHAPE: &str = "m,n,k";

/// The parameters of `gemv`, so that a configuration of one is one of the other.
const PARAMS: &[crate::ParamDef] = &[
    dtype_param_halves(),
    OUT,
    RESIDUAL,
    GEMV_PARAMS[0],
    GEMV_PARAMS[1],
    GEMV_PARAMS[2],
    GEMV_PARAMS[3],
    GEMV_PARAMS[4],
    GEMV_PARAMS[5],
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
