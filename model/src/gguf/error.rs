//! The one error type of the GGUF reader and writer.
//!
//! Every error names the file (`<memory>` for [`GgufFile::from_bytes`](super::GgufFile::from_bytes))
//! and, in its [`ErrorKind`], what is wrong and where: a byte offset, a metadata key or a tensor
//! name. The kind is public so that callers and tests can match on it; `Display` is the one clear
//! sentence the CLI prints.

use std::fmt;
use std::path::{Path, PathBuf};

/// An error reading, validating or writing a GGUF file: the file it concerns and what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", path.display())]
pub struct GgufError {
    pub path: PathBuf,
    pub kind: ErrorKind,
}

impl GgufError {
    pub fn new(path: &Path, kind: ErrorKind) -> GgufError {
        GgufError {
            path: path.to_path_buf(),
            kind,
        }
    }
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
}

/// What went wrong. Offsets are byte offsets from the start of the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        source: std::io::Error,
    },

    #[error("file is truncated: reading {what} at byte {offset} needs {needed} bytes but the file has {file_len}")]
    Truncated {
        what: String,
        offset: u64,
        needed: u64,
        file_len: u64,
    },

    #[error(
        "not a GGUF file: the first 4 bytes are {} (expected \"GGUF\")",
        show_magic(found)
    )]
    BadMagic { found: Vec<u8> },

    #[error("unsupported GGUF version {version}{}", version_hint(*version))]
    UnsupportedVersion { version: u32 },

    #[error(
        "absurd {what} count {count} at byte {offset}: the rest of the file can hold at most {max}"
    )]
    AbsurdCount {
        what: &'static str,
        count: u64,
        offset: u64,
        max: u64,
    },

    #[error("{what} at byte {offset} has length {len}, which runs past the end of the file ({file_len} bytes)")]
    StringPastEnd {
        what: String,
        offset: u64,
        len: u64,
        file_len: u64,
    },

    #[error("{what} at byte {offset} is not valid UTF-8")]
    InvalidUtf8 { what: String, offset: u64 },

    #[error(
        "metadata key `{key}` at byte {offset} has unknown value type {type_id} (known: 0..=12)"
    )]
    UnknownValueType {
        key: String,
        type_id: u32,
        offset: u64,
    },

    #[error("metadata key `{key}`: arrays nested deeper than {max} levels at byte {offset}")]
    NestingTooDeep {
        key: String,
        offset: u64,
        max: usize,
    },

    #[error("duplicate metadata key `{key}` at byte {offset}")]
    DuplicateKey { key: String, offset: u64 },

    #[error("duplicate tensor name `{name}` at byte {offset}")]
    DuplicateTensor { name: String, offset: u64 },

    #[error("tensor `{tensor}` at byte {offset} has {n_dims} dimensions (at most 4 are allowed)")]
    TooManyDims {
        tensor: String,
        n_dims: u32,
        offset: u64,
    },

    #[error("tensor `{tensor}`: dimensions {dims:?} overflow (the product of the non-zero dimensions or the byte size does not fit in 63 bits)")]
    DimsOverflow { tensor: String, dims: Vec<u64> },

    #[error("tensor `{tensor}` at byte {offset} has ggml type id {id} ({}), which no ggml version defines with a known size", super::types::ggml_type_name(*id))]
    UnknownGgmlType {
        tensor: String,
        id: u32,
        offset: u64,
    },

    #[error("tensor `{tensor}` of type {ty}: row length ne[0] = {ne0} is not a multiple of the block size {block}")]
    RowNotBlockMultiple {
        tensor: String,
        ty: &'static str,
        ne0: u64,
        block: u64,
    },

    #[error("tensor `{tensor}`: its data (bytes {start}..{end}) lies outside the file ({file_len} bytes)")]
    TensorOutOfBounds {
        tensor: String,
        start: u64,
        end: u64,
        file_len: u64,
    },

    #[error(
        "tensor `{tensor}`: data offset {offset} is not a multiple of the alignment {alignment}"
    )]
    MisalignedTensor {
        tensor: String,
        offset: u64,
        alignment: u64,
    },

    #[error("general.alignment is {found}; it must be a u32 power of two")]
    BadAlignment { found: String },

    #[error("metadata key `{key}`: expected {expected}, found {found}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },

    #[error("metadata key `{key}`: value {value} does not fit in {expected}")]
    OutOfRange {
        key: String,
        value: String,
        expected: &'static str,
    },

    #[error("tensor `{tensor}`: {message}")]
    BadTensorData { tensor: String, message: String },

    #[error("metadata key `{key}`: {message}")]
    BadValue { key: String, message: String },

    #[error("{0}")]
    Writer(String),

    /// The destination of a write refused or failed under greta's output-file policy
    /// ([`greta_runtime::output`]).
    #[error(transparent)]
    Output(greta_runtime::output::OutputErrorKind),
}

fn show_magic(found: &[u8]) -> String {
    let hex: Vec<String> = found.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{:?} (hex {})",
        String::from_utf8_lossy(found),
        hex.join(" ")
    )
}

fn version_hint(version: u32) -> &'static str {
    match version {
        1 => " (GGUF v1 used 32-bit counts; re-convert the model with a current llama.cpp; versions 2 and 3 are supported)",
        v if v.swap_bytes() <= 3 && v > 3 => " (this looks like a big-endian GGUF file; only little-endian files are supported)",
        _ => " (versions 2 and 3 are supported)",
    }
}

/// An error converting tensor bytes to f32 ([`dequantize_row`](super::dequantize_row)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DequantError {
    #[error("cannot convert tensors of ggml type {0} to f32 (supported: F32, F16, BF16, Q8_0)")]
    Unsupported(&'static str),
    #[error("{ty}: {bytes} bytes do not hold {elems} elements (expected {expected} bytes)")]
    LengthMismatch {
        ty: &'static str,
        bytes: usize,
        elems: usize,
        expected: usize,
    },
}

impl fmt::Display for super::GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
