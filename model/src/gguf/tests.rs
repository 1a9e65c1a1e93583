//! Tests of the GGUF reader and writer: the real stories260K file, write → read round trips, and
//! one corrupted or truncated buffer per validation rule.

use super::*;

const STORIES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/models/stories260K.gguf"
);

#[test]
fn opens_stories260k() {
    let f = GgufFile::open(std::path::Path::new(STORIES)).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.tensors().len(), 48);
    assert_eq!(f.metadata().len(), 19);
    assert_eq!(f.get_str("general.architecture").unwrap(), Some("llama"));
    assert_eq!(f.get_u32("llama.embedding_length").unwrap(), Some(64));
    assert_eq!(f.get_u32("llama.block_count").unwrap(), Some(5));
    assert_eq!(f.get_u32("llama.attention.head_count").unwrap(), Some(8));
    assert_eq!(f.get_u32("llama.attention.head_count_kv").unwrap(), Some(4));
    assert_eq!(f.get_u32("llama.feed_forward_length").unwrap(), Some(172));
    assert!(
        f.get_f32("llama.attention.layer_norm_rms_epsilon")
            .unwrap()
            .unwrap()
            > 0.0
    );
    let tokens = f.get_str_array("tokenizer.ggml.tokens").unwrap().unwrap();
    assert_eq!(tokens.len(), 512);
    assert_eq!(
        f.get_f32_array("tokenizer.ggml.scores")
            .unwrap()
            .unwrap()
            .len(),
        512
    );
    assert_eq!(
        f.get_i32_array("tokenizer.ggml.token_type")
            .unwrap()
            .unwrap()
            .len(),
        512
    );
    assert!(f.tensors().iter().all(|t| t.ty == GgmlType::F32));
    let k = f.tensor("blk.0.attn_k.weight").unwrap();
    assert_eq!(k.dims, vec![64, 32]);
    assert_eq!(k.size_bytes, 64 * 32 * 4);
    let data = f.tensor_data(k);
    assert_eq!(data.len(), 64 * 32 * 4);
    let mut row = vec![0f32; 64 * 32];
    dequantize_row(k.ty, data, &mut row).unwrap();
    assert!(row.iter().all(|v| v.is_finite()) && row.iter().any(|&v| v != 0.0));
    // Wrong-type getters name the key, what was expected and what was found.
    let e = f.get_u32("general.architecture").unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::WrongType { .. }));
    assert!(
        e.to_string().contains("general.architecture") && e.to_string().contains("string"),
        "{e}"
    );
    assert_eq!(f.get_u32("no.such.key").unwrap(), None);
}

// ---- a raw byte builder, to produce exactly the corruption each rule is about ----

