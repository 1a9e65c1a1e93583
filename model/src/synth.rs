//! Synthetic Llama models: GGUF files with the exact tensor names, shapes, types and metadata
//! llama.cpp writes for a real Llama of a given size, filled with random weights.
//!
//! They let the runtime, kernels and benchmarks run at real model sizes (memory traffic, kernel
//! shapes, KV cache sizes, vocabulary sizes) without downloading gigabytes of weights, and they
//! load in llama.cpp too, for comparisons. The text they generate is noise, of course.
//!
//! - Weights: approximately normal (sum of four uniforms) with std 0.02, the usual initialiser
//!   scale, so activations stay in range through every layer; norm weights are 1.0 and F32, as
//!   llama.cpp stores them; other weights in the chosen dtype (F16 by default).
//! - Determinism: the output depends only on the seed. Each tensor is cut into fixed-size chunks,
//!   each with its own generator seeded from (seed, tensor, chunk), so chunks are generated on all
//!   cores in parallel and the file is identical whatever the thread count.
//! - Streaming: the file is written chunk by chunk through [`GgufWriter`]; a 13 GB model never
//!   sits in memory, and it appears at the destination only when complete.
//! - Vocabularies are synthetic but valid for greta's tokenizers and llama.cpp's: unique strings,
//!   the control/byte tokens the real models have at the real ids, and (for the GPT-2 style
//!   Llama 3 vocabulary) a merge for every merged token whose parts are tokens.

use std::path::Path;
use std::str::FromStr;

use crate::gguf::{GgmlType, GgufError, GgufFile, GgufWriter, Value};

/// The model sizes `greta model synth` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Llama-2-7B: SentencePiece vocabulary of 32000, multi-head attention.
    Llama2_7B,
    /// Llama-3-8B: GPT-2 style BPE vocabulary of 128256, grouped-query attention (8 KV heads).
    Llama3_8B,
    /// Llama-3.2-1B: like Llama 3 at 2048 wide, tied embeddings, Llama 3.1 RoPE scaling.
    Llama32_1B,
    /// A small model for tests: fast to write, every tensor kind present.
    Tiny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VocabKind {
    /// SentencePiece (`tokenizer.ggml.model = "llama"`).
    Spm,
    /// GPT-2 style byte-level BPE with Llama 3's special tokens (`"gpt2"`, pre `"llama-bpe"`).
    Llama3Bpe,
}

/// Hyper-parameters of a shape (the values of the real model's config).
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeSpec {
    pub key: &'static str,
    pub general_name: &'static str,
    pub dim: u64,
    pub n_layers: u64,
    pub n_heads: u64,
    pub n_kv_heads: u64,
    pub ffn: u64,
    pub vocab: u64,
    pub context: u64,
    pub rope_base: f32,
    pub rms_eps: f32,
    pub vocab_kind: VocabKind,
    /// Tied embeddings: no `output.weight`; the output projection reuses `token_embd.weight`.
    pub tied: bool,
    /// Llama 3.1-style RoPE scaling, stored (as llama.cpp's converter does) as a
    /// `rope_freqs.weight` tensor of per-frequency divisors.
    pub rope_scaling: Option<Llama3RopeScaling>,
}

/// Llama 3.1's `rope_scaling` config (`rope_type: llama3`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Llama3RopeScaling {
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_context: f32,
}

impl Shape {
    pub const ALL: [Shape; 4] = [
        Shape::Llama2_7B,
        Shape::Llama3_8B,
        Shape::Llama32_1B,
        Shape::Tiny,
    ];

