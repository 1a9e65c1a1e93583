//! The batch gate: sequences of different lengths decoded together ([`crate::llama::Model::
//! decode`]) give each sequence the tokens and the bit-identical logits of its own batch-1 run,
//! for every batch size from 1 to the setting.

use super::{figures, greedy, GateError, GateReport, Verifier};
use serde_json::Value;

pub fn run(v: &Verifier) -> Result<GateReport, GateError> {
    let s = &v.settings;
    let n = s.decode_tokens;
    // Sequence i: a prompt of 2 + i tokens (the prompt's tokens from i on, so they differ).
    let prompts: Vec<Vec<u32>> = (0..s.batch)
        .map(|i| v.prompt(2 + 2 * i)[i..].to_vec())
        .collect();
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut model = v.load(longest + n, s.batch)?;
    let alone = prompts
        .iter()
        .map(|p| Ok(greedy(&mut model, std::slice::from_ref(p), n)?.remove(0)))
        .collect::<Result<Vec<_>, GateError>>()?;
    let (mut compared, mut mismatches) = (0, Vec::new());
    for b in 1..=s.batch {
        let together = greedy(&mut model, &prompts[..b], n)?;
        for (i, run) in together.iter().enumerate() {
            compared += 1;
            if !run.same_bits(&alone[i]) {
                mismatches.push(format!("batch {b} sequence {i}"));
            }
        }
    }
    Ok(GateReport {
        name: "batch",
        passed: mismatches.is_empty(),
        summary: format!(
            "batches 1..={}: {}/{compared} sequences bit-identical to batch 1 ({n} tokens each)",
            s.batch,
            compared - mismatches.len()
        ),
        figures: figures([
            ("max_batch", Value::from(s.batch)),
            ("sequences_compared", Value::from(compared)),
            ("bit_identical", Value::from(compared - mismatches.len())),
            ("decode_tokens", Value::from(n)),
            ("mismatches", Value::from(mismatches)),
        ]),
    })
}
