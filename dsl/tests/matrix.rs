//! Matrix cores on the interpreter: `mma`, fragment loads and stores (global and LDS tiles,
//! plain, transposed and swizzled), fragment coordinates, for every instruction of both targets,
//! against an f64 reference; and the errors of misused collectives.

use greta_dsl::interp::{run, Arg, Buffer, InterpError, LaunchDims};
use greta_dsl::ir::{Scalar, Swizzle};
use greta_dsl::prelude::*;
use greta_dsl::target::MatrixInst;

/// One `d = a · b` per wave: A `m × k` and B from global tiles (B as `k × n`, or `n × k` when
/// `b_transposed`), D stored as a fragment (`by_coord == false`) or element by element through
/// the fragment's coordinates.
#[kernel]
fn one_mma<T: MatrixElem>(
    a: &[T],
    b: &[T],
    d: &mut [f32],
    #[comptime] m: u32,
    #[comptime] n: u32,
    #[comptime] k: u32,
    #[comptime] b_transposed: bool,
    #[comptime] by_coord: bool,
) {
    let inst = matrix_inst_shaped::<T>(m, n, k);
    let fa = fragments::<T, MatA>(inst, 1);
    let fb = fragments::<T, MatB>(inst, 1);
    let acc = fragments::<f32, Accum>(inst, 2);
    acc.fill(0.0f32);
    fa.at(0).load(&global_tile(&a, 0u32, k), 0u32, 0u32);
    if b_transposed {
        fb.at(0)
            .load_transposed(&global_tile(&b, 0u32, k), 0u32, 0u32);
    } else {
        fb.at(0).load(&global_tile(&b, 0u32, n), 0u32, 0u32);
    }
    mma(fa.at(0), fb.at(0), acc.at(1), acc.at(1));
    if by_coord {
        for i in 0..acc.elems() {
            let (r, c) = acc.at(1).coord(i);
            d[r * n + c] = acc.at(1).get(i);
        }
    } else {
        acc.at(1).store(&global_tile(&d, 0u32, n), 0u32, 0u32);
    }
}

/// A through a swizzled LDS tile of `2m × k` (the fragment from its second half), B transposed.
#[kernel]
fn lds_mma<T: MatrixElem>(
    a: &[T],
    b: &[T],
    d: &mut [f32],
    #[comptime] m: u32,
    #[comptime] n: u32,
    #[comptime] k: u32,
) {
    block_size(target().wave_size);
    let inst = matrix_inst_shaped::<T>(m, n, k);
    let layout = TileLayout::swizzled_for(target(), T::SCALAR, k);
    let tiles = lds_tiles::<T>(1, 2 * m, k, layout);
    let tile = tiles.stage(0u32);
    // Every lane copies rows of A into the tile's second half, and zeros into the first.
    for r in (thread_idx().x..m).step_by(target().wave_size) {
        for c in 0..k {
            tile.store(r + m, c, a[r * k + c]);
            tile.store(r, c, T::from_f32(0.0f32));
        }
    }
    barrier();
    let fa = fragments::<T, MatA>(inst, 1);
    let fb = fragments::<T, MatB>(inst, 1);
    let acc = fragments::<f32, Accum>(inst, 1);
    acc.fill(0.0f32);
    fa.at(0).load(&tile, m, 0u32);
    fb.at(0)
        .load_transposed(&global_tile(&b, 0u32, k), 0u32, 0u32);
    mma(fa.at(0), fb.at(0), acc.at(0), acc.at(0));
    acc.at(0).store(&global_tile(&d, 0u32, n), 0u32, 0u32);
}

fn values(len: usize, seed: u32) -> Vec<f32> {
    // Small integers and halves: exact in f16 and bf16, so the reference is exact too.
    (0..len)
        .map(|i| ((i as u32 * 7 + seed * 13) % 9) as f32 * 0.5 - 2.0)
        .collect()
}

fn buffer(s: Scalar, v: &[f32]) -> Buffer {
    match s {
        Scalar::F16 => Buffer::F16(v.iter().map(|&x| f16::from_f32(x)).collect()),
        _ => Buffer::BF16(v.iter().map(|&x| bf16::from_f32(x)).collect()),
    }
}

fn reference(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, bt: bool) -> Vec<f32> {
    let mut d = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            d[i * n + j] = (0..k)
                .map(|c| {
                    let bv = if bt { b[j * k + c] } else { b[c * n + j] };
                    a[i * k + c] as f64 * bv as f64
                })
                .sum::<f64>() as f32;
        }
    }
    d
}

