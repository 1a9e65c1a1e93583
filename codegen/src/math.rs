//! The portable math — e^x, tanh, sin, cos — defined once, as straight-line programs over f32
//! and i32, and printed by each backend: C++ for the HIP prelude ([`cpp`]), LLVM IR for the
//! LLVM backend ([`llvm`]). Both printings perform the same operations in the same order, so the
//! two lowerings of a kernel agree bit for bit where the hardware's `exp2` is the same (the host
//! test compiles both and compares them).
//!
//! Only `exp2` comes from the target (`greta_exp2`: `v_exp_f32` on AMD, `ex2.approx` on NVIDIA);
//! everything else is FMA, rounding and select.
//!
//! - **exp**: log2(e) applied in two parts, so large |x| keeps its accuracy:
//!   2^(hi + lo) = 2^hi · (1 + lo · ln 2) for the tiny lo.
//! - **tanh**: the odd Taylor series up to x^11 below 0.4 (truncation error < 3e-8), else
//!   1 − 2 / (e^(2|x|) + 1), which goes to 1 cleanly when e^(2|x|) overflows.
//! - **sin/cos**: RoPE feeds angles up to ~1e4 rad, where hardware `sin.approx` (NVIDIA) and
//!   `v_sin` (AMD, which takes revolutions) lose most of their digits. The argument is reduced by
//!   Cody–Waite, x − k·π/2 with π/2 split in three f32 parts applied by FMA (exact products, one
//!   rounding per step; accurate to ~1e6 rad), k mod 4 computed in f32 (exact, so a huge or
//!   non-finite k never overflows an int), then the Cephes minimax polynomials on [−π/4, π/4].
//!   Absolute error about 1e-7 for |x| ≤ 1e5.

// The constants are the C++ source's decimal strings, kept digit for digit (they round to the
// same f32s; the digits say where each comes from).
#![allow(clippy::excessive_precision)]

use std::fmt::Write;

/// A value of a program: the index of the operation that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V(usize);

/// The type of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    F32,
    I32,
    Bool,
}

/// One operation (IEEE f32 semantics, no contraction: each rounds once).
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// The function's argument.
    Arg,
    F(f32),
    I(i32),
    Add(V, V),
    Sub(V, V),
    Mul(V, V),
    Div(V, V),
    Neg(V),
    Fma(V, V, V),
    Abs(V),
    Rint(V),
    Floor(V),
    CopySign(V, V),
    /// The target's `exp2`.
    Exp2(V),
    /// This module's e^x (for tanh).
    Exp(V),
    /// Ordered `<` and `==`.
    Lt(V, V),
    Eq(V, V),
    /// `c ? a : b` (both evaluated).
    Select(V, V, V),
    /// `x` truncated to i32 where `x == x`, else 0 (a NaN never reaches the conversion).
    ToIntOrZero(V),
    /// i32 `a & imm != 0`.
    BitSet(V, i32),
    /// i32 `a + imm`.
    AddI(V, i32),
}

/// A function `f32 name(f32 x)`: its operations in order and the one it returns.
pub struct Func {
    pub name: &'static str,
    pub ops: Vec<(Op, Ty)>,
    pub ret: V,
}

struct B(Vec<(Op, Ty)>);

impl B {
    fn push(&mut self, op: Op, ty: Ty) -> V {
        self.0.push((op, ty));
        V(self.0.len() - 1)
    }
    fn f(&mut self, op: Op) -> V {
        self.push(op, Ty::F32)
    }
    fn c(&mut self, x: f32) -> V {
        self.f(Op::F(x))
    }
    fn fma(&mut self, a: V, b: V, c: V) -> V {
        self.f(Op::Fma(a, b, c))
    }
    fn mul(&mut self, a: V, b: V) -> V {
        self.f(Op::Mul(a, b))
    }
    /// Horner steps `p = fma(p, s, c)` over `coefs`, starting from `fma(c0, s, c1)`.
    fn horner(&mut self, s: V, coefs: &[f32]) -> V {
        let (c0, c1) = (self.c(coefs[0]), self.c(coefs[1]));
        let mut p = self.fma(c0, s, c1);
        for &k in &coefs[2..] {
            let k = self.c(k);
            p = self.fma(p, s, k);
        }
        p
    }
}

