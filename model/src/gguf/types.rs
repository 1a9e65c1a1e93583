//! The vocabulary of a GGUF file: ggml tensor types, metadata value types and values, tensor infos.

use std::fmt;

/// (name, block size in elements, block size in bytes) of every ggml type id, as in ggml.h.
/// Sizes of `None` are ids ggml removed (their layout is not recoverable), so files using them
/// are rejected at open.
const GGML_TYPES: [(&str, Option<(u64, u64)>); 40] = [
    ("F32", Some((1, 4))),
    ("F16", Some((1, 2))),
    ("Q4_0", Some((32, 18))),
    ("Q4_1", Some((32, 20))),
    ("Q4_2 (removed from ggml)", None),
    ("Q4_3 (removed from ggml)", None),
    ("Q5_0", Some((32, 22))),
    ("Q5_1", Some((32, 24))),
    ("Q8_0", Some((32, 34))),
    ("Q8_1", Some((32, 36))),
    ("Q2_K", Some((256, 84))),
    ("Q3_K", Some((256, 110))),
    ("Q4_K", Some((256, 144))),
    ("Q5_K", Some((256, 176))),
    ("Q6_K", Some((256, 210))),
    ("Q8_K", Some((256, 292))),
    ("IQ2_XXS", Some((256, 66))),
    ("IQ2_XS", Some((256, 74))),
    ("IQ3_XXS", Some((256, 98))),
    ("IQ1_S", Some((256, 50))),
    ("IQ4_NL", Some((32, 18))),
    ("IQ3_S", Some((256, 110))),
    ("IQ2_S", Some((256, 82))),
    ("IQ4_XS", Some((256, 136))),
    ("I8", Some((1, 1))),
    ("I16", Some((1, 2))),
    ("I32", Some((1, 4))),
    ("I64", Some((1, 8))),
    ("F64", Some((1, 8))),
    ("IQ1_M", Some((256, 56))),
    ("BF16", Some((1, 2))),
    ("Q4_0_4_4", Some((32, 18))),
    ("Q4_0_4_8", Some((32, 18))),
    ("Q4_0_8_8", Some((32, 18))),
    ("TQ1_0", Some((256, 54))),
    ("TQ2_0", Some((256, 66))),
    ("IQ4_NL_4_4", Some((32, 18))),
    ("IQ4_NL_4_8", Some((32, 18))),
    ("IQ4_NL_8_8", Some((32, 18))),
    ("MXFP4", Some((32, 17))),
];

/// The name of a ggml type id, for messages; `"unknown"` past the table.
pub fn ggml_type_name(id: u32) -> &'static str {
    GGML_TYPES
        .get(id as usize)
        .map(|t| t.0)
        .unwrap_or("unknown")
}

/// A tensor's element type. greta computes with the first four; every other type ggml defines is
/// still recognised (by id, with its name and block layout) so that a file holding, say, Q4_K
/// tensors opens, lists its tensors, and fails with "Q4_K is unsupported" only when used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q8_0,
    Unsupported { id: u32, name: &'static str },
}

impl GgmlType {
    /// The type of a ggml type id, or `None` for ids ggml never defined or removed (no known size).
    pub fn from_id(id: u32) -> Option<GgmlType> {
        match id {
            0 => Some(GgmlType::F32),
            1 => Some(GgmlType::F16),
            8 => Some(GgmlType::Q8_0),
            30 => Some(GgmlType::BF16),
            _ => match GGML_TYPES.get(id as usize) {
                Some((name, Some(_))) => Some(GgmlType::Unsupported { id, name }),
                _ => None,
            },
        }
    }

    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q8_0 => 8,
            GgmlType::BF16 => 30,
            GgmlType::Unsupported { id, .. } => id,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::BF16 => "BF16",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Unsupported { name, .. } => name,
        }
    }

    /// The type by its ggml name (case-insensitive), e.g. `"q8_0"`; for the CLI.
    pub fn by_name(name: &str) -> Option<GgmlType> {
        (0..GGML_TYPES.len() as u32)
            .find(|&id| GGML_TYPES[id as usize].0.eq_ignore_ascii_case(name))
            .and_then(GgmlType::from_id)
    }

    /// Whether greta can compute with (dequantize) this type.
    pub fn is_supported(self) -> bool {
        !matches!(self, GgmlType::Unsupported { .. })
    }

    /// Elements per block (1 for plain types, 32 for Q8_0, 256 for the K-quants).
    pub fn block_size(self) -> u64 {
        self.layout().0
    }

    /// Bytes per block.
    pub fn type_size(self) -> u64 {
        self.layout().1
    }

    fn layout(self) -> (u64, u64) {
        // Every constructed GgmlType has a known layout (from_id filters the others).
        GGML_TYPES[self.id() as usize].1.unwrap_or((1, 1))
    }

    /// Bytes of `n_elems` elements, or `None` when `n_elems` is not a whole number of blocks or the
    /// size overflows.
    pub fn bytes_for(self, n_elems: u64) -> Option<u64> {
        if n_elems % self.block_size() != 0 {
            return None;
        }
        (n_elems / self.block_size()).checked_mul(self.type_size())
    }
}

