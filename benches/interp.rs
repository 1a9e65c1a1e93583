//! CPU interpreter speed: RMSNorm over 4096 × 4096 f32 (one block of 256 threads per row), the
//! figure the foundation issue asks for (goal: under 2 s on one core). A benchmark, not a test:
//! it measures and asserts nothing.

use criterion::{criterion_group, criterion_main, Criterion};
use greta_dsl::Target;
use greta_kernels::Inputs;
use std::time::Duration;

fn rmsnorm_4096(c: &mut Criterion) {
    let spec = greta_kernels::by_name("rmsnorm").expect("rmsnorm is in the library");
    let cfg = spec.config("dtype=f32").expect("a valid config");
    let problem = (spec.problem)(&cfg, &Target::GFX942, &[4096, 4096], &mut Inputs::new(1))
        .expect("a valid shape");
    let mut group = c.benchmark_group("interpreter");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("rmsnorm f32 4096x4096 (wave 32)", |b| {
        b.iter(|| problem.run_interpreter(&Target::SM_90).expect("runs"))
    });
    group.finish();
}

criterion_group!(benches, rmsnorm_4096);
criterion_main!(benches);
