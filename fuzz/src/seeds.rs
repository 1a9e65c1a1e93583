//! Seed corpora: inputs with valid structure for every target, so that the fuzzers start deep in
//! the code rather than at "bad magic".
//!
//! - `gguf`, `gguf_run`: the real stories260K.gguf; small Llama models written with
//!   [`GgufWriter`] (SentencePiece and byte-level BPE vocabularies; F32, F16, BF16 and Q8_0
//!   weights; tied and untied output); files with every metadata value type, nested arrays, an
//!   explicit alignment, empty, scalar, 4-dimensional and unsupported-type tensors.
//! - `tokenizer`: the tokenizer tests' awkward texts under each flag combination, and id runs.
//! - `vocab`: pseudo-random inputs, kept when [`crate::vocab::Case`] builds a vocabulary that
//!   `Tokenizer::new` accepts (and a few it refuses).

use std::path::Path;

use greta_model::gguf::{GgmlType, GgufError, GgufWriter, Value, ValueType};

/// The seeds of `target` as (file name, bytes).
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    match target {
        "gguf" | "gguf_run" => gguf_seeds(),
        "tokenizer" => tokenizer_seeds(),
        "vocab" => vocab_seeds(),
        _ => Vec::new(),
    }
}

pub const TARGETS: &[&str] = &["gguf", "gguf_run", "tokenizer", "vocab"];

/// Writes the seeds of every target into `corpus/<target>/` under `dir`.
pub fn write_all(dir: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    for target in TARGETS {
        let d = dir.join(target);
        std::fs::create_dir_all(&d)?;
        for (name, bytes) in seeds(target) {
            std::fs::write(d.join(format!("seed-{name}")), bytes)?;
            n += 1;
        }
    }
    Ok(n)
}

// ---------------------------------------------------------------- GGUF

/// A small Llama model's description.
#[derive(Clone, Copy)]
pub struct Mini {
    pub dtype: GgmlType,
    pub bpe: bool,
    pub tied: bool,
    pub layers: u32,
}

/// SentencePiece: `<unk>`, `<s>`, `</s>`, the byte tokens, '▁', letters, a few words.
fn spm_tokens() -> (Vec<String>, Vec<f32>, Vec<i32>) {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![2, 3, 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    let words = [
        "▁", "▁t", "he", "▁the", "▁a", "in", "▁Once", "▁upon", "▁time", "on", "ce",
    ];
    let letters = ('a'..='z').chain('A'..='Z').map(String::from);
    for w in words.iter().map(|w| w.to_string()).chain(letters) {
        tokens.push(w);
        types.push(1);
    }
    let scores = (0..tokens.len()).map(|i| -(i as f32)).collect();
    (tokens, scores, types)
}

/// Byte-level BPE: GPT-2's byte characters, a few merged words (each with its merge), and
/// Llama 3's first special tokens.
fn bpe_tokens() -> (Vec<String>, Vec<i32>, Vec<String>) {
    let mut tokens: Vec<String> = greta_model::synth::gpt2_byte_chars()
        .into_iter()
        .map(|(_, c)| c.to_string())
        .collect();
    let mut merges = Vec::new();
    for (l, r) in [
        ("Ġ", "t"),
        ("h", "e"),
        ("Ġt", "he"),
        ("o", "n"),
        ("Ġ", "up"),
        ("u", "p"),
        ("Ġup", "on"),
        ("O", "n"),
        ("On", "ce"),
        ("c", "e"),
    ] {
        let t = format!("{l}{r}");
        if !tokens.contains(&t) {
            tokens.push(t);
        }
        merges.push(format!("{l} {r}"));
    }
    let mut types = vec![1; tokens.len()];
    for s in ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"] {
        tokens.push(s.into());
        types.push(3);
    }
    (tokens, types, merges)
}

