//! The DSL's intrinsics: hardware indices, barriers, wave operations, atomics and math as free
//! functions (the method forms live on [`Val`]).

use super::memory::{Index, Writable};
use super::ops::{binary, unary};
use super::values::{declare_mut, Elem, Float, IntoVal, Numeric, Val, ValueType};
use super::with;
use crate::ir::{AtomicOp, Axis, BinaryOp, Builtin, Expr, ReduceOp, ShuffleMode, Stmt, UnaryOp};

/// Three hardware indices or sizes.
#[derive(Clone, Copy, Debug)]
pub struct Dim3 {
    pub x: Val<u32>,
    pub y: Val<u32>,
    pub z: Val<u32>,
}

impl super::Bind for Dim3 {
    fn bind(self, _name: &str) -> Self {
        self
    }
}

fn dim3(f: fn(Axis) -> Builtin) -> Dim3 {
    let b = |axis| Val::from_expr(Expr::Builtin(f(axis)));
    Dim3 {
        x: b(Axis::X),
        y: b(Axis::Y),
        z: b(Axis::Z),
    }
}

/// This thread's index within its block, per axis (`.x`, `.y`, `.z`, each a `Val<u32>`).
///
/// Example: `let i = block_idx().x * block + thread_idx().x;` (the element of a 1-D launch,
/// with `block` the comptime block size).
pub fn thread_idx() -> Dim3 {
    dim3(Builtin::ThreadIdx)
}
/// This block's index within the grid, per axis (`.x`, `.y`, `.z`, each a `Val<u32>`).
///
/// Example: `let row = block_idx().y;` (one block row per matrix row).
pub fn block_idx() -> Dim3 {
    dim3(Builtin::BlockIdx)
}
/// Threads per block, per axis, read at run time. A kernel that declares its block with
/// `block_size` usually uses that comptime value instead, which folds into constants.
///
/// Example: `let step = block_dim().x;` (a block-stride loop's step).
pub fn block_dim() -> Dim3 {
    dim3(Builtin::BlockDim)
}
/// Blocks per grid, per axis, read at run time.
///
/// Example: `let blocks = grid_dim().x;` (e.g. the number of split-K partial sums).
pub fn grid_dim() -> Dim3 {
    dim3(Builtin::GridDim)
}
/// This thread's lane within its wave (`0..wave size`): its linear index in the block
/// (x fastest) modulo the wave size.
///
/// Example: `if lane_id() == 0u32 { partial[w] = total; }` (one lane writes the wave's result).
pub fn lane_id() -> Val<u32> {
    Val::from_expr(Expr::Builtin(Builtin::LaneId))
}
/// Threads per wave: 64 on gfx942, 32 on sm_90, as a runtime value. The same number is known
/// while building as `target().wave_size`; use that for comptime sizes and loop bounds.
///
/// Example: `partial[thread_idx().x / wave_size()] = total;` (one slot per wave).
pub fn wave_size() -> Val<u32> {
    Val::from_expr(Expr::Builtin(Builtin::WaveSize))
}

/// Declares the block size the kernel is written for; launches must use it, and backends use it
/// as a launch bound. The size is comptime (a `#[comptime]` parameter or a number derived from
/// `target()`).
///
/// Example: `block_size(block);` at the top of the body, or `block_size(target().wave_size);`
/// for one wave per block.
pub fn block_size(x: u32) {
    block_size_3d(x, 1, 1)
}

/// [`block_size`] for two- and three-dimensional blocks; a zero dimension is a build error.
///
/// Example: `block_size_3d(16, 16, 1);` (a 16 × 16 block; `thread_idx().y` picks the row).
pub fn block_size_3d(x: u32, y: u32, z: u32) {
    with(|b| {
        if x == 0 || y == 0 || z == 0 {
            b.error(format!("block size {x}x{y}x{z} has a zero dimension"));
        }
        b.kernel_mut().block_size = Some([x, y, z]);
    });
}

/// Waits until every thread of the block arrives; LDS writes before it are visible after it.
/// Every thread of the block must reach the same barrier: one in a branch some threads skip, or
/// after some threads returned, is an interpreter error (on a GPU, a hang or undefined
/// behaviour).
///
/// Example: `tile[t] = x[base + t]; barrier();` (then any thread may read any `tile` element).
pub fn barrier() {
    with(|b| b.push(Stmt::Barrier));
}

