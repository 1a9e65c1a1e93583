//! Typed handles for runtime values, and the element-type traits that make Rust's type checker
//! enforce the DSL's typing rules.

use super::with;
use crate::ir::{ConfigValue, Const, Expr, ExprId, Scalar, Stmt, Type, VarId};
use half::{bf16, f16};
use std::marker::PhantomData;

/// A type a runtime value can have: a scalar [`Elem`] or a [`Vector`] of them.
pub trait ValueType: 'static {
    fn ty() -> Type;
}

/// A scalar element type of the DSL: `f16`, `bf16`, `f32`, `i32`, `u32`, `bool`. The bound of
/// a kernel generic over any element (each instantiation is its own kernel, `T=f16` in its
/// configuration).
///
/// Example: `fn copy<T: Elem>(x: &[T], y: &mut [T])` as a `#[kernel]` signature.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a DSL element type",
    label = "expected one of f16, bf16, f32, i32, u32, bool"
)]
pub trait Elem: ValueType + Copy {
    const SCALAR: Scalar;
    fn to_const(self) -> Const;
    /// The configuration entry for a kernel generic over this type (`T = f16`).
    fn config() -> ConfigValue {
        ConfigValue::Type(Self::SCALAR)
    }
}

/// Element types with arithmetic: everything but `bool`. What `+ - * /`, `max`, `min`, `abs`
/// and the wave reductions accept.
///
/// Example: `fn add<T: Numeric>(a: &[T], b: &[T], out: &mut [T])` as a `#[kernel]` signature.
pub trait Numeric: Elem {}

/// Floating-point element types. A kernel generic over `T: Float` serves f16, bf16 and f32;
/// the math functions (`exp2`, `sqrt`, `fma`, …) need it.
///
/// Example: `y[i] = T::from_f32(x[i].to_f32() * s);` (compute in f32, store as `T`).
pub trait Float: Numeric {
    /// Converts an f32 value to this type (round to nearest even).
    fn from_f32(v: impl IntoVal<Elem = f32>) -> Val<Self> {
        let v = v.into_val();
        Val::new(with(|b| {
            b.expr(
                Expr::Cast {
                    to: Self::SCALAR,
                    value: v.id,
                },
                Self::ty(),
            )
        }))
    }
}

macro_rules! elem {
    ($t:ty, $scalar:ident, |$v:ident| $konst:expr) => {
        impl ValueType for $t {
            fn ty() -> Type {
                Type::scalar(Scalar::$scalar)
            }
        }
        impl Elem for $t {
            const SCALAR: Scalar = Scalar::$scalar;
            fn to_const(self) -> Const {
                let $v = self;
                $konst
            }
        }
        impl IntoVal for $t {
            type Elem = $t;
            fn into_val(self) -> Val<$t> {
                Val::constant(self)
            }
        }
    };
}

elem!(f16, F16, |v| Const::F16(v));
elem!(bf16, BF16, |v| Const::BF16(v));
elem!(f32, F32, |v| Const::F32(v));
elem!(i32, I32, |v| Const::I32(v));
elem!(u32, U32, |v| Const::U32(v));
elem!(bool, Bool, |v| Const::Bool(v));

impl Numeric for f16 {}
impl Numeric for bf16 {}
impl Numeric for f32 {}
impl Numeric for i32 {}
impl Numeric for u32 {}
impl Float for f16 {}
impl Float for bf16 {}
impl Float for f32 {}

/// An unsuffixed float literal (`0.0`) is an `f64` to Rust; in the DSL it means f32.
impl IntoVal for f64 {
    type Elem = f32;
    fn into_val(self) -> Val<f32> {
        Val::constant(self as f32)
    }
}

/// A vector of `N` lanes (2, 4 or 8) of `T`, for 16-byte memory accesses. Values are
/// `Val<Vector<T, N>>`, from `vload`, `Val::splat` or `Val::from_lanes`; arithmetic, casts and
/// float math work lane-wise, and `.lane(i)` reads one lane. `N = 1` is the scalar itself, so
/// code generic over the width also serves width 1. Not for `bool`; register arrays take
/// scalar accesses only.
///
/// Example: `let v = vload::<4, _>(&x, i).to_f32();` (a `Val<Vector<f32, 4>>`; `i` a multiple
/// of 4).
pub struct Vector<T: Elem, const N: usize>(PhantomData<T>);

impl<T: Elem, const N: usize> ValueType for Vector<T, N> {
    fn ty() -> Type {
        Type::vector(T::SCALAR, N as u8)
    }
}

