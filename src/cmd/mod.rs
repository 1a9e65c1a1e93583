//! The subcommands, and what they share: resolving a kernel, target and configuration from
//! user input, each with an error that names the wrong value and the valid ones.

#[macro_use]
pub mod out;

pub mod bench;
pub mod build;
pub mod check;
pub mod compare;
pub mod device;
pub mod emit;
pub mod generate;
pub mod inspect;
pub mod kernels;
pub mod model;
pub mod parallel;
pub mod run;
pub mod signals;
pub mod source;
pub mod tune;
pub mod verify;

use anyhow::{anyhow, Context, Result};
use greta_codegen::Via;
use greta_dsl::ir::Kernel;
use greta_dsl::Target;
use greta_kernels::{Config, KernelSpec};

/// `--via`: the lowering that compiles kernels to GPU code. One definition for every command
/// that compiles or loads code (`inspect` adds `both`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ViaArg {
    /// HIP C++ (the CUDA dialect for NVIDIA) compiled by clang.
    #[default]
    Hip,
    /// LLVM IR compiled in process (needs the `llvm` feature, on by default).
    Llvm,
}

impl From<ViaArg> for Via {
    fn from(v: ViaArg) -> Via {
        match v {
            ViaArg::Hip => Via::Hip,
            ViaArg::Llvm => Via::Llvm,
        }
    }
}

pub fn kernel_spec(name: &str) -> Result<&'static KernelSpec> {
    greta_kernels::by_name(name).ok_or_else(|| {
        let known: Vec<_> = greta_kernels::all().iter().map(|k| k.name).collect();
        anyhow!("no kernel named `{name}` (kernels: {})", known.join(", "))
    })
}

/// The kernels a command goes over on `target`: the one `name`d (an error if it does not run
/// there), else every kernel that runs there.
pub fn specs_on(name: Option<&str>, target: &Target) -> Result<Vec<&'static KernelSpec>> {
    match name {
        Some(name) => {
            let spec = kernel_spec(name)?;
            if !(spec.available)(target) {
                anyhow::bail!("kernel `{name}` does not run on {target}");
            }
            Ok(vec![spec])
        }
        None => Ok(greta_kernels::all()
            .iter()
            .copied()
            .filter(|s| (s.available)(target))
            .collect()),
    }
}

pub fn target(name: &str) -> Result<&'static Target> {
    Target::by_name(name).ok_or_else(|| {
        let known: Vec<_> = Target::ALL.iter().map(|t| t.name).collect();
        anyhow!("unknown target `{name}` (targets: {})", known.join(", "))
    })
}

/// The configurations `overrides` (`key=value,...`) gives `spec`: one per element type the
/// kernel takes, unless `overrides` names the `dtype`.
pub fn dtype_configs(spec: &KernelSpec, overrides: &str) -> Result<Vec<Config>> {
    let dtypes: Vec<String> = if overrides.contains("dtype") {
        vec![String::new()]
    } else {
        spec.dtypes().iter().map(|d| format!("dtype={d}")).collect()
    };
    dtypes
        .iter()
        .map(|d| {
            let all = [d.as_str(), overrides]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(",");
            Ok(spec.config(&all)?)
        })
        .collect()
}

/// An activation type users name: `f32`, `f16` or `bf16`.
pub fn activations(name: &str) -> Result<greta_dsl::ir::Scalar> {
    use greta_dsl::ir::Scalar;
    match Scalar::from_name(name) {
        Some(s @ (Scalar::F32 | Scalar::F16 | Scalar::BF16)) => Ok(s),
        _ => Err(anyhow!(
            "--dtype `{name}`: activations are f32, f16 or bf16"
        )),
    }
}

/// The attention variant named on the command line (`--attn`).
pub fn attention(name: &str) -> Result<greta_model::llama::Attention> {
    name.parse().map_err(|e: String| anyhow!("--attn: {e}"))
}

/// Builds and verifies a kernel at a configuration for a target.
pub fn build(spec: &KernelSpec, config: &Config, target: &'static Target) -> Result<Kernel> {
    let kernel = (spec.build)(config, target)
        .with_context(|| format!("building `{}` [{config}] for {target}", spec.name))?;
    greta_dsl::valid::validate(&kernel)?;
    Ok(kernel)
}
