//! Running a tool: capture its output, and on failure return [`CodegenError::ToolFailed`] with
//! the command line, the diagnostics and a kept copy of the input (the temporary directory the
//! input lived in is gone by the time the error is read).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::CodegenError;

/// Combined stdout and stderr of a successful run.
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
}

/// Run `program args`; `input` names the file the tool reads, kept on failure.
pub fn run(
    tool: &'static str,
    program: &Path,
    args: &[&str],
    input: Option<&Path>,
) -> Result<Ran, CodegenError> {
    let command = std::iter::once(program.display().to_string())
        .chain(args.iter().map(|a| shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(CodegenError::io(format!("could not start {command}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        return Ok(Ran { stdout, stderr });
    }
    let kept = input.and_then(keep_failed_input);
    let mut diagnostics = stderr;
    if diagnostics.trim().is_empty() {
        diagnostics = stdout;
    }
    Err(CodegenError::ToolFailed {
        tool,
        command,
        status: out.status.to_string(),
        stderr: truncate(&diagnostics, 8000),
        input: kept,
    })
}

/// Copy a failed input to `$TMPDIR/greta-codegen-failed/<file name>`, written completely under
/// a temporary name first so no half-written copy is ever visible.
fn keep_failed_input(input: &Path) -> Option<PathBuf> {
    let dir = std::env::temp_dir().join("greta-codegen-failed");
    std::fs::create_dir_all(&dir).ok()?;
    let dest = dir.join(input.file_name()?);
    let tmp = tempfile::NamedTempFile::new_in(&dir).ok()?;
    std::fs::copy(input, tmp.path()).ok()?;
    tmp.persist(&dest).ok()?;
    Some(dest)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n... ({} more bytes)", &s[..end], s.len() - end)
}

fn shell_quote(a: &str) -> String {
    if a.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_=./+:,".contains(c))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}
