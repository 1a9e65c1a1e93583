//! `greta model compare -m FILE -p PROMPT [-n N] --backend cuda`: the same greedy generation on
//! the CPU backend (the interpreter) and on a GPU backend, step by step, reporting the largest
//! logit difference and whether every greedy token agrees. Used by `scripts/gpu-check`.

use anyhow::{bail, Result};
use greta_model::gguf::GgufFile;
use greta_model::llama::{Model, ModelOptions};
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
    let options = ModelOptions { context };
    let mut gpu = Model::load(&file, backend, &objects_fn, &options, &mut |_, _| {})?;
    let mut cpu = Model::load(
        &file,
        Box::new(CpuBackend::default()),
        &|_| Ok(None),
        &options,
        &mut |_, _| {},
    )?;
    let diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs() as f64)
            .fold(0.0, f64::max)
    };
    let (mut g, mut c) = (gpu.forward(&tokens, 0)?, cpu.forward(&tokens, 0)?);
    let mut worst = diff(&g, &c);
    let mut agree = true;
    for _ in 0..args.steps {
        let (tg, tc) = (argmax(&g), argmax(&c));
        agree &= tg == tc;
        tokens.push(tc);
        let pos = tokens.len() - 1;
        g = gpu.forward(&tokens[pos..], pos)?;
        c = cpu.forward(&tokens[pos..], pos)?;
        worst = worst.max(diff(&g, &c));
    }
    println!(
        "{}: {gpu_name} vs cpu over {} positions: max |logit difference| = {worst:.2e}, greedy tokens {}",
        args.model.display(),
        tokens.len(),
        if agree { "identical" } else { "DIFFER" }
    );
    println!("text: {}", tokenizer.decode(&tokens));
    if !agree || worst > args.tolerance {
        bail!("the GPU and CPU forward passes disagree (max difference {worst:.2e}, tolerance {:.0e})", args.tolerance);
    }
    Ok(())
}
