//! The verifier: rejects ill-formed or ill-typed IR before a backend sees it.
//!
//! The front end builds IR through typed handles, so a kernel that fails here is a bug in the
//! front end (or in a hand-built test), not in the user's kernel; the verifier exists so that
//! such a bug is one clear message instead of wrong code or a crash in a backend. Backends and
//! the interpreter may assume everything checked here.
//!
//! [`validate`] returns the first problem found, in this order: declarations, then the
//! expression arena in id order, then the statements in program order.
//!
//! # Rules
//!
//! **Declarations.** Variable types are valid types (below); shared and local arrays have a
//! non-zero length; a declared `block_size` has no zero dimension and no more threads than the
//! kernel's target launches; the LDS arrays together fit the target's per-block limit
//! (`lds_bytes_max`, with sm_90's dynamic opt-in).
//!
//! **Types.** A type is a scalar or a vector of 2, 4 or 8 lanes of a non-bool scalar (nothing
//! produces or consumes bool vectors: vector comparisons are rejected for now).
//!
//! **Expressions.** Every expression's children have smaller ids than it (the builder appends
//! children first); this rules out cycles and lets the arena be checked in one pass in id order.
//! Each expression's type is recomputed from its operands' recorded types and must equal its
//! own recorded type. Per expression:
//! - `Param`: a `Value` parameter (a buffer is only reachable through loads/stores/atomics);
//! - `Builtin`: `u32`;
//! - `Unary`: `Neg` and `Abs` on floats and `i32`; `Not` on bool (logical) or integers
//!   (bitwise); `exp2`, `log2`, `exp`, `log`, `sqrt`, `rsqrt`, `sin`, `cos`, `tanh`, `floor` on
//!   floats only. Result: the operand's type.
//! - `Binary`: both operands of one type. `+ - * / % min max` on numbers; `& | ^` on integers or
//!   bool; `<< >>` on integers (the shift amount has the value's type); comparisons on scalars
//!   (`== !=` any scalar, the ordered ones numbers), giving `bool`; `&& ||` on bool.
//! - Arithmetic, bitwise, `Neg`/`Abs`/math, `Fma`, `Select`'s arms and `Cast` work lane-wise on
//!   vectors too; comparisons, logic, shuffles and wave reductions take scalars only.
//! - `Fma`: three operands of one float type. `Select`: a scalar bool condition, two arms of one
//!   type.
//! - `Cast`: to a numeric type, from a numeric type or from bool to an integer (as Rust's `as`
//!   allows); keeps the lane count.
//! - `Load`: see memory accesses below; the result has the memory's element type and `lanes`.
//! - `Extract`: of a vector, a lane below its lane count; gives the scalar.
//! - `Compose`: 2, 4 or 8 scalars of one non-bool type.
//! - `Shuffle`: a scalar value and a `u32` lane argument. `WaveReduce`: a numeric scalar.
//!
//! **Memory accesses.** The memory exists; a global one is a `Buffer` parameter; the index is a
//! scalar `u32` or `i32`; `lanes` is 1, 2, 4 or 8, and bool memory is accessed one element at a
//! time. Local (register) arrays take scalar accesses only: they are meant to be promoted to
//! registers, and a vector access reinterprets the array as memory, which forces it to scratch
//! on both GPU families. Stores and atomics need a `ReadWrite` buffer (or shared memory); a
//! stored value has the memory's element type and any valid lane count. Atomics work on global
//! and shared memory (a local array is private to its thread), on scalars: `Add` and `Max` on
//! `f32`, `i32` and `u32` elements; the value and the result variable have the element type.
//!
//! **Statements.** `Let`/`Assign` values have the variable's type; `if`/`while` conditions are
//! scalar bool; a `for` variable is `u32` or `i32` and `start`, `end` and `step` have its type.
//!
//! **Matrix statements.** The kernel's target has a matrix instruction of the statement's shape
//! for the multiplicands' element type (f16 or bf16); every fragment is a range of a local
//! array of the instruction's element type (the multiplicand type for A and B, f32 for the
//! accumulator) that holds the layout's elements per lane. A fragment access goes to a global
//! buffer or an LDS array of the fragment's element type (writable for a store), with `u32`
//! base, stride, row and column, and a swizzle of powers of two.
//!
//! **Variables and scope.** A variable is defined once in the whole kernel: by its `Let`, as a
//! `for` variable, or as the result of an atomic that has no `Let` before it (the result variable
//! of an atomic is assigned if it is in scope, and defined in the current block otherwise). A
//! definition is visible in the rest of its block and the blocks nested in it (a `for` variable
//! in its body only); every use of a variable in an expression, and every `Assign`, must be in
//! its scope. Loop variables are read-only (backends are free to keep the induction variable
//! elsewhere). Scope follows program order: a use in a loop body that comes before the body's
//! `let` of the variable is rejected, even though later iterations would see a value.
//!
//! # Messages
//!
//! Every error names the kernel and the place: a statement path such as `statement 2, in
//! `for i` body, statement 3` (statements count from 1 within their block), the offending
//! expression or statement as [`crate::print`] writes it, and expected against found types.
//! An expression is located at the first statement (in program order) that uses it, or as an
//! unreferenced expression.

use thiserror::Error;

use crate::ir::{
    Access, AtomicOp, BinaryOp, Block, Expr, ExprId, FragPlace, FragRef, Kernel, Memory, MmaShape,
    Operand, ParamKind, Scalar, Stmt, Swizzle, SyncOp, Type, UnaryOp, VarId,
};
use crate::print::Printer;
use crate::target::MatrixInst;

/// An ill-formed kernel: which kernel, where, what.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("kernel `{kernel}`: {location}: {}{kind}", in_code(.code))]
pub struct ValidationError {
    /// The kernel's name.
    pub kernel: String,
    /// The statement path (`statement 2, in `for i` body, statement 3`), or the declaration
    /// (`variable `acc``), or `unreferenced expression %7`.
    pub location: String,
    /// The offending expression or statement as the printer writes it, where there is one.
    pub code: Option<String>,
    pub kind: ErrorKind,
}

fn in_code(code: &Option<String>) -> String {
    code.as_ref()
        .map_or_else(String::new, |c| format!("in `{c}`: "))
}

