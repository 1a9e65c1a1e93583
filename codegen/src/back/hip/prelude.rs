//! The prelude every generated source starts with. It is self-contained: no HIP/CUDA headers, no
//! device libraries (Debian's ROCm device libraries do not know gfx942, and libdevice would tie
//! the PTX to a CUDA install), so every name a kernel uses is defined here from clang builtins.
//!
//! It has three parts:
//! 1. the family half, generated from the [`Dialect`] table: ids, barrier, 32-bit shuffles, f32
//!    math builtins;
//! 2. the shared half: types, arithmetic helpers, generic shuffles, wave reductions, atomics;
//! 3. the portable math: exp, tanh, sin and cos, [`crate::math`]'s one definition printed as
//!    C++ on top of `greta_exp2` (the LLVM backend prints the same programs as LLVM IR; a host
//!    test checks both against f64 libm and against each other).
//!
//! The kernel body only calls `greta_*` functions and the typedefs, so the AMD and the NVIDIA
//! outputs of one kernel differ in the prelude and the launch-bound attribute only.

use std::fmt::Write;

use super::dialect::Dialect;

/// Scalar C types of the IR's scalars, as the prelude names them (same names as the DSL).
pub const SCALAR_TYPEDEFS: &str = "\
typedef _Float16 f16;
typedef __bf16 bf16;
typedef float f32;
typedef int i32;
typedef unsigned int u32;
";

/// Builds the whole prelude for `dialect` at wave size `wave_size`.
pub fn prelude(dialect: &Dialect, wave_size: u32) -> String {
    let mut p = String::new();
    let w = &mut p;
    let _ = write!(
        w,
        "\
// ---- prelude ------------------------------------------------------------------------------
// The IR rounds every operation separately; only its explicit fma fuses.
#pragma clang fp contract(off)

#ifndef __global__
#define __global__ __attribute__((global))
#endif
#ifndef __device__
#define __device__ __attribute__((device))
#endif
#ifndef __shared__
#define __shared__ __attribute__((shared))
#endif
#define GRETA_INLINE static __device__ inline __attribute__((always_inline))
#define GRETA_WAVE_SIZE {wave_size}u

{SCALAR_TYPEDEFS}"
    );
    // Vector types for 16-byte (and narrower) memory accesses and lane-wise values.
    for s in ["f16", "bf16", "f32", "i32", "u32", "bool"] {
        for n in [2, 4, 8] {
            let _ = writeln!(
                w,
                "typedef {s} {s}x{n} __attribute__((ext_vector_type({n})));"
            );
        }
    }

    // Family half.
    let _ = writeln!(w, "\n// Thread and block ids.");
    for (what, exprs) in [
        ("thread_idx", dialect.thread_idx),
        ("block_idx", dialect.block_idx),
        ("block_dim", dialect.block_dim),
        ("grid_dim", dialect.grid_dim),
    ] {
        for (axis, e) in ["x", "y", "z"].iter().zip(exprs) {
            let _ = writeln!(
                w,
                "GRETA_INLINE u32 greta_{what}_{axis}() {{ return {e}; }}"
            );
        }
    }
    let _ = writeln!(
        w,
        "GRETA_INLINE u32 greta_lane_id() {{ return {}; }}",
        dialect.lane_id
    );
    let _ = write!(
        w,
        "\n// Block-wide barrier with a workgroup memory fence.\n\
         GRETA_INLINE void greta_barrier() {{\n    {}\n}}\n",
        dialect.barrier
    );
    let _ = writeln!(
        w,
        "\n// 32-bit cross-lane reads (all lanes of the wave take part)."
    );
    for (mode, body) in [
        ("xor", dialect.shfl_xor),
        ("down", dialect.shfl_down),
        ("up", dialect.shfl_up),
        ("idx", dialect.shfl_idx),
    ] {
        let _ = write!(
            w,
            "GRETA_INLINE u32 greta_shfl_{mode}_b32(u32 v, u32 s) {{\n    \
             u32 lane = greta_lane_id();\n    {body}\n}}\n"
        );
    }
    let _ = write!(
        w,
        "
// f32 math from the target's builtins.
GRETA_INLINE f32 greta_exp2(f32 x) {{ return {exp2}(x); }}
GRETA_INLINE f32 greta_log2(f32 x) {{ return {log2}(x); }}
GRETA_INLINE f32 greta_sqrt(f32 x) {{ return {sqrt}(x); }}
GRETA_INLINE f32 greta_rsqrt(f32 x) {{ return {rsqrt}(x); }}
",
        exp2 = dialect.exp2,
        log2 = dialect.log2,
        sqrt = dialect.sqrt,
        rsqrt = dialect.rsqrt,
    );

    // Shared half.
    w.push_str(SHARED_HELPERS);
    for mode in ["xor", "down", "up", "idx"] {
        let _ = write!(
            w,
            "template <class T> GRETA_INLINE T greta_shfl_{mode}(T v, u32 s) {{
    u32 words[(sizeof(T) + 3) / 4] = {{}};
    __builtin_memcpy(words, &v, sizeof(T));
#pragma unroll
    for (u32 k = 0; k < (sizeof(T) + 3) / 4; ++k) words[k] = greta_shfl_{mode}_b32(words[k], s);
    __builtin_memcpy(&v, words, sizeof(T));
    return v;
}}
"
        );
    }
    let _ = writeln!(
        w,
        "\n// Butterfly reductions: every lane ends with the same value."
    );
    for (name, op) in [
        ("sum", "greta_add"),
        ("max", "greta_max"),
        ("min", "greta_min"),
    ] {
        let _ = write!(
            w,
            "template <class T> GRETA_INLINE T greta_wave_{name}(T v) {{
#pragma unroll
    for (u32 m = GRETA_WAVE_SIZE / 2; m > 0; m >>= 1) v = {op}(v, greta_shfl_xor(v, m));
    return v;
}}
"
        );
    }
    let _ = write!(
        w,
        "
// Relaxed atomics returning the old value (f32 max becomes a compare-and-swap loop where the
// hardware has no instruction for it).
template <class T> GRETA_INLINE T greta_atomic_add(T* p, T v) {{
    return __scoped_atomic_fetch_add(p, v, __ATOMIC_RELAXED, {scope});
}}
template <class T> GRETA_INLINE T greta_atomic_max(T* p, T v) {{
    return __scoped_atomic_fetch_max(p, v, __ATOMIC_RELAXED, {scope});
}}
",
        scope = dialect.atomic_scope
    );
    w.push_str(&crate::math::cpp());
    w.push_str(
        "// ---- end of prelude -----------------------------------------------------------------------\n",
    );
    p
}

