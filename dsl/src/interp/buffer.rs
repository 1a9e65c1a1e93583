//! Host buffers handed to the interpreter, and their raw element access.

use crate::ir::Scalar;
use half::{bf16, f16};

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
