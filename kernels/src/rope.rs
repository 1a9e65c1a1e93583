//! Rotary position embedding over `[tokens, heads, head_dim]`, in the two layouts Llama-family
//! GGUF models use:
//! - `neox=false` (llama.cpp's "normal" mode, the GGUF Llama layout): rotate adjacent pairs
//!   `(x[2i], x[2i+1])`;
//! - `neox=true` (GPT-NeoX / HF layout): rotate `(x[i], x[i + rot_dims/2])`.
//!
//! Pair `i` turns by `θ = (pos_offset + token) · base^(-2i / rot_dims)`. Dimensions past
//! `rot_dims` (partial rotary) are copied. One thread per pair slot (`head_dim / 2` per head).
//! Floor: read and write x once, `2·tokens·heads·head_dim·size` bytes.

use crate::config::{block_param, Choices, ParamDef, DTYPE};
use crate::problem::{
    blocks_for, from_f64, linear, Expected, Inputs, Problem, ProblemArg, Tolerance,
};
use crate::{dispatch, Config, KernelSpec, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::LaunchDims;
use greta_dsl::ir::{ConfigValue, Const, Kernel};
use greta_dsl::prelude::*;

/// Rotates the pair `(a, b)` of `x` into `y` by the angle of frequency index `i`.
#[device]
fn rotate<T: Float>(
    x: Global<T, Read>,
    y: Global<T, ReadWrite>,
    a: Val<u32>,
    b: Val<u32>,
    i: Val<u32>,
    pos: Val<f32>,
    rot_dims: Val<u32>,
    log2_base: Val<f32>,
) {
    let theta = pos * exp2(-(2u32 * i).to_f32() / rot_dims.to_f32() * log2_base);
    let c = cos(theta);
    let s = sin(theta);
    let x0 = x[a].to_f32();
    let x1 = x[b].to_f32();
    y[a] = T::from_f32(x0 * c - x1 * s);
    y[b] = T::from_f32(x0 * s + x1 * c);
}

#[kernel]
pub fn rope<T: Float>(
    x: &[T],
    y: &mut [T],
    tokens: u32,
    heads: u32,
    head_dim: u32,
    rot_dims: u32,
    pos_offset: u32,
    freq_base: f32,
    #[comptime] neox: bool,
    #[comptime] block: u32,
) {
    block_size(block);
    let half = head_dim / 2u32;
    let slot = block_idx().x * block + thread_idx().x;
    if slot < tokens * heads * half {
        let i = slot % half;
        let head_row = slot / half;
        let base = head_row * head_dim;
        let pos = (head_row / heads + pos_offset).to_f32();
        let log2_base = log2(freq_base);
        let rot_half = rot_dims / 2u32;
        if i < rot_half {
            if neox {
                rotate(
                    x,
                    y,
                    base + i,
                    base + i + rot_half,
                    i,
                    pos,
                    rot_dims,
                    log2_base,
                );
            } else {
                rotate(
                    x,
                    y,
                    base + 2u32 * i,
                    base + 2u32 * i + 1u32,
                    i,
                    pos,
                    rot_dims,
                    log2_base,
                );
            }
        } else {
            // Past the rotated dimensions both layouts copy x[rot_dims + 2(i - rot_half) ..+2].
            let a = base + rot_dims + 2u32 * (i - rot_half);
            y[a] = x[a];
            y[a + 1u32] = x[a + 1u32];
        }
    }
}

/// The reference in f64: x is `[tokens, heads, head_dim]`.
pub fn reference(
    x: &[f64],
    tokens: usize,
    heads: usize,
    head_dim: usize,
    rot_dims: usize,
    pos_offset: usize,
    base: f64,
    neox: bool,
) -> Vec<f64> {
    let mut y = x.to_vec();
    for t in 0..tokens {
        let pos = (pos_offset + t) as f64;
        for h in 0..heads {
            let row = (t * heads + h) * head_dim;
            for i in 0..rot_dims / 2 {
                let theta = pos * base.powf(-2.0 * i as f64 / rot_dims as f64);
                let (a, b) = if neox {
                    (row + i, row + i + rot_dims / 2)
                } else {
                    (row + 2 * i, row + 2 * i + 1)
                };
                let (x0, x1) = (x[a], x[b]);
                y[a] = x0 * theta.cos() - x1 * theta.sin();
                y[b] = x0 * theta.sin() + x1 * theta.cos();
            }
        }
    }
    y
}

fn build(cfg: &Config) -> Result<Kernel, BuildError> {
    dispatch!(cfg, rope, T; cfg.bool("neox"), cfg.u32("block"))
}

/// Launch: one thread per pair slot.
pub fn launch(cfg: &Config, tokens: u32, heads: u32, head_dim: u32) -> LaunchDims {
    let slots = tokens as u64 * heads as u64 * (head_dim / 2) as u64;
    linear(blocks_for(slots, cfg.u32("block") as u64), cfg.u32("block"))
}

const NEOX: ParamDef = ParamDef {
    name: "neox",
    choices: Choices::Bool,
    default: ConfigValue::Bool(false),
    default_for_dtype: None,
    doc: "NeoX half-split pairs instead of GGUF adjacent pairs",
};

fn problem(cfg: &Config, shape: &[u32], inputs: &mut Inputs) -> Result<Problem, ProblemError> {
    let bad = || ProblemError::Shape {
        kernel: "rope",
        shape: shape.to_vec(),
        expected: SPEC.shape,
    };
    let (tokens, heads, head_dim, rot_dims) = match *shape {
        [t, h, d] => (t, h, d, d),
        [t, h, d, r] => (t, h, d, r),
        _ => return Err(bad()),
    };
    if tokens == 0
        || heads == 0
        || head_dim == 0
        || head_dim % 2 != 0
        || rot_dims % 2 != 0
        || rot_dims > head_dim
        || rot_dims == 0
    {
        return Err(bad());
    }
    let dtype = cfg.dtype("dtype");
    let n = (tokens * heads * head_dim) as usize;
    let pos_offset = 17u32;
    let base = 10000.0f32;
    let (xb, x) = inputs.uniform(dtype, n, -1.0, 1.0);
    let want = reference(
        &x,
        tokens as usize,
        heads as usize,
        head_dim as usize,
        rot_dims as usize,
        pos_offset as usize,
        base as f64,
        cfg.bool("neox"),
    );
    // θ is computed in f32 as on GPUs: its rounding grows with the position (|θ| ≤ pos).
    let theta_err = (pos_offset + tokens) as f64 * 2.0 * f32::EPSILON as f64;
    Ok(Problem {
        kernel: build(cfg)?,
        dims: launch(cfg, tokens, heads, head_dim),
        args: vec![
            ProblemArg::Buffer(xb),
            ProblemArg::Buffer(from_f64(dtype, &vec![0.0; n])),
            ProblemArg::Value(Const::U32(tokens)),
            ProblemArg::Value(Const::U32(heads)),
            ProblemArg::Value(Const::U32(head_dim)),
            ProblemArg::Value(Const::U32(rot_dims)),
            ProblemArg::Value(Const::U32(pos_offset)),
            ProblemArg::Value(Const::F32(base)),
        ],
        expected: vec![Expected {
            arg: 1,
            values: want,
            tolerance: Tolerance::for_dtype(dtype, 1e-5 + theta_err),
        }],
        min_bytes: 2 * n as u64 * dtype.size_bytes() as u64,
        flops: 0,
    })
}

pub static SPEC: KernelSpec = KernelSpec {
    name: "rope",
    summary: "rotary position embedding (GGUF adjacent pairs or NeoX halves)",
    params: &[DTYPE, block_param(256), NEOX],
    shape: "tokens,heads,head_dim[,rot_dims]",
    test_shapes: &[
        &[1, 1, 2],
        &[7, 3, 8],
        &[5, 4, 172],
        &[3, 2, 64, 32],
        &[2, 32, 128],
    ],
    bench_shape: &[4096, 32, 128],
    build,
    problem,
};
