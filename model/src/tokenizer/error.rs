//! The one error type of the tokenizers: a vocabulary that cannot be read from a GGUF file, or one
//! that cannot be tokenized with. Each message names the GGUF key or token at fault, so that a user
//! with a broken or unsupported model file learns what is wrong without reading this code.

use crate::gguf::GgufError;

/// Why a [`Vocab`](super::Vocab) could not be read or a [`Tokenizer`](super::Tokenizer) built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// Reading a metadata value failed (wrong type, out of range); the GGUF error names the file.
    #[error(transparent)]
    Gguf(#[from] GgufError),

    #[error("the GGUF file has no `{0}`: it carries no tokenizer greta can build")]
    MissingKey(&'static str),

    #[error(
        "unsupported tokenizer model {0:?} (`tokenizer.ggml.model`): greta implements \"llama\" \
         (SentencePiece) and \"gpt2\" (byte-level BPE)"
    )]
    UnsupportedModel(String),

    #[error(
        "unsupported BPE pre-tokenizer {} (`tokenizer.ggml.pre`): greta implements the Llama-3 \
         one (\"llama3\", \"llama-v3\", \"llama-bpe\", \"falcon3\")",
        match .0 { Some(p) => format!("{p:?}"), None => "(missing)".to_string() }
    )]
    UnsupportedPreTokenizer(Option<String>),

    #[error("the vocabulary is empty (`tokenizer.ggml.tokens` has no entries)")]
    EmptyVocab,

    #[error("`{key}` has {got} entries but `tokenizer.ggml.tokens` has {expected}")]
    LengthMismatch {
        key: &'static str,
        got: usize,
        expected: usize,
    },

    #[error(
        "token {second} ({text:?}) duplicates token {first}; llama.cpp refuses such a \
         vocabulary too, since text → id would be ambiguous"
    )]
    DuplicateToken {
        text: String,
        first: u32,
        second: u32,
    },

    #[error("{what} token id {id} is out of range: the vocabulary has {n_vocab} tokens")]
    IdOutOfRange {
        what: &'static str,
        id: u32,
        n_vocab: usize,
    },

    #[error("score of token {id} ({text:?}) is NaN")]
    NanScore { id: u32, text: String },

    #[error("token {id} has type BYTE but its text {text:?} is not of the form <0xXX>")]
    BadByteToken { id: u32, text: String },

    #[error("merge {index} ({text:?}) is not two tokens separated by a space")]
    BadMerge { index: usize, text: String },

    #[error("a BPE vocabulary needs merges (`tokenizer.ggml.merges`), and this one has none")]
    NoMerges,

    #[error(
        "the vocabulary says to add a {0} token but has none (no `tokenizer.ggml.{0}_token_id`)"
    )]
    MissingSpecial(&'static str),

    #[error(
        "the SentencePiece vocabulary cannot encode byte 0x{0:02X}: it has no <0x{0:02X}> token \
         and no unknown token to fall back to"
    )]
    NoByteFallback(u8),
}
