//! `greta bench -m MODEL.gguf [-p 512] [-n 128] [-d 0] [-b 2048] [-r 5] [-o md|json]`: the
//! model benchmark of llama.cpp's `llama-bench`, with its flags, tests and output, so greta's
//! figures sit beside llama.cpp's on the same file:
//!
//! - `ppP` (each `-p`): the prompt's `P` random tokens through `Model::forward` in passes of
//!   `-b` tokens, timed up to the last pass's logits (read back, so the device is done);
//! - `tgN` (each `-n`): `N` single-token decode steps, each fed a token fixed in advance (no
//!   sampling: llama-bench feeds random ids too), timed as a whole;
//! - `@ dD` (each `-d`): the test starts after `D` tokens of context in the KV cache, prefilled
//!   untimed before it (see [`plan`]).
//!
//! Each test has an untimed warm-up, then `-r` timed repetitions; a row reports the mean
//! tokens/s ± the sample standard deviation of the repetitions' tokens/s. The model loads once
//! per file with a context sized to the largest test. Stdout carries only the table (or JSON);
//! progress and logs go to stderr. Unlike llama-bench, `--dtype`, `--attn` and `-b` take one
//! value each (a model load per combination is left to separate runs).

mod plan;
mod report;

use crate::cmd::source::SourceArgs;
use anyhow::{bail, Context, Result};
use greta_model::gguf::GgufFile;
use greta_model::llama::{LlamaConfig, Model, ModelOptions};
use greta_model::tokenizer::Tokenizer;
use indicatif::{ProgressBar, ProgressStyle};
use plan::{Role, Test, Tokens};
use report::{Format, ModelInfo, Printer, Row, Setup};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct ModelArgs {
    /// The model: a GGUF file of a Llama-family model; repeat for several.
    #[arg(long, short, required = true, value_name = "FILE")]
    model: Vec<PathBuf>,
    /// Prompt sizes: a `ppN` test each (0: no prompt tests); comma list or repeated.
    #[arg(
        long = "n-prompt",
        short = 'p',
        value_name = "N",
        value_delimiter = ',',
        default_value = "512"
    )]
    n_prompt: Vec<usize>,
    /// Generation lengths: a `tgN` test each (0: no generation tests); comma list or repeated.
    #[arg(
        long = "n-gen",
        short = 'n',
        value_name = "N",
        value_delimiter = ',',
        default_value = "128"
    )]
    n_gen: Vec<usize>,
    /// Context depths: every test again after this many tokens in the KV cache; comma list
    /// or repeated.
    #[arg(
        long = "n-depth",
        short = 'd',
        value_name = "N",
        value_delimiter = ',',
        default_value = "0"
    )]
    n_depth: Vec<usize>,
    /// Prompt tokens per forward pass: longer prompts (and depths) run in passes of this many.
    #[arg(
        long = "batch-size",
        short = 'b',
        value_name = "N",
        default_value_t = 2048
    )]
    batch_size: usize,
    /// Timed repetitions of each test (after one untimed warm-up).
    #[arg(long, short, value_name = "N", default_value_t = 5)]
    repetitions: usize,
    /// Output format: md (llama-bench's Markdown table) or json.
    #[arg(long, short, value_enum, default_value = "md")]
    output: Format,
    /// Context length (KV-cache positions). Default: what the largest test needs.
    #[arg(long = "ctx-size", short = 'c')]
    ctx: Option<usize>,
    /// Activation type: f16, bf16 or f32 (default as `greta run`).
    #[arg(long)]
    dtype: Option<String>,
    /// Attention kernels: v4, v3, v2 or v1 (as `greta run --attn`).
    #[arg(long, default_value = "v4")]
    attn: String,
    /// Launch every kernel of every decode step instead of replaying a captured graph (as
    /// `greta run --no-graphs`; llama.cpp's `GGML_CUDA_DISABLE_GRAPHS=1`).
    #[arg(long)]
    no_graphs: bool,
    /// What decode's GEMVs compute as they load their input, comma-separated: `norm`
    /// (RMSNorm), `glu` (SwiGLU), or `none` (each its own launch; the fused kernels keep those
    /// rows in f32, so the logits differ by their rounding). Default: the measured best on the
    /// H200, none (greta_model::llama::DEFAULT_FUSION).
    #[arg(long, value_name = "LIST")]
    fuse: Option<String>,
    #[command(flatten)]
    source: SourceArgs,
}

/// Seeds of the token ids: the depth context's and the tests'.
const CONTEXT_SEED: u64 = 1;
const TEST_SEED: u64 = 2;

/// A model file, opened and checked before anything runs.
struct Bench {
    path: PathBuf,
    file: GgufFile,
    info: ModelInfo,
    vocab: usize,
    bos: Option<u32>,
    ctx: usize,
}

