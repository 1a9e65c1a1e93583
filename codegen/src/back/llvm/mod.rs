//! IR → LLVM IR, one writer for AMDGPU (gfx942) and NVPTX (sm_90), a peer of the HIP backend.
//!
//! The output is one textual LLVM module: the header comment (kernel, target, configuration),
//! the target's data layout and triple, the kernel as one function named like the IR kernel
//! (`amdgpu_kernel` / `ptx_kernel` calling convention), the LDS arrays as address-space-3
//! globals, and the few helpers it calls (the portable math, `math.rs`) as internal
//! `alwaysinline` functions. [`crate::llvm`] parses it in process (inkwell), runs the O3
//! pipeline and emits the object or the PTX.
//!
//! **Why text, not the builder API.** LLVM-C 19, which inkwell wraps, cannot give a fence or an
//! atomic a sync scope: AMDGPU needs `fence syncscope("workgroup")` around `s_barrier` (a
//! system-scope fence would write back and invalidate the caches at every barrier) and
//! agent-scope atomics. The textual IR is LLVM's documented, stable interface; parsing it
//! verifies it; and it is what `greta emit --format llvm` shows, with the values named after the
//! kernel's Rust variables.
//!
//! Shape: variables and register arrays are entry-block allocas (SROA/mem2reg turn them into
//! registers, as clang's output for the HIP path relies on too); structured control flow becomes
//! labelled blocks; an expression is written once per statement that uses it and reused (the IR
//! is a DAG). Lane-wise operations on vectors are done per lane, exactly as the HIP backend and
//! the interpreter define them; wide loads and stores stay one vector access.

mod family;
mod math;
mod matrix;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use greta_dsl::ir::{
    Access, AtomicOp, BinaryOp, Block, Builtin, Const, Expr, ExprId, Kernel, Memory, ParamKind,
    ReduceOp, Scalar, ShuffleMode, Stmt, Type, UnaryOp, VarId,
};
use greta_dsl::valid::KernelInfo;
use greta_dsl::Target;

pub use family::Family;

use crate::CodegenError;

type R<T> = Result<T, CodegenError>;

/// The LLVM IR module of the verified `kernel` for `target`. `info` is what the verifier learnt
/// about the kernel.
pub fn write_string(
    kernel: &Kernel,
    info: &KernelInfo,
    target: &Target,
) -> Result<String, CodegenError> {
    Writer::new(kernel, info, target)?.module()
}

/// LLVM's name of an IR scalar type.
pub fn llvm_scalar(s: Scalar) -> &'static str {
    match s {
        Scalar::F16 => "half",
        Scalar::BF16 => "bfloat",
        Scalar::F32 => "float",
        Scalar::I32 | Scalar::U32 => "i32",
        Scalar::Bool => "i1",
    }
}

/// LLVM's name of an IR type (`<8 x half>` for vectors).
pub fn llvm_type(ty: Type) -> String {
    if ty.lanes == 1 {
        llvm_scalar(ty.scalar).to_string()
    } else {
        format!("<{} x {}>", ty.lanes, llvm_scalar(ty.scalar))
    }
}

/// An f32 as LLVM's exact hexadecimal float literal (the f64 bits of the same value).
pub fn f32_literal(v: f32) -> String {
    format!("0x{:016X}", (v as f64).to_bits())
}

/// A value: its LLVM text (`%x.3`, a literal) and IR type.
#[derive(Clone, Debug)]
pub(crate) struct Val {
    text: String,
    ty: Type,
}

impl Val {
    fn new(text: impl Into<String>, ty: Type) -> Val {
        Val {
            text: text.into(),
            ty,
        }
    }
    /// `type value`, as an operand list wants it.
    fn typed(&self) -> String {
        format!("{} {}", llvm_type(self.ty), self.text)
    }
}

fn constant(c: Const) -> Val {
    let (text, s) = match c {
        Const::F32(v) => (f32_literal(v), Scalar::F32),
        Const::F16(v) => (format!("0xH{:04X}", v.to_bits()), Scalar::F16),
        Const::BF16(v) => (format!("0xR{:04X}", v.to_bits()), Scalar::BF16),
        Const::I32(v) => (v.to_string(), Scalar::I32),
        Const::U32(v) => ((v as i32).to_string(), Scalar::U32),
        Const::Bool(v) => (v.to_string(), Scalar::Bool),
    };
    Val::new(text, Type::scalar(s))
}

fn u32_val(v: u32) -> Val {
    constant(Const::U32(v))
}

/// Legal LLVM local name characters are `[-a-zA-Z$._0-9]`; anything else becomes `_`.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        format!("v{s}")
    } else {
        s
    }
}

pub(crate) struct Writer<'k> {
    k: &'k Kernel,
    info: &'k KernelInfo,
    target: &'k Target,
    fam: &'static Family,
    /// Intrinsic and helper declarations, by name (each once).
    decls: BTreeMap<String, String>,
    /// Which portable math functions the kernel calls.
    math: math::Used,
    /// The function body.
    out: String,
    /// Allocas, written at the top of the entry block.
    entry: String,
    /// Whether the current block already ended (`br`, `ret`).
    terminated: bool,
    /// Counters for fresh value and label names, per stem.
    counters: HashMap<String, u32>,
    params: Vec<String>,
    vars: Vec<String>,
    shared: Vec<String>,
    locals: Vec<String>,
    /// Values of the current statement's expressions.
    memo: HashMap<ExprId, Val>,
    /// The lane id, once per kernel (computed in the entry block).
    lane_id: Option<Val>,
}

