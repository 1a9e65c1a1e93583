//! `greta verify` on the real stories260K model, CPU backend: every gate passes with its CPU
//! settings, the JSON carries each gate's figures, the Markdown report is written, and bad flags
//! are clear errors.

use serde_json::Value;
use std::process::{Command, Output};

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/models/stories260K.gguf"
);

fn greta(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_greta"))
        .args(args)
        .env("GRETA_BACKEND", "cpu")
        .output()
        .expect("greta runs")
}

fn gate<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("gate {name} in {json}"))
}

/// What CI asks of the trust gates: every CPU gate passes on stories260K, with the figures the
/// goals name (10/10 determinism; prefill-decode within 1e-4 with top-1 1.0 in f32; batch 1..8
/// bit-exact; soak 5/5; the memory plan met exactly by greta's buffers).
#[test]
fn every_cpu_gate_passes_on_stories260k() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("verify.md");
    let o = greta(&[
        "verify",
        "-m",
        MODEL,
        "--json",
        "--report",
        report.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let json: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["backend"], "cpu");
    let gates = json["gates"].as_array().unwrap();
    let names: Vec<&str> = gates.iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "determinism",
            "prefill-decode",
            "cross-dtype",
            "long-context",
            "batch",
            "soak",
            "matrix"
        ]
    );
    for g in gates {
        assert_eq!(g["status"], "pass", "{g}");
    }
    let d = gate(&json, "determinism");
    assert_eq!(
        (d["runs"].as_u64(), d["identical"].as_u64()),
        (Some(10), Some(10))
    );
    let p = gate(&json, "prefill-decode");
    assert!(p["max_abs_diff"].as_f64().unwrap() <= 1e-4, "{p}");
    assert_eq!(p["top1_agreement"].as_f64(), Some(1.0));
    // The goal: kv-aligned max diff 0.0 (bit-identical) at every length.
    assert_eq!(p["kv_aligned_bit_identical"], true, "{p}");
    assert_eq!(p["kv_aligned_max_abs_diff"].as_f64(), Some(0.0), "{p}");
    let b = gate(&json, "batch");
    assert_eq!(b["max_batch"].as_u64(), Some(8));
    assert_eq!(b["sequences_compared"].as_u64(), Some(36));
    assert_eq!(b["bit_identical"].as_u64(), Some(36));
    let s = gate(&json, "soak");
    assert!(
        s["runs"].as_u64().unwrap() >= 5 && s["runs"] == s["identical"],
        "{s}"
    );
    let l = gate(&json, "long-context");
    let c = &l["contexts"][0];
    assert_eq!(c["measured_bytes"], c["planned_bytes"], "{l}");
    assert!(l["refusal"].as_str().unwrap().contains("refused"), "{l}");
    let m = gate(&json, "matrix");
    assert_eq!(
        (m["cases"].as_u64(), m["passed"].as_u64()),
        (Some(24), Some(24))
    );
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(
        md.contains("| determinism | pass | 10/10 runs bit-identical"),
        "{md}"
    );
}

#[test]
fn bad_verify_flags_are_clear_errors() {
    for (args, needle) in [
        (&["--gates", "determinism,nope"][..], "no gate named `nope`"),
        (&["--runs", "0"][..], "--runs 0"),
        (&["--soak-seconds=-1"][..], "--soak-seconds"),
        (&["--matrix-lengths", "0,3"][..], "at least 1 token"),
        // 10^8 sequences' prompts used to be made before anything was checked: an abort.
        (
            &["--batch", "100000000"][..],
            "--batch 100000000: at most 256",
        ),
    ] {
        let mut all = vec!["verify", "-m", MODEL];
        all.extend(args);
        let o = greta(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected `{needle}` in {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}
