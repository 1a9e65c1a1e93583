//! Host buffers handed to the interpreter, and their raw element access.

use crate::ir::Scalar;
use half::{bf16, f16};
use std::alloc::Layout;

/// The host could not allocate a buffer of `bytes` bytes (`u64::MAX`: the size overflows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("out of host memory: {bytes} bytes could not be allocated")]
pub struct HostAllocError {
    pub bytes: u64,
}

/// Element types whose all-zero bit pattern is the value zero.
trait Zeroable: Copy {}
impl Zeroable for f16 {}
impl Zeroable for bf16 {}
impl Zeroable for f32 {}
impl Zeroable for i32 {}
impl Zeroable for u32 {}

/// `vec![0; len]` that returns an error where the allocation fails.
fn try_zeroed<T: Zeroable>(len: usize) -> Result<Vec<T>, HostAllocError> {
    let size = std::mem::size_of::<T>();
    let fail = || HostAllocError {
        bytes: (len as u64).saturating_mul(size as u64),
    };
    let layout = Layout::array::<T>(len).map_err(|_| fail())?;
    if layout.size() == 0 {
        return Ok(Vec::new());
    }
    // SAFETY: the layout has a non-zero size. The pointer, when not null, is a fresh
    // allocation of the global allocator for exactly `len` `T`s (the layout `Vec<T>` uses for
    // capacity `len`), zero-filled, and all-zero bits are a valid `T` (`Zeroable`): so the
    // vector owns `len` initialised elements and frees the block with the same layout.
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout).cast::<T>();
        if ptr.is_null() {
            return Err(fail());
        }
        Ok(Vec::from_raw_parts(ptr, len, len))
    }
}

/// A global-memory buffer for the CPU interpreter: a typed host vector, one variant per scalar
/// type a kernel can keep in global memory (there are no bool buffers: bool is not a storage
/// type on the GPU side either).
#[derive(Clone, Debug, PartialEq)]
pub enum Buffer {
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    F32(Vec<f32>),
    I32(Vec<i32>),
    U32(Vec<u32>),
}

impl Buffer {
    /// A zero-filled buffer of `len` elements of `scalar`; `None` for `bool`.
    pub fn zeros(scalar: Scalar, len: usize) -> Option<Buffer> {
        Some(match scalar {
            Scalar::F16 => Buffer::F16(vec![f16::ZERO; len]),
            Scalar::BF16 => Buffer::BF16(vec![bf16::ZERO; len]),
            Scalar::F32 => Buffer::F32(vec![0.0; len]),
            Scalar::I32 => Buffer::I32(vec![0; len]),
            Scalar::U32 => Buffer::U32(vec![0; len]),
            Scalar::Bool => return None,
        })
    }

    /// [`zeros`](Self::zeros) for sizes a user chose (a KV cache for `-c 4000000`): memory the
    /// host cannot give is an error with the bytes asked for, not an abort. Zeroed pages come
    /// from the allocator as with `vec![0; n]` (untouched until used). `Ok(None)` for `bool`.
    pub fn try_zeros(scalar: Scalar, len: usize) -> Result<Option<Buffer>, HostAllocError> {
        Ok(Some(match scalar {
            Scalar::F16 => Buffer::F16(try_zeroed(len)?),
            Scalar::BF16 => Buffer::BF16(try_zeroed(len)?),
            Scalar::F32 => Buffer::F32(try_zeroed(len)?),
            Scalar::I32 => Buffer::I32(try_zeroed(len)?),
            Scalar::U32 => Buffer::U32(try_zeroed(len)?),
            Scalar::Bool => return Ok(None),
        }))
    }

    /// Elements of `scalar` from their little-endian bytes (a tensor in a file); `None` for
    /// `bool` or a length that is not a whole number of elements.
    pub fn from_le_bytes(scalar: Scalar, bytes: &[u8]) -> Option<Buffer> {
        fn each<T, const N: usize>(bytes: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
            let word = |b: &[u8]| f(b.try_into().expect("chunks of N"));
            bytes.chunks_exact(N).map(word).collect()
        }
        if scalar == Scalar::Bool || bytes.len() % scalar.size_bytes() as usize != 0 {
            return None;
        }
        Some(match scalar {
            Scalar::F16 => Buffer::F16(each(bytes, f16::from_le_bytes)),
            Scalar::BF16 => Buffer::BF16(each(bytes, bf16::from_le_bytes)),
            Scalar::F32 => Buffer::F32(each(bytes, f32::from_le_bytes)),
            Scalar::I32 => Buffer::I32(each(bytes, i32::from_le_bytes)),
            _ => Buffer::U32(each(bytes, u32::from_le_bytes)),
        })
    }

