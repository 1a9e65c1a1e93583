use greta_dsl::prelude::*;

#[kernel]
fn k(x: &[f32], y: &mut [f32]) {
    let i = thread_idx().x;
    let v: f32 = x[i];
    y[i] = v;
}

fn main() {}