    pub fn spec(self) -> ShapeSpec {
        match self {
            Shape::Llama2_7B => ShapeSpec {
                key: "7b",
                general_name: "Llama 2 7B (synthetic, random weights)",
                dim: 4096,
                n_layers: 32,
                n_heads: 32,
                n_kv_heads: 32,
                ffn: 11008,
                vocab: 32000,
                context: 4096,
                rope_base: 10000.0,
                rms_eps: 1e-5,
                vocab_kind: VocabKind::Spm,
                tied: false,
                rope_scaling: None,
            },
            Shape::Llama3_8B => ShapeSpec {
                key: "8b",
                general_name: "Llama 3 8B (synthetic, random weights)",
                dim: 4096,
                n_layers: 32,
                n_heads: 32,
                n_kv_heads: 8,
                ffn: 14336,
                vocab: 128256,
                context: 8192,
                rope_base: 500000.0,
                rms_eps: 1e-5,
                vocab_kind: VocabKind::Llama3Bpe,
                tied: false,
                rope_scaling: None,
            },
            // The real config says 131072 tokens of context (reached through RoPE scaling);
            // the metadata keeps the real value, and runtimes cap their KV cache with -c.
            Shape::Llama32_1B => ShapeSpec {
                key: "1b",
                general_name: "Llama 3.2 1B (synthetic, random weights)",
                dim: 2048,
                n_layers: 16,
                n_heads: 32,
                n_kv_heads: 8,
                ffn: 8192,
                vocab: 128256,
                context: 131072,
                rope_base: 500000.0,
                rms_eps: 1e-5,
                vocab_kind: VocabKind::Llama3Bpe,
                tied: true,
                rope_scaling: Some(Llama3RopeScaling {
                    factor: 32.0,
                    low_freq_factor: 1.0,
                    high_freq_factor: 4.0,
                    original_context: 8192.0,
                }),
            },
            // ffn 352 (not 344 = 8/3·128) so that every row is whole Q8_0 blocks.
            Shape::Tiny => ShapeSpec {
                key: "tiny",
                general_name: "tiny Llama (synthetic, random weights)",
                dim: 128,
                n_layers: 2,
                n_heads: 4,
                n_kv_heads: 2,
                ffn: 352,
                vocab: 512,
                context: 2048,
                rope_base: 10000.0,
                rms_eps: 1e-5,
                vocab_kind: VocabKind::Spm,
                tied: false,
                rope_scaling: None,
            },
        }
    }
}

impl FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> Result<Shape, String> {
        Shape::ALL
            .into_iter()
            .find(|sh| sh.spec().key.eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let keys: Vec<_> = Shape::ALL.iter().map(|s| s.spec().key).collect();
                format!("unknown shape `{s}` (shapes: {})", keys.join(", "))
            })
    }
}

impl ShapeSpec {
    pub fn head_dim(&self) -> u64 {
        self.dim / self.n_heads
    }

    /// Every tensor: (name, dims in ggml order, whether it is a norm/F32 vector).
    pub fn tensors(&self) -> Vec<(String, Vec<u64>, bool)> {
        let (d, kv, f, v) = (
            self.dim,
            self.n_kv_heads * self.head_dim(),
            self.ffn,
            self.vocab,
        );
        let mut t = vec![("token_embd.weight".to_string(), vec![d, v], false)];
        if self.rope_scaling.is_some() {
            t.push(("rope_freqs.weight".into(), vec![self.head_dim() / 2], true));
        }
        for i in 0..self.n_layers {
            let b = |n: &str| format!("blk.{i}.{n}.weight");
            t.push((b("attn_norm"), vec![d], true));
            t.push((b("attn_q"), vec![d, d], false));
            t.push((b("attn_k"), vec![d, kv], false));
            t.push((b("attn_v"), vec![d, kv], false));
            t.push((b("attn_output"), vec![d, d], false));
            t.push((b("ffn_norm"), vec![d], true));
            t.push((b("ffn_gate"), vec![d, f], false));
            t.push((b("ffn_up"), vec![d, f], false));
            t.push((b("ffn_down"), vec![f, d], false));
        }
        t.push(("output_norm.weight".into(), vec![d], true));
        if !self.tied {
            t.push(("output.weight".into(), vec![d, v], false));
        }
        t
    }

