//! Test and benchmark problems of the projection kernels — `gemm`, `gemm_q8`, `gemm_wg`,
//! `gemm_wg_q8`, `gemv`, `gemv_q8` — which all compute `y = x · Wᵀ (+ r)` with the arguments
//! `x, W (dense, or Q8_0 scales and quants), r, y, m, n, k`: one maker of their inputs,
//! reference, tolerance and floor.

use crate::gemm::{gemm_tolerance, reference};
use crate::matmul::mnk;
use crate::problem::{from_f64, to_f64, zeros, Expected, Inputs, Problem, ProblemArg};
use crate::q8::QK8_0;
use crate::{Config, ProblemError};
use greta_dsl::interp::{Buffer, LaunchDims};
use greta_dsl::ir::{ConfigValue, Const, Kernel};

/// The weights a projection kernel takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Weights {
    /// `W` in the kernel's `dtype`.
    Dense,
    /// Q8_0 scales and quants (`k` a multiple of 32). `rounded`: the kernel dequantises into
    /// its `dtype` before multiplying (the matrix-core GEMMs), so the reference sees `W`
    /// rounded to it; else the dequantised values are used in f32 (the GEMVs).
    Q8 { rounded: bool },
}

/// What a projection kernel multiplies: its leading arguments and the rows of `x` they stand
/// for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// `x: &[T]`.
    Plain,
    /// `h: &[T], g: &[T]` and a trailing `eps: f32`: `x = h / rms(h) · g`, row by row
    /// (`gemv_norm`).
    Norm,
}

/// The RMSNorm epsilon of the fused problems (Llama's).
pub(crate) const NORM_EPS: f32 = 1e-5;

impl Input {
    /// Random inputs for `m` rows of `k`: the kernel's leading arguments, the rows of `x`
    /// they make (f64) and the largest magnitude of those (the dot product's tolerance
    /// scales with it).
    fn make(
        self,
        inputs: &mut Inputs,
        dtype: greta_dsl::ir::Scalar,
        m: usize,
        k: usize,
    ) -> (Vec<ProblemArg>, Vec<f64>, f64) {
        match self {
            Input::Plain => {
                let (xb, x) = inputs.uniform(dtype, m * k, -1.0, 1.0);
                (vec![ProblemArg::Buffer(xb)], x, 1.0)
            }
            Input::Norm => {
                let (hb, h) = inputs.uniform(dtype, m * k, -1.0, 1.0);
                let (gb, g) = inputs.uniform(dtype, k, -0.5, 0.5);
                let eps = NORM_EPS as f64;
                let mut x = Vec::with_capacity(m * k);
                for row in h.chunks(k.max(1)) {
                    let mean = row.iter().map(|v| v * v).sum::<f64>() / k as f64;
                    let inv = 1.0 / (mean + eps).sqrt();
                    x.extend(row.iter().zip(&g).map(|(v, w)| v * inv * w));
                }
                // |h / rms(h)| ≤ √k; random rows stay near 1, and at most 0.5 after `g`.
                let args = vec![ProblemArg::Buffer(hb), ProblemArg::Buffer(gb)];
                (args, x, 2.0)
            }
        }
    }
}

/// The problem of the projection kernel `name` at shape `m,n,k`. `make` gets the requested
/// configuration and `m`, `n` and returns the configuration the problem runs (the GEMV fits its
/// token tile to `m`), the kernel built at it and the launch. `x_in_floor`: whether reading `x`
/// counts towards the minimum bytes (not for the GEMVs, whose `x` is a few cached rows).
#[allow(clippy::too_many_arguments)]
pub(crate) fn problem(
    name: &'static str,
    expected_shape: &'static str,
    shape: &[u32],
    cfg: &Config,
    inputs: &mut Inputs,
    weights: Weights,
    input: Input,
    x_in_floor: bool,
    make: impl FnOnce(&Config, u32, u32) -> Result<(Config, Kernel, LaunchDims), ProblemError>,
) -> Result<Problem, ProblemError> {
    let multiple = match weights {
        Weights::Dense => 1,
        Weights::Q8 { .. } => QK8_0 as u32,
    };
    let (m, n, k) = mnk(name, shape, expected_shape, multiple)?;
    let (config, kernel, dims) = make(cfg, m, n)?;
    let (dtype, out) = (config.dtype("dtype"), config.dtype("out"));
    let (mu, nu, ku) = (m as usize, n as usize, k as usize);
    let (mut args, x, magnitude) = input.make(inputs, dtype, mu, ku);
    // The SwiGLU epilogue's weights: the gate's n rows, then the up's.
    let glu = config.get("glu") == Some(&ConfigValue::Bool(true));
    let wrows = nu * (1 + glu as usize);
    let (w, weight_bytes) = match weights {
        Weights::Dense => {
            let (wb, w) = inputs.uniform(dtype, wrows * ku, -1.0, 1.0);
            args.push(ProblemArg::Buffer(wb));
            (w, wrows * ku * dtype.size_bytes() as usize)
        }
        Weights::Q8 { rounded } => {
            let (scales, quants, w) = crate::q8::random(inputs, wrows, ku, -1.0, 1.0);
            args.push(ProblemArg::Buffer(Buffer::F16(scales)));
            args.push(ProblemArg::Buffer(Buffer::U32(quants)));
            let w = if rounded {
                to_f64(&from_f64(dtype, &w))
            } else {
                w
            };
            (w, wrows * ku / QK8_0 * 34)
        }
    };
    let residual = config.bool("residual");
    let (rb, rv) = inputs.uniform(out, mu * nu, -1.0, 1.0);
    let y_arg = args.len() + 1;
    args.extend([
        ProblemArg::Buffer(rb),
        ProblemArg::Buffer(zeros(out, mu * nu)),
        ProblemArg::Value(Const::U32(m)),
        ProblemArg::Value(Const::U32(n)),
        ProblemArg::Value(Const::U32(k)),
    ]);
    if input == Input::Norm {
        args.push(ProblemArg::Value(Const::F32(NORM_EPS)));
    }
    let mut tolerance = gemm_tolerance(out, k);
    tolerance.abs *= magnitude;
    let values = if !inputs.references() {
        Vec::new()
    } else if glu {
        // silu(g) · u: an error δ in either sum moves the output by at most δ · (|u| + |g|).
        let sums = reference(&x, &w, None, mu, wrows, ku);
        let mut spread = 1.0f64;
        let mut values = Vec::with_capacity(mu * nu);
        for (j, row) in sums.chunks(wrows).enumerate() {
            let (gate, up) = row.split_at(nu);
            for (i, (g, u)) in gate.iter().zip(up).enumerate() {
                spread = spread.max(g.abs() + u.abs());
                let r = if residual { rv[j * nu + i] } else { 0.0 };
                values.push(g / (1.0 + (-g).exp()) * u + r);
            }
        }
        tolerance.abs *= spread;
        values
    } else {
        reference(&x, &w, residual.then_some(&rv[..]), mu, nu, ku)
    };
    let x_bytes = if x_in_floor {
        mu * ku * dtype.size_bytes() as usize
    } else {
        0
    };
    Ok(Problem {
        config,
        kernel,
        dims,
        args,
        expected: vec![Expected {
            arg: y_arg,
            values,
            tolerance,
        }],
        min_bytes: (weight_bytes
            + x_bytes
            + mu * nu * out.size_bytes() as usize * (1 + residual as usize))
            as u64,
        flops: 2 * (mu * wrows * ku) as u64,
    })
}