impl<'k> Writer<'k> {
    fn new(k: &'k Kernel, info: &'k KernelInfo, target: &'k Target) -> R<Writer<'k>> {
        let fam = Family::of(target.family);
        let valid_symbol = !k.name.is_empty()
            && k.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !k.name.starts_with(|c: char| c.is_ascii_digit())
            && !k.name.starts_with("greta_");
        if !valid_symbol {
            return Err(CodegenError::Unsupported {
                kernel: k.name.clone(),
                message: "the kernel name must be an identifier (it is the exported symbol), \
                          not starting with `greta_`"
                    .into(),
            });
        }
        let mut w = Writer {
            k,
            info,
            target,
            fam,
            decls: BTreeMap::new(),
            math: math::Used::default(),
            out: String::new(),
            entry: String::new(),
            terminated: false,
            counters: HashMap::new(),
            params: Vec::new(),
            vars: Vec::new(),
            shared: Vec::new(),
            locals: Vec::new(),
            memo: HashMap::new(),
            lane_id: None,
        };
        w.params = k.params.iter().map(|p| w.fresh(&p.name)).collect();
        w.vars = k
            .vars
            .iter()
            .map(|v| w.fresh(&format!("{}.addr", v.name)))
            .collect();
        w.locals = k.locals.iter().map(|a| w.fresh(&a.name)).collect();
        Ok(w)
    }

    fn err<T>(&self, message: impl Into<String>) -> R<T> {
        Err(CodegenError::Unsupported {
            kernel: self.k.name.clone(),
            message: message.into(),
        })
    }

    /// A fresh local name `%stem.N` (`%stem` the first time).
    fn fresh(&mut self, stem: &str) -> String {
        let stem = sanitize(stem);
        let n = self.counters.entry(stem.clone()).or_insert(0);
        let name = if *n == 0 {
            format!("%{stem}")
        } else {
            format!("%{stem}.{n}")
        };
        *n += 1;
        name
    }

    /// Writes `line` into the current block (opening an unreachable one after a terminator).
    fn line(&mut self, line: &str) {
        if self.terminated {
            let dead = self.fresh("dead");
            self.label(&dead);
        }
        self.out.push_str("  ");
        self.out.push_str(line);
        self.out.push('\n');
    }

    /// `%name = rhs`, returning the value.
    fn assign(&mut self, stem: &str, rhs: String, ty: Type) -> Val {
        let name = self.fresh(stem);
        self.line(&format!("{name} = {rhs}"));
        Val::new(name, ty)
    }

    fn terminate(&mut self, line: &str) {
        self.line(line);
        self.terminated = true;
    }

    /// Starts the block `label` (a `%name` from [`fresh`](Self::fresh)), falling through into
    /// it from an unterminated block.
    fn label(&mut self, label: &str) {
        if !self.terminated {
            self.out.push_str(&format!("  br label {label}\n"));
        }
        let _ = writeln!(self.out, "{}:", &label[1..]);
        self.terminated = false;
    }

    /// Declares `name` with the signature `decl` (`declare ...`) once.
    fn declare(&mut self, name: &str, decl: String) {
        self.decls.entry(name.to_string()).or_insert(decl);
    }

    /// Calls the intrinsic or helper `name` returning `ret` (LLVM type text; `void` for none).
    fn call(&mut self, ret: &str, name: &str, args: &[(String, String)], ty: Type) -> Val {
        let types: Vec<&str> = args.iter().map(|(t, _)| t.as_str()).collect();
        if name.starts_with("llvm.") {
            self.declare(name, format!("declare {ret} @{name}({})", types.join(", ")));
        }
        let list: Vec<String> = args.iter().map(|(t, v)| format!("{t} {v}")).collect();
        let call = format!("call {ret} @{name}({})", list.join(", "));
        if ret == "void" {
            self.line(&call);
            Val::new("", ty)
        } else {
            self.assign("t", call, ty)
        }
    }

    fn ptr_type(space: u32) -> String {
        if space == 0 {
            "ptr".to_string()
        } else {
            format!("ptr addrspace({space})")
        }
    }

    // ---- module -------------------------------------------------------------------------------

    fn module(mut self) -> R<String> {
        let k = self.k;
        let fam = self.fam;
        let mut globals = String::new();
        let dynamic = k.dynamic_lds();
        if let Some(d) = &dynamic {
            let _ = writeln!(
                globals,
                "; {} bytes of dynamic LDS (over the {}-byte static limit)\n\
                 @greta_lds_dynamic = external addrspace({}) global [0 x i8], align {}",
                d.bytes,
                self.target.lds_bytes,
                fam.lds_as,
                k.lds_align()
            );
        }
        for (i, a) in k.shared.iter().enumerate() {
            if a.len == 0 {
                return self.err(format!("shared array `{}` has length 0", a.name));
            }
            // Two LDS arrays may share a name (helpers each declaring their `partial`):
            // globals need distinct ones.
            let stem = format!("@{}.{}", k.name, sanitize(&a.name));
            let mut name = stem.clone();
            let mut n = 0;
            while self.shared.contains(&name) {
                n += 1;
                name = format!("{stem}.{n}");
            }
            match &dynamic {
                Some(d) => {
                    let p = self.fresh(&a.name);
                    let _ = writeln!(
                        self.entry,
                        "  {p} = getelementptr inbounds i8, ptr addrspace({as_}) @greta_lds_dynamic, i64 {}",
                        d.offsets[i],
                        as_ = fam.lds_as
                    );
                    self.shared.push(p);
                }
                None => {
                    let _ = writeln!(
                        globals,
                        "{name} = internal addrspace({}) global [{} x {}] undef, align {}",
                        fam.lds_as,
                        a.len,
                        llvm_scalar(a.elem),
                        a.align
                    );
                    self.shared.push(name);
                }
            }
        }
        let alloca_as = if fam.alloca_as == 0 {
            String::new()
        } else {
            format!(", addrspace({})", fam.alloca_as)
        };
        for (i, a) in k.locals.iter().enumerate() {
            if a.len == 0 {
                return self.err(format!("local array `{}` has length 0", a.name));
            }
            let _ = writeln!(
                self.entry,
                "  {} = alloca [{} x {}], align 16{alloca_as}",
                self.locals[i],
                a.len,
                llvm_scalar(a.elem)
            );
        }
        for (i, v) in k.vars.iter().enumerate() {
            let _ = writeln!(
                self.entry,
                "  {} = alloca {}{alloca_as}",
                self.vars[i],
                llvm_type(v.ty)
            );
        }

        let body = k.body.clone();
        self.block(&body)?;
        if !self.terminated {
            self.terminate("ret void");
        }

        let mut params = Vec::new();
        for (p, name) in k.params.iter().zip(&self.params) {
            params.push(match &p.kind {
                ParamKind::Buffer { access, .. } => {
                    let ro = if *access == Access::Read {
                        " readonly"
                    } else {
                        ""
                    };
                    format!(
                        "{} noalias{ro} align 16 {name}",
                        Self::ptr_type(fam.global_as)
                    )
                }
                ParamKind::Value(s) => format!("{} {name}", llvm_scalar(*s)),
            });
        }
        let threads = match k.block_size {
            Some([x, y, z]) => x.saturating_mul(y).saturating_mul(z),
            None => self.target.max_block_threads,
        };
        let mut out = String::new();
        self.header(&mut out);
        let _ = writeln!(
            out,
            "source_filename = \"{}\"\ntarget datalayout = \"{}\"\ntarget triple = \"{}\"\n",
            k.name, fam.data_layout, fam.triple
        );
        if !globals.is_empty() {
            let _ = writeln!(out, "{globals}");
        }
        let _ = writeln!(
            out,
            "define {} void @{}({}) #0 {{\nentry:\n{}{}}}\n",
            fam.kernel_cc,
            k.name,
            params.join(", "),
            self.entry,
            self.out
        );
        let (math, decls) = math::definitions(&self.math, fam);
        out.push_str(&math);
        for (name, d) in decls {
            self.declare(&name, d);
        }
        for d in self.decls.values() {
            let _ = writeln!(out, "{d}");
        }
        match self.target.family {
            greta_dsl::Family::Amdgcn => {
                let waves = threads.div_ceil(self.target.wave_size);
                let per_eu = waves.div_ceil(self.target.registers.simds_per_cu).max(1);
                let _ = writeln!(
                    out,
                    "\nattributes #0 = {{ \"amdgpu-flat-work-group-size\"=\"1,{threads}\" \
                     \"amdgpu-waves-per-eu\"=\"{per_eu}\" }}"
                );
            }
            greta_dsl::Family::Nvptx => {
                let _ = writeln!(
                    out,
                    "\nattributes #0 = {{ \"target-cpu\"=\"{}\" }}\n\n\
                     !nvvm.annotations = !{{!0, !1}}\n\
                     !0 = !{{ptr @{name}, !\"kernel\", i32 1}}\n\
                     !1 = !{{ptr @{name}, !\"maxntidx\", i32 {threads}}}",
                    self.target.cpu,
                    name = k.name
                );
            }
        }
        Ok(out)
    }

    fn header(&self, out: &mut String) {
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
            out,
            "; Generated by greta-codegen {version}. Do not edit: regenerate from the kernel's IR.
;
; kernel:     {name}
; target:     {target} ({family:?}, wave size {wave})
; config:     {config}
; block size: {block}
; compile:    greta compiles it in process (LLVM {llvm}, O3); by hand: opt/llc-19 -mcpu={cpu}

",
            version = crate::Via::Llvm.version(),
            name = k.name,
            target = t.name,
            family = t.family,
            wave = t.wave_size,
            llvm = 19,
            cpu = t.cpu,
        );
    }

