//! Comparing logits: bitwise, by the largest difference, by the top-1 token; and the
//! thresholds each activation type is held to.

use crate::sampler::argmax;
use greta_dsl::ir::Scalar;

/// Bit-identical (so a NaN equals only the same NaN, and 0.0 differs from -0.0).
pub fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// The largest absolute difference between two sets of rows (infinite where a value is not
/// finite on one side only, or rows differ in length).
pub fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    let mut worst = 0f64;
    for (x, y) in a.iter().zip(b) {
        if x.len() != y.len() {
            return f64::INFINITY;
        }
        for (&p, &q) in x.iter().zip(y) {
            let d = (p as f64 - q as f64).abs();
            worst = worst.max(if d.is_nan() { f64::INFINITY } else { d });
        }
    }
    worst
}

/// The fraction of rows whose most likely token is the same.
pub fn top1_agreement(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    let same = a
        .iter()
        .zip(b)
        .filter(|(x, y)| argmax(x) == argmax(y))
        .count();
    same as f64 / a.len() as f64
}

/// The largest magnitude of any logit (what differences are judged against in
/// [`Tolerance::cross`]).
pub fn max_abs(a: &[Vec<f32>]) -> f64 {
    a.iter()
        .flatten()
        .map(|&x| (x as f64).abs())
        .fold(0.0, f64::max)
}

/// What prefill and decode may differ by for one activation type.
///
/// Prefill and decode run different kernels (the prefill GEMM and fused prefill attention over
/// many rows; the GEMV and split-K attention over one), so their sums are rounded in different
/// orders: with f32 activations the logits differ by float rounding (≤ 1e-4, the issue's
/// goal); with f16/bf16 activations every stored activation is rounded to 11 or 8 bits, so two
/// orders may differ by a few units of the last place of each stored value, which grows
/// through the layers (the bounds are absolute logit differences).
///
/// kv-aligned (prefill n−1 tokens, decode the last, vs prefill all n): the keys and values of
/// the first n−1 tokens are bit-identical in both (every projection's row does not depend on
/// the other rows); only the last token's own pass differs, by kernel, so its bound is the same
/// as prefill-decode's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Largest logit difference between a prefill pass and token-by-token decode.
    pub prefill_decode: f64,
    /// Smallest top-1 agreement between them.
    pub top1: f64,
}

impl Tolerance {
    pub fn for_activations(act: Scalar) -> Tolerance {
        match act {
            Scalar::F32 => Tolerance {
                prefill_decode: 1e-4,
                top1: 1.0,
            },
            Scalar::F16 => Tolerance {
                prefill_decode: 0.05,
                top1: 0.9,
            },
            _ => Tolerance {
                prefill_decode: 0.25,
                top1: 0.9,
            },
        }
    }

    /// Cross-dtype thresholds for runs in `a` and `b`: the smallest top-1 agreement and the
    /// largest logit difference relative to the largest logit. The looser type of the pair
    /// sets them: f16 keeps 11 significant bits (2⁻¹¹ ≈ 5e-4 relative per rounding), bf16 8
    /// (2⁻⁸ ≈ 4e-3); after a model's layers of rounding, the logits of f16 stay within a few
    /// percent of f32's and bf16's within about ten, and top-1 agrees where the winner leads
    /// by more than that.
    pub fn cross(a: Scalar, b: Scalar) -> (f64, f64) {
        if a == Scalar::BF16 || b == Scalar::BF16 {
            (0.8, 0.15)
        } else {
            (0.9, 0.05)
        }
    }
}
