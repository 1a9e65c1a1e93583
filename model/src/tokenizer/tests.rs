//! Tokenizer tests: small synthetic vocabularies whose expected ids are worked out by hand from
//! the algorithms' rules, round trips over awkward text, GGUF metadata handling, and the real
//! stories260K vocabulary.

use super::*;
use crate::gguf::GgufFile;

const TEXTS: &[&str] = &[
    "",
    "a",
    "Hello world",
    "Once upon a time, there was a little girl named Lily.",
    " leading space",
    "  two leading spaces",
    "trailing space ",
    "multiple   inner    spaces",
    "line one\nline two\n\nline four\r\n",
    "\ttab\tseparated\t",
    "I'm sure they'll say it's \"fine\" -- (maybe).",
    "numbers 0 12 345 67890 3.14159",
    "naïve café über Straße",
    "日本語のテキスト 北京",
    "emoji 😀👍🏽 and 🇺🇸 flags",
    "mixed: a😀b\n北 x",
    "\n",
    " ",
    "<s> and </s> are plain text here",
];

// ---------------------------------------------------------------- SPM

/// A SentencePiece vocabulary: `<unk>`, `<s>`, `</s>`, the 256 byte tokens, then pieces with
/// scores. The pieces cover ASCII letters and a few words, not CJK or emoji, so those take the
/// byte fallback.
fn spm_vocab() -> Vocab {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![TokenType::Unknown, TokenType::Control, TokenType::Control];
    let mut scores = vec![0.0, 0.0, 0.0];
    for b in 0..=255u32 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(TokenType::Byte);
        scores.push(0.0);
    }
    let mut add = |t: &str, s: f32| {
        tokens.push(t.to_string());
        types.push(TokenType::Normal);
        scores.push(s);
    };
    add("▁", -1.0);
    for c in ('a'..='z')
        .chain('A'..='Z')
        .chain("0123456789.,'\"-()".chars())
    {
        add(&c.to_string(), -5.0);
    }
    for (t, s) in [
        ("▁t", -2.0),
        ("he", -2.5),
        ("▁the", -1.5),
        ("▁a", -2.0),
        ("in", -2.2),
        ("ll", -3.0),
        ("lo", -3.0),
        ("▁w", -3.1),
        ("or", -3.1),
        ("▁wor", -3.2),
        ("▁world", -3.3),
        ("ld", -3.4),
        ("é", -4.0),
        ("▁▁", -3.0),
    ] {
        add(t, s);
    }
    Vocab {
        model: Model::Spm,
        pre: PreTokenizer::None,
        scores,
        token_types: types,
        tokens,
        merges: vec![],
        bos: Some(1),
        eos: Some(2),
        eot: None,
        unk: Some(0),
        add_bos: true,
        add_eos: false,
        add_space_prefix: true,
        ignore_merges: false,
    }
}

fn texts_of(t: &Tokenizer, ids: &[u32]) -> Vec<String> {
    ids.iter()
        .map(|&id| t.token_text(id).unwrap().to_string())
        .collect()
}

#[test]
fn spm_round_trips() {
    let t = Tokenizer::new(spm_vocab()).unwrap();
    for s in TEXTS {
        for add_special in [false, true] {
            let ids = t.encode(s, add_special);
            assert_eq!(t.decode(&ids), *s, "ids {:?}", texts_of(&t, &ids));
        }
    }
}

