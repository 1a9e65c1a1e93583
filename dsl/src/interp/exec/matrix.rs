//! Matrix statements on the interpreter: `Mma` and fragment loads and stores, executed by the
//! kernel target's fragment layouts (the same tables the front end and the code generator use;
//! `dsl/tests/layouts.rs` pins them to their sources).
//!
//! All three are wave-collective: every lane of a wave that reaches one must be active and
//! present (a block whose size is not a multiple of the wave size cannot use them in its last
//! wave). A fragment access's tile base, stride, row and column must be the same on every lane
//! of the wave and multiples of [`FRAGMENT_ALIGN`] (base, stride and the memory column), which
//! is what lets NVIDIA's `ldmatrix` implement it.
//!
//! `Mma` computes each `d[i][j] = c[i][j] + Σ_k a[i][k] · b[k][j]` in f32, adding the products
//! in order of `k` (products of f16 or bf16 values are exact in f32). Hardware adds in its own
//! order, so results agree with a GPU to f32 rounding, not bit for bit.

use super::{Exec, R};
use crate::interp::error::InterpError;
use crate::interp::Arg;
use crate::ir::{FragPlace, FragRef, Memory, MmaShape, Operand, Scalar, FRAGMENT_ALIGN};
use crate::target::{FragLayout, MatrixInst};
use half::{bf16, f16};

fn to_f32(s: Scalar, bits: u32) -> f32 {
    match s {
        Scalar::F16 => f16::from_bits(bits as u16).to_f32(),
        Scalar::BF16 => bf16::from_bits(bits as u16).to_f32(),
        _ => f32::from_bits(bits),
    }
}

impl<'k> Exec<'k, '_, '_> {
    /// The first thread of every wave that has an active thread; an error if such a wave is not
    /// entirely active and present.
    fn full_waves(&self, op: &'static str, mask: &[bool]) -> R<Vec<usize>> {
        self.full_groups(op, self.wave, mask)
    }

    /// The first thread of every group of `ws` consecutive threads (a wave, a warpgroup) that
    /// has an active thread; an error if such a group is not entirely active and present.
    pub(super) fn full_groups(&self, op: &'static str, ws: usize, mask: &[bool]) -> R<Vec<usize>> {
        let n = self.n;
        let mut waves = Vec::new();
        for (w, base) in (0..n).step_by(ws).enumerate() {
            let end = (base + ws).min(n);
            let Some(first) = (base..end).find(|&t| mask[t]) else {
                continue;
            };
            let missing = if end - base < ws {
                Some((first, "is in a wave (or warpgroup) that the block fills only partly (block size not a multiple of it)"))
            } else {
                (base..end).find(|&t| !mask[t]).map(|t| {
                    let why = if self.exited[t] {
                        "has returned"
                    } else {
                        "is not active here"
                    };
                    (t, why)
                })
            };
            if let Some((t, why)) = missing {
                return Err(InterpError::WaveCollective {
                    kernel: self.kname(),
                    op,
                    block: self.block(),
                    wave: w,
                    thread: self.thread(t),
                    why,
                });
            }
            waves.push(base);
        }
        Ok(waves)
    }

