//! Matrix-core instructions and their fragment layouts: which lane of a wave holds which element
//! of A, B and the accumulator, for every instruction a target offers.
//!
//! These tables are the single source of the layouts. The front end turns them into index
//! arithmetic (fragment coordinates for epilogues), the interpreter executes `Mma` and fragment
//! loads by them, and the code generator picks the instruction by them; so a layout that was
//! wrong here would be wrong consistently everywhere and no numeric test could notice. Each
//! layout therefore cites where it comes from, and `dsl/tests/layouts.rs` compares every
//! lane/element pair with data taken from that source (AMD's matrix instruction calculator's
//! output for gfx942, the PTX ISA's fragment formulas for sm_90).
//!
//! A layout maps (lane, element) to (row, column) of the operand's matrix — A is `m × k`, B is
//! `k × n`, the accumulator is `m × n` — as a sum of terms `((x / div) % modulo) · mul` over the
//! lane and over the element index. Every instruction of both families has this separable form,
//! which lets the front end compute the lane's part once at run time and add per-element
//! constants.

use crate::ir::{MmaShape, Operand, Scalar, Swizzle};

/// One term of a coordinate: `((x / div) % modulo) · mul`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Term {
    pub div: u32,
    pub modulo: u32,
    pub mul: u32,
}

impl Term {
    pub const fn new(div: u32, modulo: u32, mul: u32) -> Term {
        Term { div, modulo, mul }
    }

    pub fn eval(&self, x: u32) -> u32 {
        (x / self.div) % self.modulo * self.mul
    }
}

/// A row or column coordinate: the lane's part plus the element's part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Coord {
    pub lane: &'static [Term],
    pub elem: &'static [Term],
}

impl Coord {
    pub fn lane_part(&self, lane: u32) -> u32 {
        self.lane.iter().map(|t| t.eval(lane)).sum()
    }
    pub fn elem_part(&self, elem: u32) -> u32 {
        self.elem.iter().map(|t| t.eval(elem)).sum()
    }
    pub fn eval(&self, lane: u32, elem: u32) -> u32 {
        self.lane_part(lane) + self.elem_part(elem)
    }

    /// The lane bits of a `wave`-lane wave that this coordinate does not depend on, as xor
    /// masks: the lanes holding one row (for a row coordinate) differ only in these bits, so
    /// xor shuffles over them reduce along a row in registers.
    pub fn lanes_sharing(&self, wave: u32) -> Vec<u32> {
        (0..wave.trailing_zeros())
            .map(|b| 1 << b)
            .filter(|&m| (0..wave).all(|l| self.lane_part(l) == self.lane_part(l ^ m)))
            .collect()
    }
}

/// Where each lane's fragment elements sit in the operand's matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragLayout {
    /// Elements per lane.
    pub len: u32,
    pub row: Coord,
    pub col: Coord,
}

impl FragLayout {
    /// `(row, column)` of element `elem` of lane `lane`.
    pub fn coord(&self, lane: u32, elem: u32) -> (u32, u32) {
        (self.row.eval(lane, elem), self.col.eval(lane, elem))
    }

    /// The layout with rows and columns exchanged (an MFMA B operand is its A operand's
    /// transpose).
    pub const fn transposed(self) -> FragLayout {
        FragLayout {
            len: self.len,
            row: self.col,
            col: self.row,
        }
    }
}

/// One matrix-core instruction: `f32` accumulators, `ab` inputs, executed by a whole wave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatrixInst {
    pub shape: MmaShape,
    /// Element type of A and B.
    pub ab: Scalar,
    /// The instruction's name in the target's assembly.
    pub name: &'static str,
    pub a: FragLayout,
    pub b: FragLayout,
    pub acc: FragLayout,
    /// Where the layouts come from.
    pub source: &'static str,
}

impl MatrixInst {
    pub fn layout(&self, operand: Operand) -> &FragLayout {
        match operand {
            Operand::A => &self.a,
            Operand::B => &self.b,
            Operand::Acc => &self.acc,
        }
    }

    /// The element type of `operand`'s fragments.
    pub fn elem(&self, operand: Operand) -> Scalar {
        match operand {
            Operand::A | Operand::B => self.ab,
            Operand::Acc => Scalar::F32,
        }
    }