/// Expected pieces worked out from the rule "merge the adjacent pair with the highest-scoring
/// token text, leftmost first".
#[test]
fn spm_merges_by_score_then_leftmost() {
    let t = Tokenizer::new(spm_vocab()).unwrap();
    // "▁the": ▁t (-2.0) beats he (-2.5); then ▁t+h = "▁th" is no token, t+he is impossible
    // after ▁t took t... so: pairs ▁t(-2.0), th(none), he(-2.5) → merge ▁t → [▁t, h, e];
    // then ▁th (none), he (-2.5) → [▁t, he]; then ▁the (-1.5) → [▁the].
    assert_eq!(texts_of(&t, &t.encode("the", false)), ["▁the"]);
    // "world": ▁w(-3.1) and or(-3.1) tie, leftmost (▁w) first → [▁w, o, r, l, d] (▁wo is no
    // token); or → [▁w, or, l, d]; ▁wor(-3.2) → [▁wor, l, d]; ld(-3.4) → [▁wor, ld]; and
    // ▁wor+ld is the token ▁world(-3.3) → [▁world].
    assert_eq!(texts_of(&t, &t.encode("world", false)), ["▁world"]);
    // Without ▁wor the path ends at [▁w, or, ld].
    let mut v = spm_vocab();
    let i = v.tokens.iter().position(|t| t == "▁wor").unwrap();
    v.tokens[i] = "[removed]".into();
    let t2 = Tokenizer::new(v).unwrap();
    assert_eq!(
        texts_of(&t2, &t2.encode("world", false)),
        ["▁w", "or", "ld"]
    );
    // Equal scores, leftmost first: "▁▁▁" → [▁▁, ▁].
    assert_eq!(texts_of(&t, &t.encode("  ", false)), ["▁▁", "▁"]);
    // BOS, and the dummy prefix only at the start.
    assert_eq!(texts_of(&t, &t.encode("a a", true)), ["<s>", "▁a", "▁a"]);
}

#[test]
fn spm_falls_back_to_bytes() {
    let t = Tokenizer::new(spm_vocab()).unwrap();
    // '😀' is U+1F600 = F0 9F 98 80; '\n' is not a piece either.
    assert_eq!(
        texts_of(&t, &t.encode("😀\n", false)),
        ["▁", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>", "<0x0A>"]
    );
    // 'é' is a piece; 'ï' (C3 AF) is not.
    assert_eq!(
        texts_of(&t, &t.encode("éï", false)),
        ["▁", "é", "<0xC3>", "<0xAF>"]
    );
}

#[test]
fn spm_without_byte_tokens_uses_unk_per_character() {
    let mut v = spm_vocab();
    // Keep ids stable: turn byte tokens into unused texts.
    for i in 3..259 {
        v.tokens[i] = format!("[unused{i}]");
        v.token_types[i] = TokenType::Unused;
    }
    let t = Tokenizer::new(v.clone()).unwrap();
    assert_eq!(texts_of(&t, &t.encode("a😀", false)), ["▁a", "<unk>"]);
    v.unk = None;
    assert!(matches!(
        Tokenizer::new(v),
        Err(TokenizerError::NoByteFallback(0))
    ));
}

#[test]
fn spm_decode_strips_only_the_dummy_prefix() {
    let t = Tokenizer::new(spm_vocab()).unwrap();
    let ids = t.encode("the world", true);
    assert_eq!(texts_of(&t, &ids), ["<s>", "▁the", "▁world"]);
    assert_eq!(t.decode(&ids), "the world");
    assert_eq!(t.decode(&ids[1..]), "the world");
    // A continuation decoded on its own keeps its space.
    let mut d = Decoder::continuing();
    assert_eq!(d.push(&t, ids[2]), " world");
    // EOS and out-of-range ids print nothing.
    assert_eq!(t.decode(&[1, ids[1], 2, 99_999]), "the");
}

#[test]
fn user_defined_tokens_are_matched_in_text_control_tokens_only_on_request() {
    let mut v = spm_vocab();
    v.tokens.push("<tool>".into());
    v.token_types.push(TokenType::UserDefined);
    v.scores.push(0.0);
    let tool = (v.tokens.len() - 1) as u32;
    let t = Tokenizer::new(v).unwrap();
    let ids = t.encode("a<tool>a", false);
    // The dummy prefix follows a matched token again, as in llama.cpp (`is_prev_special`).
    assert_eq!(texts_of(&t, &ids), ["▁a", "<tool>", "▁a"]);
    assert_eq!(ids[1], tool);
    assert_eq!(t.decode(&ids), "a<tool> a");
    // <s> is plain text by default...
    assert!(!t.encode("<s>a", false).contains(&1));
    // ...and the BOS token when asked for; no text precedes it, so no dummy prefix either.
    assert_eq!(
        texts_of(&t, &t.encode_with("<s>a", false, true)),
        ["<s>", "▁a"]
    );
}

// ---------------------------------------------------------------- BPE

/// A byte-level BPE vocabulary: the 256 chars of the GPT-2 alphabet (ids 0..=255, in byte order),
/// then tokens built by `merges` in rank order, then control tokens.
fn bpe_vocab(merges: &[(&str, &str)], extra: &[&str]) -> Vocab {
    let mut tokens: Vec<String> = (0..=255u8)
        .map(|b| bpe::byte_to_char(b).to_string())
        .collect();
    for (l, r) in merges {
        let t = format!("{l}{r}");
        if !tokens.contains(&t) {
            tokens.push(t);
        }
    }
    tokens.extend(extra.iter().map(|s| s.to_string()));
    let n = tokens.len();
    let mut token_types = vec![TokenType::Normal; n];
    let bos = n as u32;
    for t in ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"] {
        tokens.push(t.into());
        token_types.push(TokenType::Control);
    }
    Vocab {
        model: Model::Bpe,
        pre: PreTokenizer::Llama3,
        scores: vec![0.0; tokens.len()],
        tokens,
        token_types,
        merges: merges
            .iter()
            .map(|(l, r)| (l.to_string(), r.to_string()))
            .collect(),
        bos: Some(bos),
        eos: Some(bos + 1),
        eot: None,
        unk: None,
        add_bos: true,
        add_eos: false,
        add_space_prefix: false,
        ignore_merges: true,
    }
}