fn exp() -> Func {
    let mut b = B(Vec::new());
    let x = b.f(Op::Arg);
    let l2e = b.c(1.442_695_02);
    let hi = b.mul(x, l2e);
    let nhi = b.f(Op::Neg(hi));
    let err = b.fma(x, l2e, nhi);
    let l2e_lo = b.c(1.925_963_03e-8);
    let tail = b.mul(x, l2e_lo);
    let lo = b.f(Op::Add(err, tail));
    let p = b.f(Op::Exp2(hi));
    let ln2 = b.c(0.693_147_182);
    let lnlo = b.mul(lo, ln2);
    let one = b.c(1.0);
    let q = b.f(Op::Add(one, lnlo));
    let ret = b.mul(p, q);
    Func {
        name: "greta_exp",
        ops: b.0,
        ret,
    }
}

fn tanh() -> Func {
    let mut b = B(Vec::new());
    let x = b.f(Op::Arg);
    let a = b.f(Op::Abs(x));
    let s = b.mul(a, a);
    let p = b.horner(
        s,
        &[
            -0.008_863_235_8,
            0.021_869_488_1,
            -0.053_968_254_5,
            0.133_333_340,
            -0.333_333_343,
        ],
    );
    let ps = b.mul(p, s);
    let small = b.fma(ps, a, a);
    let two = b.c(2.0);
    let a2 = b.mul(two, a);
    let e = b.f(Op::Exp(a2));
    let one = b.c(1.0);
    let e1 = b.f(Op::Add(e, one));
    let q = b.f(Op::Div(two, e1));
    let large = b.f(Op::Sub(one, q));
    let cut = b.c(0.4);
    let lt = b.push(Op::Lt(a, cut), Ty::Bool);
    let v = b.f(Op::Select(lt, small, large));
    let ret = b.f(Op::CopySign(v, x));
    Func {
        name: "greta_tanh",
        ops: b.0,
        ret,
    }
}

/// sin (`cos == false`) or cos of the argument: reduction, both polynomials, the quadrant.
fn sin_cos(cos: bool) -> Func {
    let mut b = B(Vec::new());
    let x = b.f(Op::Arg);
    // x - k*pi/2 with pi/2 = P1 + P2 + P3, k = rint(x * 2/pi).
    let two_over_pi = b.c(0.636_619_747);
    let kx = b.mul(x, two_over_pi);
    let k = b.f(Op::Rint(kx));
    let p1 = b.c(-1.570_796_370_506_286_6);
    let r0 = b.fma(k, p1, x);
    let p2 = b.c(4.371_138_828_673_793e-8);
    let r1 = b.fma(k, p2, r0);
    let p3 = b.c(1.776_356_839_400_250_5e-15);
    let r = b.fma(k, p3, r1);
    // k mod 4 in f32.
    let quarter = b.c(0.25);
    let kq = b.mul(k, quarter);
    let fl = b.f(Op::Floor(kq));
    let four = b.c(4.0);
    let f4 = b.mul(four, fl);
    let m = b.f(Op::Sub(k, f4));
    let q0 = b.push(Op::ToIntOrZero(m), Ty::I32);
    let q = if cos {
        b.push(Op::AddI(q0, 1), Ty::I32)
    } else {
        q0
    };
    // Cephes sinf/cosf minimax polynomials on [-pi/4, pi/4].
    let s = b.mul(r, r);
    let sp = b.horner(
        s,
        &[-1.951_529_589_1e-4, 8.332_160_873_6e-3, -1.666_665_461_1e-1],
    );
    let sps = b.mul(sp, s);
    let sin = b.fma(sps, r, r);
    let cp = b.horner(
        s,
        &[
            2.443_315_711_809_948e-5,
            -1.388_731_625_493_765e-3,
            4.166_664_568_298_827e-2,
        ],
    );
    let cps = b.mul(cp, s);
    let mhalf = b.c(-0.5);
    let one = b.c(1.0);
    let ch = b.fma(mhalf, s, one);
    let cosv = b.fma(cps, s, ch);
    let odd = b.push(Op::BitSet(q, 1), Ty::Bool);
    let v = b.f(Op::Select(odd, cosv, sin));
    let neg = b.push(Op::BitSet(q, 2), Ty::Bool);
    let nv = b.f(Op::Neg(v));
    let signed = b.f(Op::Select(neg, nv, v));
    let ret = if cos {
        signed
    } else {
        // sin(-0) = -0.
        let zero = b.c(0.0);
        let is_zero = b.push(Op::Eq(x, zero), Ty::Bool);
        b.f(Op::Select(is_zero, x, signed))
    };
    Func {
        name: if cos { "greta_cos" } else { "greta_sin" },
        ops: b.0,
        ret,
    }
}

