//! `greta model compare -m FILE -p PROMPT [-n N] --backend cuda [--dtype D] [--vs-dtype E]
//! [--attn A] [--vs-attn B]`: the same greedy generation on the CPU backend (the interpreter) and
//! on a GPU backend — or, with `--vs-dtype` / `--vs-attn`, on one backend at two activation
//! types or with two attention variants — step by step, reporting the largest logit difference
//! and whether every greedy token agrees. Used by `scripts/gpu-check`.

use anyhow::{bail, Result};
use greta_model::gguf::GgufFile;
use greta_model::llama::{Model, ModelOptions, TraceOptions};
use greta_model::sampler::argmax;
use greta_model::tokenizer::Tokenizer;
use greta_runtime::cpu::CpuBackend;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, short)]
    model: PathBuf,
    #[arg(long, short, default_value = "Once upon a time")]
    prompt: String,
    /// Greedy steps after the prompt.
    #[arg(short = 'n', default_value_t = 16)]
    steps: usize,
    /// Largest logit difference accepted.
    #[arg(long, default_value_t = 1e-3)]
    tolerance: f64,
    /// Activation type (default: the model's).
    #[arg(long)]
    dtype: Option<String>,
    /// Compare with the same backend at this activation type instead of with the CPU backend
    /// (e.g. f16 against f32).
    #[arg(long)]
    vs_dtype: Option<String>,
    /// Attention kernels: v1, v2 or v4 (as `greta run --attn`).
    #[arg(long, default_value = "v4")]
    attn: String,
    /// Compare with the same backend and activation type with these attention kernels instead
    /// of with the CPU backend (e.g. v2 against v1).
    #[arg(long)]
    vs_attn: Option<String>,
    #[command(flatten)]
    source: super::source::SourceArgs,
}

pub fn run(args: Args) -> Result<()> {
    let file = GgufFile::open(&args.model)?;
    let tokenizer = Tokenizer::from_gguf(&file)?;
    let mut tokens = tokenizer.encode(&args.prompt, true);
    let context = tokens.len() + args.steps + 1;
    let (backend, objects) = args.source.open()?;
    let gpu_name = format!("{} ({})", backend.kind(), backend.device_name());
    let objects_fn = |k: &greta_dsl::ir::Kernel| objects(k).map_err(|e| format!("{e:#}"));
    let activations = args.dtype.as_deref().map(super::activations).transpose()?;
    let attention = super::attention(&args.attn)?;
    let options = ModelOptions {
        context,
        activations,
        attention,
        sequences: 1,
        trace: TraceOptions::default(),
        tuning: None,
    };
    if args.vs_dtype.is_some() && args.vs_attn.is_some() {
        bail!("--vs-dtype and --vs-attn: compare one thing at a time");
    }
    // The side under test (`--backend`) is traced and dumps its logits; the other is not.
    let traced = ModelOptions {
        trace: TraceOptions::from_env()?,
        ..options.clone()
    };
    let mut gpu = Model::load(&file, backend, &objects_fn, &traced, &mut |_, _| {})?;
    // The other side: the same backend at another activation type, or the CPU backend.
    let other_side = match (&args.vs_dtype, &args.vs_attn) {
        (Some(d), _) => Some((
            ModelOptions {
                activations: Some(super::activations(d)?),
                ..options.clone()
            },
            format!("{gpu_name} with {d} activations"),
        )),
        (_, Some(a)) => Some((
            ModelOptions {
                attention: super::attention(a)?,
                ..options.clone()
            },
            format!("{gpu_name} with attention {a}"),
        )),
        _ => None,
    };
    let (mut other, other_name) = match other_side {
        Some((options, name)) => {
            let (backend, objects) = args.source.open()?;
            let objects_fn = |k: &greta_dsl::ir::Kernel| objects(k).map_err(|e| format!("{e:#}"));
            let model = Model::load(&file, backend, &objects_fn, &options, &mut |_, _| {})?;
            (model, name)
        }
        None => (
            Model::load(
                &file,
                Box::new(CpuBackend::default()),
                &|_| Ok(None),
                &options,
                &mut |_, _| {},
            )?,
            "cpu".to_string(),
        ),
    };
    let diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs() as f64)
            .fold(0.0, f64::max)
    };
    let (mut g, mut c) = (gpu.forward(&tokens, 0)?, other.forward(&tokens, 0)?);
    let mut worst = diff(&g, &c);
    let mut agree = true;
    for _ in 0..args.steps {
        let (tg, tc) = (argmax(&g), argmax(&c));
        agree &= tg == tc;
        tokens.push(tc);
        let pos = tokens.len() - 1;
        g = gpu.forward(&tokens[pos..], pos)?;
        c = other.forward(&tokens[pos..], pos)?;
        worst = worst.max(diff(&g, &c));
    }
    let act = activations.map_or_else(|| "default".to_string(), |a| a.to_string());
    outln!(
        "{}: {gpu_name} ({act} activations, attention {attention}) vs {other_name} over {} positions: max |logit difference| = {worst:.2e}, greedy tokens {}",
        args.model.display(),
        tokens.len(),
        if agree { "identical" } else { "DIFFER" }
    );
    outln!("text: {}", tokenizer.decode(&tokens));
    super::run::finish_trace(&mut gpu)?;
    if !agree || worst > args.tolerance {
        bail!(
            "the two forward passes disagree (max difference {worst:.2e}, tolerance {:.0e})",
            args.tolerance
        );
    }
    Ok(())
}