const MERGES: &[(&str, &str)] = &[
    ("Ġ", "t"),
    ("h", "e"),
    ("Ġt", "he"),
    ("i", "n"),
    ("Ġ", "w"),
    ("o", "r"),
    ("Ġw", "or"),
    ("l", "d"),
    ("Ġwor", "ld"),
    ("l", "l"),
    ("e", "ll"),
    ("Ċ", "Ċ"),
    ("Ġ", "Ġ"),
    ("Ã", "©"),
];

#[test]
fn bpe_round_trips() {
    let t = Tokenizer::new(bpe_vocab(MERGES, &[])).unwrap();
    for s in TEXTS {
        for add_special in [false, true] {
            let ids = t.encode(s, add_special);
            assert_eq!(t.decode(&ids), *s, "ids {:?}", texts_of(&t, &ids));
        }
    }
}

/// Expected tokens worked out from the rule "merge the adjacent pair with the lowest merge rank,
/// leftmost first", within the words of the Llama-3 split.
#[test]
fn bpe_merges_by_rank_within_words() {
    let t = Tokenizer::new(bpe_vocab(MERGES, &[])).unwrap();
    let bos = t.bos().unwrap();
    let ids = t.encode("the world", true);
    assert_eq!(ids[0], bos);
    // Words "the", " world". "the": only h+e (rank 1) applies → [t, he].
    // "Ġworld": Ġw(4) → or(5) → Ġwor(6) → ld(7) → Ġworld(8).
    assert_eq!(texts_of(&t, &ids[1..]), ["t", "he", "Ġworld"]);
    // "hell": he(1) before ll(9) → [he, l, l] → [he, ll]; e+ll (rank 10) cannot happen, since
    // the e went into he first.
    assert_eq!(texts_of(&t, &t.encode("hell", false)), ["he", "ll"]);
    // Newlines and spaces: "\n\n" is one word → ĊĊ; "a  b" splits as a / " " / " b".
    assert_eq!(
        texts_of(&t, &t.encode("a\n\n  b", false)),
        ["a", "ĊĊ", "Ġ", "Ġ", "b"]
    );
    // 'é' is C3 A9 = "Ã©" in the alphabet, merged by rank 13.
    assert_eq!(texts_of(&t, &t.encode("é", false)), ["Ã©"]);
    // Control-token text is plain text unless parse_special.
    // Words "<|", "eot", "_id", "|>", and no merge applies: 10 single-char tokens.
    assert_eq!(t.encode("<|eot_id|>", false).len(), 10);
    assert_eq!(
        t.encode_with("<|eot_id|>", false, true),
        [t.token_id("<|eot_id|>").unwrap()]
    );
}

#[test]
fn bpe_ignore_merges_takes_whole_words_that_are_tokens() {
    // "Ġhello" is a token no merge builds (as happens in Llama 3's vocabulary).
    let v = bpe_vocab(MERGES, &["Ġhello"]);
    let t = Tokenizer::new(v.clone()).unwrap();
    assert_eq!(texts_of(&t, &t.encode(" hello", false)), ["Ġhello"]);
    let t = Tokenizer::new(Vocab {
        ignore_merges: false,
        ..v
    })
    .unwrap();
    assert_eq!(
        texts_of(&t, &t.encode(" hello", false)),
        ["Ġ", "he", "ll", "o"]
    );
}

