//! The kernel IR: the centre of greta. Frontends (the `#[kernel]` macro through [`crate::front`])
//! build it; the verifier ([`crate::valid`]) checks it; backends (the CPU interpreter, HIP C++ and
//! LLVM codegen) consume it.
//!
//! Shape (after naga): a kernel owns an arena of typed expressions and a tree of structured
//! statements that refer to expressions by [`ExprId`]. Expressions are pure except for memory
//! loads, which read memory at the point where the statement that uses them runs; the front end
//! binds every named runtime value to a variable (`Let`), so a load is never reordered across a
//! store by sharing. Control flow is structured (if/for/while/return), which keeps the
//! interpreter's lock-step execution and the C++ printer simple, and is all GPU kernels need.
//!
//! The IR is target independent. A kernel may read the wave size as a value ([`Builtin::WaveSize`])
//! but never sizes memory by it: the target decides it at code generation or interpretation time.

mod types;

pub use types::{Scalar, Type};

use crate::target::Target;
use std::fmt;

/// Index of an expression in [`Kernel::exprs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExprId(pub u32);

/// Index of a variable in [`Kernel::vars`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VarId(pub u32);

/// Index of a parameter in [`Kernel::params`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub u32);

/// Index of an LDS array in [`Kernel::shared`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SharedId(pub u32);

/// Index of a per-thread register array in [`Kernel::locals`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalId(pub u32);

/// Whether a kernel may write a global buffer. Read-only buffers let backends use non-coherent
/// (read-only cache) loads and let the front end reject stores at Rust compile time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    ReadWrite,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ParamKind {
    /// A global-memory buffer of `elem` scalars (`&[T]` / `&mut [T]` in the DSL).
    Buffer { elem: Scalar, access: Access },
    /// A scalar passed by value.
    Value(Scalar),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    pub kind: ParamKind,
}

/// An LDS (shared memory) array: one per block, `len` elements, sized at IR-build time, its
/// start aligned to `align` bytes (a power of two, at least 16; tiles the warpgroup matrix
/// engine reads with a 128-byte swizzle need 1024).
#[derive(Clone, Debug, PartialEq)]
pub struct SharedArray {
    pub name: String,
    pub elem: Scalar,
    pub len: u32,
    pub align: u32,
}

/// The alignment of an LDS array that asks for nothing more.
pub const LDS_ALIGN: u32 = 16;

impl SharedArray {
    /// Bytes of the array (saturating: a length no GPU could hold stays huge, not wrapped).
    pub fn size_bytes(&self) -> u32 {
        self.elem.size_bytes().saturating_mul(self.len)
    }
}

/// A per-thread array of comptime length, meant to live in registers (indexed by comptime
/// indices after unrolling; a runtime index is allowed but may spill on GPUs).
#[derive(Clone, Debug, PartialEq)]
pub struct LocalArray {
    pub name: String,
    pub elem: Scalar,
    pub len: u32,
}

/// A mutable per-thread variable. Every runtime `let` of the DSL becomes one.
#[derive(Clone, Debug, PartialEq)]
pub struct Var {
    pub name: String,
    pub ty: Type,
}

/// Where a load, store or atomic goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Memory {
    Global(ParamId),
    Shared(SharedId),
    Local(LocalId),
}

/// A literal value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Const {
    F16(half::f16),
    BF16(half::bf16),
    F32(f32),
    I32(i32),
    U32(u32),
    Bool(bool),
}

