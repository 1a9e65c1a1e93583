//! The `gguf_run` target: what `greta run` does with a model file before it needs a device, in
//! its order (src/cmd/run.rs, then `Model::load` in model/src/llama/forward.rs):
//!
//! 1. `GgufFile` (open and validate);
//! 2. `Tokenizer::from_gguf`, the prompt encoded with BOS, its ids streamed back to text;
//! 3. `LlamaConfig::from_gguf` (metadata against itself and against the tensors), the context
//!    `greta run` picks by default;
//! 4. `weights::check` (every tensor the forward pass reads: present, shaped, typed), and
//!    `check_layout` as `greta model info` does;
//! 5. the activation type and the kernel plan (which kernels at which configurations) for the
//!    CPU interpreter's target (gfx942) and for sm_90.
//!
//! Not the forward pass, nor the weights' upload or the memory plan (private to `Model::load`).

use greta_dsl::Target;
use greta_model::gguf::GgufFile;
use greta_model::llama::{self, config, weights, Attention, LlamaConfig};
use greta_model::tokenizer::{Decoder, Tokenizer};

/// The prompt `greta run` gets in the README.
pub const PROMPT: &str = "Once upon a time";

pub fn exercise(bytes: &[u8]) {
    let Ok(f) = GgufFile::from_bytes(bytes.to_vec()) else {
        return;
    };
    prelude(&f);
}

/// Steps 2 to 5 on an opened file.
pub fn prelude(f: &GgufFile) {
    if let Ok(t) = Tokenizer::from_gguf(f) {
        for text in [PROMPT, "", " ", "<s>héllo 😀\n"] {
            let ids = t.encode(text, true);
            crate::tokenizer::check_ids(&t, &ids);
            let mut d = Decoder::new();
            let streamed: String = ids.iter().map(|&id| d.push(&t, id)).collect();
            assert_eq!(streamed + &d.finish(), t.decode(&ids));
            let _ = ids.iter().any(|&id| t.is_eog(id));
        }
    }

    let _ = config::block_indices(f);
    let _ = config::check_block_count(f, "llama");
    let cfg = match LlamaConfig::from_gguf(f) {
        Ok(cfg) => cfg,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    // Everything the configuration promises (model/src/llama/config.rs).
    assert!(cfg.n_layers > 0 && cfg.ffn_dim > 0 && cfg.vocab > 0 && cfg.dim > 0);
    assert_eq!(cfg.dim % cfg.n_heads, 0);
    assert_eq!(cfg.n_heads % cfg.n_kv_heads, 0);
    assert!(cfg.rope_dims > 0 && cfg.rope_dims <= cfg.head_dim && cfg.rope_dims % 2 == 0);
    let _ = (cfg.q_dim(), cfg.kv_dim(), cfg.context_train.min(4096));

    let layout = weights::check_layout(f, &cfg);
    let checked = weights::check(f, &cfg);
    if let (Ok(a), Ok(b)) = (&layout, &checked) {
        assert_eq!(a, b);
    }
    if checked.is_err() {
        return;
    }
    let act = llama::default_activations(f);
    for target in [&Target::GFX942, &Target::SM_90] {
        let plan = llama::plan(f, &cfg, act, Attention::V4, target);
        assert!(!plan.is_empty());
    }
}
