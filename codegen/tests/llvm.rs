//! The LLVM IR lowering (`Via::Llvm`) over the whole kernel library: every kernel, at its
//! default configuration, compiles for every target it is available on with nothing in scratch
//! memory (gfx942) and no spills or stack (sm_90); the kernels with matrix statements contain
//! matrix instructions (v_mfma / mma.sync / wgmma); and the same kernel through HIP C++ takes
//! the same LDS (both sets of figures are printed, for comparison). Also: the writer's data
//! layouts are LLVM's.

use greta_codegen::{compile_with, Compiled, Toolchain, Via};
use greta_dsl::ir::Kernel;
use greta_dsl::{Family, Target};

/// Kernels that must use the matrix cores at their default configuration on every target they
/// are available on (guards the check below against a library that stopped using them).
const MATRIX_KERNELS: &[&str] = &["gemm", "gemm_q8", "gemm_wg", "gemm_wg_q8", "attn_mma"];

fn compile(k: &Kernel, target: &Target, via: Via) -> Compiled {
    compile_with(Toolchain::global(), k, target, via)
        .unwrap_or_else(|e| panic!("{} on {target} via {via}: {e}", k.name))
}

/// One line of figures: registers and scratch / spills, LDS, matrix instructions.
fn figures(c: &Compiled) -> String {
    let r = &c.resources;
    let o = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
    match (r.vgpr, r.regs) {
        (Some(_), _) => format!(
            "vgpr {:>3} agpr {:>3} sgpr {:>3} scratch {} lds {:>6} matrix {:>3}",
            o(r.vgpr),
            o(r.agpr),
            o(r.sgpr),
            o(r.scratch_bytes),
            r.lds_bytes,
            r.matrix_instructions
        ),
        _ => format!(
            "regs {:>3} spill {} stack {} lds {:>6} matrix {:>3}",
            o(r.regs),
            o(r.spill_bytes),
            o(r.stack_bytes),
            r.lds_bytes,
            r.matrix_instructions
        ),
    }
}

fn check_library(target: &'static Target) {
    let mut failures = Vec::new();
    let mut compiled = 0;
    for spec in greta_kernels::all() {
        if !(spec.available)(target) {
            continue;
        }
        let k = (spec.build)(&spec.default_config(), target)
            .unwrap_or_else(|e| panic!("{} for {target}: {e}", spec.name));
        let info = greta_dsl::valid::validate(&k).unwrap();
        let has_matrix = !info.matrix.is_empty() || !info.warpgroup.is_empty();
        if MATRIX_KERNELS.contains(&spec.name) {
            assert!(
                has_matrix,
                "{} has no matrix statements on {target}",
                spec.name
            );
        }
        let llvm = compile(&k, target, Via::Llvm);
        let hip = compile(&k, target, Via::Hip);
        compiled += 1;
        eprintln!(
            "{:<14} {target:<6} llvm: {}\n{:<14} {target:<6} hip:  {}",
            spec.name,
            figures(&llvm),
            "",
            figures(&hip)
        );
        let r = &llvm.resources;
        let mut fail = |what: String| failures.push(format!("{} on {target}: {what}", spec.name));
        match target.family {
            Family::Amdgcn => {
                if r.scratch_bytes != Some(0) {
                    fail(format!("scratch {:?}", r.scratch_bytes));
                }
            }
            Family::Nvptx => {
                if r.spill_bytes != Some(0) || r.stack_bytes.unwrap_or(0) != 0 {
                    fail(format!(
                        "spills {:?} stack {:?}",
                        r.spill_bytes, r.stack_bytes
                    ));
                }
            }
        }
        if r.lds_bytes != hip.resources.lds_bytes {
            fail(format!(
                "LDS {} via LLVM, {} via HIP",
                r.lds_bytes, hip.resources.lds_bytes
            ));
        }
        if has_matrix {
            if r.matrix_instructions == 0 {
                fail("no matrix instruction".into());
            }
            if let Some(ptx) = &llvm.ptx {
                let want = if info.warpgroup.is_empty() {
                    "mma.sync.aligned"
                } else {
                    "wgmma.mma_async.sync.aligned"
                };
                if !ptx.contains(want) {
                    fail(format!("no {want} in the PTX"));
                }
            }
        } else if r.matrix_instructions != 0 {
            fail(format!(
                "{} matrix instructions without matrix statements",
                r.matrix_instructions
            ));
        }
    }
    assert!(compiled >= 20, "only {compiled} kernels on {target}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_library_compiles_for_gfx942_via_llvm() {
    check_library(&Target::GFX942);
}

#[test]
fn the_library_compiles_for_sm_90_via_llvm() {
    check_library(&Target::SM_90);
}

#[test]
fn the_writers_data_layouts_are_llvms() {
    for target in Target::ALL {
        let fam = greta_codegen::back::llvm::Family::of(target.family);
        let llvm = greta_codegen::llvm::data_layout(target).unwrap();
        assert_eq!(fam.data_layout, llvm, "{target}");
        // The warpgroup engine's architecture-specific target has the same layout.
        if let Some(wg) = target.warpgroup {
            let mut t = (*target).clone();
            t.cpu = wg.arch;
            assert_eq!(greta_codegen::llvm::data_layout(&t).unwrap(), llvm);
        }
    }
}
