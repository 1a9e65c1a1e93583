//! `greta emit KERNEL --target T [--via hip|llvm] [--format F] [--config k=v,...] [-o FILE]`.
//!
//! The format defaults to the lowering's own source: HIP C++ for `--via hip` (the default),
//! LLVM IR for `--via llvm`. `--format llvm` implies `--via llvm`; asking for one lowering's
//! source through the other (`--via hip --format llvm`) is an error.

use super::ViaArg;
use anyhow::{bail, Context, Result};
use greta_codegen::{Format, Toolchain, Via};
use greta_runtime::output::OutputFile;
use std::io::Write;

#[derive(clap::Args)]
pub struct Args {
    /// Kernel name (see `greta kernels`).
    kernel: String,
    /// gfx942 (AMD MI300X) or sm_90 (NVIDIA H100/H200).
    #[arg(long, short)]
    target: String,
    /// ir (greta's IR, target independent), hip (the HIP C++ of --via hip), llvm (the LLVM IR
    /// of --via llvm), ptx (sm_90 only) or asm (AMDGCN for gfx942, PTX for sm_90). Default: the
    /// source of --via.
    #[arg(long, short, value_enum)]
    format: Option<FormatArg>,
    /// The lowering whose output to print: hip (HIP C++ through clang) or llvm (LLVM IR compiled
    /// in process). Default: hip, or llvm with --format llvm.
    #[arg(long, value_enum)]
    via: Option<ViaArg>,
    /// Tunable parameters as key=value,... (defaults for the rest).
    #[arg(long, short, default_value = "")]
    config: String,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    output: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FormatArg {
    Ir,
    Hip,
    Llvm,
    Ptx,
    Asm,
}

/// The lowering `--via` and `--format` ask for together, and the format: a source format names
/// its lowering, so it must agree with an explicit `--via`.
fn via_and_format(via: Option<ViaArg>, format: Option<FormatArg>) -> Result<(Via, FormatArg)> {
    let via = match (format, via) {
        (Some(FormatArg::Llvm), Some(ViaArg::Hip)) => bail!(
            "--format llvm is the LLVM IR of --via llvm, but --via hip was given: drop --via hip, \
             or ask --via hip for --format hip (HIP C++), ptx or asm"
        ),
        (Some(FormatArg::Hip), Some(ViaArg::Llvm)) => bail!(
            "--format hip is the HIP C++ of --via hip, but --via llvm was given: drop --via llvm, \
             or ask --via llvm for --format llvm (LLVM IR), ptx or asm"
        ),
        (Some(FormatArg::Llvm), _) => Via::Llvm,
        (_, via) => via.unwrap_or_default().into(),
    };
    let source = match via {
        Via::Hip => FormatArg::Hip,
        Via::Llvm => FormatArg::Llvm,
    };
    Ok((via, format.unwrap_or(source)))
}

pub fn run(args: Args) -> Result<()> {
    let (via, format) = via_and_format(args.via, args.format)?;
    // Before any work: a destination greta will not write (a device, a FIFO, a directory) is
    // refused now (see greta_runtime::output).
    let file = args.output.as_deref().map(OutputFile::create).transpose()?;
    let spec = super::kernel_spec(&args.kernel)?;
    let target = super::target(&args.target)?;
    let config = spec.config(&args.config)?;
    let kernel = super::build(spec, &config, target)?;
    let format = match format {
        FormatArg::Ir => return output(file, &greta_dsl::print::print_kernel(&kernel)),
        FormatArg::Hip | FormatArg::Llvm => Format::Source,
        FormatArg::Ptx => Format::Ptx,
        FormatArg::Asm => Format::Asm,
    };
    let text = greta_codegen::emit_with(Toolchain::global(), &kernel, target, via, format)?;
    output(file, &text)
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