    /// Where the elements of an `operand` (A or B) fragment sit among accumulator fragments of
    /// the same matrix, lane by lane, or `None` where the layouts do not line up. The
    /// accumulator tiles lie side by side along the operand's `k`: `k / n` of them along the
    /// columns for A, `k / m` along the rows for B. Entry `i` is `(tile, elem)`: element `i` of
    /// every lane's operand fragment is element `elem` of that lane's `tile`th accumulator.
    ///
    /// This is what lets attention keep its probabilities in registers: the scores `S = Q·Kᵀ`
    /// come out as accumulators and go straight into `P·V` as A (`mma.sync` m16n8k16: two
    /// n8 accumulators are one k16 A fragment), or — where only the transposed form lines up
    /// (MFMA, whose accumulator is its B layout) — `Sᵀ = K·Qᵀ` goes into `Oᵀ = Vᵀ·Pᵀ` as B.
    pub fn operand_from_acc(&self, operand: Operand, wave: u32) -> Option<Vec<(u32, u32)>> {
        let layout = self.layout(operand);
        let (m, n) = (self.shape.m, self.shape.n);
        (0..layout.len)
            .map(|e| {
                let mut found = None;
                for lane in 0..wave {
                    let (r, c) = layout.coord(lane, e);
                    let (tile, at) = match operand {
                        Operand::A => (c / n, (r, c % n)),
                        Operand::B => (r / m, (r % m, c)),
                        Operand::Acc => return None,
                    };
                    let elem = (0..self.acc.len).find(|&x| self.acc.coord(lane, x) == at)?;
                    if *found.get_or_insert((tile, elem)) != (tile, elem) {
                        return None;
                    }
                }
                found
            })
            .collect()
    }

    /// Multiply-adds of one instruction, times two.
    pub fn flops(&self) -> u64 {
        2 * self.shape.m as u64 * self.shape.n as u64 * self.shape.k as u64
    }
}

const fn t(div: u32, modulo: u32, mul: u32) -> Term {
    Term::new(div, modulo, mul)
}

// ---- gfx942 (CDNA3), wave 64 ------------------------------------------------------------------

const CDNA3_SOURCE: &str = "AMD Matrix Instruction Calculator 1.3.2 \
    (github.com/ROCm/amd_matrix_instruction_calculator), `--architecture cdna3 --instruction I \
    --{A,B,D}-matrix --matrix-layout`; AMD Instinct MI300 ISA, chapter 7 (matrix arithmetic)";

/// v_mfma_f32_16x16x16: A row = lane % 16, k = 4·(lane / 16) + i; B the transpose of that;
/// accumulator column = lane % 16, row = 4·(lane / 16) + i.
const MFMA_16X16X16_A: FragLayout = FragLayout {
    len: 4,
    row: Coord {
        lane: &[t(1, 16, 1)],
        elem: &[],
    },
    col: Coord {
        lane: &[t(16, 4, 4)],
        elem: &[t(1, 4, 1)],
    },
};
const MFMA_16X16X16_B: FragLayout = MFMA_16X16X16_A.transposed();
/// The 16x16 accumulator is laid out as the B operand.
const MFMA_16X16_ACC: FragLayout = MFMA_16X16X16_B;

/// v_mfma_f32_32x32x8: A row = lane % 32, k = 4·(lane / 32) + i; B the transpose; accumulator
/// column = lane % 32, row = 8·(i / 4) + 4·(lane / 32) + i % 4 (16 floats per lane).
const MFMA_32X32X8_A: FragLayout = FragLayout {
    len: 4,
    row: Coord {
        lane: &[t(1, 32, 1)],
        elem: &[],
    },
    col: Coord {
        lane: &[t(32, 2, 4)],
        elem: &[t(1, 4, 1)],
    },
};
const MFMA_32X32X8_B: FragLayout = MFMA_32X32X8_A.transposed();
const MFMA_32X32_ACC: FragLayout = FragLayout {
    len: 16,
    row: Coord {
        lane: &[t(32, 2, 4)],
        elem: &[t(4, 4, 8), t(1, 4, 1)],
    },
    col: Coord {
        lane: &[t(1, 32, 1)],
        elem: &[],
    },
};

