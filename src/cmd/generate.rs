//! `greta generate [--check] [--dir DIR]`: kernels_generated/ holds the HIP C++ of every kernel
//! at its default configuration for every target, committed, so that a codegen change shows up
//! as a reviewable diff. `--check` compares instead of writing, and fails naming the stale files.

use anyhow::{bail, Context, Result};
use greta_dsl::Target;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// Compare the files with freshly generated code instead of writing them.
    #[arg(long)]
    check: bool,
    /// The directory to write or check.
    #[arg(long, default_value = "kernels_generated")]
    dir: PathBuf,
}

/// Every generated file, as (path relative to the directory, contents).
fn files() -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    for spec in greta_kernels::all() {
        for target in Target::ALL.into_iter().filter(|t| (spec.available)(t)) {
            let kernel = super::build(spec, &spec.default_config(), target)?;
            let source = greta_codegen::emit_source(&kernel, target, greta_codegen::Via::Hip)?;
            out.push((
                Path::new(target.name).join(format!("{}.hip", spec.name)),
                source,
            ));
        }
    }
    Ok(out)
}

pub fn run(args: Args) -> Result<()> {
    let files = files()?;
    if args.check {
        let mut stale = Vec::new();
        for (rel, contents) in &files {
            let path = args.dir.join(rel);
            match greta_runtime::input::read_to_string(&path) {
                Ok(existing) if existing == *contents => {}
                _ => stale.push(path.display().to_string()),
            }
        }
        if !stale.is_empty() {
            bail!(
                "generated code is stale or missing: {}\nrefresh it with `cargo run --release -- generate` and commit the diff",
                stale.join(", ")
            );
        }
        outln!(
            "{} generated files are up to date in {}",
            files.len(),
            args.dir.display()
        );
        return Ok(());
    }
    for (rel, contents) in &files {
        let path = args.dir.join(rel);
        greta_runtime::output::write(&path, contents.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    outln!("wrote {} files to {}", files.len(), args.dir.display());
    Ok(())
}
