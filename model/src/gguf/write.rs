//! Writing GGUF version 3 files.
//!
//! A GGUF header lists every tensor's offset before any data, so writing is two-phase: declare
//! metadata and tensors on a [`GgufWriter`], then [`begin`](GgufWriter::begin) (any `Write`) or
//! [`create`](GgufWriter::create) (a file) writes the header and returns a [`TensorStream`] that
//! takes each tensor's data in declaration order, in as many chunks as the caller likes. So a
//! model larger than memory streams through, and the data is checked against the declaration
//! (no short or long tensors).
//!
//! Files are written under greta's output-file policy ([`greta_runtime::output`]): only over a
//! regular file (a device, FIFO or directory is refused before anything is written), through
//! symbolic links, keeping an existing file's mode, to a temporary file in the target's
//! directory renamed over the target only by [`TensorStream::commit`]; an error or a dropped
//! stream deletes the temporary file, so no reader ever sees a half-written model.
//!
//! Layout matches llama.cpp's writer: every tensor's data is padded to the alignment, including
//! the last, and offsets are the running padded sum.

use std::collections::HashSet;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::error::{ErrorKind, GgufError};
use super::quant::quantize_row;
use super::read::{align_up, tensor_size, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS};
use super::types::{GgmlType, TensorInfo, Value};
use greta_runtime::output::OutputFile;

const MEMORY: &str = "<memory>";

/// Collects metadata and tensor declarations for a GGUF v3 file.
#[derive(Debug, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    keys: HashSet<String>,
    tensors: Vec<TensorInfo>,
    names: HashSet<String>,
}

fn err(path: &Path, kind: ErrorKind) -> GgufError {
    GgufError::new(path, kind)
}

fn mem_err(kind: ErrorKind) -> GgufError {
    GgufError::new(Path::new(MEMORY), kind)
}

/// Checks that every array's items have the array's element type (recursively).
fn check_value(key: &str, v: &Value) -> Result<(), ErrorKind> {
    if let Value::Array(elem, items) = v {
        for (i, item) in items.iter().enumerate() {
            if item.value_type() != *elem {
                return Err(ErrorKind::BadValue {
                    key: key.into(),
                    message: format!(
                        "item {i} is a {} in an array of {}",
                        item.type_description(),
                        elem.name()
                    ),
                });
            }
            check_value(key, item)?;
        }
    }
    Ok(())
}

impl GgufWriter {
    pub fn new() -> GgufWriter {
        GgufWriter::default()
    }

    /// Adds a metadata key. Keys are unique; arrays must be homogeneous; `general.alignment`
    /// must be a u32 power of two (llama.cpp requires u32).
    pub fn add(
        &mut self,
        key: impl Into<String>,
        value: impl Into<Value>,
    ) -> Result<(), GgufError> {
        let key = key.into();
        let value = value.into();
        if self.keys.contains(&key) {
            return Err(mem_err(ErrorKind::DuplicateKey { key, offset: 0 }));
        }
        check_value(&key, &value).map_err(mem_err)?;
        if key == "general.alignment" && !matches!(value, Value::U32(a) if a.is_power_of_two()) {
            return Err(mem_err(ErrorKind::BadAlignment {
                found: format!("{value} ({})", value.type_description()),
            }));
        }
        self.keys.insert(key.clone());
        self.metadata.push((key, value));
        Ok(())
    }

