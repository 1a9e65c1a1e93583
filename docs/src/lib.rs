//! The kernel author's guide ([`docs/README.md`](https://github.com/) is its index), as a crate.
//!
//! Each chapter is a Markdown file beside this crate, included below as a module's docs, so
//! `cargo test --workspace` (what `scripts/test` and CI run) compiles and runs every ```rust
//! block of the guide as a doctest: a sample that stops compiling, or whose assertion no longer
//! holds, fails the build. `tests/errors_table.rs` checks that the error table of
//! `errors.md` lists every trybuild case of `dsl/tests/ui/`.

#[doc = include_str!("../README.md")]
pub mod index {}

#[doc = include_str!("../dsl.md")]
pub mod dsl {}

#[doc = include_str!("../errors.md")]
pub mod errors {}

#[doc = include_str!("../adding-a-kernel.md")]
pub mod adding_a_kernel {}

#[doc = include_str!("../backends.md")]
pub mod backends {}
