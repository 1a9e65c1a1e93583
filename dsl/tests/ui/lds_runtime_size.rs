use greta_dsl::prelude::*;

#[kernel]
fn k(y: &mut [f32], n: u32) {
    let tile = shared::<f32>(n);
    let i = thread_idx().x;
    tile[i] = 0.0f32;
    y[i] = tile[i];
}

fn main() {}
