//! Matrix-vector product for decode (`M` = 1…`m_tile` tokens): `y[m, n] = Σ_k x[m, k] · W[n, k]
//! (+ r[m, n])`, memory-bound on the weights. `x` and `W` are f16 or bf16 (`dtype`), `y` and
//! the optional residual `r` are `out`; accumulation in f32.
//!
//! Each wave owns `rows` weight rows: its lanes stride over `K` with 16-byte loads, `unroll`
//! loads per row in flight before any is used (the bytes in flight per SM are what a GEMV's
//! speed is made of), each lane keeping `rows × m_tile` partial sums; a butterfly wave sum
//! finishes each output, with no barrier. When the grid would be short (few rows for the
//! device's compute units) `splits` waves of a block share the same rows, each taking every
//! `splits`-th stretch of `K`, and combine their sums through LDS in a fixed order — so the
//! result does not depend on the schedule (split-K without atomics is deterministic).
//!
//! Floor: `N·K·size(T)` bytes of weights (plus `M·K` of `x` from cache and `M·N` written) at the
//! copy bandwidth: 4096 × 4096 f16 = 32 MiB ≈ 8 µs on an H200.
//!
//! Arguments, in order: `x: &[T]` (at least `M·K`), `w: &[T]` (at least `N·K`), `r: &[O]` (at
//! least `M·N` when `residual`, else never read), `y: &mut [O]` (at least `M·N`), `m: u32`
//! (at most `m_tile`), `n: u32`, `k: u32`. Launch with [`launch`].

use crate::config::u32_param;
use crate::gemm::{dtype_param_halves, OUT, RESIDUAL};
use crate::problem::{blocks_for, Inputs, Problem};
use crate::projection::Weights;
use crate::q8::quant;
use crate::{dispatch, Config, KernelSpec, ParamDef, ProblemError};
use greta_dsl::front::load;
use greta_dsl::front::BuildError;
use greta_dsl::interp::LaunchDims;
use greta_dsl::ir::Kernel;
use greta_dsl::prelude::*;
use greta_dsl::Target;

/// Where a GEMV's weight rows come from: a source loads `ELEMS` consecutive weights of a row
/// with one wide access (as f32 values and, for a quantised source, the block scale to apply to
/// their dot product).
pub trait RowSource: Copy {
    /// Elements one load covers (16 bytes of them).
    const ELEMS: u32;
    /// Weights `c..c + ELEMS` of the row starting at element `row` (`c` a multiple of
    /// `ELEMS`), and the scale of their dot product if any. Loads the first weights of the row
    /// instead when `!ok`, so that a stretch past `K` stays in bounds.
    fn load(self, row: Val<u32>, c: Val<u32>, ok: Val<bool>) -> (Vec<Val<f32>>, Option<Val<f32>>);
    /// Weight `c` of the row starting at `row` (the path for a `K` that is not a multiple of
    /// `ELEMS`).
    fn element(self, row: Val<u32>, c: Val<u32>) -> Val<f32>;
}

/// Dense f16/bf16 rows: 8 per load.
#[derive(Clone, Copy)]
pub struct DenseRows<T: Float>(pub Global<T, Read>);

impl<T: Float> RowSource for DenseRows<T> {
    const ELEMS: u32 = 8;
    fn load(self, row: Val<u32>, c: Val<u32>, ok: Val<bool>) -> (Vec<Val<f32>>, Option<Val<f32>>) {
        let v = materialize("w", vload::<8, _>(&self.0, select(ok, row + c, row)));
        let v = v.to_f32();
        ((0..8).map(|l| v.lane(l)).collect(), None)
    }
    fn element(self, row: Val<u32>, c: Val<u32>) -> Val<f32> {
        load(&self.0, row + c).to_f32()
    }
}

/// Q8_0 rows (see [`crate::q8`]): 16 quants (four words) per load, and their block's scale.
#[derive(Clone, Copy)]
pub struct Q8Rows {
    pub scales: Global<f16, Read>,
    pub quants: Global<u32, Read>,
}

impl RowSource for Q8Rows {
    const ELEMS: u32 = 16;
    fn load(self, row: Val<u32>, c: Val<u32>, ok: Val<bool>) -> (Vec<Val<f32>>, Option<Val<f32>>) {
        let at = select(ok, row + c, row);
        let words = materialize("q", vload::<4, _>(&self.quants, at / 4u32));
        let d = materialize("d", load(&self.scales, at / 32u32).to_f32());
        let q = (0..16).map(|i| quant(words.lane(i / 4), i % 4)).collect();
        (q, Some(d))
    }
    fn element(self, row: Val<u32>, c: Val<u32>) -> Val<f32> {
        let at = row + c;
        let word = load(&self.quants, at / 4u32);
        // The byte of the word (a runtime index): shift it to the top and sign-extend.
        let top = (word << (24u32 - 8u32 * (at % 4u32))).to_i32();
        (top >> 24i32).to_f32() * load(&self.scales, at / 32u32).to_f32()
    }
}