    /// A buffer of `scalar` holding `values` rounded to it (round to nearest even for floats;
    /// integers truncate, and `bool` is stored as `u32`, as on the GPU): how tests and callers
    /// outside greta turn f64 data into a kernel's input. [`to_f64_vec`](Self::to_f64_vec)
    /// reads it back exactly, so a reference computed from those values sees what the kernel
    /// saw.
    pub fn from_f64(scalar: Scalar, values: &[f64]) -> Buffer {
        match scalar {
            Scalar::F16 => Buffer::F16(values.iter().map(|&x| f16::from_f64(x)).collect()),
            Scalar::BF16 => Buffer::BF16(values.iter().map(|&x| bf16::from_f64(x)).collect()),
            Scalar::F32 => Buffer::F32(values.iter().map(|&x| x as f32).collect()),
            Scalar::I32 => Buffer::I32(values.iter().map(|&x| x as i32).collect()),
            Scalar::U32 | Scalar::Bool => Buffer::U32(values.iter().map(|&x| x as u32).collect()),
        }
    }

    /// A copy, or an error where the host cannot hold one.
    pub fn try_clone(&self) -> Result<Buffer, HostAllocError> {
        let mut out = Buffer::try_zeros(self.scalar(), self.len())?.expect("no bool buffers");
        out.write_range(0, self);
        Ok(out)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Buffer::F16(v) => v.len(),
            Buffer::BF16(v) => v.len(),
            Buffer::F32(v) => v.len(),
            Buffer::I32(v) => v.len(),
            Buffer::U32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of elements `range` (a view's contents, for the interpreter, which runs on whole
    /// buffers). Panics if the range is out of bounds, as slicing does.
    pub fn range(&self, range: std::ops::Range<usize>) -> Buffer {
        match self {
            Buffer::F16(v) => Buffer::F16(v[range].to_vec()),
            Buffer::BF16(v) => Buffer::BF16(v[range].to_vec()),
            Buffer::F32(v) => Buffer::F32(v[range].to_vec()),
            Buffer::I32(v) => Buffer::I32(v[range].to_vec()),
            Buffer::U32(v) => Buffer::U32(v[range].to_vec()),
        }
    }

    /// Appends `src`'s elements. Panics on a type mismatch.
    pub fn extend_from(&mut self, src: &Buffer) {
        match (self, src) {
            (Buffer::F16(d), Buffer::F16(s)) => d.extend_from_slice(s),
            (Buffer::BF16(d), Buffer::BF16(s)) => d.extend_from_slice(s),
            (Buffer::F32(d), Buffer::F32(s)) => d.extend_from_slice(s),
            (Buffer::I32(d), Buffer::I32(s)) => d.extend_from_slice(s),
            (Buffer::U32(d), Buffer::U32(s)) => d.extend_from_slice(s),
            (d, s) => panic!("extend_from: {} onto {}", s.scalar(), d.scalar()),
        }
    }

    /// Writes `src` over elements `at..at + src.len()`. Panics on a type mismatch or an
    /// out-of-bounds range.
    pub fn write_range(&mut self, at: usize, src: &Buffer) {
        match (self, src) {
            (Buffer::F16(d), Buffer::F16(s)) => d[at..at + s.len()].copy_from_slice(s),
            (Buffer::BF16(d), Buffer::BF16(s)) => d[at..at + s.len()].copy_from_slice(s),
            (Buffer::F32(d), Buffer::F32(s)) => d[at..at + s.len()].copy_from_slice(s),
            (Buffer::I32(d), Buffer::I32(s)) => d[at..at + s.len()].copy_from_slice(s),
            (Buffer::U32(d), Buffer::U32(s)) => d[at..at + s.len()].copy_from_slice(s),
            (d, s) => panic!("write_range: {} over {}", s.scalar(), d.scalar()),
        }
    }

    /// The element type, compared against the kernel parameter's.
    pub fn scalar(&self) -> Scalar {
        match self {
            Buffer::F16(_) => Scalar::F16,
            Buffer::BF16(_) => Scalar::BF16,
            Buffer::F32(_) => Scalar::F32,
            Buffer::I32(_) => Scalar::I32,
            Buffer::U32(_) => Scalar::U32,
        }
    }

    pub fn as_f16(&self) -> Option<&[f16]> {
        match self {
            Buffer::F16(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bf16(&self) -> Option<&[bf16]> {
        match self {
            Buffer::BF16(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            Buffer::F32(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_i32(&self) -> Option<&[i32]> {
        match self {
            Buffer::I32(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_u32(&self) -> Option<&[u32]> {
        match self {
            Buffer::U32(v) => Some(v),
            _ => None,
        }
    }

    /// Every element converted to f32 (exact for f16/bf16, rounded for large integers): the
    /// form tests compare against references in.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self {
            Buffer::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            Buffer::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
            Buffer::F32(v) => v.clone(),
            Buffer::I32(v) => v.iter().map(|&x| x as f32).collect(),
            Buffer::U32(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// Every element converted to f64, exactly: the form results are compared against f64
    /// references in.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            Buffer::F16(v) => v.iter().map(|x| x.to_f64()).collect(),
            Buffer::BF16(v) => v.iter().map(|x| x.to_f64()).collect(),
            Buffer::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Buffer::I32(v) => v.iter().map(|&x| x as f64).collect(),
            Buffer::U32(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }

    /// Element `i` as the interpreter's bit pattern (f16/bf16 bits zero-extended, f32 bits,
    /// integers as u32). Panics when out of bounds: callers check bounds first.
    pub(crate) fn get_bits(&self, i: usize) -> u32 {
        match self {
            Buffer::F16(v) => v[i].to_bits() as u32,
            Buffer::BF16(v) => v[i].to_bits() as u32,
            Buffer::F32(v) => v[i].to_bits(),
            Buffer::I32(v) => v[i] as u32,
            Buffer::U32(v) => v[i],
        }
    }

    /// Store a bit pattern at `i` (the inverse of [`Buffer::get_bits`]).
    pub(crate) fn set_bits(&mut self, i: usize, bits: u32) {
        match self {
            Buffer::F16(v) => v[i] = f16::from_bits(bits as u16),
            Buffer::BF16(v) => v[i] = bf16::from_bits(bits as u16),
            Buffer::F32(v) => v[i] = f32::from_bits(bits),
            Buffer::I32(v) => v[i] = bits as i32,
            Buffer::U32(v) => v[i] = bits,
        }
    }

    /// Gather `lanes` consecutive elements at each `(slot, start)` into `out[l * n + slot]`.
    /// One match on the variant, then a tight loop: this is the interpreter's hottest path.
    pub(crate) fn gather(&self, at: &[(u32, u32)], lanes: usize, n: usize, out: &mut [u32]) {
        macro_rules! go {
            ($v:expr, $conv:expr) => {
                for &(slot, start) in at {
                    for l in 0..lanes {
                        out[l * n + slot as usize] = $conv($v[start as usize + l]);
                    }
                }
            };
        }
        match self {
            Buffer::F16(v) => go!(v, |x: f16| x.to_bits() as u32),
            Buffer::BF16(v) => go!(v, |x: bf16| x.to_bits() as u32),
            Buffer::F32(v) => go!(v, |x: f32| x.to_bits()),
            Buffer::I32(v) => go!(v, |x: i32| x as u32),
            Buffer::U32(v) => go!(v, |x: u32| x),
        }
    }

    /// Scatter: the inverse of [`Buffer::gather`], in the order of `at` (thread order), so a
    /// later thread's store to the same element wins, deterministically.
    pub(crate) fn scatter(&mut self, at: &[(u32, u32)], lanes: usize, n: usize, src: &[u32]) {
        macro_rules! go {
            ($v:expr, $conv:expr) => {
                for &(slot, start) in at {
                    for l in 0..lanes {
                        $v[start as usize + l] = $conv(src[l * n + slot as usize]);
                    }
                }
            };
        }
        match self {
            Buffer::F16(v) => go!(v, |b: u32| f16::from_bits(b as u16)),
            Buffer::BF16(v) => go!(v, |b: u32| bf16::from_bits(b as u16)),
            Buffer::F32(v) => go!(v, f32::from_bits),
            Buffer::I32(v) => go!(v, |b: u32| b as i32),
            Buffer::U32(v) => go!(v, |b: u32| b),
        }
    }
}

macro_rules! from_vec {
    ($t:ty, $var:ident) => {
        impl From<Vec<$t>> for Buffer {
            fn from(v: Vec<$t>) -> Buffer {
                Buffer::$var(v)
            }
        }
    };
}
from_vec!(f16, F16);
from_vec!(bf16, BF16);
from_vec!(f32, F32);
from_vec!(i32, I32);
from_vec!(u32, U32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_zeros_is_zeros() {
        for s in [
            Scalar::F16,
            Scalar::BF16,
            Scalar::F32,
            Scalar::I32,
            Scalar::U32,
        ] {
            for len in [0, 1, 1000] {
                let b = Buffer::try_zeros(s, len).unwrap();
                assert_eq!(b, Buffer::zeros(s, len), "{s} × {len}");
                assert_eq!(b.as_ref().unwrap().try_clone().unwrap(), b.unwrap());
            }
        }
        assert_eq!(Buffer::try_zeros(Scalar::Bool, 4), Ok(None));
    }

    /// Sizes no allocator can give are errors naming the bytes, not a panic or an abort
    /// (`vec![0f32; usize::MAX]` panics with "capacity overflow").
    #[test]
    fn impossible_sizes_are_errors() {
        let e = Buffer::try_zeros(Scalar::F32, usize::MAX).unwrap_err();
        assert_eq!(e.bytes, u64::MAX);
        let e = Buffer::try_zeros(Scalar::F16, 1 << 62).unwrap_err();
        assert_eq!(e.bytes, 1 << 63);
        assert_eq!(
            e.to_string(),
            "out of host memory: 9223372036854775808 bytes could not be allocated"
        );
    }
}
