//! Tests of the verifier (`greta_dsl::valid`) and the printer (`greta_dsl::print`).
//!
//! IR is built by hand with the small builder below (not the typed front end), so that the
//! tests can also build the ill-typed IR the front end never would.

use greta_dsl::ir::*;
use greta_dsl::print::{print_expr, print_kernel};
use greta_dsl::valid::{validate, ErrorKind, ValidationError};

/// A minimal IR builder: appends expressions (children first, as the front end does) and
/// infers the recorded type for the well-typed cases.
struct B {
    k: Kernel,
}

impl B {
    fn new(name: &str) -> B {
        B {
            k: Kernel {
                name: name.to_string(),
                target: &greta_dsl::Target::GFX942,
                config: vec![],
                params: vec![],
                vars: vec![],
                shared: vec![],
                locals: vec![],
                exprs: vec![],
                body: vec![],
                block_size: None,
            },
        }
    }
    fn buf(&mut self, name: &str, elem: Scalar, access: Access) -> ParamId {
        self.k.params.push(Param {
            name: name.into(),
            kind: ParamKind::Buffer { elem, access },
        });
        ParamId(self.k.params.len() as u32 - 1)
    }
    fn value(&mut self, name: &str, s: Scalar) -> ParamId {
        self.k.params.push(Param {
            name: name.into(),
            kind: ParamKind::Value(s),
        });
        ParamId(self.k.params.len() as u32 - 1)
    }
    fn var(&mut self, name: &str, ty: Type) -> VarId {
        self.k.vars.push(Var {
            name: name.into(),
            ty,
        });
        VarId(self.k.vars.len() as u32 - 1)
    }
    fn shared(&mut self, name: &str, elem: Scalar, len: u32) -> SharedId {
        self.k.shared.push(SharedArray {
            name: name.into(),
            elem,
            len,
            align: greta_dsl::ir::LDS_ALIGN,
        });
        SharedId(self.k.shared.len() as u32 - 1)
    }
    fn local(&mut self, name: &str, elem: Scalar, len: u32) -> LocalId {
        self.k.locals.push(LocalArray {
            name: name.into(),
            elem,
            len,
        });
        LocalId(self.k.locals.len() as u32 - 1)
    }
    /// An expression with an explicit recorded type.
    fn e(&mut self, expr: Expr, ty: Type) -> ExprId {
        self.k.exprs.push(ExprNode { expr, ty });
        ExprId(self.k.exprs.len() as u32 - 1)
    }
    fn ty(&self, e: ExprId) -> Type {
        self.k.exprs[e.0 as usize].ty
    }
    fn c(&mut self, c: Const) -> ExprId {
        self.e(Expr::Const(c), Type::scalar(c.scalar()))
    }
    fn u(&mut self, v: u32) -> ExprId {
        self.c(Const::U32(v))
    }
    fn f(&mut self, v: f32) -> ExprId {
        self.c(Const::F32(v))
    }
    fn tid(&mut self) -> ExprId {
        self.e(Expr::Builtin(Builtin::ThreadIdx(Axis::X)), Type::U32)
    }
    fn v(&mut self, v: VarId) -> ExprId {
        let ty = self.k.vars[v.0 as usize].ty;
        self.e(Expr::Var(v), ty)
    }
    fn p(&mut self, p: ParamId) -> ExprId {
        let ty = match self.k.params[p.0 as usize].kind {
            ParamKind::Value(s) => Type::scalar(s),
            ParamKind::Buffer { elem, .. } => Type::scalar(elem),
        };
        self.e(Expr::Param(p), ty)
    }
    fn bin(&mut self, op: BinaryOp, a: ExprId, b: ExprId) -> ExprId {
        let ty = if op.is_comparison() {
            Type::BOOL
        } else {
            self.ty(a)
        };
        self.e(Expr::Binary(op, a, b), ty)
    }
    fn un(&mut self, op: UnaryOp, a: ExprId) -> ExprId {
        let ty = self.ty(a);
        self.e(Expr::Unary(op, a), ty)
    }
    fn cast(&mut self, to: Scalar, value: ExprId) -> ExprId {
        let ty = self.ty(value).with_scalar(to);
        self.e(Expr::Cast { to, value }, ty)
    }
    fn load(&mut self, mem: Memory, index: ExprId, lanes: u8) -> ExprId {
        let elem = self.k.memory_elem(mem).unwrap_or(Scalar::F32);
        self.e(Expr::Load { mem, index, lanes }, Type::vector(elem, lanes))
    }
    fn finish(mut self, body: Vec<Stmt>) -> Kernel {
        self.k.body = body;
        self.k
    }
}

fn let_(var: VarId, value: ExprId) -> Stmt {
    Stmt::Let { var, value }
}

/// The standard frame of the rejection tests: the offending statements go into the body of a
/// `for i in 0..n` loop (top-level statement 2), after two harmless statements, so the first
/// offending statement is "statement 2, in `for i` body, statement 3".
struct Frame {
    b: B,
    i: VarId,
    /// `i` as an expression (u32).
    ie: ExprId,
    n: ParamId,
    x: ParamId,
    y: ParamId,
}

const AT: &str = "statement 2, in `for i` body, statement 3";

fn frame(name: &str) -> Frame {
    let mut b = B::new(name);
    let x = b.buf("x", Scalar::F16, Access::Read);
    let y = b.buf("y", Scalar::F32, Access::ReadWrite);
    let n = b.value("n", Scalar::U32);
    let i = b.var("i", Type::U32);
    let ie = b.v(i);
    Frame { b, i, ie, n, x, y }
}

impl Frame {
    fn finish(mut self, offending: Vec<Stmt>) -> Kernel {
        let t = self.b.var("t", Type::U32);
        let zero = self.b.u(0);
        let one = self.b.u(1);
        let n = self.b.p(self.n);
        let tid = self.b.tid();
        let mut body = vec![let_(t, tid), Stmt::Barrier];
        body.extend(offending);
        let top = self.b.var("top", Type::U32);
        let top_value = self.b.u(7);
        let i = self.i;
        self.b.finish(vec![
            let_(top, top_value),
            Stmt::For {
                var: i,
                start: zero,
                end: n,
                step: one,
                body,
            },
        ])
    }
}

/// Validates `k`, which must fail; checks the message names the kernel and the location.
fn reject(k: &Kernel, location: &str) -> ValidationError {
    let err = validate(k).expect_err("the verifier accepted an ill-formed kernel");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("kernel `{}`", k.name)),
        "message lacks the kernel: {msg}"
    );
    assert!(
        msg.contains(location),
        "message lacks the location `{location}`: {msg}"
    );
    assert_eq!(err.kernel, k.name);
    err
}