#[derive(Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut r = Raw(b"GGUF".to_vec());
        r.u32(version).u64(n_tensors).u64(n_kv);
        r
    }
    fn u32(&mut self, v: u32) -> &mut Raw {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Raw {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Raw {
        self.0.extend_from_slice(b);
        self
    }
    fn str(&mut self, s: &str) -> &mut Raw {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    fn kv_u32(&mut self, key: &str, v: u32) -> &mut Raw {
        self.str(key).u32(4).u32(v)
    }
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Raw {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    fn pad(&mut self, a: usize) -> &mut Raw {
        while self.0.len() % a != 0 {
            self.0.push(0);
        }
        self
    }
    fn zeros(&mut self, n: usize) -> &mut Raw {
        self.0.resize(self.0.len() + n, 0);
        self
    }
    fn open(&self) -> Result<GgufFile, GgufError> {
        GgufFile::from_bytes(self.0.clone())
    }
}

/// Opens `raw`, expects an error, and checks its message mentions every `words`.
fn expect_err(raw: &Raw, words: &[&str]) -> ErrorKind {
    let e = raw.open().expect_err("the file should be rejected");
    let msg = e.to_string();
    assert!(msg.starts_with("<memory>: "), "{msg}");
    for w in words {
        assert!(msg.contains(w), "message {msg:?} should mention {w:?}");
    }
    e.kind
}

#[test]
fn minimal_raw_file_opens() {
    let mut r = Raw::header(2, 1, 1);
    r.kv_u32("a", 7).tensor("t", &[4], 0, 0).pad(32).zeros(16);
    let f = r.open().unwrap();
    assert_eq!(f.version(), 2);
    assert_eq!(f.get_u32("a").unwrap(), Some(7));
    assert_eq!(f.tensor_data(f.tensor("t").unwrap()).len(), 16);
}

#[test]
fn empty_and_short_files_are_truncated() {
    assert!(matches!(
        expect_err(&Raw(vec![]), &["truncated", "magic"]),
        ErrorKind::Truncated { .. }
    ));
    assert!(matches!(
        expect_err(&Raw(b"GG".to_vec()), &["truncated"]),
        ErrorKind::Truncated { .. }
    ));
    let r = Raw(b"GGUF\x03\x00".to_vec());
    assert!(matches!(
        expect_err(&r, &["version", "byte 4"]),
        ErrorKind::Truncated { .. }
    ));
}

#[test]
fn wrong_magic_says_what_was_found() {
    let mut r = Raw::header(3, 0, 0);
    r.0[..4].copy_from_slice(b"GGML");
    let k = expect_err(&r, &["not a GGUF file", "GGML", "47 47 4d 4c"]);
    assert!(matches!(k, ErrorKind::BadMagic { .. }));
}

#[test]
fn unsupported_versions() {
    let k = expect_err(&Raw::header(1, 0, 0), &["version 1", "v1"]);
    assert!(matches!(k, ErrorKind::UnsupportedVersion { version: 1 }));
    expect_err(&Raw::header(4, 0, 0), &["version 4"]);
    expect_err(&Raw::header(3u32.swap_bytes(), 0, 0), &["big-endian"]);
}

#[test]
fn absurd_counts() {
    let k = expect_err(
        &Raw::header(3, 1 << 40, 0),
        &["absurd tensor count", "byte 8"],
    );
    assert!(matches!(k, ErrorKind::AbsurdCount { what: "tensor", .. }));
    let k = expect_err(
        &Raw::header(3, 0, u64::MAX),
        &["absurd metadata key-value count", "byte 16"],
    );
    assert!(matches!(k, ErrorKind::AbsurdCount { .. }));
    let mut r = Raw::header(3, 0, 1);
    r.str("arr").u32(9).u32(4).u64(1 << 50).zeros(64);
    let k = expect_err(&r, &["absurd array element count"]);
    assert!(matches!(
        k,
        ErrorKind::AbsurdCount {
            what: "array element",
            ..
        }
    ));
}

#[test]
fn string_lengths_past_the_end() {
    let mut r = Raw::header(3, 0, 1);
    r.u64(1000).bytes(b"abcdefgh");
    let k = expect_err(
        &r,
        &["metadata key #0", "byte 24", "length 1000", "past the end"],
    );
    assert!(matches!(k, ErrorKind::StringPastEnd { .. }));
    let mut r = Raw::header(3, 0, 1);
    r.str("name").u32(8).u64(u64::MAX);
    let k = expect_err(&r, &["`name`", "past the end"]);
    assert!(matches!(k, ErrorKind::StringPastEnd { .. }));
}

#[test]
fn invalid_utf8_key() {
    let mut r = Raw::header(3, 0, 1);
    r.u64(2).bytes(&[0xff, 0xfe]).u32(4).u32(0);
    let k = expect_err(&r, &["metadata key #0", "byte 32", "UTF-8"]);
    assert!(matches!(k, ErrorKind::InvalidUtf8 { .. }));
}

#[test]
fn unknown_value_types() {
    let mut r = Raw::header(3, 0, 1);
    r.str("k").u32(13).u32(0);
    let k = expect_err(&r, &["`k`", "unknown value type 13", "byte 33"]);
    assert!(matches!(k, ErrorKind::UnknownValueType { type_id: 13, .. }));
    // ... also as an array's element type
    let mut r = Raw::header(3, 0, 1);
    r.str("k").u32(9).u32(77).u64(0);
    assert!(matches!(
        expect_err(&r, &["`k`", "77"]),
        ErrorKind::UnknownValueType { .. }
    ));
}

#[test]
fn bad_bool_and_deep_nesting() {
    let mut r = Raw::header(3, 0, 1);
    r.str("flag").u32(7).bytes(&[2]);
    assert!(matches!(
        expect_err(&r, &["`flag`", "bool"]),
        ErrorKind::BadValue { .. }
    ));
    let mut r = Raw::header(3, 0, 1);
    r.str("deep").u32(9);
    for _ in 0..100 {
        r.u32(9).u64(1);
    }
    r.u32(4).u64(0);
    assert!(matches!(
        expect_err(&r, &["`deep`", "nested"]),
        ErrorKind::NestingTooDeep { .. }
    ));
}

#[test]
fn duplicate_keys_and_tensors() {
    let mut r = Raw::header(3, 0, 2);
    r.kv_u32("a.b", 1).kv_u32("a.b", 2);
    let k = expect_err(&r, &["duplicate metadata key `a.b`", "byte 43"]);
    assert!(matches!(k, ErrorKind::DuplicateKey { .. }));
    let mut r = Raw::header(3, 2, 0);
    r.tensor("w", &[4], 0, 0)
        .tensor("w", &[4], 0, 32)
        .pad(32)
        .zeros(64);
    assert!(matches!(
        expect_err(&r, &["duplicate tensor name `w`"]),
        ErrorKind::DuplicateTensor { .. }
    ));
}

#[test]
fn too_many_dims_and_overflow() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t5", &[1, 1, 1, 1, 1], 0, 0).pad(32).zeros(32);
    assert!(matches!(
        expect_err(&r, &["`t5`", "5 dimensions"]),
        ErrorKind::TooManyDims { .. }
    ));
    let mut r = Raw::header(3, 1, 0);
    r.tensor("big", &[1 << 40, 1 << 40], 0, 0).pad(32);
    assert!(matches!(
        expect_err(&r, &["`big`", "overflow"]),
        ErrorKind::DimsOverflow { .. }
    ));
    // Element count fits but the byte size does not.
    let mut r = Raw::header(3, 1, 0);
    r.tensor("bytes", &[1 << 62], 0, 0).pad(32);
    assert!(matches!(
        expect_err(&r, &["`bytes`", "overflow"]),
        ErrorKind::DimsOverflow { .. }
    ));
}

#[test]
fn zero_dims_are_empty_tensors() {
    let mut r = Raw::header(3, 2, 0);
    r.tensor("empty", &[0, 8], 0, 0)
        .tensor("scalar", &[], 0, 0)
        .pad(32)
        .zeros(32);
    let f = r.open().unwrap();
    let e = f.tensor("empty").unwrap();
    assert_eq!(
        (e.n_elements(), e.size_bytes, f.tensor_data(e).len()),
        (0, 0, 0)
    );
    assert_eq!(f.tensor("scalar").unwrap().size_bytes, 4);
}

/// Found by fuzzing (`fuzz/`, target `gguf`, minimised): an empty tensor whose other dims
/// multiply past u64 opened, and its `n_rows()` (the product of `dims[1..]`) overflowed. The
/// non-zero dims of every tensor must multiply within 63 bits, like a non-empty tensor's.
#[test]
fn empty_tensors_of_overflowing_dims_are_refused() {
    // The fuzzer's input: version 3, one tensor `t` of F32 [0, 2^46, 2^48] at offset 0.
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[0, 1 << 46, 1 << 48], 0, 0).pad(32);
    assert_eq!(r.0.len(), 96);
    assert!(matches!(
        expect_err(
            &r,
            &["`t`", "[0, 70368744177664, 281474976710656]", "overflow"]
        ),
        ErrorKind::DimsOverflow { .. }
    ));
    for dims in [
        &[8, 0, 1 << 40, 1 << 40][..],
        &[1 << 32, 1 << 31, 0],
        &[0, 1 << 63],
    ] {
        let mut r = Raw::header(3, 1, 0);
        r.tensor("t", dims, 0, 0).pad(32);
        assert!(
            matches!(
                expect_err(&r, &["`t`", "overflow"]),
                ErrorKind::DimsOverflow { .. }
            ),
            "{dims:?}"
        );
    }
    // Non-zero dims that fit (2^62 elements) still make an empty tensor, with a row count.
    let mut r = Raw::header(3, 1, 0);
    r.tensor("t", &[0, 1 << 31, 1 << 31], 0, 0).pad(32);
    let f = r.open().unwrap();
    let t = f.tensor("t").unwrap();
    assert_eq!((t.n_elements(), t.n_rows(), t.size_bytes), (0, 1 << 62, 0));
    // The writer refuses what the reader refuses.
    let e = GgufWriter::new()
        .add_tensor("t", &[0, 1 << 46, 1 << 48], GgmlType::F32)
        .unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::DimsOverflow { .. }), "{e}");
}

