//! A human-readable printer for the kernel IR.
//!
//! The output is Rust-like and indented, for people reading a kernel (error messages, `greta
//! dump`, test failures):
//!
//! ```text
//! #[target(gfx942)]
//! #[config(T = f16, block = 256)]
//! #[block_size(256, 1, 1)]
//! kernel scale(x: &[f16], y: &mut [f16], n: u32, s: f32) {
//!     shared tile: [f32; 256];
//!
//!     let i: u32 = block_idx.x * 256 + thread_idx.x;
//!     if i < n {
//!         y[i] = cast<f16>(cast<f32>(x[i]) * s);
//!     }
//! }
//! ```
//!
//! Notation, where it departs from Rust:
//! - `cast<T>(v)` is a numeric conversion (lane-wise on vectors);
//! - `x[i..+4]` is a vector access of 4 consecutive elements starting at element `i`;
//! - `v.2` is lane 2 of a vector, `f16x4(a, b, c, d)` builds one;
//! - `select(c, a, b)`, `fma(a, b, c)`, `min`, `max`, `exp`, ... are calls;
//!   `shuffle_xor/down/up/idx(v, lane)` and `wave_sum/max/min(v)` are the wave operations;
//! - literals carry their type unless it is `u32` (`7`) or `f32` (`1.0`): `-3i32`, `0.5f16`,
//!   `1.0bf16`; non-finite floats print as `f32::INFINITY`, `f16::NAN`, ...;
//! - `for i: u32 in (a..b).step_by(s)` names the loop variable's type; the step is left out
//!   when it is the literal 1;
//! - a variable is `let mut` exactly when an `Assign` or an atomic's result writes it;
//! - an atomic whose result variable has no definition before it prints as that definition:
//!   `let old: u32 = atomic_add(&counts[i], 1)`;
//! - an LDS array aligned beyond 16 bytes says so: `shared t: [f16; 8192] align(1024)`;
//! - asynchronous work: `async_copy(lds[i..+8], x[j..+8], pred)`, `acc@0 =
//!   wgmma_m64n128k16(tile(…) at (…), tile(…) at (…) transposed, acc@0)` and the ordering
//!   statements `async_commit()`, `async_wait(1)`, `fence_async_lds()`, `wgmma_fence()`,
//!   `wgmma_commit()`, `wgmma_wait(0)`;
//! - a fragment is `array@offset` (its length is the target instruction's); matrix statements
//!   are `acc@0 = mma_m16n8k16(a@0, b@0, acc@0)`, `a@0 = load_fragment_A_m16n8k16(tile(lds,
//!   base, stride, swizzle(8, 1, 8)) at (row, col))` and `store_fragment_…(tile(…) at (…), f@0)`.
//!
//! Names are printed as written. Where two named things of the kernel (variables, parameters,
//! shared and local arrays) share a name, every one of them gets a suffix that makes it unique:
//! `#<id>` for a variable (`v#3`), `#p<id>`, `#s<id>` and `#l<id>` for parameters, shared and
//! local arrays. A variable with an empty name prints as `#<id>`. Names that do not repeat are
//! printed bare, so ordinary kernels read cleanly.
//!
//! Expressions are printed inline as trees, parenthesised by Rust's precedence. An expression the
//! kernel uses in several places is printed at each place (the IR's sharing is not shown), which
//! is what a reader wants and changes no meaning: expressions are pure, and loads read memory at
//! the statement that uses them.
//!
//! The printer never panics, even on IR that fails verification (the verifier uses it for its
//! messages): an expression id that is out of range prints as `<bad %N>`, a child that does not
//! precede its parent prints as `%N` (so cycles cannot recurse forever), and bad variable or
//! memory ids print as `<bad var N>`, `<bad param N>`, ...
//!
//! The output is deterministic: it depends on the IR alone (no addresses, no hash-map order), and
//! it is injective enough to serve as a content key: different constants, types, names, memories
//! and configurations print differently. **It is used for content hashing** (compile cache and
//! tuning keys), so any change to the format changes every kernel's hash and invalidates those
//! caches; make such changes deliberately.

use std::collections::HashMap;
use std::fmt::{self, Write};