/// Ids from llama.cpp itself for the synthetic BPE vocabulary: llama-cpp-python 0.3.36 (which
/// builds llama.cpp from source) loading this vocabulary written as a GGUF (`vocab_only=True`),
/// `tokenize(text, add_bos=True, special=False)`. Over all of [`TEXTS`] and a dozen pre-tokenizer
/// corner cases, for this and the SPM vocabulary, greta and llama.cpp agreed on every id; these
/// two are kept as regression tests of the pre-tokenizer's whitespace and contraction rules.
/// (Ids below 256 are bytes: the vocabulary starts with the byte alphabet in byte order.)
#[test]
fn bpe_matches_llama_cpp() {
    let t = Tokenizer::new(bpe_vocab(MERGES, &[])).unwrap();
    // Words: "x", "   \n\n" (\s*[\r\n]+), "  \t" (\s+(?!\S)), " y", "  " (\s+ at the end).
    assert_eq!(
        t.encode("x   \n\n  \t y  ", true),
        [270, 120, 268, 32, 267, 268, 9, 32, 121, 268]
    );
    // Words: "Hello", " World", "'s", " THE", "'S" (contractions fold case), then " '" + "RE" and
    // " '" + "ll": after a space the apostrophe goes with the space, ' ?[^\s\p{L}\p{N}]+'.
    assert_eq!(
        t.encode("Hello World's THE'S 'RE 'll", true),
        [
            270, 72, 266, 111, 32, 87, 261, 263, 39, 115, 32, 84, 72, 69, 39, 83, 32, 39, 82, 69,
            32, 39, 265
        ]
    );
}

#[test]
fn bpe_end_of_generation_tokens() {
    let t = Tokenizer::new(bpe_vocab(MERGES, &[])).unwrap();
    let eot = t.token_id("<|eot_id|>").unwrap();
    assert!(t.is_eog(t.eos().unwrap()) && t.is_eog(eot));
    assert!(!t.is_eog(t.bos().unwrap()) && !t.is_eog(0));
    assert_eq!(t.decode(&[eot]), "");
}

// ---------------------------------------------------------------- streaming