#[test]
fn unknown_and_unsupported_ggml_types() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("q", &[32], 99, 0).pad(32).zeros(64);
    let k = expect_err(&r, &["`q`", "type id 99", "unknown"]);
    assert!(matches!(k, ErrorKind::UnknownGgmlType { id: 99, .. }));
    let mut r = Raw::header(3, 1, 0);
    r.tensor("q", &[32], 4, 0).pad(32).zeros(64);
    expect_err(&r, &["Q4_2", "removed"]);
    // Known but unsupported types open, with their real size, and fail when converted.
    let mut r = Raw::header(3, 1, 0);
    r.tensor("k", &[256, 2], 12, 0).pad(32).zeros(288);
    let f = r.open().unwrap();
    let t = f.tensor("k").unwrap();
    assert_eq!((t.ty.name(), t.size_bytes), ("Q4_K", 288));
    assert!(!t.ty.is_supported());
    let e = dequantize_row(t.ty, f.tensor_data(t), &mut [0.0; 512]).unwrap_err();
    assert!(e.to_string().contains("Q4_K"), "{e}");
}

#[test]
fn q8_0_rows_must_be_whole_blocks() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[33, 2], 8, 0).pad(32).zeros(256);
    let k = expect_err(&r, &["`w`", "Q8_0", "33", "multiple of the block size 32"]);
    assert!(matches!(k, ErrorKind::RowNotBlockMultiple { .. }));
}

