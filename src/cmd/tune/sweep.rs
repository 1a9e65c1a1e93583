//! The sweep itself (see the module docs of `greta tune` for its stages).

use super::super::device;
use super::Args;
use anyhow::{anyhow, bail, Context, Result};
use greta_codegen::{Resources, Via};
use greta_dsl::ir::Kernel;
use greta_dsl::Target;
use greta_kernels::{Config, Inputs, KernelSpec, Problem, ProblemArg};
use greta_model::llama::tuning::{self as sites, Site};
use greta_runtime::cpu::CpuBackend;
use greta_runtime::tuning::{Entry, Measurement, Outcome, TuningDb};
use greta_runtime::{Backend, BackendKind, BundleWriter, CodeObject, DeviceBuffer, ObjectSource};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Why a candidate is not timed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Pruned {
    /// The kernel's builder refused it (its own rules).
    Rule,
    /// The built kernel asks for more threads per block than the target launches.
    Threads,
    /// More LDS than a block may have.
    Lds,
    /// Builds the same IR as an earlier candidate, or runs as another one at the site's shape.
    Duplicate,
    /// The toolchain failed (or the bundle lacks it).
    Compile,
    /// Scratch (gfx942) or spills (sm_90).
    Spills,
    /// Its registers leave fewer waves per SIMD than one block needs.
    Registers,
    /// Wrong results on the check problem.
    Wrong,
}

impl Pruned {
    fn stage(&self) -> &'static str {
        match self {
            Pruned::Rule | Pruned::Threads | Pruned::Lds | Pruned::Duplicate => "static",
            Pruned::Compile | Pruned::Spills | Pruned::Registers => "compiled",
            Pruned::Wrong => "numerics",
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Pruned::Rule => "the kernel's rules",
            Pruned::Threads => "threads per block",
            Pruned::Lds => "LDS",
            Pruned::Duplicate => "the same as another candidate",
            Pruned::Compile => "compile failed",
            Pruned::Spills => "scratch/spills",
            Pruned::Registers => "registers (waves per SIMD)",
            Pruned::Wrong => "wrong results",
        }
    }
}

/// One configuration of one site.
struct Candidate {
    config: Config,
    kernel: Option<Kernel>,
    pruned: Option<(Pruned, String)>,
}

