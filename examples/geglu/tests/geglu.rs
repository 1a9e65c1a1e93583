//! The example kernel checked as its author's CI would: on the CPU interpreter against the f64
//! reference (every element type, lengths that are and are not multiples of the vector width,
//! both wave sizes), and compiled for gfx942 and sm_90 by each lowering.

use greta_dsl::ir::Scalar;
use greta_dsl::{Family, Target};
use greta_example_geglu::{build, check, check_against, compile, default_vec, tolerance};
use greta_runtime::cpu::CpuBackend;
use greta_runtime::{Format, Via};

const DTYPES: [Scalar; 3] = [Scalar::F32, Scalar::F16, Scalar::BF16];

/// Every element of `dtype`, at every vector width it allows, on both targets' wave sizes, for
/// lengths below one vector, between whole vectors and spanning several blocks.
fn check_dtype(dtype: Scalar) {
    for target in [&Target::GFX942, &Target::SM_90] {
        let backend = CpuBackend::new(target);
        for vec in [1, 2, 4, 8]
            .into_iter()
            .filter(|&v| v <= default_vec(dtype))
        {
            for n in [1, 3, 7, 256 * vec + 5, 4099] {
                let report = check(&backend, dtype, vec, n)
                    .unwrap_or_else(|e| panic!("{dtype} vec {vec} n {n} on {target}: {e:#}"));
                assert_eq!(report.checked, n as usize, "{report}");
                let tol = tolerance(dtype);
                assert!(report.max_abs_err <= tol.abs + tol.rel * 12.0, "{report}");
            }
        }
    }
}

#[test]
fn cpu_matches_reference_f32() {
    check_dtype(Scalar::F32);
}

#[test]
fn cpu_matches_reference_f16() {
    check_dtype(Scalar::F16);
}

#[test]
fn cpu_matches_reference_bf16() {
    check_dtype(Scalar::BF16);
}

/// The comparison bites: the same kernel checked against SiLU (SwiGLU's gate) instead of GELU
/// fails, naming an element.
#[test]
fn a_wrong_reference_is_caught() {
    fn swiglu(gate: &[f64], up: &[f64]) -> Vec<f64> {
        gate.iter()
            .zip(up)
            .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
            .collect()
    }
    let backend = CpuBackend::new(&Target::GFX942);
    let err = check_against(&backend, Scalar::F32, 4, 1000, swiglu).unwrap_err();
    assert!(err.to_string().contains("element"), "{err:#}");
}

/// Widths the element type cannot take in one 16-byte vector are refused, not miscompiled.
#[test]
fn vector_wider_than_16_bytes_is_refused() {
    assert!(build(&Target::GFX942, Scalar::F32, 8).is_err());
    assert!(build(&Target::GFX942, Scalar::F16, 3).is_err());
    assert!(build(&Target::GFX942, Scalar::I32, 1).is_err());
}

fn check_compiles(target: &'static Target, via: Via) {
    for dtype in DTYPES {
        let c = compile(target, via, dtype).unwrap_or_else(|e| panic!("{e:#}"));
        let r = &c.resources;
        assert!(!c.object.is_empty());
        assert_eq!(r.lds_bytes, 0, "{r:?}");
        match target.family {
            Family::Amdgcn => {
                assert_eq!(&c.object[..4], b"\x7fELF", "not an ELF code object");
                assert!(r.vgpr.unwrap() > 0 && r.sgpr.unwrap() > 0, "{r:?}");
                assert_eq!(r.scratch_bytes, Some(0), "{r:?}");
                assert!(c.ptx.is_none());
            }
            Family::Nvptx => {
                assert_eq!(&c.object[..4], b"\x7fELF", "not an ELF cubin");
                assert!(r.regs.unwrap() > 0, "{r:?}");
                assert_eq!(r.spill_bytes, Some(0), "{r:?}");
                let ptx = c.ptx.as_deref().unwrap();
                assert!(ptx.contains(".entry geglu("), "no geglu entry in the PTX");
            }
        }
        eprintln!(
            "geglu {dtype} on {target} via {via}: {}",
            greta_example_geglu::describe(&c)
        );
    }
}

#[test]
fn compiles_for_gfx942_via_hip() {
    check_compiles(&Target::GFX942, Via::Hip);
}

#[test]
fn compiles_for_sm90_via_hip() {
    check_compiles(&Target::SM_90, Via::Hip);
}

#[cfg(feature = "llvm")]
#[test]
fn compiles_for_gfx942_via_llvm() {
    check_compiles(&Target::GFX942, Via::Llvm);
}

#[cfg(feature = "llvm")]
#[test]
fn compiles_for_sm90_via_llvm() {
    check_compiles(&Target::SM_90, Via::Llvm);
}

/// The generated source needs no tools, and holds the kernel's entry point.
#[test]
fn emits_hip_source() {
    for target in [&Target::GFX942, &Target::SM_90] {
        let kernel = build(target, Scalar::F16, 8).unwrap();
        let src = greta_runtime::emit(&kernel, target, Via::Hip, Format::Source).unwrap();
        assert!(src.contains("geglu("), "{src}");
    }
}
