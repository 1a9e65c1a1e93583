//! The pieces of a tiled matrix-core GEMM that `gemm` and `gemm_q8` share: the block's tile
//! geometry ([`TileShape`], checked at build time against the target), moving a tile from global
//! memory into registers and from registers into LDS, one K-tile of fragment loads and `mma`s,
//! and the epilogue.
//!
//! The main loop (in each kernel) is register-staged double buffering, which both targets'
//! instruction sets allow: while the waves multiply the K-tile in LDS stage `s`, each thread
//! already holds the next K-tile's global loads in registers; after the multiply it stores them
//! into stage `1 - s`, and one barrier per K-tile separates the two. `stages = 1` keeps one LDS
//! stage (load, barrier, multiply, barrier).
//!
//! Edges: rows past `M` or `N` and columns past `K` are loaded as zeros, so a partial tile
//! multiplies correctly; the epilogue writes only elements inside `M × N`. When `K` is not a
//! multiple of the vector width the loads fall back to guarded scalar ones (slow, but only odd
//! `K`s that no model has take that path).

use crate::q8::quant;
use crate::Config;
use greta_dsl::front::BuildError;
use greta_dsl::ir::Scalar;
use greta_dsl::prelude::*;

/// A block's tile geometry on one target: `bm × bn` outputs per block, K-tiles of `bk`, waves
/// arranged `warps_m × warps_n`, each computing a `wave_m × wave_n` sub-tile as
/// `frags_m × frags_n` matrix instructions.
#[derive(Clone, Copy, Debug)]
pub struct TileShape {
    pub bm: u32,
    pub bn: u32,
    pub bk: u32,
    pub warps_m: u32,
    pub warps_n: u32,
    pub stages: u32,
    pub swizzle: bool,
    pub threads: u32,
    pub wave_m: u32,
    pub wave_n: u32,
    pub frags_m: u32,
    pub frags_n: u32,
    pub ksteps: u32,
    pub inst: &'static MatrixInst,
}

/// The comptime tile parameters of a tiled GEMM, in the order its kernels take them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileParams {
    pub bm: u32,
    pub bn: u32,
    pub bk: u32,
    pub warps_m: u32,
    pub warps_n: u32,
    pub stages: u32,
    pub swizzle: bool,
}

impl TileParams {
    pub fn of(cfg: &Config) -> TileParams {
        TileParams {
            bm: cfg.u32("bm"),
            bn: cfg.u32("bn"),
            bk: cfg.u32("bk"),
            warps_m: cfg.u32("warps_m"),
            warps_n: cfg.u32("warps_n"),
            stages: cfg.u32("stages"),
            swizzle: cfg.bool("swizzle"),
        }
    }
}

impl TileShape {
    /// The geometry of `cfg`'s tile parameters for `target` with `ab` multiplicands, or why it
    /// is not a valid configuration there.
    pub fn of(
        kernel: &str,
        cfg: &Config,
        target: &'static Target,
        ab: Scalar,
    ) -> Result<TileShape, BuildError> {
        TileShape::new(TileParams::of(cfg), target, ab).map_err(|message| BuildError::Invalid {
            kernel: kernel.to_string(),
            message,
        })
    }

    /// The geometry inside a kernel being built: an invalid combination becomes the build's
    /// error (and a placeholder geometry lets the build finish).
    pub fn in_kernel(p: TileParams, ab: Scalar) -> TileShape {
        let target = greta_dsl::front::target();
        TileShape::new(p, target, ab).unwrap_or_else(|message| {
            build_error(message);
            TileShape::new(
                TileParams {
                    bm: 64,
                    bn: 64,
                    bk: 32,
                    warps_m: 1,
                    warps_n: 1,
                    stages: 1,
                    swizzle: false,
                },
                target,
                target.matrix[0].ab,
            )
            .expect("the placeholder geometry fits every target")
        })
    }

