//! The determinism gate: N greedy runs of the same prompt on one loaded model (each
//! overwriting the KV cache from position 0) give identical tokens and bit-identical logits.

use super::{figures, greedy, GateError, GateReport, Verifier};
use serde_json::Value;

pub fn run(v: &Verifier) -> Result<GateReport, GateError> {
    let s = &v.settings;
    let prompt = v.prompt(s.prompt_len);
    let mut model = v.load(s.prompt_len + s.decode_tokens, 1)?;
    let first = greedy(&mut model, std::slice::from_ref(&prompt), s.decode_tokens)?;
    let mut identical = 1;
    for _ in 1..s.runs {
        let again = greedy(&mut model, std::slice::from_ref(&prompt), s.decode_tokens)?;
        identical += again[0].same_bits(&first[0]) as usize;
    }
    Ok(GateReport {
        name: "determinism",
        passed: identical == s.runs,
        summary: format!(
            "{identical}/{} runs bit-identical ({} prompt + {} decoded tokens each)",
            s.runs, s.prompt_len, s.decode_tokens
        ),
        figures: figures([
            ("runs", Value::from(s.runs)),
            ("identical", Value::from(identical)),
            ("prompt_tokens", Value::from(s.prompt_len)),
            ("decode_tokens", Value::from(s.decode_tokens)),
        ]),
    })
}
