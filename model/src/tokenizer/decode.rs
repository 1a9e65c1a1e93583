//! Token ids back to text: each token's piece (its bytes), and a streaming [`Decoder`] that turns
//! pieces into text as soon as the UTF-8 is complete.

use super::vocab::{Model, TokenType};
use super::{bpe, spm, Tokenizer};

/// The bytes a token decodes to, as llama.cpp's `token_to_piece` with `special = false` — what
/// generation prints:
/// - control and unknown tokens (BOS, EOS, `<unk>`, Llama-3's `<|eot_id|>`) decode to nothing;
///   so do UNUSED and UNDEFINED tokens, and BYTE tokens of a BPE vocabulary, which llama.cpp also
///   suppresses;
/// - user-defined tokens decode to their text as written;
/// - SPM: normal tokens with '▁' turned back into ' '; byte tokens `<0xXX>` to the one byte;
/// - BPE: normal tokens through the inverse of GPT-2's byte alphabet. A char outside that
///   alphabet (no real vocabulary has one) is kept as its own UTF-8, where llama.cpp would write
///   `[UNK_BYTE_0x..]`.
pub(crate) fn piece(model: Model, ty: TokenType, text: &str) -> Vec<u8> {
    match (ty, model) {
        (TokenType::UserDefined, _) => text.as_bytes().to_vec(),
        (TokenType::Normal, Model::Spm) => text.replace(spm::SPACE, " ").into_bytes(),
        (TokenType::Byte, Model::Spm) => {
            vec![parse_byte_token(text).expect("validated in Tokenizer::new")]
        }
        (TokenType::Normal, Model::Bpe) => {
            let mut out = Vec::with_capacity(text.len());
            for c in text.chars() {
                match bpe::char_to_byte(c) {
                    Some(b) => out.push(b),
                    None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

/// The byte of an SPM byte token's text `<0xXX>` (hex digits of either case).
pub(crate) fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// Decodes a stream of token ids into text, one id at a time, for printing while generating.
///
/// Byte-fallback tokens split a character over several tokens (an emoji is four `<0xXX>` tokens;
/// so is any character of a BPE token that ends mid-character), so a token's piece is not always
/// printable text. [`Decoder::push`] returns the text completed so far and holds back a trailing
/// incomplete UTF-8 sequence until the tokens completing it arrive. Bytes that can never become
/// valid UTF-8 are replaced by U+FFFD, exactly as [`String::from_utf8_lossy`] would on the whole
/// output, so the concatenation of everything returned equals [`Tokenizer::decode`] of the same
/// ids.
///
/// The decoder holds no reference to the [`Tokenizer`] (each call takes it), so a generation loop
/// can keep both in a struct it also borrows mutably.
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    pending: Vec<u8>,
    /// Whether the next non-empty piece is the first of the text (its dummy-prefix space is
    /// dropped when the vocabulary adds one).
    at_start: bool,
}

impl Decoder {
    /// A decoder for a token sequence from its start — the prompt's ids included, or a
    /// generation whose text was not shown yet. The first piece loses the space that the SPM
    /// dummy prefix put before the text, so that `decode(encode(text)) == text`.
    pub fn new() -> Decoder {
        Decoder {
            pending: Vec::new(),
            at_start: true,
        }
    }

    /// A decoder for tokens that continue text already shown (e.g. the generated tokens after
    /// printing the prompt yourself): no space is stripped, since "▁there" after "time" must
    /// print " there".
    pub fn continuing() -> Decoder {
        Decoder {
            pending: Vec::new(),
            at_start: false,
        }
    }

    /// Adds one token; returns the text completed by it (often the whole piece, possibly empty).
    /// Ids outside the vocabulary decode to nothing.
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> String {
        let mut piece = tokenizer.piece(id);
        if piece.is_empty() {
            return String::new();
        }
        if self.at_start {
            self.at_start = false;
            if tokenizer.vocab().add_space_prefix {
                piece = piece.strip_prefix(b" ").unwrap_or(piece);
            }
        }
        self.pending.extend_from_slice(piece);
        self.take_complete()
    }

    /// Ends the stream: returns what is held back (an incomplete UTF-8 sequence, as U+FFFD).
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }

    /// Whether bytes are held back waiting for the rest of a character.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn take_complete(&mut self) -> String {
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(
                        std::str::from_utf8(&self.pending[..valid]).expect("valid prefix"),
                    );
                    match e.error_len() {
                        // An invalid sequence: replace it as from_utf8_lossy does, go on after it.
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + n);
                        }
                        // A sequence the next bytes may complete: hold it back.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                    }
                }
            }
        }
    }
}
