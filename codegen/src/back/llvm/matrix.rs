//! Matrix statements in LLVM IR: `Mma`, fragment loads and stores, asynchronous copies and the
//! warpgroup engine — the HIP backend's lowering (`back::hip::matrix`), instruction for
//! instruction, written as LLVM IR.
//!
//! - `Mma` loads the fragments' elements from their register arrays (entry-block allocas, at
//!   constant offsets, so SROA keeps them in registers), builds the operand vectors and calls
//!   `llvm.amdgcn.mfma.*` on gfx942 (bf16 as `<4 x i16>`, the `_1k` forms), or inline-PTX
//!   `mma.sync` on sm_90 with the multiplicands packed as 32-bit registers of two elements
//!   (the lower index in the low half); the results are stored back.
//! - A fragment access computes each lane's element addresses from the instruction's layout
//!   (the table the interpreter executes), a run of elements contiguous in memory and aligned
//!   being one vector access; on sm_90, the fragments `ldmatrix` can load (see [`ldmatrix`])
//!   are one `ldmatrix.sync.aligned.m8n8.x{2,4}[.trans].shared.b16`.
//! - Asynchronous copies are `cp.async` on sm_90 (zero-filled through a source size of 0),
//!   and a predicated plain copy elsewhere; the sync operations are the PTX instructions the
//!   HIP path writes, with the same "accumulator fences" around the warpgroup engine.
//!
//! Inline assembly follows clang's CUDA output: calls are `convergent nounwind`; `mma.sync`
//! (which touches no memory) is `memory(none)` without side effects, the rest `sideeffect`.

use greta_dsl::ir::{
    ExprId, FragPlace, FragRef, LocalId, Memory, MmaShape, Operand, Scalar, SyncOp, Type,
};
use greta_dsl::target::{Coord, FragLayout, MatrixInst};
use greta_dsl::Family as GpuFamily;

use super::{llvm_scalar, llvm_type, Val, Writer, R};
use crate::back::fragment::{ldmatrix, runs, Ldmatrix};

/// The PTX name of a 16-bit multiplicand type.
fn ptx_type(s: Scalar) -> &'static str {
    match s {
        Scalar::BF16 => "bf16",
        _ => "f16",
    }
}

/// `{ t, t, ... }` (`n` times), or `t` itself for one: an inline-asm call's result type.
fn results(t: &str, n: u32) -> String {
    if n == 1 {
        t.to_string()
    } else {
        format!("{{ {} }}", vec![t; n as usize].join(", "))
    }
}

/// `$first,$first+1,...` (`n` of them).
fn operands(first: u32, n: u32) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The constant bits of sm_90a's wgmma matrix descriptor for a K-major operand in the 128-byte
/// swizzle (the HIP prelude's `greta_wgmma_desc`): leading byte offset 16 >> 4 in bits 16-29,
/// stride byte offset 1024 >> 4 in bits 32-45, swizzle mode 1 in bits 62-63.
const WGMMA_DESC_BITS: u64 = (1 << 16) | ((1024 >> 4) << 32) | (1 << 62);

