//! `greta run` end to end on the real stories260K model (CPU backend), and every kind of bad
//! input a user can hand it: each must be one clear `greta: error:` line and exit code 1, never a
//! panic, before anything is generated.

use greta_model::gguf::{GgmlType, GgufFile, GgufWriter, Value};
use std::path::{Path, PathBuf};
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

/// The continuation the models README documents for "Once upon a time" (greedy), read from the
/// README itself with its markdown line breaks joined.
fn documented_continuation() -> String {
    let readme = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/models/README.md"
    ))
    .unwrap();
    let start = readme
        .find("continue:")
        .expect("the README documents the continuation");
    let rest = &readme[start..];
    let open = rest.find('"').unwrap() + 1;
    let close = open + rest[open..].find('"').unwrap();
    rest[open..close]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// With either attention variant (the fused default, and v1 with scores in memory).
#[test]
fn stories260k_reproduces_its_documented_greedy_continuation() {
    for attn in ["v2", "v1"] {
        continuation_with(attn);
    }
}

fn continuation_with(attn: &str) {
    let o = greta(&[
        "run",
        "-m",
        MODEL,
        "-p",
        "Once upon a time",
        "-n",
        "60",
        "--temp",
        "0",
        "--attn",
        attn,
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let text = String::from_utf8(o.stdout).unwrap();
    let want = documented_continuation();
    let got = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(got.starts_with(&want), "got:  {got}\nwant: {want}");
    // The summary goes to stderr, not into the text.
    assert!(
        err.contains("prompt eval time")
            && err.contains("tokens per second")
            && err.contains("cpu"),
        "{err}"
    );
    assert!(!text.contains("greta:"));
}

#[test]
fn the_same_seed_samples_the_same_text() {
    let run = |seed: &str| {
        let o = greta(&[
            "run",
            "-m",
            MODEL,
            "-p",
            "Once upon a time",
            "-n",
            "12",
            "--temp",
            "0.9",
            "--seed",
            seed,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(run("7"), run("7"));
    assert_ne!(
        run("7"),
        run("8"),
        "different seeds should (almost surely) differ over 12 tokens"
    );
}

/// Several prompts generate together (each in its own KV cache, decoded in one batched step)
/// and each text is the one its prompt gives alone — greedy and sampled (each sequence has its
/// own sampler of the same seed) — labelled `[i]` in prompt order; `--prompts FILE` adds lines.
#[test]
fn several_prompts_generate_together_as_each_would_alone() {
    let alone = |prompt: &str, temp: &str| {
        let o = greta(&["run", "-m", MODEL, "-p", prompt, "-n", "10", "--temp", temp]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap().trim_end().to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prompts.txt");
    std::fs::write(&file, "The little dog\nTom and Sue went\n").unwrap();
    let prompts = [
        "Once upon a time",
        "Lily",
        "The little dog",
        "Tom and Sue went",
    ];
    for temp in ["0", "0.9"] {
        let o = greta(&[
            "run",
            "-m",
            MODEL,
            "-p",
            prompts[0],
            "-p",
            prompts[1],
            "--prompts",
            file.to_str().unwrap(),
            "-n",
            "10",
            "--temp",
            temp,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8(o.stdout).unwrap();
        let expected: String = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| format!("[{}] {}\n", i + 1, alone(p, temp)))
            .collect();
        assert_eq!(out, expected, "temperature {temp}");
    }
}

#[test]
fn an_empty_prompts_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("none.txt");
    std::fs::write(&file, "").unwrap();
    let o = greta(&["run", "-m", MODEL, "--prompts", file.to_str().unwrap()]);
    assert_user_error(&o, "holds no prompts");
    let o = greta(&["run", "-m", MODEL, "--prompts", "/nonexistent/prompts.txt"]);
    assert_user_error(&o, "reading prompts from /nonexistent/prompts.txt");
}

/// `--profile` times every launch: the text is unchanged, and stderr counts the launches a
/// forward pass makes. stories260K, 5 layers: the prompt's pass makes 7 projections per layer
/// + the logits = 36; a decode pass multiplies queries, keys and values as one matrix and gate
/// and up as another, 4 per layer + the logits = 21 (the first generated token comes from the
/// prompt's pass, so 4 tokens take 3 decode passes: 63).
#[test]
fn profile_counts_every_launch_and_leaves_the_text_alone() {
    let args = [
        "run",
        "-m",
        MODEL,
        "-p",
        "Once upon a time",
        "-n",
        "4",
        "--temp",
        "0",
    ];
    let plain = greta(&args);
    let profiled = greta(&[&args[..], &["--profile"]].concat());
    assert!(
        profiled.status.success(),
        "{}",
        String::from_utf8_lossy(&profiled.stderr)
    );
    assert_eq!(plain.stdout, profiled.stdout);
    let err = String::from_utf8_lossy(&profiled.stderr);
    let line = |phase: &str, kernel: &str| {
        let section = &err[err.find(&format!("greta: {phase}:")).expect(phase)..];
        let end = section[1..]
            .find("greta: decode:")
            .map_or(section.len(), |e| e + 1);
        section[..end]
            .lines()
            .find(|l| l.ends_with(']') && l.contains(&format!("  {kernel}[")))
            .unwrap_or_else(|| panic!("no {kernel} in the {phase} profile:\n{err}"))
            .to_string()
    };
    assert!(line("prefill", "matmul").contains(" 36 launches"), "{err}");
    assert!(line("decode", "matmul").contains(" 63 launches"), "{err}");
    assert!(line("prefill", "rmsnorm").contains(" 11 launches"), "{err}");
    assert!(!String::from_utf8_lossy(&plain.stderr).contains("profile"));
}

fn assert_user_error(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains("greta: error: "), "stderr: {err}");
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        o.stdout.is_empty(),
        "nothing is generated: {}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// A copy of stories260K with metadata and tensors edited: `meta` may change or drop a key,
/// `tensor` may change a tensor's name, dims, type and bytes (or drop it).
fn rewrite(
    dir: &Path,
    meta: impl Fn(&str, &Value) -> Option<Value>,
    tensor: impl Fn(&str, &[u64], GgmlType, &[u8]) -> Option<(String, Vec<u64>, GgmlType, Vec<u8>)>,
) -> PathBuf {
    let src = GgufFile::open(Path::new(MODEL)).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in src.metadata() {
        if let Some(v) = meta(k, v) {
            w.add(k.clone(), v).unwrap();
        }
    }
    let mut data = Vec::new();
    for t in src.tensors() {
        if let Some((name, dims, ty, bytes)) = tensor(&t.name, &t.dims, t.ty, src.tensor_data(t)) {
            w.add_tensor(name, &dims, ty).unwrap();
            data.push(bytes);
        }
    }
    let path = dir.join("edited.gguf");
    let mut stream = w.create(&path).unwrap();
    for bytes in data {
        stream.write_bytes(&bytes).unwrap();
    }
    stream.commit().unwrap();
    path
}

fn keep(
    name: &str,
    dims: &[u64],
    ty: GgmlType,
    bytes: &[u8],
) -> Option<(String, Vec<u64>, GgmlType, Vec<u8>)> {
    Some((name.to_string(), dims.to_vec(), ty, bytes.to_vec()))
}

fn run_file(path: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        "-m",
        path.to_str().unwrap(),
        "-p",
        "Once upon a time",
        "-n",
        "4",
    ];
    args.extend_from_slice(extra);
    greta(&args)
}

#[test]
fn a_truncated_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(MODEL).unwrap();
    let head = dir.path().join("head.gguf");
    std::fs::write(&head, &bytes[..1000]).unwrap();
    assert_user_error(&run_file(&head, &[]), "head.gguf");
    // Cut inside the tensor data: the header is whole, a tensor reaches past the end.
    let body = dir.path().join("body.gguf");
    std::fs::write(&body, &bytes[..bytes.len() / 2]).unwrap();
    assert_user_error(&run_file(&body, &[]), "body.gguf");
}

#[test]
fn wrong_magic_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(MODEL).unwrap();
    bytes[..4].copy_from_slice(b"GGML");
    let path = dir.path().join("magic.gguf");
    std::fs::write(&path, &bytes).unwrap();
    assert_user_error(&run_file(&path, &[]), "magic");
}

#[test]
fn a_missing_file_is_a_clear_error() {
    assert_user_error(
        &run_file(Path::new("/nonexistent/model.gguf"), &[]),
        "/nonexistent/model.gguf",
    );
}

#[test]
fn a_missing_tensor_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = rewrite(
        dir.path(),
        |_, v| Some(v.clone()),
        |n, d, t, b| {
            (n != "blk.3.ffn_up.weight")
                .then(|| keep(n, d, t, b))
                .flatten()
        },
    );
    assert_user_error(&run_file(&path, &[]), "blk.3.ffn_up.weight");
}

#[test]
fn a_wrong_shape_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = rewrite(
        dir.path(),
        |_, v| Some(v.clone()),
        |n, d, t, b| {
            if n == "blk.1.attn_q.weight" {
                // 64 x 64 declared as 128 x 32: same bytes, wrong shape.
                Some((n.to_string(), vec![128, 32], t, b.to_vec()))
            } else {
                keep(n, d, t, b)
            }
        },
    );
    assert_user_error(&run_file(&path, &[]), "blk.1.attn_q.weight");
}

#[test]
fn an_unsupported_architecture_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = rewrite(
        dir.path(),
        |k, v| {
            Some(if k == "general.architecture" {
                Value::String("mamba".into())
            } else {
                v.clone()
            })
        },
        keep,
    );
    assert_user_error(&run_file(&path, &[]), "mamba");
}

#[test]
fn an_unsupported_tensor_type_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = rewrite(
        dir.path(),
        |_, v| Some(v.clone()),
        |n, d, t, b| {
            if n == "blk.0.ffn_gate.weight" {
                // Q4_0: 18 bytes per 32 weights; 64 x 172 = 344 blocks.
                let q4 = GgmlType::by_name("Q4_0").unwrap();
                Some((n.to_string(), d.to_vec(), q4, vec![0u8; 344 * 18]))
            } else {
                keep(n, d, t, b)
            }
        },
    );
    assert_user_error(&run_file(&path, &[]), "Q4_0");
}

#[test]
fn a_prompt_longer_than_the_context_is_a_clear_error() {
    assert_user_error(&run_file(Path::new(MODEL), &["-c", "3"]), "context");
}

#[test]
fn a_context_that_cannot_fit_in_memory_is_refused_before_allocating() {
    // 10^8 positions × 5 layers × 2 × 32 floats = 128 GB of KV cache.
    assert_user_error(&run_file(Path::new(MODEL), &["-c", "100000000"]), "MiB");
}

#[test]
fn bad_sampling_flags_are_clear_errors() {
    assert_user_error(&run_file(Path::new(MODEL), &["--temp=-1"]), "temperature");
    assert_user_error(&run_file(Path::new(MODEL), &["--top-p", "0"]), "top-p");
    assert_user_error(&run_file(Path::new(MODEL), &["-c", "0"]), "context");
    assert_user_error(&run_file(Path::new(MODEL), &["--attn", "v9"]), "--attn");
}
