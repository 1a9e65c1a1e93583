//! The attention kernels chained the way the forward pass uses them — append the new K/V rows to
//! the caches (`copy`), `attn_scores`, `softmax` over `H·T` rows of `L`, `attn_values` — on the
//! interpreter, against plain causal attention in f64. This also exercises each kernel's
//! documented argument order and `launch` helper.

use greta_dsl::interp::{self, Arg, Buffer};
use greta_dsl::ir::Const;
use greta_dsl::Target;
use greta_kernels::{attn_decode, attn_scores, attn_values, by_name, copy, flash, softmax, Inputs};

fn f32s(b: &Buffer) -> Vec<f32> {
    match b {
        Buffer::F32(v) => v.clone(),
        other => panic!("expected f32, got {other:?}"),
    }
}

fn u32v(x: u32) -> Arg<'static> {
    Arg::Value(Const::U32(x))
}

/// Causal GQA attention in f64: `q` is `[T, H, D]`, the caches `[≥L, Hkv, D]`.
#[allow(clippy::too_many_arguments)]
fn attention(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    t_n: usize,
    h_n: usize,
    hkv: usize,
    d_n: usize,
    start: usize,
) -> Vec<f64> {
    let scale = 1.0 / (d_n as f64).sqrt();
    let mut out = vec![0.0; t_n * h_n * d_n];
    for t in 0..t_n {
        for h in 0..h_n {
            let kvh = h / (h_n / hkv);
            let s: Vec<f64> = (0..=start + t)
                .map(|p| {
                    (0..d_n)
                        .map(|d| q[(t * h_n + h) * d_n + d] * k[(p * hkv + kvh) * d_n + d])
                        .sum::<f64>()
                        * scale
                })
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let sum: f64 = e.iter().sum();
            for d in 0..d_n {
                out[(t * h_n + h) * d_n + d] = e
                    .iter()
                    .enumerate()
                    .map(|(p, w)| w / sum * v[(p * hkv + kvh) * d_n + d])
                    .sum::<f64>();
            }
        }
    }
    out
}

fn run_step(target: &'static Target, t_n: usize, h_n: usize, hkv: usize, d_n: usize, start: usize) {
    let capacity = start + t_n + 4;
    let l = start + t_n;
    let row = hkv * d_n;
    let mut inputs = Inputs::new(42);
    let (qb, q) = inputs.uniform(greta_dsl::ir::Scalar::F32, t_n * h_n * d_n, -1.0, 1.0);
    // Caches holding `start` earlier rows; the new rows are appended by `copy`.
    let (_, k_all) = inputs.uniform(greta_dsl::ir::Scalar::F32, l * row, -1.0, 1.0);
    let (_, v_all) = inputs.uniform(greta_dsl::ir::Scalar::F32, l * row, -1.0, 1.0);
    let mut k_cache = Buffer::F32(vec![0.0; capacity * row]);
    let mut v_cache = Buffer::F32(vec![0.0; capacity * row]);
    if let (Buffer::F32(kc), Buffer::F32(vc)) = (&mut k_cache, &mut v_cache) {
        for i in 0..start * row {
            kc[i] = k_all[i] as f32;
            vc[i] = v_all[i] as f32;
        }
    }

    let copy_spec = by_name("copy").unwrap();
    let copy_cfg = copy_spec.config("dtype=f32").unwrap();
    let copy_k = (copy_spec.build)(&copy_cfg, target).unwrap();
    let n_new = (t_n * row) as u32;
    for (cache, all) in [(&mut k_cache, &k_all), (&mut v_cache, &v_all)] {
        let new = Buffer::F32(all[start * row..].iter().map(|&x| x as f32).collect());
        interp::run(
            &copy_k,
            target,
            copy::launch(&copy_cfg, n_new),
            &mut [
                Arg::Read(&new),
                Arg::Write(cache),
                u32v(n_new),
                u32v((start * row) as u32),
            ],
        )
        .unwrap();
    }

    let (t, h, kvh, d) = (t_n as u32, h_n as u32, hkv as u32, d_n as u32);
    let scores_spec = by_name("attn_scores").unwrap();
    let scores_cfg = scores_spec.config("dtype=f32").unwrap();
    let mut scores = Buffer::F32(vec![0.0; h_n * t_n * l]);
    interp::run(
        &(scores_spec.build)(&scores_cfg, target).unwrap(),
        target,
        attn_scores::launch(&scores_cfg, h, t, l as u32),
        &mut [
            Arg::Read(&qb),
            Arg::Read(&k_cache),
            Arg::Write(&mut scores),
            u32v(t),
            u32v(h),
            u32v(kvh),
            u32v(d),
            u32v(start as u32),
            u32v(l as u32),
            Arg::Value(Const::F32(1.0 / (d_n as f32).sqrt())),
        ],
    )
    .unwrap();

    let softmax_spec = by_name("softmax").unwrap();
    let softmax_cfg = softmax_spec.config("dtype=f32").unwrap();
    let mut probs = Buffer::F32(vec![0.0; h_n * t_n * l]);
    interp::run(
        &(softmax_spec.build)(&softmax_cfg, target).unwrap(),
        target,
        softmax::launch(&softmax_cfg, h * t),
        &mut [Arg::Read(&scores), Arg::Write(&mut probs), u32v(l as u32)],
    )
    .unwrap();
    // Masked positions come out exactly 0.
    let p = f32s(&probs);
    for r in 0..h_n * t_n {
        let tok = r % t_n;
        assert!(p[r * l + start + tok + 1..(r + 1) * l]
            .iter()
            .all(|&x| x == 0.0));
    }

    let values_spec = by_name("attn_values").unwrap();
    let values_cfg = values_spec.config("dtype=f32").unwrap();
    let mut out = Buffer::F32(vec![0.0; t_n * h_n * d_n]);
    interp::run(
        &(values_spec.build)(&values_cfg, target).unwrap(),
        target,
        attn_values::launch(&values_cfg, t, h, d),
        &mut [
            Arg::Read(&probs),
            Arg::Read(&v_cache),
            Arg::Write(&mut out),
            u32v(t),
            u32v(h),
            u32v(kvh),
            u32v(d),
            u32v(l as u32),
        ],
    )
    .unwrap();

    let want = attention(&q, &k_all, &v_all, t_n, h_n, hkv, d_n, start);
    for (i, (&g, &w)) in f32s(&out).iter().zip(&want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= 1e-5 + 1e-5 * w.abs(),
            "T={t_n} H={h_n} Hkv={hkv} D={d_n} start={start}: out[{i}] = {g}, expected {w}"
        );
    }
}