impl Const {
    pub fn scalar(self) -> Scalar {
        match self {
            Const::F16(_) => Scalar::F16,
            Const::BF16(_) => Scalar::BF16,
            Const::F32(_) => Scalar::F32,
            Const::I32(_) => Scalar::I32,
            Const::U32(_) => Scalar::U32,
            Const::Bool(_) => Scalar::Bool,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Axis {
    X,
    Y,
    Z,
}

impl Axis {
    pub fn name(self) -> &'static str {
        match self {
            Axis::X => "x",
            Axis::Y => "y",
            Axis::Z => "z",
        }
    }
    pub fn index(self) -> usize {
        match self {
            Axis::X => 0,
            Axis::Y => 1,
            Axis::Z => 2,
        }
    }
}

/// Per-thread values provided by the hardware. All are `u32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Builtin {
    ThreadIdx(Axis),
    BlockIdx(Axis),
    BlockDim(Axis),
    GridDim(Axis),
    /// Lane within the wave: `thread_idx().x % wave_size` for one-dimensional blocks, and the
    /// hardware lane for others (threads are numbered x fastest).
    LaneId,
    /// 64 on gfx942, 32 on sm_90; decided by the target.
    WaveSize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// Arithmetic negation (float, i32).
    Neg,
    /// Logical not (bool) or bitwise not (integers).
    Not,
    Abs,
    Exp2,
    Log2,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Sin,
    Cos,
    Tanh,
    Floor,
}

impl UnaryOp {
    /// Ops that only make sense on floats.
    pub fn is_float_math(self) -> bool {
        !matches!(self, UnaryOp::Neg | UnaryOp::Not | UnaryOp::Abs)
    }

    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Not => "not",
            UnaryOp::Abs => "abs",
            UnaryOp::Exp2 => "exp2",
            UnaryOp::Log2 => "log2",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Floor => "floor",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Min,
    Max,
    BitAnd,
    BitOr,
    BitXor,
    Shl,
    Shr,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// Logical and/or on bool. Both sides are evaluated (no short circuit): expressions have no
    /// side effects that could tell the difference, and a load on the right-hand side must be
    /// in bounds whatever the left says.
    And,
    Or,
}

impl BinaryOp {
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
        )
    }

    pub fn is_logical(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or)
    }

    pub fn is_bitwise(self) -> bool {
        matches!(
            self,
            BinaryOp::BitAnd | BinaryOp::BitOr | BinaryOp::BitXor | BinaryOp::Shl | BinaryOp::Shr
        )
    }

    /// The infix symbol, or `None` for ops printed as calls (min, max).
    pub fn symbol(self) -> Option<&'static str> {
        Some(match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
            BinaryOp::BitAnd => "&",
            BinaryOp::BitOr => "|",
            BinaryOp::BitXor => "^",
            BinaryOp::Shl => "<<",
            BinaryOp::Shr => ">>",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::And => "&&",
            BinaryOp::Or => "||",
            BinaryOp::Min | BinaryOp::Max => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Min => "min",
            BinaryOp::Max => "max",
            other => other.symbol().unwrap_or("?"),
        }
    }
}

/// Cross-lane data movement within one wave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShuffleMode {
    /// Read from lane `lane_id ^ arg`.
    Xor,
    /// Read from lane `lane_id + arg`; lanes past the wave keep their own value.
    Down,
    /// Read from lane `lane_id - arg`; lanes before 0 keep their own value.
    Up,
    /// Read from lane `arg`.
    Idx,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AtomicOp {
    Add,
    Max,
}

/// The shape of one matrix-core operation: `D (m × n) = A (m × k) · B (k × n) + C`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MmaShape {
    pub m: u32,
    pub n: u32,
    pub k: u32,
}

impl MmaShape {
    pub const fn new(m: u32, n: u32, k: u32) -> MmaShape {
        MmaShape { m, n, k }
    }
}

impl std::fmt::Display for MmaShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "m{}n{}k{}", self.m, self.n, self.k)
    }
}

/// Which matrix of a matrix-core operation a fragment holds. C and D share the accumulator
/// layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    A,
    B,
    Acc,
}

impl Operand {
    pub fn name(self) -> &'static str {
        match self {
            Operand::A => "A",
            Operand::B => "B",
            Operand::Acc => "accumulator",
        }
    }
}

/// A fragment: `len` consecutive elements of a per-thread register array, starting at
/// `offset` (the length comes from the instruction's layout for the operand).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragRef {
    pub local: LocalId,
    pub offset: u32,
}

/// An XOR swizzle of a row-major tile: within row `r`, the groups of `chunk` consecutive
/// elements are permuted by `group ^ ((r / row_div) % period)`, so that the same column of
/// consecutive rows falls into different LDS banks. `period == 1` is no swizzle. All three are
/// powers of two; the tile's row must hold a multiple of `chunk · period` elements for the
/// permutation to stay inside the row (the DSL's tile type checks that).
///
/// Example: `TileLayout::Swizzled(Swizzle { chunk: 8, row_div: 2, period: 4 })` (f16 rows of
/// 32 elements on gfx942; `TileLayout::swizzled_for` computes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Swizzle {
    pub chunk: u32,
    pub row_div: u32,
    pub period: u32,
}

impl Swizzle {
    pub const NONE: Swizzle = Swizzle {
        chunk: 1,
        row_div: 1,
        period: 1,
    };

