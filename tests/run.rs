//! `greta run` end to end on the real stories260K model (CPU backend), and every kind of bad
//! input a user can hand it: each must be one clear `greta: error:` line and exit code 1, never a
//! panic, before anything is generated.

use greta_model::gguf::{GgmlType, GgufFile, GgufWriter, Value};
use greta_model::llama::reference::Reference;
use greta_model::llama::{LlamaConfig, Stage};
use greta_model::tokenizer::{Decoder, Tokenizer};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/models/stories260K.gguf"
);

fn greta(args: &[&str]) -> Output {
    greta_env(args, &[])
}

/// `greta args` with environment variables `vars` (tracing is off unless they turn it on).
fn greta_env(args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_greta"))
        .args(args)
        .env("GRETA_BACKEND", "cpu")
        .env_remove("GRETA_TRACE_STAGE")
        .env_remove("GRETA_DUMP_LOGITS")
        .envs(vars.iter().copied())
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

/// With either attention variant (the fused default, and v1 with scores in memory), and in
/// kv-aligned mode (the prompt run as decode steps).
#[test]
fn stories260k_reproduces_its_documented_greedy_continuation() {
    for extra in [&["--attn", "v2"][..], &["--attn", "v1"], &["--kv-aligned"]] {
        continuation_with(extra);
    }
}

fn continuation_with(extra: &[&str]) {
    let mut args = vec![
        "run",
        "-m",
        MODEL,
        "-p",
        "Once upon a time",
        "-n",
        "60",
        "--temp",
        "0",
    ];
    args.extend(extra);
    let o = greta(&args);
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

const PROMPT: &str = "Once upon a time";

/// `greta run` of the prompt for 4 greedy tokens: the prompt's pass and 3 decode passes.
const GREEDY_4: [&str; 9] = ["run", "-m", MODEL, "-p", PROMPT, "-n", "4", "--temp", "0"];

/// `GRETA_TRACE_STAGE=1` prints one line per stage, per layer and per forward pass on stderr,
/// each with the rows, positions and shape of its tensor, and the text is the untraced one.
#[test]
fn trace_stage_prints_every_stage_of_every_layer_and_leaves_the_text_alone() {
    let plain = greta(&GREEDY_4);
    let traced = greta_env(&GREEDY_4, &[("GRETA_TRACE_STAGE", "1")]);
    let err = String::from_utf8_lossy(&traced.stderr);
    assert!(traced.status.success(), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout),
        String::from_utf8_lossy(&traced.stdout)
    );
    assert!(!String::from_utf8_lossy(&plain.stderr).contains("greta-trace"));

    let file = GgufFile::open(Path::new(MODEL)).unwrap();
    let c = LlamaConfig::from_gguf(&file).unwrap();
    let prompt = Tokenizer::from_gguf(&file)
        .unwrap()
        .encode(PROMPT, true)
        .len();
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("greta-trace "))
        .collect();
    for pass in 0..4 {
        // The prompt's rows, then one generated token per pass.
        let (first, end) = if pass == 0 {
            (0, prompt)
        } else {
            (prompt + pass - 1, prompt + pass)
        };
        for stage in Stage::ALL {
            let layers: Vec<String> = if stage.per_layer() {
                (0..c.n_layers).map(|l| l.to_string()).collect()
            } else {
                vec!["-".into()]
            };
            // Only the last position's logits are computed.
            let first = match stage {
                Stage::FinalNorm | Stage::Logits => end - 1,
                _ => first,
            };
            let width = match stage {
                Stage::Q | Stage::RopeQ | Stage::Attention => c.q_dim(),
                Stage::K | Stage::V | Stage::RopeK => c.kv_dim(),
                Stage::Gate | Stage::Up | Stage::SiluMul => c.ffn_dim,
                Stage::Logits => c.vocab,
                _ => c.dim,
            };
            let rows = end - first;
            for layer in layers {
                let head = format!("greta-trace pass={pass} layer={layer} stage={stage} ");
                let found: Vec<&&str> = lines.iter().filter(|l| l.starts_with(&head)).collect();
                assert_eq!(found.len(), 1, "one `{head}` line in:\n{err}");
                let want = format!(
                    "{head}rows=0..{rows} seq=0 pos={first}..{end} shape=[{rows},{width}] dtype=f32 checksum="
                );
                assert!(found[0].starts_with(&want), "{}\nwant {want}", found[0]);
                assert!(found[0].ends_with(" nonfinite=0"), "{}", found[0]);
            }
        }
    }
    let per_pass = Stage::ALL
        .iter()
        .map(|s| if s.per_layer() { c.n_layers } else { 1 })
        .sum::<usize>();
    assert_eq!(lines.len(), 4 * per_pass, "{err}");
}

