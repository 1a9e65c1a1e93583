//! Fragment-access plans both backends follow: which loads `ldmatrix` serves on sm_90, and how
//! wide a lane's contiguous run of fragment elements may be. Facts of the target's layouts, not
//! of either language: one definition, checked once against the layouts (test below).

use greta_dsl::ir::{FragPlace, Memory, MmaShape, Operand, Scalar, FRAGMENT_ALIGN};
use greta_dsl::target::{Coord, FragLayout, MatrixInst};
use greta_dsl::{Family, Target};

/// How `ldmatrix` loads a fragment: `count` 8×8 matrices; lane `l` gives the address of row
/// `l % 8` of matrix `l / 8`, whose top-left is at tile offset `(8·row_block, 8·col_block)`
/// with `(row_block, col_block) = origin(l / 8)`. Lane `t` then receives, from each matrix
/// `j`, the two elements `(t / 4, 2·(t % 4) + {0, 1})` as register `j` — fragment elements
/// `2j` and `2j + 1` — or, with `trans` (`ldmatrix ... .trans`), the two elements
/// `(2·(t % 4) + {0, 1}, t / 4)`.
#[derive(Clone, Copy, Debug)]
pub struct Ldmatrix {
    pub count: u32,
    pub origin: fn(u32) -> (u32, u32),
    pub trans: bool,
}

/// The `ldmatrix` plan for a fragment load, where one applies: sm_90's m16n8k16 layouts, an A
/// fragment as stored (rows along m), a B fragment stored transposed (rows along n) or as
/// stored (rows along k, through `.trans`: attention's `P·V` with V key-major), 16-bit elements
/// in LDS, with 8-element row segments kept contiguous by the tile's swizzle.
pub fn ldmatrix(
    target: &Target,
    inst: &MatrixInst,
    operand: Operand,
    place: &FragPlace,
    elem: Scalar,
) -> Option<Ldmatrix> {
    let swizzle = place.tile.swizzle;
    let eligible = target.family == Family::Nvptx
        && inst.shape == MmaShape::new(16, 8, 16)
        && matches!(place.tile.mem, Memory::Shared(_))
        && elem.size_bytes() == 2
        && (swizzle.is_none() || swizzle.chunk % 8 == 0);
    if !eligible {
        return None;
    }
    match (operand, place.transposed) {
        // a0a1: rows 0-7 × cols 0-7, a2a3: rows 8-15, a4a5: cols 8-15, a6a7: both.
        (Operand::A, false) => Some(Ldmatrix {
            count: 4,
            origin: |j| (j % 2, j / 2),
            trans: false,
        }),
        // Stored n × k: b0b1 are k 0-7 of rows n 0-7, b2b3 are k 8-15.
        (Operand::B, true) => Some(Ldmatrix {
            count: 2,
            origin: |j| (0, j % 2),
            trans: false,
        }),
        // Stored k × n: b0b1 are column n = t/4 of rows k 0-7, b2b3 of rows k 8-15.
        (Operand::B, false) => Some(Ldmatrix {
            count: 2,
            origin: |j| (j % 2, 0),
            trans: true,
        }),
        _ => None,
    }
}

/// The largest power of two dividing every lane term of `c` (1 if a term has factor 1).
pub fn lane_alignment(c: &Coord) -> u32 {
    c.lane
        .iter()
        .map(|t| 1 << t.mul.trailing_zeros().min(3))
        .min()
        .unwrap_or(8)
}

/// The instruction a matrix statement uses for a fragment of `elem` as `operand`: the
/// accumulator's by shape alone (it is f32 whatever the multiplicands are), A's and B's by shape
/// and element type.
pub fn matrix_inst(
    target: &Target,
    shape: MmaShape,
    operand: Operand,
    elem: Scalar,
) -> Option<&'static MatrixInst> {
    match operand {
        Operand::Acc => target.matrix.iter().find(|i| i.shape == shape),
        _ => target.mma(shape, elem),
    }
}

/// One access of a fragment's generic load or store: fragment elements `elem .. elem + lanes`
/// of a lane are tile element `(row, col)` onward of its first (row, column) — `row`/`col` in
/// memory order (swapped for a transposed place) — contiguous, aligned, one vector access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub elem: u32,
    pub row: u32,
    pub col: u32,
    pub lanes: u32,
}

