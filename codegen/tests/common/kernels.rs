//! Hand-built kernels exercising each part of the emitter.
#![allow(dead_code)]

use greta_dsl::ir::*;

use super::B;

/// `y[i] = T(f32(x[i]) * scale + f32(b[i]))`, negated where `y` would exceed `clamp`, for
/// `i < n`; plus T-typed arithmetic (`x * x - b`, max) to exercise 16-bit rounding.
pub fn elementwise(t: Scalar) -> Kernel {
    let mut b = B::new(&format!("scale_add_{}", t.name()));
    b.k.config = vec![
        ("T".into(), ConfigValue::Type(t)),
        ("block".into(), ConfigValue::U32(256)),
    ];
    b.k.block_size = Some([256, 1, 1]);
    let x = b.buf("x", t, Access::Read);
    let bias = b.buf("bias", t, Access::Read);
    let y = b.buf("y", t, Access::ReadWrite);
    let z = b.buf("z", t, Access::ReadWrite);
    let n = b.val("n", Scalar::U32);
    let scale = b.val("scale", Scalar::F32);
    let bid = b.bid();
    let bdim = b.bdim();
    let tid = b.tid();
    let base = b.bin(BinaryOp::Mul, bid, bdim);
    let gi = b.bin(BinaryOp::Add, base, tid);
    let (_, i) = b.let_("i", gi);
    let inb = b.bin(BinaryOp::Lt, i, n);
    b.open();
    let xv = b.load(x, i, 1);
    let (_, xv) = b.let_("xv", xv);
    let bv = b.load(bias, i, 1);
    let (_, bv) = b.let_("b", bv); // clashes with nothing but is short
    let xf = b.cast(Scalar::F32, xv);
    let bf = b.cast(Scalar::F32, bv);
    let prod = b.bin(BinaryOp::Mul, xf, scale);
    let sum = b.bin(BinaryOp::Add, prod, bf);
    let limit = b.f(1.0e4);
    let big = b.bin(BinaryOp::Gt, sum, limit);
    let neg = b.un(UnaryOp::Neg, sum);
    let v = b.select(big, neg, sum);
    let vt = b.cast(t, v);
    b.store(y, i, vt);
    // T arithmetic: max(x * x - b, -x)
    let sq = b.bin(BinaryOp::Mul, xv, xv);
    let d = b.bin(BinaryOp::Sub, sq, bv);
    let nx = b.un(UnaryOp::Neg, xv);
    let m = b.bin(BinaryOp::Max, d, nx);
    let ab = b.un(UnaryOp::Abs, m);
    let q = b.bin(BinaryOp::Div, ab, xv);
    let r = b.fma(q, xv, bv);
    b.store(z, i, r);
    let then = b.close();
    b.stmt(Stmt::If {
        cond: inb,
        then,
        otherwise: vec![],
    });
    b.finish()
}