impl Writer<'_> {
    fn u32t() -> Type {
        Type::scalar(Scalar::U32)
    }

    /// `a op b` on 32-bit integers (a few trivial cases folded, to keep the text readable).
    fn int_op(&mut self, op: &str, a: &Val, b: &str) -> Val {
        let t = Self::u32t();
        match (op, b) {
            ("add" | "xor" | "or" | "shl" | "lshr", "0") | ("mul" | "udiv", "1") => {
                return Val::new(a.text.clone(), t)
            }
            _ => {}
        }
        if a.text == "0" && matches!(op, "add" | "xor" | "or") {
            return Val::new(b, t);
        }
        self.assign("t", format!("{op} i32 {}, {b}", a.text), t)
    }

    /// A 32-bit integer operand of a fragment place (the HIP path's `const u32`).
    fn place_value(&mut self, id: ExprId) -> R<Val> {
        let v = self.expr(id)?;
        match v.ty {
            Type {
                scalar: Scalar::I32 | Scalar::U32,
                lanes: 1,
            } => Ok(Val::new(v.text, Self::u32t())),
            t => self.err(format!("a tile place of type {t} (must be u32 or i32)")),
        }
    }

    /// A pointer to element `i` of the register array `local`.
    fn local_ptr(&mut self, local: LocalId, i: u32) -> R<String> {
        let elem = self.mem_elem(Memory::Local(local))?;
        let (base, space) = self.base(Memory::Local(local), true)?;
        let stem = format!("{}.ptr", self.k.locals[local.0 as usize].name);
        let pt = Self::ptr_type(space);
        Ok(self
            .assign(
                &stem,
                format!(
                    "getelementptr inbounds {}, {pt} {base}, i32 {i}",
                    llvm_scalar(elem)
                ),
                Self::u32t(),
            )
            .text)
    }

    /// Element `i` of the register array `local`.
    fn local_load(&mut self, local: LocalId, i: u32) -> R<Val> {
        let elem = self.mem_elem(Memory::Local(local))?;
        let p = self.local_ptr(local, i)?;
        let pt = Self::ptr_type(self.fam.alloca_as);
        let stem = self.k.locals[local.0 as usize].name.clone();
        Ok(self.assign(
            &stem,
            format!(
                "load {}, {pt} {p}, align {}",
                llvm_scalar(elem),
                elem.size_bytes()
            ),
            Type::scalar(elem),
        ))
    }

    fn local_store(&mut self, local: LocalId, i: u32, v: &Val) -> R<()> {
        let elem = self.mem_elem(Memory::Local(local))?;
        let p = self.local_ptr(local, i)?;
        let pt = Self::ptr_type(self.fam.alloca_as);
        self.line(&format!(
            "store {} {}, {pt} {p}, align {}",
            llvm_scalar(elem),
            v.text,
            elem.size_bytes()
        ));
        Ok(())
    }

    /// The 32-bit shared-window address of an LDS array (NVPTX: an address-space-3 pointer as
    /// i32 is its offset in the window, what `ldmatrix`, `cp.async` and descriptors take).
    fn lds_address(&mut self, mem: Memory, write: bool) -> R<Val> {
        let (base, space) = self.base(mem, write)?;
        if !matches!(mem, Memory::Shared(_)) {
            return self.err(format!(
                "`{}` must be an LDS array here",
                self.k.memory_name(mem)
            ));
        }
        let stem = format!("{}.lds", self.k.memory_name(mem));
        Ok(self.assign(
            &stem,
            format!("ptrtoint {} {base} to i32", Self::ptr_type(space)),
            Self::u32t(),
        ))
    }

    /// The byte address `lds_address(mem) + index · size` of an LDS element.
    fn lds_elem_address(&mut self, mem: Memory, index: &Val, write: bool) -> R<Val> {
        let size = self.mem_elem(mem)?.size_bytes();
        let base = self.lds_address(mem, write)?;
        let bytes = self.int_op("mul", index, &size.to_string());
        Ok(self.int_op("add", &base, &bytes.text))
    }

    /// Calls inline assembly: `ret` is the result type (`void` for none), `args` typed
    /// operands; `pure` asm (no memory, no side effects) may be moved and deleted like an
    /// arithmetic instruction.
    fn inline_asm(
        &mut self,
        ret: &str,
        text: &str,
        constraints: &str,
        args: &[String],
        pure: bool,
    ) -> Val {
        let (effect, attrs) = if pure {
            ("", "convergent nounwind memory(none)")
        } else {
            (" sideeffect", "convergent nounwind")
        };
        let call = format!(
            "call {ret} asm{effect} \"{text}\", \"{constraints}\"({}) {attrs}",
            args.join(", ")
        );
        if ret == "void" {
            self.line(&call);
            Val::new("", Self::u32t())
        } else {
            self.assign("asm", call, Self::u32t())
        }
    }

    /// Field `i` of an inline-asm result of `n` fields.
    fn asm_result(&mut self, r: &Val, i: u32, n: u32, ty: Type) -> Val {
        if n == 1 {
            return Val::new(r.text.clone(), ty);
        }
        let rt = results(&llvm_type(ty), n);
        self.assign("r", format!("extractvalue {rt} {}, {i}", r.text), ty)
    }

    /// A PTX instruction with no operands, ordered with memory (`asm volatile(... "memory")`).
    fn asm_statement(&mut self, text: &str) {
        self.inline_asm("void", &format!("{text};"), "~{memory}", &[], false);
    }

    // ---- Mma ----------------------------------------------------------------------------------

    fn matrix_inst(
        &self,
        shape: MmaShape,
        frag: FragRef,
        operand: Operand,
    ) -> R<&'static MatrixInst> {
        let elem = self.mem_elem(Memory::Local(frag.local))?;
        match crate::back::fragment::matrix_inst(self.target, shape, operand, elem) {
            Some(i) => Ok(i),
            None => self.err(format!(
                "{} has no {shape} instruction for {elem}",
                self.target.name
            )),
        }
    }

    fn frag_elems(&mut self, f: FragRef, n: u32) -> R<Vec<Val>> {
        (0..n)
            .map(|i| self.local_load(f.local, f.offset + i))
            .collect()
    }

    pub(super) fn mma(&mut self, shape: MmaShape, f: [FragRef; 4]) -> R<()> {
        let inst = self.matrix_inst(shape, f[0], Operand::A)?;
        let (la, lb, lc) = (inst.a.len, inst.b.len, inst.acc.len);
        let ab = inst.ab;
        for (frag, want, what) in [
            (f[0], ab, "A"),
            (f[1], ab, "B"),
            (f[2], Scalar::F32, "C"),
            (f[3], Scalar::F32, "D"),
        ] {
            let have = self.mem_elem(Memory::Local(frag.local))?;
            if have != want {
                return self.err(format!(
                    "{} {what} fragment of {have} (must be {want})",
                    inst.name
                ));
            }
        }
        let a = self.frag_elems(f[0], la)?;
        let b = self.frag_elems(f[1], lb)?;
        let c = self.frag_elems(f[2], lc)?;
        let f32t = Type::scalar(Scalar::F32);
        let d: Vec<Val> = match self.target.family {
            GpuFamily::Amdgcn => {
                let s = inst.shape;
                let name = match (s.m, ab) {
                    (16, Scalar::F16) => "llvm.amdgcn.mfma.f32.16x16x16f16",
                    (16, _) => "llvm.amdgcn.mfma.f32.16x16x16bf16.1k",
                    (_, Scalar::F16) => "llvm.amdgcn.mfma.f32.32x32x8f16",
                    _ => "llvm.amdgcn.mfma.f32.32x32x8bf16.1k",
                };
                let mut ops = Vec::new();
                for (vals, n) in [(&a, la), (&b, lb)] {
                    let v = self.compose(Type::vector(ab, n as u8), vals);
                    // The bf16 `_1k` intrinsics take the bits as 16-bit integers.
                    ops.push(if ab == Scalar::BF16 {
                        let t = format!("<{n} x i16>");
                        let c = self.assign("bits", format!("bitcast {} to {t}", v.typed()), v.ty);
                        (t, c.text)
                    } else {
                        (llvm_type(v.ty), v.text)
                    });
                }
                let cv = self.compose(Type::vector(Scalar::F32, lc as u8), &c);
                let ct = llvm_type(cv.ty);
                ops.push((ct.clone(), cv.text));
                for _ in 0..3 {
                    ops.push(("i32".into(), "0".into()));
                }
                let dv = self.call(&ct, name, &ops, cv.ty);
                (0..lc)
                    .map(|i| {
                        self.assign(
                            "d",
                            format!("extractelement {ct} {}, i32 {i}", dv.text),
                            f32t,
                        )
                    })
                    .collect()
            }
            GpuFamily::Nvptx => {
                // Multiplicands travel as 32-bit registers of two elements, the lower index low.
                let mut args = Vec::new();
                for vals in [&a, &b] {
                    for pair in vals.chunks(2) {
                        let v = self.compose(Type::vector(ab, 2), pair);
                        let w = self.assign(
                            "pair",
                            format!("bitcast {} to i32", v.typed()),
                            Self::u32t(),
                        );
                        args.push(format!("i32 {}", w.text));
                    }
                }
                args.extend(c.iter().map(|x| format!("float {}", x.text)));
                let (ra, rb) = (la / 2, lb / 2);
                let text = format!(
                    "{} {{{}}}, {{{}}}, {{{}}}, {{{}}};",
                    inst.name,
                    operands(0, lc),
                    operands(lc, ra),
                    operands(lc + ra, rb),
                    operands(lc + ra + rb, lc)
                );
                let constraints: Vec<&str> = std::iter::repeat_n("=f", lc as usize)
                    .chain(std::iter::repeat_n("r", (ra + rb) as usize))
                    .chain(std::iter::repeat_n("f", lc as usize))
                    .collect();
                let r = self.inline_asm(
                    &results("float", lc),
                    &text,
                    &constraints.join(","),
                    &args,
                    true,
                );
                (0..lc).map(|i| self.asm_result(&r, i, lc, f32t)).collect()
            }
        };
        for (i, v) in d.iter().enumerate() {
            self.local_store(f[3].local, f[3].offset + i as u32, v)?;
        }
        Ok(())
    }

    // ---- fragment loads and stores ------------------------------------------------------------

    /// A coordinate's lane part for `lane`.
    fn lane_part(&mut self, c: &Coord, lane: &Val) -> Val {
        let mut sum: Option<Val> = None;
        for t in c.lane {
            let mut x = lane.clone();
            x = self.int_op("udiv", &x, &t.div.to_string());
            x = self.int_op("urem", &x, &t.modulo.to_string());
            x = self.int_op("mul", &x, &t.mul.to_string());
            sum = Some(match sum {
                None => x,
                Some(s) => self.int_op("add", &s, &x.text),
            });
        }
        sum.unwrap_or_else(|| Val::new("0", Self::u32t()))
    }

    /// The stored column of tile element `(r, c)` (the tile's swizzle).
    fn swizzled(&mut self, place: &FragPlace, r: &Val, c: &Val) -> Val {
        let s = place.tile.swizzle;
        if s.is_none() {
            return c.clone();
        }
        let key = self.int_op("udiv", r, &s.row_div.to_string());
        let key = self.int_op("urem", &key, &s.period.to_string());
        let key = self.int_op("mul", &key, &s.chunk.to_string());
        self.int_op("xor", c, &key.text)
    }

    /// The element index `base + r · stride + swizzle(r, c)` of tile element `(r, c)`.
    fn tile_index(&mut self, place: &FragPlace, tile: &(Val, Val), r: &Val, c: &Val) -> Val {
        let col = self.swizzled(place, r, c);
        let row = self.int_op("mul", r, &tile.1.text);
        let i = self.int_op("add", &tile.0, &row.text);
        self.int_op("add", &i, &col.text)
    }

    pub(super) fn fragment_access(
        &mut self,
        shape: MmaShape,
        operand: Operand,
        frag: FragRef,
        place: &FragPlace,
        store: bool,
    ) -> R<()> {
        let inst = self.matrix_inst(shape, frag, operand)?;
        let layout = *inst.layout(operand);
        let elem = self.mem_elem(Memory::Local(frag.local))?;
        let mem_elem = self.mem_elem(place.tile.mem)?;
        if mem_elem != elem {
            return self.err(format!(
                "a fragment of {elem} in `{}` of {mem_elem}",
                self.k.memory_name(place.tile.mem)
            ));
        }
        // An error for a store into a read-only buffer, before anything is written.
        self.base(place.tile.mem, store)?;
        let tile = (
            self.place_value(place.tile.base)?,
            self.place_value(place.tile.stride)?,
        );
        let (row, col) = (self.place_value(place.row)?, self.place_value(place.col)?);
        let lane = self.lane_id();
        let ldm = (!store)
            .then(|| ldmatrix(self.target, inst, operand, place, elem))
            .flatten();
        if let Some(plan) = ldm {
            self.ldmatrix_load(plan, frag, place, &tile, &row, &col, &lane)
        } else {
            self.generic_fragment(&layout, place, &tile, &row, &col, &lane, frag, store)
        }
    }

    /// `values[m]` for the lane's matrix `m` (0..4), as selects of constants.
    fn select4(&mut self, m: &Val, values: [u32; 4]) -> Val {
        let mut acc = Val::new(values[0].to_string(), Self::u32t());
        if values.iter().all(|&v| v == values[0]) {
            return acc;
        }
        for (j, &v) in values.iter().enumerate().skip(1) {
            // Lanes of no matching select keep `values[0]`.
            if v == values[0] {
                continue;
            }
            let is = self.assign(
                "is",
                format!("icmp eq i32 {}, {j}", m.text),
                Type::scalar(Scalar::Bool),
            );
            acc = self.assign(
                "blk",
                format!("select i1 {}, i32 {v}, i32 {}", is.text, acc.text),
                Self::u32t(),
            );
        }
        acc
    }

    #[allow(clippy::too_many_arguments)]
    fn ldmatrix_load(
        &mut self,
        plan: Ldmatrix,
        frag: FragRef,
        place: &FragPlace,
        tile: &(Val, Val),
        row: &Val,
        col: &Val,
        lane: &Val,
    ) -> R<()> {
        // Lane l addresses row l % 8 of matrix l / 8 (lanes past `count` matrices repeat the
        // addresses of the first ones, which ldmatrix ignores).
        let mut rows = [0; 4];
        let mut cols = [0; 4];
        for j in 0..4 {
            let (rb, cb) = (plan.origin)(j % plan.count);
            rows[j as usize] = rb * 8;
            cols[j as usize] = cb * 8;
        }
        let m = self.int_op("lshr", lane, "3");
        let m = self.int_op("and", &m, "3");
        let rofs = self.select4(&m, rows);
        let cofs = self.select4(&m, cols);
        let in8 = self.int_op("and", lane, "7");
        let r = self.int_op("add", row, &rofs.text);
        let r = self.int_op("add", &r, &in8.text);
        let c = self.int_op("add", col, &cofs.text);
        let idx = self.tile_index(place, tile, &r, &c);
        let addr = self.lds_elem_address(place.tile.mem, &idx, false)?;
        let n = plan.count;
        let text = format!(
            "ldmatrix.sync.aligned.m8n8.x{n}{}.shared.b16 {{{}}}, [${n}];",
            if plan.trans { ".trans" } else { "" },
            operands(0, n)
        );
        let constraints = format!("{},r", vec!["=r"; n as usize].join(","));
        let regs = self.inline_asm(
            &results("i32", n),
            &text,
            &constraints,
            &[format!("i32 {}", addr.text)],
            false,
        );
        let elem = self.mem_elem(Memory::Local(frag.local))?;
        let pair = Type::vector(elem, 2);
        for j in 0..n {
            let w = self.asm_result(&regs, j, n, Self::u32t());
            let p = self.assign(
                "pair",
                format!("bitcast i32 {} to {}", w.text, llvm_type(pair)),
                pair,
            );
            for h in 0..2 {
                let e = self.assign(
                    "e",
                    format!("extractelement {}, i32 {h}", p.typed()),
                    Type::scalar(elem),
                );
                self.local_store(frag.local, frag.offset + 2 * j + h, &e)?;
            }
        }
        Ok(())
    }

    /// Per-element addresses by the layout, contiguous aligned runs as one vector access.
    #[allow(clippy::too_many_arguments)]
    fn generic_fragment(
        &mut self,
        layout: &FragLayout,
        place: &FragPlace,
        tile: &(Val, Val),
        row: &Val,
        col: &Val,
        lane: &Val,
        frag: FragRef,
        store: bool,
    ) -> R<()> {
        let elem = self.mem_elem(Memory::Local(frag.local))?;
        let lr = self.lane_part(&layout.row, lane);
        let lc = self.lane_part(&layout.col, lane);
        // Memory row and column of operand element (r, c): transposed tiles swap them.
        let (lr, lc) = if place.transposed { (lc, lr) } else { (lr, lc) };
        // The lane's first row and column, to which the runs add constants.
        let r0 = self.int_op("add", row, &lr.text);
        let c0 = self.int_op("add", col, &lc.text);
        for run in runs(layout, place, elem) {
            let (i, er, ec, lanes) = (run.elem, run.row, run.col, run.lanes);
            let r = self.int_op("add", &r0, &er.to_string());
            let c = self.int_op("add", &c0, &ec.to_string());
            let idx = self.tile_index(place, tile, &r, &c);
            let (p, pt) = self.ptr_at(place.tile.mem, &idx, store)?;
            let o = frag.offset + i;
            let ty = if lanes == 1 {
                Type::scalar(elem)
            } else {
                Type::vector(elem, lanes as u8)
            };
            let align = elem.size_bytes() * lanes;
            if store {
                let parts = self.frag_elems(FragRef { offset: o, ..frag }, lanes)?;
                let v = if lanes == 1 {
                    parts[0].clone()
                } else {
                    self.compose(ty, &parts)
                };
                self.line(&format!("store {}, {pt} {p}, align {align}", v.typed()));
            } else {
                let stem = self.k.memory_name(place.tile.mem).to_string();
                let v = self.assign(
                    &stem,
                    format!("load {}, {pt} {p}, align {align}", llvm_type(ty)),
                    ty,
                );
                for k in 0..lanes {
                    let e = if lanes == 1 {
                        v.clone()
                    } else {
                        self.assign(
                            "e",
                            format!("extractelement {}, i32 {k}", v.typed()),
                            Type::scalar(elem),
                        )
                    };
                    self.local_store(frag.local, o + k, &e)?;
                }
            }
        }
        Ok(())
    }

    // ---- asynchronous copies ------------------------------------------------------------------

    pub(super) fn async_copy(
        &mut self,
        dst: Memory,
        dst_index: ExprId,
        src: Memory,
        src_index: ExprId,
        lanes: u8,
        pred: ExprId,
    ) -> R<()> {
        let elem = self.mem_elem(dst)?;
        if self.mem_elem(src)? != elem {
            return self.err("an asynchronous copy between arrays of different types");
        }
        let di = self.expr(dst_index)?;
        let si = self.expr(src_index)?;
        let p = self.expr(pred)?;
        let bytes = elem.size_bytes() * lanes as u32;
        if self.target.async_copy {
            if !matches!(src, Memory::Global(_)) {
                return self.err("an asynchronous copy reads a global buffer");
            }
            // Zero-fill where `pred` is false: a source size of 0 reads nothing (the address
            // stays inside the buffer all the same).
            let cache = if bytes == 16 { "cg" } else { "ca" };
            let d = self.lds_elem_address(dst, &Val::new(di.text, Self::u32t()), true)?;
            let s_idx = self.assign(
                "src.idx",
                format!(
                    "select i1 {}, {}, {} 0",
                    p.text,
                    si.typed(),
                    llvm_type(si.ty)
                ),
                si.ty,
            );
            let (sp, spt) = self.ptr_at(src, &s_idx, false)?;
            let s = self.assign(
                "src.addr",
                format!("ptrtoint {spt} {sp} to i64"),
                Self::u32t(),
            );
            let size = self.assign(
                "src.size",
                format!("select i1 {}, i32 {bytes}, i32 0", p.text),
                Self::u32t(),
            );
            self.inline_asm(
                "void",
                &format!("cp.async.{cache}.shared.global [$0], [$1], {bytes}, $2;"),
                "r,l,r,~{memory}",
                &[
                    format!("i32 {}", d.text),
                    format!("i64 {}", s.text),
                    format!("i32 {}", size.text),
                ],
                false,
            );
        } else {
            let ty = if lanes <= 1 {
                Type::scalar(elem)
            } else {
                Type::vector(elem, lanes)
            };
            let align = bytes.max(1);
            let (dp, dpt) = self.ptr_at(dst, &di, true)?;
            let (copy, zero, end) = (
                self.fresh("copy"),
                self.fresh("copy.zero"),
                self.fresh("copy.end"),
            );
            self.terminate(&format!("br i1 {}, label {copy}, label {zero}", p.text));
            self.label(&copy);
            let (sp, spt) = self.ptr_at(src, &si, false)?;
            let v = self.assign(
                "copied",
                format!("load {}, {spt} {sp}, align {align}", llvm_type(ty)),
                ty,
            );
            self.line(&format!("store {}, {dpt} {dp}, align {align}", v.typed()));
            self.terminate(&format!("br label {end}"));
            self.label(&zero);
            self.line(&format!(
                "store {} zeroinitializer, {dpt} {dp}, align {align}",
                llvm_type(ty)
            ));
            self.label(&end);
        }
        Ok(())
    }

    // ---- sync operations and the warpgroup engine ---------------------------------------------

    pub(super) fn sync_op(&mut self, op: SyncOp) -> R<()> {
        let nv = self.target.family == GpuFamily::Nvptx;
        match op {
            SyncOp::AsyncCommit if self.target.async_copy => {
                self.asm_statement("cp.async.commit_group")
            }
            SyncOp::AsyncWait(n) if self.target.async_copy => {
                self.asm_statement(&format!("cp.async.wait_group {n}"))
            }
            SyncOp::ProxyFence if nv => self.asm_statement("fence.proxy.async.shared::cta"),
            SyncOp::MmaFence => {
                self.fence_accumulators()?;
                self.asm_statement("wgmma.fence.sync.aligned");
            }
            SyncOp::MmaCommit => self.asm_statement("wgmma.commit_group.sync.aligned"),
            SyncOp::MmaWait(n) => {
                self.asm_statement(&format!("wgmma.wait_group.sync.aligned {n}"));
                self.fence_accumulators()?;
            }
            // Copies are synchronous on this target, and nothing else reads LDS through
            // another path: nothing to order.
            _ => {
                let note = format!("; {}: nothing to do on {}", op.name(), self.target.name);
                self.line(&note);
            }
        }
        Ok(())
    }

    /// Ties every warpgroup accumulator register to this point of the program: ordinary code
    /// cannot be moved across it to touch an accumulator a wgmma may still be writing (each
    /// element goes through an empty asm statement as a tied in/out operand).
    fn fence_accumulators(&mut self) -> R<()> {
        let accs = self.info.warpgroup_accs.clone();
        let f32t = Type::scalar(Scalar::F32);
        for (local, offset, len) in accs {
            let idx: Vec<u32> = (offset..offset + len).collect();
            for chunk in idx.chunks(32) {
                let n = chunk.len() as u32;
                let mut args = Vec::new();
                for &i in chunk {
                    let v = self.local_load(local, i)?;
                    args.push(format!("float {}", v.text));
                }
                let constraints: Vec<String> = (0..n)
                    .map(|_| "=f".to_string())
                    .chain((0..n).map(|i| i.to_string()))
                    .chain(std::iter::once("~{memory}".to_string()))
                    .collect();
                let r = self.inline_asm(
                    &results("float", n),
                    "",
                    &constraints.join(","),
                    &args,
                    false,
                );
                for (j, &i) in chunk.iter().enumerate() {
                    let v = self.asm_result(&r, j as u32, n, f32t);
                    self.local_store(local, i, &v)?;
                }
            }
        }
        Ok(())
    }

    /// The wgmma descriptor of the tile element at `place`'s `(row, col)` (not swizzled: the
    /// descriptor's swizzle mode applies it).
    fn wgmma_desc(&mut self, place: &FragPlace) -> R<Val> {
        let base = self.place_value(place.tile.base)?;
        let stride = self.place_value(place.tile.stride)?;
        let (row, col) = (self.place_value(place.row)?, self.place_value(place.col)?);
        let r = self.int_op("mul", &row, &stride.text);
        let i = self.int_op("add", &base, &r.text);
        let i = self.int_op("add", &i, &col.text);
        let addr = self.lds_elem_address(place.tile.mem, &i, false)?;
        let a = self.int_op("and", &addr, &0x3FFFFu32.to_string());
        let a = self.int_op("lshr", &a, "4");
        let wide = self.assign("desc", format!("zext i32 {} to i64", a.text), Self::u32t());
        Ok(self.assign(
            "desc",
            format!("or i64 {}, {WGMMA_DESC_BITS}", wide.text),
            Self::u32t(),
        ))
    }

    pub(super) fn warpgroup_mma(
        &mut self,
        n: u32,
        acc: FragRef,
        a: &FragPlace,
        b: &FragPlace,
    ) -> R<()> {
        if self.target.family != GpuFamily::Nvptx {
            return self.err(format!(
                "{} has no warpgroup matrix engine",
                self.target.name
            ));
        }
        let elem = self.mem_elem(a.tile.mem)?;
        let da = self.wgmma_desc(a)?;
        let db = self.wgmma_desc(b)?;
        let regs = n / 2;
        let f32t = Type::scalar(Scalar::F32);
        let mut args = vec![format!("i64 {}", da.text), format!("i64 {}", db.text)];
        for i in 0..regs {
            let v = self.local_load(acc.local, acc.offset + i)?;
            args.push(format!("float {}", v.text));
        }
        let t = ptx_type(elem);
        let text = format!(
            "{{ .reg .pred p; setp.ne.b32 p, 1, 0; wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{t}.{t} {{{}}}, ${}, ${}, p, 1, 1, 0, 0; }}",
            operands(0, regs),
            regs,
            regs + 1
        );
        let constraints: Vec<String> = (0..regs)
            .map(|_| "=f".to_string())
            .chain(["l".to_string(), "l".to_string()])
            .chain((0..regs).map(|i| i.to_string()))
            .collect();
        let r = self.inline_asm(
            &results("float", regs),
            &text,
            &constraints.join(","),
            &args,
            false,
        );
        for i in 0..regs {
            let v = self.asm_result(&r, i, regs, f32t);
            self.local_store(acc.local, acc.offset + i, &v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_bits_are_the_hip_preludes() {
        assert_eq!(WGMMA_DESC_BITS, 4611686293305360384);
    }
}