use crate::ir::{Access, Scalar};
use crate::ir::{
    AtomicOp, BinaryOp, Block, Builtin, Const, Expr, ExprId, FragPlace, FragRef, Kernel, LocalId,
    Memory, ParamId, ParamKind, ReduceOp, SharedId, ShuffleMode, Stmt, UnaryOp, VarId,
};

/// The whole kernel, as described in the module docs. Ends with a newline.
pub fn print_kernel(kernel: &Kernel) -> String {
    Printer::new(kernel).kernel()
}

/// One expression of `kernel`, inline, as it would appear in [`print_kernel`]'s output.
pub fn print_expr(kernel: &Kernel, id: ExprId) -> String {
    Printer::new(kernel).expr(id)
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&print_kernel(self))
    }
}

/// Operator precedence levels, loosest first (Rust's order).
mod prec {
    pub const OR: u8 = 1;
    pub const AND: u8 = 2;
    pub const CMP: u8 = 3;
    pub const BITOR: u8 = 4;
    pub const BITXOR: u8 = 5;
    pub const BITAND: u8 = 6;
    pub const SHIFT: u8 = 7;
    pub const ADD: u8 = 8;
    pub const MUL: u8 = 9;
    pub const PREFIX: u8 = 10;
    pub const ATOM: u8 = 11;
}

fn binary_prec(op: BinaryOp) -> u8 {
    use BinaryOp::*;
    match op {
        Or => prec::OR,
        And => prec::AND,
        Eq | Ne | Lt | Le | Gt | Ge => prec::CMP,
        BitOr => prec::BITOR,
        BitXor => prec::BITXOR,
        BitAnd => prec::BITAND,
        Shl | Shr => prec::SHIFT,
        Add | Sub => prec::ADD,
        Mul | Div | Rem => prec::MUL,
        Min | Max => prec::ATOM,
    }
}

/// A printer for one kernel: the disambiguated names are computed once.
pub(crate) struct Printer<'k> {
    k: &'k Kernel,
    vars: Vec<String>,
    params: Vec<String>,
    shared: Vec<String>,
    locals: Vec<String>,
    /// Variables that some `Assign` (or atomic result) writes: printed `let mut`.
    mutable: Vec<bool>,
}

