//! Test and benchmark problems: a kernel at one configuration, launch dimensions, arguments with
//! fresh random inputs, and the reference outputs computed by the kernel's plain-Rust reference.
//!
//! One `Problem` serves every backend: the interpreter tests in CI, the GPU check script and the
//! GPU benchmarks all run the same problems and compare with the same references.

use greta_dsl::interp::{self, Arg, Buffer, InterpError, LaunchDims};
use greta_dsl::ir::{Access, Const, Kernel, ParamKind, Scalar};
use greta_dsl::Target;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A kernel argument: a host buffer or a scalar value.
#[derive(Clone, Debug)]
pub enum ProblemArg {
    Buffer(Buffer),
    Value(Const),
}

/// How close an output must be to the f64 reference: `|got - want| <= abs + rel * |want|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub abs: f64,
    pub rel: f64,
}

impl Tolerance {
    /// A tolerance for results stored in `dtype` after computing in f32: one rounding to the
    /// storage type plus `f32_ulps` of f32 error (relative).
    pub fn for_dtype(dtype: Scalar, f32_rel: f64) -> Tolerance {
        match dtype {
            // half an ulp of f16 (2^-11) plus slack for the f32 error propagated before rounding
            Scalar::F16 => Tolerance {
                abs: 1e-3,
                rel: 1.5e-3 + f32_rel,
            },
            // half an ulp of bf16 (2^-8)
            Scalar::BF16 => Tolerance {
                abs: 8e-3,
                rel: 8e-3 + f32_rel,
            },
            _ => Tolerance {
                abs: 1e-6 + f32_rel,
                rel: f32_rel,
            },
        }
    }

    /// Equal values always pass (so an expected infinity, e.g. a masked attention score, is
    /// matched exactly).
    pub fn accepts(&self, got: f64, want: f64) -> bool {
        got == want || (got - want).abs() <= self.abs + self.rel * want.abs()
    }
}

/// Reference values for one output argument.
#[derive(Clone, Debug)]
pub struct Expected {
    pub arg: usize,
    pub values: Vec<f64>,
    pub tolerance: Tolerance,
}

#[derive(Clone, Debug)]
pub struct Problem {
    /// The configuration the kernel was built at (the problem may adapt the requested one to
    /// its shape, e.g. a narrower vector width).
    pub config: crate::Config,
    pub kernel: Kernel,
    pub dims: LaunchDims,
    pub args: Vec<ProblemArg>,
    pub expected: Vec<Expected>,
    /// Bytes the kernel must move at least (reads + writes), for bandwidth figures.
    pub min_bytes: u64,
    /// Floating-point operations, for compute-bound figures (0 where memory bound).
    pub flops: u64,
}

/// The worst element of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub max_abs_err: f64,
    pub max_rel_err: f64,
    pub checked: usize,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CheckError {
    #[error("kernel `{kernel}`: output `{arg}` differs at index {index}: got {got}, expected {want} (tolerance {tol:?}); {bad} of {len} elements out of tolerance")]
    Mismatch {
        kernel: String,
        arg: String,
        index: usize,
        got: f64,
        want: f64,
        tol: Tolerance,
        bad: usize,
        len: usize,
    },
    #[error("kernel `{kernel}`: output `{arg}` has {got} elements, expected {want}")]
    Length {
        kernel: String,
        arg: String,
        got: usize,
        want: usize,
    },
    #[error("kernel `{kernel}`: output `{arg}` is not a buffer")]
    NotABuffer { kernel: String, arg: String },
}

impl Problem {
    /// Compares final argument buffers (in argument order) with the references.
    pub fn check(&self, buffers: &[Option<&Buffer>]) -> Result<Comparison, CheckError> {
        let mut cmp = Comparison {
            max_abs_err: 0.0,
            max_rel_err: 0.0,
            checked: 0,
        };
        for exp in &self.expected {
            let arg = self.kernel.params[exp.arg].name.clone();
            let kernel = self.kernel.name.clone();
            let got =
                buffers
                    .get(exp.arg)
                    .copied()
                    .flatten()
                    .ok_or_else(|| CheckError::NotABuffer {
                        kernel: kernel.clone(),
                        arg: arg.clone(),
                    })?;
            let got = to_f64(got);
            if got.len() != exp.values.len() {
                return Err(CheckError::Length {
                    kernel,
                    arg,
                    got: got.len(),
                    want: exp.values.len(),
                });
            }
            let mut first_bad = None;
            let mut bad = 0;
            for (i, (&g, &w)) in got.iter().zip(&exp.values).enumerate() {
                let abs = if g == w { 0.0 } else { (g - w).abs() };
                cmp.max_abs_err = cmp.max_abs_err.max(abs);
                if w.abs() > 1e-3 {
                    cmp.max_rel_err = cmp.max_rel_err.max(abs / w.abs());
                }
                if !exp.tolerance.accepts(g, w) || g.is_nan() != w.is_nan() {
                    bad += 1;
                    first_bad.get_or_insert(i);
                }
            }
            cmp.checked += got.len();
            if let Some(index) = first_bad {
                return Err(CheckError::Mismatch {
                    kernel,
                    arg,
                    index,
                    got: got[index],
                    want: exp.values[index],
                    tol: exp.tolerance,
                    bad,
                    len: got.len(),
                });
            }
        }
        Ok(cmp)
    }