    pub fn new(p: TileParams, target: &'static Target, ab: Scalar) -> Result<TileShape, String> {
        let fail = |m: String| m;
        let inst = target
            .preferred_mma(ab)
            .ok_or_else(|| fail(format!("{target} has no matrix instruction for {ab}")))?;
        let TileParams {
            bm,
            bn,
            bk,
            warps_m,
            warps_n,
            ..
        } = p;
        if bm == 0 || bn == 0 || warps_m == 0 || warps_n == 0 {
            return Err("tile sizes and wave counts must be positive".into());
        }
        let (wave_m, wave_n) = (bm / warps_m, bn / warps_n);
        let s = inst.shape;
        if bm % warps_m != 0 || bn % warps_n != 0 || wave_m % s.m != 0 || wave_n % s.n != 0 {
            return Err(fail(format!(
                "a {bm}×{bn} tile over {warps_m}×{warps_n} waves gives {wave_m}×{wave_n} per \
                 wave, not a multiple of {target}'s {} instruction ({}×{})",
                inst.name, s.m, s.n
            )));
        }
        if bk % s.k != 0 || bk % 8 != 0 {
            return Err(fail(format!(
                "bk={bk} is not a multiple of the instruction's k ({}) and of 8",
                s.k
            )));
        }
        let threads = warps_m * warps_n * target.wave_size;
        if threads > target.max_block_threads {
            return Err(fail(format!(
                "{warps_m}×{warps_n} waves are {threads} threads; {target} allows {}",
                target.max_block_threads
            )));
        }
        // Each wave holds its `wave_m × wave_n` f32 accumulators in registers, spread over its
        // lanes. More than half of what a thread can address leaves too little for the
        // fragments and addresses: on gfx942 every tile with 256 accumulators per lane spilled
        // (104–368 bytes of scratch) or took 768 registers in `greta tune --dry-run --kernel
        // gemm` (2026-12-03), and one wave over 256×256 took 5,996 bytes and an 11 s compile.
        // Such tiles are refused before compiling.
        let accumulators = wave_m * wave_n / target.wave_size;
        let most = target.registers.max_per_thread.div_ceil(2);
        if accumulators > most {
            return Err(fail(format!(
                "a {wave_m}×{wave_n} tile per wave keeps {accumulators} f32 accumulators per \
                 lane; {target} leaves room for {most} (half of the {} registers a thread \
                 addresses)",
                target.registers.max_per_thread
            )));
        }
        let shape = TileShape {
            bm,
            bn,
            bk,
            warps_m,
            warps_n,
            stages: p.stages.max(1),
            swizzle: p.swizzle,
            threads,
            wave_m,
            wave_n,
            frags_m: wave_m / s.m,
            frags_n: wave_n / s.n,
            ksteps: bk / s.k,
            inst,
        };
        let lds = shape.lds_bytes(ab.size_bytes());
        if lds > target.lds_bytes_max {
            return Err(fail(format!(
                "{} stage(s) of {bm}×{bk} and {bn}×{bk} tiles take {lds} bytes of LDS; {target} \
                 allows {}",
                shape.stages, target.lds_bytes_max
            )));
        }
        Ok(shape)
    }

    /// LDS bytes of the A and B stages with `elem`-byte elements (padding included).
    pub fn lds_bytes(&self, elem: u32) -> u32 {
        let stride = self.bk + if self.swizzle { 0 } else { PAD };
        self.stages * (self.bm + self.bn) * stride * elem
    }

    /// The LDS layout of a tile row of `bk` elements of `elem`.
    pub fn layout(&self, target: &Target, elem: Scalar) -> TileLayout {
        if self.swizzle {
            TileLayout::swizzled_for(target, elem, self.bk)
        } else {
            TileLayout::Padded(PAD)
        }
    }

    /// Vector loads of `vec` elements each thread makes to fill a `rows × bk` tile.
    pub fn passes(&self, rows: u32, vec: u32) -> u32 {
        (rows * self.bk).div_ceil(self.threads * vec)
    }
}

/// Padding of an unswizzled tile row: 16 bytes of 16-bit elements, which shifts consecutive
/// rows by four banks (and keeps rows 16-byte aligned for vector and `ldmatrix` accesses).
const PAD: u32 = 8;