/// Key of a compiled kernel (shared by the sites that run the same configuration).
type KernelKey = (&'static str, Config);

/// What the sweep knows of one compiled kernel.
struct Compiled {
    object: Option<CodeObject>,
    resources: Option<Resources>,
    error: Option<String>,
}

/// `--budget`, shared among the sites: each gets an equal share of what is left when its turn
/// comes (what one leaves unused goes to those after it), so that the last sites are timed too.
struct Budget {
    start: Instant,
    seconds: Option<f64>,
}

impl Budget {
    /// When the next site's share ends (`None`: no budget).
    fn deadline(&self, sites_left: usize) -> Option<Instant> {
        let total = self.seconds?;
        let left = (total - self.start.elapsed().as_secs_f64()).max(0.0);
        Some(Instant::now() + Duration::from_secs_f64(left / sites_left.max(1) as f64))
    }
}

pub fn sweep(args: &Args, mut db: TuningDb) -> Result<()> {
    let start = Instant::now();
    let named = args
        .target
        .as_deref()
        .map(super::super::target)
        .transpose()?;
    // The backend that checks numerics (and times, unless --dry-run): the interpreter emulating
    // the target for a dry run, else the GPU.
    let (backend, source): (Box<dyn Backend>, Option<ObjectSource>) = if args.dry_run {
        let target = named.ok_or_else(|| anyhow!("--dry-run needs --target (sm_90 or gfx942)"))?;
        (Box::new(CpuBackend::new(target)), None)
    } else {
        let mut backend = args.source.backend()?;
        if backend.kind() == BackendKind::Cpu {
            // Only when asked for by name: timing the interpreter measures the interpreter (the
            // tests run the whole sweep this way).
            if args.source.named_backend() != Some("cpu") {
                bail!(
                    "timing needs a GPU, and the backend is the CPU interpreter: run with \
                     --dry-run --target T to prune and check without timing"
                );
            }
            errln!("greta: warning: timing on the CPU interpreter (--backend cpu)");
            if let Some(t) = named {
                backend = Box::new(CpuBackend::new(t));
            }
        }
        if let Some(t) = named.filter(|t| *t != backend.target()) {
            bail!(
                "--target {t}, but the device ({}) is {}",
                backend.device_name(),
                backend.target()
            );
        }
        (backend, Some(args.source.objects()?))
    };
    let backend = backend.as_ref();
    let target = backend.target();
    let via = args.source.via();
    let (sites, model_plan) = sites_of(args, target)?;
    if sites.is_empty() {
        bail!("nothing to tune");
    }
    // A destination that cannot be written is reported before any work.
    let mut writer = match &args.bundle_out {
        Some(dir) => Some(BundleWriter::new(dir, target, via)?),
        None => None,
    };

    // 1–2: enumerate and prune statically.
    let mut per_site: Vec<Vec<Candidate>> =
        sites.iter().map(|s| enumerate(s, target, via)).collect();
    let enumerated = start.elapsed().as_secs_f64();
    // 3: compile what survived, each kernel once.
    let mut unique: Vec<(KernelKey, Kernel)> = Vec::new();
    for (site, cands) in sites.iter().zip(&per_site) {
        for c in cands.iter().filter(|c| c.pruned.is_none()) {
            let key = (site.spec.name, c.config.clone());
            if !unique.iter().any(|(k, _)| *k == key) {
                unique.push((
                    key,
                    c.kernel.clone().expect("unpruned candidates are built"),
                ));
            }
        }
    }
    // Timing on the interpreter (`--backend cpu`, the tests' whole-sweep mode) runs the IR
    // itself: nothing to compile, no registers to prune by.
    let compiled = if backend.kind() == BackendKind::Cpu && !args.dry_run {
        unique
            .iter()
            .map(|(k, _)| {
                let none = Compiled {
                    object: None,
                    resources: None,
                    error: None,
                };
                (k.clone(), none)
            })
            .collect()
    } else {
        compile_all(&unique, target, via, source.as_ref())?
    };
    for (site, cands) in sites.iter().zip(per_site.iter_mut()) {
        for (i, c) in cands.iter_mut().enumerate() {
            if c.pruned.is_some() {
                continue;
            }
            let got = &compiled[&(site.spec.name, c.config.clone())];
            // The default is the baseline whatever its resources: it is timed, never pruned.
            c.pruned = resource_verdict(got, c, target).filter(|_| i > 0);
        }
    }
    let compiled_at = start.elapsed().as_secs_f64();
    // 4: numerics, each kernel once.
    let mut to_check: Vec<ToCheck> = Vec::new();
    for (site, cands) in sites.iter().zip(&per_site) {
        for c in cands.iter().filter(|c| c.pruned.is_none()) {
            let key = (site.spec.name, c.config.clone());
            if !to_check.iter().any(|t| t.key == key) {
                to_check.push(ToCheck {
                    key,
                    spec: site.spec,
                    site_shape: site.shape.clone(),
                });
            }
        }
    }
    let interpreter = backend.kind() == BackendKind::Cpu;
    let verdicts = check_all(&to_check, backend, &compiled, interpreter)?;
    for (site, cands) in sites.iter().zip(per_site.iter_mut()) {
        for c in cands.iter_mut().filter(|c| c.pruned.is_none()) {
            if let Some(Err(why)) = verdicts.get(&(site.spec.name, c.config.clone())) {
                c.pruned = Some((Pruned::Wrong, why.clone()));
            }
        }
    }
    report_pruning(&sites, &per_site, args.verbose)?;
    let checked_at = start.elapsed().as_secs_f64();
    outln!(
        "stages: enumerate {enumerated:.1} s, compile{} {:.1} s, check numerics {:.1} s",
        if source.is_some() { " (or load)" } else { "" },
        compiled_at - enumerated,
        checked_at - compiled_at
    );

    if args.dry_run {
        if let Some(w) = writer.as_mut() {
            bundle(w, &sites, &per_site, &model_plan, &compiled, target)?;
        }
        if let (Some(w), Some(dir)) = (writer, &args.bundle_out) {
            let n = w.len();
            w.finish()
                .with_context(|| format!("writing the bundle {}", dir.display()))?;
            outln!(
                "wrote {n} kernels to {} ({target}, via {via})",
                dir.display()
            );
        }
        outln!(
            "dry run for {target}: {} sites, {:.1} s (no timing)",
            sites.len(),
            start.elapsed().as_secs_f64()
        );
        return Ok(());
    }

    // 5: time, site by site, saving each result.
    let budget = Budget {
        start: Instant::now(),
        seconds: args.budget,
    };
    let (device_name, driver) = (backend.device_name(), backend.driver_version());
    let bar = super::super::parallel::bar("timing", sites.len());
    let mut rows = Vec::new();
    for (i, (site, cands)) in sites.iter().zip(&per_site).enumerate() {
        bar.set_message(format!("{} {}", site.spec.name, site.shape_text()));
        let key = site
            .key(target, via, &device_name, &driver)
            .with_context(|| format!("building {} at its base configuration", site.spec.name))?;
        let site_start = Instant::now();
        let deadline = budget.deadline(sites.len() - i);
        let timed = time_site(site, cands, backend, &compiled, args.runs, deadline)?;
        bar.inc(1);
        let row = Row {
            ready: cands.iter().filter(|c| c.pruned.is_none()).count(),
            timed: timed
                .iter()
                .filter(|m| matches!(m.outcome, Outcome::Timed | Outcome::Dropped))
                .count(),
            seconds: site_start.elapsed().as_secs_f64(),
            failure: timed.iter().find_map(|m| m.note.clone()),
            entry: None,
        };
        let base = site.family_config().to_string();
        let entry = Entry::from_measurements(key, site.spec.name, &base, timed);
        if let Some(entry) = &entry {
            db.record(entry.clone());
            db.save()?;
        }
        rows.push(Row { entry, ..row });
    }
    bar.finish_and_clear();
    let timing = budget.start.elapsed().as_secs_f64();
    print_results(&sites, &rows, &device_name, &driver)?;
    outln!(
        "tuned {} of {} sites in {:.1} s (preparing {:.1} s, timing {:.1} s); DB {}",
        rows.iter().filter(|r| r.entry.is_some()).count(),
        sites.len(),
        start.elapsed().as_secs_f64(),
        start.elapsed().as_secs_f64() - timing,
        timing,
        db.path().display()
    );
    Ok(())
}

/// The sites of `--kernel` (one per shape) or `--model`, and (for a model) every kernel its
/// default plan loads, for `--bundle-out`.
fn sites_of(
    args: &Args,
    target: &'static Target,
) -> Result<(Vec<Site>, Vec<greta_model::llama::kernels::Planned>)> {
    if let Some(name) = &args.kernel {
        let spec = super::super::specs_on(Some(name), target)?[0];
        let base = spec.config(&args.config)?;
        let shapes: Vec<Vec<u32>> = if args.shape.is_empty() {
            vec![spec.bench_shape.to_vec()]
        } else {
            args.shape
                .iter()
                .map(|s| super::super::bench::parse_shape(s))
                .collect::<Result<_>>()?
        };
        let sites = shapes
            .into_iter()
            .map(|shape| Site {
                spec,
                base: base.clone(),
                pinned: &[],
                shape,
                role: "--kernel".into(),
            })
            .collect();
        return Ok((sites, Vec::new()));
    }
    let path = args.model.as_ref().expect("--kernel or --model");
    let file = greta_model::gguf::GgufFile::open(path)?;
    let cfg = greta_model::llama::LlamaConfig::from_gguf(&file)
        .with_context(|| path.display().to_string())?;
    greta_model::llama::weights::check(&file, &cfg)?;
    let act = match &args.dtype {
        Some(d) => super::super::activations(d)?,
        None => greta_model::llama::default_activations(&file),
    };
    let attention = super::super::attention(&args.attn)?;
    let sites = sites::sites(&file, &cfg, act, attention, target);
    let none = greta_model::llama::Tuned::none();
    let plan = greta_model::llama::plan(&file, &cfg, act, attention, target, &none);
    Ok((sites, plan))
}

/// Every configuration of the site's space, built and checked against the target's limits.
fn enumerate(site: &Site, target: &'static Target, via: Via) -> Vec<Candidate> {
    let mut seen: HashMap<String, Config> = HashMap::new();
    site.spec
        .space(&site.base, site.pinned)
        .into_iter()
        .enumerate()
        .map(|(i, config)| {
            let mut c = Candidate {
                config,
                kernel: None,
                pruned: None,
            };
            match super::super::build(site.spec, &c.config, target) {
                Err(e) => c.pruned = Some((Pruned::Rule, format!("{e:#}"))),
                Ok(k) => {
                    let threads = k.block_size.map_or(0, |b| b[0] * b[1] * b[2]);
                    let lds = k.lds_bytes();
                    let hash = greta_runtime::bundle::content_hash(&k, target, via);
                    if threads > target.max_block_threads {
                        c.pruned = Some((
                            Pruned::Threads,
                            format!(
                                "{threads} threads; {target} allows {}",
                                target.max_block_threads
                            ),
                        ));
                    } else if lds > target.lds_bytes_max {
                        c.pruned = Some((
                            Pruned::Lds,
                            format!("{lds} bytes; {target} allows {}", target.lds_bytes_max),
                        ));
                    } else if let Some(first) = seen.get(&hash) {
                        c.pruned = Some((Pruned::Duplicate, format!("same IR as [{first}]")));
                    } else if let Some(why) =
                        runs_otherwise(site, &c.config, target).filter(|_| i > 0)
                    {
                        c.pruned = Some(why);
                    } else {
                        seen.insert(hash, c.config.clone());
                        c.kernel = Some(k);
                    }
                }
            }
            c
        })
        .collect()
}

/// Why a configuration cannot run at the site as it is, if it cannot: the site's problem fits
/// some parameters to its shape (attention's query heads per block to the model's GQA ratio),
/// and a configuration it changes would be timed as another one: the same as a candidate the
/// space already has.
fn runs_otherwise(
    site: &Site,
    config: &Config,
    target: &'static Target,
) -> Option<(Pruned, String)> {
    match (site.spec.problem)(config, target, &site.shape, &mut Inputs::layout_only()) {
        Err(e) => Some((Pruned::Rule, format!("at this site's shape: {e:#}"))),
        Ok(p) if p.config != *config => Some((
            Pruned::Duplicate,
            format!("at this site's shape it runs as [{}]", p.config),
        )),
        Ok(_) => None,
    }
}

/// Compiles by `via` (or takes from the bundle, built by `via`) every kernel, on every core.
fn compile_all(
    kernels: &[(KernelKey, Kernel)],
    target: &'static Target,
    via: Via,
    source: Option<&ObjectSource>,
) -> Result<HashMap<KernelKey, Compiled>> {
    let cache;
    let source = match source {
        Some(s) => s,
        None => {
            // A dry run compiles too: resources decide pruning.
            let c = greta_runtime::CompileCache::from_env()?.with_via(via);
            c.toolchain_key(target)
                .with_context(|| format!("compiling for {target} via {via}"))?;
            cache = ObjectSource::Cache(c);
            &cache
        }
    };
    debug_assert_eq!(source.via(), via);
    let bar = super::super::parallel::bar("compiling", kernels.len());
    let results = super::super::parallel::map(
        kernels,
        &bar,
        |((name, config), _)| format!("{name} [{config}]"),
        |(_, kernel)| match source.object_and_resources(kernel, target) {
            Ok((object, resources, _)) => Compiled {
                object: Some(object),
                resources: Some(resources),
                error: None,
            },
            Err(e) => Compiled {
                object: None,
                resources: None,
                error: Some(e.to_string()),
            },
        },
    );
    Ok(kernels
        .iter()
        .map(|(k, _)| k.clone())
        .zip(results)
        .collect())
}

/// Why a compiled candidate is pruned by its resources, if it is.
fn resource_verdict(got: &Compiled, c: &Candidate, target: &Target) -> Option<(Pruned, String)> {
    if let Some(e) = &got.error {
        return Some((Pruned::Compile, e.clone()));
    }
    let r = got.resources.as_ref()?;
    let spilled = r.scratch_bytes.unwrap_or(0) + r.spill_bytes.unwrap_or(0);
    if spilled > 0 {
        return Some((Pruned::Spills, format!("{spilled} bytes of scratch/spills")));
    }
    let regs = match (r.vgpr, r.agpr, r.regs) {
        (Some(v), a, _) => v + a.unwrap_or(0),
        (None, _, Some(n)) => n,
        _ => return None,
    };
    let kernel = c.kernel.as_ref()?;
    let waves = kernel
        .block_size
        .map_or(1, |b| (b[0] * b[1] * b[2]).div_ceil(target.wave_size));
    let needed = waves.div_ceil(target.registers.simds_per_cu).max(1);
    let resident = target.waves_per_simd_by_registers(regs);
    (resident < needed).then(|| {
        (
            Pruned::Registers,
            format!("{regs} registers: {resident} waves per SIMD, a block needs {needed}"),
        )
    })
}

/// The shapes a candidate's numerics are checked at: every test shape on a GPU; on the
/// interpreter the largest with at most 100,000 elements in its sizes' product (seconds, not
/// minutes, for a space of hundreds).
fn check_shapes(spec: &KernelSpec, interpreter: bool) -> Vec<&'static [u32]> {
    if !interpreter {
        return spec.test_shapes.to_vec();
    }
    let size = |s: &[u32]| s.iter().map(|&d| d.max(1) as u64).product::<u64>();
    let small = spec
        .test_shapes
        .iter()
        .copied()
        .filter(|s| size(s) <= 100_000);
    let smallest = spec.test_shapes.iter().copied().min_by_key(|s| size(s));
    small
        .max_by_key(|s| size(s))
        .or(smallest)
        .into_iter()
        .collect()
}