#[test]
fn tensor_data_outside_the_file() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[64], 0, 0).pad(32).zeros(100);
    let k = expect_err(&r, &["`w`", "outside the file"]);
    assert!(matches!(k, ErrorKind::TensorOutOfBounds { .. }));
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[4], 0, u64::MAX - 31).pad(32).zeros(16);
    assert!(matches!(
        expect_err(&r, &["`w`", "outside"]),
        ErrorKind::TensorOutOfBounds { .. }
    ));
}

#[test]
fn misaligned_offsets_and_bad_alignment() {
    let mut r = Raw::header(3, 1, 0);
    r.tensor("w", &[4], 0, 4).pad(32).zeros(32);
    let k = expect_err(&r, &["`w`", "offset 4", "alignment 32"]);
    assert!(matches!(k, ErrorKind::MisalignedTensor { .. }));
    let mut r = Raw::header(3, 0, 1);
    r.kv_u32("general.alignment", 3);
    assert!(matches!(
        expect_err(&r, &["general.alignment", "3"]),
        ErrorKind::BadAlignment { .. }
    ));
    // A custom alignment moves the data start.
    let mut r = Raw::header(3, 1, 1);
    r.kv_u32("general.alignment", 256)
        .tensor("w", &[4], 0, 0)
        .pad(256);
    r.bytes(&1.5f32.to_le_bytes()).zeros(12);
    let f = r.open().unwrap();
    assert_eq!((f.alignment(), f.data_offset()), (256, 256));
    assert_eq!(
        &f.tensor_data(f.tensor("w").unwrap())[..4],
        &1.5f32.to_le_bytes()
    );
}

#[test]
fn getters_check_types_and_ranges() {
    let mut r = Raw::header(3, 0, 3);
    r.str("big").u32(10).u64(1 << 40);
    r.str("small").u32(1).bytes(&[5]);
    r.str("neg").u32(5).u32(-3i32 as u32);
    let f = r.open().unwrap();
    let e = f.get_u32("big").unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::OutOfRange { .. }) && e.to_string().contains("`big`"));
    assert_eq!(f.get_u64("big").unwrap(), Some(1 << 40));
    assert_eq!(f.get_u32("small").unwrap(), Some(5));
    assert!(f.get_u32("neg").is_err());
    let e = f.get_f32("small").unwrap_err();
    assert!(
        e.to_string().contains("expected f32 or f64, found i8"),
        "{e}"
    );
    assert!(f.get_str_array("small").is_err());
}

