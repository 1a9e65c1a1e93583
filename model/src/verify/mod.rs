//! The trust gates: what an inference team checks before it trusts an engine on new hardware,
//! each a function of a model loader that returns a [`GateReport`] (figures and pass/fail),
//! run together by `greta verify`.
//!
//! | gate | what it checks |
//! |---|---|
//! | `determinism` | the same prompt, greedy, N times: identical tokens, bit-identical logits |
//! | `prefill-decode` | one prefill pass vs token-by-token decode: logits at every position; and the kv-aligned mode (prefill, and prefill n−1 then decode the last, bit-identical to decode) at several lengths |
//! | `cross-dtype` | f32 vs f16 vs bf16 activations: top-1 agreement and logit differences |
//! | `long-context` | prefill + decode at long contexts; device memory against the plan; an impossible context refused |
//! | `batch` | 1…B sequences of different lengths decoded together: each bit-identical to its own run |
//! | `soak` | the determinism gate repeated over minutes of continuous decode |
//! | `matrix` | activation dtype × kv mode (default, kv-aligned) × prompt length |
//!
//! Thresholds are per activation type ([`Tolerance`]); every gate reports its figures whether it
//! passes or not, and an error inside a gate (a load or a pass that fails) fails that gate only.

mod batch;
mod compare;
mod cross_dtype;
mod determinism;
mod long_context;
mod matrix;
mod prefill_decode;
mod soak;

pub use compare::Tolerance;

use crate::llama::{DecodeStep, LoadError, Model, ModelOptions, RunError};
use crate::sampler::argmax;
use serde_json::{Map, Value};

/// One gate's result: its figures (also what `--json` prints) and whether it passed.
#[derive(Clone, Debug)]
pub struct GateReport {
    pub name: &'static str,
    pub passed: bool,
    /// One line for the table.
    pub summary: String,
    pub figures: Map<String, Value>,
}

/// Why a gate could not run to the end (it then fails, with this as its summary).
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("loading: {0}")]
    Load(#[from] LoadError),
    #[error("running: {0}")]
    Run(#[from] RunError),
}

/// Sizes of the gates' work. [`Settings::cpu`] keeps the interpreter's run of every gate within
/// a few minutes; [`Settings::gpu`] is what the goals ask of a GPU (32k context, minutes of
/// soak).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Determinism runs.
    pub runs: usize,
    /// Prompt tokens of the determinism, prefill-decode, cross-dtype and soak gates.
    pub prompt_len: usize,
    /// Tokens each run decodes.
    pub decode_tokens: usize,
    /// Prompt lengths of the kv-aligned mode.
    pub aligned_lengths: Vec<usize>,
    /// Prompt lengths of the matrix.
    pub matrix_lengths: Vec<usize>,
    /// Contexts of the long-context gate (prompt tokens prefilled at once).
    pub long_lengths: Vec<usize>,
    /// Sequences decoded together, at most (every batch size from 1 is checked).
    pub batch: usize,
    /// Soak: at least this many runs, over at least this many seconds.
    pub soak_runs: usize,
    pub soak_seconds: f64,
}

impl Settings {
    pub fn cpu() -> Settings {
        Settings {
            runs: 10,
            prompt_len: 8,
            decode_tokens: 4,
            // 8 and 9 tokens: the last GEMV-sized and the first GEMM-sized pass.
            aligned_lengths: vec![2, 5, 9],
            matrix_lengths: vec![1, 2, 8, 9],
            long_lengths: vec![128],
            batch: 8,
            soak_runs: 5,
            soak_seconds: 5.0,
        }
    }

    pub fn gpu() -> Settings {
        Settings {
            runs: 10,
            prompt_len: 64,
            decode_tokens: 32,
            aligned_lengths: vec![2, 9, 64, 300, 1000],
            // 3 types × 2 kv modes × 12 lengths = 72 cases (the design's nightly had 64):
            // around the GEMV/GEMM switch (8, 9), tile edges (16, 31, 64, 127) and long.
            matrix_lengths: vec![1, 2, 3, 8, 9, 16, 31, 64, 127, 256, 512, 1000],
            long_lengths: vec![8192, 16384, 32768],
            batch: 8,
            soak_runs: 5,
            soak_seconds: 120.0,
        }
    }
}

