//! The cross-dtype gate: the same prompt's logits at every position with f32, f16 and bf16
//! activations, compared pairwise by top-1 agreement and by the largest difference relative to
//! the largest logit, against [`Tolerance::cross`].

use super::compare::{max_abs, max_abs_diff, top1_agreement, Tolerance};
use super::{figures, GateError, GateReport, Verifier};
use crate::llama::ModelOptions;
use greta_dsl::ir::Scalar;
use serde_json::{json, Value};

pub fn run(v: &Verifier) -> Result<GateReport, GateError> {
    let s = &v.settings;
    let prompt = v.prompt(s.prompt_len);
    let types = [Scalar::F32, Scalar::F16, Scalar::BF16];
    let mut logits = Vec::new();
    for ty in types {
        let mut model = (v.load)(&ModelOptions {
            context: s.prompt_len,
            sequences: 1,
            activations: Some(ty),
            ..v.options.clone()
        })?;
        logits.push(model.forward_all(&prompt, 0)?);
    }
    let mut pairs = Vec::new();
    let mut passed = true;
    let mut summary = Vec::new();
    for (i, j) in [(0, 1), (0, 2), (1, 2)] {
        let (a, b) = (types[i], types[j]);
        let top1 = top1_agreement(&logits[i], &logits[j]);
        let diff = max_abs_diff(&logits[i], &logits[j]);
        let rel = diff / max_abs(&logits[i]).max(f64::MIN_POSITIVE);
        let (min_top1, max_rel) = Tolerance::cross(a, b);
        let ok = top1 >= min_top1 && rel <= max_rel;
        passed &= ok;
        summary.push(format!("{a}/{b} top-1 {top1:.3} rel {rel:.3}"));
        pairs.push(json!({
            "pair": format!("{a}-{b}"), "top1_agreement": top1, "max_abs_diff": diff,
            "max_rel_diff": rel, "bound_top1": min_top1, "bound_rel": max_rel, "pass": ok,
        }));
    }
    Ok(GateReport {
        name: "cross-dtype",
        passed,
        summary: format!("{} positions: {}", s.prompt_len, summary.join("; ")),
        figures: figures([
            ("positions", Value::from(s.prompt_len)),
            ("pairs", Value::from(pairs)),
        ]),
    })
}
