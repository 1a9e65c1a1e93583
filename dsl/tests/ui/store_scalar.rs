use greta_dsl::prelude::*;

#[kernel]
fn k(s: f32) {
    let i = thread_idx().x;
    s[i] = 1.0f32;
}

fn main() {}