/// A kernel to check, and the shape of a site that runs it (checked there when no test shape
/// runs the configuration as it is: the problems fit some parameters to their shapes).
struct ToCheck {
    key: KernelKey,
    spec: &'static KernelSpec,
    site_shape: Vec<u32>,
}

fn check_one(
    backend: &dyn Backend,
    t: &ToCheck,
    object: Option<&CodeObject>,
    interpreter: bool,
) -> Result<(), String> {
    let target = backend.target();
    let config = &t.key.1;
    let mut checked = 0;
    let shapes = check_shapes(t.spec, interpreter);
    let fallback = [t.site_shape.as_slice()];
    for (pass, list) in [shapes.as_slice(), &fallback[..]].into_iter().enumerate() {
        if pass == 1 && (checked > 0 || interpreter) {
            break;
        }
        for (i, shape) in list.iter().enumerate() {
            let run = || -> Result<bool> {
                let mut inputs = Inputs::new(4000 + i as u64);
                let problem = (t.spec.problem)(config, target, shape, &mut inputs)?;
                // On a GPU only the candidate's own object is at hand: a problem that fitted
                // the configuration to its shape is another kernel (the interpreter runs any).
                let object = object.filter(|_| problem.config == *config);
                if object.is_none() && !interpreter {
                    return Ok(false);
                }
                let kernel = backend.load(&problem.kernel, object)?;
                let on = device::upload(backend, kernel, &problem)?;
                device::launch(backend, &on, &problem)?;
                let out = device::download(backend, &on)?;
                let refs: Vec<_> = out.iter().map(Option::as_ref).collect();
                problem.check(&refs)?;
                Ok(true)
            };
            checked += run().map_err(|e| format!("shape {shape:?}: {e:#}"))? as usize;
        }
    }
    if checked == 0 {
        return Err("no check problem runs this configuration as it is".into());
    }
    Ok(())
}

