//! Matrix cores in the DSL: tiles that own their memory layout, register fragments typed by the
//! operand they hold, and the wave-collective `mma`.
//!
//! A kernel chooses its instruction at build time from the target it is built for
//! ([`matrix_inst`]); fragment sizes follow from the instruction's layout, so one kernel
//! definition serves wave-64 MFMA and warp-32 `mma.sync`. The operand is part of a fragment's
//! type (`Frag<f16, MatA>`), so passing a B fragment where `mma` wants an A, or an f32 fragment
//! as a multiplicand, is a Rust type error at the offending tokens.
//!
//! ```text
//! let inst = matrix_inst::<T>();                       // comptime: the target's instruction
//! let a = fragments::<T, MatA>(inst, 2);               // 2 A fragments in registers
//! let acc = fragments::<f32, Accum>(inst, 4);
//! a.at(0).load(&tile_a, row, col);                     // from an LDS tile (ldmatrix on NVIDIA)
//! mma(a.at(0), b.at(1), acc.at(1), acc.at(1));         // acc += A · B
//! let (r, c) = acc.at(1).coord(e);                     // where element e of this lane sits
//! ```

use super::memory::{Global, Local, MemoryHandle, Shared};
use super::values::{Elem, Float, IntoVal, Val};
use super::with;
use crate::ir::{FragPlace, FragRef, Memory, MmaShape, Operand, Scalar, Stmt, Swizzle, TileRef};
use crate::target::{Coord, MatrixInst};
use std::marker::PhantomData;

/// Element types matrix cores multiply: f16 and bf16 (accumulating in f32), on every target.
///
/// Example: `fn gemm<T: MatrixElem>(a: &[T], b: &[T], d: &mut [f32])` as a `#[kernel]`
/// signature.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a matrix-core multiplicand",
    label = "matrix cores multiply f16 or bf16 fragments (accumulating in f32)"
)]
pub trait MatrixElem: Float {}
impl MatrixElem for half::f16 {}
impl MatrixElem for half::bf16 {}

/// The operand a fragment type holds.
pub trait Role: Copy + 'static {
    const OPERAND: Operand;
}
/// Marker: the A (`m × k`) multiplicand.
///
/// Example: `let fa = fragments::<T, MatA>(inst, 2);`
#[derive(Clone, Copy, Debug)]
pub struct MatA;
/// Marker: the B (`k × n`) multiplicand.
///
/// Example: `let fb = fragments::<T, MatB>(inst, 2);`
#[derive(Clone, Copy, Debug)]
pub struct MatB;
/// Marker: the f32 accumulator (`m × n`), C and D.
///
/// Example: `let acc = fragments::<f32, Accum>(inst, 4);`
#[derive(Clone, Copy, Debug)]
pub struct Accum;
impl Role for MatA {
    const OPERAND: Operand = Operand::A;
}
impl Role for MatB {
    const OPERAND: Operand = Operand::B;
}
impl Role for Accum {
    const OPERAND: Operand = Operand::Acc;
}

/// The preferred matrix instruction of the target being built for, for `T` multiplicands.
/// Records a build error (and returns the first instruction of any type, so the build can go
/// on to report it) when the target has none. Comptime: the result's `shape` (`m`, `n`, `k`)
/// sizes the kernel's loops. gfx942 prefers the 16×16×16 MFMA, sm_90 `mma.sync` m16n8k16.
///
/// Example: `let inst = matrix_inst::<T>();` then `inst.shape.n` (16 on gfx942, 8 on sm_90).
pub fn matrix_inst<T: MatrixElem>() -> &'static MatrixInst {
    matrix_inst_of::<T>(None)
}

/// The target's matrix instruction of `shape` for `T` multiplicands (see [`matrix_inst`]); a
/// build error where the target has none of that shape.
///
/// Example: `let inst = matrix_inst_shaped::<f16>(32, 32, 8);` (gfx942 only).
pub fn matrix_inst_shaped<T: MatrixElem>(m: u32, n: u32, k: u32) -> &'static MatrixInst {
    matrix_inst_of::<T>(Some(MmaShape::new(m, n, k)))
}

