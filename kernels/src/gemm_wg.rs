//! The prefill GEMM on sm_90a's warpgroup matrix engine (`wgmma`): `y = x · Wᵀ (+ r)` as
//! [`gemm`](crate::gemm) computes it, for the targets that have the engine (NVIDIA Hopper).
//!
//! Why a second kernel: Hopper's warp-level `mma.sync` (what `gemm` uses there) runs at about
//! half the tensor cores' rate, below the 0.8 × cuBLAS this GEMM is held to; the warpgroup
//! engine reads both operands straight from LDS and runs asynchronously, so the threads spend
//! their time feeding it. It is a different operation (operands in LDS, four warps, an
//! asynchronous completion model), so it is its own IR statement (`WarpgroupMma`), not a
//! lowering of the register-fragment `Mma`.
//!
//! Each block computes `bm × bn` outputs with `bm / 64` warpgroups, each warpgroup a `64 × bn`
//! accumulator tile; K-tiles of 64 are copied asynchronously (`cp.async`, zero-filled at the
//! edges) into `stages` 128-byte-swizzled LDS stages, `stages - 2` ahead of the engine (see
//! [`crate::tiled::warpgroup_gemm_body`]). `gemm_wg_q8` dequantises Q8_0 weights into the
//! stage with ordinary loads and stores instead.
//!
//! Arguments as `gemm` / `gemm_q8`. Launch with [`launch`].

use crate::gemm::{dtype_param_halves, OUT, RESIDUAL};
use crate::problem::{blocks_for, Inputs, Problem};
use crate::projection::Weights;
use crate::tiled::{warpgroup_gemm_body, Dense, WgShape, Q8};
use crate::{config::u32_param, dispatch, Config, KernelSpec, ParamDef, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::LaunchDims;
use greta_dsl::ir::Kernel;
use greta_dsl::prelude::*;
use greta_dsl::Target;

#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn gemm_wg<T: MatrixElem, O: Float>(
    x: &[T],
    w: &[T],
    r: &[O],
    y: &mut [O],
    m: u32,
    n: u32,
    k: u32,
    #[comptime] bm: u32,
    #[comptime] bn: u32,
    #[comptime] stages: u32,
    #[comptime] residual: bool,
) {
    #[comptime]
    let shape = WgShape::in_kernel(bm, bn, stages, T::SCALAR);
    warpgroup_gemm_body::<T, O, Dense<T>>(x, Dense(w), r, y, m, n, k, shape, residual);
}

#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn gemm_wg_q8<T: MatrixElem, O: Float>(
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
    #[comptime] stages: u32,
    #[comptime] residual: bool,
) {
    #[comptime]
    let shape = WgShape::in_kernel(bm, bn, stages, T::SCALAR);
    warpgroup_gemm_body::<T, O, Q8>(x, Q8 { scales, quants }, r, y, m, n, k, shape, residual);
}

fn shape_of(kernel: &str, cfg: &Config, target: &'static Target) -> Result<WgShape, BuildError> {
    WgShape::new(
        cfg.u32("bm"),
        cfg.u32("bn"),
        cfg.u32("stages"),
        target,
        cfg.dtype("dtype"),
    )
    .map_err(|message| BuildError::Invalid {
        kernel: kernel.to_string(),
        message,
    })
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    shape_of("gemm_wg", cfg, target)?;
    let (bm, bn, st, res) = (
        cfg.u32("bm"),
        cfg.u32("bn"),
        cfg.u32("stages"),
        cfg.bool("residual"),
    );
    dispatch!(cfg, target, gemm_wg, Half, O; bm, bn, st, res)
}

fn build_q8(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    shape_of("gemm_wg_q8", cfg, target)?;
    let (bm, bn, st, res) = (
        cfg.u32("bm"),
        cfg.u32("bn"),
        cfg.u32("stages"),
        cfg.bool("residual"),
    );
    dispatch!(cfg, target, gemm_wg_q8, Half, O; bm, bn, st, res)
}

/// Launch: grid `[⌈N / bn⌉, ⌈M / bm⌉, 1]`, `bm / 64` warpgroups per block.
pub fn launch(cfg: &Config, target: &Target, m: u32, n: u32) -> LaunchDims {
    let wg = target.warpgroup.map_or(4, |w| w.waves) * target.wave_size;
    LaunchDims {
        grid: [
            blocks_for(n as u64, cfg.u32("bn") as u64),
            blocks_for(m as u64, cfg.u32("bm") as u64),
            1,
        ],
        block: [cfg.u32("bm") / 64 * wg, 1, 1],
    }
}

/// The `bn` values [`bn_for`] chooses among (with `bm` = 128 and [`stages_for`]).
pub const BN_CHOICES: [u32; 3] = [256, 192, 128];

/// The most stages (up to the parameter's 7) of `128 × 64` and `bn × 64` tiles the target's
/// LDS holds: 7 for bn = 128, 5 for 192, 4 for 256 on sm_90. More stages put more copies in
/// flight ahead of the engine: at bn = 128 on the H200, 4 → 7 stages took 512×4096×4096 from
/// 428 to 477 TFLOP/s (BENCHMARKS.md).
pub fn stages_for(bn: u32, target: &Target) -> u32 {
    let row_bytes = target.warpgroup.map_or(128, |w| w.row_bytes);
    let per_stage = (128 + bn) * row_bytes;
    (target.lds_bytes_max / per_stage.max(1)).clamp(3, 7)
}

