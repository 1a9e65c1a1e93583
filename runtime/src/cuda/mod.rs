//! The CUDA backend: NVIDIA GPUs through the CUDA driver API ([`cudarc`], libcuda opened at run
//! time), running the cubin/PTX greta-codegen makes for `sm_90`.
//!
//! Design, and why:
//! - **Driver API only, loaded at run time.** One `greta` binary starts everywhere; without a
//!   driver `CudaBackend::new` is `RuntimeError::Unavailable`, never a panic (`probe` says
//!   how). greta compiles its own PTX, so nothing of the CUDA toolkit (nvrtc, cudart) is needed.
//! - **cudarc's thin `result` layer for memory, modules and launches**, its safe types only for
//!   the context, the stream and events. cudarc's `CudaSlice<T>` wants `&mut` for writes and
//!   tracks events per buffer for multi-stream use; greta's [`DeviceBuffer`] is shared (`&`) and
//!   typed at run time, and everything runs on one stream, so a raw pointer with an owner is
//!   both simpler and cheaper.
//! - **One stream, in order.** Allocation zeroing, copies and launches are queued on it, so
//!   they are ordered with each other without further synchronisation; `write` and `read`
//!   wait for it (the host slice must outlive the copy), `copy` and `launch` do not.
//!   Freeing a buffer or unloading a kernel waits for the stream first, so in-flight work never
//!   touches freed memory.
//! - **Errors name the CUDA call and the CUDA error** (`CUDA_ERROR_ILLEGAL_ADDRESS: an illegal
//!   memory access was encountered`). Kernel faults are asynchronous: they surface at the next
//!   call that waits ([`Backend::synchronize`], `read`, `write`, `time`), and leave the context
//!   unusable, as with any CUDA program.

mod arch;
mod params;
mod probe;
mod staging;

use crate::backend::{
    Backend, BackendKind, CodeObject, DeviceBuffer, KernelArg, LoadedKernel, ObjectFormat,
    RuntimeError, Signature,
};
use cudarc::driver::{result, sys, CudaContext, CudaStream, DriverError};
use greta_dsl::interp::{Buffer, LaunchDims};
use greta_dsl::ir::{Kernel, Scalar};
use greta_dsl::Target;
use params::Params;
use std::ffi::{c_void, CString};
use std::sync::Arc;

/// Uploads from this size on go through pinned staging ([`Backend::write_bytes`]).
const STAGED_BYTES: usize = 4 << 20;

/// The oldest compute capability greta's CUDA kernels are built for (`Target::SM_90`).
const MIN_CAPABILITY: (u32, u32) = (9, 0);

/// One NVIDIA GPU: its (primary) context and the stream all work goes on.
pub struct CudaBackend {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    name: String,
    capability: (u32, u32),
    /// Pinned slots for large uploads, allocated on the first ([`staging`]).
    staging: std::sync::Mutex<Option<staging::Staging>>,
}

impl CudaBackend {
    /// The first GPU.
    pub fn new() -> Result<CudaBackend, RuntimeError> {
        CudaBackend::on_device(0)
    }

