//! Matrix statements in LLVM IR: `Mma`, fragment loads and stores, asynchronous copies and the
//! warpgroup engine (to be written: see the HIP backend's `matrix` module for the lowering).

use greta_dsl::ir::{ExprId, FragPlace, FragRef, Memory, MmaShape, Operand, SyncOp};

use super::{Writer, R};

impl Writer<'_> {
    pub(super) fn mma(&mut self, shape: MmaShape, _f: [FragRef; 4]) -> R<()> {
        self.err(format!(
            "matrix operations ({shape}) are not lowered to LLVM IR yet"
        ))
    }

    pub(super) fn fragment_access(
        &mut self,
        shape: MmaShape,
        _operand: Operand,
        _frag: FragRef,
        _place: &FragPlace,
        _store: bool,
    ) -> R<()> {
        self.err(format!(
            "fragment accesses ({shape}) are not lowered to LLVM IR yet"
        ))
    }

    pub(super) fn async_copy(
        &mut self,
        _dst: Memory,
        _dst_index: ExprId,
        _src: Memory,
        _src_index: ExprId,
        _lanes: u8,
        _pred: ExprId,
    ) -> R<()> {
        self.err("asynchronous copies are not lowered to LLVM IR yet")
    }

    pub(super) fn warpgroup_mma(
        &mut self,
        _n: u32,
        _acc: FragRef,
        _a: &FragPlace,
        _b: &FragPlace,
    ) -> R<()> {
        self.err("warpgroup matrix operations are not lowered to LLVM IR yet")
    }

    pub(super) fn sync_op(&mut self, op: SyncOp) -> R<()> {
        self.err(format!("{} is not lowered to LLVM IR yet", op.name()))
    }
}