/// The type tag of a metadata value (GGUF's `gguf_metadata_value_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    pub fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }

    /// The fewest bytes one value of this type takes in a file: bounds absurd array counts.
    pub(crate) fn min_encoded_size(self) -> u64 {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 | String => 8,
            Array => 12,
        }
    }
}

/// A metadata value. Arrays keep their element type so that an empty array round-trips.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(ValueType, Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(..) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// A description of the type for messages: `u32`, `array of string`, ...
    pub fn type_description(&self) -> String {
        match self {
            Value::Array(t, _) => format!("array of {}", t.name()),
            v => v.value_type().name().to_string(),
        }
    }

    /// The value as an i128 when it is any integer type (not bool, not float).
    pub fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// Any non-negative integer value that fits in a u64.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_integer().and_then(|v| u64::try_from(v).ok())
    }

    /// Any integer value that fits in an i64.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_integer().and_then(|v| i64::try_from(v).ok())
    }

    /// f32 and f64 values (integers are not silently taken as floats).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<(ValueType, &[Value])> {
        match self {
            Value::Array(t, items) => Some((*t, items)),
            _ => None,
        }
    }

    /// An array of strings, from a list of anything string-like (for writers).
    pub fn string_array<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Value {
        Value::Array(
            ValueType::String,
            items.into_iter().map(|s| Value::String(s.into())).collect(),
        )
    }

    pub fn f32_array(items: impl IntoIterator<Item = f32>) -> Value {
        Value::Array(ValueType::F32, items.into_iter().map(Value::F32).collect())
    }

    pub fn i32_array(items: impl IntoIterator<Item = i32>) -> Value {
        Value::Array(ValueType::I32, items.into_iter().map(Value::I32).collect())
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::U32(v)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Value {
        Value::F32(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

/// How many array items `Display` shows before eliding: a 128k-token vocabulary should not flood
/// a terminal. `{:#}` shows every item.
const DISPLAY_ITEMS: usize = 8;

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::U8(v) => write!(f, "{v}"),
            Value::I8(v) => write!(f, "{v}"),
            Value::U16(v) => write!(f, "{v}"),
            Value::I16(v) => write!(f, "{v}"),
            Value::U32(v) => write!(f, "{v}"),
            Value::I32(v) => write!(f, "{v}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::F32(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Array(_, items) => {
                let shown = if f.alternate() {
                    items.len()
                } else {
                    items.len().min(DISPLAY_ITEMS)
                };
                f.write_str("[")?;
                for (i, item) in items[..shown].iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    if f.alternate() {
                        write!(f, "{item:#}")?;
                    } else {
                        write!(f, "{item}")?;
                    }
                }
                if shown < items.len() {
                    write!(f, ", ... ({} items)", items.len())?;
                }
                f.write_str("]")
            }
        }
    }
}

/// One tensor's header entry, validated at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions in ggml order: `dims[0]` (`ne[0]`) is the fastest-varying, i.e. the row length.
    /// A weight `[4096, 11008]` is 11008 rows of 4096. Values of 0 are allowed (an empty tensor,
    /// as llama.cpp allows), as long as the other dimensions' product fits in 63 bits like any
    /// tensor's; an empty `dims` is a scalar.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Offset of the data from the start of the data section (not of the file); a multiple of
    /// the file's alignment.
    pub offset: u64,
    pub size_bytes: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        // Checked at open (and by the writer) not to overflow, nor does any product of some of
        // the dims (the non-zero ones' product fits in 63 bits).
        self.dims.iter().product()
    }

    /// Elements per row (`ne[0]`); 1 for a scalar.
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }

    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }
}
