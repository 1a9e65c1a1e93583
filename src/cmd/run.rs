//! `greta run -m FILE -p PROMPT [-n N] [--temp T] [--seed S] [-c CTX] ...`: generate text with a
//! Llama GGUF model. Stdout carries only the text (the prompt, then the continuation as it is
//! generated); logs and the llama.cpp-style summary go to stderr.
//!
//! Several prompts (`-p` repeated, or `--prompts FILE` with one per line) are generated
//! together: each has its own KV cache and position, and they decode in one batched step, each
//! sequence with its own sampler of the same settings — so each text is the one it would get
//! alone. Their texts are printed at the end, each labelled `[i]` (from 1, in prompt order).

use super::device::Objects;
use super::out;
use anyhow::{bail, Context, Result};
use greta_model::generate::{generate, generate_batch, Stats};
use greta_model::gguf::GgufFile;
use greta_model::llama::profile::{Phase, ProfileRow};
use greta_model::llama::{Model, ModelOptions, TraceOptions};
use greta_model::sampler::{Sampler, SamplerConfig};
use greta_model::tokenizer::{Decoder, Tokenizer};
use greta_runtime::Backend;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// The model: a GGUF file of a Llama-family model.
    #[arg(long, short)]
    model: PathBuf,
    /// The prompt to continue; repeat to generate several sequences together.
    #[arg(long, short)]
    prompt: Vec<String>,
    /// A file of prompts, one per line, generated together (with any `-p` prompts first).
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Tokens to generate.
    #[arg(long = "n-predict", short = 'n', default_value_t = 128)]
    n_predict: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.8)]
    temp: f32,
    /// Keep only the k most likely tokens (0: all).
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// Keep the most likely tokens up to this total probability (1: all).
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Penalise recently generated tokens (1: off).
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    /// How many recent tokens the repeat penalty considers.
    #[arg(long, default_value_t = 64)]
    repeat_last_n: usize,
    /// Seed for sampling; the same seed gives the same text.
    #[arg(long, short, default_value_t = 42)]
    seed: u64,
    /// Context length (KV-cache positions). Default: the model's training context, at most 4096.
    #[arg(long = "ctx-size", short = 'c')]
    ctx: Option<usize>,
    /// Activation type: f16, bf16 or f32. Default: the weights' type for f16/bf16 models, f32
    /// for the others (f32 keeps f32 models exact).
    #[arg(long)]
    dtype: Option<String>,
    /// Attention kernels: v4 (fused; matrix cores over several tokens with f16/bf16
    /// activations, flash attention with f32 ones; split-K decode over one), v3 (queries staged
    /// in LDS, several rows per wave, over several tokens), v2 (flash attention over several
    /// tokens, a row per wave) or v1 (scores in memory, the reference).
    #[arg(long, default_value = "v4")]
    attn: String,
    /// Time every kernel launch on the device and print where the time went, by kernel, for
    /// the prompt and for generation (slower: each launch is timed on its own).
    #[arg(long)]
    profile: bool,
    /// kv-aligned mode: run the prompt as decode steps (8 tokens a launch, the decode kernels)
    /// so that its KV cache and logits are bit-identical to decoding it token by token; the
    /// prompt is then processed at decode speed.
    #[arg(long)]
    kv_aligned: bool,
    /// Launch every kernel of every decode step instead of replaying the step captured once
    /// as a CUDA/HIP graph (for comparisons: the text is the same to the bit).
    #[arg(long)]
    no_graphs: bool,
    /// What decode's GEMVs compute as they load their input, comma-separated: `norm`
    /// (RMSNorm), `glu` (SwiGLU), or `none` (each its own launch; the fused kernels keep those
    /// rows in f32, so the logits differ by their rounding). Default: the measured best on the
    /// H200, none (greta_model::llama::DEFAULT_FUSION).
    #[arg(long, value_name = "LIST")]
    fuse: Option<String>,
    /// Also list, per kernel, the configuration it runs: the tuning DB's winner (`greta
    /// tune`) or the default.
    #[arg(long, short)]
    verbose: bool,
    #[command(flatten)]
    source: super::source::SourceArgs,
}

