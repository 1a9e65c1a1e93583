//! A tiny hand-written IR builder for the tests (the real typed builder lives in
//! `greta_dsl::front`, written elsewhere; these tests do not depend on it).
#![allow(dead_code)]

use greta_codegen::{CodegenError, Compiled, Format, Toolchain, Via};
use greta_dsl::ir::*;
use greta_dsl::Target;

pub mod kernels;

/// Hand-built IR uses nothing target-specific: the same kernel, marked as built for `target`
/// (the code generator compiles a kernel only for the target it was built for).
pub fn on(k: &Kernel, target: &Target) -> Kernel {
    let mut k = k.clone();
    k.target = Box::leak(Box::new(target.clone()));
    k
}

pub fn emit_hip(k: &Kernel, target: &Target) -> Result<String, CodegenError> {
    greta_codegen::emit_source(&on(k, target), target, Via::Hip)
}

pub fn emit(k: &Kernel, target: &Target, format: Format) -> Result<String, CodegenError> {
    greta_codegen::emit(&on(k, target), target, format)
}

pub fn compile(k: &Kernel, target: &Target) -> Result<Compiled, CodegenError> {
    greta_codegen::compile(&on(k, target), target)
}

pub fn compile_via(k: &Kernel, target: &Target, via: Via) -> Result<Compiled, CodegenError> {
    greta_codegen::compile_with(Toolchain::global(), &on(k, target), target, via)
}

pub fn emit_with(
    tools: &Toolchain,
    k: &Kernel,
    target: &Target,
    format: Format,
) -> Result<String, CodegenError> {
    greta_codegen::emit_with(tools, &on(k, target), target, Via::Hip, format)
}

pub fn compile_with(
    tools: &Toolchain,
    k: &Kernel,
    target: &Target,
) -> Result<Compiled, CodegenError> {
    greta_codegen::compile_with(tools, &on(k, target), target, Via::Hip)
}

pub struct B {
    pub k: Kernel,
    blocks: Vec<Block>,
}

impl B {
    pub fn new(name: &str) -> B {
        B {
            k: Kernel {
                name: name.into(),
                target: &greta_dsl::Target::GFX942,
                config: vec![],
                params: vec![],
                vars: vec![],
                shared: vec![],
                locals: vec![],
                exprs: vec![],
                body: vec![],
                block_size: None,
            },
            blocks: vec![vec![]],
        }
    }

    pub fn finish(mut self) -> Kernel {
        assert_eq!(self.blocks.len(), 1, "unclosed block");
        self.k.body = self.blocks.pop().unwrap();
        self.k
    }

    pub fn buf(&mut self, name: &str, elem: Scalar, access: Access) -> Memory {
        self.k.params.push(Param {
            name: name.into(),
            kind: ParamKind::Buffer { elem, access },
        });
        Memory::Global(ParamId(self.k.params.len() as u32 - 1))
    }

    pub fn val(&mut self, name: &str, s: Scalar) -> ExprId {
        self.k.params.push(Param {
            name: name.into(),
            kind: ParamKind::Value(s),
        });
        let p = ParamId(self.k.params.len() as u32 - 1);
        self.e(Expr::Param(p), Type::scalar(s))
    }

    pub fn shared(&mut self, name: &str, elem: Scalar, len: u32) -> Memory {
        self.k.shared.push(SharedArray {
            name: name.into(),
            elem,
            len,
            align: greta_dsl::ir::LDS_ALIGN,
        });
        Memory::Shared(SharedId(self.k.shared.len() as u32 - 1))
    }

    pub fn local(&mut self, name: &str, elem: Scalar, len: u32) -> Memory {
        self.k.locals.push(LocalArray {
            name: name.into(),
            elem,
            len,
        });
        Memory::Local(LocalId(self.k.locals.len() as u32 - 1))
    }

    pub fn e(&mut self, expr: Expr, ty: Type) -> ExprId {
        self.k.exprs.push(ExprNode { expr, ty });
        ExprId(self.k.exprs.len() as u32 - 1)
    }

    pub fn ty(&self, e: ExprId) -> Type {
        self.k.ty(e)
    }

