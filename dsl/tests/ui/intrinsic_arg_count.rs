use greta_dsl::prelude::*;

#[kernel]
fn k(a: &[f32], b: &[f32], y: &mut [f32]) {
    let i = thread_idx().x;
    y[i] = rsqrt(a[i], b[i]);
}

fn main() {}