/// Thread `tid`'s share of a `rows × bk` tile at `(row0, k0)` of a row-major `total × k` matrix,
/// `V` elements per access, into registers: one bound value per pass, zeros outside the matrix.
#[device]
#[allow(clippy::too_many_arguments)]
pub fn fetch_tile<T: Float, const V: usize>(
    src: Global<T, Read>,
    total: Val<u32>,
    k: Val<u32>,
    row0: Val<u32>,
    k0: Val<u32>,
    #[comptime] rows: u32,
    #[comptime] shape: TileShape,
) -> Vec<Val<Vector<T, V>>> {
    #[comptime]
    let v = V as u32;
    #[comptime]
    let mut held = Vec::new();
    let tid = thread_idx().x;
    for p in 0..shape.passes(rows, v) {
        let lin = (tid + p * shape.threads) * v;
        let r = row0 + lin / shape.bk;
        let c = k0 + lin % shape.bk;
        let mut got = Val::<Vector<T, V>>::splat(T::from_f32(0.0f32));
        if lin < rows * shape.bk && r < total && c < k {
            if k % v == 0u32 {
                got = vload::<V, _>(&src, r * k + c);
            } else {
                #[comptime]
                let mut lanes = [T::from_f32(0.0f32); V];
                for l in 0..v {
                    let cl = min(c + l, k - 1u32);
                    lanes[l as usize] = select(c + l < k, src[r * k + cl], T::from_f32(0.0f32));
                }
                got = Val::<Vector<T, V>>::from_lanes(lanes);
            }
        }
        held.push(got);
    }
    held
}

/// Q8_0 weights' share of a thread for a `rows × bk` tile (`bk` a multiple of 32, `k0` too):
/// per pass, 8 quants (two packed words) and their block's scale, zeros outside the matrix.
#[device]
#[allow(clippy::too_many_arguments)]
pub fn fetch_q8_tile(
    scales: Global<f16, Read>,
    quants: Global<u32, Read>,
    total: Val<u32>,
    k: Val<u32>,
    row0: Val<u32>,
    k0: Val<u32>,
    #[comptime] rows: u32,
    #[comptime] shape: TileShape,
) -> Vec<(Val<Vector<u32, 2>>, Val<f32>)> {
    #[comptime]
    let mut held = Vec::new();
    let tid = thread_idx().x;
    for p in 0..shape.passes(rows, 8) {
        let lin = (tid + p * shape.threads) * 8u32;
        let r = row0 + lin / shape.bk;
        let c = k0 + lin % shape.bk;
        let mut words = Val::<Vector<u32, 2>>::splat(0u32);
        let mut d = 0.0f32;
        if lin < rows * shape.bk && r < total && c < k {
            let at = r * k + c;
            words = vload::<2, _>(&quants, at / 4u32);
            d = scales[at / 32u32].to_f32();
        }
        held.push((words, d));
    }
    held
}

/// Stores what [`fetch_tile`] holds into an LDS tile.
#[device]
pub fn stash_tile<T: Float, const V: usize>(
    tile: Tile<T>,
    #[comptime] held: &[Val<Vector<T, V>>],
    #[comptime] rows: u32,
    #[comptime] shape: TileShape,
) {
    #[comptime]
    let v = V as u32;
    let tid = thread_idx().x;
    for p in 0..shape.passes(rows, v) {
        let lin = (tid + p * shape.threads) * v;
        if (p + 1) * shape.threads * v <= rows * shape.bk {
            tile.vstore::<V>(lin / shape.bk, lin % shape.bk, held[p as usize]);
        } else if lin < rows * shape.bk {
            tile.vstore::<V>(lin / shape.bk, lin % shape.bk, held[p as usize]);
        }
    }
}

/// Dequantises what [`fetch_q8_tile`] holds (`q · d`, rounded to `T`) into an LDS tile.
#[device]
pub fn stash_q8_tile<T: Float>(
    tile: Tile<T>,
    #[comptime] held: &[(Val<Vector<u32, 2>>, Val<f32>)],
    #[comptime] rows: u32,
    #[comptime] shape: TileShape,
) {
    let tid = thread_idx().x;
    for p in 0..shape.passes(rows, 8) {
        let lin = (tid + p * shape.threads) * 8u32;
        #[comptime]
        let (words, d) = held[p as usize];
        #[comptime]
        let mut lanes = [T::from_f32(0.0f32); 8];
        for i in 0..8u32 {
            lanes[i as usize] = T::from_f32(quant(words.lane(i / 4u32), i % 4u32) * d);
        }
        let vals = Val::<Vector<T, 8>>::from_lanes(lanes);
        if (p + 1) * shape.threads * 8u32 <= rows * shape.bk {
            tile.vstore::<8>(lin / shape.bk, lin % shape.bk, vals);
        } else if lin < rows * shape.bk {
            tile.vstore::<8>(lin / shape.bk, lin % shape.bk, vals);
        }
    }
}