/// What is wrong. `what` fields describe the operand or value concerned
/// (`right operand of `+``, `stored value`, ...).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ErrorKind {
    #[error("expression %{id} does not exist (the kernel has {len})")]
    ExprOutOfRange { id: u32, len: usize },
    #[error(
        "expression %{parent} refers to %{child}, which does not precede it \
         (operands must have smaller ids; this also rules out cycles)"
    )]
    ForwardReference { parent: u32, child: u32 },
    #[error("variable {id} does not exist (the kernel has {len})")]
    VarOutOfRange { id: u32, len: usize },
    #[error("parameter {id} does not exist (the kernel has {len})")]
    ParamOutOfRange { id: u32, len: usize },
    #[error("shared array {id} does not exist (the kernel has {len})")]
    SharedOutOfRange { id: u32, len: usize },
    #[error("local array {id} does not exist (the kernel has {len})")]
    LocalOutOfRange { id: u32, len: usize },
    #[error("parameter `{0}` is a buffer: it can be indexed, not used as a value")]
    BufferAsValue(String),
    #[error("parameter `{name}` is a {ty} value, not a buffer: it cannot be loaded from, stored to or updated atomically")]
    NotABuffer { name: String, ty: Scalar },
    #[error("{lanes} lanes: a vector has 2, 4 or 8 lanes")]
    BadLanes { lanes: u8 },
    #[error("{lanes}-lane access to local array `{name}`: local arrays take scalar accesses only (a vector access would force the array out of registers)")]
    VectorLocal { name: String, lanes: u8 },
    #[error("{op} to read-only buffer `{name}` (declared `&[{elem}]`)")]
    ReadOnly {
        op: &'static str,
        name: String,
        elem: Scalar,
    },
    #[error(
        "atomic on local array `{0}`: a local array is private to its thread; use a plain store"
    )]
    AtomicOnLocal(String),
    #[error("atomic {op} on {ty}: atomic add and max take f32, i32 or u32")]
    BadAtomic { op: &'static str, ty: Scalar },
    #[error("{what}: expected {expected}, found {found}")]
    Mismatch {
        what: String,
        expected: Type,
        found: Type,
    },
    #[error("{what}: expected {expected}, found {found}")]
    BadType {
        what: String,
        expected: &'static str,
        found: Type,
    },
    #[error("lane {lane} of a {ty} vector: lanes are 0..{}", .ty.lanes)]
    LaneOutOfRange { lane: u8, ty: Type },
    #[error("a vector of {0} values: vectors have 2, 4 or 8 lanes")]
    BadComposeCount(usize),
    #[error("variable `{0}` is defined twice (a variable has one `let`, `for` or atomic result)")]
    DefinedTwice(String),
    #[error("variable `{0}` is used outside its scope: before its definition, or after the block that defines it")]
    OutOfScope(String),
    #[error("`for` variable `{0}` is written in its loop: loop variables are read-only")]
    AssignToLoopVar(String),
    #[error("{what} `{name}` has length 0")]
    EmptyArray { what: &'static str, name: String },
    #[error("block_size({}, {}, {}) has a zero dimension", .0[0], .0[1], .0[2])]
    BadBlockSize([u32; 3]),
    #[error("block_size({}, {}, {}) has {threads} threads; {target} launches at most {max}", .size[0], .size[1], .size[2])]
    BlockTooLarge {
        size: [u32; 3],
        threads: u64,
        target: &'static str,
        max: u32,
    },
    #[error("the LDS arrays take {bytes} bytes; {target} allows at most {max} per block")]
    LdsTooLarge {
        bytes: u64,
        target: &'static str,
        max: u32,
    },
    #[error("{target} has no {shape} matrix instruction for {ab} inputs (it has: {have})")]
    NoMatrixInst {
        target: &'static str,
        shape: MmaShape,
        ab: Scalar,
        have: String,
    },
    #[error(
        "{operand} fragment `{name}@{offset}` needs {len} elements but `{name}` has {array_len}"
    )]
    FragmentOutOfRange {
        operand: &'static str,
        name: String,
        offset: u32,
        len: u32,
        array_len: u32,
    },
    #[error("{what}: a fragment lives in a register (local) array, not in `{name}`")]
    FragmentMemory { what: String, name: String },
    #[error("swizzle(chunk {}, row_div {}, period {}): each must be a power of two", .0.chunk, .0.row_div, .0.period)]
    BadSwizzle(Swizzle),
    #[error("{what}: {target} has no warpgroup matrix engine")]
    NoWarpgroup { what: String, target: &'static str },
    #[error("{0}")]
    Warpgroup(String),
    #[error("async copy of {lanes} × {elem}: copies move 4, 8 or 16 bytes")]
    BadAsyncCopy { lanes: u8, elem: Scalar },
    #[error("{what} `{name}`: must be {expected}")]
    WrongMemory {
        what: &'static str,
        name: String,
        expected: &'static str,
    },
    #[error("LDS array `{name}` is aligned to {align} bytes; {what} needs {need}")]
    LdsAlignment {
        name: String,
        align: u32,
        what: &'static str,
        need: u32,
    },
}

/// Checks `kernel` against the rules in the module docs; the first violation found is returned.
/// On success, returns what the check learnt about the kernel, for the backends.
pub fn validate(kernel: &Kernel) -> Result<KernelInfo, ValidationError> {
    let mut v = Validator::new(kernel);
    v.declarations()?;
    v.exprs()?;
    let mut ord = 0;
    v.block(&kernel.body, &mut ord)?;
    Ok(KernelInfo::of(kernel, &v.places))
}

fn bad_elem(what: &str, elem: Scalar) -> ErrorKind {
    ErrorKind::Warpgroup(format!(
        "wgmma {what} tile holds {elem}; the engine multiplies f16 or bf16"
    ))
}

/// What the verifier learns about a valid kernel, handed to every backend so that none has to
/// compute it again (naga's `ModuleInfo`): a backend may assume every rule of this module holds
/// and use these facts directly.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelInfo {
    /// Per expression: its value cannot change while the kernel runs — it reads no variable, no
    /// memory and no other lane (a loop bound like this needs no hoisting).
    pub invariant: Vec<bool>,
    /// Per statement, in program pre-order (a statement, then the blocks nested in it, in
    /// order — the order a backend walks them): the non-trivial expressions its own operands
    /// use more than once (the IR is a DAG), children before parents, so a backend can bind
    /// each to a name once. Empty for `while`, whose condition is evaluated every iteration.
    pub shared: Vec<Vec<ExprId>>,
    /// The matrix instructions the kernel's `Mma` statements use, each once.
    pub matrix: Vec<&'static MatrixInst>,
    /// The `n` of every `WarpgroupMma` the kernel issues (sorted, each once): a kernel with any
    /// needs the target's warpgroup architecture (`sm_90a`).
    pub warpgroup: Vec<u32>,
    /// The accumulator fragments `WarpgroupMma`s write (array, offset, elements per thread),
    /// each once: the registers an asynchronous matrix operation may still be writing, which a
    /// backend must not let ordinary code touch across a `wgmma_wait`.
    pub warpgroup_accs: Vec<(crate::ir::LocalId, u32, u32)>,
    /// Whether the kernel issues asynchronous copies.
    pub async_copies: bool,
    /// Bytes of all LDS arrays.
    pub lds_bytes: u32,
}

