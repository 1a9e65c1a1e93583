//! GGUF: the file format of llama.cpp models — metadata (key → typed value) followed by tensor
//! infos and aligned tensor data.
//!
//! - [`GgufFile`] memory-maps a file (versions 2 and 3) and validates all of it before use; see
//!   [`read`] for the rules. Errors are [`GgufError`]s naming the file, the problem and where.
//! - [`GgufWriter`] writes version 3 files tensor by tensor (a 13 GB model is never held in
//!   memory) into a temporary file that is renamed into place when complete.
//! - [`dequantize_row`] / [`quantize_row`] convert F32, F16, BF16 and Q8_0 data to and from f32.
//!   Every other ggml type is recognised by name, so a file holding them opens and lists its
//!   tensors, and says "Q4_K is unsupported" only when such a tensor is used.
//!
//! Dimension order is ggml's throughout: `dims[0]` (`ne[0]`) varies fastest, so a matrix of
//! `rows × cols` has `dims == [cols, rows]`.

mod error;
mod quant;
pub mod read;
mod types;
pub mod write;

pub use error::{DequantError, ErrorKind, GgufError};
pub use quant::{dequantize_row, quantize_row, BlockQ8_0, Q8_0_BLOCK_BYTES, QK8_0};
pub use read::{GgufFile, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS};
pub use types::{ggml_type_name, GgmlType, TensorInfo, Value, ValueType};
pub use write::{GgufWriter, TensorStream};
#[cfg(test)]
mod tests;
