//! A GGUF-aware mutator for the `gguf` and `gguf_run` targets.
//!
//! libFuzzer's byte mutations rarely land on the fields that matter — a tensor count, a string
//! length, a dimension, a type id, a data offset — with the values that break readers: 0, 1,
//! 2³¹−1, 2³²−1, 2⁶³, u64::MAX, a neighbour of the current value. So half of the mutations parse
//! the input as the reader does (leniently: it records where each field is and stops where the
//! bytes stop making sense), pick one field and set it to such a value; the other half, and any
//! input that does not start like a GGUF file, go to libFuzzer's own mutator.

/// What a field of the file is, which decides the values tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Version,
    /// The tensor count, the metadata count, an array's element count.
    Count,
    /// A string's byte length.
    Len,
    /// A metadata value type, or an array's element type.
    ValueType,
    /// A metadata value of `width` bytes (integers, floats, bools).
    Scalar,
    NDims,
    Dim,
    GgmlType,
    Offset,
}

/// A field: where it is, how wide (4 or 8 bytes, 1 or 2 for small scalars), what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub at: usize,
    pub width: usize,
    pub kind: Kind,
}

/// At most this many fields are recorded (a vocabulary has tens of thousands).
const MAX_FIELDS: usize = 4096;
/// Array items recorded per array (the rest are skipped over).
const ITEMS_RECORDED: u64 = 8;

struct Walker<'a> {
    b: &'a [u8],
    pos: usize,
    fields: Vec<Field>,
}

impl Walker<'_> {
    fn field(&mut self, width: usize, kind: Kind) -> Option<u64> {
        let bytes = self.b.get(self.pos..self.pos.checked_add(width)?)?;
        let mut v = [0u8; 8];
        v[..width].copy_from_slice(bytes);
        if self.fields.len() < MAX_FIELDS {
            self.fields.push(Field {
                at: self.pos,
                width,
                kind,
            });
        }
        self.pos += width;
        Some(u64::from_le_bytes(v))
    }

    fn skip(&mut self, n: u64) -> Option<()> {
        let end = (self.pos as u64).checked_add(n)?;
        if end > self.b.len() as u64 {
            return None;
        }
        self.pos = end as usize;
        Some(())
    }

    fn string(&mut self) -> Option<()> {
        let len = self.field(8, Kind::Len)?;
        self.skip(len)
    }

    fn value(&mut self, ty: u64, depth: usize) -> Option<()> {
        match ty {
            0 | 1 | 7 => self.field(1, Kind::Scalar).map(drop),
            2 | 3 => self.field(2, Kind::Scalar).map(drop),
            4..=6 => self.field(4, Kind::Scalar).map(drop),
            10..=12 => self.field(8, Kind::Scalar).map(drop),
            8 => self.string(),
            9 if depth < 8 => {
                let elem = self.field(4, Kind::ValueType)?;
                let count = self.field(8, Kind::Count)?;
                let fixed = match elem {
                    0 | 1 | 7 => Some(1),
                    2 | 3 => Some(2),
                    4..=6 => Some(4),
                    10..=12 => Some(8),
                    _ => None,
                };
                for i in 0..count {
                    if i >= ITEMS_RECORDED {
                        if let Some(size) = fixed {
                            return self.skip((count - i).checked_mul(size)?);
                        }
                        if self.fields.len() >= MAX_FIELDS {
                            return None;
                        }
                    }
                    self.value(elem, depth + 1)?;
                }
                Some(())
            }
            _ => None,
        }
    }

    /// Walks the whole header, recording fields, until the bytes stop making sense.
    fn header(&mut self) -> Option<()> {
        if self.b.get(..4)? != b"GGUF" {
            return None;
        }
        self.pos = 4;
        self.field(4, Kind::Version)?;
        let n_tensors = self.field(8, Kind::Count)?;
        let n_kv = self.field(8, Kind::Count)?;
        for _ in 0..n_kv {
            self.string()?;
            let ty = self.field(4, Kind::ValueType)?;
            self.value(ty, 0)?;
        }
        for _ in 0..n_tensors {
            self.string()?;
            let n_dims = self.field(4, Kind::NDims)?;
            if n_dims > 4 {
                return None;
            }
            for _ in 0..n_dims {
                self.field(8, Kind::Dim)?;
            }
            self.field(4, Kind::GgmlType)?;
            self.field(8, Kind::Offset)?;
        }
        Some(())
    }
}

/// The fields of `bytes` as far as they parse (empty when it is not a GGUF file).
pub fn fields(bytes: &[u8]) -> Vec<Field> {
    let mut w = Walker {
        b: bytes,
        pos: 0,
        fields: Vec::new(),
    };
    let _ = w.header();
    w.fields
}