#[test]
fn decoder_holds_back_incomplete_characters() {
    let t = Tokenizer::new(spm_vocab()).unwrap();
    let ids = t.encode("a😀b", true);
    assert_eq!(
        texts_of(&t, &ids),
        ["<s>", "▁a", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>", "b"]
    );
    let mut d = Decoder::new();
    let out: Vec<String> = ids.iter().map(|&id| d.push(&t, id)).collect();
    assert_eq!(out, ["", "a", "", "", "", "😀", "b"]);
    assert!(!d.has_pending());
    assert_eq!(d.finish(), "");

    // A stream cut mid-character, and bytes that can never be UTF-8.
    let byte = |b: u8| t.token_id(&format!("<0x{b:02X}>")).unwrap();
    let mut d = Decoder::new();
    assert_eq!(d.push(&t, byte(0xE2)), "");
    assert_eq!(d.push(&t, byte(0x41)), "\u{FFFD}A");
    assert_eq!(d.push(&t, byte(0xF0)), "");
    assert_eq!(d.finish(), "\u{FFFD}");
    let ids = [byte(0xE2), byte(0x41), byte(0xF0)];
    assert_eq!(t.decode(&ids), String::from_utf8_lossy(&[0xE2, 0x41, 0xF0]));
}

#[test]
fn streamed_text_equals_decoded_text() {
    for t in [
        Tokenizer::new(spm_vocab()).unwrap(),
        Tokenizer::new(bpe_vocab(MERGES, &[])).unwrap(),
    ] {
        for s in TEXTS {
            let ids = t.encode(s, true);
            let mut d = Decoder::new();
            let mut streamed: String = ids.iter().map(|&id| d.push(&t, id)).collect();
            streamed += &d.finish();
            assert_eq!(streamed, *s);
        }
    }
}

// ---------------------------------------------------------------- validation and GGUF

#[test]
fn invalid_vocabularies_are_rejected_with_reasons() {
    let mut v = spm_vocab();
    v.tokens[300] = v.tokens[299].clone();
    let e = Tokenizer::new(v).unwrap_err();
    assert!(
        matches!(
            e,
            TokenizerError::DuplicateToken {
                first: 299,
                second: 300,
                ..
            }
        ),
        "{e}"
    );

    let mut v = spm_vocab();
    v.scores.pop();
    assert!(Tokenizer::new(v)
        .unwrap_err()
        .to_string()
        .contains("tokenizer.ggml.scores"));

    let v = Vocab {
        bos: Some(100_000),
        ..spm_vocab()
    };
    assert!(matches!(
        Tokenizer::new(v),
        Err(TokenizerError::IdOutOfRange { what: "BOS", .. })
    ));

    let v = Vocab {
        bos: None,
        ..spm_vocab()
    };
    assert!(matches!(
        Tokenizer::new(v),
        Err(TokenizerError::MissingSpecial("bos"))
    ));

    let mut v = spm_vocab();
    v.tokens[3] = "<0xZZ>".into();
    assert!(matches!(
        Tokenizer::new(v),
        Err(TokenizerError::BadByteToken { id: 3, .. })
    ));

    let v = Vocab {
        merges: vec![],
        ..bpe_vocab(MERGES, &[])
    };
    assert!(matches!(Tokenizer::new(v), Err(TokenizerError::NoMerges)));
}

/// A GGUF value for [`gguf_bytes`].
enum V<'a> {
    Str(&'a str),
    U32(u32),
    Bool(bool),
    Strs(Vec<String>),
    F32s(Vec<f32>),
    I32s(Vec<i32>),
}

/// A GGUF v3 file with the given metadata and no tensors, written here by hand from the format
/// description so the tokenizer tests do not depend on greta's writer.
fn gguf_bytes(kvs: &[(&str, V)]) -> Vec<u8> {
    fn s(out: &mut Vec<u8>, x: &str) {
        out.extend((x.len() as u64).to_le_bytes());
        out.extend(x.as_bytes());
    }
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend(0u64.to_le_bytes());
    out.extend((kvs.len() as u64).to_le_bytes());
    for (k, v) in kvs {
        s(&mut out, k);
        match v {
            V::Str(x) => {
                out.extend(8u32.to_le_bytes());
                s(&mut out, x);
            }
            V::U32(x) => {
                out.extend(4u32.to_le_bytes());
                out.extend(x.to_le_bytes());
            }
            V::Bool(x) => {
                out.extend(7u32.to_le_bytes());
                out.push(*x as u8);
            }
            V::Strs(xs) => {
                out.extend(9u32.to_le_bytes());
                out.extend(8u32.to_le_bytes());
                out.extend((xs.len() as u64).to_le_bytes());
                for x in xs {
                    s(&mut out, x);
                }
            }
            V::F32s(xs) => {
                out.extend(9u32.to_le_bytes());
                out.extend(6u32.to_le_bytes());
                out.extend((xs.len() as u64).to_le_bytes());
                xs.iter().for_each(|x| out.extend(x.to_le_bytes()));
            }
            V::I32s(xs) => {
                out.extend(9u32.to_le_bytes());
                out.extend(5u32.to_le_bytes());
                out.extend((xs.len() as u64).to_le_bytes());
                xs.iter().for_each(|x| out.extend(x.to_le_bytes()));
            }
        }
    }
    out.resize(out.len().next_multiple_of(32), 0);
    out
}

fn spm_kvs(v: &Vocab) -> Vec<(&'static str, V<'static>)> {
    vec![
        ("tokenizer.ggml.model", V::Str("llama")),
        ("tokenizer.ggml.tokens", V::Strs(v.tokens.clone())),
        ("tokenizer.ggml.scores", V::F32s(v.scores.clone())),
        (
            "tokenizer.ggml.token_type",
            V::I32s(v.token_types.iter().map(|&t| t as i32).collect()),
        ),
    ]
}

fn vocab_from(kvs: &[(&str, V)]) -> Result<Vocab, TokenizerError> {
    Vocab::from_gguf(&GgufFile::from_bytes(gguf_bytes(kvs)).unwrap())
}

#[test]
fn gguf_spm_vocabulary_with_llama_cpp_defaults() {
    let v = vocab_from(&spm_kvs(&spm_vocab())).unwrap();
    assert_eq!(v.model, Model::Spm);
    assert_eq!((v.bos, v.eos, v.unk), (Some(1), Some(2), Some(0)));
    assert!(v.add_bos && !v.add_eos && v.add_space_prefix);
    assert_eq!(v.tokens, spm_vocab().tokens);
    assert_eq!(v.token_types[3], TokenType::Byte);

    let mut kvs = spm_kvs(&spm_vocab());
    kvs.push(("tokenizer.ggml.add_bos_token", V::Bool(false)));
    kvs.push(("tokenizer.ggml.add_space_prefix", V::Bool(false)));
    kvs.push(("tokenizer.ggml.eos_token_id", V::U32(5)));
    let v = vocab_from(&kvs).unwrap();
    assert!(!v.add_bos && !v.add_space_prefix);
    assert_eq!(v.eos, Some(5));
}

#[test]
fn gguf_bpe_vocabulary() {
    let b = bpe_vocab(MERGES, &[]);
    let merges: Vec<String> = b.merges.iter().map(|(l, r)| format!("{l} {r}")).collect();
    let kvs = vec![
        ("tokenizer.ggml.model", V::Str("gpt2")),
        ("tokenizer.ggml.pre", V::Str("llama-bpe")),
        ("tokenizer.ggml.tokens", V::Strs(b.tokens.clone())),
        (
            "tokenizer.ggml.token_type",
            V::I32s(b.token_types.iter().map(|&t| t as i32).collect()),
        ),
        ("tokenizer.ggml.merges", V::Strs(merges)),
        ("tokenizer.ggml.bos_token_id", V::U32(b.bos.unwrap())),
        ("tokenizer.ggml.eos_token_id", V::U32(b.eos.unwrap())),
    ];
    let v = vocab_from(&kvs).unwrap();
    assert_eq!((v.model, v.pre), (Model::Bpe, PreTokenizer::Llama3));
    assert!(v.add_bos && v.ignore_merges && !v.add_space_prefix);
    assert_eq!(v.merges, b.merges);
    let t = Tokenizer::new(v).unwrap();
    assert_eq!(t.decode(&t.encode("the world", true)), "the world");
}

#[test]
fn gguf_errors_name_the_problem() {
    let mut kvs = spm_kvs(&spm_vocab());
    kvs[0].1 = V::Str("bert");
    let e = vocab_from(&kvs).unwrap_err().to_string();
    assert!(
        e.contains("\"bert\"") && e.contains("tokenizer.ggml.model"),
        "{e}"
    );

    let kvs = vec![
        ("tokenizer.ggml.model", V::Str("gpt2")),
        ("tokenizer.ggml.tokens", V::Strs(vec!["a".into()])),
    ];
    let e = vocab_from(&kvs).unwrap_err().to_string();
    assert!(
        e.contains("(missing)") && e.contains("tokenizer.ggml.pre"),
        "{e}"
    );

    let mut kvs = spm_kvs(&spm_vocab());
    kvs[2].1 = V::F32s(vec![0.0; 3]);
    let e = vocab_from(&kvs).unwrap_err().to_string();
    assert!(
        e.contains("tokenizer.ggml.scores") && e.contains("3 entries"),
        "{e}"
    );

    let mut kvs = spm_kvs(&spm_vocab());
    kvs.push(("tokenizer.ggml.bos_token_id", V::U32(1_000_000)));
    let e = vocab_from(&kvs).unwrap_err().to_string();
    assert!(e.contains("BOS token id 1000000"), "{e}");

    let e = vocab_from(&[("general.name", V::Str("x"))])
        .unwrap_err()
        .to_string();
    assert!(e.contains("tokenizer.ggml.model"), "{e}");

    let mut kvs = spm_kvs(&spm_vocab());
    kvs[0].1 = V::U32(3);
    let e = vocab_from(&kvs).unwrap_err().to_string();
    assert!(e.contains("tokenizer.ggml.model"), "{e}");
}

// ---------------------------------------------------------------- stories260K

const STORIES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/models/stories260K.gguf"
);

