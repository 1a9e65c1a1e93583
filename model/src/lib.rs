//! greta-model: running Llama-family models from GGUF files on greta's kernels.
//!
//! - [`gguf`]: the GGUF reader (memory-mapped, validated before use) and writer;
//! - [`tokenizer`]: SentencePiece-style (`llama`) and GPT-2-style BPE (`gpt2`) tokenizers built
//!   from the vocabulary in the GGUF file;
//! - [`synth`]: random-weight GGUF files with the exact layout of real Llama sizes;
//! - [`llama`]: the Llama forward pass on greta's kernels, and a plain f64 reference;
//! - [`sampler`] and [`generate`]: choosing tokens and the generation loop.

pub mod generate;
pub mod gguf;
pub mod llama;
pub mod sampler;
pub mod synth;
pub mod tokenizer;
pub mod verify;
