//! IR → HIP C++, one emitter for both GPU families.
//!
//! The output is one self-contained translation unit: a header comment (kernel, target,
//! comptime configuration, how to compile it), the prelude ([`prelude`]) and one
//! `extern "C" __global__` function named like the IR kernel, so the runtime finds it by name.
//! Everything family-specific comes from the [`Dialect`] table through the prelude; the kernel
//! body itself is the same text for AMD and NVIDIA.
//!
//! Expressions print inline as C expressions with only the parentheses C needs (plus a few for
//! clarity around bitwise operators). Vector-valued lane-wise operations become GNU statement
//! expressions that bind their operands once and apply the scalar rule per lane, so a vector
//! operand (a 16-byte load, say) is evaluated exactly once.

pub mod dialect;
mod matrix;
mod names;
pub mod prelude;

use std::fmt::Write;

use greta_dsl::ir::{
    Access, AtomicOp, BinaryOp, Block, Builtin, Const, Expr, ExprId, Kernel, Memory, ParamKind,
    ReduceOp, Scalar, ShuffleMode, Stmt, Type, UnaryOp, VarId,
};
use greta_dsl::valid::KernelInfo;
use greta_dsl::Target;

pub use dialect::Dialect;
use names::Names;

use crate::CodegenError;

/// HIP C++ source of the verified `kernel` for `target` (AMD: compile as HIP; NVIDIA: compile
/// as CUDA). `info` is what the verifier learnt about the kernel.
pub fn write_string(
    kernel: &Kernel,
    info: &KernelInfo,
    target: &Target,
) -> Result<String, CodegenError> {
    Emitter::new(kernel, info, target)?.kernel()
}

/// C name of an IR type: the prelude's typedefs (`f32`, `f16x8`, ...).
pub fn c_type(ty: Type) -> String {
    let s = c_scalar(ty.scalar);
    if ty.lanes == 1 {
        s.to_string()
    } else {
        format!("{s}x{}", ty.lanes)
    }
}

fn c_scalar(s: Scalar) -> &'static str {
    match s {
        Scalar::F16 => "f16",
        Scalar::BF16 => "bf16",
        Scalar::F32 => "f32",
        Scalar::I32 => "i32",
        Scalar::U32 => "u32",
        Scalar::Bool => "bool",
    }
}

/// C operator precedence, smaller binds tighter (C++ standard order).
mod prec {
    pub const PRIMARY: u8 = 0;
    pub const UNARY: u8 = 2;
    pub const MUL: u8 = 3;
    pub const ADD: u8 = 4;
    pub const SHIFT: u8 = 5;
    pub const REL: u8 = 6;
    pub const EQ: u8 = 7;
    pub const BITAND: u8 = 8;
    pub const BITXOR: u8 = 9;
    pub const BITOR: u8 = 10;
    pub const COND: u8 = 13;
}

/// A printed expression and the precedence of its outermost operator.
#[derive(Clone, Debug)]
struct Code {
    text: String,
    prec: u8,
}

impl Code {
    fn new(text: impl Into<String>, prec: u8) -> Code {
        Code {
            text: text.into(),
            prec,
        }
    }
    fn primary(text: impl Into<String>) -> Code {
        Code::new(text, prec::PRIMARY)
    }
    /// The text, parenthesised if its operator binds looser than `max`.
    fn at(&self, max: u8) -> String {
        if self.prec > max {
            format!("({})", self.text)
        } else {
            self.text.clone()
        }
    }
    /// As an operand of an infix operator of precedence `op`; `right` for the right operand
    /// (left associativity). Mixed bitwise/shift/comparison operands get parentheses for the
    /// reader even where C does not need them.
    fn operand(&self, op: u8, right: bool) -> String {
        let binary = self.prec > prec::UNARY && self.prec < prec::COND;
        let fussy = (prec::SHIFT..=prec::BITOR).contains(&op)
            && binary
            && (self.prec != op || op == prec::SHIFT);
        if self.prec > op || (right && self.prec == op) || fussy {
            format!("({})", self.text)
        } else {
            self.text.clone()
        }
    }
    /// As the operand of a prefix operator.
    fn prefix_operand(&self) -> String {
        if self.prec > prec::UNARY || self.text.starts_with(['-', '+']) {
            format!("({})", self.text)
        } else {
            self.text.clone()
        }
    }
}