/// Frames `offending` (built by `f` on the frame), expects rejection at [`AT`].
fn reject_in_loop(name: &str, f: impl FnOnce(&mut Frame) -> Vec<Stmt>) -> ValidationError {
    reject_in_loop_at(name, AT, f)
}

/// As [`reject_in_loop`], expecting the error at `at`.
fn reject_in_loop_at(
    name: &str,
    at: &str,
    f: impl FnOnce(&mut Frame) -> Vec<Stmt>,
) -> ValidationError {
    let mut fr = frame(name);
    let stmts = f(&mut fr);
    let k = fr.finish(stmts);
    reject(&k, at)
}

// ---- a well-typed kernel passes --------------------------------------------------------------

/// A kernel that touches every kind of expression and statement, well typed.
fn good_kernel() -> Kernel {
    let mut b = B::new("everything");
    b.k.config = vec![
        ("block".into(), ConfigValue::U32(64)),
        ("T".into(), ConfigValue::Type(Scalar::F16)),
    ];
    b.k.block_size = Some([64, 1, 1]);
    let x = b.buf("x", Scalar::F16, Access::Read);
    let y = b.buf("y", Scalar::F32, Access::ReadWrite);
    let counts = b.buf("counts", Scalar::U32, Access::ReadWrite);
    let n = b.value("n", Scalar::U32);
    let eps = b.value("eps", Scalar::F32);
    let tile = b.shared("tile", Scalar::F32, 64);
    let regs = b.local("regs", Scalar::F32, 4);

    let acc = b.var("acc", Type::F32);
    let i = b.var("i", Type::U32);
    let v4 = b.var("v4", Type::vector(Scalar::F16, 4));
    let old = b.var("old", Type::U32);
    let k = b.var("k", Type::I32);

    let zero_f = b.f(0.0);
    let tid = b.tid();
    let n_e = b.p(n);
    let c64 = b.u(64);
    let c4 = b.u(4);
    // for i in (tid..n).step_by(64)
    let ie = b.v(i);
    let c4b = b.u(4);
    let idx = b.bin(BinaryOp::Mul, ie, c4b);
    let load4 = b.load(Memory::Global(x), idx, 4);
    let v4e = b.v(v4);
    let l0 = b.e(
        Expr::Extract {
            vector: v4e,
            lane: 0,
        },
        Type::scalar(Scalar::F16),
    );
    let l3 = b.e(
        Expr::Extract {
            vector: v4e,
            lane: 3,
        },
        Type::scalar(Scalar::F16),
    );
    let sum16 = b.bin(BinaryOp::Add, l0, l3);
    let s32 = b.cast(Scalar::F32, sum16);
    let acc_e = b.v(acc);
    let fma = b.e(Expr::Fma(s32, s32, acc_e), Type::F32);
    // shared + local
    let tile_ld = b.load(Memory::Shared(tile), tid, 1);
    let c0 = b.u(0);
    let reg0 = b.load(Memory::Local(regs), c0, 1);
    let m = b.bin(BinaryOp::Max, tile_ld, reg0);
    // wave ops
    let acc_e2 = b.v(acc);
    let c16 = b.u(16);
    let sh = b.e(
        Expr::Shuffle {
            mode: ShuffleMode::Xor,
            value: acc_e2,
            lane: c16,
        },
        Type::F32,
    );
    let red = b.e(
        Expr::WaveReduce {
            op: ReduceOp::Sum,
            value: sh,
        },
        Type::F32,
    );
    let eps_e = b.p(eps);
    let plus = b.bin(BinaryOp::Add, red, eps_e);
    let r = b.un(UnaryOp::Rsqrt, plus);
    let is_first = b.bin(BinaryOp::Eq, tid, c0);
    let lt = b.bin(BinaryOp::Lt, tid, n_e);
    let both = b.bin(BinaryOp::And, is_first, lt);
    let sel = b.e(
        Expr::Select {
            cond: both,
            a: r,
            b: zero_f,
        },
        Type::F32,
    );
    let four = b.e(
        Expr::Compose(vec![sel, sel, sel, sel]),
        Type::vector(Scalar::F32, 4),
    );
    let one_u = b.u(1);
    let kk = b.c(Const::I32(-3));
    let k_e = b.v(k);
    let k_lt = b.bin(BinaryOp::Lt, k_e, kk);
    let k_not = b.un(UnaryOp::Not, k_lt);
    let k_e2 = b.v(k);
    let k_one = b.c(Const::I32(1));
    let k_inc = b.bin(BinaryOp::Add, k_e2, k_one);
    let i32_to_u = b.cast(Scalar::U32, kk);
    let bool_to_u = b.cast(Scalar::U32, lt);

    let body = vec![
        let_(acc, zero_f),
        Stmt::For {
            var: i,
            start: tid,
            end: n_e,
            step: c64,
            body: vec![
                let_(v4, load4),
                Stmt::Assign {
                    var: acc,
                    value: fma,
                },
            ],
        },
        Stmt::Store {
            mem: Memory::Shared(tile),
            index: tid,
            value: acc_e,
        },
        Stmt::Store {
            mem: Memory::Local(regs),
            index: c0,
            value: m,
        },
        Stmt::Barrier,
        Stmt::If {
            cond: both,
            then: vec![
                Stmt::Store {
                    mem: Memory::Global(y),
                    index: c4,
                    value: four,
                },
                Stmt::Atomic {
                    op: AtomicOp::Add,
                    mem: Memory::Global(counts),
                    index: c0,
                    value: one_u,
                    result: Some(old),
                },
            ],
            otherwise: vec![Stmt::Return],
        },
        let_(k, kk),
        Stmt::While {
            cond: k_not,
            body: vec![Stmt::Assign {
                var: k,
                value: k_inc,
            }],
        },
        Stmt::Atomic {
            op: AtomicOp::Max,
            mem: Memory::Global(counts),
            index: i32_to_u,
            value: bool_to_u,
            result: None,
        },
    ];
    b.finish(body)
}

#[test]
fn well_typed_kernel_passes() {
    let k = good_kernel();
    validate(&k).unwrap_or_else(|e| panic!("rejected a well-typed kernel: {e}\n{k}"));
}

#[test]
fn the_frame_itself_passes() {
    let fr = frame("frame");
    let k = fr.finish(vec![]);
    validate(&k).unwrap();
}

// ---- the printer -----------------------------------------------------------------------------

