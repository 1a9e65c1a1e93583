use greta_dsl::prelude::*;

#[kernel]
fn k(y: &mut [f32]) {
    let i = thread_idx().x;
    loop {
        y[i] = 0.0f32;
    }
}

fn main() {}
