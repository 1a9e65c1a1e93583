//! Operators on runtime values: arithmetic through the std operator traits (so a mixed-precision
//! `f16 + f32` is Rust's own "cannot add" error), comparisons and logic through functions the
//! macro rewrites `<`, `&&`, … into (Rust's comparison traits must return `bool`), and `as`.

use super::values::{Elem, Float, IntoVal, Numeric, Val, ValueType, Vector};
use super::with;

use crate::ir::{BinaryOp, Expr, Scalar, UnaryOp};
use half::{bf16, f16};
use std::ops;

/// Types with lane-wise `+ - * /`: the numeric scalars and vectors of them.
pub trait Arith: ValueType {}
impl<T: Numeric> Arith for T {}
impl<T: Numeric, const N: usize> Arith for Vector<T, N> {}

/// `u32` and `i32`: remainder, bitwise operators and shifts.
pub trait Integer: Numeric {}
impl Integer for u32 {}
impl Integer for i32 {}

pub(crate) fn binary<O: ValueType>(
    op: BinaryOp,
    a: Val<impl ValueType>,
    b: Val<impl ValueType>,
) -> Val<O> {
    Val::from_expr(Expr::Binary(op, a.id, b.id))
}

pub(crate) fn unary<T: ValueType>(op: UnaryOp, a: Val<T>) -> Val<T> {
    Val::from_expr(Expr::Unary(op, a.id))
}

macro_rules! arith_op {
    ($trait:ident, $method:ident, $op:ident, $bound:ident) => {
        impl<T: $bound> ops::$trait for Val<T> {
            type Output = Val<T>;
            fn $method(self, rhs: Val<T>) -> Val<T> {
                binary(BinaryOp::$op, self, rhs)
            }
        }
        impl<T: Elem + $bound> ops::$trait<T> for Val<T> {
            type Output = Val<T>;
            fn $method(self, rhs: T) -> Val<T> {
                binary(BinaryOp::$op, self, Val::constant(rhs))
            }
        }
    };
}

arith_op!(Add, add, Add, Arith);
arith_op!(Sub, sub, Sub, Arith);
arith_op!(Mul, mul, Mul, Arith);
arith_op!(Div, div, Div, Arith);
arith_op!(Rem, rem, Rem, Integer);
arith_op!(BitAnd, bitand, BitAnd, Integer);
arith_op!(BitOr, bitor, BitOr, Integer);
arith_op!(BitXor, bitxor, BitXor, Integer);
arith_op!(Shl, shl, Shl, Integer);
arith_op!(Shr, shr, Shr, Integer);

/// `literal op value`, e.g. `1.0 / x`, `2 * i`.
macro_rules! arith_lhs_literal {
    ($($t:ty),*) => {$(
        impl ops::Add<Val<$t>> for $t { type Output = Val<$t>; fn add(self, r: Val<$t>) -> Val<$t> { binary(BinaryOp::Add, Val::constant(self), r) } }
        impl ops::Sub<Val<$t>> for $t { type Output = Val<$t>; fn sub(self, r: Val<$t>) -> Val<$t> { binary(BinaryOp::Sub, Val::constant(self), r) } }
        impl ops::Mul<Val<$t>> for $t { type Output = Val<$t>; fn mul(self, r: Val<$t>) -> Val<$t> { binary(BinaryOp::Mul, Val::constant(self), r) } }
        impl ops::Div<Val<$t>> for $t { type Output = Val<$t>; fn div(self, r: Val<$t>) -> Val<$t> { binary(BinaryOp::Div, Val::constant(self), r) } }
    )*};
}
arith_lhs_literal!(f32, i32, u32, f16, bf16);

impl ops::BitAnd for Val<bool> {
    type Output = Val<bool>;
    fn bitand(self, rhs: Val<bool>) -> Val<bool> {
        binary(BinaryOp::And, self, rhs)
    }
}
impl ops::BitOr for Val<bool> {
    type Output = Val<bool>;
    fn bitor(self, rhs: Val<bool>) -> Val<bool> {
        binary(BinaryOp::Or, self, rhs)
    }
}

/// Negation: floats and i32, and vectors of them.
pub trait Signed: Arith {}
impl Signed for f16 {}
impl Signed for bf16 {}
impl Signed for f32 {}
impl Signed for i32 {}
impl<T: Signed + Numeric, const N: usize> Signed for Vector<T, N> {}

impl<T: Signed> ops::Neg for Val<T> {
    type Output = Val<T>;
    fn neg(self) -> Val<T> {
        unary(UnaryOp::Neg, self)
    }
}

/// Logical not on bool, bitwise not on integers.
pub trait Notable: Elem {}
impl Notable for bool {}
impl Notable for u32 {}
impl Notable for i32 {}

