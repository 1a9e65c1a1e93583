//! The `tokenizer` target: the real stories260K vocabulary (SentencePiece, 512 tokens), any text
//! through `encode_with`, any ids (in and out of range) through `decode` and the streaming
//! `Decoder`.
//!
//! Input: byte 0 holds flags (bit 0 `add_special`, bit 1 `parse_special`, bit 2 ids reduced
//! modulo the vocabulary size + 16 so that most are in range); the rest is the text (lossy
//! UTF-8) and, read as little-endian u32s, the ids.
//!
//! Asserted, as the tokenizer documents (model/src/tokenizer/mod.rs, decode.rs, and the round
//! trips of its tests):
//! - encoding yields ids of the vocabulary, BOS first when asked for and the vocabulary adds it;
//! - the streamed decode of any ids equals `decode` of them;
//! - `decode(encode(text)) == text` for text the encoder does not treat specially: no U+2581 '▁'
//!   (SentencePiece's stand-in for a space, which decodes to a space) and no token text the
//!   encoder matches whole (user-defined tokens; control and unknown ones with `parse_special`),
//!   which decode to nothing or restart the dummy prefix.

use std::path::PathBuf;
use std::sync::OnceLock;

use greta_model::gguf::GgufFile;
use greta_model::tokenizer::{Decoder, TokenType, Tokenizer};

/// The model whose vocabulary is fuzzed: `$GRETA_FUZZ_MODEL`, else the repository's
/// `../shared/models/stories260K.gguf`.
pub fn model_path() -> PathBuf {
    std::env::var_os("GRETA_FUZZ_MODEL").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/models/stories260K.gguf"
            ))
        },
        PathBuf::from,
    )
}

/// The tokenizer of [`model_path`], loaded once per process.
pub fn stories() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let path = model_path();
        let file = GgufFile::open(&path)
            .unwrap_or_else(|e| panic!("{e} (set GRETA_FUZZ_MODEL to a GGUF model)"));
        Tokenizer::from_gguf(&file).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

pub fn exercise(data: &[u8]) {
    let t = stories();
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (add_special, parse_special) = (flags & 1 != 0, flags & 2 != 0);
    let text = String::from_utf8_lossy(rest);
    let ids = t.encode_with(&text, add_special, parse_special);
    check_ids(t, &ids);
    if add_special && t.vocab().add_bos {
        assert_eq!(ids.first().copied(), t.bos());
    }
    let decoded = check_decode(t, &ids);
    if round_trips(t, &text, parse_special) {
        assert_eq!(decoded, text, "ids {ids:?}");
    }

    let n = t.vocab_size() as u32 + 16;
    let raw: Vec<u32> = rest
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .map(|id| if flags & 4 != 0 { id % n } else { id })
        .collect();
    check_decode(t, &raw);
    let mut d = Decoder::continuing();
    for &id in &raw {
        let _ = d.push(t, id);
        let _ = d.has_pending();
    }
    let _ = d.finish();
    for &id in raw.iter().take(8) {
        let _ = (t.piece(id), t.token_text(id), t.is_eog(id));
    }
}

/// Every id is one of the vocabulary's.
pub fn check_ids(t: &Tokenizer, ids: &[u32]) {
    for &id in ids {
        assert!(
            (id as usize) < t.vocab_size(),
            "id {id} of {}",
            t.vocab_size()
        );
    }
}

/// `decode(ids)`, checked against the streaming decoder.
pub fn check_decode(t: &Tokenizer, ids: &[u32]) -> String {
    let decoded = t.decode(ids);
    let mut d = Decoder::new();
    let mut streamed = String::new();
    for &id in ids {
        streamed.push_str(&d.push(t, id));
    }
    streamed.push_str(&d.finish());
    assert_eq!(streamed, decoded, "ids {ids:?}");
    decoded
}

/// Whether `text` is one that `decode(encode(text)) == text` is promised for (see the module
/// docs).
pub fn round_trips(t: &Tokenizer, text: &str, parse_special: bool) -> bool {
    if text.contains('\u{2581}') {
        return false;
    }
    let v = t.vocab();
    !v.tokens.iter().zip(&v.token_types).any(|(s, &ty)| {
        let matched = match ty {
            TokenType::UserDefined => true,
            TokenType::Control | TokenType::Unknown => parse_special,
            _ => false,
        };
        matched && !s.is_empty() && text.contains(s.as_str())
    })
}