fn matrix_inst_of<T: MatrixElem>(shape: Option<MmaShape>) -> &'static MatrixInst {
    with(|b| {
        let target = b.target();
        let found = match shape {
            Some(s) => target.mma(s, T::SCALAR),
            None => target.preferred_mma(T::SCALAR),
        };
        match found {
            Some(i) => i,
            None => {
                let what = shape.map_or_else(String::new, |s| format!("{s} "));
                b.error(format!(
                    "{} has no {what}matrix instruction for {} inputs",
                    target.name,
                    T::SCALAR
                ));
                &target.matrix[0]
            }
        }
    })
}

/// `count` fragments of `role` for `inst`, in one register array of `count` × the layout's
/// elements per lane (registers count against the target's per-thread limit). `T` must be the
/// instruction's type for the role (its multiplicand type, f32 for `Accum`): a build error
/// otherwise.
///
/// Example: `let acc = fragments::<f32, Accum>(inst, 4);` then `acc.fill(0.0f32);`
pub fn fragments<T: Elem, R: Role>(inst: &'static MatrixInst, count: u32) -> Frags<T, R> {
    if T::SCALAR != inst.elem(R::OPERAND) {
        with(|b| {
            b.error(format!(
                "{} fragments of {} hold {}, not {}",
                R::OPERAND.name(),
                inst.name,
                inst.elem(R::OPERAND),
                T::SCALAR
            ))
        });
    }
    let len = inst.layout(R::OPERAND).len;
    let local = super::memory::local_array::<T>(len * count.max(1));
    Frags {
        local,
        inst,
        count,
        _r: PhantomData,
    }
}

/// Several fragments of one operand in one register array, from `fragments`; [`Frags::at`]
/// picks one (a comptime index).
///
/// Example: `mma(fa.at(0), fb.at(j), acc.at(j), acc.at(j));` (`j` comptime).
pub struct Frags<T: Elem, R: Role> {
    local: Local<T>,
    inst: &'static MatrixInst,
    count: u32,
    _r: PhantomData<R>,
}

/// One fragment: `len` elements of a register array, per lane, laid out as the instruction
/// needs. It loads from and stores to a [`Tile`] (`.load`, `.load_transposed`, `.store`),
/// element by element with `.get(i)` / `.set(i, v)`, and `.coord(i)` says where element `i`
/// sits in the matrix. Tile loads and stores are wave-collective like `mma`: every lane runs
/// them, with the same tile, row and column.
///
/// Example: `fa.at(0).load(&tile_a, row, kk * inst.shape.k);` (the wave loads its A operand).
pub struct Frag<T: Elem, R: Role> {
    local: Local<T>,
    offset: u32,
    inst: &'static MatrixInst,
    _r: PhantomData<R>,
}

impl<T: Elem, R: Role> Clone for Frags<T, R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Elem, R: Role> Copy for Frags<T, R> {}
impl<T: Elem, R: Role> Clone for Frag<T, R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Elem, R: Role> Copy for Frag<T, R> {}

impl<T: Elem, R: Role> super::Bind for Frags<T, R> {
    fn bind(self, name: &str) -> Self {
        super::Bind::bind(self.local, name);
        self
    }
}
impl<T: Elem, R: Role> super::Bind for Frag<T, R> {
    fn bind(self, _name: &str) -> Self {
        self
    }
}

impl<T: Elem, R: Role> Frags<T, R> {
    /// Fragment `i` (comptime).
    pub fn at(self, i: u32) -> Frag<T, R> {
        if i >= self.count {
            with(|b| {
                b.error(format!(
                    "fragment {i} of {} {} fragments",
                    self.count,
                    R::OPERAND.name()
                ))
            });
        }
        let len = self.inst.layout(R::OPERAND).len;
        Frag {
            local: self.local,
            offset: i.min(self.count.saturating_sub(1)) * len,
            inst: self.inst,
            _r: PhantomData,
        }
    }

