//! greta-kernels: the kernel library, written in greta's DSL.
//!
//! Each kernel module holds the `#[kernel]` definition, a plain-Rust reference (obvious loops,
//! f64 arithmetic) and a [`KernelSpec`]: the kernel's tunable parameters, how to build it for a
//! configuration, and how to make a test or benchmark [`Problem`] of a given shape. Everything
//! that runs kernels (interpreter tests, `greta inspect`, the GPU check and benchmarks) goes
//! through [`all`] and the specs, so adding a kernel is adding one module and one line here.

pub mod config;
pub mod elementwise;
pub mod flash;
pub mod helpers;
pub mod problem;
mod projection;

pub mod q8;
pub mod tiled;

pub mod add;
pub mod attn_decode;
pub mod attn_flash;
pub mod attn_mma;
pub mod attn_qlds;
pub mod attn_scores;
pub mod attn_values;
pub mod copy;
pub mod embedding;
pub mod embedding_q8;
pub mod gemm;
pub mod gemm_q8;
pub mod gemm_wg;
pub mod gemv;
pub mod gemv_fused;
pub mod gemv_q8;
pub mod matmul;
pub mod matmul_q8;
pub mod rmsnorm;
pub mod rope;
pub mod rope_cache;
pub mod silu_mul;
pub mod softmax;

pub use config::{Config, ConfigError, ParamDef};
pub use problem::{Expected, Inputs, Problem, ProblemArg, Tolerance};

use greta_dsl::front::BuildError;
use greta_dsl::ir::{Kernel, Scalar};
use greta_dsl::Target;

/// Why a problem could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProblemError {
    #[error("kernel `{kernel}`: shape {shape:?} is not valid: expected {expected}")]
    Shape {
        kernel: &'static str,
        shape: Vec<u32>,
        expected: &'static str,
    },
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// Everything greta knows about one kernel of the library.
pub struct KernelSpec {
    pub name: &'static str,
    pub summary: &'static str,
    /// Tunable parameters (comptime), with defaults.
    pub params: &'static [ParamDef],
    /// What the numbers of a problem shape mean, e.g. `rows,cols`.
    pub shape: &'static str,
    /// Awkward shapes the tests run for every dtype.
    pub test_shapes: &'static [&'static [u32]],
    /// The benchmark shape (4096 × 4096 activations).
    pub bench_shape: &'static [u32],
    /// Builds the kernel at a configuration for a target (the builder sees the target's wave
    /// size, LDS limits and matrix instructions).
    pub build: fn(&Config, &'static Target) -> Result<Kernel, BuildError>,
    /// A test or benchmark problem of a shape, with the kernel built for the target.
    pub problem: fn(&Config, &'static Target, &[u32], &mut Inputs) -> Result<Problem, ProblemError>,
    /// Whether the kernel exists on a target (the warpgroup GEMM needs sm_90a's engine); the
    /// commands and tests that go over every kernel skip it elsewhere.
    pub available: fn(&Target) -> bool,
}

/// For kernels every target runs.
pub fn everywhere(_: &Target) -> bool {
    true
}

impl KernelSpec {
    /// The configuration from defaults and `key=value,...` overrides.
    pub fn config(&self, overrides: &str) -> Result<Config, ConfigError> {
        Config::parse(self.name, self.params, overrides)
    }

    /// The element types the kernel's `dtype` parameter takes (f16, bf16, f32 for most; the
    /// matrix-core kernels take f16 and bf16).
    pub fn dtypes(&self) -> Vec<Scalar> {
        self.params
            .iter()
            .find(|p| p.name == "dtype")
            .map(|p| match p.choices {
                config::Choices::DType(list) => list.to_vec(),
                _ => Vec::new(),
            })
            .unwrap_or_default()
    }

    pub fn default_config(&self) -> Config {
        self.config("").expect("defaults are always valid")
    }

    /// The tuning space around `base`: every combination of the tunable parameters' values
    /// ([`ParamDef::tunable`]), the others (element types, fused epilogues, ...) as in `base`,
    /// minus those named in `pinned` (which keep `base`'s value). `base` itself comes first.
    /// Whether a combination is valid is the kernel's own builder's to say (tile divisibility,
    /// LDS and register bounds against the target); see `greta tune`.
    pub fn space(&self, base: &Config, pinned: &[&str]) -> Vec<Config> {
        let mut out = vec![base.clone()];
        for p in self
            .params
            .iter()
            .filter(|p| p.tunable && !pinned.contains(&p.name))
        {
            if matches!(p.choices, config::Choices::DType(_)) {
                continue;
            }
            out = out
                .iter()
                .flat_map(|c| p.values().into_iter().map(move |v| c.with(p.name, v)))
                .collect();
        }
        let mut seen = std::collections::HashSet::new();
        let base_first = std::iter::once(base.clone()).chain(out);
        base_first.filter(|c| seen.insert(c.clone())).collect()
    }
}

/// All kernels of the library, in a stable order.
pub fn all() -> &'static [&'static KernelSpec] {
    static ALL: &[&KernelSpec] = &[
        &rmsnorm::SPEC,
        &rope::SPEC,
        &rope_cache::SPEC,
        &silu_mul::SPEC,
        &add::SPEC,
        &embedding::SPEC,
        &softmax::SPEC,
        &matmul::SPEC,
        &matmul_q8::SPEC,
        &gemm::SPEC,
        &gemm_q8::SPEC,
        &gemm_wg::SPEC,
        &gemm_wg::SPEC_Q8,
        &gemv::SPEC,
        &gemv_q8::SPEC,
        &gemv_fused::NORM_SPEC,
        &embedding_q8::SPEC,
        &attn_scores::SPEC,
        &attn_values::SPEC,
        &attn_decode::SPEC,
        &attn_decode::SPEC_COMBINE,
        &attn_flash::SPEC,
        &attn_qlds::SPEC,
        &attn_mma::SPEC,
        &copy::SPEC,
    ];
    ALL
}