    // ---- statements ---------------------------------------------------------------------------

    fn block(&mut self, block: &Block) -> R<()> {
        for s in block {
            // A statement's expressions are written where it runs; those of an enclosing
            // statement must not be reused inside its body (the body may change what they
            // read), nor after it.
            self.memo.clear();
            self.stmt(s)?;
        }
        self.memo.clear();
        Ok(())
    }

    fn var_ptr(&self, v: VarId) -> R<(String, Type)> {
        match (self.vars.get(v.0 as usize), self.k.vars.get(v.0 as usize)) {
            (Some(p), Some(var)) => Ok((p.clone(), var.ty)),
            _ => self.err(format!("variable #{} does not exist", v.0)),
        }
    }

    fn store_var(&mut self, v: VarId, value: &Val) -> R<()> {
        let (p, ty) = self.var_ptr(v)?;
        if ty != value.ty {
            return self.err(format!("a {} stored into a variable of {ty}", value.ty));
        }
        let pt = Self::ptr_type(self.fam.alloca_as);
        self.line(&format!("store {}, {pt} {p}", value.typed()));
        Ok(())
    }

    fn stmt(&mut self, s: &Stmt) -> R<()> {
        match s {
            Stmt::Let { var, value } | Stmt::Assign { var, value } => {
                let v = self.expr(*value)?;
                self.store_var(*var, &v)?;
            }
            Stmt::Store { mem, index, value } => {
                let v = self.expr(*value)?;
                let elem = self.mem_elem(*mem)?;
                if v.ty.scalar != elem {
                    return self.err(format!(
                        "store of {} into `{}` of {elem}",
                        v.ty,
                        self.k.memory_name(*mem)
                    ));
                }
                let (p, pt) = self.elem_ptr(*mem, *index, true)?;
                let align = self.align(v.ty);
                self.line(&format!("store {}, {pt} {p}, align {align}", v.typed()));
            }
            Stmt::If {
                cond,
                then,
                otherwise,
            } => {
                let c = self.expr(*cond)?;
                let (t, e, end) = (
                    self.fresh("if.then"),
                    self.fresh("if.else"),
                    self.fresh("if.end"),
                );
                let other = if otherwise.is_empty() { &end } else { &e };
                self.terminate(&format!("br i1 {}, label {t}, label {other}", c.text));
                self.label(&t);
                self.block(then)?;
                if !otherwise.is_empty() {
                    if !self.terminated {
                        self.terminate(&format!("br label {end}"));
                    }
                    self.label(&e);
                    self.block(otherwise)?;
                }
                self.label(&end);
            }
            Stmt::For {
                var,
                start,
                end,
                step,
                body,
            } => {
                let (_, ty) = self.var_ptr(*var)?;
                let signed = match ty {
                    Type {
                        scalar: Scalar::I32,
                        lanes: 1,
                    } => true,
                    Type {
                        scalar: Scalar::U32,
                        lanes: 1,
                    } => false,
                    _ => {
                        return self.err(format!("loop variable of type {ty} (must be u32 or i32)"))
                    }
                };
                // Bounds are evaluated once, before the first iteration.
                let s = self.expr(*start)?;
                let e = self.expr(*end)?;
                let st = self.expr(*step)?;
                self.store_var(*var, &s)?;
                let name = self.k.var(*var).name.clone();
                let (cond_l, body_l, step_l, end_l) = (
                    self.fresh(&format!("for.{name}")),
                    self.fresh(&format!("for.{name}.body")),
                    self.fresh(&format!("for.{name}.next")),
                    self.fresh(&format!("for.{name}.end")),
                );
                self.label(&cond_l);
                let i = self.load_var(*var)?;
                let pred = if signed { "slt" } else { "ult" };
                let c = self.assign(
                    "cmp",
                    format!("icmp {pred} i32 {}, {}", i.text, e.text),
                    Type::scalar(Scalar::Bool),
                );
                self.terminate(&format!("br i1 {}, label {body_l}, label {end_l}", c.text));
                self.label(&body_l);
                self.block(body)?;
                self.label(&step_l);
                let i = self.load_var(*var)?;
                let n = self.assign(&name, format!("add i32 {}, {}", i.text, st.text), ty);
                self.store_var(*var, &n)?;
                self.terminate(&format!("br label {cond_l}"));
                self.label(&end_l);
            }
            Stmt::While { cond, body } => {
                let (cond_l, body_l, end_l) = (
                    self.fresh("while"),
                    self.fresh("while.body"),
                    self.fresh("while.end"),
                );
                self.label(&cond_l);
                let c = self.expr(*cond)?;
                self.terminate(&format!("br i1 {}, label {body_l}, label {end_l}", c.text));
                self.label(&body_l);
                self.block(body)?;
                if !self.terminated {
                    self.terminate(&format!("br label {cond_l}"));
                }
                self.label(&end_l);
            }
            Stmt::Return => self.terminate("ret void"),
            Stmt::Barrier => self.barrier(),
            Stmt::Atomic {
                op,
                mem,
                index,
                value,
                result,
            } => self.atomic(*op, *mem, *index, *value, *result)?,
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
        }
        Ok(())
    }

