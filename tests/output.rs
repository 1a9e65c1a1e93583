//! Where greta's output goes, when that place is hostile: a stdout or stderr whose reader went
//! away (a closed pipe ends quietly, status 0) or that cannot take more (one clear error, status
//! 1) — never a panic.

use std::path::{Path, PathBuf};
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
        // clap's help, which clap itself would print ignoring any error.
        vec!["--help"],
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

/// One of each kind of node that is not a regular file, in a fresh directory: a character
/// device (made with mknod where greta's tests run as root; else the system's /dev/full, which
/// only root could replace), a FIFO, a directory holding a file, and a link to the device.
struct Nodes {
    dir: tempfile::TempDir,
    device: PathBuf,
}

impl Nodes {
    fn new() -> Nodes {
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("full");
        let ok = Command::new("mknod")
            .args([made.to_str().unwrap(), "c", "1", "7"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let device = if ok { made } else { PathBuf::from("/dev/full") };
        let fifo = dir.path().join("fifo");
        let ok = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(ok.success());
        std::fs::create_dir(dir.path().join("dir")).unwrap();
        std::fs::write(dir.path().join("dir").join("keep"), b"mine").unwrap();
        std::os::unix::fs::symlink(&device, dir.path().join("link")).unwrap();
        Nodes { dir, device }
    }

    /// Each node with what the error says it is.
    fn each(&self) -> Vec<(PathBuf, &'static str)> {
        vec![
            (self.device.clone(), "is a character device"),
            (self.dir.path().join("fifo"), "is a FIFO"),
            (self.dir.path().join("dir"), "is a directory"),
            (self.dir.path().join("link"), "which is a character device"),
        ]
    }

    /// The directory's entries and what each is: unchanged by a refused command.
    fn listing(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .chain(std::fs::read_dir(self.dir.path().join("dir")).unwrap())
            .map(|e| {
                let e = e.unwrap();
                format!("{:?} {:?}", e.file_name(), e.file_type().unwrap())
            })
            .collect();
        v.sort();
        v.push(format!(
            "{:?}",
            std::fs::symlink_metadata(&self.device).unwrap().file_type()
        ));
        v
    }
}

fn assert_refused(o: &Output, path: &Path, what: &str) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("greta: error: "), "{err}");
    assert!(err.contains(&format!("{}: ", path.display())), "{err}");
    assert!(err.contains(what), "expected `{what}` in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// `-o` onto a device, a FIFO, a directory or a link to a device: refused before any work,
/// naming the path and what it is, and nothing in the directory changes (no node replaced, no
/// temporary file left — before, `emit -o DIR` left a `.tmp` file each time and root's
/// `-o /dev/full` replaced the device with a regular file).
#[test]
fn outputs_that_are_not_regular_files_are_refused_up_front() {
    let nodes = Nodes::new();
    let before = nodes.listing();
    for (path, what) in nodes.each() {
        let p = path.to_str().unwrap();
        let runs: Vec<Vec<&str>> = vec![
            vec!["emit", "add", "--target", "sm_90", "-o", p],
            vec![
                "emit", "add", "--target", "gfx942", "--format", "asm", "-o", p,
            ],
            // 7b: 13 GB, which used to stream into a temporary file beside the device.
            vec!["model", "synth", "--shape", "7b", "-o", p],
            vec![
                "verify",
                "-m",
                MODEL,
                "--gates",
                "determinism",
                "--report",
                p,
            ],
        ];
        for args in runs {
            let t0 = std::time::Instant::now();
            let o = run_with(&args, Stdio::piped(), Stdio::piped());
            assert_refused(&o, &path, what);
            assert!(t0.elapsed().as_secs_f64() < 5.0, "{args:?}: refused late");
            assert!(o.stdout.is_empty(), "{args:?}");
            assert_eq!(nodes.listing(), before, "{args:?}");
        }
    }
    // A bundle is a directory: a device, a FIFO or a file there is refused.
    let file = nodes.dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let before = nodes.listing();
    for (path, what) in [
        (
            nodes.device.clone(),
            "is a character device, not a directory",
        ),
        (
            nodes.dir.path().join("fifo"),
            "is a FIFO (named pipe), not a directory",
        ),
        (file, "is a regular file, not a directory"),
    ] {
        let p = path.to_str().unwrap();
        let o = run_with(
            &["build", "--target", "gfx942", "-o", p],
            Stdio::piped(),
            Stdio::piped(),
        );
        assert_refused(&o, &path, what);
        assert_eq!(nodes.listing(), before);
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Over an existing file the new one keeps its mode (before: 0600, a temporary file's); over a
/// symbolic link the link's target is written and the link stays.
#[test]
fn outputs_keep_the_mode_and_write_through_links() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let hip = dir.path().join("add.hip");
    let gguf = dir.path().join("tiny.gguf");
    for (path, m) in [(&hip, 0o644), (&gguf, 0o640)] {
        std::fs::write(path, b"old").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).unwrap();
    }
    let hip_link = dir.path().join("hip-link");
    let gguf_link = dir.path().join("gguf-link");
    std::os::unix::fs::symlink("add.hip", &hip_link).unwrap();
    std::os::unix::fs::symlink(&gguf, &gguf_link).unwrap();
    let o = run_with(
        &[
            "emit",
            "add",
            "--target",
            "sm_90",
            "-o",
            hip_link.to_str().unwrap(),
        ],
        Stdio::piped(),
        Stdio::piped(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = run_with(
        &[
            "model",
            "synth",
            "--shape",
            "tiny",
            "-o",
            gguf_link.to_str().unwrap(),
        ],
        Stdio::piped(),
        Stdio::piped(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(std::fs::read_to_string(&hip)
        .unwrap()
        .contains("extern \"C\""));
    assert_eq!(&std::fs::read(&gguf).unwrap()[..4], b"GGUF");
    assert_eq!(mode(&hip), 0o644);
    assert_eq!(mode(&gguf), 0o640);
    for link in [&hip_link, &gguf_link] {
        assert!(std::fs::symlink_metadata(link)
            .unwrap()
            .file_type()
            .is_symlink());
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["add.hip", "gguf-link", "hip-link", "tiny.gguf"]);
}

/// `greta model synth` of a 2.5 GB model stopped by SIGINT, SIGTERM or SIGHUP while it writes:
/// it dies of the signal (as a shell expects) and leaves no partial temporary file behind.
#[test]
fn an_interrupted_synth_leaves_no_temporary_file() {
    use std::os::unix::process::ExitStatusExt;
    for (name, number) in [("INT", 2), ("TERM", 15), ("HUP", 1)] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("big.gguf");
        let mut child = command(&[
            "model",
            "synth",
            "--shape",
            "1b",
            "--threads",
            "1",
            "-o",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        // Wait until the temporary file has data (the write is under way).
        let t0 = std::time::Instant::now();
        let writing = || {
            std::fs::read_dir(dir.path())
                .unwrap()
                .any(|e| e.unwrap().metadata().unwrap().len() > 0)
        };
        while !writing() {
            assert!(t0.elapsed().as_secs() < 20, "synth never started writing");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let kill = Command::new("kill")
            .args(["-s", name, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(number), "SIG{name}: {status:?}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "SIG{name} left {left:?}");
    }
}
