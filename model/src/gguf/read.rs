//! Parsing and validating a GGUF file, and the [`GgufFile`] that owns its bytes.
//!
//! Everything the header claims is checked before any of it is used: every read is bounds-checked
//! against the file length (a `Cursor` never indexes past the end), counts are compared with
//! what the remaining bytes could possibly hold before anything is allocated for them, and each
//! tensor's data range is checked to lie inside the file. So [`GgufFile::tensor_data`] is
//! infallible, and a corrupt or truncated file produces one [`GgufError`] and never a panic.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::error::{ErrorKind, GgufError};
use super::types::{GgmlType, TensorInfo, Value, ValueType};

pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// The alignment of tensor data when the file has no `general.alignment`.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most 4 dimensions (GGML_MAX_DIMS).
pub const MAX_DIMS: u32 = 4;
/// Arrays of arrays are legal GGUF, but a hostile file could nest them millions deep and overflow
/// the stack of a recursive parser; no real file nests more than 2.
pub const MAX_ARRAY_NESTING: usize = 8;

/// The bytes of a file: a memory map for real files (a 13 GB model is not read into memory), a
/// vector for [`GgufFile::from_bytes`].
enum Storage {
    Mmap(memmap2::Mmap),
    Vec(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mmap(m) => m,
            Storage::Vec(v) => v,
        }
    }
}

