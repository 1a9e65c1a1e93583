//! `greta verify -m FILE [--backend B] [--gates a,b,...] [--json] [--report FILE.md]`: the trust
//! gates of [`greta_model::verify`] on one model and backend — a table on stdout (or JSON with
//! `--json`), optionally a Markdown report; exit status 1 when any gate fails.

use anyhow::{bail, Context, Result};
use greta_model::gguf::GgufFile;
use greta_model::llama::{LlamaConfig, Model, ModelOptions};
use greta_model::tokenizer::Tokenizer;
use greta_model::verify::{GateReport, Settings, Verifier, GATES};
use greta_runtime::output::OutputFile;
use greta_runtime::BackendKind;
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The model: a GGUF file of a Llama-family model.
    #[arg(long, short)]
    model: PathBuf,
    /// Gates to run, comma-separated (default: all): determinism, prefill-decode, cross-dtype,
    /// long-context, batch, soak, matrix.
    #[arg(long, value_delimiter = ',')]
    gates: Vec<String>,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write the results as Markdown to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// The text prompts start with (extended with fixed pseudo-random tokens where a gate
    /// needs more).
    #[arg(long, short, default_value = "Once upon a time")]
    prompt: String,
    /// Activation type: f16, bf16 or f32 (default: the model's; cross-dtype and matrix run all
    /// three).
    #[arg(long)]
    dtype: Option<String>,
    /// Attention kernels (as `greta run --attn`).
    #[arg(long, default_value = "v4")]
    attn: String,
    /// Determinism runs (default 10).
    #[arg(long)]
    runs: Option<usize>,
    /// Tokens each run decodes (default: 4 on the CPU, 32 on a GPU).
    #[arg(long)]
    decode_tokens: Option<usize>,
    /// Context lengths of the long-context gate (default: 128 on the CPU; 8192,16384,32768 on
    /// a GPU).
    #[arg(long, value_delimiter = ',')]
    long_lengths: Vec<usize>,
    /// Prompt lengths of the matrix.
    #[arg(long, value_delimiter = ',')]
    matrix_lengths: Vec<usize>,
    /// Most sequences decoded together in the batch gate (default 8).
    #[arg(long)]
    batch: Option<usize>,
    /// Soak: at least this many seconds (default: 5 on the CPU, 120 on a GPU).
    #[arg(long)]
    soak_seconds: Option<f64>,
    /// Soak: at least this many runs (default 5).
    #[arg(long)]
    soak_runs: Option<usize>,
    #[command(flatten)]
    source: super::source::SourceArgs,
}

/// The most sequences the batch gate decodes together.
const MAX_BATCH: usize = 256;

impl Args {
    /// The settings for a backend of `kind`, with the user's overrides.
    fn settings(&self, kind: BackendKind) -> Result<Settings> {
        let mut s = if kind == BackendKind::Cpu {
            Settings::cpu()
        } else {
            Settings::gpu()
        };
        if let Some(n) = self.runs {
            s.runs = n;
        }
        if let Some(n) = self.decode_tokens {
            s.decode_tokens = n;
        }
        if !self.long_lengths.is_empty() {
            s.long_lengths = self.long_lengths.clone();
        }
        if !self.matrix_lengths.is_empty() {
            s.matrix_lengths = self.matrix_lengths.clone();
        }
        if let Some(n) = self.batch {
            s.batch = n;
        }
        if let Some(x) = self.soak_seconds {
            if !(x >= 0.0 && x.is_finite()) {
                bail!("--soak-seconds {x}: give a number of seconds, 0 or more");
            }
            s.soak_seconds = x;
        }
        if let Some(n) = self.soak_runs {
            s.soak_runs = n;
        }
        for (what, n) in [
            ("--runs", s.runs),
            ("--decode-tokens", s.decode_tokens),
            ("--batch", s.batch),
            ("--soak-runs", s.soak_runs),
        ] {
            if n == 0 {
                bail!("{what} 0: give at least 1");
            }
        }
        // The batch gate decodes every batch size from 1 to N (N²/2 sequences), each with a
        // prompt of its own made before the model is loaded: an absurd N is refused here.
        if s.batch > MAX_BATCH {
            bail!("--batch {}: at most {MAX_BATCH}", s.batch);
        }
        if let Some(&0) = s.long_lengths.iter().chain(&s.matrix_lengths).min() {
            bail!("--long-lengths / --matrix-lengths: a prompt has at least 1 token");
        }
        Ok(s)
    }
}