// ---- writer ----

fn sample_values() -> Vec<(&'static str, Value)> {
    vec![
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
        ("strings", Value::string_array(["a", "", "<0x0A>"])),
        ("floats", Value::f32_array([0.0, -1.0, 3.25])),
        ("ints", Value::i32_array([1, 2, 3, 6])),
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
    ]
}

fn pseudo_random(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32 - 0.5) * 4.0
        })
        .collect()
}

#[test]
fn round_trip_metadata_and_tensors() {
    let mut w = GgufWriter::new();
    for (k, v) in sample_values() {
        w.add(k, v).unwrap();
    }
    let shapes: [(&str, Vec<u64>, GgmlType); 5] = [
        ("f32", vec![7, 3], GgmlType::F32),
        ("f16", vec![64, 2, 2], GgmlType::F16),
        ("bf16", vec![5], GgmlType::BF16),
        ("q8", vec![96, 4], GgmlType::Q8_0),
        ("empty", vec![0, 3], GgmlType::F32),
    ];
    for (name, dims, ty) in &shapes {
        w.add_tensor(*name, dims, *ty).unwrap();
    }
    w.add_tensor("q4k", &[256], GgmlType::by_name("q4_k").unwrap())
        .unwrap();
    let expected_size = w.file_size();
    let mut s = w.begin(Vec::new()).unwrap();
    let inputs: Vec<Vec<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(i, (_, d, _))| pseudo_random(d.iter().product::<u64>() as usize, i as u32))
        .collect();
    for x in &inputs[..4] {
        // Two chunks per tensor where the type allows, to exercise chunked writes.
        let half = if x.len() % 64 == 0 {
            x.len() / 2
        } else {
            x.len()
        };
        s.write_f32(&x[..half]).unwrap();
        s.write_f32(&x[half..]).unwrap();
    }
    assert_eq!(s.next_tensor().unwrap().name, "q4k"); // the empty tensor needed no data
    s.write_bytes(&[7u8; 144]).unwrap();
    let bytes = s.finish().unwrap();
    assert_eq!(bytes.len() as u64, expected_size);

    let f = GgufFile::from_bytes(bytes).unwrap();
    assert_eq!(f.version(), 3);
    let got: Vec<(&str, &Value)> = f.metadata().iter().map(|(k, v)| (k.as_str(), v)).collect();
    let want = sample_values();
    assert_eq!(got, want.iter().map(|(k, v)| (*k, v)).collect::<Vec<_>>());
    assert_eq!(f.tensors().len(), 6);
    for ((name, dims, ty), x) in shapes.iter().zip(&inputs) {
        let t = f.tensor(name).unwrap();
        assert_eq!((&t.dims, t.ty), (dims, *ty));
        assert_eq!(t.offset % 32, 0);
        let mut out = vec![0f32; x.len()];
        dequantize_row(t.ty, f.tensor_data(t), &mut out).unwrap();
        let tol = match ty {
            GgmlType::F32 => 0.0,
            GgmlType::F16 => 2e-3,
            GgmlType::BF16 => 2e-2,
            _ => 2.0 / 127.0,
        };
        for (a, b) in out.iter().zip(x) {
            assert!((a - b).abs() <= tol, "{name}: {a} vs {b}");
        }
    }
    let q4k = f.tensor("q4k").unwrap();
    assert_eq!(f.tensor_data(q4k), &[7u8; 144]);
}

#[test]
fn q8_0_matches_ggml_reference() {
    let mut x = [0f32; 32];
    for (i, v) in x.iter_mut().enumerate() {
        *v = (i as f32 - 10.0) * 0.37;
    }
    let b = BlockQ8_0::quantize(&x);
    let d = 21.0 * 0.37 / 127.0;
    assert_eq!(b.d, half::f16::from_f32(d));
    assert_eq!(b.qs[31], 127);
    assert_eq!(b.qs[10], 0);
    assert_eq!(b.qs[0], (-10.0f32 * 0.37 * (1.0 / d)).round() as i8);
    assert_eq!(BlockQ8_0::from_bytes(&b.to_bytes()), b);
    let zero = BlockQ8_0::quantize(&[0.0; 32]);
    assert_eq!((zero.d.to_f32(), zero.qs), (0.0, [0; 32]));
}

