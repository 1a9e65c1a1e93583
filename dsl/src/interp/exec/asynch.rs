//! Asynchronous work on the interpreter: global→LDS copies (`AsyncCopy`) and the warpgroup
//! matrix engine (`WarpgroupMma`), with the orderings their targets require checked, because on
//! a GPU each mistake is silent corruption:
//!
//! - A copy reads its source when it is issued and lands in LDS when this thread's
//!   `async_wait` covers its group; until then its destination elements are *in flight*:
//!   reading one (a missing wait or barrier) or storing to one (a race with the copy) is an
//!   error.
//! - A `WarpgroupMma` reads its LDS tiles and computes when it is issued, but its accumulators
//!   are *pending* until a `wgmma_wait` of the warpgroup covers its group: reading or writing
//!   them from ordinary code before is an error (the next `WarpgroupMma` may accumulate into
//!   them). The LDS it read stays *in use* until then: storing there, or landing a copy there,
//!   is an error.
//! - LDS written by ordinary stores or landed copies must be fenced (`fence_async_lds`, by the
//!   writing thread, after the write) before the engine reads it; an unfenced element read by
//!   a `WarpgroupMma` is an error naming the writer.
//!
//! Tracking is allocated only for kernels that use asynchronous statements.

use super::{Exec, R};
use crate::interp::error::InterpError;
use crate::interp::Arg;
use crate::ir::{FragPlace, FragRef, Kernel, Memory, Scalar, Stmt, SyncOp};
use crate::target::WarpgroupInst;
use half::{bf16, f16};
use std::collections::VecDeque;

/// A copy waiting for its thread's `async_wait`.
struct Copy {
    shared: usize,
    index: usize,
    bits: Vec<u32>,
}

/// What one in-flight `WarpgroupMma` holds: accumulator elements (array, per-thread element
/// offsets, threads) and the LDS elements it read.
#[derive(Default)]
struct MmaGroup {
    acc: Vec<(usize, usize, usize, usize)>,
    lds: Vec<(usize, usize)>,
}

/// Per-array and per-thread bookkeeping for asynchronous work.
pub(super) struct Hazards {
    /// Per LDS array, per element: copies in flight into it.
    copies_in: Vec<Vec<u16>>,
    /// Per LDS array, per element: in-flight `WarpgroupMma`s that read it.
    mma_readers: Vec<Vec<u16>>,
    /// Per LDS array, per element: the thread (+1) that last wrote it and its fence epoch then.
    writer: Vec<Vec<(u32, u32)>>,
    /// Per local array, per thread × element: a pending accumulator.
    pending_acc: Vec<Vec<bool>>,
    /// Per thread: fences executed so far.
    epoch: Vec<u32>,
    /// Per thread: copies issued since the last commit, and the committed groups.
    open: Vec<Vec<Copy>>,
    committed: Vec<VecDeque<Vec<Copy>>>,
    /// Per warpgroup: `WarpgroupMma`s since the last commit, and the committed groups.
    mma_open: Vec<MmaGroup>,
    mma_committed: Vec<VecDeque<MmaGroup>>,
}

fn uses_async(block: &[Stmt]) -> bool {
    block.iter().any(|s| match s {
        Stmt::AsyncCopy { .. } | Stmt::WarpgroupMma { .. } => true,
        Stmt::If {
            then, otherwise, ..
        } => uses_async(then) || uses_async(otherwise),
        Stmt::For { body, .. } | Stmt::While { body, .. } => uses_async(body),
        _ => false,
    })
}

impl Hazards {
    pub(super) fn for_kernel(k: &Kernel, threads: usize) -> Option<Hazards> {
        if !uses_async(&k.body) {
            return None;
        }
        let warpgroups = threads.div_ceil(128).max(1);
        Some(Hazards {
            copies_in: k.shared.iter().map(|a| vec![0; a.len as usize]).collect(),
            mma_readers: k.shared.iter().map(|a| vec![0; a.len as usize]).collect(),
            writer: k
                .shared
                .iter()
                .map(|a| vec![(0, 0); a.len as usize])
                .collect(),
            pending_acc: k
                .locals
                .iter()
                .map(|a| vec![false; a.len as usize * threads])
                .collect(),
            epoch: vec![0; threads],
            open: (0..threads).map(|_| Vec::new()).collect(),
            committed: (0..threads).map(|_| VecDeque::new()).collect(),
            mma_open: (0..warpgroups).map(|_| MmaGroup::default()).collect(),
            mma_committed: (0..warpgroups).map(|_| VecDeque::new()).collect(),
        })
    }

