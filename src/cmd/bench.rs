//! `greta bench kernels`: per kernel at its benchmark shape (4096 × 4096 activations), the
//! median time of many launches after warm-up (device events around each launch), the achieved
//! bandwidth, and its fraction of the floor: the device-to-device copy bandwidth this command
//! measures itself, counting bytes read and written. Inputs rotate over enough copies to exceed
//! the L2 cache, so no launch finds its data in cache from the previous one.

use super::device;
use anyhow::{bail, Result};
use greta_dsl::ir::Scalar;
use greta_kernels::{Inputs, KernelSpec};
use greta_runtime::Backend;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Time every kernel of the library at its benchmark shape.
    Kernels(KernelArgs),
}

#[derive(clap::Args)]
struct KernelArgs {
    /// Only this kernel.
    #[arg(long, short)]
    kernel: Option<String>,
    /// Element type.
    #[arg(long, default_value = "f16")]
    dtype: String,
    /// Extra tunable parameters (key=value,...), e.g. block=512.
    #[arg(long, short, default_value = "")]
    config: String,
    /// Timed launches per kernel (the median is reported); at least 50.
    #[arg(long, default_value_t = 100)]
    runs: usize,
    /// Untimed launches first.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    #[command(flatten)]
    source: super::source::SourceArgs,
}

/// Bytes the rotating input sets must exceed together: more than any current L2 (H100/H200
/// 50–60 MB, MI300X 256 MB of Infinity Cache is not L2 and is not defeated here).
const ROTATE_BYTES: u64 = 128 << 20;

pub fn run(args: Args) -> Result<()> {
    match args.what {
        What::Kernels(a) => kernels(a),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Device-to-device copy bandwidth in bytes/s (read + write), the memory-bound floor.
fn copy_bandwidth(backend: &dyn Backend) -> Result<f64> {
    let len = 64 << 20; // 256 MiB of u32
    let a = backend.alloc(Scalar::U32, len)?;
    let b = backend.alloc(Scalar::U32, len)?;
    for _ in 0..5 {
        backend.copy(&b, &a)?;
    }
    let times = backend.time_each(30, &mut |_| backend.copy(&b, &a))?;
    Ok(2.0 * a.size_bytes() as f64 / (median(times) * 1e-3))
}

/// The goal from the runtime issue: memory-bound kernels at ≥ 85% of the copy bandwidth.
fn goal(spec: &KernelSpec) -> Option<f64> {
    matches!(spec.name, "rmsnorm" | "rope" | "silu_mul" | "add").then_some(0.85)
}

fn kernels(args: KernelArgs) -> Result<()> {
    if args.runs < 50 {
        bail!("--runs must be at least 50 (got {})", args.runs);
    }
    let (backend, objects) = args.source.open()?;
    let backend = backend.as_ref();
    let specs = match &args.kernel {
        Some(name) => vec![super::kernel_spec(name)?],
        None => greta_kernels::all().to_vec(),
    };
    let copy = copy_bandwidth(backend)?;
    println!(
        "device: {} ({}); device-to-device copy: {:.0} GB/s (read + write)",
        backend.device_name(),
        backend.kind(),
        copy / 1e9
    );
    println!(
        "{:<10} {:<5} {:<16} {:<30} {:>9} {:>8} {:>7} {:>6}",
        "kernel", "dtype", "shape", "config", "median", "GB/s", "% copy", "goal"
    );
    for spec in specs {
        let overrides = [format!("dtype={}", args.dtype), args.config.clone()]
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(",");
        let cfg = spec.config(&overrides)?;
        let problem = (spec.problem)(
            &cfg,
            backend.target(),
            spec.bench_shape,
            &mut Inputs::new(7),
        )?;
        let kernel = device::load(backend, &*objects, &problem.kernel)?;
        let sets = (ROTATE_BYTES / problem.min_bytes.max(1) + 1).clamp(2, 16) as usize;
        let mut on_device = vec![device::upload(backend, kernel, &problem)?];
        for _ in 1..sets {
            let kernel = device::load(backend, &*objects, &problem.kernel)?;
            on_device.push(device::upload(backend, kernel, &problem)?);
        }
        for i in 0..args.warmup {
            device::launch(backend, &on_device[i % sets], &problem)?;
        }
        backend.synchronize()?;
        let times = backend.time_each(args.runs, &mut |i| {
            device::launch(backend, &on_device[i % sets], &problem).map_err(|e| {
                greta_runtime::RuntimeError::Launch {
                    kernel: problem.kernel.name.clone(),
                    message: format!("{e:#}"),
                }
            })
        })?;
        let t = median(times);
        let bw = problem.min_bytes as f64 / (t * 1e-3);
        let shape = spec
            .bench_shape
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join("x");
        println!(
            "{:<10} {:<5} {:<16} {:<30} {:>7.1}us {:>8.0} {:>6.1}% {:>6}",
            spec.name,
            args.dtype,
            shape,
            cfg.to_string(),
            t * 1e3,
            bw / 1e9,
            100.0 * bw / copy,
            goal(spec).map_or("-".to_string(), |g| format!("{:.0}%", g * 100.0))
        );
    }
    Ok(())
}