fn shuffle<T: ValueType>(
    mode: ShuffleMode,
    value: Val<T>,
    lane: impl IntoVal<Elem = u32>,
) -> Val<T> {
    let lane = lane.into_val();
    Val::from_expr(Expr::Shuffle {
        mode,
        value: value.id,
        lane: lane.id,
    })
}

/// The value of lane `lane_id() ^ mask`: a register exchange within the wave, no LDS. The
/// source lane must be active and inside the wave (the interpreter reports otherwise).
///
/// Example: `m = max(m, shfl_xor(m, 1u32 << step));` (one step of a butterfly reduction).
pub fn shfl_xor<T: Elem>(value: Val<T>, mask: impl IntoVal<Elem = u32>) -> Val<T> {
    shuffle(ShuffleMode::Xor, value, mask)
}
/// The value of lane `lane_id() + delta` (own value past the end of the wave). The source lane
/// must be active.
///
/// Example: `let next = shfl_down(v, 1u32);` (the right neighbour's value).
pub fn shfl_down<T: Elem>(value: Val<T>, delta: impl IntoVal<Elem = u32>) -> Val<T> {
    shuffle(ShuffleMode::Down, value, delta)
}
/// The value of lane `lane_id() - delta` (own value before lane 0). The source lane must be
/// active.
///
/// Example: `let prev = shfl_up(v, 1u32);` (the left neighbour's value, as in a scan step).
pub fn shfl_up<T: Elem>(value: Val<T>, delta: impl IntoVal<Elem = u32>) -> Val<T> {
    shuffle(ShuffleMode::Up, value, delta)
}
/// The value of lane `lane` (a lane of this wave, active).
///
/// Example: `let first = shfl(v, 0u32);` (broadcasts lane 0's value to the wave).
pub fn shfl<T: Elem>(value: Val<T>, lane: impl IntoVal<Elem = u32>) -> Val<T> {
    shuffle(ShuffleMode::Idx, value, lane)
}

fn wave_reduce<T: Numeric>(op: ReduceOp, value: impl IntoVal<Elem = T>) -> Val<T> {
    let value = value.into_val();
    Val::from_expr(Expr::WaveReduce {
        op,
        value: value.id,
    })
}
/// Sum over the wave; every lane gets it. Every lane of the wave must be active (a partial
/// last wave of a block is an interpreter error). The lanes combine in a fixed butterfly order,
/// so every lane gets the bit-identical result, on every target.
///
/// Example: `let total = wave_sum(partial);`
pub fn wave_sum<T: Numeric>(value: impl IntoVal<Elem = T>) -> Val<T> {
    wave_reduce(ReduceOp::Sum, value)
}
/// Maximum over the wave; every lane gets it. Every lane of the wave must be active (see
/// [`wave_sum`]).
///
/// Example: `let top = wave_max(score);` (the row maximum of a softmax held one per lane).
pub fn wave_max<T: Numeric>(value: impl IntoVal<Elem = T>) -> Val<T> {
    wave_reduce(ReduceOp::Max, value)
}
/// Minimum over the wave; every lane gets it. Every lane of the wave must be active (see
/// [`wave_sum`]).
///
/// Example: `let lowest = wave_min(v);`
pub fn wave_min<T: Numeric>(value: impl IntoVal<Elem = T>) -> Val<T> {
    wave_reduce(ReduceOp::Min, value)
}

fn atomic<M: Writable>(
    op: AtomicOp,
    memory: &M,
    index: impl Index,
    value: impl IntoVal<Elem = M::Elem>,
) -> Val<M::Elem> {
    let index = index.index_expr();
    let value = value.into_val();
    let old = with(|b| b.new_var("old", <M::Elem as ValueType>::ty()));
    with(|b| {
        b.push(Stmt::Atomic {
            op,
            mem: memory.memory(),
            index,
            value: value.id,
            result: Some(old),
        })
    });
    super::Var::<M::Elem>::from_id(old).get()
}

/// Atomically adds `value` to `memory[index]`; returns the old value. Works on `&mut [T]`
/// buffers and LDS arrays (not register arrays) of `f32`, `i32` or `u32`. Contended atomics
/// serialise; the order of float additions, hence the rounding, is not fixed on a GPU.
///
/// Example: `atomic_add(&counts, bucket, 1u32);` (the returned old value may be ignored).
pub fn atomic_add<M: Writable>(
    memory: &M,
    index: impl Index,
    value: impl IntoVal<Elem = M::Elem>,
) -> Val<M::Elem> {
    atomic(AtomicOp::Add, memory, index, value)
}

