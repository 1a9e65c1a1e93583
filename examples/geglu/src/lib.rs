//! A kernel written outside greta's kernel library, as a kernel author's own crate would write
//! it: GeGLU (`out = gelu(gate) * up`, elementwise, with the tanh approximation of GELU), in
//! greta's DSL, generic over the element type and the vector width.
//!
//! The crate depends on `greta-dsl` (to write and build the kernel) and `greta-runtime` (to run
//! it on a [`Backend`] and to compile it) only. It holds what every kernel needs beside its
//! body:
//! - [`reference()`]: the f64 definition the kernel is checked against;
//! - [`build`]: the kernel's IR for a target, an element type and a vector width;
//! - [`check`]: the kernel run on a backend (the CPU interpreter in the tests) against the
//!   reference, within [`tolerance`];
//! - [`compile`]: the kernel compiled for gfx942 or sm_90 by either lowering, with the code
//!   object's size and resources.
//!
//! `src/main.rs` runs all of them and prints what it checked; `tests/geglu.rs` asserts them.

use anyhow::{bail, ensure, Context};
use greta_dsl::interp::{Buffer, LaunchDims};
use greta_dsl::ir::{Kernel, Scalar};
use greta_dsl::prelude::*;
use greta_runtime::{Backend, Compiled, KernelArg, Via};

/// `sqrt(2 / π)`, the tanh approximation's scale.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The tanh approximation's cubic coefficient.
const CUBIC: f32 = 0.044_715;

/// Threads per block: a multiple of both targets' wave sizes (64 on gfx942, 32 on sm_90).
pub const BLOCK: u32 = 256;

/// `out = gelu(gate) * up` with `gelu(x) = x/2 · (1 + tanh(√(2/π) · (x + 0.044715·x³)))`,
/// computed in f32 and rounded to `T` once.
///
/// Each thread takes `V` consecutive elements with one vector load per operand (16 bytes at the
/// widest: `V = 16 / size_of::<T>()`) and one vector store; the thread that holds the last,
/// partial vector does its elements one by one, so any `n` is allowed.
#[kernel]
pub fn geglu<T: Float, const V: usize>(
    gate: &[T],
    up: &[T],
    out: &mut [T],
    n: u32,
    #[comptime] block: u32,
) {
    block_size(block);
    #[comptime]
    let v = V as u32;
    let i = (block_idx().x * block + thread_idx().x) * v;
    if i + v <= n {
        let g = vload::<V, _>(&gate, i).to_f32();
        let u = vload::<V, _>(&up, i).to_f32();
        let half = Val::<Vector<f32, V>>::splat(0.5f32);
        let one = Val::<Vector<f32, V>>::splat(1.0f32);
        let scale = Val::<Vector<f32, V>>::splat(SQRT_2_OVER_PI);
        let cubic = Val::<Vector<f32, V>>::splat(CUBIC);
        let inner = scale * (g + cubic * g * g * g);
        let r = half * g * (one + inner.tanh()) * u;
        vstore::<V, _>(&out, i, r.cast::<T>());
    } else {
        for k in i..n {
            let g = gate[k].to_f32();
            let inner = SQRT_2_OVER_PI * (g + CUBIC * g * g * g);
            out[k] = T::from_f32(0.5f32 * g * (1.0f32 + inner.tanh()) * up[k].to_f32());
        }
    }
}

/// GELU's tanh approximation in f64: what [`geglu`] computes, without rounding.
pub fn gelu(x: f64) -> f64 {
    let scale = (2.0 / std::f64::consts::PI).sqrt();
    0.5 * x * (1.0 + (scale * (x + 0.044715 * x * x * x)).tanh())
}

/// The reference: `gelu(gate[i]) * up[i]` in f64.
pub fn reference(gate: &[f64], up: &[f64]) -> Vec<f64> {
    gate.iter().zip(up).map(|(&g, &u)| gelu(g) * u).collect()
}

/// The widest vector (16 bytes) for an element type: 4 for f32, 8 for f16 and bf16.
pub fn default_vec(dtype: Scalar) -> u32 {
    16 / dtype.size_bytes()
}