    /// Elements per lane of one fragment.
    pub fn elems(self) -> u32 {
        self.inst.layout(R::OPERAND).len
    }

    pub fn count(self) -> u32 {
        self.count
    }

    /// Sets every element of every fragment to `value`.
    pub fn fill(self, value: impl IntoVal<Elem = T> + Copy) {
        for i in 0..self.count * self.elems() {
            super::memory::store(&self.local, i, value);
        }
    }
}

fn coord_expr(c: &Coord, lane: Val<u32>, elem: u32) -> Val<u32> {
    let mut v: Val<u32> = Val::constant(c.elem_part(elem));
    for t in c.lane {
        let mut x = lane;
        if t.div != 1 {
            x = x / t.div;
        }
        // `lane < wave size` and every term's modulo covers the lanes it sees, except where it
        // folds lane groups; the modulo is kept whenever it can matter.
        x = x % t.modulo;
        if t.mul != 1 {
            x = x * t.mul;
        }
        v = v + x;
    }
    v
}

impl<T: Elem, R: Role> Frag<T, R> {
    fn frag_ref(self) -> FragRef {
        FragRef {
            local: self.local.id(),
            offset: self.offset,
        }
    }

    /// Elements per lane.
    pub fn elems(self) -> u32 {
        self.inst.layout(R::OPERAND).len
    }

    /// Element `i` (comptime) of this lane's fragment.
    pub fn get(self, i: u32) -> Val<T> {
        super::memory::load(&self.local, self.offset + i)
    }

    /// Sets element `i` (comptime) of this lane's fragment.
    pub fn set(self, i: u32, value: impl IntoVal<Elem = T>) {
        super::memory::store(&self.local, self.offset + i, value);
    }

    /// `(row, column)` in the operand's matrix of this lane's element `i` (comptime), by the
    /// instruction's layout: what an epilogue needs to know where a result goes.
    pub fn coord(self, i: u32) -> (Val<u32>, Val<u32>) {
        let layout = self.inst.layout(R::OPERAND);
        let lane = super::lane_id();
        (
            coord_expr(&layout.row, lane, i),
            coord_expr(&layout.col, lane, i),
        )
    }

    fn place(
        tile: &Tile<T>,
        row: impl IntoVal<Elem = u32>,
        col: impl IntoVal<Elem = u32>,
        transposed: bool,
    ) -> FragPlace {
        FragPlace {
            tile: tile.tile_ref(),
            row: row.into_val().id,
            col: col.into_val().id,
            transposed,
        }
    }

    fn access(self, place: FragPlace, store: bool) {
        let (shape, operand, frag) = (self.inst.shape, R::OPERAND, self.frag_ref());
        with(|b| {
            b.push(if store {
                Stmt::StoreFragment {
                    shape,
                    operand,
                    frag,
                    place,
                }
            } else {
                Stmt::LoadFragment {
                    shape,
                    operand,
                    frag,
                    place,
                }
            })
        });
    }

    /// Loads this fragment from `tile`, its `(0, 0)` element at tile element `(row, col)`.
    pub fn load(
        self,
        tile: &Tile<T>,
        row: impl IntoVal<Elem = u32>,
        col: impl IntoVal<Elem = u32>,
    ) {
        self.access(Self::place(tile, row, col, false), false);
    }

    /// Loads this fragment from a tile that holds the operand transposed: element `(i, j)` of
    /// the operand is tile element `(row + j, col + i)` (B stored `n × k`, as GGUF weights are).
    pub fn load_transposed(
        self,
        tile: &Tile<T>,
        row: impl IntoVal<Elem = u32>,
        col: impl IntoVal<Elem = u32>,
    ) {
        self.access(Self::place(tile, row, col, true), false);
    }

    /// Stores this fragment into `tile` at `(row, col)` (see [`Frag::load`]).
    pub fn store(
        self,
        tile: &Tile<T>,
        row: impl IntoVal<Elem = u32>,
        col: impl IntoVal<Elem = u32>,
    ) {
        self.access(Self::place(tile, row, col, false), true);
    }
}

