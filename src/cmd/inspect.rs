//! `greta inspect [--json]`: compile every kernel × target × configuration (by default the
//! default configuration of each element type the kernel takes) and report the resources the
//! toolchain reports: registers, LDS, scratch (AMD) and spills (NVIDIA); on gfx942 the waves per
//! SIMD that its registers (arch VGPRs + AGPRs) and LDS allow; and the matrix instructions in
//! the code (`v_mfma` in the gfx942 code object, `mma`/`wgmma` in the sm_90 PTX).
//!
//! `--via hip|llvm` picks the lowering that compiles (HIP by default); `--via both` compiles
//! each kernel both ways and prints the two rows one under the other (the `via` column, and a
//! `via` field per JSON row).

use anyhow::{bail, Result};
use greta_codegen::{Toolchain, Via};
use greta_dsl::Target;
use greta_kernels::{Config, KernelSpec};
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// Only this kernel.
    #[arg(long, short)]
    kernel: Option<String>,
    /// Only this target.
    #[arg(long, short)]
    target: Option<String>,
    /// Tunable parameters as key=value,... applied to every selected kernel. Without `dtype`,
    /// each float dtype gets a row.
    #[arg(long, short, default_value = "")]
    config: String,
    /// The lowering that compiles: hip (HIP C++ through clang), llvm (LLVM IR in process), or
    /// both (a row for each, side by side).
    #[arg(long, value_enum, default_value_t = ViaChoice::Hip)]
    via: ViaChoice,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ViaChoice {
    /// HIP C++ (the CUDA dialect for NVIDIA) compiled by clang.
    Hip,
    /// LLVM IR compiled in process.
    Llvm,
    /// Both lowerings, one row each.
    Both,
}

impl ViaChoice {
    fn vias(self) -> &'static [Via] {
        match self {
            ViaChoice::Hip => &[Via::Hip],
            ViaChoice::Llvm => &[Via::Llvm],
            ViaChoice::Both => &Via::ALL,
        }
    }
}

/// One row: the field names are the JSON interface.
#[derive(Serialize)]
struct Row {
    kernel: &'static str,
    target: &'static str,
    via: &'static str,
    config: String,
    lds_bytes: u32,
    scratch_bytes: Option<u32>,
    spill_bytes: Option<u32>,
    vgpr: Option<u32>,
    sgpr: Option<u32>,
    agpr: Option<u32>,
    /// gfx942: waves one SIMD can hold, the smaller of what VGPR+AGPR and LDS allow.
    waves_per_simd: Option<u32>,
    regs: Option<u32>,
    /// Matrix-core instructions in the code.
    matrix_instructions: u32,
}

struct Job {
    spec: &'static KernelSpec,
    config: Config,
    target: &'static Target,
    via: Via,
}

fn jobs(args: &Args) -> Result<Vec<Job>> {
    let specs: Vec<&'static KernelSpec> = match &args.kernel {
        Some(name) => vec![super::kernel_spec(name)?],
        None => greta_kernels::all().to_vec(),
    };
    let targets: Vec<&'static Target> = match &args.target {
        Some(name) => vec![super::target(name)?],
        None => Target::ALL.to_vec(),
    };
    if let (Some(name), [target]) = (&args.kernel, targets.as_slice()) {
        super::specs_on(Some(name), target)?;
    }
    let mut jobs = Vec::new();
    for spec in specs {
        for config in super::dtype_configs(spec, &args.config)? {
            for &target in targets.iter().filter(|t| (spec.available)(t)) {
                for &via in args.via.vias() {
                    jobs.push(Job {
                        spec,
                        config: config.clone(),
                        target,
                        via,
                    });
                }
            }
        }
    }
    Ok(jobs)
}

fn inspect(job: &Job) -> Result<Row> {
    let kernel = super::build(job.spec, &job.config, job.target)?;
    let compiled = greta_codegen::compile_with(Toolchain::global(), &kernel, job.target, job.via)?;
    let r = compiled.resources;
    let waves_per_simd = match (r.vgpr, r.agpr) {
        (Some(v), agpr) => {
            // Arch VGPRs are allocated in fours and AGPRs follow them in the same file.
            let regs = v.next_multiple_of(4) + agpr.unwrap_or(0);
            let threads = kernel
                .block_size
                .map_or(job.target.max_block_threads, |b| b.iter().product());
            let by_regs = job.target.waves_per_simd_by_registers(regs);
            let by_lds = job.target.waves_per_simd_by_lds(r.lds_bytes, threads);
            Some(by_regs.min(by_lds))
        }
        (None, _) => None,
    };
    Ok(Row {
        kernel: job.spec.name,
        target: job.target.name,
        via: job.via.name(),
        config: job.config.to_string(),
        lds_bytes: r.lds_bytes,
        scratch_bytes: r.scratch_bytes,
        spill_bytes: r.spill_bytes,
        vgpr: r.vgpr,
        sgpr: r.sgpr,
        agpr: r.agpr,
        waves_per_simd,
        regs: r.regs,
        matrix_instructions: r.matrix_instructions,
    })
}

pub fn run(args: Args) -> Result<()> {
    let jobs = jobs(&args)?;
    let bar = super::parallel::bar("compiling", jobs.len());
    let results = super::parallel::map(
        &jobs,
        &bar,
        |job| format!("{} {} via {}", job.spec.name, job.target, job.via),
        inspect,
    );

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (job, result) in jobs.iter().zip(results) {
        match result {
            Ok(row) => rows.push(row),
            Err(e) => failures.push(format!(
                "{} [{}] on {} via {}: {e:#}",
                job.spec.name, job.config, job.target, job.via
            )),
        }
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_table(&rows)?;
    }
    for row in &rows {
        if row.scratch_bytes.unwrap_or(0) > 0 || row.spill_bytes.unwrap_or(0) > 0 {
            errln!(
                "greta: warning: {} [{}] on {} via {} uses scratch/spills",
                row.kernel,
                row.config,
                row.target,
                row.via
            );
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} of {} compilations failed:\n{}",
            failures.len(),
            jobs.len(),
            failures.join("\n")
        );
    }
    Ok(())
}

fn print_table(rows: &[Row]) -> Result<()> {
    let opt = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
    outln!(
        "{:<12} {:<7} {:<4} {:>6} {:>5} {:>5} {:>5} {:>7} {:>5} {:>5} {:>6} {:>4}  config",
        "kernel",
        "target",
        "via",
        "lds",
        "vgpr",
        "sgpr",
        "agpr",
        "scratch",
        "waves",
        "regs",
        "spills",
        "mma"
    );
    for r in rows {
        outln!(
            "{:<12} {:<7} {:<4} {:>6} {:>5} {:>5} {:>5} {:>7} {:>5} {:>5} {:>6} {:>4}  {}",
            r.kernel,
            r.target,
            r.via,
            r.lds_bytes,
            opt(r.vgpr),
            opt(r.sgpr),
            opt(r.agpr),
            opt(r.scratch_bytes),
            opt(r.waves_per_simd),
            opt(r.regs),
            opt(r.spill_bytes),
            r.matrix_instructions,
            r.config
        );
    }
    Ok(())
}
