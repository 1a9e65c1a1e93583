use greta_dsl::prelude::*;

#[kernel]
fn k(x: &[f32], y: &mut [f32], v: f32) {
    let i = thread_idx().x;
    y[i] = x[v];
}

fn main() {}