/// A consistent Llama model (it passes `LlamaConfig::from_gguf` and `weights::check`) of
/// embedding width 32, 4 heads, 2 KV heads, feed-forward 32: every row is whole Q8_0 blocks.
pub fn mini_model(m: Mini) -> Result<Vec<u8>, GgufError> {
    let (dim, heads, kv_heads, ffn) = (32u64, 4u64, 2u64, 32u64);
    let kv = kv_heads * dim / heads;
    let mut w = GgufWriter::new();
    w.add("general.architecture", "llama")?;
    w.add("general.name", "fuzz seed")?;
    let n_vocab;
    if m.bpe {
        let (tokens, types, merges) = bpe_tokens();
        n_vocab = tokens.len() as u64;
        let bos = tokens
            .iter()
            .position(|t| t == "<|begin_of_text|>")
            .unwrap() as u32;
        w.add("tokenizer.ggml.model", "gpt2")?;
        w.add("tokenizer.ggml.pre", "llama-bpe")?;
        w.add("tokenizer.ggml.tokens", Value::string_array(tokens))?;
        w.add("tokenizer.ggml.token_type", Value::i32_array(types))?;
        w.add("tokenizer.ggml.merges", Value::string_array(merges))?;
        w.add("tokenizer.ggml.bos_token_id", bos)?;
        w.add("tokenizer.ggml.eos_token_id", bos + 1)?;
        w.add("tokenizer.ggml.eot_token_id", bos + 2)?;
    } else {
        let (tokens, scores, types) = spm_tokens();
        n_vocab = tokens.len() as u64;
        w.add("tokenizer.ggml.model", "llama")?;
        w.add("tokenizer.ggml.tokens", Value::string_array(tokens))?;
        w.add("tokenizer.ggml.scores", Value::f32_array(scores))?;
        w.add("tokenizer.ggml.token_type", Value::i32_array(types))?;
        w.add("tokenizer.ggml.bos_token_id", 1u32)?;
        w.add("tokenizer.ggml.eos_token_id", 2u32)?;
        w.add("tokenizer.ggml.unknown_token_id", 0u32)?;
        w.add("tokenizer.ggml.add_bos_token", true)?;
    }
    let u = |v: u64| Value::U32(v as u32);
    w.add("llama.vocab_size", u(n_vocab))?;
    w.add("llama.context_length", u(64))?;
    w.add("llama.embedding_length", u(dim))?;
    w.add("llama.block_count", u(m.layers as u64))?;
    w.add("llama.feed_forward_length", u(ffn))?;
    w.add("llama.rope.dimension_count", u(dim / heads))?;
    w.add("llama.attention.head_count", u(heads))?;
    w.add("llama.attention.head_count_kv", u(kv_heads))?;
    w.add("llama.attention.layer_norm_rms_epsilon", 1e-5f32)?;
    w.add("llama.rope.freq_base", 10000.0f32)?;

    let mut tensors: Vec<(String, Vec<u64>, GgmlType)> =
        vec![("token_embd.weight".into(), vec![dim, n_vocab], m.dtype)];
    for l in 0..m.layers {
        let b = |n: &str| format!("blk.{l}.{n}.weight");
        tensors.extend([
            (b("attn_norm"), vec![dim], GgmlType::F32),
            (b("attn_q"), vec![dim, dim], m.dtype),
            (b("attn_k"), vec![dim, kv], m.dtype),
            (b("attn_v"), vec![dim, kv], m.dtype),
            (b("attn_output"), vec![dim, dim], m.dtype),
            (b("ffn_norm"), vec![dim], GgmlType::F32),
            (b("ffn_gate"), vec![dim, ffn], m.dtype),
            (b("ffn_up"), vec![dim, ffn], m.dtype),
            (b("ffn_down"), vec![ffn, dim], m.dtype),
        ]);
    }
    tensors.push(("output_norm.weight".into(), vec![dim], GgmlType::F32));
    if !m.tied {
        tensors.push(("output.weight".into(), vec![dim, n_vocab], m.dtype));
    }
    for (name, dims, ty) in &tensors {
        w.add_tensor(name.clone(), dims, *ty)?;
    }
    let mut s = w.begin(Vec::new())?;
    for (i, (_, dims, _)) in tensors.iter().enumerate() {
        let n = dims.iter().product::<u64>() as usize;
        s.write_f32(&values(n, i as u32))?;
    }
    s.finish()
}