/// The greedy continuation of "Once upon a time" given in shared/models/README.md.
const STORY: &str = "Once upon a time, there was a little girl named Lily. She loved to play outside in \
                     the park. One day, she saw a big, red ball. She wanted to play with it, but it was \
                     too high.";

fn stories() -> Tokenizer {
    let file =
        GgufFile::open(std::path::Path::new(STORIES)).expect("shared/models/stories260K.gguf");
    Tokenizer::from_gguf(&file).unwrap()
}

#[test]
fn stories260k_vocabulary() {
    let t = stories();
    assert_eq!(t.vocab_size(), 512);
    assert_eq!((t.bos(), t.eos()), (Some(1), Some(2)));
    assert!(t.is_eog(2) && !t.is_eog(1));
    let v = t.vocab();
    assert!(v.add_bos && !v.add_eos && v.add_space_prefix);
}

/// "Once upon a time" with the stories260K vocabulary (`add_special`), as llama.cpp's SPM algorithm
/// tokenizes it.
///
/// How the expectation was derived, by hand from the vocabulary and its scores (printed with a
/// short script over the GGUF's `tokenizer.ggml.tokens`/`scores`): the escaped text is
/// "▁Once▁upon▁a▁time". No token of this vocabulary has '▁' after its first char, so no merge
/// crosses a word, and each word merges on its own, the best-scored pair first:
/// - ▁Once: ▁O (-60), ▁On (-62), ce (-72), ▁On+ce = ▁Once (-144) → 403
/// - ▁upon: on (-30), ▁u (-59), ▁up (-91), ▁up+on = ▁upon (-148) → 407
/// - ▁a (-2) → 261
/// - ▁time: ▁t (0), im (-29), ime (-110), ▁t+ime = ▁time (-119) → 378
///
/// and BOS (1) first. llama.cpp itself agrees (llama-cpp-python 0.3.36, which builds llama.cpp
/// from source, loading this GGUF with `vocab_only=True`: `tokenize(b"Once upon a time",
/// add_bos=True, special=False)` is `[1, 403, 407, 261, 378]`).
#[test]
fn stories260k_once_upon_a_time() {
    let t = stories();
    let ids = t.encode("Once upon a time", true);
    assert_eq!(texts_of(&t, &ids), ["<s>", "▁Once", "▁upon", "▁a", "▁time"]);
    assert_eq!(ids, [1, 403, 407, 261, 378]);
}

