//! The argument structs `#[kernel]` generates for launching a kernel (`greta_dsl::launch`):
//! their positional list is the kernel's signature, in order, whatever the order of the fields
//! at the launch site. (A wrong field name or type is a compile error: `tests/ui/launch_*.rs`.)

use greta_dsl::ir::{Access, Const, ParamKind, Scalar};
use greta_dsl::launch::{Arg, KernelArgs};
use greta_dsl::prelude::*;

/// Buffers and scalars of every kind interleaved, with comptime parameters between them.
#[kernel]
#[allow(clippy::too_many_arguments)]
fn mixed<T: Float>(
    x: &[T],
    n: u32,
    #[comptime] block: u32,
    scale: f32,
    y: &mut [f32],
    #[comptime] add_h: bool,
    flag: bool,
    h: f16,
    offset: i32,
) {
    block_size(block);
    let i = thread_idx().x;
    if i < n && flag && offset >= 0 {
        if add_h {
            y[i] = x[i].to_f32() * scale + h.to_f32();
        } else {
            y[i] = x[i].to_f32() * scale;
        }
    }
}

/// No buffers: the struct has no buffer type parameter, and serves any.
#[kernel]
fn values_only(n: u32, #[comptime] block: u32) {
    block_size(block);
    if thread_idx().x >= n {
        return;
    }
}

#[test]
fn the_argument_list_follows_the_signature() {
    let kernel = mixed::<f16>(&Target::GFX942, 64, true).unwrap();
    // Fields in another order than the signature's: the list is still the signature's.
    let args = MixedArgs {
        offset: -3,
        h: f16::from_f32(2.0),
        flag: true,
        y: "y",
        scale: 0.5,
        n: 7,
        x: "x",
    };
    assert_eq!(<MixedArgs<&str> as KernelArgs<&str>>::KERNEL, kernel.name);
    let args = args.into_args();
    assert_eq!(
        args,
        vec![
            Arg::Buffer("x"),
            Arg::Value(Const::U32(7)),
            Arg::Value(Const::F32(0.5)),
            Arg::Buffer("y"),
            Arg::Value(Const::Bool(true)),
            Arg::Value(Const::F16(f16::from_f32(2.0))),
            Arg::Value(Const::I32(-3)),
        ]
    );
    assert_eq!(args.len(), kernel.params.len());
    for (param, arg) in kernel.params.iter().zip(&args) {
        match (arg, &param.kind) {
            (Arg::Buffer(name), ParamKind::Buffer { .. }) => assert_eq!(*name, param.name),
            (Arg::Value(c), ParamKind::Value(s)) => assert_eq!(c.scalar(), *s, "{}", param.name),
            _ => panic!("{}: {arg:?} for a {:?} parameter", param.name, param.kind),
        }
    }
    assert_eq!(
        kernel.params[3].kind,
        ParamKind::Buffer {
            elem: Scalar::F32,
            access: Access::ReadWrite
        }
    );
}

#[test]
fn a_kernel_without_buffers_takes_any_buffer_type() {
    let kernel = values_only(&Target::SM_90, 32).unwrap();
    let args: Vec<Arg<()>> = ValuesOnlyArgs { n: 5 }.into_args();
    assert_eq!(args, vec![Arg::Value(Const::U32(5))]);
    assert_eq!(<ValuesOnlyArgs as KernelArgs<u8>>::KERNEL, kernel.name);
}
