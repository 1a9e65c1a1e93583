//! The generation loop: prefill the whole prompt in one forward pass, then decode token by
//! token, streaming each token to the caller, with llama.cpp-style timings; several prompts
//! decode together ([`generate_batch`]).

use crate::llama::{DecodeStep, Model, RunError};
use crate::sampler::Sampler;
use std::time::Instant;

/// Timings of one generation, for the summary a user compares with llama.cpp's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub prompt_tokens: usize,
    pub prompt_ms: f64,
    pub generated_tokens: usize,
    pub generate_ms: f64,
}

impl Stats {
    pub fn prompt_tokens_per_s(&self) -> f64 {
        self.prompt_tokens as f64 / (self.prompt_ms / 1e3).max(1e-9)
    }
    pub fn generate_tokens_per_s(&self) -> f64 {
        self.generated_tokens as f64 / (self.generate_ms / 1e3).max(1e-9)
    }
}

/// Generates up to `n_predict` tokens after `prompt` (which must fit the model's context with
/// at least one free position). `on_token` sees each new token; returning `false` stops early.
/// Stops at an end-of-generation token (`is_eog`) or when the context is full.
pub fn generate(
    model: &mut Model,
    prompt: &[u32],
    n_predict: usize,
    sampler: &mut Sampler,
    is_eog: &dyn Fn(u32) -> bool,
    on_token: &mut dyn FnMut(u32) -> bool,
) -> Result<(Vec<u32>, Stats), RunError> {
    let (mut tokens, stats) = generate_batch(
        model,
        &[prompt.to_vec()],
        n_predict,
        std::slice::from_mut(sampler),
        is_eog,
        &mut |_, t| on_token(t),
    )?;
    Ok((tokens.pop().expect("one sequence"), stats))
}

/// Generates up to `n_predict` tokens after each of `prompts` at once, sequence `i` in the
/// model's KV-cache slot `i` with its own sampler `samplers[i]`: each prompt is prefilled on
/// its own, then every unfinished sequence decodes in one batched step ([`Model::decode`], whose
/// logits for a sequence are bit-identical to its decoding alone — so each sequence's tokens
/// are those of its own run). `on_token(i, token)` sees sequence `i`'s new tokens; returning
/// `false` stops that sequence. Returns each sequence's tokens (prompt included).
pub fn generate_batch(
    model: &mut Model,
    prompts: &[Vec<u32>],
    n_predict: usize,
    samplers: &mut [Sampler],
    is_eog: &dyn Fn(u32) -> bool,
    on_token: &mut dyn FnMut(usize, u32) -> bool,
) -> Result<(Vec<Vec<u32>>, Stats), RunError> {
    assert_eq!(prompts.len(), samplers.len(), "one sampler per sequence");
    if prompts.len() > model.sequences() {
        return Err(RunError::Slot {
            slot: prompts.len() - 1,
            sequences: model.sequences(),
        });
    }
    let ctx = model.context();
    for prompt in prompts {
        if prompt.is_empty() {
            return Err(RunError::EmptyPrompt);
        }
        if prompt.len() >= ctx {
            return Err(RunError::PromptTooLong {
                tokens: prompt.len(),
                context: ctx,
            });
        }
    }
    let mut stats = Stats {
        prompt_tokens: prompts.iter().map(Vec::len).sum(),
        ..Stats::default()
    };
    let t0 = Instant::now();
    let mut logits = Vec::with_capacity(prompts.len());
    for (slot, prompt) in prompts.iter().enumerate() {
        logits.push(model.forward_in(slot, prompt, 0)?);
    }
    stats.prompt_ms = t0.elapsed().as_secs_f64() * 1e3;
    let t1 = Instant::now();
    let mut tokens = prompts.to_vec();
    let mut generated = vec![0; prompts.len()];
    let mut active: Vec<usize> = (0..prompts.len()).collect();
    while !active.is_empty() && n_predict > 0 {
        let mut steps = Vec::with_capacity(active.len());
        for (&slot, logits) in active.iter().zip(&logits) {
            let seq = &mut tokens[slot];
            let next = samplers[slot].sample(logits, seq);
            seq.push(next);
            generated[slot] += 1;
            stats.generated_tokens += 1;
            let done = is_eog(next)
                || !on_token(slot, next)
                || seq.len() >= ctx
                || generated[slot] == n_predict;
            if !done {
                steps.push(DecodeStep {
                    slot,
                    token: next,
                    pos: seq.len() - 1,
                });
            }
        }
        if steps.is_empty() {
            break;
        }
        active = steps.iter().map(|s| s.slot).collect();
        logits = model.decode(&steps)?;
    }
    stats.generate_ms = t1.elapsed().as_secs_f64() * 1e3;
    Ok((tokens, stats))
}