    /// GPU number `ordinal` (as `nvidia-smi` counts, subject to `CUDA_VISIBLE_DEVICES`).
    ///
    /// Unavailable (not an error of another kind) when there is no driver library, the driver
    /// sees no such device, or the device is older than `sm_90`, so that [`crate::select`] can
    /// fall back to the CPU.
    pub fn on_device(ordinal: usize) -> Result<CudaBackend, RuntimeError> {
        probe::driver_library().map_err(unavailable)?;
        // The probe makes cudarc's panics (missing library, missing symbol) unreachable; this
        // catches one anyway rather than taking the process down, should a driver surprise us.
        match std::panic::catch_unwind(|| CudaBackend::init(ordinal)) {
            Ok(backend) => backend,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                Err(unavailable(format!(
                    "the CUDA driver library failed while starting: {what}"
                )))
            }
        }
    }

    fn init(ordinal: usize) -> Result<CudaBackend, RuntimeError> {
        let fail =
            |call: &str, e: DriverError| unavailable(format!("{call} failed: {}", describe(e)));
        // cuInit reports a stub libcuda, a driver/kernel-module mismatch, or no device.
        result::init().map_err(|e| fail("cuInit", e))?;
        let count = result::device::get_count().map_err(|e| fail("cuDeviceGetCount", e))?;
        if count <= 0 {
            return Err(unavailable(
                "the NVIDIA driver loads but sees no GPU".into(),
            ));
        }
        if ordinal >= count as usize {
            return Err(unavailable(format!(
                "asked for GPU {ordinal}, the driver sees {count}"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(|e| fail("creating the context", e))?;
        let name = ctx.name().map_err(|e| fail("cuDeviceGetName", e))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| fail("cuDeviceGetAttribute", e))?;
        let capability = (major as u32, minor as u32);
        if capability < MIN_CAPABILITY {
            return Err(unavailable(format!(
                "{name} has compute capability {major}.{minor}; greta's CUDA kernels are built \
                 for sm_90 (Hopper, 9.0) or newer"
            )));
        }
        let stream = ctx.new_stream().map_err(|e| fail("cuStreamCreate", e))?;
        Ok(CudaBackend {
            ctx,
            stream,
            name,
            capability,
            staging: std::sync::Mutex::new(None),
        })
    }

    /// `(major, minor)` compute capability of the device.
    pub fn compute_capability(&self) -> (u32, u32) {
        self.capability
    }

    /// Makes the context current on the calling thread (backends are shared between threads;
    /// the driver keeps the current context per thread). Also surfaces an error recorded by a
    /// `Drop` since the last call.
    fn bind(&self) -> Result<(), RuntimeError> {
        self.ctx
            .bind_to_thread()
            .map_err(|e| driver("cuCtxSetCurrent", e))
    }

    /// Waits for the stream. `after` names what was queued last, for the error: a failure here
    /// is usually an earlier kernel's fault.
    fn wait(&self, after: &'static str) -> Result<(), RuntimeError> {
        self.bind()?;
        // SAFETY: the stream is alive (we hold an Arc to it) and belongs to the bound context.
        unsafe { result::stream::synchronize(self.stream.cu_stream()) }.map_err(|e| {
            RuntimeError::Driver {
                backend: "cuda",
                call: after,
                message: format!(
                    "{} (while waiting for the stream: an earlier kernel may have faulted)",
                    describe(e)
                ),
            }
        })
    }

    fn mem<'a>(&self, b: &'a DeviceBuffer) -> Result<&'a DeviceMem, RuntimeError> {
        b.storage::<DeviceMem>(BackendKind::Cuda)
    }
}

fn unavailable(reason: String) -> RuntimeError {
    RuntimeError::Unavailable {
        backend: "cuda",
        reason,
    }
}

fn driver(call: &'static str, e: DriverError) -> RuntimeError {
    RuntimeError::Driver {
        backend: "cuda",
        call,
        message: describe(e),
    }
}

/// `CUDA_ERROR_NAME: the driver's sentence`. The name comes from the enum itself, so it is
/// there even when the driver cannot be asked; the driver is asked only when the probe found it
/// (cudarc would panic on a missing library).
fn describe(e: DriverError) -> String {
    let name = format!("{:?}", e.0);
    if probe::driver_library().is_err() {
        return name;
    }
    match e.error_string() {
        Ok(s) => format!("{name}: {}", s.to_string_lossy()),
        Err(_) => name,
    }
}

/// A device allocation, freed on drop. `ptr` is 0 for an empty buffer (`cuMemAlloc(0)` fails).
#[derive(Debug)]
struct DeviceMem {
    ptr: sys::CUdeviceptr,
    bytes: usize,
    stream: Arc<CudaStream>,
}

impl Drop for DeviceMem {
    fn drop(&mut self) {
        if self.ptr != 0 {
            let ctx = self.stream.context();
            // Raw calls rather than `bind_to_thread`/`CudaStream::synchronize`, which would
            // first hand back (and clear) an error recorded earlier instead of waiting.
            // SAFETY: the context and stream are alive (the Arc); `ptr` came from cuMemAlloc in
            // this context and is freed once, here, after the stream has finished every
            // queued use of it. If the wait fails (a faulted context) the free fails too and
            // the memory goes with the context.
            unsafe {
                ctx.record_err(result::ctx::set_current(ctx.cu_ctx()));
                ctx.record_err(result::stream::synchronize(self.stream.cu_stream()));
                ctx.record_err(result::free_sync(self.ptr));
            }
        }
    }
}

