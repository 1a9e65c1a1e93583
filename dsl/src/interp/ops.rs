//! Column kernels: one IR operation applied to every thread's value at once.
//!
//! Values are `u32` bit patterns (f16/bf16 bits zero-extended, f32 bits, i32 as two's
//! complement, bool 0/1). Each function dispatches on the operation and scalar type once and then
//! runs a monomorphised loop over the column, so the per-thread cost is the arithmetic itself.
//! Inactive threads are computed too (on whatever their column holds): that is cheaper than
//! testing a mask per element, and harmless because every operation here is total (integer
//! division by zero and oversized shifts give 0 here; the interpreter reports them for active
//! threads before calling in).
//!
//! f16 and bf16 arithmetic is done in f32 and rounded back to the storage type (round to nearest
//! even) after every operation, which is what a GPU's single f16 instruction does. For add, sub,
//! mul, div and sqrt the detour through f32 gives the correctly rounded f16/bf16 result (f32 has
//! more than twice their precision plus two bits, so the double rounding is innocuous); fma and
//! the transcendental functions may differ from hardware in the last bit in rare cases.

use crate::ir::{BinaryOp, ReduceOp, Scalar, UnaryOp};
use half::{bf16, f16};

/// How a float storage type maps to and from f32.
pub(crate) trait Float {
    fn get(b: u32) -> f32;
    fn put(x: f32) -> u32;
}

pub(crate) struct Fp32;
pub(crate) struct Fp16;
pub(crate) struct Bf16;

impl Float for Fp32 {
    #[inline(always)]
    fn get(b: u32) -> f32 {
        f32::from_bits(b)
    }
    #[inline(always)]
    fn put(x: f32) -> u32 {
        x.to_bits()
    }
}

impl Float for Fp16 {
    #[inline(always)]
    fn get(b: u32) -> f32 {
        f16::from_bits(b as u16).to_f32()
    }
    #[inline(always)]
    fn put(x: f32) -> u32 {
        f16::from_f32(x).to_bits() as u32
    }
}

impl Float for Bf16 {
    #[inline(always)]
    fn get(b: u32) -> f32 {
        bf16::from_bits(b as u16).to_f32()
    }
    #[inline(always)]
    fn put(x: f32) -> u32 {
        bf16::from_f32(x).to_bits() as u32
    }
}

#[inline(always)]
fn map1(out: &mut Vec<u32>, a: &[u32], f: impl Fn(u32) -> u32) {
    out.clear();
    out.extend(a.iter().map(|&x| f(x)));
}

#[inline(always)]
fn map2(out: &mut Vec<u32>, a: &[u32], b: &[u32], f: impl Fn(u32, u32) -> u32) {
    out.clear();
    out.extend(a.iter().zip(b).map(|(&x, &y)| f(x, y)));
}

/// `Err(())` means the operation does not apply to the type (ill-typed IR).
pub(crate) type OpResult = Result<(), ()>;

pub(crate) fn unary(op: UnaryOp, s: Scalar, a: &[u32], out: &mut Vec<u32>) -> OpResult {
    match s {
        Scalar::F32 => return float_unary::<Fp32>(op, a, out),
        Scalar::F16 => return float_unary::<Fp16>(op, a, out),
        Scalar::BF16 => return float_unary::<Bf16>(op, a, out),
        Scalar::I32 => match op {
            UnaryOp::Neg => map1(out, a, |x| (x as i32).wrapping_neg() as u32),
            UnaryOp::Not => map1(out, a, |x| !x),
            UnaryOp::Abs => map1(out, a, |x| (x as i32).wrapping_abs() as u32),
            _ => return Err(()),
        },
        Scalar::U32 => match op {
            UnaryOp::Not => map1(out, a, |x| !x),
            UnaryOp::Abs => map1(out, a, |x| x),
            _ => return Err(()),
        },
        Scalar::Bool => match op {
            UnaryOp::Not => map1(out, a, |x| x ^ 1),
            _ => return Err(()),
        },
    }
    Ok(())
}

