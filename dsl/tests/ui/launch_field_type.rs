use greta_dsl::prelude::*;

#[kernel]
fn scale(x: &[f32], y: &mut [f32], n: u32, s: f32, #[comptime] block: u32) {
    block_size(block);
    let i = thread_idx().x;
    if i < n {
        y[i] = x[i] * s;
    }
}

fn main() {
    let len: usize = 4;
    // `n` is a u32 in the signature; a usize needs a conversion.
    let _ = ScaleArgs { x: "x", y: "y", n: len, s: 0.5f32 };
}