/// An executable graph, destroyed on drop once the stream has finished with it.
struct CudaGraph {
    exec: sys::CUgraphExec,
    stream: Arc<CudaStream>,
}

// SAFETY: an opaque driver handle, used only with its context current (`bind`, `Drop`).
unsafe impl Send for CudaGraph {}
unsafe impl Sync for CudaGraph {}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        let ctx = self.stream.context();
        // SAFETY: `exec` was instantiated in this context and is destroyed once, here, after
        // the stream has run every queued replay of it.
        unsafe {
            ctx.record_err(result::ctx::set_current(ctx.cu_ctx()));
            ctx.record_err(result::stream::synchronize(self.stream.cu_stream()));
            ctx.record_err(result::graph::exec_destroy(self.exec));
        }
    }
}

/// A loaded kernel: its module (unloaded on drop) and function handle.
struct CudaKernel {
    function: sys::CUfunction,
    /// Keeps `function` loaded; unloaded when the kernel is dropped.
    _module: Module,
}

struct Module {
    raw: sys::CUmodule,
    stream: Arc<CudaStream>,
}

// SAFETY: CUfunction and CUmodule are opaque driver handles, not pointers Rust dereferences.
// The driver API is thread-safe and a handle is valid on any thread once its context is
// current, which every use here ensures (`bind` before launching, `set_current` in `Drop`).
// The handles are never mutated after loading.
unsafe impl Send for CudaKernel {}
unsafe impl Sync for CudaKernel {}
unsafe impl Send for Module {}
unsafe impl Sync for Module {}

impl Drop for Module {
    fn drop(&mut self) {
        let ctx = self.stream.context();
        // SAFETY: `raw` was loaded in this context and is unloaded once, here; waiting for the
        // stream first means no queued launch still uses its functions.
        unsafe {
            ctx.record_err(result::ctx::set_current(ctx.cu_ctx()));
            ctx.record_err(result::stream::synchronize(self.stream.cu_stream()));
            ctx.record_err(result::module::unload(self.raw));
        }
    }
}

/// The image `cuModuleLoadData*` reads: 8-byte aligned (cubins are ELF, read in place by the
/// driver) and, for PTX, NUL-terminated (PTX is read as a C string).
fn image_words(bytes: &[u8], format: ObjectFormat) -> Vec<u64> {
    let mut words = vec![0u64; bytes.len() / 8 + 1];
    for (w, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        *w = u64::from_ne_bytes(b);
    }
    // `len / 8 + 1` words leave at least one zero byte after the data: the PTX terminator.
    debug_assert!(format != ObjectFormat::Ptx || words.len() * 8 > bytes.len());
    words
}

/// `cuModuleLoadDataEx` with the JIT error log, so a PTX that does not assemble says why.
fn load_module(image: &[u64]) -> Result<sys::CUmodule, String> {
    let mut log = vec![0u8; 16 * 1024];
    let mut options = [
        sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER,
        sys::CUjit_option::CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
    ];
    // Scalar option values travel in the pointer slot itself (the driver API's convention).
    let mut values: [*mut c_void; 2] = [log.as_mut_ptr().cast(), log.len() as *mut c_void];
    let mut module: sys::CUmodule = std::ptr::null_mut();
    // SAFETY: `image` is a complete cubin or NUL-terminated PTX (`image_words`), alive for the
    // call; the options array and values array have 2 entries each, as passed; the log buffer
    // is `log.len()` bytes, as its size option says, and outlives the call; `module` is written
    // by the driver on success only.
    let r = unsafe {
        sys::cuModuleLoadDataEx(
            &mut module,
            image.as_ptr().cast(),
            options.len() as u32,
            options.as_mut_ptr(),
            values.as_mut_ptr(),
        )
    };
    r.result().map(|()| module).map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        let text = String::from_utf8_lossy(&log[..end]);
        let text = text.trim();
        if text.is_empty() {
            describe(e)
        } else {
            format!("{}\n{text}", describe(e))
        }
    })
}