    pub(super) fn reset(&mut self) {
        for v in &mut self.copies_in {
            v.fill(0);
        }
        for v in &mut self.mma_readers {
            v.fill(0);
        }
        for v in &mut self.writer {
            v.fill((0, 0));
        }
        for v in &mut self.pending_acc {
            v.fill(false);
        }
        self.epoch.fill(0);
        self.open.iter_mut().for_each(Vec::clear);
        self.committed.iter_mut().for_each(VecDeque::clear);
        self.mma_open
            .iter_mut()
            .for_each(|g| *g = MmaGroup::default());
        self.mma_committed.iter_mut().for_each(VecDeque::clear);
    }

    /// Why thread `t` may not read LDS element `e` of array `s` now, if it may not.
    pub(super) fn lds_read(&self, s: usize, e: usize) -> Option<&'static str> {
        (self.copies_in[s][e] > 0).then_some(
            "an asynchronous copy into it is still in flight (a missing async_wait, or a \
             barrier after it)",
        )
    }

    /// Why element `e` of LDS array `s` may not be overwritten now, if it may not.
    pub(super) fn lds_write(&self, s: usize, e: usize) -> Option<&'static str> {
        if self.copies_in[s][e] > 0 {
            Some("an asynchronous copy into it is still in flight")
        } else if self.mma_readers[s][e] > 0 {
            Some("a wgmma that reads it has not been waited for (wgmma_wait)")
        } else {
            None
        }
    }

    /// Records that thread `t` wrote LDS element `e` of array `s`.
    pub(super) fn lds_written(&mut self, s: usize, e: usize, t: usize) {
        self.writer[s][e] = (t as u32 + 1, self.epoch[t]);
    }

    /// Whether element `i` (thread-major index) of local array `l` is a pending accumulator.
    pub(super) fn acc_pending(&self, l: usize, i: usize) -> bool {
        self.pending_acc[l][i]
    }
}

impl<'k> Exec<'k, '_, '_> {
    fn hazard(&self, what: String, t: usize) -> InterpError {
        InterpError::Async {
            kernel: self.kname(),
            block: self.block(),
            thread: self.thread(t),
            detail: what,
        }
    }

    pub(super) fn exec_async_copy(
        &mut self,
        dst: Memory,
        dst_index: crate::ir::ExprId,
        src: Memory,
        src_index: crate::ir::ExprId,
        lanes: u8,
        pred: crate::ir::ExprId,
        mask: &[bool],
    ) -> R<()> {
        let (dlen, _) = self.mem_info(dst)?;
        let (slen, _) = self.mem_info(src)?;
        let (di, dsigned) = self.eval_index(dst_index, "async copy destination", mask)?;
        let (si, ssigned) = self.eval_index(src_index, "async copy source", mask)?;
        let p = self.eval_ty(pred, crate::ir::Type::BOOL, "async copy predicate", mask)?;
        if let Some(e) = self.addresses(dst, "async copy", &di, dsigned, lanes, dlen, mask) {
            return Err(e);
        }
        let dst_at = std::mem::take(&mut self.at);
        // The source is read only where the predicate holds (zero-fill elsewhere, where its
        // address need not be valid).
        let smask: Vec<bool> = mask.iter().zip(&p).map(|(&m, &p)| m && p != 0).collect();
        if let Some(e) = self.addresses(src, "async copy", &si, ssigned, lanes, slen, &smask) {
            self.at = dst_at;
            return Err(e);
        }
        let src_at = std::mem::take(&mut self.at);
        let Memory::Shared(sid) = dst else {
            return Err(self.bad("async copy into memory that is not LDS"));
        };
        let Memory::Global(pid) = src else {
            return Err(self.bad("async copy from memory that is not global"));
        };
        let mut src_iter = src_at.iter().peekable();
        for &(t, i) in &dst_at {
            let t = t as usize;
            let mut bits = vec![0u32; lanes as usize];
            if src_iter.peek().is_some_and(|&&(st, _)| st as usize == t) {
                let (_, si) = *src_iter.next().expect("peeked");
                let b = match &self.args[pid.0 as usize] {
                    Arg::Read(b) => &**b,
                    Arg::Write(b) => &**b,
                    Arg::Value(_) => return Err(self.bad("async copy from a value")),
                };
                for (l, slot) in bits.iter_mut().enumerate() {
                    *slot = b.get_bits(si as usize + l);
                }
            }
            let h = self
                .hazards
                .as_mut()
                .expect("kernels with async copies track hazards");
            for l in 0..lanes as usize {
                let e = i as usize + l;
                if let Some(why) = h.lds_write(sid.0 as usize, e) {
                    let name = self.k.memory_name(dst).to_string();
                    return Err(self.hazard(
                        format!("async copy into `{name}`[{e}], which is busy: {why}"),
                        t,
                    ));
                }
            }
            let h = self.hazards.as_mut().expect("tracked");
            for l in 0..lanes as usize {
                h.copies_in[sid.0 as usize][i as usize + l] += 1;
            }
            h.open[t].push(Copy {
                shared: sid.0 as usize,
                index: i as usize,
                bits,
            });
        }
        self.at = dst_at;
        for c in [di, si, p] {
            self.give(c);
        }
        Ok(())
    }

