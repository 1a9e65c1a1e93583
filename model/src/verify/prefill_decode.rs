//! The prefill-decode gate: the logits at every position of one prefill pass against those of
//! decoding the same tokens one at a time; and the kv-aligned mode, where both sides share the
//! cache of the first n−1 tokens (prefill n−1 then decode the last, against prefill all n).

use super::compare::{max_abs_diff, top1_agreement, Tolerance};
use super::{figures, GateError, GateReport, Verifier};
use crate::llama::{Model, RunError};
use serde_json::{json, Value};

/// Prefill against token-by-token decode over `prompt`: (max abs diff, top-1 agreement).
pub(super) fn prefill_vs_decode(model: &mut Model, prompt: &[u32]) -> Result<(f64, f64), RunError> {
    let prefill = model.forward_all(prompt, 0)?;
    let decode = prompt
        .iter()
        .enumerate()
        .map(|(pos, &t)| model.forward(&[t], pos))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((
        max_abs_diff(&prefill, &decode),
        top1_agreement(&prefill, &decode),
    ))
}

/// kv-aligned over `prompt` (at least 2 tokens): the last token decoded after a prefill of the
/// others, against the last row of a prefill of all; the max abs diff.
pub(super) fn kv_aligned(model: &mut Model, prompt: &[u32]) -> Result<f64, RunError> {
    let n = prompt.len();
    let all = model.forward(prompt, 0)?;
    model.forward(&prompt[..n - 1], 0)?;
    let last = model.forward(&prompt[n - 1..], n - 1)?;
    Ok(max_abs_diff(&[all], &[last]))
}

pub fn run(v: &Verifier) -> Result<GateReport, GateError> {
    let s = &v.settings;
    let longest = s.aligned_lengths.iter().copied().max().unwrap_or(0);
    let mut model = v.load(s.prompt_len.max(longest), 1)?;
    let tol = Tolerance::for_activations(model.activations());
    let (diff, top1) = prefill_vs_decode(&mut model, &v.prompt(s.prompt_len))?;
    let mut aligned = Vec::new();
    let mut aligned_worst = 0f64;
    for &n in s.aligned_lengths.iter().filter(|&&n| n >= 2) {
        let d = kv_aligned(&mut model, &v.prompt(n))?;
        aligned_worst = aligned_worst.max(d);
        aligned.push(json!({"tokens": n, "max_abs_diff": d}));
    }
    let passed =
        diff <= tol.prefill_decode && top1 >= tol.top1 && aligned_worst <= tol.prefill_decode;
    Ok(GateReport {
        name: "prefill-decode",
        passed,
        summary: format!(
            "{} positions: max |Δ| {diff:.3e}, top-1 {top1:.3}; kv-aligned max |Δ| \
             {aligned_worst:.3e} (bounds {:.0e}, {})",
            s.prompt_len, tol.prefill_decode, tol.top1
        ),
        figures: figures([
            ("activations", Value::from(model.activations().to_string())),
            ("positions", Value::from(s.prompt_len)),
            ("max_abs_diff", Value::from(diff)),
            ("top1_agreement", Value::from(top1)),
            ("kv_aligned", Value::from(aligned)),
            ("kv_aligned_max_abs_diff", Value::from(aligned_worst)),
            ("bound_max_abs_diff", Value::from(tol.prefill_decode)),
            ("bound_top1", Value::from(tol.top1)),
        ]),
    })
}
