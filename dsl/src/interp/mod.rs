//! The CPU interpreter: runs a [`Kernel`] on host buffers, exactly and deterministically, and
//! reports every rule a GPU would punish silently (out-of-bounds access, divergent barriers,
//! reads of uninitialised LDS, misaligned vector access, shuffles from inactive lanes) as a typed
//! [`InterpError`] that names the kernel, the memory object, the index, the block and the thread.
//!
//! It is the `cpu` backend of the runtime and the reference the GPU backends are compared with,
//! so it favours well-defined results over imitating any one GPU's undefined behaviour.
//!
//! # Execution model
//!
//! Blocks run one after another on the calling thread (grid order x fastest, then y, z). Inside a
//! block, all threads run in **lock step** under an *active mask*, the way a SIMT machine runs a
//! wave, but over the whole block at once: every IR node is interpreted once per block and its
//! work is a loop over the threads' values. Per-thread state is kept as columns (one `u32` bit
//! pattern per thread per vector lane: f16/bf16 bits, f32 bits, i32 two's complement, bool 0/1),
//! so the cost of interpretation (dispatch on node, op and type) is paid once per block, not once
//! per thread. This is what makes a 4096x4096 f32 RMSNorm (256-thread blocks) take about 0.4 s
//! on one core in release mode (`rmsnorm_speed` in `dsl/tests/interp.rs`).
//!
//! - `If` runs the then-branch with `mask & cond` and the else-branch with `mask & !cond`,
//!   skipping a branch no thread takes.
//! - `For` evaluates start, end and step once per thread, keeps a hidden per-thread counter (so,
//!   as in Rust, assigning the loop variable inside the body does not change the iteration), and
//!   iterates while any thread is still in range. A thread whose counter would overflow leaves
//!   the loop. A step that is not positive is an error.
//! - `While` re-evaluates its condition each iteration under the loop's mask.
//! - `Return` removes the thread from every enclosing mask for the rest of the kernel.
//! - `Barrier` requires the mask to be the whole block: a thread in the other branch of an `if`,
//!   one that has left a loop early, or one that has returned makes it an error (on a GPU that is
//!   a hang or undefined behaviour).
//! - Memory operations are applied per active thread in linear thread order (x fastest), so two
//!   threads storing to one element leave the later thread's value, and atomics are sequential
//!   in that order. When an access faults (out of bounds, misaligned), the threads before the
//!   faulting one have done their stores, as if the threads had run one by one.
//! - Global memory is the [`Arg`] buffers. LDS is per block and starts uninitialised; register
//!   arrays are per thread and start uninitialised; both track an init bit per element and a read
//!   of an unwritten element is an error.
//! - Matrix statements (`Mma`, fragment loads and stores) run per wave by the kernel target's
//!   fragment layouts; see `exec/matrix.rs`.
//! - Shuffles and wave reductions group threads into waves of `target.wave_size` consecutive
//!   linear thread ids (lane = linear id % wave size, also what `LaneId` returns).
//!   `Down`/`Up` reading past either end of the wave keep their own value; `Xor` and `Idx` naming
//!   a lane outside the wave are errors (hardware wraps or returns garbage, depending on vendor),
//!   as is reading from a lane that is not active. A wave reduction needs every lane of its wave
//!   active (and present: a block whose size is not a multiple of the wave size has a partial
//!   last wave, on which a reduction is an error). It combines values in a fixed butterfly order
//!   — `v = op(v, v from lane ^ 1)`, then `^ 2`, `^ 4`, … up to `wave_size / 2` — the order a
//!   GPU's xor-shuffle reduction uses, so every lane gets the bit-identical result.
//!
//! # Arithmetic
//!
//! Integer add/sub/mul/neg wrap; integer division or remainder by zero and shifts by 32 or more
//! (or by a negative i32) are errors. `i32::MIN / -1` wraps. f16 and bf16 arithmetic computes in
//! f32 and rounds back to the storage type after each operation (round to nearest even), which is
//! what one f16 GPU instruction does. Float to integer casts truncate toward zero and saturate
//! (NaN gives 0); see [`Expr::Cast`](crate::ir::Expr::Cast). `rsqrt` is `1 / sqrt` in f32 (more
//! accurate than GPU approximations; tests compare with a tolerance). `min`/`max` on floats
//! return the non-NaN operand (fminf/fmaxf). `Select`, `And` and `Or` evaluate both sides.
//!
//! Expressions are evaluated for inactive threads too (on whatever their columns hold), because
//! a tight loop without a mask test is faster; only errors and memory accesses look at the mask.
//!
//! # Ill-typed IR
//!
//! [`run`] first runs the verifier ([`crate::valid::validate`]), whose failure is
//! [`InterpError::Invalid`]. The executor still does not trust its input: every node's operand
//! types are checked again when it runs (once per block, so it costs nothing measurable), and
//! anything inconsistent (wrong operand types, a load from a value parameter, a store to a
//! read-only buffer, an out-of-range id) is [`InterpError::Malformed`], never a panic. That keeps
//! the interpreter safe even where the verifier has a gap.

mod buffer;
mod error;
mod exec;
mod ops;
#[cfg(test)]
mod tests;

pub use buffer::{Buffer, HostAllocError};
pub use error::{Dim3, InterpError};

use crate::ir::{Access, Const, Kernel, ParamKind};
use crate::target::Target;