impl<'k> Printer<'k> {
    pub(crate) fn new(k: &'k Kernel) -> Printer<'k> {
        let mut count: HashMap<&str, u32> = HashMap::new();
        let names = k
            .vars
            .iter()
            .map(|v| &v.name)
            .chain(k.params.iter().map(|p| &p.name))
            .chain(k.shared.iter().map(|a| &a.name))
            .chain(k.locals.iter().map(|a| &a.name));
        for n in names {
            *count.entry(n.as_str()).or_default() += 1;
        }
        let name = |n: &str, tag: &str, i: usize| {
            if n.is_empty() {
                format!("#{tag}{i}")
            } else if count[n] > 1 {
                format!("{n}#{tag}{i}")
            } else {
                n.to_string()
            }
        };
        let mut mutable = vec![false; k.vars.len()];
        mark_assigned(&k.body, &mut mutable);
        Printer {
            vars: k
                .vars
                .iter()
                .enumerate()
                .map(|(i, v)| name(&v.name, "", i))
                .collect(),
            params: k
                .params
                .iter()
                .enumerate()
                .map(|(i, p)| name(&p.name, "p", i))
                .collect(),
            shared: k
                .shared
                .iter()
                .enumerate()
                .map(|(i, a)| name(&a.name, "s", i))
                .collect(),
            locals: k
                .locals
                .iter()
                .enumerate()
                .map(|(i, a)| name(&a.name, "l", i))
                .collect(),
            mutable,
            k,
        }
    }

    pub(crate) fn var(&self, v: VarId) -> String {
        self.vars
            .get(v.0 as usize)
            .cloned()
            .unwrap_or_else(|| format!("<bad var {}>", v.0))
    }

    fn param(&self, p: ParamId) -> String {
        self.params
            .get(p.0 as usize)
            .cloned()
            .unwrap_or_else(|| format!("<bad param {}>", p.0))
    }

    pub(crate) fn memory(&self, mem: Memory) -> String {
        match mem {
            Memory::Global(p) => self.param(p),
            Memory::Shared(SharedId(s)) => self
                .shared
                .get(s as usize)
                .cloned()
                .unwrap_or_else(|| format!("<bad shared {s}>")),
            Memory::Local(LocalId(l)) => self
                .locals
                .get(l as usize)
                .cloned()
                .unwrap_or_else(|| format!("<bad local {l}>")),
        }
    }

    fn kernel(&self) -> String {
        let k = self.k;
        let mut out = String::new();
        let _ = writeln!(out, "#[target({})]", k.target.name);
        if !k.config.is_empty() {
            let items: Vec<String> = k.config.iter().map(|(n, v)| format!("{n} = {v}")).collect();
            let _ = writeln!(out, "#[config({})]", items.join(", "));
        }
        if let Some([x, y, z]) = k.block_size {
            let _ = writeln!(out, "#[block_size({x}, {y}, {z})]");
        }
        let params: Vec<String> = k
            .params
            .iter()
            .zip(&self.params)
            .map(|(p, name)| match p.kind {
                ParamKind::Buffer {
                    elem,
                    access: Access::Read,
                } => format!("{name}: &[{elem}]"),
                ParamKind::Buffer {
                    elem,
                    access: Access::ReadWrite,
                } => {
                    format!("{name}: &mut [{elem}]")
                }
                ParamKind::Value(s) => format!("{name}: {s}"),
            })
            .collect();
        let _ = writeln!(out, "kernel {}({}) {{", k.name, params.join(", "));
        for (a, name) in k.shared.iter().zip(&self.shared) {
            let align = if a.align == crate::ir::LDS_ALIGN {
                String::new()
            } else {
                format!(" align({})", a.align)
            };
            let _ = writeln!(out, "    shared {name}: [{}; {}]{align};", a.elem, a.len);
        }
        for (a, name) in k.locals.iter().zip(&self.locals) {
            let _ = writeln!(out, "    local {name}: [{}; {}];", a.elem, a.len);
        }
        let has_arrays = !k.shared.is_empty() || !k.locals.is_empty();
        if has_arrays && !k.body.is_empty() {
            out.push('\n');
        }
        let mut defined = vec![false; k.vars.len()];
        self.block(&k.body, 1, &mut defined, &mut out);
        out.push_str("}\n");
        out
    }

    fn block(&self, block: &Block, depth: usize, defined: &mut [bool], out: &mut String) {
        for stmt in block {
            self.stmt(stmt, depth, defined, out);
        }
    }

    fn indent(depth: usize, out: &mut String) {
        for _ in 0..depth {
            out.push_str("    ");
        }
    }

    fn stmt(&self, stmt: &Stmt, depth: usize, defined: &mut [bool], out: &mut String) {
        Self::indent(depth, out);
        match stmt {
            Stmt::If {
                cond,
                then,
                otherwise,
            } => {
                let _ = writeln!(out, "if {} {{", self.expr(*cond));
                self.block(then, depth + 1, defined, out);
                // `else if` chains print flat, as they were most likely written.
                let mut otherwise = otherwise;
                loop {
                    match otherwise.as_slice() {
                        [] => break,
                        [Stmt::If {
                            cond,
                            then,
                            otherwise: rest,
                        }] => {
                            Self::indent(depth, out);
                            let _ = writeln!(out, "}} else if {} {{", self.expr(*cond));
                            self.block(then, depth + 1, defined, out);
                            otherwise = rest;
                        }
                        _ => {
                            Self::indent(depth, out);
                            out.push_str("} else {\n");
                            self.block(otherwise, depth + 1, defined, out);
                            break;
                        }
                    }
                }
                Self::indent(depth, out);
                out.push_str("}\n");
            }
            Stmt::For { body, .. } | Stmt::While { body, .. } => {
                if let Stmt::For { var, .. } = stmt {
                    if let Some(d) = defined.get_mut(var.0 as usize) {
                        *d = true;
                    }
                }
                let _ = writeln!(out, "{} {{", self.stmt_line(stmt, defined));
                self.block(body, depth + 1, defined, out);
                Self::indent(depth, out);
                out.push_str("}\n");
            }
            _ => {
                let line = self.stmt_line(stmt, defined);
                if let Stmt::Let { var, .. }
                | Stmt::Atomic {
                    result: Some(var), ..
                } = stmt
                {
                    if let Some(d) = defined.get_mut(var.0 as usize) {
                        *d = true;
                    }
                }
                let _ = writeln!(out, "{line};");
            }
        }
    }

    /// One statement on one line, without the trailing `;`, or the header of a compound
    /// statement (`for i: u32 in 0..n`, `if c`, `while c`) without its `{`. `defined` says which
    /// variables already have a definition: an atomic whose result variable has none prints
    /// as its `let`.
    pub(crate) fn stmt_line(&self, stmt: &Stmt, defined: &[bool]) -> String {
        match stmt {
            Stmt::Let { var, value } => {
                let mutable = self.mutable.get(var.0 as usize).copied().unwrap_or(false);
                format!(
                    "let {}{}: {} = {}",
                    if mutable { "mut " } else { "" },
                    self.var(*var),
                    self.var_type(*var),
                    self.expr(*value)
                )
            }
            Stmt::Assign { var, value } => format!("{} = {}", self.var(*var), self.expr(*value)),
            Stmt::Store { mem, index, value } => {
                let lanes = self.k.exprs.get(value.0 as usize).map_or(1, |n| n.ty.lanes);
                format!(
                    "{} = {}",
                    self.access(*mem, *index, lanes),
                    self.expr(*value)
                )
            }
            Stmt::If { cond, .. } => format!("if {}", self.expr(*cond)),
            Stmt::While { cond, .. } => format!("while {}", self.expr(*cond)),
            Stmt::For {
                var,
                start,
                end,
                step,
                ..
            } => {
                let is_one = matches!(
                    self.k.exprs.get(step.0 as usize).map(|n| &n.expr),
                    Some(Expr::Const(Const::U32(1) | Const::I32(1)))
                );
                let range = format!("{}..{}", self.expr(*start), self.expr(*end));
                let range = if is_one {
                    range
                } else {
                    format!("({range}).step_by({})", self.expr(*step))
                };
                format!("for {}: {} in {range}", self.var(*var), self.var_type(*var))
            }
            Stmt::Return => "return".to_string(),
            Stmt::Barrier => "barrier()".to_string(),
            Stmt::Atomic {
                op,
                mem,
                index,
                value,
                result,
            } => {
                let name = match op {
                    AtomicOp::Add => "atomic_add",
                    AtomicOp::Max => "atomic_max",
                };
                let call = format!(
                    "{name}(&{}, {})",
                    self.access(*mem, *index, 1),
                    self.expr(*value)
                );
                match result {
                    None => call,
                    Some(v) if defined.get(v.0 as usize).copied().unwrap_or(true) => {
                        format!("{} = {call}", self.var(*v))
                    }
                    Some(v) => format!("let {}: {} = {call}", self.var(*v), self.var_type(*v)),
                }
            }
            Stmt::Mma { shape, a, b, c, d } => format!(
                "{} = mma_{shape}({}, {}, {})",
                self.frag(*d),
                self.frag(*a),
                self.frag(*b),
                self.frag(*c)
            ),
            Stmt::LoadFragment {
                shape,
                operand,
                frag,
                place,
            } => format!(
                "{} = load_fragment_{}_{shape}({})",
                self.frag(*frag),
                operand.name(),
                self.place(place)
            ),
            Stmt::StoreFragment {
                shape,
                operand,
                frag,
                place,
            } => format!(
                "store_fragment_{}_{shape}({}, {})",
                operand.name(),
                self.place(place),
                self.frag(*frag)
            ),
            Stmt::AsyncCopy {
                dst,
                dst_index,
                src,
                src_index,
                lanes,
                pred,
            } => format!(
                "async_copy({}, {}, {})",
                self.access(*dst, *dst_index, *lanes),
                self.access(*src, *src_index, *lanes),
                self.expr(*pred)
            ),
            Stmt::WarpgroupMma { n, acc, a, b } => format!(
                "{} = wgmma_m64n{n}k16({}, {}, {})",
                self.frag(*acc),
                self.place(a),
                self.place(b),
                self.frag(*acc)
            ),
            Stmt::Sync(op) => op.name(),
        }
    }

    /// A fragment as `array@offset`.
    fn frag(&self, f: FragRef) -> String {
        format!("{}@{}", self.memory(Memory::Local(f.local)), f.offset)
    }

    /// A fragment's place: `tile(mem, base, stride[, swizzle(chunk, row_div, period)]) at
    /// (row, col)[ transposed]`.
    fn place(&self, p: &FragPlace) -> String {
        let t = &p.tile;
        let swizzle = if t.swizzle.is_none() {
            String::new()
        } else {
            let s = t.swizzle;
            format!(", swizzle({}, {}, {})", s.chunk, s.row_div, s.period)
        };
        format!(
            "tile({}, {}, {}{swizzle}) at ({}, {}){}",
            self.memory(t.mem),
            self.expr(t.base),
            self.expr(t.stride),
            self.expr(p.row),
            self.expr(p.col),
            if p.transposed { " transposed" } else { "" }
        )
    }

    fn var_type(&self, v: VarId) -> String {
        self.k
            .vars
            .get(v.0 as usize)
            .map_or_else(|| "?".to_string(), |v| v.ty.to_string())
    }

    fn access(&self, mem: Memory, index: ExprId, lanes: u8) -> String {
        if lanes == 1 {
            format!("{}[{}]", self.memory(mem), self.expr(index))
        } else {
            format!("{}[{}..+{lanes}]", self.memory(mem), self.expr(index))
        }
    }

    /// One expression, inline.
    pub(crate) fn expr(&self, id: ExprId) -> String {
        let mut out = String::new();
        if (id.0 as usize) < self.k.exprs.len() {
            self.write(id, 0, &mut out);
        } else {
            let _ = write!(out, "<bad %{}>", id.0);
        }
        out
    }

    /// Writes child `c` of `parent`, parenthesised if it binds looser than `min`.
    fn child(&self, parent: ExprId, c: ExprId, min: u8, out: &mut String) {
        if c.0 as usize >= self.k.exprs.len() {
            let _ = write!(out, "<bad %{}>", c.0);
        } else if c >= parent {
            // Not a tree: printing it could recurse forever. The verifier rejects it.
            let _ = write!(out, "%{}", c.0);
        } else {
            self.write(c, min, out);
        }
    }

    fn own_prec(&self, id: ExprId) -> u8 {
        match &self.k.exprs[id.0 as usize].expr {
            Expr::Binary(op, ..) => binary_prec(*op),
            Expr::Unary(UnaryOp::Neg | UnaryOp::Not, _) => prec::PREFIX,
            Expr::Const(c) if const_text(*c).starts_with('-') => prec::PREFIX,
            _ => prec::ATOM,
        }
    }

    /// Writes `id` (in range) into `out`, in parentheses if it binds looser than `min`.
    fn write(&self, id: ExprId, min: u8, out: &mut String) {
        let own = self.own_prec(id);
        if own < min {
            out.push('(');
        }
        self.write_bare(id, out);
        if own < min {
            out.push(')');
        }
    }

    fn call(&self, parent: ExprId, name: &str, args: &[ExprId], out: &mut String) {
        out.push_str(name);
        out.push('(');
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            self.child(parent, *a, 0, out);
        }
        out.push(')');
    }

