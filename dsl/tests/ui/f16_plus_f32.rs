use greta_dsl::prelude::*;

#[kernel]
fn k(a: &[f16], b: &[f32], y: &mut [f32]) {
    let i = thread_idx().x;
    y[i] = a[i] + b[i];
}

fn main() {}