/// Throughput of one block relative to `bn` = 256, measured on the H200 (BENCHMARKS.md): a
/// narrower tile re-reads the `x` tile for fewer columns and spends a larger share of its time
/// filling and draining the pipeline.
fn relative_rate(bn: u32) -> f64 {
    match bn {
        256 => 1.0,
        192 => 0.93,
        _ => 0.85,
    }
}

/// The `bn` for an `m × n` output on `target`, by a wave-quantisation model until `greta tune`
/// records measured choices: blocks run in waves of one per compute unit, so the time goes as
/// `waves · bn / rate(bn)`. At 512 tokens a 4096-wide output has 64 blocks of 128 × 256 — half
/// the H200's 132 SMs idle — and 128 of 128 × 128 fill it; at 2048 tokens the wide tile wins.
pub fn bn_for(m: u32, n: u32, target: &Target) -> u32 {
    let units = target.compute_units.max(1) as u64;
    let cost = |bn: u32| {
        let blocks = blocks_for(m as u64, 128) as u64 * blocks_for(n as u64, bn as u64) as u64;
        let waves = blocks.div_ceil(units);
        waves as f64 * bn as f64 / relative_rate(bn)
    };
    BN_CHOICES
        .into_iter()
        .min_by(|&a, &b| cost(a).total_cmp(&cost(b)))
        .unwrap_or(256)
}

#[cfg(test)]
mod tests {
    use super::*;
    use greta_dsl::ir::Scalar;

    /// The choices the H200 measurements behind [`relative_rate`] favoured (BENCHMARKS.md).
    #[test]
    fn bn_fills_the_machine() {
        assert_eq!(bn_for(512, 4096, &Target::SM_90), 128);
        assert_eq!(bn_for(512, 11008, &Target::SM_90), 192);
        assert_eq!(bn_for(2048, 11008, &Target::SM_90), 256);
        assert_eq!(bn_for(2048, 4096, &Target::SM_90), 256);
    }

    /// Every choice builds: the stages chosen fit the LDS.
    #[test]
    fn chosen_stages_fit() {
        let t = &Target::SM_90;
        assert_eq!(BN_CHOICES.map(|bn| stages_for(bn, t)), [4, 5, 7]);
        for bn in BN_CHOICES {
            WgShape::new(128, bn, stages_for(bn, t), t, Scalar::F16).unwrap();
        }
    }
}

/// Whether a target has the warpgroup engine these kernels run on.
pub fn available(target: &Target) -> bool {
    target.warpgroup.is_some()
}

fn problem_with(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
    q8: bool,
) -> Result<Problem, ProblemError> {
    let (name, expected, weights) = if q8 {
        ("gemm_wg_q8", SPEC_Q8.shape, Weights::Q8 { rounded: true })
    } else {
        ("gemm_wg", SPEC.shape, Weights::Dense)
    };
    crate::projection::problem(
        name,
        expected,
        shape,
        cfg,
        inputs,
        weights,
        crate::projection::Input::Plain,
        true,
        |cfg, m, n| {
            let kernel = if q8 {
                build_q8(cfg, target)?
            } else {
                build(cfg, target)?
            };
            Ok((cfg.clone(), kernel, launch(cfg, target, m, n)))
        },
    )
}

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    problem_with(cfg, target, shape, inputs, false)
}

fn problem_q8(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    problem_with(cfg, target, shape, inputs, true)
}

/// The tile parameters both kernels take.
const WG_PARAMS: [ParamDef; 3] = [
    u32_param(
        "bm",
        &[64, 128, 192],
        128,
        "output rows per block (64 per warpgroup)",
    ),
    u32_param(
        "bn",
        &[64, 128, 192, 256],
        128,
        "output columns per block (the engine's n)",
    ),
    u32_param(
        "stages",
        &[3, 4, 5, 6, 7],
        4,
        "LDS stages of 64-deep K-tiles (filled stages − 2 ahead of the engine; as many as the LDS holds)",
    ),
];

pub static SPEC: KernelSpec = KernelSpec {
    name: "gemm_wg",
    summary: "y = x · Wᵀ (+ r) on sm_90a's warpgroup matrix engine (wgmma, cp.async pipeline)",
    params: &[
        dtype_param_halves(),
        OUT,
        RESIDUAL,
        WG_PARAMS[0],
        WG_PARAMS[1],
        WG_PARAMS[2],
    ],
    shape: "m,n,k",
    test_shapes: &[
        &[1, 1, 1],
        &[7, 172, 64],
        &[3, 17, 4097],
        &[172, 7, 40],
        &[65, 300, 200],
        &[4097, 9, 16],
        &[2, 4097, 24],
    ],
    bench_shape: &[512, 4096, 4096],
    build,
    problem,
    available,
};

pub static SPEC_Q8: KernelSpec = KernelSpec {
    name: "gemm_wg_q8",
    summary: "gemm_wg with Q8_0 weights, dequantised into the LDS stages",
    params: &[
        dtype_param_halves(),
        OUT,
        RESIDUAL,
        WG_PARAMS[0],
        WG_PARAMS[1],
        WG_PARAMS[2],
    ],
    shape: "m,n,k (k a multiple of 32)",
    test_shapes: &[&[1, 1, 32], &[7, 172, 64], &[3, 17, 4096], &[130, 300, 96]],
    bench_shape: &[512, 4096, 4096],
    build: build_q8,
    problem: problem_q8,
    available,
};
