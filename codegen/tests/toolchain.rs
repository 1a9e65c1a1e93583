//! Locating tools and reporting their absence or failure.

mod common;

use std::ffi::OsString;

use common::{compile_with, emit_with};
use greta_codegen::{CodegenError, Format, Toolchain};
use greta_dsl::Target;

fn env_with(
    overrides: &'static [(&'static str, &'static str)],
) -> impl Fn(&str) -> Option<OsString> {
    move |k: &str| match overrides.iter().find(|(name, _)| *name == k) {
        Some((_, v)) => Some(OsString::from(v)),
        None => std::env::var_os(k),
    }
}

#[test]
fn missing_clang_is_tool_missing() {
    let tools = Toolchain::locate_with(&env_with(&[("GRETA_CLANG", "/nonexistent/clang++")]));
    let k = common::kernels::math();
    let err = compile_with(&tools, &k, &Target::GFX942).unwrap_err();
    match &err {
        CodegenError::ToolMissing {
            tool,
            searched,
            hint,
        } => {
            assert_eq!(*tool, "clang++");
            assert!(
                searched.contains("GRETA_CLANG=/nonexistent/clang++"),
                "{searched}"
            );
            assert!(hint.contains("scripts/install-toolchain"));
        }
        other => panic!("expected ToolMissing, got {other}"),
    }
    // The HIP source needs no tools at all.
    assert!(emit_with(&tools, &k, &Target::SM_90, Format::Source).is_ok());
}

#[test]
fn missing_ptxas_only_stops_nvidia() {
    let tools = Toolchain::locate_with(&env_with(&[("GRETA_PTXAS", "/nonexistent/ptxas")]));
    let k = common::kernels::atomics();
    assert!(compile_with(&tools, &k, &Target::GFX942).is_ok());
    assert!(matches!(
        compile_with(&tools, &k, &Target::SM_90),
        Err(CodegenError::ToolMissing { tool: "ptxas", .. })
    ));
    // PTX alone needs only clang.
    assert!(emit_with(&tools, &k, &Target::SM_90, Format::Ptx).is_ok());
}

#[test]
fn failing_compile_reports_command_and_keeps_source() {
    // clang is asked to compile for an architecture it does not know.
    let mut bogus = Target::GFX942.clone();
    bogus.cpu = "gfx9999";
    let tools = Toolchain::from_env();
    let err = compile_with(&tools, &common::kernels::math(), &bogus).unwrap_err();
    match &err {
        CodegenError::ToolFailed {
            tool,
            command,
            stderr,
            input,
            ..
        } => {
            assert_eq!(*tool, "clang++");
            assert!(command.contains("--offload-arch=gfx9999"), "{command}");
            assert!(stderr.contains("gfx9999"), "{stderr}");
            let kept = input.as_ref().expect("failed source is kept");
            assert!(std::fs::read_to_string(kept)
                .unwrap()
                .contains("void rope_math("));
        }
        other => panic!("expected ToolFailed, got {other}"),
    }
}

#[test]
fn versions_are_reported() {
    let v = Toolchain::global().versions();
    let clang = v.clang.as_deref().expect("clang version");
    assert!(clang.contains("clang version"), "{clang}");
    assert!(v.key_for(&Target::GFX942, greta_codegen::Via::Hip).is_ok());
    assert!(v.key_for(&Target::GFX942, greta_codegen::Via::Llvm).is_ok());
    if let Some(p) = &v.ptxas {
        assert!(p.contains("release"), "{p}");
    }
}
