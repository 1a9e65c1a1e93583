//! Tiled matrix-core GEMM for prefill: `y[m, n] = Σ_k x[m, k] · W[n, k] (+ r[m, n])`, the
//! projections of a transformer layer over many tokens. `x` is `M × K` activations and `W` is
//! `N` rows of `K` weights (GGUF's layout, so the multiply is `x · Wᵀ`), both f16 or bf16
//! (`dtype`); accumulation is f32 in matrix-core accumulators; `y` (and the optional residual
//! `r`, added in the epilogue) are `out` (f16, bf16 or f32), rounded once.
//!
//! Each block computes a `bm × bn` tile of `y` with `warps_m × warps_n` waves, looping over `K`
//! in tiles of `bk` staged through LDS (padded or XOR-swizzled rows, `swizzle`), with register
//! double buffering when `stages = 2` (see [`crate::tiled`]). The matrix instruction is the
//! target's preferred one for `dtype`: `mma.sync.m16n8k16` on sm_90 (A from LDS by `ldmatrix`),
//! `v_mfma_f32_16x16x16` on gfx942.
//!
//! Floor: `2·M·N·K` flops at the matrix rate (H200 dense f16: ~990 TFLOP/s with wgmma; this
//! kernel's `mma.sync` tops out well below that), and `(M·K + N·K)·2 + M·N·size(out)` bytes.
//!
//! Arguments, in order: `x: &[T]` (at least `M·K`), `w: &[T]` (at least `N·K`), `r: &[O]`
//! (at least `M·N` when `residual`; any buffer otherwise, never read), `y: &mut [O]` (at least
//! `M·N`), `m: u32`, `n: u32`, `k: u32`. Launch with [`launch`].

use crate::config::{dtype_param, u32_param, Choices, HALVES};
use crate::matmul::dot_tolerance;
use crate::problem::{blocks_for, Inputs, Problem, Tolerance};
use crate::projection::Weights;
use crate::tiled::{gemm_body, Dense, TileParams, TileShape};
use crate::{dispatch, Config, KernelSpec, ParamDef, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::LaunchDims;
use greta_dsl::ir::{ConfigValue, Kernel, Scalar};
use greta_dsl::prelude::*;
use greta_dsl::Target;

#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: MatrixElem, O: Float>(
    x: &[T],
    w: &[T],
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
    gemm_body::<T, O, Dense<T>>(x, Dense(w), r, y, m, n, k, shape, residual);
}

/// The plain-Rust reference in f64: `x` is `m × k`, `w` is `n × k`, `r` (if any) `m × n`.
pub fn reference(
    x: &[f64],
    w: &[f64],
    r: Option<&[f64]>,
    m: usize,
    n: usize,
    k: usize,
) -> Vec<f64> {
    let mut y = crate::matmul::reference(x, w, m, n, k);
    if let Some(r) = r {
        for (y, r) in y.iter_mut().zip(r) {
            *y += r;
        }
    }
    y
}

/// The block geometry of `cfg` on `target` (an error for configurations that do not fit).
pub(crate) fn tile_shape(
    kernel: &str,
    cfg: &Config,
    target: &'static Target,
) -> Result<TileShape, BuildError> {
    TileShape::of(kernel, cfg, target, cfg.dtype("dtype"))
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    tile_shape("gemm", cfg, target)?;
    let p = TileParams::of(cfg);
    let res = cfg.bool("residual");
    let (bm, bn, bk, wm, wn, st, sw) =
        (p.bm, p.bn, p.bk, p.warps_m, p.warps_n, p.stages, p.swizzle);
    dispatch!(cfg, target, gemm, Half, O; bm, bn, bk, wm, wn, st, sw, res)
}

/// Launch: grid `[⌈N / bn⌉, ⌈M / bm⌉, 1]`, `warps_m · warps_n` waves per block (the same for
/// `gemm_q8`).
pub fn launch(cfg: &Config, target: &Target, m: u32, n: u32) -> LaunchDims {
    let threads = cfg.u32("warps_m") * cfg.u32("warps_n") * target.wave_size;
    LaunchDims {
        grid: [
            blocks_for(n as u64, cfg.u32("bn") as u64),
            blocks_for(m as u64, cfg.u32("bm") as u64),
            1,
        ],
        block: [threads, 1, 1],
    }
}

/// The tolerance of an `out` result of an f32 dot product of `k` terms of magnitude at most 1.
pub(crate) fn gemm_tolerance(out: Scalar, k: u32) -> Tolerance {
    let dot = dot_tolerance(k);
    let store = Tolerance::for_dtype(out, 0.0);
    Tolerance {
        abs: dot.abs + store.abs,
        rel: dot.rel + store.rel,
    }
}

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    crate::projection::problem(
        "gemm",
        SPEC.shape,
        shape,
        cfg,
        inputs,
        Weights::Dense,
        crate::projection::Input::Plain,
        true,
        |cfg, m, n| Ok((cfg.clone(), build(cfg, target)?, launch(cfg, target, m, n))),
    )
}

/// The tile and pipeline parameters `gemm` and `gemm_q8` share.
pub(crate) const TILE_PARAMS: [ParamDef; 7] = [
    u32_param("bm", &[64, 128, 256], 128, "output rows (M) per block"),
    u32_param("bn", &[64, 128, 256], 128, "output columns (N) per block"),
    u32_param("bk", &[32, 64], 32, "K per LDS tile"),
    u32_param("warps_m", &[1, 2, 4], 2, "waves along M per block"),
    u32_param("warps_n", &[1, 2, 4], 2, "waves along N per block"),
    u32_param(
        "stages",
        &[1, 2],
        2,
        "LDS stages: 2 prefetches the next K-tile into registers while one multiplies",
    ),
    ParamDef {
        name: "swizzle",
        choices: Choices::Bool,
        default: ConfigValue::Bool(true),
        default_for_dtype: None,
        tunable: true,
        doc: "XOR-swizzled LDS rows (else padded by 16 bytes)",
    },
];

/// The output type parameter.
pub(crate) const OUT: ParamDef = ParamDef {
    name: "out",
    choices: Choices::DType(crate::config::FLOATS),
    default: ConfigValue::Type(Scalar::F16),
    default_for_dtype: None,
    tunable: false,
    doc: "element type of y (and of the residual)",
};

/// Whether the epilogue adds the residual `r`.
pub(crate) const RESIDUAL: ParamDef = ParamDef {
    name: "residual",
    choices: Choices::Bool,
    default: ConfigValue::Bool(false),
    default_for_dtype: None,
    tunable: false,
    doc: "add r to the product in the epilogue (y = x·Wᵀ + r)",
};

pub static SPEC: KernelSpec = KernelSpec {
    name: "gemm",
    summary: "y = x · Wᵀ (+ r) on matrix cores (f16/bf16 in, f32 accumulation)",
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
    shape: "m,n,k",
    test_shapes: &[
        &[1, 1, 1],
        &[7, 172, 64],
        &[3, 17, 4097],
        &[172, 7, 40],
        &[65, 130, 72],
        &[4097, 9, 16],
        &[2, 4097, 24],
    ],
    bench_shape: &[512, 4096, 4096],
    build,
    problem,
    available: crate::everywhere,
};

/// The multiplicand type, f16 or bf16.
pub(crate) const fn dtype_param_halves() -> ParamDef {
    let mut p = dtype_param(
        Scalar::F16,
        "element type of x and W (matrix-core multiplicands)",
    );
    p.choices = Choices::DType(HALVES);
    p
}
