//! The portable math (e^x, tanh, sin, cos) for the LLVM backend: [`crate::math`]'s one
//! definition printed as LLVM IR, on top of the family's `exp2`. The functions are written only
//! when the kernel calls one of them (internal and `alwaysinline`; O3 drops those it does not
//! call).

use greta_dsl::ir::UnaryOp;

use super::family::Family;

/// Whether a kernel calls any portable function.
#[derive(Default, Debug)]
pub struct Used(bool);

impl Used {
    /// Records that `op` (exp, tanh, sin or cos) is called; returns the function's name.
    pub fn use_op(&mut self, op: UnaryOp) -> &'static str {
        self.0 = true;
        match op {
            UnaryOp::Exp => "greta_exp",
            UnaryOp::Tanh => "greta_tanh",
            UnaryOp::Sin => "greta_sin",
            _ => "greta_cos",
        }
    }
}

/// The definitions, and the intrinsic declarations they need (name, `declare` line), for the
/// writer's one list of declarations.
pub fn definitions(used: &Used, fam: &Family) -> (String, Vec<(String, String)>) {
    if !used.0 {
        return (String::new(), Vec::new());
    }
    let (mut text, decls) = crate::math::llvm(fam.exp2);
    text.push_str("attributes #1 = { alwaysinline }\n\n");
    (text, decls)
}
