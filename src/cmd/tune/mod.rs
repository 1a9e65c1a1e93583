//! `greta tune`: sweep each kernel's tunable space at the shapes it runs, and remember the
//! fastest correct configuration in the tuning database (`greta_runtime::tuning`).
//!
//! A sweep, per site (a kernel at a shape: `--kernel NAME --shape ...`, or every kernel of a
//! model at every shape it runs, `--model FILE`, see `greta_model::llama::tuning`):
//! 1. **enumerate** the space: every combination of the kernel's tunable parameters
//!    (`ParamDef::tunable`), the rest as the site runs it;
//! 2. **prune statically**: the kernel's own builder refuses what its rules forbid (tile
//!    divisibility, waves per block, accumulators against the register file, LDS stages against
//!    the target's LDS); what it builds is checked against the target's block and LDS limits, and
//!    configurations that build the same IR are one candidate, as are those a site's problem
//!    fits to its shape as another (decode attention's query heads per block to the GQA ratio);
//! 3. **compile** the survivors on every core, through the compile cache (or take them from a
//!    `--bundle` on a GPU machine without a compiler), and **prune by resources**: scratch or
//!    spills, and registers that leave too few waves per SIMD for one block to be resident;
//! 4. **check numerics** of every survivor against the kernel's f64 reference (the library's
//!    awkward test shapes on the GPU; on the interpreter, for `--dry-run`, the largest small
//!    one): a wrong configuration is reported and never chosen;
//! 5. **time** (not with `--dry-run`): inputs uploaded once per site, rotated over copies larger
//!    than the L2, a few warm-up launches, then the median of `--runs` launches between device
//!    events; a candidate more than 1.5× behind the leader after its first 10 launches is
//!    dropped. `--budget` is shared among the sites: each gets an equal share of what is left
//!    when its turn comes, and its default is always timed, so every site has a baseline. Each
//!    site's result is saved as soon as it is measured, atomically, so an interrupted sweep
//!    keeps what it finished.
//!
//! `--dry-run` does everything but 5 (CI runs it for gfx942 and sm_90); with `--bundle-out DIR`
//! it writes every compiled candidate (pruned ones too, so that the GPU machine's report matches
//! and its own check has the last word) and a `--model`'s default kernels as a code-object
//! bundle, which a GPU machine without a compiler tunes with `greta tune --bundle DIR`.

mod show;
mod sweep;

use anyhow::{bail, Context, Result};
use greta_runtime::tuning::{self, TuningDb};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The GPU target (sm_90, gfx942). Required with --dry-run; with a GPU it is the device's,
    /// and naming another is an error.
    #[arg(long, short)]
    target: Option<String>,
    /// Tune this kernel (at --shape, default its benchmark shape).
    #[arg(long, short, conflicts_with = "model")]
    kernel: Option<String>,
    /// Problem shape for --kernel, e.g. `512,4096,4096` (m,n,k); repeat for several.
    #[arg(long, short, requires = "kernel")]
    shape: Vec<String>,
    /// The base configuration for --kernel: what is not tuned (element types, a fused
    /// residual), as key=value,...; tunable values given here are the default it is compared
    /// against.
    #[arg(long, short, default_value = "", requires = "kernel")]
    config: String,
    /// Tune every kernel this GGUF model runs, at every shape it runs it.
    #[arg(long, short)]
    model: Option<PathBuf>,
    /// Activation type of --model (default: the model's own, as `greta run`).
    #[arg(long, requires = "model")]
    dtype: Option<String>,
    /// Attention kernels of --model: v1, v2, v3 or v4 (the default, as `greta run`).
    #[arg(long, default_value = "v4", requires = "model")]
    attn: String,
    /// Everything but the GPU timing: enumerate, prune, compile and check on the interpreter.
    #[arg(long)]
    dry_run: bool,
    /// Seconds of timing, shared among the sites: each gets an equal share of what is left when
    /// its turn comes and stops timing new candidates after it (its default is always timed).
    #[arg(long)]
    budget: Option<f64>,
    /// Timed launches per candidate (the median is kept); at least 20.
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// With --dry-run: write the checked candidates as a code-object bundle for a GPU machine
    /// without a compiler (`greta tune --bundle DIR` there).
    #[arg(long, requires = "dry_run")]
    bundle_out: Option<PathBuf>,
    /// Print the tuning DB (stale entries, whose kernel changed, are marked) and exit.
    #[arg(long, conflicts_with_all = ["kernel", "model", "import", "export"])]
    show: bool,
    /// Write the DB's entries (of --target, if given) to FILE and exit.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["kernel", "model", "import"])]
    export: Option<PathBuf>,
    /// Merge the entries of FILE (from `--export` on a machine with the same device) and exit.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["kernel", "model"])]
    import: Option<PathBuf>,
    /// The tuning DB (default: tuning.json under GRETA_CACHE_DIR, the compile cache's root).
    #[arg(long, value_name = "FILE")]
    db: Option<PathBuf>,
    /// Every candidate's outcome, not only the summary.
    #[arg(long, short)]
    verbose: bool,
    #[command(flatten)]
    source: super::source::SourceArgs,
}

/// The database at `--db` or the default path, with a warning printed for an unreadable one.
pub fn open_db(path: Option<&PathBuf>) -> Result<TuningDb> {
    let path = match path {
        Some(p) => p.clone(),
        None => tuning::default_path()?,
    };
    let (db, warning) = TuningDb::open(path);
    if let Some(w) = warning {
        errln!("greta: warning: {w}");
    }
    Ok(db)
}

/// The tuning DB a model or benchmark run uses: the default one, looked up for code compiled
/// by `via`. Its entries match one device, driver and lowering, so the interpreter finds
/// entries only where `greta tune --backend cpu` made them.
pub fn db_for(via: greta_runtime::Via) -> Result<Option<std::sync::Arc<TuningDb>>> {
    Ok(Some(std::sync::Arc::new(open_db(None)?.with_via(via))))
}

/// One stderr line on which configurations a loaded model runs; with `verbose` one per kernel
/// site.
pub fn report_model(model: &greta_model::llama::Model, verbose: bool) -> Result<()> {
    let t = model.tuned();
    if t.sites == 0 {
        return Ok(());
    }
    errln!(
        "greta: kernel configurations: {} of {} sites tuned (tuning DB), the rest default",
        t.found,
        t.sites
    );
    if verbose {
        for line in &t.report {
            errln!("greta:   {line}");
        }
    }
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    if args.runs < 20 {
        bail!("--runs must be at least 20 (got {})", args.runs);
    }
    if let Some(b) = args.budget {
        if !(b.is_finite() && b > 0.0) {
            bail!("--budget must be a positive number of seconds (got {b})");
        }
    }
    let mut db = open_db(args.db.as_ref())?;
    if args.show {
        return show::show(&db);
    }
    if let Some(path) = &args.export {
        let target = args.target.clone();
        let n = db
            .export(path, |e| !matches!(&target, Some(t) if &e.key.target != t))
            .with_context(|| format!("exporting to {}", path.display()))?;
        errln!("greta: exported {n} tuning entries to {}", path.display());
        return Ok(());
    }
    if let Some(path) = &args.import {
        let n = db.import(path)?;
        db.save()?;
        errln!(
            "greta: imported {n} tuning entries from {} into {}",
            path.display(),
            db.path().display()
        );
        return Ok(());
    }
    if args.kernel.is_none() && args.model.is_none() {
        bail!("what to tune: --kernel NAME [--shape ...] or --model FILE (or --show, --export, --import)");
    }
    let via = args.source.via();
    sweep::sweep(&args, db.with_via(via))
}
