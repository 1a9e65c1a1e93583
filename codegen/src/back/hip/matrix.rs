//! Matrix statements in HIP C++: the instruction helpers for the prelude and the lowering of
//! `Mma` and fragment loads and stores.
//!
//! - `Mma` calls a prelude helper per instruction (`greta_mma_<shape>_<type>`) on the fragments'
//!   register arrays: `__builtin_amdgcn_mfma_*` on gfx942, inline-PTX `mma.sync` on sm_90.
//!   After inlining, the constant offsets into the fragment arrays let clang keep them in
//!   registers (AGPRs/VGPRs on AMD).
//! - A fragment access computes each lane's element addresses from the instruction's layout
//!   (the same table the interpreter executes), loading or storing runs of elements that are
//!   contiguous in memory and aligned as one vector access.
//! - On sm_90, an A fragment (not transposed) or a transposed B fragment of 16-bit elements in
//!   LDS is one `ldmatrix` (x4 for A, x2 for B): its 8×8 matrices are exactly the layout's
//!   register pairs (see [`ldmatrix`] and its test).

use std::fmt::Write;

use greta_dsl::ir::{FragPlace, FragRef, Memory, MmaShape, Operand, Scalar};
use greta_dsl::target::{Coord, FragLayout, MatrixInst};
use greta_dsl::{Family, Target};

use super::{c_scalar, c_type, Emitter, R};
use crate::back::fragment::{ldmatrix, runs};
use greta_dsl::ir::Type;

/// The prelude helper's name for `inst`.
pub fn helper_name(inst: &MatrixInst) -> String {
    let s = inst.shape;
    format!("greta_mma_m{}n{}k{}_{}", s.m, s.n, s.k, c_scalar(inst.ab))
}

