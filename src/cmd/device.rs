//! Running the library's test and benchmark problems on a backend: upload the inputs, load the
//! kernel (its code object from a bundle or the compile cache on GPUs), launch with every
//! buffer's length checked, read the outputs back. Shared by `greta check` and `greta bench`.

use anyhow::{Context, Result};
use greta_dsl::ir::Kernel;
use greta_kernels::{Problem, ProblemArg};
use greta_runtime::{Backend, Buffer, CodeObject, DeviceBuffer, KernelArg, LoadedKernel};

/// Where GPU code objects come from for this run.
pub type Objects<'a> = dyn Fn(&Kernel) -> Result<Option<CodeObject>> + 'a;

/// A problem's arguments in device memory, and its kernel loaded.
pub struct OnDevice {
    pub kernel: LoadedKernel,
    pub buffers: Vec<Option<DeviceBuffer>>,
}

pub fn load(backend: &dyn Backend, objects: &Objects<'_>, kernel: &Kernel) -> Result<LoadedKernel> {
    let object = objects(kernel)?;
    Ok(backend.load(kernel, object.as_ref())?)
}

/// Uploads `problem`'s inputs (output buffers too: they start as the problem's initial values).
pub fn upload(backend: &dyn Backend, kernel: LoadedKernel, problem: &Problem) -> Result<OnDevice> {
    let buffers = upload_args(backend, problem)?;
    Ok(OnDevice { kernel, buffers })
}

/// `problem`'s buffers in device memory, in argument order (`None` for values).
pub fn upload_args(backend: &dyn Backend, problem: &Problem) -> Result<Vec<Option<DeviceBuffer>>> {
    let mut buffers = Vec::new();
    for arg in &problem.args {
        buffers.push(match arg {
            ProblemArg::Buffer(host) => {
                let dev = backend.alloc(host.scalar(), host.len())?;
                backend.write(&dev, host)?;
                Some(dev)
            }
            ProblemArg::Value(_) => None,
        });
    }
    Ok(buffers)
}

/// Bytes the rotating input sets of a timing must exceed together: more than any current L2
/// (H100/H200 50–60 MB; MI300X's 256 MB of Infinity Cache is not L2 and is not defeated here).
const ROTATE_BYTES: u64 = 128 << 20;

/// How many copies of `problem`'s inputs a timing rotates over, so that no launch finds its
/// data in the L2 from the launch before.
pub fn rotation_sets(problem: &Problem) -> usize {
    (ROTATE_BYTES / problem.min_bytes.max(1) + 1).clamp(2, 16) as usize
}

/// Launches `problem` on the uploaded buffers (asynchronous on GPUs).
pub fn launch(backend: &dyn Backend, on: &OnDevice, problem: &Problem) -> Result<()> {
    launch_on(backend, &on.kernel, &on.buffers, problem)
}

/// Launches `kernel` with `problem`'s launch and values on `buffers` uploaded for a problem of
/// the same argument layout (`greta tune` times every candidate of a shape on one upload).
pub fn launch_on(
    backend: &dyn Backend,
    kernel: &LoadedKernel,
    buffers: &[Option<DeviceBuffer>],
    problem: &Problem,
) -> Result<()> {
    let args: Vec<KernelArg<'_>> = problem
        .args
        .iter()
        .zip(buffers)
        .map(|(arg, buf)| match (arg, buf) {
            (ProblemArg::Value(c), _) => KernelArg::Value(*c),
            (ProblemArg::Buffer(host), Some(dev)) => KernelArg::BufferAtLeast(dev, host.len()),
            (ProblemArg::Buffer(_), None) => unreachable!("uploaded above"),
        })
        .collect();
    backend
        .launch(kernel, problem.dims, &args)
        .with_context(|| format!("launching {}", problem.kernel.name))
}

/// Reads every buffer back (after synchronising).
pub fn download(backend: &dyn Backend, on: &OnDevice) -> Result<Vec<Option<Buffer>>> {
    backend.synchronize()?;
    on.buffers
        .iter()
        .map(|b| {
            b.as_ref()
                .map(|b| backend.read(b))
                .transpose()
                .map_err(Into::into)
        })
        .collect()
}
