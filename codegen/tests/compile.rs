//! Generated HIP compiles for gfx942 (code object, zero scratch) and sm_90 (PTX assembled by
//! ptxas, zero spills), and the expected instructions show up.

mod common;

use common::kernels;
use common::{compile_via, emit};
use greta_codegen::{Format, Via};
use greta_dsl::ir::{Kernel, Scalar};
use greta_dsl::Target;

fn all_kernels() -> Vec<Kernel> {
    vec![
        kernels::elementwise(Scalar::F32),
        kernels::elementwise(Scalar::F16),
        kernels::elementwise(Scalar::BF16),
        kernels::row_sum_squares(64),
        kernels::vector_copy(),
        kernels::atomics(),
        kernels::math(),
        kernels::lanewise(),
    ]
}

fn check_compiles(target: &Target) {
    check_compiles_via(target, Via::Hip)
}

fn check_compiles_via(target: &Target, via: Via) {
    for k in all_kernels() {
        let c = compile_via(&k, target, via)
            .unwrap_or_else(|e| panic!("{} for {target} via {via}: {e}", k.name));
        assert!(!c.object.is_empty());
        let r = &c.resources;
        match target.family {
            greta_dsl::Family::Amdgcn => {
                assert_eq!(
                    &c.object[..4],
                    b"\x7fELF",
                    "{}: not an ELF code object",
                    k.name
                );
                assert_eq!(r.scratch_bytes, Some(0), "{}: {r:?}", k.name);
                assert!(
                    r.vgpr.unwrap() > 0 && r.sgpr.unwrap() > 0,
                    "{}: {r:?}",
                    k.name
                );
                assert!(c.ptx.is_none());
            }
            greta_dsl::Family::Nvptx => {
                assert_eq!(r.spill_bytes, Some(0), "{}: {r:?}", k.name);
                assert_eq!(r.stack_bytes, Some(0), "{}: {r:?}", k.name);
                assert!(r.regs.unwrap() > 0, "{}: {r:?}", k.name);
                assert!(c
                    .ptx
                    .as_deref()
                    .unwrap()
                    .contains(&format!(".entry {}(", k.name)));
            }
        }
        assert_eq!(r.lds_bytes, k.shared_bytes(), "{}: {r:?}", k.name);
        eprintln!(
            "{} on {target}: {}",
            k.name,
            serde_json::to_string(r).unwrap()
        );
    }
}

#[test]
fn gfx942_code_objects() {
    check_compiles(&Target::GFX942);
}

#[test]
fn sm90_cubins() {
    check_compiles(&Target::SM_90);
}

#[test]
fn gfx942_code_objects_via_llvm() {
    check_compiles_via(&Target::GFX942, Via::Llvm);
}

#[test]
fn sm90_cubins_via_llvm() {
    check_compiles_via(&Target::SM_90, Via::Llvm);
}

fn asm(k: &Kernel, t: &Target) -> String {
    emit(k, t, Format::Asm).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn amd_instructions() {
    let t = &Target::GFX942;
    let v = asm(&kernels::vector_copy(), t);
    assert!(
        v.contains("global_load_dwordx4"),
        "4 x f32 load is not one dwordx4 load"
    );
    assert!(v.contains("global_store_dwordx4"));
    assert!(
        v.contains("ds_write_b128") || v.contains("ds_write2"),
        "LDS vector store"
    );
    assert!(v.contains("s_barrier"));
    let r = asm(&kernels::row_sum_squares(64), t);
    assert!(r.contains("s_barrier"));
    assert!(r.contains("ds_bpermute_b32"));
    let a = asm(&kernels::atomics(), t);
    assert!(a.contains("global_atomic_add_f32"));
    assert!(a.contains("global_atomic_smax") || a.contains("global_atomic_max_i32"));
    assert!(a.contains("ds_add_u32"));
    let m = asm(&kernels::math(), t);
    assert!(m.contains("v_exp_f32") && m.contains("v_rsq_f32"));
    assert!(!m.contains("v_sin_f32"), "sin must be the software version");
}

#[test]
fn nvidia_instructions() {
    let t = &Target::SM_90;
    let v = asm(&kernels::vector_copy(), t);
    assert!(
        v.lines()
            .any(|l| l.contains("ld.global") && l.contains(".v4")),
        "no v4 global load"
    );
    assert!(v
        .lines()
        .any(|l| l.contains("st.global") && l.contains(".v4")));
    assert!(v.contains("bar.sync"));
    let r = asm(&kernels::row_sum_squares(32), t);
    assert!(r.contains("bar.sync"));
    for mode in ["bfly", "down", "up", "idx"] {
        assert!(
            r.contains(&format!("shfl.sync.{mode}")),
            "no shfl.sync.{mode}"
        );
    }
    let a = asm(&kernels::atomics(), t);
    assert!(a.contains("atom.global.add.f32"));
    assert!(a.contains("atom.global.max.s32"));
    assert!(a.contains("atom.shared.add.u32"));
    let m = asm(&kernels::math(), t);
    assert!(m.contains("ex2.approx") && m.contains("rsqrt.approx"));
    assert!(
        !m.contains("sin.approx"),
        "sin must be the software version"
    );
    assert_eq!(emit(&kernels::math(), t, Format::Ptx).unwrap(), m);
}

#[test]
fn ptx_for_amd_is_a_clear_error() {
    let e = emit(&kernels::math(), &Target::GFX942, Format::Ptx).unwrap_err();
    assert!(e.to_string().contains("PTX"), "{e}");
}