impl KernelInfo {
    fn of(k: &Kernel, places: &[Place<'_>]) -> KernelInfo {
        let mut invariant = vec![true; k.exprs.len()];
        for (i, node) in k.exprs.iter().enumerate() {
            invariant[i] = match &node.expr {
                Expr::Var(_)
                | Expr::Load { .. }
                | Expr::Shuffle { .. }
                | Expr::WaveReduce { .. } => false,
                e => {
                    let mut all = true;
                    for_each_child(e, |c| all &= invariant[c.0 as usize]);
                    all
                }
            };
        }
        let trivial = |id: ExprId| {
            matches!(
                k.expr(id),
                Expr::Const(_) | Expr::Param(_) | Expr::Var(_) | Expr::Builtin(_)
            )
        };
        let mut shared = Vec::with_capacity(places.len());
        let mut uses = vec![0u32; k.exprs.len()];
        let mut matrix: Vec<&'static MatrixInst> = Vec::new();
        let mut warpgroup: Vec<u32> = Vec::new();
        let mut warpgroup_accs = Vec::new();
        let mut async_copies = false;
        for place in places {
            if let Stmt::Mma { shape, a, .. } = place.stmt {
                let ab = k.locals[a.local.0 as usize].elem;
                if let Some(inst) = k.target.mma(*shape, ab) {
                    if !matrix.contains(&inst) {
                        matrix.push(inst);
                    }
                }
            }
            if let Stmt::WarpgroupMma { n, acc, .. } = place.stmt {
                if !warpgroup.contains(n) {
                    warpgroup.push(*n);
                }
                let entry = (acc.local, acc.offset, n / 2);
                if !warpgroup_accs.contains(&entry) {
                    warpgroup_accs.push(entry);
                }
            }
            async_copies |= matches!(place.stmt, Stmt::AsyncCopy { .. });
            if matches!(place.stmt, Stmt::While { .. }) {
                shared.push(Vec::new());
                continue;
            }
            // Count uses of everything reachable from the roots, then list the ones used
            // more than once, children first.
            let mut order = Vec::new();
            let mut stack: Vec<(ExprId, bool)> = stmt_roots(place.stmt)
                .into_iter()
                .rev()
                .map(|r| (r, false))
                .collect();
            while let Some((id, expanded)) = stack.pop() {
                if expanded {
                    order.push(id);
                    continue;
                }
                let n = &mut uses[id.0 as usize];
                *n += 1;
                if *n > 1 {
                    continue;
                }
                stack.push((id, true));
                let mut children = Vec::new();
                for_each_child(k.expr(id), |c| children.push(c));
                for c in children.into_iter().rev() {
                    stack.push((c, false));
                }
            }
            let mine: Vec<ExprId> = order
                .iter()
                .copied()
                .filter(|&id| uses[id.0 as usize] > 1 && !trivial(id))
                .collect();
            for id in order {
                uses[id.0 as usize] = 0;
            }
            shared.push(mine);
        }
        warpgroup.sort_unstable();
        KernelInfo {
            invariant,
            shared,
            matrix,
            warpgroup,
            warpgroup_accs,
            async_copies,
            lds_bytes: k.lds_bytes(),
        }
    }
}

/// Longest expression text put in a message; longer ones are cut (messages stay readable).
const MAX_CODE: usize = 240;

fn cut(mut s: String) -> String {
    if s.chars().count() > MAX_CODE {
        s = s.chars().take(MAX_CODE).collect();
        s.push('…');
    }
    s
}

#[derive(Clone, Copy)]
enum Branch {
    Body,
    Then,
    Else,
}

/// A statement's place: its enclosing statement, which block of it, its index in that block.
struct Place<'k> {
    parent: Option<usize>,
    branch: Branch,
    index: usize,
    stmt: &'k Stmt,
}

const NO_USER: u32 = u32::MAX;

struct Validator<'k> {
    k: &'k Kernel,
    p: Printer<'k>,
    /// Every statement in pre-order (program order); statement ordinals index it.
    places: Vec<Place<'k>>,
    /// Per expression, the ordinal of the first statement using it, or `NO_USER`.
    first_user: Vec<u32>,
    // Scope state of the statement walk.
    in_scope: Vec<bool>,
    defined: Vec<bool>,
    loop_var: Vec<bool>,
    scope_stack: Vec<VarId>,
    visit_stamp: Vec<u32>,
    stamp: u32,
}

fn for_each_child(e: &Expr, mut f: impl FnMut(ExprId)) {
    match e {
        Expr::Const(_) | Expr::Param(_) | Expr::Var(_) | Expr::Builtin(_) => {}
        Expr::Unary(_, a) | Expr::Cast { value: a, .. } | Expr::Load { index: a, .. } => f(*a),
        Expr::Extract { vector: a, .. } | Expr::WaveReduce { value: a, .. } => f(*a),
        Expr::Binary(_, a, b)
        | Expr::Shuffle {
            value: a, lane: b, ..
        } => {
            f(*a);
            f(*b);
        }
        Expr::Fma(a, b, c)
        | Expr::Select {
            cond: a,
            a: b,
            b: c,
        } => {
            f(*a);
            f(*b);
            f(*c);
        }
        Expr::Compose(parts) => parts.iter().copied().for_each(f),
    }
}

/// The expressions a statement evaluates itself (not those of nested blocks).
fn stmt_roots(stmt: &Stmt) -> Vec<ExprId> {
    match stmt {
        Stmt::Let { value, .. } | Stmt::Assign { value, .. } => vec![*value],
        Stmt::Store { index, value, .. } | Stmt::Atomic { index, value, .. } => {
            vec![*index, *value]
        }
        Stmt::If { cond, .. } | Stmt::While { cond, .. } => vec![*cond],
        Stmt::For {
            start, end, step, ..
        } => vec![*start, *end, *step],
        Stmt::Return | Stmt::Barrier | Stmt::Mma { .. } | Stmt::Sync(_) => vec![],
        Stmt::LoadFragment { place, .. } | Stmt::StoreFragment { place, .. } => place_roots(place),
        Stmt::AsyncCopy {
            dst_index,
            src_index,
            pred,
            ..
        } => vec![*dst_index, *src_index, *pred],
        Stmt::WarpgroupMma { a, b, .. } => {
            let mut r = place_roots(a);
            r.extend(place_roots(b));
            r
        }
    }
}

fn place_roots(place: &FragPlace) -> Vec<ExprId> {
    vec![place.tile.base, place.tile.stride, place.row, place.col]
}