#[test]
fn printer_snapshot() {
    let k = good_kernel();
    let expected = "\
#[target(gfx942)]
#[config(block = 64, T = f16)]
#[block_size(64, 1, 1)]
kernel everything(x: &[f16], y: &mut [f32], counts: &mut [u32], n: u32, eps: f32) {
    shared tile: [f32; 64];
    local regs: [f32; 4];

    let mut acc: f32 = 0.0;
    for i: u32 in (thread_idx.x..n).step_by(64) {
        let v4: f16x4 = x[i * 4..+4];
        acc = fma(cast<f32>(v4.0 + v4.3), cast<f32>(v4.0 + v4.3), acc);
    }
    tile[thread_idx.x] = acc;
    regs[0] = max(tile[thread_idx.x], regs[0]);
    barrier();
    if thread_idx.x == 0 && thread_idx.x < n {
        y[4..+4] = f32x4(select(thread_idx.x == 0 && thread_idx.x < n, rsqrt(wave_sum(shuffle_xor(acc, 16)) + eps), 0.0), select(thread_idx.x == 0 && thread_idx.x < n, rsqrt(wave_sum(shuffle_xor(acc, 16)) + eps), 0.0), select(thread_idx.x == 0 && thread_idx.x < n, rsqrt(wave_sum(shuffle_xor(acc, 16)) + eps), 0.0), select(thread_idx.x == 0 && thread_idx.x < n, rsqrt(wave_sum(shuffle_xor(acc, 16)) + eps), 0.0));
        let old: u32 = atomic_add(&counts[0], 1);
    } else {
        return;
    }
    let mut k: i32 = -3i32;
    while !(k < -3i32) {
        k = k + 1i32;
    }
    atomic_max(&counts[cast<u32>(-3i32)], cast<u32>(thread_idx.x < n));
}
";
    let printed = print_kernel(&k);
    assert_eq!(printed, expected, "\n--- printed ---\n{printed}");
    assert_eq!(k.to_string(), printed, "Display is print_kernel");
    // Deterministic: a clone prints the same.
    assert_eq!(print_kernel(&k.clone()), printed);
}

#[test]
fn printer_small_snapshot() {
    // y[row * cols + i] = cast<f16>(x[row * cols + i] * inv), with an else-if chain,
    // precedence and duplicate names.
    let mut b = B::new("scale");
    let x = b.buf("x", Scalar::F32, Access::Read);
    let y = b.buf("y", Scalar::F16, Access::ReadWrite);
    let cols = b.value("cols", Scalar::U32);
    let row = b.var("row", Type::U32);
    let inv = b.var("inv", Type::F32);
    let t1 = b.var("t", Type::U32);
    let t2 = b.var("t", Type::U32);
    let bid = b.e(Expr::Builtin(Builtin::BlockIdx(Axis::Y)), Type::U32);
    let half = b.f(0.5);
    let row_e = b.v(row);
    let cols_e = b.p(cols);
    let tid = b.tid();
    let rc = b.bin(BinaryOp::Mul, row_e, cols_e);
    let idx = b.bin(BinaryOp::Add, rc, tid);
    let ld = b.load(Memory::Global(x), idx, 1);
    let inv_e = b.v(inv);
    let prod = b.bin(BinaryOp::Mul, ld, inv_e);
    let h = b.cast(Scalar::F16, prod);
    // (a + b) * c and a - (b - c)
    let one = b.u(1);
    let sum = b.bin(BinaryOp::Add, tid, one);
    let times = b.bin(BinaryOp::Mul, sum, cols_e);
    let inner = b.bin(BinaryOp::Sub, one, tid);
    let minus = b.bin(BinaryOp::Sub, tid, inner);
    let c0 = b.u(0);
    let is0 = b.bin(BinaryOp::Eq, tid, c0);
    let is1 = b.bin(BinaryOp::Eq, tid, one);
    let neg = b.un(UnaryOp::Neg, half);
    let negneg = b.un(UnaryOp::Neg, neg);
    let e = b.un(UnaryOp::Exp, negneg);
    let bf = b.c(Const::BF16(half::bf16::from_f32(1.5)));
    let inf = b.f(f32::INFINITY);
    let k = b.finish(vec![
        let_(row, bid),
        let_(inv, half),
        Stmt::Store {
            mem: Memory::Global(y),
            index: idx,
            value: h,
        },
        Stmt::If {
            cond: is0,
            then: vec![let_(t1, times)],
            otherwise: vec![Stmt::If {
                cond: is1,
                then: vec![let_(t2, minus)],
                otherwise: vec![Stmt::Assign { var: inv, value: e }],
            }],
        },
    ]);
    let _ = (bf, inf);
    let expected = "\
#[target(gfx942)]
kernel scale(x: &[f32], y: &mut [f16], cols: u32) {
    let row: u32 = block_idx.y;
    let mut inv: f32 = 0.5;
    y[row * cols + thread_idx.x] = cast<f16>(x[row * cols + thread_idx.x] * inv);
    if thread_idx.x == 0 {
        let t#2: u32 = (thread_idx.x + 1) * cols;
    } else if thread_idx.x == 1 {
        let t#3: u32 = thread_idx.x - (1 - thread_idx.x);
    } else {
        inv = exp(-(-0.5));
    }
}
";
    assert_eq!(print_kernel(&k), expected, "\n{}", print_kernel(&k));
    assert_eq!(print_expr(&k, bf), "1.5bf16");
    assert_eq!(print_expr(&k, inf), "f32::INFINITY");
    assert_eq!(
        print_expr(&k, h),
        "cast<f16>(x[row * cols + thread_idx.x] * inv)"
    );
    // The printer never panics on bad ids.
    assert_eq!(print_expr(&k, ExprId(999)), "<bad %999>");
}

// ---- exact message format --------------------------------------------------------------------

#[test]
fn message_format() {
    let err = reject_in_loop("fmt", |fr| {
        let ld = fr.b.load(Memory::Global(fr.x), fr.ie, 1);
        let one = fr.b.f(1.0);
        let add = fr.b.e(Expr::Binary(BinaryOp::Add, ld, one), Type::F32);
        let s = fr.b.var("s", Type::F32);
        vec![let_(s, add)]
    });
    assert_eq!(
        err.to_string(),
        "kernel `fmt`: statement 2, in `for i` body, statement 3: in `x[i] + 1.0`: \
         right operand of `+` (it must have the left's type): expected f16, found f32"
    );
    assert_eq!(err.code.as_deref(), Some("x[i] + 1.0"));
    assert!(
        matches!(err.kind, ErrorKind::Mismatch { expected, found, .. }
        if expected == Type::scalar(Scalar::F16) && found == Type::F32)
    );
}