/// A runtime value of type `T`: an expression of the kernel being built. It is `Copy`;
/// operators, comparisons, `as` and methods (`.to_f32()`, `.cast::<U>()`, `.max(b)`, `.exp2()`,
/// …) record new expressions, and `let` binds one to a named variable. Mixing element types
/// (`f16 + f32`) is a Rust type error: convert explicitly.
///
/// Example: `let y = x[i].to_f32() * 2.0f32;` (`y` is a `Val<f32>`).
pub struct Val<T: ValueType> {
    pub(crate) id: ExprId,
    _t: PhantomData<T>,
}

impl<T: ValueType> Clone for Val<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: ValueType> Copy for Val<T> {}

impl<T: ValueType> std::fmt::Debug for Val<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Val<{}>({})", T::ty(), self.id.0)
    }
}

impl<T: ValueType> Val<T> {
    pub(crate) fn new(id: ExprId) -> Self {
        Val {
            id,
            _t: PhantomData,
        }
    }

    /// The expression this value stands for.
    pub fn expr_id(self) -> ExprId {
        self.id
    }

    pub(crate) fn from_expr(expr: Expr) -> Self {
        Val::new(with(|b| b.expr(expr, T::ty())))
    }
}

impl<T: Elem> Val<T> {
    pub fn constant(v: T) -> Self {
        Val::from_expr(Expr::Const(v.to_const()))
    }
}

/// Anything usable where a runtime value of `Self::Elem` is expected: a [`Val`] or a comptime
/// literal, which becomes a constant.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a runtime value of the DSL",
    label = "expected a DSL value (Val<T>) or a literal of an element type"
)]
pub trait IntoVal {
    type Elem: ValueType;
    fn into_val(self) -> Val<Self::Elem>;
}

impl<T: ValueType> IntoVal for Val<T> {
    type Elem = T;
    fn into_val(self) -> Val<T> {
        self
    }
}

/// A mutable runtime variable (`let mut` in the DSL). The macro turns reads into [`Var::get`]
/// and assignments into [`Var::set`].
pub struct Var<T: ValueType> {
    id: VarId,
    _t: PhantomData<T>,
}

impl<T: ValueType> Clone for Var<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: ValueType> Copy for Var<T> {}

impl<T: ValueType> Var<T> {
    pub fn get(self) -> Val<T> {
        Val::from_expr(Expr::Var(self.id))
    }

    pub fn set(self, value: impl IntoVal<Elem = T>) {
        let value = value.into_val();
        with(|b| {
            b.push(Stmt::Assign {
                var: self.id,
                value: value.id,
            })
        });
    }

    pub(crate) fn from_id(id: VarId) -> Self {
        Var {
            id,
            _t: PhantomData,
        }
    }

    pub fn var_id(self) -> VarId {
        self.id
    }
}

/// `let mut name = init;` — a runtime variable.
pub fn declare_mut<V: IntoVal>(name: &str, init: V) -> Var<V::Elem> {
    let init = init.into_val();
    let var = with(|b| {
        let var = b.new_var(name, <V::Elem as ValueType>::ty());
        b.push(Stmt::Let {
            var,
            value: init.id,
        });
        var
    });
    Var::from_id(var)
}

/// What `let name = value;` does with a value: runtime values are materialised into a named
/// variable at this point (so a later store cannot change what a load already read, and the
/// generated code keeps the author's names); comptime values and memory handles pass through.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be bound with `let` in a kernel",
    label = "a DSL value, a memory handle or a comptime number is expected here"
)]
pub trait Bind: Sized {
    fn bind(self, name: &str) -> Self;
}

pub fn bind<B: Bind>(name: &str, value: B) -> B {
    value.bind(name)
}

impl<T: ValueType> Bind for Val<T> {
    fn bind(self, name: &str) -> Self {
        let var = declare_mut(name, self);
        var.get()
    }
}

macro_rules! bind_comptime {
    ($($t:ty),*) => {$(
        impl Bind for $t {
            fn bind(self, _name: &str) -> Self {
                self
            }
        }
    )*};
}
bind_comptime!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, f32, f64, bool, f16, bf16);

impl<T: Bind, const N: usize> Bind for [T; N] {
    fn bind(self, _name: &str) -> Self {
        self
    }
}

impl<T: ?Sized> Bind for &T {
    fn bind(self, _name: &str) -> Self {
        self
    }
}

/// Comptime parameter values recorded in the kernel's configuration.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a comptime parameter",
    label = "comptime parameters are u32 or bool (element types are generic parameters)"
)]
pub trait IntoConfig {
    fn into_config(self) -> ConfigValue;
}

impl IntoConfig for u32 {
    fn into_config(self) -> ConfigValue {
        ConfigValue::U32(self)
    }
}

impl IntoConfig for bool {
    fn into_config(self) -> ConfigValue {
        ConfigValue::Bool(self)
    }
}
