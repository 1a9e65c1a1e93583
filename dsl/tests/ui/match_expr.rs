use greta_dsl::prelude::*;

#[kernel]
fn k(y: &mut [f32], #[comptime] mode: u32) {
    let i = thread_idx().x;
    y[i] = match mode {
        0 => 1.0f32,
        _ => 2.0f32,
    };
}

fn main() {}
