//! Memory: global buffers (kernel parameters), LDS arrays and per-thread register arrays, and
//! the loads and stores the macro turns indexing into.

use super::values::{Elem, IntoVal, Val, Vector};
use super::with;
use crate::ir::{
    Access, Expr, ExprId, LocalArray, LocalId, Memory, Param, ParamId, ParamKind, SharedArray,
    SharedId, Stmt,
};
use std::marker::PhantomData;

/// Marker: a read-only global buffer (`&[T]`).
pub struct Read;
/// Marker: a writable global buffer (`&mut [T]`).
pub struct ReadWrite;

/// A global buffer parameter.
pub struct Global<T: Elem, A> {
    param: ParamId,
    _t: PhantomData<(T, A)>,
}

/// An LDS (shared memory) array, one per block.
pub struct Shared<T: Elem> {
    id: SharedId,
    _t: PhantomData<T>,
}

/// A per-thread array of comptime length.
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
/// multiple of `N`.
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

/// Stores a vector of `N` elements at `index` (a multiple of `N`) as one wide access.
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

/// An LDS array of `len` elements (renamed to its `let` binding's name).
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

/// A per-thread array of `len` elements (renamed to its `let` binding's name).
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
