use greta_dsl::prelude::*;

#[kernel]
fn scale(x: &[f32], y: &mut [f32], n: u32, s: f32) {
    y[n] = x[n] * s;
}

fn main() {
    // A parameter the kernel gained, or one forgotten: `s` is missing.
    let _ = ScaleArgs { x: "x", y: "y", n: 4u32 };
}