/// One K-tile: for each instruction-deep slice, the wave's A fragments (rows `wm0..`) and B
/// fragments (weights stored `n × k`, so transposed; rows `wn0..`) from LDS, then every
/// `frags_m × frags_n` product accumulated.
#[device]
#[allow(clippy::too_many_arguments)]
pub fn multiply_tile<T: MatrixElem>(
    ta: Tile<T>,
    tb: Tile<T>,
    fa: Frags<T, MatA>,
    fb: Frags<T, MatB>,
    acc: Frags<f32, Accum>,
    wm0: Val<u32>,
    wn0: Val<u32>,
    #[comptime] shape: TileShape,
) {
    #[comptime]
    let s = shape.inst.shape;
    for kk in 0..shape.ksteps {
        for i in 0..shape.frags_m {
            fa.at(i).load(&ta, wm0 + i * s.m, kk * s.k);
        }
        for j in 0..shape.frags_n {
            fb.at(j).load_transposed(&tb, wn0 + j * s.n, kk * s.k);
        }
        for i in 0..shape.frags_m {
            for j in 0..shape.frags_n {
                let a = acc.at(i * shape.frags_n + j);
                mma(fa.at(i), fb.at(j), a, a);
            }
        }
    }
}

/// Where a tile comes from: each source knows how a thread fetches its share into registers
/// and how it stores that share into an LDS tile of `T` (dequantising on the way, for Q8_0).
pub trait TileSource<T: Float>: Copy {
    type Held;
    #[allow(clippy::too_many_arguments)]
    fn fetch(
        self,
        total: Val<u32>,
        k: Val<u32>,
        row0: Val<u32>,
        k0: Val<u32>,
        rows: u32,
        shape: TileShape,
    ) -> Self::Held;
    fn stash(self, tile: Tile<T>, held: &Self::Held, rows: u32, shape: TileShape);
}

/// A row-major matrix of `T`, 16 bytes per load.
#[derive(Clone, Copy)]
pub struct Dense<T: Float>(pub Global<T, Read>);

impl<T: Float> TileSource<T> for Dense<T> {
    type Held = Vec<Val<Vector<T, 8>>>;
    fn fetch(
        self,
        total: Val<u32>,
        k: Val<u32>,
        row0: Val<u32>,
        k0: Val<u32>,
        rows: u32,
        shape: TileShape,
    ) -> Self::Held {
        fetch_tile::<T, 8>(self.0, total, k, row0, k0, rows, shape)
    }
    fn stash(self, tile: Tile<T>, held: &Self::Held, rows: u32, shape: TileShape) {
        stash_tile::<T, 8>(tile, held, rows, shape)
    }
}

/// Q8_0 weights (see [`crate::q8`]), dequantised into the LDS tile as `T`.
#[derive(Clone, Copy)]
pub struct Q8 {
    pub scales: Global<f16, Read>,
    pub quants: Global<u32, Read>,
}

impl<T: Float> TileSource<T> for Q8 {
    type Held = Vec<(Val<Vector<u32, 2>>, Val<f32>)>;
    fn fetch(
        self,
        total: Val<u32>,
        k: Val<u32>,
        row0: Val<u32>,
        k0: Val<u32>,
        rows: u32,
        shape: TileShape,
    ) -> Self::Held {
        fetch_q8_tile(self.scales, self.quants, total, k, row0, k0, rows, shape)
    }
    fn stash(self, tile: Tile<T>, held: &Self::Held, rows: u32, shape: TileShape) {
        stash_q8_tile::<T>(tile, held, rows, shape)
    }
}

