//! Compile-fail tests: DSL misuse is rejected when the kernel is *compiled*, never when it is
//! built or run, and the error points at the author's offending tokens.
//!
//! Each `tests/ui/NAME.rs` is a small kernel with exactly one mistake; `NAME.stderr` is the
//! exact rustc output it must produce, message and caret. Three kinds of error are covered:
//! - syntax outside the DSL subset (closures, `match`, `loop`, `break`, `if let`, macros, an
//!   `if` used as a value, `return` of a value, assignment to an immutable `let`), rejected by
//!   the `#[kernel]`/`#[device]` macro with the span of the construct;
//! - typing mistakes (mixed precision, a store to a `&[T]`, a float index, a runtime LDS size,
//!   an unknown or misused intrinsic, a parameter type with no GPU meaning), rejected by
//!   rustc's type checker on the typed front end, with `#[diagnostic::on_unimplemented]`
//!   messages written in the DSL's terms;
//! - launches that do not fit the kernel's signature (`launch_*.rs`): a misspelt, missing or
//!   mistyped field of the argument struct `#[kernel]` generates, rejected by rustc at the
//!   field.
//!
//! The `.stderr` files depend on the rustc version (the toolchain is pinned). After an
//! intended change to a message, regenerate them with
//! `TRYBUILD=overwrite cargo test -p greta-dsl --test ui` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