/// Where a GEMV's activations (the rows of `x`) come from: the plain rows, or rows computed
/// as they are loaded from what the previous kernel wrote — RMSNorm's scaling
/// ([`crate::gemv_fused`]'s `gemv_norm`) or SwiGLU's gate (`gemv_glu`) — so that the fused
/// kernel saves a launch and a round trip of the activations through memory.
pub trait RowInput: Copy {
    /// Whether the products are scaled by the token row's `1 / rms` (`rsqrt(mean(raw²) +
    /// eps)` of the raw row): then [`RowInput::load`] also returns the sum of the squares of the
    /// raw elements, and the kernel scales each finished sum (the scale is per token, so it
    /// factors out of the dot product).
    const NORM: bool;
    /// Elements `c..c + 8` of the token row starting at element `row` (`c` a multiple of 8) in
    /// f32, and the sum of their raw squares when [`RowInput::NORM`]. Loads the row's first
    /// elements instead when `!ok` (in bounds; the caller discards them).
    fn load(self, row: Val<u32>, c: Val<u32>, ok: Val<bool>) -> (Vec<Val<f32>>, Val<f32>);
    /// Element `c` of the row starting at `row` and its raw square (the path for a `K` that is
    /// not a multiple of 8).
    fn element(self, row: Val<u32>, c: Val<u32>) -> (Val<f32>, Val<f32>);
    /// `rsqrt(mean + eps)` of a row whose raw squares sum to `sum` over `k` elements (only
    /// called when [`RowInput::NORM`]).
    fn inv_rms(self, sum: Val<f32>, k: Val<u32>) -> Val<f32>;
}

/// Plain f16/bf16 rows of `x`.
#[derive(Clone, Copy)]
pub struct PlainRows<T: Float>(pub Global<T, Read>);

impl<T: Float> RowInput for PlainRows<T> {
    const NORM: bool = false;
    fn load(self, row: Val<u32>, c: Val<u32>, ok: Val<bool>) -> (Vec<Val<f32>>, Val<f32>) {
        let v = materialize(
            "x",
            vload::<8, _>(&self.0, select(ok, row + c, 0u32)).to_f32(),
        );
        ((0..8).map(|l| v.lane(l)).collect(), Val::constant(0.0f32))
    }
    fn element(self, row: Val<u32>, c: Val<u32>) -> (Val<f32>, Val<f32>) {
        (load(&self.0, row + c).to_f32(), Val::constant(0.0f32))
    }
    fn inv_rms(self, sum: Val<f32>, _k: Val<u32>) -> Val<f32> {
        sum
    }
}

#[kernel]
#[allow(clippy::too_many_arguments)]
pub fn gemv<T: Float, O: Float>(
    x: &[T],
    w: &[T],
    r: &[O],
    y: &mut [O],
    m: u32,
    n: u32,
    k: u32,
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
    gemv_body::<T, O, DenseRows<T>, PlainRows<T>>(PlainRows(x), DenseRows(w), r, y, m, n, k, p);
}

/// The comptime parameters of a GEMV, in the order its kernels take them.
#[derive(Clone, Copy, Debug)]
pub struct GemvParams {
    pub rows: u32,
    pub unroll: u32,
    pub waves: u32,
    pub splits: u32,
    pub m_tile: u32,
    pub residual: bool,
    /// The SwiGLU epilogue: `W` is the gate's `n` rows then the up's `n` rows, and the kernel
    /// writes `silu(x · gateᵀ) · (x · upᵀ)` — SwiGLU fused into the gate/up projection.
    pub glu: bool,
}

impl GemvParams {
    /// The parameters in the order the GEMV kernels take them.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        rows: u32,
        unroll: u32,
        waves: u32,
        splits: u32,
        m_tile: u32,
        residual: bool,
        glu: bool,
    ) -> GemvParams {
        GemvParams {
            rows,
            unroll,
            waves,
            splits,
            m_tile,
            residual,
            glu,
        }
    }
}