#[test]
fn nested_paths() {
    // statement 1: if; else branch statement 2: while; body statement 1: bad let.
    let mut b = B::new("nest");
    let c = b.c(Const::Bool(true));
    let v = b.var("v", Type::F32);
    let one = b.u(1);
    let k = b.finish(vec![Stmt::If {
        cond: c,
        then: vec![],
        otherwise: vec![
            Stmt::Barrier,
            Stmt::While {
                cond: c,
                body: vec![let_(v, one)],
            },
        ],
    }]);
    let err = reject(
        &k,
        "statement 1, in `if` else branch, statement 2, in `while` body, statement 1",
    );
    assert!(err.to_string().contains("in `let v: f32 = 1`"), "{err}");
    assert!(matches!(err.kind, ErrorKind::Mismatch { .. }));
}

#[test]
fn unreferenced_expression_is_checked_and_located() {
    let mut b = B::new("dead");
    let a = b.u(1);
    let f = b.f(1.0);
    b.e(Expr::Binary(BinaryOp::Add, a, f), Type::U32);
    let k = b.finish(vec![]);
    let err = reject(&k, "unreferenced expression %2");
    assert!(matches!(err.kind, ErrorKind::Mismatch { .. }));
}

// ---- one test per rule -----------------------------------------------------------------------

#[test]
fn expr_id_out_of_range() {
    let err = reject_in_loop("oob", |fr| {
        let s = fr.b.var("s", Type::F32);
        vec![let_(s, ExprId(1000))]
    });
    assert!(
        matches!(err.kind, ErrorKind::ExprOutOfRange { id: 1000, .. }),
        "{err}"
    );
    let err = reject_in_loop("oob_child", |fr| {
        let e = fr.b.e(Expr::Unary(UnaryOp::Neg, ExprId(500)), Type::F32);
        let s = fr.b.var("s", Type::F32);
        vec![let_(s, e)]
    });
    assert!(
        matches!(err.kind, ErrorKind::ExprOutOfRange { id: 500, .. }),
        "{err}"
    );
}

#[test]
fn child_must_precede_parent() {
    let err = reject_in_loop("fwd", |fr| {
        let next = ExprId(fr.b.k.exprs.len() as u32 + 1);
        let e = fr.b.e(Expr::Unary(UnaryOp::Neg, next), Type::F32);
        fr.b.f(1.0);
        let s = fr.b.var("s", Type::F32);
        vec![let_(s, e)]
    });
    assert!(
        matches!(err.kind, ErrorKind::ForwardReference { .. }),
        "{err}"
    );
    // A self-reference (a cycle) is a forward reference too.
    let err = reject_in_loop("cycle", |fr| {
        let me = ExprId(fr.b.k.exprs.len() as u32);
        let e = fr.b.e(Expr::Unary(UnaryOp::Neg, me), Type::F32);
        let s = fr.b.var("s", Type::F32);
        vec![let_(s, e)]
    });
    assert!(
        matches!(err.kind, ErrorKind::ForwardReference { .. }),
        "{err}"
    );
}

#[test]
fn var_param_shared_local_ids_out_of_range() {
    let err = reject_in_loop("badvar", |fr| {
        let e = fr.b.e(Expr::Var(VarId(77)), Type::F32);
        let s = fr.b.var("s", Type::F32);
        vec![let_(s, e)]
    });
    assert!(
        matches!(err.kind, ErrorKind::VarOutOfRange { id: 77, .. }),
        "{err}"
    );
    let err = reject_in_loop("badletvar", |fr| {
        let one = fr.b.u(1);
        vec![let_(VarId(55), one)]
    });
    assert!(
        matches!(err.kind, ErrorKind::VarOutOfRange { id: 55, .. }),
        "{err}"
    );
    let err = reject_in_loop("badparam", |fr| {
        let e = fr.b.e(
            Expr::Load {
                mem: Memory::Global(ParamId(9)),
                index: fr.ie,
                lanes: 1,
            },
            Type::F32,
        );
        let s = fr.b.var("s", Type::F32);
        vec![let_(s, e)]
    });
    assert!(
        matches!(err.kind, ErrorKind::ParamOutOfRange { id: 9, .. }),
        "{err}"
    );
    let err = reject_in_loop("badparamexpr", |fr| {
        let e = fr.b.e(Expr::Param(ParamId(9)), Type::F32);
        let s = fr.b.var("s", Type::F32);
        vec![let_(s, e)]
    });
    assert!(
        matches!(err.kind, ErrorKind::ParamOutOfRange { id: 9, .. }),
        "{err}"
    );
    let err = reject_in_loop("badshared", |fr| {
        let one = fr.b.f(1.0);
        vec![Stmt::Store {
            mem: Memory::Shared(SharedId(3)),
            index: fr.ie,
            value: one,
        }]
    });
    assert!(
        matches!(err.kind, ErrorKind::SharedOutOfRange { id: 3, .. }),
        "{err}"
    );
    let err = reject_in_loop("badlocal", |fr| {
        let e = fr.b.e(
            Expr::Load {
                mem: Memory::Local(LocalId(4)),
                index: fr.ie,
                lanes: 1,
            },
            Type::F32,
        );
        let s = fr.b.var("s", Type::F32);
        vec![let_(s, e)]
    });
    assert!(
        matches!(err.kind, ErrorKind::LocalOutOfRange { id: 4, .. }),
        "{err}"
    );
}

#[test]
fn buffer_param_as_value() {
    let err = reject_in_loop("bufval", |fr| {
        let e = fr.b.e(Expr::Param(fr.y), Type::F32);
        let s = fr.b.var("s", Type::F32);
        vec![let_(s, e)]
    });
    assert!(
        matches!(&err.kind, ErrorKind::BufferAsValue(n) if n == "y"),
        "{err}"
    );
    assert!(err.to_string().contains("in `y`"), "{err}");
}

#[test]
fn memory_access_on_value_param() {
    let err = reject_in_loop("loadval", |fr| {
        let e = fr.b.e(
            Expr::Load {
                mem: Memory::Global(fr.n),
                index: fr.ie,
                lanes: 1,
            },
            Type::U32,
        );
        let s = fr.b.var("s", Type::U32);
        vec![let_(s, e)]
    });
    assert!(
        matches!(&err.kind, ErrorKind::NotABuffer { name, .. } if name == "n"),
        "{err}"
    );
    let err = reject_in_loop("storeval", |fr| {
        vec![Stmt::Store {
            mem: Memory::Global(fr.n),
            index: fr.ie,
            value: fr.ie,
        }]
    });
    assert!(matches!(&err.kind, ErrorKind::NotABuffer { .. }), "{err}");
    let err = reject_in_loop("atomicval", |fr| {
        vec![Stmt::Atomic {
            op: AtomicOp::Add,
            mem: Memory::Global(fr.n),
            index: fr.ie,
            value: fr.ie,
            result: None,
        }]
    });
    assert!(matches!(&err.kind, ErrorKind::NotABuffer { .. }), "{err}");
}