fn float_unary<F: Float>(op: UnaryOp, a: &[u32], out: &mut Vec<u32>) -> OpResult {
    #[inline(always)]
    fn f<F: Float>(g: impl Fn(f32) -> f32) -> impl Fn(u32) -> u32 {
        move |x| F::put(g(F::get(x)))
    }
    match op {
        UnaryOp::Neg => map1(out, a, f::<F>(|x| -x)),
        UnaryOp::Not => return Err(()),
        UnaryOp::Abs => map1(out, a, f::<F>(f32::abs)),
        UnaryOp::Exp2 => map1(out, a, f::<F>(f32::exp2)),
        UnaryOp::Log2 => map1(out, a, f::<F>(f32::log2)),
        UnaryOp::Exp => map1(out, a, f::<F>(f32::exp)),
        UnaryOp::Log => map1(out, a, f::<F>(f32::ln)),
        UnaryOp::Sqrt => map1(out, a, f::<F>(f32::sqrt)),
        UnaryOp::Rsqrt => map1(out, a, f::<F>(|x| 1.0 / x.sqrt())),
        UnaryOp::Sin => map1(out, a, f::<F>(f32::sin)),
        UnaryOp::Cos => map1(out, a, f::<F>(f32::cos)),
        UnaryOp::Tanh => map1(out, a, f::<F>(f32::tanh)),
        UnaryOp::Floor => map1(out, a, f::<F>(f32::floor)),
    }
    Ok(())
}

pub(crate) fn binary(
    op: BinaryOp,
    s: Scalar,
    a: &[u32],
    b: &[u32],
    out: &mut Vec<u32>,
) -> OpResult {
    match s {
        Scalar::F32 => float_binary::<Fp32>(op, a, b, out),
        Scalar::F16 => float_binary::<Fp16>(op, a, b, out),
        Scalar::BF16 => float_binary::<Bf16>(op, a, b, out),
        Scalar::I32 => int_binary_i32(op, a, b, out),
        Scalar::U32 => int_binary_u32(op, a, b, out),
        Scalar::Bool => bool_binary(op, a, b, out),
    }
}

fn float_binary<F: Float>(op: BinaryOp, a: &[u32], b: &[u32], out: &mut Vec<u32>) -> OpResult {
    #[inline(always)]
    fn ar<F: Float>(g: impl Fn(f32, f32) -> f32) -> impl Fn(u32, u32) -> u32 {
        move |x, y| F::put(g(F::get(x), F::get(y)))
    }
    #[inline(always)]
    fn cmp<F: Float>(g: impl Fn(&f32, &f32) -> bool) -> impl Fn(u32, u32) -> u32 {
        move |x, y| g(&F::get(x), &F::get(y)) as u32
    }
    match op {
        BinaryOp::Add => map2(out, a, b, ar::<F>(|x, y| x + y)),
        BinaryOp::Sub => map2(out, a, b, ar::<F>(|x, y| x - y)),
        BinaryOp::Mul => map2(out, a, b, ar::<F>(|x, y| x * y)),
        BinaryOp::Div => map2(out, a, b, ar::<F>(|x, y| x / y)),
        BinaryOp::Rem => map2(out, a, b, ar::<F>(|x, y| x % y)),
        // fminf/fmaxf semantics: a NaN operand yields the other one.
        BinaryOp::Min => map2(out, a, b, ar::<F>(f32::min)),
        BinaryOp::Max => map2(out, a, b, ar::<F>(f32::max)),
        BinaryOp::Eq => map2(out, a, b, cmp::<F>(f32::eq)),
        BinaryOp::Ne => map2(out, a, b, cmp::<F>(f32::ne)),
        BinaryOp::Lt => map2(out, a, b, cmp::<F>(f32::lt)),
        BinaryOp::Le => map2(out, a, b, cmp::<F>(f32::le)),
        BinaryOp::Gt => map2(out, a, b, cmp::<F>(f32::gt)),
        BinaryOp::Ge => map2(out, a, b, cmp::<F>(f32::ge)),
        _ => return Err(()),
    }
    Ok(())
}