/// gfx942's matrix instructions for f16/bf16 inputs, preferred first (16×16×16: a quarter of
/// the accumulator registers of 32×32×8 at the same rate, 2048 flops/CU/cycle). The bf16
/// forms are the `_1k` ones: the old bf16 encodings are rejected on gfx940+.
pub const GFX942_MATRIX: &[MatrixInst] = &[
    MatrixInst {
        shape: MmaShape::new(16, 16, 16),
        ab: Scalar::F16,
        name: "v_mfma_f32_16x16x16_f16",
        a: MFMA_16X16X16_A,
        b: MFMA_16X16X16_B,
        acc: MFMA_16X16_ACC,
        source: CDNA3_SOURCE,
    },
    MatrixInst {
        shape: MmaShape::new(16, 16, 16),
        ab: Scalar::BF16,
        name: "v_mfma_f32_16x16x16_bf16",
        a: MFMA_16X16X16_A,
        b: MFMA_16X16X16_B,
        acc: MFMA_16X16_ACC,
        source: CDNA3_SOURCE,
    },
    MatrixInst {
        shape: MmaShape::new(32, 32, 8),
        ab: Scalar::F16,
        name: "v_mfma_f32_32x32x8_f16",
        a: MFMA_32X32X8_A,
        b: MFMA_32X32X8_B,
        acc: MFMA_32X32_ACC,
        source: CDNA3_SOURCE,
    },
    MatrixInst {
        shape: MmaShape::new(32, 32, 8),
        ab: Scalar::BF16,
        name: "v_mfma_f32_32x32x8_bf16",
        a: MFMA_32X32X8_A,
        b: MFMA_32X32X8_B,
        acc: MFMA_32X32_ACC,
        source: CDNA3_SOURCE,
    },
];

// ---- sm_90 (Hopper), warp 32 ------------------------------------------------------------------

const PTX_SOURCE: &str = "PTX ISA 8.x, section 9.7.14.5.8 \"Matrix Fragments for \
    mma.m16n8k16 with floating point type\" (groupID = laneid >> 2, threadID_in_group = \
    laneid % 4)";

/// A (16 × 16): row = groupID + 8 for a2, a3, a6, a7; col = 2·threadID_in_group + (i & 1),
/// + 8 for a4..a7.
const MMA_M16N8K16_A: FragLayout = FragLayout {
    len: 8,
    row: Coord {
        lane: &[t(4, 8, 1)],
        elem: &[t(2, 2, 8)],
    },
    col: Coord {
        lane: &[t(1, 4, 2)],
        elem: &[t(1, 2, 1), t(4, 2, 8)],
    },
};
/// B (16 × 8): row = 2·threadID_in_group + (i & 1), + 8 for b2, b3; col = groupID.
const MMA_M16N8K16_B: FragLayout = FragLayout {
    len: 4,
    row: Coord {
        lane: &[t(1, 4, 2)],
        elem: &[t(1, 2, 1), t(2, 2, 8)],
    },
    col: Coord {
        lane: &[t(4, 8, 1)],
        elem: &[],
    },
};
/// C/D (16 × 8): row = groupID, + 8 for c2, c3; col = 2·threadID_in_group + (i & 1).
const MMA_M16N8_ACC: FragLayout = FragLayout {
    len: 4,
    row: Coord {
        lane: &[t(4, 8, 1)],
        elem: &[t(2, 2, 8)],
    },
    col: Coord {
        lane: &[t(1, 4, 2)],
        elem: &[t(1, 2, 1)],
    },
};

/// sm_90's warp-level matrix instructions (`mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}`).
pub const SM_90_MATRIX: &[MatrixInst] = &[
    MatrixInst {
        shape: MmaShape::new(16, 8, 16),
        ab: Scalar::F16,
        name: "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32",
        a: MMA_M16N8K16_A,
        b: MMA_M16N8K16_B,
        acc: MMA_M16N8_ACC,
        source: PTX_SOURCE,
    },
    MatrixInst {
        shape: MmaShape::new(16, 8, 16),
        ab: Scalar::BF16,
        name: "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32",
        a: MMA_M16N8K16_A,
        b: MMA_M16N8K16_B,
        acc: MMA_M16N8_ACC,
        source: PTX_SOURCE,
    },
];

