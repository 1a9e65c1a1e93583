//! The warpgroup matrix engine and asynchronous copies on the interpreter: results against an
//! exact reference, and every ordering mistake the interpreter reports (each would be silent
//! corruption on a GPU).

use greta_dsl::interp::{run, Arg, Buffer, InterpError, LaunchDims};
use greta_dsl::prelude::*;

const SM90: &Target = &Target::SM_90;

/// What a kernel leaves out or gets wrong, one mistake at a time.
#[derive(Clone, Copy, PartialEq)]
enum Mistake {
    None,
    NoProxyFence,
    ReadBeforeWgmmaWait,
    OverwriteBeforeWgmmaWait,
    NoAsyncWait,
}

/// `d (64 × n) = x (64 × 64) · w (n × 64)ᵀ` by one warpgroup: both tiles copied asynchronously
/// into 128-byte-swizzled LDS, then four k16 steps on the engine.
#[kernel]
fn wg_gemm(x: &[f16], w: &[f16], d: &mut [f32], #[comptime] n: u32, #[comptime] mistake: u32) {
    block_size(128);
    #[comptime]
    let k = 64u32;
    let ta = warpgroup_tiles::<f16>(1, 64);
    let tb = warpgroup_tiles::<f16>(1, n);
    let a = ta.stage(0u32);
    let b = tb.stage(0u32);
    let tid = thread_idx().x;
    // 16-byte copies: 8 per row of 64.
    for i in (tid..64u32 * 8u32).step_by(128u32) {
        let (r, c) = (i / 8u32, i % 8u32 * 8u32);
        async_copy::<8, _, _>(&a, r, c, &x, r * k + c, true);
    }
    for i in (tid..n * 8u32).step_by(128u32) {
        let (r, c) = (i / 8u32, i % 8u32 * 8u32);
        async_copy::<8, _, _>(&b, r, c, &w, r * k + c, true);
    }
    async_commit();
    if mistake != 4 {
        async_wait(0);
    }
    if mistake != 1 {
        fence_async_lds();
    }
    barrier();
    let acc = warpgroup_accumulators(n, 1);
    acc.fill(0.0f32);
    wgmma_fence();
    for kk in 0..k / 16u32 {
        wgmma(acc.at(0), &a, 0u32, kk * 16u32, &b, 0u32, kk * 16u32);
    }
    wgmma_commit();
    if mistake == 2 {
        d[0] = acc.at(0).get(0);
    }
    if mistake == 3 {
        a.store(0u32, 0u32, f16::ZERO);
    }
    wgmma_wait(0);
    for e in 0..acc.elems() {
        let (r, c) = acc.at(0).coord(e);
        d[r * n + c] = acc.at(0).get(e);
    }
}

fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 5 + seed * 3) % 7) as f32 * 0.5 - 1.5)
        .collect()
}

fn launch(n: u32, mistake: Mistake) -> Result<(Vec<f32>, Vec<f32>), InterpError> {
    let m = mistake as u32;
    let k = wg_gemm(SM90, n, m).unwrap();
    let (xv, wv) = (values(64 * 64, 1), values(n as usize * 64, 2));
    let x = Buffer::F16(xv.iter().map(|&v| f16::from_f32(v)).collect());
    let w = Buffer::F16(wv.iter().map(|&v| f16::from_f32(v)).collect());
    let mut d = Buffer::F32(vec![f32::NAN; 64 * n as usize]);
    run(
        &k,
        SM90,
        LaunchDims::linear(1, 128),
        &mut [Arg::Read(&x), Arg::Read(&w), Arg::Write(&mut d)],
    )?;
    let Buffer::F32(got) = d else { unreachable!() };
    let mut want = vec![0f32; 64 * n as usize];
    for i in 0..64 {
        for j in 0..n as usize {
            want[i * n as usize + j] = (0..64).map(|c| xv[i * 64 + c] * wv[j * 64 + c]).sum();
        }
    }
    Ok((got, want))
}

#[test]
fn warpgroup_gemm_matches_the_reference() {
    for n in [8, 64, 256] {
        let (got, want) = launch(n, Mistake::None).unwrap();
        assert_eq!(got, want, "n={n}");
    }
}

#[test]
fn ordering_mistakes_are_errors() {
    let cases = [
        (
            Mistake::NoProxyFence,
            "without a fence_async_lds after the write",
        ),
        (
            Mistake::ReadBeforeWgmmaWait,
            "it is the accumulator of a wgmma that has not been waited for",
        ),
        (
            Mistake::OverwriteBeforeWgmmaWait,
            "a wgmma that reads it has not been waited for",
        ),
        (
            Mistake::NoAsyncWait,
            "an asynchronous copy into it is still in flight",
        ),
    ];
    for (mistake, message) in cases {
        let err = launch(64, mistake).unwrap_err();
        assert!(matches!(err, InterpError::Async { .. }), "{err}");
        assert!(err.to_string().contains(message), "{err}");
    }
}

/// Zero-filled copies (`pred` false) read nothing and leave zeros.
#[kernel]
fn copy_some(x: &[f32], y: &mut [f32], n: u32) {
    block_size(32);
    let tile = lds_tiles::<f32>(1, 1, 128, TileLayout::Padded(0)).stage(0u32);
    let i = thread_idx().x * 4u32;
    async_copy::<4, _, _>(&tile, 0u32, i, &x, i, i < n);
    async_commit();
    async_wait(0);
    barrier();
    vstore::<4, _>(&y, i, tile.vload::<4>(0u32, i));
}

#[test]
fn async_copies_land_and_zero_fill() {
    let k = copy_some(SM90).unwrap();
    let x = Buffer::F32((0..128).map(|i| i as f32).collect());
    let mut y = Buffer::F32(vec![f32::NAN; 128]);
    run(
        &k,
        SM90,
        LaunchDims::linear(1, 32),
        &mut [
            Arg::Read(&x),
            Arg::Write(&mut y),
            Arg::Value(greta_dsl::ir::Const::U32(40)),
        ],
    )
    .unwrap();
    let Buffer::F32(y) = y else { unreachable!() };
    for (i, v) in y.iter().enumerate() {
        assert_eq!(*v, if i < 40 { i as f32 } else { 0.0 }, "{i}");
    }
    // The same kernel on gfx942, which has no asynchronous copies: the copy is immediate.
    let k = copy_some(&Target::GFX942).unwrap();
    let mut y = Buffer::F32(vec![f32::NAN; 128]);
    run(
        &k,
        &Target::GFX942,
        LaunchDims::linear(1, 32),
        &mut [
            Arg::Read(&x),
            Arg::Write(&mut y),
            Arg::Value(greta_dsl::ir::Const::U32(40)),
        ],
    )
    .unwrap();
}

#[test]
fn the_warpgroup_engine_is_a_build_error_where_there_is_none() {
    let err = wg_gemm(&Target::GFX942, 64, 0).unwrap_err().to_string();
    assert!(
        err.contains("gfx942 has no warpgroup matrix engine"),
        "{err}"
    );
    let err = wg_gemm(SM90, 12, 0).unwrap_err().to_string();
    assert!(
        err.contains("tiles of 12 rows are not a whole number of 1024-byte swizzle atoms"),
        "{err}"
    );
    let err = wg_gemm(SM90, 264, 0).unwrap_err().to_string();
    assert!(err.contains("n is a multiple of 8 up to 256"), "{err}");
}