/// A 2-D little-endian f32 `.npy`, read by the format's definition: its shape and data.
fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00", "magic and version 1.0");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape = &header[header.find("'shape': (").unwrap() + 10..];
    let shape = shape[..shape.find(')').unwrap()]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let data = bytes[10 + len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (shape, data)
}

/// `GRETA_DUMP_LOGITS=FILE` writes the logits each generated token was drawn from, one row per
/// token: row 0 is the prompt's last position, whose argmax is the first generated token. The
/// greedy tokens are worked out here on the f64 reference forward pass (no kernel involved):
/// each row's argmax is the reference's choice, the rows agree with the reference's logits,
/// and the text (the same as without the dump) is the prompt and those tokens.
#[test]
fn dump_logits_writes_the_rows_greedy_decoding_chose_from() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logits.npy");
    let plain = greta(&GREEDY_4);
    let dumped = greta_env(&GREEDY_4, &[("GRETA_DUMP_LOGITS", path.to_str().unwrap())]);
    let err = String::from_utf8_lossy(&dumped.stderr);
    assert!(dumped.status.success(), "{err}");
    assert_eq!(plain.stdout, dumped.stdout);
    assert!(
        err.contains(&format!("written to {}", path.display())),
        "{err}"
    );
    // Only the file itself: the temporary it was written as is gone.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let file = GgufFile::open(Path::new(MODEL)).unwrap();
    let vocab = LlamaConfig::from_gguf(&file).unwrap().vocab;
    let (shape, data) = read_npy(&path);
    assert_eq!(shape, [4, vocab]);
    assert_eq!(data.len(), 4 * vocab);

    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    let reference = Reference::new(&file).unwrap();
    let mut tokens = tokenizer.encode(PROMPT, true);
    for (i, row) in data.chunks(vocab).enumerate() {
        let want = reference.logits(&tokens).pop().unwrap();
        let argmax = |v: &[f64]| (0..v.len()).fold(0, |b, j| if v[j] > v[b] { j } else { b });
        let row: Vec<f64> = row.iter().map(|&x| x as f64).collect();
        let next = argmax(&want);
        assert_eq!(
            argmax(&row),
            next,
            "row {i}: the argmax is the greedy token"
        );
        let diff = row
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(diff < 1e-4, "row {i}: {diff:e} from the reference logits");
        tokens.push(next as u32);
    }
    let mut decoder = Decoder::new();
    let mut text: String = tokens
        .iter()
        .map(|&t| decoder.push(&tokenizer, t))
        .collect();
    text.push_str(&decoder.finish());
    assert_eq!(String::from_utf8_lossy(&plain.stdout), format!("{text}\n"));
}