#[test]
fn bad_lane_counts() {
    let err = reject_in_loop("lanes3", |fr| {
        let e = fr.b.load(Memory::Global(fr.y), fr.ie, 3);
        let s = fr.b.var("s", Type::F32);
        vec![let_(s, e)]
    });
    assert!(
        matches!(err.kind, ErrorKind::BadLanes { lanes: 3 }),
        "{err}"
    );
    // A variable of a bad vector type is a declaration error.
    let mut fr = frame("varlanes");
    fr.b.var("w", Type::vector(Scalar::F32, 16));
    let k = fr.finish(vec![]);
    let err = reject(&k, "variable `w`");
    assert!(
        matches!(err.kind, ErrorKind::BadLanes { lanes: 16 }),
        "{err}"
    );
}

#[test]
fn bool_vectors_rejected() {
    let err = reject_in_loop("boolvec", |fr| {
        let flags = fr.b.buf("flags", Scalar::Bool, Access::Read);
        let e = fr.b.load(Memory::Global(flags), fr.ie, 4);
        let s = fr.b.var("s", Type::F32);
        vec![let_(s, e)]
    });
    assert!(matches!(err.kind, ErrorKind::BadType { .. }), "{err}");
    assert!(err.to_string().contains("in `flags[i..+4]`"), "{err}");
    // A variable of a bool vector type is a declaration error.
    let mut fr = frame("boolvar");
    fr.b.var("mask", Type::vector(Scalar::Bool, 2));
    let k = fr.finish(vec![]);
    let err = reject(&k, "variable `mask`");
    assert!(matches!(err.kind, ErrorKind::BadType { .. }), "{err}");
}

#[test]
fn vector_access_to_local_array() {
    let err = reject_in_loop("localvec", |fr| {
        let regs = fr.b.local("regs", Scalar::F32, 8);
        let e = fr.b.load(Memory::Local(regs), fr.ie, 4);
        let s = fr.b.var("s", Type::vector(Scalar::F32, 4));
        vec![let_(s, e)]
    });
    assert!(
        matches!(&err.kind, ErrorKind::VectorLocal { name, lanes: 4 } if name == "regs"),
        "{err}"
    );
    let err = reject_in_loop("localvecstore", |fr| {
        let regs = fr.b.local("regs", Scalar::F32, 8);
        let one = fr.b.f(1.0);
        let v =
            fr.b.e(Expr::Compose(vec![one, one]), Type::vector(Scalar::F32, 2));
        vec![Stmt::Store {
            mem: Memory::Local(regs),
            index: fr.ie,
            value: v,
        }]
    });
    assert!(
        matches!(&err.kind, ErrorKind::VectorLocal { lanes: 2, .. }),
        "{err}"
    );
}

#[test]
fn store_to_read_only_buffer() {
    let err = reject_in_loop("ro", |fr| {
        let h = fr.b.c(Const::F16(half::f16::ONE));
        vec![Stmt::Store {
            mem: Memory::Global(fr.x),
            index: fr.ie,
            value: h,
        }]
    });
    assert!(
        matches!(&err.kind, ErrorKind::ReadOnly { op: "store", name, .. } if name == "x"),
        "{err}"
    );
    assert!(err.to_string().contains("in `x[i] = 1.0f16`"), "{err}");
    let err = reject_in_loop("roatomic", |fr| {
        let h = fr.b.c(Const::F16(half::f16::ONE));
        vec![Stmt::Atomic {
            op: AtomicOp::Add,
            mem: Memory::Global(fr.x),
            index: fr.ie,
            value: h,
            result: None,
        }]
    });
    assert!(
        matches!(&err.kind, ErrorKind::ReadOnly { op: "atomic", .. }),
        "{err}"
    );
}

#[test]
fn store_value_type_must_match_memory() {
    let err = reject_in_loop("storety", |fr| {
        let h = fr.b.c(Const::F16(half::f16::ONE));
        vec![Stmt::Store {
            mem: Memory::Global(fr.y),
            index: fr.ie,
            value: h,
        }]
    });
    assert!(
        matches!(err.kind, ErrorKind::Mismatch { expected, found, .. }
            if expected == Type::F32 && found == Type::scalar(Scalar::F16)),
        "{err}"
    );
    assert!(err.to_string().contains("expected f32, found f16"), "{err}");
}

#[test]
fn indices_must_be_integer_scalars() {
    let err = reject_in_loop("fidx", |fr| {
        let fi = fr.b.f(1.0);
        let e = fr.b.load(Memory::Global(fr.y), fi, 1);
        let s = fr.b.var("s", Type::F32);
        vec![let_(s, e)]
    });
    assert!(
        matches!(&err.kind, ErrorKind::BadType { what, found, .. } if what == "index" && *found == Type::F32),
        "{err}"
    );
    let err = reject_in_loop("vidx", |fr| {
        let v = fr.b.e(
            Expr::Compose(vec![fr.ie, fr.ie]),
            Type::vector(Scalar::U32, 2),
        );
        let one = fr.b.f(1.0);
        vec![Stmt::Store {
            mem: Memory::Global(fr.y),
            index: v,
            value: one,
        }]
    });
    assert!(
        matches!(&err.kind, ErrorKind::BadType { what, .. } if what == "index"),
        "{err}"
    );
    // i32 indices are fine.
    let mut fr = frame("i32idx");
    let ii = fr.b.c(Const::I32(2));
    let e = fr.b.load(Memory::Global(fr.y), ii, 1);
    let s = fr.b.var("s", Type::F32);
    let k = fr.finish(vec![let_(s, e)]);
    validate(&k).unwrap();
}

