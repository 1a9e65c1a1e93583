use greta_dsl::prelude::*;

#[device]
fn relu(v: Val<f32>) -> Val<f32> {
    if v < 0.0f32 {
        return 0.0f32;
    }
    v
}

fn main() {}
