//! The CPU backend: the IR interpreter behind the [`Backend`] trait. Buffers are host vectors;
//! a launch runs to completion before it returns, so `synchronize` has nothing to wait for.
//!
//! Launch graphs ([`crate::graph`]) are the recorded launches, each with its kernel's IR and
//! handles sharing its buffers' storage, replayed in order: the same contract as a GPU's
//! graphs (launches recorded, not run; no reads or writes while capturing), so that code
//! replaying graphs is tested here.

use crate::backend::{
    Backend, BackendKind, CodeObject, DeviceBuffer, KernelArg, LoadedKernel, RuntimeError,
    Signature,
};
use greta_dsl::interp::{self, Arg, Buffer, LaunchDims};
use greta_dsl::ir::{Access, Kernel, ParamKind, Scalar};
use greta_dsl::Target;
use std::sync::{Arc, Mutex};

pub struct CpuBackend {
    /// The target whose wave size the interpreter emulates.
    emulated: &'static Target,
    /// The launches recorded since [`Backend::begin_capture`], while capturing.
    recording: Mutex<Option<Vec<Recorded>>>,
}

impl CpuBackend {
    pub fn new(emulated: &'static Target) -> CpuBackend {
        CpuBackend {
            emulated,
            recording: Mutex::new(None),
        }
    }

    fn recording(&self) -> std::sync::MutexGuard<'_, Option<Vec<Recorded>>> {
        // A panic while recording leaves a list of whole launches: still usable.
        self.recording.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An error if a graph is being captured (reads, writes and copies are not recorded).
    fn not_capturing(&self, what: &str) -> Result<(), RuntimeError> {
        if self.recording().is_some() {
            return Err(RuntimeError::Graph(format!(
                "{what} while capturing a graph (only launches are recorded)"
            )));
        }
        Ok(())
    }
}

/// One recorded launch: the kernel's IR and its arguments, each buffer a handle sharing the
/// storage of the one it was launched with.
struct Recorded {
    kernel: LoadedKernel,
    dims: LaunchDims,
    args: Vec<RecordedArg>,
}

enum RecordedArg {
    Value(greta_dsl::ir::Const),
    Buffer(DeviceBuffer),
    AtLeast(DeviceBuffer, usize),
    Slice(DeviceBuffer, usize, usize),
}

impl RecordedArg {
    fn of(arg: &KernelArg<'_>) -> Result<RecordedArg, RuntimeError> {
        let share = |b: &DeviceBuffer| -> Result<DeviceBuffer, RuntimeError> {
            let storage: &Storage = b.storage(BackendKind::Cpu)?;
            Ok(DeviceBuffer::new(
                b.scalar(),
                b.len(),
                BackendKind::Cpu,
                Box::new(storage.clone()),
            ))
        };
        Ok(match *arg {
            KernelArg::Value(c) => RecordedArg::Value(c),
            KernelArg::Buffer(b) => RecordedArg::Buffer(share(b)?),
            KernelArg::BufferAtLeast(b, n) => RecordedArg::AtLeast(share(b)?, n),
            KernelArg::Slice {
                buffer,
                offset,
                len,
            } => RecordedArg::Slice(share(buffer)?, offset, len),
        })
    }

    fn arg(&self) -> KernelArg<'_> {
        match self {
            RecordedArg::Value(c) => KernelArg::Value(*c),
            RecordedArg::Buffer(b) => KernelArg::Buffer(b),
            RecordedArg::AtLeast(b, n) => KernelArg::BufferAtLeast(b, *n),
            RecordedArg::Slice(buffer, offset, len) => KernelArg::Slice {
                buffer,
                offset: *offset,
                len: *len,
            },
        }
    }
}

impl Default for CpuBackend {
    fn default() -> Self {
        CpuBackend::new(&Target::GFX942)
    }
}

/// A buffer's storage, shared with the graphs that name it.
type Storage = Arc<Mutex<Buffer>>;

