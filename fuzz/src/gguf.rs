//! The `gguf` target: any bytes through [`GgufFile::from_bytes`]; on success, every accessor a
//! caller may use on what the reader accepted.
//!
//! The reader promises (model/src/gguf/read.rs) that a file it accepts has been validated in full:
//! keys and tensor names are unique, every tensor's data lies inside the file, its size matches its
//! dims and type, offsets are aligned. So [`GgufFile::tensor_data`] is infallible, and a supported
//! tensor's first row dequantizes. These are asserted.

use greta_model::gguf::{dequantize_row, GgufFile, Value};

/// The metadata keys `greta run` and the tokenizer read, asked of every accepted file with every
/// getter (most fuzzed files have some of them, with any type).
pub const KEYS: &[&str] = &[
    "general.architecture",
    "general.alignment",
    "general.name",
    "general.file_type",
    "llama.vocab_size",
    "llama.context_length",
    "llama.embedding_length",
    "llama.block_count",
    "llama.feed_forward_length",
    "llama.rope.dimension_count",
    "llama.rope.freq_base",
    "llama.attention.head_count",
    "llama.attention.head_count_kv",
    "llama.attention.layer_norm_rms_epsilon",
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.scores",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.unknown_token_id",
    "tokenizer.ggml.eot_token_id",
    "tokenizer.ggml.add_bos_token",
    "tokenizer.ggml.add_eos_token",
    "tokenizer.ggml.add_space_prefix",
];

/// Opens `bytes` and, when the reader accepts them, touches all of the file.
pub fn exercise(bytes: &[u8]) {
    let Ok(f) = GgufFile::from_bytes(bytes.to_vec()) else {
        return;
    };
    touch(&f);
}

/// Every accessor of an accepted file, with the properties the reader documents.
pub fn touch(f: &GgufFile) {
    let len = f.bytes().len() as u64;
    assert!((2..=3).contains(&f.version()));
    assert!(f.alignment().is_power_of_two());
    assert!(f.data_offset().is_multiple_of(f.alignment()));
    let _ = format!("{f:?}");

    for (key, value) in f.metadata() {
        // The same value, not an equal one (NaN is not equal to itself).
        assert!(
            f.get(key).is_some_and(|v| std::ptr::eq(v, value)),
            "key `{key}` is not unique"
        );
        touch_value(value);
        getters(f, key);
    }
    for key in KEYS {
        getters(f, key);
    }

    for t in f.tensors() {
        assert!(
            f.tensor(&t.name).is_some_and(|u| std::ptr::eq(u, t)),
            "tensor `{}` is not unique",
            t.name
        );
        assert!(t.dims.len() <= 4);
        assert_eq!(t.offset % f.alignment(), 0);
        let n = t.n_elements();
        let (row, rows) = (t.row_len(), t.n_rows());
        assert_eq!(t.ty.bytes_for(n), Some(t.size_bytes), "`{}`", t.name);
        let data = f.tensor_data(t);
        assert_eq!(data.len() as u64, t.size_bytes, "`{}`", t.name);
        assert!(f.data_offset() + t.offset + t.size_bytes <= len);
        let _ = (
            t.ty.name(),
            t.ty.id(),
            t.ty.block_size(),
            format!("{}", t.ty),
        );
        if n == 0 {
            continue;
        }
        assert_eq!(row.checked_mul(rows), Some(n), "`{}`: {:?}", t.name, t.dims);
        if t.ty.is_supported() {
            // The first row: `row` elements, whole blocks (checked at open), inside the data.
            let bytes = t.ty.bytes_for(row).expect("rows are whole blocks") as usize;
            let mut out = vec![0f32; row as usize];
            dequantize_row(t.ty, &data[..bytes], &mut out).expect("a supported row dequantizes");
        } else {
            let mut out = [0f32; 1];
            assert!(dequantize_row(t.ty, &[], &mut out).is_err());
        }
    }
}

fn getters(f: &GgufFile, key: &str) {
    let _ = f.get_u32(key);
    let _ = f.get_u64(key);
    let _ = f.get_f32(key);
    let _ = f.get_bool(key);
    let _ = f.get_str(key);
    let _ = f.get_str_array(key).map(|a| a.map(|a| a.len()));
    let _ = f.get_f32_array(key);
    let _ = f.get_i32_array(key);
    if let Err(e) = f.get_u32(key) {
        let _ = e.to_string();
    }
}

fn touch_value(v: &Value) {
    // `{}` elides arrays after 8 items; `{:#}` of a file's whole vocabulary would dominate the
    // time, so only short arrays get it.
    let _ = format!("{v}");
    let _ = (v.value_type().name(), v.type_description());
    let _ = (
        v.as_integer(),
        v.as_u64(),
        v.as_i64(),
        v.as_f64(),
        v.as_bool(),
        v.as_str(),
    );
    if let Some((_, items)) = v.as_array() {
        if items.len() <= 16 {
            let _ = format!("{v:#}");
        }
        for item in items.iter().take(64) {
            touch_value(item);
        }
    }
}
