//! The executor's own checks of ill-typed IR, reached by skipping the verifier: whatever slips
//! past it must come out as `InterpError::Malformed`, never as a panic.

use super::*;
use crate::ir::*;

fn kernel(params: Vec<Param>, exprs: Vec<(Expr, Type)>, body: Vec<Stmt>) -> Kernel {
    Kernel {
        name: "bad".into(),
        target: &Target::SM_90,
        config: vec![],
        params,
        vars: vec![Var {
            name: "v".into(),
            ty: Type::U32,
        }],
        shared: vec![],
        locals: vec![],
        exprs: exprs
            .into_iter()
            .map(|(expr, ty)| ExprNode { expr, ty })
            .collect(),
        body,
        block_size: None,
    }
}

fn out_param(access: Access) -> Vec<Param> {
    vec![Param {
        name: "out".into(),
        kind: ParamKind::Buffer {
            elem: Scalar::F32,
            access,
        },
    }]
}

fn malformed(k: &Kernel) -> String {
    let mut b = Buffer::zeros(Scalar::F32, 4).unwrap();
    match run_unvalidated(
        k,
        &Target::SM_90,
        LaunchDims::linear(1, 4),
        &mut [Arg::Write(&mut b)],
    ) {
        Err(InterpError::Malformed { kernel, detail }) => {
            assert_eq!(kernel, "bad");
            detail
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
}

const TID: (Expr, Type) = (Expr::Builtin(Builtin::ThreadIdx(Axis::X)), Type::U32);

#[test]
fn mixed_operand_types() {
    let k = kernel(
        out_param(Access::ReadWrite),
        vec![
            TID,
            (Expr::Const(Const::F32(1.0)), Type::F32),
            (Expr::Binary(BinaryOp::Add, ExprId(0), ExprId(1)), Type::F32),
        ],
        vec![Stmt::Store {
            mem: Memory::Global(ParamId(0)),
            index: ExprId(0),
            value: ExprId(2),
        }],
    );
    assert!(malformed(&k).contains("u32 and f32"));
}

#[test]
fn store_to_read_only_buffer() {
    let k = kernel(
        out_param(Access::Read),
        vec![TID, (Expr::Const(Const::F32(1.0)), Type::F32)],
        vec![Stmt::Store {
            mem: Memory::Global(ParamId(0)),
            index: ExprId(0),
            value: ExprId(1),
        }],
    );
    assert!(malformed(&k).contains("read-only"));
}

#[test]
fn dangling_ids() {
    let k = kernel(
        out_param(Access::ReadWrite),
        vec![TID],
        vec![Stmt::Store {
            mem: Memory::Global(ParamId(0)),
            index: ExprId(0),
            value: ExprId(9),
        }],
    );
    assert!(malformed(&k).contains("out of range"));
    let k = kernel(
        out_param(Access::ReadWrite),
        vec![TID],
        vec![Stmt::Store {
            mem: Memory::Shared(SharedId(3)),
            index: ExprId(0),
            value: ExprId(0),
        }],
    );
    malformed(&k);
    let k = kernel(
        out_param(Access::ReadWrite),
        vec![TID],
        vec![Stmt::Let {
            var: VarId(7),
            value: ExprId(0),
        }],
    );
    malformed(&k);
    let k = kernel(
        out_param(Access::ReadWrite),
        vec![(Expr::Param(ParamId(0)), Type::F32)],
        vec![Stmt::Let {
            var: VarId(0),
            value: ExprId(0),
        }],
    );
    malformed(&k);
}

#[test]
fn ops_on_wrong_types() {
    // neg of u32; a float math op on u32; a bool condition that is u32; extract past the end.
    for e in [
        (Expr::Unary(UnaryOp::Neg, ExprId(0)), Type::U32),
        (Expr::Unary(UnaryOp::Exp2, ExprId(0)), Type::U32),
        (
            Expr::Extract {
                vector: ExprId(0),
                lane: 1,
            },
            Type::U32,
        ),
        (
            Expr::WaveReduce {
                op: ReduceOp::Sum,
                value: ExprId(0),
            },
            Type::F32,
        ),
    ] {
        let k = kernel(
            out_param(Access::ReadWrite),
            vec![TID, e],
            vec![Stmt::Let {
                var: VarId(0),
                value: ExprId(1),
            }],
        );
        malformed(&k);
    }
    let k = kernel(
        out_param(Access::ReadWrite),
        vec![TID],
        vec![Stmt::If {
            cond: ExprId(0),
            then: vec![],
            otherwise: vec![],
        }],
    );
    assert!(malformed(&k).contains("`if` condition"));
}
