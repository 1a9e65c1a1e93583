//! Checks the GeGLU kernel on the CPU interpreter (both targets' wave sizes) against its f64
//! reference, then compiles it for gfx942 and sm_90 by each lowering and prints what the tools
//! report. Exits non-zero if a check fails; a compile whose tools are missing is reported and
//! skipped (`cargo test` asserts the compiles).
//!
//! `cargo run -p greta-example-geglu --release`

use greta_dsl::ir::Scalar;
use greta_dsl::Target;
use greta_example_geglu::{check, compile, default_vec, describe};
use greta_runtime::cpu::CpuBackend;
use greta_runtime::CodegenError;
use greta_runtime::Via;

fn main() -> anyhow::Result<()> {
    println!("GeGLU on the CPU interpreter, against the f64 reference:");
    for target in [&Target::GFX942, &Target::SM_90] {
        let backend = CpuBackend::new(target);
        println!("  as {target} ({}-wide waves)", target.wave_size);
        for dtype in [Scalar::F32, Scalar::F16, Scalar::BF16] {
            let vec = default_vec(dtype);
            // 1 and 7: a single partial vector; 4099: whole vectors and a partial one.
            for n in [1, 7, 4099] {
                println!("    {}", check(&backend, dtype, vec, n)?);
            }
        }
    }

    println!("Compiled (the widest vector per element type):");
    let vias: &[Via] = if cfg!(feature = "llvm") {
        &[Via::Hip, Via::Llvm]
    } else {
        &[Via::Hip]
    };
    for target in [&Target::GFX942, &Target::SM_90] {
        for &via in vias {
            for dtype in [Scalar::F32, Scalar::F16, Scalar::BF16] {
                let what = format!("{target:<6} via {:<4} {:>4}", via.name(), dtype.name());
                match compile(target, via, dtype) {
                    Ok(c) => println!("  {what}: {}", describe(&c)),
                    Err(e) if is_missing_tool(&e) => println!("  {what}: skipped: {e:#}"),
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

fn is_missing_tool(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<CodegenError>(),
        Some(CodegenError::ToolMissing { .. })
    )
}