/// Small deterministic values in -2..2.
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32 - 0.5) * 4.0
        })
        .collect()
}

/// Every metadata value type, nested arrays, an alignment, and tensors of every shape kind.
fn odd_file(alignment: Option<u32>) -> Result<Vec<u8>, GgufError> {
    let mut w = GgufWriter::new();
    if let Some(a) = alignment {
        w.add("general.alignment", a)?;
    }
    for (k, v) in [
        ("u8", Value::U8(200)),
        ("i8", Value::I8(-100)),
        ("u16", Value::U16(60000)),
        ("i16", Value::I16(-30000)),
        ("u32", Value::U32(4_000_000_000)),
        ("i32", Value::I32(-2_000_000_000)),
        ("f32", Value::F32(1.5e-5)),
        ("bool", Value::Bool(true)),
        ("string", Value::from("héllo ▁world")),
        ("u64", Value::U64(u64::MAX)),
        ("i64", Value::I64(i64::MIN)),
        ("f64", Value::F64(-2.5e300)),
        ("llama.block_count", Value::I64(-1)),
        ("llama.rope.freq_base", Value::F64(f64::NAN)),
        (
            "tokenizer.ggml.tokens",
            Value::string_array(["a", "", "<0x0A>"]),
        ),
        ("tokenizer.ggml.scores", Value::f32_array([0.0, -1.0, 3.25])),
        ("tokenizer.ggml.token_type", Value::i32_array([1, 2, 3])),
        ("empty", Value::Array(ValueType::String, vec![])),
        (
            "nested",
            Value::Array(
                ValueType::Array,
                vec![
                    Value::i32_array([1, 2]),
                    Value::Array(ValueType::Bool, vec![Value::Bool(false)]),
                ],
            ),
        ),
    ] {
        w.add(k, v)?;
    }
    let tensors: &[(&str, &[u64], GgmlType)] = &[
        ("q8", &[32, 2], GgmlType::Q8_0),
        ("f16", &[5], GgmlType::F16),
        ("bf16", &[3, 1, 2], GgmlType::BF16),
        ("f32_4d", &[2, 1, 2, 1], GgmlType::F32),
        ("scalar", &[], GgmlType::F32),
        ("empty", &[0, 8], GgmlType::F32),
        ("empty_hi", &[8, 0, 3], GgmlType::F16),
        ("q4_k", &[256], GgmlType::by_name("q4_k").unwrap()),
        ("i8", &[7], GgmlType::by_name("i8").unwrap()),
    ];
    for (name, dims, ty) in tensors {
        w.add_tensor(*name, dims, *ty)?;
    }
    let infos = w.tensors().to_vec();
    let mut s = w.begin(Vec::new())?;
    // The stream skips empty tensors itself.
    for (i, t) in infos.iter().enumerate().filter(|(_, t)| t.size_bytes > 0) {
        if t.ty.is_supported() {
            s.write_f32(&values(t.n_elements() as usize, i as u32))?;
        } else {
            s.write_bytes(&vec![0x11; t.size_bytes as usize])?;
        }
    }
    s.finish()
}