/// The runs of a fragment access by `layout` into `place`: the longest stretches of elements in
/// one memory row at consecutive columns, cut to the widest vector (≤ 16 bytes) that the
/// layout's column alignment, the element's column and the swizzle chunk allow.
pub fn runs(layout: &FragLayout, place: &FragPlace, elem: Scalar) -> Vec<Run> {
    let (mrow, mcol) = if place.transposed {
        (&layout.col, &layout.row)
    } else {
        (&layout.row, &layout.col)
    };
    let col_align = lane_alignment(mcol).min(FRAGMENT_ALIGN);
    // Runs never cross a swizzle chunk (an unswizzled tile has no chunks).
    let chunk = if place.tile.swizzle.is_none() {
        1 << 16
    } else {
        place.tile.swizzle.chunk
    };
    let max_vec = (16 / elem.size_bytes()).min(8);
    let mut out = Vec::new();
    let mut i = 0;
    while i < layout.len {
        let (er, ec) = (mrow.elem_part(i), mcol.elem_part(i));
        let mut run = 1;
        while i + run < layout.len
            && mrow.elem_part(i + run) == er
            && mcol.elem_part(i + run) == ec + run
        {
            run += 1;
        }
        let lanes = [8u32, 4, 2]
            .into_iter()
            .find(|&l| {
                l <= run
                    && l <= max_vec
                    && col_align % l == 0
                    && ec % l == 0
                    && chunk % l == 0
                    && elem != Scalar::Bool
            })
            .unwrap_or(1);
        out.push(Run {
            elem: i,
            row: er,
            col: ec,
            lanes,
        });
        i += lanes;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use greta_dsl::ir::{ExprId, SharedId, Swizzle, TileRef};

    fn place(transposed: bool) -> FragPlace {
        FragPlace {
            tile: TileRef {
                mem: Memory::Shared(SharedId(0)),
                base: ExprId(0),
                stride: ExprId(0),
                swizzle: Swizzle::NONE,
            },
            row: ExprId(0),
            col: ExprId(0),
            transposed,
        }
    }

    /// `ldmatrix` semantics (PTX ISA, "warp-level matrix load": lane `t` receives elements
    /// `(t / 4, 2·(t % 4) + {0, 1})` of each 8×8 matrix, whose rows come from the addresses of
    /// lanes `8j..8j + 7`), composed with the plan's addresses, must put in every lane's every
    /// fragment element the tile element the layout says — for both plans.
    #[test]
    fn ldmatrix_plans_follow_the_layouts() {
        let t = &Target::SM_90;
        for inst in t.matrix {
            for (operand, transposed) in
                [(Operand::A, false), (Operand::B, true), (Operand::B, false)]
            {
                let p = place(transposed);
                let plan = ldmatrix(t, inst, operand, &p, inst.ab).expect("eligible");
                let layout = inst.layout(operand);
                assert_eq!(plan.count * 2, layout.len);
                for lane in 0..32 {
                    for j in 0..plan.count {
                        for h in 0..2 {
                            // The row address lane (8j + lane/4) supplied for matrix j.
                            let addr_lane = 8 * j + lane / 4;
                            // With .trans lane t gets the transposed places: row 2(t%4)+h
                            // (supplied by lane 8j + 2(t%4) + h), column t/4.
                            let (addr_lane, col) = if plan.trans {
                                (8 * j + 2 * (lane % 4) + h, lane / 4)
                            } else {
                                (addr_lane, 2 * (lane % 4) + h)
                            };
                            let (rb, cb) = (plan.origin)(addr_lane / 8);
                            let mem = (8 * rb + addr_lane % 8, 8 * cb + col);
                            let (r, c) = layout.coord(lane, 2 * j + h);
                            let want = if transposed { (c, r) } else { (r, c) };
                            assert_eq!(
                                mem, want,
                                "{} {operand:?} lane {lane} reg {j}.{h}",
                                inst.name
                            );
                        }
                    }
                }
            }
            // Not for the other orientations, nor outside LDS.
            assert!(ldmatrix(t, inst, Operand::A, &place(true), inst.ab).is_none());
            assert!(ldmatrix(
                &Target::GFX942,
                &Target::GFX942.matrix[0],
                Operand::A,
                &place(false),
                Scalar::F16
            )
            .is_none());
        }
    }
}
