//! `greta bench -m` (the llama-bench-style model benchmark) end to end on the real stories260K
//! model on the CPU backend — tiny counts, the interpreter is slow — and its bad inputs: each
//! one clear error naming the flag and the value, never a panic. (The timing rules themselves
//! are unit tests of `cmd::bench::model::plan`.)

use std::process::{Command, Output};

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/models/stories260K.gguf"
);

fn greta(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_greta"))
        .args(args)
        .env("GRETA_BACKEND", "cpu")
        .env_remove("GRETA_TRACE_STAGE")
        .env_remove("GRETA_DUMP_LOGITS")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("greta runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `greta bench -m stories260K ARGS`.
fn bench(args: &[&str]) -> Output {
    let mut all = vec!["bench", "-m", MODEL];
    all.extend(args);
    greta(&all)
}

#[test]
fn json_has_one_entry_per_test_with_its_sizes_and_samples() {
    let o = bench(&["-p", "16", "-n", "4", "-d", "0,8", "-r", "2", "-o", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("stdout is JSON");
    let rows = rows.as_array().expect("an array");
    let sizes: Vec<(u64, u64, u64)> = rows
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
            (n("n_prompt"), n("n_gen"), n("n_depth"))
        })
        .collect();
    assert_eq!(sizes, [(16, 0, 0), (0, 4, 0), (16, 0, 8), (0, 4, 8)]);
    for r in rows {
        assert!(r["avg_ts"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["avg_ns"].as_u64().unwrap() > 0, "{r}");
        let samples = r["samples_ts"].as_array().unwrap();
        assert_eq!(samples.len(), 2, "{r}");
        assert!(samples.iter().all(|s| s.as_f64().unwrap() > 0.0), "{r}");
        assert_eq!(r["samples_ns"].as_array().unwrap().len(), 2, "{r}");
        assert_eq!(r["backend"], "cpu");
        assert_eq!(r["dtype"], "f32");
        assert_eq!(r["n_batch"], 2048);
        assert_eq!(r["n_ctx"], 24, "the context fits the largest test: 8 + 16");
        assert_eq!(r["model_type"], "llama ?B (guessed) all F32");
        assert!(r["model_filename"]
            .as_str()
            .unwrap()
            .ends_with("stories260K.gguf"));
        // stories260K: 48 f32 tensors of 1.1 MB in all.
        let size = r["model_size"].as_u64().unwrap();
        assert_eq!(size, 4 * r["model_n_params"].as_u64().unwrap());
        assert!((1_000_000..1_300_000).contains(&size), "{size}");
        assert!(r["device"].is_string() && r["build"].is_string());
    }
}

#[test]
fn markdown_is_llama_bench_table_with_a_row_per_test() {
    let o = bench(&["-p", "8", "-n", "2", "-d", "4", "-r", "1", "-b", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    let cells = |l: &str| -> Vec<String> { l.split('|').map(|c| c.trim().to_string()).collect() };
    assert_eq!(
        cells(lines[0]),
        ["", "model", "size", "params", "backend", "dtype", "test", "t/s", ""]
    );
    assert!(
        lines[1].starts_with("| ---") && lines[1].ends_with(": |"),
        "{out}"
    );
    for (line, test) in lines[2..].iter().zip(["pp8 @ d4", "tg2 @ d4"]) {
        let c = cells(line);
        assert_eq!(c[1], "llama ?B (guessed) all F32", "{line}");
        assert!(c[2].ends_with(" MiB") && c[3].ends_with(" M"), "{line}");
        assert_eq!(
            (c[4].as_str(), c[5].as_str(), c[6].as_str()),
            ("cpu", "f32", test)
        );
        let (mean, sd) = c[7].split_once(" ± ").expect("mean ± sd");
        assert!(mean.parse::<f64>().unwrap() > 0.0, "{line}");
        assert_eq!(sd, "0.00", "one repetition: no spread");
    }
    assert!(!stderr(&o).contains("panicked"));
}

/// The labels of the default depth come without ` @ d0`, in llama-bench's order.
#[test]
fn markdown_labels_the_tests_at_each_depth() {
    let o = bench(&["-p", "4", "-n", "1", "-d", "0", "-d", "2", "-r", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tests: Vec<String> = stdout(&o)
        .lines()
        .skip(2)
        .map(|l| l.split('|').nth(6).unwrap().trim().to_string())
        .collect();
    assert_eq!(tests, ["pp4", "tg1", "pp4 @ d2", "tg1 @ d2"]);
}

/// A command that fails on its input: nothing on stdout, the message on stderr, no panic;
/// `code` 1 for greta's own errors, 2 for clap's usage errors.
fn assert_error(o: &Output, code: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    for needle in needles {
        assert!(err.contains(needle), "expected `{needle}` in: {err}");
    }
    assert!(!err.contains("panicked"), "stderr: {err}");
    assert!(stdout(o).is_empty(), "stdout: {}", stdout(o));
}

#[test]
fn bad_flags_are_clear_errors() {
    assert_error(
        &bench(&["-p", "0x"]),
        2,
        &["invalid value '0x'", "--n-prompt"],
    );
    assert_error(&bench(&["-n", "4,-1"]), 2, &["'-1'", "--n-gen"]);
    assert_error(&bench(&["-d", ""]), 2, &["--n-depth"]);
    assert_error(
        &bench(&["-o", "xml"]),
        2,
        &["invalid value 'xml'", "--output", "md", "json"],
    );
    assert_error(
        &bench(&["-r", "0"]),
        1,
        &["greta: error: -r/--repetitions 0"],
    );
    assert_error(
        &bench(&["-b", "0"]),
        1,
        &["greta: error: -b/--batch-size 0"],
    );
    assert_error(&bench(&["-p", "0", "-n", "0"]), 1, &["no tests"]);
    assert_error(&bench(&["--dtype", "f8"]), 1, &["--dtype `f8`"]);
    assert_error(&bench(&["--attn", "v9"]), 1, &["--attn"]);
    assert_error(
        &bench(&["-p", "16", "-n", "0", "-c", "8"]),
        1,
        &["-c/--ctx-size 8 is too small", "`pp16` needs 16"],
    );
    assert_error(&greta(&["bench"]), 2, &["--model"]);
    assert_error(&greta(&["bench", "-m"]), 2, &["--model"]);
}

#[test]
fn a_missing_or_invalid_model_is_a_clear_error_before_any_output() {
    assert_error(
        &greta(&["bench", "-m", "no/such/model.gguf"]),
        1,
        &["no/such/model.gguf"],
    );
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, b"not a gguf file").unwrap();
    let junk = junk.to_str().unwrap();
    assert_error(
        &greta(&["bench", "-m", MODEL, "-m", junk]),
        1,
        &["junk.gguf"],
    );
}

/// The subcommand word still selects the kernel benchmark, whose flags are its own.
#[test]
fn bench_kernels_still_parses() {
    let o = greta(&["bench", "kernels", "--runs", "10"]);
    assert_error(&o, 1, &["--runs must be at least 50"]);
    let o = greta(&["bench", "kernels", "-m", MODEL]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let help = stdout(&greta(&["bench", "--help"]));
    assert!(
        help.contains("kernels") && help.contains("--n-prompt"),
        "{help}"
    );
}
