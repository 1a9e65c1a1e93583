//! The generation loop: prefill the whole prompt in one forward pass, then decode token by
//! token, streaming each token to the caller, with llama.cpp-style timings.

use crate::llama::{Model, RunError};
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
    if prompt.is_empty() {
        return Err(RunError::EmptyPrompt);
    }
    let ctx = model.context();
    if prompt.len() >= ctx {
        return Err(RunError::PromptTooLong {
            tokens: prompt.len(),
            context: ctx,
        });
    }
    let mut stats = Stats {
        prompt_tokens: prompt.len(),
        ..Stats::default()
    };
    let mut tokens = prompt.to_vec();
    let t0 = Instant::now();
    let mut logits = model.forward(prompt, 0)?;
    stats.prompt_ms = t0.elapsed().as_secs_f64() * 1e3;
    let t1 = Instant::now();
    while stats.generated_tokens < n_predict {
        let next = sampler.sample(&logits, &tokens);
        tokens.push(next);
        stats.generated_tokens += 1;
        if is_eog(next)
            || !on_token(next)
            || tokens.len() >= ctx
            || stats.generated_tokens == n_predict
        {
            break;
        }
        logits = model.forward(&[next], tokens.len() - 1)?;
    }
    stats.generate_ms = t1.elapsed().as_secs_f64() * 1e3;
    Ok((tokens, stats))
}