/// Sum of squares of a row: per-thread strided loop, wave reduction, one partial per wave in
/// LDS, barrier, first wave reduces the partials. Also shuffles of every mode.
pub fn row_sum_squares(wave: u32) -> Kernel {
    const BLOCK: u32 = 256;
    let mut b = B::new("row_sum_squares");
    b.k.block_size = Some([BLOCK, 1, 1]);
    let x = b.buf("x", Scalar::F32, Access::Read);
    let out = b.buf("out", Scalar::F32, Access::ReadWrite);
    let shuf = b.buf("shuffled", Scalar::U32, Access::ReadWrite);
    let cols = b.val("cols", Scalar::U32);
    let partial = b.shared("partial", Scalar::F32, BLOCK / wave);
    let row = b.bid();
    let (_, row) = b.let_("row", row);
    let zero = b.f(0.0);
    let (acc, acc_e) = b.let_("acc", zero);
    // for c in (tid..cols).step_by(BLOCK)
    let c = b.var("c", Type::U32);
    let ce = b.var_e(c);
    let tid = b.tid();
    let step = b.bdim();
    b.open();
    let rc = b.bin(BinaryOp::Mul, row, cols);
    let idx = b.bin(BinaryOp::Add, rc, ce);
    let v = b.load(x, idx, 1);
    let (_, v) = b.let_("v", v);
    let na = b.fma(v, v, acc_e);
    b.assign(acc, na);
    let body = b.close();
    b.stmt(Stmt::For {
        var: c,
        start: tid,
        end: cols,
        step,
        body,
    });
    let s = b.reduce(ReduceOp::Sum, acc_e);
    let (_, s) = b.let_("s", s);
    let lane = b.builtin(Builtin::LaneId);
    let (_, lane) = b.let_("lane", lane);
    let ws = b.builtin(Builtin::WaveSize);
    let tid2 = b.tid();
    let wave_i = b.bin(BinaryOp::Div, tid2, ws);
    let (_, wave_i) = b.let_("wave", wave_i);
    let z = b.u(0);
    let is0 = b.bin(BinaryOp::Eq, lane, z);
    b.open();
    b.store(partial, wave_i, s);
    let then = b.close();
    b.stmt(Stmt::If {
        cond: is0,
        then,
        otherwise: vec![],
    });
    b.stmt(Stmt::Barrier);
    let nw = b.u(BLOCK / wave);
    let first = b.bin(BinaryOp::Lt, lane, nw);
    let zf = b.f(0.0);
    let p = b.load(partial, lane, 1);
    let pv = b.select(first, p, zf);
    let waves0 = b.u(0);
    let in_first = b.bin(BinaryOp::Eq, wave_i, waves0);
    b.open();
    let total = b.reduce(ReduceOp::Sum, pv);
    let (_, total) = b.let_("total", total);
    let is0b = b.bin(BinaryOp::Eq, lane, z);
    b.open();
    b.store(out, row, total);
    let then2 = b.close();
    b.stmt(Stmt::If {
        cond: is0b,
        then: then2,
        otherwise: vec![],
    });
    let then = b.close();
    b.stmt(Stmt::If {
        cond: in_first,
        then,
        otherwise: vec![],
    });
    // Shuffles of every mode, results stored per thread.
    let one = b.u(1);
    let a = b.shuffle(ShuffleMode::Xor, lane, one);
    let d = b.shuffle(ShuffleMode::Down, lane, one);
    let u = b.shuffle(ShuffleMode::Up, lane, one);
    let three = b.u(3);
    let ix = b.shuffle(ShuffleMode::Idx, lane, three);
    let mx = b.reduce(ReduceOp::Max, lane);
    let s1 = b.bin(BinaryOp::Add, a, d);
    let s2 = b.bin(BinaryOp::Add, u, ix);
    let s3 = b.bin(BinaryOp::BitXor, s1, s2);
    let s4 = b.bin(BinaryOp::Add, s3, mx);
    let tid3 = b.tid();
    let rb = b.bin(BinaryOp::Mul, row, nw);
    let rb = b.bin(BinaryOp::Add, rb, tid3);
    b.store(shuf, rb, s4);
    b.barrier_then_return();
    b.finish()
}

impl B {
    fn barrier_then_return(&mut self) {
        self.stmt(Stmt::Barrier);
        self.stmt(Stmt::Return);
    }
}

/// 16-byte vector loads/stores: f32x4 and f16x8 (widened to f32x8 lane-wise), through LDS.
pub fn vector_copy() -> Kernel {
    let mut b = B::new("vector_scale");
    b.k.block_size = Some([256, 1, 1]);
    let x = b.buf("x", Scalar::F32, Access::Read);
    let y = b.buf("y", Scalar::F32, Access::ReadWrite);
    let h = b.buf("h", Scalar::F16, Access::Read);
    let hy = b.buf("hy", Scalar::F32, Access::ReadWrite);
    let tile = b.shared("tile", Scalar::F32, 1024);
    let tid = b.tid();
    let bid = b.bid();
    let bd = b.bdim();
    let base = b.bin(BinaryOp::Mul, bid, bd);
    let g = b.bin(BinaryOp::Add, base, tid);
    let (_, g) = b.let_("g", g);
    let four = b.u(4);
    let i4 = b.bin(BinaryOp::Mul, g, four);
    let (_, i4) = b.let_("i4", i4);
    let v = b.load(x, i4, 4);
    let (_, v) = b.let_("v", v);
    let t4 = b.bin(BinaryOp::Mul, tid, four);
    b.store(tile, t4, v);
    b.stmt(Stmt::Barrier);
    let w = b.load(tile, t4, 4);
    let two = b.f(2.0);
    let l0 = b.extract(w, 3);
    let l1 = b.extract(w, 2);
    let l2 = b.extract(w, 1);
    let l3 = b.extract(w, 0);
    let l0 = b.bin(BinaryOp::Mul, l0, two);
    let rev = b.compose(vec![l0, l1, l2, l3]);
    let sum = b.bin(BinaryOp::Add, rev, v);
    b.store(y, i4, sum);
    let eight = b.u(8);
    let i8 = b.bin(BinaryOp::Mul, g, eight);
    let hv = b.load(h, i8, 8);
    let hf = b.cast(Scalar::F32, hv);
    let (_, hf) = b.let_("hf", hf);
    let ex = b.un(UnaryOp::Exp2, hf);
    b.store(hy, i8, ex);
    b.finish()
}

