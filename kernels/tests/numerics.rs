//! Every kernel of the library, on the CPU interpreter, against its plain-Rust reference: every
//! float dtype, awkward shapes, the default configuration and the extremes of its tunable
//! parameters, on both targets' wave sizes (64 for gfx942, 32 for sm_90).
//!
//! Every kernel of [`all`] is swept, with no second list to keep: one test cuts each kernel's
//! sweep into its configurations ([`jobs`]) and runs them on a pool of
//! `available_parallelism()` threads pulling from one shared index, so the slowest kernels'
//! configurations spread over the threads instead of each kernel taking one test thread. A
//! failure is collected (the rest still run) and the test fails at the end naming every failing
//! kernel, with each failing configuration's message. `GRETA_NUMERICS_KERNELS=rope,add` sweeps
//! only those kernels.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

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

/// One configuration of one kernel's sweep: [`check`]'s arguments.
struct Job {
    spec: &'static KernelSpec,
    overrides: String,
    target: &'static Target,
    seed: u64,
}

/// A kernel's sweep: each float dtype at the default configuration on every target that has the
/// kernel, and the extremes of each tunable parameter (one at a time) on the first target that
/// has it (wave 64 where it exists).
fn jobs(spec: &'static KernelSpec) -> Vec<Job> {
    let targets: Vec<&'static Target> = Target::ALL
        .into_iter()
        .filter(|t| (spec.available)(t))
        .collect();
    assert!(!targets.is_empty(), "{} runs on no target", spec.name);
    let mut jobs = Vec::new();
    for (i, dtype) in spec.dtypes().iter().map(|d| d.name()).enumerate() {
        for &target in &targets {
            jobs.push(Job {
                spec,
                overrides: format!("dtype={dtype}"),
                target,
                seed: 1 + i as u64,
            });
        }
        for p in spec.params.iter().filter(|p| p.name != "dtype") {
            let values = p.values();
            for v in [values.first(), values.last()].into_iter().flatten() {
                if let ConfigValue::U32(n) = v {
                    if p.name == "vec" && n * spec_elem_bytes(dtype) > 16 {
                        continue;
                    }
                }
                jobs.push(Job {
                    spec,
                    overrides: format!("dtype={dtype},{}={v}", p.name),
                    target: targets[0],
                    seed: 7,
                });
            }
        }
    }
    jobs
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

/// The kernels to sweep: all of them, or those `GRETA_NUMERICS_KERNELS` names (an unknown
/// name is an error, not a silently empty sweep).
fn selected() -> Vec<&'static KernelSpec> {
    match std::env::var("GRETA_NUMERICS_KERNELS") {
        Ok(names) if !names.trim().is_empty() => names
            .split(',')
            .map(|n| {
                greta_kernels::by_name(n.trim())
                    .unwrap_or_else(|| panic!("GRETA_NUMERICS_KERNELS: no kernel `{}`", n.trim()))
            })
            .collect(),
        _ => all().to_vec(),
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".into()
    }
}

#[test]
fn every_kernel_matches_its_reference() {
    let kernels = selected();
    let jobs: Vec<Job> = kernels.iter().flat_map(|&spec| jobs(spec)).collect();
    let next = AtomicUsize::new(0);
    // (kernel, configuration, target, message) of each failing job.
    let failures = Mutex::new(Vec::<(&str, String, &Target, String)>::new());
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len());
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let run = || check(job.spec, &job.overrides, job.target, job.seed);
                    if let Err(payload) = catch_unwind(AssertUnwindSafe(run)) {
                        let message = panic_message(payload.as_ref());
                        let failure = (job.spec.name, job.overrides.clone(), job.target, message);
                        failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(failure);
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
    eprintln!(
        "{} kernels, {} configurations on {threads} threads in {:.1} s",
        kernels.len(),
        jobs.len(),
        start.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        let mut failing: Vec<&str> = failures.iter().map(|f| f.0).collect();
        failing.sort();
        failing.dedup();
        let details: Vec<String> = failures
            .iter()
            .map(|(kernel, cfg, target, message)| {
                format!("  {kernel} [{cfg}] on {target}: {message}")
            })
            .collect();
        panic!(
            "{} of {} kernels failed: {}\n{}",
            failing.len(),
            kernels.len(),
            failing.join(", "),
            details.join("\n")
        );
    }
}
