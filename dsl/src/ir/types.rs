//! Value types of the kernel IR.
//!
//! The IR is target independent: wave size, LDS limits and math builtins live in the codegen's
//! `Target`, never here. A value is a scalar or a short vector of one scalar type; vectors exist so
//! that a kernel can ask for one 16-byte memory access instead of several narrow ones.

use std::fmt;

/// Scalar element types. `F16`/`BF16` are storage types: arithmetic on them is allowed (it is
/// what the hardware does) but mixing precisions needs an explicit conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scalar {
    F16,
    BF16,
    F32,
    I32,
    U32,
    Bool,
}

impl Scalar {
    pub const ALL: [Scalar; 6] = [
        Scalar::F16,
        Scalar::BF16,
        Scalar::F32,
        Scalar::I32,
        Scalar::U32,
        Scalar::Bool,
    ];

    /// Size in bytes in memory (bool is stored as one byte where it is stored at all).
    pub fn size_bytes(self) -> u32 {
        match self {
            Scalar::F16 | Scalar::BF16 => 2,
            Scalar::F32 | Scalar::I32 | Scalar::U32 => 4,
            Scalar::Bool => 1,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Scalar::F16 | Scalar::BF16 | Scalar::F32)
    }

    pub fn is_int(self) -> bool {
        matches!(self, Scalar::I32 | Scalar::U32)
    }

    /// Name as written in the DSL (and by the IR printer).
    pub fn name(self) -> &'static str {
        match self {
            Scalar::F16 => "f16",
            Scalar::BF16 => "bf16",
            Scalar::F32 => "f32",
            Scalar::I32 => "i32",
            Scalar::U32 => "u32",
            Scalar::Bool => "bool",
        }
    }

    pub fn from_name(name: &str) -> Option<Scalar> {
        Scalar::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scalar (`lanes == 1`) or a vector of 2, 4 or 8 lanes of one scalar type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Type {
    pub scalar: Scalar,
    pub lanes: u8,
}

impl Type {
    pub const fn scalar(scalar: Scalar) -> Type {
        Type { scalar, lanes: 1 }
    }

    pub const fn vector(scalar: Scalar, lanes: u8) -> Type {
        Type { scalar, lanes }
    }

    pub const F32: Type = Type::scalar(Scalar::F32);
    pub const U32: Type = Type::scalar(Scalar::U32);
    pub const I32: Type = Type::scalar(Scalar::I32);
    pub const BOOL: Type = Type::scalar(Scalar::Bool);

    pub fn is_vector(self) -> bool {
        self.lanes > 1
    }

    /// Vector widths the IR accepts: 1, 2, 4, 8.
    pub fn valid_lanes(lanes: u8) -> bool {
        matches!(lanes, 1 | 2 | 4 | 8)
    }

    pub fn size_bytes(self) -> u32 {
        self.scalar.size_bytes() * self.lanes as u32
    }

    pub fn with_scalar(self, scalar: Scalar) -> Type {
        Type {
            scalar,
            lanes: self.lanes,
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lanes == 1 {
            write!(f, "{}", self.scalar)
        } else {
            write!(f, "{}x{}", self.scalar, self.lanes)
        }
    }
}