/// `d = a · b + c`, collectively by the wave, on the kernel's target's matrix instruction:
/// one MFMA on gfx942, one `mma.sync` on sm_90. Every lane of the wave must execute it; `c`
/// and `d` may be the same fragment. All four fragments must come from one instruction (a
/// build error otherwise).
///
/// Example: `mma(fa.at(0), fb.at(j), acc.at(j), acc.at(j));` (`acc += A · B`).
pub fn mma<T: MatrixElem>(
    a: Frag<T, MatA>,
    b: Frag<T, MatB>,
    c: Frag<f32, Accum>,
    d: Frag<f32, Accum>,
) {
    let inst = a.inst;
    if b.inst != inst || c.inst != inst || d.inst != inst {
        with(|bld| {
            bld.error(format!(
                "mma on fragments of different instructions ({}, {}, {}, {})",
                a.inst.name, b.inst.name, c.inst.name, d.inst.name
            ))
        });
    }
    let stmt = Stmt::Mma {
        shape: inst.shape,
        a: a.frag_ref(),
        b: b.frag_ref(),
        c: c.frag_ref(),
        d: d.frag_ref(),
    };
    with(|bld| bld.push(stmt));
}

/// How a tile lays out its rows in memory, chosen so that the wave's fragment loads and
/// vector stores avoid LDS bank conflicts.
///
/// Example: `let layout = TileLayout::swizzled_for(target(), T::SCALAR, 32);` (or
/// `TileLayout::Padded(8)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TileLayout {
    /// Rows of `cols + pad` elements: the padding shifts consecutive rows across banks.
    Padded(u32),
    /// Rows of exactly `cols` elements, 16-byte chunks XOR-swizzled by row (see [`Swizzle`]).
    Swizzled(Swizzle),
}

impl super::Bind for TileLayout {
    fn bind(self, _name: &str) -> Self {
        self
    }
}

impl TileLayout {
    /// The XOR swizzle of 16-byte chunks that puts the same chunk of 8 consecutive rows in 8
    /// different groups of banks of `target` (what 8-row `ldmatrix` reads and 16-byte stores
    /// need to be conflict-free), for rows of `cols` elements of `elem`.
    pub fn swizzled_for(target: &crate::Target, elem: Scalar, cols: u32) -> TileLayout {
        let chunk = (16 / elem.size_bytes()).max(1);
        let line_chunks = (target.lds_banks.banks * target.lds_banks.bank_bytes / 16).max(1);
        let row_chunks = (cols / chunk).max(1);
        if !row_chunks.is_power_of_two() || !cols.is_multiple_of(chunk) {
            return TileLayout::Padded(chunk);
        }
        let period = row_chunks.min(line_chunks);
        let row_div = (line_chunks / row_chunks).max(1);
        TileLayout::Swizzled(Swizzle {
            chunk,
            row_div,
            period,
        })
    }
}

/// A row-major matrix tile in LDS or global memory that knows its layout: element `(r, c)` is
/// at `base + r · stride + swizzle(r, c)`. From `LdsTiles::stage` or `global_tile`; fragment
/// loads, `.store`, `.vload`, `.vstore` and `.index` address it by `(row, col)`.
///
/// Example: `let tile = tiles.stage(0u32); tile.store(r, c, x[e]);`
pub struct Tile<T: Elem> {
    mem: Memory,
    base: Val<u32>,
    stride: Val<u32>,
    /// Comptime stride, for LDS tiles (the allocation's row length).
    stride_c: Option<u32>,
    swizzle: Swizzle,
    _t: PhantomData<T>,
}

impl<T: Elem> Clone for Tile<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Elem> Copy for Tile<T> {}
impl<T: Elem> super::Bind for Tile<T> {
    fn bind(self, _name: &str) -> Self {
        self
    }
}

