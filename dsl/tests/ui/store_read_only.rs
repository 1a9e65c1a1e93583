use greta_dsl::prelude::*;

#[kernel]
fn k(x: &[f32]) {
    let i = thread_idx().x;
    x[i] = 1.0f32;
}

fn main() {}