/// Checks every kernel: on the interpreter in parallel (one backend per worker), on a GPU one
/// after another.
fn check_all(
    kernels: &[ToCheck],
    backend: &dyn Backend,
    compiled: &HashMap<KernelKey, Compiled>,
    interpreter: bool,
) -> Result<HashMap<KernelKey, Result<(), String>>> {
    let bar = super::super::parallel::bar("checking", kernels.len());
    let target = backend.target();
    let label = |t: &ToCheck| format!("{} [{}]", t.key.0, t.key.1);
    let results: Vec<Result<(), String>> = if interpreter {
        super::super::parallel::map(kernels, &bar, label, |t| {
            check_one(&CpuBackend::new(target), t, None, true)
        })
    } else {
        let mut out = Vec::new();
        for t in kernels {
            bar.set_message(label(t));
            let object = compiled.get(&t.key).and_then(|c| c.object.as_ref());
            out.push(check_one(backend, t, object, false));
            bar.inc(1);
        }
        bar.finish_and_clear();
        out
    };
    Ok(kernels.iter().map(|t| t.key.clone()).zip(results).collect())
}

fn report_pruning(sites: &[Site], per_site: &[Vec<Candidate>], verbose: bool) -> Result<()> {
    let mut reasons: BTreeMap<Pruned, (usize, String)> = BTreeMap::new();
    let (mut total, mut ready) = (0, 0);
    outln!(
        "{:<11} {:<22} {:<34} {:>6} {:>7} {:>9} {:>6} {:>6}",
        "kernel",
        "shape",
        "site",
        "space",
        "static",
        "compiled",
        "wrong",
        "ready"
    );
    for (site, cands) in sites.iter().zip(per_site) {
        let count = |stage: &str| {
            cands
                .iter()
                .filter(|c| c.pruned.as_ref().is_some_and(|(p, _)| p.stage() == stage))
                .count()
        };
        let ok = cands.iter().filter(|c| c.pruned.is_none()).count();
        total += cands.len();
        ready += ok;
        outln!(
            "{:<11} {:<22} {:<34} {:>6} {:>7} {:>9} {:>6} {:>6}",
            site.spec.name,
            site.shape_text(),
            site.role,
            cands.len(),
            count("static"),
            count("compiled"),
            count("numerics"),
            ok
        );
        for c in cands {
            if let Some((p, why)) = &c.pruned {
                let e = reasons.entry(p.clone()).or_insert((0, why.clone()));
                e.0 += 1;
            }
            if verbose {
                let what = c.pruned.as_ref().map_or("ready".to_string(), |(p, why)| {
                    format!("{}: {why}", p.name())
                });
                outln!("    [{}] {what}", c.config);
            }
        }
    }
    outln!(
        "{total} candidates over {} sites: {ready} ready, {} pruned",
        sites.len(),
        total - ready
    );
    for (p, (n, example)) in reasons {
        outln!("  {n:>6} {} by {}, e.g. {example}", p.stage(), p.name());
    }
    Ok(())
}

