//! The long-context gate: at each context length, a prompt of that many tokens prefilled in one
//! pass, then greedy decode; the device memory in use against the memory plan's prediction
//! (within 5%); and a context that cannot fit refused before anything is allocated.

use super::{figures, greedy, GateError, GateReport, Verifier};
use crate::llama::{LoadError, Model};
use greta_runtime::BackendKind;
use serde_json::{json, Value};

/// How far measured device memory may be from the plan: 5%, or [`MEMORY_SLACK`] bytes where
/// that is more — the driver's allocation granularity (2 MiB per buffer on CUDA) and the loaded
/// code objects are a few MiB that only matter to a tiny model.
const MEMORY_BOUND: f64 = 0.05;
const MEMORY_SLACK: u64 = 64 << 20;

pub fn run(v: &Verifier) -> Result<GateReport, GateError> {
    let s = &v.settings;
    let mut passed = true;
    let mut rows = Vec::new();
    let mut summary = Vec::new();
    // Whether the backend reports device memory, and the model's keys per position.
    let mut device = None;
    for &len in &s.long_lengths {
        let mut model = v.load(len + s.decode_tokens, 1)?;
        device = Some(device_of(&model));
        let t0 = std::time::Instant::now();
        let run = greedy(&mut model, &[v.prompt(len)], s.decode_tokens)?;
        let seconds = t0.elapsed().as_secs_f64();
        let finite = run[0].logits.iter().flatten().all(|x| x.is_finite());
        let planned = model.planned_bytes(len);
        // On a GPU, what the driver says is in use; on the CPU (whose free memory is the
        // host's, shared with everything else), greta's own buffers.
        let (measured, how) = match model.device_bytes_used() {
            Some(used) if model.backend().kind() != BackendKind::Cpu => (used, "device"),
            _ => (model.peak_device_bytes(), "greta buffers"),
        };
        let off = measured as f64 / planned as f64 - 1.0;
        let ok =
            finite && (off.abs() <= MEMORY_BOUND || measured.abs_diff(planned) <= MEMORY_SLACK);
        passed &= ok;
        summary.push(format!(
            "{len}: {:.0} MiB ({how}) vs plan {:.0} MiB ({:+.1}%)",
            mib(measured),
            mib(planned),
            100.0 * off
        ));
        rows.push(json!({
            "tokens": len, "seconds": seconds, "finite": finite,
            "measured_bytes": measured, "measured": how, "planned_bytes": planned,
            "off": off, "pass": ok,
        }));
    }
    let device = match device {
        Some(d) => d,
        None => device_of(&v.load(1, 1)?),
    };
    let refusal = refuse_impossible(v, device);
    passed &= refusal.is_ok();
    let refusal = refusal.unwrap_or_else(|e| e);
    Ok(GateReport {
        name: "long-context",
        passed,
        summary: format!("{}; {refusal}", summary.join(", ")),
        figures: figures([
            ("contexts", Value::from(rows)),
            ("bound", Value::from(MEMORY_BOUND)),
            ("slack_bytes", Value::from(MEMORY_SLACK)),
            ("refusal", Value::from(refusal)),
        ]),
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

/// Whether `model`'s backend reports its memory, and the model's keys per position.
fn device_of(model: &Model) -> (bool, usize) {
    (
        model.backend().memory_info().is_some(),
        model.config().kv_dim(),
    )
}

/// Loads with a context that cannot work: the largest the kernels can index (they index a
/// layer's cache with 32-bit offsets) for many sequences, far beyond any device, where the
/// backend reports its memory; else one past what the kernels can index. Ok with what refused
/// it, Err with what happened instead.
fn refuse_impossible(
    v: &Verifier,
    (reports_memory, kv_dim): (bool, usize),
) -> Result<String, String> {
    let kv_dim = reports_memory.then_some(kv_dim);
    let (context, sequences) = match kv_dim {
        Some(kv) => (u32::MAX as usize / kv.max(1), 64),
        None => (u32::MAX as usize, 1),
    };
    match v.load(context, sequences) {
        Err(e @ (LoadError::DeviceMemory { .. } | LoadError::Context { .. })) => {
            Ok(format!("{sequences} × {context} positions refused: {e}"))
        }
        Err(e) => Err(format!(
            "{sequences} × {context} positions failed otherwise: {e}"
        )),
        Ok(_) => Err(format!("{sequences} × {context} positions were loaded")),
    }
}
