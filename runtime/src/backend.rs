//! The backend trait and the types every backend shares.

use greta_dsl::interp::{Buffer, LaunchDims};
use greta_dsl::ir::{Const, Kernel, Param, Scalar};
use greta_dsl::launch::{Arg, KernelArgs};
use greta_dsl::Target;
use std::any::Any;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    Cpu,
    Cuda,
    Hip,
}

impl BackendKind {
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Cuda => "cuda",
            BackendKind::Hip => "hip",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the {backend} backend is not available: {reason}")]
    Unavailable {
        backend: &'static str,
        reason: String,
    },
    #[error("unknown backend `{0}` (GRETA_BACKEND takes cpu, cuda or hip)")]
    UnknownBackend(String),
    #[error("kernel `{kernel}`: {message}")]
    Launch { kernel: String, message: String },
    #[error("kernel `{kernel}`, argument `{arg}`: {message}")]
    Argument {
        kernel: String,
        arg: String,
        message: String,
    },
    #[error("{backend}: {call} failed: {message}")]
    Driver {
        backend: &'static str,
        call: &'static str,
        message: String,
    },
    #[error("out of device memory: asked for {bytes} bytes ({what})")]
    OutOfMemory { bytes: u64, what: String },
    /// The host could not allocate memory (the CPU backend's buffers, data read back).
    #[error("out of host memory: asked for {bytes} bytes ({what})")]
    HostOutOfMemory { bytes: u64, what: String },
    #[error("buffer mismatch: {0}")]
    Buffer(String),
    #[error(transparent)]
    Interp(#[from] greta_dsl::interp::InterpError),
    #[error("code object for kernel `{kernel}`: {message}")]
    Object { kernel: String, message: String },
    /// Capturing or replaying a launch graph ([`crate::graph`]).
    #[error("launch graph: {0}")]
    Graph(String),
}

impl RuntimeError {
    /// An out-of-memory error says what the memory was for: `purpose` goes in front of what
    /// the backend knew (its size and type). Other errors are returned as they are.
    pub fn for_purpose(self, purpose: impl FnOnce() -> String) -> RuntimeError {
        match self {
            RuntimeError::OutOfMemory { bytes, what } => RuntimeError::OutOfMemory {
                bytes,
                what: format!("{}: {what}", purpose()),
            },
            RuntimeError::HostOutOfMemory { bytes, what } => RuntimeError::HostOutOfMemory {
                bytes,
                what: format!("{}: {what}", purpose()),
            },
            e => e,
        }
    }
}

/// What kind of binary a [`CodeObject`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectFormat {
    /// AMDGPU code object (ELF).
    Hsaco,
    /// NVIDIA cubin (ELF).
    Cubin,
    /// NVIDIA PTX text, JIT-compiled by the driver.
    Ptx,
}

/// A compiled kernel binary for one target.
#[derive(Clone, Debug)]
pub struct CodeObject {
    pub target: String,
    pub format: ObjectFormat,
    pub bytes: Vec<u8>,
}

/// What a launch is checked against: the kernel's name, parameters and declared block size.
#[derive(Clone, Debug, PartialEq)]
pub struct Signature {
    pub name: String,
    pub params: Vec<Param>,
    pub block_size: Option<[u32; 3]>,
    /// LDS a block takes.
    pub shared_bytes: u32,
    /// Of which dynamic LDS, requested at launch (0 when all of it is static; see
    /// `Kernel::dynamic_lds`).
    pub dynamic_lds_bytes: u32,
}

impl Signature {
    pub fn of(kernel: &Kernel) -> Signature {
        Signature {
            name: kernel.name.clone(),
            params: kernel.params.clone(),
            block_size: kernel.block_size,
            shared_bytes: kernel.lds_bytes(),
            dynamic_lds_bytes: kernel.dynamic_lds().map_or(0, |d| d.bytes),
        }
    }
}

