//! What greta's fuzz targets run, kept out of the targets themselves so that `write-seeds` and
//! the tests of this crate (`cargo test` in `fuzz/`, no libFuzzer) replay inputs through exactly
//! the same code.
//!
//! - [`gguf`]: the GGUF reader and everything a caller may touch on a file it accepted;
//! - [`run`]: what `greta run` does with a file before it needs a device;
//! - [`tokenizer`]: encode/decode with the real stories260K vocabulary;
//! - [`vocab`]: vocabularies built from fuzzed data;
//! - [`mutator`]: a GGUF-aware mutator for the two GGUF targets;
//! - [`seeds`]: the seed corpora.
//!
//! Every property asserted here is one the library documents; a failed assertion is a bug
//! report, as is a panic, a hang or an allocation beyond the input's size.

pub mod gguf;
pub mod mutator;
pub mod run;
pub mod seeds;
pub mod tokenizer;
pub mod vocab;

#[cfg(test)]
mod tests {
    /// Every seed runs through its target without a failure (as libFuzzer's first pass does).
    #[test]
    fn the_seeds_pass_their_targets() {
        for (name, bytes) in crate::seeds::gguf_seeds() {
            assert!(
                greta_model::gguf::GgufFile::from_bytes(bytes.clone()).is_ok(),
                "seed {name} does not open"
            );
            crate::gguf::exercise(&bytes);
            crate::run::exercise(&bytes);
        }
        for (_, bytes) in crate::seeds::tokenizer_seeds() {
            crate::tokenizer::exercise(&bytes);
        }
        let vocab = crate::seeds::vocab_seeds();
        assert!(vocab.iter().any(|(n, _)| n.starts_with("ok-Spm")));
        assert!(vocab.iter().any(|(n, _)| n.starts_with("ok-Bpe")));
        for (_, bytes) in vocab {
            crate::vocab::exercise(&bytes);
        }
    }

    /// The minimised inputs of the bugs fuzzing found (`regressions/<target>/`) pass their
    /// targets now; the library's own regression tests are built from the same bytes.
    #[test]
    fn the_regressions_pass_their_targets() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
        let mut n = 0;
        for target in crate::seeds::TARGETS {
            let Ok(entries) = std::fs::read_dir(dir.join(target)) else {
                continue;
            };
            for entry in entries {
                let bytes = std::fs::read(entry.unwrap().path()).unwrap();
                match *target {
                    "gguf" => crate::gguf::exercise(&bytes),
                    "gguf_run" => crate::run::exercise(&bytes),
                    "tokenizer" => crate::tokenizer::exercise(&bytes),
                    _ => crate::vocab::exercise(&bytes),
                }
                n += 1;
            }
        }
        assert!(n > 0, "no regression inputs under {}", dir.display());
    }

    /// The mini models are what `greta run` accepts: configuration, tensors and tokenizer.
    #[test]
    fn the_mini_models_are_runnable() {
        for (name, bytes) in crate::seeds::gguf_seeds() {
            if !name.starts_with("mini-") {
                continue;
            }
            let f = greta_model::gguf::GgufFile::from_bytes(bytes).unwrap();
            let cfg = greta_model::llama::LlamaConfig::from_gguf(&f)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            greta_model::llama::weights::check(&f, &cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
            greta_model::tokenizer::Tokenizer::from_gguf(&f)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
