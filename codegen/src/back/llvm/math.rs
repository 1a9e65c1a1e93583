//! exp, tanh, sin and cos in LLVM IR, from the family's `exp2`, FMA and rounding intrinsics:
//! the same algorithms, constants and operation order as the HIP prelude's `PORTABLE_MATH`
//! (see its docs for the error bounds; its host test checks those against f64 libm, and the
//! equivalence tests compare this lowering's results with the HIP path's on the interpreter's
//! problems). Each function is written only when the kernel uses it, as an internal
//! `alwaysinline` function.

use std::fmt::Write;

use greta_dsl::ir::UnaryOp;

use super::f32_literal as c;
use super::family::Family;

/// Which portable functions a kernel calls.
#[derive(Default, Debug)]
pub struct Used {
    exp: bool,
    tanh: bool,
    sin: bool,
    cos: bool,
}

impl Used {
    /// Records that `op` is called; returns the function's name.
    pub fn use_op(&mut self, op: UnaryOp) -> &'static str {
        match op {
            UnaryOp::Exp => {
                self.exp = true;
                "greta_exp"
            }
            UnaryOp::Tanh => {
                self.tanh = true;
                self.exp = true;
                "greta_tanh"
            }
            UnaryOp::Sin => {
                self.sin = true;
                "greta_sin"
            }
            _ => {
                self.cos = true;
                "greta_cos"
            }
        }
    }
}

/// The definitions of the functions `used` calls, and the intrinsic declarations they need
/// (name, `declare` line), for the writer's one list of declarations.
pub fn definitions(used: &Used, fam: &Family) -> (String, Vec<(String, String)>) {
    let mut out = String::new();
    if !(used.exp || used.tanh || used.sin || used.cos) {
        return (out, Vec::new());
    }
    let w = &mut out;
    let fma = "@llvm.fma.f32";
    if used.exp {
        // e^x with log2(e) applied in two parts: 2^(hi + lo) = 2^hi * (1 + lo * ln 2).
        let _ = write!(
            w,
            "; e^x with log2(e) applied in two parts, so large |x| keeps its accuracy.
define internal float @greta_exp(float %x) #1 {{
  %hi = fmul float %x, {l2e}
  %nhi = fneg float %hi
  %err = call float {fma}(float %x, float {l2e}, float %nhi)
  %tail = fmul float %x, {l2e_lo}
  %lo = fadd float %err, %tail
  %p = call float @{exp2}(float %hi)
  %lnlo = fmul float %lo, {ln2}
  %q = fadd float {one}, %lnlo
  %r = fmul float %p, %q
  ret float %r
}}

",
            l2e = c(1.442_695),
            l2e_lo = c(1.925_963e-8),
            ln2 = c(0.693_147_2),
            one = c(1.0),
            exp2 = fam.exp2,
        );
    }
    if used.tanh {
        let _ = write!(
            w,
            "; tanh: odd Taylor series up to x^11 below 0.4, else 1 - 2 / (e^(2|x|) + 1).
define internal float @greta_tanh(float %x) #1 {{
  %a = call float @llvm.fabs.f32(float %x)
  %s = fmul float %a, %a
  %p0 = call float {fma}(float {c0}, float %s, float {c1})
  %p1 = call float {fma}(float %p0, float %s, float {c2})
  %p2 = call float {fma}(float %p1, float %s, float {c3})
  %p3 = call float {fma}(float %p2, float %s, float {c4})
  %ps = fmul float %p3, %s
  %small = call float {fma}(float %ps, float %a, float %a)
  %a2 = fmul float {two}, %a
  %e = call float @greta_exp(float %a2)
  %e1 = fadd float %e, {one}
  %q = fdiv float {two}, %e1
  %large = fsub float {one}, %q
  %lt = fcmp olt float %a, {cut}
  %v = select i1 %lt, float %small, float %large
  %r = call float @llvm.copysign.f32(float %v, float %x)
  ret float %r
}}