fn build(
    inst: &MatrixInst,
    target: &'static Target,
    bt: bool,
    by_coord: bool,
) -> Result<Kernel, BuildError> {
    let s = inst.shape;
    match inst.ab {
        Scalar::F16 => one_mma::<f16>(target, s.m, s.n, s.k, bt, by_coord),
        _ => one_mma::<bf16>(target, s.m, s.n, s.k, bt, by_coord),
    }
}

#[test]
fn every_instruction_of_both_targets_multiplies() {
    for target in Target::ALL {
        for inst in target.matrix {
            let s = inst.shape;
            let (m, n, k) = (s.m as usize, s.n as usize, s.k as usize);
            for (bt, by_coord) in [(false, false), (true, false), (true, true)] {
                let kernel = build(inst, target, bt, by_coord).unwrap();
                let (a, b) = (values(m * k, 1), values(k * n, 2));
                let (ab, bb) = (buffer(inst.ab, &a), buffer(inst.ab, &b));
                let mut d = Buffer::F32(vec![f32::NAN; m * n]);
                // Two waves: each computes the same product.
                let dims = LaunchDims::linear(1, 2 * target.wave_size);
                run(
                    &kernel,
                    target,
                    dims,
                    &mut [Arg::Read(&ab), Arg::Read(&bb), Arg::Write(&mut d)],
                )
                .unwrap_or_else(|e| panic!("{} on {target}: {e}", inst.name));
                let want = reference(&a, &b, m, n, k, bt);
                assert_eq!(
                    d,
                    Buffer::F32(want),
                    "{} on {target}, b transposed {bt}, by coordinates {by_coord}",
                    inst.name
                );
            }
        }
    }
}

#[test]
fn fragments_load_from_swizzled_lds() {
    for target in Target::ALL {
        for inst in target.matrix {
            let s = inst.shape;
            let (m, n, k) = (s.m as usize, s.n as usize, s.k as usize);
            let kernel = match inst.ab {
                Scalar::F16 => lds_mma::<f16>(target, s.m, s.n, s.k),
                _ => lds_mma::<bf16>(target, s.m, s.n, s.k),
            }
            .unwrap();
            let (a, b) = (values(m * k, 3), values(k * n, 4));
            let (ab, bb) = (buffer(inst.ab, &a), buffer(inst.ab, &b));
            let mut d = Buffer::F32(vec![f32::NAN; m * n]);
            run(
                &kernel,
                target,
                LaunchDims::linear(1, target.wave_size),
                &mut [Arg::Read(&ab), Arg::Read(&bb), Arg::Write(&mut d)],
            )
            .unwrap_or_else(|e| panic!("{} on {target}: {e}", inst.name));
            assert_eq!(
                d,
                Buffer::F32(reference(&a, &b, m, n, k, true)),
                "{}",
                inst.name
            );
        }
    }
}

#[test]
fn swizzles_are_permutations_of_each_row() {
    for elem in [Scalar::F16, Scalar::F32] {
        for cols in [16u32, 32, 64, 128, 256] {
            let TileLayout::Swizzled(s) = TileLayout::swizzled_for(&Target::SM_90, elem, cols)
            else {
                panic!("{cols} columns of {elem} get a swizzle");
            };
            for row in 0..64 {
                let mut seen: Vec<u32> = (0..cols).map(|c| s.apply(row, c)).collect();
                seen.sort();
                assert_eq!(seen, (0..cols).collect::<Vec<_>>(), "{s:?} row {row}");
            }
            // The same 16-byte chunk of 8 consecutive rows lands in 8 different groups of 4
            // banks (128 bytes of banks = 8 groups of 16 bytes).
            let bytes = elem.size_bytes();
            let groups: std::collections::HashSet<u32> = (0..8)
                .map(|r| ((r * cols + s.apply(r, 0)) * bytes / 16) % 8)
                .collect();
            assert_eq!(groups.len(), 8, "{elem} × {cols}: {s:?}");
        }
    }
    assert_eq!(Swizzle::NONE.apply(5, 13), 13);
}

#[kernel]
fn divergent_mma(d: &mut [f32], #[comptime] divergent: bool) {
    let inst = matrix_inst::<f16>();
    let fa = fragments::<f16, MatA>(inst, 1);
    let fb = fragments::<f16, MatB>(inst, 1);
    let acc = fragments::<f32, Accum>(inst, 1);
    fa.fill(f16::ONE);
    fb.fill(f16::ONE);
    acc.fill(0.0f32);
    if divergent {
        if lane_id() < 5u32 {
            mma(fa.at(0), fb.at(0), acc.at(0), acc.at(0));
        }
    } else {
        mma(fa.at(0), fb.at(0), acc.at(0), acc.at(0));
    }
    d[thread_idx().x] = acc.at(0).get(0);
}