/// `stages` LDS tiles of `rows × cols` elements with `layout`, in one LDS array; stage `s` is
/// [`LdsTiles::stage`]. Build error if the layout does not fit the row length. Comptime
/// sizes; the LDS counts against the target's limit like any `shared` array.
///
/// Example: `let ta = lds_tiles::<T>(2, 64, 32, layout);` (double-buffered 64 × 32 tiles).
pub fn lds_tiles<T: Elem>(stages: u32, rows: u32, cols: u32, layout: TileLayout) -> LdsTiles<T> {
    let (stride, swizzle) = match layout {
        TileLayout::Padded(pad) => (cols + pad, Swizzle::NONE),
        TileLayout::Swizzled(s) => {
            let ok = [s.chunk, s.row_div, s.period]
                .iter()
                .all(|v| v.is_power_of_two())
                && cols.is_multiple_of(s.chunk * s.period);
            if !ok {
                with(|b| {
                    b.error(format!(
                        "swizzle {s:?} does not fit rows of {cols} elements (chunk, row_div and \
                         period must be powers of two, and a row a multiple of chunk · period)"
                    ))
                });
            }
            (cols, s)
        }
    };
    let array = super::memory::shared::<T>((stages * rows * stride).max(1));
    LdsTiles {
        array,
        rows,
        stride,
        swizzle,
        stages,
    }
}

/// Stages of one LDS tile shape (see [`lds_tiles`]).
///
/// Example: `let a = ta.stage(kt % 2u32);` (a ring buffer indexed by a runtime K-tile).
pub struct LdsTiles<T: Elem> {
    array: Shared<T>,
    rows: u32,
    stride: u32,
    swizzle: Swizzle,
    stages: u32,
}

impl<T: Elem> Clone for LdsTiles<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Elem> Copy for LdsTiles<T> {}
impl<T: Elem> super::Bind for LdsTiles<T> {
    fn bind(self, name: &str) -> Self {
        super::Bind::bind(self.array, name);
        self
    }
}

impl<T: Elem> LdsTiles<T> {
    /// Stage `s` (comptime, or runtime for a ring buffer).
    pub fn stage(self, s: impl IntoVal<Elem = u32>) -> Tile<T> {
        let s = s.into_val();
        Tile {
            mem: self.array.memory(),
            base: s * (self.rows * self.stride),
            stride: Val::constant(self.stride),
            stride_c: Some(self.stride),
            swizzle: self.swizzle,
            _t: PhantomData,
        }
    }

    pub fn stages(self) -> u32 {
        self.stages
    }
}

/// A plain row-major tile of a global buffer: element `(r, c)` at `base + r · stride + c`
/// (no swizzle; `base` and `stride` may be runtime). Fragments load from it directly, without
/// staging in LDS.
///
/// Example: `fb.at(0).load(&global_tile(&b, 0u32, n), kk * tk, j * tn);` (`tk`, `tn` the
/// instruction's shape).
pub fn global_tile<T: Elem, A>(
    buffer: &Global<T, A>,
    base: impl IntoVal<Elem = u32>,
    stride: impl IntoVal<Elem = u32>,
) -> Tile<T> {
    Tile {
        mem: buffer.memory(),
        base: base.into_val(),
        stride: stride.into_val(),
        stride_c: None,
        swizzle: Swizzle::NONE,
        _t: PhantomData,
    }
}

impl<T: Elem> Tile<T> {
    fn tile_ref(&self) -> TileRef {
        TileRef {
            mem: self.mem,
            base: self.base.id,
            stride: self.stride.id,
            swizzle: self.swizzle,
        }
    }

    /// The element index of `(row, col)`; `col` comptime-aligned runs of the swizzle's chunk
    /// stay contiguous, so a vector access of up to `chunk` elements at an aligned `col` is one
    /// access.
    pub fn index(&self, row: impl IntoVal<Elem = u32>, col: impl IntoVal<Elem = u32>) -> Val<u32> {
        let (row, col) = (row.into_val(), col.into_val());
        let s = self.swizzle;
        let c = if s.is_none() {
            col
        } else {
            let mut key = row;
            if s.row_div != 1 {
                key = key / s.row_div;
            }
            key = key % s.period;
            col ^ (key * s.chunk)
        };
        self.base + row * self.stride + c
    }

