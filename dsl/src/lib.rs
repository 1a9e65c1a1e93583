//! greta-dsl: the kernel IR and everything that works on it without a GPU.
//!
//! - [`ir`]: the IR itself (types, expressions, statements, kernels);
//! - [`front`]: the builder the `#[kernel]` macro expands into (typed value handles);
//! - [`valid`]: the verifier that rejects ill-typed IR;
//! - [`print`]: a human-readable printer;
//! - [`interp`]: the CPU interpreter (the `cpu` backend);
//! - [`target`]: the one description of what differs between GPU targets.

pub mod front;
pub mod interp;
pub mod ir;
pub mod print;
pub mod target;
pub mod valid;

pub use target::{Family, Target};