",
            c0 = c(-0.008_863_236),
            c1 = c(0.021_869_488),
            c2 = c(-0.053_968_254),
            c3 = c(0.133_333_34),
            c4 = c(-0.333_333_34),
            two = c(2.0),
            one = c(1.0),
            cut = c(0.4),
        );
    }
    if used.sin || used.cos {
        let _ = write!(
            w,
            "; x - k*pi/2 with pi/2 in three f32 parts applied by FMA; k mod 4 computed in f32.
define internal {{ float, i32 }} @greta_reduce_pio2(float %x) #1 {{
  %kx = fmul float %x, {two_over_pi}
  %k = call float @llvm.rint.f32(float %kx)
  %r0 = call float {fma}(float %k, float {p1}, float %x)
  %r1 = call float {fma}(float %k, float {p2}, float %r0)
  %r2 = call float {fma}(float %k, float {p3}, float %r1)
  %kq = fmul float %k, {quarter}
  %fl = call float @llvm.floor.f32(float %kq)
  %f4 = fmul float {four}, %fl
  %m = fsub float %k, %f4
  %ok = fcmp oeq float %m, %m
  %mi = fptosi float %m to i32
  %q = select i1 %ok, i32 %mi, i32 0
  %res0 = insertvalue {{ float, i32 }} poison, float %r2, 0
  %res = insertvalue {{ float, i32 }} %res0, i32 %q, 1
  ret {{ float, i32 }} %res
}}

; Cephes sinf/cosf minimax polynomials on [-pi/4, pi/4], by quadrant.
define internal float @greta_sin_quadrant(float %r, i32 %q) #1 {{
  %s = fmul float %r, %r
  %sp0 = call float {fma}(float {s0}, float %s, float {s1})
  %sp1 = call float {fma}(float %sp0, float %s, float {s2})
  %sps = fmul float %sp1, %s
  %sin = call float {fma}(float %sps, float %r, float %r)
  %cp0 = call float {fma}(float {k0}, float %s, float {k1})
  %cp1 = call float {fma}(float %cp0, float %s, float {k2})
  %cps = fmul float %cp1, %s
  %ch = call float {fma}(float {mhalf}, float %s, float {one})
  %cos = call float {fma}(float %cps, float %s, float %ch)
  %odd = and i32 %q, 1
  %isodd = icmp ne i32 %odd, 0
  %v = select i1 %isodd, float %cos, float %sin
  %neg = and i32 %q, 2
  %isneg = icmp ne i32 %neg, 0
  %nv = fneg float %v
  %r2 = select i1 %isneg, float %nv, float %v
  ret float %r2
}}

",
            two_over_pi = c(0.636_619_75),
            p1 = c(-1.570_796_4),
            p2 = c(4.371_138_8e-8),
            p3 = c(1.776_356_8e-15),
            quarter = c(0.25),
            four = c(4.0),
            s0 = c(-1.951_529_6e-4),
            s1 = c(8.332_161e-3),
            s2 = c(-0.166_666_55),
            k0 = c(2.443_315_7e-5),
            k1 = c(-1.388_731_6e-3),
            k2 = c(4.166_664_6e-2),
            mhalf = c(-0.5),
            one = c(1.0),
        );
    }
    if used.sin {
        let _ = write!(
            w,
            "define internal float @greta_sin(float %x) #1 {{
  %rq = call {{ float, i32 }} @greta_reduce_pio2(float %x)
  %r = extractvalue {{ float, i32 }} %rq, 0
  %q = extractvalue {{ float, i32 }} %rq, 1
  %v = call float @greta_sin_quadrant(float %r, i32 %q)
  %zero = fcmp oeq float %x, {zero}
  %s = select i1 %zero, float %x, float %v
  ret float %s
}}

",
            zero = c(0.0)
        );
    }
    if used.cos {
        let _ = write!(
            w,
            "define internal float @greta_cos(float %x) #1 {{
  %rq = call {{ float, i32 }} @greta_reduce_pio2(float %x)
  %r = extractvalue {{ float, i32 }} %rq, 0
  %q = extractvalue {{ float, i32 }} %rq, 1
  %q1 = add i32 %q, 1
  %v = call float @greta_sin_quadrant(float %r, i32 %q1)
  ret float %v
}}

"
        );
    }
    out.push_str("attributes #1 = { alwaysinline }\n\n");
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
        fam.exp2.to_string(),
        format!("declare float @{}(float)", fam.exp2),
    )))
    .collect();
    (out, decls)
}
