use greta_dsl::prelude::*;

#[kernel]
fn k(x: &[f32], y: &mut [f32]) {
    let i = thread_idx().x;
    let acc = 0.0f32;
    acc = acc + x[i];
    y[i] = acc;
}

fn main() {}