/// Loads the model under test with the given options (a fresh backend each time).
pub type Loader<'a> = dyn Fn(&ModelOptions) -> Result<Model, LoadError> + 'a;

/// The model under test and how to exercise it.
pub struct Verifier<'a> {
    pub load: &'a Loader<'a>,
    /// The options every gate starts from (activation type, attention); each gate sets the
    /// context and sequences it needs.
    pub options: ModelOptions,
    /// The start of every prompt (the tokenized text); prompts are extended past it with
    /// pseudo-random token ids ([`Verifier::prompt`]).
    pub text: Vec<u32>,
    pub vocab: usize,
    pub settings: Settings,
}

/// The gates, in the order they run.
pub const GATES: [&str; 7] = [
    "determinism",
    "prefill-decode",
    "cross-dtype",
    "long-context",
    "batch",
    "soak",
    "matrix",
];

impl Verifier<'_> {
    /// Runs gate `name` (one of [`GATES`]); `None` for an unknown name.
    pub fn run(&self, name: &str) -> Option<GateReport> {
        let (name, result) = match name {
            "determinism" => ("determinism", determinism::run(self)),
            "prefill-decode" => ("prefill-decode", prefill_decode::run(self)),
            "cross-dtype" => ("cross-dtype", cross_dtype::run(self)),
            "long-context" => ("long-context", long_context::run(self)),
            "batch" => ("batch", batch::run(self)),
            "soak" => ("soak", soak::run(self)),
            "matrix" => ("matrix", matrix::run(self)),
            _ => return None,
        };
        Some(result.unwrap_or_else(|e| GateReport {
            name,
            passed: false,
            summary: e.to_string(),
            figures: figures([("error", Value::from(e.to_string()))]),
        }))
    }

    /// A prompt of `len` tokens: the text's tokens, then pseudo-random ids (a fixed sequence,
    /// the same every run) from the vocabulary.
    pub fn prompt(&self, len: usize) -> Vec<u32> {
        let mut p: Vec<u32> = self.text.iter().copied().take(len).collect();
        let mut state = 0x9e37_79b9_u32;
        while p.len() < len {
            // xorshift32: cheap, fixed, spread over the vocabulary.
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            p.push(state % self.vocab as u32);
        }
        p
    }

    /// Loads the model with `context` positions and `sequences` KV slots (else the base
    /// options).
    fn load(&self, context: usize, sequences: usize) -> Result<Model, LoadError> {
        (self.load)(&ModelOptions {
            context,
            sequences,
            ..self.options.clone()
        })
    }
}

/// A JSON object of figures.
fn figures<const N: usize>(items: [(&str, Value); N]) -> Map<String, Value> {
    items.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// One greedy generation: the tokens chosen and the logits each was chosen from.
#[derive(Clone, Debug, PartialEq)]
struct Run {
    tokens: Vec<u32>,
    logits: Vec<Vec<f32>>,
}

impl Run {
    /// Equal tokens and bit-identical logits.
    fn same_bits(&self, other: &Run) -> bool {
        self.tokens == other.tokens
            && self.logits.len() == other.logits.len()
            && self
                .logits
                .iter()
                .zip(&other.logits)
                .all(|(a, b)| compare::same_bits(a, b))
    }
}

/// Greedy generation of `n` tokens after each prompt, prompt `i` in KV slot `i`: each prompt
/// prefilled on its own, then every sequence decoded in one batched step per token.
fn greedy(model: &mut Model, prompts: &[Vec<u32>], n: usize) -> Result<Vec<Run>, RunError> {
    let mut runs: Vec<Run> = Vec::with_capacity(prompts.len());
    let mut logits = Vec::with_capacity(prompts.len());
    for (slot, p) in prompts.iter().enumerate() {
        logits.push(model.forward_in(slot, p, 0)?);
        runs.push(Run {
            tokens: Vec::new(),
            logits: Vec::new(),
        });
    }
    for step in 0..n {
        let mut steps = Vec::with_capacity(prompts.len());
        for (slot, l) in logits.into_iter().enumerate() {
            let next = argmax(&l);
            let run = &mut runs[slot];
            run.tokens.push(next);
            run.logits.push(l);
            steps.push(DecodeStep {
                slot,
                token: next,
                pos: prompts[slot].len() + step,
            });
        }
        if step + 1 == n {
            break;
        }
        logits = model.decode(&steps)?;
    }
    Ok(runs)
}
