use greta_dsl::prelude::*;

#[kernel]
fn k(y: &mut [f32], #[comptime] n: u32) {
    let i = thread_idx().x;
    if let 4 = n {
        y[i] = 0.0f32;
    }
}

fn main() {}