    /// Llama 3.1's per-frequency RoPE divisors, computed as llama.cpp's converter does.
    pub fn rope_freqs(&self) -> Option<Vec<f32>> {
        let s = self.rope_scaling?;
        let dim = self.head_dim() as f64;
        let low_wavelen = s.original_context as f64 / s.low_freq_factor as f64;
        let high_wavelen = s.original_context as f64 / s.high_freq_factor as f64;
        let factors = (0..self.head_dim() / 2)
            .map(|i| {
                let freq = 1.0 / (self.rope_base as f64).powf((2 * i) as f64 / dim);
                let wavelen = 2.0 * std::f64::consts::PI / freq;
                if wavelen < high_wavelen {
                    1.0
                } else if wavelen > low_wavelen {
                    s.factor
                } else {
                    let smooth = (s.original_context as f64 / wavelen - s.low_freq_factor as f64)
                        / (s.high_freq_factor - s.low_freq_factor) as f64;
                    (1.0 / ((1.0 - smooth) / s.factor as f64 + smooth)) as f32
                }
            })
            .collect();
        Some(factors)
    }
}

/// llama.cpp's `general.file_type` (LLAMA_FTYPE_*) for a weight type.
fn file_type(ty: GgmlType) -> u32 {
    match ty {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::Q8_0 => 7,
        GgmlType::BF16 => 32,
        GgmlType::Unsupported { .. } => 0,
    }
}

/// llama.cpp's token types.
pub mod token_type {
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const BYTE: i32 = 6;
}

/// A synthetic vocabulary in GGUF form.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    pub tokens: Vec<String>,
    pub scores: Vec<f32>,
    pub types: Vec<i32>,
    /// BPE merges ("left right", highest priority first); empty for SentencePiece.
    pub merges: Vec<String>,
    pub bos: u32,
    pub eos: u32,
    pub unk: Option<u32>,
}

/// Characters that multi-character pieces are built from: the word-start marker and letters.
fn letters(word_start: char) -> Vec<char> {
    std::iter::once(word_start)
        .chain('a'..='z')
        .chain('A'..='Z')
        .collect()
}

/// Distinct pieces, shortest first: every 2-letter combination, then 3-letter ones built as a
/// 2-letter piece plus a letter, and so on, so every piece longer than one character splits into
/// two shorter pieces of the vocabulary (its merge). Returns (piece, left, right).
fn merged_pieces(alphabet: &[char], n: usize) -> Vec<(String, String, String)> {
    let mut out = Vec::with_capacity(n);
    let mut prev: Vec<String> = alphabet.iter().map(|c| c.to_string()).collect();
    while out.len() < n {
        let mut next = Vec::new();
        'level: for left in &prev {
            for c in alphabet {
                if out.len() == n {
                    break 'level;
                }
                let piece = format!("{left}{c}");
                out.push((piece.clone(), left.clone(), c.to_string()));
                next.push(piece);
            }
        }
        prev = next;
    }
    out
}

/// A SentencePiece vocabulary laid out like Llama 2's: `<unk>`, `<s>`, `</s>`, the 256 byte
/// tokens `<0x00>`..`<0xFF>`, then normal pieces (single characters, then merged pieces) with
/// scores falling by 1 per piece as in the real one.
pub fn spm_vocab(n: usize) -> Vocab {
    let mut tokens = vec!["<unk>".to_string(), "<s>".into(), "</s>".into()];
    let mut types = vec![
        token_type::UNKNOWN,
        token_type::CONTROL,
        token_type::CONTROL,
    ];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(token_type::BYTE);
    }
    let mut scores = vec![0.0; tokens.len()];
    let singles = std::iter::once('▁').chain((33u8..=126).map(char::from));
    let mut normal: Vec<String> = singles.map(String::from).collect();
    let remaining = n.saturating_sub(tokens.len() + normal.len());
    normal.extend(
        merged_pieces(&letters('▁'), remaining)
            .into_iter()
            .map(|p| p.0),
    );
    for (i, piece) in normal
        .into_iter()
        .enumerate()
        .take(n.saturating_sub(tokens.len()))
    {
        tokens.push(piece);
        types.push(token_type::NORMAL);
        scores.push(-(i as f32));
    }
    tokens.truncate(n);
    types.truncate(n);
    scores.truncate(n);
    Vocab {
        tokens,
        scores,
        types,
        merges: Vec::new(),
        bos: 1,
        eos: 2,
        unk: Some(0),
    }
}