/// A validated GGUF file (version 2 or 3, little-endian): its metadata, tensor infos, and the
/// bytes of its tensors.
pub struct GgufFile {
    path: PathBuf,
    storage: Storage,
    version: u32,
    metadata: Vec<(String, Value)>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_offset: u64,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Memory-maps and validates `path`.
    ///
    /// The map assumes the file is not modified while it is open (memmap2's contract, the same
    /// one llama.cpp relies on); greta never writes a model in place — its writer renames a
    /// finished temporary file over the destination, which leaves existing maps intact.
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let err = |op, source| GgufError::new(path, ErrorKind::Io { op, source });
        // Only a regular file: a FIFO would block here forever (see greta_runtime::input).
        let file = greta_runtime::input::open(path).map_err(|e| err("opening the file", e))?;
        let len = file
            .metadata()
            .map_err(|e| err("reading the file's size", e))?
            .len();
        // Mapping an empty file fails on some platforms; an empty vector gives the clear
        // "truncated" error instead.
        let storage = if len == 0 {
            Storage::Vec(Vec::new())
        } else {
            // SAFETY: the map is read-only and lives as long as `GgufFile`; see the note above
            // about concurrent modification.
            let map = unsafe { memmap2::Mmap::map(&file) }
                .map_err(|e| err("memory-mapping the file", e))?;
            Storage::Mmap(map)
        };
        GgufFile::parse(path.to_path_buf(), storage)
    }

    /// Validates a GGUF file held in memory (tests, and files built on the fly). Errors name the
    /// file `<memory>`.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        GgufFile::parse(PathBuf::from("<memory>"), Storage::Vec(bytes))
    }

    fn parse(path: PathBuf, storage: Storage) -> Result<GgufFile, GgufError> {
        let header = parse_header(storage.bytes()).map_err(|kind| GgufError::new(&path, kind))?;
        let key_index = header
            .metadata
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        let tensor_index = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(GgufFile {
            path,
            storage,
            version: header.version,
            metadata: header.metadata,
            key_index,
            tensors: header.tensors,
            tensor_index,
            alignment: header.alignment,
            data_offset: header.data_offset,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// The metadata in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.key_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// The tensor data alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Where the data section starts in the file; tensor offsets are relative to it.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.storage.bytes()
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The bytes of a tensor of this file. Ranges were checked at open, so this cannot fail for
    /// a `TensorInfo` from [`tensors`](Self::tensors); a `TensorInfo` made up by the caller whose
    /// range lies outside the file gets an empty slice rather than a panic.
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        let start = self.data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.size_bytes));
        match (start, end) {
            (Some(s), Some(e)) => self.bytes().get(s as usize..e as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Builds an error about this file (for callers validating what they read from it).
    pub fn error(&self, kind: ErrorKind) -> GgufError {
        GgufError::new(&self.path, kind)
    }

    fn wrong_type(&self, key: &str, expected: &'static str, found: &Value) -> GgufError {
        self.error(ErrorKind::WrongType {
            key: key.to_string(),
            expected,
            found: found.type_description(),
        })
    }

    /// An integer value of any integer type that fits in a u32.
    pub fn get_u32(&self, key: &str) -> Result<Option<u32>, GgufError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let i = v
            .as_integer()
            .ok_or_else(|| self.wrong_type(key, "an integer", v))?;
        u32::try_from(i).map(Some).map_err(|_| {
            self.error(ErrorKind::OutOfRange {
                key: key.into(),
                value: i.to_string(),
                expected: "u32",
            })
        })
    }

    /// An integer value of any integer type that fits in a u64.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, GgufError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let i = v
            .as_integer()
            .ok_or_else(|| self.wrong_type(key, "an integer", v))?;
        u64::try_from(i).map(Some).map_err(|_| {
            self.error(ErrorKind::OutOfRange {
                key: key.into(),
                value: i.to_string(),
                expected: "u64",
            })
        })
    }

    /// An f32 or f64 value, as f32.
    pub fn get_f32(&self, key: &str) -> Result<Option<f32>, GgufError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        v.as_f64()
            .map(|f| Some(f as f32))
            .ok_or_else(|| self.wrong_type(key, "f32 or f64", v))
    }

    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        v.as_bool()
            .map(Some)
            .ok_or_else(|| self.wrong_type(key, "bool", v))
    }

    pub fn get_str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        v.as_str()
            .map(Some)
            .ok_or_else(|| self.wrong_type(key, "string", v))
    }

    fn get_array(&self, key: &str, expected: &'static str) -> Result<Option<&[Value]>, GgufError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        v.as_array()
            .map(|(_, items)| Some(items))
            .ok_or_else(|| self.wrong_type(key, expected, v))
    }

    /// An array of strings (e.g. `tokenizer.ggml.tokens`, `tokenizer.ggml.merges`).
    pub fn get_str_array(&self, key: &str) -> Result<Option<Vec<&str>>, GgufError> {
        const EXPECTED: &str = "array of string";
        let Some(items) = self.get_array(key, EXPECTED)? else {
            return Ok(None);
        };
        items
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| self.wrong_type(key, EXPECTED, &self.array_desc(key)))
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// An array of f32 or f64 (e.g. `tokenizer.ggml.scores`).
    pub fn get_f32_array(&self, key: &str) -> Result<Option<Vec<f32>>, GgufError> {
        const EXPECTED: &str = "array of f32";
        let Some(items) = self.get_array(key, EXPECTED)? else {
            return Ok(None);
        };
        items
            .iter()
            .map(|v| {
                v.as_f64()
                    .map(|f| f as f32)
                    .ok_or_else(|| self.wrong_type(key, EXPECTED, &self.array_desc(key)))
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// An array of integers that fit in i32 (e.g. `tokenizer.ggml.token_type`).
    pub fn get_i32_array(&self, key: &str) -> Result<Option<Vec<i32>>, GgufError> {
        const EXPECTED: &str = "array of i32";
        let Some(items) = self.get_array(key, EXPECTED)? else {
            return Ok(None);
        };
        items
            .iter()
            .map(|v| {
                let i = v
                    .as_integer()
                    .ok_or_else(|| self.wrong_type(key, EXPECTED, &self.array_desc(key)))?;
                i32::try_from(i).map_err(|_| {
                    self.error(ErrorKind::OutOfRange {
                        key: key.into(),
                        value: i.to_string(),
                        expected: "i32",
                    })
                })
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }

    fn array_desc(&self, key: &str) -> Value {
        self.get(key).cloned().unwrap_or(Value::Bool(false))
    }
}

/// The parsed header: everything but the tensor bytes.
pub(crate) struct Header {
    pub version: u32,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    pub data_offset: u64,
}

/// A bounds-checked little-endian reader over the file's bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn file_len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], ErrorKind> {
        if n > self.remaining() {
            return Err(ErrorKind::Truncated {
                what: what(),
                offset: self.pos as u64,
                needed: n,
                file_len: self.file_len(),
            });
        }
        let s = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], ErrorKind> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, ErrorKind> {
        self.array::<4>(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, ErrorKind> {
        self.array::<8>(what).map(u64::from_le_bytes)
    }

    /// A GGUF string: u64 length, then that many bytes of UTF-8.
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, ErrorKind> {
        let len_at = self.pos as u64;
        let len = self.u64(&|| format!("the length of {}", what()))?;
        if len > self.remaining() {
            return Err(ErrorKind::StringPastEnd {
                what: what(),
                offset: len_at,
                len,
                file_len: self.file_len(),
            });
        }
        let at = self.pos as u64;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| ErrorKind::InvalidUtf8 {
            what: what(),
            offset: at,
        })
    }

    /// Fails with [`ErrorKind::AbsurdCount`] when `count` items of at least `min_size` bytes
    /// each cannot fit in the rest of the file, so no allocation is ever sized by a bad count.
    fn check_count(
        &self,
        what: &'static str,
        count: u64,
        min_size: u64,
        at: u64,
    ) -> Result<(), ErrorKind> {
        let max = self.remaining() / min_size.max(1);
        if count > max {
            return Err(ErrorKind::AbsurdCount {
                what,
                count,
                offset: at,
                max,
            });
        }
        Ok(())
    }

    fn value(&mut self, key: &str, ty: ValueType, depth: usize) -> Result<Value, ErrorKind> {
        let what = || format!("the value of `{key}`");
        Ok(match ty {
            ValueType::U8 => Value::U8(self.array::<1>(&what)?[0]),
            ValueType::I8 => Value::I8(self.array::<1>(&what)?[0] as i8),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(&what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(&what)?)),
            ValueType::U32 => Value::U32(u32::from_le_bytes(self.array(&what)?)),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(&what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(&what)?)),
            ValueType::U64 => Value::U64(u64::from_le_bytes(self.array(&what)?)),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(&what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(&what)?)),
            ValueType::Bool => {
                let at = self.pos as u64;
                match self.array::<1>(&what)?[0] {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    b => {
                        return Err(ErrorKind::BadValue {
                            key: key.into(),
                            message: format!(
                                "bool at byte {at} has byte value {b} (must be 0 or 1)"
                            ),
                        })
                    }
                }
            }
            ValueType::String => Value::String(self.string(&what)?),
            ValueType::Array => {
                let at = self.pos as u64;
                if depth >= MAX_ARRAY_NESTING {
                    return Err(ErrorKind::NestingTooDeep {
                        key: key.into(),
                        offset: at,
                        max: MAX_ARRAY_NESTING,
                    });
                }
                let type_id = self.u32(&|| format!("the element type of `{key}`"))?;
                let elem =
                    ValueType::from_id(type_id).ok_or_else(|| ErrorKind::UnknownValueType {
                        key: key.into(),
                        type_id,
                        offset: at,
                    })?;
                let count_at = self.pos as u64;
                let count = self.u64(&|| format!("the element count of `{key}`"))?;
                self.check_count("array element", count, elem.min_encoded_size(), count_at)?;
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(self.value(key, elem, depth + 1)?);
                }
                Value::Array(elem, items)
            }
        })
    }
}