/// The portable functions, callees first (tanh calls exp).
pub fn functions() -> Vec<Func> {
    vec![exp(), tanh(), sin_cos(false), sin_cos(true)]
}

/// An f32 as a C++ literal that parses back to exactly it (Rust's shortest round-trip form).
fn cpp_f32(x: f32) -> String {
    let t = format!("{x:?}f");
    if x.is_sign_negative() {
        format!("({t})")
    } else {
        t
    }
}

/// The functions in C++ (the HIP prelude), each `GRETA_INLINE f32 name(f32 x)` on top of
/// `greta_exp2`.
pub fn cpp() -> String {
    let mut out = String::from(
        "\n// Portable math (greta_codegen::math): e^x, tanh, sin, cos from greta_exp2, FMA and rounding.\n",
    );
    for f in functions() {
        let _ = writeln!(out, "GRETA_INLINE f32 {}(f32 x) {{", f.name);
        for (i, (op, ty)) in f.ops.iter().enumerate() {
            let v = |x: &V| format!("v{}", x.0);
            let rhs = match op {
                Op::Arg => "x".to_string(),
                Op::F(c) => cpp_f32(*c),
                Op::I(c) => c.to_string(),
                Op::Add(a, b) => format!("{} + {}", v(a), v(b)),
                Op::Sub(a, b) => format!("{} - {}", v(a), v(b)),
                Op::Mul(a, b) => format!("{} * {}", v(a), v(b)),
                Op::Div(a, b) => format!("{} / {}", v(a), v(b)),
                Op::Neg(a) => format!("-{}", v(a)),
                Op::Fma(a, b, c) => format!("__builtin_fmaf({}, {}, {})", v(a), v(b), v(c)),
                Op::Abs(a) => format!("__builtin_fabsf({})", v(a)),
                Op::Rint(a) => format!("__builtin_rintf({})", v(a)),
                Op::Floor(a) => format!("__builtin_floorf({})", v(a)),
                Op::CopySign(a, b) => format!("__builtin_copysignf({}, {})", v(a), v(b)),
                Op::Exp2(a) => format!("greta_exp2({})", v(a)),
                Op::Exp(a) => format!("greta_exp({})", v(a)),
                Op::Lt(a, b) => format!("{} < {}", v(a), v(b)),
                Op::Eq(a, b) => format!("{} == {}", v(a), v(b)),
                Op::Select(c, a, b) => format!("{} ? {} : {}", v(c), v(a), v(b)),
                Op::ToIntOrZero(a) => format!("{0} == {0} ? (i32){0} : 0", v(a)),
                Op::BitSet(a, m) => format!("({} & {m}) != 0", v(a)),
                Op::AddI(a, k) => format!("{} + {k}", v(a)),
            };
            let t = match ty {
                Ty::F32 => "f32",
                Ty::I32 => "i32",
                Ty::Bool => "bool",
            };
            let _ = writeln!(out, "    const {t} v{i} = {rhs};");
        }
        let _ = writeln!(out, "    return v{};\n}}", f.ret.0);
    }
    out
}

