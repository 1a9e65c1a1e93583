use greta_dsl::prelude::*;

#[kernel]
fn scale(x: &[f32], y: &mut [f32], n: u32, s: f32) {
    y[n] = x[n] * s;
}

fn main() {
    // `count` is not a parameter of `scale` (it is `n`).
    let _ = ScaleArgs { x: "x", y: "y", count: 4u32, s: 0.5f32 };
}