/// The whole tiled GEMM of one block, `y = x · Wᵀ (+ r)` with `W` from `w` (see the module
/// docs for the main loop).
#[device]
#[allow(clippy::too_many_arguments)]
pub fn gemm_body<T: MatrixElem, O: Float, W: TileSource<T>>(
    x: Global<T, Read>,
    #[comptime] w: W,
    r: Global<O, Read>,
    y: Global<O, ReadWrite>,
    m: Val<u32>,
    n: Val<u32>,
    k: Val<u32>,
    #[comptime] shape: TileShape,
    #[comptime] residual: bool,
) {
    block_size(shape.threads);
    #[comptime]
    let a = Dense(x);
    #[comptime]
    let layout = shape.layout(target(), T::SCALAR);
    let ta = lds_tiles::<T>(shape.stages, shape.bm, shape.bk, layout);
    let tb = lds_tiles::<T>(shape.stages, shape.bn, shape.bk, layout);
    let m0 = block_idx().y * shape.bm;
    let n0 = block_idx().x * shape.bn;
    let wave = thread_idx().x / target().wave_size;
    let wm0 = wave / shape.warps_n * shape.wave_m;
    let wn0 = wave % shape.warps_n * shape.wave_n;
    let fa = fragments::<T, MatA>(shape.inst, shape.frags_m);
    let fb = fragments::<T, MatB>(shape.inst, shape.frags_n);
    let acc = fragments::<f32, Accum>(shape.inst, shape.frags_m * shape.frags_n);
    acc.fill(0.0f32);
    let tiles = (k + (shape.bk - 1u32)) / shape.bk;
    if shape.stages == 1 {
        for kt in 0..tiles {
            let k0 = kt * shape.bk;
            #[comptime]
            let ha = a.fetch(m, k, m0, k0, shape.bm, shape);
            #[comptime]
            let hb = w.fetch(n, k, n0, k0, shape.bn, shape);
            a.stash(ta.stage(0u32), &ha, shape.bm, shape);
            w.stash(tb.stage(0u32), &hb, shape.bn, shape);
            barrier();
            multiply_tile(ta.stage(0u32), tb.stage(0u32), fa, fb, acc, wm0, wn0, shape);
            barrier();
        }
    } else {
        let zero = Val::constant(0u32);
        #[comptime]
        let ha = a.fetch(m, k, m0, zero, shape.bm, shape);
        #[comptime]
        let hb = w.fetch(n, k, n0, zero, shape.bn, shape);
        a.stash(ta.stage(0u32), &ha, shape.bm, shape);
        w.stash(tb.stage(0u32), &hb, shape.bn, shape);
        barrier();
        for kt in 0..tiles {
            // The next K-tile into registers (the last iteration reloads its own tile into the
            // stage nobody reads again: no branch, no harm).
            let next = min(kt + 1u32, tiles - 1u32) * shape.bk;
            #[comptime]
            let ha = a.fetch(m, k, m0, next, shape.bm, shape);
            #[comptime]
            let hb = w.fetch(n, k, n0, next, shape.bn, shape);
            let s = kt % 2u32;
            multiply_tile(ta.stage(s), tb.stage(s), fa, fb, acc, wm0, wn0, shape);
            a.stash(ta.stage(1u32 - s), &ha, shape.bm, shape);
            w.stash(tb.stage(1u32 - s), &hb, shape.bn, shape);
            barrier();
        }
    }
    write_output::<O>(acc, r, y, m0 + wm0, n0 + wn0, m, n, shape, residual);
}

/// Writes the accumulators inside `m × n`: `y = acc (+ r)`, rounded to `O` once.
#[device]
#[allow(clippy::too_many_arguments)]
pub fn write_output<O: Float>(
    acc: Frags<f32, Accum>,
    r: Global<O, Read>,
    y: Global<O, ReadWrite>,
    row0: Val<u32>,
    col0: Val<u32>,
    m: Val<u32>,
    n: Val<u32>,
    #[comptime] shape: TileShape,
    #[comptime] residual: bool,
) {
    #[comptime]
    let s = shape.inst.shape;
    for i in 0..shape.frags_m {
        for j in 0..shape.frags_n {
            let f = acc.at(i * shape.frags_n + j);
            for e in 0..f.elems() {
                let (fr, fc) = f.coord(e);
                let row = row0 + i * s.m + fr;
                let col = col0 + j * s.n + fc;
                if row < m && col < n {
                    let at = row * n + col;
                    let mut v = f.get(e);
                    if residual {
                        v = v + r[at].to_f32();
                    }
                    y[at] = O::from_f32(v);
                }
            }
        }
    }
}

// ---- the warpgroup-engine GEMM (sm_90a) -------------------------------------------------------

/// The tile geometry of the warpgroup GEMM: `bm = 64 · warpgroups` rows, `bn` columns (the
/// engine's `n`), K-tiles of one 128-byte LDS row (`bk` = 64 f16/bf16), `stages` of them.
#[derive(Clone, Copy, Debug)]
pub struct WgShape {
    pub bm: u32,
    pub bn: u32,
    pub bk: u32,
    pub stages: u32,
    pub warpgroups: u32,
    pub threads: u32,
}

