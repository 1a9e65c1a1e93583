//! `greta check`: every kernel of the library on a backend (by default the best one present),
//! for every float dtype and the library's awkward test shapes, against the kernel's f64
//! reference. Prints a table; exits non-zero on any mismatch. `scripts/gpu-check` runs it on the
//! GPU machine (and once more under compute-sanitizer).

use super::device;
use anyhow::{bail, Result};
use greta_kernels::Inputs;

#[derive(clap::Args)]
pub struct Args {
    /// Only this kernel.
    #[arg(long, short)]
    kernel: Option<String>,
    /// Only the first test shape of each kernel (quick runs, e.g. under a sanitizer).
    #[arg(long)]
    quick: bool,
    #[command(flatten)]
    source: super::source::SourceArgs,
}

pub fn run(args: Args) -> Result<()> {
    let (backend, objects) = args.source.open()?;
    let specs = super::specs_on(args.kernel.as_deref(), backend.target())?;
    errln!(
        "greta check on {} ({})",
        backend.device_name(),
        backend.kind()
    );
    outln!(
        "{:<10} {:<5} {:<18} {:>11} {:>11}  result",
        "kernel",
        "dtype",
        "shape",
        "max abs err",
        "max rel err"
    );
    let (mut passed, mut failed) = (0, 0);
    for spec in specs {
        for (d, dtype) in spec.dtypes().iter().enumerate() {
            let cfg = spec.config(&format!("dtype={dtype}"))?;
            let shapes = if args.quick {
                &spec.test_shapes[..1]
            } else {
                spec.test_shapes
            };
            for (s, shape) in shapes.iter().enumerate() {
                let mut inputs = Inputs::new(1000 + 10 * d as u64 + s as u64);
                let problem = (spec.problem)(&cfg, backend.target(), shape, &mut inputs)?;
                let outcome = (|| -> Result<_> {
                    let kernel = device::load(backend.as_ref(), &*objects, &problem.kernel)?;
                    let on = device::upload(backend.as_ref(), kernel, &problem)?;
                    device::launch(backend.as_ref(), &on, &problem)?;
                    let out = device::download(backend.as_ref(), &on)?;
                    let refs: Vec<_> = out.iter().map(Option::as_ref).collect();
                    Ok(problem.check(&refs)?)
                })();
                let shape_text = shape
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join("x");
                match outcome {
                    Ok(cmp) => {
                        passed += 1;
                        outln!(
                            "{:<10} {:<5} {:<18} {:>11.3e} {:>11.3e}  ok",
                            spec.name,
                            dtype,
                            shape_text,
                            cmp.max_abs_err,
                            cmp.max_rel_err
                        );
                    }
                    Err(e) => {
                        failed += 1;
                        outln!(
                            "{:<10} {:<5} {:<18} {:>11} {:>11}  FAILED: {e:#}",
                            spec.name,
                            dtype,
                            shape_text,
                            "-",
                            "-"
                        );
                    }
                }
            }
        }
    }
    outln!("{passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} kernel checks failed on {}", backend.kind());
    }
    Ok(())
}