/// The functions in LLVM IR, each `define internal float @name(float %x) #1`, calling `exp2`
/// (an f32 intrinsic name) for [`Op::Exp2`]. Returns the text and the intrinsics it declares
/// (name, `declare` line).
pub fn llvm(exp2: &str) -> (String, Vec<(String, String)>) {
    let mut out = String::from(
        "; Portable math (greta_codegen::math): e^x, tanh, sin, cos from exp2, FMA and rounding.\n",
    );
    let lit = |c: f32| format!("0x{:016X}", (c as f64).to_bits());
    for f in functions() {
        let _ = writeln!(out, "define internal float @{}(float %x) #1 {{", f.name);
        // Constants are used inline, not as instructions.
        let val = |x: &V| -> String {
            match f.ops[x.0].0 {
                Op::F(c) => lit(c),
                Op::I(c) => c.to_string(),
                Op::Arg => "%x".to_string(),
                _ => format!("%v{}", x.0),
            }
        };
        let a = |x: &V| format!("float {}", val(x));
        let b = |x: &V| val(x);
        for (i, (op, _)) in f.ops.iter().enumerate() {
            let rhs = match op {
                Op::Arg | Op::F(_) | Op::I(_) => continue,
                Op::Add(x, y) => format!("fadd {}, {}", a(x), b(y)),
                Op::Sub(x, y) => format!("fsub {}, {}", a(x), b(y)),
                Op::Mul(x, y) => format!("fmul {}, {}", a(x), b(y)),
                Op::Div(x, y) => format!("fdiv {}, {}", a(x), b(y)),
                Op::Neg(x) => format!("fneg {}", a(x)),
                Op::Fma(x, y, z) => {
                    format!("call float @llvm.fma.f32({}, {}, {})", a(x), a(y), a(z))
                }
                Op::Abs(x) => format!("call float @llvm.fabs.f32({})", a(x)),
                Op::Rint(x) => format!("call float @llvm.rint.f32({})", a(x)),
                Op::Floor(x) => format!("call float @llvm.floor.f32({})", a(x)),
                Op::CopySign(x, y) => {
                    format!("call float @llvm.copysign.f32({}, {})", a(x), a(y))
                }
                Op::Exp2(x) => format!("call float @{exp2}({})", a(x)),
                Op::Exp(x) => format!("call float @greta_exp({})", a(x)),
                Op::Lt(x, y) => format!("fcmp olt {}, {}", a(x), b(y)),
                Op::Eq(x, y) => format!("fcmp oeq {}, {}", a(x), b(y)),
                Op::Select(c, x, y) => {
                    let ty = |v: &V| match f.ops[v.0].1 {
                        Ty::I32 => "i32",
                        _ => "float",
                    };
                    format!("select i1 {}, {} {}, {} {}", b(c), ty(x), b(x), ty(y), b(y))
                }
                Op::ToIntOrZero(x) => {
                    let _ = writeln!(out, "  %v{i}.ok = fcmp oeq {}, {}", a(x), b(x));
                    let _ = writeln!(out, "  %v{i}.int = fptosi {} to i32", a(x));
                    format!("select i1 %v{i}.ok, i32 %v{i}.int, i32 0")
                }
                Op::BitSet(x, m) => {
                    let _ = writeln!(out, "  %v{i}.and = and i32 {}, {m}", b(x));
                    format!("icmp ne i32 %v{i}.and, 0")
                }
                Op::AddI(x, k) => format!("add i32 {}, {k}", b(x)),
            };
            let _ = writeln!(out, "  %v{i} = {rhs}");
        }
        let _ = writeln!(out, "  ret float {}\n}}\n", val(&f.ret));
    }
    let decls = [
        (
            "llvm.fma.f32",
            "declare float @llvm.fma.f32(float, float, float)",
        ),
        ("llvm.fabs.f32", "declare float @llvm.fabs.f32(float)"),
        (
            "llvm.copysign.f32",
            "declare float @llvm.copysign.f32(float, float)",
        ),
        ("llvm.rint.f32", "declare float @llvm.rint.f32(float)"),
        ("llvm.floor.f32", "declare float @llvm.floor.f32(float)"),
    ]
    .into_iter()
    .map(|(n, d)| (n.to_string(), d.to_string()))
    .chain(std::iter::once((
        exp2.to_string(),
        format!("declare float @{exp2}(float)"),
    )))
    .collect();
    (out, decls)
}
