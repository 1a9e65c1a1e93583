use greta_dsl::prelude::*;

#[kernel]
fn k(y: &mut [f32], #[comptime] scale: f32) {
    let i = thread_idx().x;
    y[i] = y[i] * scale;
}

fn main() {}
