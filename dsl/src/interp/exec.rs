//! The lock-step executor: one block at a time, every IR node once per block, a loop over the
//! block's threads inside (see the module docs of [`crate::interp`] for the semantics).

use super::buffer::Buffer;
use super::error::{Dim3, InterpError};
use super::ops;
use super::{Arg, LaunchDims};
use crate::ir::{
    Access, AtomicOp, BinaryOp, Builtin, Const, Expr, ExprId, Kernel, Memory, ParamKind, ReduceOp,
    Scalar, ShuffleMode, Stmt, Type, VarId,
};
use crate::target::Target;

mod asynch;
mod matrix;

type R<T> = Result<T, InterpError>;

/// An LDS array (one per block) or a register array (one per thread) with its init bits.
struct Mem {
    /// Elements per block (LDS) or per thread (register array).
    len: usize,
    /// Bit patterns; register arrays hold thread `t`'s element `i` at `t * len + i`.
    data: Vec<u32>,
    init: Vec<bool>,
}

/// Bit pattern of a constant in the interpreter's encoding.
fn const_bits(c: Const) -> u32 {
    match c {
        Const::F16(v) => v.to_bits() as u32,
        Const::BF16(v) => v.to_bits() as u32,
        Const::F32(v) => v.to_bits(),
        Const::I32(v) => v as u32,
        Const::U32(v) => v,
        Const::Bool(v) => v as u32,
    }
}

fn any(mask: &[bool]) -> bool {
    mask.iter().any(|&m| m)
}

/// Per-launch state. Columns are `Vec<u32>` of `lanes * n` values: lane `l` of thread `t` at
/// `l * n + t`, so lane-wise vector arithmetic is the same flat loop as scalar arithmetic.
pub(super) struct Exec<'k, 'a, 'b> {
    k: &'k Kernel,
    wave: usize,
    args: &'a mut [Arg<'b>],
    /// Threads per block.
    n: usize,
    bdim: [u32; 3],
    grid: [u32; 3],
    /// The block being run.
    bidx: [u32; 3],
    /// Per-thread x, y, z thread index.
    tid: [Vec<u32>; 3],
    /// Per-thread lane within its wave.
    lane: Vec<u32>,
    vars: Vec<Vec<u32>>,
    shared: Vec<Mem>,
    locals: Vec<Mem>,
    /// Threads that executed `Return` in this block.
    exited: Vec<bool>,
    any_exited: bool,
    /// Recycled value columns and masks, so the steady state allocates nothing.
    pool: Vec<Vec<u32>>,
    mask_pool: Vec<Vec<bool>>,
    /// Scratch for (thread, element index) pairs of one memory access.
    at: Vec<(u32, u32)>,
    /// Orderings of asynchronous work, for kernels that issue any.
    hazards: Option<asynch::Hazards>,
}

