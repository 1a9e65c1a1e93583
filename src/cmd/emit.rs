//! `greta emit KERNEL --target T --format F [--config k=v,...] [-o FILE]`.

use anyhow::Result;
use greta_codegen::Format;

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
    let spec = super::kernel_spec(&args.kernel)?;
    let target = super::target(&args.target)?;
    let config = spec.config(&args.config)?;
    let kernel = super::build(spec, &config, target)?;
    let format = match args.format {
        FormatArg::Ir => return output(args.output, &greta_dsl::print::print_kernel(&kernel)),
        FormatArg::Hip => Format::Source,
        FormatArg::Ptx => Format::Ptx,
        FormatArg::Asm => Format::Asm,
    };
    output(args.output, &greta_codegen::emit(&kernel, target, format)?)
}

fn output(path: Option<std::path::PathBuf>, text: &str) -> Result<()> {
    match path {
        Some(path) => super::write_atomic(&path, text.as_bytes()),
        None => {
            out!("{text}");
            Ok(())
        }
    }
}