    /// Runs the problem on the CPU interpreter and returns the final buffers.
    pub fn run_interpreter(&self, target: &Target) -> Result<Vec<Option<Buffer>>, InterpError> {
        let mut buffers: Vec<Option<Buffer>> = self
            .args
            .iter()
            .map(|a| match a {
                ProblemArg::Buffer(b) => Some(b.clone()),
                ProblemArg::Value(_) => None,
            })
            .collect();
        {
            let mut args: Vec<Arg<'_>> = Vec::with_capacity(self.args.len());
            for ((arg, buf), param) in self
                .args
                .iter()
                .zip(buffers.iter_mut())
                .zip(&self.kernel.params)
            {
                args.push(match (arg, buf) {
                    (ProblemArg::Value(c), _) => Arg::Value(*c),
                    (ProblemArg::Buffer(_), Some(b)) => match param.kind {
                        ParamKind::Buffer {
                            access: Access::Read,
                            ..
                        } => Arg::Read(b),
                        _ => Arg::Write(b),
                    },
                    (ProblemArg::Buffer(_), None) => unreachable!("buffers were cloned above"),
                });
            }
            interp::run(&self.kernel, target, self.dims, &mut args)?;
        }
        Ok(buffers)
    }
}

/// Converts a buffer to f64 values (exactly): [`Buffer::to_f64_vec`].
pub fn to_f64(buffer: &Buffer) -> Vec<f64> {
    buffer.to_f64_vec()
}

/// A buffer of `dtype` holding `values` rounded to it: [`Buffer::from_f64`].
pub fn from_f64(dtype: Scalar, values: &[f64]) -> Buffer {
    Buffer::from_f64(dtype, values)
}

/// `len` zeros of `dtype` (a bool buffer is u32, as in [`from_f64`]). The pages come zeroed from
/// the allocator and stay untouched until written: `greta tune` makes a problem per candidate
/// ([`Inputs::layout_only`]) whose 2048 × 32000 buffers are never uploaded.
pub fn zeros(dtype: Scalar, len: usize) -> Buffer {
    match Buffer::try_zeros(dtype, len) {
        Ok(Some(b)) => b,
        // bool, or no memory: the plain way (which aborts on no memory, as any `Vec` does).
        _ => from_f64(dtype, &vec![0.0; len]),
    }
}

/// Random inputs for problems, reproducible from a seed.
pub struct Inputs {
    rng: StdRng,
    references: bool,
    /// Zeros instead of random values ([`Inputs::layout_only`]).
    zeros: bool,
}

impl Inputs {
    pub fn new(seed: u64) -> Inputs {
        Inputs {
            rng: StdRng::seed_from_u64(seed),
            references: true,
            zeros: false,
        }
    }

    /// Inputs for a problem whose buffers are never uploaded: zeros (cheap for a 4096 × 11008
    /// weight) and no references. `greta tune` makes each candidate's problem this way to get
    /// its kernel, launch and argument layout, and launches it on buffers uploaded once per
    /// shape.
    pub fn layout_only() -> Inputs {
        Inputs {
            zeros: true,
            ..Inputs::for_timing(0)
        }
    }

    /// Inputs for timing only: problems made from them may leave out their reference values
    /// where computing them would take long (a 2048 × 11008 × 4096 GEMM in f64 is minutes of
    /// CPU); such a problem cannot be checked.
    pub fn for_timing(seed: u64) -> Inputs {
        Inputs {
            references: false,
            ..Inputs::new(seed)
        }
    }

    /// Whether problems should compute their reference values.
    pub fn references(&self) -> bool {
        self.references
    }

    /// `len` values uniform in `[lo, hi)`, rounded to `dtype`; returns the buffer and the rounded
    /// values as f64 (what the reference must see).
    pub fn uniform(&mut self, dtype: Scalar, len: usize, lo: f64, hi: f64) -> (Buffer, Vec<f64>) {
        if self.zeros {
            return (zeros(dtype, len), vec![0.0; len]);
        }
        let raw: Vec<f64> = (0..len).map(|_| self.rng.gen_range(lo..hi)).collect();
        let buffer = from_f64(dtype, &raw);
        // Without references nothing reads the values closely: the raw ones save a pass over a
        // timing problem's 100 M elements.
        let values = if self.references {
            to_f64(&buffer)
        } else {
            raw
        };
        (buffer, values)
    }

    /// `len` integers in `[0, bound)`.
    pub fn indices(&mut self, len: usize, bound: u32) -> Vec<u32> {
        if self.zeros {
            return vec![0; len];
        }
        (0..len).map(|_| self.rng.gen_range(0..bound)).collect()
    }
}

/// The number of blocks needed to cover `n` items with `per_block` each.
pub fn blocks_for(n: u64, per_block: u64) -> u32 {
    n.div_ceil(per_block).max(1) as u32
}

/// One-dimensional launch dimensions.
pub fn linear(grid: u32, block: u32) -> LaunchDims {
    LaunchDims {
        grid: [grid, 1, 1],
        block: [block, 1, 1],
    }
}
