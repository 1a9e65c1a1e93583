//! The front end end-to-end: `#[kernel]` functions build the IR we expect.

use greta_dsl::ir::{ConfigValue, Expr, Scalar, Stmt};
use greta_dsl::prelude::*;

#[kernel]
fn scale<T: Float>(x: &[T], y: &mut [T], n: u32, s: f32, #[comptime] block: u32) {
    block_size(block);
    let i = block_idx().x * block + thread_idx().x;
    if i < n {
        y[i] = T::from_f32(x[i].to_f32() * s);
    }
}

#[device]
fn block_sum(v: Val<f32>, #[comptime] block: u32) -> Val<f32> {
    let partial = shared::<f32>(block / 32);
    let w = wave_sum(v);
    let lane = lane_id();
    let wave = thread_idx().x / wave_size();
    if lane == 0 {
        partial[wave] = w;
    }
    barrier();
    let mut total = 0.0f32;
    for k in 0..block / wave_size() {
        total += partial[k];
    }
    total
}

#[kernel]
fn row_sum(x: &[f32], out: &mut [f32], cols: u32, #[comptime] block: u32, #[comptime] unroll: u32) {
    block_size(block);
    let row = block_idx().x;
    let mut acc = 0.0f32;
    for i in (thread_idx().x..cols).step_by(block) {
        acc += x[row * cols + i];
    }
    #[comptime]
    let mut unrolled = 0u32;
    for _u in 0..unroll {
        unrolled += 1;
        acc = acc * 1.0;
    }
    if unroll > 2 {
        acc += 0.0;
    } else {
        acc -= 0.0;
    }
    let total = block_sum(acc, block);
    if thread_idx().x == 0 && unrolled == unroll {
        out[row] = total;
    }
    let mut k = 0u32;
    while k < 3 {
        k += 1;
    }
}

fn count(stmts: &[Stmt], pred: &dyn Fn(&Stmt) -> bool) -> usize {
    stmts
        .iter()
        .map(|s| {
            let inner = match s {
                Stmt::If {
                    then, otherwise, ..
                } => count(then, pred) + count(otherwise, pred),
                Stmt::For { body, .. } | Stmt::While { body, .. } => count(body, pred),
                _ => 0,
            };
            inner + pred(s) as usize
        })
        .sum()
}

#[test]
fn generic_kernel_records_params_config_and_body() {
    let k = scale::<f16>(&Target::GFX942, 128).unwrap();
    assert_eq!(k.name, "scale");
    assert_eq!(
        k.config,
        vec![
            ("T".into(), ConfigValue::Type(Scalar::F16)),
            ("block".into(), ConfigValue::U32(128))
        ]
    );
    assert_eq!(k.params.len(), 4);
    assert_eq!(k.block_size, Some([128, 1, 1]));
    assert_eq!(count(&k.body, &|s| matches!(s, Stmt::If { .. })), 1);
    assert_eq!(count(&k.body, &|s| matches!(s, Stmt::Store { .. })), 1);
    assert_eq!(k.config_string(), "T=f16,block=128");
}

#[test]
fn comptime_loops_unroll_and_comptime_ifs_prune() {
    let k = row_sum(&Target::GFX942, 256, 4).unwrap();
    // one runtime for (strided) + one runtime for in block_sum (bound is runtime wave size)
    assert_eq!(count(&k.body, &|s| matches!(s, Stmt::For { .. })), 2);
    // the comptime `if unroll > 2` is pruned; runtime ifs: lane == 0, thread == 0
    assert_eq!(count(&k.body, &|s| matches!(s, Stmt::If { .. })), 2);
    assert_eq!(count(&k.body, &|s| matches!(s, Stmt::While { .. })), 1);
    assert_eq!(count(&k.body, &|s| matches!(s, Stmt::Barrier)), 1);
    // 4 unrolled `acc = acc * 1.0` + `acc += x` + `acc += 0.0` + total += + k += 1
    assert_eq!(
        count(&k.body, &|s| matches!(s, Stmt::Assign { .. })),
        4 + 1 + 1 + 1 + 1
    );
    assert_eq!(k.shared.len(), 1);
    assert_eq!(k.shared[0].name, "partial");
    assert_eq!(k.shared[0].len, 8);
    assert!(k
        .exprs
        .iter()
        .any(|e| matches!(e.expr, Expr::WaveReduce { .. })));
}

#[test]
fn zero_length_lds_is_a_build_error() {
    #[kernel]
    fn bad(out: &mut [f32], #[comptime] n: u32) {
        let s = shared::<f32>(n);
        s[0] = 1.0f32;
        out[0] = s[0];
    }
    let err = bad(&Target::GFX942, 0).unwrap_err();
    assert!(err.to_string().contains("kernel `bad`"), "{err}");
    assert!(err.to_string().contains("length 0"), "{err}");
}
