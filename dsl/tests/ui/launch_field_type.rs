use greta_dsl::prelude::*;

#[kernel]
fn scale(x: &[f32], y: &mut [f32], n: u32, s: f32) {
    y[n] = x[n] * s;
}

fn main() {
    let len: usize = 4;
    // `n` is a u32 in the signature; a usize needs a conversion.
    let _ = ScaleArgs { x: "x", y: "y", n: len, s: 0.5f32 };
}
