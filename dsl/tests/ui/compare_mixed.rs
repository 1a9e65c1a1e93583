use greta_dsl::prelude::*;

#[kernel]
fn k(a: &[f16], b: &[f32], y: &mut [f32]) {
    let i = thread_idx().x;
    let h = a[i];
    let f = b[i];
    if h < f {
        y[i] = f;
    }
}

fn main() {}