    pub fn is_none(&self) -> bool {
        self.period == 1
    }

    /// The column where element `(row, col)` of the logical tile is stored.
    pub fn apply(&self, row: u32, col: u32) -> u32 {
        let group = col / self.chunk;
        let swizzled = group ^ ((row / self.row_div) % self.period);
        swizzled * self.chunk + col % self.chunk
    }
}

/// A row-major tile in memory: element `(r, c)` is at `base + r · stride + swizzle(r, c)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TileRef {
    pub mem: Memory,
    pub base: ExprId,
    pub stride: ExprId,
    pub swizzle: Swizzle,
}

/// How a fragment is placed in a tile: its element `(i, j)` of the operand's matrix is tile
/// element `(row + i, col + j)`, or `(row + j, col + i)` when `transposed` (B stored as `n × k`,
/// the GGUF weight layout, is a transposed B).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragPlace {
    pub tile: TileRef,
    pub row: ExprId,
    pub col: ExprId,
    pub transposed: bool,
}

/// Operations that order or complete asynchronous work: global→LDS copies, and the warpgroup
/// matrix engine, which runs asynchronously to the threads that issue it (sm_90's `wgmma`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncOp {
    /// Closes this thread's group of asynchronous copies issued since the last commit.
    AsyncCommit,
    /// Waits until at most this many of this thread's committed copy groups are in flight.
    AsyncWait(u32),
    /// Makes this thread's LDS writes (ordinary stores, completed copies) visible to the matrix
    /// engine's reads of LDS; needed before a barrier that precedes a `WarpgroupMma` reading
    /// them (`fence.proxy.async.shared::cta`).
    ProxyFence,
    /// Orders this warpgroup's accumulator registers before the next `WarpgroupMma`s
    /// (`wgmma.fence`).
    MmaFence,
    /// Closes the warpgroup's group of `WarpgroupMma`s issued since the last commit.
    MmaCommit,
    /// Waits until at most this many of the warpgroup's committed `WarpgroupMma` groups are in
    /// flight; only then may their accumulators be read, and their LDS tiles be overwritten.
    MmaWait(u32),
}

impl SyncOp {
    pub fn name(self) -> String {
        match self {
            SyncOp::AsyncCommit => "async_commit()".into(),
            SyncOp::AsyncWait(n) => format!("async_wait({n})"),
            SyncOp::ProxyFence => "fence_async_lds()".into(),
            SyncOp::MmaFence => "wgmma_fence()".into(),
            SyncOp::MmaCommit => "wgmma_commit()".into(),
            SyncOp::MmaWait(n) => format!("wgmma_wait({n})"),
        }
    }
}

/// Fragment accesses need `base`, `stride` and the placement's memory column to be multiples
/// of this many elements, so that every lowering (NVIDIA's `ldmatrix` reads 16-byte rows) is
/// valid; the interpreter checks it.
pub const FRAGMENT_ALIGN: u32 = 8;

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Const(Const),
    /// The value of a scalar parameter.
    Param(ParamId),
    Var(VarId),
    Builtin(Builtin),
    Unary(UnaryOp, ExprId),
    Binary(BinaryOp, ExprId, ExprId),
    /// `a * b + c` with one rounding.
    Fma(ExprId, ExprId, ExprId),
    /// `cond ? a : b`; both sides are evaluated.
    Select {
        cond: ExprId,
        a: ExprId,
        b: ExprId,
    },
    /// Numeric conversion to `to` (lane-wise for vectors). Float to int truncates toward zero;
    /// float to f16/bf16 rounds to nearest even.
    Cast {
        to: Scalar,
        value: ExprId,
    },
    /// Load `lanes` consecutive elements starting at element `index`. A vector load requires
    /// `index` to be a multiple of `lanes` (the interpreter checks it; GPUs need the alignment).
    Load {
        mem: Memory,
        index: ExprId,
        lanes: u8,
    },
    /// One lane of a vector.
    Extract {
        vector: ExprId,
        lane: u8,
    },
    /// A vector built from scalars of one type.
    Compose(Vec<ExprId>),
    /// Read `value` from another lane of the same wave.
    Shuffle {
        mode: ShuffleMode,
        value: ExprId,
        lane: ExprId,
    },
    /// Reduce `value` over all lanes of the wave; every lane gets the result. All lanes of the
    /// wave must be active.
    WaveReduce {
        op: ReduceOp,
        value: ExprId,
    },
}