fn valid_type(t: Type) -> Result<(), ErrorKind> {
    if !Type::valid_lanes(t.lanes) {
        return Err(ErrorKind::BadLanes { lanes: t.lanes });
    }
    if t.lanes > 1 && t.scalar == Scalar::Bool {
        return Err(bad("type", "a scalar bool (there are no bool vectors)", t));
    }
    Ok(())
}

fn bad(what: impl Into<String>, expected: &'static str, found: Type) -> ErrorKind {
    ErrorKind::BadType {
        what: what.into(),
        expected,
        found,
    }
}

fn mismatch(what: impl Into<String>, expected: Type, found: Type) -> ErrorKind {
    ErrorKind::Mismatch {
        what: what.into(),
        expected,
        found,
    }
}

fn check_index(t: Type) -> Result<(), ErrorKind> {
    if t.lanes == 1 && t.scalar.is_int() {
        Ok(())
    } else {
        Err(bad("index", "a scalar u32 or i32", t))
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Use {
    Load,
    Store,
    Atomic,
}

const FLOAT: &str = "a float (f16, bf16, f32, or a vector of them)";
const NUMBER: &str = "a number (f16, bf16, f32, i32, u32, or a vector of them)";

impl<'k> Validator<'k> {
    fn new(k: &'k Kernel) -> Validator<'k> {
        let mut places = Vec::new();
        collect_places(&k.body, None, Branch::Body, &mut places);
        let mut first_user = vec![NO_USER; k.exprs.len()];
        for (ord, place) in places.iter().enumerate() {
            for r in stmt_roots(place.stmt) {
                if let Some(u) = first_user.get_mut(r.0 as usize) {
                    *u = (*u).min(ord as u32);
                }
            }
        }
        // Children precede parents, so one pass from the top down reaches every descendant.
        for id in (0..k.exprs.len()).rev() {
            let user = first_user[id];
            if user == NO_USER {
                continue;
            }
            for_each_child(&k.exprs[id].expr, |c| {
                if (c.0 as usize) < id {
                    let u = &mut first_user[c.0 as usize];
                    *u = (*u).min(user);
                }
            });
        }
        let n = k.vars.len();
        Validator {
            k,
            p: Printer::new(k),
            places,
            first_user,
            in_scope: vec![false; n],
            defined: vec![false; n],
            loop_var: vec![false; n],
            scope_stack: Vec::new(),
            visit_stamp: vec![0; k.exprs.len()],
            stamp: 0,
        }
    }

    fn error(&self, location: String, code: Option<String>, kind: ErrorKind) -> ValidationError {
        ValidationError {
            kernel: self.k.name.clone(),
            location,
            code: code.map(cut),
            kind,
        }
    }

    /// The statement path of statement `ord`.
    fn path(&self, ord: usize) -> String {
        let place = &self.places[ord];
        let here = format!("statement {}", place.index + 1);
        let Some(parent) = place.parent else {
            return here;
        };
        let head = match self.places[parent].stmt {
            Stmt::For { var, .. } => format!("for {}", self.p.var(*var)),
            Stmt::If { .. } => "if".to_string(),
            _ => "while".to_string(),
        };
        let branch = match place.branch {
            Branch::Body => "body",
            Branch::Then => "then branch",
            Branch::Else => "else branch",
        };
        format!("{}, in `{head}` {branch}, {here}", self.path(parent))
    }

    /// An error about statement `ord`, showing the statement (the header of a compound one).
    fn stmt_error(&self, ord: usize, kind: ErrorKind) -> ValidationError {
        let line = self.p.stmt_line(self.places[ord].stmt, &self.defined);
        self.error(self.path(ord), Some(line), kind)
    }

    /// An error about expression `id`, located at its first user.
    fn expr_error(&self, id: ExprId, kind: ErrorKind) -> ValidationError {
        let location = match self.first_user[id.0 as usize] {
            NO_USER => format!("unreferenced expression %{}", id.0),
            ord => self.path(ord as usize),
        };
        self.error(location, Some(self.p.expr(id)), kind)
    }

    fn declarations(&self) -> Result<(), ValidationError> {
        let k = self.k;
        for (i, v) in k.vars.iter().enumerate() {
            valid_type(v.ty).map_err(|e| {
                self.error(
                    format!("variable `{}`", self.p.var(VarId(i as u32))),
                    None,
                    e,
                )
            })?;
        }
        for a in &k.shared {
            if !a.align.is_power_of_two() || a.align < crate::ir::LDS_ALIGN {
                let kind = ErrorKind::LdsAlignment {
                    name: a.name.clone(),
                    align: a.align,
                    what: "an LDS array",
                    need: crate::ir::LDS_ALIGN,
                };
                return Err(self.error(format!("shared array `{}`", a.name), None, kind));
            }
        }
        let arrays = k.shared.iter().map(|a| ("shared array", &a.name, a.len));
        let arrays = arrays.chain(k.locals.iter().map(|a| ("local array", &a.name, a.len)));
        for (what, name, len) in arrays {
            if len == 0 {
                let kind = ErrorKind::EmptyArray {
                    what,
                    name: name.clone(),
                };
                return Err(self.error(format!("{what} `{name}`"), None, kind));
            }
        }
        if let Some(b) = k.block_size {
            if b.contains(&0) {
                return Err(self.error("block_size".to_string(), None, ErrorKind::BadBlockSize(b)));
            }
            let threads = b.iter().map(|&d| d as u64).product::<u64>();
            if threads > k.target.max_block_threads as u64 {
                let kind = ErrorKind::BlockTooLarge {
                    size: b,
                    threads,
                    target: k.target.name,
                    max: k.target.max_block_threads,
                };
                return Err(self.error("block_size".to_string(), None, kind));
            }
        }
        let lds = k.lds_bytes() as u64;
        if lds > k.target.lds_bytes_max as u64 {
            let kind = ErrorKind::LdsTooLarge {
                bytes: lds,
                target: k.target.name,
                max: k.target.lds_bytes_max,
            };
            return Err(self.error("LDS arrays".to_string(), None, kind));
        }
        Ok(())
    }

    /// The instruction an `Mma` or fragment access of `shape` refers to; `ab` is the element
    /// type of the multiplicands (`None` for an accumulator access, whose layout is the same
    /// for every input type of one shape).
    fn matrix_inst(
        &self,
        shape: MmaShape,
        ab: Option<Scalar>,
    ) -> Result<&'static MatrixInst, ErrorKind> {
        let t = self.k.target;
        let found = match ab {
            Some(ab) => t.mma(shape, ab),
            None => t.matrix.iter().find(|i| i.shape == shape),
        };
        found.ok_or_else(|| ErrorKind::NoMatrixInst {
            target: t.name,
            shape,
            ab: ab.unwrap_or(Scalar::F32),
            have: t
                .matrix
                .iter()
                .map(|i| format!("{} {}", i.shape, i.ab))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Checks that `f` is a fragment of `len` elements and returns its element type.
    fn fragment(&self, what: &str, f: FragRef, len: u32) -> Result<Scalar, ErrorKind> {
        let n = self.k.locals.len();
        let a = self
            .k
            .locals
            .get(f.local.0 as usize)
            .ok_or(ErrorKind::LocalOutOfRange {
                id: f.local.0,
                len: n,
            })?;
        if f.offset as u64 + len as u64 > a.len as u64 {
            return Err(ErrorKind::FragmentOutOfRange {
                operand: match what {
                    "A" => "A",
                    "B" => "B",
                    _ => "accumulator",
                },
                name: a.name.clone(),
                offset: f.offset,
                len,
                array_len: a.len,
            });
        }
        Ok(a.elem)
    }

    fn mma(&self, shape: MmaShape, f: [FragRef; 4]) -> Result<(), ErrorKind> {
        let local_elem = |r: FragRef| {
            let n = self.k.locals.len();
            self.k.locals.get(r.local.0 as usize).map(|a| a.elem).ok_or(
                ErrorKind::LocalOutOfRange {
                    id: r.local.0,
                    len: n,
                },
            )
        };
        let ab = local_elem(f[0])?;
        if !matches!(ab, Scalar::F16 | Scalar::BF16) {
            return Err(bad("A fragment of mma", "f16 or bf16", Type::scalar(ab)));
        }
        let inst = self.matrix_inst(shape, Some(ab))?;
        for (what, r, op) in [
            ("A", f[0], Operand::A),
            ("B", f[1], Operand::B),
            ("C", f[2], Operand::Acc),
            ("D", f[3], Operand::Acc),
        ] {
            let elem = self.fragment(what, r, inst.layout(op).len)?;
            let want = inst.elem(op);
            if elem != want {
                let what = format!("{what} fragment of mma_{shape}");
                return Err(mismatch(what, Type::scalar(want), Type::scalar(elem)));
            }
        }
        Ok(())
    }

    fn async_copy(&self, dst: Memory, src: Memory, lanes: u8) -> Result<(), ErrorKind> {
        if !matches!(dst, Memory::Shared(_)) {
            return Err(ErrorKind::WrongMemory {
                what: "async copy destination",
                name: self.p.memory(dst),
                expected: "an LDS array",
            });
        }
        if !matches!(src, Memory::Global(_)) {
            return Err(ErrorKind::WrongMemory {
                what: "async copy source",
                name: self.p.memory(src),
                expected: "a global buffer",
            });
        }
        let de = self.memory(dst, lanes, Use::Store)?;
        let se = self.memory(src, lanes, Use::Load)?;
        if de != se {
            return Err(mismatch(
                "async copy source",
                Type::vector(de, lanes),
                Type::vector(se, lanes),
            ));
        }
        if !matches!(de.size_bytes() * lanes as u32, 4 | 8 | 16) {
            return Err(ErrorKind::BadAsyncCopy { lanes, elem: de });
        }
        Ok(())
    }

    fn warpgroup_mma(
        &self,
        n: u32,
        acc: FragRef,
        a: &FragPlace,
        b: &FragPlace,
    ) -> Result<(), ErrorKind> {
        let t = self.k.target;
        let Some(wg) = t.warpgroup else {
            return Err(ErrorKind::NoWarpgroup {
                what: format!("wgmma_m64n{n}k16"),
                target: t.name,
            });
        };
        let bad = |m: String| Err(ErrorKind::Warpgroup(m));
        if !wg.valid_n(n) {
            return bad(format!(
                "wgmma n={n}: n is a multiple of {} up to {}",
                wg.n_step, wg.n_max
            ));
        }
        let elem = self.fragment("accumulator", acc, wg.acc(n).len)?;
        if elem != Scalar::F32 {
            return Err(mismatch("wgmma accumulator", Type::F32, Type::scalar(elem)));
        }
        let mut ab = None;
        for (what, place, transposed) in [("A", a, false), ("B", b, true)] {
            let Memory::Shared(s) = place.tile.mem else {
                return Err(ErrorKind::WrongMemory {
                    what: "wgmma operand tile",
                    name: self.p.memory(place.tile.mem),
                    expected: "an LDS array",
                });
            };
            let arr = self
                .k
                .shared
                .get(s.0 as usize)
                .ok_or(ErrorKind::SharedOutOfRange {
                    id: s.0,
                    len: self.k.shared.len(),
                })?;
            if !wg.ab.contains(&arr.elem) {
                return Err(bad_elem(what, arr.elem));
            }
            if *ab.get_or_insert(arr.elem) != arr.elem {
                return Err(mismatch(
                    "wgmma B tile",
                    Type::scalar(ab.unwrap_or(arr.elem)),
                    Type::scalar(arr.elem),
                ));
            }
            if place.transposed != transposed {
                return bad(format!(
                    "wgmma {what} tile must be K-major: {}",
                    if transposed {
                        "B stored n × k (transposed)"
                    } else {
                        "A stored m × k (not transposed)"
                    }
                ));
            }
            if place.tile.swizzle != wg.swizzle(arr.elem) {
                let s = wg.swizzle(arr.elem);
                return bad(format!(
                    "wgmma {what} tile needs the 128-byte swizzle (chunk {}, row_div 1, period 8)",
                    s.chunk
                ));
            }
            if arr.align < wg.align {
                return Err(ErrorKind::LdsAlignment {
                    name: arr.name.clone(),
                    align: arr.align,
                    what: "a wgmma operand tile",
                    need: wg.align,
                });
            }
            for e in place_roots(place) {
                if self.k.ty(e) != Type::U32 {
                    return Err(mismatch("wgmma tile place", Type::U32, self.k.ty(e)));
                }
            }
        }
        Ok(())
    }

    fn fragment_access(
        &self,
        shape: MmaShape,
        operand: Operand,
        frag: FragRef,
        place: &FragPlace,
        usage: Use,
    ) -> Result<(), ErrorKind> {
        let n = self.k.locals.len();
        let elem = self
            .k
            .locals
            .get(frag.local.0 as usize)
            .map(|a| a.elem)
            .ok_or(ErrorKind::LocalOutOfRange {
                id: frag.local.0,
                len: n,
            })?;
        let ab = (operand != Operand::Acc).then_some(elem);
        let inst = self.matrix_inst(shape, ab)?;
        let want = inst.elem(operand);
        if elem != want {
            let what = format!("{} fragment of {shape}", operand.name());
            return Err(mismatch(what, Type::scalar(want), Type::scalar(elem)));
        }
        self.fragment(operand.name(), frag, inst.layout(operand).len)?;
        let tile = &place.tile;
        if let Memory::Local(_) = tile.mem {
            return Err(ErrorKind::FragmentMemory {
                what: format!("the tile of a {} fragment access", operand.name()),
                name: self.p.memory(tile.mem),
            });
        }
        let mem_elem = self.memory(tile.mem, 1, usage)?;
        if mem_elem != elem {
            let what = format!(
                "tile `{}` of a {} fragment",
                self.p.memory(tile.mem),
                operand.name()
            );
            return Err(mismatch(what, Type::scalar(elem), Type::scalar(mem_elem)));
        }
        for (what, e) in [
            ("tile base", tile.base),
            ("tile stride", tile.stride),
            ("fragment row", place.row),
            ("fragment column", place.col),
        ] {
            if self.k.ty(e) != Type::U32 {
                return Err(mismatch(what, Type::U32, self.k.ty(e)));
            }
        }
        let s = tile.swizzle;
        if ![s.chunk, s.row_div, s.period]
            .iter()
            .all(|v| v.is_power_of_two())
        {
            return Err(ErrorKind::BadSwizzle(s));
        }
        Ok(())
    }

    fn exprs(&self) -> Result<(), ValidationError> {
        for (i, node) in self.k.exprs.iter().enumerate() {
            let id = ExprId(i as u32);
            let ty = self
                .expr_type(id, &node.expr)
                .map_err(|e| self.expr_error(id, e))?;
            if ty != node.ty {
                let what = match node.expr {
                    Expr::Cast { .. } => {
                        "recorded type of the cast (a cast works lane-wise: it keeps the lane count)"
                    }
                    _ => "recorded type of the expression (recomputed from its operands)",
                };
                return Err(self.expr_error(id, mismatch(what, ty, node.ty)));
            }
        }
        Ok(())
    }

    /// The recorded type of operand `c` of `parent`, which must precede it.
    fn operand(&self, parent: ExprId, c: ExprId) -> Result<Type, ErrorKind> {
        let len = self.k.exprs.len();
        if c.0 as usize >= len {
            return Err(ErrorKind::ExprOutOfRange { id: c.0, len });
        }
        if c >= parent {
            return Err(ErrorKind::ForwardReference {
                parent: parent.0,
                child: c.0,
            });
        }
        Ok(self.k.ty(c))
    }

    /// Checks a memory access and returns the memory's element type.
    fn memory(&self, mem: Memory, lanes: u8, usage: Use) -> Result<Scalar, ErrorKind> {
        let k = self.k;
        let elem = match mem {
            Memory::Global(p) => {
                let len = k.params.len();
                let param = k
                    .params
                    .get(p.0 as usize)
                    .ok_or(ErrorKind::ParamOutOfRange { id: p.0, len })?;
                match param.kind {
                    ParamKind::Value(ty) => {
                        return Err(ErrorKind::NotABuffer {
                            name: param.name.clone(),
                            ty,
                        })
                    }
                    ParamKind::Buffer { elem, access } => {
                        if access == Access::Read && usage != Use::Load {
                            let op = if usage == Use::Store {
                                "store"
                            } else {
                                "atomic"
                            };
                            let name = param.name.clone();
                            return Err(ErrorKind::ReadOnly { op, name, elem });
                        }
                        elem
                    }
                }
            }
            Memory::Shared(s) => {
                let len = k.shared.len();
                k.shared
                    .get(s.0 as usize)
                    .ok_or(ErrorKind::SharedOutOfRange { id: s.0, len })?
                    .elem
            }
            Memory::Local(l) => {
                let len = k.locals.len();
                let a = k
                    .locals
                    .get(l.0 as usize)
                    .ok_or(ErrorKind::LocalOutOfRange { id: l.0, len })?;
                if usage == Use::Atomic {
                    return Err(ErrorKind::AtomicOnLocal(a.name.clone()));
                }
                if lanes > 1 && Type::valid_lanes(lanes) {
                    return Err(ErrorKind::VectorLocal {
                        name: a.name.clone(),
                        lanes,
                    });
                }
                a.elem
            }
        };
        valid_type(Type::vector(elem, lanes))?;
        Ok(elem)
    }

    fn expr_type(&self, id: ExprId, e: &Expr) -> Result<Type, ErrorKind> {
        let k = self.k;
        let op = |c: ExprId| self.operand(id, c);
        Ok(match e {
            Expr::Const(c) => Type::scalar(c.scalar()),
            Expr::Param(p) => {
                let len = k.params.len();
                let param = k
                    .params
                    .get(p.0 as usize)
                    .ok_or(ErrorKind::ParamOutOfRange { id: p.0, len })?;
                match param.kind {
                    ParamKind::Value(s) => Type::scalar(s),
                    ParamKind::Buffer { .. } => {
                        return Err(ErrorKind::BufferAsValue(param.name.clone()))
                    }
                }
            }
            Expr::Var(v) => {
                let len = k.vars.len();
                k.vars
                    .get(v.0 as usize)
                    .ok_or(ErrorKind::VarOutOfRange { id: v.0, len })?
                    .ty
            }
            Expr::Builtin(_) => Type::U32,
            Expr::Unary(u, a) => {
                let t = op(*a)?;
                let s = t.scalar;
                let what = || format!("operand of `{}`", u.name());
                let ok = match u {
                    UnaryOp::Neg | UnaryOp::Abs => s.is_float() || s == Scalar::I32,
                    UnaryOp::Not => s.is_int() || s == Scalar::Bool,
                    _ => s.is_float(),
                };
                if !ok {
                    let expected = match u {
                        UnaryOp::Neg | UnaryOp::Abs => "a float or i32 (or a vector of them)",
                        UnaryOp::Not => "a bool or an integer",
                        _ => FLOAT,
                    };
                    return Err(bad(what(), expected, t));
                }
                t
            }
            Expr::Binary(b, l, r) => {
                let (lt, rt) = (op(*l)?, op(*r)?);
                let name = b.name();
                if lt != rt {
                    let what = format!("right operand of `{name}` (it must have the left's type)");
                    return Err(mismatch(what, lt, rt));
                }
                let s = lt.scalar;
                let what = || format!("operands of `{name}`");
                if b.is_comparison() {
                    if lt.is_vector() {
                        return Err(bad(
                            what(),
                            "scalars (vector comparisons are not supported)",
                            lt,
                        ));
                    }
                    if !matches!(b, BinaryOp::Eq | BinaryOp::Ne) && s == Scalar::Bool {
                        return Err(bad(
                            what(),
                            "numbers (bools compare with == and != only)",
                            lt,
                        ));
                    }
                    Type::BOOL
                } else if b.is_logical() {
                    if lt != Type::BOOL {
                        return Err(bad(what(), "bool", lt));
                    }
                    lt
                } else if matches!(b, BinaryOp::Shl | BinaryOp::Shr) {
                    if !s.is_int() {
                        return Err(bad(what(), "integers (u32, i32, or vectors of them)", lt));
                    }
                    lt
                } else if b.is_bitwise() {
                    if !(s.is_int() || s == Scalar::Bool) {
                        return Err(bad(what(), "integers or bool", lt));
                    }
                    lt
                } else {
                    if s == Scalar::Bool {
                        return Err(bad(what(), NUMBER, lt));
                    }
                    lt
                }
            }
            Expr::Fma(a, b, c) => {
                let ta = op(*a)?;
                for (n, x) in [(2, b), (3, c)] {
                    let tx = op(*x)?;
                    if tx != ta {
                        return Err(mismatch(format!("operand {n} of `fma`"), ta, tx));
                    }
                }
                if !ta.scalar.is_float() {
                    return Err(bad("operands of `fma`", FLOAT, ta));
                }
                ta
            }
            Expr::Select { cond, a, b } => {
                let tc = op(*cond)?;
                if tc != Type::BOOL {
                    return Err(mismatch("condition of `select`", Type::BOOL, tc));
                }
                let (ta, tb) = (op(*a)?, op(*b)?);
                if ta != tb {
                    return Err(mismatch("second arm of `select`", ta, tb));
                }
                ta
            }
            Expr::Cast { to, value } => {
                let t = op(*value)?;
                if *to == Scalar::Bool {
                    let what = "target of `cast` (compare with `!= 0` to get a bool)";
                    return Err(bad(what, "a number type", Type::BOOL));
                }
                if t.scalar == Scalar::Bool && !to.is_int() {
                    return Err(bad("operand of a cast to a float", NUMBER, t));
                }
                t.with_scalar(*to)
            }
            Expr::Load { mem, index, lanes } => {
                let elem = self.memory(*mem, *lanes, Use::Load)?;
                check_index(op(*index)?)?;
                Type::vector(elem, *lanes)
            }
            Expr::Extract { vector, lane } => {
                let t = op(*vector)?;
                if !t.is_vector() {
                    return Err(bad("operand of a lane extract", "a vector", t));
                }
                if *lane >= t.lanes {
                    return Err(ErrorKind::LaneOutOfRange { lane: *lane, ty: t });
                }
                Type::scalar(t.scalar)
            }
            Expr::Compose(parts) => {
                let n = parts.len();
                if !(n > 1 && n <= u8::MAX as usize && Type::valid_lanes(n as u8)) {
                    return Err(ErrorKind::BadComposeCount(n));
                }
                let first = op(parts[0])?;
                if first.is_vector() || first.scalar == Scalar::Bool {
                    return Err(bad("element 0 of the vector", "a non-bool scalar", first));
                }
                for (i, p) in parts.iter().enumerate().skip(1) {
                    let t = op(*p)?;
                    if t != first {
                        return Err(mismatch(format!("element {i} of the vector"), first, t));
                    }
                }
                Type::vector(first.scalar, n as u8)
            }
            Expr::Shuffle { value, lane, .. } => {
                let t = op(*value)?;
                if t.is_vector() {
                    return Err(bad("shuffled value", "a scalar", t));
                }
                let tl = op(*lane)?;
                if tl != Type::U32 {
                    return Err(mismatch("lane argument of the shuffle", Type::U32, tl));
                }
                t
            }
            Expr::WaveReduce { value, .. } => {
                let t = op(*value)?;
                if t.is_vector() || t.scalar == Scalar::Bool {
                    return Err(bad("reduced value", "a numeric scalar", t));
                }
                t
            }
        })
    }

    // ---- statements --------------------------------------------------------------------

    fn block(&mut self, block: &'k Block, ord: &mut usize) -> Result<(), ValidationError> {
        let mark = self.scope_stack.len();
        for stmt in block {
            let here = *ord;
            *ord += 1;
            self.stmt(stmt, here, ord)?;
        }
        self.close_scope(mark);
        Ok(())
    }

    fn close_scope(&mut self, mark: usize) {
        while self.scope_stack.len() > mark {
            let v = self.scope_stack.pop().expect("above mark");
            self.in_scope[v.0 as usize] = false;
        }
    }

    /// Checks a variable id and returns its type.
    fn var(&self, ord: usize, v: VarId) -> Result<Type, ValidationError> {
        let len = self.k.vars.len();
        match self.k.vars.get(v.0 as usize) {
            Some(var) => Ok(var.ty),
            None => Err(self.stmt_error(ord, ErrorKind::VarOutOfRange { id: v.0, len })),
        }
    }

    fn define(&mut self, ord: usize, v: VarId) -> Result<(), ValidationError> {
        let i = v.0 as usize;
        if self.defined[i] {
            return Err(self.stmt_error(ord, ErrorKind::DefinedTwice(self.p.var(v))));
        }
        self.defined[i] = true;
        self.in_scope[i] = true;
        self.scope_stack.push(v);
        Ok(())
    }

    /// Checks that `v` may be written here.
    fn writable(&self, ord: usize, v: VarId) -> Result<(), ValidationError> {
        if !self.in_scope[v.0 as usize] {
            return Err(self.stmt_error(ord, ErrorKind::OutOfScope(self.p.var(v))));
        }
        if self.loop_var[v.0 as usize] {
            return Err(self.stmt_error(ord, ErrorKind::AssignToLoopVar(self.p.var(v))));
        }
        Ok(())
    }

    /// Checks that every variable `root` reads is in scope.
    fn uses(&mut self, ord: usize, root: ExprId) -> Result<(), ValidationError> {
        self.stamp += 1;
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            let seen = &mut self.visit_stamp[id.0 as usize];
            if *seen == self.stamp {
                continue;
            }
            *seen = self.stamp;
            let expr = self.k.expr(id);
            if let Expr::Var(v) = expr {
                if !self.in_scope[v.0 as usize] {
                    let kind = ErrorKind::OutOfScope(self.p.var(*v));
                    return Err(self.error(self.path(ord), Some(self.p.expr(root)), kind));
                }
            }
            for_each_child(expr, |c| stack.push(c));
        }
        Ok(())
    }

    fn stmt(
        &mut self,
        stmt: &'k Stmt,
        ord: usize,
        next: &mut usize,
    ) -> Result<(), ValidationError> {
        let len = self.k.exprs.len();
        for r in stmt_roots(stmt) {
            if r.0 as usize >= len {
                return Err(self.stmt_error(ord, ErrorKind::ExprOutOfRange { id: r.0, len }));
            }
            self.uses(ord, r)?;
        }
        let k = self.k;
        let ty = |e: ExprId| k.ty(e);
        let fail = |s: &Self, kind| -> Result<(), ValidationError> { Err(s.stmt_error(ord, kind)) };
        match stmt {
            Stmt::Let { var, value } => {
                let vt = self.var(ord, *var)?;
                if ty(*value) != vt {
                    let what = format!("value of `let {}`", self.p.var(*var));
                    return fail(self, mismatch(what, vt, ty(*value)));
                }
                self.define(ord, *var)?;
            }
            Stmt::Assign { var, value } => {
                let vt = self.var(ord, *var)?;
                self.writable(ord, *var)?;
                if ty(*value) != vt {
                    let what = format!("value assigned to `{}`", self.p.var(*var));
                    return fail(self, mismatch(what, vt, ty(*value)));
                }
            }
            Stmt::Store { mem, index, value } => {
                let vt = ty(*value);
                let elem = self.memory(*mem, vt.lanes, Use::Store);
                let elem = match elem {
                    Ok(e) => e,
                    Err(kind) => return fail(self, kind),
                };
                if let Err(kind) = check_index(ty(*index)) {
                    return fail(self, kind);
                }
                if vt.scalar != elem {
                    let what = format!("stored value (`{}` holds {elem})", self.p.memory(*mem));
                    return fail(self, mismatch(what, vt.with_scalar(elem), vt));
                }
            }
            Stmt::If {
                cond,
                then,
                otherwise,
            } => {
                if ty(*cond) != Type::BOOL {
                    return fail(self, mismatch("`if` condition", Type::BOOL, ty(*cond)));
                }
                self.block(then, next)?;
                self.block(otherwise, next)?;
            }
            Stmt::While { cond, body } => {
                if ty(*cond) != Type::BOOL {
                    return fail(self, mismatch("`while` condition", Type::BOOL, ty(*cond)));
                }
                self.block(body, next)?;
            }
            Stmt::For {
                var,
                start,
                end,
                step,
                body,
            } => {
                let vt = self.var(ord, *var)?;
                if vt.is_vector() || !vt.scalar.is_int() {
                    let what = format!("type of `for` variable `{}`", self.p.var(*var));
                    return fail(self, bad(what, "u32 or i32", vt));
                }
                for (what, e) in [("start", start), ("end", end), ("step", step)] {
                    if ty(*e) != vt {
                        let what = format!("`for` {what} (the loop variable's type)");
                        return fail(self, mismatch(what, vt, ty(*e)));
                    }
                }
                let mark = self.scope_stack.len();
                self.define(ord, *var)?;
                self.loop_var[var.0 as usize] = true;
                self.block(body, next)?;
                self.close_scope(mark);
            }
            Stmt::Return | Stmt::Barrier => {}
            Stmt::Mma { shape, a, b, c, d } => {
                if let Err(kind) = self.mma(*shape, [*a, *b, *c, *d]) {
                    return fail(self, kind);
                }
            }
            Stmt::LoadFragment {
                shape,
                operand,
                frag,
                place,
            } => {
                if let Err(kind) = self.fragment_access(*shape, *operand, *frag, place, Use::Load) {
                    return fail(self, kind);
                }
            }
            Stmt::StoreFragment {
                shape,
                operand,
                frag,
                place,
            } => {
                if let Err(kind) = self.fragment_access(*shape, *operand, *frag, place, Use::Store)
                {
                    return fail(self, kind);
                }
            }
            Stmt::AsyncCopy {
                dst,
                dst_index,
                src,
                src_index,
                lanes,
                pred,
            } => {
                if let Err(kind) = self.async_copy(*dst, *src, *lanes) {
                    return fail(self, kind);
                }
                for e in [dst_index, src_index] {
                    if let Err(kind) = check_index(ty(*e)) {
                        return fail(self, kind);
                    }
                }
                if ty(*pred) != Type::BOOL {
                    return fail(
                        self,
                        mismatch("async copy predicate", Type::BOOL, ty(*pred)),
                    );
                }
            }
            Stmt::WarpgroupMma { n, acc, a, b } => {
                if let Err(kind) = self.warpgroup_mma(*n, *acc, a, b) {
                    return fail(self, kind);
                }
            }
            Stmt::Sync(op) => {
                let needs_engine = matches!(
                    op,
                    SyncOp::MmaFence | SyncOp::MmaCommit | SyncOp::MmaWait(_)
                );
                if needs_engine && self.k.target.warpgroup.is_none() {
                    let kind = ErrorKind::NoWarpgroup {
                        what: op.name(),
                        target: self.k.target.name,
                    };
                    return fail(self, kind);
                }
            }
            Stmt::Atomic {
                op,
                mem,
                index,
                value,
                result,
            } => {
                let elem = match self.memory(*mem, 1, Use::Atomic) {
                    Ok(e) => e,
                    Err(kind) => return fail(self, kind),
                };
                let name = match op {
                    AtomicOp::Add => "add",
                    AtomicOp::Max => "max",
                };
                if !matches!(elem, Scalar::F32 | Scalar::I32 | Scalar::U32) {
                    return fail(self, ErrorKind::BadAtomic { op: name, ty: elem });
                }
                if let Err(kind) = check_index(ty(*index)) {
                    return fail(self, kind);
                }
                let et = Type::scalar(elem);
                if ty(*value) != et {
                    let what = format!(
                        "atomic {name} operand (`{}` holds {elem})",
                        self.p.memory(*mem)
                    );
                    return fail(self, mismatch(what, et, ty(*value)));
                }
                if let Some(r) = result {
                    let rt = self.var(ord, *r)?;
                    if rt != et {
                        let what = format!("atomic result variable `{}`", self.p.var(*r));
                        return fail(self, mismatch(what, et, rt));
                    }
                    if self.in_scope[r.0 as usize] {
                        self.writable(ord, *r)?;
                    } else {
                        self.define(ord, *r)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn collect_places<'k>(
    block: &'k Block,
    parent: Option<usize>,
    branch: Branch,
    out: &mut Vec<Place<'k>>,
) {
    for (index, stmt) in block.iter().enumerate() {
        let me = out.len();
        out.push(Place {
            parent,
            branch,
            index,
            stmt,
        });
        match stmt {
            Stmt::If {
                then, otherwise, ..
            } => {
                collect_places(then, Some(me), Branch::Then, out);
                collect_places(otherwise, Some(me), Branch::Else, out);
            }
            Stmt::For { body, .. } | Stmt::While { body, .. } => {
                collect_places(body, Some(me), Branch::Body, out);
            }
            _ => {}
        }
    }
}