/// A kernel loaded on a backend, ready to launch.
pub struct LoadedKernel {
    pub signature: Signature,
    /// The backend's own handle (a CUDA function, a HIP function, the IR for the CPU).
    pub(crate) handle: Box<dyn Any + Send + Sync>,
}

impl LoadedKernel {
    pub fn new(signature: Signature, handle: Box<dyn Any + Send + Sync>) -> LoadedKernel {
        LoadedKernel { signature, handle }
    }

    pub fn handle<T: 'static>(&self) -> Option<&T> {
        self.handle.downcast_ref()
    }
}

/// Device memory holding `len` elements of `scalar`. The storage belongs to the backend that
/// allocated it; handing it to another backend is an error, not undefined behaviour.
pub struct DeviceBuffer {
    scalar: Scalar,
    len: usize,
    backend: BackendKind,
    storage: Box<dyn Any + Send + Sync>,
}

impl fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DeviceBuffer<{}; {}> on {}",
            self.scalar, self.len, self.backend
        )
    }
}

impl DeviceBuffer {
    pub fn new(
        scalar: Scalar,
        len: usize,
        backend: BackendKind,
        storage: Box<dyn Any + Send + Sync>,
    ) -> DeviceBuffer {
        DeviceBuffer {
            scalar,
            len,
            backend,
            storage,
        }
    }
    pub fn scalar(&self) -> Scalar {
        self.scalar
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn size_bytes(&self) -> u64 {
        self.len as u64 * self.scalar.size_bytes() as u64
    }
    pub fn backend(&self) -> BackendKind {
        self.backend
    }
    /// The backend's storage, or an error if the buffer belongs to another backend.
    pub fn storage<T: 'static>(&self, backend: BackendKind) -> Result<&T, RuntimeError> {
        if self.backend != backend {
            return Err(RuntimeError::Buffer(format!(
                "a {} buffer was given to the {backend} backend",
                self.backend
            )));
        }
        self.storage
            .downcast_ref()
            .ok_or_else(|| RuntimeError::Buffer(format!("{self:?} has foreign storage")))
    }
}

impl DeviceBuffer {
    /// Checks that `src` has this buffer's element type and length (what every backend's
    /// `write` requires before copying bytes).
    pub fn check_write(&self, src: &Buffer) -> Result<(), RuntimeError> {
        if src.scalar() != self.scalar || src.len() != self.len {
            return Err(RuntimeError::Buffer(format!(
                "cannot write {} × {} into {self:?}",
                src.len(),
                src.scalar()
            )));
        }
        Ok(())
    }

    /// Checks that `len` bytes from byte `offset` are whole elements inside this buffer (what
    /// [`Backend::write_bytes`] requires).
    pub fn check_bytes(&self, offset: u64, len: usize) -> Result<(), RuntimeError> {
        let size = self.scalar.size_bytes() as u64;
        let end = offset.checked_add(len as u64);
        if offset % size != 0
            || len as u64 % size != 0
            || end.map_or(true, |e| e > self.size_bytes())
        {
            return Err(RuntimeError::Buffer(format!(
                "cannot write bytes {offset}..{} into {self:?} ({} bytes of {size}-byte elements)",
                offset as u128 + len as u128,
                self.size_bytes()
            )));
        }
        Ok(())
    }

    /// Checks that `src` has this buffer's element type and length (device-to-device copies).
    pub fn check_copy(&self, src: &DeviceBuffer) -> Result<(), RuntimeError> {
        if src.scalar != self.scalar || src.len != self.len {
            return Err(RuntimeError::Buffer(format!(
                "cannot copy {src:?} into {self:?}"
            )));
        }
        Ok(())
    }
}