/// An expression with the type the front end gave it (the verifier recomputes and compares).
#[derive(Clone, Debug, PartialEq)]
pub struct ExprNode {
    pub expr: Expr,
    pub ty: Type,
}

pub type Block = Vec<Stmt>;

#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// Define `var` (its first and only declaration) with an initial value.
    Let {
        var: VarId,
        value: ExprId,
    },
    Assign {
        var: VarId,
        value: ExprId,
    },
    /// Store `value` (scalar or vector) at element `index`; vector stores need aligned indices.
    Store {
        mem: Memory,
        index: ExprId,
        value: ExprId,
    },
    If {
        cond: ExprId,
        then: Block,
        otherwise: Block,
    },
    /// `for var in (start..end).step_by(step)` over u32 or i32. `step` must be positive; start,
    /// end and step are evaluated once, before the first iteration.
    For {
        var: VarId,
        start: ExprId,
        end: ExprId,
        step: ExprId,
        body: Block,
    },
    While {
        cond: ExprId,
        body: Block,
    },
    /// This thread leaves the kernel.
    Return,
    /// Block-wide barrier with workgroup memory fence. Every thread of the block must reach it.
    Barrier,
    /// Atomic read-modify-write; the old value goes to `result` if given.
    Atomic {
        op: AtomicOp,
        mem: Memory,
        index: ExprId,
        value: ExprId,
        result: Option<VarId>,
    },
    /// Wave-collective matrix multiply-add `d = a · b + c` on fragments, by the kernel's
    /// target's instruction of `shape` for the fragments' element type (the target's table has
    /// each operand's layout). Every lane of the wave must take part. `d` may be `c`.
    Mma {
        shape: MmaShape,
        a: FragRef,
        b: FragRef,
        c: FragRef,
        d: FragRef,
    },
    /// Wave-collective load of `operand`'s fragment from a tile: each lane's elements by the
    /// instruction's layout. `place`'s expressions must be the same on every lane of the wave.
    LoadFragment {
        shape: MmaShape,
        operand: Operand,
        frag: FragRef,
        place: FragPlace,
    },
    /// The store counterpart of [`Stmt::LoadFragment`].
    StoreFragment {
        shape: MmaShape,
        operand: Operand,
        frag: FragRef,
        place: FragPlace,
    },
    /// An asynchronous copy of `lanes` elements (16 bytes) from global memory to LDS, or of
    /// zeros where `pred` is false. It completes at this thread's `AsyncWait` that covers its
    /// group (see [`SyncOp`]); targets without asynchronous copies complete it at once.
    AsyncCopy {
        dst: Memory,
        dst_index: ExprId,
        src: Memory,
        src_index: ExprId,
        lanes: u8,
        pred: ExprId,
    },
    /// The warpgroup matrix engine's `acc (64 × n) += A (64 × 16) · B (16 × n)`, A and B read
    /// from LDS tiles (B stored `n × 16`, transposed) in the target's warpgroup layout,
    /// asynchronously: see [`SyncOp`]. All threads of the warpgroup (the target's
    /// `warpgroup.waves` consecutive waves) take part.
    WarpgroupMma {
        n: u32,
        acc: FragRef,
        a: FragPlace,
        b: FragPlace,
    },
    /// See [`SyncOp`].
    Sync(SyncOp),
}

/// A comptime configuration value, recorded so that the kernel's identity and the generated
/// code's header say which configuration they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConfigValue {
    U32(u32),
    Bool(bool),
    Type(Scalar),
}

impl fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigValue::U32(v) => write!(f, "{v}"),
            ConfigValue::Bool(v) => write!(f, "{v}"),
            ConfigValue::Type(s) => write!(f, "{s}"),
        }
    }
}

/// Alignment of each array in dynamic LDS: a whole 128-byte row of banks, so that a swizzle
/// computed relative to an array is the same relative to the banks.
pub const DYNAMIC_LDS_ALIGN: u32 = 128;

/// See [`Kernel::dynamic_lds`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynamicLds {
    pub offsets: Vec<u32>,
    pub bytes: u32,
}