impl<'k, 'a, 'b> Exec<'k, 'a, 'b> {
    pub(super) fn new(
        k: &'k Kernel,
        target: &Target,
        dims: LaunchDims,
        args: &'a mut [Arg<'b>],
    ) -> R<Self> {
        let n = dims.block.iter().product::<u32>() as usize;
        let wave = target.wave_size.max(1) as usize;
        let [bx, by, _] = dims.block;
        let tid = [
            (0..n as u32).map(|t| t % bx).collect(),
            (0..n as u32).map(|t| t / bx % by).collect(),
            (0..n as u32).map(|t| t / (bx * by)).collect(),
        ];
        let lane = (0..n as u32).map(|t| t % wave as u32).collect();
        let mut vars = Vec::with_capacity(k.vars.len());
        for v in &k.vars {
            if !Type::valid_lanes(v.ty.lanes) {
                return Err(malformed(
                    k,
                    format!("variable `{}` has {} lanes", v.name, v.ty.lanes),
                ));
            }
            vars.push(vec![0; v.ty.lanes as usize * n]);
        }
        let shared = k
            .shared
            .iter()
            .map(|a| Mem {
                len: a.len as usize,
                data: vec![0; a.len as usize],
                init: vec![false; a.len as usize],
            })
            .collect();
        let locals = k
            .locals
            .iter()
            .map(|a| {
                let total = a.len as usize * n;
                Mem {
                    len: a.len as usize,
                    data: vec![0; total],
                    init: vec![false; total],
                }
            })
            .collect();
        Ok(Exec {
            k,
            wave,
            args,
            n,
            bdim: dims.block,
            grid: dims.grid,
            bidx: [0; 3],
            tid,
            lane,
            vars,
            shared,
            locals,
            exited: vec![false; n],
            any_exited: false,
            pool: Vec::new(),
            mask_pool: Vec::new(),
            at: Vec::new(),
            hazards: asynch::Hazards::for_kernel(k, n),
        })
    }

    pub(super) fn run(mut self) -> R<()> {
        let k = self.k;
        let mut mask = vec![true; self.n];
        for bz in 0..self.grid[2] {
            for by in 0..self.grid[1] {
                for bx in 0..self.grid[0] {
                    self.bidx = [bx, by, bz];
                    self.reset_block();
                    mask.fill(true);
                    self.exec_block(&k.body, &mut mask)?;
                }
            }
        }
        Ok(())
    }

    /// Fresh per-block state: LDS and register arrays uninitialised, variables zero, nobody
    /// exited. Zeroing variables keeps results independent of earlier blocks even for IR that
    /// reads a variable before its `Let`.
    fn reset_block(&mut self) {
        for m in self.shared.iter_mut().chain(self.locals.iter_mut()) {
            m.init.fill(false);
        }
        for v in &mut self.vars {
            v.fill(0);
        }
        self.exited.fill(false);
        self.any_exited = false;
        if let Some(h) = &mut self.hazards {
            h.reset();
        }
    }

    // ----- small helpers -----

    fn bad(&self, detail: impl Into<String>) -> InterpError {
        malformed(self.k, detail.into())
    }

    fn block(&self) -> Dim3 {
        Dim3(self.bidx)
    }

    /// Thread coordinate of linear thread id `t` (also for ids past the block, for messages).
    fn thread(&self, t: usize) -> Dim3 {
        let t = t as u32;
        let [bx, by, _] = self.bdim;
        Dim3([t % bx, t / bx % by, t / (bx * by)])
    }

    fn kname(&self) -> String {
        self.k.name.clone()
    }

    fn take(&mut self) -> Vec<u32> {
        self.pool.pop().unwrap_or_default()
    }

    fn give(&mut self, v: Vec<u32>) {
        self.pool.push(v);
    }

    /// A column of `len` copies of `bits`.
    fn fill(&mut self, len: usize, bits: u32) -> Vec<u32> {
        let mut v = self.take();
        v.clear();
        v.resize(len, bits);
        v
    }

    fn take_mask(&mut self) -> Vec<bool> {
        let mut m = self.mask_pool.pop().unwrap_or_default();
        m.clear();
        m.resize(self.n, false);
        m
    }

    fn give_mask(&mut self, m: Vec<bool>) {
        self.mask_pool.push(m);
    }

    /// Remove threads that have returned from `mask` (after running a nested block).
    fn drop_exited(&self, mask: &mut [bool]) {
        if self.any_exited {
            for (m, &e) in mask.iter_mut().zip(&self.exited) {
                *m &= !e;
            }
        }
    }

    fn ty(&self, id: ExprId) -> R<Type> {
        self.k
            .exprs
            .get(id.0 as usize)
            .map(|e| e.ty)
            .ok_or_else(|| self.bad(format!("expression id {} out of range", id.0)))
    }

    fn var_ty(&self, v: VarId) -> R<Type> {
        self.k
            .vars
            .get(v.0 as usize)
            .map(|v| v.ty)
            .ok_or_else(|| self.bad(format!("variable id {} out of range", v.0)))
    }

    /// Evaluate `id`, requiring it to have type `want`.
    fn eval_ty(&mut self, id: ExprId, want: Type, what: &str, mask: &[bool]) -> R<Vec<u32>> {
        let ty = self.ty(id)?;
        if ty != want {
            return Err(self.bad(format!("{what} has type {ty}, expected {want}")));
        }
        self.eval(id, mask)
    }

    /// Evaluate a scalar u32/i32 index; returns the column and whether it is signed.
    fn eval_index(&mut self, id: ExprId, what: &str, mask: &[bool]) -> R<(Vec<u32>, bool)> {
        let ty = self.ty(id)?;
        let signed = match ty {
            Type {
                scalar: Scalar::U32,
                lanes: 1,
            } => false,
            Type {
                scalar: Scalar::I32,
                lanes: 1,
            } => true,
            _ => return Err(self.bad(format!("{what} has type {ty}, expected u32 or i32"))),
        };
        Ok((self.eval(id, mask)?, signed))
    }

    // ----- statements -----

    fn exec_block(&mut self, stmts: &'k [Stmt], mask: &mut [bool]) -> R<()> {
        if !any(mask) {
            return Ok(());
        }
        for s in stmts {
            let changes_mask = self.exec_stmt(s, mask)?;
            if changes_mask && !any(mask) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Run one statement; returns whether it may have changed `mask` (threads returned).
    fn exec_stmt(&mut self, s: &'k Stmt, mask: &mut [bool]) -> R<bool> {
        let n = self.n;
        match s {
            Stmt::Let { var, value } | Stmt::Assign { var, value } => {
                let vt = self.var_ty(*var)?;
                let v = self.eval_ty(*value, vt, "assigned value", mask)?;
                self.write_var(*var, &v, mask);
                self.give(v);
                Ok(false)
            }
            Stmt::Store { mem, index, value } => {
                self.store(*mem, *index, *value, mask)?;
                Ok(false)
            }
            Stmt::Atomic {
                op,
                mem,
                index,
                value,
                result,
            } => {
                self.atomic(*op, *mem, *index, *value, *result, mask)?;
                Ok(false)
            }
            Stmt::If {
                cond,
                then,
                otherwise,
            } => {
                let c = self.eval_ty(*cond, Type::BOOL, "`if` condition", mask)?;
                let mut tm = self.take_mask();
                let mut em = self.take_mask();
                for t in 0..n {
                    let on = c[t] != 0;
                    tm[t] = mask[t] & on;
                    em[t] = mask[t] & !on;
                }
                self.give(c);
                self.exec_block(then, &mut tm)?;
                self.exec_block(otherwise, &mut em)?;
                self.give_mask(tm);
                self.give_mask(em);
                self.drop_exited(mask);
                Ok(true)
            }
            Stmt::For {
                var,
                start,
                end,
                step,
                body,
            } => {
                self.exec_for(*var, *start, *end, *step, body, mask)?;
                Ok(true)
            }
            Stmt::While { cond, body } => {
                let mut lm = self.take_mask();
                lm.copy_from_slice(mask);
                loop {
                    let c = self.eval_ty(*cond, Type::BOOL, "`while` condition", &lm)?;
                    for (m, &c) in lm.iter_mut().zip(&c) {
                        *m &= c != 0;
                    }
                    self.give(c);
                    if !any(&lm) {
                        break;
                    }
                    self.exec_block(body, &mut lm)?;
                }
                self.give_mask(lm);
                self.drop_exited(mask);
                Ok(true)
            }
            Stmt::Return => {
                for (m, e) in mask.iter_mut().zip(self.exited.iter_mut()) {
                    if *m {
                        *e = true;
                        *m = false;
                    }
                }
                self.any_exited = true;
                Ok(true)
            }
            Stmt::Barrier => {
                let reached = mask.iter().filter(|&&m| m).count();
                if reached != n {
                    let t = mask.iter().position(|&m| !m).unwrap_or(0);
                    let why = if self.exited[t] {
                        "it returned earlier"
                    } else {
                        "it is on another control path: a branch not taken or a loop it has left"
                    };
                    return Err(InterpError::BarrierDivergence {
                        kernel: self.kname(),
                        reached,
                        block_threads: n,
                        block: self.block(),
                        missing: self.thread(t),
                        why,
                    });
                }
                Ok(false)
            }
            Stmt::Mma { shape, a, b, c, d } => {
                self.exec_mma(*shape, *a, *b, *c, *d, mask)?;
                Ok(false)
            }
            Stmt::LoadFragment {
                shape,
                operand,
                frag,
                place,
            } => {
                self.exec_fragment(*shape, *operand, *frag, place, false, mask)?;
                Ok(false)
            }
            Stmt::StoreFragment {
                shape,
                operand,
                frag,
                place,
            } => {
                self.exec_fragment(*shape, *operand, *frag, place, true, mask)?;
                Ok(false)
            }
            Stmt::AsyncCopy {
                dst,
                dst_index,
                src,
                src_index,
                lanes,
                pred,
            } => {
                self.exec_async_copy(*dst, *dst_index, *src, *src_index, *lanes, *pred, mask)?;
                Ok(false)
            }
            Stmt::WarpgroupMma { n, acc, a, b } => {
                self.exec_warpgroup_mma(*n, *acc, a, b, mask)?;
                Ok(false)
            }
            Stmt::Sync(op) => {
                self.exec_sync(*op, mask)?;
                Ok(false)
            }
        }
    }

    /// Masked write of a value column into a variable.
    fn write_var(&mut self, var: VarId, v: &[u32], mask: &[bool]) {
        let n = self.n;
        let dst = &mut self.vars[var.0 as usize];
        for (d, s) in dst.chunks_exact_mut(n).zip(v.chunks_exact(n)) {
            for ((d, &s), &m) in d.iter_mut().zip(s).zip(mask) {
                if m {
                    *d = s;
                }
            }
        }
    }

    fn exec_for(
        &mut self,
        var: VarId,
        start: ExprId,
        end: ExprId,
        step: ExprId,
        body: &'k [Stmt],
        mask: &mut [bool],
    ) -> R<()> {
        let vt = self.var_ty(var)?;
        let signed = match vt {
            Type {
                scalar: Scalar::U32,
                lanes: 1,
            } => false,
            Type {
                scalar: Scalar::I32,
                lanes: 1,
            } => true,
            _ => return Err(self.bad(format!("`for` variable has type {vt}, expected u32 or i32"))),
        };
        let mut ctr = self.eval_ty(start, vt, "`for` start", mask)?;
        let e = self.eval_ty(end, vt, "`for` end", mask)?;
        let st = self.eval_ty(step, vt, "`for` step", mask)?;
        for t in 0..self.n {
            let bad = if signed {
                (st[t] as i32) <= 0
            } else {
                st[t] == 0
            };
            if mask[t] && bad {
                return Err(InterpError::BadStep {
                    kernel: self.kname(),
                    var: self.k.vars[var.0 as usize].name.clone(),
                    step: if signed {
                        st[t] as i32 as i64
                    } else {
                        st[t] as i64
                    },
                    block: self.block(),
                    thread: self.thread(t),
                });
            }
        }
        let mut lm = self.take_mask();
        if signed {
            for t in 0..self.n {
                lm[t] = mask[t] && (ctr[t] as i32) < (e[t] as i32);
            }
        } else {
            for t in 0..self.n {
                lm[t] = mask[t] && ctr[t] < e[t];
            }
        }
        while any(&lm) {
            self.write_var(var, &ctr, &lm);
            self.exec_block(body, &mut lm)?;
            // Advance: a counter that would overflow leaves the loop (Rust's `step_by` ends
            // there too).
            let it = lm.iter_mut().zip(ctr.iter_mut()).zip(&st).zip(&e);
            if signed {
                for (((m, c), &s), &e) in it {
                    let (x, o) = (*c as i32).overflowing_add(s as i32);
                    *c = x as u32;
                    *m &= !o & (x < e as i32);
                }
            } else {
                for (((m, c), &s), &e) in it {
                    let (x, o) = c.overflowing_add(s);
                    *c = x;
                    *m &= !o & (x < e);
                }
            }
        }
        self.give_mask(lm);
        self.give(ctr);
        self.give(e);
        self.give(st);
        self.drop_exited(mask);
        Ok(())
    }

    // ----- expressions -----

    /// Evaluate expression `id` for the whole block into a pooled column (`lanes * n` values).
    /// Only threads in `mask` can raise errors or touch memory.
    fn eval(&mut self, id: ExprId, mask: &[bool]) -> R<Vec<u32>> {
        let k = self.k;
        let Some(node) = k.exprs.get(id.0 as usize) else {
            return Err(self.bad(format!("expression id {} out of range", id.0)));
        };
        let ty = node.ty;
        if !Type::valid_lanes(ty.lanes) {
            return Err(self.bad(format!("expression {} has {} lanes", id.0, ty.lanes)));
        }
        let n = self.n;
        let width = ty.lanes as usize * n;
        match &node.expr {
            Expr::Const(c) => {
                if c.scalar() != ty.scalar {
                    return Err(self.bad(format!("constant {c:?} typed as {ty}")));
                }
                Ok(self.fill(width, const_bits(*c)))
            }
            Expr::Param(p) => {
                let Some(param) = k.params.get(p.0 as usize) else {
                    return Err(self.bad(format!("parameter id {} out of range", p.0)));
                };
                let c = match (&param.kind, &self.args[p.0 as usize]) {
                    (ParamKind::Value(s), Arg::Value(c)) if *s == ty.scalar && ty.lanes == 1 => *c,
                    _ => {
                        return Err(
                            self.bad(format!("parameter `{}` read as a {ty} value", param.name))
                        );
                    }
                };
                Ok(self.fill(width, const_bits(c)))
            }
            Expr::Var(v) => {
                if self.var_ty(*v)? != ty {
                    return Err(self.bad(format!(
                        "variable `{}` read as {ty}",
                        k.vars[v.0 as usize].name
                    )));
                }
                let mut out = self.take();
                out.clear();
                out.extend_from_slice(&self.vars[v.0 as usize]);
                Ok(out)
            }
            Expr::Builtin(b) => {
                if ty != Type::U32 {
                    return Err(self.bad(format!("builtin {b:?} typed as {ty}, expected u32")));
                }
                let mut out = self.take();
                out.clear();
                match b {
                    Builtin::ThreadIdx(a) => out.extend_from_slice(&self.tid[a.index()]),
                    Builtin::LaneId => out.extend_from_slice(&self.lane),
                    Builtin::BlockIdx(a) => out.resize(n, self.bidx[a.index()]),
                    Builtin::BlockDim(a) => out.resize(n, self.bdim[a.index()]),
                    Builtin::GridDim(a) => out.resize(n, self.grid[a.index()]),
                    Builtin::WaveSize => out.resize(n, self.wave as u32),
                }
                Ok(out)
            }
            Expr::Unary(op, a) => {
                let av = self.eval_ty(*a, ty, "unary operand", mask)?;
                let mut out = self.take();
                if ops::unary(*op, ty.scalar, &av, &mut out).is_err() {
                    return Err(self.bad(format!("`{}` does not apply to {ty}", op.name())));
                }
                self.give(av);
                Ok(out)
            }
            Expr::Binary(op, a, b) => self.binary(*op, *a, *b, ty, mask),
            Expr::Fma(a, b, c) => {
                let av = self.eval_ty(*a, ty, "fma operand", mask)?;
                let bv = self.eval_ty(*b, ty, "fma operand", mask)?;
                let cv = self.eval_ty(*c, ty, "fma operand", mask)?;
                let mut out = self.take();
                if ops::fma(ty.scalar, &av, &bv, &cv, &mut out).is_err() {
                    return Err(self.bad(format!("fma on {ty}")));
                }
                self.give(av);
                self.give(bv);
                self.give(cv);
                Ok(out)
            }
            Expr::Select { cond, a, b } => {
                let ct = self.ty(*cond)?;
                if ct.scalar != Scalar::Bool || (ct.lanes != 1 && ct.lanes != ty.lanes) {
                    return Err(
                        self.bad(format!("select condition has type {ct} for a {ty} select"))
                    );
                }
                let c = self.eval(*cond, mask)?;
                let mut out = self.eval_ty(*a, ty, "select operand", mask)?;
                let bv = self.eval_ty(*b, ty, "select operand", mask)?;
                let cstride = if ct.lanes == 1 { 0 } else { n };
                for l in 0..ty.lanes as usize {
                    let cl = &c[l * cstride..l * cstride + n];
                    for ((o, &bb), &cc) in
                        out[l * n..(l + 1) * n].iter_mut().zip(&bv[l * n..]).zip(cl)
                    {
                        if cc == 0 {
                            *o = bb;
                        }
                    }
                }
                self.give(c);
                self.give(bv);
                Ok(out)
            }
            Expr::Cast { to, value } => {
                let vt = self.ty(*value)?;
                if vt.lanes != ty.lanes || *to != ty.scalar {
                    return Err(self.bad(format!("cast of {vt} to {to} typed as {ty}")));
                }
                let v = self.eval(*value, mask)?;
                let mut out = self.take();
                ops::cast(vt.scalar, *to, &v, &mut out);
                self.give(v);
                Ok(out)
            }
            Expr::Load { mem, index, lanes } => self.load(*mem, *index, *lanes, ty, mask),
            Expr::Extract { vector, lane } => {
                let vt = self.ty(*vector)?;
                if ty.lanes != 1 || vt.scalar != ty.scalar || *lane >= vt.lanes {
                    return Err(self.bad(format!("extract of lane {lane} from {vt} typed as {ty}")));
                }
                let v = self.eval(*vector, mask)?;
                let mut out = self.take();
                out.clear();
                out.extend_from_slice(&v[*lane as usize * n..(*lane as usize + 1) * n]);
                self.give(v);
                Ok(out)
            }
            Expr::Compose(parts) => {
                if parts.len() != ty.lanes as usize {
                    return Err(self.bad(format!("compose of {} parts typed as {ty}", parts.len())));
                }
                let mut out = self.take();
                out.clear();
                for &p in parts {
                    let v = self.eval_ty(p, Type::scalar(ty.scalar), "compose part", mask)?;
                    out.extend_from_slice(&v);
                    self.give(v);
                }
                Ok(out)
            }
            Expr::Shuffle { mode, value, lane } => self.shuffle(*mode, *value, *lane, ty, mask),
            Expr::WaveReduce { op, value } => self.wave_reduce(*op, *value, ty, mask),
        }
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        a: ExprId,
        b: ExprId,
        ty: Type,
        mask: &[bool],
    ) -> R<Vec<u32>> {
        let at = self.ty(a)?;
        let bt = self.ty(b)?;
        let want = if op.is_comparison() {
            at.with_scalar(Scalar::Bool)
        } else {
            at
        };
        if at != bt || ty != want {
            return Err(self.bad(format!("`{}` of {at} and {bt} typed as {ty}", op.name())));
        }
        let av = self.eval(a, mask)?;
        let bv = self.eval(b, mask)?;
        let n = self.n;
        if at.scalar.is_int() {
            let signed = at.scalar == Scalar::I32;
            match op {
                BinaryOp::Div | BinaryOp::Rem => {
                    for (i, &y) in bv.iter().enumerate() {
                        if y == 0 && mask[i % n] {
                            return Err(InterpError::DivisionByZero {
                                kernel: self.kname(),
                                op: if op == BinaryOp::Div {
                                    "division"
                                } else {
                                    "remainder"
                                },
                                block: self.block(),
                                thread: self.thread(i % n),
                            });
                        }
                    }
                }
                BinaryOp::Shl | BinaryOp::Shr => {
                    for (i, &y) in bv.iter().enumerate() {
                        if y >= 32 && mask[i % n] {
                            return Err(InterpError::ShiftOverflow {
                                kernel: self.kname(),
                                amount: if signed { y as i32 as i64 } else { y as i64 },
                                block: self.block(),
                                thread: self.thread(i % n),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        let mut out = self.take();
        if ops::binary(op, at.scalar, &av, &bv, &mut out).is_err() {
            return Err(self.bad(format!("`{}` does not apply to {at}", op.name())));
        }
        self.give(av);
        self.give(bv);
        Ok(out)
    }

    // ----- memory -----

    /// Length in elements of a memory object, and its element type; errors for a parameter
    /// that is not a buffer.
    fn mem_info(&self, mem: Memory) -> R<(usize, Scalar)> {
        let k = self.k;
        let Some(elem) = k.memory_elem(mem) else {
            return Err(self.bad(format!(
                "memory {mem:?} is not a buffer, LDS or register array"
            )));
        };
        let len = match mem {
            Memory::Global(p) => match self.args[p.0 as usize].buffer() {
                Some(b) => b.len(),
                None => {
                    return Err(
                        self.bad(format!("`{}` is not a buffer argument", k.memory_name(mem)))
                    )
                }
            },
            Memory::Shared(s) => self.shared[s.0 as usize].len,
            Memory::Local(l) => self.locals[l.0 as usize].len,
        };
        Ok((len, elem))
    }

    /// Check every active thread's access of `lanes` elements at `idx` and collect
    /// `(thread, index)` pairs, in thread order, into `self.at`. On a bad access, `self.at`
    /// holds the threads before it and the error is returned as `Ok(Some(..))`: stores and
    /// atomics apply that prefix first, so memory looks as if threads ran in order up to the
    /// faulting one.
    #[allow(clippy::too_many_arguments)]
    fn addresses(
        &mut self,
        mem: Memory,
        access: &'static str,
        idx: &[u32],
        signed: bool,
        lanes: u8,
        len: usize,
        mask: &[bool],
    ) -> Option<InterpError> {
        let mut at = std::mem::take(&mut self.at);
        at.clear();
        // Fast path: a scalar access whose active threads are all in bounds (the usual case)
        // needs one branch-free pass to know it, and one to collect.
        if lanes == 1 {
            let len = len as u64;
            let (ok, all) = idx
                .iter()
                .zip(mask)
                .fold((true, true), |(ok, all), (&x, &m)| {
                    let i = if signed {
                        x as i32 as i64 as u64
                    } else {
                        x as u64
                    };
                    (ok & (!m | (i < len)), all & m)
                });
            if ok {
                if all {
                    at.extend(idx.iter().enumerate().map(|(t, &x)| (t as u32, x)));
                } else {
                    for (t, (&x, &m)) in idx.iter().zip(mask).enumerate() {
                        if m {
                            at.push((t as u32, x));
                        }
                    }
                }
                self.at = at;
                return None;
            }
        }
        let l = lanes as i64;
        for (t, (&x, &m)) in idx.iter().zip(mask).enumerate() {
            if !m {
                continue;
            }
            let i = if signed { x as i32 as i64 } else { x as i64 };
            let err = if i & (l - 1) != 0 {
                InterpError::Misaligned {
                    kernel: self.kname(),
                    access,
                    memory: self.k.memory_name(mem).to_string(),
                    index: i,
                    lanes,
                    block: self.block(),
                    thread: self.thread(t),
                }
            } else if i < 0 || i + l > len as i64 {
                InterpError::OutOfBounds {
                    kernel: self.kname(),
                    access,
                    memory: self.k.memory_name(mem).to_string(),
                    index: i,
                    lanes,
                    len,
                    block: self.block(),
                    thread: self.thread(t),
                }
            } else {
                at.push((t as u32, i as u32));
                continue;
            };
            self.at = at;
            return Some(err);
        }
        self.at = at;
        None
    }

    fn uninit(&self, mem: Memory, index: usize, t: u32) -> InterpError {
        InterpError::Uninitialised {
            kernel: self.kname(),
            memory: self.k.memory_name(mem).to_string(),
            index,
            block: self.block(),
            thread: self.thread(t as usize),
        }
    }

    fn load(
        &mut self,
        mem: Memory,
        index: ExprId,
        lanes: u8,
        ty: Type,
        mask: &[bool],
    ) -> R<Vec<u32>> {
        let (len, elem) = self.mem_info(mem)?;
        if ty != Type::vector(elem, lanes) {
            return Err(self.bad(format!(
                "{lanes}-lane load of `{}` ({elem}) typed as {ty}",
                self.k.memory_name(mem)
            )));
        }
        let (idx, signed) = self.eval_index(index, "load index", mask)?;
        if let Some(e) = self.addresses(mem, "load", &idx, signed, lanes, len, mask) {
            return Err(e);
        }
        self.give(idx);
        let n = self.n;
        let lanes = lanes as usize;
        let mut out = self.fill(lanes * n, 0);
        match mem {
            Memory::Global(p) => {
                if let Some(b) = self.args[p.0 as usize].buffer() {
                    b.gather(&self.at, lanes, n, &mut out);
                }
            }
            Memory::Shared(s) => {
                let m = &self.shared[s.0 as usize];
                for &(t, i) in &self.at {
                    for l in 0..lanes {
                        let e = i as usize + l;
                        if let Some(why) = self
                            .hazards
                            .as_ref()
                            .and_then(|h| h.lds_read(s.0 as usize, e))
                        {
                            return Err(self.async_hazard(mem, e, t, "read", why));
                        }
                        if !m.init[e] {
                            return Err(self.uninit(mem, e, t));
                        }
                        out[l * n + t as usize] = m.data[e];
                    }
                }
            }
            Memory::Local(lid) => {
                let m = &self.locals[lid.0 as usize];
                for &(t, i) in &self.at {
                    for l in 0..lanes {
                        let e = i as usize + l;
                        let off = t as usize * m.len + e;
                        if self
                            .hazards
                            .as_ref()
                            .is_some_and(|h| h.acc_pending(lid.0 as usize, off))
                        {
                            return Err(self.async_hazard(mem, e, t, "read", PENDING_ACC));
                        }
                        if !m.init[off] {
                            return Err(self.uninit(mem, e, t));
                        }
                        out[l * n + t as usize] = m.data[off];
                    }
                }
            }
        }
        Ok(out)
    }

    /// The writable buffer behind a global parameter, or a Malformed error for a store to a
    /// read-only parameter (the argument check has already made sure that `ReadWrite`
    /// parameters got `Arg::Write`).
    fn writable(&mut self, mem: Memory, p: u32) -> R<&mut Buffer> {
        let ro = matches!(
            self.k.params.get(p as usize).map(|p| &p.kind),
            Some(ParamKind::Buffer {
                access: Access::Read,
                ..
            })
        );
        if ro {
            return Err(self.bad(format!(
                "write to read-only buffer `{}`",
                self.k.memory_name(mem)
            )));
        }
        match &mut self.args[p as usize] {
            Arg::Write(b) => Ok(&mut **b),
            _ => Err(malformed(
                self.k,
                format!(
                    "write to `{}`, which is not a writable buffer",
                    self.k.memory_name(mem)
                ),
            )),
        }
    }

    fn store(&mut self, mem: Memory, index: ExprId, value: ExprId, mask: &[bool]) -> R<()> {
        let (len, elem) = self.mem_info(mem)?;
        let vt = self.ty(value)?;
        if vt.scalar != elem {
            return Err(self.bad(format!(
                "store of {vt} into `{}` of {elem}",
                self.k.memory_name(mem)
            )));
        }
        let (idx, signed) = self.eval_index(index, "store index", mask)?;
        let v = self.eval(value, mask)?;
        let fault = self.addresses(mem, "store", &idx, signed, vt.lanes, len, mask);
        self.give(idx);
        let n = self.n;
        let lanes = vt.lanes as usize;
        let at = std::mem::take(&mut self.at);
        match mem {
            Memory::Global(p) => self.writable(mem, p.0)?.scatter(&at, lanes, n, &v),
            Memory::Shared(s) => {
                if let Some(h) = &self.hazards {
                    for &(t, i) in &at {
                        for l in 0..lanes {
                            if let Some(why) = h.lds_write(s.0 as usize, i as usize + l) {
                                let e = self.async_hazard(mem, i as usize + l, t, "store to", why);
                                self.at = at;
                                return Err(e);
                            }
                        }
                    }
                }
                let m = &mut self.shared[s.0 as usize];
                for &(t, i) in &at {
                    for l in 0..lanes {
                        m.data[i as usize + l] = v[l * n + t as usize];
                        m.init[i as usize + l] = true;
                    }
                }
                if let Some(h) = &mut self.hazards {
                    for &(t, i) in &at {
                        for l in 0..lanes {
                            h.lds_written(s.0 as usize, i as usize + l, t as usize);
                        }
                    }
                }
            }
            Memory::Local(lid) => {
                if let Some(h) = &self.hazards {
                    let len = self.locals[lid.0 as usize].len;
                    for &(t, i) in &at {
                        for l in 0..lanes {
                            let off = t as usize * len + i as usize + l;
                            if h.acc_pending(lid.0 as usize, off) {
                                let e = self.async_hazard(
                                    mem,
                                    i as usize + l,
                                    t,
                                    "store to",
                                    PENDING_ACC,
                                );
                                self.at = at;
                                return Err(e);
                            }
                        }
                    }
                }
                let m = &mut self.locals[lid.0 as usize];
                for &(t, i) in &at {
                    for l in 0..lanes {
                        let off = t as usize * m.len + i as usize + l;
                        m.data[off] = v[l * n + t as usize];
                        m.init[off] = true;
                    }
                }
            }
        }
        self.at = at;
        self.give(v);
        fault.map_or(Ok(()), Err)
    }

    fn atomic(
        &mut self,
        op: AtomicOp,
        mem: Memory,
        index: ExprId,
        value: ExprId,
        result: Option<VarId>,
        mask: &[bool],
    ) -> R<()> {
        let (len, elem) = self.mem_info(mem)?;
        let name = self.k.memory_name(mem);
        let vt = self.ty(value)?;
        let rop = match op {
            AtomicOp::Add => ReduceOp::Sum,
            AtomicOp::Max => ReduceOp::Max,
        };
        let f = match (vt == Type::scalar(elem), elem) {
            (true, Scalar::F32 | Scalar::I32 | Scalar::U32) => ops::combine(rop, elem),
            _ => None,
        };
        let Some(f) = f else {
            return Err(self.bad(format!(
                "atomic {op:?} of {vt} on `{name}` of {elem} (needs f32, i32 or u32)"
            )));
        };
        if let Some(r) = result {
            if self.var_ty(r)? != vt {
                return Err(self.bad(format!(
                    "atomic result variable `{}` is not {vt}",
                    self.k.vars[r.0 as usize].name
                )));
            }
        }
        let (idx, signed) = self.eval_index(index, "atomic index", mask)?;
        let v = self.eval(value, mask)?;
        let fault = self.addresses(mem, "atomic", &idx, signed, 1, len, mask);
        let mut old = idx; // reuse the index column for the old values
        let at = std::mem::take(&mut self.at);
        match mem {
            Memory::Global(p) => {
                let b = self.writable(mem, p.0)?;
                for &(t, i) in &at {
                    let o = b.get_bits(i as usize);
                    b.set_bits(i as usize, f(o, v[t as usize]));
                    old[t as usize] = o;
                }
            }
            Memory::Shared(_) | Memory::Local(_) => {
                for &(t, i) in &at {
                    let (m, off) = match mem {
                        Memory::Shared(s) => (&mut self.shared[s.0 as usize], i as usize),
                        Memory::Local(l) => {
                            let m = &mut self.locals[l.0 as usize];
                            let off = t as usize * m.len + i as usize;
                            (m, off)
                        }
                        Memory::Global(_) => unreachable!("handled above"),
                    };
                    if !m.init[off] {
                        return Err(self.uninit(mem, i as usize, t));
                    }
                    let o = m.data[off];
                    m.data[off] = f(o, v[t as usize]);
                    old[t as usize] = o;
                }
            }
        }
        self.at = at;
        if let Some(e) = fault {
            return Err(e);
        }
        if let Some(r) = result {
            self.write_var(r, &old, mask);
        }
        self.give(old);
        self.give(v);
        Ok(())
    }

    // ----- cross-lane -----

    fn shuffle(
        &mut self,
        mode: ShuffleMode,
        value: ExprId,
        lane: ExprId,
        ty: Type,
        mask: &[bool],
    ) -> R<Vec<u32>> {
        let v = self.eval_ty(value, ty, "shuffled value", mask)?;
        let (l, signed) = self.eval_index(lane, "shuffle lane", mask)?;
        let n = self.n;
        let ws = self.wave as i64;
        let mut out = self.take();
        out.clear();
        out.extend_from_slice(&v);
        for t in 0..n {
            if !mask[t] {
                continue;
            }
            let me = (t % self.wave) as i64;
            let arg = if signed {
                l[t] as i32 as i64
            } else {
                l[t] as i64
            };
            let src = match mode {
                ShuffleMode::Xor => me ^ arg,
                ShuffleMode::Idx => arg,
                ShuffleMode::Down | ShuffleMode::Up => {
                    let s = if mode == ShuffleMode::Down {
                        me + arg
                    } else {
                        me - arg
                    };
                    if !(0..ws).contains(&s) {
                        continue; // past the wave: keep own value
                    }
                    s
                }
            };
            if !(0..ws).contains(&src) {
                return Err(InterpError::Shuffle {
                    kernel: self.kname(),
                    block: self.block(),
                    thread: self.thread(t),
                    detail: format!("lane {src} ({mode:?} {arg}), outside the wave of {ws} lanes"),
                });
            }
            let st = t - me as usize + src as usize;
            if st >= n || !mask[st] {
                let why = if st >= n {
                    "which does not exist (the block ends inside this wave)"
                } else if self.exited[st] {
                    "which has returned"
                } else {
                    "which is not active here"
                };
                return Err(InterpError::Shuffle {
                    kernel: self.kname(),
                    block: self.block(),
                    thread: self.thread(t),
                    detail: format!("from lane {src} (thread {}), {why}", self.thread(st)),
                });
            }
            for c in 0..ty.lanes as usize {
                out[c * n + t] = v[c * n + st];
            }
        }
        self.give(v);
        self.give(l);
        Ok(out)
    }

    fn wave_reduce(&mut self, op: ReduceOp, value: ExprId, ty: Type, mask: &[bool]) -> R<Vec<u32>> {
        let Some(f) = ops::combine(op, ty.scalar) else {
            return Err(self.bad(format!("wave reduction {op:?} of {ty}")));
        };
        let v = self.eval_ty(value, ty, "reduced value", mask)?;
        let n = self.n;
        let ws = self.wave;
        let mut out = self.take();
        out.clear();
        out.extend_from_slice(&v);
        let mut cur = vec![0u32; ws];
        let mut next = vec![0u32; ws];
        for (w, base) in (0..n).step_by(ws).enumerate() {
            let end = (base + ws).min(n);
            let Some(first) = (base..end).find(|&t| mask[t]) else {
                continue; // no thread of this wave is here
            };
            if end - base < ws {
                return Err(InterpError::WaveReduce {
                    kernel: self.kname(),
                    block: self.block(),
                    wave: w,
                    thread: self.thread(first),
                    why: "is in a wave that the block fills only partly (block size not a multiple of the wave size)",
                });
            }
            if let Some(t) = (base..end).find(|&t| !mask[t]) {
                let why = if self.exited[t] {
                    "has returned"
                } else {
                    "is not active here"
                };
                return Err(InterpError::WaveReduce {
                    kernel: self.kname(),
                    block: self.block(),
                    wave: w,
                    thread: self.thread(t),
                    why,
                });
            }
            for c in 0..ty.lanes as usize {
                cur.copy_from_slice(&v[c * n + base..c * n + end]);
                let mut off = 1;
                while off < ws {
                    for i in 0..ws {
                        next[i] = f(cur[i], cur[i ^ off]);
                    }
                    std::mem::swap(&mut cur, &mut next);
                    off <<= 1;
                }
                out[c * n + base..c * n + end].copy_from_slice(&cur);
            }
        }
        self.give(v);
        Ok(out)
    }
}

/// Why a pending accumulator may not be touched.
const PENDING_ACC: &str =
    "it is the accumulator of a wgmma that has not been waited for (wgmma_wait)";

impl Exec<'_, '_, '_> {
    fn async_hazard(&self, mem: Memory, e: usize, t: u32, what: &str, why: &str) -> InterpError {
        InterpError::Async {
            kernel: self.kname(),
            block: self.block(),
            thread: self.thread(t as usize),
            detail: format!("{what} `{}`[{e}]: {why}", self.k.memory_name(mem)),
        }
    }
}

fn malformed(k: &Kernel, detail: String) -> InterpError {
    InterpError::Malformed {
        kernel: k.name.clone(),
        detail,
    }
}