#[test]
fn writer_rejects_bad_input() {
    let mut w = GgufWriter::new();
    w.add("k", 1u32).unwrap();
    assert!(matches!(
        w.add("k", 2u32).unwrap_err().kind,
        ErrorKind::DuplicateKey { .. }
    ));
    let mixed = Value::Array(ValueType::U32, vec![Value::U32(1), Value::F32(2.0)]);
    let e = w.add("mixed", mixed).unwrap_err();
    assert!(
        e.to_string().contains("item 1 is a f32 in an array of u32"),
        "{e}"
    );
    assert!(w.add("general.alignment", 48u32).is_err());
    w.add_tensor("t", &[32], GgmlType::Q8_0).unwrap();
    assert!(w.add_tensor("t", &[32], GgmlType::F32).is_err());
    assert!(matches!(
        w.add_tensor("odd", &[31], GgmlType::Q8_0).unwrap_err().kind,
        ErrorKind::RowNotBlockMultiple { .. }
    ));
    let mut s = w.begin(Vec::new()).unwrap();
    assert!(s.write_f32(&[1.0; 16]).is_err()); // Q8_0 chunks are whole blocks
    assert!(s.write_bytes(&[0; 35]).is_err()); // longer than the tensor
    s.write_bytes(&[0; 10]).unwrap();
    let e = s.finish().unwrap_err();
    assert!(e.to_string().contains("incomplete: 10 of 34 bytes"), "{e}");
}

#[test]
fn create_is_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let mut w = GgufWriter::new();
    w.add("general.alignment", 64u32).unwrap();
    w.add_tensor("t", &[3], GgmlType::F32).unwrap();
    let mut s = w.create(&path).unwrap();
    s.write_f32(&[1.0, 2.0, 3.0]).unwrap();
    assert!(!path.exists(), "nothing at the destination before commit");
    s.commit().unwrap();
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.data_offset() % 64, 0);
    let listing: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        listing,
        vec![std::ffi::OsString::from("m.gguf")],
        "no temporary file left behind"
    );

    // A stream dropped before commit leaves neither the file nor a temporary.
    let mut w = GgufWriter::new();
    w.add_tensor("t", &[3], GgmlType::F32).unwrap();
    let other = dir.path().join("other.gguf");
    drop(w.create(&other).unwrap());
    assert!(!other.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // Opening a missing file names it.
    let e = GgufFile::open(&other).unwrap_err();
    assert!(
        e.to_string().contains("other.gguf") && matches!(e.kind, ErrorKind::Io { .. }),
        "{e}"
    );
}

/// Every truncation of a valid file is an error (never a panic), and so is — or opens cleanly —
/// every single-byte corruption.
#[test]
fn truncations_and_byte_flips_never_panic() {
    let mut w = GgufWriter::new();
    for (k, v) in sample_values() {
        w.add(k, v).unwrap();
    }
    w.add_tensor("a", &[32, 2], GgmlType::Q8_0).unwrap();
    w.add_tensor("b", &[5], GgmlType::F16).unwrap();
    let mut s = w.begin(Vec::new()).unwrap();
    s.write_f32(&pseudo_random(64, 1)).unwrap();
    s.write_f32(&pseudo_random(5, 2)).unwrap();
    let bytes = s.finish().unwrap();
    let f = GgufFile::from_bytes(bytes.clone()).unwrap();
    let needed = f
        .tensors()
        .iter()
        .map(|t| f.data_offset() + t.offset + t.size_bytes)
        .max()
        .unwrap();
    for len in 0..needed as usize {
        let r = GgufFile::from_bytes(bytes[..len].to_vec());
        assert!(r.is_err(), "a file cut at {len} of {needed} bytes opened");
    }
    for i in 0..bytes.len() {
        for v in [0x00, 0xff, 0x80] {
            let mut b = bytes.clone();
            b[i] = v;
            let _ = GgufFile::from_bytes(b);
        }
    }
}
