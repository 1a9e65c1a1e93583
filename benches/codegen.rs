//! Code generation speed: IR build + verify + HIP emission for every kernel and target (the
//! part greta owns; clang and ptxas time is the toolchain's). A benchmark, not a test.

use criterion::{criterion_group, criterion_main, Criterion};
use greta_dsl::Target;

fn emit_all(c: &mut Criterion) {
    c.bench_function("build+verify+emit all kernels, both targets", |b| {
        b.iter(|| {
            for spec in greta_kernels::all() {
                for target in Target::ALL.into_iter().filter(|t| (spec.available)(t)) {
                    let kernel = (spec.build)(&spec.default_config(), target).expect("builds");
                    greta_dsl::valid::validate(&kernel).expect("valid");
                    greta_codegen::emit_source(&kernel, target, greta_codegen::Via::Hip)
                        .expect("emits");
                }
            }
        })
    });
}

criterion_group!(benches, emit_all);
criterion_main!(benches);
