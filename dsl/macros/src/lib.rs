//! `#[kernel]` and `#[device]`: a Rust function written in greta's DSL becomes a Rust function
//! that builds the kernel's IR.
//!
//! ```ignore
//! #[kernel]
//! fn scale<T: Float>(x: &[T], y: &mut [T], n: u32, s: f32, #[comptime] block: u32) {
//!     block_size(block);
//!     let i = block_idx().x * block + thread_idx().x;
//!     if i < n {
//!         y[i] = T::from_f32(x[i].to_f32() * s);
//!     }
//! }
//! // expands to: fn scale<T: Float>(target: &'static Target, block: u32)
//! //                  -> Result<Kernel, BuildError>
//! // and, for launching it, the runtime parameters by name (`greta_dsl::launch`):
//! //     struct ScaleArgs<B> { pub x: B, pub y: B, pub n: u32, pub s: f32 }
//! //     impl<B> greta_dsl::launch::KernelArgs<B> for ScaleArgs<B> { .. }
//! ```
//!
//! The argument struct is named after the kernel in CamelCase with `Args` appended
//! (`attn_decode` → `AttnDecodeArgs`), has the kernel's visibility, and holds one public field
//! per runtime (non-`#[comptime]`) parameter, in signature order: buffers (`&[T]`, `&mut [T]`)
//! of the caller's buffer type `B`, scalars of their own type. `KernelArgs::into_args` gives
//! the positional list; the kernel's signature stays the one definition of it.
//!
//! The expansion keeps the body's shape: the macro only rewrites what Rust cannot overload
//! (indexing into loads and stores, comparisons, `&&`/`||`, `as`, assignments to runtime
//! variables, `if`/`for`/`while`/`return`) into calls of `greta_dsl::front`, and leaves typing to
//! Rust. So misuse is reported by rustc at the offending tokens: each rewritten call carries the
//! span of the source expression. Syntax outside the DSL subset (closures, `match`, `loop`,
//! `break`, macros, items, …) is rejected here with the span of the construct.
//!
//! The DSL subset, for reference:
//! - `let x = e;` binds (runtime values get a named variable), `let mut x = e;` declares a
//!   runtime variable, `#[comptime] let [mut] x = e;` is plain Rust evaluated while building.
//! - `if`/`else` on a `bool` (comptime, pruned) or `Val<bool>` (runtime); `for i in a..b` and
//!   `for i in (a..b).step_by(s)` (comptime bounds unroll, runtime bounds loop); `for x in
//!   <any Rust iterator>` unrolls; `while cond { }`; `return;` ends the thread.
//! - Expressions: literals, paths, calls, method calls, fields, `[]`, arithmetic, comparisons,
//!   `&&`, `||`, `!`, `-`, `as`, `&x`, arrays and tuples.

mod body;
mod launch;
mod signature;

use proc_macro::TokenStream;

/// Turns a kernel written in the DSL into a function of its `#[comptime]` parameters that
/// returns the kernel's IR (`Result<greta_dsl::ir::Kernel, greta_dsl::front::BuildError>`),
/// and a struct of its runtime parameters for launching it (`{Kernel}Args<B>`, see the crate
/// docs).
#[proc_macro_attribute]
pub fn kernel(attr: TokenStream, item: TokenStream) -> TokenStream {
    signature::expand_kernel(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// A helper callable from kernels (block reductions, index math): its body is written in the
/// DSL and recorded inline into the calling kernel. Parameters are DSL values (`Val<f32>`),
/// memory handles or `#[comptime]` Rust values; it may return a value.
#[proc_macro_attribute]
pub fn device(attr: TokenStream, item: TokenStream) -> TokenStream {
    signature::expand_device(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
