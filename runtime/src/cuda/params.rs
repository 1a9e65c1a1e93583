//! The kernel-parameter array `cuLaunchKernel` reads, built from [`KernelArg`]s.
//!
//! `cuLaunchKernel(..., void** kernelParams, ...)` takes one pointer per kernel parameter; the
//! driver reads as many bytes behind each pointer as the kernel's parameter declares (it knows
//! the layout from the cubin/PTX). The generated kernels (`codegen/src/hip/mod.rs`) take buffers
//! as plain device pointers (`f32* __restrict__ x`: 8 bytes) and values by value in their C types
//! (`prelude.rs`): `f32`/`i32`/`u32` 4 bytes, `_Float16`/`__bf16` 2 bytes, `bool` 1 byte. Each
//! value gets its own 8-byte, 8-aligned slot holding its bytes at the start, so a slot is right
//! for any of these widths and alignments.
//!
//! Packing is a pure function of the arguments and a buffer → device-pointer lookup, so it is
//! tested here without a GPU. It also checks the arguments' *layout* against the kernel's
//! parameters (count; buffer or value; value type), even for `launch_unchecked`: the driver reads
//! as many bytes behind each pointer as the kernel declares, so a missing or narrower argument
//! would be a host-memory over-read, which a safe function must not allow. The full checks
//! (buffer element types and lengths, launch dimensions) stay in [`crate::check`].

use crate::backend::{DeviceBuffer, KernelArg, RuntimeError};
use greta_dsl::ir::{Const, Param, ParamKind};
use std::ffi::c_void;

/// The packed parameters of one launch. The slots live on the heap, so the pointers from
/// [`Params::pointers`] stay valid while `self` is alive and unmodified, wherever it moves.
#[derive(Debug)]
pub(crate) struct Params {
    slots: Vec<u64>,
    /// Bytes of each slot the driver reads; the launch itself does not need them (the driver
    /// knows the kernel's layout), the tests check them.
    #[cfg_attr(not(test), allow(dead_code))]
    widths: Vec<u8>,
}

