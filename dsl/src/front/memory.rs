//! Memory: global buffers (kernel parameters), LDS arrays and per-thread register arrays, and
//! the loads and stores the macro turns indexing into.

use super::values::{Elem, IntoVal, Val, Vector};
use super::with;
use crate::ir::{
    Access, Expr, ExprId, LocalArray, LocalId, Memory, Param, ParamId, ParamKind, SharedArray,
    SharedId, Stmt,
};
use std::marker::PhantomData;

/// Marker: a read-only global buffer (`&[T]`). Stores and atomics to it are Rust type errors.
///
/// Example: `fn load_row<T: Float>(mem: &Global<T, Read>, at: Val<u32>)` (a helper taking a
/// `&[T]` parameter's handle).
pub struct Read;
/// Marker: a writable global buffer (`&mut [T]`).
///
/// Example: `fn write_row(out: &Global<f32, ReadWrite>, at: Val<u32>, v: Val<f32>)` (a helper
/// that may store to it).
pub struct ReadWrite;

/// A global buffer parameter: what a `&[T]` (`A = Read`) or `&mut [T]` (`A = ReadWrite`)
/// kernel parameter becomes inside the body. It is `Copy`; `x[i]` loads, `y[i] = v` stores,
/// with a `u32` or `i32` index (bounds are checked by the interpreter, not on the GPU).
///
/// Example: `y[i] = x[i] * 2.0f32;` (with `x: &[f32]`, `y: &mut [f32]` parameters).
pub struct Global<T: Elem, A> {
    param: ParamId,
    _t: PhantomData<(T, A)>,
}

/// An LDS (shared memory) array, one per block, from `shared`. Indexed like a buffer; it
/// starts uninitialised, and other threads see a thread's writes after a `barrier`.
///
/// Example: `let tile = shared::<f32>(block); tile[t] = x[base + t];`
pub struct Shared<T: Elem> {
    id: SharedId,
    _t: PhantomData<T>,
}

/// A per-thread array of comptime length, from `local_array`: kept in registers when every
/// index is a constant (comptime loops over it unroll). Scalar accesses only; it starts
/// uninitialised, and atomics do not apply to it.
///
/// Example: `let acc = local_array::<f32>(4u32); acc[0] = 0.0f32;`
pub struct Local<T: Elem> {
    id: LocalId,
    _t: PhantomData<T>,
}

// Handles are ids: copyable whatever their element type (a derive would demand `T: Copy`).
impl<T: Elem, A> Clone for Global<T, A> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Elem, A> Copy for Global<T, A> {}
impl<T: Elem> Clone for Shared<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Elem> Copy for Shared<T> {}
impl<T: Elem> Clone for Local<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Elem> Copy for Local<T> {}

impl<T: Elem> Local<T> {
    pub(crate) fn id(self) -> LocalId {
        self.id
    }
}

/// A memory object that can be indexed.
#[diagnostic::on_unimplemented(
    message = "cannot index `{Self}`: it is not a buffer or an array",
    label = "only buffers (`&[T]`, `&mut [T]`), LDS arrays and register arrays can be indexed"
)]
pub trait MemoryHandle: Copy {
    type Elem: Elem;
    fn memory(self) -> Memory;
}

impl<T: Elem, A> MemoryHandle for Global<T, A> {
    type Elem = T;
    fn memory(self) -> Memory {
        Memory::Global(self.param)
    }
}
impl<T: Elem> MemoryHandle for Shared<T> {
    type Elem = T;
    fn memory(self) -> Memory {
        Memory::Shared(self.id)
    }
}
impl<T: Elem> MemoryHandle for Local<T> {
    type Elem = T;
    fn memory(self) -> Memory {
        Memory::Local(self.id)
    }
}

/// Memory a kernel may write: writable buffers, LDS and register arrays.
#[diagnostic::on_unimplemented(
    message = "cannot write to `{Self}`: it is not writable memory",
    label = "only `&mut [T]` buffers, LDS arrays and register arrays can be written",
    note = "a `&[T]` kernel parameter is read-only: declare it `&mut [T]` to write to it"
)]
pub trait Writable: MemoryHandle {}
impl<T: Elem> Writable for Global<T, ReadWrite> {}
impl<T: Elem> Writable for Shared<T> {}
impl<T: Elem> Writable for Local<T> {}