    fn load_var(&mut self, v: VarId) -> R<Val> {
        let (p, ty) = self.var_ptr(v)?;
        let pt = Self::ptr_type(self.fam.alloca_as);
        let stem = self.k.var(v).name.clone();
        Ok(self.assign(&stem, format!("load {}, {pt} {p}", llvm_type(ty)), ty))
    }

    fn barrier(&mut self) {
        match self.target.family {
            greta_dsl::Family::Amdgcn => {
                self.line("fence syncscope(\"workgroup\") release");
                self.call(
                    "void",
                    "llvm.amdgcn.s.barrier",
                    &[],
                    Type::scalar(Scalar::Bool),
                );
                self.line("fence syncscope(\"workgroup\") acquire");
            }
            greta_dsl::Family::Nvptx => {
                self.call(
                    "void",
                    "llvm.nvvm.barrier0",
                    &[],
                    Type::scalar(Scalar::Bool),
                );
            }
        }
    }

    fn atomic(
        &mut self,
        op: AtomicOp,
        mem: Memory,
        index: ExprId,
        value: ExprId,
        result: Option<VarId>,
    ) -> R<()> {
        let elem = self.mem_elem(mem)?;
        if matches!(mem, Memory::Local(_)) {
            return self.err("atomics on a per-thread local array make no sense");
        }
        let rmw = match (op, elem) {
            (AtomicOp::Add, Scalar::F32) => "fadd",
            (AtomicOp::Add, Scalar::I32 | Scalar::U32) => "add",
            (AtomicOp::Max, Scalar::F32) => "fmax",
            (AtomicOp::Max, Scalar::I32) => "max",
            (AtomicOp::Max, Scalar::U32) => "umax",
            _ => {
                return self.err(format!(
                    "atomics on {elem} are not supported (f32, i32, u32)"
                ))
            }
        };
        let v = self.expr(value)?;
        let (p, pt) = self.elem_ptr(mem, index, true)?;
        let old = self.assign(
            "old",
            format!(
                "atomicrmw {rmw} {pt} {p}, {}{} monotonic, align 4",
                v.typed(),
                self.fam.atomic_scope
            ),
            Type::scalar(elem),
        );
        if let Some(r) = result {
            self.store_var(r, &old)?;
        }
        Ok(())
    }

    // ---- memory -------------------------------------------------------------------------------

    fn mem_elem(&self, mem: Memory) -> R<Scalar> {
        match self.k.memory_elem(mem) {
            Some(s) => Ok(s),
            None => self.err(format!("{mem:?} is not a buffer, shared or local array")),
        }
    }

    fn align(&self, ty: Type) -> u32 {
        (ty.scalar.size_bytes() * ty.lanes as u32).max(1)
    }

    /// The base pointer and address space of a memory object; an error for a write to a
    /// read-only buffer.
    fn base(&self, mem: Memory, write: bool) -> R<(String, u32)> {
        Ok(match mem {
            Memory::Global(p) => {
                let param = self.k.param(p);
                if let ParamKind::Buffer {
                    access: Access::Read,
                    ..
                } = param.kind
                {
                    if write {
                        return self.err(format!("write to read-only buffer `{}`", param.name));
                    }
                }
                (self.params[p.0 as usize].clone(), self.fam.global_as)
            }
            Memory::Shared(s) => (self.shared[s.0 as usize].clone(), self.fam.lds_as),
            Memory::Local(l) => (self.locals[l.0 as usize].clone(), self.fam.alloca_as),
        })
    }

    /// A pointer to element `index` (an i32/u32 value) of `mem`, and its pointer type.
    fn ptr_at(&mut self, mem: Memory, index: &Val, write: bool) -> R<(String, String)> {
        let elem = self.mem_elem(mem)?;
        let (base, space) = self.base(mem, write)?;
        let ext = match index.ty {
            Type {
                scalar: Scalar::I32,
                lanes: 1,
            } => "sext",
            Type {
                scalar: Scalar::U32,
                lanes: 1,
            } => "zext",
            t => return self.err(format!("an index of type {t} (must be u32 or i32)")),
        };
        let wide = self.assign(
            "idx",
            format!("{ext} i32 {} to i64", index.text),
            Type::scalar(Scalar::U32),
        );
        let pt = Self::ptr_type(space);
        let stem = format!("{}.ptr", self.k.memory_name(mem));
        let p = self.assign(
            &stem,
            format!(
                "getelementptr inbounds {}, {pt} {base}, i64 {}",
                llvm_scalar(elem),
                wide.text
            ),
            Type::scalar(Scalar::U32),
        );
        Ok((p.text, pt))
    }

    fn elem_ptr(&mut self, mem: Memory, index: ExprId, write: bool) -> R<(String, String)> {
        let i = self.expr(index)?;
        self.ptr_at(mem, &i, write)
    }

    fn load(&mut self, mem: Memory, index: ExprId, lanes: u8) -> R<Val> {
        let elem = self.mem_elem(mem)?;
        if !Type::valid_lanes(lanes) {
            return self.err(format!("vector of {lanes} lanes"));
        }
        let ty = if lanes == 1 {
            Type::scalar(elem)
        } else {
            Type::vector(elem, lanes)
        };
        let (p, pt) = self.elem_ptr(mem, index, false)?;
        let align = self.align(ty);
        let stem = self.k.memory_name(mem).to_string();
        Ok(self.assign(
            &stem,
            format!("load {}, {pt} {p}, align {align}", llvm_type(ty)),
            ty,
        ))
    }

