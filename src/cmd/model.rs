//! `greta model ...`: working with model files.
//!
//! - `greta model synth --shape 7b|8b|1b|tiny [--dtype f16] [--seed N] -o FILE.gguf` writes a
//!   random-weight Llama GGUF with the real model's tensor names, shapes and metadata (see
//!   `greta_model::synth`), so runtimes and benchmarks run at real sizes without downloads.
//! - `greta model info FILE.gguf` prints a GGUF file's metadata and tensors after validating it.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use greta_model::gguf::{GgmlType, GgufFile};
use greta_model::synth::{self, Shape, SynthOptions};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ModelCommand,
}

#[derive(clap::Subcommand)]
enum ModelCommand {
    /// Write a Llama GGUF with random weights and the exact tensor layout and metadata of a real
    /// model size (7b = Llama-2-7B, 8b = Llama-3-8B, 1b = Llama-3.2-1B, tiny = for tests).
    Synth(SynthArgs),
    /// Validate a GGUF file and print its metadata and tensors.
    Info(InfoArgs),
    /// Run the same greedy generation on the CPU and a GPU backend and compare the logits.
    Compare(super::compare::Args),
}

#[derive(clap::Args)]
struct SynthArgs {
    /// Model size: 7b, 8b, 1b or tiny.
    #[arg(long)]
    shape: Shape,
    /// Type of the weight matrices (norms stay f32): f16, bf16, f32 or q8_0.
    #[arg(long, default_value = "f16")]
    dtype: String,
    /// Seed of the random weights; the same seed gives the same file.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Generator threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Output file.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
}

#[derive(clap::Args)]
struct InfoArgs {
    /// The GGUF file.
    file: PathBuf,
    /// Print whole arrays (e.g. every token) instead of their first items.
    #[arg(long)]
    full: bool,
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        ModelCommand::Synth(a) => run_synth(a),
        ModelCommand::Info(a) => run_info(a),
        ModelCommand::Compare(a) => super::compare::run(a),
    }
}

fn parse_dtype(s: &str) -> Result<GgmlType> {
    match GgmlType::by_name(s) {
        Some(t) if t.is_supported() => Ok(t),
        _ => Err(anyhow!(
            "unknown --dtype `{s}` (dtypes: f16, bf16, f32, q8_0)"
        )),
    }
}

fn run_synth(a: SynthArgs) -> Result<()> {
    let opts = SynthOptions {
        shape: a.shape,
        dtype: parse_dtype(&a.dtype)?,
        seed: a.seed,
        threads: a.threads,
    };
    let spec = a.shape.spec();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(format!("writing {}", a.output.display()));
    let start = std::time::Instant::now();
    let summary = synth::synthesize(&opts, &a.output, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    outln!(
        "wrote {}: {} ({}), {} tensors, {:.1}M parameters, {} in {:.1}s",
        a.output.display(),
        spec.general_name,
        opts.dtype,
        summary.n_tensors,
        summary.n_params as f64 / 1e6,
        human_bytes(summary.file_bytes),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run_info(a: InfoArgs) -> Result<()> {
    let f = GgufFile::open(&a.file)?;
    // `greta model info big.gguf | head` is normal use: a closed pipe ends the listing quietly
    // (see `out`).
    outln!(
        "{}: GGUF v{}, {} metadata keys, {} tensors, alignment {}, data at byte {}",
        a.file.display(),
        f.version(),
        f.metadata().len(),
        f.tensors().len(),
        f.alignment(),
        f.data_offset()
    );
    for (k, v) in f.metadata() {
        let ty = v.type_description();
        if a.full {
            outln!("  {k} ({ty}) = {v:#}");
        } else {
            outln!("  {k} ({ty}) = {v}");
        }
    }
    for t in f.tensors() {
        outln!(
            "  {:<32} {:<5} {:?} ({} bytes at +{})",
            t.name,
            t.ty.name(),
            t.dims,
            t.size_bytes,
            t.offset
        );
    }
    // What `greta run` checks before it sizes anything by the metadata: a file whose metadata
    // does not match its tensors is reported after the listing, with status 1.
    check_architecture(&f).with_context(|| a.file.display().to_string())
}

/// A `llama` file: its configuration against its tensors, and every tensor the model needs
/// (present, of its shape; a type greta does not run is not an error here). Another
/// architecture: its `block_count` against the blocks its tensors name.
fn check_architecture(f: &GgufFile) -> Result<()> {
    use greta_model::llama::{config, weights, LlamaConfig};
    match f.get_str("general.architecture")? {
        Some("llama") => {
            let cfg = LlamaConfig::from_gguf(f)?;
            weights::check_layout(f, &cfg)?;
        }
        Some(arch) => {
            config::check_block_count(f, arch)?;
        }
        None => {}
    }
    Ok(())
}

/// Sizes as a person reads them: 1.2 MB, 13.5 GB.
fn human_bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e9 => format!("{:.2} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.1} MB", n / 1e6),
        n => format!("{:.1} kB", n / 1e3),
    }
}
