//! The symbol list both merge tokenizers (SentencePiece and BPE) work on: byte ranges of the
//! text linked to their neighbours, merged pairwise in priority order. Only what decides the
//! order (scores or merge ranks) differs between the two; the list and the merge step live here.

/// A symbol: a byte range of the text, linked to its neighbours; `len == 0` once merged away.
#[derive(Clone, Copy)]
pub(super) struct Symbol {
    pub start: usize,
    pub len: usize,
    pub prev: Option<usize>,
    pub next: Option<usize>,
}

/// Merges symbol `r` into its left neighbour `l` and returns the two pairs that now border the
/// merged symbol — `(prev, l)` and `(l, next)` where they exist — for the caller to queue.
pub(super) fn merge(symbols: &mut [Symbol], l: usize, r: usize) -> [Option<(usize, usize)>; 2] {
    symbols[l].len += symbols[r].len;
    symbols[r].len = 0;
    symbols[l].next = symbols[r].next;
    if let Some(nx) = symbols[r].next {
        symbols[nx].prev = Some(l);
    }
    [
        symbols[l].prev.map(|pv| (pv, l)),
        symbols[l].next.map(|nx| (l, nx)),
    ]
}
