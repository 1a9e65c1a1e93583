//! Matrix statements through the real toolchain, by both lowerings (HIP C++ and LLVM IR): every
//! instruction of both targets compiles to its matrix instruction (counted in the code object /
//! PTX), fragments from LDS use `ldmatrix` on sm_90, nothing spills, and more LDS than sm_90's
//! static 48 KiB becomes dynamic LDS.

use greta_codegen::{compile, compile_with, emit, emit_with, Compiled, Format, Toolchain, Via};
use greta_dsl::ir::Scalar;
use greta_dsl::prelude::*;

/// `reps` products of one A tile (through swizzled LDS) and one transposed B, accumulated and
/// stored as a fragment; `pad` extra LDS elements (to force dynamic LDS on sm_90).
#[kernel]
fn tile_mma<T: MatrixElem>(
    a: &[T],
    b: &[T],
    d: &mut [f32],
    #[comptime] m: u32,
    #[comptime] n: u32,
    #[comptime] k: u32,
    #[comptime] pad: u32,
) {
    block_size(target().wave_size);
    let inst = matrix_inst_shaped::<T>(m, n, k);
    let tiles = lds_tiles::<T>(1, m, k, TileLayout::swizzled_for(target(), T::SCALAR, k));
    let tile = tiles.stage(0u32);
    let extra = shared::<f32>(pad);
    for r in (thread_idx().x..m).step_by(target().wave_size) {
        for c in 0..k {
            tile.store(r, c, a[r * k + c]);
        }
    }
    extra[thread_idx().x] = 0.0f32;
    barrier();
    let fa = fragments::<T, MatA>(inst, 1);
    let fb = fragments::<T, MatB>(inst, 1);
    let acc = fragments::<f32, Accum>(inst, 1);
    acc.fill(extra[0]);
    fa.at(0).load(&tile, 0u32, 0u32);
    fb.at(0)
        .load_transposed(&global_tile(&b, 0u32, k), 0u32, 0u32);
    for _i in 0..4 {
        mma(fa.at(0), fb.at(0), acc.at(0), acc.at(0));
    }
    acc.at(0).store(&global_tile(&d, 0u32, n), 0u32, 0u32);
}

fn build(inst: &MatrixInst, target: &'static Target, pad: u32) -> Kernel {
    let s = inst.shape;
    match inst.ab {
        Scalar::F16 => tile_mma::<f16>(target, s.m, s.n, s.k, pad),
        _ => tile_mma::<bf16>(target, s.m, s.n, s.k, pad),
    }
    .unwrap()
}

fn compile_via(k: &Kernel, target: &Target, via: Via) -> Compiled {
    compile_with(Toolchain::global(), k, target, via)
        .unwrap_or_else(|e| panic!("{} on {target} via {via}: {e}", k.name))
}

fn check_every_instruction(via: Via) {
    for target in Target::ALL {
        for inst in target.matrix {
            let k = build(inst, target, 64);
            let c = compile_via(&k, target, via);
            let r = &c.resources;
            let what = format!("{} on {target} via {via}: {r:?}", inst.name);
            assert_eq!(r.matrix_instructions, 4, "{what}");
            assert_eq!(r.scratch_bytes.unwrap_or(0), 0, "{what}");
            assert_eq!(r.spill_bytes.unwrap_or(0), 0, "{what}");
            assert_eq!(r.stack_bytes.unwrap_or(0), 0, "{what}");
            if target.family == greta_dsl::Family::Nvptx {
                let ptx = c.ptx.as_deref().unwrap();
                assert!(
                    ptx.contains("ldmatrix.sync.aligned.m8n8.x4.shared.b16"),
                    "{ptx}"
                );
                assert!(ptx.contains(inst.name), "{what}");
            } else {
                let asm = emit_with(Toolchain::global(), &k, target, via, Format::Asm).unwrap();
                assert!(asm.contains(inst.name), "{what}");
            }
        }
    }
}

#[test]
fn every_instruction_compiles_to_its_matrix_instruction() {
    check_every_instruction(Via::Hip);
}

#[test]
fn every_instruction_compiles_to_its_matrix_instruction_via_llvm() {
    check_every_instruction(Via::Llvm);
}

#[test]
fn lds_over_the_static_limit_is_dynamic_on_sm_90() {
    let t = &Target::SM_90;
    // 40 KiB of f32 padding + the tile: over 48 KiB only with 16 KiB more.
    let inst = &t.matrix[0];
    let small = build(inst, t, 10 * 1024);
    assert!(small.dynamic_lds().is_none());
    let big = build(inst, t, 16 * 1024);
    let dynamic = big.dynamic_lds().expect("over 48 KiB");
    assert!(dynamic.bytes > 48 * 1024);
    let src = emit(&big, t, Format::Source).unwrap();
    assert!(src.contains("extern __shared__"), "{src}");
    let c = compile(&big, t).unwrap();
    assert_eq!(c.resources.spill_bytes, Some(0));
    // The same kernel is over gfx942's 64 KiB only beyond it.
    let amd = build(&Target::GFX942.matrix[0], &Target::GFX942, 15 * 1024);
    assert!(amd.dynamic_lds().is_none());
    assert!(emit(&amd, &Target::GFX942, Format::Source)
        .unwrap()
        .contains("__shared__ __attribute__((aligned(16))) f32"));
}

