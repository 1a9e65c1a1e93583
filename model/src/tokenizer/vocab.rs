//! The vocabulary of a model as its GGUF file stores it (`tokenizer.ggml.*`), read with
//! llama.cpp's defaults (`llama_vocab::impl::load`), since llama.cpp is the reference
//! implementation of these files: a GGUF converted by llama.cpp's converter means what llama.cpp
//! makes of it.

use super::error::TokenizerError;
use crate::gguf::GgufFile;

/// The tokenization algorithm (`tokenizer.ggml.model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// `"llama"`: SentencePiece BPE over characters with scores, byte fallback (Llama 1/2,
    /// TinyLlama, Mistral v0.1, the llama2.c "stories" models).
    Spm,
    /// `"gpt2"`: byte-level BPE with ranked merges behind a regex pre-tokenizer (Llama 3).
    Bpe,
}

/// How a BPE vocabulary splits text into words before merging (`tokenizer.ggml.pre`). SPM
/// vocabularies have no pre-tokenizer ([`PreTokenizer::None`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizer {
    None,
    /// The Llama-3 regex, see `tokenizer/pretok.rs`. llama.cpp also uses it for "falcon3", "dbrx" and
    /// "smaug-bpe" vocabularies; greta accepts the names llama.cpp maps to its LLAMA3 type.
    Llama3,
}

/// A token's type (`tokenizer.ggml.token_type`, llama.cpp's `llama_token_type`). It decides how a
/// token decodes: control and unknown tokens decode to nothing, byte tokens to one raw byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    Undefined = 0,
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

impl TokenType {
    /// Values outside 0..=6 are `Undefined`, as in llama.cpp.
    pub fn from_i32(v: i32) -> TokenType {
        match v {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }
}

/// Everything the tokenizers need to know about a model's vocabulary. Build one by hand (tests,
/// other file formats) or with [`Vocab::from_gguf`]; [`Tokenizer::new`](super::Tokenizer::new)
/// validates it.
#[derive(Debug, Clone)]
pub struct Vocab {
    pub model: Model,
    pub pre: PreTokenizer,
    /// Token texts, indexed by id. SPM texts use U+2581 '▁' for spaces and `<0xXX>` for byte
    /// tokens; BPE texts use the GPT-2 byte-to-unicode alphabet (space is 'Ġ').
    pub tokens: Vec<String>,
    /// SPM merge priorities (higher merges first); unused by BPE.
    pub scores: Vec<f32>,
    pub token_types: Vec<TokenType>,
    /// BPE merges in rank order (rank 0 merges first); empty for SPM.
    pub merges: Vec<(String, String)>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// End of turn (`tokenizer.ggml.eot_token_id`), e.g. Llama-3's `<|eot_id|>`; generation stops
    /// there too.
    pub eot: Option<u32>,
    pub unk: Option<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
    /// SPM: encode `text` as `" " + text` (SentencePiece's dummy prefix), and strip that space
    /// again when decoding.
    pub add_space_prefix: bool,
    /// BPE: a pre-tokenized word that is itself a token is emitted whole, without merging
    /// (llama.cpp sets this for Llama-3, whose merges cannot build every token).
    pub ignore_merges: bool,
}

const KEY_MODEL: &str = "tokenizer.ggml.model";
const KEY_PRE: &str = "tokenizer.ggml.pre";
const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
const KEY_SCORES: &str = "tokenizer.ggml.scores";
const KEY_TYPES: &str = "tokenizer.ggml.token_type";
const KEY_MERGES: &str = "tokenizer.ggml.merges";

impl Vocab {
    /// Reads `tokenizer.ggml.*` from a GGUF file.
    ///
    /// Defaults are llama.cpp's, so a file means here what it means there:
    /// - `"llama"` (SPM): BOS 1, EOS 2, UNK 0 unless the file names others; `add_bos` true,
    ///   `add_eos` false, `add_space_prefix` true.
    /// - `"gpt2"` (BPE): no BOS/EOS/UNK unless named (llama.cpp's fallback of id 11 is a relic of
    ///   GPT-2-era files and would make BOS a random word); `add_space_prefix` false;
    ///   `add_bos` false except for the Llama-3 pre-tokenizer, where it is true (Llama-3 GGUFs
    ///   also say so in `add_bos_token`).
    /// - `tokenizer.ggml.add_bos_token`, `add_eos_token` and `add_space_prefix` override these.
    /// - Missing scores are 0 and missing token types NORMAL.
    ///
    /// Where llama.cpp only warns and carries on with something it cannot use (a special id out of
    /// range, arrays shorter than the token list, which it would read past), this returns an
    /// error; see [`Tokenizer::new`](super::Tokenizer::new) for the rest of the validation.
    pub fn from_gguf(file: &GgufFile) -> Result<Vocab, TokenizerError> {
        let model_name = file
            .get_str(KEY_MODEL)?
            .ok_or(TokenizerError::MissingKey(KEY_MODEL))?;
        let model = match model_name {
            "llama" => Model::Spm,
            "gpt2" => Model::Bpe,
            other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
        };

        let tokens: Vec<String> = file
            .get_str_array(KEY_TOKENS)?
            .ok_or(TokenizerError::MissingKey(KEY_TOKENS))?
            .into_iter()
            .map(str::to_string)
            .collect();
        let n = tokens.len();
        let check_len = |key: &'static str, got: usize| {
            if got == n {
                Ok(())
            } else {
                Err(TokenizerError::LengthMismatch {
                    key,
                    got,
                    expected: n,
                })
            }
        };
        let scores = match file.get_f32_array(KEY_SCORES)? {
            Some(s) => {
                check_len(KEY_SCORES, s.len())?;
                s
            }
            None => vec![0.0; n],
        };
        let token_types = match file.get_i32_array(KEY_TYPES)? {
            Some(t) => {
                check_len(KEY_TYPES, t.len())?;
                t.into_iter().map(TokenType::from_i32).collect()
            }
            None => vec![TokenType::Normal; n],
        };

