//! The tensors a Llama model needs, with the shapes its configuration implies, checked against
//! the GGUF file before anything is uploaded.

use super::config::LlamaConfig;
use crate::gguf::{GgmlType, GgufFile, TensorInfo};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WeightError {
    #[error("tensor `{0}` is missing")]
    Missing(String),
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    Shape {
        name: String,
        expected: Vec<u64>,
        found: Vec<u64>,
    },
    #[error(
        "tensor `{name}` has type {ty}, which greta does not run (supported: F32, F16, BF16, Q8_0)"
    )]
    Type { name: String, ty: String },
}

/// One expected tensor: its name and dims in GGUF order (`ne[0]`, the contiguous one, first).
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub name: String,
    pub dims: Vec<u64>,
}

/// Every tensor the forward pass reads. `output.weight` is optional: without it the model ties
/// its output projection to the token embeddings.
pub fn expected(cfg: &LlamaConfig) -> Vec<Expected> {
    expected_iter(cfg).collect()
}

/// [`expected`], one tensor at a time, so that [`check`] stops at the first missing tensor
/// without listing the rest. The list is nine tensors per layer: a file may claim as many layers
/// as it names blocks (`blk.N.*`, see [`LlamaConfig::from_gguf`]), a block per tensor info of
/// some 40 bytes (one empty tensor each), and the whole list of such a file took some 20 times
/// its size in memory; a configuration made by hand may claim any number.
pub fn expected_iter(cfg: &LlamaConfig) -> impl Iterator<Item = Expected> {
    let (d, q, kv, f, v) = (
        cfg.dim as u64,
        cfg.q_dim() as u64,
        cfg.kv_dim() as u64,
        cfg.ffn_dim as u64,
        cfg.vocab as u64,
    );
    let t = |name: String, dims: &[u64]| Expected {
        name,
        dims: dims.to_vec(),
    };
    let head = [
        t("token_embd.weight".into(), &[d, v]),
        t("output_norm.weight".into(), &[d]),
    ];
    let layers = (0..cfg.n_layers).flat_map(move |l| {
        let b = |s: &str| format!("blk.{l}.{s}");
        [
            t(b("attn_norm.weight"), &[d]),
            t(b("attn_q.weight"), &[d, q]),
            t(b("attn_k.weight"), &[d, kv]),
            t(b("attn_v.weight"), &[d, kv]),
            t(b("attn_output.weight"), &[q, d]),
            t(b("ffn_norm.weight"), &[d]),
            t(b("ffn_gate.weight"), &[d, f]),
            t(b("ffn_up.weight"), &[d, f]),
            t(b("ffn_down.weight"), &[f, d]),
        ]
    });
    head.into_iter().chain(layers)
}

fn check_one<'a>(
    g: &'a GgufFile,
    e: &Expected,
    types: bool,
) -> Result<&'a TensorInfo, WeightError> {
    let t = g
        .tensor(&e.name)
        .ok_or_else(|| WeightError::Missing(e.name.clone()))?;
    if t.dims != e.dims {
        return Err(WeightError::Shape {
            name: e.name.clone(),
            expected: e.dims.clone(),
            found: t.dims.clone(),
        });
    }
    if types
        && !matches!(
            t.ty,
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 | GgmlType::Q8_0
        )
    {
        return Err(WeightError::Type {
            name: e.name.clone(),
            ty: t.ty.name().to_string(),
        });
    }
    Ok(t)
}

/// Checks every tensor the model needs: present, with the right shape and a supported type.
/// Returns the output projection's tensor name (`output.weight`, or the embeddings when tied).
pub fn check(g: &GgufFile, cfg: &LlamaConfig) -> Result<&'static str, WeightError> {
    check_tensors(g, cfg, true)
}

/// [`check`] without the types: the file is a consistent Llama model, whether or not greta
/// runs its tensor types (`greta model info`).
pub fn check_layout(g: &GgufFile, cfg: &LlamaConfig) -> Result<&'static str, WeightError> {
    check_tensors(g, cfg, false)
}

fn check_tensors(
    g: &GgufFile,
    cfg: &LlamaConfig,
    types: bool,
) -> Result<&'static str, WeightError> {
    for e in expected_iter(cfg) {
        check_one(g, &e, types)?;
    }
    let out = Expected {
        name: "output.weight".into(),
        dims: vec![cfg.dim as u64, cfg.vocab as u64],
    };
    match g.tensor("output.weight") {
        Some(_) => {
            check_one(g, &out, types)?;
            Ok("output.weight")
        }
        None => Ok("token_embd.weight"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `check` stops at the first layer the file lacks instead of listing every tensor of every
    /// claimed layer first (2^40 layers were 10^13 entries: an abort for want of memory).
    #[test]
    fn a_huge_layer_count_fails_at_the_first_missing_layer() {
        let dir = tempfile::tempdir().unwrap();
        let g = crate::synth::tiny(dir.path(), GgmlType::F16, 0).unwrap();
        let mut cfg = LlamaConfig::from_gguf(&g).unwrap();
        assert_eq!(check(&g, &cfg), Ok("output.weight"));
        assert_eq!(cfg.n_layers, 2);
        cfg.n_layers = 1 << 40;
        assert_eq!(
            check(&g, &cfg),
            Err(WeightError::Missing("blk.2.attn_norm.weight".into()))
        );
        assert_eq!(
            check_layout(&g, &cfg).unwrap_err().to_string(),
            "tensor `blk.2.attn_norm.weight` is missing"
        );
        assert_eq!(
            expected_iter(&cfg).nth(2 + 9 * 5).unwrap().name,
            "blk.5.attn_norm.weight"
        );
    }
}
