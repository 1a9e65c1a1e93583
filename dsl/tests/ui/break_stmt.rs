use greta_dsl::prelude::*;

#[kernel]
fn k(y: &mut [f32], n: u32) {
    let mut i = thread_idx().x;
    while i < n {
        y[i] = 0.0f32;
        break;
    }
}

fn main() {}
