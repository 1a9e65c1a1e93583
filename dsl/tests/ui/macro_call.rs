use greta_dsl::prelude::*;

#[kernel]
fn k(x: &[f32]) {
    let v = x[thread_idx().x];
    println!("{:?}", v);
}

fn main() {}
