//! Rotary position embedding over `[tokens, heads, head_dim]`, in the two layouts Llama-family
//! GGUF models use:
//! - `neox=false` (llama.cpp's "normal" mode, the GGUF Llama layout): rotate adjacent pairs
//!   `(x[2i], x[2i+1])`;
//! - `neox=true` (GPT-NeoX / HF layout): rotate `(x[i], x[i + rot_dims/2])`.
//!
//! Pair `i` turns by `θ = (pos_offset + token) · base^(-2i / rot_dims)`. Dimensions past
//! `rot_dims` (partial rotary) are copied.
//! Floor: read and write x once, `2·tokens·heads·head_dim·size` bytes.

use crate::config::{block_param, Choices, ParamDef, DTYPE, VEC};
use crate::problem::{blocks_for, linear, zeros, Expected, Inputs, Problem, ProblemArg, Tolerance};
use crate::{check_vec_width, dispatch, Config, KernelSpec, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::LaunchDims;
use greta_dsl::ir::{ConfigValue, Const, Kernel};
use greta_dsl::prelude::*;
use greta_dsl::Target;

/// Rotates the `V` pairs held by vectors `lo` and `hi` of a head row (as f32), given the
/// cosines and sines of those pairs' angles, and stores them into `y` at elements `lo_at` and
/// `hi_at`. NeoX layout: `lo` holds the pairs' first elements, `hi` their partners
/// `rot_dims / 2` further on. GGUF layout: each vector holds `V / 2` whole adjacent pairs
/// (deinterleaved into even and odd lanes); for `V = 1`, `lo` and `hi` are the two elements of
/// one pair.
#[device]
#[allow(clippy::too_many_arguments)]
fn rotate<T: Float, const V: usize>(
    y: Global<T, ReadWrite>,
    lo: Val<Vector<f32, V>>,
    hi: Val<Vector<f32, V>>,
    lo_at: Val<u32>,
    hi_at: Val<u32>,
    c: Val<Vector<f32, V>>,
    s: Val<Vector<f32, V>>,
    #[comptime] neox: bool,
) {
    #[comptime]
    let v = V as u32;
    if neox || v == 1u32 {
        vstore::<V, _>(&y, lo_at, (lo * c - hi * s).cast::<T>());
        vstore::<V, _>(&y, hi_at, (lo * s + hi * c).cast::<T>());
    } else {
        // Pair j is lanes (2j, 2j+1) of lo‖hi: split them into evens and odds.
        #[comptime]
        let first = lo.lane(0);
        #[comptime]
        let mut even_lanes = [first; V];
        #[comptime]
        let mut odd_lanes = [first; V];
        for j in 0..v {
            if 2u32 * j < v {
                even_lanes[j as usize] = lo.lane(2u32 * j);
                odd_lanes[j as usize] = lo.lane(2u32 * j + 1u32);
            } else {
                even_lanes[j as usize] = hi.lane(2u32 * j - v);
                odd_lanes[j as usize] = hi.lane(2u32 * j + 1u32 - v);
            }
        }
        let e = Val::<Vector<f32, V>>::from_lanes(even_lanes);
        let o = Val::<Vector<f32, V>>::from_lanes(odd_lanes);
        let re = e * c - o * s;
        let ro = e * s + o * c;
        // Interleave back: element k of lo‖hi is pair k/2, even or odd by k % 2.
        #[comptime]
        let mut lo_lanes = [first; V];
        #[comptime]
        let mut hi_lanes = [first; V];
        for k in 0..2u32 * v {
            #[comptime]
            let mut value = ro.lane(k / 2u32);
            if k % 2u32 == 0u32 {
                value = re.lane(k / 2u32);
            }
            if k < v {
                lo_lanes[k as usize] = value;
            } else {
                hi_lanes[(k - v) as usize] = value;
            }
        }
        vstore::<V, _>(
            &y,
            lo_at,
            Val::<Vector<f32, V>>::from_lanes(lo_lanes).cast::<T>(),
        );
        vstore::<V, _>(
            &y,
            hi_at,
            Val::<Vector<f32, V>>::from_lanes(hi_lanes).cast::<T>(),
        );
    }
}

/// One thread's RoPE: the `V` pairs of group `g` (and, past `rot_dims`, the copied vectors)
/// of `heads_per_thread` consecutive head rows of one token at position `pos`, read from rows
/// `x_row..` of `x` and written, in `y`'s type, to rows `y_row..` of `y` (rows of `head_dim`).
/// The heads share their angles, so the cosines and sines (an accurate sin/cos is a few dozen
/// instructions) are computed once for all of them. A thread's two vectors are `R` vectors
/// apart (`R` = rotated vectors per row / 2), so that each load instruction of a wave reads
/// one contiguous span: thread `g` takes vectors `g` and `g + R`. [`rope`] and
/// [`crate::rope_cache`] are this over their own rows.
#[device]
#[allow(clippy::too_many_arguments)]
pub fn rope_rows<X: Float, Y: Float, const V: usize>(
    x: Global<X, Read>,
    y: Global<Y, ReadWrite>,
    x_row: Val<u32>,
    y_row: Val<u32>,
    g: Val<u32>,
    position: Val<u32>,
    head_dim: Val<u32>,
    rot_dims: Val<u32>,
    freq_base: Val<f32>,
    #[comptime] neox: bool,
    #[comptime] heads_per_thread: u32,
) {
    #[comptime]
    let v = V as u32;
    // Thread g < R rotates vectors g and g + R of the row's rotated part.
    let r = rot_dims / (2u32 * v);
    if g < r {
        // Offsets of the two vectors within a row.
        let mut lo_at = g * v;
        let mut hi_at = lo_at + rot_dims / 2u32;
        if !neox {
            if v == 1u32 {
                lo_at = 2u32 * g;
                hi_at = lo_at + 1u32;
            } else {
                hi_at = (g + r) * v;
            }
        }
        // Every load first, so they are all in flight while the angles are computed.
        #[comptime]
        let mut los = Vec::new();
        #[comptime]
        let mut his = Vec::new();
        for h in 0..heads_per_thread {
            let row = (x_row + h) * head_dim;
            let lo = vload::<V, _>(&x, row + lo_at);
            let hi = vload::<V, _>(&x, row + hi_at);
            los.push(lo);
            his.push(hi);
        }
        let pos = position.to_f32();
        // θ_i = pos · base^(-2i / rot_dims) = pos · 2^(i · scale)
        let scale = -2.0f32 / rot_dims.to_f32() * log2(freq_base);
        #[comptime]
        let mut cos_lanes = [pos; V];
        #[comptime]
        let mut sin_lanes = [pos; V];
        for j in 0..v {
            // The pair lane j of this thread rotates.
            let mut pair = g * v + j;
            if !neox {
                if v == 1u32 {
                    pair = g;
                } else if 2u32 * j < v {
                    pair = g * (v / 2u32) + j;
                } else {
                    pair = (g + r) * (v / 2u32) + j - v / 2u32;
                }
            }
            let theta = pos * exp2(pair.to_f32() * scale);
            cos_lanes[j as usize] = cos(theta);
            sin_lanes[j as usize] = sin(theta);
        }
        let c = Val::<Vector<f32, V>>::from_lanes(cos_lanes);
        let s = Val::<Vector<f32, V>>::from_lanes(sin_lanes);
        for h in 0..heads_per_thread {
            let row = (y_row + h) * head_dim;
            rotate::<Y, V>(
                y,
                los[h as usize].to_f32(),
                his[h as usize].to_f32(),
                row + lo_at,
                row + hi_at,
                c,
                s,
                neox,
            );
        }
    } else {
        // Past the rotated dimensions both layouts copy, two vectors `copy_r` apart.
        let copy_r = (head_dim - rot_dims) / (2u32 * v);
        let q = g - r;
        for h in 0..heads_per_thread {
            let i0 = rot_dims + q * v;
            let i1 = i0 + copy_r * v;
            let (xr, yr) = ((x_row + h) * head_dim, (y_row + h) * head_dim);
            vstore::<V, _>(&y, yr + i0, vload::<V, _>(&x, xr + i0).to_f32().cast::<Y>());
            vstore::<V, _>(&y, yr + i1, vload::<V, _>(&x, xr + i1).to_f32().cast::<Y>());
        }
    }
}

/// Each thread handles `V` pairs in `heads_per_thread` heads of one token ([`rope_rows`]). The
/// host fits `V` and `heads_per_thread` to the shape ([`fit`]); a launch that breaks the fit
/// writes nothing — the checks report that — rather than touching memory out of bounds.
#[kernel]
pub fn rope<T: Float, const V: usize>(
    x: &[T],
    y: &mut [T],
    tokens: u32,
    heads: u32,
    head_dim: u32,
    rot_dims: u32,
    pos_offset: u32,
    freq_base: f32,
    #[comptime] neox: bool,
    #[comptime] heads_per_thread: u32,
    #[comptime] block: u32,
) {
    block_size(block);
    #[comptime]
    let v = V as u32;
    let groups = head_dim / (2u32 * v);
    let head_chunks = heads / heads_per_thread;
    let item = block_idx().x * block + thread_idx().x;
    let fits = head_dim % (2u32 * v) == 0u32
        && rot_dims % (2u32 * v) == 0u32
        && heads % heads_per_thread == 0u32;
    if item < tokens * head_chunks * groups && fits {
        let g = item % groups;
        let chunk = item / groups;
        let token = chunk / head_chunks;
        let first_row = token * heads + (chunk % head_chunks) * heads_per_thread;
        rope_rows::<T, T, V>(
            x,
            y,
            first_row,
            first_row,
            g,
            token + pos_offset,
            head_dim,
            rot_dims,
            freq_base,
            neox,
            heads_per_thread,
        );
    }
}

/// Narrows the configuration to the shape: the largest vector width not above `vec` for which
/// `2·vec` divides `head_dim` and `rot_dims`, and the largest `heads_per_thread` not above the
/// configured one that divides `heads` (1 always fits).
pub fn fit(cfg: &Config, heads: u32, head_dim: u32, rot_dims: u32) -> Config {
    let mut v = cfg.u32("vec");
    while v > 1 && (head_dim % (2 * v) != 0 || rot_dims % (2 * v) != 0) {
        v /= 2;
    }
    let mut hpt = cfg.u32("heads_per_thread");
    while hpt > 1 && heads % hpt != 0 {
        hpt /= 2;
    }
    cfg.with("vec", ConfigValue::U32(v))
        .with("heads_per_thread", ConfigValue::U32(hpt))
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

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    check_vec_width("rope", cfg)?;
    dispatch!(cfg, target, rope, T, V; cfg.bool("neox"), cfg.u32("heads_per_thread"), cfg.u32("block"))
}

/// Launch: one thread per `vec` pairs of `heads_per_thread` heads (`cfg` fitted with [`fit`]).
pub fn launch(cfg: &Config, tokens: u32, heads: u32, head_dim: u32) -> LaunchDims {
    let chunks = (heads / cfg.u32("heads_per_thread")) as u64;
    let items = tokens as u64 * chunks * (head_dim / (2 * cfg.u32("vec"))) as u64;
    linear(blocks_for(items, cfg.u32("block") as u64), cfg.u32("block"))
}

pub(crate) const HEADS_PER_THREAD: ParamDef = ParamDef {
    name: "heads_per_thread",
    choices: Choices::U32(&[1, 2, 4, 8]),
    // 2 measured best on H200 (4096 tokens × 32 heads × 128): 4 and 8 leave too few threads for
    // full waves, 1 recomputes sin/cos for every head.
    default: ConfigValue::U32(2),
    default_for_dtype: None,
    tunable: true,
    doc: "heads sharing one thread's sin/cos",
};

pub(crate) const NEOX: ParamDef = ParamDef {
    name: "neox",
    choices: Choices::Bool,
    default: ConfigValue::Bool(false),
    default_for_dtype: None,
    tunable: false,
    doc: "NeoX half-split pairs instead of GGUF adjacent pairs",
};

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
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
    let cfg = &fit(cfg, heads, head_dim, rot_dims);
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
        config: cfg.clone(),
        kernel: build(cfg, target)?,
        dims: launch(cfg, tokens, heads, head_dim),
        args: vec![
            ProblemArg::Buffer(xb),
            ProblemArg::Buffer(zeros(dtype, n)),
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
    params: &[DTYPE, block_param(256), VEC, HEADS_PER_THREAD, NEOX],
    shape: "tokens,heads,head_dim[,rot_dims]",
    test_shapes: &[
        &[1, 1, 2],
        &[7, 3, 8],
        &[5, 4, 172],
        &[3, 2, 64, 32],
        &[2, 32, 128],
        &[3, 2, 96, 32],
        &[3, 8, 64, 48],
    ],
    bench_shape: &[4096, 32, 128],
    build,
    problem,
    available: crate::everywhere,
};