    /// Declares a tensor (dims in ggml order, `dims[0]` fastest). Its data is written later,
    /// in declaration order, through the [`TensorStream`].
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        dims: &[u64],
        ty: GgmlType,
    ) -> Result<(), GgufError> {
        let name = name.into();
        if self.names.contains(&name) {
            return Err(mem_err(ErrorKind::DuplicateTensor { name, offset: 0 }));
        }
        if dims.len() > MAX_DIMS as usize {
            return Err(mem_err(ErrorKind::TooManyDims {
                tensor: name,
                n_dims: dims.len() as u32,
                offset: 0,
            }));
        }
        let size_bytes = tensor_size(&name, dims, ty).map_err(mem_err)?;
        self.names.insert(name.clone());
        self.tensors.push(TensorInfo {
            name,
            dims: dims.to_vec(),
            ty,
            offset: 0,
            size_bytes,
        });
        Ok(())
    }

    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    fn alignment(&self) -> u64 {
        self.metadata
            .iter()
            .find(|(k, _)| k == "general.alignment")
            .and_then(|(_, v)| v.as_u64())
            .unwrap_or(DEFAULT_ALIGNMENT)
    }

    /// The file's total size once all tensor data is written (for progress bars).
    pub fn file_size(&self) -> u64 {
        let mut header = Vec::new();
        encode_header(&self.metadata, &self.with_offsets(), &mut header);
        let a = self.alignment();
        align_up(header.len() as u64, a)
            + self
                .tensors
                .iter()
                .map(|t| align_up(t.size_bytes, a))
                .sum::<u64>()
    }

    fn with_offsets(&self) -> Vec<TensorInfo> {
        let a = self.alignment();
        let mut offset = 0;
        self.tensors
            .iter()
            .map(|t| {
                let t = TensorInfo {
                    offset,
                    ..t.clone()
                };
                offset += align_up(t.size_bytes, a);
                t
            })
            .collect()
    }

    /// Writes the header to `out` and returns the stream that takes the tensor data.
    pub fn begin<W: Write>(self, out: W) -> Result<TensorStream<W>, GgufError> {
        self.begin_at(out, PathBuf::from(MEMORY))
    }

    fn begin_at<W: Write>(self, mut out: W, path: PathBuf) -> Result<TensorStream<W>, GgufError> {
        let alignment = self.alignment();
        let tensors = self.with_offsets();
        let mut header = Vec::new();
        encode_header(&self.metadata, &tensors, &mut header);
        let padded = align_up(header.len() as u64, alignment) as usize;
        header.resize(padded, 0);
        out.write_all(&header).map_err(|source| {
            err(
                &path,
                ErrorKind::Io {
                    op: "writing the header",
                    source,
                },
            )
        })?;
        let mut stream = TensorStream {
            out,
            path,
            tensors,
            alignment,
            current: 0,
            written: 0,
        };
        stream.skip_empty()?;
        Ok(stream)
    }

    /// Creates `path` (through a temporary file beside its target, under greta's output-file
    /// policy: see the module docs) and writes the header. Call [`TensorStream::commit`] after
    /// the data to put the file in place. A destination greta refuses (a device, a FIFO, a
    /// directory) is an error here, before any data is made.
    pub fn create(self, path: &Path) -> Result<TensorStream<AtomicFile>, GgufError> {
        let out = OutputFile::create(path).map_err(|e| err(path, ErrorKind::Output(e.kind)))?;
        let file = AtomicFile {
            tmp: BufWriter::with_capacity(1 << 20, out),
        };
        self.begin_at(file, path.to_path_buf())
    }
}

/// The header: magic, version 3, counts, metadata, tensor infos (no padding).
fn encode_header(metadata: &[(String, Value)], tensors: &[TensorInfo], out: &mut Vec<u8>) {
    out.extend_from_slice(&GGUF_MAGIC);
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        encode_str(key, out);
        out.extend_from_slice(&(value.value_type() as u32).to_le_bytes());
        encode_value(value, out);
    }
    for t in tensors {
        encode_str(&t.name, out);
        out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&t.ty.id().to_le_bytes());
        out.extend_from_slice(&t.offset.to_le_bytes());
    }
}