/// One kernel at one comptime configuration, built for one target: what a `#[kernel]` builder
/// returns, and what the verifier, the interpreter and the backends take.
///
/// Example: `let k = scale::<f32>(&Target::SM_90, 64)?;` (builds `scale` with `T = f32` and a
/// comptime `block = 64`).
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    pub name: String,
    /// The target the kernel was built for: its builder chose sizes and instructions from it,
    /// so the kernel runs on that target only (the interpreter and the code generator refuse
    /// another).
    pub target: &'static Target,
    /// Comptime parameters with their values, in declaration order.
    pub config: Vec<(String, ConfigValue)>,
    pub params: Vec<Param>,
    pub vars: Vec<Var>,
    pub shared: Vec<SharedArray>,
    pub locals: Vec<LocalArray>,
    pub exprs: Vec<ExprNode>,
    pub body: Block,
    /// The block size the kernel was written for, if it declared one (`block_size(x, y, z)`).
    /// Launches must match it; backends use it as a launch bound.
    pub block_size: Option<[u32; 3]>,
}

impl Kernel {
    pub fn expr(&self, id: ExprId) -> &Expr {
        &self.exprs[id.0 as usize].expr
    }

    pub fn ty(&self, id: ExprId) -> Type {
        self.exprs[id.0 as usize].ty
    }

    pub fn var(&self, id: VarId) -> &Var {
        &self.vars[id.0 as usize]
    }

    pub fn param(&self, id: ParamId) -> &Param {
        &self.params[id.0 as usize]
    }

    /// Element type of a memory object.
    pub fn memory_elem(&self, mem: Memory) -> Option<Scalar> {
        match mem {
            Memory::Global(p) => match self.params.get(p.0 as usize)?.kind {
                ParamKind::Buffer { elem, .. } => Some(elem),
                ParamKind::Value(_) => None,
            },
            Memory::Shared(s) => self.shared.get(s.0 as usize).map(|a| a.elem),
            Memory::Local(l) => self.locals.get(l.0 as usize).map(|a| a.elem),
        }
    }

    /// Name of a memory object, for messages and generated code.
    pub fn memory_name(&self, mem: Memory) -> &str {
        match mem {
            Memory::Global(p) => self.params.get(p.0 as usize).map_or("?", |p| &p.name),
            Memory::Shared(s) => self.shared.get(s.0 as usize).map_or("?", |a| &a.name),
            Memory::Local(l) => self.locals.get(l.0 as usize).map_or("?", |a| &a.name),
        }
    }

    /// Total LDS bytes of the kernel's shared arrays.
    pub fn shared_bytes(&self) -> u32 {
        self.shared
            .iter()
            .map(SharedArray::size_bytes)
            .fold(0u32, u32::saturating_add)
    }

    /// LDS bytes one block takes: the arrays, plus alignment padding where they are one
    /// dynamic allocation.
    pub fn lds_bytes(&self) -> u32 {
        self.dynamic_lds()
            .map_or_else(|| self.shared_bytes(), |d| d.bytes)
    }

    /// The largest alignment an LDS array of the kernel asks for.
    pub fn lds_align(&self) -> u32 {
        self.shared
            .iter()
            .map(|a| a.align)
            .max()
            .unwrap_or(LDS_ALIGN)
            .max(DYNAMIC_LDS_ALIGN)
    }

    /// The kernel's LDS as one dynamic allocation, where its target needs that (sm_90 above the
    /// 48 KiB a block may declare statically): each shared array's byte offset, aligned to
    /// [`DYNAMIC_LDS_ALIGN`], and the total to request at launch. `None` when the arrays are
    /// declared statically. The code generator and the runtime both follow this one rule.
    pub fn dynamic_lds(&self) -> Option<DynamicLds> {
        if self.shared_bytes() <= self.target.lds_bytes {
            return None;
        }
        let mut offsets = Vec::with_capacity(self.shared.len());
        let mut bytes = 0u32;
        for a in &self.shared {
            let align = a.align.max(DYNAMIC_LDS_ALIGN);
            bytes = bytes.div_ceil(align).saturating_mul(align);
            offsets.push(bytes);
            bytes = bytes.saturating_add(a.size_bytes());
        }
        // The allocation itself is aligned to the largest array alignment by the code
        // generator; round the size up so the last array's padding is counted too.
        bytes = bytes
            .div_ceil(DYNAMIC_LDS_ALIGN)
            .saturating_mul(DYNAMIC_LDS_ALIGN);
        Some(DynamicLds { offsets, bytes })
    }

    /// The configuration as `key=value,...`, the form the CLI's `--config` takes.
    pub fn config_string(&self) -> String {
        self.config
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}