impl WgShape {
    /// The geometry for `target` with `ab` multiplicands, or why it does not fit.
    pub fn new(
        bm: u32,
        bn: u32,
        stages: u32,
        target: &'static Target,
        ab: Scalar,
    ) -> Result<WgShape, String> {
        let wg = target
            .warpgroup
            .ok_or_else(|| format!("{target} has no warpgroup matrix engine"))?;
        if bm == 0 || bm % wg.m != 0 {
            return Err(format!(
                "bm={bm} is not a multiple of the engine's {} rows",
                wg.m
            ));
        }
        if !wg.valid_n(bn) {
            return Err(format!(
                "bn={bn}: the engine's n is a multiple of {} up to {}",
                wg.n_step, wg.n_max
            ));
        }
        if stages < 3 {
            return Err(format!("stages={stages}: the pipeline needs at least 3"));
        }
        let warpgroups = bm / wg.m;
        let threads = warpgroups * wg.threads(target.wave_size);
        if threads > target.max_block_threads {
            return Err(format!(
                "bm={bm} needs {threads} threads; {target} launches {}",
                target.max_block_threads
            ));
        }
        let bk = wg.row_elems(ab);
        let shape = WgShape {
            bm,
            bn,
            bk,
            stages,
            warpgroups,
            threads,
        };
        let lds = stages * (bm + bn) * wg.row_bytes;
        if lds > target.lds_bytes_max {
            return Err(format!(
                "{stages} stages of {bm}×{bk} and {bn}×{bk} tiles take {lds} bytes of LDS; {target} allows {}",
                target.lds_bytes_max
            ));
        }
        Ok(shape)
    }

    /// Inside a kernel being built: an invalid geometry becomes the build's error.
    pub fn in_kernel(bm: u32, bn: u32, stages: u32, ab: Scalar) -> WgShape {
        let target = greta_dsl::front::target();
        WgShape::new(bm, bn, stages, target, ab).unwrap_or_else(|message| {
            build_error(message);
            WgShape {
                bm: 64,
                bn: 64,
                bk: 64,
                stages: 3,
                warpgroups: 1,
                threads: 128,
            }
        })
    }
}

/// Where a warpgroup GEMM's tiles come from: a source fills one K-tile stage of `rows` rows
/// (asynchronously where it can).
pub trait WgTileSource<T: Float>: Copy {
    #[allow(clippy::too_many_arguments)]
    fn fill(
        self,
        tile: Tile<T>,
        total: Val<u32>,
        k: Val<u32>,
        row0: Val<u32>,
        k0: Val<u32>,
        rows: u32,
        shape: WgShape,
        aligned: bool,
    );
}

impl<T: Float> WgTileSource<T> for Dense<T> {
    fn fill(
        self,
        tile: Tile<T>,
        total: Val<u32>,
        k: Val<u32>,
        row0: Val<u32>,
        k0: Val<u32>,
        rows: u32,
        shape: WgShape,
        aligned: bool,
    ) {
        copy_tile::<T>(self.0, tile, total, k, row0, k0, rows, shape, aligned)
    }
}

impl<T: Float> WgTileSource<T> for Q8 {
    fn fill(
        self,
        tile: Tile<T>,
        total: Val<u32>,
        k: Val<u32>,
        row0: Val<u32>,
        k0: Val<u32>,
        rows: u32,
        shape: WgShape,
        _aligned: bool,
    ) {
        // Q8_0 rows are whole blocks of 32: always aligned.
        dequantize_tile::<T>(
            self.scales,
            self.quants,
            tile,
            total,
            k,
            row0,
            k0,
            rows,
            shape,
        )
    }
}

/// A `rows × bk` K-tile from a row-major `total × k` matrix into `tile`: 16-byte asynchronous
/// copies (zero-filled outside the matrix) when `aligned` (`k` a multiple of 8), else guarded
/// element loads and stores.
#[device]
#[allow(clippy::too_many_arguments)]
pub fn copy_tile<T: Float>(
    src: Global<T, Read>,
    tile: Tile<T>,
    total: Val<u32>,
    k: Val<u32>,
    row0: Val<u32>,
    k0: Val<u32>,
    #[comptime] rows: u32,
    #[comptime] shape: WgShape,
    #[comptime] aligned: bool,
) {
    let tid = thread_idx().x;
    #[comptime]
    let chunks = rows * shape.bk / 8u32;
    #[comptime]
    let passes = chunks.div_ceil(shape.threads);
    for p in 0..passes {
        let lin = tid + p * shape.threads;
        let r = lin / (shape.bk / 8u32);
        let c = lin % (shape.bk / 8u32) * 8u32;
        let row = row0 + r;
        let col = k0 + c;
        // Every pass but a last partial one covers all threads.
        if (p + 1u32) * shape.threads <= chunks || lin < chunks {
            if aligned {
                let ok = row < total && col < k;
                async_copy::<8, _, _>(&tile, r, c, &src, select(ok, row * k + col, 0u32), ok);
            } else {
                for l in 0..8u32 {
                    let ok = row < total && col + l < k;
                    let at = min(row, total - 1u32) * k + min(col + l, k - 1u32);
                    tile.store(r, c + l, select(ok, src[at], T::from_f32(0.0f32)));
                }
            }
        }
    }
}