macro_rules! int_binary {
    ($name:ident, $t:ty) => {
        fn $name(op: BinaryOp, a: &[u32], b: &[u32], out: &mut Vec<u32>) -> OpResult {
            #[inline(always)]
            fn ar(g: impl Fn($t, $t) -> $t) -> impl Fn(u32, u32) -> u32 {
                move |x, y| g(x as $t, y as $t) as u32
            }
            #[inline(always)]
            fn cmp(g: impl Fn(&$t, &$t) -> bool) -> impl Fn(u32, u32) -> u32 {
                move |x, y| g(&(x as $t), &(y as $t)) as u32
            }
            match op {
                BinaryOp::Add => map2(out, a, b, ar(<$t>::wrapping_add)),
                BinaryOp::Sub => map2(out, a, b, ar(<$t>::wrapping_sub)),
                BinaryOp::Mul => map2(out, a, b, ar(<$t>::wrapping_mul)),
                BinaryOp::Div => map2(
                    out,
                    a,
                    b,
                    ar(|x, y| if y == 0 { 0 } else { x.wrapping_div(y) }),
                ),
                BinaryOp::Rem => map2(
                    out,
                    a,
                    b,
                    ar(|x, y| if y == 0 { 0 } else { x.wrapping_rem(y) }),
                ),
                BinaryOp::Min => map2(out, a, b, ar(<$t>::min)),
                BinaryOp::Max => map2(out, a, b, ar(<$t>::max)),
                BinaryOp::BitAnd => map2(out, a, b, |x, y| x & y),
                BinaryOp::BitOr => map2(out, a, b, |x, y| x | y),
                BinaryOp::BitXor => map2(out, a, b, |x, y| x ^ y),
                BinaryOp::Shl => map2(out, a, b, ar(|x, y| x.checked_shl(y as u32).unwrap_or(0))),
                BinaryOp::Shr => map2(out, a, b, ar(|x, y| x.checked_shr(y as u32).unwrap_or(0))),
                BinaryOp::Eq => map2(out, a, b, cmp(<$t>::eq)),
                BinaryOp::Ne => map2(out, a, b, cmp(<$t>::ne)),
                BinaryOp::Lt => map2(out, a, b, cmp(<$t>::lt)),
                BinaryOp::Le => map2(out, a, b, cmp(<$t>::le)),
                BinaryOp::Gt => map2(out, a, b, cmp(<$t>::gt)),
                BinaryOp::Ge => map2(out, a, b, cmp(<$t>::ge)),
                BinaryOp::And | BinaryOp::Or => return Err(()),
            }
            Ok(())
        }
    };
}
int_binary!(int_binary_i32, i32);
int_binary!(int_binary_u32, u32);

fn bool_binary(op: BinaryOp, a: &[u32], b: &[u32], out: &mut Vec<u32>) -> OpResult {
    match op {
        BinaryOp::And | BinaryOp::BitAnd | BinaryOp::Min => map2(out, a, b, |x, y| x & y),
        BinaryOp::Or | BinaryOp::BitOr | BinaryOp::Max => map2(out, a, b, |x, y| x | y),
        BinaryOp::BitXor | BinaryOp::Ne => map2(out, a, b, |x, y| x ^ y),
        BinaryOp::Eq => map2(out, a, b, |x, y| (x == y) as u32),
        BinaryOp::Lt => map2(out, a, b, |x, y| (x < y) as u32),
        BinaryOp::Le => map2(out, a, b, |x, y| (x <= y) as u32),
        BinaryOp::Gt => map2(out, a, b, |x, y| (x > y) as u32),
        BinaryOp::Ge => map2(out, a, b, |x, y| (x >= y) as u32),
        _ => return Err(()),
    }
    Ok(())
}

/// `a * b + c` with one rounding for f32 (`f32::mul_add`); f16/bf16 compute the f32 fma and
/// round once to the storage type.
pub(crate) fn fma(s: Scalar, a: &[u32], b: &[u32], c: &[u32], out: &mut Vec<u32>) -> OpResult {
    fn go<F: Float>(a: &[u32], b: &[u32], c: &[u32], out: &mut Vec<u32>) {
        out.clear();
        out.extend(
            a.iter()
                .zip(b)
                .zip(c)
                .map(|((&x, &y), &z)| F::put(F::get(x).mul_add(F::get(y), F::get(z)))),
        );
    }
    match s {
        Scalar::F32 => go::<Fp32>(a, b, c, out),
        Scalar::F16 => go::<Fp16>(a, b, c, out),
        Scalar::BF16 => go::<Bf16>(a, b, c, out),
        _ => return Err(()),
    }
    Ok(())
}

