//! The `vocab` target: vocabularies built from fuzzed data (SentencePiece and byte-level BPE),
//! through `Tokenizer::new`, then a fuzzed text encoded and fuzzed ids decoded.
//!
//! Token texts and the text are mostly drawn from a small alphabet of pieces that matter to the
//! tokenizers (`▁`, `Ġ`, `<0x41>`, `<s>`, multi-byte characters, ...), so that texts contain
//! tokens, merges name tokens and special tokens occur in the text; a few are arbitrary strings.
//! Scores, types (including values outside llama.cpp's 0..=6), special ids (in and out of range),
//! flags, and scores/types arrays of the wrong length are all fuzzed. The complete byte
//! alphabets (SPM `<0xXX>` tokens, GPT-2's byte characters) can be added whole, as real
//! vocabularies have them.
//!
//! Refusals (`Err`) are fine; asserted on success: encoded ids are in range, streamed decoding
//! equals `decode`.

use arbitrary::{Result, Unstructured};
use greta_model::tokenizer::{Model, PreTokenizer, TokenType, Tokenizer, Vocab};

/// Pieces token texts and texts are made of.
const ALPHABET: &[&str] = &[
    "a",
    "b",
    "c",
    "ab",
    "the",
    " ",
    "  ",
    "▁",
    "Ġ",
    "Ċ",
    "\n",
    "<",
    ">",
    "s",
    "<s>",
    "</s>",
    "<0x41>",
    "<0xE2>",
    "<0x",
    "é",
    "日",
    "😀",
    "\u{0}",
    "'",
    "'s",
    "1",
    "23",
    "|",
    "<|eot_id|>",
    "<|end|>",
    "\u{fffd}",
    "Ā",
];

fn piece_string(u: &mut Unstructured, max_pieces: usize) -> Result<String> {
    if u.ratio(1, 8)? {
        return u.arbitrary::<String>();
    }
    let n = u.int_in_range(0..=max_pieces)?;
    let mut s = String::new();
    for _ in 0..n {
        s.push_str(u.choose(ALPHABET)?);
    }
    Ok(s)
}

fn id(u: &mut Unstructured, n: usize) -> Result<Option<u32>> {
    Ok(match u.int_in_range(0..=7)? {
        0 | 1 => None,
        2 => Some(u.arbitrary()?),
        _ => Some(u.int_in_range(0..=n as u32 + 1)?),
    })
}

fn score(u: &mut Unstructured) -> Result<f32> {
    Ok(match u.int_in_range(0..=3)? {
        0 => u.arbitrary()?,
        _ => -(u.int_in_range(0..=64u8)? as f32),
    })
}

/// A vocabulary, the text to encode and the ids to decode.
pub struct Case {
    pub vocab: Vocab,
    pub text: String,
    pub ids: Vec<u32>,
    pub add_special: bool,
    pub parse_special: bool,
}

impl Case {
    pub fn build(u: &mut Unstructured) -> Result<Case> {
        let model = if u.arbitrary()? {
            Model::Bpe
        } else {
            Model::Spm
        };
        let pre = match model {
            Model::Bpe if u.ratio(15, 16)? => PreTokenizer::Llama3,
            _ => PreTokenizer::None,
        };
        let mut tokens: Vec<String> = Vec::new();
        let mut scores = Vec::new();
        let mut types = Vec::new();
        if u.arbitrary()? {
            for (t, ty) in [
                ("<unk>", TokenType::Unknown),
                ("<s>", TokenType::Control),
                ("</s>", TokenType::Control),
            ] {
                tokens.push(t.into());
                types.push(ty);
                scores.push(0.0);
            }
        }
        if u.arbitrary()? {
            match model {
                Model::Spm => {
                    for b in 0..=255u8 {
                        tokens.push(format!("<0x{b:02X}>"));
                        types.push(TokenType::Byte);
                        scores.push(0.0);
                    }
                }
                Model::Bpe => {
                    for (_, c) in greta_model::synth::gpt2_byte_chars() {
                        tokens.push(c.to_string());
                        types.push(TokenType::Normal);
                        scores.push(0.0);
                    }
                }
            }
        }
        let extra = u.int_in_range(0..=48)?;
        for _ in 0..extra {
            tokens.push(piece_string(u, 4)?);
            scores.push(score(u)?);
            // 1 (NORMAL) most often; every other value, and some outside 0..=6, too.
            let ty = match u.int_in_range(0..=15)? {
                0..=7 => 1,
                k @ 8..=14 => k - 8,
                _ => u.arbitrary()?,
            };
            types.push(TokenType::from_i32(ty));
        }
        // Arrays of the wrong length, now and then.
        if u.ratio(1, 32)? {
            scores.pop();
        }
        if u.ratio(1, 32)? {
            types.push(TokenType::Normal);
        }

        let mut merges = Vec::new();
        let n_merges = match model {
            Model::Bpe => u.int_in_range(0..=48)?,
            Model::Spm => u.int_in_range(0..=2)?,
        };
        for _ in 0..n_merges {
            // Mostly a split of a token into two parts (a merge that builds it).
            let split = if !tokens.is_empty() && u.ratio(3, 4)? {
                let t = u.choose(&tokens)?;
                let cuts: Vec<usize> = (1..t.len()).filter(|&i| t.is_char_boundary(i)).collect();
                match cuts.is_empty() {
                    true => None,
                    false => {
                        let c = *u.choose(&cuts)?;
                        Some((t[..c].to_string(), t[c..].to_string()))
                    }
                }
            } else {
                None
            };
            merges.push(match split {
                Some(m) => m,
                None => (piece_string(u, 2)?, piece_string(u, 2)?),
            });
        }

        let n = tokens.len();
        let vocab = Vocab {
            model,
            pre,
            tokens,
            scores,
            token_types: types,
            merges,
            bos: id(u, n)?,
            eos: id(u, n)?,
            eot: id(u, n)?,
            unk: id(u, n)?,
            add_bos: u.arbitrary()?,
            add_eos: u.arbitrary()?,
            add_space_prefix: u.arbitrary()?,
            ignore_merges: u.arbitrary()?,
        };
        let add_special = u.arbitrary()?;
        let parse_special = u.arbitrary()?;
        let ids = (0..u.int_in_range(0..=32)?)
            .map(|_| -> Result<u32> {
                Ok(match u.ratio(7, 8)? {
                    true => u.int_in_range(0..=n as u32 + 2)?,
                    false => u.arbitrary()?,
                })
            })
            .collect::<Result<_>>()?;
        let text = piece_string(u, 64)?;
        Ok(Case {
            vocab,
            text,
            ids,
            add_special,
            parse_special,
        })
    }
}

pub fn exercise(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(case) = Case::build(&mut u) else {
        return;
    };
    let t = match Tokenizer::new(case.vocab) {
        Ok(t) => t,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let ids = t.encode_with(&case.text, case.add_special, case.parse_special);
    crate::tokenizer::check_ids(&t, &ids);
    crate::tokenizer::check_decode(&t, &ids);
    crate::tokenizer::check_decode(&t, &case.ids);
    for &id in &case.ids {
        let _ = (t.piece(id), t.token_text(id), t.is_eog(id));
    }
    for s in t.vocab().tokens.iter().take(8) {
        let _ = t.token_id(s);
    }
}
