//! Launch checks shared by every backend: a launch that does not fit the kernel's signature is
//! an error naming the argument, before any device sees it.

use crate::backend::{KernelArg, RuntimeError, Signature};
use greta_dsl::interp::LaunchDims;
use greta_dsl::ir::ParamKind;
use greta_dsl::Target;

/// The alignment a [`KernelArg::Slice`] must start on: the widest vector access a kernel makes.
pub const SLICE_ALIGN: u64 = 16;

pub fn launch(
    sig: &Signature,
    target: &Target,
    dims: LaunchDims,
    args: &[KernelArg<'_>],
) -> Result<(), RuntimeError> {
    let launch_err = |message: String| RuntimeError::Launch {
        kernel: sig.name.clone(),
        message,
    };
    if args.len() != sig.params.len() {
        let names: Vec<_> = sig.params.iter().map(|p| p.name.as_str()).collect();
        return Err(launch_err(format!(
            "takes {} arguments ({}), got {}",
            sig.params.len(),
            names.join(", "),
            args.len()
        )));
    }
    for (param, arg) in sig.params.iter().zip(args) {
        let arg_err = |message: String| RuntimeError::Argument {
            kernel: sig.name.clone(),
            arg: param.name.clone(),
            message,
        };
        match (&param.kind, arg) {
            (
                ParamKind::Buffer { elem, .. },
                KernelArg::Slice {
                    buffer: b,
                    offset,
                    len,
                },
            ) => {
                if b.scalar() != *elem {
                    return Err(arg_err(format!(
                        "expected a buffer of {elem}, got a slice of a buffer of {}",
                        b.scalar()
                    )));
                }
                if !matches!(offset.checked_add(*len), Some(end) if end <= b.len()) {
                    return Err(arg_err(format!(
                        "the slice {offset}..{} is past the buffer's {} elements",
                        offset.saturating_add(*len),
                        b.len()
                    )));
                }
                if arg.byte_offset() % SLICE_ALIGN != 0 {
                    return Err(arg_err(format!(
                        "the slice starts {} bytes in, not on a {SLICE_ALIGN}-byte boundary",
                        arg.byte_offset()
                    )));
                }
            }
            (
                ParamKind::Buffer { elem, .. },
                KernelArg::Buffer(b) | KernelArg::BufferAtLeast(b, _),
            ) => {
                if b.scalar() != *elem {
                    return Err(arg_err(format!(
                        "expected a buffer of {elem}, got a buffer of {}",
                        b.scalar()
                    )));
                }
                if let KernelArg::BufferAtLeast(_, need) = arg {
                    if b.len() < *need {
                        return Err(arg_err(format!(
                            "the launch needs {need} elements, the buffer has {}",
                            b.len()
                        )));
                    }
                }
            }
            (ParamKind::Value(s), KernelArg::Value(c)) => {
                if c.scalar() != *s {
                    return Err(arg_err(format!(
                        "expected a {s} value, got a {} value",
                        c.scalar()
                    )));
                }
            }
            (ParamKind::Buffer { elem, .. }, KernelArg::Value(c)) => {
                return Err(arg_err(format!(
                    "expected a buffer of {elem}, got a {} value",
                    c.scalar()
                )))
            }
            (ParamKind::Value(s), _) => {
                return Err(arg_err(format!("expected a {s} value, got a buffer")))
            }
        }
    }
    let threads: u64 = dims.block.iter().map(|&d| d as u64).product();
    if dims.grid.contains(&0) || dims.block.contains(&0) {
        return Err(launch_err(format!(
            "empty launch: grid {:?}, block {:?}",
            dims.grid, dims.block
        )));
    }
    if threads > target.max_block_threads as u64 {
        return Err(launch_err(format!(
            "{threads} threads per block; {} allows {}",
            target.name, target.max_block_threads
        )));
    }
    if let Some(bs) = sig.block_size {
        if bs != dims.block {
            return Err(launch_err(format!(
                "was built for blocks of {bs:?}, launched with {:?}",
                dims.block
            )));
        }
    }
    if sig.shared_bytes > target.lds_bytes_max {
        return Err(launch_err(format!(
            "needs {} bytes of LDS; {} has {}",
            sig.shared_bytes, target.name, target.lds_bytes_max
        )));
    }
    Ok(())
}
