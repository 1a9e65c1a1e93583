//! The front end: the typed IR builder that `#[kernel]` expands into.
//!
//! A `#[kernel]` function becomes a plain Rust function of its comptime parameters that, when
//! called, records the kernel's IR. Runtime values are [`Val<T>`] handles (an expression id and
//! a phantom element type); comptime values are plain Rust values. Because runtime values are
//! typed, Rust's own type checker rejects DSL misuse (f16 + f32, a store to a `&[T]`, a float
//! index, an LDS array of runtime size) at compile time with the span of the offending tokens,
//! and `#[diagnostic::on_unimplemented]` turns the trait errors into sentences about the DSL.
//!
//! Control flow dispatches on the type of its condition: `if` on a `bool` is a Rust `if` (the
//! other branch is pruned), `if` on a `Val<bool>` records an IR `If`; a `for` over a comptime
//! range unrolls, over a runtime range records an IR `For`. The macro emits straight-line code
//! (no closures) so that both cases are the same Rust: see `front/control.rs` ([`for_range`], [`CondState`]).
//!
//! The builder state is thread-local, so that operator overloads (`a + b`) can record
//! expressions without a context argument; builds nest (a kernel may be built while another is
//! being built) through a stack.

mod control;
mod intrinsics;
mod matrix;
mod memory;
mod ops;
mod values;

pub use control::{for_range, for_range_step, ret, CondState, LoopRange, RuntimeLoop, WhileState};
pub use intrinsics::*;
pub use matrix::{
    async_commit, async_copy, async_wait, fence_async_lds, fragments, global_tile, lds_tiles,
    matrix_inst, matrix_inst_shaped, mma, warpgroup_accumulators, warpgroup_tiles, wgmma,
    wgmma_commit, wgmma_fence, wgmma_wait, Accum, Frag, Frags, LdsTiles, MatA, MatB, MatrixElem,
    Role, Tile, TileLayout, WgAcc, WgAccs,
};
pub use memory::{
    declare_param, load, local_array, shared, store, vload, vstore, ComptimeLen, Global, Index,
    KernelParam, Local, MemoryHandle, Read, ReadWrite, Shared, Writable,
};
pub use ops::{
    and, eq, ge, gt, le, lt, ne, or, Arith, CastTo, Compare, FloatLike, Integer, Logic, Signed,
};
pub use values::{
    bind, declare_mut, Bind, Elem, Float, IntoConfig, IntoVal, Numeric, Val, Var, Vector,
};

use crate::ir::{
    Block, ConfigValue, Expr, ExprId, ExprNode, Kernel, Stmt, Type, Var as IrVar, VarId,
};
use crate::target::Target;
use std::cell::RefCell;

/// Why a kernel could not be built. Most misuse is caught by Rust's type checker; these are the
/// few checks that need comptime values. A `#[kernel]` builder returns it as the `Err` of
/// `Result<Kernel, BuildError>`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BuildError {
    /// The comptime configuration is one the kernel cannot serve: the first message recorded by
    /// `build_error` or by a front-end check (a zero-length array, a missing matrix
    /// instruction, …). Displays as ``kernel `name`: message``.
    #[error("kernel `{kernel}`: {message}")]
    Invalid { kernel: String, message: String },
}

pub(crate) struct Builder {
    kernel: Kernel,
    /// Open statement blocks; the innermost is last. Index 0 is the kernel body.
    blocks: Vec<Block>,
    errors: Vec<String>,
}

thread_local! {
    static BUILDERS: RefCell<Vec<Builder>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on the innermost active builder.
///
/// Panics if no kernel is being built: DSL values only exist inside a `#[kernel]` expansion, so
/// reaching this without a builder is a bug in hand-written front-end code, not user input.
pub(crate) fn with<R>(f: impl FnOnce(&mut Builder) -> R) -> R {
    BUILDERS.with(|b| {
        let mut stack = b.borrow_mut();
        let builder = stack
            .last_mut()
            .expect("greta DSL value used outside a #[kernel] build");
        f(builder)
    })
}

impl Builder {
    pub(crate) fn expr(&mut self, expr: Expr, ty: Type) -> ExprId {
        let id = ExprId(self.kernel.exprs.len() as u32);
        self.kernel.exprs.push(ExprNode { expr, ty });
        id
    }

    pub(crate) fn new_var(&mut self, name: &str, ty: Type) -> VarId {
        let id = VarId(self.kernel.vars.len() as u32);
        self.kernel.vars.push(IrVar {
            name: name.to_string(),
            ty,
        });
        id
    }

    pub(crate) fn push(&mut self, stmt: Stmt) {
        self.blocks
            .last_mut()
            .expect("a block is always open")
            .push(stmt);
    }

    pub(crate) fn open_block(&mut self) {
        self.blocks.push(Vec::new());
    }

    pub(crate) fn close_block(&mut self) -> Block {
        assert!(
            self.blocks.len() > 1,
            "greta front end: block stack underflow"
        );
        self.blocks.pop().expect("checked above")
    }

    pub(crate) fn error(&mut self, message: String) {
        self.errors.push(message);
    }

    pub(crate) fn kernel_mut(&mut self) -> &mut Kernel {
        &mut self.kernel
    }

    pub(crate) fn target(&self) -> &'static Target {
        self.kernel.target
    }
}

/// Makes the kernel being built fail with `message` (its build returns
/// [`BuildError::Invalid`]): for comptime parameter combinations a kernel cannot serve, found
/// while building. The build goes on, so the first such message is the one reported.
///
/// Example: `if tile % 4 != 0 { build_error("tile must be a multiple of 4"); }` (`tile` a
/// comptime parameter; a kernel body takes no macros, so a `format!`ted message comes from a
/// plain Rust helper).
pub fn build_error(message: impl Into<String>) {
    let message = message.into();
    with(|b| b.error(message));
}

/// The target the kernel being built is for: its wave size, LDS limits and matrix
/// instructions, for choosing sizes at build time. A comptime value: reading it costs nothing
/// in the generated code.
///
/// Example: `#[comptime] let wave = target().wave_size;` (64 on gfx942, 32 on sm_90).
pub fn target() -> &'static Target {
    with(|b| b.target())
}

/// Builds one kernel for `target`: `body` records its statements. This is what a `#[kernel]`
/// function calls.
pub fn build_kernel(
    name: &str,
    target: &'static Target,
    config: Vec<(String, ConfigValue)>,
    body: impl FnOnce(),
) -> Result<Kernel, BuildError> {
    let builder = Builder {
        kernel: Kernel {
            name: name.to_string(),
            target,
            config,
            params: Vec::new(),
            vars: Vec::new(),
            shared: Vec::new(),
            locals: Vec::new(),
            exprs: Vec::new(),
            body: Vec::new(),
            block_size: None,
        },
        blocks: vec![Vec::new()],
        errors: Vec::new(),
    };
    BUILDERS.with(|b| b.borrow_mut().push(builder));
    body();
    let mut builder = BUILDERS.with(|b| b.borrow_mut().pop().expect("pushed above"));
    if let Some(message) = builder.errors.first() {
        return Err(BuildError::Invalid {
            kernel: name.to_string(),
            message: message.clone(),
        });
    }
    assert_eq!(
        builder.blocks.len(),
        1,
        "greta front end: unclosed block in `{name}`"
    );
    builder.kernel.body = builder.blocks.pop().expect("the body block");
    Ok(builder.kernel)
}