/// An element index: a u32 or i32, runtime or comptime.
#[diagnostic::on_unimplemented(
    message = "an index must be an integer (u32 or i32), found `{Self}`",
    label = "not an integer index",
    note = "convert a float with `.to_u32()` if that is what you mean"
)]
pub trait Index {
    fn index_expr(self) -> ExprId;
}

macro_rules! index {
    ($($t:ty),*) => {$(
        impl Index for $t {
            fn index_expr(self) -> ExprId {
                Val::<$t>::constant(self).id
            }
        }
        impl Index for Val<$t> {
            fn index_expr(self) -> ExprId {
                self.id
            }
        }
    )*};
}
index!(u32, i32);

/// `memory[index]` as a value.
pub fn load<M: MemoryHandle>(memory: &M, index: impl Index) -> Val<M::Elem> {
    let index = index.index_expr();
    Val::from_expr(Expr::Load {
        mem: memory.memory(),
        index,
        lanes: 1,
    })
}

/// `memory[index] = value`.
pub fn store<M: Writable>(memory: &M, index: impl Index, value: impl IntoVal<Elem = M::Elem>) {
    let index = index.index_expr();
    let value = value.into_val();
    with(|b| {
        b.push(Stmt::Store {
            mem: memory.memory(),
            index,
            value: value.id,
        })
    });
}

/// Loads `N` consecutive elements starting at `index` as one wide access; `index` must be a
/// multiple of `N` (a misaligned access is an interpreter error). Global and LDS memory only:
/// the verifier rejects vector accesses to register arrays. `N` is 1, 2, 4 or 8; 16 bytes
/// (4 f32, 8 f16) is the widest hardware access.
///
/// Example: `let v = vload::<4, _>(&x, i);` (a `Val<Vector<f32, 4>>` for `x: &[f32]`).
pub fn vload<const N: usize, M: MemoryHandle>(
    memory: &M,
    index: impl Index,
) -> Val<Vector<M::Elem, N>> {
    let index = index.index_expr();
    Val::from_expr(Expr::Load {
        mem: memory.memory(),
        index,
        lanes: N as u8,
    })
}

/// Stores a vector of `N` elements at `index` (a multiple of `N`) as one wide access, to a
/// `&mut [T]` buffer or LDS (see [`vload`]).
///
/// Example: `vstore::<4, _>(&y, i, v.cast::<T>());` (converts lane-wise, then stores 4 lanes).
pub fn vstore<const N: usize, M: Writable>(
    memory: &M,
    index: impl Index,
    value: Val<Vector<M::Elem, N>>,
) {
    let index = index.index_expr();
    with(|b| {
        b.push(Stmt::Store {
            mem: memory.memory(),
            index,
            value: value.id,
        })
    });
}

/// A comptime array length.
#[diagnostic::on_unimplemented(
    message = "the length of an LDS or register array must be a comptime value, found `{Self}`",
    label = "not a comptime length",
    note = "use a `#[comptime]` parameter or a literal; runtime sizes are not possible on GPUs"
)]
pub trait ComptimeLen {
    fn len(self) -> u32;
}
impl ComptimeLen for u32 {
    fn len(self) -> u32 {
        self
    }
}
impl ComptimeLen for usize {
    fn len(self) -> u32 {
        self as u32
    }
}

fn check_len(what: &str, len: u32) {
    if len == 0 {
        with(|b| b.error(format!("{what} of length 0")));
    }
}

/// An LDS array of `len` elements (renamed to its `let` binding's name), shared by the block
/// and uninitialised. `len` is comptime; the kernel's LDS must fit `Target::lds_bytes_max`
/// (64 KiB on gfx942, 227 KiB on sm_90), and more LDS per block means fewer resident blocks.
///
/// Example: `let partial = shared::<f32>(block / target().wave_size);` (one slot per wave).
pub fn shared<T: Elem>(len: impl ComptimeLen) -> Shared<T> {
    shared_aligned(len, crate::ir::LDS_ALIGN)
}