/// The smallest valid files: no tensors, one key; one tensor, no keys (version 2).
fn tiny_raw() -> Vec<(String, Vec<u8>)> {
    let mut a = b"GGUF".to_vec();
    a.extend(3u32.to_le_bytes());
    a.extend(0u64.to_le_bytes());
    a.extend(1u64.to_le_bytes());
    a.extend(1u64.to_le_bytes());
    a.push(b'k');
    a.extend(4u32.to_le_bytes());
    a.extend(7u32.to_le_bytes());
    let mut b = b"GGUF".to_vec();
    b.extend(2u32.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.push(b't');
    b.extend(2u32.to_le_bytes());
    b.extend(4u64.to_le_bytes());
    b.extend(2u64.to_le_bytes());
    b.extend(0u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.resize(96 + 32, 0); // the header (65 bytes) aligned to 32, then 8 f32
    vec![
        ("raw-v3-one-key".into(), a),
        ("raw-v2-one-tensor".into(), b),
    ]
}

pub fn gguf_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    if let Ok(b) = std::fs::read(crate::tokenizer::model_path()) {
        out.push(("stories260K.gguf".to_string(), b));
    }
    for (dtype, bpe, tied, layers) in [
        (GgmlType::F32, false, false, 1),
        (GgmlType::F16, false, true, 2),
        (GgmlType::BF16, false, false, 1),
        (GgmlType::Q8_0, false, false, 1),
        (GgmlType::F32, true, false, 1),
        (GgmlType::F16, true, true, 1),
        (GgmlType::Q8_0, true, false, 2),
    ] {
        let m = Mini {
            dtype,
            bpe,
            tied,
            layers,
        };
        let name = format!(
            "mini-{}-{}{}-{layers}l.gguf",
            if bpe { "bpe" } else { "spm" },
            dtype.name().to_lowercase(),
            if tied { "-tied" } else { "" }
        );
        out.push((name, mini_model(m).expect("a valid mini model")));
    }
    out.push(("odd.gguf".into(), odd_file(None).expect("valid")));
    out.push((
        "odd-align64.gguf".into(),
        odd_file(Some(64)).expect("valid"),
    ));
    out.extend(tiny_raw());
    out
}

// ---------------------------------------------------------------- tokenizer

const TEXTS: &[&str] = &[
    "",
    "a",
    "Once upon a time",
    "Once upon a time, there was a little girl named Lily. She loved to play outside.",
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
    "<s> and </s> are plain text here, <unk> too",
    "\u{0}\u{1}\u{7f}",
    "▁ is the SentencePiece space",
];

pub fn tokenizer_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, text) in TEXTS.iter().enumerate() {
        for flags in [0u8, 1, 2, 3] {
            let mut b = vec![flags];
            b.extend_from_slice(text.as_bytes());
            out.push((format!("text{i}-f{flags}"), b));
        }
    }
    // Ids: in range (flag 4 reduces them), and raw ones out of range.
    let mut ids = vec![4u8];
    for id in [1u32, 403, 407, 261, 378, 3, 200, 250, 511, 512, 527] {
        ids.extend(id.to_le_bytes());
    }
    out.push(("ids-mod".into(), ids));
    let mut ids = vec![0u8];
    for id in [1u32, 0xE2 + 3, 0x96 + 3, 0x81 + 3, 512, u32::MAX, 2] {
        ids.extend(id.to_le_bytes());
    }
    out.push(("ids-raw".into(), ids));
    out
}

// ---------------------------------------------------------------- vocab

pub fn vocab_seeds() -> Vec<(String, Vec<u8>)> {
    let (mut ok, mut refused) = (Vec::new(), Vec::new());
    let mut s = 0x1234_5678u32;
    for round in 0..20_000u32 {
        let len = 64 + (round as usize % 16) * 256;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                s as u8
            })
            .collect();
        let mut u = arbitrary::Unstructured::new(&bytes);
        let Ok(case) = crate::vocab::Case::build(&mut u) else {
            continue;
        };
        let model = case.vocab.model;
        match greta_model::tokenizer::Tokenizer::new(case.vocab) {
            Ok(_) if ok.len() < 48 => ok.push((format!("ok-{model:?}-{round}"), bytes)),
            Err(_) if refused.len() < 8 => refused.push((format!("refused-{round}"), bytes)),
            _ => {}
        }
        if ok.len() >= 48 && refused.len() >= 8 {
            break;
        }
    }
    ok.extend(refused);
    ok
}
