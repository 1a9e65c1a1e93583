//! `greta build --target T -o DIR [--via hip|llvm] [--config k=v,...]`: compile every kernel of
//! the library (at
//! its default configuration, once per float dtype, plus the variants its test shapes need) for
//! one target, through the compile cache,
//! into a code-object bundle that a GPU machine without a compiler can load.
//!
//! The cache makes a repeated build cheap: a second build with the same `GRETA_CACHE_DIR`
//! compiles nothing, and the summary line says so ("N kernels, M compiled, K from cache").
//!
//! `--via` picks the lowering (HIP by default); the bundle records it, and only a run with the
//! same `--via` loads it.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use greta_dsl::Target;
use greta_kernels::{Config, KernelSpec};
use greta_runtime::cache::{CacheOutcome, CompileCache};
use greta_runtime::{BundleWriter, CodeObject};

#[derive(clap::Args)]
pub struct Args {
    /// The GPU target: sm_90 (NVIDIA H100/H200, cubins) or gfx942 (AMD MI300X, hsaco).
    #[arg(long, short)]
    target: String,
    /// The bundle directory to write (replaced if it is already a bundle).
    #[arg(long, short)]
    output: PathBuf,
    /// Tunable parameters as key=value,... applied to every selected kernel. Without `dtype`,
    /// each element type the kernel takes gets an entry. Repeat it for several configurations
    /// in one bundle (a tuning sweep for a GPU machine without a compiler).
    #[arg(long, short)]
    config: Vec<String>,
    /// Also every kernel configuration this GGUF model runs (for `greta run` on a GPU machine
    /// that has no compiler).
    #[arg(long, short)]
    model: Vec<PathBuf>,
    /// Activation types to bundle the models' kernels for (repeatable; default: each model's
    /// own, see `greta run --dtype`).
    #[arg(long)]
    dtype: Vec<String>,
    /// Only this kernel (e.g. to bundle a configuration only it has).
    #[arg(long, short)]
    kernel: Option<String>,
    /// How the kernels are compiled: hip (HIP C++ through clang) or llvm (LLVM IR in process).
    /// Runs that load the bundle must ask for the same --via.
    #[arg(long, value_enum, default_value_t)]
    via: super::ViaArg,
}

struct Job {
    spec: &'static KernelSpec,
    config: Config,
}

fn jobs_for(config: &str, kernel: Option<&str>, target: &'static Target) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    let specs = super::specs_on(kernel, target)?;
    for spec in specs {
        for config in super::dtype_configs(spec, config)? {
            // The library's test problems may adapt the configuration to their shapes (rope
            // narrows its vector width): `greta check` needs those variants in the bundle too.
            let mut configs = vec![config.clone()];
            for shape in spec.test_shapes {
                let problem =
                    (spec.problem)(&config, target, shape, &mut greta_kernels::Inputs::new(0))?;
                if !configs.contains(&problem.config) {
                    configs.push(problem.config);
                }
            }
            jobs.extend(configs.into_iter().map(|config| Job { spec, config }));
        }
    }
    Ok(jobs)
}

struct Built {
    kernel: greta_dsl::ir::Kernel,
    object: CodeObject,
    resources: greta_codegen::Resources,
    outcome: CacheOutcome,
}

fn compile(cache: &CompileCache, job: &Job, target: &'static Target) -> Result<Built> {
    let kernel = super::build(job.spec, &job.config, target)?;
    let (object, resources, outcome) = cache.get_or_compile(&kernel, target)?;
    Ok(Built {
        kernel,
        object,
        resources,
        outcome,
    })
}