#[test]
fn lds_over_the_static_limit_is_dynamic_on_sm_90_via_llvm() {
    let t = &Target::SM_90;
    let big = build(&t.matrix[0], t, 16 * 1024);
    let dynamic = big.dynamic_lds().expect("over 48 KiB");
    let ir = greta_codegen::emit_source(&big, t, Via::Llvm).unwrap();
    assert!(
        ir.contains("@greta_lds_dynamic = external addrspace(3) global [0 x i8]"),
        "{ir}"
    );
    let c = compile_via(&big, t, Via::Llvm);
    assert_eq!(c.resources.spill_bytes, Some(0));
    assert_eq!(c.resources.lds_bytes, dynamic.bytes, "{:?}", c.resources);
    let ptx = c.ptx.as_deref().unwrap();
    assert!(ptx.contains(".extern .shared"), "{ptx}");
    assert_eq!(c.resources.matrix_instructions, 4);
    // Under the limit, the arrays are static LDS globals.
    let small = build(&t.matrix[0], t, 10 * 1024);
    let ir = greta_codegen::emit_source(&small, t, Via::Llvm).unwrap();
    assert!(!ir.contains("greta_lds_dynamic"));
    let c = compile_via(&small, t, Via::Llvm);
    assert_eq!(c.resources.lds_bytes, small.shared_bytes());
}

#[test]
fn a_kernel_compiles_only_for_its_target() {
    let k = build(&Target::GFX942.matrix[0], &Target::GFX942, 64);
    let err = compile(&k, &Target::SM_90).unwrap_err().to_string();
    assert!(
        err.contains("built for gfx942 and cannot be compiled for sm_90"),
        "{err}"
    );
}

/// One warpgroup's `64 × n` product over a 64-deep K-tile, both tiles copied asynchronously.
#[kernel]
fn wg_tile(x: &[f16], w: &[f16], d: &mut [f32], #[comptime] n: u32) {
    block_size(128);
    let a = warpgroup_tiles::<f16>(1, 64).stage(0u32);
    let b = warpgroup_tiles::<f16>(1, n).stage(0u32);
    let tid = thread_idx().x;
    for i in (tid..64u32 * 8u32).step_by(128u32) {
        async_copy::<8, _, _>(&a, i / 8u32, i % 8u32 * 8u32, &x, i * 8u32, true);
    }
    for i in (tid..n * 8u32).step_by(128u32) {
        async_copy::<8, _, _>(&b, i / 8u32, i % 8u32 * 8u32, &w, i * 8u32, true);
    }
    async_commit();
    async_wait(0);
    fence_async_lds();
    barrier();
    let acc = warpgroup_accumulators(n, 1);
    acc.fill(0.0f32);
    wgmma_fence();
    for kk in 0..4u32 {
        wgmma(acc.at(0), &a, 0u32, kk * 16u32, &b, 0u32, kk * 16u32);
    }
    wgmma_commit();
    wgmma_wait(0);
    for e in 0..acc.elems() {
        let (r, c) = acc.at(0).coord(e);
        d[r * n + c] = acc.at(0).get(e);
    }
}

fn check_warpgroup_engine(via: Via) {
    let t = &Target::SM_90;
    for n in [64, 256] {
        let k = wg_tile(t, n).unwrap();
        let c = compile_via(&k, t, via);
        let ptx = c.ptx.as_deref().unwrap();
        assert!(
            ptx.contains(".target sm_90a"),
            "needs the architecture-specific target"
        );
        assert!(ptx.contains(&format!(
            "wgmma.mma_async.sync.aligned.m64n{n}k16.f32.f16.f16"
        )));
        assert!(ptx.contains("cp.async.cg.shared.global"));
        assert!(ptx.contains("cp.async.commit_group"));
        assert!(ptx.contains("cp.async.wait_group 0"));
        assert!(ptx.contains("fence.proxy.async.shared::cta"));
        assert!(ptx.contains("wgmma.fence.sync.aligned"));
        assert!(ptx.contains("wgmma.commit_group.sync.aligned"));
        assert!(ptx.contains("wgmma.wait_group.sync.aligned 0"));
        assert_eq!(c.resources.matrix_instructions, 4, "{:?}", c.resources);
        assert_eq!(c.resources.spill_bytes, Some(0), "{:?}", c.resources);
        assert_eq!(c.resources.stack_bytes.unwrap_or(0), 0, "{:?}", c.resources);
    }
    // Asynchronous copies are ordinary copies on gfx942, which compiles the copy loop.
    assert!(wg_tile(&Target::GFX942, 64).is_err());
}

#[test]
fn the_warpgroup_engine_compiles_for_sm_90a() {
    check_warpgroup_engine(Via::Hip);
}

#[test]
fn the_warpgroup_engine_compiles_for_sm_90a_via_llvm() {
    check_warpgroup_engine(Via::Llvm);
    // The effective target's CPU reaches the module and the target machine.
    let k = wg_tile(&Target::SM_90, 64).unwrap();
    let ir = greta_codegen::emit_source(&k, &Target::SM_90, Via::Llvm).unwrap();
    assert!(ir.contains("\"target-cpu\"=\"sm_90a\""), "{ir}");
}
