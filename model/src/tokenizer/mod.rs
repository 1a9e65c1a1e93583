//! Tokenizers built from the vocabulary in a GGUF file, behaving like llama.cpp (the reference
//! implementation of these files): the same ids for the same text, the same text for the same ids.
//!
//! - [`Vocab`]: `tokenizer.ggml.*` as read, with llama.cpp's defaults ([`Vocab::from_gguf`]).
//! - [`Tokenizer`]: validates a vocabulary once, then [`encode`](Tokenizer::encode)s and
//!   [`decode`](Tokenizer::decode)s. Two algorithms:
//!   - SentencePiece-style BPE (`"llama"`: Llama 1/2, the llama2.c stories models), see `spm.rs`;
//!   - byte-level BPE (`"gpt2"` with the Llama-3 pre-tokenizer), see `bpe.rs` and `pretok.rs`.
//! - [`Decoder`]: streaming detokenization for printing while generating.
//!
//! Special tokens in the input text: by default (`encode`) text like `<s>` or `<|eot_id|>` is
//! plain text and tokenizes as its characters — a prompt cannot inject control tokens. As in
//! llama.cpp (and Hugging Face tokenizers), USER_DEFINED tokens are the exception: they are always
//! matched in the text first. [`Tokenizer::encode_with`] with `parse_special` also matches control
//! and unknown tokens (for chat templates).

mod bpe;
mod decode;
mod error;
mod pretok;
mod spm;
mod symbols;
mod vocab;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::ops::Range;

pub use decode::Decoder;
pub use error::TokenizerError;
pub use vocab::{Model, PreTokenizer, TokenType, Vocab};

use crate::gguf::GgufFile;

/// Texts that llama.cpp treats as end-of-generation tokens whatever the file says (its
/// `special_eog_ids`); it also forces them to CONTROL, so they never print.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
];

/// A validated vocabulary with the lookup tables tokenizing needs. Immutable; share it freely.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    vocab: Vocab,
    token_to_id: HashMap<String, u32>,
    /// Each token's decoded bytes (llama.cpp's `cache_token_to_piece`, for `special = false`).
    pieces: Vec<Vec<u8>>,
    /// SPM: the `<0xXX>` token of each byte.
    byte_tokens: [Option<u32>; 256],
    /// BPE: merge `(left, right)` → rank; the first of duplicate merges wins, as in llama.cpp.
    bpe_ranks: HashMap<(String, String), u32>,
    /// Tokens matched in raw text before tokenizing, longest text first: user-defined ones always,
    /// control and unknown ones too with `parse_special`.
    special_tokens: Vec<u32>,
    eog: Vec<u32>,
}

/// A run of the input: raw text (a byte range) or a token matched as a whole.
enum Fragment {
    Text(Range<usize>),
    Token(u32),
}