/// The whole GEMV of one block (see the module docs), weights from `w`.
#[device]
#[allow(clippy::too_many_arguments)]
pub fn gemv_body<T: Float, O: Float, S: RowSource, I: RowInput>(
    #[comptime] x: I,
    #[comptime] w: S,
    r: Global<O, Read>,
    y: Global<O, ReadWrite>,
    m: Val<u32>,
    n: Val<u32>,
    k: Val<u32>,
    #[comptime] p: GemvParams,
) {
    #[comptime]
    let wave = target().wave_size;
    block_size(p.waves * wave);
    #[comptime]
    let v = S::ELEMS;
    #[comptime]
    let groups = p.waves / p.splits;
    #[comptime]
    let (rows, m_tile) = (p.rows, p.m_tile);
    let lane = lane_id();
    let wid = thread_idx().x / wave;
    let group = wid / p.splits;
    let split = wid % p.splits;
    let n0 = (block_idx().x * groups + group) * rows;
    // Rows past `n` and tokens past `m` read the last row (in bounds) and are not written.
    // With the SwiGLU epilogue a wave also owns the up rows `n` further down the matrix.
    #[comptime]
    let mats = matrices(p.glu);
    #[comptime]
    let wr = rows * mats;
    #[comptime]
    let mut w_at = Vec::new();
    for mat in 0..mats {
        for i in 0..rows {
            w_at.push(materialize("w_row", (min(n0 + i, n - 1u32) + mat * n) * k));
        }
    }
    #[comptime]
    let mut x_at = Vec::new();
    for j in 0..m_tile {
        x_at.push(materialize("x_row", min(j, m - 1u32) * k));
    }
    let acc = local_array::<f32>(wr * m_tile);
    for i in 0..wr * m_tile {
        acc[i] = 0.0f32;
    }
    // Each token row's sum of raw squares (RMSNorm's, when the input is normalised).
    let squares = local_array::<f32>(m_tile);
    for j in 0..m_tile {
        squares[j] = 0.0f32;
    }
    // One stretch: `unroll` loads per row, `wave · v` elements apart, for each of the
    // `splits` waves sharing these rows in turn. Every weight load of a stretch is issued
    // before any is used.
    #[comptime]
    let stretch = p.unroll * wave * v;
    if k % v == 0u32 {
        for c in (split * stretch + lane * v..k).step_by(p.splits * stretch) {
            #[comptime]
            let mut held = Vec::new();
            for u in 0..p.unroll {
                let at = c + u * wave * v;
                for i in 0..wr {
                    held.push(w.load(w_at[i as usize], at, at < k));
                }
            }
            for u in 0..p.unroll {
                let at = c + u * wave * v;
                let ok = at < k;
                for j in 0..m_tile {
                    #[comptime]
                    let mut xs = Vec::new();
                    for h in 0..v / 8u32 {
                        #[comptime]
                        let (xv, sq) = x.load(x_at[j as usize], at + 8u32 * h, ok);
                        xs.extend(xv);
                        if I::NORM {
                            squares[j] = squares[j] + select(ok, sq, 0.0f32);
                        }
                    }
                    for i in 0..wr {
                        #[comptime]
                        let (ws, scale) = &held[(u * wr + i) as usize];
                        let mut s = 0.0f32;
                        for l in 0..v {
                            s = fma(ws[l as usize], xs[l as usize], s);
                        }
                        acc[i * m_tile + j] =
                            acc[i * m_tile + j] + select(ok, scaled(s, scale), 0.0f32);
                    }
                }
            }
        }
    } else {
        for c in (split * wave + lane..k).step_by(p.splits * wave) {
            #[comptime]
            let mut xs = Vec::new();
            for j in 0..m_tile {
                #[comptime]
                let (xe, sq) = x.element(x_at[j as usize], c);
                xs.push(xe);
                if I::NORM {
                    squares[j] = squares[j] + sq;
                }
            }
            for i in 0..wr {
                let wr_i = w.element(w_at[i as usize], c);
                for j in 0..m_tile {
                    acc[i * m_tile + j] = fma(wr_i, xs[j as usize], acc[i * m_tile + j]);
                }
            }
        }
    }
    // Wave sums; with split-K, each wave's sums go through LDS and the first wave of the group
    // adds them in wave order. A normalised input's sums of squares ride along as one more
    // "row" (`wr` below), so its scale is combined the same way.
    #[comptime]
    let sums = sums_per_wave(wr, I::NORM);
    let part = shared::<f32>(split_lds_len(p.splits, p.waves * sums * m_tile));
    if p.splits == 1 {
        for j in 0..m_tile {
            #[comptime]
            let mut inv = None;
            if I::NORM {
                inv = Some(materialize("inv_rms", x.inv_rms(wave_sum(squares[j]), k)));
            }
            for i in 0..rows {
                #[comptime]
                let mut totals = Vec::new();
                for mat in 0..mats {
                    totals.push(wave_sum(acc[((mat * rows) + i) * m_tile + j]));
                }
                let total = epilogue(&totals, inv);
                if lane == 0u32 {
                    write_one::<O>(r, y, total, n0 + i, j, m, n, p.residual);
                }
            }
        }
    } else {
        for j in 0..m_tile {
            for i in 0..wr {
                let total = wave_sum(acc[i * m_tile + j]);
                if lane == 0u32 {
                    part[(wid * sums + i) * m_tile + j] = total;
                }
            }
            if I::NORM {
                let total = wave_sum(squares[j]);
                if lane == 0u32 {
                    part[(wid * sums + wr) * m_tile + j] = total;
                }
            }
        }
        barrier();
        if split == 0u32 && lane < rows * m_tile {
            let i = lane / m_tile;
            let j = lane % m_tile;
            #[comptime]
            let mut totals = Vec::new();
            for mat in 0..mats {
                let mut total = 0.0f32;
                for s in 0..p.splits {
                    total = total + part[((wid + s) * sums + mat * rows + i) * m_tile + j];
                }
                totals.push(materialize("total", total));
            }
            #[comptime]
            let mut inv = None;
            if I::NORM {
                let mut squared = 0.0f32;
                for s in 0..p.splits {
                    squared = squared + part[((wid + s) * sums + wr) * m_tile + j];
                }
                inv = Some(materialize("inv_rms", x.inv_rms(squared, k)));
            }
            let total = epilogue(&totals, inv);
            write_one::<O>(r, y, total, n0 + i, j, m, n, p.residual);
        }
    }
}