fn encode_str(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::String(s) => encode_str(s, out),
        Value::Array(elem, items) => {
            out.extend_from_slice(&(*elem as u32).to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                encode_value(item, out);
            }
        }
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

/// Takes tensor data in declaration order, checking every byte count against the declaration.
pub struct TensorStream<W: Write> {
    out: W,
    path: PathBuf,
    tensors: Vec<TensorInfo>,
    alignment: u64,
    /// Index of the tensor being written.
    current: usize,
    /// Bytes of it written so far.
    written: u64,
}

impl<W: Write> TensorStream<W> {
    /// The tensor whose data comes next (`None` when all are written).
    pub fn next_tensor(&self) -> Option<&TensorInfo> {
        self.tensors.get(self.current)
    }

    /// Every tensor with its final offset.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    fn io(&self, op: &'static str, source: std::io::Error) -> GgufError {
        err(&self.path, ErrorKind::Io { op, source })
    }

    /// Finishes zero-byte tensors, which need no data.
    fn skip_empty(&mut self) -> Result<(), GgufError> {
        while self
            .tensors
            .get(self.current)
            .is_some_and(|t| t.size_bytes == 0)
        {
            self.current += 1;
        }
        Ok(())
    }

    /// Appends bytes, already in the tensor's type, to the current tensor. A chunk may not run
    /// past the end of the tensor; the tensor is complete (and padded) when its last byte is in.
    pub fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), GgufError> {
        let Some(t) = self.tensors.get(self.current) else {
            return Err(err(
                &self.path,
                ErrorKind::Writer(format!(
                    "{} bytes of tensor data written after every declared tensor is complete",
                    bytes.len()
                )),
            ));
        };
        let remaining = t.size_bytes - self.written;
        if bytes.len() as u64 > remaining {
            return Err(err(
                &self.path,
                ErrorKind::BadTensorData {
                    tensor: t.name.clone(),
                    message: format!(
                        "{} bytes written but only {remaining} of its {} bytes remain",
                        bytes.len(),
                        t.size_bytes
                    ),
                },
            ));
        }
        self.out
            .write_all(bytes)
            .map_err(|e| self.io("writing tensor data", e))?;
        self.written += bytes.len() as u64;
        if self.written == t.size_bytes {
            let pad = (align_up(t.size_bytes, self.alignment) - t.size_bytes) as usize;
            self.out
                .write_all(&[0u8; 256][..pad.min(256)])
                .map_err(|e| self.io("writing padding", e))?;
            if pad > 256 {
                self.out
                    .write_all(&vec![0u8; pad - 256])
                    .map_err(|e| self.io("writing padding", e))?;
            }
            self.current += 1;
            self.written = 0;
            self.skip_empty()?;
        }
        Ok(())
    }

    /// Converts f32 values to the current tensor's type and appends them (for Q8_0, chunks must
    /// be whole blocks of 32).
    pub fn write_f32(&mut self, x: &[f32]) -> Result<(), GgufError> {
        let Some(t) = self.tensors.get(self.current) else {
            return Err(err(
                &self.path,
                ErrorKind::Writer(format!(
                    "{} f32 values written after every declared tensor is complete",
                    x.len()
                )),
            ));
        };
        let mut bytes = Vec::new();
        quantize_row(t.ty, x, &mut bytes).map_err(|e| {
            err(
                &self.path,
                ErrorKind::BadTensorData {
                    tensor: t.name.clone(),
                    message: e.to_string(),
                },
            )
        })?;
        self.write_bytes(&bytes)
    }

    /// Checks that every tensor is complete, flushes, and returns the writer.
    pub fn finish(mut self) -> Result<W, GgufError> {
        if let Some(t) = self.tensors.get(self.current) {
            return Err(err(
                &self.path,
                ErrorKind::BadTensorData {
                    tensor: t.name.clone(),
                    message: format!(
                        "incomplete: {} of {} bytes written ({} tensors not finished)",
                        self.written,
                        t.size_bytes,
                        self.tensors.len() - self.current
                    ),
                },
            ));
        }
        self.out.flush().map_err(|e| self.io("flushing", e))?;
        Ok(self.out)
    }
}

impl TensorStream<AtomicFile> {
    /// Finishes the file and renames it over the destination.
    pub fn commit(self) -> Result<(), GgufError> {
        self.finish()?.commit()
    }
}

/// A temporary file that becomes the destination on `commit` and is
/// deleted if dropped before.
pub struct AtomicFile {
    tmp: BufWriter<OutputFile>,
}

impl AtomicFile {
    fn commit(self) -> Result<(), GgufError> {
        let path = self.tmp.get_ref().path().to_path_buf();
        let tmp = self.tmp.into_inner().map_err(|e| {
            err(
                &path,
                ErrorKind::Io {
                    op: "flushing",
                    source: e.into_error(),
                },
            )
        })?;
        tmp.commit()
            .map_err(|e| err(&e.path, ErrorKind::Output(e.kind)))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tmp.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.tmp.write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.tmp.flush()
    }
}
