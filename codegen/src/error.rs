//! The one error type of the crate. Every failure names what went wrong and where, so that the
//! CLI can print it as one sentence (plus the tool's own diagnostics for compiler failures).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// The IR asks for something this backend cannot express (or is malformed in a way the
    /// verifier should have caught); `message` says which construct.
    #[error("kernel `{kernel}`: {message}")]
    Unsupported { kernel: String, message: String },

    /// The kernel failed the verifier (a bug in the front end or in hand-built IR).
    #[error(transparent)]
    Invalid(Box<greta_dsl::valid::ValidationError>),

    /// An output format that does not exist for the target (PTX for an AMD GPU).
    #[error("{format} output is not available for target {target}: {reason}")]
    FormatUnavailable {
        format: &'static str,
        target: String,
        reason: String,
    },

    /// A required external tool could not be found.
    #[error("{tool} not found ({searched}); {hint}")]
    ToolMissing {
        tool: &'static str,
        searched: String,
        hint: String,
    },

    /// An external tool ran and failed. `input` is a kept copy of the file it was given (the
    /// temporary directory is gone by the time anyone reads this), `stderr` its diagnostics.
    #[error(
        "{tool} failed ({status}) on {}\n  command: {command}\n{stderr}",
        input.as_ref().map_or_else(|| "<no input file kept>".to_string(), |p| p.display().to_string())
    )]
    ToolFailed {
        tool: &'static str,
        command: String,
        status: String,
        stderr: String,
        input: Option<PathBuf>,
    },

    /// LLVM in process refused or failed on the generated module (`stage`: parse, verify,
    /// optimise, emit), or is not built in.
    #[error("kernel `{kernel}`: LLVM {stage}: {message}")]
    Llvm {
        kernel: String,
        stage: String,
        message: String,
    },

    /// A tool's output did not contain the resource figures it should.
    #[error("could not read resource usage from {tool} output: {message}")]
    Resources { tool: &'static str, message: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl CodegenError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CodegenError {
        let context = context.into();
        move |source| CodegenError::Io { context, source }
    }
}
