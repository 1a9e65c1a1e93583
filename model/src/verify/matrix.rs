//! The matrix: activation type (f32, f16, bf16) × kv mode (prefill against token-by-token
//! decode; kv-aligned) × prompt length, each case held to its activation type's
//! [`Tolerance`].

use super::compare::Tolerance;
use super::prefill_decode::{kv_aligned, prefill_vs_decode};
use super::{figures, GateError, GateReport, Verifier};
use crate::llama::ModelOptions;
use greta_dsl::ir::Scalar;
use serde_json::{json, Value};

pub fn run(v: &Verifier) -> Result<GateReport, GateError> {
    let lengths = &v.settings.matrix_lengths;
    let longest = lengths.iter().copied().max().unwrap_or(1);
    let mut cases = Vec::new();
    let mut failed = Vec::new();
    for ty in [Scalar::F32, Scalar::F16, Scalar::BF16] {
        let mut model = (v.load)(&ModelOptions {
            context: longest,
            sequences: 1,
            activations: Some(ty),
            ..v.options.clone()
        })?;
        let tol = Tolerance::for_activations(ty);
        for &n in lengths {
            let prompt = v.prompt(n);
            let (diff, top1) = prefill_vs_decode(&mut model, &prompt)?;
            let ok = diff <= tol.prefill_decode && top1 >= tol.top1;
            cases.push(
                json!({"dtype": ty.to_string(), "mode": "prefill-decode", "tokens": n,
                "max_abs_diff": diff, "top1_agreement": top1, "pass": ok}),
            );
            if !ok {
                failed.push(format!("{ty} prefill-decode {n}"));
            }
            if n >= 2 {
                let diff = kv_aligned(&mut model, &prompt)?;
                let ok = diff <= tol.prefill_decode;
                cases.push(
                    json!({"dtype": ty.to_string(), "mode": "kv-aligned", "tokens": n,
                    "max_abs_diff": diff, "pass": ok}),
                );
                if !ok {
                    failed.push(format!("{ty} kv-aligned {n}"));
                }
            }
        }
    }
    let total = cases.len();
    Ok(GateReport {
        name: "matrix",
        passed: failed.is_empty(),
        summary: format!(
            "{}/{total} cases pass (f32/f16/bf16 × prefill-decode/kv-aligned × lengths {:?}){}",
            total - failed.len(),
            lengths,
            if failed.is_empty() {
                String::new()
            } else {
                format!("; failed: {}", failed.join(", "))
            }
        ),
        figures: figures([
            ("cases", Value::from(total)),
            ("passed", Value::from(total - failed.len())),
            ("results", Value::from(cases)),
        ]),
    })
}