pub fn run(args: Args) -> Result<()> {
    let sampling = SamplerConfig {
        temperature: args.temp,
        top_k: args.top_k,
        top_p: args.top_p,
        repeat_penalty: args.repeat_penalty,
        repeat_last_n: args.repeat_last_n,
        seed: args.seed,
    };
    let mut sampler = Sampler::new(sampling.clone())?;
    let t0 = Instant::now();
    let file = GgufFile::open(&args.model)?;
    let tokenizer = Tokenizer::from_gguf(&file)
        .with_context(|| format!("reading the tokenizer of {}", args.model.display()))?;
    let texts = prompt_texts(&args)?;
    let prompts: Vec<Vec<u32>> = texts.iter().map(|t| tokenizer.encode(t, true)).collect();
    if let Some(i) = prompts.iter().position(Vec::is_empty) {
        let which = if prompts.len() > 1 {
            format!("prompt {} is", i + 1)
        } else {
            "the prompt is".into()
        };
        bail!("{which} empty and the model adds no BOS token: give a prompt with -p");
    }
    let longest = prompts
        .iter()
        .map(Vec::len)
        .max()
        .expect("at least one prompt");
    let (backend, objects) = args.source.open()?;
    let cfg = greta_model::llama::LlamaConfig::from_gguf(&file)
        .with_context(|| args.model.display().to_string())?;
    let ctx = args.ctx.unwrap_or(cfg.context_train.min(4096));
    if ctx == 0 {
        bail!("the context size (-c) must be at least 1");
    }
    if longest >= ctx {
        bail!("a prompt has {longest} tokens but the context holds {ctx}: use a larger -c or a shorter prompt");
    }
    if ctx > cfg.context_train {
        errln!(
            "greta: warning: context {ctx} is longer than the {} tokens the model was trained with",
            cfg.context_train
        );
    }
    let activations = args.dtype.as_deref().map(super::activations).transpose()?;
    let attention = super::attention(&args.attn)?;
    let trace = TraceOptions::from_env()?;
    let tuning = super::tune::db_for(args.source.via())?;
    let backend_name = format!("{} ({})", backend.kind(), backend.device_name());
    let mut model = load_model(
        &file,
        &args.model,
        backend,
        &*objects,
        &ModelOptions {
            context: ctx,
            activations,
            attention,
            sequences: prompts.len(),
            trace,
            tuning,
        },
    )?;
    if args.profile {
        model.enable_profile();
    }
    model.set_kv_aligned(args.kv_aligned);
    model.set_graphs(!args.no_graphs);
    model.set_fusion(&crate::cmd::run::fusion_list(args.fuse.as_deref())?);
    super::tune::report_model(&model, args.verbose)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    errln!(
        "greta: {} activations; projections: {}",
        model.activations(),
        model.projection_kernels()
    );

    if prompts.len() > 1 {
        let mut samplers = (0..prompts.len())
            .map(|_| Sampler::new(sampling.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let (tokens, stats) = generate_batch(
            &mut model,
            &prompts,
            args.n_predict,
            &mut samplers,
            &|t| tokenizer.is_eog(t),
            &mut |_, _| true,
        )?;
        for (i, seq) in tokens.iter().enumerate() {
            let mut decoder = Decoder::new();
            let mut text = String::new();
            for &t in seq {
                text.push_str(&decoder.push(&tokenizer, t));
            }
            text.push_str(&decoder.finish());
            outln!("[{}] {text}", i + 1);
        }
        finish_trace(&mut model)?;
        return print_summary(&backend_name, load_ms, &stats, &model);
    }
    let prompt = &prompts[0];
    let mut decoder = Decoder::new();
    let mut prompt_text = String::new();
    for &t in prompt {
        prompt_text.push_str(&decoder.push(&tokenizer, t));
    }
    out!("{prompt_text}");
    out::flush()?;
    // A failed write stops generation; a closed stdout (the reader has what it wanted) still
    // gets the summary on stderr, and the command ends quietly (see `out`).
    let mut write_error = None;
    let (_, stats) = generate(
        &mut model,
        prompt,
        args.n_predict,
        &mut sampler,
        &|t| tokenizer.is_eog(t),
        &mut |t| {
            let text = decoder.push(&tokenizer, t);
            match out::print(format_args!("{text}")).and_then(|()| out::flush()) {
                Ok(()) => true,
                Err(e) => {
                    write_error = Some(e);
                    false
                }
            }
        },
    )?;
    match write_error {
        None => outln!("{}", decoder.finish()),
        Some(e @ out::StreamError::Write { .. }) => return Err(e.into()),
        Some(out::StreamError::Closed(_)) => {}
    }
    finish_trace(&mut model)?;
    print_summary(&backend_name, load_ms, &stats, &model)
}

/// Loads `file` (read from `path`) onto `backend` with a progress bar on stderr (hidden when
/// stderr is not a terminal) and says how fast the weights went (GB/s, from the file's tensor
/// bytes and the wall time of the whole load). One definition for `greta run` and `greta bench
/// -m`.
pub(super) fn load_model(
    file: &GgufFile,
    path: &Path,
    backend: Box<dyn Backend>,
    objects: &Objects<'_>,
    options: &ModelOptions,
) -> Result<Model> {
    let bytes: u64 = file.tensors().iter().map(|t| t.size_bytes).sum();
    let bar = ProgressBar::new(bytes).with_style(
        ProgressStyle::with_template(
            "loading {bar:30} {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec})",
        )
        .expect("a valid template"),
    );
    let objects_fn = |k: &greta_dsl::ir::Kernel| objects(k).map_err(|e| format!("{e:#}"));
    let t0 = Instant::now();
    // The model reports whole layers; the bar shows their share of the bytes.
    let model = Model::load(file, backend, &objects_fn, options, &mut |done, total| {
        bar.set_position(bytes * done as u64 / total.max(1) as u64);
    })
    .with_context(|| format!("loading {}", path.display()))?;
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    let (size, unit) = if bytes >= 1_000_000_000 {
        (bytes as f64 / 1e9, "GB")
    } else {
        (bytes as f64 / 1e6, "MB")
    };
    errln!(
        "greta: loaded {size:.2} {unit} of weights in {secs:.2} s ({:.2} GB/s)",
        bytes as f64 / 1e9 / secs.max(1e-9)
    );
    Ok(model)
}

/// Puts the logits dump (`GRETA_DUMP_LOGITS`) in place and says where, on stderr.
pub(super) fn finish_trace(model: &mut Model) -> Result<()> {
    if let Some((path, [rows, vocab])) = model.finish_trace()? {
        errln!(
            "greta: logits of {rows} positions × {vocab} (f32) written to {}",
            path.display()
        );
    }
    Ok(())
}

/// The prompts in order: `-p` ones, then the lines of `--prompts` (an empty line is an empty
/// prompt, refused later); the empty prompt when none is given (a BOS-only start).
fn prompt_texts(args: &Args) -> Result<Vec<String>> {
    let mut texts = args.prompt.clone();
    if let Some(path) = &args.prompts {
        let all = greta_runtime::input::read_to_string(path)
            .with_context(|| format!("reading prompts from {}", path.display()))?;
        let lines: Vec<String> = all.lines().map(str::to_string).collect();
        if lines.is_empty() {
            bail!("{} holds no prompts: give one per line", path.display());
        }
        texts.extend(lines);
    }
    if texts.is_empty() {
        texts.push(String::new());
    }
    Ok(texts)
}

/// The llama.cpp-style summary on stderr (and the profile when asked for).
fn print_summary(backend_name: &str, load_ms: f64, stats: &Stats, model: &Model) -> Result<()> {
    errln!();
    errln!("greta: backend          = {backend_name}");
    errln!("greta: load time        = {load_ms:10.2} ms");
    errln!(
        "greta: prompt eval time = {:10.2} ms / {:5} tokens ({:8.2} ms per token, {:8.2} tokens per second)",
        stats.prompt_ms,
        stats.prompt_tokens,
        stats.prompt_ms / stats.prompt_tokens.max(1) as f64,
        stats.prompt_tokens_per_s()
    );
    errln!(
        "greta:        eval time = {:10.2} ms / {:5} runs   ({:8.2} ms per token, {:8.2} tokens per second)",
        stats.generate_ms,
        stats.generated_tokens,
        stats.generate_ms / stats.generated_tokens.max(1) as f64,
        stats.generate_tokens_per_s()
    );
    errln!(
        "greta: peak device memory = {:.1} MiB (greta's buffers)",
        model.peak_device_bytes() as f64 / (1u64 << 20) as f64
    );
    if let Some(rows) = model.profile() {
        print_profile(&rows)?;
    }
    Ok(())
}

/// The profile as a table on stderr: per phase, each kernel's share of the device time.
fn print_profile(rows: &[ProfileRow]) -> Result<()> {
    errln!("greta: profile (device time per kernel; each launch timed on its own)");
    for phase in [Phase::Prefill, Phase::Decode] {
        let of_phase: Vec<&ProfileRow> = rows.iter().filter(|r| r.phase == phase).collect();
        let total: f64 = of_phase.iter().map(|r| r.total_ms).sum();
        if of_phase.is_empty() {
            continue;
        }
        errln!("greta: {phase}: {total:.2} ms on the device");
        for r in of_phase {
            errln!(
                "greta:   {:6.2}% {:10.3} ms {:6} launches  {}",
                100.0 * r.total_ms / total.max(f64::MIN_POSITIVE),
                r.total_ms,
                r.launches,
                r.kernel
            );
        }
    }
    Ok(())
}

/// The fusions `--fuse LIST` names (`none` for none), or the default.
pub(crate) fn fusion_list(
    list: Option<&str>,
) -> anyhow::Result<Vec<greta_model::llama::kernels::Fusion>> {
    let Some(list) = list else {
        return Ok(greta_model::llama::DEFAULT_FUSION.to_vec());
    };
    if list.trim() == "none" {
        return Ok(Vec::new());
    }
    list.split(',')
        .map(|f| {
            f.trim()
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--fuse: {e}"))
        })
        .collect()
}