impl<T: Notable> ops::Not for Val<T> {
    type Output = Val<T>;
    fn not(self) -> Val<T> {
        unary(UnaryOp::Not, self)
    }
}

/// Comparisons. Comptime operands compare in Rust (`bool`); a runtime operand makes the result a
/// runtime `Val<bool>`. Operands must have one type: compare an f16 with an f32 after `to_f32()`.
#[diagnostic::on_unimplemented(
    message = "cannot compare `{Self}` with `{Rhs}`",
    label = "both sides of a comparison must have the same element type; convert one side explicitly"
)]
pub trait Compare<Rhs> {
    type Output;
    fn compare(self, op: BinaryOp, rhs: Rhs) -> Self::Output;
}

impl<T: Elem> Compare<Val<T>> for Val<T> {
    type Output = Val<bool>;
    fn compare(self, op: BinaryOp, rhs: Val<T>) -> Val<bool> {
        binary(op, self, rhs)
    }
}

impl<T: Elem> Compare<T> for Val<T> {
    type Output = Val<bool>;
    fn compare(self, op: BinaryOp, rhs: T) -> Val<bool> {
        binary(op, self, Val::constant(rhs))
    }
}

fn compare_comptime<T: PartialOrd>(op: BinaryOp, a: T, b: T) -> bool {
    match op {
        BinaryOp::Eq => a == b,
        BinaryOp::Ne => a != b,
        BinaryOp::Lt => a < b,
        BinaryOp::Le => a <= b,
        BinaryOp::Gt => a > b,
        BinaryOp::Ge => a >= b,
        _ => unreachable!("compare is only called with comparison operators"),
    }
}

macro_rules! compare_literal {
    ($($t:ty),*) => {$(
        impl Compare<Val<$t>> for $t {
            type Output = Val<bool>;
            fn compare(self, op: BinaryOp, rhs: Val<$t>) -> Val<bool> {
                binary(op, Val::constant(self), rhs)
            }
        }
        impl Compare<$t> for $t {
            type Output = bool;
            fn compare(self, op: BinaryOp, rhs: $t) -> bool {
                compare_comptime(op, self, rhs)
            }
        }
    )*};
}
compare_literal!(u32, i32, f32, bool);

macro_rules! compare_comptime_only {
    ($($t:ty),*) => {$(
        impl Compare<$t> for $t {
            type Output = bool;
            fn compare(self, op: BinaryOp, rhs: $t) -> bool {
                compare_comptime(op, self, rhs)
            }
        }
    )*};
}
compare_comptime_only!(usize, u64, i64, f64, u8, u16);

macro_rules! compare_fn {
    ($($name:ident => $op:ident),*) => {$(
        #[doc = concat!("The DSL's `", stringify!($name), "` comparison (what the macro turns the operator into).")]
        pub fn $name<A: Compare<B>, B>(a: A, b: B) -> A::Output {
            a.compare(BinaryOp::$op, b)
        }
    )*};
}
compare_fn!(eq => Eq, ne => Ne, lt => Lt, le => Le, gt => Gt, ge => Ge);

/// `&&` and `||`. On comptime bools they are Rust's; with a runtime side both sides are
/// evaluated (no short circuit), which is what the IR's And/Or mean.
#[diagnostic::on_unimplemented(
    message = "`&&`/`||` need bool operands, found `{Self}` and `{Rhs}`"
)]
pub trait Logic<Rhs> {
    type Output;
    fn logic(self, op: BinaryOp, rhs: Rhs) -> Self::Output;
}

impl Logic<bool> for bool {
    type Output = bool;
    fn logic(self, op: BinaryOp, rhs: bool) -> bool {
        if op == BinaryOp::And {
            self && rhs
        } else {
            self || rhs
        }
    }
}
impl Logic<Val<bool>> for Val<bool> {
    type Output = Val<bool>;
    fn logic(self, op: BinaryOp, rhs: Val<bool>) -> Val<bool> {
        binary(op, self, rhs)
    }
}
impl Logic<bool> for Val<bool> {
    type Output = Val<bool>;
    fn logic(self, op: BinaryOp, rhs: bool) -> Val<bool> {
        binary(op, self, Val::constant(rhs))
    }
}
impl Logic<Val<bool>> for bool {
    type Output = Val<bool>;
    fn logic(self, op: BinaryOp, rhs: Val<bool>) -> Val<bool> {
        binary(op, Val::constant(self), rhs)
    }
}

pub fn and<A: Logic<B>, B>(a: A, b: B) -> A::Output {
    a.logic(BinaryOp::And, b)
}

pub fn or<A: Logic<B>, B>(a: A, b: B) -> A::Output {
    a.logic(BinaryOp::Or, b)
}

/// `value as T`: a numeric conversion. Comptime numbers convert in Rust.
#[diagnostic::on_unimplemented(message = "cannot convert `{Self}` to `{T}` with `as` in a kernel")]
pub trait CastTo<T> {
    type Output;
    fn cast_to(self) -> Self::Output;
}