// ---- sm_90a warpgroup matrix engine ------------------------------------------------------------

/// The warpgroup matrix engine of sm_90a (`wgmma.mma_async`): four consecutive warps multiply
/// `64 × 16` of A by `16 × n` of B into `64 × n` f32 accumulators, reading A and B from LDS
/// through matrix descriptors, asynchronously to the threads.
///
/// greta uses it with both operands K-major in LDS (rows of `row_bytes` = one K-tile, the
/// layout of activations `x[m, k]` and of GGUF weights `W[n, k]` alike) in the 128-byte
/// swizzle: the 16-byte chunks of row `r` XOR-permuted by `r % 8`, the pattern repeating every
/// 8 rows (1024 bytes, so tiles start at multiples of `align`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WarpgroupInst {
    pub m: u32,
    pub k: u32,
    /// `n` is a multiple of `n_step` up to `n_max`.
    pub n_step: u32,
    pub n_max: u32,
    /// Consecutive waves of one warpgroup (the first one's index a multiple of this).
    pub waves: u32,
    pub ab: &'static [Scalar],
    /// The accumulator layout over the warpgroup's threads, by thread index within the
    /// warpgroup; [`WarpgroupInst::acc`] gives it for one `n`.
    acc: FragLayout,
    /// Bytes of one row of an operand tile.
    pub row_bytes: u32,
    /// Alignment of an operand tile's start, in bytes.
    pub align: u32,
    /// The architecture the instruction needs.
    pub arch: &'static str,
    pub source: &'static str,
}

impl WarpgroupInst {
    /// The accumulator layout for an `n`-column instruction: `n / 2` floats per thread.
    pub fn acc(&self, n: u32) -> FragLayout {
        FragLayout {
            len: n / 2,
            ..self.acc
        }
    }

    pub fn valid_n(&self, n: u32) -> bool {
        n > 0 && n <= self.n_max && n % self.n_step == 0
    }

    /// Elements of `elem` in one operand tile row.
    pub fn row_elems(&self, elem: Scalar) -> u32 {
        self.row_bytes / elem.size_bytes()
    }

    /// The swizzle of an operand tile of `elem`: 16-byte chunks, period 8 rows.
    pub fn swizzle(&self, elem: Scalar) -> Swizzle {
        Swizzle {
            chunk: 16 / elem.size_bytes(),
            row_div: 1,
            period: 8,
        }
    }

    /// Threads of one warpgroup on a target of `wave_size`.
    pub fn threads(&self, wave_size: u32) -> u32 {
        self.waves * wave_size
    }
}

/// sm_90a's `wgmma.mma_async.m64nNk16.f32.{f16,bf16}`. Accumulator layout (PTX ISA 8.x,
/// section 9.7.15.5.1.1.1, "Matrix Fragments for wgmma.mma_async.m64nNk16", the accumulator
/// D figure): warp `w` of the warpgroup holds rows `16w..16w + 16`; within it, as
/// `mma.m16n8`'s accumulator repeated every 8 columns: element `i` of lane `l` is row
/// `16w + l / 4 + 8·((i / 2) % 2)`, column `8·(i / 4) + 2·(l % 4) + i % 2`. Shared-memory
/// layouts and descriptors: section 9.7.15.5.1.2.
pub const SM_90_WARPGROUP: WarpgroupInst = WarpgroupInst {
    m: 64,
    k: 16,
    n_step: 8,
    n_max: 256,
    waves: 4,
    ab: &[Scalar::F16, Scalar::BF16],
    acc: FragLayout {
        len: 0,
        row: Coord {
            lane: &[t(32, 4, 16), t(4, 8, 1)],
            elem: &[t(2, 2, 8)],
        },
        col: Coord {
            lane: &[t(1, 4, 2)],
            elem: &[t(4, 1 << 16, 8), t(1, 2, 1)],
        },
    },
    row_bytes: 128,
    align: 1024,
    arch: "sm_90a",
    source: "PTX ISA 8.x, sections 9.7.15.5.1.1.1 (accumulator fragments) and 9.7.15.5.1.2 \
             (shared memory layouts, 128-byte swizzle, matrix descriptors)",
};
