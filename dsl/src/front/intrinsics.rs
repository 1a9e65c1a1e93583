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

/// This thread's index within its block.
pub fn thread_idx() -> Dim3 {
    dim3(Builtin::ThreadIdx)
}
/// This block's index within the grid.
pub fn block_idx() -> Dim3 {
    dim3(Builtin::BlockIdx)
}
/// Threads per block.
pub fn block_dim() -> Dim3 {
    dim3(Builtin::BlockDim)
}
/// Blocks per grid.
pub fn grid_dim() -> Dim3 {
    dim3(Builtin::GridDim)
}
/// This thread's lane within its wave.
pub fn lane_id() -> Val<u32> {
    Val::from_expr(Expr::Builtin(Builtin::LaneId))
}
/// Threads per wave: 64 on gfx942, 32 on sm_90.
pub fn wave_size() -> Val<u32> {
    Val::from_expr(Expr::Builtin(Builtin::WaveSize))
}

/// Declares the block size the kernel is written for; launches must use it, and backends use it
/// as a launch bound.
pub fn block_size(x: u32) {
    block_size_3d(x, 1, 1)
}

/// [`block_size`] for two- and three-dimensional blocks.
pub fn block_size_3d(x: u32, y: u32, z: u32) {
    with(|b| {
        if x == 0 || y == 0 || z == 0 {
            b.error(format!("block size {x}x{y}x{z} has a zero dimension"));
        }
        b.kernel_mut().block_size = Some([x, y, z]);
    });
}

/// Waits until every thread of the block arrives; LDS writes before it are visible after it.
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

/// The value of lane `lane_id() ^ mask`.
pub fn shfl_xor<T: Elem>(value: Val<T>, mask: impl IntoVal<Elem = u32>) -> Val<T> {
    shuffle(ShuffleMode::Xor, value, mask)
}
/// The value of lane `lane_id() + delta` (own value past the end of the wave).
pub fn shfl_down<T: Elem>(value: Val<T>, delta: impl IntoVal<Elem = u32>) -> Val<T> {
    shuffle(ShuffleMode::Down, value, delta)
}
/// The value of lane `lane_id() - delta` (own value before lane 0).
pub fn shfl_up<T: Elem>(value: Val<T>, delta: impl IntoVal<Elem = u32>) -> Val<T> {
    shuffle(ShuffleMode::Up, value, delta)
}
/// The value of lane `lane`.
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
/// Sum over the wave; every lane gets it.
pub fn wave_sum<T: Numeric>(value: impl IntoVal<Elem = T>) -> Val<T> {
    wave_reduce(ReduceOp::Sum, value)
}
/// Maximum over the wave; every lane gets it.
pub fn wave_max<T: Numeric>(value: impl IntoVal<Elem = T>) -> Val<T> {
    wave_reduce(ReduceOp::Max, value)
}
/// Minimum over the wave; every lane gets it.
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

/// Atomically adds `value` to `memory[index]`; returns the old value.
pub fn atomic_add<M: Writable>(
    memory: &M,
    index: impl Index,
    value: impl IntoVal<Elem = M::Elem>,
) -> Val<M::Elem> {
    atomic(AtomicOp::Add, memory, index, value)
}

/// Atomically raises `memory[index]` to at least `value`; returns the old value.
pub fn atomic_max<M: Writable>(
    memory: &M,
    index: impl Index,
    value: impl IntoVal<Elem = M::Elem>,
) -> Val<M::Elem> {
    atomic(AtomicOp::Max, memory, index, value)
}

/// `cond ? a : b` (both sides are evaluated).
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

/// `a * b + c` with one rounding.
pub fn fma<T: Float>(
    a: impl IntoVal<Elem = T>,
    b: impl IntoVal<Elem = T>,
    c: impl IntoVal<Elem = T>,
) -> Val<T> {
    let (a, b, c) = (a.into_val(), b.into_val(), c.into_val());
    Val::from_expr(Expr::Fma(a.id, b.id, c.id))
}

/// The larger of two values.
pub fn max<T: Numeric>(a: impl IntoVal<Elem = T>, b: impl IntoVal<Elem = T>) -> Val<T> {
    binary(BinaryOp::Max, a.into_val(), b.into_val())
}

/// The smaller of two values.
pub fn min<T: Numeric>(a: impl IntoVal<Elem = T>, b: impl IntoVal<Elem = T>) -> Val<T> {
    binary(BinaryOp::Min, a.into_val(), b.into_val())
}

/// Absolute value.
pub fn abs<T: Numeric>(a: impl IntoVal<Elem = T>) -> Val<T> {
    unary(UnaryOp::Abs, a.into_val())
}

macro_rules! float_fn {
    ($($name:ident => $op:ident),*) => {$(
        #[doc = concat!("`", stringify!($name), "` of a float value.")]
        pub fn $name<T: Float>(x: impl IntoVal<Elem = T>) -> Val<T> {
            unary(UnaryOp::$op, x.into_val())
        }
    )*};
}
float_fn!(exp2 => Exp2, log2 => Log2, exp => Exp, ln => Log, sqrt => Sqrt, rsqrt => Rsqrt,
          sin => Sin, cos => Cos, tanh => Tanh, floor => Floor);

/// A runtime copy of a value in a new variable (what `let` does; useful in helpers).
pub fn materialize<T: ValueType>(name: &str, v: Val<T>) -> Val<T> {
    declare_mut(name, v).get()
}