/// Whether two handles name one storage (handles of other backends never match).
fn same_storage(a: &DeviceBuffer, b: &DeviceBuffer) -> bool {
    match (
        a.storage::<Storage>(BackendKind::Cpu),
        b.storage::<Storage>(BackendKind::Cpu),
    ) {
        (Ok(a), Ok(b)) => Arc::ptr_eq(a, b),
        _ => std::ptr::eq(a, b),
    }
}

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

    /// Host memory, allocated fallibly: a size the host cannot give (a KV cache for
    /// `-c 4000000` under a memory limit) is an error, not an abort.
    fn alloc(&self, scalar: Scalar, len: usize) -> Result<DeviceBuffer, RuntimeError> {
        let buffer = Buffer::try_zeros(scalar, len)
            .map_err(|e| RuntimeError::HostOutOfMemory {
                bytes: e.bytes,
                what: format!("{len} × {scalar} for the CPU backend"),
            })?
            .ok_or_else(|| RuntimeError::Buffer(format!("no {scalar} buffers")))?;
        Ok(DeviceBuffer::new(
            scalar,
            len,
            BackendKind::Cpu,
            Box::new(Arc::new(Mutex::new(buffer))),
        ))
    }

    fn write(&self, dst: &DeviceBuffer, src: &Buffer) -> Result<(), RuntimeError> {
        dst.check_write(src)?;
        self.not_capturing("a write")?;
        // In place: the buffer was allocated (fallibly) at its full length.
        lock(dst)?.write_range(0, src);
        Ok(())
    }

    fn write_bytes(&self, dst: &DeviceBuffer, offset: u64, src: &[u8]) -> Result<(), RuntimeError> {
        dst.check_bytes(offset, src.len())?;
        self.not_capturing("a write")?;
        let elements = Buffer::from_le_bytes(dst.scalar(), src).expect("checked: whole elements");
        let at = (offset / dst.scalar().size_bytes() as u64) as usize;
        lock(dst)?.write_range(at, &elements);
        Ok(())
    }

    fn read(&self, src: &DeviceBuffer) -> Result<Buffer, RuntimeError> {
        self.not_capturing("a read")?;
        lock(src)?
            .try_clone()
            .map_err(|e| RuntimeError::HostOutOfMemory {
                bytes: e.bytes,
                what: format!("reading back {} × {}", src.len(), src.scalar()),
            })
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
        if let Some(recorded) = self.recording().as_mut() {
            recorded.push(Recorded {
                kernel: LoadedKernel::new(kernel.signature.clone(), Box::new(ir.clone())),
                dims,
                args: args.iter().map(RecordedArg::of).collect::<Result<_, _>>()?,
            });
            return Ok(());
        }
        // Lock each distinct storage once (the same buffer may be passed twice, e.g. in place;
        // a replayed launch's handles are distinct handles of shared storage).
        let buffers: Vec<Option<&DeviceBuffer>> = args.iter().map(|a| a.buffer()).collect();
        let same = |a: &DeviceBuffer, b: &DeviceBuffer| same_storage(a, b);
        let distinct = buffers
            .iter()
            .flatten()
            .enumerate()
            .all(|(i, a)| buffers.iter().flatten().skip(i + 1).all(|b| !same(a, b)));
        let whole = !args.iter().any(|a| matches!(a, KernelArg::Slice { .. }));
        if distinct && whole {
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
        let mut guards: Vec<(&DeviceBuffer, _)> = Vec::new();
        for b in buffers.iter().flatten() {
            if !guards.iter().any(|(p, _)| same(p, b)) {
                guards.push((*b, lock(b)?));
            }
        }
        // Aliased buffers would need two &mut into one guard, and the interpreter runs on whole
        // buffers: run on copies of what each argument sees and write those back.
        let mut owned: Vec<Option<Buffer>> = buffers
            .iter()
            .zip(args)
            .map(|(b, arg)| {
                b.map(|b| {
                    let g = guards
                        .iter()
                        .find(|(p, _)| same(p, b))
                        .expect("locked above");
                    g.1.range(arg.elements())
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
        for (((b, data), param), arg) in buffers.iter().zip(owned).zip(&ir.params).zip(args) {
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
                    .find(|(p, _)| same(p, b))
                    .expect("locked above");
                g.1.write_range(arg.elements().start, &data);
            }
        }
        Ok(())
    }

    fn synchronize(&self) -> Result<(), RuntimeError> {
        Ok(())
    }

    fn has_graphs(&self) -> bool {
        true
    }

    fn begin_capture(&self) -> Result<(), RuntimeError> {
        let mut recording = self.recording();
        if recording.is_some() {
            return Err(RuntimeError::Graph("a capture is already under way".into()));
        }
        *recording = Some(Vec::new());
        Ok(())
    }

    fn end_capture(&self) -> Result<crate::Graph, RuntimeError> {
        let launches = self
            .recording()
            .take()
            .ok_or_else(|| RuntimeError::Graph("no capture is under way".into()))?;
        Ok(crate::Graph::new(
            BackendKind::Cpu,
            launches.len(),
            Box::new(launches),
        ))
    }

    fn replay(&self, graph: &crate::Graph) -> Result<(), RuntimeError> {
        self.not_capturing("a replay")?;
        let launches: &Vec<Recorded> = graph.inner(BackendKind::Cpu)?;
        for l in launches {
            let args: Vec<KernelArg<'_>> = l.args.iter().map(RecordedArg::arg).collect();
            self.launch_unchecked(&l.kernel, l.dims, &args)?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use greta_dsl::ir::Const;
    use greta_dsl::prelude::*;

    /// `y[i] = x[i] + y[i]` for `i < n`: reads one argument, reads and writes another.
    #[kernel]
    fn accumulate(x: &[f32], y: &mut [f32], n: u32) {
        block_size(64);
        let i = block_idx().x * 64u32 + thread_idx().x;
        if i < n {
            y[i] = y[i] + x[i];
        }
    }

    fn setup() -> (CpuBackend, LoadedKernel, DeviceBuffer) {
        let cpu = CpuBackend::default();
        let k = cpu
            .load(&accumulate(&Target::GFX942).unwrap(), None)
            .expect("the kernel loads");
        let b = cpu.alloc(Scalar::F32, 16).unwrap();
        let init: Vec<f32> = (0..16).map(|i| i as f32).collect();
        cpu.write(&b, &Buffer::F32(init)).unwrap();
        (cpu, k, b)
    }

    fn dims() -> LaunchDims {
        LaunchDims {
            grid: [1, 1, 1],
            block: [64, 1, 1],
        }
    }

    /// Two slices of one buffer: the kernel sees each as a buffer of its own, and elements
    /// outside the written slice are untouched.
    #[test]
    fn slices_of_one_buffer_are_separate_arguments() {
        let (cpu, k, b) = setup();
        let x = KernelArg::Slice {
            buffer: &b,
            offset: 0,
            len: 4,
        };
        let y = KernelArg::Slice {
            buffer: &b,
            offset: 8,
            len: 4,
        };
        cpu.launch(&k, dims(), &[x, y, KernelArg::Value(Const::U32(4))])
            .unwrap();
        let got = cpu.read(&b).unwrap().to_f32_vec();
        let mut want: Vec<f32> = (0..16).map(|i| i as f32).collect();
        for i in 0..4 {
            want[8 + i] += i as f32;
        }
        assert_eq!(got, want);
    }

    /// A size the host cannot allocate is an error naming the bytes, not an abort (or the
    /// panic `vec![0f32; n]` gives for sizes past `isize::MAX`).
    #[test]
    fn an_impossible_buffer_is_an_out_of_memory_error() {
        let cpu = CpuBackend::default();
        for len in [usize::MAX / 2, 1 << 62] {
            let e = cpu.alloc(Scalar::F32, len).unwrap_err();
            assert!(matches!(e, RuntimeError::HostOutOfMemory { .. }), "{e:?}");
            let e = e.for_purpose(|| "the KV cache".into()).to_string();
            assert!(
                e.starts_with("out of host memory: asked for ")
                    && e.ends_with(&format!(
                        "bytes (the KV cache: {len} × f32 for the CPU backend)"
                    )),
                "{e}"
            );
        }
        // Writes go in place and reads copy, both without aborting on what they hold.
        let b = cpu.alloc(Scalar::U32, 3).unwrap();
        cpu.write(&b, &Buffer::U32(vec![1, 2, 3])).unwrap();
        assert_eq!(cpu.read(&b).unwrap(), Buffer::U32(vec![1, 2, 3]));
        assert!(cpu.write(&b, &Buffer::U32(vec![1])).is_err());
    }

    /// A captured launch runs only when replayed, once per replay, with what its buffers hold
    /// then; reads and writes are refused while capturing; a failed capture ends the capture.
    #[test]
    fn a_graph_runs_its_launches_at_each_replay() {
        let (cpu, k, b) = setup();
        let x = cpu.alloc(Scalar::F32, 16).unwrap();
        cpu.write(&x, &Buffer::F32(vec![1.0; 16])).unwrap();
        let n = KernelArg::Value(Const::U32(16));
        let args = [KernelArg::Buffer(&x), KernelArg::Buffer(&b), n];
        let graph = cpu
            .capture(&mut || {
                cpu.launch(&k, dims(), &args)?;
                assert!(cpu.read(&b).is_err(), "a read while capturing");
                cpu.launch(&k, dims(), &args)
            })
            .unwrap();
        assert_eq!(graph.launches(), 2);
        let init: Vec<f32> = (0..16).map(|i| i as f32).collect();
        assert_eq!(
            cpu.read(&b).unwrap().to_f32_vec(),
            init,
            "captured, not run"
        );
        cpu.replay(&graph).unwrap();
        cpu.write(&x, &Buffer::F32(vec![10.0; 16])).unwrap();
        cpu.replay(&graph).unwrap();
        let want: Vec<f32> = init.iter().map(|v| v + 2.0 + 20.0).collect();
        assert_eq!(cpu.read(&b).unwrap().to_f32_vec(), want);
        // One buffer passed twice (`y = y + y`): the replay's handles share one storage.
        let twice = [KernelArg::Buffer(&b), KernelArg::Buffer(&b), n];
        let doubling = cpu.capture(&mut || cpu.launch(&k, dims(), &twice)).unwrap();
        cpu.replay(&doubling).unwrap();
        let doubled: Vec<f32> = want.iter().map(|v| 2.0 * v).collect();
        assert_eq!(cpu.read(&b).unwrap().to_f32_vec(), doubled);
        // A launch error inside the capture is the error, and the capture is over after it.
        let bad = [KernelArg::Buffer(&x), n];
        let e = cpu
            .capture(&mut || cpu.launch(&k, dims(), &bad))
            .unwrap_err();
        assert!(!matches!(e, RuntimeError::Graph(_)), "{e}");
        cpu.read(&b).unwrap();
        // Replaying another backend's graph is an error, not a crash.
        let foreign = crate::Graph::new(BackendKind::Cuda, 0, Box::new(()));
        assert!(cpu.replay(&foreign).is_err());
    }

    /// Bytes go to whole elements from a byte offset, and a span that is not whole elements
    /// inside the buffer is an error naming it.
    #[test]
    fn bytes_are_written_as_whole_elements() {
        let cpu = CpuBackend::default();
        let b = cpu.alloc(Scalar::F16, 4).unwrap();
        let two: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect();
        cpu.write_bytes(&b, 4, &two).unwrap();
        assert_eq!(cpu.read(&b).unwrap().to_f32_vec(), [0.0, 0.0, 1.5, -2.0]);
        for (offset, len) in [(6, 4), (1, 2), (0, 3), (u64::MAX, 2)] {
            let e = cpu.write_bytes(&b, offset, &vec![0; len]).unwrap_err();
            assert!(e.to_string().contains("cannot write bytes"), "{e}");
        }
    }

    #[test]
    fn slices_out_of_bounds_or_misaligned_are_errors() {
        let (cpu, k, b) = setup();
        let n = KernelArg::Value(Const::U32(4));
        let slice = |offset, len| KernelArg::Slice {
            buffer: &b,
            offset,
            len,
        };
        let e = cpu
            .launch(&k, dims(), &[slice(0, 4), slice(12, 8), n])
            .unwrap_err()
            .to_string();
        assert!(e.contains("12..20 is past the buffer's 16 elements"), "{e}");
        let e = cpu
            .launch(&k, dims(), &[slice(2, 4), slice(8, 4), n])
            .unwrap_err()
            .to_string();
        assert!(e.contains("8 bytes in, not on a 16-byte boundary"), "{e}");
    }
}