impl<S: Elem, T: Elem> CastTo<T> for Val<S> {
    type Output = Val<T>;
    fn cast_to(self) -> Val<T> {
        cast(self, T::SCALAR)
    }
}

macro_rules! cast_comptime {
    ($($from:ty),*) => {$(
        cast_comptime!(@to $from => u32, i32, f32, usize, u64, i64, f64);
    )*};
    (@to $from:ty => $($to:ty),*) => {$(
        impl CastTo<$to> for $from {
            type Output = $to;
            fn cast_to(self) -> $to {
                self as $to
            }
        }
    )*};
}
cast_comptime!(u32, i32, f32, usize, u64, i64, f64);

pub(crate) fn cast<T: ValueType>(v: Val<impl ValueType>, to: Scalar) -> Val<T> {
    Val::from_expr(Expr::Cast { to, value: v.id })
}

impl<T: Elem> Val<T> {
    /// Converts to f32 (exact from f16/bf16; rounds from large integers).
    pub fn to_f32(self) -> Val<f32> {
        cast(self, Scalar::F32)
    }
    pub fn to_u32(self) -> Val<u32> {
        cast(self, Scalar::U32)
    }
    pub fn to_i32(self) -> Val<i32> {
        cast(self, Scalar::I32)
    }
    /// Converts to any element type, e.g. `v.cast::<T>()` in a kernel generic over `T`.
    pub fn cast<U: Elem>(self) -> Val<U> {
        cast(self, U::SCALAR)
    }
}

impl<T: Elem, const N: usize> Val<Vector<T, N>> {
    /// Lane-wise conversion to f32.
    pub fn to_f32(self) -> Val<Vector<f32, N>> {
        cast(self, Scalar::F32)
    }
    /// Lane-wise conversion to `U`.
    pub fn cast<U: Elem>(self) -> Val<Vector<U, N>> {
        cast(self, U::SCALAR)
    }
    /// One lane (a comptime index). A one-lane "vector" is its scalar, so kernels generic over
    /// the vector width `V` serve `V = 1` with the same code.
    pub fn lane(self, lane: u32) -> Val<T> {
        if lane as usize >= N {
            with(|b| b.error(format!("vector lane {lane} is out of range for {N} lanes")));
            return Val::new(self.id);
        }
        if N == 1 {
            return Val::new(self.id);
        }
        Val::from_expr(Expr::Extract {
            vector: self.id,
            lane: lane as u8,
        })
    }
    /// Builds a vector from `N` scalars.
    pub fn from_lanes(lanes: [Val<T>; N]) -> Self {
        if N == 1 {
            return Val::new(lanes[0].id);
        }
        Val::from_expr(Expr::Compose(lanes.iter().map(|v| v.id).collect()))
    }
    /// `N` copies of one value.
    pub fn splat(value: impl IntoVal<Elem = T>) -> Self {
        Self::from_lanes([value.into_val(); N])
    }
}

impl<T: Numeric> Val<T> {
    pub fn max(self, other: impl IntoVal<Elem = T>) -> Val<T> {
        binary(BinaryOp::Max, self, other.into_val())
    }
    pub fn min(self, other: impl IntoVal<Elem = T>) -> Val<T> {
        binary(BinaryOp::Min, self, other.into_val())
    }
    pub fn abs(self) -> Val<T> {
        unary(UnaryOp::Abs, self)
    }
}

/// Float scalars and vectors of them: the math methods work lane-wise on vectors.
pub trait FloatLike: Arith {}
impl<T: Float> FloatLike for T {}
impl<T: Float, const N: usize> FloatLike for Vector<T, N> {}

macro_rules! float_method {
    ($($name:ident => $op:ident: $doc:literal),*) => {
        impl<T: FloatLike> Val<T> {
            $(
                #[doc = $doc]
                pub fn $name(self) -> Val<T> {
                    unary(UnaryOp::$op, self)
                }
            )*
            /// `self * a + b` with one rounding.
            pub fn mul_add(self, a: Val<T>, b: Val<T>) -> Val<T> {
                Val::from_expr(Expr::Fma(self.id, a.id, b.id))
            }
        }
    };
}
float_method!(
    exp2 => Exp2: "2 to the power of the value.",
    log2 => Log2: "Base-2 logarithm.",
    exp => Exp: "e to the power of the value.",
    ln => Log: "Natural logarithm.",
    sqrt => Sqrt: "Square root.",
    rsqrt => Rsqrt: "1 / sqrt.",
    sin => Sin: "Sine (accurate for large arguments on every target).",
    cos => Cos: "Cosine (accurate for large arguments on every target).",
    tanh => Tanh: "Hyperbolic tangent.",
    floor => Floor: "Largest integer not greater than the value."
);
