use greta_dsl::prelude::*;

#[kernel]
fn k(y: &mut [f32]) {
    let inst = matrix_inst::<f16>();
    let a = fragments::<f16, MatA>(inst, 1);
    let b = fragments::<f16, MatB>(inst, 1);
    let acc = fragments::<f32, Accum>(inst, 1);
    mma(b.at(0), a.at(0), acc.at(0), acc.at(0));
    y[0] = acc.at(0).get(0);
}

fn main() {}