#[test]
fn decode_and_prefill_steps_match_f64_attention() {
    for target in Target::ALL {
        run_step(target, 1, 8, 4, 8, 0);
        run_step(target, 1, 8, 4, 8, 9);
        run_step(target, 5, 8, 4, 8, 0);
        run_step(target, 3, 8, 2, 16, 7);
        run_step(target, 2, 4, 4, 64, 3);
    }
}

/// `attn_decode` then `attn_combine` with `splits` stretches; returns `[T, H, D]` f32.
#[allow(clippy::too_many_arguments)]
fn split_k(
    target: &'static Target,
    q: &Buffer,
    k: &Buffer,
    v: &Buffer,
    s: flash::Shape,
    splits: u32,
) -> Vec<f32> {
    let decode_spec = by_name("attn_decode").unwrap();
    let cfg = attn_decode::fit(
        &decode_spec.config("dtype=f32").unwrap(),
        s.head_dim as u32,
        (s.heads / s.kv_heads) as u32,
    );
    let keys = s.keys(s.tokens - 1) as u32;
    let chunk = keys.div_ceil(splits);
    let rows = s.tokens * s.heads;
    let mut part = Buffer::F32(vec![0.0; rows * splits as usize * (s.head_dim + 2)]);
    let start = Buffer::U32(vec![s.start as u32]);
    interp::run(
        &(decode_spec.build)(&cfg, target).unwrap(),
        target,
        attn_decode::launch(&cfg, target, s.tokens as u32, s.heads as u32, splits),
        &mut [
            Arg::Read(q),
            Arg::Read(k),
            Arg::Read(v),
            Arg::Write(&mut part),
            u32v(s.tokens as u32),
            u32v(s.heads as u32),
            u32v(s.kv_heads as u32),
            u32v(s.head_dim as u32),
            Arg::Read(&start),
            u32v(chunk),
            u32v(splits),
            Arg::Value(Const::F32(flash::LOG2_E / (s.head_dim as f32).sqrt())),
        ],
    )
    .unwrap();
    let combine_spec = by_name("attn_combine").unwrap();
    let ccfg = combine_spec.config("dtype=f32").unwrap();
    let mut out = Buffer::F32(vec![0.0; rows * s.head_dim]);
    interp::run(
        &(combine_spec.build)(&ccfg, target).unwrap(),
        target,
        attn_decode::launch_combine(&ccfg, rows as u32),
        &mut [
            Arg::Read(&part),
            Arg::Write(&mut out),
            u32v(s.head_dim as u32),
            u32v(splits),
        ],
    )
    .unwrap();
    f32s(&out)
}

/// Split-K decode as the model chains it (decode, then combine) against causal attention in
/// f64, for GQA ratios 1, 4 and 8 and KV lengths that are not multiples of a stretch; and the
/// split results against the unsplit one (one stretch), within f32 rounding.
#[test]
fn split_k_decode_matches_attention_and_the_unsplit_result() {
    for target in Target::ALL {
        for (t, h, hkv, d, start) in [(1, 8, 8, 16, 300), (1, 8, 2, 8, 172), (2, 8, 1, 12, 61)] {
            let s = flash::Shape {
                tokens: t,
                heads: h,
                kv_heads: hkv,
                head_dim: d,
                start,
            };
            let mut inputs = Inputs::new(5);
            let f32_ = greta_dsl::ir::Scalar::F32;
            let rows = (start + t + 2) * hkv * d;
            let (qb, q) = inputs.uniform(f32_, t * h * d, -1.0, 1.0);
            let (kb, k) = inputs.uniform(f32_, rows, -1.0, 1.0);
            let (vb, v) = inputs.uniform(f32_, rows, -1.0, 1.0);
            let want = flash::reference(&q, &k, &v, s, 1.0 / (d as f64).sqrt());
            let whole = split_k(target, &qb, &kb, &vb, s, 1);
            for splits in [2, 3, 7] {
                let got = split_k(target, &qb, &kb, &vb, s, splits);
                for i in 0..want.len() {
                    let (g, w, u) = (got[i] as f64, want[i], whole[i] as f64);
                    assert!(
                        (g - w).abs() <= 1e-5 + 1e-5 * w.abs(),
                        "{target} {s:?} splits={splits}: out[{i}] = {g}, expected {w}"
                    );
                    assert!(
                        (g - u).abs() <= 4.0 * f32::EPSILON as f64 * (1.0 + u.abs()),
                        "{target} {s:?} splits={splits}: out[{i}] = {g}, unsplit {u}"
                    );
                }
            }
        }
    }
}