    fn inst(&self, shape: MmaShape, ab: Option<Scalar>) -> R<&'static MatrixInst> {
        let t = self.k.target;
        let found = match ab {
            Some(ab) => t.mma(shape, ab),
            None => t.matrix.iter().find(|i| i.shape == shape),
        };
        found.ok_or_else(|| self.bad(format!("{} has no {shape} instruction", t.name)))
    }

    fn local_elem(&self, f: FragRef) -> R<Scalar> {
        self.k
            .locals
            .get(f.local.0 as usize)
            .map(|a| a.elem)
            .ok_or_else(|| self.bad(format!("local array {} does not exist", f.local.0)))
    }

    /// Reads fragment `f` of the wave starting at thread `base` into a `rows × cols` matrix.
    fn gather_fragment(
        &self,
        f: FragRef,
        layout: &FragLayout,
        base: usize,
        cols: usize,
        out: &mut [f32],
    ) -> R<()> {
        let elem = self.local_elem(f)?;
        let m = &self.locals[f.local.0 as usize];
        for lane in 0..self.wave as u32 {
            let t = base + lane as usize;
            for i in 0..layout.len {
                let e = f.offset as usize + i as usize;
                let off = t * m.len + e;
                if e >= m.len {
                    return Err(self.bad(format!("fragment element {e} past its array")));
                }
                if !m.init[off] {
                    return Err(self.uninit(Memory::Local(f.local), e, t as u32));
                }
                let (r, c) = layout.coord(lane, i);
                out[r as usize * cols + c as usize] = to_f32(elem, m.data[off]);
            }
        }
        Ok(())
    }

    pub(super) fn exec_mma(
        &mut self,
        shape: MmaShape,
        a: FragRef,
        b: FragRef,
        c: FragRef,
        d: FragRef,
        mask: &[bool],
    ) -> R<()> {
        let inst = self.inst(shape, Some(self.local_elem(a)?))?;
        let (m, n, k) = (shape.m as usize, shape.n as usize, shape.k as usize);
        let mut am = vec![0f32; m * k];
        let mut bm = vec![0f32; k * n];
        let mut cm = vec![0f32; m * n];
        for base in self.full_waves("mma", mask)? {
            self.gather_fragment(a, &inst.a, base, k, &mut am)?;
            self.gather_fragment(b, &inst.b, base, n, &mut bm)?;
            self.gather_fragment(c, &inst.acc, base, n, &mut cm)?;
            for i in 0..m {
                for j in 0..n {
                    let mut acc = cm[i * n + j];
                    for kk in 0..k {
                        acc += am[i * k + kk] * bm[kk * n + j];
                    }
                    cm[i * n + j] = acc;
                }
            }
            let dl = &mut self.locals[d.local.0 as usize];
            for lane in 0..self.wave as u32 {
                let t = base + lane as usize;
                for e in 0..inst.acc.len {
                    let (r, col) = inst.acc.coord(lane, e);
                    let off = t * dl.len + d.offset as usize + e as usize;
                    dl.data[off] = cm[r as usize * n + col as usize].to_bits();
                    dl.init[off] = true;
                }
            }
        }
        Ok(())
    }

    pub(super) fn exec_fragment(
        &mut self,
        shape: MmaShape,
        operand: Operand,
        frag: FragRef,
        place: &FragPlace,
        store: bool,
        mask: &[bool],
    ) -> R<()> {
        let elem = self.local_elem(frag)?;
        let ab = (operand != Operand::Acc).then_some(elem);
        let inst = self.inst(shape, ab)?;
        let layout = *inst.layout(operand);
        let tile = place.tile;
        let op: &'static str = if store {
            "fragment store"
        } else {
            "fragment load"
        };
        let waves = self.full_waves(op, mask)?;
        let mut cols = Vec::new();
        for e in [tile.base, tile.stride, place.row, place.col] {
            cols.push(self.eval_ty(e, crate::ir::Type::U32, "fragment place", mask)?);
        }
        let (len, mem_elem) = self.mem_info(tile.mem)?;
        if mem_elem != elem {
            return Err(self.bad(format!(
                "{op} of {elem} fragments from `{}` of {mem_elem}",
                self.k.memory_name(tile.mem)
            )));
        }
        for &w0 in &waves {
            let [base, stride, row, col] = [0, 1, 2, 3].map(|i| cols[i][w0]);
            for (i, what) in ["base", "stride", "row", "column"].iter().enumerate() {
                if let Some(t) = (w0..w0 + self.wave).find(|&t| cols[i][t] != cols[i][w0]) {
                    return Err(InterpError::FragmentPlace {
                        kernel: self.kname(),
                        op,
                        memory: self.k.memory_name(tile.mem).to_string(),
                        block: self.block(),
                        thread: self.thread(t),
                        detail: format!(
                            "its tile {what} is {} here but {} on the wave's first lane; it must \
                             be the same on every lane",
                            cols[i][t], cols[i][w0]
                        ),
                    });
                }
            }
            // `col` is the tile (memory) column whether or not the fragment is transposed.
            let aligned = |v: u32| v % FRAGMENT_ALIGN == 0;
            if !aligned(base) || !aligned(stride) || !aligned(col) {
                return Err(InterpError::FragmentPlace {
                    kernel: self.kname(),
                    op,
                    memory: self.k.memory_name(tile.mem).to_string(),
                    block: self.block(),
                    thread: self.thread(w0),
                    detail: format!(
                        "tile base {base}, stride {stride} and column {col} must be multiples \
                         of {FRAGMENT_ALIGN}"
                    ),
                });
            }
            for lane in 0..self.wave as u32 {
                let t = w0 + lane as usize;
                for i in 0..layout.len {
                    let (r, c) = layout.coord(lane, i);
                    let (mr, mc) = if place.transposed {
                        (row as u64 + c as u64, col as u64 + r as u64)
                    } else {
                        (row as u64 + r as u64, col as u64 + c as u64)
                    };
                    let sw = tile.swizzle.apply(mr as u32, mc as u32) as u64;
                    let index = base as u64 + mr * stride as u64 + sw;
                    if index >= len as u64 {
                        return Err(InterpError::OutOfBounds {
                            kernel: self.kname(),
                            access: op,
                            memory: self.k.memory_name(tile.mem).to_string(),
                            index: index as i64,
                            lanes: 1,
                            len,
                            block: self.block(),
                            thread: self.thread(t),
                        });
                    }
                    let index = index as usize;
                    let e = frag.offset as usize + i as usize;
                    let fl_len = self.locals[frag.local.0 as usize].len;
                    if e >= fl_len {
                        return Err(self.bad(format!("fragment element {e} past its array")));
                    }
                    let off = t * fl_len + e;
                    if store {
                        let fl = &self.locals[frag.local.0 as usize];
                        if !fl.init[off] {
                            return Err(self.uninit(Memory::Local(frag.local), e, t as u32));
                        }
                        let bits = fl.data[off];
                        match tile.mem {
                            Memory::Global(p) => {
                                self.writable(tile.mem, p.0)?.set_bits(index, bits)
                            }
                            Memory::Shared(s) => {
                                let sm = &mut self.shared[s.0 as usize];
                                sm.data[index] = bits;
                                sm.init[index] = true;
                            }
                            Memory::Local(_) => {
                                return Err(self.bad("a fragment stored to a local array"))
                            }
                        }
                    } else {
                        let bits = match tile.mem {
                            Memory::Global(p) => match &self.args[p.0 as usize] {
                                Arg::Read(b) => b.get_bits(index),
                                Arg::Write(b) => b.get_bits(index),
                                Arg::Value(_) => return Err(self.bad("fragment load from a value")),
                            },
                            Memory::Shared(s) => {
                                let sm = &self.shared[s.0 as usize];
                                if !sm.init[index] {
                                    return Err(self.uninit(tile.mem, index, t as u32));
                                }
                                sm.data[index]
                            }
                            Memory::Local(_) => {
                                return Err(self.bad("a fragment loaded from a local array"))
                            }
                        };
                        let fl = &mut self.locals[frag.local.0 as usize];
                        fl.data[off] = bits;
                        fl.init[off] = true;
                    }
                }
            }
        }
        for c in cols {
            self.give(c);
        }
        Ok(())
    }
}
