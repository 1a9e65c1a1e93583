//! The matrix: activation type (f32, f16, bf16) × kv mode (the default passes; kv-aligned) ×
//! prompt length, each case a prefill against token-by-token decode ([`Case`]): the default
//! mode held to its activation type's [`super::Tolerance`], kv-aligned to bit-identity.

use super::prefill_decode::{prefill_vs_decode, Case};
use super::{figures, GateError, GateReport, Verifier};
use crate::llama::ModelOptions;
use greta_dsl::ir::Scalar;
use serde_json::Value;

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
        for aligned in [false, true] {
            model.set_kv_aligned(aligned);
            for &n in lengths {
                let case: Case = prefill_vs_decode(&mut model, &v.prompt(n))?;
                if !case.passed() {
                    let mode = if aligned {
                        "kv-aligned"
                    } else {
                        "prefill-decode"
                    };
                    failed.push(format!("{ty} {mode} {n}"));
                }
                let mut row = case.json();
                row["dtype"] = Value::from(ty.to_string());
                cases.push(row);
            }
        }
    }
    let total = cases.len();
    Ok(GateReport {
        name: "matrix",
        passed: failed.is_empty(),
        summary: format!(
            "{}/{total} cases pass (f32/f16/bf16 × default/kv-aligned × lengths {:?}){}",
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
