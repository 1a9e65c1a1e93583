//! The fragment layouts of every matrix instruction, checked lane by lane and element by element
//! against data taken from their sources — not against greta's own code:
//! - gfx942: the unedited CSV output of AMD's Matrix Instruction Calculator
//!   (`tests/data/cdna3/`, how it was made in its README);
//! - sm_90: the PTX ISA's fragment formulas, evaluated by a separate script
//!   (`tests/data/ptx/generate.py`).
//!
//! The front end, the interpreter and the code generator all take the layouts from the same
//! tables, so a layout that was wrong there would be wrong consistently and no numeric test on
//! the interpreter could notice; these tests are what would.

use greta_dsl::ir::Operand;
use greta_dsl::target::{FragLayout, MatrixInst};
use greta_dsl::Target;
use std::collections::HashSet;

/// `(lane, element) -> (row, col)` from a calculator-style CSV: comment and title lines, a header
/// `lane,<element names...>`, then `lane,X[row][col],...` rows.
fn parse(text: &str, matrix: char) -> Vec<Vec<(u32, u32)>> {
    let mut rows = Vec::new();
    let mut header_seen = false;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if !header_seen {
            if line.starts_with("lane,") {
                header_seen = true;
            }
            continue;
        }
        let mut cells = line.split(',');
        let lane: usize = cells.next().unwrap().parse().unwrap();
        assert_eq!(lane, rows.len(), "lanes in order");
        let entries = cells
            .map(|c| {
                let c = c.trim();
                assert!(c.starts_with(matrix), "{c}");
                let inner = &c[1..];
                let parts: Vec<u32> = inner
                    .split(['[', ']'])
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse().unwrap())
                    .collect();
                assert_eq!(parts.len(), 2, "{c}");
                (parts[0], parts[1])
            })
            .collect();
        rows.push(entries);
    }
    rows
}

fn check(what: &str, layout: &FragLayout, data: &[Vec<(u32, u32)>], wave: u32, dims: (u32, u32)) {
    assert_eq!(data.len(), wave as usize, "{what}: one row per lane");
    let mut seen = HashSet::new();
    for (lane, entries) in data.iter().enumerate() {
        assert_eq!(
            entries.len(),
            layout.len as usize,
            "{what}: elements per lane"
        );
        for (i, &want) in entries.iter().enumerate() {
            let got = layout.coord(lane as u32, i as u32);
            assert_eq!(got, want, "{what}: lane {lane}, element {i}");
            assert!(
                got.0 < dims.0 && got.1 < dims.1,
                "{what}: {got:?} outside {dims:?}"
            );
            assert!(seen.insert(got), "{what}: {got:?} held twice");
        }
    }
    assert_eq!(
        seen.len() as u32,
        dims.0 * dims.1,
        "{what}: every element held"
    );
}

fn check_inst(inst: &MatrixInst, wave: u32, files: [&str; 3]) {
    let s = inst.shape;
    for ((op, dims), text) in [
        (Operand::A, (s.m, s.k)),
        (Operand::B, (s.k, s.n)),
        (Operand::Acc, (s.m, s.n)),
    ]
    .into_iter()
    .zip(files)
    {
        let letter = match op {
            Operand::A => 'A',
            Operand::B => 'B',
            Operand::Acc => 'D',
        };
        let what = format!("{} {}", inst.name, op.name());
        check(&what, inst.layout(op), &parse(text, letter), wave, dims);
    }
}

macro_rules! cdna3 {
    ($name:literal) => {
        [
            include_str!(concat!("data/cdna3/", $name, ".A.csv")),
            include_str!(concat!("data/cdna3/", $name, ".B.csv")),
            include_str!(concat!("data/cdna3/", $name, ".D.csv")),
        ]
    };
}

#[test]
fn gfx942_layouts_match_amds_matrix_instruction_calculator() {
    let t = &Target::GFX942;
    let files = [
        ("v_mfma_f32_16x16x16_f16", cdna3!("v_mfma_f32_16x16x16_f16")),
        (
            "v_mfma_f32_16x16x16_bf16",
            cdna3!("v_mfma_f32_16x16x16_bf16"),
        ),
        ("v_mfma_f32_32x32x8_f16", cdna3!("v_mfma_f32_32x32x8_f16")),
        ("v_mfma_f32_32x32x8_bf16", cdna3!("v_mfma_f32_32x32x8_bf16")),
    ];
    assert_eq!(
        t.matrix.len(),
        files.len(),
        "every instruction has its data"
    );
    for (name, texts) in files {
        let inst = t.matrix.iter().find(|i| i.name == name).unwrap();
        // The calculator names the instruction in its title line.
        assert!(texts[0].contains(&name.to_uppercase()), "{name}");
        check_inst(inst, t.wave_size, texts);
    }
}