/// [`geglu`]'s IR for `target`, element type `dtype` (f32, f16 or bf16) and vector width `vec`
/// (1, 2, 4, or 8 for the 16-bit types): the generic kernel instantiated for the values a caller
/// chooses at run time.
pub fn build(target: &'static Target, dtype: Scalar, vec: u32) -> anyhow::Result<Kernel> {
    ensure!(
        matches!(vec, 1 | 2 | 4 | 8) && vec <= default_vec(dtype),
        "vector width {vec} for {dtype}: one of 1, 2, 4, 8, at most 16 bytes"
    );
    macro_rules! widths {
        ($t:ty) => {
            match vec {
                1 => geglu::<$t, 1>(target, BLOCK),
                2 => geglu::<$t, 2>(target, BLOCK),
                4 => geglu::<$t, 4>(target, BLOCK),
                _ => geglu::<$t, 8>(target, BLOCK),
            }
        };
    }
    let kernel = match dtype {
        Scalar::F32 => widths!(f32),
        Scalar::F16 => widths!(f16),
        Scalar::BF16 => widths!(bf16),
        other => bail!("geglu is defined for f32, f16 and bf16, not {other}"),
    };
    Ok(kernel?)
}

/// The launch for `n` elements: one thread per `vec` elements, [`BLOCK`] threads a block.
pub fn launch_dims(n: u32, vec: u32) -> LaunchDims {
    let per_block = (BLOCK * vec) as u64;
    LaunchDims::linear((n as u64).div_ceil(per_block).max(1) as u32, BLOCK)
}

/// How far a result may be from the reference: `|got - want| <= abs + rel·|want|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub abs: f64,
    pub rel: f64,
}

impl Tolerance {
    pub fn accepts(&self, got: f64, want: f64) -> bool {
        (got - want).abs() <= self.abs + self.rel * want.abs()
    }
}

/// The tolerance for results in `dtype`. The inputs the reference sees are the rounded ones the
/// kernel read, so the error is the kernel's f32 arithmetic (tanh and a few products: a few
/// f32 ulps) plus rounding the result to `dtype` once: half an ulp, 2^-11 relative for f16 and
/// 2^-8 for bf16, with slack for the f32 error before that rounding.
pub fn tolerance(dtype: Scalar) -> Tolerance {
    match dtype {
        Scalar::F16 => Tolerance {
            abs: 1e-3,
            rel: 1e-3,
        },
        Scalar::BF16 => Tolerance {
            abs: 8e-3,
            rel: 8e-3,
        },
        _ => Tolerance {
            abs: 1e-5,
            rel: 1e-5,
        },
    }
}

/// What [`check`] compared.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub dtype: Scalar,
    pub vec: u32,
    pub n: u32,
    /// Elements compared (all `n`).
    pub checked: usize,
    /// The largest `|got - want|`.
    pub max_abs_err: f64,
    /// The largest `|got - want| / |want|` over elements with `|want| >= 1e-3`.
    pub max_rel_err: f64,
    pub tolerance: Tolerance,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>4} vec {} n {:>5}: {} elements, max abs err {:.2e}, max rel err {:.2e} \
             (tolerance {:.0e} + {:.0e}·|want|)",
            self.dtype.name(),
            self.vec,
            self.n,
            self.checked,
            self.max_abs_err,
            self.max_rel_err,
            self.tolerance.abs,
            self.tolerance.rel
        )
    }
}

/// Inputs for `n` elements: gate in [-6, 6) (both tails of GELU and its curved middle), up in
/// [-2, 2), from a fixed seed (SplitMix64), so that a failure is reproducible.
pub fn inputs(n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut state = seed;
    let mut uniform = |lo: f64, hi: f64| {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        lo + (hi - lo) * (z >> 11) as f64 / (1u64 << 53) as f64
    };
    let gate = (0..n).map(|_| uniform(-6.0, 6.0)).collect();
    let up = (0..n).map(|_| uniform(-2.0, 2.0)).collect();
    (gate, up)
}

