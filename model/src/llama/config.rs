//! Hyper-parameters of a Llama-family model, read from GGUF metadata and checked for
//! consistency — with each other, and with the tensors the file holds — before anything is
//! allocated.
//!
//! The metadata sizes everything that follows: the list of tensors a model expects (nine per
//! block), the KV cache, the scratch buffers. A plausible file claiming `llama.block_count` =
//! 2³²−1 made `greta run` allocate gigabytes for that list and abort. So the sizes are tied to
//! what the file holds, which the GGUF reader bounds by the file's length: the blocks the
//! tensors name (`blk.N.*`) are exactly `0..block_count`, `token_embd.weight` is `[embedding_length,
//! vocabulary]`, and block 0's `attn_k` and `ffn_gate` are `[embedding_length, KV width]` and
//! `[embedding_length, feed_forward_length]`. The rest of the tensors are checked by
//! [`super::weights::check`], within these bounds.

use crate::gguf::GgufFile;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unsupported architecture `{0}`: greta runs `llama` models")]
    Architecture(String),
    #[error("the model has no `{0}` metadata")]
    Missing(String),
    #[error("metadata `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("metadata `{key}` = {value}, but {found}")]
    Mismatch {
        key: String,
        value: String,
        /// What the tensors say, as a clause.
        found: String,
    },
    #[error("tensor `{0}` is missing")]
    MissingTensor(String),
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
}

/// The distinct block indices `N` of the tensors named `blk.N.*`, in order.
pub fn block_indices(g: &GgufFile) -> Vec<u64> {
    let mut blocks: Vec<u64> = g
        .tensors()
        .iter()
        .filter_map(|t| {
            let rest = t.name.strip_prefix("blk.")?;
            rest.split('.').next()?.parse().ok()
        })
        .collect();
    blocks.sort_unstable();
    blocks.dedup();
    blocks
}

/// Checks `{arch}.block_count` (when present) against the blocks the tensors name: they must be
/// exactly `blk.0` to `blk.{block_count - 1}`. Returns the block count.
pub fn check_block_count(g: &GgufFile, arch: &str) -> Result<Option<u64>, ConfigError> {
    let key = format!("{arch}.block_count");
    let Some(n) = g.get_u32(&key)? else {
        return Ok(None);
    };
    let n = u64::from(n);
    let blocks = block_indices(g);
    let contiguous = blocks.len() as u64 == n && blocks.last().copied() == n.checked_sub(1);
    if !contiguous {
        let found = match (blocks.first(), blocks.last()) {
            (None, _) | (_, None) => "the file has no block tensors (`blk.N.*`)".to_string(),
            (Some(a), Some(b)) if a == b => format!("the file has tensors of one block, blk.{a}"),
            (Some(a), Some(b)) => format!(
                "the file has tensors of {} blocks, blk.{a} to blk.{b}",
                blocks.len()
            ),
        };
        return Err(ConfigError::Mismatch {
            key,
            value: n.to_string(),
            found,
        });
    }
    Ok(Some(n))
}

#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub ffn_dim: usize,
    pub vocab: usize,
    /// The context length the model was trained with.
    pub context_train: usize,
    /// Dimensions of each head that RoPE rotates.
    pub rope_dims: usize,
    pub rope_base: f32,
    pub rms_eps: f32,
}

