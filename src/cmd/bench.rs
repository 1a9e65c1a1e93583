//! `greta bench`: benchmarks.
//!
//! - `greta bench -m MODEL.gguf [-p 512] [-n 128] [-d 0] ...`: llama-bench's model benchmark —
//!   prompt processing and generation speed in tokens/s ([`model`]). Like llama-bench it takes
//!   no subcommand word, so llama-bench command lines carry over.
//! - `greta bench kernels`: per kernel at its benchmark shape (or `--shape`s), the median time of
//!   many launches after warm-up (device events around each launch), the time per launch of the
//!   same launches back to back between one pair of events (`b2b`: what a stream of kernels sees,
//!   where a launch overlaps the tail of the one before), the achieved bandwidth and its fraction
//!   of the floor — the device-to-device copy bandwidth this command measures itself, counting
//!   bytes read and written — and, for kernels that count their flops, TFLOP/s. Inputs rotate
//!   over enough copies to exceed the L2 cache, so no launch finds its data in cache from the
//!   previous one.

use super::device;
use anyhow::{bail, Result};
use greta_dsl::ir::Scalar;
use greta_kernels::{Inputs, KernelSpec};
use greta_runtime::Backend;

mod model;

/// `greta bench kernels ...` or, with no subcommand, `greta bench -m MODEL ...` (a flag before
/// any subcommand word means the model benchmark; `-m` is then required).
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    what: Option<What>,
    #[command(flatten)]
    model: model::ModelArgs,
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
    /// Problem shape instead of the kernel's benchmark shape, e.g. `512,4096,4096` (m,n,k for
    /// the matrix kernels); repeat it for several.
    #[arg(long, short)]
    shape: Vec<String>,
    /// Timed launches per kernel (the median is reported); at least 50.
    #[arg(long, default_value_t = 100)]
    runs: usize,
    /// Untimed launches first.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    #[command(flatten)]
    source: super::source::SourceArgs,
}

pub fn run(args: Args) -> Result<()> {
    match args.what {
        Some(What::Kernels(a)) => kernels(a),
        None => model::run(args.model),
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

/// The issues' goals as a fraction of the copy bandwidth: memory-bound kernels at ≥ 85%, the
/// decode GEMV at ≥ 86%.
fn goal(spec: &KernelSpec) -> Option<f64> {
    match spec.name {
        "rmsnorm" | "rope" | "silu_mul" | "add" => Some(0.85),
        "gemv" | "gemv_q8" => Some(0.86),
        _ => None,
    }
}

fn kernels(args: KernelArgs) -> Result<()> {
    if args.runs < 50 {
        bail!("--runs must be at least 50 (got {})", args.runs);
    }
    let (backend, objects) = args.source.open()?;
    let backend = backend.as_ref();
    let specs = super::specs_on(args.kernel.as_deref(), backend.target())?;
    let copy = copy_bandwidth(backend)?;
    outln!(
        "device: {} ({}); device-to-device copy: {:.0} GB/s (read + write)",
        backend.device_name(),
        backend.kind(),
        copy / 1e9
    );
    outln!(
        "{:<10} {:<5} {:<16} {:>9} {:>9} {:>8} {:>7} {:>7} {:>8} {:>6}  config",
        "kernel",
        "dtype",
        "shape",
        "median",
        "b2b",
        "GB/s",
        "% copy",
        "b2b %",
        "TFLOP/s",
        "goal"
    );
    let shapes: Vec<Vec<u32>> = args
        .shape
        .iter()
        .map(|s| parse_shape(s))
        .collect::<Result<_>>()?;
    for spec in specs {
        let shapes = if shapes.is_empty() {
            vec![spec.bench_shape.to_vec()]
        } else {
            shapes.clone()
        };
        for shape in &shapes {
            bench_one(&args, backend, &*objects, spec, shape, copy)?;
        }
    }
    Ok(())
}

/// `m,n,k` (or any comma-separated sizes) as numbers.
pub fn parse_shape(text: &str) -> Result<Vec<u32>> {
    text.split(',')
        .map(|d| {
            d.trim()
                .parse::<u32>()
                .map_err(|_| anyhow::anyhow!("--shape `{text}`: `{d}` is not a size"))
        })
        .collect()
}

/// `cfg` at `shape`, or the tuning DB's winner for it on this device (`greta tune --kernel
/// NAME --shape ... --via` records it, for code compiled by `via`), and whether it is the winner.
fn tuned_config(
    backend: &dyn Backend,
    via: greta_runtime::Via,
    spec: &'static KernelSpec,
    cfg: greta_kernels::Config,
    shape: &[u32],
) -> Result<(greta_kernels::Config, bool)> {
    let Some(db) = super::tune::db_for(via)? else {
        return Ok((cfg, false));
    };
    let site = greta_model::llama::Site {
        spec,
        base: cfg.clone(),
        pinned: &[],
        shape: shape.to_vec(),
        role: String::new(),
    };
    let key = site.key(
        backend.target(),
        via,
        &backend.device_name(),
        &backend.driver_version(),
    )?;
    match db.lookup(&key).map(|e| spec.config(&e.best)) {
        Some(Ok(best)) => {
            let tuned = greta_model::llama::tuning::with_winner(spec, &cfg, &best, &[]);
            Ok((tuned, true))
        }
        _ => Ok((cfg, false)),
    }
}

fn bench_one(
    args: &KernelArgs,
    backend: &dyn Backend,
    objects: &device::Objects<'_>,
    spec: &'static KernelSpec,
    shape: &[u32],
    copy: f64,
) -> Result<()> {
    {
        let overrides = [format!("dtype={}", args.dtype), args.config.clone()]
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(",");
        let cfg = spec.config(&overrides)?;
        let (cfg, tuned) = tuned_config(backend, args.source.via(), spec, cfg, shape)?;
        let problem = (spec.problem)(&cfg, backend.target(), shape, &mut Inputs::for_timing(7))?;
        let kernel = device::load(backend, objects, &problem.kernel)?;
        let sets = device::rotation_sets(&problem);
        let mut on_device = vec![device::upload(backend, kernel, &problem)?];
        for _ in 1..sets {
            let kernel = device::load(backend, objects, &problem.kernel)?;
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
        let b2b = backend.time_back_to_back(args.runs, &mut |i| {
            device::launch(backend, &on_device[i % sets], &problem).map_err(|e| {
                greta_runtime::RuntimeError::Launch {
                    kernel: problem.kernel.name.clone(),
                    message: format!("{e:#}"),
                }
            })
        })?;
        let bw = problem.min_bytes as f64 / (t * 1e-3);
        let bw_b2b = problem.min_bytes as f64 / (b2b * 1e-3);
        let shape = shape
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join("x");
        let tflops = match problem.flops {
            0 => "-".to_string(),
            f => format!("{:.1}", f as f64 / (t * 1e-3) / 1e12),
        };
        outln!(
            "{:<10} {:<5} {:<16} {:>7.1}us {:>7.1}us {:>8.0} {:>6.1}% {:>6.1}% {:>8} {:>6}  {}",
            spec.name,
            cfg.dtype("dtype"),
            shape,
            t * 1e3,
            b2b * 1e3,
            bw / 1e9,
            100.0 * bw / copy,
            100.0 * bw_b2b / copy,
            tflops,
            goal(spec).map_or("-".to_string(), |g| format!("{:.0}%", g * 100.0)),
            format!("{}{}", problem.config, if tuned { " (tuned)" } else { "" })
        );
    }
    Ok(())
}
