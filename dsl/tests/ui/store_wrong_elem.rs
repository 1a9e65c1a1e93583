use greta_dsl::prelude::*;

#[kernel]
fn k(x: &[f32], y: &mut [f16]) {
    let i = thread_idx().x;
    y[i] = x[i];
}

fn main() {}
