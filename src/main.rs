//! `greta`: the command line. Each subcommand lives in its own module under `cmd/`; this file
//! only parses arguments and reports errors (one clear sentence, non-zero exit, never a panic;
//! see `cmd::out` for what a closed or full stdout/stderr does).

mod cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "greta",
    version,
    about = "A kernel compiler and LLM runtime for AMD and NVIDIA GPUs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print one kernel's generated code: HIP C++, LLVM IR (--format llvm), PTX, or the target's
    /// assembly, by either lowering (--via hip|llvm).
    Emit(cmd::emit::Args),
    /// Compile every kernel for every target and report its resource usage (--via hip, llvm or
    /// both).
    Inspect(cmd::inspect::Args),
    /// List the kernels of the library and their tunable parameters.
    Kernels,
    /// Write (or with --check, verify) kernels_generated/: every kernel's HIP at its default
    /// configuration for every target.
    Generate(cmd::generate::Args),
    /// Run every kernel on a backend (a GPU by default) against its reference; non-zero exit
    /// on any mismatch.
    Check(cmd::check::Args),
    /// Benchmarks: `greta bench -m model.gguf -p 512 -n 128` measures a model's prompt and
    /// generation tokens/s as llama-bench does; `greta bench kernels` times every kernel against
    /// the memory-bandwidth floor.
    Bench(cmd::bench::Args),
    /// Compile every kernel for one target (through the compile cache) into a code-object
    /// bundle that a GPU machine without a compiler can load.
    Build(cmd::build::Args),
    /// Model files: `greta model synth` writes a random-weight Llama GGUF of a real size;
    /// `greta model info` validates a GGUF file and lists its contents.
    Model(cmd::model::Args),
    /// Generate text with a Llama GGUF model: `greta run -m model.gguf -p "Once upon a time"`.
    Run(cmd::run::Args),
    /// The trust gates on a model: determinism, prefill vs decode, cross-dtype, long context,
    /// batch invariance, soak, and the dtype × kv mode × length matrix.
    Verify(cmd::verify::Args),
    /// Sweep kernels' tile configurations (a kernel at shapes, or every kernel of a model),
    /// prune by the target's limits, check, time, and keep the fastest in the tuning DB.
    Tune(cmd::tune::Args),
}

fn main() {
    let cli = Cli::try_parse().unwrap_or_else(|e| std::process::exit(cmd::out::clap_exit(e)));
    cmd::signals::install();
    let result = match cli.command {
        Command::Emit(args) => cmd::emit::run(args),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Kernels => cmd::kernels::run(),
        Command::Generate(args) => cmd::generate::run(args),
        Command::Check(args) => cmd::check::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Build(args) => cmd::build::run(args),
        Command::Model(args) => cmd::model::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Verify(args) => cmd::verify::run(args),
        Command::Tune(args) => cmd::tune::run(args),
    };
    std::process::exit(cmd::out::exit_code(result));
}
