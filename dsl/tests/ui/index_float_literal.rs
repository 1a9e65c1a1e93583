use greta_dsl::prelude::*;

#[kernel]
fn k(x: &[f32], y: &mut [f32]) {
    let i = thread_idx().x;
    y[i] = x[1.5f32];
}

fn main() {}