/// One launch argument, matched by position to [`Kernel::params`].
#[derive(Debug)]
pub enum Arg<'a> {
    /// A buffer the kernel only reads. Allowed only for [`Access::Read`] parameters.
    Read(&'a Buffer),
    /// A buffer the kernel may write (also accepted for read-only parameters).
    Write(&'a mut Buffer),
    /// A scalar passed by value; its type must equal the parameter's.
    Value(Const),
}

impl Arg<'_> {
    /// The buffer behind a `Read` or `Write` argument.
    pub fn buffer(&self) -> Option<&Buffer> {
        match self {
            Arg::Read(b) => Some(b),
            Arg::Write(b) => Some(b),
            Arg::Value(_) => None,
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Arg::Read(_) => "read-only buffer",
            Arg::Write(_) => "writable buffer",
            Arg::Value(_) => "value",
        }
    }
}

/// Grid (blocks) and block (threads) dimensions of one launch, x first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchDims {
    pub grid: [u32; 3],
    pub block: [u32; 3],
}

impl LaunchDims {
    /// A one-dimensional launch of `grid` blocks of `block` threads.
    pub fn linear(grid: u32, block: u32) -> LaunchDims {
        LaunchDims {
            grid: [grid, 1, 1],
            block: [block, 1, 1],
        }
    }
}

/// Run `kernel` as if launched on `target` with `dims`, on the host buffers in `args`.
///
/// Validates the kernel ([`crate::valid::validate`]; cheap next to running it), checks the
/// arguments against the kernel's parameters (count, buffer vs value, element type,
/// writability) and the launch against the kernel's declared block size, the target's block and
/// LDS limits, before any thread runs. Then runs every block; the first run-time error stops the
/// launch (buffers keep what was written before it).
pub fn run(
    kernel: &Kernel,
    target: &Target,
    dims: LaunchDims,
    args: &mut [Arg<'_>],
) -> Result<(), InterpError> {
    crate::valid::validate(kernel)?;
    run_unvalidated(kernel, target, dims, args)
}

/// [`run`] without the verifier: the executor still checks every node it runs and reports
/// inconsistencies as [`InterpError::Malformed`]. Used by the tests of those checks.
pub(crate) fn run_unvalidated(
    kernel: &Kernel,
    target: &Target,
    dims: LaunchDims,
    args: &mut [Arg<'_>],
) -> Result<(), InterpError> {
    check_args(kernel, args)?;
    check_dims(kernel, target, &dims)?;
    exec::Exec::new(kernel, target, dims, args)?.run()
}

fn check_args(kernel: &Kernel, args: &[Arg<'_>]) -> Result<(), InterpError> {
    let k = || kernel.name.clone();
    if args.len() != kernel.params.len() {
        return Err(InterpError::ArgCount {
            kernel: k(),
            expected: kernel.params.len(),
            got: args.len(),
        });
    }
    for (index, (p, a)) in kernel.params.iter().zip(args).enumerate() {
        let name = || p.name.clone();
        match (&p.kind, a) {
            (ParamKind::Buffer { elem, access }, Arg::Read(_) | Arg::Write(_)) => {
                let got = a.buffer().map_or(*elem, Buffer::scalar);
                if got != *elem {
                    return Err(InterpError::ArgType {
                        kernel: k(),
                        name: name(),
                        index,
                        expected: *elem,
                        got,
                    });
                }
                if *access == Access::ReadWrite && matches!(a, Arg::Read(_)) {
                    return Err(InterpError::ArgReadOnly {
                        kernel: k(),
                        name: name(),
                        index,
                    });
                }
            }
            (ParamKind::Buffer { access, .. }, Arg::Value(_)) => {
                let expected = if *access == Access::Read {
                    "buffer"
                } else {
                    "writable buffer"
                };
                return Err(InterpError::ArgKind {
                    kernel: k(),
                    name: name(),
                    index,
                    expected,
                    got: a.describe(),
                });
            }
            (ParamKind::Value(s), Arg::Value(c)) => {
                if c.scalar() != *s {
                    return Err(InterpError::ArgType {
                        kernel: k(),
                        name: name(),
                        index,
                        expected: *s,
                        got: c.scalar(),
                    });
                }
            }
            (ParamKind::Value(_), _) => {
                return Err(InterpError::ArgKind {
                    kernel: k(),
                    name: name(),
                    index,
                    expected: "value",
                    got: a.describe(),
                });
            }
        }
    }
    Ok(())
}

fn check_dims(kernel: &Kernel, target: &Target, dims: &LaunchDims) -> Result<(), InterpError> {
    let bad = |reason: String| {
        Err(InterpError::Launch {
            kernel: kernel.name.clone(),
            reason,
        })
    };
    if kernel.target != target {
        return bad(format!(
            "it was built for {} and cannot run as {}: build it for the target it runs on",
            kernel.target.name, target.name
        ));
    }
    if dims.grid.contains(&0) || dims.block.contains(&0) {
        return bad(format!(
            "grid {:?} and block {:?} must have no zero dimension",
            dims.grid, dims.block
        ));
    }
    if let Some(bs) = kernel.block_size {
        if bs != dims.block {
            return bad(format!(
                "block {:?} differs from the kernel's declared block size {:?}",
                dims.block, bs
            ));
        }
    }
    let threads = dims.block.iter().map(|&d| d as u64).product::<u64>();
    if threads > target.max_block_threads as u64 {
        return bad(format!(
            "block {:?} has {threads} threads, more than {} allows ({})",
            dims.block, target.name, target.max_block_threads
        ));
    }
    let lds = kernel.lds_bytes() as u64;
    let regs: u64 = kernel.locals.iter().map(|a| a.len as u64).sum::<u64>() * threads;
    if regs > 1 << 28 {
        return bad(format!(
            "its register arrays take {regs} elements per block, too many to interpret"
        ));
    }
    if lds > target.lds_bytes_max as u64 {
        return bad(format!(
            "its LDS arrays take {lds} bytes, more than {} allows ({})",
            target.name, target.lds_bytes_max
        ));
    }
    Ok(())
}