/// Runs [`geglu`] on `backend` for `n` elements of `dtype` with vector width `vec`, and
/// compares every element with [`reference()`] within [`tolerance`]. An error names the first
/// element out of tolerance.
pub fn check(backend: &dyn Backend, dtype: Scalar, vec: u32, n: u32) -> anyhow::Result<Report> {
    check_against(backend, dtype, vec, n, reference)
}

/// [`check`] against another reference: so that a test can show the comparison catches a
/// kernel that computes something else.
pub fn check_against(
    backend: &dyn Backend,
    dtype: Scalar,
    vec: u32,
    n: u32,
    reference: fn(&[f64], &[f64]) -> Vec<f64>,
) -> anyhow::Result<Report> {
    let kernel = build(backend.target(), dtype, vec)?;
    let loaded = backend.load(&kernel, None)?;

    // Round the inputs to `dtype` first, and give the reference the rounded values.
    let (gate, up) = inputs(n as usize, 0x6e1u64 + n as u64);
    let upload = |values: &[f64]| -> anyhow::Result<(greta_runtime::DeviceBuffer, Vec<f64>)> {
        let host = Buffer::from_f64(dtype, values);
        let device = backend.alloc(dtype, values.len())?;
        backend.write(&device, &host)?;
        Ok((device, host.to_f64_vec()))
    };
    let (gate_dev, gate) = upload(&gate)?;
    let (up_dev, up) = upload(&up)?;
    let out_dev = backend.alloc(dtype, n as usize)?;

    // The launch by parameter name, through the struct `#[kernel]` generated from the
    // signature: a misspelt or missing argument is a compile error here.
    let args = KernelArg::list(GegluArgs {
        gate: KernelArg::Buffer(&gate_dev),
        up: KernelArg::Buffer(&up_dev),
        out: KernelArg::Buffer(&out_dev),
        n,
    });
    backend.launch(&loaded, launch_dims(n, vec), &args)?;
    backend.synchronize()?;
    let got = backend.read(&out_dev)?.to_f64_vec();

    let want = reference(&gate, &up);
    let tolerance = tolerance(dtype);
    let mut report = Report {
        dtype,
        vec,
        n,
        checked: 0,
        max_abs_err: 0.0,
        max_rel_err: 0.0,
        tolerance,
    };
    ensure!(
        got.len() == want.len(),
        "{} results for {n} elements",
        got.len()
    );
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let err = (g - w).abs();
        if !tolerance.accepts(g, w) {
            bail!(
                "geglu {dtype} vec {vec} n {n} on {}: element {i} is {g}, the reference {w} \
                 (gate {}, up {}): error {err:.3e} over {:.3e}",
                backend.device_name(),
                gate[i],
                up[i],
                tolerance.abs + tolerance.rel * w.abs()
            );
        }
        report.checked += 1;
        report.max_abs_err = report.max_abs_err.max(err);
        if w.abs() >= 1e-3 {
            report.max_rel_err = report.max_rel_err.max(err / w.abs());
        }
    }
    Ok(report)
}

/// [`geglu`] for `target` (gfx942 or sm_90) by `via`, at the widest vector for `dtype`: the
/// generated source, the code object (hsaco or cubin) and the resources the tools report.
pub fn compile(target: &'static Target, via: Via, dtype: Scalar) -> anyhow::Result<Compiled> {
    let kernel = build(target, dtype, default_vec(dtype))?;
    greta_runtime::compile(&kernel, target, via)
        .with_context(|| format!("compiling geglu {dtype} for {target} via {via}"))
}

/// One line on a compiled kernel: its object's size and the registers, LDS and spills the tools
/// reported.
pub fn describe(compiled: &Compiled) -> String {
    let r = &compiled.resources;
    let opt = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
    let regs = match (r.vgpr, r.regs) {
        (Some(_), _) => format!(
            "{} VGPRs, {} SGPRs, scratch {} B",
            opt(r.vgpr),
            opt(r.sgpr),
            opt(r.scratch_bytes)
        ),
        _ => format!(
            "{} registers, spills {} B, stack {} B",
            opt(r.regs),
            opt(r.spill_bytes),
            opt(r.stack_bytes)
        ),
    };
    format!(
        "{} byte object, {regs}, LDS {} B",
        compiled.object.len(),
        r.lds_bytes
    )
}