/// Atomics: f32 add and max (with old value), u32 add in LDS, i32 max.
pub fn atomics() -> Kernel {
    let mut b = B::new("histogram_stats");
    let x = b.buf("x", Scalar::F32, Access::Read);
    let sum = b.buf("sum", Scalar::F32, Access::ReadWrite);
    let hist = b.buf("hist", Scalar::U32, Access::ReadWrite);
    let imax = b.buf("imax", Scalar::I32, Access::ReadWrite);
    let olds = b.buf("olds", Scalar::F32, Access::ReadWrite);
    let bins = b.shared("bins", Scalar::U32, 16);
    let tid = b.tid();
    let v = b.load(x, tid, 1);
    let (_, v) = b.let_("v", v);
    let z = b.u(0);
    b.stmt(Stmt::Atomic {
        op: AtomicOp::Add,
        mem: sum,
        index: z,
        value: v,
        result: None,
    });
    let old = b.var("old", Type::F32);
    let one = b.u(1);
    b.stmt(Stmt::Atomic {
        op: AtomicOp::Max,
        mem: sum,
        index: one,
        value: v,
        result: Some(old),
    });
    let olde = b.var_e(old);
    b.store(olds, tid, olde);
    let fifteen = b.u(15);
    let bin = b.cast(Scalar::U32, v);
    let bin = b.bin(BinaryOp::BitAnd, bin, fifteen);
    let onev = b.u(1);
    b.stmt(Stmt::Atomic {
        op: AtomicOp::Add,
        mem: bins,
        index: bin,
        value: onev,
        result: None,
    });
    b.stmt(Stmt::Barrier);
    let sixteen = b.u(16);
    let lt = b.bin(BinaryOp::Lt, tid, sixteen);
    b.open();
    let c = b.load(bins, tid, 1);
    b.stmt(Stmt::Atomic {
        op: AtomicOp::Add,
        mem: hist,
        index: tid,
        value: c,
        result: None,
    });
    let then = b.close();
    b.stmt(Stmt::If {
        cond: lt,
        then,
        otherwise: vec![],
    });
    let iv = b.cast(Scalar::I32, v);
    let prev = b.var("prev", Type::I32);
    b.stmt(Stmt::Atomic {
        op: AtomicOp::Max,
        mem: imax,
        index: z,
        value: iv,
        result: Some(prev),
    });
    b.finish()
}

/// Every float math op on f32 (and sin/cos on bf16), a local array, a while loop, shifts.
pub fn math() -> Kernel {
    let mut b = B::new("rope_math");
    b.k.block_size = Some([128, 1, 1]);
    b.k.config = vec![
        ("unroll".into(), ConfigValue::U32(4)),
        ("fast".into(), ConfigValue::Bool(false)),
    ];
    let x = b.buf("x", Scalar::F32, Access::Read);
    let y = b.buf("y", Scalar::F32, Access::ReadWrite);
    let hb = b.buf("hb", Scalar::BF16, Access::ReadWrite);
    let n = b.val("n", Scalar::U32);
    let tmp = b.local("tmp", Scalar::F32, 4);
    let tid = b.tid();
    let v = b.load(x, tid, 1);
    let (_, v) = b.let_("angle", v);
    let mut acc = b.f(0.0);
    for op in [
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Exp2,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Log2,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Tanh,
        UnaryOp::Floor,
        UnaryOp::Abs,
    ] {
        let r = b.un(op, v);
        acc = b.bin(BinaryOp::Add, acc, r);
    }
    let (accv, acc_e) = b.let_("acc", acc);
    // local array round trip with comptime indices
    for k in 0..4u32 {
        let ki = b.u(k);
        let kf = b.f(k as f32);
        let val = b.bin(BinaryOp::Mul, acc_e, kf);
        b.store(tmp, ki, val);
    }
    // while (k < n) { acc += tmp[k & 3]; k += 1 }
    let zero = b.u(0);
    let (kv, ke) = b.let_("k", zero);
    let cond = b.bin(BinaryOp::Lt, ke, n);
    b.open();
    // (a runtime index into `tmp` would put it on the stack on NVIDIA)
    let three = b.u(3);
    let t = b.load(tmp, three, 1);
    let na = b.bin(BinaryOp::Add, acc_e, t);
    b.assign(accv, na);
    let one = b.u(1);
    let shifted = b.bin(BinaryOp::Shl, one, ke);
    let back = b.bin(BinaryOp::Shr, shifted, ke);
    let nk = b.bin(BinaryOp::Add, ke, back);
    b.assign(kv, nk);
    let body = b.close();
    b.stmt(Stmt::While { cond, body });
    b.store(y, tid, acc_e);
    let hv = b.load(hb, tid, 1);
    let s = b.un(UnaryOp::Sin, hv);
    let c = b.un(UnaryOp::Cos, hv);
    let sc = b.bin(BinaryOp::Add, s, c);
    b.store(hb, tid, sc);
    b.finish()
}