/// The matrices a wave multiplies by: the weights, or with the SwiGLU epilogue the gate's and
/// the up's rows.
fn matrices(glu: bool) -> u32 {
    1 + glu as u32
}

/// One output from its row sums (the gate's and the up's with the SwiGLU epilogue), each scaled
/// by the token's `1 / rms` where the input is normalised: `silu(gate) · up`, or the one sum.
fn epilogue(sums: &[Val<f32>], inv: Option<Val<f32>>) -> Val<f32> {
    let scaled: Vec<Val<f32>> = sums
        .iter()
        .map(|&s| match inv {
            Some(inv) => s * inv,
            None => s,
        })
        .collect();
    match scaled[..] {
        [gate, up] => gate / (1.0f32 + (-gate).exp()) * up,
        _ => scaled[0],
    }
}

/// A dot product times its block's scale, where the source has one.
fn scaled(s: Val<f32>, scale: &Option<Val<f32>>) -> Val<f32> {
    match scale {
        Some(d) => s * *d,
        None => s,
    }
}

/// The sums each wave of a split-K group hands on per token: one per row, and the sum of
/// squares of a normalised input.
fn sums_per_wave(rows: u32, norm: bool) -> u32 {
    rows + norm as u32
}

/// LDS elements for the split-K combine: one per wave, row and token with `splits > 1`, else a
/// placeholder element (the kernel declares the array either way).
fn split_lds_len(splits: u32, len: u32) -> u32 {
    if splits > 1 {
        len
    } else {
        1
    }
}

/// `y[j, row] = total (+ r[j, row])` if the output exists.
#[device]
#[allow(clippy::too_many_arguments)]
fn write_one<O: Float>(
    r: Global<O, Read>,
    y: Global<O, ReadWrite>,
    total: Val<f32>,
    row: Val<u32>,
    j: impl greta_dsl::front::IntoVal<Elem = u32>,
    m: Val<u32>,
    n: Val<u32>,
    #[comptime] residual: bool,
) {
    let j = j.into_val();
    if row < n && j < m {
        let at = j * n + row;
        let mut v = total;
        if residual {
            v = v + r[at].to_f32();
        }
        y[at] = O::from_f32(v);
    }
}

/// The parameters of `cfg`, or why they cannot be built for `target`.
pub(crate) fn params(
    kernel: &str,
    cfg: &Config,
    target: &Target,
) -> Result<GemvParams, BuildError> {
    let c = |s: &str| cfg.u32(s);
    let p = GemvParams {
        rows: c("rows"),
        unroll: c("unroll"),
        waves: c("waves"),
        splits: c("splits"),
        m_tile: c("m_tile"),
        residual: cfg.bool("residual"),
        glu: cfg.bool("glu"),
    };
    let fail = |message: String| {
        Err(BuildError::Invalid {
            kernel: kernel.into(),
            message,
        })
    };
    if p.waves % p.splits != 0 {
        return fail(format!(
            "splits={} does not divide waves={}",
            p.splits, p.waves
        ));
    }
    if p.splits > 1 && p.rows * p.m_tile > target.wave_size {
        return fail("split-K combines at most one output per lane of a wave".into());
    }
    if p.waves * target.wave_size > target.max_block_threads {
        return fail(format!(
            "{} waves are more threads than {target} launches",
            p.waves
        ));
    }
    Ok(p)
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    let p = params("gemv", cfg, target)?;
    dispatch!(cfg, target, gemv, Half, O; p.rows, p.unroll, p.waves, p.splits, p.m_tile, p.residual, p.glu)
}

