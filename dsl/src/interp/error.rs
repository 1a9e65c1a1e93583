//! The interpreter's error type.
//!
//! Every message names the kernel, and where it applies the memory object (argument, LDS or
//! register array), the element index, and the block and thread that went wrong, because the
//! interpreter exists mostly to tell a kernel author *where* their kernel breaks the rules that
//! a GPU would silently punish with garbage or a hang.

use crate::ir::Scalar;

/// A block or thread coordinate, printed as `(x, y, z)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dim3(pub [u32; 3]);

impl std::fmt::Display for Dim3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, {}, {})", self.0[0], self.0[1], self.0[2])
    }
}

/// Why a launch on the CPU interpreter failed. Launch checks (arguments, dimensions) fail before
/// any thread runs; run-time errors stop the launch at the first offending thread, in
/// deterministic order (blocks in order, threads in linear order), leaving the buffers written so
/// far.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum InterpError {
    #[error("kernel `{kernel}` takes {expected} arguments, got {got}")]
    ArgCount {
        kernel: String,
        expected: usize,
        got: usize,
    },

    #[error("kernel `{kernel}`: argument `{name}` (#{index}) is a {expected}, got a {got}")]
    ArgKind {
        kernel: String,
        name: String,
        index: usize,
        expected: &'static str,
        got: &'static str,
    },

    #[error(
        "kernel `{kernel}`: argument `{name}` (#{index}) has element type {expected}, got {got}"
    )]
    ArgType {
        kernel: String,
        name: String,
        index: usize,
        expected: Scalar,
        got: Scalar,
    },

    #[error(
        "kernel `{kernel}`: argument `{name}` (#{index}) is written by the kernel but was passed \
         as Arg::Read; pass it as Arg::Write"
    )]
    ArgReadOnly {
        kernel: String,
        name: String,
        index: usize,
    },

    #[error("kernel `{kernel}`: bad launch: {reason}")]
    Launch { kernel: String, reason: String },

    #[error(
        "kernel `{kernel}`: {access} of `{memory}` at index {index} (+{lanes} lanes) is out of \
         bounds (length {len}) in block {block}, thread {thread}"
    )]
    OutOfBounds {
        kernel: String,
        access: &'static str,
        memory: String,
        index: i64,
        lanes: u8,
        len: usize,
        block: Dim3,
        thread: Dim3,
    },

    #[error(
        "kernel `{kernel}`: {lanes}-lane {access} of `{memory}` at index {index} is misaligned \
         (index must be a multiple of {lanes}) in block {block}, thread {thread}"
    )]
    Misaligned {
        kernel: String,
        access: &'static str,
        memory: String,
        index: i64,
        lanes: u8,
        block: Dim3,
        thread: Dim3,
    },

    #[error(
        "kernel `{kernel}`: read of uninitialised element {index} of `{memory}` in block {block}, \
         thread {thread}"
    )]
    Uninitialised {
        kernel: String,
        memory: String,
        index: usize,
        block: Dim3,
        thread: Dim3,
    },

    #[error(
        "kernel `{kernel}`: barrier reached by {reached} of {block_threads} threads of block \
         {block}; thread {missing} did not ({why})"
    )]
    BarrierDivergence {
        kernel: String,
        reached: usize,
        block_threads: usize,
        block: Dim3,
        missing: Dim3,
        why: &'static str,
    },

    #[error("kernel `{kernel}`: integer {op} by zero in block {block}, thread {thread}")]
    DivisionByZero {
        kernel: String,
        op: &'static str,
        block: Dim3,
        thread: Dim3,
    },

    #[error(
        "kernel `{kernel}`: shift by {amount} (must be below 32) in block {block}, thread {thread}"
    )]
    ShiftOverflow {
        kernel: String,
        amount: i64,
        block: Dim3,
        thread: Dim3,
    },

    #[error(
        "kernel `{kernel}`: `for {var}` has step {step} (must be positive) in block {block}, \
         thread {thread}"
    )]
    BadStep {
        kernel: String,
        var: String,
        step: i64,
        block: Dim3,
        thread: Dim3,
    },

    #[error("kernel `{kernel}`: shuffle in block {block}, thread {thread} reads {detail}")]
    Shuffle {
        kernel: String,
        block: Dim3,
        thread: Dim3,
        detail: String,
    },

    #[error(
        "kernel `{kernel}`: wave reduction in block {block} with an incomplete wave {wave}: \
         thread {thread} {why}"
    )]
    WaveReduce {
        kernel: String,
        block: Dim3,
        wave: usize,
        thread: Dim3,
        why: &'static str,
    },

    #[error(
        "kernel `{kernel}`: {op} in block {block} needs every lane of wave {wave}: thread \
         {thread} {why}"
    )]
    WaveCollective {
        kernel: String,
        op: &'static str,
        block: Dim3,
        wave: usize,
        thread: Dim3,
        why: &'static str,
    },

    #[error("kernel `{kernel}`: in block {block}, thread {thread}: {detail}")]
    Async {
        kernel: String,
        block: Dim3,
        thread: Dim3,
        detail: String,
    },

    #[error("kernel `{kernel}`: {op} of `{memory}` in block {block}, thread {thread}: {detail}")]
    FragmentPlace {
        kernel: String,
        op: &'static str,
        memory: String,
        block: Dim3,
        thread: Dim3,
        detail: String,
    },

    /// The kernel failed [`crate::valid::validate`] (its message names the kernel and place).
    #[error("invalid kernel: {0}")]
    Invalid(#[from] crate::valid::ValidationError),

    /// Inconsistent IR met while running: only reachable through [`crate::interp`]'s internal
    /// entry that skips validation, or if the verifier misses a rule; kept so that the
    /// interpreter never panics on bad input.
    #[error("kernel `{kernel}`: malformed IR: {detail}")]
    Malformed { kernel: String, detail: String },
}