        let (pre, merges) = match model {
            Model::Spm => (PreTokenizer::None, Vec::new()),
            Model::Bpe => {
                let pre = match file.get_str(KEY_PRE)? {
                    Some(
                        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "dbrx" | "smaug-bpe",
                    ) => PreTokenizer::Llama3,
                    other => {
                        return Err(TokenizerError::UnsupportedPreTokenizer(
                            other.map(str::to_string),
                        ))
                    }
                };
                let merges = file
                    .get_str_array(KEY_MERGES)?
                    .ok_or(TokenizerError::MissingKey(KEY_MERGES))?
                    .into_iter()
                    .enumerate()
                    .map(|(index, m)| parse_merge(index, m))
                    .collect::<Result<Vec<_>, _>>()?;
                (pre, merges)
            }
        };

        // Special ids: llama.cpp's per-model defaults, then the file's values.
        let (mut bos, mut eos, mut unk) = match model {
            Model::Spm => (Some(1), Some(2), Some(0)),
            Model::Bpe => (None, None, None),
        };
        let mut eot = None;
        for (key, slot, what) in [
            ("tokenizer.ggml.bos_token_id", &mut bos, "BOS"),
            ("tokenizer.ggml.eos_token_id", &mut eos, "EOS"),
            ("tokenizer.ggml.unknown_token_id", &mut unk, "unknown"),
            ("tokenizer.ggml.eot_token_id", &mut eot, "EOT"),
        ] {
            if let Some(id) = file.get_u32(key)? {
                if id as usize >= n {
                    return Err(TokenizerError::IdOutOfRange {
                        what,
                        id,
                        n_vocab: n,
                    });
                }
                *slot = Some(id);
            }
        }
        // A default id the vocabulary does not have is no token at all (tiny test vocabularies).
        for slot in [&mut bos, &mut eos, &mut unk] {
            if slot.is_some_and(|id| id as usize >= n) {
                *slot = None;
            }
        }

        let (mut add_bos, mut add_eos, mut add_space_prefix) = match model {
            Model::Spm => (true, false, true),
            Model::Bpe => (pre == PreTokenizer::Llama3, false, false),
        };
        if let Some(v) = file.get_bool("tokenizer.ggml.add_bos_token")? {
            add_bos = v;
        }
        if let Some(v) = file.get_bool("tokenizer.ggml.add_eos_token")? {
            add_eos = v;
        }
        if let Some(v) = file.get_bool("tokenizer.ggml.add_space_prefix")? {
            add_space_prefix = v;
        }

        Ok(Vocab {
            model,
            pre,
            tokens,
            scores,
            token_types,
            merges,
            bos,
            eos,
            eot,
            unk,
            add_bos,
            add_eos,
            add_space_prefix,
            ignore_merges: pre == PreTokenizer::Llama3,
        })
    }
}

/// Splits a merge `"left right"` at the first space after the first byte, as llama.cpp does
/// (`word.find(' ', 1)`), so that a left side that is itself a space still parses.
fn parse_merge(index: usize, m: &str) -> Result<(String, String), TokenizerError> {
    let bad = || TokenizerError::BadMerge {
        index,
        text: m.to_string(),
    };
    // Bytes, not chars: the first char may be multi-byte, and ' ' is never inside one.
    let pos = m
        .bytes()
        .skip(1)
        .position(|b| b == b' ')
        .map(|p| p + 1)
        .ok_or_else(bad)?;
    let (left, right) = (&m[..pos], &m[pos + 1..]);
    if left.is_empty() || right.is_empty() {
        return Err(bad());
    }
    Ok((left.to_string(), right.to_string()))
}

#[cfg(test)]
mod tests {
    use super::parse_merge;

    #[test]
    fn merges_split_at_the_first_space_after_the_first_byte() {
        assert_eq!(parse_merge(0, "Ġ t").unwrap(), ("Ġ".into(), "t".into()));
        assert_eq!(parse_merge(0, "  x").unwrap(), (" ".into(), "x".into()));
        assert_eq!(parse_merge(0, "ĠĠ ĠĠ").unwrap(), ("ĠĠ".into(), "ĠĠ".into()));
        assert!(parse_merge(3, "ab").is_err());
        assert!(parse_merge(3, "a ").is_err());
    }
}