    fn write_bare(&self, id: ExprId, out: &mut String) {
        let node = &self.k.exprs[id.0 as usize];
        match &node.expr {
            Expr::Const(c) => out.push_str(&const_text(*c)),
            Expr::Param(p) => out.push_str(&self.param(*p)),
            Expr::Var(v) => out.push_str(&self.var(*v)),
            Expr::Builtin(b) => out.push_str(&builtin_text(*b)),
            Expr::Unary(op @ (UnaryOp::Neg | UnaryOp::Not), a) => {
                out.push_str(if *op == UnaryOp::Neg { "-" } else { "!" });
                let mut operand = String::new();
                self.child(id, *a, prec::PREFIX, &mut operand);
                // `- -x`, not `--x`.
                if *op == UnaryOp::Neg && operand.starts_with('-') {
                    let _ = write!(out, "({operand})");
                } else {
                    out.push_str(&operand);
                }
            }
            Expr::Unary(op, a) => self.call(id, op.name(), &[*a], out),
            Expr::Binary(op, a, b) => match op.symbol() {
                None => self.call(id, op.name(), &[*a, *b], out),
                Some(sym) => {
                    let p = binary_prec(*op);
                    // Left-associative; comparisons do not chain, so both sides bind tighter.
                    let left = if op.is_comparison() { p + 1 } else { p };
                    self.child(id, *a, left, out);
                    let _ = write!(out, " {sym} ");
                    self.child(id, *b, p + 1, out);
                }
            },
            Expr::Fma(a, b, c) => self.call(id, "fma", &[*a, *b, *c], out),
            Expr::Select { cond, a, b } => self.call(id, "select", &[*cond, *a, *b], out),
            Expr::Cast { to, value } => self.call(id, &format!("cast<{to}>"), &[*value], out),
            Expr::Load { mem, index, lanes } => {
                out.push_str(&self.memory(*mem));
                out.push('[');
                self.child(id, *index, 0, out);
                if *lanes != 1 {
                    let _ = write!(out, "..+{lanes}");
                }
                out.push(']');
            }
            Expr::Extract { vector, lane } => {
                self.child(id, *vector, prec::ATOM, out);
                let _ = write!(out, ".{lane}");
            }
            Expr::Compose(parts) => {
                let scalar = parts
                    .first()
                    .and_then(|p| self.k.exprs.get(p.0 as usize))
                    .map_or_else(|| node.ty.scalar, |n| n.ty.scalar);
                let name = format!("{}x{}", scalar, parts.len());
                self.call(id, &name, parts, out);
            }
            Expr::Shuffle { mode, value, lane } => {
                let name = match mode {
                    ShuffleMode::Xor => "shuffle_xor",
                    ShuffleMode::Down => "shuffle_down",
                    ShuffleMode::Up => "shuffle_up",
                    ShuffleMode::Idx => "shuffle_idx",
                };
                self.call(id, name, &[*value, *lane], out);
            }
            Expr::WaveReduce { op, value } => {
                let name = match op {
                    ReduceOp::Sum => "wave_sum",
                    ReduceOp::Max => "wave_max",
                    ReduceOp::Min => "wave_min",
                };
                self.call(id, name, &[*value], out);
            }
        }
    }
}

