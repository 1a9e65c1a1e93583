//! Converting tensor bytes to and from f32: F32, F16, BF16 and Q8_0.
//!
//! Q8_0 follows ggml exactly (`quantize_row_q8_0_ref`): blocks of 32 values, each stored as an
//! f16 scale `d = max|x| / 127` and 32 `i8`s `q = round(x * (1/d))` (round half away from zero),
//! so files greta writes are bit-identical to llama.cpp's for the same f32 input.

use half::{bf16, f16};

use super::error::DequantError;
use super::types::GgmlType;

/// Elements per Q8_0 block.
pub const QK8_0: usize = 32;
/// Bytes per Q8_0 block: an f16 scale and 32 i8.
pub const Q8_0_BLOCK_BYTES: usize = 2 + QK8_0;

/// One Q8_0 block, decoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; QK8_0],
}

impl BlockQ8_0 {
    pub fn from_bytes(b: &[u8; Q8_0_BLOCK_BYTES]) -> BlockQ8_0 {
        let mut qs = [0i8; QK8_0];
        for (q, &byte) in qs.iter_mut().zip(&b[2..]) {
            *q = byte as i8;
        }
        BlockQ8_0 {
            d: f16::from_le_bytes([b[0], b[1]]),
            qs,
        }
    }

    pub fn to_bytes(&self) -> [u8; Q8_0_BLOCK_BYTES] {
        let mut b = [0u8; Q8_0_BLOCK_BYTES];
        b[..2].copy_from_slice(&self.d.to_le_bytes());
        for (byte, &q) in b[2..].iter_mut().zip(&self.qs) {
            *byte = q as u8;
        }
        b
    }

    /// ggml's reference quantisation of 32 values.
    pub fn quantize(x: &[f32; QK8_0]) -> BlockQ8_0 {
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0i8; QK8_0];
        for (q, &v) in qs.iter_mut().zip(x) {
            *q = (v * id).round() as i8;
        }
        BlockQ8_0 {
            d: f16::from_f32(d),
            qs,
        }
    }

    pub fn dequantize(&self, out: &mut [f32; QK8_0]) {
        let d = self.d.to_f32();
        for (o, &q) in out.iter_mut().zip(&self.qs) {
            *o = q as f32 * d;
        }
    }
}

/// Decodes `out.len()` elements of type `ty` from `bytes` (which must hold exactly that many).
pub fn dequantize_row(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), DequantError> {
    if !ty.is_supported() {
        return Err(DequantError::Unsupported(ty.name()));
    }
    let expected = ty.bytes_for(out.len() as u64).map(|b| b as usize);
    if expected != Some(bytes.len()) {
        return Err(DequantError::LengthMismatch {
            ty: ty.name(),
            bytes: bytes.len(),
            elems: out.len(),
            expected: expected.unwrap_or(usize::MAX),
        });
    }
    match ty {
        GgmlType::F32 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        GgmlType::F16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        GgmlType::BF16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = bf16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        GgmlType::Q8_0 => {
            for (o, b) in out
                .chunks_exact_mut(QK8_0)
                .zip(bytes.chunks_exact(Q8_0_BLOCK_BYTES))
            {
                let block = BlockQ8_0::from_bytes(b.try_into().expect("chunk of block size"));
                block.dequantize(o.try_into().expect("chunk of block size"));
            }
        }
        GgmlType::Unsupported { .. } => unreachable!("checked above"),
    }
    Ok(())
}

/// Encodes `x` as type `ty`, appending to `out` (F32/F16/BF16 round to nearest even; Q8_0 as
/// ggml). For Q8_0, `x.len()` must be a multiple of 32.
pub fn quantize_row(ty: GgmlType, x: &[f32], out: &mut Vec<u8>) -> Result<(), DequantError> {
    match ty {
        GgmlType::F32 => {
            out.reserve(x.len() * 4);
            for v in x {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        GgmlType::F16 => {
            out.reserve(x.len() * 2);
            for v in x {
                out.extend_from_slice(&f16::from_f32(*v).to_le_bytes());
            }
        }
        GgmlType::BF16 => {
            out.reserve(x.len() * 2);
            for v in x {
                out.extend_from_slice(&bf16::from_f32(*v).to_le_bytes());
            }
        }
        GgmlType::Q8_0 => {
            if x.len() % QK8_0 != 0 {
                return Err(DequantError::LengthMismatch {
                    ty: ty.name(),
                    bytes: 0,
                    elems: x.len(),
                    expected: 0,
                });
            }
            out.reserve(x.len() / QK8_0 * Q8_0_BLOCK_BYTES);
            for chunk in x.chunks_exact(QK8_0) {
                let block = BlockQ8_0::quantize(chunk.try_into().expect("chunk of block size"));
                out.extend_from_slice(&block.to_bytes());
            }
        }
        GgmlType::Unsupported { name, .. } => return Err(DequantError::Unsupported(name)),
    }
    Ok(())
}
