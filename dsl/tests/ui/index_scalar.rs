use greta_dsl::prelude::*;

#[kernel]
fn k(s: f32, y: &mut [f32]) {
    let i = thread_idx().x;
    y[i] = s[i];
}

fn main() {}