    // ---- expressions --------------------------------------------------------------------------

    fn ty(&self, id: ExprId) -> R<Type> {
        match self.k.exprs.get(id.0 as usize) {
            Some(n) => Ok(n.ty),
            None => self.err(format!("expression #{} does not exist", id.0)),
        }
    }

    fn expr(&mut self, id: ExprId) -> R<Val> {
        if let Some(v) = self.memo.get(&id) {
            return Ok(v.clone());
        }
        let ty = self.ty(id)?;
        let node = match self.k.exprs.get(id.0 as usize) {
            Some(n) => n.expr.clone(),
            None => return self.err(format!("expression #{} does not exist", id.0)),
        };
        let v = match node {
            Expr::Const(c) => constant(c),
            Expr::Param(p) => match self.k.params.get(p.0 as usize).map(|p| &p.kind) {
                Some(ParamKind::Value(_)) => Val::new(self.params[p.0 as usize].clone(), ty),
                Some(ParamKind::Buffer { .. }) => {
                    return self.err("a buffer parameter used as a value");
                }
                None => return self.err(format!("parameter #{} does not exist", p.0)),
            },
            Expr::Var(v) => self.load_var(v)?,
            Expr::Builtin(b) => self.builtin(b),
            Expr::Unary(op, a) => self.lanewise(ty, &[a], |w, x| w.unary(op, &x[0]))?,
            Expr::Binary(op, a, b) => {
                let s = self.ty(a)?.scalar;
                self.lanewise(ty, &[a, b], |w, x| w.binary(op, s, &x[0], &x[1]))?
            }
            Expr::Fma(a, b, c) => {
                self.lanewise(ty, &[a, b, c], |w, x| w.fma(&x[0], &x[1], &x[2]))?
            }
            Expr::Select { cond, a, b } => self.lanewise(ty, &[cond, a, b], |w, x| {
                Ok(w.assign(
                    "sel",
                    format!(
                        "select i1 {}, {}, {}",
                        x[0].text,
                        x[1].typed(),
                        x[2].typed()
                    ),
                    x[1].ty,
                ))
            })?,
            Expr::Cast { to, value } => self.lanewise(ty, &[value], |w, x| w.cast(&x[0], to))?,
            Expr::Load { mem, index, lanes } => self.load(mem, index, lanes)?,
            Expr::Extract { vector, lane } => {
                let v = self.expr(vector)?;
                self.assign(
                    "lane",
                    format!("extractelement {}, i32 {lane}", v.typed()),
                    ty,
                )
            }
            Expr::Compose(xs) => {
                let mut parts = Vec::new();
                for x in xs {
                    parts.push(self.expr(x)?);
                }
                self.compose(ty, &parts)
            }
            Expr::Shuffle { mode, value, lane } => {
                let l = self.expr(lane)?;
                self.lanewise(ty, &[value], |w, x| w.shuffle(mode, &x[0], &l))?
            }
            Expr::WaveReduce { op, value } => {
                let s = self.ty(value)?.scalar;
                if s == Scalar::Bool && op == ReduceOp::Sum {
                    return self.err("wave sum of bool");
                }
                self.lanewise(ty, &[value], |w, x| w.wave_reduce(op, &x[0]))?
            }
        };
        self.memo.insert(id, v.clone());
        Ok(v)
    }

    /// A vector of `ty` from its lanes.
    fn compose(&mut self, ty: Type, lanes: &[Val]) -> Val {
        let mut acc = Val::new("poison", ty);
        for (i, l) in lanes.iter().enumerate() {
            acc = self.assign(
                "vec",
                format!("insertelement {}, {}, i32 {i}", acc.typed(), l.typed()),
                ty,
            );
        }
        acc
    }

    /// Applies the scalar rule `f` once (scalar result) or per lane (vector result; scalar
    /// operands are used for every lane), as the IR defines lane-wise operations.
    fn lanewise(
        &mut self,
        ty: Type,
        operands: &[ExprId],
        f: impl Fn(&mut Self, &[Val]) -> R<Val>,
    ) -> R<Val> {
        let mut vals = Vec::new();
        for &o in operands {
            vals.push(self.expr(o)?);
        }
        if ty.lanes == 1 {
            return f(self, &vals);
        }
        let mut lanes = Vec::new();
        for lane in 0..ty.lanes {
            let mut args = Vec::new();
            for v in &vals {
                args.push(if v.ty.lanes > 1 {
                    self.assign(
                        "e",
                        format!("extractelement {}, i32 {lane}", v.typed()),
                        Type::scalar(v.ty.scalar),
                    )
                } else {
                    v.clone()
                });
            }
            lanes.push(f(self, &args)?);
        }
        let out_ty = Type::vector(lanes[0].ty.scalar, ty.lanes);
        Ok(self.compose(out_ty, &lanes))
    }

    fn builtin(&mut self, b: Builtin) -> Val {
        let u32t = Type::scalar(Scalar::U32);
        let sreg = |w: &mut Self, pattern: &str, axis: &str| {
            let name = pattern.replace("{axis}", axis);
            w.call("i32", &name, &[], u32t)
        };
        match b {
            Builtin::ThreadIdx(a) => sreg(self, self.fam.thread_idx, a.name()),
            Builtin::BlockIdx(a) => sreg(self, self.fam.block_idx, a.name()),
            // A declared block size is a launch contract: use it as a constant.
            Builtin::BlockDim(a) => match (self.k.block_size, self.fam.block_dim) {
                (Some(bs), _) => u32_val(bs[a.index()]),
                (None, Some(p)) => sreg(self, p, a.name()),
                (None, None) => self.dispatch_block_dim(a.index()),
            },
            Builtin::GridDim(a) => match self.fam.grid_dim {
                Some(p) => sreg(self, p, a.name()),
                None => {
                    // The packet's grid size is in work-items.
                    let items = self.dispatch_field(12 + 4 * a.index() as u64, "i32");
                    let block = self.dispatch_block_dim(a.index());
                    self.assign(
                        "grid",
                        format!("udiv i32 {}, {}", items.text, block.text),
                        u32t,
                    )
                }
            },
            Builtin::LaneId => self.lane_id(),
            Builtin::WaveSize => u32_val(self.target.wave_size),
        }
    }

