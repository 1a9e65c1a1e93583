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