/// The compiled candidates, and (for a model) its default kernels, into a bundle. What the sweep
/// did not compile (batched decode's variants of the candidates, the model's other kernels) is
/// compiled here, on every core.
fn bundle(
    w: &mut BundleWriter,
    sites: &[Site],
    per_site: &[Vec<Candidate>],
    plan: &[greta_model::llama::kernels::Planned],
    compiled: &HashMap<KernelKey, Compiled>,
    target: &'static Target,
) -> Result<()> {
    let mut wanted: Vec<(KernelKey, Kernel)> = Vec::new();
    let mut want = |spec: &'static KernelSpec, config: &Config, kernel: Kernel| {
        let key = (spec.name, config.clone());
        if !wanted.iter().any(|(k, _)| *k == key) {
            wanted.push((key, kernel));
        }
    };
    for (site, cands) in sites.iter().zip(per_site) {
        // Every compiled candidate, pruned or not: the GPU machine prunes and checks them again
        // (its report then matches this one, and the GPU has the last word on numerics).
        for c in cands {
            let Some(kernel) = &c.kernel else { continue };
            let key = (site.spec.name, c.config.clone());
            let compiled_ok = matches!(compiled.get(&key), Some(g) if g.error.is_none());
            if !compiled_ok {
                continue;
            }
            want(site.spec, &c.config, kernel.clone());
            if c.pruned.is_some() {
                continue;
            }
            // What a model derives from this candidate when it wins (batched decode's m_tile).
            for derived in sites::runs_of(site, &c.config).into_iter().skip(1) {
                let kernel = super::super::build(derived.spec, &derived.config, target)?;
                want(derived.spec, &derived.config, kernel);
            }
        }
    }
    for p in plan {
        want(
            p.spec,
            &p.config,
            super::super::build(p.spec, &p.config, target)?,
        );
    }
    let missing: Vec<(KernelKey, Kernel)> = wanted
        .iter()
        .filter(|(k, _)| !compiled.contains_key(k))
        .cloned()
        .collect();
    let more = compile_all(&missing, target, w.via(), None)?;
    for (key, kernel) in &wanted {
        let got = compiled.get(key).or_else(|| more.get(key));
        let (object, resources) =
            match got.and_then(|c| c.object.as_ref().zip(c.resources.as_ref())) {
                Some(got) => got,
                None => {
                    let why = got
                        .and_then(|c| c.error.as_deref())
                        .unwrap_or("not compiled");
                    bail!("compiling {} [{}] for the bundle: {why}", key.0, key.1);
                }
            };
        w.add(kernel, &key.1.to_string(), object, resources)?;
    }
    Ok(())
}

