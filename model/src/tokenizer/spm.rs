//! SentencePiece-style BPE (`tokenizer.ggml.model = "llama"`), as llama.cpp's
//! `llm_tokenizer_spm_session`: start from the text's characters and repeatedly merge the
//! adjacent pair whose concatenation is the vocabulary token with the highest score; characters
//! left that are not tokens become byte tokens `<0xXX>`.

use super::symbols::{merge, Symbol};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's stand-in for a space.
pub(crate) const SPACE: char = '\u{2581}';

/// A candidate merge, ordered so that a max-heap pops the highest score first and, among equal
/// scores, the leftmost pair — llama.cpp's `llm_bigram_spm::comparator`. Ties matter: the
/// stories260K vocabulary, like many llama2.c ones, has runs of equal scores.
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    /// Byte length of the merged text; a bigram whose sides have since grown is stale.
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> Ordering {
        // Scores are validated to be non-NaN, so total_cmp is the ordinary order here.
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Tokenizes `text`, already escaped (spaces as '▁', the dummy prefix added), appending ids.
///
/// `lookup` maps token text to `(id, score)`; `byte_token` gives the token for one byte, or
/// `None` when the vocabulary has none (the whole character then becomes `unk`, as in
/// SentencePiece without byte fallback; [`Tokenizer::new`](super::Tokenizer::new) ensures `unk`
/// exists in that case).
pub(crate) fn encode(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<(u32, f32)>,
    byte_token: &dyn Fn(u8) -> Option<u32>,
    unk: Option<u32>,
    out: &mut Vec<u32>,
) {
    if text.is_empty() {
        return;
    }
    let mut symbols: Vec<Symbol> = Vec::new();
    for (i, (start, c)) in text.char_indices().enumerate() {
        symbols.push(Symbol {
            start,
            len: c.len_utf8(),
            prev: i.checked_sub(1),
            next: Some(i + 1),
        });
    }
    symbols.last_mut().expect("text is not empty").next = None;

    let mut queue = BinaryHeap::new();
    let try_add = |queue: &mut BinaryHeap<Bigram>, symbols: &[Symbol], l: usize, r: usize| {
        let size = symbols[l].len + symbols[r].len;
        let merged = &text[symbols[l].start..symbols[l].start + size];
        if let Some((_, score)) = lookup(merged) {
            queue.push(Bigram {
                score,
                left: l,
                right: r,
                size,
            });
        }
    };
    for i in 1..symbols.len() {
        try_add(&mut queue, &symbols, i - 1, i);
    }

    while let Some(b) = queue.pop() {
        let (l, r) = (b.left, b.right);
        if symbols[l].len == 0 || symbols[r].len == 0 || symbols[l].len + symbols[r].len != b.size {
            continue;
        }
        for (a, b) in merge(&mut symbols, l, r).into_iter().flatten() {
            try_add(&mut queue, &symbols, a, b);
        }
    }

    // Every merged symbol is a token (a pair is only queued when its text is one), so only
    // single characters can miss; llama.cpp's `rev_merge` re-segmentation never finds anything
    // to undo and is left out.
    let mut i = Some(0);
    while let Some(k) = i {
        let s = symbols[k];
        i = s.next;
        let piece = &text[s.start..s.start + s.len];
        if let Some((id, _)) = lookup(piece) {
            out.push(id);
            continue;
        }
        let bytes: Option<Vec<u32>> = piece.bytes().map(byte_token).collect();
        match bytes {
            Some(ids) => out.extend(ids),
            None => out.extend(unk),
        }
    }
}