/// The README's continuation, tokenized by llama.cpp itself (llama-cpp-python 0.3.36 loading
/// stories260K.gguf with `vocab_only=True`, `tokenize(STORY, add_bos=True, special=False)`).
#[test]
fn stories260k_story_matches_llama_cpp() {
    let t = stories();
    let expected: &[u32] = &[
        1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401,
        396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358,
        394, 261, 370, 432, 352, 266, 268, 388, 426, 338, 391, 266, 267, 337, 335, 312, 432, 398,
        312, 286, 267, 414, 270, 333, 415, 426,
    ];
    assert_eq!(t.encode(STORY, true), expected);
}

#[test]
fn stories260k_round_trips_the_known_continuation() {
    let t = stories();
    for s in [
        STORY,
        "Once upon a time",
        "Lily and Ben 🐶 went to the 公园.\n\nThe end.",
    ] {
        let ids = t.encode(s, true);
        assert_eq!(ids[0], 1);
        assert_eq!(t.decode(&ids), s);
        // Streaming the prompt's and the continuation's ids prints the same text.
        let mut d = Decoder::new();
        let streamed: String = ids.iter().map(|&id| d.push(&t, id)).collect();
        assert_eq!(streamed + &d.finish(), s);
    }
    // Prompt then continuation, as generation produces them: the continuation's ids decoded after
    // the prompt's continue the text exactly.
    let prompt = t.encode("Once upon a time", true);
    let full = t.encode(STORY, true);
    assert_eq!(
        &full[..prompt.len()],
        &prompt[..],
        "the prompt's ids are a prefix of the story's"
    );
    let mut d = Decoder::continuing();
    let rest: String = full[prompt.len()..]
        .iter()
        .map(|&id| d.push(&t, id))
        .collect();
    assert_eq!(format!("Once upon a time{rest}"), STORY);
}
