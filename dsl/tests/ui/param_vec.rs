use greta_dsl::prelude::*;

#[kernel]
fn k(x: Vec<f32>, y: &mut [f32]) {
    let i = thread_idx().x;
    y[i] = 0.0f32;
}

fn main() {}