/// A `rows × bk` K-tile of Q8_0 weights, dequantised (`q · d` rounded to `T`) into `tile` with
/// ordinary loads and stores; `k0` and `bk` are multiples of 32.
#[device]
#[allow(clippy::too_many_arguments)]
pub fn dequantize_tile<T: Float>(
    scales: Global<f16, Read>,
    quants: Global<u32, Read>,
    tile: Tile<T>,
    total: Val<u32>,
    k: Val<u32>,
    row0: Val<u32>,
    k0: Val<u32>,
    #[comptime] rows: u32,
    #[comptime] shape: WgShape,
) {
    let tid = thread_idx().x;
    #[comptime]
    let chunks = rows * shape.bk / 8u32;
    #[comptime]
    let passes = chunks.div_ceil(shape.threads);
    for p in 0..passes {
        let lin = tid + p * shape.threads;
        let r = lin / (shape.bk / 8u32);
        let c = lin % (shape.bk / 8u32) * 8u32;
        let row = row0 + r;
        let col = k0 + c;
        if lin < chunks {
            let ok = row < total && col < k;
            let at = select(ok, row * k + col, 0u32);
            let words = vload::<2, _>(&quants, at / 4u32);
            let d = select(ok, scales[at / 32u32].to_f32(), 0.0f32);
            #[comptime]
            let mut lanes = [T::from_f32(0.0f32); 8];
            for i in 0..8u32 {
                lanes[i as usize] = T::from_f32(quant(words.lane(i / 4u32), i % 4u32) * d);
            }
            tile.vstore::<8>(r, c, Val::<Vector<T, 8>>::from_lanes(lanes));
        }
    }
}

/// The whole warpgroup GEMM of one block, `y = x · Wᵀ (+ r)`: `stages` K-tile stages in
/// 128-byte-swizzled LDS filled `stages - 2` tiles ahead, each warpgroup multiplying its 64 rows
/// by the block's `bn` columns with one engine batch per K-tile, one batch left in flight.
///
/// The pipeline ([`warpgroup_mainloop`]) is specialised on whether `k` is a multiple of 8: the
/// common case copies 16-byte chunks asynchronously with no per-chunk branch (the copies are
/// most of what the threads issue, and a branch per chunk doubled their instructions); the
/// other falls back to guarded element loads.
#[device]
#[allow(clippy::too_many_arguments)]
pub fn warpgroup_gemm_body<T: MatrixElem, O: Float, W: WgTileSource<T>>(
    x: Global<T, Read>,
    #[comptime] w: W,
    r: Global<O, Read>,
    y: Global<O, ReadWrite>,
    m: Val<u32>,
    n: Val<u32>,
    k: Val<u32>,
    #[comptime] shape: WgShape,
    #[comptime] residual: bool,
) {
    block_size(shape.threads);
    let ta = warpgroup_tiles::<T>(shape.stages, shape.bm);
    let tb = warpgroup_tiles::<T>(shape.stages, shape.bn);
    let m0 = block_idx().y * shape.bm;
    let n0 = block_idx().x * shape.bn;
    let wg = thread_idx().x / (4u32 * target().wave_size);
    let acc = warpgroup_accumulators(shape.bn, 1);
    acc.fill(0.0f32);
    #[comptime]
    let edges = Edges { m, n, k, m0, n0 };
    // Each branch ends with its own epilogue: accumulators live across a join would be copies
    // between the engine's batches, which makes ptxas serialise them (C7515).
    if k % 8u32 == 0u32 {
        warpgroup_mainloop::<T, W>(Dense(x), w, ta, tb, acc.at(0), wg, edges, shape, true);
        wgmma_wait(0);
        write_warpgroup_output::<O>(acc.at(0), r, y, m0 + wg * 64u32, n0, m, n, residual);
    } else {
        warpgroup_mainloop::<T, W>(Dense(x), w, ta, tb, acc.at(0), wg, edges, shape, false);
        wgmma_wait(0);
        write_warpgroup_output::<O>(acc.at(0), r, y, m0 + wg * 64u32, n0, m, n, residual);
    }
}

