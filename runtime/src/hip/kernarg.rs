//! The kernel-argument (kernarg) segment of an AMDGPU launch, packed by hand.
//!
//! greta's generated kernels are `extern "C"` functions whose parameters are device pointers
//! (buffers) and scalars (`f16`/`bf16` 2 bytes, `f32`/`i32`/`u32` 4 bytes, `bool` 1 byte). The
//! AMDGPU ABI lays the explicit arguments out in declaration order, each at the next offset that
//! is a multiple of its natural alignment (= its size for these types; pointers are 8 bytes),
//! little-endian. That is the layout the code object's metadata (`.args[].offset`) records and
//! the one `HIP_LAUNCH_PARAM_BUFFER_POINTER` hands to the runtime, which copies each argument
//! from its metadata offset and appends the hidden arguments itself. Keeping this a pure
//! function makes it testable without a GPU, and the tests check it against the offsets clang
//! itself assigns.

use greta_dsl::ir::{Const, Scalar};

/// One explicit kernel argument, as the hardware sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KernargValue {
    /// A global-memory address (a buffer argument).
    Pointer(u64),
    /// A scalar passed by value.
    Value(Const),
}

impl KernargValue {
    /// Size in bytes, which is also the alignment of every type greta passes.
    pub fn size(&self) -> usize {
        match self {
            KernargValue::Pointer(_) => 8,
            KernargValue::Value(c) => scalar_size(c.scalar()),
        }
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        match *self {
            KernargValue::Pointer(p) => out.extend_from_slice(&p.to_le_bytes()),
            KernargValue::Value(c) => match c {
                Const::F16(v) => out.extend_from_slice(&v.to_bits().to_le_bytes()),
                Const::BF16(v) => out.extend_from_slice(&v.to_bits().to_le_bytes()),
                Const::F32(v) => out.extend_from_slice(&v.to_bits().to_le_bytes()),
                Const::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
                Const::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
                // C++ `bool` is one byte holding 0 or 1 (clang passes it `zeroext i8`).
                Const::Bool(v) => out.push(v as u8),
            },
        }
    }
}

fn scalar_size(s: Scalar) -> usize {
    s.size_bytes() as usize
}

/// Packed explicit arguments of one launch, with the offset each one landed at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernargs {
    bytes: Vec<u8>,
    offsets: Vec<usize>,
}

impl Kernargs {
    /// Lays `args` out in order, each at the next multiple of its natural alignment; padding
    /// bytes are zero. The size is the end of the last argument (no tail padding: the runtime
    /// places the hidden arguments at the offsets the code object's metadata gives).
    pub fn pack(args: &[KernargValue]) -> Kernargs {
        let mut bytes = Vec::with_capacity(args.len() * 8);
        let mut offsets = Vec::with_capacity(args.len());
        for arg in args {
            let align = arg.size();
            let offset = bytes.len().next_multiple_of(align);
            bytes.resize(offset, 0);
            offsets.push(offset);
            arg.write_to(&mut bytes);
        }
        Kernargs { bytes, offsets }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The byte offset of each argument, in argument order.
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};
    use KernargValue::{Pointer, Value};

    #[test]
    fn each_scalar_has_its_size_and_little_endian_bits() {
        let cases: [(Const, &[u8]); 7] = [
            (Const::F16(f16::from_f32(1.0)), &[0x00, 0x3c]),
            (Const::BF16(bf16::from_f32(1.0)), &[0x80, 0x3f]),
            (Const::F32(1.0), &[0x00, 0x00, 0x80, 0x3f]),
            (Const::I32(-2), &[0xfe, 0xff, 0xff, 0xff]),
            (Const::U32(0x0102_0304), &[0x04, 0x03, 0x02, 0x01]),
            (Const::Bool(true), &[1]),
            (Const::Bool(false), &[0]),
        ];
        for (c, want) in cases {
            let k = Kernargs::pack(&[Value(c)]);
            assert_eq!(k.bytes(), want, "{c:?}");
            assert_eq!(k.offsets(), &[0]);
        }
        let k = Kernargs::pack(&[Pointer(0x1122_3344_5566_7788)]);
        assert_eq!(k.bytes(), &0x1122_3344_5566_7788u64.to_le_bytes());
    }

    #[test]
    fn arguments_are_naturally_aligned_with_zero_padding() {
        // bool @0, pointer @8 (7 pad bytes), f16 @16, f32 @20, bool @24, bf16 @26, u32 @28,
        // bool @32, pointer @40.
        let args = [
            Value(Const::Bool(true)),
            Pointer(0xdead_beef_0000_1000),
            Value(Const::F16(f16::from_f32(-2.0))),
            Value(Const::F32(0.5)),
            Value(Const::Bool(true)),
            Value(Const::BF16(bf16::from_f32(3.0))),
            Value(Const::U32(7)),
            Value(Const::Bool(false)),
            Pointer(0x10),
        ];
        let k = Kernargs::pack(&args);
        assert_eq!(k.offsets(), &[0, 8, 16, 20, 24, 26, 28, 32, 40]);
        assert_eq!(k.len(), 48);
        assert_eq!(&k.bytes()[1..8], &[0; 7]);
        assert_eq!(k.bytes()[25], 0);
        assert_eq!(&k.bytes()[33..40], &[0; 7]);
        assert_eq!(&k.bytes()[8..16], &0xdead_beef_0000_1000u64.to_le_bytes());
        assert_eq!(
            &k.bytes()[16..18],
            &f16::from_f32(-2.0).to_bits().to_le_bytes()
        );
        assert_eq!(
            &k.bytes()[26..28],
            &bf16::from_f32(3.0).to_bits().to_le_bytes()
        );
    }

    #[test]
    fn two_byte_values_pack_tightly_and_four_byte_values_realign() {
        let k = Kernargs::pack(&[
            Value(Const::F16(f16::ONE)),
            Value(Const::BF16(bf16::ONE)),
            Value(Const::F16(f16::ONE)),
            Value(Const::I32(1)),
        ]);
        assert_eq!(k.offsets(), &[0, 2, 4, 8]);
        assert_eq!(k.len(), 12);
    }

    #[test]
    fn no_arguments_is_an_empty_segment() {
        assert!(Kernargs::pack(&[]).is_empty());
    }
}