    /// A field of AMDGPU's HSA dispatch packet, as u32.
    fn dispatch_field(&mut self, offset: u64, ty: &str) -> Val {
        let u32t = Type::scalar(Scalar::U32);
        let packet = self.call("ptr addrspace(4)", "llvm.amdgcn.dispatch.ptr", &[], u32t);
        let p = self.assign(
            "field",
            format!(
                "getelementptr inbounds i8, ptr addrspace(4) {}, i64 {offset}",
                packet.text
            ),
            u32t,
        );
        let v = self.assign(
            "field",
            format!("load {ty}, ptr addrspace(4) {}, align 2", p.text),
            u32t,
        );
        if ty == "i32" {
            v
        } else {
            self.assign("field", format!("zext {ty} {} to i32", v.text), u32t)
        }
    }

    fn dispatch_block_dim(&mut self, axis: usize) -> Val {
        self.dispatch_field(4 + 2 * axis as u64, "i16")
    }

    /// The hardware lane, computed once in the entry block.
    fn lane_id(&mut self) -> Val {
        if let Some(l) = &self.lane_id {
            return l.clone();
        }
        let name = self.fresh("lane");
        let (text, decls): (String, Vec<(&str, &str)>) = match self.target.family {
            greta_dsl::Family::Amdgcn => {
                let lo = self.fresh("lane.lo");
                (
                    format!(
                        "  {lo} = call i32 @llvm.amdgcn.mbcnt.lo(i32 -1, i32 0)\n  \
                         {name} = call i32 @llvm.amdgcn.mbcnt.hi(i32 -1, i32 {lo})\n"
                    ),
                    vec![
                        (
                            "llvm.amdgcn.mbcnt.lo",
                            "declare i32 @llvm.amdgcn.mbcnt.lo(i32, i32)",
                        ),
                        (
                            "llvm.amdgcn.mbcnt.hi",
                            "declare i32 @llvm.amdgcn.mbcnt.hi(i32, i32)",
                        ),
                    ],
                )
            }
            greta_dsl::Family::Nvptx => (
                format!("  {name} = call i32 @llvm.nvvm.read.ptx.sreg.laneid()\n"),
                vec![(
                    "llvm.nvvm.read.ptx.sreg.laneid",
                    "declare i32 @llvm.nvvm.read.ptx.sreg.laneid()",
                )],
            ),
        };
        for (n, d) in decls {
            self.declare(n, d.to_string());
        }
        self.entry.push_str(&text);
        let v = Val::new(name, Type::scalar(Scalar::U32));
        self.lane_id = Some(v.clone());
        v
    }

    // ---- scalar rules -------------------------------------------------------------------------

    fn f32t() -> Type {
        Type::scalar(Scalar::F32)
    }

    /// `v` as f32 (16-bit floats extended exactly).
    fn to_f32(&mut self, v: &Val) -> Val {
        if v.ty.scalar == Scalar::F32 {
            return v.clone();
        }
        self.assign("f", format!("fpext {} to float", v.typed()), Self::f32t())
    }

    /// An f32 rounded back to `s`.
    fn from_f32(&mut self, v: Val, s: Scalar) -> Val {
        if s == Scalar::F32 {
            return v;
        }
        self.assign(
            "r",
            format!("fptrunc float {} to {}", v.text, llvm_scalar(s)),
            Type::scalar(s),
        )
    }

    /// An f32 function of one argument applied to a float of any width (16-bit floats are
    /// computed in f32 and rounded once, as the HIP backend does).
    fn via_f32(&mut self, a: &Val, f: impl FnOnce(&mut Self, Val) -> Val) -> Val {
        let s = a.ty.scalar;
        let x = self.to_f32(a);
        let r = f(self, x);
        self.from_f32(r, s)
    }

    fn f32_call(&mut self, name: &str, args: &[&Val]) -> Val {
        let list: Vec<(String, String)> = args
            .iter()
            .map(|a| ("float".to_string(), a.text.clone()))
            .collect();
        self.call("float", name, &list, Self::f32t())
    }

    fn unary(&mut self, op: UnaryOp, a: &Val) -> R<Val> {
        let s = a.ty.scalar;
        let ty = a.ty;
        let t = llvm_scalar(s);
        Ok(match op {
            UnaryOp::Neg => match s {
                _ if s.is_float() => self.assign("neg", format!("fneg {t} {}", a.text), ty),
                Scalar::I32 => self.assign("neg", format!("sub i32 0, {}", a.text), ty),
                _ => return self.err(format!("negation of {s}")),
            },
            UnaryOp::Not => match s {
                Scalar::Bool => self.assign("not", format!("xor i1 {}, true", a.text), ty),
                Scalar::I32 | Scalar::U32 => {
                    self.assign("not", format!("xor i32 {}, -1", a.text), ty)
                }
                _ => return self.err(format!("`not` of {s}")),
            },
            UnaryOp::Abs => match s {
                Scalar::I32 => self.call(
                    "i32",
                    "llvm.abs.i32",
                    &[
                        ("i32".into(), a.text.clone()),
                        ("i1".into(), "false".into()),
                    ],
                    ty,
                ),
                Scalar::U32 => a.clone(),
                Scalar::Bool => return self.err("abs of bool"),
                _ => self.via_f32(a, |w, x| w.f32_call("llvm.fabs.f32", &[&x])),
            },
            _ if !s.is_float() => return self.err(format!("{} of {s} (float only)", op.name())),
            UnaryOp::Exp2 => {
                let f = self.fam.exp2;
                self.via_f32(a, |w, x| w.f32_call(f, &[&x]))
            }
            UnaryOp::Log2 => {
                let f = self.fam.log2;
                self.via_f32(a, |w, x| w.f32_call(f, &[&x]))
            }
            UnaryOp::Sqrt => {
                let f = self.fam.sqrt;
                self.via_f32(a, |w, x| w.f32_call(f, &[&x]))
            }
            UnaryOp::Rsqrt => {
                let f = self.fam.rsqrt;
                self.via_f32(a, |w, x| w.f32_call(f, &[&x]))
            }
            UnaryOp::Floor => self.via_f32(a, |w, x| w.f32_call("llvm.floor.f32", &[&x])),
            UnaryOp::Log => {
                let f = self.fam.log2;
                self.via_f32(a, |w, x| {
                    let l = w.f32_call(f, &[&x]);
                    w.assign(
                        "log",
                        format!(
                            "fmul float {}, {}",
                            l.text,
                            f32_literal(std::f32::consts::LN_2)
                        ),
                        Self::f32t(),
                    )
                })
            }
            UnaryOp::Exp | UnaryOp::Tanh | UnaryOp::Sin | UnaryOp::Cos => {
                let name = self.math.use_op(op);
                self.via_f32(a, |w, x| w.f32_call(name, &[&x]))
            }
        })
    }

