//! Embedding lookup: `out[t, :] = table[ids[t], :]`, one block per token, converting the
//! table's `T` (f16/bf16/f32) to the activation type `O` (`out`: f32 by default, exact; f16 or
//! bf16 for half-precision activations, rounded once). The model also gathers rows of its own
//! activations with it (`T = O`).
//!
//! Token ids are not checked here (a GPU kernel has no way to report them): the model checks
//! every id against the vocabulary before launching; the interpreter reports an out-of-range
//! row as an out-of-bounds load. Floor: read the rows and write them,
//! `tokens·dim·(size + 4)` bytes.
//!
//! Arguments, in order: `table: &[T]` (at least `vocab·dim`), `ids: &[u32]` (at least `tokens`),
//! `out: &mut [O]` (at least `tokens·dim`), `dim: u32`. Launch with [`launch`].

use crate::config::{block_param, DTYPE, VEC};
use crate::problem::{
    from_f64, linear, to_f64, zeros, Expected, Inputs, Problem, ProblemArg, Tolerance,
};
use crate::{check_vec_width, Config, KernelSpec, ProblemError};
use greta_dsl::front::BuildError;
use greta_dsl::interp::{Buffer, LaunchDims};
use greta_dsl::ir::{ConfigValue, Const, Kernel, Scalar};
use greta_dsl::prelude::*;
use greta_dsl::Target;

#[kernel]
pub fn embedding<T: Float, O: Float, const V: usize>(
    table: &[T],
    ids: &[u32],
    out: &mut [O],
    dim: u32,
    #[comptime] block: u32,
) {
    block_size(block);
    #[comptime]
    let v = V as u32;
    let t = block_idx().x;
    let src = ids[t] * dim;
    let dst = t * dim;
    if dim % v == 0 {
        for c in (thread_idx().x * v..dim).step_by(block * v) {
            let row = vload::<V, _>(&table, src + c).to_f32();
            vstore::<V, _>(&out, dst + c, row.cast::<O>());
        }
    } else {
        for c in (thread_idx().x..dim).step_by(block) {
            out[dst + c] = O::from_f32(table[src + c].to_f32());
        }
    }
}

pub fn reference(table: &[f64], ids: &[u32], dim: usize) -> Vec<f64> {
    ids.iter()
        .flat_map(|&id| {
            table[id as usize * dim..(id as usize + 1) * dim]
                .iter()
                .copied()
        })
        .collect()
}

fn build(cfg: &Config, target: &'static Target) -> Result<Kernel, BuildError> {
    check_vec_width("embedding", cfg)?;
    let block = cfg.u32("block");
    macro_rules! go {
        ($t:ty, $o:ty) => {
            match cfg.u32("vec") {
                1 => embedding::<$t, $o, 1>(target, block),
                2 => embedding::<$t, $o, 2>(target, block),
                4 => embedding::<$t, $o, 4>(target, block),
                _ => embedding::<$t, $o, 8>(target, block),
            }
        };
    }
    match (cfg.dtype("dtype"), cfg.dtype("out")) {
        (Scalar::F16, Scalar::F16) => go!(f16, f16),
        (Scalar::F16, Scalar::BF16) => go!(f16, bf16),
        (Scalar::F16, _) => go!(f16, f32),
        (Scalar::BF16, Scalar::F16) => go!(bf16, f16),
        (Scalar::BF16, Scalar::BF16) => go!(bf16, bf16),
        (Scalar::BF16, _) => go!(bf16, f32),
        (_, Scalar::F16) => go!(f32, f16),
        (_, Scalar::BF16) => go!(f32, bf16),
        (_, _) => go!(f32, f32),
    }
}

/// Launch: one block per token.
pub fn launch(cfg: &Config, tokens: u32) -> LaunchDims {
    linear(tokens, cfg.u32("block"))
}

fn problem(
    cfg: &Config,
    target: &'static Target,
    shape: &[u32],
    inputs: &mut Inputs,
) -> Result<Problem, ProblemError> {
    let &[tokens, vocab, dim] = shape else {
        return Err(ProblemError::Shape {
            kernel: "embedding",
            shape: shape.to_vec(),
            expected: SPEC.shape,
        });
    };
    if tokens == 0 || vocab == 0 || dim == 0 {
        return Err(ProblemError::Shape {
            kernel: "embedding",
            shape: shape.to_vec(),
            expected: SPEC.shape,
        });
    }
    let (dtype, out) = (cfg.dtype("dtype"), cfg.dtype("out"));
    let (tb, table) = inputs.uniform(dtype, (vocab * dim) as usize, -1.0, 1.0);
    let ids = inputs.indices(tokens as usize, vocab);
    let want = reference(&table, &ids, dim as usize);
    // The rows converted to `out`: exact unless `out` is narrower than the table.
    let want = to_f64(&from_f64(out, &want));
    let n = (tokens * dim) as usize;
    Ok(Problem {
        config: cfg.clone(),
        kernel: build(cfg, target)?,
        dims: launch(cfg, tokens),
        args: vec![
            ProblemArg::Buffer(tb),
            ProblemArg::Buffer(Buffer::U32(ids)),
            ProblemArg::Buffer(zeros(out, n)),
            ProblemArg::Value(Const::U32(dim)),
        ],
        // The reference rounds to `out` as the kernel does (once, to nearest even).
        expected: vec![Expected {
            arg: 2,
            values: want,
            tolerance: Tolerance { abs: 0.0, rel: 0.0 },
        }],
        min_bytes: n as u64 * (dtype.size_bytes() + out.size_bytes()) as u64 + 4 * tokens as u64,
        flops: 0,
    })
}

/// The activation type written (f32 by default).
const OUT_F32: crate::ParamDef = crate::ParamDef {
    name: "out",
    choices: crate::config::Choices::DType(crate::config::FLOATS),
    default: ConfigValue::Type(Scalar::F32),
    default_for_dtype: None,
    tunable: false,
    doc: "element type of the rows written (the activations)",
};

pub static SPEC: KernelSpec = KernelSpec {
    name: "embedding",
    summary: "out[t] = f32(table[ids[t]]) (row gather)",
    params: &[DTYPE, OUT_F32, block_param(256), VEC],
    shape: "tokens,vocab,dim",
    test_shapes: &[
        &[1, 1, 1],
        &[7, 5, 7],
        &[3, 11, 172],
        &[2, 3, 4097],
        &[9, 100, 64],
    ],
    bench_shape: &[4096, 8192, 4096],
    build,
    problem,
    available: crate::everywhere,
};