/// GPT-2's byte → printable character table (`bytes_to_unicode`), in its order.
pub fn gpt2_byte_chars() -> Vec<(u8, char)> {
    let mut out = Vec::with_capacity(256);
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    for b in 0..=255u8 {
        if printable(b) {
            out.push((b, char::from(b)));
        }
    }
    let mut n = 0u32;
    for b in 0..=255u8 {
        if !printable(b) {
            out.push((b, char::from_u32(256 + n).expect("valid char")));
            n += 1;
        }
    }
    out
}

/// Llama 3's 256 special tokens (from id 128000), in the 3.0 or 3.1/3.2 naming.
fn llama3_specials(v31: bool) -> Vec<String> {
    let mut named: Vec<(usize, &str)> = vec![
        (0, "<|begin_of_text|>"),
        (1, "<|end_of_text|>"),
        (6, "<|start_header_id|>"),
        (7, "<|end_header_id|>"),
        (9, "<|eot_id|>"),
    ];
    if v31 {
        named.extend([
            (4, "<|finetune_right_pad_id|>"),
            (8, "<|eom_id|>"),
            (10, "<|python_tag|>"),
        ]);
    }
    let mut reserved = 0;
    (0..256)
        .map(|i| match named.iter().find(|(j, _)| *j == i) {
            Some((_, name)) => name.to_string(),
            None => {
                reserved += 1;
                format!("<|reserved_special_token_{}|>", reserved - 1)
            }
        })
        .collect()
}

/// A GPT-2 style byte-level BPE vocabulary shaped like Llama 3's: `n - 256` normal tokens (the
/// 256 byte characters, then merged pieces, each with its merge), then 256 special tokens.
pub fn llama3_vocab(n: usize, v31: bool) -> Vocab {
    let n_normal = n.saturating_sub(256);
    let mut tokens: Vec<String> = gpt2_byte_chars()
        .into_iter()
        .map(|(_, c)| c.to_string())
        .collect();
    tokens.truncate(n_normal);
    let pieces = merged_pieces(&letters('Ġ'), n_normal.saturating_sub(tokens.len()));
    let merges = pieces.iter().map(|(_, l, r)| format!("{l} {r}")).collect();
    tokens.extend(pieces.into_iter().map(|p| p.0));
    let mut types = vec![token_type::NORMAL; tokens.len()];
    tokens.extend(llama3_specials(v31));
    types.resize(tokens.len(), token_type::CONTROL);
    let scores = vec![0.0; tokens.len()];
    Vocab {
        tokens,
        scores,
        types,
        merges,
        bos: n_normal as u32,
        eos: n_normal as u32 + 1,
        unk: None,
    }
}

/// What to synthesise.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    pub shape: Shape,
    /// The type of every weight matrix (norms are always F32): F32, F16, BF16 or Q8_0.
    pub dtype: GgmlType,
    pub seed: u64,
    /// Worker threads generating data; 0 = all cores.
    pub threads: usize,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSummary {
    pub n_tensors: usize,
    pub n_params: u64,
    pub file_bytes: u64,
}