    /// Row length of the allocation (LDS tiles).
    pub fn stride(&self) -> Option<u32> {
        self.stride_c
    }

    /// Loads `N` consecutive elements at `(row, col)` (`col` a multiple of `N`, `N` at most
    /// the swizzle's chunk).
    pub fn vload<const N: usize>(
        &self,
        row: impl IntoVal<Elem = u32>,
        col: impl IntoVal<Elem = u32>,
    ) -> Val<super::Vector<T, N>> {
        let index = self.index(row, col);
        Val::from_expr(crate::ir::Expr::Load {
            mem: self.mem,
            index: index.id,
            lanes: N as u8,
        })
    }

    /// Stores `N` consecutive elements at `(row, col)` (see [`Tile::vload`]).
    pub fn vstore<const N: usize>(
        &self,
        row: impl IntoVal<Elem = u32>,
        col: impl IntoVal<Elem = u32>,
        value: Val<super::Vector<T, N>>,
    ) {
        let index = self.index(row, col);
        let mem = self.mem;
        with(|b| {
            b.push(Stmt::Store {
                mem,
                index: index.id,
                value: value.id,
            })
        });
    }

    /// Stores one element at `(row, col)`.
    pub fn store(
        &self,
        row: impl IntoVal<Elem = u32>,
        col: impl IntoVal<Elem = u32>,
        value: impl IntoVal<Elem = T>,
    ) {
        let index = self.index(row, col);
        let value = value.into_val();
        let mem = self.mem;
        with(|b| {
            b.push(Stmt::Store {
                mem,
                index: index.id,
                value: value.id,
            })
        });
    }
}

// ---- the warpgroup matrix engine and asynchronous copies -------------------------------------

/// `stages` LDS tiles of `rows` K-major rows for the target's warpgroup matrix engine: each row
/// one K-tile (`row_bytes` of `T`, 64 f16/bf16 on sm_90a), 128-byte swizzled, every stage
/// starting at a multiple of the engine's alignment. A build error on a target without the
/// engine (gfx942).
///
/// Example: `let ta = warpgroup_tiles::<T>(stages, 128);` (tiles of 128 rows for `wgmma`).
pub fn warpgroup_tiles<T: MatrixElem>(stages: u32, rows: u32) -> LdsTiles<T> {
    let Some(wg) = with(|b| b.target().warpgroup) else {
        with(|b| {
            let name = b.target().name;
            b.error(format!("{name} has no warpgroup matrix engine"))
        });
        return lds_tiles::<T>(stages, rows, 64, TileLayout::Padded(0));
    };
    let cols = wg.row_elems(T::SCALAR);
    if (rows * cols * T::SCALAR.size_bytes()) % wg.align != 0 {
        with(|b| {
            b.error(format!(
                "warpgroup tiles of {rows} rows are not a whole number of {}-byte swizzle atoms",
                wg.align
            ))
        });
    }
    let array = super::memory::shared_aligned::<T>((stages * rows * cols).max(1), wg.align);
    LdsTiles {
        array,
        rows,
        stride: cols,
        swizzle: wg.swizzle(T::SCALAR),
        stages,
    }
}

/// Accumulators of the warpgroup engine: `count` tiles of `64 × n` f32, `n / 2` per thread
/// each, in one register array. `n` is a multiple of the engine's step up to its maximum
/// (a build error otherwise, and on targets without the engine); registers count against the
/// per-thread limit.
///
/// Example: `let acc = warpgroup_accumulators(128, 1); acc.fill(0.0f32);`
pub fn warpgroup_accumulators(n: u32, count: u32) -> WgAccs {
    let Some(wg) = with(|b| b.target().warpgroup) else {
        with(|b| {
            let name = b.target().name;
            b.error(format!("{name} has no warpgroup matrix engine"))
        });
        return WgAccs {
            local: super::memory::local_array::<f32>(1u32),
            n,
            count: 1,
            layout: crate::target::SM_90_WARPGROUP.acc(8),
        };
    };
    if !wg.valid_n(n) {
        with(|b| {
            b.error(format!(
                "wgmma n={n}: n is a multiple of {} up to {}",
                wg.n_step, wg.n_max
            ))
        });
    }
    let layout = wg.acc(n);
    WgAccs {
        local: super::memory::local_array::<f32>((layout.len * count).max(1)),
        n,
        count,
        layout,
    }
}