/// Numeric conversion. Float to integer truncates toward zero and saturates at the integer
/// type's range, NaN giving 0 (Rust's `as`; GPUs' `cvt.rzi.sat` / `v_cvt_*_f32` behave the
/// same way for in-range values and clamp out-of-range ones). Integer to f16/bf16 goes through
/// f64 so that it rounds once. Float to narrower float rounds to nearest even. Numbers to bool
/// compare with zero; bool to numbers gives 0 or 1. i32 <-> u32 keeps the bits.
pub(crate) fn cast(from: Scalar, to: Scalar, a: &[u32], out: &mut Vec<u32>) {
    use Scalar::*;
    if from == to {
        out.clear();
        out.extend_from_slice(a);
        return;
    }
    // Every value of every source type is exactly representable in f64.
    fn get(s: Scalar) -> fn(u32) -> f64 {
        match s {
            F16 => |x| Fp16::get(x) as f64,
            BF16 => |x| Bf16::get(x) as f64,
            F32 => |x| f32::from_bits(x) as f64,
            I32 => |x| x as i32 as f64,
            U32 => |x| x as f64,
            Bool => |x| x as f64,
        }
    }
    match (from, to) {
        (I32, U32) | (U32, I32) => map1(out, a, |x| x),
        (F32, F16) => map1(out, a, |x| Fp16::put(f32::from_bits(x))),
        (F32, BF16) => map1(out, a, |x| Bf16::put(f32::from_bits(x))),
        (F16, F32) => map1(out, a, |x| Fp16::get(x).to_bits()),
        (BF16, F32) => map1(out, a, |x| Bf16::get(x).to_bits()),
        (F32, I32) => map1(out, a, |x| f32::from_bits(x) as i32 as u32),
        (F32, U32) => map1(out, a, |x| f32::from_bits(x) as u32),
        (I32, F32) => map1(out, a, |x| (x as i32 as f32).to_bits()),
        (U32, F32) => map1(out, a, |x| (x as f32).to_bits()),
        (_, Bool) => {
            let g = get(from);
            map1(out, a, |x| (g(x) != 0.0) as u32)
        }
        (_, F16) => {
            let g = get(from);
            map1(out, a, |x| f16::from_f64(g(x)).to_bits() as u32)
        }
        (_, BF16) => {
            let g = get(from);
            map1(out, a, |x| bf16::from_f64(g(x)).to_bits() as u32)
        }
        (_, F32) => {
            let g = get(from);
            map1(out, a, |x| (g(x) as f32).to_bits())
        }
        (_, I32) => {
            let g = get(from);
            map1(out, a, |x| g(x) as i32 as u32)
        }
        (_, U32) => {
            let g = get(from);
            map1(out, a, |x| g(x) as u32)
        }
    }
}

/// The combining function of a wave reduction or an atomic, on bit patterns.
pub(crate) fn combine(op: ReduceOp, s: Scalar) -> Option<fn(u32, u32) -> u32> {
    use ReduceOp::*;
    Some(match (op, s) {
        (Sum, Scalar::F32) => |x, y| Fp32::put(Fp32::get(x) + Fp32::get(y)),
        (Sum, Scalar::F16) => |x, y| Fp16::put(Fp16::get(x) + Fp16::get(y)),
        (Sum, Scalar::BF16) => |x, y| Bf16::put(Bf16::get(x) + Bf16::get(y)),
        (Sum, Scalar::I32 | Scalar::U32) => |x: u32, y: u32| x.wrapping_add(y),
        (Max, Scalar::F32) => |x, y| Fp32::put(Fp32::get(x).max(Fp32::get(y))),
        (Max, Scalar::F16) => |x, y| Fp16::put(Fp16::get(x).max(Fp16::get(y))),
        (Max, Scalar::BF16) => |x, y| Bf16::put(Bf16::get(x).max(Bf16::get(y))),
        (Max, Scalar::I32) => |x, y| (x as i32).max(y as i32) as u32,
        (Max, Scalar::U32) => |x: u32, y: u32| x.max(y),
        (Min, Scalar::F32) => |x, y| Fp32::put(Fp32::get(x).min(Fp32::get(y))),
        (Min, Scalar::F16) => |x, y| Fp16::put(Fp16::get(x).min(Fp16::get(y))),
        (Min, Scalar::BF16) => |x, y| Bf16::put(Bf16::get(x).min(Bf16::get(y))),
        (Min, Scalar::I32) => |x, y| (x as i32).min(y as i32) as u32,
        (Min, Scalar::U32) => |x: u32, y: u32| x.min(y),
        (_, Scalar::Bool) => return None,
    })
}
