//! `GRETA_CLANG` pointing nowhere makes the process-wide toolchain report ToolMissing. Its own
//! test binary, because it changes the process environment before first use.

mod common;

#[test]
fn greta_clang_to_nonexistent_path() {
    std::env::set_var("GRETA_CLANG", "/definitely/not/here/clang++");
    let err = common::compile(&common::kernels::math(), &greta_dsl::Target::SM_90).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            greta_codegen::CodegenError::ToolMissing {
                tool: "clang++",
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("GRETA_CLANG=/definitely/not/here/clang++"),
        "{msg}"
    );
    assert!(msg.contains("run scripts/install-toolchain"), "{msg}");
}