/// An LDS array of `len` elements whose start is aligned to `align` bytes (a power of two of at
/// least 16), for tiles the matrix engine reads with a swizzle that repeats every `align` bytes.
pub fn shared_aligned<T: Elem>(len: impl ComptimeLen, align: u32) -> Shared<T> {
    let len = len.len();
    check_len("LDS array", len);
    let id = with(|b| {
        let k = b.kernel_mut();
        let id = SharedId(k.shared.len() as u32);
        k.shared.push(SharedArray {
            name: format!("lds{}", id.0),
            elem: T::SCALAR,
            len,
            align: align.max(crate::ir::LDS_ALIGN),
        });
        id
    });
    Shared {
        id,
        _t: PhantomData,
    }
}

/// A per-thread array of `len` elements (renamed to its `let` binding's name), uninitialised.
/// `len` is comptime; index it with constants (comptime loops) to keep it in registers, which
/// count against the target's per-thread register limit.
///
/// Example: `let acc = local_array::<f32>(rows);` (`rows` comptime; a literal needs a suffix:
/// `local_array::<f32>(2u32)`).
pub fn local_array<T: Elem>(len: impl ComptimeLen) -> Local<T> {
    let len = len.len();
    check_len("register array", len);
    let id = with(|b| {
        let k = b.kernel_mut();
        let id = LocalId(k.locals.len() as u32);
        k.locals.push(LocalArray {
            name: format!("regs{}", id.0),
            elem: T::SCALAR,
            len,
        });
        id
    });
    Local {
        id,
        _t: PhantomData,
    }
}

impl<T: Elem> super::Bind for Shared<T> {
    fn bind(self, name: &str) -> Self {
        with(|b| b.kernel_mut().shared[self.id.0 as usize].name = name.to_string());
        self
    }
}
impl<T: Elem> super::Bind for Local<T> {
    fn bind(self, name: &str) -> Self {
        with(|b| b.kernel_mut().locals[self.id.0 as usize].name = name.to_string());
        self
    }
}
impl<T: Elem, A> super::Bind for Global<T, A> {
    fn bind(self, _name: &str) -> Self {
        self
    }
}

/// The Rust types a kernel parameter may have, and the handle each becomes.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a kernel parameter",
    label = "kernel parameters are `&[T]`, `&mut [T]` or scalars (f16, bf16, f32, i32, u32, bool)"
)]
pub trait KernelParam {
    type Handle;
    fn declare(name: &str) -> Self::Handle;
}

fn push_param(name: &str, kind: ParamKind) -> ParamId {
    with(|b| {
        let k = b.kernel_mut();
        let id = ParamId(k.params.len() as u32);
        k.params.push(Param {
            name: name.to_string(),
            kind,
        });
        id
    })
}

impl<T: Elem> KernelParam for &[T] {
    type Handle = Global<T, Read>;
    fn declare(name: &str) -> Self::Handle {
        let param = push_param(
            name,
            ParamKind::Buffer {
                elem: T::SCALAR,
                access: Access::Read,
            },
        );
        Global {
            param,
            _t: PhantomData,
        }
    }
}

impl<T: Elem> KernelParam for &mut [T] {
    type Handle = Global<T, ReadWrite>;
    fn declare(name: &str) -> Self::Handle {
        let param = push_param(
            name,
            ParamKind::Buffer {
                elem: T::SCALAR,
                access: Access::ReadWrite,
            },
        );
        Global {
            param,
            _t: PhantomData,
        }
    }
}

macro_rules! scalar_param {
    ($($t:ty),*) => {$(
        impl KernelParam for $t {
            type Handle = Val<$t>;
            fn declare(name: &str) -> Val<$t> {
                let param = push_param(name, ParamKind::Value(<$t as Elem>::SCALAR));
                Val::from_expr(Expr::Param(param))
            }
        }
    )*};
}
scalar_param!(f32, i32, u32, bool, half::f16, half::bf16);

/// Declares the next kernel parameter (what the macro emits for each runtime argument).
pub fn declare_param<P: KernelParam>(name: &str) -> P::Handle {
    P::declare(name)
}