impl Params {
    /// Packs `args` for kernel `kernel` with parameters `params`, in order; `device_ptr` turns
    /// a buffer into its device address (an error for a buffer of another backend).
    pub(crate) fn pack(
        kernel: &str,
        params: &[Param],
        args: &[KernelArg<'_>],
        mut device_ptr: impl FnMut(&DeviceBuffer) -> Result<u64, RuntimeError>,
    ) -> Result<Params, RuntimeError> {
        if args.len() != params.len() {
            return Err(RuntimeError::Launch {
                kernel: kernel.to_string(),
                message: format!("takes {} arguments, got {}", params.len(), args.len()),
            });
        }
        let mut slots = Vec::with_capacity(args.len());
        let mut widths = Vec::with_capacity(args.len());
        for (arg, param) in args.iter().zip(params) {
            let (bytes, width) = match (arg, &param.kind) {
                (
                    KernelArg::Buffer(b)
                    | KernelArg::BufferAtLeast(b, _)
                    | KernelArg::Slice { buffer: b, .. },
                    ParamKind::Buffer { .. },
                ) => ((device_ptr(b)? + arg.byte_offset()).to_ne_bytes(), 8),
                (KernelArg::Value(c), ParamKind::Value(s)) if c.scalar() == *s => value_bytes(*c),
                _ => {
                    return Err(RuntimeError::Argument {
                        kernel: kernel.to_string(),
                        arg: param.name.clone(),
                        message: format!(
                            "expected {}, got {}",
                            describe_param(&param.kind),
                            describe_arg(arg)
                        ),
                    })
                }
            };
            slots.push(u64::from_ne_bytes(bytes));
            widths.push(width);
        }
        Ok(Params { slots, widths })
    }

    /// The bytes the driver reads for parameter `i` (its C-sized value).
    #[cfg(test)]
    pub(crate) fn bytes(&self, i: usize) -> Vec<u8> {
        self.slots[i].to_ne_bytes()[..self.widths[i] as usize].to_vec()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The `void**` array for `cuLaunchKernel`: one pointer per slot, into `self`.
    pub(crate) fn pointers(&mut self) -> Vec<*mut c_void> {
        self.slots
            .iter_mut()
            .map(|s| s as *mut u64 as *mut c_void)
            .collect()
    }
}

fn describe_param(kind: &ParamKind) -> String {
    match kind {
        ParamKind::Buffer { elem, .. } => format!("a buffer of {elem}"),
        ParamKind::Value(s) => format!("a {s} value"),
    }
}

fn describe_arg(arg: &KernelArg<'_>) -> String {
    match arg {
        KernelArg::Buffer(b) | KernelArg::BufferAtLeast(b, _) => {
            format!("a buffer of {}", b.scalar())
        }
        KernelArg::Slice { buffer, .. } => format!("a slice of a buffer of {}", buffer.scalar()),
        KernelArg::Value(c) => format!("a {} value", c.scalar()),
    }
}

/// A value's bytes in its C type (native byte order, as the GPU reads them: both x86-64 hosts
/// and NVIDIA GPUs are little-endian), zero-padded to 8, and its width.
fn value_bytes(c: Const) -> ([u8; 8], u8) {
    let mut out = [0u8; 8];
    let width = match c {
        Const::F16(v) => put(&mut out, &v.to_bits().to_ne_bytes()),
        Const::BF16(v) => put(&mut out, &v.to_bits().to_ne_bytes()),
        Const::F32(v) => put(&mut out, &v.to_bits().to_ne_bytes()),
        Const::I32(v) => put(&mut out, &v.to_ne_bytes()),
        Const::U32(v) => put(&mut out, &v.to_ne_bytes()),
        // C++ `bool` is one byte holding 0 or 1.
        Const::Bool(v) => put(&mut out, &[v as u8]),
    };
    (out, width)
}

fn put(out: &mut [u8; 8], bytes: &[u8]) -> u8 {
    out[..bytes.len()].copy_from_slice(bytes);
    bytes.len() as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendKind;
    use greta_dsl::ir::{Access, Scalar};
    use half::{bf16, f16};

    fn fake_buffer() -> DeviceBuffer {
        DeviceBuffer::new(Scalar::F32, 4, BackendKind::Cuda, Box::new(()))
    }

    /// The parameters `args` fit: buffers of f32, values of their own type.
    fn params_for(args: &[KernelArg<'_>]) -> Vec<Param> {
        args.iter()
            .enumerate()
            .map(|(i, a)| Param {
                name: format!("p{i}"),
                kind: match a {
                    KernelArg::Value(c) => ParamKind::Value(c.scalar()),
                    _ => ParamKind::Buffer {
                        elem: Scalar::F32,
                        access: Access::ReadWrite,
                    },
                },
            })
            .collect()
    }

    fn pack(args: &[KernelArg<'_>]) -> Params {
        Params::pack("k", &params_for(args), args, |_| Ok(0x7f00_dead_beef_0040)).unwrap()
    }

    #[test]
    fn each_scalar_has_its_c_width_and_bytes() {
        let cases: [(Const, &[u8]); 9] = [
            (Const::F32(1.0), &[0x00, 0x00, 0x80, 0x3f]),
            (Const::F32(-2.5), &(-2.5f32).to_le_bytes()),
            (Const::I32(-1), &[0xff; 4]),
            (Const::U32(0x1234_5678), &[0x78, 0x56, 0x34, 0x12]),
            (Const::F16(f16::from_f32(1.0)), &[0x00, 0x3c]),
            (Const::BF16(bf16::from_f32(1.0)), &[0x80, 0x3f]),
            (Const::BF16(bf16::from_f32(-0.0)), &[0x00, 0x80]),
            (Const::Bool(true), &[1]),
            (Const::Bool(false), &[0]),
        ];
        for (c, want) in cases {
            let p = pack(&[KernelArg::Value(c)]);
            assert_eq!(p.bytes(0), want, "{c:?}");
            // The rest of the slot is zero (never read by the driver, but deterministic).
            assert!(p.slots[0].to_ne_bytes()[want.len()..]
                .iter()
                .all(|&b| b == 0));
        }
    }

    #[test]
    fn buffers_are_eight_byte_device_pointers_in_argument_order() {
        let b = fake_buffer();
        let mut p = pack(&[
            KernelArg::Buffer(&b),
            KernelArg::Value(Const::U32(7)),
            KernelArg::BufferAtLeast(&b, 2),
            KernelArg::Value(Const::F16(f16::from_f32(0.5))),
        ]);
        assert_eq!(p.len(), 4);
        assert_eq!(p.bytes(0), 0x7f00_dead_beef_0040u64.to_le_bytes());
        assert_eq!(p.bytes(1), [7, 0, 0, 0]);
        assert_eq!(p.bytes(2), 0x7f00_dead_beef_0040u64.to_le_bytes());
        assert_eq!(p.bytes(3), [0x00, 0x38]);
        // The pointer array points at the slots, each 8-aligned, in order.
        let ptrs = p.pointers();
        assert_eq!(ptrs.len(), 4);
        for (i, ptr) in ptrs.iter().enumerate() {
            assert_eq!(*ptr as usize % 8, 0);
            assert_eq!(*ptr as usize, p.slots.as_ptr() as usize + 8 * i);
        }
    }

    /// A slice passes the buffer's address plus its offset in bytes.
    #[test]
    fn slices_point_past_their_offset() {
        let b = fake_buffer();
        let p = pack(&[KernelArg::Slice {
            buffer: &b,
            offset: 8,
            len: 4,
        }]);
        let bytes = (8 * b.scalar().size_bytes()) as u64;
        assert_eq!(p.bytes(0), (0x7f00_dead_beef_0040u64 + bytes).to_le_bytes());
    }

    #[test]
    fn a_buffer_lookup_error_stops_packing() {
        let b = fake_buffer();
        let args = [KernelArg::Buffer(&b)];
        let err = Params::pack("k", &params_for(&args), &args, |_| {
            Err(RuntimeError::Buffer(
                "a cpu buffer was given to the cuda backend".into(),
            ))
        })
        .unwrap_err();
        assert!(err.to_string().contains("cpu buffer"));
    }

    #[test]
    fn a_layout_that_does_not_fit_the_kernel_is_refused_even_unchecked() {
        let b = fake_buffer();
        let ok = |_: &DeviceBuffer| Ok(1u64);
        let params = params_for(&[KernelArg::Buffer(&b), KernelArg::Value(Const::F32(1.0))]);
        // Too few arguments: the driver would read a pointer past the array.
        let e = Params::pack("k", &params, &[KernelArg::Buffer(&b)], ok).unwrap_err();
        assert!(e.to_string().contains("takes 2 arguments, got 1"), "{e}");
        // A value where a buffer goes.
        let args = [
            KernelArg::Value(Const::U32(1)),
            KernelArg::Value(Const::F32(1.0)),
        ];
        let e = Params::pack("k", &params, &args, ok).unwrap_err();
        assert!(e.to_string().contains("argument `p0`"), "{e}");
        // A 2-byte value where the kernel reads 4.
        let args = [
            KernelArg::Buffer(&b),
            KernelArg::Value(Const::F16(f16::ONE)),
        ];
        let e = Params::pack("k", &params, &args, ok).unwrap_err();
        assert!(e.to_string().contains("argument `p1`"), "{e}");
    }

    #[test]
    fn no_arguments_is_an_empty_array() {
        let mut p = pack(&[]);
        assert_eq!(p.len(), 0);
        assert!(p.pointers().is_empty());
    }
}