#[test]
fn mixed_arithmetic() {
    let err = reject_in_loop("mixed", |fr| {
        let a = fr.b.c(Const::F16(half::f16::ONE));
        let b2 = fr.b.f(2.0);
        let e = fr.b.e(Expr::Binary(BinaryOp::Mul, a, b2), Type::F32);
        let s = fr.b.var("s", Type::F32);
        vec![let_(s, e)]
    });
    assert!(matches!(err.kind, ErrorKind::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("in `1.0f16 * 2.0`"), "{err}");
    let err = reject_in_loop("addbool", |fr| {
        let t = fr.b.c(Const::Bool(true));
        let e = fr.b.bin(BinaryOp::Add, t, t);
        let s = fr.b.var("s", Type::BOOL);
        vec![let_(s, e)]
    });
    assert!(matches!(err.kind, ErrorKind::BadType { .. }), "{err}");
}

#[test]
fn float_math_on_ints() {
    let err = reject_in_loop("expint", |fr| {
        let e = fr.b.un(UnaryOp::Exp, fr.ie);
        let s = fr.b.var("s", Type::U32);
        vec![let_(s, e)]
    });
    assert!(
        matches!(&err.kind, ErrorKind::BadType { what, found, .. } if what.contains("exp") && *found == Type::U32),
        "{err}"
    );
    let err = reject_in_loop("negu32", |fr| {
        let e = fr.b.un(UnaryOp::Neg, fr.ie);
        let s = fr.b.var("s", Type::U32);
        vec![let_(s, e)]
    });
    assert!(matches!(err.kind, ErrorKind::BadType { .. }), "{err}");
    let err = reject_in_loop("fmaint", |fr| {
        let e = fr.b.e(Expr::Fma(fr.ie, fr.ie, fr.ie), Type::U32);
        let s = fr.b.var("s", Type::U32);
        vec![let_(s, e)]
    });
    assert!(matches!(err.kind, ErrorKind::BadType { .. }), "{err}");
}

#[test]
fn bitwise_on_floats() {
    let err = reject_in_loop("bitf", |fr| {
        let a = fr.b.f(1.0);
        let e = fr.b.bin(BinaryOp::BitAnd, a, a);
        let s = fr.b.var("s", Type::F32);
        vec![let_(s, e)]
    });
    assert!(
        matches!(&err.kind, ErrorKind::BadType { what, .. } if what.contains('&')),
        "{err}"
    );
    let err = reject_in_loop("shlbool", |fr| {
        let t = fr.b.c(Const::Bool(true));
        let e = fr.b.bin(BinaryOp::Shl, t, t);
        let s = fr.b.var("s", Type::BOOL);
        vec![let_(s, e)]
    });
    assert!(matches!(err.kind, ErrorKind::BadType { .. }), "{err}");
}

#[test]
fn comparisons_give_bool_and_are_scalar() {
    let err = reject_in_loop("cmpty", |fr| {
        let e = fr.b.e(Expr::Binary(BinaryOp::Lt, fr.ie, fr.ie), Type::U32);
        let s = fr.b.var("s", Type::U32);
        vec![let_(s, e)]
    });
    assert!(
        matches!(err.kind, ErrorKind::Mismatch { expected, found, .. } if expected == Type::BOOL && found == Type::U32),
        "{err}"
    );
    let err = reject_in_loop("cmpvec", |fr| {
        let v = fr.b.e(
            Expr::Compose(vec![fr.ie, fr.ie]),
            Type::vector(Scalar::U32, 2),
        );
        let e = fr.b.e(Expr::Binary(BinaryOp::Eq, v, v), Type::BOOL);
        let s = fr.b.var("s", Type::BOOL);
        vec![let_(s, e)]
    });
    assert!(matches!(err.kind, ErrorKind::BadType { .. }), "{err}");
}

#[test]
fn logic_ops_need_bool_or_int() {
    let err = reject_in_loop("andint", |fr| {
        let e = fr.b.bin(BinaryOp::And, fr.ie, fr.ie);
        let s = fr.b.var("s", Type::U32);
        vec![let_(s, e)]
    });
    assert!(
        matches!(
            &err.kind,
            ErrorKind::BadType {
                expected: "bool",
                ..
            }
        ),
        "{err}"
    );
    let err = reject_in_loop("notf", |fr| {
        let a = fr.b.f(1.0);
        let e = fr.b.un(UnaryOp::Not, a);
        let s = fr.b.var("s", Type::F32);
        vec![let_(s, e)]
    });
    assert!(matches!(err.kind, ErrorKind::BadType { .. }), "{err}");
    // `!` on an integer is bitwise not, and fine.
    let mut fr = frame("notint");
    let e = fr.b.un(UnaryOp::Not, fr.ie);
    let s = fr.b.var("s", Type::U32);
    let k = fr.finish(vec![let_(s, e)]);
    validate(&k).unwrap();
}

#[test]
fn conditions_must_be_scalar_bool() {
    let err = reject_in_loop("ifcond", |fr| {
        vec![Stmt::If {
            cond: fr.ie,
            then: vec![],
            otherwise: vec![],
        }]
    });
    assert!(
        matches!(
            err.kind,
            ErrorKind::Mismatch {
                found: Type::U32,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("in `if i`"), "{err}");
    let err = reject_in_loop("whilecond", |fr| {
        let f = fr.b.f(1.0);
        vec![Stmt::While {
            cond: f,
            body: vec![],
        }]
    });
    assert!(
        matches!(
            err.kind,
            ErrorKind::Mismatch {
                found: Type::F32,
                ..
            }
        ),
        "{err}"
    );
    let err = reject_in_loop("selcond", |fr| {
        let f = fr.b.f(1.0);
        let e = fr.b.e(
            Expr::Select {
                cond: fr.ie,
                a: f,
                b: f,
            },
            Type::F32,
        );
        let s = fr.b.var("s", Type::F32);
        vec![let_(s, e)]
    });
    assert!(matches!(err.kind, ErrorKind::Mismatch { .. }), "{err}");
}

#[test]
fn for_types() {
    let err = reject_in_loop("forf32", |fr| {
        let j = fr.b.var("j", Type::F32);
        let a = fr.b.f(0.0);
        vec![Stmt::For {
            var: j,
            start: a,
            end: a,
            step: a,
            body: vec![],
        }]
    });
    assert!(
        matches!(
            &err.kind,
            ErrorKind::BadType {
                found: Type::F32,
                ..
            }
        ),
        "{err}"
    );
    let err = reject_in_loop("forend", |fr| {
        let j = fr.b.var("j", Type::U32);
        let end = fr.b.c(Const::I32(4));
        let one = fr.b.u(1);
        vec![Stmt::For {
            var: j,
            start: one,
            end,
            step: one,
            body: vec![],
        }]
    });
    assert!(
        matches!(&err.kind, ErrorKind::Mismatch { what, expected: Type::U32, found: Type::I32 } if what.contains("end")),
        "{err}"
    );
}

#[test]
fn let_twice() {
    // The second let is statement 4.
    let at = "statement 2, in `for i` body, statement 4";
    let err = reject_in_loop_at("let2", at, |fr| {
        let s = fr.b.var("s", Type::U32);
        vec![let_(s, fr.ie), let_(s, fr.ie)]
    });
    assert_eq!(err.location, at);
    assert!(
        matches!(&err.kind, ErrorKind::DefinedTwice(n) if n == "s"),
        "{err}"
    );
    // A `for` variable also counts as a definition.
    let err = reject_in_loop("letfor", |fr| vec![let_(fr.i, fr.ie)]);
    assert!(
        matches!(&err.kind, ErrorKind::DefinedTwice(n) if n == "i"),
        "{err}"
    );
}

#[test]
fn use_outside_scope() {
    // Use before the let.
    let err = reject_in_loop("early", |fr| {
        let s = fr.b.var("s", Type::U32);
        let r = fr.b.var("r", Type::U32);
        let se = fr.b.v(s);
        vec![let_(r, se), let_(s, fr.ie)]
    });
    assert!(
        matches!(&err.kind, ErrorKind::OutOfScope(n) if n == "s"),
        "{err}"
    );
    // Assign before the let.
    let err = reject_in_loop("assign_early", |fr| {
        let s = fr.b.var("s", Type::U32);
        vec![
            Stmt::Assign {
                var: s,
                value: fr.ie,
            },
            let_(s, fr.ie),
        ]
    });
    assert!(
        matches!(&err.kind, ErrorKind::OutOfScope(n) if n == "s"),
        "{err}"
    );
    // Use after the block that defines it: the loop variable after its loop.
    let mut fr = frame("late");
    let after = fr.b.var("after", Type::U32);
    let k = {
        let mut k = fr.finish(vec![]);
        let ie = ExprId(
            k.exprs
                .iter()
                .position(|n| n.expr == Expr::Var(VarId(0)))
                .unwrap() as u32,
        );
        k.body.push(Stmt::Let {
            var: after,
            value: ie,
        });
        k
    };
    let err = reject(&k, "statement 3");
    assert!(
        matches!(&err.kind, ErrorKind::OutOfScope(n) if n == "i"),
        "{err}"
    );
}

#[test]
fn assign_type_mismatch_and_loop_var() {
    let at = "statement 2, in `for i` body, statement 4";
    let err = reject_in_loop_at("assignty", at, |fr| {
        let s = fr.b.var("s", Type::U32);
        let f = fr.b.f(1.0);
        vec![let_(s, fr.ie), Stmt::Assign { var: s, value: f }]
    });
    assert_eq!(err.location, at);
    assert!(
        matches!(
            err.kind,
            ErrorKind::Mismatch {
                expected: Type::U32,
                found: Type::F32,
                ..
            }
        ),
        "{err}"
    );
    let err = reject_in_loop("assignloop", |fr| {
        vec![Stmt::Assign {
            var: fr.i,
            value: fr.ie,
        }]
    });
    assert!(
        matches!(&err.kind, ErrorKind::AssignToLoopVar(n) if n == "i"),
        "{err}"
    );
}

#[test]
fn cast_keeps_lane_count() {
    let err = reject_in_loop("castlanes", |fr| {
        let v = fr.b.load(Memory::Global(fr.x), fr.ie, 4);
        let e = fr.b.e(
            Expr::Cast {
                to: Scalar::F32,
                value: v,
            },
            Type::vector(Scalar::F32, 2),
        );
        let s = fr.b.var("s", Type::vector(Scalar::F32, 2));
        vec![let_(s, e)]
    });
    assert!(
        matches!(&err.kind, ErrorKind::Mismatch { what, expected, found }
            if what.contains("cast") && *expected == Type::vector(Scalar::F32, 4)
                && *found == Type::vector(Scalar::F32, 2)),
        "{err}"
    );
    assert!(
        err.to_string().contains("in `cast<f32>(x[i..+4])`"),
        "{err}"
    );
    let err = reject_in_loop("casttobool", |fr| {
        let e = fr.b.cast(Scalar::Bool, fr.ie);
        let s = fr.b.var("s", Type::BOOL);
        vec![let_(s, e)]
    });
    assert!(matches!(err.kind, ErrorKind::BadType { .. }), "{err}");
}

#[test]
fn extract_lane_out_of_range() {
    let err = reject_in_loop("extract", |fr| {
        let v = fr.b.load(Memory::Global(fr.x), fr.ie, 4);
        let e = fr.b.e(
            Expr::Extract { vector: v, lane: 4 },
            Type::scalar(Scalar::F16),
        );
        let s = fr.b.var("s", Type::scalar(Scalar::F16));
        vec![let_(s, e)]
    });
    assert!(
        matches!(err.kind, ErrorKind::LaneOutOfRange { lane: 4, .. }),
        "{err}"
    );
    let err = reject_in_loop("extractscalar", |fr| {
        let e = fr.b.e(
            Expr::Extract {
                vector: fr.ie,
                lane: 0,
            },
            Type::U32,
        );
        let s = fr.b.var("s", Type::U32);
        vec![let_(s, e)]
    });
    assert!(matches!(err.kind, ErrorKind::BadType { .. }), "{err}");
}

#[test]
fn compose_rules() {
    let err = reject_in_loop("composemixed", |fr| {
        let f = fr.b.f(1.0);
        let e =
            fr.b.e(Expr::Compose(vec![f, fr.ie]), Type::vector(Scalar::F32, 2));
        let s = fr.b.var("s", Type::vector(Scalar::F32, 2));
        vec![let_(s, e)]
    });
    assert!(
        matches!(&err.kind, ErrorKind::Mismatch { what, .. } if what.contains("element 1")),
        "{err}"
    );
    let err = reject_in_loop("compose3", |fr| {
        let f = fr.b.f(1.0);
        let e =
            fr.b.e(Expr::Compose(vec![f, f, f]), Type::vector(Scalar::F32, 4));
        let s = fr.b.var("s", Type::vector(Scalar::F32, 4));
        vec![let_(s, e)]
    });
    assert!(matches!(err.kind, ErrorKind::BadComposeCount(3)), "{err}");
}

#[test]
fn shuffle_lane_must_be_u32() {
    let err = reject_in_loop("shuffle", |fr| {
        let f = fr.b.f(1.0);
        let lane = fr.b.c(Const::I32(1));
        let e = fr.b.e(
            Expr::Shuffle {
                mode: ShuffleMode::Down,
                value: f,
                lane,
            },
            Type::F32,
        );
        let s = fr.b.var("s", Type::F32);
        vec![let_(s, e)]
    });
    assert!(
        matches!(
            err.kind,
            ErrorKind::Mismatch {
                expected: Type::U32,
                found: Type::I32,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("in `shuffle_down(1.0, 1i32)`"),
        "{err}"
    );
}

#[test]
fn wave_reduce_on_bool() {
    let err = reject_in_loop("reducebool", |fr| {
        let t = fr.b.c(Const::Bool(true));
        let e = fr.b.e(
            Expr::WaveReduce {
                op: ReduceOp::Max,
                value: t,
            },
            Type::BOOL,
        );
        let s = fr.b.var("s", Type::BOOL);
        vec![let_(s, e)]
    });
    assert!(
        matches!(
            err.kind,
            ErrorKind::BadType {
                found: Type::BOOL,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn atomic_rules() {
    // Element type the op does not support.
    let err = reject_in_loop("atomicf16", |fr| {
        let h16 = fr.b.buf("h", Scalar::F16, Access::ReadWrite);
        let one = fr.b.c(Const::F16(half::f16::ONE));
        vec![Stmt::Atomic {
            op: AtomicOp::Add,
            mem: Memory::Global(h16),
            index: fr.ie,
            value: one,
            result: None,
        }]
    });
    assert!(
        matches!(
            err.kind,
            ErrorKind::BadAtomic {
                op: "add",
                ty: Scalar::F16
            }
        ),
        "{err}"
    );
    // Value of the wrong type.
    let err = reject_in_loop("atomicval", |fr| {
        vec![Stmt::Atomic {
            op: AtomicOp::Max,
            mem: Memory::Global(fr.y),
            index: fr.ie,
            value: fr.ie,
            result: None,
        }]
    });
    assert!(
        matches!(
            err.kind,
            ErrorKind::Mismatch {
                expected: Type::F32,
                found: Type::U32,
                ..
            }
        ),
        "{err}"
    );
    // Result variable of the wrong type.
    let err = reject_in_loop("atomicres", |fr| {
        let r = fr.b.var("old", Type::U32);
        let one = fr.b.f(1.0);
        vec![Stmt::Atomic {
            op: AtomicOp::Add,
            mem: Memory::Global(fr.y),
            index: fr.ie,
            value: one,
            result: Some(r),
        }]
    });
    assert!(
        matches!(&err.kind, ErrorKind::Mismatch { what, expected: Type::F32, found: Type::U32 } if what.contains("old")),
        "{err}"
    );
    // Atomics on a local array.
    let err = reject_in_loop("atomiclocal", |fr| {
        let regs = fr.b.local("regs", Scalar::U32, 4);
        vec![Stmt::Atomic {
            op: AtomicOp::Add,
            mem: Memory::Local(regs),
            index: fr.ie,
            value: fr.ie,
            result: None,
        }]
    });
    assert!(matches!(err.kind, ErrorKind::AtomicOnLocal(_)), "{err}");
    // An atomic result variable with no `let` is defined by the atomic, not before.
    let mut fr = frame("atomicearly");
    let sh = fr.b.shared("hist", Scalar::U32, 16);
    let r = fr.b.var("old", Type::U32);
    let re = fr.b.v(r);
    let k = fr.finish(vec![Stmt::Atomic {
        op: AtomicOp::Add,
        mem: Memory::Shared(sh),
        index: re,
        value: re,
        result: None,
    }]);
    let err = reject(&k, AT);
    assert!(
        matches!(&err.kind, ErrorKind::OutOfScope(n) if n == "old"),
        "{err}"
    );
    // Shared-memory atomics are fine, and so is a later use of the result.
    let mut fr = frame("atomicok");
    let sh = fr.b.shared("hist", Scalar::U32, 16);
    let r = fr.b.var("old", Type::U32);
    let re = fr.b.v(r);
    let ie = fr.ie;
    let k = fr.finish(vec![
        Stmt::Atomic {
            op: AtomicOp::Add,
            mem: Memory::Shared(sh),
            index: ie,
            value: ie,
            result: Some(r),
        },
        Stmt::Store {
            mem: Memory::Shared(sh),
            index: re,
            value: re,
        },
    ]);
    validate(&k).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn recorded_type_must_match() {
    let err = reject_in_loop("recorded", |fr| {
        let e = fr.b.e(Expr::Const(Const::U32(3)), Type::I32);
        let s = fr.b.var("s", Type::I32);
        vec![let_(s, e)]
    });
    assert!(
        matches!(
            err.kind,
            ErrorKind::Mismatch {
                expected: Type::U32,
                found: Type::I32,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn empty_arrays_and_block_size() {
    let mut fr = frame("emptyshared");
    fr.b.shared("tile", Scalar::F32, 0);
    let k = fr.finish(vec![]);
    let err = reject(&k, "shared array `tile`");
    assert!(
        matches!(&err.kind, ErrorKind::EmptyArray { name, .. } if name == "tile"),
        "{err}"
    );
    let mut fr = frame("emptylocal");
    fr.b.local("regs", Scalar::F32, 0);
    let k = fr.finish(vec![]);
    let err = reject(&k, "local array `regs`");
    assert!(matches!(err.kind, ErrorKind::EmptyArray { .. }), "{err}");
    let mut k = frame("zeroblock").finish(vec![]);
    k.block_size = Some([128, 0, 1]);
    let err = reject(&k, "block_size");
    assert!(matches!(err.kind, ErrorKind::BadBlockSize(_)), "{err}");
}

#[test]
fn lds_and_block_size_are_checked_against_the_kernels_target() {
    // 128 KiB of LDS: more than gfx942's 64 KiB, within sm_90's 227 KiB dynamic opt-in.
    let mut fr = frame("bigshared");
    fr.b.shared("tile", Scalar::F32, 32 * 1024);
    let mut k = fr.finish(vec![]);
    let err = reject(&k, "LDS arrays");
    assert!(
        matches!(
            err.kind,
            ErrorKind::LdsTooLarge {
                bytes: 131072,
                target: "gfx942",
                max: 65536
            }
        ),
        "{err}"
    );
    k.target = &greta_dsl::Target::SM_90;
    validate(&k).unwrap();
    k.shared[0].len = 60 * 1024;
    let err = reject(&k, "LDS arrays");
    assert!(
        err.to_string().contains("sm_90 allows at most 232448"),
        "{err}"
    );

    let mut k = frame("bigblock").finish(vec![]);
    k.block_size = Some([64, 32, 1]);
    let err = reject(&k, "block_size");
    assert!(
        matches!(
            err.kind,
            ErrorKind::BlockTooLarge {
                threads: 2048,
                max: 1024,
                ..
            }
        ),
        "{err}"
    );
}