fn mark_assigned(block: &Block, mutable: &mut [bool]) {
    for stmt in block {
        match stmt {
            Stmt::Assign { var, .. }
            | Stmt::Atomic {
                result: Some(var), ..
            } => {
                if let Some(m) = mutable.get_mut(var.0 as usize) {
                    *m = true;
                }
            }
            Stmt::If {
                then, otherwise, ..
            } => {
                mark_assigned(then, mutable);
                mark_assigned(otherwise, mutable);
            }
            Stmt::For { body, .. } | Stmt::While { body, .. } => mark_assigned(body, mutable),
            _ => {}
        }
    }
}

fn builtin_text(b: Builtin) -> String {
    match b {
        Builtin::ThreadIdx(a) => format!("thread_idx.{}", a.name()),
        Builtin::BlockIdx(a) => format!("block_idx.{}", a.name()),
        Builtin::BlockDim(a) => format!("block_dim.{}", a.name()),
        Builtin::GridDim(a) => format!("grid_dim.{}", a.name()),
        Builtin::LaneId => "lane_id".to_string(),
        Builtin::WaveSize => "wave_size".to_string(),
    }
}

/// A literal. Floats print the shortest text that reads back to the same value (`{:?}` of the
/// exact `f32` value; f16 and bf16 widen to f32 exactly), so distinct constants print distinctly.
fn const_text(c: Const) -> String {
    fn float(v: f32, ty: Scalar) -> String {
        let suffix = if ty == Scalar::F32 { "" } else { ty.name() };
        if v.is_nan() {
            format!("{ty}::NAN")
        } else if v == f32::INFINITY {
            format!("{ty}::INFINITY")
        } else if v == f32::NEG_INFINITY {
            format!("{ty}::NEG_INFINITY")
        } else {
            format!("{v:?}{suffix}")
        }
    }
    match c {
        Const::F16(v) => float(v.to_f32(), Scalar::F16),
        Const::BF16(v) => float(v.to_f32(), Scalar::BF16),
        Const::F32(v) => float(v, Scalar::F32),
        Const::I32(v) => format!("{v}i32"),
        Const::U32(v) => format!("{v}"),
        Const::Bool(v) => format!("{v}"),
    }
}