struct Emitter<'k> {
    k: &'k Kernel,
    info: &'k KernelInfo,
    /// The ordinal (program pre-order, as [`KernelInfo::shared`] counts) of the next statement.
    ord: usize,
    target: &'k Target,
    dialect: &'static Dialect,
    params: Vec<String>,
    vars: Vec<String>,
    shared: Vec<String>,
    locals: Vec<String>,
    names: Names,
    out: String,
    indent: usize,
    /// Which variables have a C declaration in scope, and which each open scope declared.
    declared: Vec<bool>,
    scopes: Vec<Vec<VarId>>,
    /// Counter for statement-expression temporaries (`greta_t0`, ...; a prefix IR names never get).
    temps: u32,
    /// Expressions used more than once by the current statement, bound to `greta_e<n>`.
    bound: std::collections::HashMap<ExprId, String>,
}

type R<T> = Result<T, CodegenError>;

impl<'k> Emitter<'k> {
    fn new(k: &'k Kernel, info: &'k KernelInfo, target: &'k Target) -> R<Emitter<'k>> {
        let dialect = Dialect::for_family(target.family);
        if !names::is_valid_symbol(&k.name) {
            return Err(CodegenError::Unsupported {
                kernel: k.name.clone(),
                message: "the kernel name must be a C identifier (it is the exported symbol), \
                          not a keyword and not starting with `__` or `greta_`"
                    .into(),
            });
        }
        let mut names = Names::default();
        names.reserve(&k.name);
        let params = k.params.iter().map(|p| names.fresh(&p.name)).collect();
        let shared = k.shared.iter().map(|a| names.fresh(&a.name)).collect();
        let locals = k.locals.iter().map(|a| names.fresh(&a.name)).collect();
        let vars = k.vars.iter().map(|v| names.fresh(&v.name)).collect();
        Ok(Emitter {
            k,
            info,
            ord: 0,
            target,
            dialect,
            params,
            vars,
            shared,
            locals,
            names,
            out: String::new(),
            indent: 0,
            declared: vec![false; k.vars.len()],
            scopes: Vec::new(),
            temps: 0,
            bound: Default::default(),
        })
    }

    fn err<T>(&self, message: impl Into<String>) -> R<T> {
        Err(CodegenError::Unsupported {
            kernel: self.k.name.clone(),
            message: message.into(),
        })
    }

    fn line(&mut self, text: &str) {
        for _ in 0..self.indent {
            self.out.push_str("    ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    // ---- kernel -------------------------------------------------------------------------------

    fn kernel(mut self) -> R<String> {
        let k = self.k;
        self.header();
        self.out
            .push_str(&prelude::prelude(self.dialect, self.target.wave_size));
        let info = self.info;
        let lds_addresses =
            !info.matrix.is_empty() || info.async_copies || !info.warpgroup.is_empty();
        self.out.push_str(&matrix::prelude_part(
            &info.matrix,
            lds_addresses,
            self.target,
        ));
        if !self.info.warpgroup.is_empty() {
            self.out.push_str(matrix::warpgroup_prelude());
        }
        self.out.push('\n');

        let mut params = Vec::new();
        for (p, name) in k.params.iter().zip(&self.params) {
            params.push(match &p.kind {
                ParamKind::Buffer {
                    elem,
                    access: Access::Read,
                } => {
                    format!("const {}* __restrict__ {name}", c_scalar(*elem))
                }
                ParamKind::Buffer {
                    elem,
                    access: Access::ReadWrite,
                } => {
                    format!("{}* __restrict__ {name}", c_scalar(*elem))
                }
                ParamKind::Value(s) => format!("{} {name}", c_scalar(*s)),
            });
        }
        let threads = match k.block_size {
            Some([x, y, z]) => x.saturating_mul(y).saturating_mul(z),
            None => self.target.max_block_threads,
        };
        let bounds = self.dialect.launch_bounds(threads);
        self.line(&format!("extern \"C\" __global__ {bounds}"));
        self.line(&format!("void {}({}) {{", k.name, params.join(", ")));
        self.indent += 1;
        let dynamic = k.dynamic_lds();
        if let Some(d) = &dynamic {
            // More LDS than the target lets a block declare statically: one dynamic
            // allocation (the runtime raises the limit and passes its size at launch).
            self.line(&format!(
                "// {} bytes of dynamic LDS (over the {}-byte static limit)",
                d.bytes, self.target.lds_bytes
            ));
            self.line(&format!(
                "extern __shared__ __attribute__((aligned({}))) unsigned char greta_lds_dynamic[];",
                k.lds_align()
            ));
        }
        for (i, a) in k.shared.iter().enumerate() {
            if a.len == 0 {
                return self.err(format!("shared array `{}` has length 0", a.name));
            }
            let line = match &dynamic {
                Some(d) => format!(
                    "{t}* const {name} = reinterpret_cast<{t}*>(greta_lds_dynamic + {off});",
                    t = c_scalar(a.elem),
                    name = self.shared[i],
                    off = d.offsets[i]
                ),
                None => format!(
                    "__shared__ __attribute__((aligned({}))) {} {}[{}];",
                    a.align,
                    c_scalar(a.elem),
                    self.shared[i],
                    a.len
                ),
            };
            self.line(&line);
        }
        for (i, a) in k.locals.iter().enumerate() {
            if a.len == 0 {
                return self.err(format!("local array `{}` has length 0", a.name));
            }
            let line = format!(
                "alignas(16) {} {}[{}];",
                c_scalar(a.elem),
                self.locals[i],
                a.len
            );
            self.line(&line);
        }
        self.block(&k.body)?;
        self.indent -= 1;
        self.line("}");
        Ok(self.out)
    }

    fn header(&mut self) {
        let k = self.k;
        let t = self.target;
        let one_line = |s: String| s.replace(['\n', '\r'], " ");
        let config = if k.config.is_empty() {
            "(none)".to_string()
        } else {
            one_line(k.config_string())
        };
        let block = match k.block_size {
            Some([x, y, z]) => format!("{x}x{y}x{z} (launches must use it)"),
            None => "chosen at launch".to_string(),
        };
        let _ = write!(
            self.out,
            "// Generated by greta-codegen {version}. Do not edit: regenerate from the kernel's IR.
//
// kernel:     {name}
// target:     {target} ({family:?}, wave size {wave})
// language:   {lang}
// config:     {config}
// block size: {block}
// compile:    {compile}

",
            version = crate::Via::Hip.version(),
            name = k.name,
            target = t.name,
            family = t.family,
            wave = t.wave_size,
            lang = self.dialect.language,
            compile = crate::toolchain::compile_hint(t),
        );
    }

    // ---- statements ---------------------------------------------------------------------------

    fn block(&mut self, block: &Block) -> R<()> {
        self.scopes.push(Vec::new());
        for s in block {
            self.stmt(s)?;
        }
        for v in self.scopes.pop().unwrap_or_default() {
            self.declared[v.0 as usize] = false;
        }
        Ok(())
    }

    fn var_name(&self, v: VarId) -> R<&str> {
        match self.vars.get(v.0 as usize) {
            Some(n) => Ok(n),
            None => self.err(format!("variable #{} does not exist", v.0)),
        }
    }

    /// Declare `v` in the innermost scope; returns its C declaration prefix (`f32 x`).
    fn declare(&mut self, v: VarId) -> R<String> {
        let name = self.var_name(v)?.to_string();
        self.declared[v.0 as usize] = true;
        if let Some(scope) = self.scopes.last_mut() {
            scope.push(v);
        }
        Ok(format!("{} {name}", c_type(self.k.var(v).ty)))
    }

    /// `var = value` or, if `var` has no declaration in scope yet, `T var = value`.
    fn define_or_assign(&mut self, v: VarId, value: &str) -> R<()> {
        let lhs = if self.declared[v.0 as usize] {
            self.var_name(v)?.to_string()
        } else {
            self.declare(v)?
        };
        self.line(&format!("{lhs} = {value};"));
        Ok(())
    }

    /// One statement. Expressions it uses more than once (the IR is a DAG; the verifier lists
    /// them in [`KernelInfo::shared`]) are first bound to constants, so the C text stays linear
    /// in the IR's size and each is evaluated once. This is exact: a statement's loads all
    /// happen before its own store anyway. A `while` condition is re-evaluated every iteration,
    /// so the verifier lists nothing for it.
    fn stmt(&mut self, s: &Stmt) -> R<()> {
        let ord = self.ord;
        self.ord += 1;
        // Bindings of an enclosing statement must not leak into its body: the body may change
        // the variables and memory they read.
        self.bound.clear();
        let info = self.info;
        let Some(shared) = info.shared.get(ord) else {
            return self.err(format!(
                "statement {ord} is missing from the verifier's info"
            ));
        };
        for &id in shared {
            let code = self.expr(id)?;
            let name = format!("greta_e{}", self.temps);
            self.temps += 1;
            self.line(&format!(
                "const {} {name} = {};",
                c_type(self.ty(id)?),
                code.text
            ));
            self.bound.insert(id, name);
        }
        let result = self.stmt_inner(s);
        self.bound.clear();
        result
    }

    fn stmt_inner(&mut self, s: &Stmt) -> R<()> {
        match s {
            Stmt::Let { var, value } => {
                let value = self.expr(*value)?.text;
                let decl = self.declare(*var)?;
                self.line(&format!("{decl} = {value};"));
            }
            Stmt::Assign { var, value } => {
                let value = self.expr(*value)?.text;
                self.define_or_assign(*var, &value)?;
            }
            Stmt::Store { mem, index, value } => {
                let ty = self.ty(*value)?;
                let place = self.place(*mem, *index, ty.lanes, true)?;
                let elem = self.mem_elem(*mem)?;
                if ty.scalar != elem {
                    return self.err(format!(
                        "store of {ty} into `{}` of {elem}",
                        self.k.memory_name(*mem)
                    ));
                }
                let value = self.expr(*value)?.text;
                self.line(&format!("{place} = {value};"));
            }
            Stmt::If {
                cond,
                then,
                otherwise,
            } => {
                let c = self.expr(*cond)?.text;
                self.line(&format!("if ({c}) {{"));
                self.if_tail(then, otherwise)?;
            }
            Stmt::For {
                var,
                start,
                end,
                step,
                body,
            } => self.for_loop(*var, *start, *end, *step, body)?,
            Stmt::While { cond, body } => {
                let c = self.expr(*cond)?.text;
                self.line(&format!("while ({c}) {{"));
                self.indent += 1;
                self.block(body)?;
                self.indent -= 1;
                self.line("}");
            }
            Stmt::Return => self.line("return;"),
            Stmt::Mma { shape, a, b, c, d } => self.mma(*shape, [*a, *b, *c, *d])?,
            Stmt::LoadFragment {
                shape,
                operand,
                frag,
                place,
            } => self.fragment_access(*shape, *operand, *frag, place, false)?,
            Stmt::StoreFragment {
                shape,
                operand,
                frag,
                place,
            } => self.fragment_access(*shape, *operand, *frag, place, true)?,
            Stmt::AsyncCopy {
                dst,
                dst_index,
                src,
                src_index,
                lanes,
                pred,
            } => self.async_copy(*dst, *dst_index, *src, *src_index, *lanes, *pred)?,
            Stmt::WarpgroupMma { n, acc, a, b } => self.warpgroup_mma(*n, *acc, a, b)?,
            Stmt::Sync(op) => self.sync_op(*op)?,
            Stmt::Barrier => self.line("greta_barrier();"),
            Stmt::Atomic {
                op,
                mem,
                index,
                value,
                result,
            } => {
                let elem = self.mem_elem(*mem)?;
                if !matches!(elem, Scalar::F32 | Scalar::I32 | Scalar::U32) {
                    return self.err(format!(
                        "atomics on {elem} are not supported (f32, i32, u32)"
                    ));
                }
                if matches!(mem, Memory::Local(_)) {
                    return self.err("atomics on a per-thread local array make no sense");
                }
                let place = self.place(*mem, *index, 1, true)?;
                let value = self.expr(*value)?.text;
                let f = match op {
                    AtomicOp::Add => "greta_atomic_add",
                    AtomicOp::Max => "greta_atomic_max",
                };
                let call = format!("{f}(&{place}, {value})");
                match result {
                    None => self.line(&format!("{call};")),
                    Some(v) => {
                        let name = self.var_name(*v)?.to_string();
                        if self.k.var(*v).ty != Type::scalar(elem) {
                            return self.err(format!("atomic result `{name}` has the wrong type"));
                        }
                        self.define_or_assign(*v, &call)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The rest of an `if` after its header: then-block, `else if` chains, `else`.
    fn if_tail(&mut self, then: &Block, otherwise: &Block) -> R<()> {
        self.indent += 1;
        self.block(then)?;
        self.indent -= 1;
        match otherwise.as_slice() {
            [] => self.line("}"),
            // `else if` when the nested `if` needs no bindings before its condition.
            [Stmt::If {
                cond,
                then,
                otherwise,
            }] if self.info.shared.get(self.ord).is_some_and(Vec::is_empty) => {
                self.ord += 1;
                self.bound.clear();
                let c = self.expr(*cond)?.text;
                self.line(&format!("}} else if ({c}) {{"));
                self.if_tail(then, otherwise)?;
            }
            _ => {
                self.line("} else {");
                self.indent += 1;
                self.block(otherwise)?;
                self.indent -= 1;
                self.line("}");
            }
        }
        Ok(())
    }

    /// `for var in (start..end).step_by(step)`: bounds are evaluated once, so a bound that could
    /// change inside the loop (it reads a variable or memory) is bound to a constant first.
    fn for_loop(
        &mut self,
        var: VarId,
        start: ExprId,
        end: ExprId,
        step: ExprId,
        body: &Block,
    ) -> R<()> {
        let ty = match self.k.vars.get(var.0 as usize) {
            Some(v) => v.ty,
            None => return self.err(format!("loop variable #{} does not exist", var.0)),
        };
        if !matches!(
            ty,
            Type {
                scalar: Scalar::I32 | Scalar::U32,
                lanes: 1
            }
        ) {
            return self.err(format!("loop variable of type {ty} (must be u32 or i32)"));
        }
        let name = self.var_name(var)?.to_string();
        let tn = c_type(ty);
        let hoist = !self.invariant(end)? || !self.invariant(step)?;
        let start_c = self.expr(start)?.text;
        let mut end_c = self.expr(end)?;
        let mut step_c = self.expr(step)?;
        self.scopes.push(Vec::new());
        if hoist {
            self.line("{");
            self.indent += 1;
            let end_name = self.names.fresh(&format!("{name}_end"));
            let step_name = self.names.fresh(&format!("{name}_step"));
            self.line(&format!("const {tn} {end_name} = {};", end_c.text));
            self.line(&format!("const {tn} {step_name} = {};", step_c.text));
            end_c = Code::primary(end_name);
            step_c = Code::primary(step_name);
        }
        let decl = self.declare(var)?;
        let step_text = if step_c.text == "1" || step_c.text == "1u" {
            format!("++{name}")
        } else {
            format!("{name} += {}", step_c.text)
        };
        self.line(&format!(
            "for ({decl} = {start_c}; {name} < {}; {step_text}) {{",
            end_c.operand(prec::REL, true)
        ));
        self.indent += 1;
        self.block(body)?;
        self.indent -= 1;
        self.line("}");
        if hoist {
            self.indent -= 1;
            self.line("}");
        }
        for v in self.scopes.pop().unwrap_or_default() {
            self.declared[v.0 as usize] = false;
        }
        Ok(())
    }

    /// Whether an expression's value cannot change while a loop runs (no variables, no memory).
    fn invariant(&self, id: ExprId) -> R<bool> {
        match self.info.invariant.get(id.0 as usize) {
            Some(&v) => Ok(v),
            None => self.err(format!("expression #{} does not exist", id.0)),
        }
    }

    // ---- memory -------------------------------------------------------------------------------

    fn mem_elem(&self, mem: Memory) -> R<Scalar> {
        match self.k.memory_elem(mem) {
            Some(s) => Ok(s),
            None => self.err(format!("{mem:?} is not a buffer, shared or local array")),
        }
    }

    /// The C lvalue/rvalue for `lanes` elements of `mem` at element `index`. Vector accesses
    /// reinterpret the element address as a pointer to the vector type: one naturally aligned
    /// wide access (the IR requires `index` to be a multiple of `lanes`).
    /// The C name of a memory object; an error for a write to a read-only buffer.
    fn memory_name(&self, mem: Memory, write: bool) -> R<String> {
        Ok(match mem {
            Memory::Global(p) => {
                if let ParamKind::Buffer {
                    access: Access::Read,
                    ..
                } = self.k.param(p).kind
                {
                    if write {
                        return self.err(format!(
                            "write to read-only buffer `{}`",
                            self.k.param(p).name
                        ));
                    }
                }
                self.params[p.0 as usize].clone()
            }
            Memory::Shared(s) => self.shared[s.0 as usize].clone(),
            Memory::Local(l) => self.locals[l.0 as usize].clone(),
        })
    }

    fn place(&mut self, mem: Memory, index: ExprId, lanes: u8, write: bool) -> R<String> {
        let elem = self.mem_elem(mem)?;
        let name = self.memory_name(mem, write)?;
        let it = self.ty(index)?;
        if !matches!(
            it,
            Type {
                scalar: Scalar::I32 | Scalar::U32,
                lanes: 1
            }
        ) {
            return self.err(format!(
                "index into `{name}` has type {it} (must be u32 or i32)"
            ));
        }
        let idx = self.expr(index)?.text;
        if lanes == 1 {
            return Ok(format!("{name}[{idx}]"));
        }
        if !Type::valid_lanes(lanes) {
            return self.err(format!("vector of {lanes} lanes"));
        }
        if elem == Scalar::Bool {
            return self.err("vector loads and stores of bool (bool vectors are bit-packed in C)");
        }
        let vt = c_type(Type::vector(elem, lanes));
        let cv = if write { "" } else { "const " };
        Ok(format!("*reinterpret_cast<{cv}{vt}*>(&{name}[{idx}])"))
    }

    // ---- expressions --------------------------------------------------------------------------

    fn node(&self, id: ExprId) -> R<&'k Expr> {
        match self.k.exprs.get(id.0 as usize) {
            Some(n) => Ok(&n.expr),
            None => self.err(format!("expression #{} does not exist", id.0)),
        }
    }

    fn ty(&self, id: ExprId) -> R<Type> {
        match self.k.exprs.get(id.0 as usize) {
            Some(n) => Ok(n.ty),
            None => self.err(format!("expression #{} does not exist", id.0)),
        }
    }

    fn expr(&mut self, id: ExprId) -> R<Code> {
        if let Some(name) = self.bound.get(&id) {
            return Ok(Code::primary(name.clone()));
        }
        let ty = self.ty(id)?;
        Ok(match self.node(id)? {
            Expr::Const(c) => constant(*c),
            Expr::Param(p) => match self.k.params.get(p.0 as usize).map(|p| &p.kind) {
                Some(ParamKind::Value(_)) => Code::primary(self.params[p.0 as usize].clone()),
                Some(ParamKind::Buffer { .. }) => {
                    return self.err("a buffer parameter used as a value");
                }
                None => return self.err(format!("parameter #{} does not exist", p.0)),
            },
            Expr::Var(v) => Code::primary(self.var_name(*v)?.to_string()),
            Expr::Builtin(b) => self.builtin(*b),
            Expr::Unary(op, a) => {
                let s = self.ty(*a)?.scalar;
                self.lanewise(ty, &[*a], |e, x| e.unary(*op, s, &x[0]))?
            }
            Expr::Binary(op, a, b) => {
                let s = self.ty(*a)?.scalar;
                self.lanewise(ty, &[*a, *b], |e, x| e.binary(*op, s, &x[0], &x[1]))?
            }
            Expr::Fma(a, b, c) => self.lanewise(ty, &[*a, *b, *c], |_, x| {
                Ok(Code::primary(format!(
                    "greta_fma({}, {}, {})",
                    x[0].text, x[1].text, x[2].text
                )))
            })?,
            Expr::Select { cond, a, b } => self.lanewise(ty, &[*cond, *a, *b], |_, x| {
                Ok(Code::new(
                    format!(
                        "{} ? {} : {}",
                        x[0].at(prec::COND - 1),
                        x[1].at(prec::COND - 1),
                        x[2].at(prec::COND - 1)
                    ),
                    prec::COND,
                ))
            })?,
            Expr::Cast { to, value } => {
                let from = self.ty(*value)?.scalar;
                let to = *to;
                self.lanewise(ty, &[*value], |_, x| Ok(cast(from, to, &x[0])))?
            }
            Expr::Load { mem, index, lanes } => {
                let place = self.place(*mem, *index, *lanes, false)?;
                Code::new(
                    place,
                    if *lanes == 1 {
                        prec::PRIMARY
                    } else {
                        prec::UNARY
                    },
                )
            }
            Expr::Extract { vector, lane } => {
                let v = self.expr(*vector)?;
                Code::primary(format!("{}[{lane}]", v.at(prec::PRIMARY)))
            }
            Expr::Compose(xs) => {
                let mut parts = Vec::new();
                for x in xs {
                    parts.push(self.expr(*x)?.text);
                }
                Code::primary(format!("{}{{{}}}", c_type(ty), parts.join(", ")))
            }
            Expr::Shuffle { mode, value, lane } => {
                let f = match mode {
                    ShuffleMode::Xor => "greta_shfl_xor",
                    ShuffleMode::Down => "greta_shfl_down",
                    ShuffleMode::Up => "greta_shfl_up",
                    ShuffleMode::Idx => "greta_shfl_idx",
                };
                let v = self.expr(*value)?.text;
                let l = self.expr(*lane)?.text;
                Code::primary(format!("{f}({v}, {l})"))
            }
            Expr::WaveReduce { op, value } => {
                let s = self.ty(*value)?.scalar;
                if s == Scalar::Bool && *op == ReduceOp::Sum {
                    return self.err("wave sum of bool");
                }
                let f = match op {
                    ReduceOp::Sum => "greta_wave_sum",
                    ReduceOp::Max => "greta_wave_max",
                    ReduceOp::Min => "greta_wave_min",
                };
                self.lanewise(ty, &[*value], |_, x| {
                    Ok(Code::primary(format!("{f}({})", x[0].text)))
                })?
            }
        })
    }

    /// Apply the scalar rule `f` once (scalar result) or per lane (vector result). Vector
    /// operands are bound to temporaries in a statement expression so each is evaluated once.
    fn lanewise(
        &mut self,
        ty: Type,
        operands: &[ExprId],
        f: impl Fn(&mut Self, &[Code]) -> R<Code>,
    ) -> R<Code> {
        let mut codes = Vec::new();
        for &o in operands {
            codes.push(self.expr(o)?);
        }
        if ty.lanes == 1 {
            return f(self, &codes);
        }
        let mut text = String::from("({ ");
        let mut temps = Vec::new();
        for (&o, code) in operands.iter().zip(&codes) {
            let oty = self.ty(o)?;
            let name = format!("greta_t{}", self.temps);
            self.temps += 1;
            let _ = write!(text, "{} {name} = {}; ", c_type(oty), code.text);
            temps.push((name, oty.lanes > 1));
        }
        let mut lanes = Vec::new();
        for lane in 0..ty.lanes {
            let args: Vec<Code> = temps
                .iter()
                .map(|(n, vector)| {
                    Code::primary(if *vector {
                        format!("{n}[{lane}]")
                    } else {
                        n.clone()
                    })
                })
                .collect();
            lanes.push(f(self, &args)?.text);
        }
        let _ = write!(text, "{}{{{}}}; }})", c_type(ty), lanes.join(", "));
        Ok(Code::primary(text))
    }

    fn builtin(&self, b: Builtin) -> Code {
        let axis = |a: greta_dsl::ir::Axis| a.name();
        Code::primary(match b {
            Builtin::ThreadIdx(a) => format!("greta_thread_idx_{}()", axis(a)),
            Builtin::BlockIdx(a) => format!("greta_block_idx_{}()", axis(a)),
            // A declared block size is a launch contract: use it as a constant.
            Builtin::BlockDim(a) => match self.k.block_size {
                Some(bs) => format!("{}u", bs[a.index()]),
                None => format!("greta_block_dim_{}()", axis(a)),
            },
            Builtin::GridDim(a) => format!("greta_grid_dim_{}()", axis(a)),
            Builtin::LaneId => "greta_lane_id()".to_string(),
            Builtin::WaveSize => "GRETA_WAVE_SIZE".to_string(),
        })
    }

    fn unary(&self, op: UnaryOp, s: Scalar, a: &Code) -> R<Code> {
        let half = matches!(s, Scalar::F16 | Scalar::BF16);
        Ok(match op {
            UnaryOp::Neg => {
                if !(s.is_float() || s == Scalar::I32) {
                    return self.err(format!("negation of {s}"));
                }
                let neg = format!("-{}", a.prefix_operand());
                if half {
                    Code::primary(format!("{}({neg})", c_scalar(s)))
                } else {
                    Code::new(neg, prec::UNARY)
                }
            }
            UnaryOp::Not => match s {
                Scalar::Bool => Code::new(format!("!{}", a.prefix_operand()), prec::UNARY),
                Scalar::I32 | Scalar::U32 => {
                    Code::new(format!("~{}", a.prefix_operand()), prec::UNARY)
                }
                _ => return self.err(format!("`not` of {s}")),
            },
            UnaryOp::Abs => {
                if s == Scalar::Bool {
                    return self.err("abs of bool");
                }
                Code::primary(format!("greta_abs({})", a.text))
            }
            _ => {
                if !s.is_float() {
                    return self.err(format!("{} of {s} (float only)", op.name()));
                }
                let f = format!("greta_{}", op.name());
                if half {
                    Code::primary(format!("{t}({f}(f32({})))", a.text, t = c_scalar(s)))
                } else {
                    Code::primary(format!("{f}({})", a.text))
                }
            }
        })
    }

    fn binary(&self, op: BinaryOp, s: Scalar, a: &Code, b: &Code) -> R<Code> {
        use BinaryOp::*;
        let half = matches!(s, Scalar::F16 | Scalar::BF16);
        let t = c_scalar(s);
        let infix = |sym: &str, p: u8| {
            Code::new(
                format!("{} {sym} {}", a.operand(p, false), b.operand(p, true)),
                p,
            )
        };
        Ok(match op {
            Add | Sub | Mul | Div => {
                if s == Scalar::Bool {
                    return self.err(format!("arithmetic `{}` on bool", op.name()));
                }
                let sym = op.symbol().unwrap_or("?");
                let p = if matches!(op, Mul | Div) {
                    prec::MUL
                } else {
                    prec::ADD
                };
                if half {
                    // Computed in f32 and rounded once (see the prelude's note).
                    Code::primary(format!("{t}(f32({}) {sym} f32({}))", a.text, b.text))
                } else {
                    infix(sym, p)
                }
            }
            Rem => match s {
                Scalar::I32 | Scalar::U32 => infix("%", prec::MUL),
                Scalar::F32 => Code::primary(format!("__builtin_fmodf({}, {})", a.text, b.text)),
                Scalar::F16 | Scalar::BF16 => Code::primary(format!(
                    "{t}(__builtin_fmodf(f32({}), f32({})))",
                    a.text, b.text
                )),
                Scalar::Bool => return self.err("`%` on bool"),
            },
            Min => Code::primary(format!("greta_min({}, {})", a.text, b.text)),
            Max => Code::primary(format!("greta_max({}, {})", a.text, b.text)),
            BitAnd | BitOr | BitXor => {
                let (sym, p) = match op {
                    BitAnd => ("&", prec::BITAND),
                    BitOr => ("|", prec::BITOR),
                    _ => ("^", prec::BITXOR),
                };
                match s {
                    Scalar::I32 | Scalar::U32 => infix(sym, p),
                    Scalar::Bool => Code::primary(format!("bool({})", infix(sym, p).text)),
                    _ => return self.err(format!("bitwise `{sym}` on {s}")),
                }
            }
            Shl | Shr => {
                if !s.is_int() {
                    return self.err(format!("shift of {s}"));
                }
                // The shift amount is taken modulo 32 (Rust's wrapping shifts), identically on
                // both targets; C leaves larger amounts undefined.
                let sym = if op == Shl { "<<" } else { ">>" };
                Code::new(
                    format!(
                        "{} {sym} ({} & 31u)",
                        a.operand(prec::SHIFT, false),
                        b.operand(prec::BITAND, false)
                    ),
                    prec::SHIFT,
                )
            }
            Eq | Ne => infix(op.symbol().unwrap_or("?"), prec::EQ),
            Lt | Le | Gt | Ge => infix(op.symbol().unwrap_or("?"), prec::REL),
            And | Or => {
                if s != Scalar::Bool {
                    return self.err(format!("logical `{}` on {s}", op.name()));
                }
                // Both sides evaluated, as the IR specifies (and without a branch).
                let sym = if op == And { "&" } else { "|" };
                let p = if op == And { prec::BITAND } else { prec::BITOR };
                Code::primary(format!("bool({})", infix(sym, p).text))
            }
        })
    }
}

/// Numeric conversion of one scalar (IR semantics: float→int truncates, →f16/bf16 rounds to
/// nearest even, which is what C++ conversions do). f16↔bf16 goes through f32, which is exact.
fn cast(from: Scalar, to: Scalar, a: &Code) -> Code {
    if from == to {
        return a.clone();
    }
    let t = c_scalar(to);
    match (from, to) {
        (_, Scalar::Bool) => {
            let zero = match from {
                Scalar::F32 => "0.0f",
                _ => "0",
            };
            let x = if matches!(from, Scalar::F16 | Scalar::BF16) {
                format!("f32({})", a.text)
            } else {
                a.operand(prec::EQ, false)
            };
            Code::new(format!("{x} != {zero}"), prec::EQ)
        }
        (Scalar::F16, Scalar::BF16)
        | (Scalar::BF16, Scalar::F16)
        | (Scalar::Bool, Scalar::F16 | Scalar::BF16) => {
            Code::primary(format!("{t}(f32({}))", a.text))
        }
        _ => Code::primary(format!("{t}({})", a.text)),
    }
}

fn constant(c: Const) -> Code {
    match c {
        Const::F32(v) => f32_literal(v),
        Const::F16(v) => Code::primary(format!("f16({})", f32_literal(v.to_f32()).text)),
        Const::BF16(v) => Code::primary(format!("bf16({})", f32_literal(v.to_f32()).text)),
        Const::I32(i32::MIN) => Code::primary("(-2147483647 - 1)"),
        Const::I32(v) if v < 0 => Code::new(v.to_string(), prec::UNARY),
        Const::I32(v) => Code::primary(v.to_string()),
        Const::U32(v) => Code::primary(format!("{v}u")),
        Const::Bool(v) => Code::primary(v.to_string()),
    }
}

/// An f32 literal that parses back to exactly `v` (Rust's shortest round-trip form).
fn f32_literal(v: f32) -> Code {
    if v.is_nan() {
        return Code::primary("__builtin_nanf(\"\")");
    }
    if v.is_infinite() {
        return if v > 0.0 {
            Code::primary("__builtin_inff()")
        } else {
            Code::new("-__builtin_inff()", prec::UNARY)
        };
    }
    let text = format!("{v:?}f");
    if text.starts_with('-') {
        Code::new(text, prec::UNARY)
    } else {
        Code::primary(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(f32_literal(1.0).text, "1.0f");
        assert_eq!(f32_literal(1e-5).text, "1e-5f");
        assert_eq!(f32_literal(-0.0).text, "-0.0f");
        assert_eq!(f32_literal(3.4028235e38).text, "3.4028235e38f");
        assert_eq!(constant(Const::I32(i32::MIN)).text, "(-2147483647 - 1)");
        assert_eq!(constant(Const::U32(7)).text, "7u");
    }

    #[test]
    fn parentheses() {
        let a = Code::new("x + y", prec::ADD);
        let b = Code::primary("z");
        assert_eq!(a.operand(prec::MUL, false), "(x + y)");
        assert_eq!(a.operand(prec::ADD, false), "x + y");
        assert_eq!(a.operand(prec::ADD, true), "(x + y)");
        assert_eq!(a.operand(prec::BITAND, false), "(x + y)");
        assert_eq!(b.operand(prec::BITAND, true), "z");
        assert_eq!(Code::new("-x", prec::UNARY).prefix_operand(), "(-x)");
    }
}
