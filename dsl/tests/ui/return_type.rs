use greta_dsl::prelude::*;

#[kernel]
fn k(x: &[f32]) -> f32 {
    x[thread_idx().x]
}

fn main() {}