/// The arguments' layout: element types and lengths of buffers, values of scalars. Two
/// candidates with one layout share one upload.
fn layout(p: &Problem) -> Vec<String> {
    p.args
        .iter()
        .map(|a| match a {
            ProblemArg::Buffer(b) => format!("{}[{}]", b.scalar(), b.len()),
            ProblemArg::Value(v) => format!("{v:?}"),
        })
        .collect()
}

/// Uploads of one argument layout, rotated so that no launch finds its inputs in the L2.
struct Uploads {
    layout: Vec<String>,
    sets: Vec<Vec<Option<DeviceBuffer>>>,
}

fn upload(backend: &dyn Backend, problem: &Problem) -> Result<Uploads> {
    let sets = (0..device::rotation_sets(problem))
        .map(|_| device::upload_args(backend, problem))
        .collect::<Result<_>>()?;
    Ok(Uploads {
        layout: layout(problem),
        sets,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// How far behind the leader a candidate may be after its first launches and still be timed.
const DROP_FACTOR: f64 = 1.5;
const FIRST_LAUNCHES: usize = 10;

/// Times the site's ready candidates (the default first).
fn time_site(
    site: &Site,
    cands: &[Candidate],
    backend: &dyn Backend,
    compiled: &HashMap<KernelKey, Compiled>,
    runs: usize,
    deadline: Option<Instant>,
) -> Result<Vec<Measurement>> {
    let target = backend.target();
    let mut uploads: Option<Uploads> = None;
    let mut leader = f64::INFINITY;
    let mut out: Vec<Measurement> = Vec::new();
    for c in cands.iter().filter(|c| c.pruned.is_none()) {
        // The default is always timed: the baseline of the site's speedup.
        if !out.is_empty() && deadline.is_some_and(|d| Instant::now() > d) {
            break;
        }
        let measure = |config: &str, outcome, times: &[f64], note: Option<String>| Measurement {
            config: config.to_string(),
            outcome,
            median_us: (!times.is_empty()).then(|| median(times.to_vec()) * 1e3),
            launches: times.len(),
            note,
        };
        let problem =
            (site.spec.problem)(&c.config, target, &site.shape, &mut Inputs::layout_only())?;
        // What runs is the problem's configuration (fitted to the shape): the same twice is
        // timed once, and the DB records it as it runs.
        let config = problem.config.to_string();
        if out.iter().any(|m| m.config == config) {
            continue;
        }
        let key = (site.spec.name, c.config.clone());
        let object = compiled.get(&key).and_then(|g| g.object.as_ref());
        let object = object.filter(|_| problem.config == c.config);
        let loaded = match object {
            Some(o) => backend.load(&problem.kernel, Some(o)),
            None if backend.kind() == BackendKind::Cpu => backend.load(&problem.kernel, None),
            None => {
                let note = "fitted to the shape as another configuration, not compiled".into();
                out.push(measure(&config, Outcome::Failed, &[], Some(note)));
                continue;
            }
        };
        let kernel = match loaded {
            Ok(k) => k,
            Err(e) => {
                out.push(measure(&config, Outcome::Failed, &[], Some(e.to_string())));
                continue;
            }
        };
        if !matches!(&uploads, Some(u) if u.layout == layout(&problem)) {
            drop(uploads.take()); // the old set is freed before the new one is allocated
            let real =
                (site.spec.problem)(&c.config, target, &site.shape, &mut Inputs::for_timing(7))?;
            uploads = Some(upload(backend, &real)?);
        }
        let sets = &uploads.as_ref().expect("uploaded").sets;
        let mut launch = |i: usize| {
            device::launch_on(backend, &kernel, &sets[i % sets.len()], &problem).map_err(|e| {
                greta_runtime::RuntimeError::Launch {
                    kernel: problem.kernel.name.clone(),
                    message: format!("{e:#}"),
                }
            })
        };
        let timed = (|| -> Result<Measurement> {
            for i in 0..3 {
                launch(i)?;
            }
            backend.synchronize()?;
            let mut times = backend.time_each(FIRST_LAUNCHES, &mut launch)?;
            if median(times.clone()) > DROP_FACTOR * leader {
                return Ok(measure(&config, Outcome::Dropped, &times, None));
            }
            times.extend(backend.time_each(runs, &mut launch)?);
            Ok(measure(&config, Outcome::Timed, &times, None))
        })();
        let m = timed
            .unwrap_or_else(|e| measure(&config, Outcome::Failed, &[], Some(format!("{e:#}"))));
        if let (Outcome::Timed, Some(us)) = (m.outcome, m.median_us) {
            leader = leader.min(us / 1e3);
        }
        out.push(m);
    }
    // The wrong ones are part of the record too.
    for c in cands {
        if let Some((Pruned::Wrong, why)) = &c.pruned {
            out.push(Measurement {
                config: c.config.to_string(),
                outcome: Outcome::Wrong,
                median_us: None,
                launches: 0,
                note: Some(why.clone()),
            });
        }
    }
    Ok(out)
}

/// One site's timing: its DB entry (`None`: nothing ran, `failure` says why), how many of its
/// ready candidates were timed (fewer when its share of `--budget` ran out), and its seconds.
struct Row {
    entry: Option<Entry>,
    failure: Option<String>,
    ready: usize,
    timed: usize,
    seconds: f64,
}

fn print_results(sites: &[Site], rows: &[Row], device: &str, driver: &str) -> Result<()> {
    outln!("tuned on {device} (driver {driver}):");
    outln!(
        "{:<12} {:<22} {:<34} {:>10} {:>10} {:>8} {:>7} {:>6}  best config",
        "kernel",
        "shape",
        "site",
        "default",
        "best",
        "speedup",
        "timed",
        "s"
    );
    for (site, row) in sites.iter().zip(rows) {
        let timed = format!("{}/{}", row.timed, row.ready);
        let Some(e) = &row.entry else {
            outln!(
                "{:<12} {:<22} {:<34} {:>10} {:>10} {:>8} {:>7} {:>6.1}  none ran: {}",
                site.spec.name,
                site.shape_text(),
                site.role,
                "-",
                "-",
                "-",
                timed,
                row.seconds,
                row.failure.as_deref().unwrap_or("no candidate was ready")
            );
            continue;
        };
        outln!(
            "{:<12} {:<22} {:<34} {:>10} {:>8.1}us {:>7.2}x {:>7} {:>6.1}  {}",
            e.kernel,
            e.key.shape,
            site.role,
            e.default_us
                .map_or("-".to_string(), |d| format!("{d:.1}us")),
            e.best_us,
            e.speedup().unwrap_or(1.0),
            timed,
            row.seconds,
            e.best
        );
    }
    Ok(())
}