/// Arithmetic helpers over every scalar type. f16/bf16 arithmetic goes through f32 with an
/// explicit rounding after each operation: clang evaluates `__bf16` (and, on some targets,
/// `_Float16`) expressions in excess precision otherwise, which would differ from the
/// interpreter and between targets. f32 has more than twice the bits of either, so rounding
/// twice gives the correctly rounded result for +, -, *, /.
const SHARED_HELPERS: &str = "
// min/max/abs/fma/add over every scalar type (16-bit floats computed in f32, rounded once).
GRETA_INLINE f32 greta_min(f32 a, f32 b) { return __builtin_fminf(a, b); }
GRETA_INLINE f32 greta_max(f32 a, f32 b) { return __builtin_fmaxf(a, b); }
GRETA_INLINE f16 greta_min(f16 a, f16 b) { return f16(__builtin_fminf(f32(a), f32(b))); }
GRETA_INLINE f16 greta_max(f16 a, f16 b) { return f16(__builtin_fmaxf(f32(a), f32(b))); }
GRETA_INLINE bf16 greta_min(bf16 a, bf16 b) { return bf16(__builtin_fminf(f32(a), f32(b))); }
GRETA_INLINE bf16 greta_max(bf16 a, bf16 b) { return bf16(__builtin_fmaxf(f32(a), f32(b))); }
GRETA_INLINE i32 greta_min(i32 a, i32 b) { return a < b ? a : b; }
GRETA_INLINE i32 greta_max(i32 a, i32 b) { return a > b ? a : b; }
GRETA_INLINE u32 greta_min(u32 a, u32 b) { return a < b ? a : b; }
GRETA_INLINE u32 greta_max(u32 a, u32 b) { return a > b ? a : b; }
GRETA_INLINE bool greta_min(bool a, bool b) { return a & b; }
GRETA_INLINE bool greta_max(bool a, bool b) { return a | b; }
GRETA_INLINE f32 greta_abs(f32 a) { return __builtin_fabsf(a); }
GRETA_INLINE f16 greta_abs(f16 a) { return f16(__builtin_fabsf(f32(a))); }
GRETA_INLINE bf16 greta_abs(bf16 a) { return bf16(__builtin_fabsf(f32(a))); }
GRETA_INLINE i32 greta_abs(i32 a) { return a < 0 ? -a : a; }
GRETA_INLINE u32 greta_abs(u32 a) { return a; }
GRETA_INLINE f32 greta_fma(f32 a, f32 b, f32 c) { return __builtin_fmaf(a, b, c); }
GRETA_INLINE f16 greta_fma(f16 a, f16 b, f16 c) { return f16(__builtin_fmaf(f32(a), f32(b), f32(c))); }
GRETA_INLINE bf16 greta_fma(bf16 a, bf16 b, bf16 c) { return bf16(__builtin_fmaf(f32(a), f32(b), f32(c))); }
GRETA_INLINE i32 greta_fma(i32 a, i32 b, i32 c) { return a * b + c; }
GRETA_INLINE u32 greta_fma(u32 a, u32 b, u32 c) { return a * b + c; }
GRETA_INLINE f32 greta_add(f32 a, f32 b) { return a + b; }
GRETA_INLINE f16 greta_add(f16 a, f16 b) { return f16(f32(a) + f32(b)); }
GRETA_INLINE bf16 greta_add(bf16 a, bf16 b) { return bf16(f32(a) + f32(b)); }
GRETA_INLINE i32 greta_add(i32 a, i32 b) { return a + b; }
GRETA_INLINE u32 greta_add(u32 a, u32 b) { return a + b; }
GRETA_INLINE f32 greta_floor(f32 x) { return __builtin_floorf(x); }
GRETA_INLINE f32 greta_log(f32 x) { return greta_log2(x) * 0.693147182f; }

// Cross-lane reads of any type, 32 bits at a time.
";
