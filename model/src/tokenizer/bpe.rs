//! Byte-level BPE (`tokenizer.ggml.model = "gpt2"`, Llama 3), as llama.cpp's
//! `llm_tokenizer_bpe_session`: pre-tokenize into words, map each word's bytes to GPT-2's
//! printable alphabet, then merge adjacent symbols by merge rank.

use super::symbols::{merge, Symbol};
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::OnceLock;

/// GPT-2's byte-to-unicode table: printable Latin-1 bytes (`!`..=`~`, `¡`..=`¬`, `®`..=`ÿ`) stand
/// for themselves, the other 68 bytes for U+0100 onwards in byte order (so space is U+0120 'Ġ' and
/// '\n' is U+010A 'Ċ'). Token texts are written in this alphabet, which keeps every byte sequence
/// representable as a string without control characters or spaces.
pub(crate) fn byte_to_char(b: u8) -> char {
    byte_tables().0[b as usize]
}

/// The inverse of [`byte_to_char`]; `None` for chars outside the alphabet.
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    byte_tables().1.get(&c).copied()
}

fn byte_tables() -> &'static ([char; 256], HashMap<char, u8>) {
    static TABLES: OnceLock<([char; 256], HashMap<char, u8>)> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut fwd = ['\0'; 256];
        let mut next = 256u32;
        for b in 0..=255u8 {
            let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
            fwd[b as usize] = if printable {
                char::from(b)
            } else {
                next += 1;
                char::from_u32(next - 1).expect("U+0100..U+0143 are chars")
            };
        }
        let inv = fwd.iter().enumerate().map(|(b, &c)| (c, b as u8)).collect();
        (fwd, inv)
    })
}

/// A word's bytes in the GPT-2 alphabet.
pub(crate) fn encode_bytes(word: &str) -> String {
    word.bytes().map(byte_to_char).collect()
}

/// A candidate merge of symbols `left` and `right` (indices into the word's symbols), ordered so
/// that a max-heap pops the lowest rank first and, among equal ranks, the leftmost — llama.cpp's
/// `llm_bigram_bpe::comparator`.
#[derive(PartialEq, Eq)]
struct Bigram {
    rank: u32,
    left: usize,
    right: usize,
    /// The merged text, to recognise a bigram made stale by an earlier merge.
    text: String,
}

impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> Ordering {
        (Reverse(self.rank), Reverse(self.left)).cmp(&(Reverse(other.rank), Reverse(other.left)))
    }
}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Merges one mapped word (see [`encode_bytes`]) into token texts, appending their ids.
///
/// `ranks` maps `(left, right)` to the merge's rank; `lookup` maps token text to id.
pub(crate) fn merge_word(
    word: &str,
    ignore_merges: bool,
    ranks: &HashMap<(String, String), u32>,
    lookup: &dyn Fn(&str) -> Option<u32>,
    out: &mut Vec<u32>,
) {
    if word.is_empty() {
        return;
    }
    if ignore_merges {
        if let Some(id) = lookup(word) {
            out.push(id);
            return;
        }
    }

    let mut symbols: Vec<Symbol> = Vec::new();
    for (i, (start, c)) in word.char_indices().enumerate() {
        symbols.push(Symbol {
            start,
            len: c.len_utf8(),
            prev: i.checked_sub(1),
            next: Some(i + 1),
        });
    }
    symbols.last_mut().expect("word is not empty").next = None;

    let text = |s: &Symbol| &word[s.start..s.start + s.len];
    let mut queue = BinaryHeap::new();
    let try_add = |queue: &mut BinaryHeap<Bigram>, symbols: &[Symbol], l: usize, r: usize| {
        let (a, b) = (text(&symbols[l]), text(&symbols[r]));
        // One allocation per probe; prompts are short and this keeps the map simple.
        if let Some(&rank) = ranks.get(&(a.to_string(), b.to_string())) {
            queue.push(Bigram {
                rank,
                left: l,
                right: r,
                text: format!("{a}{b}"),
            });
        }
    };
    for i in 1..symbols.len() {
        try_add(&mut queue, &symbols, i - 1, i);
    }

    while let Some(bigram) = queue.pop() {
        let (l, r) = (bigram.left, bigram.right);
        if symbols[l].len == 0 || symbols[r].len == 0 {
            continue;
        }
        // Stale: one side has grown since the bigram was queued.
        let current_len = symbols[l].len + symbols[r].len;
        if current_len != bigram.text.len()
            || word[symbols[l].start..symbols[l].start + current_len] != bigram.text
        {
            continue;
        }
        for (a, b) in merge(&mut symbols, l, r).into_iter().flatten() {
            try_add(&mut queue, &symbols, a, b);
        }
    }

    let mut i = Some(0);
    while let Some(k) = i {
        let s = symbols[k];
        i = s.next;
        let t = text(&s);
        match lookup(t) {
            Some(id) => out.push(id),
            None => {
                // llama.cpp's fallback: each byte of the (mapped) text as a one-byte token, bytes
                // without one dropped. With a complete GPT-2 alphabet in the vocabulary (every
                // real BPE vocabulary) this never runs: single chars are tokens, and merges only
                // build tokens.
                for b in t.bytes().filter(u8::is_ascii) {
                    let mut buf = [0u8; 4];
                    if let Some(id) = lookup(char::from(b).encode_utf8(&mut buf)) {
                        out.push(id);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_alphabet_is_gpt2s() {
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'a'), 'a');
        assert_eq!(byte_to_char(0), 'Ā');
        assert_eq!(byte_to_char(0xAD), 'Ń');
        assert_eq!(byte_to_char(0xFF), 'ÿ');
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b));
        }
        assert_eq!(char_to_byte('€'), None);
    }
}
