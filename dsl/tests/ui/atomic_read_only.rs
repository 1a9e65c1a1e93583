use greta_dsl::prelude::*;

#[kernel]
fn k(counts: &[u32]) {
    let old = atomic_add(&counts, 0u32, 1u32);
}

fn main() {}