    pub fn u(&mut self, v: u32) -> ExprId {
        self.e(Expr::Const(Const::U32(v)), Type::U32)
    }
    pub fn i(&mut self, v: i32) -> ExprId {
        self.e(Expr::Const(Const::I32(v)), Type::I32)
    }
    pub fn f(&mut self, v: f32) -> ExprId {
        self.e(Expr::Const(Const::F32(v)), Type::F32)
    }
    pub fn tid(&mut self) -> ExprId {
        self.e(Expr::Builtin(Builtin::ThreadIdx(Axis::X)), Type::U32)
    }
    pub fn bid(&mut self) -> ExprId {
        self.e(Expr::Builtin(Builtin::BlockIdx(Axis::X)), Type::U32)
    }
    pub fn bdim(&mut self) -> ExprId {
        self.e(Expr::Builtin(Builtin::BlockDim(Axis::X)), Type::U32)
    }
    pub fn builtin(&mut self, b: Builtin) -> ExprId {
        self.e(Expr::Builtin(b), Type::U32)
    }

    pub fn bin(&mut self, op: BinaryOp, a: ExprId, b: ExprId) -> ExprId {
        let ty = if op.is_comparison() {
            Type {
                scalar: Scalar::Bool,
                ..self.ty(a)
            }
        } else {
            self.ty(a)
        };
        self.e(Expr::Binary(op, a, b), ty)
    }
    pub fn un(&mut self, op: UnaryOp, a: ExprId) -> ExprId {
        let ty = self.ty(a);
        self.e(Expr::Unary(op, a), ty)
    }
    pub fn cast(&mut self, to: Scalar, a: ExprId) -> ExprId {
        let ty = self.ty(a).with_scalar(to);
        self.e(Expr::Cast { to, value: a }, ty)
    }
    pub fn fma(&mut self, a: ExprId, b: ExprId, c: ExprId) -> ExprId {
        let ty = self.ty(a);
        self.e(Expr::Fma(a, b, c), ty)
    }
    pub fn select(&mut self, cond: ExprId, a: ExprId, b: ExprId) -> ExprId {
        let ty = self.ty(a);
        self.e(Expr::Select { cond, a, b }, ty)
    }
    pub fn load(&mut self, mem: Memory, index: ExprId, lanes: u8) -> ExprId {
        let elem = self.k.memory_elem(mem).unwrap();
        self.e(Expr::Load { mem, index, lanes }, Type::vector(elem, lanes))
    }
    pub fn extract(&mut self, vector: ExprId, lane: u8) -> ExprId {
        let ty = Type::scalar(self.ty(vector).scalar);
        self.e(Expr::Extract { vector, lane }, ty)
    }
    pub fn compose(&mut self, xs: Vec<ExprId>) -> ExprId {
        let ty = Type::vector(self.ty(xs[0]).scalar, xs.len() as u8);
        self.e(Expr::Compose(xs), ty)
    }
    pub fn shuffle(&mut self, mode: ShuffleMode, value: ExprId, lane: ExprId) -> ExprId {
        let ty = self.ty(value);
        self.e(Expr::Shuffle { mode, value, lane }, ty)
    }
    pub fn reduce(&mut self, op: ReduceOp, value: ExprId) -> ExprId {
        let ty = self.ty(value);
        self.e(Expr::WaveReduce { op, value }, ty)
    }

    /// `let name = value;` returning the variable's value expression.
    pub fn let_(&mut self, name: &str, value: ExprId) -> (VarId, ExprId) {
        let ty = self.ty(value);
        let var = self.var(name, ty);
        self.stmt(Stmt::Let { var, value });
        let e = self.e(Expr::Var(var), ty);
        (var, e)
    }
    pub fn var(&mut self, name: &str, ty: Type) -> VarId {
        self.k.vars.push(Var {
            name: name.into(),
            ty,
        });
        VarId(self.k.vars.len() as u32 - 1)
    }
    pub fn var_e(&mut self, v: VarId) -> ExprId {
        let ty = self.k.var(v).ty;
        self.e(Expr::Var(v), ty)
    }
    pub fn assign(&mut self, var: VarId, value: ExprId) {
        self.stmt(Stmt::Assign { var, value });
    }
    pub fn store(&mut self, mem: Memory, index: ExprId, value: ExprId) {
        self.stmt(Stmt::Store { mem, index, value });
    }
    pub fn stmt(&mut self, s: Stmt) {
        self.blocks.last_mut().unwrap().push(s);
    }

    /// Open a nested block (the body of an if/for/while).
    pub fn open(&mut self) {
        self.blocks.push(vec![]);
    }
    pub fn close(&mut self) -> Block {
        self.blocks.pop().unwrap()
    }
}