/// Parses and validates everything before the tensor data (and the tensor ranges).
pub(crate) fn parse_header(bytes: &[u8]) -> Result<Header, ErrorKind> {
    let mut c = Cursor { bytes, pos: 0 };
    let magic = c.take(4.min(c.remaining()), &|| "the magic".into())?;
    if magic != GGUF_MAGIC {
        if magic.len() < 4 && GGUF_MAGIC.starts_with(magic) {
            return Err(ErrorKind::Truncated {
                what: "the magic".into(),
                offset: 0,
                needed: 4,
                file_len: c.file_len(),
            });
        }
        return Err(ErrorKind::BadMagic {
            found: magic.to_vec(),
        });
    }
    let version = c.u32(&|| "the version".into())?;
    if !(2..=3).contains(&version) {
        return Err(ErrorKind::UnsupportedVersion { version });
    }
    let n_tensors_at = c.pos as u64;
    let n_tensors = c.u64(&|| "the tensor count".into())?;
    let n_kv_at = c.pos as u64;
    let n_kv = c.u64(&|| "the metadata count".into())?;
    // A key-value pair takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info at
    // least 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset).
    c.check_count("metadata key-value", n_kv, 13, n_kv_at)?;
    c.check_count("tensor", n_tensors, 24, n_tensors_at)?;

    let mut metadata: Vec<(String, Value)> = Vec::with_capacity(n_kv as usize);
    let mut keys = HashMap::with_capacity(n_kv as usize);
    for i in 0..n_kv {
        let key_at = c.pos as u64;
        let key = c.string(&|| format!("metadata key #{i}"))?;
        if keys.insert(key.clone(), ()).is_some() {
            return Err(ErrorKind::DuplicateKey {
                key,
                offset: key_at,
            });
        }
        let type_at = c.pos as u64;
        let type_id = c.u32(&|| format!("the value type of `{key}`"))?;
        let ty = ValueType::from_id(type_id).ok_or_else(|| ErrorKind::UnknownValueType {
            key: key.clone(),
            type_id,
            offset: type_at,
        })?;
        let value = c.value(&key, ty, 0)?;
        metadata.push((key, value));
    }

    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, v)) => match v.as_u64() {
            Some(a) if a > 0 && a <= u32::MAX as u64 && a.is_power_of_two() => a,
            _ => {
                return Err(ErrorKind::BadAlignment {
                    found: format!("{v} ({})", v.type_description()),
                })
            }
        },
    };

    let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors as usize);
    let mut names = HashMap::with_capacity(n_tensors as usize);
    let mut info_offsets = Vec::with_capacity(n_tensors as usize);
    for i in 0..n_tensors {
        let at = c.pos as u64;
        let name = c.string(&|| format!("the name of tensor #{i}"))?;
        if names.insert(name.clone(), ()).is_some() {
            return Err(ErrorKind::DuplicateTensor { name, offset: at });
        }
        let dims_at = c.pos as u64;
        let n_dims = c.u32(&|| format!("the dimension count of tensor `{name}`"))?;
        if n_dims > MAX_DIMS {
            return Err(ErrorKind::TooManyDims {
                tensor: name,
                n_dims,
                offset: dims_at,
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            dims.push(c.u64(&|| format!("dimension {d} of tensor `{name}`"))?);
        }
        let type_at = c.pos as u64;
        let type_id = c.u32(&|| format!("the type of tensor `{name}`"))?;
        let offset = c.u64(&|| format!("the data offset of tensor `{name}`"))?;
        let ty = GgmlType::from_id(type_id).ok_or_else(|| ErrorKind::UnknownGgmlType {
            tensor: name.clone(),
            id: type_id,
            offset: type_at,
        })?;
        let size_bytes = tensor_size(&name, &dims, ty)?;
        info_offsets.push(at);
        tensors.push(TensorInfo {
            name,
            dims,
            ty,
            offset,
            size_bytes,
        });
    }

    let data_offset = align_up(c.pos as u64, alignment);
    for t in &tensors {
        if t.offset % alignment != 0 {
            return Err(ErrorKind::MisalignedTensor {
                tensor: t.name.clone(),
                offset: t.offset,
                alignment,
            });
        }
        let start = data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.size_bytes));
        match (start, end) {
            (Some(_), Some(e)) if e <= c.file_len() => {}
            _ => {
                return Err(ErrorKind::TensorOutOfBounds {
                    tensor: t.name.clone(),
                    start: data_offset.saturating_add(t.offset),
                    end: data_offset
                        .saturating_add(t.offset)
                        .saturating_add(t.size_bytes),
                    file_len: c.file_len(),
                })
            }
        }
    }
    Ok(Header {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
    })
}

