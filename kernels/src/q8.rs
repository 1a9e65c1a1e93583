//! GGUF's Q8_0 format, as the kernels see it.
//!
//! A Q8_0 row of `K` values (K a multiple of 32) is `K / 32` blocks of 34 bytes: an f16 scale
//! `d` and 32 signed bytes `q`, the value being `d · q`. The DSL has no byte type, so the kernels
//! take a row's blocks as two buffers, which [`repack_q8_0`] makes from the GGUF bytes:
//! - `scales: &[f16]`, one per block (`rows × K/32`);
//! - `quants: &[u32]`, four quants per word, little-endian (quant `i` of a row is byte `i % 4`
//!   of word `i / 4`), `rows × K/4`.
//!
//! Splitting also aligns the quants to 16 bytes (a GGUF block is 34 bytes, so its quants are
//! only 2-byte aligned), which is what lets the kernels read them with wide loads.

use greta_dsl::prelude::*;
use half::f16;

/// Values per Q8_0 block.
pub const QK8_0: usize = 32;
/// Bytes per Q8_0 block: an f16 scale and 32 quants.
pub const Q8_0_BLOCK_BYTES: usize = 2 + QK8_0;

/// Splits GGUF Q8_0 blocks (34 bytes each: f16 `d`, 32 × i8) into the scales and the packed
/// quants the kernels take. Trailing bytes that do not make a whole block are ignored; the caller
/// checks the tensor's size (`rows · K/32 · 34` bytes).
pub fn repack_q8_0(bytes: &[u8]) -> (Vec<f16>, Vec<u32>) {
    let blocks = bytes.chunks_exact(Q8_0_BLOCK_BYTES);
    let n = blocks.len();
    let mut scales = Vec::with_capacity(n);
    let mut quants = Vec::with_capacity(n * QK8_0 / 4);
    for b in blocks {
        scales.push(f16::from_le_bytes([b[0], b[1]]));
        quants.extend(
            b[2..]
                .chunks_exact(4)
                .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])),
        );
    }
    (scales, quants)
}

/// Quantises a row (length a multiple of 32) to GGUF Q8_0 bytes the way llama.cpp's reference
/// quantiser does: per block `d = amax / 127`, `q = round(x / d)` (computed as `x · (1/d)`,
/// rounding half away from zero), `d` stored as f16.
pub fn quantize_q8_0(row: &[f32]) -> Vec<u8> {
    assert!(
        row.len().is_multiple_of(QK8_0),
        "Q8_0 rows are whole blocks of 32 values; got {}",
        row.len()
    );
    let mut out = Vec::with_capacity(row.len() / QK8_0 * Q8_0_BLOCK_BYTES);
    for block in row.chunks_exact(QK8_0) {
        let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        out.extend(block.iter().map(|&v| (v * id).round() as i8 as u8));
    }
    out
}

/// The values of Q8_0 data given as scales and packed quants (for references), in f64.
pub fn dequantize(scales: &[f16], quants: &[u32]) -> Vec<f64> {
    let mut out = Vec::with_capacity(quants.len() * 4);
    for (i, w) in quants.iter().enumerate() {
        let d = scales[i * 4 / QK8_0].to_f64();
        out.extend(w.to_le_bytes().iter().map(|&b| d * (b as i8) as f64));
    }
    out
}

/// Random Q8_0 data for `rows × cols` (cols a multiple of 32) as the kernels take it: values
/// uniform in `[lo, hi)`, quantised by [`quantize_q8_0`]. Returns the scales, the quants and the
/// dequantised values (what a reference must see).
pub fn random(
    inputs: &mut crate::Inputs,
    rows: usize,
    cols: usize,
    lo: f64,
    hi: f64,
) -> (Vec<f16>, Vec<u32>, Vec<f64>) {
    let (_, values) = inputs.uniform(greta_dsl::ir::Scalar::F32, rows * cols, lo, hi);
    let mut bytes = Vec::with_capacity(rows * cols / QK8_0 * Q8_0_BLOCK_BYTES);
    for r in 0..rows {
        let row: Vec<f32> = values[r * cols..(r + 1) * cols]
            .iter()
            .map(|&v| v as f32)
            .collect();
        bytes.extend(quantize_q8_0(&row));
    }
    let (scales, quants) = repack_q8_0(&bytes);
    let deq = dequantize(&scales, &quants);
    (scales, quants, deq)
}

/// Quant `byte` (0..4, comptime) of a packed word, as an f32 integer in [-128, 127]: the byte
/// is shifted to the top of the word, reinterpreted as i32 (a bit-preserving cast) and shifted
/// back arithmetically, which sign-extends it.
#[device]
pub fn quant(word: Val<u32>, #[comptime] byte: u32) -> Val<f32> {
    let top = (word << (24u32 - 8u32 * byte)).to_i32();
    (top >> 24i32).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_then_repack_round_trips_within_half_a_step() {
        let row: Vec<f32> = (0..64).map(|i| ((i as f32) * 0.37).sin() * 3.0).collect();
        let bytes = quantize_q8_0(&row);
        assert_eq!(bytes.len(), 2 * Q8_0_BLOCK_BYTES);
        let (scales, quants) = repack_q8_0(&bytes);
        assert_eq!((scales.len(), quants.len()), (2, 16));
        let deq = dequantize(&scales, &quants);
        for (b, block) in row.chunks(32).enumerate() {
            let d = scales[b].to_f64();
            for (i, &v) in block.iter().enumerate() {
                assert!((deq[b * 32 + i] - v as f64).abs() <= 0.5 * d + 1e-3 * d.max(1.0));
            }
        }
        // The largest magnitude of each block maps to ±127.
        let q0 = bytes[2..34].iter().map(|&b| (b as i8).unsigned_abs()).max();
        assert_eq!(q0, Some(127));
    }

    #[test]
    fn repack_is_little_endian_and_keeps_signs() {
        let mut block = vec![0u8; Q8_0_BLOCK_BYTES];
        block[..2].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        for i in 0..32 {
            block[2 + i] = (i as i8 - 16) as u8;
        }
        let (scales, quants) = repack_q8_0(&block);
        assert_eq!(scales, vec![f16::from_f32(0.5)]);
        assert_eq!(quants[0] & 0xff, (-16i8) as u8 as u32);
        let deq = dequantize(&scales, &quants);
        assert_eq!(deq[0], -8.0);
        assert_eq!(deq[31], 7.5);
    }

    #[test]
    fn zero_blocks_quantise_to_zero() {
        let bytes = quantize_q8_0(&[0.0; 32]);
        assert!(bytes.iter().all(|&b| b == 0));
    }
}