    fn fma(&mut self, a: &Val, b: &Val, c: &Val) -> R<Val> {
        let s = a.ty.scalar;
        Ok(match s {
            Scalar::I32 | Scalar::U32 => {
                let m = self.assign("mul", format!("mul i32 {}, {}", a.text, b.text), a.ty);
                self.assign("fma", format!("add i32 {}, {}", m.text, c.text), a.ty)
            }
            Scalar::Bool => return self.err("fma of bool"),
            _ => {
                let (x, y, z) = (self.to_f32(a), self.to_f32(b), self.to_f32(c));
                let r = self.f32_call("llvm.fma.f32", &[&x, &y, &z]);
                self.from_f32(r, s)
            }
        })
    }

    fn binary(&mut self, op: BinaryOp, s: Scalar, a: &Val, b: &Val) -> R<Val> {
        use BinaryOp::*;
        let t = llvm_scalar(s);
        let ty = a.ty;
        let bool_t = Type::scalar(Scalar::Bool);
        let float = s.is_float();
        let signed = s == Scalar::I32;
        let inst = |w: &mut Self, i: &str, out: Type| {
            w.assign("t", format!("{i} {t} {}, {}", a.text, b.text), out)
        };
        Ok(match op {
            Add | Sub | Mul | Div | Rem => {
                if s == Scalar::Bool {
                    return self.err(format!("arithmetic `{}` on bool", op.name()));
                }
                let i = match (op, float, signed) {
                    (Add, true, _) => "fadd",
                    (Sub, true, _) => "fsub",
                    (Mul, true, _) => "fmul",
                    (Div, true, _) => "fdiv",
                    (Rem, true, _) => "frem",
                    (Add, false, _) => "add",
                    (Sub, false, _) => "sub",
                    (Mul, false, _) => "mul",
                    (Div, false, true) => "sdiv",
                    (Div, false, false) => "udiv",
                    (Rem, false, true) => "srem",
                    _ => "urem",
                };
                inst(self, i, ty)
            }
            Min | Max => match s {
                Scalar::Bool => inst(self, if op == Min { "and" } else { "or" }, ty),
                Scalar::I32 | Scalar::U32 => {
                    let f = match (op, signed) {
                        (Min, true) => "llvm.smin.i32",
                        (Min, false) => "llvm.umin.i32",
                        (_, true) => "llvm.smax.i32",
                        _ => "llvm.umax.i32",
                    };
                    self.call(
                        "i32",
                        f,
                        &[
                            ("i32".into(), a.text.clone()),
                            ("i32".into(), b.text.clone()),
                        ],
                        ty,
                    )
                }
                _ => {
                    let f = if op == Min {
                        "llvm.minnum.f32"
                    } else {
                        "llvm.maxnum.f32"
                    };
                    let (x, y) = (self.to_f32(a), self.to_f32(b));
                    let r = self.f32_call(f, &[&x, &y]);
                    self.from_f32(r, s)
                }
            },
            BitAnd | BitOr | BitXor | And | Or => {
                let logical = matches!(op, And | Or);
                if logical && s != Scalar::Bool {
                    return self.err(format!("logical `{}` on {s}", op.name()));
                }
                if !logical && !(s.is_int() || s == Scalar::Bool) {
                    return self.err(format!("bitwise `{}` on {s}", op.name()));
                }
                // Both sides are evaluated, as the IR specifies.
                let i = match op {
                    BitAnd | And => "and",
                    BitOr | Or => "or",
                    _ => "xor",
                };
                inst(self, i, ty)
            }
            Shl | Shr => {
                if !s.is_int() {
                    return self.err(format!("shift of {s}"));
                }
                // The amount is taken modulo 32 (Rust's wrapping shifts), as on the HIP path.
                let amount = self.assign("sh", format!("and i32 {}, 31", b.text), b.ty);
                let i = match (op, signed) {
                    (Shl, _) => "shl",
                    (_, true) => "ashr",
                    _ => "lshr",
                };
                self.assign("t", format!("{i} i32 {}, {}", a.text, amount.text), ty)
            }
            Eq | Ne | Lt | Le | Gt | Ge => {
                let pred = match (op, float, signed) {
                    (Eq, true, _) => "oeq",
                    (Ne, true, _) => "une",
                    (Lt, true, _) => "olt",
                    (Le, true, _) => "ole",
                    (Gt, true, _) => "ogt",
                    (Ge, true, _) => "oge",
                    (Eq, false, _) => "eq",
                    (Ne, false, _) => "ne",
                    (Lt, false, true) => "slt",
                    (Le, false, true) => "sle",
                    (Gt, false, true) => "sgt",
                    (Ge, false, true) => "sge",
                    (Lt, false, false) => "ult",
                    (Le, false, false) => "ule",
                    (Gt, false, false) => "ugt",
                    _ => "uge",
                };
                let i = if float { "fcmp" } else { "icmp" };
                self.assign(
                    "cmp",
                    format!("{i} {pred} {t} {}, {}", a.text, b.text),
                    bool_t,
                )
            }
        })
    }

    /// Numeric conversion of one scalar (float→int truncates, →f16/bf16 rounds to nearest
    /// even; f16↔bf16 goes through f32, which is exact).
    fn cast(&mut self, v: &Val, to: Scalar) -> R<Val> {
        let from = v.ty.scalar;
        let ty = Type::scalar(to);
        if from == to || (from.is_int() && to.is_int()) {
            return Ok(Val::new(v.text.clone(), ty));
        }
        let t = llvm_scalar(to);
        Ok(match (from, to) {
            (_, Scalar::Bool) if from.is_float() => {
                self.assign("b", format!("fcmp une {}, 0.0", v.typed()), ty)
            }
            (_, Scalar::Bool) => self.assign("b", format!("icmp ne {}, 0", v.typed()), ty),
            (Scalar::Bool, _) if to.is_int() => {
                self.assign("c", format!("zext i1 {} to {t}", v.text), ty)
            }
            (Scalar::Bool, _) => self.assign("c", format!("uitofp i1 {} to {t}", v.text), ty),
            (Scalar::F16, Scalar::BF16) | (Scalar::BF16, Scalar::F16) => {
                let f = self.to_f32(v);
                self.from_f32(f, to)
            }
            (Scalar::F32, _) if to.is_float() => self.from_f32(v.clone(), to),
            (_, Scalar::F32) if from.is_float() => self.to_f32(v),
            (_, Scalar::I32) => self.assign("c", format!("fptosi {} to i32", v.typed()), ty),
            (_, Scalar::U32) => self.assign("c", format!("fptoui {} to i32", v.typed()), ty),
            (Scalar::I32, _) => self.assign("c", format!("sitofp i32 {} to {t}", v.text), ty),
            _ => self.assign("c", format!("uitofp i32 {} to {t}", v.text), ty),
        })
    }