    /// Lands a copy: its elements written, initialised, written by `t`, no longer in flight.
    fn land(&mut self, c: Copy, t: usize) {
        let h = self.hazards.as_mut().expect("tracked");
        for (l, &b) in c.bits.iter().enumerate() {
            let e = c.index + l;
            h.copies_in[c.shared][e] -= 1;
            h.lds_written(c.shared, e, t);
            let m = &mut self.shared[c.shared];
            m.data[e] = b;
            m.init[e] = true;
        }
    }

    pub(super) fn exec_sync(&mut self, op: SyncOp, mask: &[bool]) -> R<()> {
        if self.hazards.is_none() {
            return Ok(()); // nothing asynchronous was ever issued
        }
        match op {
            SyncOp::AsyncCommit => {
                let h = self.hazards.as_mut().expect("tracked");
                for t in (0..self.n).filter(|&t| mask[t]) {
                    let group = std::mem::take(&mut h.open[t]);
                    h.committed[t].push_back(group);
                }
            }
            SyncOp::AsyncWait(keep) => {
                for t in (0..self.n).filter(|&t| mask[t]) {
                    loop {
                        let h = self.hazards.as_mut().expect("tracked");
                        if h.committed[t].len() <= keep as usize {
                            break;
                        }
                        let group = h.committed[t].pop_front().expect("longer than keep");
                        for c in group {
                            self.land(c, t);
                        }
                    }
                }
            }
            SyncOp::ProxyFence => {
                let h = self.hazards.as_mut().expect("tracked");
                for t in (0..self.n).filter(|&t| mask[t]) {
                    h.epoch[t] += 1;
                }
            }
            SyncOp::MmaFence => {}
            SyncOp::MmaCommit | SyncOp::MmaWait(_) => {
                let wg = self.warpgroup_inst()?;
                for w0 in self.full_groups("wgmma", wg.threads(self.wave as u32) as usize, mask)? {
                    let g = w0 / 128;
                    let h = self.hazards.as_mut().expect("tracked");
                    match op {
                        SyncOp::MmaCommit => {
                            let group = std::mem::take(&mut h.mma_open[g]);
                            h.mma_committed[g].push_back(group);
                        }
                        SyncOp::MmaWait(keep) => {
                            while h.mma_committed[g].len() > keep as usize {
                                let group = h.mma_committed[g].pop_front().expect("longer");
                                for (l, off, len, threads) in group.acc {
                                    let alen = self.locals[l].len;
                                    for t in w0..w0 + threads {
                                        for e in off..off + len {
                                            h.pending_acc[l][t * alen + e] = false;
                                        }
                                    }
                                }
                                for (s, e) in group.lds {
                                    h.mma_readers[s][e] -= 1;
                                }
                            }
                        }
                        _ => unreachable!("matched above"),
                    }
                }
            }
        }
        Ok(())
    }

    fn warpgroup_inst(&self) -> R<WarpgroupInst> {
        self.k.target.warpgroup.ok_or_else(|| {
            self.bad(format!(
                "{} has no warpgroup matrix engine",
                self.k.target.name
            ))
        })
    }

    /// Reads an operand element of a `WarpgroupMma` from LDS, checking it may be read by the
    /// engine now.
    fn engine_read(&self, s: usize, e: usize, name: &str, t: usize) -> R<u32> {
        let m = &self.shared[s];
        if e >= m.len {
            return Err(InterpError::OutOfBounds {
                kernel: self.kname(),
                access: "wgmma operand read",
                memory: name.to_string(),
                index: e as i64,
                lanes: 1,
                len: m.len,
                block: self.block(),
                thread: self.thread(t),
            });
        }
        let h = self.hazards.as_ref().expect("tracked");
        if let Some(why) = h.lds_read(s, e) {
            return Err(self.hazard(format!("wgmma reads `{name}`[{e}], but {why}"), t));
        }
        if !m.init[e] {
            return Err(self.uninit(Memory::Shared(crate::ir::SharedId(s as u32)), e, t as u32));
        }
        let (writer, epoch) = h.writer[s][e];
        if writer > 0 && h.epoch[writer as usize - 1] == epoch {
            return Err(self.hazard(
                format!(
                    "wgmma reads `{name}`[{e}], written by thread {} without a fence_async_lds \
                     after the write",
                    self.thread(writer as usize - 1)
                ),
                t,
            ));
        }
        Ok(m.data[e])
    }