/// The header of a synthetic model: its metadata and tensor declarations.
pub fn plan(opts: &SynthOptions) -> Result<GgufWriter, GgufError> {
    let s = opts.shape.spec();
    if !opts.dtype.is_supported() {
        let kind = crate::gguf::ErrorKind::Writer(format!(
            "cannot synthesise {} weights (F32, F16, BF16, Q8_0)",
            opts.dtype
        ));
        return Err(GgufError::new(Path::new("<synth>"), kind));
    }
    let mut w = GgufWriter::new();
    let u = |v: u64| Value::U32(v as u32);
    w.add("general.architecture", "llama")?;
    w.add("general.name", s.general_name)?;
    w.add("general.file_type", file_type(opts.dtype))?;
    w.add("general.quantization_version", 2u32)?;
    w.add("llama.vocab_size", u(s.vocab))?;
    w.add("llama.context_length", u(s.context))?;
    w.add("llama.embedding_length", u(s.dim))?;
    w.add("llama.block_count", u(s.n_layers))?;
    w.add("llama.feed_forward_length", u(s.ffn))?;
    w.add("llama.rope.dimension_count", u(s.head_dim()))?;
    w.add("llama.attention.head_count", u(s.n_heads))?;
    w.add("llama.attention.head_count_kv", u(s.n_kv_heads))?;
    w.add("llama.attention.layer_norm_rms_epsilon", s.rms_eps)?;
    w.add("llama.rope.freq_base", s.rope_base)?;
    let vocab = match s.vocab_kind {
        VocabKind::Spm => spm_vocab(s.vocab as usize),
        VocabKind::Llama3Bpe => llama3_vocab(s.vocab as usize, s.rope_scaling.is_some()),
    };
    match s.vocab_kind {
        VocabKind::Spm => {
            w.add("tokenizer.ggml.model", "llama")?;
            w.add("tokenizer.ggml.pre", "default")?;
        }
        VocabKind::Llama3Bpe => {
            w.add("tokenizer.ggml.model", "gpt2")?;
            w.add("tokenizer.ggml.pre", "llama-bpe")?;
        }
    }
    w.add("tokenizer.ggml.tokens", Value::string_array(vocab.tokens))?;
    w.add("tokenizer.ggml.scores", Value::f32_array(vocab.scores))?;
    w.add("tokenizer.ggml.token_type", Value::i32_array(vocab.types))?;
    if !vocab.merges.is_empty() {
        w.add("tokenizer.ggml.merges", Value::string_array(vocab.merges))?;
    }
    w.add("tokenizer.ggml.bos_token_id", vocab.bos)?;
    w.add("tokenizer.ggml.eos_token_id", vocab.eos)?;
    if let Some(unk) = vocab.unk {
        w.add("tokenizer.ggml.unknown_token_id", unk)?;
    }
    w.add("tokenizer.ggml.add_bos_token", true)?;
    w.add("tokenizer.ggml.add_eos_token", false)?;
    for (name, dims, is_f32) in s.tensors() {
        w.add_tensor(name, &dims, if is_f32 { GgmlType::F32 } else { opts.dtype })?;
    }
    Ok(w)
}

/// Elements per generation chunk: a multiple of the Q8_0 block, small enough that a chunk per
/// thread stays in a few MB.
const CHUNK: u64 = 1 << 20;
/// Standard deviation of weights.
pub const WEIGHT_STD: f32 = 0.02;

/// SplitMix64: seeds a generator from a seed and indices.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// xoshiro256++: fast, and written out here (not taken from `rand`) so that a seed gives the
/// same file whatever version of `rand` the build resolves.
struct Xoshiro256([u64; 4]);