    // ---- cross-lane ---------------------------------------------------------------------------

    /// A scalar as the 32-bit word a shuffle moves, and back.
    fn to_word(&mut self, v: &Val) -> Val {
        let u = Type::scalar(Scalar::U32);
        match v.ty.scalar {
            Scalar::I32 | Scalar::U32 => Val::new(v.text.clone(), u),
            Scalar::F32 => self.assign("w", format!("bitcast float {} to i32", v.text), u),
            Scalar::Bool => self.assign("w", format!("zext i1 {} to i32", v.text), u),
            s => {
                let h = self.assign(
                    "w",
                    format!("bitcast {} {} to i16", llvm_scalar(s), v.text),
                    u,
                );
                self.assign("w", format!("zext i16 {} to i32", h.text), u)
            }
        }
    }

    fn from_word(&mut self, w: Val, s: Scalar) -> Val {
        let ty = Type::scalar(s);
        match s {
            Scalar::I32 | Scalar::U32 => Val::new(w.text, ty),
            Scalar::F32 => self.assign("v", format!("bitcast i32 {} to float", w.text), ty),
            Scalar::Bool => self.assign("v", format!("trunc i32 {} to i1", w.text), ty),
            _ => {
                let h = self.assign("v", format!("trunc i32 {} to i16", w.text), ty);
                self.assign(
                    "v",
                    format!("bitcast i16 {} to {}", h.text, llvm_scalar(s)),
                    ty,
                )
            }
        }
    }

    /// One 32-bit cross-lane read (all lanes of the wave take part).
    fn shuffle_word(&mut self, mode: ShuffleMode, v: &Val, s: &Val) -> Val {
        let u = Type::scalar(Scalar::U32);
        let i32a = |x: &Val| ("i32".to_string(), x.text.clone());
        match self.target.family {
            greta_dsl::Family::Nvptx => {
                let (name, c) = match mode {
                    ShuffleMode::Xor => ("llvm.nvvm.shfl.sync.bfly.i32", "31"),
                    ShuffleMode::Down => ("llvm.nvvm.shfl.sync.down.i32", "31"),
                    ShuffleMode::Up => ("llvm.nvvm.shfl.sync.up.i32", "0"),
                    ShuffleMode::Idx => ("llvm.nvvm.shfl.sync.idx.i32", "31"),
                };
                self.call(
                    "i32",
                    name,
                    &[
                        ("i32".into(), "-1".into()),
                        i32a(v),
                        i32a(s),
                        ("i32".into(), c.into()),
                    ],
                    u,
                )
            }
            greta_dsl::Family::Amdgcn => {
                // ds_bpermute addresses lanes in bytes and wraps modulo the wave, so down/up
                // clamp the source lane themselves.
                let lane = self.lane_id();
                let wave = self.target.wave_size;
                let src = match mode {
                    ShuffleMode::Xor => {
                        self.assign("src", format!("xor i32 {}, {}", lane.text, s.text), u)
                    }
                    ShuffleMode::Idx => s.clone(),
                    ShuffleMode::Down => {
                        let sum =
                            self.assign("src", format!("add i32 {}, {}", lane.text, s.text), u);
                        let ok = self.assign(
                            "in",
                            format!("icmp ult i32 {}, {wave}", sum.text),
                            Type::scalar(Scalar::Bool),
                        );
                        self.assign(
                            "src",
                            format!("select i1 {}, i32 {}, i32 {}", ok.text, sum.text, lane.text),
                            u,
                        )
                    }
                    ShuffleMode::Up => {
                        let ok = self.assign(
                            "in",
                            format!("icmp uge i32 {}, {}", lane.text, s.text),
                            Type::scalar(Scalar::Bool),
                        );
                        let diff =
                            self.assign("src", format!("sub i32 {}, {}", lane.text, s.text), u);
                        self.assign(
                            "src",
                            format!(
                                "select i1 {}, i32 {}, i32 {}",
                                ok.text, diff.text, lane.text
                            ),
                            u,
                        )
                    }
                };
                let addr = self.assign("addr", format!("shl i32 {}, 2", src.text), u);
                self.call("i32", "llvm.amdgcn.ds.bpermute", &[i32a(&addr), i32a(v)], u)
            }
        }
    }

    fn shuffle(&mut self, mode: ShuffleMode, v: &Val, lane: &Val) -> R<Val> {
        let s = v.ty.scalar;
        let w = self.to_word(v);
        let r = self.shuffle_word(mode, &w, lane);
        Ok(self.from_word(r, s))
    }

    /// Butterfly reduction: every lane ends with the same value (the HIP prelude's order:
    /// `v = op(v, shfl_xor(v, m))` for `m` from half the wave down to 1).
    fn wave_reduce(&mut self, op: ReduceOp, v: &Val) -> R<Val> {
        let s = v.ty.scalar;
        let bop = match op {
            ReduceOp::Sum => BinaryOp::Add,
            ReduceOp::Max => BinaryOp::Max,
            ReduceOp::Min => BinaryOp::Min,
        };
        let mut acc = v.clone();
        let mut m = self.target.wave_size / 2;
        while m > 0 {
            let other = self.shuffle(ShuffleMode::Xor, &acc, &u32_val(m))?;
            acc = self.binary(bop, s, &acc, &other)?;
            m /= 2;
        }
        Ok(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_exact() {
        assert_eq!(f32_literal(1.0), "0x3FF0000000000000");
        assert_eq!(
            f32_literal(0.1),
            format!("0x{:016X}", (0.1f32 as f64).to_bits())
        );
        assert_eq!(constant(Const::U32(u32::MAX)).text, "-1");
        assert_eq!(constant(Const::F16(half::f16::ONE)).text, "0xH3C00");
        assert_eq!(constant(Const::BF16(half::bf16::ONE)).text, "0xR3F80");
    }

    #[test]
    fn names_are_legal_llvm_identifiers() {
        assert_eq!(sanitize("acc"), "acc");
        assert_eq!(sanitize("9lives"), "v9lives");
        assert_eq!(sanitize("a-b c"), "a_b_c");
    }
}