    pub(super) fn exec_warpgroup_mma(
        &mut self,
        n: u32,
        acc: FragRef,
        a: &FragPlace,
        b: &FragPlace,
        mask: &[bool],
    ) -> R<()> {
        let wg = self.warpgroup_inst()?;
        let threads = wg.threads(self.wave as u32) as usize;
        let groups = self.full_groups("wgmma", threads, mask)?;
        let layout = wg.acc(n);
        let (m, k, nn) = (wg.m as usize, wg.k as usize, n as usize);
        let mut places = Vec::new();
        for p in [a, b] {
            let mut cols = Vec::new();
            for e in [p.tile.base, p.tile.stride, p.row, p.col] {
                cols.push(self.eval_ty(e, crate::ir::Type::U32, "wgmma tile place", mask)?);
            }
            places.push(cols);
        }
        let mut am = vec![0f32; m * k];
        let mut bm = vec![0f32; k * nn];
        let mut cm = vec![0f32; m * nn];
        for &w0 in &groups {
            let mut read = Vec::new();
            for (which, (p, cols)) in [a, b].into_iter().zip(&places).enumerate() {
                let Memory::Shared(sid) = p.tile.mem else {
                    return Err(self.bad("a wgmma operand outside LDS"));
                };
                let s = sid.0 as usize;
                let name = self.k.memory_name(p.tile.mem).to_string();
                let elem = self.k.shared[s].elem;
                let [base, stride, row, col] = [0, 1, 2, 3].map(|i| cols[i][w0]);
                if let Some(t) =
                    (w0..w0 + threads).find(|&t| (0..4).any(|i| cols[i][t] != cols[i][w0]))
                {
                    return Err(self.hazard(
                        "a wgmma tile place differs between threads of the warpgroup".into(),
                        t,
                    ));
                }
                let row_elems = wg.row_elems(elem);
                let atom = wg.align / elem.size_bytes();
                if stride != row_elems || base % atom != 0 || row % 8 != 0 || col % wg.k != 0 {
                    return Err(InterpError::FragmentPlace {
                        kernel: self.kname(),
                        op: "wgmma",
                        memory: name,
                        block: self.block(),
                        thread: self.thread(w0),
                        detail: format!(
                            "the tile needs rows of {row_elems} elements (stride {stride}), a \
                             base at a multiple of {atom} elements (base {base}), a row at a \
                             multiple of 8 (row {row}) and a column at a multiple of {} (column \
                             {col})",
                            wg.k
                        ),
                    });
                }
                let (rows, cols_n) = if which == 0 { (m, k) } else { (nn, k) };
                for r in 0..rows {
                    for c in 0..cols_n {
                        let (mr, mc) = (row as usize + r, col as usize + c);
                        let e = base as usize
                            + mr * stride as usize
                            + p.tile.swizzle.apply(mr as u32, mc as u32) as usize;
                        let bits = self.engine_read(s, e, &name, w0)?;
                        read.push((s, e));
                        let v = match elem {
                            Scalar::F16 => f16::from_bits(bits as u16).to_f32(),
                            _ => bf16::from_bits(bits as u16).to_f32(),
                        };
                        if which == 0 {
                            am[r * k + c] = v;
                        } else {
                            bm[c * nn + r] = v; // B stored n × k
                        }
                    }
                }
            }
            // The accumulators: the warpgroup's threads' elements by the layout.
            let l = acc.local.0 as usize;
            let alen = self.locals[l].len;
            let len = layout.len as usize;
            for t in 0..threads {
                for e in 0..len {
                    let off = (w0 + t) * alen + acc.offset as usize + e;
                    if !self.locals[l].init[off] {
                        return Err(self.uninit(
                            Memory::Local(acc.local),
                            acc.offset as usize + e,
                            (w0 + t) as u32,
                        ));
                    }
                    let (r, c) = layout.coord(t as u32, e as u32);
                    cm[r as usize * nn + c as usize] = f32::from_bits(self.locals[l].data[off]);
                }
            }
            for i in 0..m {
                for j in 0..nn {
                    let mut s = cm[i * nn + j];
                    for kk in 0..k {
                        s += am[i * k + kk] * bm[kk * nn + j];
                    }
                    cm[i * nn + j] = s;
                }
            }
            let h = self.hazards.as_mut().expect("tracked");
            for t in 0..threads {
                for e in 0..len {
                    let off = (w0 + t) * alen + acc.offset as usize + e;
                    let (r, c) = layout.coord(t as u32, e as u32);
                    self.locals[l].data[off] = cm[r as usize * nn + c as usize].to_bits();
                    h.pending_acc[l][off] = true;
                }
            }
            let g = w0 / 128;
            for &(s, e) in &read {
                h.mma_readers[s][e] += 1;
            }
            h.mma_open[g]
                .acc
                .push((l, acc.offset as usize, len, threads));
            h.mma_open[g].lds.extend(read);
        }
        for cols in places {
            for c in cols {
                self.give(c);
            }
        }
        Ok(())
    }
}