/// Launch: `waves / splits · rows` weight rows per block (the same for `gemv_q8`).
pub fn launch(cfg: &Config, target: &Target, n: u32) -> LaunchDims {
    let (waves, splits, rows) = (cfg.u32("waves"), cfg.u32("splits"), cfg.u32("rows"));
    LaunchDims {
        grid: [blocks_for(n as u64, (waves / splits * rows) as u64), 1, 1],
        block: [waves * target.wave_size, 1, 1],
    }
}

/// The split-K factor that gives `n` rows' GEMV at least `per_cu` waves per compute unit of
/// `target` without splitting (1), or the smallest split of `cfg`'s choices that does.
pub fn splits_for(cfg: &Config, target: &Target, n: u32, per_cu: u32) -> u32 {
    let rows = cfg.u32("rows");
    let wanted = target.compute_units * per_cu;
    let row_waves = n.div_ceil(rows);
    [1u32, 2, 4, 8]
        .into_iter()
        .filter(|s| cfg.u32("waves") % s == 0)
        .find(|s| row_waves * s >= wanted)
        .unwrap_or(cfg.u32("waves").min(8))
}

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    crate::projection::problem(
        "gemv",
        SPEC.shape,
        shape,
        cfg,
        inputs,
        Weights::Dense,
        crate::projection::Input::Plain,
        false,
        |cfg, m, n| {
            let cfg = fit_m(cfg, m);
            let kernel = build(&cfg, target)?;
            let dims = launch(&cfg, target, n);
            Ok((cfg, kernel, dims))
        },
    )
}

/// `cfg` with an `m_tile` of at least `m` tokens (the next power of two; tokens are at most 8).
pub fn fit_m(cfg: &Config, m: u32) -> Config {
    if m <= cfg.u32("m_tile") {
        return cfg.clone();
    }
    cfg.with(
        "m_tile",
        greta_dsl::ir::ConfigValue::U32(m.next_power_of_two().min(8)),
    )
}

/// The parameters `gemv` and `gemv_q8` share.
pub(crate) const GEMV_PARAMS: [ParamDef; 6] = [
    u32_param(
        "rows",
        &[1, 2, 4],
        1,
        "weight rows (outputs along N) per wave",
    ),
    u32_param(
        "unroll",
        &[1, 2, 4],
        2,
        "16-byte loads per row in flight before use",
    ),
    u32_param("waves", &[2, 4, 8], 4, "waves per block"),
    u32_param(
        "splits",
        &[1, 2, 4],
        1,
        "waves sharing the same rows, each a part of K (split-K, combined in LDS)",
    ),
    crate::config::fixed(u32_param(
        "m_tile",
        &[1, 2, 4, 8],
        1,
        "tokens (rows of x) per launch, at most",
    )),
    ParamDef {
        name: "glu",
        choices: crate::config::Choices::Bool,
        default: greta_dsl::ir::ConfigValue::Bool(false),
        default_for_dtype: None,
        tunable: false,
        doc: "SwiGLU epilogue: W holds the gate's n rows then the up's; y = silu(x·gateᵀ)·(x·upᵀ)",
    },
];

pub static SPEC: KernelSpec = KernelSpec {
    name: "gemv",
    summary: "y = x · Wᵀ (+ r) for a few tokens, at the weights' bandwidth (f16/bf16)",
    params: &[
        dtype_param_halves(),
        OUT,
        RESIDUAL,
        GEMV_PARAMS[0],
        GEMV_PARAMS[1],
        GEMV_PARAMS[2],
        GEMV_PARAMS[3],
        GEMV_PARAMS[4],
        GEMV_PARAMS[5],
    ],
    shape: "m,n,k",
    test_shapes: &[
        &[1, 1, 1],
        &[1, 7, 172],
        &[1, 172, 4097],
        &[1, 33, 1024],
        &[3, 9, 2056],
        &[8, 5, 520],
    ],
    bench_shape: &[1, 4096, 4096],
    build,
    problem,
    available: crate::everywhere,
};
