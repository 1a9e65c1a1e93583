//! Every kernel of the library, on the CPU interpreter, against its plain-Rust reference: every
//! float dtype, awkward shapes, the default configuration and the extremes of its tunable
//! parameters, on both targets' wave sizes (64 for gfx942, 32 for sm_90).

use greta_dsl::ir::ConfigValue;
use greta_dsl::Target;
use greta_kernels::{all, Inputs, KernelSpec};

fn check(spec: &KernelSpec, overrides: &str, target: &'static Target, seed: u64) {
    let cfg = spec.config(overrides).unwrap();
    for shape in spec.test_shapes {
        let mut inputs = Inputs::new(seed);
        let problem = (spec.problem)(&cfg, target, shape, &mut inputs)
            .unwrap_or_else(|e| panic!("{} [{cfg}] {shape:?}: {e}", spec.name));
        greta_dsl::valid::validate(&problem.kernel).unwrap_or_else(|e| panic!("{e}"));
        let out = problem
            .run_interpreter(target)
            .unwrap_or_else(|e| panic!("{} [{cfg}] {shape:?} on {target}: {e}", spec.name));
        let refs: Vec<_> = out.iter().map(Option::as_ref).collect();
        let cmp = problem
            .check(&refs)
            .unwrap_or_else(|e| panic!("{} [{cfg}] {shape:?} on {target}: {e}", spec.name));
        assert!(cmp.checked > 0);
    }
}

fn sweep(spec: &KernelSpec) {
    for (i, dtype) in spec.dtypes().iter().map(|d| d.name()).enumerate() {
        let targets: Vec<&'static Target> = Target::ALL
            .into_iter()
            .filter(|t| (spec.available)(t))
            .collect();
        assert!(!targets.is_empty(), "{} runs on no target", spec.name);
        for &target in &targets {
            check(spec, &format!("dtype={dtype}"), target, 1 + i as u64);
        }
        // The extremes of each tunable parameter (one at a time) on the first target that has
        // the kernel (wave 64 where it exists).
        for p in spec.params.iter().filter(|p| p.name != "dtype") {
            let values = p.values();
            for v in [values.first(), values.last()].into_iter().flatten() {
                if let ConfigValue::U32(n) = v {
                    if p.name == "vec" && n * spec_elem_bytes(dtype) > 16 {
                        continue;
                    }
                }
                check(
                    spec,
                    &format!("dtype={dtype},{}={v}", p.name),
                    targets[0],
                    7,
                );
            }
        }
    }
}

fn spec_elem_bytes(dtype: &str) -> u32 {
    if dtype == "f32" {
        4
    } else {
        2
    }
}

#[test]
fn every_kernel_is_listed_once() {
    let mut names: Vec<_> = all().iter().map(|k| k.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), all().len());
}

macro_rules! kernel_tests {
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            sweep(greta_kernels::by_name(stringify!($name)).unwrap());
        }
    )*};
}

kernel_tests!(
    rmsnorm,
    rope,
    rope_cache,
    silu_mul,
    add,
    embedding,
    softmax,
    matmul,
    matmul_q8,
    gemm,
    gemm_q8,
    gemm_wg,
    gemm_wg_q8,
    gemv,
    gemv_q8,
    gemv_norm,
    gemv_glu,
    embedding_q8,
    attn_scores,
    attn_values,
    attn_decode,
    attn_combine,
    attn_flash,
    attn_qlds,
    attn_mma,
    copy
);
