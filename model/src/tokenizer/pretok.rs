//! The Llama-3 pre-tokenizer: splitting text into the words that BPE merges within.
//!
//! The tokenizer.json of Llama 3 gives it as the regex
//!
//! ```text
//! (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//! ```
//!
//! which the `regex` crate cannot run (`(?!\S)` is a look-ahead). Rather than take on
//! `fancy-regex` (a backtracking engine, whose behaviour on this pattern would be one more thing
//! to trust), this is a hand-written scanner that follows llama.cpp's own
//! (`unicode_regex_split_custom_llama3`) branch for branch — llama.cpp is the reference for what
//! these GGUF files mean, and that function is what it runs. Each branch below is one
//! alternative of the regex, tried in order at each position, as a leftmost-first regex would.
//!
//! Character classes: `\p{L}` is Unicode's general category L (Lu, Ll, Lt, Lm, Lo), taken from
//! `regex-syntax`'s tables; `\p{N}` is N (Nd, Nl, No), exactly `char::is_numeric`; `\s` is the
//! White_Space property, exactly `char::is_whitespace` and the same set llama.cpp uses.

use std::ops::Range;
use std::sync::OnceLock;

/// The `\p{L}` ranges, sorted, from regex-syntax's Unicode tables (built once).
fn letter_ranges() -> &'static [(char, char)] {
    static RANGES: OnceLock<Vec<(char, char)>> = OnceLock::new();
    RANGES.get_or_init(|| {
        use regex_syntax::hir::{Class, HirKind};
        let hir = regex_syntax::Parser::new()
            .parse(r"\p{L}")
            .expect("\\p{L} parses");
        match hir.kind() {
            HirKind::Class(Class::Unicode(c)) => {
                c.ranges().iter().map(|r| (r.start(), r.end())).collect()
            }
            other => unreachable!("\\p{{L}} is a Unicode class, got {other:?}"),
        }
    })
}

pub(crate) fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    let ranges = letter_ranges();
    let i = ranges.partition_point(|&(_, hi)| hi < c);
    i < ranges.len() && ranges[i].0 <= c
}

fn is_number(c: char) -> bool {
    c.is_numeric()
}

/// Splits `text` into words; returns their byte ranges, which tile `text` in order.
pub(crate) fn split_llama3(text: &str) -> Vec<Range<usize>> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let byte_at = |i: usize| if i < n { chars[i].0 } else { text.len() };
    // Out of range reads as "no char": it is in no class, as in llama.cpp (OUT_OF_RANGE).
    let at = |i: usize| if i < n { Some(chars[i].1) } else { None };
    let letter = |i: usize| at(i).is_some_and(is_letter);
    let number = |i: usize| at(i).is_some_and(is_number);
    let space = |i: usize| at(i).is_some_and(char::is_whitespace);
    let newline = |i: usize| matches!(at(i), Some('\r' | '\n'));
    // [^\s\p{L}\p{N}]: any char that is in none of the three classes.
    let other = |i: usize| at(i).is_some() && !space(i) && !letter(i) && !number(i);

    let mut words = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    while pos < n {
        let c = chars[pos].1;
        let end = 'word: {
            // (?i:'s|'t|'re|'ve|'m|'ll|'d): ASCII case folding is all that can produce these
            // letters (no non-ASCII char lowercases to them).
            if c == '\'' {
                let lower = |i: usize| at(i).map(|c| c.to_ascii_lowercase());
                match (lower(pos + 1), lower(pos + 2)) {
                    (Some('s' | 't' | 'm' | 'd'), _) => break 'word pos + 2,
                    (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l')) => {
                        break 'word pos + 3
                    }
                    _ => {}
                }
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(newline(pos) || number(pos)) && (letter(pos) || letter(pos + 1)) {
                let mut p = pos + 1;
                while letter(p) {
                    p += 1;
                }
                break 'word p;
            }
            // \p{N}{1,3}
            if number(pos) {
                let mut p = pos;
                while p < pos + 3 && number(p) {
                    p += 1;
                }
                break 'word p;
            }
            // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
            let p0 = if c == ' ' { pos + 1 } else { pos };
            if other(p0) {
                let mut p = p0;
                while other(p) {
                    p += 1;
                }
                while newline(p) {
                    p += 1;
                }
                break 'word p;
            }
            // The whitespace run starting here, and the end of its last \r or \n.
            let mut p = pos;
            let mut last_newline_end = None;
            while space(p) {
                if newline(p) {
                    last_newline_end = Some(p + 1);
                }
                p += 1;
            }
            let run = p - pos;
            // \s*[\r\n]+
            if let Some(e) = last_newline_end {
                break 'word e;
            }
            // \s+(?!\S): all but the last space when a non-space follows (that space then
            // prefixes the next word), the whole run at the end of the text.
            if run > 1 && p < n {
                break 'word p - 1;
            }
            // \s+
            if run > 0 {
                break 'word p;
            }
            // No alternative matches (not reachable: every char is in \s or in
            // [^\s\p{L}\p{N}] or starts a letter/number word); take one char, as llama.cpp does.
            pos + 1
        };
        debug_assert!(end > pos);
        words.push(byte_at(start)..byte_at(end));
        start = end;
        pos = end;
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<&str> {
        split_llama3(s).into_iter().map(|r| &s[r]).collect()
    }

    /// Expected splits worked out by hand from the regex, alternative by alternative.
    #[test]
    fn splits_like_the_llama3_regex() {
        assert_eq!(split("Hello world"), ["Hello", " world"]);
        assert_eq!(
            split("I'm here, they'LL see"),
            ["I", "'m", " here", ",", " they", "'LL", " see"]
        );
        assert_eq!(split("12345 apples"), ["123", "45", " apples"]);
        assert_eq!(split("a  b"), ["a", " ", " b"]);
        assert_eq!(split("a   "), ["a", "   "]);
        assert_eq!(split("x\n\ny"), ["x", "\n\n", "y"]);
        assert_eq!(split("x  \n y"), ["x", "  \n", " y"]);
        assert_eq!(split("hi!!\n\nthere"), ["hi", "!!\n\n", "there"]);
        assert_eq!(split(" ...ok"), [" ...", "ok"]);
        assert_eq!(split("(x)"), ["(x", ")"]);
        assert_eq!(split("  1"), [" ", " ", "1"]);
        assert_eq!(split("über 北京 😀!"), ["über", " 北京", " 😀!"]);
        assert_eq!(split("'"), ["'"]);
        assert_eq!(split(""), Vec::<&str>::new());
    }

    #[test]
    fn letter_class_is_general_category_l() {
        assert!(is_letter('é') && is_letter('北') && is_letter('ß') && is_letter('ʰ'));
        // Marks and letter-like numbers are alphabetic but not \p{L}.
        assert!('\u{0903}'.is_alphabetic() && !is_letter('\u{0903}'));
        assert!('Ⅻ'.is_alphabetic() && !is_letter('Ⅻ') && is_number('Ⅻ'));
        assert!(!is_letter('1') && !is_letter('😀') && !is_letter(' '));
    }
}