/// Accumulator tiles of the warpgroup engine, from [`warpgroup_accumulators`]; `.at(i)` picks
/// one (a comptime index).
///
/// Example: `wgmma(acc.at(0), &a, a_row, k0, &b, 0u32, k0);`
#[derive(Clone, Copy)]
pub struct WgAccs {
    local: Local<f32>,
    n: u32,
    count: u32,
    layout: crate::target::FragLayout,
}

/// One `64 × n` accumulator tile of the warpgroup engine. Read it after `wgmma_wait` covers
/// the last batch writing it: `.get(i)` is this thread's element `i`, `.coord(i)` where it sits.
///
/// Example: `let (r, c) = acc.coord(e); let v = acc.get(e);` (`e` comptime).
#[derive(Clone, Copy)]
pub struct WgAcc {
    local: Local<f32>,
    offset: u32,
    n: u32,
    layout: crate::target::FragLayout,
}

impl super::Bind for WgAccs {
    fn bind(self, name: &str) -> Self {
        super::Bind::bind(self.local, name);
        self
    }
}
impl super::Bind for WgAcc {
    fn bind(self, _name: &str) -> Self {
        self
    }
}

impl WgAccs {
    pub fn at(self, i: u32) -> WgAcc {
        if i >= self.count {
            with(|b| b.error(format!("accumulator tile {i} of {}", self.count)));
        }
        WgAcc {
            local: self.local,
            offset: i.min(self.count.saturating_sub(1)) * self.layout.len,
            n: self.n,
            layout: self.layout,
        }
    }

    /// Floats per thread of one tile (`n / 2`).
    pub fn elems(self) -> u32 {
        self.layout.len
    }

    pub fn fill(self, value: impl IntoVal<Elem = f32> + Copy) {
        for i in 0..self.count * self.layout.len {
            super::memory::store(&self.local, i, value);
        }
    }
}

impl WgAcc {
    pub fn get(self, i: u32) -> Val<f32> {
        super::memory::load(&self.local, self.offset + i)
    }

    pub fn elems(self) -> u32 {
        self.layout.len
    }

    /// `(row, column)` in the `64 × n` tile of this thread's element `i` (comptime), by the
    /// engine's layout over the warpgroup's threads.
    pub fn coord(self, i: u32) -> (Val<u32>, Val<u32>) {
        let t = super::thread_idx().x % (4u32 * super::wave_size());
        (
            coord_expr(&self.layout.row, t, i),
            coord_expr(&self.layout.col, t, i),
        )
    }
}

/// `acc += A · B` on the warpgroup engine, asynchronously: A is the `64 × 16` block of `a` at
/// `(a_row, a_col)`, B the `16 × n` block stored `n × 16` in `b` at `(b_row, b_col)`. Issue
/// [`wgmma_fence`] before the first of a batch, [`wgmma_commit`] after it and
/// [`wgmma_wait`] before touching the accumulators or overwriting the tiles. sm_90 only (the
/// verifier rejects it on targets without the engine); the interpreter checks the ordering.
///
/// Example: `wgmma(acc, &a, wg * 64u32, kk * 16u32, &b, 0u32, kk * 16u32);`
#[allow(clippy::too_many_arguments)]
pub fn wgmma<T: MatrixElem>(
    acc: WgAcc,
    a: &Tile<T>,
    a_row: impl IntoVal<Elem = u32>,
    a_col: impl IntoVal<Elem = u32>,
    b: &Tile<T>,
    b_row: impl IntoVal<Elem = u32>,
    b_col: impl IntoVal<Elem = u32>,
) {
    let a = FragPlace {
        tile: a.tile_ref(),
        row: a_row.into_val().id,
        col: a_col.into_val().id,
        transposed: false,
    };
    let b = FragPlace {
        tile: b.tile_ref(),
        row: b_row.into_val().id,
        col: b_col.into_val().id,
        transposed: true,
    };
    let stmt = Stmt::WarpgroupMma {
        n: acc.n,
        acc: FragRef {
            local: acc.local.id(),
            offset: acc.offset,
        },
        a,
        b,
    };
    with(|bld| bld.push(stmt));
}