/// The prelude helper computing `d = a · b + c` on fragment arrays for `inst`.
pub fn helper(inst: &MatrixInst, target: &Target) -> String {
    let name = helper_name(inst);
    let ab = c_scalar(inst.ab);
    let (la, lb, lc) = (inst.a.len, inst.b.len, inst.acc.len);
    let mut out = format!(
        "// {} (D = A·B + C, {}): fragments by its layout.\n\
         GRETA_INLINE void {name}(f32* d, const {ab}* a, const {ab}* b, const f32* c) {{\n",
        inst.name, inst.shape
    );
    let list = |p: &str, n: u32| {
        (0..n)
            .map(|i| format!("{p}[{i}]"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match target.family {
        Family::Amdgcn => {
            let s = inst.shape;
            let builtin = match (s.m, inst.ab) {
                (16, Scalar::F16) => "__builtin_amdgcn_mfma_f32_16x16x16f16",
                (16, _) => "__builtin_amdgcn_mfma_f32_16x16x16bf16_1k",
                (_, Scalar::F16) => "__builtin_amdgcn_mfma_f32_32x32x8f16",
                _ => "__builtin_amdgcn_mfma_f32_32x32x8bf16_1k",
            };
            let _ = writeln!(out, "    {ab}x4 av = {{{}}};", list("a", la));
            let _ = writeln!(out, "    {ab}x4 bv = {{{}}};", list("b", lb));
            let _ = writeln!(out, "    f32x{lc} cv = {{{}}};", list("c", lc));
            // The bf16 `_1k` builtins take the bits as 16-bit integers.
            let (a, b) = if inst.ab == Scalar::BF16 {
                (
                    "__builtin_bit_cast(i16x4, av)",
                    "__builtin_bit_cast(i16x4, bv)",
                )
            } else {
                ("av", "bv")
            };
            let _ = writeln!(out, "    f32x{lc} dv = {builtin}({a}, {b}, cv, 0, 0, 0);");
            for i in 0..lc {
                let _ = writeln!(out, "    d[{i}] = dv[{i}];");
            }
        }
        Family::Nvptx => {
            // Multiplicands travel as 32-bit registers of two elements, the lower index low.
            for (p, n) in [("a", la), ("b", lb)] {
                for r in 0..n / 2 {
                    let _ = writeln!(
                        out,
                        "    u32 {p}{r} = __builtin_bit_cast(u32, {ab}x2{{{p}[{}], {p}[{}]}});",
                        2 * r,
                        2 * r + 1
                    );
                }
            }
            let regs = |first: u32, n: u32| {
                (first..first + n)
                    .map(|i| format!("%{i}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let (ra, rb) = (la / 2, lb / 2);
            let _ = writeln!(
                out,
                "    asm(\"{} {{{}}}, {{{}}}, {{{}}}, {{{}}};\"",
                inst.name,
                regs(0, lc),
                regs(lc, ra),
                regs(lc + ra, rb),
                regs(lc + ra + rb, lc)
            );
            let outs: Vec<String> = (0..lc).map(|i| format!("\"=f\"(d[{i}])")).collect();
            let ins: Vec<String> = (0..ra)
                .map(|i| format!("\"r\"(a{i})"))
                .chain((0..rb).map(|i| format!("\"r\"(b{i})")))
                .chain((0..lc).map(|i| format!("\"f\"(c[{i}])")))
                .collect();
            let _ = writeln!(out, "        : {}", outs.join(", "));
            let _ = writeln!(out, "        : {});", ins.join(", "));
        }
    }
    out.push_str("}\n");
    out
}

/// The helpers of every instruction `used`, plus, on NVIDIA, the shared-memory address helper
/// `ldmatrix`, `cp.async` and `wgmma` take (`lds_addresses`: the kernel uses any of them).
pub fn prelude_part(used: &[&MatrixInst], lds_addresses: bool, target: &Target) -> String {
    let mut out = String::new();
    if used.is_empty() && !(lds_addresses && target.family == Family::Nvptx) {
        return out;
    }
    out.push_str("\n// ---- matrix cores ---------------------------------------------------------------------\n");
    out.push_str("typedef short i16x4 __attribute__((ext_vector_type(4)));\n");
    out.push_str("typedef f32 f32x16 __attribute__((ext_vector_type(16)));\n");
    if target.family == Family::Nvptx {
        out.push_str(
            "// The 32-bit shared-window address of an LDS pointer (what `ldmatrix` takes). Element\n\
             // addresses are this of the array plus a 32-bit byte offset: no 64-bit arithmetic\n\
             // and one conversion per array, not per access.\n\
             GRETA_INLINE u32 greta_lds_address(const void* p) {\n    \
             return (u32)(unsigned long long)(__attribute__((address_space(3))) const void*)p;\n}\n",
        );
    }
    for inst in used {
        out.push_str(&helper(inst, target));
    }
    out
}

/// C expression of a coordinate's lane part.
fn lane_part(c: &Coord, lane: &str) -> String {
    let terms: Vec<String> = c
        .lane
        .iter()
        .map(|t| {
            let mut x = lane.to_string();
            if t.div != 1 {
                x = format!("({x} / {}u)", t.div);
            }
            x = format!("({x} % {}u)", t.modulo);
            if t.mul != 1 {
                x = format!("{x} * {}u", t.mul);
            }
            x
        })
        .collect();
    if terms.is_empty() {
        "0u".into()
    } else {
        terms.join(" + ")
    }
}

impl Emitter<'_> {
    pub(super) fn matrix_inst(
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

    fn frag_ptr(&self, f: FragRef) -> String {
        format!("&{}[{}]", self.locals[f.local.0 as usize], f.offset)
    }

    pub(super) fn mma(&mut self, shape: MmaShape, f: [FragRef; 4]) -> R<()> {
        let inst = self.matrix_inst(shape, f[0], Operand::A)?;
        let call = format!(
            "{}({}, {}, {}, {});",
            helper_name(inst),
            self.frag_ptr(f[3]),
            self.frag_ptr(f[0]),
            self.frag_ptr(f[1]),
            self.frag_ptr(f[2])
        );
        self.line(&call);
        Ok(())
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
        let mem = self.memory_name(place.tile.mem, store)?;
        let (base, stride) = (
            self.expr(place.tile.base)?.text,
            self.expr(place.tile.stride)?.text,
        );
        let (row, col) = (self.expr(place.row)?.text, self.expr(place.col)?.text);
        let fr = self.locals[frag.local.0 as usize].clone();
        self.line("{");
        self.indent += 1;
        self.line(&format!(
            "const u32 greta_fb = {base}, greta_fs = {stride}, greta_fr = {row}, greta_fc = {col};"
        ));
        self.line("const u32 greta_lane = greta_lane_id();");
        let swz = |r: &str, c: &str| -> String {
            let s = place.tile.swizzle;
            if s.is_none() {
                c.to_string()
            } else {
                let key = if s.row_div == 1 {
                    r.to_string()
                } else {
                    format!("({r}) / {}u", s.row_div)
                };
                format!("(({c}) ^ ((({key}) % {}u) * {}u))", s.period, s.chunk)
            }
        };
        let ldm = (!store)
            .then(|| ldmatrix(self.target, inst, operand, place, elem))
            .flatten();
        if let Some(plan) = ldm {
            // Lane l addresses row l % 8 of matrix l / 8 (lanes past `count` matrices repeat
            // the addresses of the first ones, which ldmatrix ignores).
            let mut blocks = String::new();
            for j in 0..4 {
                let (rb, cb) = (plan.origin)(j % plan.count);
                let _ = write!(
                    blocks,
                    "{}{{{}u, {}u}}",
                    if j > 0 { ", " } else { "" },
                    rb * 8,
                    cb * 8
                );
            }
            self.line(&format!("const u32 greta_blocks[4][2] = {{{blocks}}};"));
            self.line("const u32 greta_m = (greta_lane / 8u) % 4u;");
            self.line("const u32 greta_r = greta_fr + greta_blocks[greta_m][0] + greta_lane % 8u;");
            self.line("const u32 greta_c = greta_fc + greta_blocks[greta_m][1];");
            let idx = format!(
                "greta_fb + greta_r * greta_fs + {}",
                swz("greta_r", "greta_c")
            );
            self.line(&format!(
                "const u32 greta_addr = greta_lds_address({mem}) + ({idx}) * {}u;",
                elem.size_bytes()
            ));
            let regs: Vec<String> = (0..plan.count).map(|j| format!("greta_m{j}")).collect();
            self.line(&format!("u32 {};", regs.join(", ")));
            let outs: Vec<String> = regs.iter().map(|r| format!("\"=r\"({r})")).collect();
            let list: Vec<String> = (0..plan.count).map(|j| format!("%{j}")).collect();
            self.line(&format!(
                "asm volatile(\"ldmatrix.sync.aligned.m8n8.x{}{}.shared.b16 {{{}}}, [%{}];\" : {} : \"r\"(greta_addr));",
                plan.count,
                if plan.trans { ".trans" } else { "" },
                list.join(","),
                plan.count,
                outs.join(", ")
            ));
            let t = c_scalar(elem);
            for (j, r) in regs.iter().enumerate() {
                let base = frag.offset as usize + 2 * j;
                self.line(&format!(
                    "{{ {t}x2 greta_p = __builtin_bit_cast({t}x2, {r}); {fr}[{}] = greta_p[0]; {fr}[{}] = greta_p[1]; }}",
                    base,
                    base + 1
                ));
            }
        } else {
            self.generic_fragment(&layout, place, elem, &mem, &fr, frag.offset, store, &swz)?;
        }
        self.indent -= 1;
        self.line("}");
        Ok(())
    }

    /// Per-element addresses by the layout, contiguous aligned runs as one vector access.
    #[allow(clippy::too_many_arguments)]
    fn generic_fragment(
        &mut self,
        layout: &FragLayout,
        place: &FragPlace,
        elem: Scalar,
        mem: &str,
        fr: &str,
        offset: u32,
        store: bool,
        swz: &dyn Fn(&str, &str) -> String,
    ) -> R<()> {
        self.line(&format!(
            "const u32 greta_lr = {}, greta_lc = {};",
            lane_part(&layout.row, "greta_lane"),
            lane_part(&layout.col, "greta_lane")
        ));
        // Memory row and column of operand element (r, c): transposed tiles swap them.
        let (lr, lc) = if place.transposed {
            ("greta_lc", "greta_lr")
        } else {
            ("greta_lr", "greta_lc")
        };
        for run in runs(layout, place, elem) {
            let (i, er, ec, lanes) = (run.elem, run.row, run.col, run.lanes);
            let r = format!("greta_fr + {lr} + {er}u");
            let c = format!("greta_fc + {lc} + {ec}u");
            let idx = format!("greta_fb + ({r}) * greta_fs + {}", swz(&r, &c));
            let o = offset + i;
            if lanes == 1 {
                if store {
                    self.line(&format!("{mem}[{idx}] = {fr}[{o}];"));
                } else {
                    self.line(&format!("{fr}[{o}] = {mem}[{idx}];"));
                }
            } else {
                let vt = c_type(Type::vector(elem, lanes as u8));
                let parts: Vec<String> = (0..lanes).map(|k| format!("{fr}[{}]", o + k)).collect();
                if store {
                    self.line(&format!(
                        "*reinterpret_cast<{vt}*>(&{mem}[{idx}]) = {vt}{{{}}};",
                        parts.join(", ")
                    ));
                } else {
                    self.line(&format!(
                        "{{ const {vt} greta_v = *reinterpret_cast<const {vt}*>(&{mem}[{idx}]);"
                    ));
                    for (k, p) in parts.iter().enumerate() {
                        self.line(&format!("    {p} = greta_v[{k}];"));
                    }
                    self.line("}");
                }
            }
        }
        Ok(())
    }
}

// ---- asynchronous copies and the warpgroup engine --------------------------------------------

/// Prelude helpers for kernels that use the warpgroup engine (sm_90a): the matrix descriptor of
/// a K-major, 128-byte-swizzled LDS tile starting at a shared-window address.
pub fn warpgroup_prelude() -> &'static str {
    "
// The wgmma matrix descriptor of a K-major operand in LDS with the 128-byte swizzle (PTX ISA
// 9.7.15.5.1.2.2): start address >> 4 in bits 0-13, leading byte offset 16 (unused by K-major
// swizzled operands) >> 4 in bits 16-29, stride byte offset 1024 (8 rows of 128 bytes) >> 4 in
// bits 32-45, swizzle mode 1 (128 bytes) in bits 62-63.
GRETA_INLINE unsigned long long greta_wgmma_desc(u32 lds_address) {
    return (unsigned long long)((lds_address & 0x3FFFFu) >> 4)
        | (1ull << 16) | ((unsigned long long)(1024 >> 4) << 32) | (1ull << 62);
}
"
}

impl Emitter<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn async_copy(
        &mut self,
        dst: Memory,
        dst_index: greta_dsl::ir::ExprId,
        src: Memory,
        src_index: greta_dsl::ir::ExprId,
        lanes: u8,
        pred: greta_dsl::ir::ExprId,
    ) -> R<()> {
        let elem = self.mem_elem(dst)?;
        let d = self.memory_name(dst, true)?;
        let s = self.memory_name(src, false)?;
        let (di, si, p) = (
            self.expr(dst_index)?.text,
            self.expr(src_index)?.text,
            self.expr(pred)?.text,
        );
        let bytes = elem.size_bytes() * lanes as u32;
        if self.target.async_copy {
            // Zero-fill where `pred` is false: a source size of 0 reads nothing (the address
            // stays inside the buffer all the same).
            let cache = if bytes == 16 { "cg" } else { "ca" };
            self.line(&format!(
                "{{ const bool greta_p = {p}; asm volatile(\"cp.async.{cache}.shared.global [%0], [%1], {bytes}, %2;\" :: \"r\"(greta_lds_address({d}) + ({di}) * {}u), \"l\"(&{s}[greta_p ? {si} : 0u]), \"r\"(greta_p ? {bytes}u : 0u) : \"memory\"); }}",
                elem.size_bytes()
            ));
        } else {
            let vt = c_type(Type::vector(elem, lanes.max(1)));
            let (load, zero) = if lanes == 1 {
                (format!("{s}[{si}]"), format!("{}(0)", c_scalar(elem)))
            } else {
                (
                    format!("*reinterpret_cast<const {vt}*>(&{s}[{si}])"),
                    format!("{vt}{{}}"),
                )
            };
            let place = if lanes == 1 {
                format!("{d}[{di}]")
            } else {
                format!("*reinterpret_cast<{vt}*>(&{d}[{di}])")
            };
            self.line(&format!(
                "if ({p}) {{ {place} = {load}; }} else {{ {place} = {zero}; }}"
            ));
        }
        Ok(())
    }

    pub(super) fn sync_op(&mut self, op: greta_dsl::ir::SyncOp) -> R<()> {
        use greta_dsl::ir::SyncOp::*;
        let nv = self.target.family == Family::Nvptx;
        let asm = |text: &str| format!("asm volatile(\"{text};\" ::: \"memory\");");
        match op {
            AsyncCommit if self.target.async_copy => self.line(&asm("cp.async.commit_group")),
            AsyncWait(n) if self.target.async_copy => {
                self.line(&asm(&format!("cp.async.wait_group {n}")))
            }
            ProxyFence if nv => self.line(&asm("fence.proxy.async.shared::cta")),
            MmaFence => {
                self.fence_accumulators();
                self.line(&asm("wgmma.fence.sync.aligned"));
            }
            MmaCommit => self.line(&asm("wgmma.commit_group.sync.aligned")),
            MmaWait(n) => {
                self.line(&asm(&format!("wgmma.wait_group.sync.aligned {n}")));
                self.fence_accumulators();
            }
            // Copies are synchronous on this target, and nothing else reads LDS through
            // another path: nothing to order.
            _ => self.line(&format!(
                "/* {}: nothing to do on {} */",
                op.name(),
                self.target.name
            )),
        }
        Ok(())
    }

    /// Ties every warpgroup accumulator register to this point of the program: ordinary code
    /// cannot be moved across it to touch an accumulator a wgmma may still be writing.
    fn fence_accumulators(&mut self) {
        let accs = self.info.warpgroup_accs.clone();
        for (local, offset, len) in accs {
            let name = self.locals[local.0 as usize].clone();
            for chunk in (offset..offset + len).collect::<Vec<_>>().chunks(32) {
                let ops: Vec<String> = chunk
                    .iter()
                    .map(|i| format!("\"+f\"({name}[{i}])"))
                    .collect();
                self.line(&format!(
                    "asm volatile(\"\" : {} :: \"memory\");",
                    ops.join(", ")
                ));
            }
        }
    }

    pub(super) fn warpgroup_mma(
        &mut self,
        n: u32,
        acc: FragRef,
        a: &FragPlace,
        b: &FragPlace,
    ) -> R<()> {
        let elem = self.mem_elem(a.tile.mem)?;
        let mut desc = Vec::new();
        for p in [a, b] {
            let name = self.memory_name(p.tile.mem, false)?;
            let (base, stride) = (self.expr(p.tile.base)?.text, self.expr(p.tile.stride)?.text);
            let (row, col) = (self.expr(p.row)?.text, self.expr(p.col)?.text);
            desc.push(format!(
                "greta_wgmma_desc(greta_lds_address(&{name}[({base}) + ({row}) * ({stride}) + ({col})]))"
            ));
        }
        let regs = n / 2;
        let list: Vec<String> = (0..regs).map(|i| format!("%{i}")).collect();
        let fr = self.locals[acc.local.0 as usize].clone();
        let outs: Vec<String> = (0..regs)
            .map(|i| format!("\"+f\"({fr}[{}])", acc.offset + i))
            .collect();
        let t = c_scalar(elem);
        self.line(&format!(
            "asm volatile(\"{{ .reg .pred p; setp.ne.b32 p, 1, 0; wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{t}.{t} {{{}}}, %{}, %{}, p, 1, 1, 0, 0; }}\" : {} : \"l\"({}), \"l\"({}));",
            list.join(","),
            regs,
            regs + 1,
            outs.join(", "),
            desc[0],
            desc[1]
        ));
        Ok(())
    }
}