/// Runs `$body` with `$v` bound to the typed vector inside a host [`Buffer`].
macro_rules! with_vec {
    ($buf:expr, $v:ident => $body:expr) => {
        match $buf {
            Buffer::F16($v) => $body,
            Buffer::BF16($v) => $body,
            Buffer::F32($v) => $body,
            Buffer::I32($v) => $body,
            Buffer::U32($v) => $body,
        }
    };
}

impl Backend for CudaBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Cuda
    }

    fn target(&self) -> &'static Target {
        &Target::SM_90
    }

    fn device_name(&self) -> String {
        self.name.clone()
    }

    fn driver_version(&self) -> String {
        let mut v: std::ffi::c_int = 0;
        // SAFETY: cuDriverGetVersion writes one int and needs no context.
        match unsafe { sys::cuDriverGetVersion(&mut v) } {
            sys::cudaError_enum::CUDA_SUCCESS => format!("{}.{}", v / 1000, (v % 1000) / 10),
            _ => "unknown".into(),
        }
    }

    fn memory_info(&self) -> Option<(u64, u64)> {
        let (free, total) = self.ctx.mem_get_info().ok()?;
        Some((free as u64, total as u64))
    }

    fn alloc(&self, scalar: Scalar, len: usize) -> Result<DeviceBuffer, RuntimeError> {
        if scalar == Scalar::Bool {
            return Err(RuntimeError::Buffer(
                "no bool buffers (bool is not a storage type; use u32)".into(),
            ));
        }
        let bytes = len
            .checked_mul(scalar.size_bytes() as usize)
            .ok_or_else(|| RuntimeError::Buffer(format!("{len} × {scalar} overflows")))?;
        self.bind()?;
        let ptr = if bytes == 0 {
            0
        } else {
            // SAFETY: plain allocation in the bound context; the result is owned by the
            // `DeviceMem` below from the next statement on.
            unsafe { result::malloc_sync(bytes) }.map_err(|e| {
                if e.0 == sys::cudaError_enum::CUDA_ERROR_OUT_OF_MEMORY {
                    let free = match self.memory_info() {
                        Some((free, total)) => format!("; {free} of {total} bytes free"),
                        None => String::new(),
                    };
                    RuntimeError::OutOfMemory {
                        bytes: bytes as u64,
                        what: format!("{len} × {scalar} on {}{free}", self.name),
                    }
                } else {
                    driver("cuMemAlloc", e)
                }
            })?
        };
        let mem = DeviceMem {
            ptr,
            bytes,
            stream: self.stream.clone(),
        };
        if bytes > 0 {
            // SAFETY: `ptr` is a live allocation of `bytes` bytes; the memset is queued on our
            // stream, ahead of any use of the buffer, and the buffer waits for the stream
            // before freeing.
            unsafe { result::memset_d8_async(mem.ptr, 0, bytes, self.stream.cu_stream()) }
                .map_err(|e| driver("cuMemsetD8Async", e))?;
        }
        Ok(DeviceBuffer::new(
            scalar,
            len,
            BackendKind::Cuda,
            Box::new(mem),
        ))
    }

    fn write(&self, dst: &DeviceBuffer, src: &Buffer) -> Result<(), RuntimeError> {
        dst.check_write(src)?;
        let mem = self.mem(dst)?;
        if mem.bytes == 0 {
            return Ok(());
        }
        self.bind()?;
        let stream = self.stream.cu_stream();
        // SAFETY: the host slice has the buffer's element type and length (checked above), so
        // it is exactly `mem.bytes` long, the size of the device allocation; it stays borrowed
        // until `wait` below has seen the copy finish.
        with_vec!(src, v => unsafe { result::memcpy_htod_async(mem.ptr, v.as_slice(), stream) })
            .map_err(|e| driver("cuMemcpyHtoDAsync", e))?;
        self.wait("cuMemcpyHtoDAsync")
    }

    /// Spans under `STAGED_BYTES` as a pageable copy, waited for; larger ones through the
    /// pinned slots (`staging`), their last chunks left in flight.
    fn write_bytes(&self, dst: &DeviceBuffer, offset: u64, src: &[u8]) -> Result<(), RuntimeError> {
        dst.check_bytes(offset, src.len())?;
        let mem = self.mem(dst)?;
        if src.is_empty() {
            return Ok(());
        }
        self.bind()?;
        let at = mem.ptr + offset;
        if src.len() < STAGED_BYTES {
            // SAFETY: bytes `offset..offset + src.len()` lie in the allocation (checked); the
            // host slice stays borrowed until `wait` below has seen the copy finish.
            unsafe { result::memcpy_htod_async(at, src, self.stream.cu_stream()) }
                .map_err(|e| driver("cuMemcpyHtoDAsync", e))?;
            return self.wait("cuMemcpyHtoDAsync");
        }
        // A panic while uploading leaves the slots as they were: usable.
        let mut staging = self.staging.lock().unwrap_or_else(|e| e.into_inner());
        if staging.is_none() {
            *staging = Some(staging::Staging::new(self.stream.clone())?);
        }
        staging.as_mut().expect("made above").upload(at, src)
    }

    fn read(&self, src: &DeviceBuffer) -> Result<Buffer, RuntimeError> {
        let mem = self.mem(src)?;
        let mut out = Buffer::try_zeros(src.scalar(), src.len())
            .map_err(|e| RuntimeError::HostOutOfMemory {
                bytes: e.bytes,
                what: format!("reading back {} × {}", src.len(), src.scalar()),
            })?
            .ok_or_else(|| RuntimeError::Buffer(format!("no {} buffers", src.scalar())))?;
        if mem.bytes == 0 {
            return Ok(out);
        }
        self.bind()?;
        let stream = self.stream.cu_stream();
        // SAFETY: `out` has the buffer's element type and length, so it is exactly `mem.bytes`
        // long; it is not touched again until `wait` below has seen the copy finish.
        with_vec!(&mut out, v => unsafe { result::memcpy_dtoh_async(v.as_mut_slice(), mem.ptr, stream) })
            .map_err(|e| driver("cuMemcpyDtoHAsync", e))?;
        self.wait("cuMemcpyDtoHAsync")?;
        Ok(out)
    }

    fn copy(&self, dst: &DeviceBuffer, src: &DeviceBuffer) -> Result<(), RuntimeError> {
        dst.check_copy(src)?;
        let (d, s) = (self.mem(dst)?, self.mem(src)?);
        if d.bytes == 0 || d.ptr == s.ptr {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: both are live allocations of `d.bytes` bytes (same type and length) and
        // distinct (same-buffer copies return above), queued on our stream; both buffers wait
        // for the stream before freeing.
        unsafe { result::memcpy_dtod_async(d.ptr, s.ptr, d.bytes, self.stream.cu_stream()) }
            .map_err(|e| driver("cuMemcpyDtoDAsync", e))
    }

    fn load(
        &self,
        kernel: &Kernel,
        object: Option<&CodeObject>,
    ) -> Result<LoadedKernel, RuntimeError> {
        let err = |message: String| RuntimeError::Object {
            kernel: kernel.name.clone(),
            message,
        };
        let object = object.ok_or_else(|| {
            err(
                "the CUDA backend runs compiled kernels: compile it to cubin or PTX for sm_90 \
                 first"
                    .into(),
            )
        })?;
        if object.bytes.is_empty() {
            return Err(err("the code object is empty".into()));
        }
        arch::check(&object.target, object.format, self.capability).map_err(|m| {
            err(format!(
                "{m} (device: {}, compute capability {}.{})",
                self.name, self.capability.0, self.capability.1
            ))
        })?;
        let name = CString::new(kernel.name.as_str())
            .map_err(|_| err("the kernel name contains a NUL byte".into()))?;
        let image = image_words(&object.bytes, object.format);
        self.bind()?;
        let module = Module {
            raw: load_module(&image).map_err(|m| {
                err(format!(
                    "the driver refused the {} for {}: {m}",
                    match object.format {
                        ObjectFormat::Ptx => "PTX",
                        _ => "cubin",
                    },
                    object.target
                ))
            })?,
            stream: self.stream.clone(),
        };
        // SAFETY: `module.raw` is a module just loaded in the bound context.
        let function = unsafe { result::module::get_function(module.raw, name) }.map_err(|e| {
            err(format!(
                "the code object has no kernel `{}` ({})",
                kernel.name,
                describe(e)
            ))
        })?;
        let signature = Signature::of(kernel);
        if signature.dynamic_lds_bytes > 0 {
            // More than the 48 KiB a block gets without asking: raise this function's limit.
            // SAFETY: `function` was just obtained from the loaded module.
            unsafe {
                result::function::set_function_attribute(
                    function,
                    sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    signature.dynamic_lds_bytes as i32,
                )
            }
            .map_err(|e| {
                err(format!(
                    "the device refused {} bytes of dynamic shared memory: {}",
                    signature.dynamic_lds_bytes,
                    describe(e)
                ))
            })?;
        }
        Ok(LoadedKernel::new(
            signature,
            Box::new(CudaKernel {
                function,
                _module: module,
            }),
        ))
    }

    fn launch_unchecked(
        &self,
        kernel: &LoadedKernel,
        dims: LaunchDims,
        args: &[KernelArg<'_>],
    ) -> Result<(), RuntimeError> {
        let sig = &kernel.signature;
        let k: &CudaKernel = kernel.handle().ok_or_else(|| RuntimeError::Launch {
            kernel: sig.name.clone(),
            message: "was not loaded by the CUDA backend".into(),
        })?;
        let mut params = Params::pack(&sig.name, &sig.params, args, |b| Ok(self.mem(b)?.ptr))?;
        let mut pointers = params.pointers();
        self.bind()?;
        let (g, b) = (dims.grid, dims.block);
        // SAFETY: `k.function` belongs to a module that `k` keeps loaded; `pointers` has one
        // entry per kernel parameter, each pointing at an 8-byte slot holding a value of the
        // parameter's C type or a device pointer (`Params::pack` checked the count and kinds
        // against the signature the kernel was compiled from); the driver copies the values
        // before returning. The buffers stay allocated until the stream has run the kernel:
        // `DeviceMem` waits for the stream before freeing. The dynamic shared memory size is
        // the kernel's (`Kernel::dynamic_lds`); `load` raised the function's limit to it.
        unsafe {
            result::launch_kernel(
                k.function,
                (g[0], g[1], g[2]),
                (b[0], b[1], b[2]),
                sig.dynamic_lds_bytes,
                self.stream.cu_stream(),
                &mut pointers,
            )
        }
        .map_err(|e| RuntimeError::Launch {
            kernel: sig.name.clone(),
            message: format!(
                "cuLaunchKernel (grid {g:?}, block {b:?}) failed: {}",
                describe(e)
            ),
        })?;
        drop(params);
        Ok(())
    }

    fn synchronize(&self) -> Result<(), RuntimeError> {
        self.wait("cuStreamSynchronize")
    }

    fn has_graphs(&self) -> bool {
        true
    }

    /// Stream capture, thread-local: launches from this thread on the stream are recorded. A
    /// read, write or wait meanwhile fails (and invalidates the capture), as it would unnoticed
    /// otherwise.
    fn begin_capture(&self) -> Result<(), RuntimeError> {
        self.bind()?;
        let mode = sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL;
        // SAFETY: the stream is alive and belongs to the bound context.
        unsafe { result::stream::begin_capture(self.stream.cu_stream(), mode) }
            .map_err(|e| driver("cuStreamBeginCapture", e))
    }

    fn end_capture(&self) -> Result<crate::Graph, RuntimeError> {
        self.bind()?;
        // SAFETY: the stream is alive and belongs to the bound context.
        let graph = unsafe { result::stream::end_capture(self.stream.cu_stream()) }
            .map_err(|e| driver("cuStreamEndCapture", e))?;
        let mut nodes = 0usize;
        // SAFETY: `graph` came from the capture above and is destroyed once, below, after
        // instantiating it (the executable graph does not need it).
        let exec = unsafe {
            let counted = sys::cuGraphGetNodes(graph, std::ptr::null_mut(), &mut nodes).result();
            let exec = result::graph::instantiate(graph, sys::CUgraphInstantiate_flags(0));
            let destroyed = result::graph::destroy(graph);
            counted.map_err(|e| driver("cuGraphGetNodes", e))?;
            destroyed.map_err(|e| driver("cuGraphDestroy", e))?;
            exec.map_err(|e| driver("cuGraphInstantiate", e))?
        };
        let exec = CudaGraph {
            exec,
            stream: self.stream.clone(),
        };
        Ok(crate::Graph::new(BackendKind::Cuda, nodes, Box::new(exec)))
    }

    fn replay(&self, graph: &crate::Graph) -> Result<(), RuntimeError> {
        let g: &CudaGraph = graph.inner(BackendKind::Cuda)?;
        self.bind()?;
        // SAFETY: the executable graph is alive (`graph` owns it) and was instantiated in this
        // context; it launches on our stream, after everything queued there. Its buffers are
        // alive: their owner drops the graph before them (the contract of `crate::graph`).
        unsafe { result::graph::launch(g.exec, self.stream.cu_stream()) }
            .map_err(|e| driver("cuGraphLaunch", e))
    }

    fn time_each(
        &self,
        runs: usize,
        work: &mut dyn FnMut(usize) -> Result<(), RuntimeError>,
    ) -> Result<Vec<f64>, RuntimeError> {
        let event = || {
            self.ctx
                .new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(|e| driver("cuEventCreate", e))
        };
        let mut pairs = Vec::with_capacity(runs);
        for i in 0..runs {
            let (start, end) = (event()?, event()?);
            start
                .record(&self.stream)
                .map_err(|e| driver("cuEventRecord", e))?;
            work(i)?;
            end.record(&self.stream)
                .map_err(|e| driver("cuEventRecord", e))?;
            pairs.push((start, end));
        }
        let mut times = Vec::with_capacity(runs);
        for (start, end) in &pairs {
            end.synchronize()
                .map_err(|e| driver("cuEventSynchronize", e))?;
            let ms = start
                .elapsed_ms(end)
                .map_err(|e| driver("cuEventElapsedTime", e))?;
            times.push(ms as f64);
        }
        Ok(times)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_driver_cuda_is_unavailable_with_a_reason() {
        // Runs everywhere: here (no libcuda) it must be the clear error; on a GPU machine it
        // may succeed. Either way, no panic.
        match CudaBackend::new() {
            Ok(b) => assert!(!b.device_name().is_empty()),
            Err(RuntimeError::Unavailable { backend, reason }) => {
                assert_eq!(backend, "cuda");
                if probe::driver_library().is_err() {
                    assert!(
                        reason.contains("libcuda.so could not be loaded"),
                        "{reason}"
                    );
                }
                let shown = RuntimeError::Unavailable { backend, reason }.to_string();
                assert!(
                    shown.starts_with("the cuda backend is not available: "),
                    "{shown}"
                );
            }
            Err(e) => panic!("expected Unavailable, got {e}"),
        }
    }

    #[test]
    fn select_named_cuda_without_a_driver_is_unavailable_and_select_falls_back() {
        if probe::driver_library().is_ok() {
            return; // a machine with a driver: the GPU check script covers it
        }
        match crate::select_named("cuda") {
            Err(RuntimeError::Unavailable {
                backend: "cuda",
                reason,
            }) => {
                assert!(
                    reason.contains("no NVIDIA driver on this machine"),
                    "{reason}"
                )
            }
            Err(e) => panic!("expected Unavailable, got {e}"),
            Ok(b) => panic!("got a {} backend without a driver", b.kind()),
        }
        if std::env::var_os("GRETA_BACKEND").is_none() {
            assert_ne!(crate::select().unwrap().kind(), BackendKind::Cuda);
        }
    }

    #[test]
    fn images_are_aligned_and_ptx_is_nul_terminated() {
        for len in [1usize, 7, 8, 9, 16] {
            let bytes: Vec<u8> = (1..=len as u8).collect();
            let words = image_words(&bytes, ObjectFormat::Ptx);
            let back: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
            assert_eq!(&back[..len], &bytes[..]);
            assert_eq!(back[len], 0, "len {len}");
            assert_eq!(words.as_ptr() as usize % 8, 0);
        }
    }

    #[test]
    fn driver_errors_carry_the_cuda_name() {
        let e = driver(
            "cuStreamSynchronize",
            DriverError(sys::cudaError_enum::CUDA_ERROR_ILLEGAL_ADDRESS),
        );
        // Without a driver the sentence is missing, the name never is.
        assert!(e
            .to_string()
            .starts_with("cuda: cuStreamSynchronize failed: CUDA_ERROR_ILLEGAL_ADDRESS"));
    }
}
