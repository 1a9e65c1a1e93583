//! `greta tune --show`: the tuning DB as a table, each entry checked against the kernel as it
//! is now — an entry whose kernel's content changed since it was tuned is marked `stale` (it is
//! ignored by lookups, which match content, and re-tuned by the next sweep).

use anyhow::Result;
use greta_dsl::Target;
use greta_runtime::tuning::{self, Entry, TuningDb};

/// Whether `e` still matches its kernel: `current` (naming the lowering it was timed on), `stale`
/// (the content changed) or why it cannot be told.
fn status(e: &Entry) -> String {
    let Some(spec) = greta_kernels::by_name(&e.kernel) else {
        return "unknown kernel".into();
    };
    let Some(target) = Target::by_name(&e.key.target) else {
        return "unknown target".into();
    };
    let Ok(base) = spec.config(&e.base) else {
        return "stale (its configuration no longer parses)".into();
    };
    match (spec.build)(&base, target) {
        Ok(k) => match greta_runtime::Via::ALL
            .into_iter()
            .find(|&via| tuning::family(&k, target, via) == e.key.family)
        {
            Some(greta_runtime::Via::Hip) => "current".into(),
            Some(via) => format!("current (via {via})"),
            None => "stale (kernel changed)".into(),
        },
        Err(_) => "stale (no longer builds)".into(),
    }
}

pub fn show(db: &TuningDb) -> Result<()> {
    outln!(
        "tuning DB {} ({} entries)",
        db.path().display(),
        db.entries().len()
    );
    if db.entries().is_empty() {
        return Ok(());
    }
    outln!(
        "{:<12} {:<7} {:<22} {:<8} {:<5} {:<18} {:>10} {:>10} {:>7}  {:<24} best config",
        "kernel",
        "target",
        "device",
        "driver",
        "dtype",
        "shape",
        "default",
        "best",
        "speedup",
        "status"
    );
    for e in db.entries() {
        let default = e
            .default_us
            .map_or("-".to_string(), |d| format!("{d:.1}us"));
        let speedup = e.speedup().map_or("-".to_string(), |s| format!("{s:.2}x"));
        outln!(
            "{:<12} {:<7} {:<22} {:<8} {:<5} {:<18} {:>10} {:>8.1}us {:>7}  {:<24} {}",
            e.kernel,
            e.key.target,
            e.key.device,
            e.key.driver,
            e.key.dtype,
            e.key.shape,
            default,
            e.best_us,
            speedup,
            status(e),
            e.best
        );
    }
    Ok(())
}
