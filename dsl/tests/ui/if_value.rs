use greta_dsl::prelude::*;

#[kernel]
fn k(x: &[f32], y: &mut [f32]) {
    let i = thread_idx().x;
    let v = x[i];
    y[i] = if v > 0.0f32 { v } else { 0.0f32 };
}

fn main() {}