/// The devices (name, driver) the tuning DB has entries for on `target`.
fn devices(db: &greta_runtime::tuning::TuningDb, target: &Target) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for e in db.entries().iter().filter(|e| e.key.target == target.name) {
        let d = (e.key.device.clone(), e.key.driver.clone());
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

pub fn run(args: Args) -> Result<()> {
    let target = super::target(&args.target)?;
    let via: greta_codegen::Via = args.via.into();
    // Before any work: a destination greta must not or cannot write (a file, a device, a
    // directory that is not a bundle) is reported now.
    let mut writer = BundleWriter::new(&args.output, target, via)?;
    let configs = if args.config.is_empty() {
        vec![String::new()]
    } else {
        args.config.clone()
    };
    let mut jobs = Vec::new();
    for config in &configs {
        for job in jobs_for(config, args.kernel.as_deref(), target)? {
            if !jobs
                .iter()
                .any(|j: &Job| j.spec.name == job.spec.name && j.config == job.config)
            {
                jobs.push(job);
            }
        }
    }
    let db = super::tune::open_db(None)?.with_via(via);
    for path in &args.model {
        let file = greta_model::gguf::GgufFile::open(path)?;
        let cfg = greta_model::llama::LlamaConfig::from_gguf(&file)
            .with_context(|| path.display().to_string())?;
        let acts = if args.dtype.is_empty() {
            vec![greta_model::llama::default_activations(&file)]
        } else {
            args.dtype
                .iter()
                .map(|d| super::activations(d))
                .collect::<Result<Vec<_>>>()?
        };
        // Every attention variant, so that `greta run --attn` works from the bundle; and the
        // tuning DB's winners for this target on every device it has entries for.
        use greta_model::llama::{tuning, Attention, Tuned};
        let mut plans = Vec::new();
        for a in acts {
            for at in [Attention::V1, Attention::V2, Attention::V3, Attention::V4] {
                let sites = tuning::sites(&file, &cfg, a, at, target);
                let mut tunings = vec![Tuned::none()];
                for (device, driver) in devices(&db, target) {
                    let t = Tuned::resolve(&db, &sites, target, &device, &driver);
                    if t.found > 0 && at == Attention::default() {
                        errln!(
                            "greta: {}: {} tuned kernel sites for {device} (driver {driver}, {a})",
                            path.display(),
                            t.found
                        );
                    }
                    tunings.push(t);
                }
                for t in &tunings {
                    plans.extend(greta_model::llama::plan(&file, &cfg, a, at, target, t));
                }
            }
        }
        for p in plans {
            if !jobs
                .iter()
                .any(|j| j.spec.name == p.spec.name && j.config == p.config)
            {
                jobs.push(Job {
                    spec: p.spec,
                    config: p.config,
                });
            }
        }
    }
    let cache = CompileCache::from_env()?.with_via(via);
    // The cache key needs the toolchain's versions even for a hit: a missing tool is one error
    // now rather than one per kernel later.
    cache
        .toolchain_key(target)
        .with_context(|| format!("building for {target} via {via}"))?;

    let bar = super::parallel::bar("building", jobs.len());
    let results = super::parallel::map(
        &jobs,
        &bar,
        |job| format!("{} [{}]", job.spec.name, job.config),
        |job| compile(&cache, job, target),
    );

    let (mut compiled, mut cached) = (0, 0);
    let mut failures = Vec::new();
    for (job, result) in jobs.iter().zip(results) {
        match result {
            Ok(b) => {
                if let CacheOutcome::Recompiled { reason } = &b.outcome {
                    errln!("greta: warning: {reason}; recompiled it");
                }
                if b.outcome.compiled() {
                    compiled += 1;
                } else {
                    cached += 1;
                }
                writer.add(&b.kernel, &job.config.to_string(), &b.object, &b.resources)?;
            }
            Err(e) => failures.push(format!("{} [{}]: {e:#}", job.spec.name, job.config)),
        }
    }
    if !failures.is_empty() {
        // `writer` is dropped with its temporary directory: no bundle is written.
        bail!(
            "{} of {} kernels failed to compile for {target}; no bundle written (--via {via}):\n{}",
            failures.len(),
            jobs.len(),
            failures.join("\n")
        );
    }
    let n = writer.len();
    let bundle = writer
        .finish()
        .with_context(|| format!("writing the bundle {}", args.output.display()))?;
    outln!(
        "{n} kernels, {compiled} compiled, {cached} from cache: wrote {} ({target}, via {via})",
        bundle.dir().display()
    );
    Ok(())
}
