use greta_dsl::prelude::*;

#[kernel]
fn k(x: &[f32], y: &mut [f32]) {
    let i = thread_idx().x;
    let double = |v: f32| v * 2.0;
    y[i] = x[i];
}

fn main() {}
