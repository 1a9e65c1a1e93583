//! Tests of the CPU interpreter on hand-built IR (independent of the `front` builder, so that
//! the interpreter can be tested on its own).

use greta_dsl::interp::{Arg, Buffer, InterpError, LaunchDims};
use greta_dsl::ir::*;
use greta_dsl::Target;
use half::{bf16, f16};

/// A tiny IR builder: pushes expression nodes and infers their types the obvious way.
struct KB {
    k: Kernel,
}

impl KB {
    fn new(name: &str) -> KB {
        KB {
            k: Kernel {
                name: name.into(),
                target: &Target::GFX942,
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
    fn buf(&mut self, name: &str, elem: Scalar, access: Access) -> Memory {
        self.k.params.push(Param {
            name: name.into(),
            kind: ParamKind::Buffer { elem, access },
        });
        Memory::Global(ParamId(self.k.params.len() as u32 - 1))
    }
    fn val(&mut self, name: &str, s: Scalar) -> ExprId {
        self.k.params.push(Param {
            name: name.into(),
            kind: ParamKind::Value(s),
        });
        let p = ParamId(self.k.params.len() as u32 - 1);
        self.e(Expr::Param(p), Type::scalar(s))
    }
    fn shared(&mut self, name: &str, elem: Scalar, len: u32) -> Memory {
        self.k.shared.push(SharedArray {
            name: name.into(),
            elem,
            len,
            align: greta_dsl::ir::LDS_ALIGN,
        });
        Memory::Shared(SharedId(self.k.shared.len() as u32 - 1))
    }
    fn local(&mut self, name: &str, elem: Scalar, len: u32) -> Memory {
        self.k.locals.push(LocalArray {
            name: name.into(),
            elem,
            len,
        });
        Memory::Local(LocalId(self.k.locals.len() as u32 - 1))
    }
    fn var(&mut self, name: &str, ty: Type) -> VarId {
        self.k.vars.push(Var {
            name: name.into(),
            ty,
        });
        VarId(self.k.vars.len() as u32 - 1)
    }
    fn e(&mut self, expr: Expr, ty: Type) -> ExprId {
        self.k.exprs.push(ExprNode { expr, ty });
        ExprId(self.k.exprs.len() as u32 - 1)
    }
    fn ty(&self, e: ExprId) -> Type {
        self.k.ty(e)
    }
    fn u(&mut self, v: u32) -> ExprId {
        self.e(Expr::Const(Const::U32(v)), Type::U32)
    }
    fn i(&mut self, v: i32) -> ExprId {
        self.e(Expr::Const(Const::I32(v)), Type::I32)
    }
    fn f(&mut self, v: f32) -> ExprId {
        self.e(Expr::Const(Const::F32(v)), Type::F32)
    }
    fn b(&mut self, b: Builtin) -> ExprId {
        self.e(Expr::Builtin(b), Type::U32)
    }
    fn tid(&mut self) -> ExprId {
        self.b(Builtin::ThreadIdx(Axis::X))
    }
    /// Global linear index `block_idx.x * block_dim.x + thread_idx.x`.
    fn gid(&mut self) -> ExprId {
        let bi = self.b(Builtin::BlockIdx(Axis::X));
        let bd = self.b(Builtin::BlockDim(Axis::X));
        let t = self.tid();
        let m = self.bin(BinaryOp::Mul, bi, bd);
        self.bin(BinaryOp::Add, m, t)
    }
    fn get(&mut self, v: VarId) -> ExprId {
        let ty = self.k.var(v).ty;
        self.e(Expr::Var(v), ty)
    }
    fn bin(&mut self, op: BinaryOp, a: ExprId, b: ExprId) -> ExprId {
        let t = self.ty(a);
        let ty = if op.is_comparison() {
            t.with_scalar(Scalar::Bool)
        } else {
            t
        };
        self.e(Expr::Binary(op, a, b), ty)
    }
    fn un(&mut self, op: UnaryOp, a: ExprId) -> ExprId {
        let t = self.ty(a);
        self.e(Expr::Unary(op, a), t)
    }
    fn cast(&mut self, to: Scalar, v: ExprId) -> ExprId {
        let t = self.ty(v).with_scalar(to);
        self.e(Expr::Cast { to, value: v }, t)
    }
    fn load(&mut self, mem: Memory, index: ExprId) -> ExprId {
        self.loadv(mem, index, 1)
    }
    fn loadv(&mut self, mem: Memory, index: ExprId, lanes: u8) -> ExprId {
        let elem = self.k.memory_elem(mem).unwrap();
        self.e(Expr::Load { mem, index, lanes }, Type::vector(elem, lanes))
    }
    fn shfl(&mut self, mode: ShuffleMode, value: ExprId, lane: ExprId) -> ExprId {
        let t = self.ty(value);
        self.e(Expr::Shuffle { mode, value, lane }, t)
    }
    fn finish(mut self, body: Vec<Stmt>) -> Kernel {
        self.k.body = body;
        self.k
    }
}

fn let_(var: VarId, value: ExprId) -> Stmt {
    Stmt::Let { var, value }
}
fn set(var: VarId, value: ExprId) -> Stmt {
    Stmt::Assign { var, value }
}
fn store(mem: Memory, index: ExprId, value: ExprId) -> Stmt {
    Stmt::Store { mem, index, value }
}
fn if_(cond: ExprId, then: Vec<Stmt>) -> Stmt {
    Stmt::If {
        cond,
        then,
        otherwise: vec![],
    }
}

/// Runs hand-built IR as if it had been built for `target`: these kernels use nothing
/// target-specific, so each test may run one on both wave sizes. (The check that a kernel runs
/// only on its own target is `a_kernel_runs_only_on_its_target`.)
fn run(
    k: &Kernel,
    target: &'static Target,
    dims: LaunchDims,
    args: &mut [Arg<'_>],
) -> Result<(), InterpError> {
    let mut k = k.clone();
    k.target = target;
    greta_dsl::interp::run(&k, target, dims, args)
}

const AMD: &Target = &Target::GFX942;
const NV: &Target = &Target::SM_90;

// ----- vector add -----

/// `c[i] = a[i] + b[i]` for `i < n`.
fn vadd(elem: Scalar) -> Kernel {
    let mut kb = KB::new("vadd");
    let a = kb.buf("a", elem, Access::Read);
    let b = kb.buf("b", elem, Access::Read);
    let c = kb.buf("c", elem, Access::ReadWrite);
    let n = kb.val("n", Scalar::U32);
    let i = kb.var("i", Type::U32);
    let gid = kb.gid();
    let iv = kb.get(i);
    let cond = kb.bin(BinaryOp::Lt, iv, n);
    let la = kb.load(a, iv);
    let lb = kb.load(b, iv);
    let sum = kb.bin(BinaryOp::Add, la, lb);
    kb.finish(vec![let_(i, gid), if_(cond, vec![store(c, iv, sum)])])
}

#[test]
fn vector_add_is_correct() {
    let n = 1000usize;
    let a = Buffer::from((0..n).map(|i| i as f32).collect::<Vec<_>>());
    let b = Buffer::from((0..n).map(|i| 0.5 * i as f32).collect::<Vec<_>>());
    let mut c = Buffer::zeros(Scalar::F32, n).unwrap();
    let k = vadd(Scalar::F32);
    let mut args = [
        Arg::Read(&a),
        Arg::Read(&b),
        Arg::Write(&mut c),
        Arg::Value(Const::U32(n as u32)),
    ];
    run(&k, NV, LaunchDims::linear(8, 128), &mut args).unwrap();
    for (i, &c) in c.as_f32().unwrap().iter().enumerate() {
        assert_eq!(c, 1.5 * i as f32);
    }
}

#[test]
fn out_of_bounds_load_names_buffer_index_and_thread() {
    let a = Buffer::from(vec![1.0f32; 1000]);
    let b = Buffer::from(vec![1.0f32; 1001]);
    let mut c = Buffer::zeros(Scalar::F32, 1001).unwrap();
    let k = vadd(Scalar::F32);
    let mut args = [
        Arg::Read(&a),
        Arg::Read(&b),
        Arg::Write(&mut c),
        Arg::Value(Const::U32(1001)),
    ];
    let err = run(&k, NV, LaunchDims::linear(8, 128), &mut args).unwrap_err();
    match &err {
        InterpError::OutOfBounds {
            memory,
            index,
            len,
            block,
            thread,
            access,
            ..
        } => {
            assert_eq!(memory, "a");
            assert_eq!(*index, 1000);
            assert_eq!(*len, 1000);
            assert_eq!(*access, "load");
            assert_eq!(block.0, [7, 0, 0]);
            assert_eq!(thread.0, [104, 0, 0]);
        }
        e => panic!("wrong error {e}"),
    }
    let msg = err.to_string();
    for part in [
        "vadd",
        "`a`",
        "index 1000",
        "length 1000",
        "block (7, 0, 0)",
        "thread (104, 0, 0)",
    ] {
        assert!(msg.contains(part), "{msg:?} lacks {part:?}");
    }
}

#[test]
fn out_of_bounds_store_names_buffer_index_and_thread() {
    let a = Buffer::from(vec![1.0f32; 1001]);
    let b = Buffer::from(vec![1.0f32; 1001]);
    let mut c = Buffer::zeros(Scalar::F32, 999).unwrap();
    let k = vadd(Scalar::F32);
    let mut args = [
        Arg::Read(&a),
        Arg::Read(&b),
        Arg::Write(&mut c),
        Arg::Value(Const::U32(1001)),
    ];
    let err = run(&k, NV, LaunchDims::linear(8, 128), &mut args).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            InterpError::OutOfBounds {
                access: "store",
                index: 999,
                ..
            }
        ),
        "{msg}"
    );
    for part in [
        "store of `c`",
        "index 999",
        "block (7, 0, 0)",
        "thread (103, 0, 0)",
    ] {
        assert!(msg.contains(part), "{msg:?} lacks {part:?}");
    }
    // Stores before the failing one (earlier blocks, earlier threads) happened.
    assert_eq!(c.as_f32().unwrap()[998], 2.0);
}

#[test]
fn argument_mismatches_are_reported_by_name() {
    let k = vadd(Scalar::F32);
    let a = Buffer::from(vec![1.0f32; 4]);
    let b = Buffer::from(vec![1.0f32; 4]);
    let au = Buffer::from(vec![1u32; 4]);
    let mut c = Buffer::zeros(Scalar::F32, 4).unwrap();
    let dims = LaunchDims::linear(1, 4);
    let n = || Arg::Value(Const::U32(4));

    let err = run(
        &k,
        NV,
        dims,
        &mut [Arg::Read(&a), Arg::Read(&b), Arg::Write(&mut c)],
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            InterpError::ArgCount {
                expected: 4,
                got: 3,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("vadd"));

    let err = run(
        &k,
        NV,
        dims,
        &mut [Arg::Read(&au), Arg::Read(&b), Arg::Write(&mut c), n()],
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            InterpError::ArgType {
                expected: Scalar::F32,
                got: Scalar::U32,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("`a`"), "{err}");

    let c2 = Buffer::zeros(Scalar::F32, 4).unwrap();
    let err = run(
        &k,
        NV,
        dims,
        &mut [Arg::Read(&a), Arg::Read(&b), Arg::Read(&c2), n()],
    )
    .unwrap_err();
    assert!(
        matches!(err, InterpError::ArgReadOnly { index: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("`c`"), "{err}");

    let err = run(
        &k,
        NV,
        dims,
        &mut [
            Arg::Read(&a),
            Arg::Value(Const::F32(1.0)),
            Arg::Write(&mut c),
            n(),
        ],
    )
    .unwrap_err();
    assert!(
        matches!(err, InterpError::ArgKind { got: "value", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("`b`"), "{err}");

    let err = run(
        &k,
        NV,
        dims,
        &mut [
            Arg::Read(&a),
            Arg::Read(&b),
            Arg::Write(&mut c),
            Arg::Value(Const::I32(4)),
        ],
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            InterpError::ArgType {
                expected: Scalar::U32,
                got: Scalar::I32,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("`n`"), "{err}");

    let err = run(
        &k,
        NV,
        dims,
        &mut [
            Arg::Read(&a),
            Arg::Read(&b),
            Arg::Write(&mut c),
            Arg::Read(&a),
        ],
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            InterpError::ArgKind {
                expected: "value",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn launch_dims_are_checked() {
    let mut k = vadd(Scalar::F32);
    let a = Buffer::from(vec![1.0f32; 4]);
    let mut c = Buffer::zeros(Scalar::F32, 4).unwrap();
    let mut args = [
        Arg::Read(&a),
        Arg::Read(&a),
        Arg::Write(&mut c),
        Arg::Value(Const::U32(4)),
    ];
    let err = run(&k, NV, LaunchDims::linear(1, 2048), &mut args).unwrap_err();
    assert!(
        matches!(err, InterpError::Launch { .. }) && err.to_string().contains("1024"),
        "{err}"
    );
    k.block_size = Some([64, 1, 1]);
    let err = run(&k, NV, LaunchDims::linear(1, 32), &mut args).unwrap_err();
    assert!(err.to_string().contains("declared block size"), "{err}");
    let err = run(&k, NV, LaunchDims::linear(0, 64), &mut args).unwrap_err();
    assert!(matches!(err, InterpError::Launch { .. }), "{err}");
}

// ----- block reduction -----

/// out[block] = sum of x over the block's 256 elements: a wave reduction (shuffle-down loop, or
/// the WaveReduce node plus an xor shuffle that must not change anything), LDS partials, a
/// barrier, and thread 0 summing the partials.
fn block_sum(use_wave_reduce: bool) -> Kernel {
    let mut kb = KB::new("block_sum");
    let x = kb.buf("x", Scalar::F32, Access::Read);
    let out = kb.buf("out", Scalar::F32, Access::ReadWrite);
    let part = kb.shared("partial", Scalar::F32, 32);
    let v = kb.var("v", Type::F32);
    let off = kb.var("off", Type::U32);
    let s = kb.var("s", Type::F32);
    let j = kb.var("j", Type::U32);
    let gid = kb.gid();
    let xv = kb.load(x, gid);
    let ws = kb.b(Builtin::WaveSize);
    let one = kb.u(1);
    let zero = kb.u(0);
    let vv = kb.get(v);
    let offv = kb.get(off);
    let mut body = vec![let_(v, xv)];
    if use_wave_reduce {
        let r = kb.e(
            Expr::WaveReduce {
                op: ReduceOp::Sum,
                value: vv,
            },
            Type::F32,
        );
        // All lanes hold the same sum, so reading lane ^ 1 changes nothing.
        let sh = kb.shfl(ShuffleMode::Xor, vv, one);
        body.push(set(v, r));
        body.push(set(v, sh));
    } else {
        let half = kb.bin(BinaryOp::Shr, ws, one);
        let more = kb.bin(BinaryOp::Gt, offv, zero);
        let down = kb.shfl(ShuffleMode::Down, vv, offv);
        let add = kb.bin(BinaryOp::Add, vv, down);
        let next = kb.bin(BinaryOp::Shr, offv, one);
        body.push(let_(off, half));
        body.push(Stmt::While {
            cond: more,
            body: vec![set(v, add), set(off, next)],
        });
    }
    let lane = kb.b(Builtin::LaneId);
    let is0 = kb.bin(BinaryOp::Eq, lane, zero);
    let t = kb.tid();
    let w = kb.bin(BinaryOp::Div, t, ws);
    body.push(if_(is0, vec![store(part, w, vv)]));
    body.push(Stmt::Barrier);
    let t0 = kb.bin(BinaryOp::Eq, t, zero);
    let fz = kb.f(0.0);
    let bd = kb.b(Builtin::BlockDim(Axis::X));
    let nw = kb.bin(BinaryOp::Div, bd, ws);
    let sv = kb.get(s);
    let jv = kb.get(j);
    let pj = kb.load(part, jv);
    let acc = kb.bin(BinaryOp::Add, sv, pj);
    let bi = kb.b(Builtin::BlockIdx(Axis::X));
    body.push(if_(
        t0,
        vec![
            let_(s, fz),
            Stmt::For {
                var: j,
                start: zero,
                end: nw,
                step: one,
                body: vec![set(s, acc)],
            },
            store(out, bi, sv),
        ],
    ));
    kb.finish(body)
}

#[test]
fn block_reduction_with_lds_barrier_and_shuffles() {
    let blocks = 4;
    let xs: Vec<f32> = (0..blocks * 256).map(|i| (i % 17) as f32 - 8.0).collect();
    let want: Vec<f32> = xs.chunks(256).map(|c| c.iter().sum()).collect();
    let x = Buffer::from(xs);
    for target in [AMD, NV] {
        for wr in [false, true] {
            let mut out = Buffer::zeros(Scalar::F32, blocks).unwrap();
            let k = block_sum(wr);
            run(
                &k,
                target,
                LaunchDims::linear(blocks as u32, 256),
                &mut [Arg::Read(&x), Arg::Write(&mut out)],
            )
            .unwrap_or_else(|e| panic!("{target} wave_reduce={wr}: {e}"));
            assert_eq!(
                out.as_f32().unwrap(),
                &want[..],
                "{target} wave_reduce={wr}"
            );
        }
    }
}

#[test]
fn wave_reduce_needs_the_whole_wave() {
    // Threads 0..16 reduce inside an `if`: half a wave on sm_90.
    let mut kb = KB::new("half_wave");
    let out = kb.buf("out", Scalar::U32, Access::ReadWrite);
    let t = kb.tid();
    let c16 = kb.u(16);
    let lt = kb.bin(BinaryOp::Lt, t, c16);
    let r = kb.e(
        Expr::WaveReduce {
            op: ReduceOp::Max,
            value: t,
        },
        Type::U32,
    );
    let k = kb.finish(vec![if_(lt, vec![store(out, t, r)])]);
    let mut o = Buffer::zeros(Scalar::U32, 64).unwrap();
    let err = run(&k, NV, LaunchDims::linear(1, 64), &mut [Arg::Write(&mut o)]).unwrap_err();
    assert!(
        matches!(err, InterpError::WaveReduce { wave: 0, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("thread (16, 0, 0)"), "{err}");
}

#[test]
fn shuffle_from_inactive_lane_is_an_error() {
    // Even threads read from lane ^ 1 (an odd, inactive thread).
    let mut kb = KB::new("shfl_odd");
    let out = kb.buf("out", Scalar::U32, Access::ReadWrite);
    let t = kb.tid();
    let one = kb.u(1);
    let zero = kb.u(0);
    let low = kb.bin(BinaryOp::BitAnd, t, one);
    let even = kb.bin(BinaryOp::Eq, low, zero);
    let sh = kb.shfl(ShuffleMode::Xor, t, one);
    let k = kb.finish(vec![if_(even, vec![store(out, t, sh)])]);
    let mut o = Buffer::zeros(Scalar::U32, 64).unwrap();
    let err = run(
        &k,
        AMD,
        LaunchDims::linear(1, 64),
        &mut [Arg::Write(&mut o)],
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, InterpError::Shuffle { .. }), "{msg}");
    assert!(
        msg.contains("thread (0, 0, 0)") && msg.contains("lane 1") && msg.contains("not active"),
        "{msg}"
    );
}

#[test]
fn shuffle_modes_and_lane_ids() {
    // out[t] = (shfl_up(t, 1), shfl_down(t, 3), shfl_idx(t, 5), lane_id) packed into 4 buffers.
    let mut kb = KB::new("shfl_modes");
    let o_up = kb.buf("up", Scalar::U32, Access::ReadWrite);
    let o_dn = kb.buf("down", Scalar::U32, Access::ReadWrite);
    let o_ix = kb.buf("idx", Scalar::U32, Access::ReadWrite);
    let o_ln = kb.buf("lane", Scalar::U32, Access::ReadWrite);
    let t = kb.tid();
    let c1 = kb.u(1);
    let c3 = kb.u(3);
    let c5 = kb.u(5);
    let up = kb.shfl(ShuffleMode::Up, t, c1);
    let dn = kb.shfl(ShuffleMode::Down, t, c3);
    let ix = kb.shfl(ShuffleMode::Idx, t, c5);
    let ln = kb.b(Builtin::LaneId);
    let k = kb.finish(vec![
        store(o_up, t, up),
        store(o_dn, t, dn),
        store(o_ix, t, ix),
        store(o_ln, t, ln),
    ]);
    for target in [AMD, NV] {
        let ws = target.wave_size;
        let mut bufs: Vec<Buffer> = (0..4)
            .map(|_| Buffer::zeros(Scalar::U32, 128).unwrap())
            .collect();
        let mut args: Vec<Arg> = bufs.iter_mut().map(Arg::Write).collect();
        run(&k, target, LaunchDims::linear(1, 128), &mut args).unwrap();
        for t in 0..128u32 {
            let lane = t % ws;
            let base = t - lane;
            assert_eq!(
                bufs[0].as_u32().unwrap()[t as usize],
                if lane >= 1 { t - 1 } else { t }
            );
            assert_eq!(
                bufs[1].as_u32().unwrap()[t as usize],
                if lane + 3 < ws { t + 3 } else { t }
            );
            assert_eq!(bufs[2].as_u32().unwrap()[t as usize], base + 5);
            assert_eq!(bufs[3].as_u32().unwrap()[t as usize], lane);
        }
    }
}

// ----- barriers -----

#[test]
fn barrier_in_divergent_if_is_an_error() {
    let mut kb = KB::new("bad_barrier");
    let t = kb.tid();
    let c16 = kb.u(16);
    let lt = kb.bin(BinaryOp::Lt, t, c16);
    let k = kb.finish(vec![if_(lt, vec![Stmt::Barrier])]);
    let err = run(&k, AMD, LaunchDims::linear(2, 64), &mut []).unwrap_err();
    match &err {
        InterpError::BarrierDivergence {
            reached,
            block_threads,
            missing,
            block,
            ..
        } => {
            assert_eq!((*reached, *block_threads), (16, 64));
            assert_eq!(missing.0, [16, 0, 0]);
            assert_eq!(block.0, [0, 0, 0]);
        }
        e => panic!("wrong error {e}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("bad_barrier")
            && msg.contains("16 of 64")
            && msg.contains("another control path"),
        "{msg}"
    );
}

#[test]
fn barrier_in_uniform_if_is_fine() {
    let mut kb = KB::new("ok_barrier");
    let t = kb.b(Builtin::BlockIdx(Axis::X));
    let c1 = kb.u(1);
    let lt = kb.bin(BinaryOp::Lt, t, c1);
    let k = kb.finish(vec![if_(lt, vec![Stmt::Barrier]), Stmt::Barrier]);
    run(&k, AMD, LaunchDims::linear(2, 64), &mut []).unwrap();
}

#[test]
fn barrier_after_early_return_is_an_error() {
    let mut kb = KB::new("ret_barrier");
    let t = kb.b(Builtin::ThreadIdx(Axis::Y));
    let c5 = kb.u(1);
    let eq = kb.bin(BinaryOp::Eq, t, c5);
    let k = kb.finish(vec![if_(eq, vec![Stmt::Return]), Stmt::Barrier]);
    let dims = LaunchDims {
        grid: [1, 1, 1],
        block: [8, 2, 1],
    };
    let err = run(&k, NV, dims, &mut []).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            InterpError::BarrierDivergence {
                reached: 8,
                block_threads: 16,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("thread (0, 1, 0)") && msg.contains("returned"),
        "{msg}"
    );
}

#[test]
fn return_stops_the_thread() {
    // if t % 2 == 1 { return }; out[t] = 7  -> only even threads store.
    let mut kb = KB::new("ret");
    let out = kb.buf("out", Scalar::U32, Access::ReadWrite);
    let t = kb.tid();
    let one = kb.u(1);
    let seven = kb.u(7);
    let odd = kb.bin(BinaryOp::BitAnd, t, one);
    let is_odd = kb.bin(BinaryOp::Eq, odd, one);
    let i = kb.var("i", Type::U32);
    let zero = kb.u(0);
    let four = kb.u(4);
    // Return from inside a loop, too: odd threads never store, even threads store 7.
    let k = kb.finish(vec![
        Stmt::For {
            var: i,
            start: zero,
            end: four,
            step: one,
            body: vec![if_(is_odd, vec![Stmt::Return])],
        },
        store(out, t, seven),
    ]);
    let mut o = Buffer::zeros(Scalar::U32, 10).unwrap();
    run(&k, NV, LaunchDims::linear(1, 10), &mut [Arg::Write(&mut o)]).unwrap();
    assert_eq!(o.as_u32().unwrap(), &[7, 0, 7, 0, 7, 0, 7, 0, 7, 0]);
}

// ----- memory rules -----

#[test]
fn uninitialised_lds_read_is_an_error() {
    let mut kb = KB::new("lds_uninit");
    let out = kb.buf("out", Scalar::F32, Access::ReadWrite);
    let s = kb.shared("tile", Scalar::F32, 64);
    let t = kb.tid();
    let c3 = kb.u(3);
    let ne = kb.bin(BinaryOp::Ne, t, c3);
    let one = kb.f(1.0);
    let ld = kb.load(s, t);
    let k = kb.finish(vec![
        if_(ne, vec![store(s, t, one)]),
        Stmt::Barrier,
        store(out, t, ld),
    ]);
    let mut o = Buffer::zeros(Scalar::F32, 64).unwrap();
    let err = run(
        &k,
        AMD,
        LaunchDims::linear(1, 64),
        &mut [Arg::Write(&mut o)],
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, InterpError::Uninitialised { index: 3, .. }),
        "{msg}"
    );
    assert!(
        msg.contains("`tile`") && msg.contains("thread (3, 0, 0)") && msg.contains("lds_uninit"),
        "{msg}"
    );
}

#[test]
fn lds_is_fresh_in_every_block() {
    // Block 0 writes tile[0]; block 1 reads it without writing: an error in block 1.
    let mut kb = KB::new("lds_per_block");
    let out = kb.buf("out", Scalar::F32, Access::ReadWrite);
    let s = kb.shared("tile", Scalar::F32, 1);
    let b = kb.b(Builtin::BlockIdx(Axis::X));
    let zero = kb.u(0);
    let is0 = kb.bin(BinaryOp::Eq, b, zero);
    let one = kb.f(1.0);
    let ld = kb.load(s, zero);
    let k = kb.finish(vec![if_(is0, vec![store(s, zero, one)]), store(out, b, ld)]);
    let mut o = Buffer::zeros(Scalar::F32, 2).unwrap();
    let err = run(&k, AMD, LaunchDims::linear(2, 1), &mut [Arg::Write(&mut o)]).unwrap_err();
    assert!(
        matches!(err, InterpError::Uninitialised { .. })
            && err.to_string().contains("block (1, 0, 0)"),
        "{err}"
    );
}

#[test]
fn vector_loads_and_stores() {
    // y[4t..4t+4] = compose(x4.w, x4.z, x4.y, x4.x): reverse each group of 4, through LDS.
    let mut kb = KB::new("rev4");
    let x = kb.buf("x", Scalar::F32, Access::Read);
    let y = kb.buf("y", Scalar::F32, Access::ReadWrite);
    let tile = kb.shared("tile", Scalar::F32, 64);
    let t = kb.tid();
    let four = kb.u(4);
    let i4 = kb.bin(BinaryOp::Mul, t, four);
    let v = kb.loadv(x, i4, 4);
    let lanes: Vec<ExprId> = (0..4)
        .map(|l| {
            kb.e(
                Expr::Extract {
                    vector: v,
                    lane: 3 - l,
                },
                Type::F32,
            )
        })
        .collect();
    let comp = kb.e(Expr::Compose(lanes), Type::vector(Scalar::F32, 4));
    let back = kb.loadv(tile, i4, 4);
    let k = kb.finish(vec![store(tile, i4, comp), store(y, i4, back)]);
    let xs: Vec<f32> = (0..64).map(|i| i as f32).collect();
    let xb = Buffer::from(xs);
    let mut yb = Buffer::zeros(Scalar::F32, 64).unwrap();
    run(
        &k,
        NV,
        LaunchDims::linear(1, 16),
        &mut [Arg::Read(&xb), Arg::Write(&mut yb)],
    )
    .unwrap();
    let y = yb.as_f32().unwrap();
    for g in 0..16 {
        for l in 0..4 {
            assert_eq!(y[g * 4 + l], (g * 4 + 3 - l) as f32);
        }
    }
}

#[test]
fn misaligned_vector_load_is_an_error() {
    let mut kb = KB::new("misaligned");
    let x = kb.buf("x", Scalar::F16, Access::Read);
    let y = kb.buf("y", Scalar::F16, Access::ReadWrite);
    let t = kb.tid();
    let two = kb.u(2);
    let eight = kb.u(8);
    let i = kb.bin(BinaryOp::Mul, t, two);
    let v = kb.loadv(x, i, 8);
    let i8 = kb.bin(BinaryOp::Mul, t, eight);
    let k = kb.finish(vec![store(y, i8, v)]);
    let xb = Buffer::from(vec![f16::ONE; 256]);
    let mut yb = Buffer::zeros(Scalar::F16, 256).unwrap();
    let err = run(
        &k,
        NV,
        LaunchDims::linear(1, 16),
        &mut [Arg::Read(&xb), Arg::Write(&mut yb)],
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            InterpError::Misaligned {
                index: 2,
                lanes: 8,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("`x`") && msg.contains("thread (1, 0, 0)"),
        "{msg}"
    );
}

#[test]
fn uninitialised_register_array_read_is_an_error() {
    let mut kb = KB::new("reg_uninit");
    let out = kb.buf("out", Scalar::I32, Access::ReadWrite);
    let r = kb.local("acc", Scalar::I32, 4);
    let t = kb.tid();
    let zero = kb.u(0);
    let two = kb.u(2);
    let c = kb.i(5);
    let ld = kb.load(r, two);
    let k = kb.finish(vec![store(r, zero, c), store(out, t, ld)]);
    let mut o = Buffer::zeros(Scalar::I32, 4).unwrap();
    let err = run(&k, NV, LaunchDims::linear(1, 4), &mut [Arg::Write(&mut o)]).unwrap_err();
    assert!(
        matches!(err, InterpError::Uninitialised { index: 2, .. })
            && err.to_string().contains("`acc`"),
        "{err}"
    );
}

// ----- atomics -----

#[test]
fn atomics_add_and_max() {
    let mut kb = KB::new("atomics");
    let cnt = kb.buf("count", Scalar::U32, Access::ReadWrite);
    let sum = kb.buf("sum", Scalar::F32, Access::ReadWrite);
    let mx = kb.buf("max", Scalar::I32, Access::ReadWrite);
    let olds = kb.buf("olds", Scalar::U32, Access::ReadWrite);
    let lds = kb.shared("lmax", Scalar::I32, 1);
    let old = kb.var("old", Type::U32);
    let t = kb.tid();
    let g = kb.gid();
    let zero = kb.u(0);
    let one = kb.u(1);
    let half = kb.f(0.5);
    // value = (t * 37) % 101 - 50 as i32
    let c37 = kb.u(37);
    let c101 = kb.u(101);
    let m = kb.bin(BinaryOp::Mul, t, c37);
    let r = kb.bin(BinaryOp::Rem, m, c101);
    let ri = kb.cast(Scalar::I32, r);
    let c50 = kb.i(50);
    let val = kb.bin(BinaryOp::Sub, ri, c50);
    let ov = kb.get(old);
    let is0 = kb.bin(BinaryOp::Eq, t, zero);
    let minint = kb.i(i32::MIN);
    let lm = kb.load(lds, zero);
    let bi = kb.b(Builtin::BlockIdx(Axis::X));
    let k = kb.finish(vec![
        Stmt::Atomic {
            op: AtomicOp::Add,
            mem: cnt,
            index: zero,
            value: one,
            result: Some(old),
        },
        store(olds, g, ov),
        Stmt::Atomic {
            op: AtomicOp::Add,
            mem: sum,
            index: zero,
            value: half,
            result: None,
        },
        if_(is0, vec![store(lds, zero, minint)]),
        Stmt::Barrier,
        Stmt::Atomic {
            op: AtomicOp::Max,
            mem: lds,
            index: zero,
            value: val,
            result: None,
        },
        Stmt::Barrier,
        if_(is0, vec![store(mx, bi, lm)]),
    ]);
    let mut c = Buffer::zeros(Scalar::U32, 1).unwrap();
    let mut s = Buffer::zeros(Scalar::F32, 1).unwrap();
    let mut m = Buffer::zeros(Scalar::I32, 2).unwrap();
    let mut o = Buffer::zeros(Scalar::U32, 128).unwrap();
    run(
        &k,
        AMD,
        LaunchDims::linear(2, 64),
        &mut [
            Arg::Write(&mut c),
            Arg::Write(&mut s),
            Arg::Write(&mut m),
            Arg::Write(&mut o),
        ],
    )
    .unwrap();
    assert_eq!(c.as_u32().unwrap(), &[128]);
    assert_eq!(s.as_f32().unwrap(), &[64.0]);
    // Sequential in thread order, blocks in order: thread g saw g increments before it.
    assert_eq!(o.as_u32().unwrap(), &(0..128).collect::<Vec<u32>>()[..]);
    let want = (0..64i32).map(|t| t * 37 % 101 - 50).max().unwrap();
    assert_eq!(m.as_i32().unwrap(), &[want, want]);
}

// ----- arithmetic -----

/// `out[t] = op(a[t], b[t])` for one element type.
fn elementwise(op: BinaryOp, elem: Scalar, out_elem: Scalar) -> Kernel {
    let mut kb = KB::new("elementwise");
    let a = kb.buf("a", elem, Access::Read);
    let b = kb.buf("b", elem, Access::Read);
    let o = kb.buf("out", out_elem, Access::ReadWrite);
    let t = kb.tid();
    let la = kb.load(a, t);
    let lb = kb.load(b, t);
    let r = kb.bin(op, la, lb);
    kb.finish(vec![store(o, t, r)])
}

fn run2(k: &Kernel, a: Buffer, b: Buffer, out: Scalar) -> Result<Buffer, InterpError> {
    let n = a.len();
    let mut o = Buffer::zeros(out, n).unwrap();
    run(
        k,
        NV,
        LaunchDims::linear(1, n as u32),
        &mut [Arg::Read(&a), Arg::Read(&b), Arg::Write(&mut o)],
    )?;
    Ok(o)
}

#[test]
fn f16_and_bf16_round_to_nearest_even_after_each_op() {
    let h = f16::from_f32;
    let u = 2f32.powi(-11); // half an f16 ulp at 1.0
    let a = vec![h(1.0), h(1.0), h(65504.0), h(1.0), h(3.0)];
    let b = vec![h(u), h(3.0 * u), h(16.0), h(u * 1.5), h(0.25)];
    let o = run2(
        &elementwise(BinaryOp::Add, Scalar::F16, Scalar::F16),
        a.into(),
        b.into(),
        Scalar::F16,
    )
    .unwrap();
    let got: Vec<f32> = o.to_f32_vec();
    assert_eq!(got[0], 1.0, "tie rounds to even (down)");
    assert_eq!(got[1], 1.0 + 4.0 * u, "tie rounds to even (up)");
    assert_eq!(got[2], f32::INFINITY, "65504 + 16 rounds to infinity");
    assert_eq!(got[3], 1.0 + 2.0 * u, "above half rounds up");
    assert_eq!(got[4], 3.25);

    let bh = bf16::from_f32;
    let ub = 2f32.powi(-8); // half a bf16 ulp at 1.0
    let a = vec![bh(1.0), bh(1.0), bh(256.0)];
    let b = vec![bh(ub), bh(3.0 * ub), bh(1.0)];
    let o = run2(
        &elementwise(BinaryOp::Add, Scalar::BF16, Scalar::BF16),
        a.into(),
        b.into(),
        Scalar::BF16,
    )
    .unwrap();
    assert_eq!(o.to_f32_vec(), vec![1.0, 1.0 + 4.0 * ub, 256.0]);

    // Products round too: (1 + 2^-10)^2 = 1 + 2^-9 + 2^-20 -> 1 + 2^-9 in f16.
    let x = h(1.0 + 2f32.powi(-10));
    let o = run2(
        &elementwise(BinaryOp::Mul, Scalar::F16, Scalar::F16),
        vec![x].into(),
        vec![x].into(),
        Scalar::F16,
    )
    .unwrap();
    assert_eq!(o.to_f32_vec(), vec![1.0 + 2f32.powi(-9)]);
}

#[test]
fn casts_round_and_saturate() {
    // out_f16[t] = f16(x[t]); out_bf16[t] = bf16(x[t]); out_i[t] = i32(x[t]); out_u[t] = u32(x[t])
    let mut kb = KB::new("casts");
    let x = kb.buf("x", Scalar::F32, Access::Read);
    let oh = kb.buf("h", Scalar::F16, Access::ReadWrite);
    let ob = kb.buf("b", Scalar::BF16, Access::ReadWrite);
    let oi = kb.buf("i", Scalar::I32, Access::ReadWrite);
    let ou = kb.buf("u", Scalar::U32, Access::ReadWrite);
    let t = kb.tid();
    let xv = kb.load(x, t);
    let ch = kb.cast(Scalar::F16, xv);
    let cb = kb.cast(Scalar::BF16, xv);
    let ci = kb.cast(Scalar::I32, xv);
    let cu = kb.cast(Scalar::U32, xv);
    let k = kb.finish(vec![
        store(oh, t, ch),
        store(ob, t, cb),
        store(oi, t, ci),
        store(ou, t, cu),
    ]);
    let xs = vec![
        1.0 + 2f32.powi(-11),
        -1.7,
        3e9,
        f32::NAN,
        1.0 + 2f32.powi(-8),
        -3e10,
    ];
    let n = xs.len();
    let xb = Buffer::from(xs);
    let mut bufs = [
        Buffer::zeros(Scalar::F16, n).unwrap(),
        Buffer::zeros(Scalar::BF16, n).unwrap(),
        Buffer::zeros(Scalar::I32, n).unwrap(),
        Buffer::zeros(Scalar::U32, n).unwrap(),
    ];
    let [h, b, i, u] = &mut bufs;
    run(
        &k,
        NV,
        LaunchDims::linear(1, n as u32),
        &mut [
            Arg::Read(&xb),
            Arg::Write(h),
            Arg::Write(b),
            Arg::Write(i),
            Arg::Write(u),
        ],
    )
    .unwrap();
    let h = bufs[0].to_f32_vec();
    assert_eq!(h[0], 1.0);
    assert_eq!(h[2], f32::INFINITY);
    assert!(h[3].is_nan());
    assert_eq!(bufs[1].to_f32_vec()[4], 1.0);
    assert_eq!(
        bufs[2].as_i32().unwrap(),
        &[1, -1, i32::MAX, 0, 1, i32::MIN]
    );
    assert_eq!(bufs[3].as_u32().unwrap(), &[1, 0, 3_000_000_000, 0, 1, 0]);
}

#[test]
fn integer_ops_wrap_and_check() {
    let o = run2(
        &elementwise(BinaryOp::Add, Scalar::U32, Scalar::U32),
        vec![u32::MAX, 5].into(),
        vec![2u32, 6].into(),
        Scalar::U32,
    )
    .unwrap();
    assert_eq!(o.as_u32().unwrap(), &[1, 11]);
    let o = run2(
        &elementwise(BinaryOp::Div, Scalar::I32, Scalar::I32),
        vec![-7, 7, i32::MIN].into(),
        vec![2, -2, -1].into(),
        Scalar::I32,
    )
    .unwrap();
    assert_eq!(o.as_i32().unwrap(), &[-3, -3, i32::MIN]);
    let o = run2(
        &elementwise(BinaryOp::Shr, Scalar::I32, Scalar::I32),
        vec![-8, 8].into(),
        vec![1, 3].into(),
        Scalar::I32,
    )
    .unwrap();
    assert_eq!(o.as_i32().unwrap(), &[-4, 1]);

    let err = run2(
        &elementwise(BinaryOp::Rem, Scalar::U32, Scalar::U32),
        vec![1u32, 2, 3].into(),
        vec![1u32, 0, 0].into(),
        Scalar::U32,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            InterpError::DivisionByZero {
                op: "remainder",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("thread (1, 0, 0)"), "{err}");
    let err = run2(
        &elementwise(BinaryOp::Shl, Scalar::U32, Scalar::U32),
        vec![1u32, 2].into(),
        vec![31u32, 32].into(),
        Scalar::U32,
    )
    .unwrap_err();
    assert!(
        matches!(err, InterpError::ShiftOverflow { amount: 32, .. }),
        "{err}"
    );
    let err = run2(
        &elementwise(BinaryOp::Shl, Scalar::I32, Scalar::I32),
        vec![1].into(),
        vec![-1].into(),
        Scalar::I32,
    )
    .unwrap_err();
    assert!(
        matches!(err, InterpError::ShiftOverflow { amount: -1, .. }),
        "{err}"
    );
}

#[test]
fn division_by_zero_in_inactive_thread_is_fine() {
    // if b[t] != 0 { out[t] = a[t] / b[t] }
    let mut kb = KB::new("guarded_div");
    let a = kb.buf("a", Scalar::U32, Access::Read);
    let b = kb.buf("b", Scalar::U32, Access::Read);
    let o = kb.buf("out", Scalar::U32, Access::ReadWrite);
    let t = kb.tid();
    let la = kb.load(a, t);
    let lb = kb.load(b, t);
    let zero = kb.u(0);
    let nz = kb.bin(BinaryOp::Ne, lb, zero);
    let d = kb.bin(BinaryOp::Div, la, lb);
    let k = kb.finish(vec![if_(nz, vec![store(o, t, d)])]);
    let o = run2(
        &k,
        vec![10u32, 10, 10].into(),
        vec![2u32, 0, 5].into(),
        Scalar::U32,
    )
    .unwrap();
    assert_eq!(o.as_u32().unwrap(), &[5, 0, 2]);
}

#[test]
fn float_math_and_select() {
    // out[t] = select(x > 0, sqrt(x), exp2(x)) and fma, rsqrt, floor, tanh via several buffers.
    let mut kb = KB::new("math");
    let x = kb.buf("x", Scalar::F32, Access::Read);
    let o = kb.buf("out", Scalar::F32, Access::ReadWrite);
    let t = kb.tid();
    let xv = kb.load(x, t);
    let zero = kb.f(0.0);
    let gt = kb.bin(BinaryOp::Gt, xv, zero);
    let sq = kb.un(UnaryOp::Sqrt, xv);
    let e2 = kb.un(UnaryOp::Exp2, xv);
    let sel = kb.e(
        Expr::Select {
            cond: gt,
            a: sq,
            b: e2,
        },
        Type::F32,
    );
    let rs = kb.un(UnaryOp::Rsqrt, xv);
    let fl = kb.un(UnaryOp::Floor, xv);
    let fm = kb.e(Expr::Fma(sel, rs, fl), Type::F32);
    let k = kb.finish(vec![store(o, t, fm)]);
    let xs = vec![4.0f32, -1.0, 2.25];
    let want: Vec<f32> = xs
        .iter()
        .map(|&x: &f32| {
            let s = if x > 0.0 { x.sqrt() } else { x.exp2() };
            s.mul_add(1.0 / x.sqrt(), x.floor())
        })
        .collect();
    let xb = Buffer::from(xs);
    let mut ob = Buffer::zeros(Scalar::F32, 3).unwrap();
    run(
        &k,
        NV,
        LaunchDims::linear(1, 3),
        &mut [Arg::Read(&xb), Arg::Write(&mut ob)],
    )
    .unwrap();
    let got = ob.as_f32().unwrap();
    assert_eq!(got[0], want[0]);
    assert!(got[1].is_nan() && want[1].is_nan());
    assert_eq!(got[2], want[2]);
}

#[test]
fn ill_typed_ir_is_rejected_before_running() {
    let mut kb = KB::new("ill_typed");
    let o = kb.buf("out", Scalar::F32, Access::ReadWrite);
    let t = kb.tid();
    let f = kb.f(1.0);
    let bad = kb.e(Expr::Binary(BinaryOp::Add, t, f), Type::F32);
    let k = kb.finish(vec![store(o, t, bad)]);
    let mut ob = Buffer::zeros(Scalar::F32, 1).unwrap();
    let err = run(&k, NV, LaunchDims::linear(1, 1), &mut [Arg::Write(&mut ob)]).unwrap_err();
    assert!(matches!(err, InterpError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("ill_typed"), "{err}");
}

#[test]
fn for_loop_step_must_be_positive() {
    let mut kb = KB::new("bad_step");
    let i = kb.var("i", Type::I32);
    let a = kb.i(0);
    let b = kb.i(10);
    let s = kb.i(0);
    let k = kb.finish(vec![Stmt::For {
        var: i,
        start: a,
        end: b,
        step: s,
        body: vec![],
    }]);
    let err = run(&k, NV, LaunchDims::linear(1, 1), &mut []).unwrap_err();
    assert!(
        matches!(err, InterpError::BadStep { step: 0, .. }) && err.to_string().contains("for i"),
        "{err}"
    );
}

// ----- RMSNorm: correctness and speed -----

/// RMSNorm of one row per block: strided sum of squares, wave reduction with xor shuffles, LDS
/// partials, barrier, every thread sums the partials, then a strided normalise loop.
fn rmsnorm() -> Kernel {
    let mut kb = KB::new("rmsnorm");
    let x = kb.buf("x", Scalar::F32, Access::Read);
    let w = kb.buf("w", Scalar::F32, Access::Read);
    let y = kb.buf("y", Scalar::F32, Access::ReadWrite);
    let cols = kb.val("cols", Scalar::U32);
    let eps = kb.val("eps", Scalar::F32);
    let red = kb.shared("red", Scalar::F32, 32);
    let (base, acc, i, i2, v, off, total, j, inv) = (
        kb.var("base", Type::U32),
        kb.var("acc", Type::F32),
        kb.var("i", Type::U32),
        kb.var("i2", Type::U32),
        kb.var("v", Type::F32),
        kb.var("off", Type::U32),
        kb.var("total", Type::F32),
        kb.var("j", Type::U32),
        kb.var("inv", Type::F32),
    );
    let row = kb.b(Builtin::BlockIdx(Axis::X));
    let t = kb.tid();
    let bd = kb.b(Builtin::BlockDim(Axis::X));
    let ws = kb.b(Builtin::WaveSize);
    let lane = kb.b(Builtin::LaneId);
    let zero = kb.u(0);
    let one = kb.u(1);
    let fz = kb.f(0.0);
    let basev = kb.get(base);
    let accv = kb.get(acc);
    let iv = kb.get(i);
    let vv = kb.get(v);
    let offv = kb.get(off);
    let totv = kb.get(total);
    let jv = kb.get(j);
    let invv = kb.get(inv);

    let rc = kb.bin(BinaryOp::Mul, row, cols);
    let xi = kb.bin(BinaryOp::Add, basev, iv);
    let lx = kb.load(x, xi);
    let sq = kb.bin(BinaryOp::Mul, vv, vv);
    let acc2 = kb.bin(BinaryOp::Add, accv, sq);
    let half = kb.bin(BinaryOp::Shr, ws, one);
    let more = kb.bin(BinaryOp::Gt, offv, zero);
    let sh = kb.shfl(ShuffleMode::Xor, accv, offv);
    let acc3 = kb.bin(BinaryOp::Add, accv, sh);
    let off2 = kb.bin(BinaryOp::Shr, offv, one);
    let is0 = kb.bin(BinaryOp::Eq, lane, zero);
    let wid = kb.bin(BinaryOp::Div, t, ws);
    let nw = kb.bin(BinaryOp::Div, bd, ws);
    let rj = kb.load(red, jv);
    let tot2 = kb.bin(BinaryOp::Add, totv, rj);
    let colsf = kb.cast(Scalar::F32, cols);
    let mean = kb.bin(BinaryOp::Div, totv, colsf);
    let me = kb.bin(BinaryOp::Add, mean, eps);
    let rs = kb.un(UnaryOp::Rsqrt, me);
    let i2v = kb.get(i2);
    let xi2 = kb.bin(BinaryOp::Add, basev, i2v);
    let lx2 = kb.load(x, xi2);
    let lw = kb.load(w, i2v);
    let p1 = kb.bin(BinaryOp::Mul, lx2, invv);
    let p2 = kb.bin(BinaryOp::Mul, p1, lw);
    kb.k.block_size = Some([256, 1, 1]);
    kb.finish(vec![
        let_(base, rc),
        let_(acc, fz),
        Stmt::For {
            var: i,
            start: t,
            end: cols,
            step: bd,
            body: vec![let_(v, lx), set(acc, acc2)],
        },
        let_(off, half),
        Stmt::While {
            cond: more,
            body: vec![set(acc, acc3), set(off, off2)],
        },
        if_(is0, vec![store(red, wid, accv)]),
        Stmt::Barrier,
        let_(total, fz),
        Stmt::For {
            var: j,
            start: zero,
            end: nw,
            step: one,
            body: vec![set(total, tot2)],
        },
        let_(inv, rs),
        Stmt::For {
            var: i2,
            start: t,
            end: cols,
            step: bd,
            body: vec![store(y, xi2, p2)],
        },
    ])
}

fn rmsnorm_check(rows: usize, cols: usize, target: &'static Target) -> std::time::Duration {
    let xs: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 250.0)
        .collect();
    let ws: Vec<f32> = (0..cols).map(|i| 0.5 + (i % 13) as f32 / 13.0).collect();
    let x = Buffer::from(xs.clone());
    let w = Buffer::from(ws.clone());
    let mut y = Buffer::zeros(Scalar::F32, rows * cols).unwrap();
    let k = rmsnorm();
    let start = std::time::Instant::now();
    run(
        &k,
        target,
        LaunchDims::linear(rows as u32, 256),
        &mut [
            Arg::Read(&x),
            Arg::Read(&w),
            Arg::Write(&mut y),
            Arg::Value(Const::U32(cols as u32)),
            Arg::Value(Const::F32(1e-5)),
        ],
    )
    .unwrap();
    let took = start.elapsed();
    let y = y.as_f32().unwrap();
    for r in (0..rows).step_by(rows.div_ceil(16)) {
        let row = &xs[r * cols..(r + 1) * cols];
        let ms = row.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>() / cols as f64;
        let inv = 1.0 / (ms + 1e-5).sqrt();
        for c in 0..cols {
            let want = row[c] as f64 * inv * ws[c] as f64;
            let got = y[r * cols + c] as f64;
            assert!(
                (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "row {r} col {c}: {got} vs {want}"
            );
        }
    }
    took
}

#[test]
fn rmsnorm_is_correct_on_both_wave_sizes() {
    rmsnorm_check(8, 1000, AMD);
    rmsnorm_check(8, 1000, NV);
}

/// `cargo test --release -p greta-dsl --test interp -- --ignored --nocapture rmsnorm_speed`
#[test]
#[ignore]
fn rmsnorm_speed() {
    for target in [NV, AMD] {
        let took = rmsnorm_check(4096, 4096, target);
        println!("rmsnorm 4096x4096 f32 on the interpreter ({target}): {took:?}");
    }
}