#[kernel]
fn lane_dependent_tile(a: &[f16], d: &mut [f32]) {
    let inst = matrix_inst::<f16>();
    let fa = fragments::<f16, MatA>(inst, 1);
    fa.at(0).load(
        &global_tile(&a, 0u32, 16u32),
        lane_id() / 16u32 * 8u32,
        0u32,
    );
    d[thread_idx().x] = fa.at(0).get(0).to_f32();
}

#[kernel]
fn misaligned_tile(a: &[f16], d: &mut [f32], col: u32) {
    let inst = matrix_inst::<f16>();
    let fa = fragments::<f16, MatA>(inst, 1);
    fa.at(0).load(&global_tile(&a, 0u32, 32u32), 0u32, col);
    d[thread_idx().x] = fa.at(0).get(0).to_f32();
}

#[test]
fn misused_collectives_are_errors_naming_the_thread() {
    for target in Target::ALL {
        let w = target.wave_size;
        let k = divergent_mma(target, true).unwrap();
        let mut d = Buffer::F32(vec![0.0; w as usize]);
        let err = run(
            &k,
            target,
            LaunchDims::linear(1, w),
            &mut [Arg::Write(&mut d)],
        )
        .unwrap_err();
        assert!(
            matches!(err, InterpError::WaveCollective { op: "mma", .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("thread (5, 0, 0) is not active here"),
            "{err}"
        );

        let a = Buffer::F16(vec![f16::ONE; 64 * 32]);
        let k = lane_dependent_tile(target).unwrap();
        let err = run(
            &k,
            target,
            LaunchDims::linear(1, w),
            &mut [Arg::Read(&a), Arg::Write(&mut d)],
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("tile row is 8 here but 0 on the wave's first lane"),
            "{err}"
        );

        let k = misaligned_tile(target).unwrap();
        let err = run(
            &k,
            target,
            LaunchDims::linear(1, w),
            &mut [
                Arg::Read(&a),
                Arg::Write(&mut d),
                Arg::Value(greta_dsl::ir::Const::U32(4)),
            ],
        )
        .unwrap_err();
        assert!(err.to_string().contains("must be multiples of 8"), "{err}");

        // A block whose last wave is partial cannot use matrix instructions in it.
        let k = divergent_mma(target, false).unwrap();
        let mut d = Buffer::F32(vec![0.0; 2 * w as usize]);
        let err = run(
            &k,
            target,
            LaunchDims::linear(1, w + 3),
            &mut [Arg::Write(&mut d)],
        )
        .unwrap_err();
        assert!(err.to_string().contains("fills only partly"), "{err}");
    }
}

#[test]
fn a_kernel_runs_only_on_its_target() {
    let k = divergent_mma(&Target::GFX942, false).unwrap();
    let mut d = Buffer::F32(vec![0.0; 64]);
    let err = run(
        &k,
        &Target::SM_90,
        LaunchDims::linear(1, 32),
        &mut [Arg::Write(&mut d)],
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("built for gfx942 and cannot run as sm_90"),
        "{err}"
    );
}

#[kernel]
fn mixed_instructions(d: &mut [f32]) {
    let i16 = matrix_inst_shaped::<f16>(16, 16, 16);
    let i32x = matrix_inst_shaped::<f16>(32, 32, 8);
    let fa = fragments::<f16, MatA>(i16, 1);
    let fb = fragments::<f16, MatB>(i32x, 1);
    let acc = fragments::<f32, Accum>(i16, 1);
    mma(fa.at(0), fb.at(0), acc.at(0), acc.at(0));
    d[0] = 0.0f32;
}

#[kernel]
fn missing_instruction(d: &mut [f32]) {
    let _inst = matrix_inst_shaped::<bf16>(32, 32, 8);
    d[0] = 0.0f32;
}

#[test]
fn build_errors_name_the_instruction() {
    let err = mixed_instructions(&Target::GFX942).unwrap_err().to_string();
    assert!(
        err.contains("mma on fragments of different instructions"),
        "{err}"
    );
    let err = missing_instruction(&Target::SM_90).unwrap_err().to_string();
    assert!(
        err.contains("sm_90 has no m32n32k8 matrix instruction for bf16 inputs"),
        "{err}"
    );
    missing_instruction(&Target::GFX942).unwrap();
}
