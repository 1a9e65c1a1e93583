//! `greta emit KERNEL --target T --format F [--config k=v,...] [-o FILE]`.

use anyhow::{Context, Result};
use greta_codegen::Format;
use greta_runtime::output::OutputFile;
use std::io::Write;

#[derive(clap::Args)]
pub struct Args {
    /// Kernel name (see `greta kernels`).
    kernel: String,
    /// gfx942 (AMD MI300X) or sm_90 (NVIDIA H100/H200).
    #[arg(long, short)]
    target: String,
    /// ir (greta's IR, target independent), hip (generated source), ptx (sm_90 only) or asm
    /// (AMDGCN for gfx942, PTX for sm_90).
    #[arg(long, short, value_enum, default_value = "hip")]
    format: FormatArg,
    /// Tunable parameters as key=value,... (defaults for the rest).
    #[arg(long, short, default_value = "")]
    config: String,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    output: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Ir,
    Hip,
    Ptx,
    Asm,
}

pub fn run(args: Args) -> Result<()> {
    // Before any work: a destination greta will not write (a device, a FIFO, a directory) is
    // refused now (see greta_runtime::output).
    let file = args.output.as_deref().map(OutputFile::create).transpose()?;
    let spec = super::kernel_spec(&args.kernel)?;
    let target = super::target(&args.target)?;
    let config = spec.config(&args.config)?;
    let kernel = super::build(spec, &config, target)?;
    let format = match args.format {
        FormatArg::Ir => return output(file, &greta_dsl::print::print_kernel(&kernel)),
        FormatArg::Hip => Format::Source,
        FormatArg::Ptx => Format::Ptx,
        FormatArg::Asm => Format::Asm,
    };
    output(file, &greta_codegen::emit(&kernel, target, format)?)
}

fn output(file: Option<OutputFile>, text: &str) -> Result<()> {
    match file {
        Some(mut f) => {
            f.write_all(text.as_bytes())
                .with_context(|| format!("writing {}", f.path().display()))?;
            f.commit()?;
        }
        None => out!("{text}"),
    }
    Ok(())
}
