//! Typed launches: a kernel's runtime arguments as a struct generated from its signature.
//!
//! `#[kernel]` generates, beside each kernel's builder, a struct with one field per runtime
//! (non-`#[comptime]`) parameter, in signature order, named after the kernel in CamelCase with
//! `Args` appended (`attn_decode` → `AttnDecodeArgs`). Buffer parameters (`&[T]`, `&mut [T]`)
//! are fields of the struct's type parameter `B`, whatever the caller passes buffers as (the
//! runtime's `KernelArg`); scalar parameters keep their Rust type (`u32`, `f32`, …):
//!
//! ```text
//! #[kernel]
//! fn scale<T: Float>(x: &[T], y: &mut [T], n: u32, s: f32, #[comptime] block: u32) { … }
//! // also generates:
//! struct ScaleArgs<B> { pub x: B, pub y: B, pub n: u32, pub s: f32 }
//! impl<B> KernelArgs<B> for ScaleArgs<B> { … }
//! ```
//!
//! A launch site builds the struct by field name, so the signature stays the one definition of
//! the argument list: a misspelt, missing or extra field, or a value of the wrong type, is a
//! compile error at the offending tokens, and a parameter the kernel gains or loses shows up at
//! every launch site. [`KernelArgs::into_args`] turns the struct into the positional list the
//! kernel takes. greta-dsl knows nothing of device memory, hence the buffer type parameter.
//!
//! The struct does not tell read-only from written buffers apart (both are `B`): the callers
//! have one buffer type, and the runtime checks every launch against the kernel's signature.
//! A kernel with a scalar parameter of a type other than f16, bf16, f32, i32, u32 or bool (a
//! generic `T`) gets no struct.

use crate::ir::Const;

/// One argument of a launch: a buffer, as the caller passes buffers, or a scalar value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg<B> {
    Buffer(B),
    Value(Const),
}

/// A kernel's runtime arguments, by name (implemented by the structs `#[kernel]` generates).
pub trait KernelArgs<B> {
    /// The kernel these are the arguments of (its IR name).
    const KERNEL: &'static str;
    /// The arguments in the kernel's signature order.
    fn into_args(self) -> Vec<Arg<B>>;
}