fn sync(op: crate::ir::SyncOp) {
    with(|b| b.push(Stmt::Sync(op)));
}

/// Orders the warpgroup's accumulator registers before the next [`wgmma`]s (sm_90 only).
///
/// Example: `wgmma_fence();` right before a batch of `wgmma`.
pub fn wgmma_fence() {
    sync(crate::ir::SyncOp::MmaFence);
}
/// Closes the group of [`wgmma`]s issued since the last commit (sm_90 only).
///
/// Example: `wgmma_commit();` right after a batch of `wgmma`.
pub fn wgmma_commit() {
    sync(crate::ir::SyncOp::MmaCommit);
}
/// Waits until at most `pending` (comptime) committed [`wgmma`] groups are in flight (sm_90
/// only). `0` waits for all: needed before reading the accumulators.
///
/// Example: `wgmma_wait(1);` (keeps one batch running while the next tiles load).
pub fn wgmma_wait(pending: u32) {
    sync(crate::ir::SyncOp::MmaWait(pending));
}
/// Closes this thread's group of [`async_copy`]s issued since the last commit. Nothing on
/// targets whose copies are synchronous (gfx942).
///
/// Example: `async_commit();` after the copies of one stage.
pub fn async_commit() {
    sync(crate::ir::SyncOp::AsyncCommit);
}
/// Waits until at most `pending` (comptime) of this thread's committed copy groups are in
/// flight. It covers only this thread's copies: a `barrier` after it makes all threads' copies
/// visible. Nothing on targets whose copies are synchronous (gfx942).
///
/// Example: `async_wait(stages - 2u32); barrier();` (the oldest stage has arrived).
pub fn async_wait(pending: u32) {
    sync(crate::ir::SyncOp::AsyncWait(pending));
}
/// Makes this thread's LDS writes visible to the matrix engine (before the barrier that
/// precedes a [`wgmma`] reading them). Nothing on gfx942.
///
/// Example: `async_wait(0); fence_async_lds(); barrier();` (then issue the `wgmma` batch).
pub fn fence_async_lds() {
    sync(crate::ir::SyncOp::ProxyFence);
}

/// An asynchronous copy of `N` elements (4, 8 or 16 bytes) from `src` at `src_index` into
/// `tile` at `(row, col)`, or of zeros where `pred` is false (then `src_index` is not read).
/// The data is in the tile after this thread's [`async_wait`] covering the copy's group.
/// `cp.async` on sm_90 (the copy overlaps other work); on gfx942 an ordinary load and store.
///
/// Example: `async_copy::<8, _, _>(&tile, r, c, &src, select(ok, at, 0u32), ok);` (a
/// 16-byte f16 copy, zeros outside the matrix).
pub fn async_copy<const N: usize, T: Elem, A>(
    tile: &Tile<T>,
    row: impl IntoVal<Elem = u32>,
    col: impl IntoVal<Elem = u32>,
    src: &Global<T, A>,
    src_index: impl IntoVal<Elem = u32>,
    pred: impl IntoVal<Elem = bool>,
) {
    let dst_index = tile.index(row, col);
    let src_index = src_index.into_val();
    let pred = pred.into_val();
    let stmt = Stmt::AsyncCopy {
        dst: tile.mem,
        dst_index: dst_index.id,
        src: src.memory(),
        src_index: src_index.id,
        lanes: N as u8,
        pred: pred.id,
    };
    with(|b| b.push(stmt));
}