/// One launch argument.
#[derive(Clone, Copy, Debug)]
pub enum KernelArg<'a> {
    /// A buffer; the kernel may touch any of it.
    Buffer(&'a DeviceBuffer),
    /// A buffer the launch needs at least this many elements of (checked before launching).
    BufferAtLeast(&'a DeviceBuffer, usize),
    /// Elements `offset..offset + len` of a buffer, passed as a buffer of `len` elements (the
    /// queries, keys and values of one fused projection's output). The start must be 16-byte
    /// aligned, as every buffer's is, so that a kernel's vector accesses stay aligned.
    Slice {
        buffer: &'a DeviceBuffer,
        offset: usize,
        len: usize,
    },
    Value(Const),
}

impl<'a> KernelArg<'a> {
    /// The positional arguments of a launch given by name: the struct `#[kernel]` generates
    /// from the kernel's signature (`greta_dsl::launch`), its buffers given as kernel
    /// arguments (a buffer, at least so many elements of one, or a slice).
    pub fn list(args: impl KernelArgs<KernelArg<'a>>) -> Vec<KernelArg<'a>> {
        args.into_args()
            .into_iter()
            .map(|arg| match arg {
                Arg::Buffer(b) => b,
                Arg::Value(v) => KernelArg::Value(v),
            })
            .collect()
    }

    /// The buffer an argument passes (all of it or a part), if it is one.
    pub fn buffer(&self) -> Option<&'a DeviceBuffer> {
        match *self {
            KernelArg::Buffer(b) | KernelArg::BufferAtLeast(b, _) => Some(b),
            KernelArg::Slice { buffer, .. } => Some(buffer),
            KernelArg::Value(_) => None,
        }
    }

    /// The elements of the buffer the kernel sees: all of them, or a slice's.
    pub fn elements(&self) -> std::ops::Range<usize> {
        match *self {
            KernelArg::Slice { offset, len, .. } => offset..offset + len,
            _ => 0..self.buffer().map_or(0, |b| b.len()),
        }
    }

    /// Bytes from the buffer's start to the first element the kernel sees.
    pub fn byte_offset(&self) -> u64 {
        match *self {
            KernelArg::Slice { buffer, offset, .. } => {
                offset as u64 * buffer.scalar().size_bytes() as u64
            }
            _ => 0,
        }
    }
}

/// A compute device greta can run kernels on.
pub trait Backend: Send + Sync {
    fn kind(&self) -> BackendKind;
    /// The target its kernels are compiled for (the CPU backend emulates one: its wave size).
    fn target(&self) -> &'static Target;
    /// A human-readable device name (`NVIDIA H200`, `CPU interpreter (gfx942 waves)`).
    fn device_name(&self) -> String;

    /// The driver's version (`13.0` for CUDA 13.0's driver API), part of a tuning DB entry's key:
    /// timings measured under one driver do not carry to another. The interpreter reports
    /// greta's own version.
    fn driver_version(&self) -> String {
        format!("greta-{}", env!("CARGO_PKG_VERSION"))
    }
    /// `(free, total)` device memory in bytes, where the backend can tell.
    fn memory_info(&self) -> Option<(u64, u64)> {
        None
    }

    fn alloc(&self, scalar: Scalar, len: usize) -> Result<DeviceBuffer, RuntimeError>;
    /// Copies host data into a device buffer of the same type and length.
    fn write(&self, dst: &DeviceBuffer, src: &Buffer) -> Result<(), RuntimeError>;
    /// Copies `src`, the little-endian bytes of whole elements of `dst`'s type, into `dst` from
    /// byte `offset`: weights straight from a mapped file, with no host copy in the buffer's
    /// type. Ordered with the other copies and launches; `src` may be reused once it returns.
    fn write_bytes(&self, dst: &DeviceBuffer, offset: u64, src: &[u8]) -> Result<(), RuntimeError>;
    /// Copies a device buffer back to the host.
    fn read(&self, src: &DeviceBuffer) -> Result<Buffer, RuntimeError>;
    /// Device-to-device copy of a whole buffer (same type and length).
    fn copy(&self, dst: &DeviceBuffer, src: &DeviceBuffer) -> Result<(), RuntimeError>;

    /// Loads a kernel. GPU backends need its compiled `object`; the CPU backend runs the IR.
    fn load(
        &self,
        kernel: &Kernel,
        object: Option<&CodeObject>,
    ) -> Result<LoadedKernel, RuntimeError>;

    /// Launches without checking arguments: use [`Backend::launch`].
    fn launch_unchecked(
        &self,
        kernel: &LoadedKernel,
        dims: LaunchDims,
        args: &[KernelArg<'_>],
    ) -> Result<(), RuntimeError>;

    /// Checks `args` and `dims` against the kernel's signature, then launches (asynchronously on
    /// GPUs: errors of the kernel itself surface at the next [`Backend::synchronize`]).
    fn launch(
        &self,
        kernel: &LoadedKernel,
        dims: LaunchDims,
        args: &[KernelArg<'_>],
    ) -> Result<(), RuntimeError> {
        crate::check::launch(&kernel.signature, self.target(), dims, args)?;
        self.launch_unchecked(kernel, dims, args)
    }

    /// Waits for all launched work.
    fn synchronize(&self) -> Result<(), RuntimeError>;

    /// Whether this backend records launches into graphs ([`Backend::capture`]).
    fn has_graphs(&self) -> bool {
        false
    }

    /// Starts recording: launches until [`Backend::end_capture`] are recorded into a graph,
    /// not run, and reads, writes and copies fail meanwhile. Use [`Backend::capture`], which
    /// always ends what it begins.
    fn begin_capture(&self) -> Result<(), RuntimeError> {
        Err(RuntimeError::Graph(format!(
            "the {} backend has no launch graphs",
            self.kind()
        )))
    }

    /// Stops recording and returns the graph of what was launched since
    /// [`Backend::begin_capture`].
    fn end_capture(&self) -> Result<crate::Graph, RuntimeError> {
        Err(RuntimeError::Graph(format!(
            "the {} backend has no launch graphs",
            self.kind()
        )))
    }

    /// Runs a graph's launches, in order, as if launched again with the arguments they were
    /// captured with (asynchronously on GPUs, like a launch).
    fn replay(&self, graph: &crate::Graph) -> Result<(), RuntimeError> {
        Err(RuntimeError::Graph(format!(
            "the {} backend has no launch graphs ({graph:?})",
            self.kind()
        )))
    }

    /// The graph of the launches `work` makes (which run only when the graph is replayed).
    /// The capture is ended whether `work` succeeds or not, so a failed capture leaves the
    /// backend as it was; `work`'s error comes first.
    fn capture(
        &self,
        work: &mut dyn FnMut() -> Result<(), RuntimeError>,
    ) -> Result<crate::Graph, RuntimeError> {
        self.begin_capture()?;
        let worked = work();
        let graph = self.end_capture();
        worked?;
        graph
    }

    /// Milliseconds each of `runs` calls of `work(i)` takes on the device. Every call is
    /// bracketed by device events, and all calls are queued before anything waits: with the
    /// device's queue kept full, an interval measures the device's time for that call, not the
    /// host's launch latency (which would dominate kernels of a few tens of microseconds). The
    /// CPU backend uses the wall clock.
    fn time_each(
        &self,
        runs: usize,
        work: &mut dyn FnMut(usize) -> Result<(), RuntimeError>,
    ) -> Result<Vec<f64>, RuntimeError>;

    /// Milliseconds per call when `runs` calls of `work(i)` run back to back between one pair
    /// of device events: what a stream of launches (a decode step) sees, where a kernel's
    /// launch overlaps the tail of the one before it.
    fn time_back_to_back(
        &self,
        runs: usize,
        work: &mut dyn FnMut(usize) -> Result<(), RuntimeError>,
    ) -> Result<f64, RuntimeError> {
        let total = self.time_each(1, &mut |_| {
            for i in 0..runs {
                work(i)?;
            }
            Ok(())
        })?;
        Ok(total[0] / runs.max(1) as f64)
    }

    /// Milliseconds one call of `work` takes on the device (see [`Backend::time_each`]).
    fn time(
        &self,
        work: &mut dyn FnMut() -> Result<(), RuntimeError>,
    ) -> Result<f64, RuntimeError> {
        Ok(self.time_each(1, &mut |_| work())?[0])
    }
}