impl LlamaConfig {
    pub fn from_gguf(g: &GgufFile) -> Result<LlamaConfig, ConfigError> {
        let arch = g
            .get_str("general.architecture")?
            .ok_or_else(|| ConfigError::Missing("general.architecture".into()))?;
        if arch != "llama" {
            return Err(ConfigError::Architecture(arch.to_string()));
        }
        let req = |key: &str| -> Result<usize, ConfigError> {
            let key = format!("llama.{key}");
            let v = g
                .get_u32(&key)?
                .ok_or_else(|| ConfigError::Missing(key.clone()))?;
            Ok(v as usize)
        };
        let dim = req("embedding_length")?;
        let n_heads = req("attention.head_count")?;
        let n_kv_heads = match g.get_u32("llama.attention.head_count_kv")? {
            Some(v) => v as usize,
            None => n_heads,
        };
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: format!("llama.{key}"),
            message,
        };
        if n_heads == 0 || dim == 0 || dim % n_heads != 0 {
            return Err(invalid(
                "attention.head_count",
                format!("{n_heads} heads do not divide the embedding length {dim}"),
            ));
        }
        if n_kv_heads == 0 || n_heads % n_kv_heads != 0 {
            return Err(invalid(
                "attention.head_count_kv",
                format!("{n_kv_heads} KV heads do not divide {n_heads} heads"),
            ));
        }
        let head_dim = dim / n_heads;
        let rope_dims = match g.get_u32("llama.rope.dimension_count")? {
            Some(v) => v as usize,
            None => head_dim,
        };
        if rope_dims == 0 || rope_dims > head_dim || rope_dims % 2 != 0 {
            return Err(invalid(
                "rope.dimension_count",
                format!("{rope_dims} must be even and at most the head size {head_dim}"),
            ));
        }
        let vocab = match g.get_u32("llama.vocab_size")? {
            Some(v) => v as usize,
            None => g
                .tensor("token_embd.weight")
                .and_then(|t| t.dims.get(1))
                .map(|&v| v as usize)
                .ok_or_else(|| ConfigError::Missing("llama.vocab_size".into()))?,
        };
        let rope_base = g.get_f32("llama.rope.freq_base")?.unwrap_or(10000.0);
        let rms_eps = g
            .get_f32("llama.attention.layer_norm_rms_epsilon")?
            .unwrap_or(1e-5);
        if !(rope_base.is_finite() && rope_base > 0.0) {
            return Err(invalid(
                "rope.freq_base",
                format!("{rope_base} is not a positive number"),
            ));
        }
        if !(rms_eps.is_finite() && rms_eps >= 0.0) {
            return Err(invalid(
                "attention.layer_norm_rms_epsilon",
                format!("{rms_eps} is not a non-negative number"),
            ));
        }
        let n_layers = req("block_count")?;
        check_block_count(g, "llama")?;
        let cfg = LlamaConfig {
            dim,
            n_layers,
            n_heads,
            n_kv_heads,
            head_dim,
            ffn_dim: req("feed_forward_length")?,
            vocab,
            context_train: req("context_length")?,
            rope_dims,
            rope_base,
            rms_eps,
        };
        if cfg.n_layers == 0 || cfg.ffn_dim == 0 || cfg.vocab == 0 {
            return Err(ConfigError::Invalid {
                key: "llama.block_count".into(),
                message: "layers, feed-forward size and vocabulary must be non-zero".into(),
            });
        }
        cfg.check_tensors(g)?;
        Ok(cfg)
    }

    /// The sizes against the tensors that bound them (see the module docs).
    fn check_tensors(&self, g: &GgufFile) -> Result<(), ConfigError> {
        let (d, kv, f, v) = (
            self.dim as u64,
            self.kv_dim() as u64,
            self.ffn_dim as u64,
            self.vocab as u64,
        );
        let dims = |name: &str| -> Result<&[u64], ConfigError> {
            g.tensor(name)
                .map(|t| t.dims.as_slice())
                .ok_or_else(|| ConfigError::MissingTensor(name.into()))
        };
        let mismatch = |key: &str, value: u64, name: &str, found: &[u64], want: &[u64]| {
            ConfigError::Mismatch {
                key: format!("llama.{key}"),
                value: value.to_string(),
                found: format!("tensor `{name}` is {found:?}, not {want:?}"),
            }
        };
        let embd = dims("token_embd.weight")?;
        if embd.len() != 2 || embd[0] != d {
            return Err(mismatch(
                "embedding_length",
                d,
                "token_embd.weight",
                embd,
                &[d, v],
            ));
        }
        if embd[1] != v {
            return Err(mismatch(
                "vocab_size",
                v,
                "token_embd.weight",
                embd,
                &[d, v],
            ));
        }
        let k = dims("blk.0.attn_k.weight")?;
        if k != [d, kv] {
            return Err(mismatch(
                "attention.head_count_kv",
                self.n_kv_heads as u64,
                "blk.0.attn_k.weight",
                k,
                &[d, kv],
            ));
        }
        let gate = dims("blk.0.ffn_gate.weight")?;
        if gate != [d, f] {
            return Err(mismatch(
                "feed_forward_length",
                f,
                "blk.0.ffn_gate.weight",
                gate,
                &[d, f],
            ));
        }
        Ok(())
    }

    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::{GgmlType, GgufWriter, Value};
    use crate::synth::{self, Shape, SynthOptions};

    /// The tiny synthetic model (zeros for data) with metadata edited by `meta` (`None` drops
    /// a key) and only the tensors `keep` keeps.
    fn tiny(meta: impl Fn(&str, &Value) -> Option<Value>, keep: impl Fn(&str) -> bool) -> GgufFile {
        let plan = synth::plan(&SynthOptions {
            shape: Shape::Tiny,
            dtype: GgmlType::F16,
            seed: 0,
            threads: 1,
        })
        .unwrap();
        let mut w = GgufWriter::new();
        for (k, v) in plan.metadata() {
            if let Some(v) = meta(k, v) {
                w.add(k.clone(), v).unwrap();
            }
        }
        for t in plan.tensors().iter().filter(|t| keep(&t.name)) {
            w.add_tensor(t.name.clone(), &t.dims, t.ty).unwrap();
        }
        let tensors = w.tensors().to_vec();
        let mut stream = w.begin(Vec::new()).unwrap();
        for t in &tensors {
            stream.write_bytes(&vec![0; t.size_bytes as usize]).unwrap();
        }
        GgufFile::from_bytes(stream.finish().unwrap()).unwrap()
    }

    fn with(key: &'static str, value: u32) -> impl Fn(&str, &Value) -> Option<Value> {
        move |k, v| {
            Some(if k == key {
                Value::U32(value)
            } else {
                v.clone()
            })
        }
    }

    fn all(_: &str) -> bool {
        true
    }

    #[test]
    fn the_tiny_model_is_consistent() {
        let cfg = LlamaConfig::from_gguf(&tiny(|_, v| Some(v.clone()), all)).unwrap();
        assert_eq!((cfg.n_layers, cfg.dim, cfg.vocab), (2, 128, 512));
        assert_eq!(block_indices(&tiny(|_, v| Some(v.clone()), all)), [0, 1]);
    }

    /// A block count the tensors do not have is refused before anything is sized by it (the
    /// 2³²−1 one used to make `greta run` allocate gigabytes and abort).
    #[test]
    fn a_block_count_the_tensors_do_not_have_is_refused() {
        for n in [1_000_000, u32::MAX, 3, 1] {
            let e = LlamaConfig::from_gguf(&tiny(with("llama.block_count", n), all))
                .unwrap_err()
                .to_string();
            assert_eq!(
                e,
                format!(
                    "metadata `llama.block_count` = {n}, but the file has tensors of 2 blocks, \
                     blk.0 to blk.1"
                )
            );
        }
        // Blocks 0 and 2 only: two blocks, but not 0..2.
        let e = LlamaConfig::from_gguf(&tiny(
            |k, v| {
                Some(if k == "llama.block_count" {
                    Value::U32(2)
                } else {
                    v.clone()
                })
            },
            |n| !n.starts_with("blk.1."),
        ));
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("tensors of one block, blk.0"));
    }

    #[test]
    fn sizes_the_tensors_contradict_are_refused() {
        for (key, value, tensor) in [
            ("llama.embedding_length", 4096, "token_embd.weight"),
            ("llama.vocab_size", 1 << 30, "token_embd.weight"),
            (
                "llama.feed_forward_length",
                u32::MAX,
                "blk.0.ffn_gate.weight",
            ),
            ("llama.attention.head_count_kv", 4, "blk.0.attn_k.weight"),
        ] {
            let e = LlamaConfig::from_gguf(&tiny(with(key, value), all))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!(
                    "metadata `{key}` = {value}, but tensor `{tensor}` is ["
                )),
                "{e}"
            );
        }
        let e = LlamaConfig::from_gguf(&tiny(|_, v| Some(v.clone()), |n| n != "token_embd.weight"));
        assert_eq!(
            e.unwrap_err().to_string(),
            "tensor `token_embd.weight` is missing"
        );
        // Head counts that do not divide are refused as before.
        let e = LlamaConfig::from_gguf(&tiny(with("llama.attention.head_count", 3), all));
        assert!(e.unwrap_err().to_string().contains("3 heads do not divide"));
    }

    /// `greta model info` checks any architecture's `{arch}.block_count` this way.
    #[test]
    fn block_counts_are_checked_by_architecture_key() {
        let g = tiny(|_, v| Some(v.clone()), all);
        assert_eq!(check_block_count(&g, "llama").unwrap(), Some(2));
        assert_eq!(
            check_block_count(&g, "qwen2").unwrap(),
            None,
            "no qwen2.block_count"
        );
        let g = tiny(with("llama.block_count", 7), all);
        let e = check_block_count(&g, "llama").unwrap_err().to_string();
        assert!(e.starts_with("metadata `llama.block_count` = 7"), "{e}");
    }
}