/// A small deterministic generator (xorshift64*), seeded by libFuzzer.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u32) -> Rng {
        Rng(u64::from(seed) ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Values that break size arithmetic.
const EDGES: &[u64] = &[
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    31,
    32,
    33,
    255,
    256,
    (1 << 31) - 1,
    1 << 31,
    (1 << 32) - 1,
    1 << 32,
    (1 << 62) - 1,
    1 << 62,
    (1 << 63) - 1,
    1 << 63,
    u64::MAX - 1,
    u64::MAX,
];

/// ggml type ids: the four greta computes with, unsupported ones of each block size, ids ggml
/// removed, and ids past the table.
const GGML_TYPES: &[u64] = &[
    0,
    1,
    8,
    30,
    2,
    12,
    14,
    24,
    28,
    39,
    4,
    5,
    40,
    41,
    99,
    u32::MAX as u64,
];

/// A new value for a field of `kind` whose current value is `old`.
fn new_value(rng: &mut Rng, kind: Kind, old: u64, width: usize) -> u64 {
    let near = |rng: &mut Rng| match rng.below(4) {
        0 => old.wrapping_add(1),
        1 => old.wrapping_sub(1),
        2 => old.wrapping_mul(2),
        _ => old / 2,
    };
    match kind {
        Kind::Version => rng.pick(&[0, 1, 2, 3, 4, 0x0300_0000, u32::MAX as u64]),
        Kind::ValueType => rng.below(15),
        Kind::NDims => rng.pick(&[0, 1, 2, 3, 4, 5, u32::MAX as u64]),
        Kind::GgmlType => rng.pick(GGML_TYPES),
        Kind::Scalar => match rng.below(3) {
            0 => rng.pick(EDGES),
            1 => near(rng),
            _ => rng.next_u64(),
        },
        Kind::Count | Kind::Len | Kind::Dim | Kind::Offset => match rng.below(8) {
            0..=3 => rng.pick(EDGES),
            4 | 5 => near(rng),
            6 => match kind {
                // Whole blocks, and aligned offsets.
                Kind::Dim => 32 * (1 + rng.below(16)),
                Kind::Offset => 32 * rng.below(64),
                _ => rng.below(64),
            },
            _ => old ^ (1 << rng.below(width as u64 * 8)),
        },
    }
}

/// Mutates `data[..size]` in place (or truncates it at a field) and returns the new size, or
/// `None` when the input has no GGUF fields to mutate.
pub fn mutate_fields(data: &mut [u8], size: usize, seed: u32) -> Option<usize> {
    let fields = fields(&data[..size]);
    if fields.is_empty() {
        return None;
    }
    let mut rng = Rng::new(seed);
    // One to three fields at a time: overflows often need two (a dim and an offset).
    for _ in 0..1 + rng.below(3) {
        let f = rng.pick(&fields);
        let bytes = &mut data[f.at..f.at + f.width];
        let mut v = [0u8; 8];
        v[..f.width].copy_from_slice(bytes);
        let old = u64::from_le_bytes(v);
        let new = new_value(&mut rng, f.kind, old, f.width).to_le_bytes();
        bytes.copy_from_slice(&new[..f.width]);
    }
    // Now and then, cut the file just after a field: truncations at every structural point.
    if rng.below(16) == 0 {
        let f = rng.pick(&fields);
        return Some(f.at + f.width);
    }
    Some(size)
}

/// The mutator the GGUF targets install: the field mutations above half of the time, else (or
/// when the input does not parse at all) `default`, libFuzzer's mutator.
pub fn mutate(
    data: &mut [u8],
    size: usize,
    max_size: usize,
    seed: u32,
    default: &mut dyn FnMut(&mut [u8], usize, usize) -> usize,
) -> usize {
    if seed.is_multiple_of(2) {
        if let Some(n) = mutate_fields(data, size, seed / 2) {
            return n;
        }
    }
    default(data, size, max_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walker_finds_every_field_of_a_small_file() {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(1u64.to_le_bytes()); // tensors
        b.extend(1u64.to_le_bytes()); // kv
        b.extend(1u64.to_le_bytes());
        b.push(b'k');
        b.extend(4u32.to_le_bytes());
        b.extend(7u32.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.push(b't');
        b.extend(2u32.to_le_bytes());
        b.extend(4u64.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        let kinds: Vec<Kind> = fields(&b).iter().map(|f| f.kind).collect();
        use Kind::*;
        assert_eq!(
            kinds,
            [
                Version, Count, Count, Len, ValueType, Scalar, Len, NDims, Dim, Dim, GgmlType,
                Offset
            ]
        );
        for seed in 0..1000 {
            let mut m = b.clone();
            let n = mutate_fields(&mut m, b.len(), seed).unwrap();
            assert!(n <= b.len());
        }
        assert!(fields(b"not gguf").is_empty());
    }
}
