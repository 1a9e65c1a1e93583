//! The CPU backend: the IR interpreter behind the [`Backend`] trait. Buffers are host vectors;
//! a launch runs to completion before it returns, so `synchronize` has nothing to wait for.

use crate::backend::{
    Backend, BackendKind, CodeObject, DeviceBuffer, KernelArg, LoadedKernel, RuntimeError,
    Signature,
};
use greta_dsl::interp::{self, Arg, Buffer, LaunchDims};
use greta_dsl::ir::{Access, Kernel, ParamKind, Scalar};
use greta_dsl::Target;
use std::sync::Mutex;

pub struct CpuBackend {
    /// The target whose wave size the interpreter emulates.
    emulated: &'static Target,
}

impl CpuBackend {
    pub fn new(emulated: &'static Target) -> CpuBackend {
        CpuBackend { emulated }
    }
}

impl Default for CpuBackend {
    fn default() -> Self {
        CpuBackend::new(&Target::GFX942)
    }
}

type Storage = Mutex<Buffer>;

fn lock(b: &DeviceBuffer) -> Result<std::sync::MutexGuard<'_, Buffer>, RuntimeError> {
    b.storage::<Storage>(BackendKind::Cpu)?
        .lock()
        .map_err(|_| RuntimeError::Buffer("a CPU buffer was poisoned by a panic".into()))
}

impl Backend for CpuBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Cpu
    }

    fn target(&self) -> &'static Target {
        self.emulated
    }

    fn device_name(&self) -> String {
        format!(
            "CPU interpreter ({}-wide waves, as {})",
            self.emulated.wave_size, self.emulated.name
        )
    }

    /// The host's available and total memory (Linux `/proc/meminfo`): the CPU backend's device
    /// memory is the host's, and a model that cannot fit should be refused before allocating.
    fn memory_info(&self) -> Option<(u64, u64)> {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = info.lines().find(|l| l.starts_with(name))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        };
        Some((field("MemAvailable:")?, field("MemTotal:")?))
    }

    fn alloc(&self, scalar: Scalar, len: usize) -> Result<DeviceBuffer, RuntimeError> {
        let buffer = Buffer::zeros(scalar, len)
            .ok_or_else(|| RuntimeError::Buffer(format!("no {scalar} buffers")))?;
        Ok(DeviceBuffer::new(
            scalar,
            len,
            BackendKind::Cpu,
            Box::new(Mutex::new(buffer)),
        ))
    }

    fn write(&self, dst: &DeviceBuffer, src: &Buffer) -> Result<(), RuntimeError> {
        dst.check_write(src)?;
        *lock(dst)? = src.clone();
        Ok(())
    }

    fn read(&self, src: &DeviceBuffer) -> Result<Buffer, RuntimeError> {
        Ok(lock(src)?.clone())
    }

    fn copy(&self, dst: &DeviceBuffer, src: &DeviceBuffer) -> Result<(), RuntimeError> {
        dst.check_copy(src)?;
        let data = self.read(src)?;
        self.write(dst, &data)
    }

    fn load(
        &self,
        kernel: &Kernel,
        _object: Option<&CodeObject>,
    ) -> Result<LoadedKernel, RuntimeError> {
        greta_dsl::valid::validate(kernel).map_err(|e| RuntimeError::Launch {
            kernel: kernel.name.clone(),
            message: e.to_string(),
        })?;
        Ok(LoadedKernel::new(
            Signature::of(kernel),
            Box::new(kernel.clone()),
        ))
    }

    fn launch_unchecked(
        &self,
        kernel: &LoadedKernel,
        dims: LaunchDims,
        args: &[KernelArg<'_>],
    ) -> Result<(), RuntimeError> {
        let ir: &Kernel = kernel.handle().ok_or_else(|| RuntimeError::Launch {
            kernel: kernel.signature.name.clone(),
            message: "was not loaded by the CPU backend".into(),
        })?;
        // Lock each distinct buffer once (the same buffer may be passed twice, e.g. in-place).
        let buffers: Vec<Option<&DeviceBuffer>> = args
            .iter()
            .map(|a| match a {
                KernelArg::Buffer(b) | KernelArg::BufferAtLeast(b, _) => Some(*b),
                KernelArg::Value(_) => None,
            })
            .collect();
        let distinct = buffers.iter().flatten().enumerate().all(|(i, a)| {
            buffers
                .iter()
                .flatten()
                .skip(i + 1)
                .all(|b| !std::ptr::eq(*a, *b))
        });
        if distinct {
            // The usual case: lend the interpreter each buffer in place, no copies.
            let mut guards = Vec::new();
            for b in buffers.iter().flatten() {
                guards.push(lock(b)?);
            }
            let mut guards = guards.iter_mut();
            let mut iargs: Vec<Arg<'_>> = Vec::with_capacity(args.len());
            for (arg, param) in args.iter().zip(&ir.params) {
                iargs.push(match (arg, &param.kind) {
                    (KernelArg::Value(c), _) => Arg::Value(*c),
                    (
                        _,
                        ParamKind::Buffer {
                            access: Access::Read,
                            ..
                        },
                    ) => Arg::Read(guards.next().expect("one guard per buffer")),
                    _ => Arg::Write(guards.next().expect("one guard per buffer")),
                });
            }
            interp::run(ir, self.emulated, dims, &mut iargs)?;
            return Ok(());
        }
        let mut guards = Vec::new();
        for b in buffers.iter().flatten() {
            if !guards.iter().any(|(p, _)| std::ptr::eq(*p, *b)) {
                guards.push((*b as *const DeviceBuffer, lock(b)?));
            }
        }
        // Aliased buffers would need two &mut into one guard; run on copies and write back.
        let mut owned: Vec<Option<Buffer>> = buffers
            .iter()
            .map(|b| {
                b.map(|b| {
                    let g = guards
                        .iter()
                        .find(|(p, _)| std::ptr::eq(*p, b))
                        .expect("locked above");
                    g.1.clone()
                })
            })
            .collect();
        {
            let mut iargs: Vec<Arg<'_>> = Vec::with_capacity(args.len());
            for ((arg, buf), param) in args.iter().zip(owned.iter_mut()).zip(&ir.params) {
                iargs.push(match (arg, buf) {
                    (KernelArg::Value(c), _) => Arg::Value(*c),
                    (_, Some(b)) => match param.kind {
                        ParamKind::Buffer {
                            access: Access::Read,
                            ..
                        } => Arg::Read(b),
                        _ => Arg::Write(b),
                    },
                    (_, None) => unreachable!("buffer args have buffers"),
                });
            }
            interp::run(ir, self.emulated, dims, &mut iargs)?;
        }
        for ((b, data), param) in buffers.iter().zip(owned).zip(&ir.params) {
            if let (
                Some(b),
                Some(data),
                ParamKind::Buffer {
                    access: Access::ReadWrite,
                    ..
                },
            ) = (b, data, &param.kind)
            {
                let g = guards
                    .iter_mut()
                    .find(|(p, _)| std::ptr::eq(*p, *b))
                    .expect("locked above");
                *g.1 = data;
            }
        }
        Ok(())
    }

    fn synchronize(&self) -> Result<(), RuntimeError> {
        Ok(())
    }

    fn time_each(
        &self,
        runs: usize,
        work: &mut dyn FnMut(usize) -> Result<(), RuntimeError>,
    ) -> Result<Vec<f64>, RuntimeError> {
        (0..runs)
            .map(|i| {
                let start = std::time::Instant::now();
                work(i)?;
                Ok(start.elapsed().as_secs_f64() * 1e3)
            })
            .collect()
    }
}
