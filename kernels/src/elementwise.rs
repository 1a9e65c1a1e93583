//! What the binary elementwise kernels (`out = f(a, b)`: add, silu_mul) share: their launch
//! geometry and the shape of their test problems, so each kernel module holds only its kernel,
//! its reference and its input ranges.

use crate::problem::{blocks_for, linear, zeros, Expected, Inputs, Problem, ProblemArg, Tolerance};
use crate::{Config, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::LaunchDims;
use greta_dsl::ir::{Const, Kernel};
use greta_dsl::Target;

/// One thread per `vec` elements.
pub fn launch(cfg: &Config, n: u32) -> LaunchDims {
    let per_block = cfg.u32("block") as u64 * cfg.u32("vec") as u64;
    linear(blocks_for(n as u64, per_block), cfg.u32("block"))
}

/// The element count of a problem shaped `n` or `rows,cols`.
pub(crate) fn len(
    kernel: &'static str,
    shape: &[u32],
    expected: &'static str,
) -> Result<u32, ProblemError> {
    let n = shape.iter().try_fold(1u32, |acc, &d| acc.checked_mul(d));
    match (shape.len(), n) {
        (1 | 2, Some(n)) if n > 0 => Ok(n),
        _ => Err(ProblemError::Shape {
            kernel,
            shape: shape.to_vec(),
            expected,
        }),
    }
}

/// How a binary elementwise kernel is tested: its build function, the ranges its two inputs are
/// drawn from, its f64 reference and the f32 relative error its arithmetic adds.
pub(crate) struct Binary {
    pub kernel: &'static str,
    pub shape_doc: &'static str,
    pub build: fn(&Config, &'static Target) -> Result<Kernel, BuildError>,
    pub ranges: [(f64, f64); 2],
    pub reference: fn(&[f64], &[f64]) -> Vec<f64>,
    pub f32_rel: f64,
}

impl Binary {
    /// A problem `out = f(a, b)` over `n` elements (arguments: a, b, out, n).
    pub fn problem(
        &self,
        cfg: &Config,
        target: &'static Target,
        shape: &[u32],
        inputs: &mut Inputs,
    ) -> Result<Problem, ProblemError> {
        let n = len(self.kernel, shape, self.shape_doc)?;
        let dtype = cfg.dtype("dtype");
        let [(a_lo, a_hi), (b_lo, b_hi)] = self.ranges;
        let (ab, a) = inputs.uniform(dtype, n as usize, a_lo, a_hi);
        let (bb, b) = inputs.uniform(dtype, n as usize, b_lo, b_hi);
        Ok(Problem {
            config: cfg.clone(),
            kernel: (self.build)(cfg, target)?,
            dims: launch(cfg, n),
            args: vec![
                ProblemArg::Buffer(ab),
                ProblemArg::Buffer(bb),
                ProblemArg::Buffer(zeros(dtype, n as usize)),
                ProblemArg::Value(Const::U32(n)),
            ],
            expected: vec![Expected {
                arg: 2,
                values: (self.reference)(&a, &b),
                tolerance: Tolerance::for_dtype(dtype, self.f32_rel),
            }],
            min_bytes: 3 * n as u64 * dtype.size_bytes() as u64,
            flops: 0,
        })
    }
}