pub fn run(args: ModelArgs) -> Result<()> {
    if args.repetitions == 0 {
        bail!("-r/--repetitions 0: give at least 1");
    }
    if args.batch_size == 0 {
        bail!("-b/--batch-size 0: give at least 1");
    }
    let tests = plan::tests(&args.n_prompt, &args.n_gen, &args.n_depth);
    if tests.is_empty() {
        bail!("no tests: every -p and -n value is 0");
    }
    let activations = args
        .dtype
        .as_deref()
        .map(crate::cmd::activations)
        .transpose()?;
    let attention = crate::cmd::attention(&args.attn)?;
    // Every file is checked (and its context sized) before the first is benchmarked.
    let benches = args
        .model
        .iter()
        .map(|path| open(path, &tests, args.ctx))
        .collect::<Result<Vec<_>>>()?;
    let tuning = crate::cmd::tune::db_for(args.source.via())?;
    let mut printer = Printer::begin(args.output)?;
    for bench in &benches {
        let (backend, objects) = args.source.open()?;
        let options = ModelOptions {
            context: bench.ctx,
            activations,
            attention,
            sequences: 1,
            trace: Default::default(),
            tuning: tuning.clone(),
        };
        let mut model =
            crate::cmd::run::load_model(&bench.file, &bench.path, backend, &*objects, &options)?;
        model.set_graphs(!args.no_graphs);
        model.set_fusion(&crate::cmd::run::fusion_list(args.fuse.as_deref())?);
        crate::cmd::tune::report_model(&model, false)?;
        let setup = Setup {
            backend: model.backend().kind().to_string(),
            device: model.backend().device_name(),
            dtype: model.activations().to_string(),
            attn: args.attn.clone(),
            n_batch: args.batch_size,
            n_ctx: bench.ctx,
        };
        errln!(
            "greta: bench: {} on {} ({}): {} activations, context {}",
            bench.path.display(),
            setup.backend,
            setup.device,
            setup.dtype,
            bench.ctx
        );
        measure(&mut model, bench, &tests, &args, &mut |test, samples| {
            printer.row(&Row::new(&bench.info, &setup, test, samples))
        })?;
    }
    printer.end()
}

/// Opens and checks `path`, and sizes its context for `tests` (`-c` if given).
fn open(path: &Path, tests: &[Test], ctx: Option<usize>) -> Result<Bench> {
    let file = GgufFile::open(path)?;
    let cfg = LlamaConfig::from_gguf(&file).with_context(|| path.display().to_string())?;
    let tokenizer = Tokenizer::from_gguf(&file)
        .with_context(|| format!("reading the tokenizer of {}", path.display()))?;
    let ctx = plan::context(tests, ctx).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if ctx > cfg.context_train {
        errln!(
            "greta: warning: {}: context {ctx} is longer than the {} tokens the model was trained with",
            path.display(),
            cfg.context_train
        );
    }
    let bos = tokenizer
        .bos()
        .filter(|&b| tokenizer.vocab().add_bos && (b as usize) < cfg.vocab);
    let filename = path.display().to_string();
    Ok(Bench {
        info: ModelInfo::of(filename, &file, &cfg),
        path: path.to_path_buf(),
        file,
        vocab: cfg.vocab,
        bos,
        ctx,
    })
}

/// Runs every test on `model` in order, handing each test's sample times in nanoseconds to
/// `done` as it finishes.
fn measure(
    model: &mut Model,
    bench: &Bench,
    tests: &[Test],
    args: &ModelArgs,
    done: &mut dyn FnMut(&Test, Vec<u64>) -> Result<()>,
) -> Result<()> {
    // The progress bar counts runs: the plan of every test, first.
    let mut valid = 0;
    let mut total = 0;
    for t in tests {
        let (runs, after) = plan::runs(t, args.repetitions, args.batch_size, valid);
        total += runs.count();
        valid = after;
    }
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("{msg:24} {bar:30} {pos}/{len}").expect("a valid template"),
    );
    let max_depth = tests.iter().map(|t| t.n_depth).max().unwrap_or(0);
    let context = Tokens::new(CONTEXT_SEED, bench.vocab, bench.bos).take(0..max_depth, 0);
    let mut tokens = Tokens::new(TEST_SEED, bench.vocab, bench.bos);
    let mut valid = 0;
    for test in tests {
        let (runs, after) = plan::runs(test, args.repetitions, args.batch_size, valid);
        valid = after;
        let mut samples = Vec::new();
        for run in runs {
            bar.set_message(match run.role {
                Role::Depth => format!("{}: depth", test.label()),
                Role::Warmup => format!("{}: warm-up", test.label()),
                Role::Sample(i) => format!("{}: {}/{}", test.label(), i + 1, args.repetitions),
            });
            // The ids before the clock starts.
            let ids = match run.role {
                Role::Depth => context[run.positions.clone()].to_vec(),
                _ => tokens.take(run.positions.clone(), test.n_depth),
            };
            let t0 = Instant::now();
            for pass in run.passes() {
                let ids = &ids[pass.start - run.positions.start..pass.end - run.positions.start];
                model
                    .forward(ids, pass.start)
                    .with_context(|| format!("{} ({})", test.label(), bench.path.display()))?;
            }
            let ns = t0.elapsed().as_nanos();
            if let Role::Sample(_) = run.role {
                samples.push(u64::try_from(ns).unwrap_or(u64::MAX).max(1));
            }
            bar.inc(1);
        }
        // The bar steps aside while the row is printed (stdout and stderr may share a terminal).
        bar.suspend(|| done(test, samples))?;
    }
    bar.finish_and_clear();
    Ok(())
}