pub fn run(args: Args) -> Result<()> {
    let gates: Vec<String> = if args.gates.is_empty() {
        GATES.iter().map(|g| g.to_string()).collect()
    } else {
        args.gates.clone()
    };
    if let Some(bad) = gates.iter().find(|g| !GATES.contains(&g.as_str())) {
        bail!(
            "--gates: no gate named `{bad}` (gates: {})",
            GATES.join(", ")
        );
    }
    // Before any gate runs: a report destination greta will not write is refused now.
    let report = args.report.as_deref().map(OutputFile::create).transpose()?;
    let file = GgufFile::open(&args.model)?;
    let cfg = LlamaConfig::from_gguf(&file).with_context(|| args.model.display().to_string())?;
    let tokenizer = Tokenizer::from_gguf(&file)
        .with_context(|| format!("reading the tokenizer of {}", args.model.display()))?;
    let (backend, _) = args.source.open()?;
    let (kind, device) = (backend.kind(), backend.device_name());
    drop(backend);
    let settings = args.settings(kind)?;
    let options = ModelOptions {
        context: 1,
        activations: args.dtype.as_deref().map(super::activations).transpose()?,
        attention: super::attention(&args.attn)?,
        sequences: 1,
        // The gates load many models; `greta run` and `greta model compare` trace.
        trace: Default::default(),
        tuning: None,
    };
    let load = |options: &ModelOptions| {
        let (backend, objects) =
            args.source
                .open()
                .map_err(|e| greta_model::llama::LoadError::Kernel {
                    kernel: "backend".into(),
                    config: String::new(),
                    message: format!("{e:#}"),
                })?;
        let objects_fn = |k: &greta_dsl::ir::Kernel| objects(k).map_err(|e| format!("{e:#}"));
        Model::load(&file, backend, &objects_fn, options, &mut |_, _| {})
    };
    let verifier = Verifier {
        load: &load,
        options,
        text: tokenizer.encode(&args.prompt, true),
        vocab: cfg.vocab,
        settings,
    };
    let mut reports = Vec::new();
    for gate in &gates {
        errln!("greta: verify: {gate} ...");
        let t0 = std::time::Instant::now();
        let report = verifier.run(gate).expect("a known gate");
        errln!(
            "greta: verify: {gate}: {} in {:.1} s",
            status(&report),
            t0.elapsed().as_secs_f64()
        );
        reports.push(report);
    }
    let model = args.model.display().to_string();
    let backend = kind.to_string();
    if args.json {
        let gates: Vec<Value> = reports.iter().map(gate_json).collect();
        let out = json!({"model": model, "backend": backend, "device": device, "gates": gates});
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        out!("{}", table(&reports));
    }
    if let Some(mut report) = report {
        let md = format!(
            "# greta verify\n\n- model: `{model}`\n- backend: {backend} ({device})\n- greta: {}\n\n{}",
            env!("CARGO_PKG_VERSION"),
            table(&reports)
        );
        report
            .write_all(md.as_bytes())
            .with_context(|| format!("writing {}", report.path().display()))?;
        report.commit()?;
    }
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.name)
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} gates failed: {}",
            failed.len(),
            reports.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

fn status(r: &GateReport) -> &'static str {
    if r.passed {
        "pass"
    } else {
        "fail"
    }
}

/// `{"name", "status", ...figures}`.
fn gate_json(r: &GateReport) -> Value {
    let mut obj = serde_json::Map::new();
    obj.insert("name".into(), r.name.into());
    obj.insert("status".into(), status(r).into());
    obj.extend(r.figures.clone());
    Value::Object(obj)
}

/// The results as a Markdown table (what the terminal shows too).
fn table(reports: &[GateReport]) -> String {
    let mut s = String::from("| gate | status | figures |\n|---|---|---|\n");
    for r in reports {
        s.push_str(&format!(
            "| {} | {} | {} |\n",
            r.name,
            status(r),
            r.summary.replace('|', "\\|")
        ));
    }
    s
}
