//! Writing to stdout and stderr without panicking: `out!`/`outln!` (stdout) and `err!`/`errln!`
//! (stderr) are `print!`/`println!`/`eprint!`/`eprintln!` that return the write's error to the
//! command (with `?`) instead of panicking ("failed printing to stdout") as std's macros do.
//!
//! Rust ignores SIGPIPE, so a reader that goes away (`greta kernels | head -1`) shows up as an
//! `EPIPE` write error. That is normal use, not a failure: it becomes [`StreamError::Closed`],
//! which [`exit_code`] turns into a quiet exit with status 0. Any other write error (a full
//! disk, `> /dev/full`) is one clear error and status 1 — printed to stderr if stderr still
//! takes it, and status 1 regardless.
//!
//! Every write to stdout or stderr in `src/` goes through these; `greta_*` libraries print
//! nothing. Progress bars (indicatif) ignore their own draw errors and are hidden when stderr is
//! not a terminal, so they cannot panic on a closed or full stderr either (see the tests).

use std::fmt;
use std::io::{self, Write};

/// Writes to stdout (buffered by line, like `print!`; see [`flush`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cmd::out::print(format_args!($($arg)*))?
    };
}

/// Writes a line to stdout.
macro_rules! outln {
    () => {
        $crate::cmd::out::print(format_args!("\n"))?
    };
    ($($arg:tt)*) => {
        $crate::cmd::out::print(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

/// Writes to stderr.
#[allow(unused_macros)]
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::cmd::out::eprint(format_args!($($arg)*))?
    };
}

/// Writes a line to stderr.
macro_rules! errln {
    () => {
        $crate::cmd::out::eprint(format_args!("\n"))?
    };
    ($($arg:tt)*) => {
        $crate::cmd::out::eprint(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

/// A write to stdout or stderr that failed.
#[derive(Debug)]
pub enum StreamError {
    /// The reader closed the pipe (EPIPE): it has all it wanted; the command ends quietly.
    Closed(&'static str),
    /// Any other error (e.g. no space left on the device).
    Write {
        stream: &'static str,
        source: io::Error,
    },
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::Closed(stream) => write!(f, "{stream} was closed by its reader"),
            StreamError::Write { stream, source } => write!(f, "writing to {stream}: {source}"),
        }
    }
}

/// The io error is part of the message (not a `source`, which `{e:#}` would print twice).
impl std::error::Error for StreamError {}

impl StreamError {
    fn new(stream: &'static str, e: io::Error) -> StreamError {
        if e.kind() == io::ErrorKind::BrokenPipe {
            StreamError::Closed(stream)
        } else {
            StreamError::Write { stream, source: e }
        }
    }
}

/// Whether `e` comes from a closed stdout or stderr (anywhere in its chain of causes).
pub fn is_closed(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| matches!(c.downcast_ref(), Some(StreamError::Closed(_))))
}

/// `print!` that returns the error.
pub fn print(args: fmt::Arguments<'_>) -> Result<(), StreamError> {
    io::stdout()
        .lock()
        .write_fmt(args)
        .map_err(|e| StreamError::new("stdout", e))
}

/// `eprint!` that returns the error.
pub fn eprint(args: fmt::Arguments<'_>) -> Result<(), StreamError> {
    io::stderr()
        .lock()
        .write_fmt(args)
        .map_err(|e| StreamError::new("stderr", e))
}

/// Pushes out what stdout holds (the end of a line not yet written, e.g. a streamed token).
pub fn flush() -> Result<(), StreamError> {
    io::stdout()
        .lock()
        .flush()
        .map_err(|e| StreamError::new("stdout", e))
}

/// The process's exit status for a command's result, after flushing stdout: 0 for success or
/// a closed stdout/stderr; else 1, with the error on stderr when stderr takes it.
pub fn exit_code(result: anyhow::Result<()>) -> i32 {
    let result = result.and_then(|()| Ok(flush()?));
    match result {
        Ok(()) => 0,
        Err(e) if is_closed(&e) => 0,
        Err(e) => {
            // Nowhere left to report a failing stderr: the status says it.
            let _ = writeln!(io::stderr().lock(), "greta: error: {e:#}");
            1
        }
    }
}

/// The exit status for a command line clap could not parse, or `--help`/`--version`, after
/// printing clap's text through these writers (clap's own `exit` ignores a failed write, so
/// `greta --help > /dev/full` said nothing and exited 0): help on stdout with status 0, a usage
/// error on stderr with status 2; a stdout that fails otherwise than closed is one error and
/// status 1. Colour as clap would give it: on a terminal, unless `NO_COLOR` is set.
pub fn clap_exit(e: clap::Error) -> i32 {
    use std::io::IsTerminal;
    let to_stderr = e.use_stderr();
    let terminal = if to_stderr {
        io::stderr().is_terminal()
    } else {
        io::stdout().is_terminal()
    };
    // NO_COLOR counts when set to anything but the empty string (no-color.org).
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let color = terminal && !no_color;
    let styled = e.render();
    let text = if color {
        styled.ansi().to_string()
    } else {
        styled.to_string()
    };
    let written = if to_stderr {
        eprint(format_args!("{text}"))
    } else {
        print(format_args!("{text}")).and_then(|()| flush())
    };
    match written {
        Ok(()) | Err(StreamError::Closed(_)) => e.exit_code(),
        Err(w) if !to_stderr => exit_code(Err(w.into())),
        Err(_) => e.exit_code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

    #[test]
    fn a_broken_pipe_is_closed_and_other_errors_are_not() {
        let closed = anyhow::Error::new(StreamError::new(
            "stdout",
            io::Error::from(io::ErrorKind::BrokenPipe),
        ))
        .context("listing the kernels");
        assert!(is_closed(&closed));
        assert_eq!(exit_code(Err(closed)), 0);
        let full = StreamError::new("stdout", io::Error::from_raw_os_error(28));
        assert!(
            full.to_string().starts_with("writing to stdout: "),
            "{full}"
        );
        let full = anyhow::Error::new(full);
        assert!(!is_closed(&full));
        assert_eq!(exit_code(Err(full)), 1);
    }

    /// A terminal whose every write fails as a closed pipe does.
    #[derive(Debug)]
    struct ClosedTerm;

    impl TermLike for ClosedTerm {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, _: usize) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn move_cursor_down(&self, _: usize) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn write_line(&self, _: &str) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn write_str(&self, _: &str) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn clear_line(&self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    /// The progress-bar calls the commands make, drawn on a terminal that fails every write:
    /// indicatif drops the errors rather than panicking.
    #[test]
    fn progress_bars_survive_a_failing_terminal() {
        let bar = ProgressBar::with_draw_target(
            Some(10),
            ProgressDrawTarget::term_like_with_hz(Box::new(ClosedTerm), 250),
        )
        .with_style(ProgressStyle::with_template("loading {bar:30} {pos}/{len}").unwrap());
        bar.set_message("writing");
        for i in 0..=10 {
            bar.set_length(10);
            bar.set_position(i);
            bar.inc(0);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        bar.println("a line");
        bar.finish_and_clear();
        assert!(bar.is_finished());
    }
}