#[test]
fn sm_90_layouts_match_the_ptx_isa() {
    let t = &Target::SM_90;
    let texts = [
        include_str!("data/ptx/mma_m16n8k16.A.csv"),
        include_str!("data/ptx/mma_m16n8k16.B.csv"),
        include_str!("data/ptx/mma_m16n8k16.D.csv"),
    ];
    assert_eq!(t.matrix.len(), 2);
    for inst in t.matrix {
        check_inst(inst, t.wave_size, texts);
    }
}

/// A few pairs read straight off the sources' figures, so that even the parsing above cannot
/// hide a transposition: lane 0 holds A[0][0..4] on MFMA 16x16x16 (calculator), lane 16 holds
/// A[0][4]; lane 5 of mma.m16n8k16 holds a0 = A[1][2] and c2 = C[9][2] (PTX ISA).
#[test]
fn spot_checks_from_the_figures() {
    let mfma = Target::GFX942.matrix[0].a;
    assert_eq!(mfma.coord(0, 3), (0, 3));
    assert_eq!(mfma.coord(16, 0), (0, 4));
    assert_eq!(mfma.coord(17, 1), (1, 5));
    let mma = &Target::SM_90.matrix[0];
    assert_eq!(mma.a.coord(5, 0), (1, 2));
    assert_eq!(mma.a.coord(5, 7), (9, 11));
    assert_eq!(mma.acc.coord(5, 2), (9, 2));
    assert_eq!(mma.b.coord(5, 3), (11, 1));
    let acc32 = Target::GFX942.matrix[2].acc;
    assert_eq!(acc32.coord(32, 4), (12, 0));
}

#[test]
fn sm_90_warpgroup_accumulators_match_the_ptx_isa() {
    let wg = Target::SM_90
        .warpgroup
        .expect("sm_90 has the warpgroup engine");
    let data = parse(include_str!("data/ptx/wgmma_m64n64k16.D.csv"), 'D');
    check(
        "wgmma m64n64k16 accumulator",
        &wg.acc(64),
        &data,
        wg.threads(Target::SM_90.wave_size),
        (64, 64),
    );
    // Wider n repeats the 8-column pattern: thread 37 (warp 1, lane 5) holds, as element 126
    // of n = 256, row 16 + 5/4 + 8·((126/2) % 2) = 25, column 8·(126/4) + 2·(5 % 4) = 250.
    assert_eq!(wg.acc(256).len, 128);
    assert_eq!(wg.acc(256).coord(37, 126), (25, 250));
    assert!(Target::GFX942.warpgroup.is_none());
}

/// Attention keeps its probabilities in registers where an accumulator fragment is also an
/// operand fragment lane by lane. From the figures: on mma.m16n8k16 a lane's c0..c3 are
/// C[l/4][2(l%4)+{0,1}] and C[l/4+8][...], its a0..a3 the same places of A's columns 0-7 and
/// a4..a7 those of columns 8-15 — two n8 accumulators make one A; its B (k-major pairs) lines up
/// with nothing. On MFMA 16x16x16 the accumulator (C[4(l/16)+i][l%16]) is the B layout
/// (B[4(l/16)+i][l%16]) and not the A layout (A[l%16][4(l/16)+i]).
#[test]
fn accumulators_that_are_operands() {
    let mma = &Target::SM_90.matrix[0];
    let two_tiles: Vec<(u32, u32)> = (0..8).map(|e| (e / 4, e % 4)).collect();
    assert_eq!(mma.operand_from_acc(Operand::A, 32), Some(two_tiles));
    assert_eq!(mma.operand_from_acc(Operand::B, 32), None);
    let mfma = &Target::GFX942.matrix[0];
    assert_eq!(mfma.operand_from_acc(Operand::A, 64), None);
    let one_tile: Vec<(u32, u32)> = (0..4).map(|e| (0, e)).collect();
    assert_eq!(mfma.operand_from_acc(Operand::B, 64), Some(one_tile));
}

/// The lanes that share an accumulator row or column: a row of mma.m16n8's C is held by the 4
/// lanes of a quad (l/4 fixed), a column by the 8 lanes with one l%4; MFMA 16x16's column
/// l%16 by lanes 16 apart, its rows 4(l/16)+i by the 16 lanes of a quarter-wave.
#[test]
fn lanes_sharing_a_row() {
    let mma = Target::SM_90.matrix[0].acc;
    assert_eq!(mma.row.lanes_sharing(32), vec![1, 2]);
    assert_eq!(mma.col.lanes_sharing(32), vec![4, 8, 16]);
    let mfma = Target::GFX942.matrix[0].acc;
    assert_eq!(mfma.col.lanes_sharing(64), vec![16, 32]);
    assert_eq!(mfma.row.lanes_sharing(64), vec![1, 2, 4, 8]);
}