/// The kernel called `name`.
pub fn by_name(name: &str) -> Option<&'static KernelSpec> {
    all().iter().copied().find(|k| k.name == name)
}

/// Calls a kernel builder generic over `T` (from the `dtype` parameter) and, optionally, a
/// vector width `V` (from `vec`), for `target`, with the given comptime arguments.
#[macro_export]
macro_rules! dispatch {
    // The matrix kernels: multiplicands f16 or bf16 (`dtype`), output f16, bf16 or f32 (`out`).
    ($cfg:expr, $target:expr, $f:ident, Half, O; $($arg:expr),*) => {{
        use $crate::__private::*;
        match ($cfg.dtype("dtype"), $cfg.dtype("out")) {
            (Scalar::F16, Scalar::F16) => $f::<f16, f16>($target, $($arg),*),
            (Scalar::F16, Scalar::BF16) => $f::<f16, bf16>($target, $($arg),*),
            (Scalar::F16, _) => $f::<f16, f32>($target, $($arg),*),
            (_, Scalar::F16) => $f::<bf16, f16>($target, $($arg),*),
            (_, Scalar::BF16) => $f::<bf16, bf16>($target, $($arg),*),
            (_, _) => $f::<bf16, f32>($target, $($arg),*),
        }
    }};
    // Any float `dtype` with any float `out`.
    ($cfg:expr, $target:expr, $f:ident, T, O; $($arg:expr),*) => {{
        use $crate::__private::*;
        match ($cfg.dtype("dtype"), $cfg.dtype("out")) {
            (Scalar::F16, Scalar::F16) => $f::<f16, f16>($target, $($arg),*),
            (Scalar::F16, Scalar::BF16) => $f::<f16, bf16>($target, $($arg),*),
            (Scalar::F16, _) => $f::<f16, f32>($target, $($arg),*),
            (Scalar::BF16, Scalar::F16) => $f::<bf16, f16>($target, $($arg),*),
            (Scalar::BF16, Scalar::BF16) => $f::<bf16, bf16>($target, $($arg),*),
            (Scalar::BF16, _) => $f::<bf16, f32>($target, $($arg),*),
            (_, Scalar::F16) => $f::<f32, f16>($target, $($arg),*),
            (_, Scalar::BF16) => $f::<f32, bf16>($target, $($arg),*),
            (_, _) => $f::<f32, f32>($target, $($arg),*),
        }
    }};
    ($cfg:expr, $target:expr, $f:ident, T; $($arg:expr),*) => {{
        use $crate::__private::*;
        match $cfg.dtype("dtype") {
            Scalar::F16 => $f::<f16>($target, $($arg),*),
            Scalar::BF16 => $f::<bf16>($target, $($arg),*),
            _ => $f::<f32>($target, $($arg),*),
        }
    }};
    // The matrix kernels with a vector width `vec` as well.
    ($cfg:expr, $target:expr, $f:ident, Half, O, V; $($arg:expr),*) => {{
        match $cfg.u32("vec") {
            1 => $crate::dispatch!(@half_out $cfg, $target, $f, 1; $($arg),*),
            2 => $crate::dispatch!(@half_out $cfg, $target, $f, 2; $($arg),*),
            4 => $crate::dispatch!(@half_out $cfg, $target, $f, 4; $($arg),*),
            _ => $crate::dispatch!(@half_out $cfg, $target, $f, 8; $($arg),*),
        }
    }};
    (@half_out $cfg:expr, $target:expr, $f:ident, $v:literal; $($arg:expr),*) => {{
        use $crate::__private::*;
        match ($cfg.dtype("dtype"), $cfg.dtype("out")) {
            (Scalar::F16, Scalar::F16) => $f::<f16, f16, $v>($target, $($arg),*),
            (Scalar::F16, Scalar::BF16) => $f::<f16, bf16, $v>($target, $($arg),*),
            (Scalar::F16, _) => $f::<f16, f32, $v>($target, $($arg),*),
            (_, Scalar::F16) => $f::<bf16, f16, $v>($target, $($arg),*),
            (_, Scalar::BF16) => $f::<bf16, bf16, $v>($target, $($arg),*),
            (_, _) => $f::<bf16, f32, $v>($target, $($arg),*),
        }
    }};
    ($cfg:expr, $target:expr, $f:ident, T, V; $($arg:expr),*) => {{
        use $crate::__private::*;
        match ($cfg.dtype("dtype"), $cfg.u32("vec")) {
            (Scalar::F16, 1) => $f::<f16, 1>($target, $($arg),*),
            (Scalar::F16, 2) => $f::<f16, 2>($target, $($arg),*),
            (Scalar::F16, 4) => $f::<f16, 4>($target, $($arg),*),
            (Scalar::F16, _) => $f::<f16, 8>($target, $($arg),*),
            (Scalar::BF16, 1) => $f::<bf16, 1>($target, $($arg),*),
            (Scalar::BF16, 2) => $f::<bf16, 2>($target, $($arg),*),
            (Scalar::BF16, 4) => $f::<bf16, 4>($target, $($arg),*),
            (Scalar::BF16, _) => $f::<bf16, 8>($target, $($arg),*),
            (_, 1) => $f::<f32, 1>($target, $($arg),*),
            (_, 2) => $f::<f32, 2>($target, $($arg),*),
            (_, 4) => $f::<f32, 4>($target, $($arg),*),
            (_, _) => $f::<f32, 8>($target, $($arg),*),
        }
    }};
}

#[doc(hidden)]
pub mod __private {
    pub use greta_dsl::ir::Scalar;
    pub use half::{bf16, f16};
}

/// Rejects vector widths wider than one 16-byte access for the element type.
pub(crate) fn check_vec_width(kernel: &str, cfg: &Config) -> Result<(), BuildError> {
    let bytes = cfg.dtype("dtype").size_bytes() * cfg.u32("vec");
    if bytes > 16 {
        return Err(BuildError::Invalid {
            kernel: kernel.to_string(),
            message: format!(
                "vec={} of {} is {bytes} bytes; one access moves at most 16",
                cfg.u32("vec"),
                cfg.dtype("dtype")
            ),
        });
    }
    Ok(())
}
