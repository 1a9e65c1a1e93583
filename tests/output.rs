//! Where greta's output goes, when that place is hostile: a stdout or stderr whose reader went
//! away (a closed pipe ends quietly, status 0) or that cannot take more (one clear error, status
//! 1) — never a panic.

use std::process::{Child, Command, Output, Stdio};

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/models/stories260K.gguf"
);

fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_greta"));
    c.args(args)
        .env("GRETA_BACKEND", "cpu")
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The write end of a pipe whose read end is already closed: every write to it fails with
/// EPIPE, as when `greta ... | head -1` has read its line. (The reader is a `cat` that is killed
/// and reaped before the pipe is handed on; std opens pipes close-on-exec, so no other process
/// holds the read end.)
fn closed_pipe() -> Stdio {
    let mut reader: Child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("cat runs");
    let write_end = reader.stdin.take().unwrap();
    reader.kill().unwrap();
    reader.wait().unwrap();
    Stdio::from(write_end)
}

/// A device that takes no data: writes fail with ENOSPC.
fn full() -> Stdio {
    Stdio::from(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full exists"),
    )
}

fn run_with(args: &[&str], stdout: Stdio, stderr: Stdio) -> Output {
    command(args)
        .stdout(stdout)
        .stderr(stderr)
        .output()
        .expect("greta runs")
}

const RUN: &[&str] = &["run", "-m", MODEL, "-p", "Once upon a time", "-n", "4"];

fn commands() -> Vec<Vec<&'static str>> {
    vec![
        vec!["kernels"],
        vec!["emit", "add", "--target", "sm_90"],
        vec!["model", "info", MODEL],
        RUN.to_vec(),
    ]
}

#[test]
fn a_closed_stdout_ends_quietly() {
    for args in commands() {
        let o = run_with(&args, closed_pipe(), Stdio::piped());
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.contains("error"), "{args:?}: {err}");
    }
}

#[test]
fn a_full_stdout_is_one_clear_error() {
    for args in commands() {
        let o = run_with(&args, full(), Stdio::piped());
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        // One error, the last line (`run` logs a line to stderr before the text).
        let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(
            errors,
            ["greta: error: writing to stdout: No space left on device (os error 28)"],
            "{args:?}: {err}"
        );
        assert!(err.ends_with("(os error 28)\n"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// `greta run 2>/dev/full`: nowhere to say what went wrong, so the status says it (1, not a
/// panic's 101), and generation stops at the first failed write.
#[test]
fn a_full_stderr_fails_with_status_1() {
    let o = run_with(RUN, Stdio::piped(), full());
    assert_eq!(o.status.code(), Some(1), "stdout: {}", text(&o.stdout));
    let o = run_with(RUN, Stdio::piped(), closed_pipe());
    assert_eq!(o.status.code(), Some(0), "stdout: {}", text(&o.stdout));
}