/// The problem's extent and the block's corner, as a warpgroup GEMM's pipeline sees them.
#[derive(Clone, Copy)]
pub struct Edges {
    pub m: Val<u32>,
    pub n: Val<u32>,
    pub k: Val<u32>,
    pub m0: Val<u32>,
    pub n0: Val<u32>,
}

/// The K loop of [`warpgroup_gemm_body`]; `aligned`: `k` is a multiple of 8.
///
/// Per K-tile `kt`: wait for this thread's copies of tile `kt`, fence them for the engine and
/// barrier (after which every warpgroup has finished the batch of tile `kt - 2`); issue the
/// batch on stage `kt % stages`; start filling tile `kt + stages - 2` into the stage of tile
/// `kt - 2`; wait until at most this batch is in flight. The interpreter checks every one of
/// these orderings.
#[device]
#[allow(clippy::too_many_arguments)]
pub fn warpgroup_mainloop<T: MatrixElem, W: WgTileSource<T>>(
    #[comptime] a_src: Dense<T>,
    #[comptime] w: W,
    ta: LdsTiles<T>,
    tb: LdsTiles<T>,
    acc: WgAcc,
    wg: Val<u32>,
    #[comptime] e: Edges,
    #[comptime] shape: WgShape,
    #[comptime] aligned: bool,
) {
    #[comptime]
    let ahead = shape.stages - 2u32;
    let tiles = (e.k + (shape.bk - 1u32)) / shape.bk;
    for s in 0..ahead {
        let k0 = Val::constant(s * shape.bk);
        a_src.fill(ta.stage(s), e.m, e.k, e.m0, k0, shape.bm, shape, aligned);
        w.fill(tb.stage(s), e.n, e.k, e.n0, k0, shape.bn, shape, aligned);
        async_commit();
    }
    for kt in 0..tiles {
        async_wait(ahead - 1u32);
        fence_async_lds();
        barrier();
        let s = kt % shape.stages;
        let a = ta.stage(s);
        let b = tb.stage(s);
        wgmma_fence();
        for kk in 0..shape.bk / 16u32 {
            wgmma(acc, &a, wg * 64u32, kk * 16u32, &b, 0u32, kk * 16u32);
        }
        wgmma_commit();
        // Tile kt + ahead (past the end: a stage of zeros nobody reads).
        let next = kt + ahead;
        let fs = next % shape.stages;
        let k0 = select(next < tiles, next * shape.bk, e.k);
        a_src.fill(ta.stage(fs), e.m, e.k, e.m0, k0, shape.bm, shape, aligned);
        w.fill(tb.stage(fs), e.n, e.k, e.n0, k0, shape.bn, shape, aligned);
        async_commit();
        wgmma_wait(1);
    }
}

/// Writes a warpgroup's `64 × bn` accumulators inside `m × n`: `y = acc (+ r)`, rounded to `O`
/// once; pairs of adjacent columns as one access where `n` is even.
#[device]
#[allow(clippy::too_many_arguments)]
pub fn write_warpgroup_output<O: Float>(
    acc: WgAcc,
    r: Global<O, Read>,
    y: Global<O, ReadWrite>,
    row0: Val<u32>,
    col0: Val<u32>,
    m: Val<u32>,
    n: Val<u32>,
    #[comptime] residual: bool,
) {
    let even = n % 2u32 == 0u32;
    for e in (0..acc.elems()).step_by(2) {
        let (fr, fc) = acc.coord(e);
        let row = row0 + fr;
        let col = col0 + fc;
        let at = row * n + col;
        let mut v0 = acc.get(e);
        let mut v1 = acc.get(e + 1u32);
        if even && row < m && col + 1u32 < n {
            if residual {
                let rv = vload::<2, _>(&r, at).to_f32();
                v0 = v0 + rv.lane(0);
                v1 = v1 + rv.lane(1);
            }
            vstore::<2, _>(
                &y,
                at,
                Val::<Vector<O, 2>>::from_lanes([O::from_f32(v0), O::from_f32(v1)]),
            );
        } else {
            for h in 0..2u32 {
                if row < m && col + h < n {
                    let mut v = acc.get(e + h);
                    if residual {
                        v = v + r[at + h].to_f32();
                    }
                    y[at + h] = O::from_f32(v);
                }
            }
        }
    }
}
