//! Hyper-parameters of a Llama-family model, read from GGUF metadata and checked for
//! consistency before anything is allocated.

use crate::gguf::GgufFile;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unsupported architecture `{0}`: greta runs `llama` models")]
    Architecture(String),
    #[error("the model has no `{0}` metadata")]
    Missing(String),
    #[error("metadata `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
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
        let cfg = LlamaConfig {
            dim,
            n_layers: req("block_count")?,
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
        Ok(cfg)
    }

    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }
}
