//! The portable exp/tanh/sin/cos (`greta_codegen::math`), compiled for the host from the very
//! C++ text the HIP prelude holds and compared with f64 libm; and the LLVM IR printing of the
//! same programs (what the LLVM backend emits), compiled for the host too and compared with the
//! C++ bit for bit. (On the GPU only `greta_exp2` differs: the hardware's approximate exp2; here
//! it is the host's exact one, in both.)

use std::process::Command;

use greta_codegen::Toolchain;

const HARNESS: &str = r#"
#include <cmath>
#include <cstdio>
#define GRETA_INLINE static inline
typedef float f32;
typedef int i32;
typedef unsigned int u32;
static inline f32 greta_exp2(f32 x) { return std::exp2(x); }
@MATH@
// The LLVM IR printing of the same functions (math.ll).
extern "C" f32 ll_greta_exp(f32), ll_greta_tanh(f32), ll_greta_sin(f32), ll_greta_cos(f32);
static long mismatches = 0;
static void same(f32 a, f32 b) {
    unsigned ua, ub;
    __builtin_memcpy(&ua, &a, 4);
    __builtin_memcpy(&ub, &b, 4);
    if (ua != ub && !(a != a && b != b)) ++mismatches;
}
// Max absolute error of sin and cos over |x| <= limit, sampled densely plus every float near
// multiples of pi/2 (where reduction cancels most).
static void sweep(double limit, long n) {
    double es = 0, ec = 0, worst = 0;
    for (long i = -n; i <= n; ++i) {
        f32 x = (f32)(limit * (double)i / (double)n);
        same(greta_sin(x), ll_greta_sin(x));
        same(greta_cos(x), ll_greta_cos(x));
        double s = std::fabs((double)greta_sin(x) - std::sin((double)x));
        double c = std::fabs((double)greta_cos(x) - std::cos((double)x));
        if (s > es) { es = s; worst = x; }
        if (c > ec) { ec = c; }
    }
    for (long k = -(long)(limit / 1.5707963267948966); k <= (long)(limit / 1.5707963267948966); ++k) {
        f32 x = (f32)(k * 1.5707963267948966);
        for (int j = 0; j < 4; ++j, x = std::nextafter(x, 1e30f)) {
            es = std::fmax(es, std::fabs((double)greta_sin(x) - std::sin((double)x)));
            ec = std::fmax(ec, std::fabs((double)greta_cos(x) - std::cos((double)x)));
        }
    }
    std::printf("sincos %g %.3e %.3e %g\n", limit, es, ec, worst);
}
int main() {
    sweep(10.0, 2000000);
    sweep(1e4, 4000000);
    sweep(1e5, 4000000);
    double et = 0, ee = 0;
    for (long i = -2000000; i <= 2000000; ++i) {
        f32 x = (f32)(20.0 * i / 2000000.0);
        et = std::fmax(et, std::fabs((double)greta_tanh(x) - std::tanh((double)x)));
        f32 y = (f32)(87.0 * i / 2000000.0);
        same(greta_tanh(x), ll_greta_tanh(x));
        same(greta_exp(y), ll_greta_exp(y));
        double ref = std::exp((double)y);
        ee = std::fmax(ee, std::fabs((double)greta_exp(y) - ref) / ref);
    }
    std::printf("tanh %.3e\nexp %.3e\n", et, ee);
    std::printf("special %g %g %g\n", greta_sin(-0.0f), greta_cos(INFINITY), greta_tanh(1e30f));
    std::printf("llvm_mismatches %ld\n", mismatches);
}
"#;

#[test]
fn software_math_is_accurate() {
    let tools = Toolchain::from_env();
    let clang = tools.clang().expect("clang++ is needed for this test");
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("math.cpp");
    let ll = dir.path().join("math.ll");
    let bin = dir.path().join("math");
    std::fs::write(&src, HARNESS.replace("@MATH@", &greta_codegen::math::cpp())).unwrap();
    let (mut ir, decls) = greta_codegen::math::llvm("llvm.exp2.f32");
    for (name, d) in decls {
        ir.push_str(&format!("{d}\n"));
        let _ = name;
    }
    for f in ["exp", "tanh", "sin", "cos"] {
        ir.push_str(&format!(
            "define float @ll_greta_{f}(float %x) {{\n  %r = call float @greta_{f}(float %x)\n  ret float %r\n}}\n"
        ));
    }
    ir.push_str("attributes #1 = { alwaysinline }\n");
    std::fs::write(&ll, ir).unwrap();
    let out = Command::new(clang)
        .args(["-O2", "-ffp-contract=off", "-mfma", "-std=c++17"])
        .arg(&src)
        .args(["-x", "ir"])
        .arg(&ll)
        .arg("-o")
        .arg(&bin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&bin).output().unwrap();
    assert!(run.status.success());
    let text = String::from_utf8(run.stdout).unwrap();
    eprintln!("{text}");
    let mut sincos = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w[0] {
            "sincos" => {
                let limit: f64 = w[1].parse().unwrap();
                let (es, ec): (f64, f64) = (w[2].parse().unwrap(), w[3].parse().unwrap());
                sincos.push(limit);
                let bound = if limit <= 1e4 { 2e-6 } else { 5e-6 };
                assert!(
                    es < bound && ec < bound,
                    "sin/cos error over |x| <= {limit}: {es} {ec}"
                );
            }
            "tanh" => assert!(w[1].parse::<f64>().unwrap() < 5e-7, "{line}"),
            "exp" => assert!(w[1].parse::<f64>().unwrap() < 1e-6, "{line}"),
            "llvm_mismatches" => assert_eq!(w[1], "0", "the LLVM printing differs from the C++"),
            "special" => {
                assert_eq!(w[1], "-0", "sin(-0) keeps its sign");
                assert_eq!(w[2], "nan", "cos(inf) is NaN");
                assert_eq!(w[3], "1", "tanh saturates");
            }
            _ => panic!("unexpected output {line}"),
        }
    }
    assert_eq!(sincos.len(), 3);
}