impl Tokenizer {
    /// Validates `vocab` and builds the lookup tables.
    ///
    /// Rejected (each with a [`TokenizerError`] naming the problem): an empty vocabulary; scores
    /// or types not one per token; NaN scores; duplicate token texts (llama.cpp aborts on those
    /// too: text → id must be a function); special ids out of range; `add_bos`/`add_eos` without
    /// the token; SPM byte tokens whose text is not `<0xXX>`; an SPM vocabulary with neither a
    /// byte token for every byte nor an unknown token; a BPE vocabulary without merges or with a
    /// pre-tokenizer other than Llama-3's.
    ///
    /// Empty token texts are kept (ids stay aligned) but can never be produced by encoding.
    pub fn new(mut vocab: Vocab) -> Result<Tokenizer, TokenizerError> {
        let n = vocab.tokens.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocab);
        }
        for (key, got) in [
            ("tokenizer.ggml.scores", vocab.scores.len()),
            ("tokenizer.ggml.token_type", vocab.token_types.len()),
        ] {
            if got != n {
                return Err(TokenizerError::LengthMismatch {
                    key,
                    got,
                    expected: n,
                });
            }
        }
        for (what, id) in [
            ("BOS", vocab.bos),
            ("EOS", vocab.eos),
            ("EOT", vocab.eot),
            ("unknown", vocab.unk),
        ] {
            if let Some(id) = id.filter(|&id| id as usize >= n) {
                return Err(TokenizerError::IdOutOfRange {
                    what,
                    id,
                    n_vocab: n,
                });
            }
        }
        if vocab.add_bos && vocab.bos.is_none() {
            return Err(TokenizerError::MissingSpecial("bos"));
        }
        if vocab.add_eos && vocab.eos.is_none() {
            return Err(TokenizerError::MissingSpecial("eos"));
        }

        let mut token_to_id = HashMap::with_capacity(n);
        for (i, text) in vocab.tokens.iter().enumerate() {
            let id = i as u32;
            if vocab.scores[i].is_nan() {
                return Err(TokenizerError::NanScore {
                    id,
                    text: text.clone(),
                });
            }
            if text.is_empty() {
                continue;
            }
            if let Some(first) = token_to_id.insert(text.clone(), id) {
                return Err(TokenizerError::DuplicateToken {
                    text: text.clone(),
                    first,
                    second: id,
                });
            }
        }

        let mut eog: Vec<u32> = vocab.eos.into_iter().chain(vocab.eot).collect();
        for text in EOG_TEXTS {
            if let Some(&id) = token_to_id.get(*text) {
                vocab.token_types[id as usize] = TokenType::Control;
                eog.push(id);
            }
        }
        eog.sort_unstable();
        eog.dedup();

        let mut byte_tokens = [None; 256];
        let mut bpe_ranks = HashMap::new();
        match vocab.model {
            Model::Spm => {
                for (i, text) in vocab.tokens.iter().enumerate() {
                    if vocab.token_types[i] == TokenType::Byte
                        && decode::parse_byte_token(text).is_none()
                    {
                        return Err(TokenizerError::BadByteToken {
                            id: i as u32,
                            text: text.clone(),
                        });
                    }
                }
                // llama.cpp's byte_to_token: the `<0xXX>` token (upper-case hex, whatever its
                // type), else the byte as a one-char token (ASCII only: other single bytes are
                // not UTF-8 strings).
                for b in 0..=255u8 {
                    let hex = format!("<0x{b:02X}>");
                    byte_tokens[b as usize] = token_to_id.get(&hex).copied().or_else(|| {
                        b.is_ascii()
                            .then(|| token_to_id.get(&char::from(b).to_string()).copied())
                            .flatten()
                    });
                    if byte_tokens[b as usize].is_none() && vocab.unk.is_none() {
                        return Err(TokenizerError::NoByteFallback(b));
                    }
                }
            }
            Model::Bpe => {
                if vocab.pre != PreTokenizer::Llama3 {
                    return Err(TokenizerError::UnsupportedPreTokenizer(Some(format!(
                        "{:?}",
                        vocab.pre
                    ))));
                }
                if vocab.merges.is_empty() {
                    return Err(TokenizerError::NoMerges);
                }
                for (rank, (l, r)) in vocab.merges.iter().enumerate() {
                    bpe_ranks
                        .entry((l.clone(), r.clone()))
                        .or_insert(rank as u32);
                }
            }
        }

        let pieces = (0..n)
            .map(|i| decode::piece(vocab.model, vocab.token_types[i], &vocab.tokens[i]))
            .collect();

        let mut special_tokens: Vec<u32> = (0..n as u32)
            .filter(|&id| {
                matches!(
                    vocab.token_types[id as usize],
                    TokenType::Control | TokenType::UserDefined | TokenType::Unknown
                ) && !vocab.tokens[id as usize].is_empty()
            })
            .collect();
        special_tokens.sort_by_key(|&id| std::cmp::Reverse(vocab.tokens[id as usize].len()));

        Ok(Tokenizer {
            vocab,
            token_to_id,
            pieces,
            byte_tokens,
            bpe_ranks,
            special_tokens,
            eog,
        })
    }

    /// Reads the vocabulary of a GGUF file ([`Vocab::from_gguf`]) and builds its tokenizer.
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer, TokenizerError> {
        Tokenizer::new(Vocab::from_gguf(file)?)
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.tokens.len()
    }

    pub fn bos(&self) -> Option<u32> {
        self.vocab.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.vocab.eos
    }

    /// Whether generation ends at `id`: EOS, EOT, and the end-of-turn tokens llama.cpp
    /// recognises by text (`<|eot_id|>`, `<|im_end|>`, `<|endoftext|>`, ...).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// The token's text as stored in the vocabulary ('▁' for spaces in SPM, 'Ġ' in BPE).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.vocab.tokens.get(id as usize).map(String::as_str)
    }

    /// The id of the token whose text is exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }

    /// The bytes token `id` decodes to (empty for control tokens and ids out of range); not
    /// always UTF-8 on its own, see [`Decoder`].
    pub fn piece(&self, id: u32) -> &[u8] {
        self.pieces.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// Tokenizes `text`; with `add_special`, adds BOS and/or EOS as the vocabulary says
    /// (`add_bos`/`add_eos`), as llama.cpp's `llama_tokenize(.., add_special, parse_special =
    /// false)`. Control tokens written in the text are not recognised (see the module docs).
    pub fn encode(&self, text: &str, add_special: bool) -> Vec<u32> {
        self.encode_with(text, add_special, false)
    }

    /// [`encode`](Self::encode), optionally also matching control and unknown tokens written in
    /// the text (`parse_special`), for prompts built from chat templates.
    pub fn encode_with(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        let v = &self.vocab;
        if add_special && v.add_bos {
            out.extend(v.bos);
        }
        let fragments = self.partition(text, parse_special);
        match v.model {
            Model::Spm => {
                let lookup = |s: &str| {
                    self.token_to_id
                        .get(s)
                        .map(|&id| (id, v.scores[id as usize]))
                };
                let byte_token = |b: u8| self.byte_tokens[b as usize];
                // The dummy prefix goes before the text and after every matched token, as
                // llama.cpp's `is_prev_special`.
                let mut after_special = true;
                for f in fragments {
                    match f {
                        Fragment::Text(r) => {
                            let mut escaped = String::with_capacity(r.len() + 3);
                            if v.add_space_prefix && after_special {
                                escaped.push(spm::SPACE);
                            }
                            escaped.extend(text[r].chars().map(|c| {
                                if c == ' ' {
                                    spm::SPACE
                                } else {
                                    c
                                }
                            }));
                            spm::encode(&escaped, &lookup, &byte_token, v.unk, &mut out);
                            after_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            after_special = true;
                        }
                    }
                }
            }
            Model::Bpe => {
                let lookup = |s: &str| self.token_to_id.get(s).copied();
                for f in fragments {
                    match f {
                        Fragment::Text(r) => {
                            let part = &text[r];
                            for w in pretok::split_llama3(part) {
                                let mapped = bpe::encode_bytes(&part[w]);
                                bpe::merge_word(
                                    &mapped,
                                    v.ignore_merges,
                                    &self.bpe_ranks,
                                    &lookup,
                                    &mut out,
                                );
                            }
                        }
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }
        }
        if add_special && v.add_eos {
            out.extend(v.eos);
        }
        out
    }

    /// Splits `text` at occurrences of special tokens, longest token first, as llama.cpp's
    /// `tokenizer_st_partition`.
    fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        let mut frags = if text.is_empty() {
            Vec::new()
        } else {
            vec![Fragment::Text(0..text.len())]
        };
        for &id in &self.special_tokens {
            let ty = self.vocab.token_types[id as usize];
            if !parse_special && ty != TokenType::UserDefined {
                continue;
            }
            let needle = self.vocab.tokens[id as usize].as_str();
            let mut next = Vec::with_capacity(frags.len());
            for f in frags {
                let Fragment::Text(r) = f else {
                    next.push(f);
                    continue;
                };
                let mut start = r.start;
                while let Some(p) = text[start..r.end].find(needle) {
                    let m = start + p;
                    if m > start {
                        next.push(Fragment::Text(start..m));
                    }
                    next.push(Fragment::Token(id));
                    start = m + needle.len();
                }
                if start < r.end {
                    next.push(Fragment::Text(start..r.end));
                }
            }
            frags = next;
        }
        frags
    }

    /// Detokenizes `ids` into text.
    ///
    /// The result is llama.cpp's `llama_detokenize(ids, remove_special = false, unparse_special =
    /// false)` applied to `ids` without their control tokens: pieces as [`Tokenizer::piece`], and
    /// with an SPM dummy prefix (`add_space_prefix`), one leading space removed from the first
    /// piece that has text. (llama.cpp spends that removal on the first token even when it is BOS,
    /// which prints nothing, and so returns " Once upon" for `[BOS, ▁Once, ▁upon]`; here BOS is
    /// invisible, so `decode(encode(text, true)) == text`.) Invalid UTF-8 (byte tokens in an
    /// order no encoder produces) becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut d = Decoder::new();
        let mut s = String::new();
        for &id in ids {
            s.push_str(&d.push(self, id));
        }
        s.push_str(&d.finish());
        s
    }
}