/// The byte size of a tensor, checking that the element count and size fit in 63 bits (ggml
/// uses signed 64-bit sizes) and that rows are whole blocks.
///
/// The product of the non-zero dimensions must fit too. An empty tensor such as `[0, 2^46, 2^48]`
/// has no elements, but its row count (`dims[1..]`, [`TensorInfo::n_rows`]) and any product a
/// caller forms over some of its dimensions overflowed u64 (a panic in debug builds, a wrong
/// size in release ones); refused, no product of a tensor's dimensions can overflow.
///
/// [`TensorInfo::n_rows`]: super::TensorInfo::n_rows
pub(crate) fn tensor_size(name: &str, dims: &[u64], ty: GgmlType) -> Result<u64, ErrorKind> {
    let overflow = || ErrorKind::DimsOverflow {
        tensor: name.to_string(),
        dims: dims.to_vec(),
    };
    let nonzero = dims
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&p| p <= i64::MAX as u64)
        .ok_or_else(overflow)?;
    let n = if dims.contains(&0) { 0 } else { nonzero };
    let ne0 = dims.first().copied().unwrap_or(1);
    if ne0 % ty.block_size() != 0 {
        return Err(ErrorKind::RowNotBlockMultiple {
            tensor: name.to_string(),
            ty: ty.name(),
            ne0,
            block: ty.block_size(),
        });
    }
    let size = ty.bytes_for(n).ok_or_else(overflow)?;
    if size > i64::MAX as u64 {
        return Err(overflow());
    }
    Ok(size)
}

pub(crate) fn align_up(x: u64, alignment: u64) -> u64 {
    x.div_ceil(alignment) * alignment
}