/// Atomically raises `memory[index]` to at least `value`; returns the old value. Same memories
/// and element types as [`atomic_add`].
///
/// Example: `let before = atomic_max(&peak, 0u32, v);`
pub fn atomic_max<M: Writable>(
    memory: &M,
    index: impl Index,
    value: impl IntoVal<Elem = M::Elem>,
) -> Val<M::Elem> {
    atomic(AtomicOp::Max, memory, index, value)
}

/// `cond ? a : b` for any value type (both sides are evaluated, so a load on the side not taken
/// must still be in bounds: select the index, not the loaded value).
///
/// Example: `let at = select(inside, row * n + col, 0u32);` (a safe index for a masked load).
pub fn select<T: ValueType, A: IntoVal<Elem = T>, B: IntoVal<Elem = T>>(
    cond: Val<bool>,
    a: A,
    b: B,
) -> Val<T> {
    let (a, b) = (a.into_val(), b.into_val());
    Val::from_expr(Expr::Select {
        cond: cond.id,
        a: a.id,
        b: b.id,
    })
}

/// `a * b + c` with one rounding, on f16, bf16 or f32 (also the method `a.mul_add(b, c)`).
///
/// Example: `acc = fma(q[d], k[d].to_f32(), acc);` (a dot-product step in f32).
pub fn fma<T: Float>(
    a: impl IntoVal<Elem = T>,
    b: impl IntoVal<Elem = T>,
    c: impl IntoVal<Elem = T>,
) -> Val<T> {
    let (a, b, c) = (a.into_val(), b.into_val(), c.into_val());
    Val::from_expr(Expr::Fma(a.id, b.id, c.id))
}

/// The larger of two values (on floats, the non-NaN one, like `fmaxf`); also the method
/// `a.max(b)`.
///
/// Example: `top = max(top, shfl_xor(top, m));`
pub fn max<T: Numeric>(a: impl IntoVal<Elem = T>, b: impl IntoVal<Elem = T>) -> Val<T> {
    binary(BinaryOp::Max, a.into_val(), b.into_val())
}

/// The smaller of two values (on floats, the non-NaN one, like `fminf`); also the method
/// `a.min(b)`.
///
/// Example: `let end = min(start + chunk, n);` (clamps a range to the data).
pub fn min<T: Numeric>(a: impl IntoVal<Elem = T>, b: impl IntoVal<Elem = T>) -> Val<T> {
    binary(BinaryOp::Min, a.into_val(), b.into_val())
}

/// Absolute value (the identity on `u32`); also the method `a.abs()`.
///
/// Example: `let err = abs(got - want);`
pub fn abs<T: Numeric>(a: impl IntoVal<Elem = T>) -> Val<T> {
    unary(UnaryOp::Abs, a.into_val())
}

macro_rules! float_fn {
    ($($name:ident => $op:ident),*) => {$(
        #[doc = concat!("`", stringify!($name), "` of a float value (`f16`, `bf16` or `f32`; f16 and \
            bf16 compute in f32 and round back). The method form `x.", stringify!($name), "()` \
            also works lane-wise on float vectors.\n\nCost on the GPU targets: `exp2`, `log2`, \
            `sqrt`, `rsqrt` and `floor` are one hardware operation each (`exp2`, `log2` and `rsqrt` \
            approximate, so results may differ from the interpreter's in the last bits), `ln` adds \
            a multiply, and `exp`, `tanh`, `sin` and `cos` are short portable routines built on \
            `exp2`.\n\nExample: `let y = ", stringify!($name),
            "(x);`")]
        pub fn $name<T: Float>(x: impl IntoVal<Elem = T>) -> Val<T> {
            unary(UnaryOp::$op, x.into_val())
        }
    )*};
}
float_fn!(exp2 => Exp2, log2 => Log2, exp => Exp, ln => Log, sqrt => Sqrt, rsqrt => Rsqrt,
          sin => Sin, cos => Cos, tanh => Tanh, floor => Floor);

/// A runtime copy of a value in a new variable named `name`: what `let` does in a kernel body,
/// for plain Rust helper code, where `let` is Rust's and records nothing. It pins the value at
/// this point (a later store cannot change what was read) and names it in the generated code.
///
/// Example: `let w = materialize("w", vload::<8, _>(&weights, at));`
pub fn materialize<T: ValueType>(name: &str, v: Val<T>) -> Val<T> {
    declare_mut(name, v).get()
}