impl Xoshiro256 {
    fn new(seed: u64) -> Xoshiro256 {
        let mut s = seed;
        let mut next = || {
            s = splitmix64(s);
            s
        };
        Xoshiro256([next(), next(), next(), next()])
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// Approximately normal (Irwin–Hall of four 16-bit uniforms; mean 0, std 1, |x| < 3.5).
    fn next_normal(&mut self) -> f32 {
        let r = self.next_u64();
        let sum = (r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48);
        const SCALE: f32 = 1.732_050_8 / 65536.0; // sqrt(3) / 2^16
        (sum as f32 - 2.0 * 65535.0) * SCALE
    }
}

/// One chunk of a tensor's data, encoded in the tensor's type.
fn gen_chunk(seed: u64, tensor: u64, chunk: u64, len: usize, ty: GgmlType, fill: Fill) -> Vec<u8> {
    let values: Vec<f32> = match fill {
        Fill::Ones => vec![1.0; len],
        Fill::Values(v) => v[(chunk * CHUNK) as usize..][..len].to_vec(),
        Fill::Random => {
            let mut rng = Xoshiro256::new(splitmix64(seed ^ splitmix64(tensor << 32 | chunk)));
            (0..len).map(|_| rng.next_normal() * WEIGHT_STD).collect()
        }
    };
    let mut out = Vec::new();
    crate::gguf::quantize_row(ty, &values, &mut out)
        .expect("chunks are whole blocks of a supported type");
    out
}

#[derive(Clone, Copy)]
enum Fill<'a> {
    Ones,
    Values(&'a [f32]),
    Random,
}

/// Writes the tiny model ([`Shape::Tiny`]) with weight matrices of `dtype` from `seed` into
/// `dir` as `tiny-{dtype}.gguf` (one thread, no progress) and opens it: what tests run on.
pub fn tiny(dir: &Path, dtype: GgmlType, seed: u64) -> Result<GgufFile, GgufError> {
    let path = dir.join(format!("tiny-{}.gguf", dtype.name()));
    let opts = SynthOptions {
        shape: Shape::Tiny,
        dtype,
        seed,
        threads: 1,
    };
    synthesize(&opts, &path, &mut |_, _| {})?;
    GgufFile::open(&path)
}

/// Writes a synthetic model to `path`, calling `progress(bytes_written, total_bytes)` as it goes.
pub fn synthesize(
    opts: &SynthOptions,
    path: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<SynthSummary, GgufError> {
    let spec = opts.shape.spec();
    let w = plan(opts)?;
    let total = w.file_size();
    let n_tensors = w.tensors().len();
    let n_params = w.tensors().iter().map(|t| t.n_elements()).sum();
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        opts.threads
    };
    let rope_freqs = spec.rope_freqs();
    let tensors = w.tensors().to_vec();
    let mut stream = w.create(path)?;
    let mut done = total - tensors.iter().map(|t| t.size_bytes).sum::<u64>();
    progress(done, total);
    // A writer thread takes finished chunks so that the disk writes while the next batch is
    // generated; the bounded channel keeps at most two batches in memory.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2 * threads);
    let writer = std::thread::spawn(move || -> Result<(), GgufError> {
        for chunk in rx {
            stream.write_bytes(&chunk)?;
        }
        stream.commit()
    });
    'tensors: for (ti, t) in tensors.iter().enumerate() {
        let fill = if t.name == "rope_freqs.weight" {
            Fill::Values(
                rope_freqs
                    .as_deref()
                    .expect("rope_freqs only with rope scaling"),
            )
        } else if t.dims.len() == 1 {
            Fill::Ones
        } else {
            Fill::Random
        };
        let n = t.n_elements();
        let n_chunks = n.div_ceil(CHUNK);
        let mut c = 0;
        while c < n_chunks {
            let batch: Vec<u64> = (c..n_chunks.min(c + threads as u64)).collect();
            let chunks: Vec<Vec<u8>> = std::thread::scope(|scope| {
                let handles: Vec<_> = batch
                    .iter()
                    .map(|&ci| {
                        let len = (n - ci * CHUNK).min(CHUNK) as usize;
                        let (seed, ty) = (opts.seed, t.ty);
                        scope.spawn(move || gen_chunk(seed, ti as u64, ci, len, ty, fill))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("generator thread panicked"))
                    .collect()
            });
            c += batch.len() as u64;
            for bytes in chunks {
                done += bytes.len() as u64;
                if tx.send(bytes).is_err() {
                    // The writer stopped on an error; join it below to report that error.
                    break 'tensors;
                }
            }
            progress(done, total);
        }
    }
    drop(tx);
    writer.join().expect("writer thread panicked")?;
    progress(total, total);
    Ok(SynthSummary {
        n_tensors,
        n_params,
        file_bytes: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::{dequantize_row, GgufFile};
    use std::collections::HashSet;

    fn opts(shape: Shape, dtype: GgmlType, seed: u64, threads: usize) -> SynthOptions {
        SynthOptions {
            shape,
            dtype,
            seed,
            threads,
        }
    }

    #[test]
    fn real_shapes_match_the_published_models() {
        // Parameter counts of the published checkpoints (1B: plus the 32 rope_freqs divisors).
        let cases = [
            (Shape::Llama2_7B, 6_738_415_616u64, 291),
            (Shape::Llama3_8B, 8_030_261_248, 291),
            (Shape::Llama32_1B, 1_235_814_400 + 32, 147),
        ];
        for (shape, params, n_tensors) in cases {
            let w = plan(&opts(shape, GgmlType::F16, 0, 1)).unwrap();
            let got: u64 = w.tensors().iter().map(|t| t.n_elements()).sum();
            assert_eq!((got, w.tensors().len()), (params, n_tensors), "{shape:?}");
        }
        let w = plan(&opts(Shape::Llama3_8B, GgmlType::Q8_0, 0, 1)).unwrap();
        let by = |n: &str| w.tensors().iter().find(|t| t.name == n).unwrap().clone();
        assert_eq!(by("token_embd.weight").dims, vec![4096, 128256]);
        assert_eq!(by("output.weight").dims, vec![4096, 128256]);
        assert_eq!(by("blk.31.attn_k.weight").dims, vec![4096, 1024]);
        assert_eq!(by("blk.0.ffn_down.weight").dims, vec![14336, 4096]);
        assert_eq!(by("blk.0.ffn_down.weight").ty, GgmlType::Q8_0);
        assert_eq!(by("blk.0.attn_norm.weight").ty, GgmlType::F32);
        let w = plan(&opts(Shape::Llama32_1B, GgmlType::F16, 0, 1)).unwrap();
        assert!(w.tensors().iter().all(|t| t.name != "output.weight"));
        assert_eq!(w.tensors()[1].name, "rope_freqs.weight");
        let f16_7b = plan(&opts(Shape::Llama2_7B, GgmlType::F16, 0, 1))
            .unwrap()
            .file_size();
        assert!(
            (13_400_000_000..13_600_000_000).contains(&f16_7b),
            "{f16_7b}"
        );
    }

    #[test]
    fn llama3_rope_freqs() {
        let f = Shape::Llama32_1B.spec().rope_freqs().unwrap();
        assert_eq!(f.len(), 32);
        assert_eq!((f[0], f[31]), (1.0, 32.0));
        assert!(f.windows(2).all(|w| w[0] <= w[1]));
        assert!(Shape::Llama3_8B.spec().rope_freqs().is_none());
    }

    fn check_vocab(v: &Vocab, n: usize) {
        assert_eq!((v.tokens.len(), v.types.len(), v.scores.len()), (n, n, n));
        let set: HashSet<&str> = v.tokens.iter().map(|s| s.as_str()).collect();
        assert_eq!(set.len(), n, "tokens are unique");
        for m in &v.merges {
            let (l, r) = m.split_once(' ').unwrap();
            assert!(
                set.contains(l) && set.contains(r) && set.contains(format!("{l}{r}").as_str()),
                "{m}"
            );
        }
    }

    #[test]
    fn vocabularies_are_valid() {
        let spm = spm_vocab(32000);
        check_vocab(&spm, 32000);
        assert_eq!(&spm.tokens[..4], &["<unk>", "<s>", "</s>", "<0x00>"]);
        assert_eq!(spm.tokens[258], "<0xFF>");
        assert_eq!(spm.types[258], token_type::BYTE);
        assert_eq!(spm.tokens[259], "▁");
        let tiny = spm_vocab(512);
        check_vocab(&tiny, 512);
        let bpe = llama3_vocab(128256, false);
        check_vocab(&bpe, 128256);
        assert_eq!(bpe.merges.len(), 128000 - 256);
        assert_eq!((bpe.bos, bpe.eos), (128000, 128001));
        assert_eq!(bpe.tokens[128000], "<|begin_of_text|>");
        assert_eq!(bpe.tokens[128009], "<|eot_id|>");
        assert_eq!(bpe.tokens[128255], "<|reserved_special_token_250|>");
        assert_eq!(bpe.tokens[0], "!");
        let v31 = llama3_vocab(128256, true);
        assert_eq!(v31.tokens[128008], "<|eom_id|>");
        assert_eq!(v31.tokens[128255], "<|reserved_special_token_247|>");
        assert_eq!(
            gpt2_byte_chars()
                .iter()
                .find(|(b, _)| *b == b' ')
                .unwrap()
                .1,
            'Ġ'
        );
    }

    #[test]
    fn tiny_model_round_trips_and_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        for dtype in [GgmlType::F16, GgmlType::BF16, GgmlType::F32, GgmlType::Q8_0] {
            let path = dir.path().join(format!("tiny-{dtype}.gguf"));
            let mut calls = 0;
            let sum = synthesize(&opts(Shape::Tiny, dtype, 7, 2), &path, &mut |d, t| {
                assert!(d <= t);
                calls += 1;
            })
            .unwrap();
            assert!(calls >= 2);
            assert_eq!(sum.file_bytes, std::fs::metadata(&path).unwrap().len());
            let f = GgufFile::open(&path).unwrap();
            assert_eq!(f.get_str("general.architecture").unwrap(), Some("llama"));
            assert_eq!(f.get_u32("llama.embedding_length").unwrap(), Some(128));
            assert_eq!(f.get_u32("llama.attention.head_count_kv").unwrap(), Some(2));
            assert_eq!(f.get_u32("llama.rope.dimension_count").unwrap(), Some(32));
            assert_eq!(
                f.get_str_array("tokenizer.ggml.tokens")
                    .unwrap()
                    .unwrap()
                    .len(),
                512
            );
            assert_eq!(f.tensors().len(), 2 + 2 * 9 + 1);
            let norm = f.tensor("blk.1.ffn_norm.weight").unwrap();
            let mut x = vec![0.0; 128];
            dequantize_row(norm.ty, f.tensor_data(norm), &mut x).unwrap();
            assert!(norm.ty == GgmlType::F32 && x.iter().all(|&v| v == 1.0));
            let q = f.tensor("blk.0.attn_q.weight").unwrap();
            assert_eq!((q.ty, q.dims.as_slice()), (dtype, &[128u64, 128][..]));
            let mut w = vec![0.0; 128 * 128];
            dequantize_row(q.ty, f.tensor_data(q), &mut w).unwrap();
            let mean = w.iter().sum::<f32>() / w.len() as f32;
            let std =
                (w.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / w.len() as f32).sqrt();
            assert!(
                mean.abs() < 1e-3 && (std - WEIGHT_STD).abs() < 1e-3,
                "{mean} {std}"
            );
        }
        // The same seed gives the same bytes whatever the thread count; another seed does not.
        let a = dir.path().join("a.gguf");
        let b = dir.path().join("b.gguf");
        let c = dir.path().join("c.gguf");
        synthesize(&opts(Shape::Tiny, GgmlType::F16, 1, 1), &a, &mut |_, _| {}).unwrap();
        synthesize(&opts(Shape::Tiny, GgmlType::F16, 1, 3), &b, &mut |_, _| {}).unwrap();
        synthesize(&opts(Shape::Tiny, GgmlType::F16, 2, 3), &c, &mut |_, _| {}).unwrap();
        let (a, b, c) = (
            std::fs::read(a).unwrap(),
            std::fs::read(b).unwrap(),
            std::fs::read(c).unwrap(),
        );
        assert!(a == b && a != c);
    }

    #[test]
    fn shapes_parse_by_name() {
        assert_eq!("7B".parse::<Shape>().unwrap(), Shape::Llama2_7B);
        assert_eq!("tiny".parse::<Shape>().unwrap(), Shape::Tiny);
        let e = "13b".parse::<Shape>().unwrap_err();
        assert!(e.contains("7b, 8b, 1b, tiny"), "{e}");
        assert!(plan(&opts(Shape::Tiny, GgmlType::by_name("q4_k").unwrap(), 0, 1)).is_err());
    }
}
