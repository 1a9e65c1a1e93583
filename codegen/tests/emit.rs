//! Properties of the generated source itself (no tools needed).

mod common;

use common::emit_hip;
use common::{kernels, B};
use greta_dsl::ir::{Access, BinaryOp, Scalar, Stmt};
use greta_dsl::Target;

#[test]
fn header_names_and_launch_bounds() {
    let k = kernels::elementwise(Scalar::BF16);
    let amd = emit_hip(&k, &Target::GFX942).unwrap();
    let nv = emit_hip(&k, &Target::SM_90).unwrap();
    assert!(amd.contains("// kernel:     scale_add_bf16"));
    assert!(amd.contains("// config:     T=bf16,block=256"));
    assert!(amd.contains("// target:     gfx942"));
    assert!(amd
        .contains("extern \"C\" __global__ __attribute__((amdgpu_flat_work_group_size(1, 256)))"));
    assert!(nv.contains("__attribute__((launch_bounds(256)))"));
    assert!(amd.contains("const bf16* __restrict__ x"));
    assert!(amd.contains("bf16* __restrict__ y"));
    assert!(!amd.contains("#include"));
    // The kernel body is the same text for both targets.
    let body = |s: &str| s[s.find("void scale_add_bf16").unwrap()..].to_string();
    assert_eq!(body(&amd), body(&nv));
    // No libm names anywhere.
    for f in [" sinf(", " expf(", " exp2f(", " sqrtf("] {
        assert!(!amd.contains(f) && !nv.contains(f), "{f}");
    }
}

#[test]
fn names_are_sanitised_and_unique() {
    let mut b = B::new("k");
    let buf = b.buf("int", Scalar::F32, Access::ReadWrite);
    let one = b.f(1.0);
    let (_, a) = b.let_("x", one);
    let (_, c) = b.let_("x", a);
    let (_, d) = b.let_("f32", c);
    let (_, e) = b.let_("greta_t0", d);
    let z = b.u(0);
    b.store(buf, z, e);
    let src = emit_hip(&b.finish(), &Target::GFX942).unwrap();
    assert!(src.contains("f32* __restrict__ int_"), "{src}");
    assert!(src.contains("f32 x = 1.0f;"));
    assert!(src.contains("f32 x_1 = x;"));
    assert!(src.contains("f32 f32_ = x_1;"));
    assert!(src.contains("f32 k_greta_t0 = f32_;"));
}

#[test]
fn bad_kernel_name_is_an_error() {
    let b = B::new("not a name");
    assert!(emit_hip(&b.finish(), &Target::SM_90).is_err());
}

#[test]
fn loop_bounds_that_change_are_hoisted() {
    let mut b = B::new("loop");
    let buf = b.buf("y", Scalar::U32, Access::ReadWrite);
    let ten = b.u(10);
    let (n, ne) = b.let_("n", ten);
    let i = b.var("i", greta_dsl::ir::Type::U32);
    let ie = b.var_e(i);
    let zero = b.u(0);
    let one = b.u(1);
    b.open();
    b.store(buf, ie, ne);
    let n2 = b.bin(BinaryOp::Add, ne, one);
    b.assign(n, n2);
    let body = b.close();
    b.stmt(Stmt::For {
        var: i,
        start: zero,
        end: ne,
        step: one,
        body,
    });
    let src = emit_hip(&b.finish(), &Target::GFX942).unwrap();
    assert!(src.contains("const u32 i_end = n;"), "{src}");
    assert!(
        src.contains("for (u32 i = 0u; i < i_end; i += i_step) {"),
        "{src}"
    );
}

#[test]
fn writes_to_read_only_buffers_are_rejected() {
    let mut b = B::new("k");
    let buf = b.buf("x", Scalar::F32, Access::Read);
    let z = b.u(0);
    let one = b.f(1.0);
    b.store(buf, z, one);
    let e = emit_hip(&b.finish(), &Target::GFX942).unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
}