/// Lane-wise vector arithmetic (f16x8), vector compare/select/cast, vector shuffles and wave
/// reductions, integer ops and odd casts; no declared block size (block/grid dims at run time).
pub fn lanewise() -> Kernel {
    let mut b = B::new("lanewise");
    let h = b.buf("h", Scalar::F16, Access::ReadWrite);
    let out = b.buf("out", Scalar::F32, Access::ReadWrite);
    let ints = b.buf("ints", Scalar::I32, Access::ReadWrite);
    let tid = b.tid();
    let bid = b.bid();
    let bd = b.bdim();
    let gd = b.builtin(Builtin::GridDim(Axis::X));
    let base = b.bin(BinaryOp::Mul, bid, bd);
    let g = b.bin(BinaryOp::Add, base, tid);
    let (_, g) = b.let_("g", g);
    let eight = b.u(8);
    let i8 = b.bin(BinaryOp::Mul, g, eight);
    let (_, i8) = b.let_("i8", i8);
    let v = b.load(h, i8, 8);
    let (_, v) = b.let_("v", v);
    let sq = b.bin(BinaryOp::Mul, v, v);
    // Comparisons, shuffles and wave reductions take scalars (the verifier's rule): lanes.
    let (sq0, v0) = (b.extract(sq, 0), b.extract(v, 0));
    let gt = b.bin(BinaryOp::Gt, sq0, v0);
    let neg = b.un(UnaryOp::Neg, v);
    let sel = b.select(gt, sq, neg);
    b.store(h, i8, sel);
    let sel1 = b.extract(sel, 1);
    let sh = b.shuffle(ShuffleMode::Xor, sel1, eight);
    let wide = b.cast(Scalar::F32, sel);
    let wide2 = b.extract(wide, 2);
    let shw = b.cast(Scalar::F32, sh);
    let both = b.bin(BinaryOp::Add, wide2, shw);
    let wmax = b.reduce(ReduceOp::Max, both);
    let e = b.un(UnaryOp::Exp, wmax);
    let four = b.u(4);
    let gi = b.bin(BinaryOp::Mul, g, eight);
    b.store(out, gi, e);
    // integers
    let gi32 = b.cast(Scalar::I32, g);
    let seven = b.i(-7);
    let q = b.bin(BinaryOp::Div, gi32, seven);
    let r = b.bin(BinaryOp::Rem, gi32, seven);
    let two = b.i(2);
    let shr = b.bin(BinaryOp::Shr, q, two);
    let not = b.un(UnaryOp::Not, shr);
    let nr = b.un(UnaryOp::Neg, r);
    let mn = b.bin(BinaryOp::Min, not, nr);
    let mx = b.bin(BinaryOp::Max, mn, seven);
    let ab = b.un(UnaryOp::Abs, mx);
    let gdi = b.cast(Scalar::I32, gd);
    let s = b.bin(BinaryOp::Add, ab, gdi);
    let as_h = b.cast(Scalar::F16, s);
    let as_bf = b.cast(Scalar::BF16, as_h);
    let back = b.cast(Scalar::F32, as_bf);
    let zero = b.f(0.0);
    let nz = b.bin(BinaryOp::Ne, back, zero);
    let t = b.e(Expr::Const(Const::Bool(true)), Type::BOOL);
    let both = b.bin(BinaryOp::And, nz, t);
    let either = b.bin(BinaryOp::Or, both, nz);
    let as_i = b.cast(Scalar::I32, either);
    let fr = b.f(2.5);
    let fm = b.bin(BinaryOp::Rem, back, fr);
    let fi = b.cast(Scalar::I32, fm);
    let tot = b.bin(BinaryOp::Add, as_i, fi);
    let minv = b.i(i32::MIN);
    let tot = b.bin(BinaryOp::BitXor, tot, minv);
    b.store(ints, g, tot);
    let _ = four;
    b.finish()
}