/// A dump that cannot be written, or a trace switch that is neither on nor off, is one clear
/// error before anything is generated, and leaves no file.
#[test]
fn an_unwritable_logits_dump_is_a_clear_error() {
    // Under a regular file (missing directories are made, as for every output; this one
    // cannot be).
    let unwritable = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml/logits.npy");
    let o = greta_env(&GREEDY_4, &[("GRETA_DUMP_LOGITS", unwritable)]);
    assert_user_error(&o, &format!("GRETA_DUMP_LOGITS={unwritable}: "));
    let dir = tempfile::tempdir().unwrap();
    let o = greta_env(
        &GREEDY_4,
        &[("GRETA_DUMP_LOGITS", dir.path().to_str().unwrap())],
    );
    assert_user_error(&o, "directory");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let o = greta_env(&GREEDY_4, &[("GRETA_TRACE_STAGE", "verbose")]);
    assert_user_error(
        &o,
        "GRETA_TRACE_STAGE=\"verbose\": expected 1 (on) or 0 (off)",
    );
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

/// stories260K with one tensor (layer 0's gate) stored as Q4_0, a type greta does not run.
fn with_a_q4_0_tensor(dir: &Path) -> PathBuf {
    rewrite(
        dir,
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
    )
}

#[test]
fn an_unsupported_tensor_type_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = with_a_q4_0_tensor(dir.path());
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

/// `greta ARGS` that must finish within a few seconds: killed and failed if it does not (a FIFO
/// used to block `open` forever).
fn greta_within_seconds(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_greta"))
        .args(args)
        .env("GRETA_BACKEND", "cpu")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("greta runs");
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed().as_secs() > 20 {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("greta {args:?} blocked");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A FIFO (or a device, or a directory) where a model or a prompts file is expected: refused
/// at once, naming it — not an `open` that waits forever for a writer.
#[test]
fn inputs_that_are_not_regular_files_are_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("model.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let f = fifo.to_str().unwrap();
    let d = dir.path().to_str().unwrap();
    for (args, what) in [
        (
            vec!["run", "-m", f, "-p", "x"],
            "is a FIFO (named pipe), not a regular file",
        ),
        (
            vec!["model", "info", f],
            "is a FIFO (named pipe), not a regular file",
        ),
        (
            vec!["run", "-m", "/dev/zero", "-p", "x"],
            "is a character device",
        ),
        (
            vec!["run", "-m", d, "-p", "x"],
            "is a directory, not a regular file",
        ),
        (
            vec!["run", "-m", MODEL, "--prompts", f],
            "is a FIFO (named pipe), not a regular file",
        ),
    ] {
        let o = greta_within_seconds(&args);
        assert_user_error(&o, what);
        let err = String::from_utf8_lossy(&o.stderr);
        let named = args
            .iter()
            .any(|a| a.starts_with('/') && *a != MODEL && err.contains(a));
        assert!(named, "{args:?}: {err}");
    }
}

/// A plausible file that claims 10^6 or 2^32−1 blocks: `greta run` used to allocate gigabytes
/// for them before checking a tensor, then abort ("memory allocation failed"); `greta model
/// info` accepted it. Now both say what is wrong (info after its listing), with status 1.
#[test]
fn a_block_count_the_tensors_do_not_have_is_a_clear_error() {
    let o = greta(&["model", "info", MODEL]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for n in [1_000_000u32, u32::MAX] {
        let dir = tempfile::tempdir().unwrap();
        let path = rewrite(
            dir.path(),
            |k, v| {
                Some(if k == "llama.block_count" {
                    Value::U32(n)
                } else {
                    v.clone()
                })
            },
            keep,
        );
        let want = format!(
            "edited.gguf: metadata `llama.block_count` = {n}, but the file has tensors of 5 \
             blocks, blk.0 to blk.4"
        );
        assert_user_error(&run_file(&path, &[]), &want);
        let o = greta(&["model", "info", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            err.starts_with("greta: error: ") && err.contains(&want),
            "{err}"
        );
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains(&format!("llama.block_count (u32) = {n}")),
            "{out}"
        );
    }
}

/// Sizes the tensors contradict: each is named with the tensor that contradicts it.
#[test]
fn metadata_the_tensors_contradict_is_a_clear_error() {
    for (key, tensor) in [
        ("llama.embedding_length", "token_embd.weight"),
        ("llama.feed_forward_length", "blk.0.ffn_gate.weight"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = rewrite(
            dir.path(),
            |k, v| {
                Some(if k == key {
                    Value::U32(1 << 20)
                } else {
                    v.clone()
                })
            },
            keep,
        );
        let want = format!("metadata `{key}` = 1048576, but tensor `{tensor}` is [");
        assert_user_error(&run_file(&path, &[]), &want);
        let o = greta(&["model", "info", path.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&o.stderr).contains(&want));
    }
}

/// `-c 4000000` under a memory limit (`ulimit -v`, 2 GB): the KV cache (5 GB) cannot be
/// allocated. That used to abort ("memory allocation failed"); now it is one error naming the
/// bytes and what they were for (or, where the machine has less than 5 GB free, the memory
/// plan's refusal before allocating).
#[test]
fn a_context_beyond_a_memory_limit_is_a_clear_error() {
    let o = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 2000000 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_greta"))
        .args([
            "run",
            "-m",
            MODEL,
            "-p",
            "Once upon a time",
            "-n",
            "4",
            "-c",
            "4000000",
        ])
        .env("GRETA_BACKEND", "cpu")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_user_error(&o, "memory");
    assert!(
        err.contains(
            "out of host memory: asked for 512000000 bytes (the KV cache of 4000000 positions"
        ) || err.contains("MiB free"),
        "{err}"
    );
}

/// `greta model info` validates what makes a Llama file consistent (every tensor present with
/// its shape), not whether greta runs its tensor types: a Q4_0 model is listed with status 0.
#[test]
fn model_info_checks_the_layout_but_not_the_types() {
    let dir = tempfile::tempdir().unwrap();
    let q4 = with_a_q4_0_tensor(dir.path());
    let o = greta(&["model", "info", q4.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let missing = rewrite(
        dir.path(),
        |_, v| Some(v.clone()),
        |n, d, t, b| {
            (n != "blk.3.ffn_up.weight")
                .then(|| keep(n, d, t, b))
                .flatten()
        },
    );
    let o = greta(&["model", "info", missing.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("tensor `blk.3.ffn_up.weight` is missing"),
        "{err}"
    );
}
