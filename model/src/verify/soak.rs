//! The soak gate: the determinism run repeated back to back for at least a given time and a
//! given number of runs (continuous decode on a warm device), every run bit-identical to the
//! first.

use super::{figures, greedy, GateError, GateReport, Verifier};
use serde_json::Value;
use std::time::Instant;

pub fn run(v: &Verifier) -> Result<GateReport, GateError> {
    let s = &v.settings;
    let prompt = vec![v.prompt(s.prompt_len)];
    let mut model = v.load(s.prompt_len + s.decode_tokens, 1)?;
    let t0 = Instant::now();
    let first = greedy(&mut model, &prompt, s.decode_tokens)?;
    let (mut runs, mut identical) = (1, 1);
    while runs < s.soak_runs || t0.elapsed().as_secs_f64() < s.soak_seconds {
        let again = greedy(&mut model, &prompt, s.decode_tokens)?;
        runs += 1;
        identical += again[0].same_bits(&first[0]) as usize;
    }
    let seconds = t0.elapsed().as_secs_f64();
    let tokens = runs * s.decode_tokens;
    Ok(GateReport {
        name: "soak",
        passed: identical == runs,
        summary: format!(
            "{identical}/{runs} runs bit-identical over {seconds:.1} s ({tokens} tokens decoded)"
        ),
        figures: figures([
            ("runs", Value::from(runs)),
            ("identical", Value::from(identical)),
            ("seconds", Value::from(seconds)),
            ("decoded_tokens", Value::from(tokens)),
        ]),
    })
}
