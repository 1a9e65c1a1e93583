//! The prefill-decode gate: the logits at every position of one prefill pass against those of
//! decoding the same tokens one at a time, held to the activation type's [`Tolerance`]; and
//! the kv-aligned mode ([`Model::set_kv_aligned`]) at several prompt lengths, where a prefill
//! (and a prefill of n−1 tokens then a decode of the last) must be bit-identical to decoding.

use super::compare::{decisive_disagreements, max_abs, max_abs_diff, top1_agreement, Tolerance};
use super::{figures, GateError, GateReport, Verifier};
use crate::llama::{Model, RunError};
use serde_json::{json, Value};

/// One prompt's prefill against its token-by-token decode.
#[derive(Clone, Debug)]
pub(super) struct Case {
    pub tokens: usize,
    pub kv_aligned: bool,
    pub max_abs_diff: f64,
    pub top1_agreement: f64,
    /// Positions whose top-1 differs by more than a near-tie ([`decisive_disagreements`]).
    pub decisive: usize,
    pub identical: bool,
    pub tolerance: Tolerance,
}

impl Case {
    /// Bit-identical in kv-aligned mode; else within the tolerance, and top-1 equal everywhere
    /// (f32) or but for near-ties.
    pub fn passed(&self) -> bool {
        if self.kv_aligned {
            return self.identical;
        }
        let top1 = if self.tolerance.exact_top1 {
            self.top1_agreement == 1.0
        } else {
            self.decisive == 0
        };
        self.max_abs_diff <= self.tolerance.max_diff && top1
    }

    pub fn json(&self) -> Value {
        json!({
            "tokens": self.tokens,
            "mode": if self.kv_aligned { "kv-aligned" } else { "prefill-decode" },
            "max_abs_diff": self.max_abs_diff,
            "top1_agreement": self.top1_agreement,
            "decisive_top1_disagreements": self.decisive,
            "bit_identical": self.identical,
            "bound_max_abs_diff": if self.kv_aligned { 0.0 } else { self.tolerance.max_diff },
            "pass": self.passed(),
        })
    }
}

/// Prefill (in `model`'s mode) against token-by-token decode over `prompt`.
pub(super) fn prefill_vs_decode(model: &mut Model, prompt: &[u32]) -> Result<Case, RunError> {
    let prefill = model.forward_all(prompt, 0)?;
    let decode = prompt
        .iter()
        .enumerate()
        .map(|(pos, &t)| model.forward(&[t], pos))
        .collect::<Result<Vec<_>, _>>()?;
    let tolerance = Tolerance::prefill_decode(model.activations(), max_abs(&decode));
    Ok(Case {
        tokens: prompt.len(),
        kv_aligned: model.kv_aligned(),
        max_abs_diff: max_abs_diff(&prefill, &decode),
        top1_agreement: top1_agreement(&prefill, &decode),
        decisive: decisive_disagreements(&prefill, &decode, 2.0 * tolerance.max_diff),
        identical: prefill
            .iter()
            .zip(&decode)
            .all(|(a, b)| super::compare::same_bits(a, b)),
        tolerance,
    })
}

/// The kv-aligned hand-over over `prompt` (at least 2 tokens): prefill n−1 tokens and decode
/// the last, against the last of n decode steps — whether bit-identical, and the max abs diff.
pub(super) fn handover(model: &mut Model, prompt: &[u32]) -> Result<(bool, f64), RunError> {
    let n = prompt.len();
    let mut decoded = Vec::new();
    for (pos, &t) in prompt.iter().enumerate() {
        decoded = model.forward(&[t], pos)?;
    }
    model.forward(&prompt[..n - 1], 0)?;
    let last = model.forward(&prompt[n - 1..], n - 1)?;
    Ok((
        super::compare::same_bits(&decoded, &last),
        max_abs_diff(&[decoded], &[last]),
    ))
}

pub fn run(v: &Verifier) -> Result<GateReport, GateError> {
    let s = &v.settings;
    let longest = s.aligned_lengths.iter().copied().max().unwrap_or(0);
    let mut model = v.load(s.prompt_len.max(longest), 1)?;
    let case = prefill_vs_decode(&mut model, &v.prompt(s.prompt_len))?;
    model.set_kv_aligned(true);
    let mut aligned = Vec::new();
    let (mut identical, mut worst) = (true, 0f64);
    for &n in s.aligned_lengths.iter().filter(|&&n| n >= 2) {
        let prompt = v.prompt(n);
        let all = prefill_vs_decode(&mut model, &prompt)?;
        let (same, diff) = handover(&mut model, &prompt)?;
        identical &= all.identical && same;
        worst = worst.max(all.max_abs_diff).max(diff);
        aligned.push(json!({
            "tokens": n, "prefill_bit_identical": all.identical,
            "prefill_max_abs_diff": all.max_abs_diff, "handover_bit_identical": same,
            "handover_max_abs_diff": diff,
        }));
    }
    let tol = case.tolerance;
    let top1_rule = if tol.exact_top1 {
        "top-1 1.0".to_string()
    } else {
        format!("{} decisive top-1 differences", case.decisive)
    };
    Ok(GateReport {
        name: "prefill-decode",
        passed: case.passed() && identical,
        summary: format!(
            "{} positions: max |Δ| {:.3e} (bound {:.1e}), top-1 {:.3} ({top1_rule}); \
             kv-aligned at {:?} tokens: {}, max |Δ| {worst:.1e}",
            s.prompt_len,
            case.max_abs_diff,
            tol.max_diff,
            case.top1_agreement,
            s.aligned_lengths,
            if identical {
                "bit-identical"
            } else {
                "NOT bit-identical"
            },
        ),
        figures: figures([
            ("activations", Value::from(model.activations().to_string())),
            ("positions", Value::from(s.prompt_len)),
            ("max_abs_diff", Value::from(case.max_abs_diff)),
            ("top1_agreement", Value::from(case.top1_agreement)),
            ("decisive_top1_disagreements", Value::from(case.decisive)),
            ("bound_max_abs_diff", Value::from(tol.max_diff)),
            ("kv_aligned", Value::from(aligned)),
            ("kv_aligned_bit_identical", Value::from(identical)),
            ("kv_aligned_max_abs_diff", Value::from(worst)),
        ]),
    })
}
