//! The HIP backend: AMD GPUs through the HIP runtime (`libamdhip64`), running the gfx942 code
//! objects greta-codegen builds.
//!
//! Built only with the `hip` cargo feature (`cargo build --features hip`): hip-sys links
//! `libamdhip64` when greta is built, so a `greta` with this backend does not start on a
//! machine without ROCm. The default build leaves it out and [`crate::select_named`] says so.
//!
//! How it works, and why:
//! - One device (an ordinal) and one stream per backend. Every entry point first makes that
//!   device current for the calling thread (`hipSetDevice` is per thread and cheap), so the
//!   backend can be used from any thread.
//! - Memory: `hipMalloc` + `hipMemsetAsync(0)` (buffers start zeroed, like the CPU backend's).
//!   Copies are queued on the backend's stream, so they are ordered with launches without
//!   relying on the legacy null stream's implicit synchronisation; host-to-device and
//!   device-to-host copies wait for the stream before returning, because the host memory is
//!   only borrowed for the call. `hipFree` (on drop) synchronises the device before freeing.
//! - Kernels: one module per kernel (`hipModuleLoadData`, then `hipModuleGetFunction` by the
//!   IR kernel name: the generated code is `extern "C"`). The code object is checked to be a
//!   well-formed AMDGPU ELF first, because `hipModuleLoadData` takes no length and reads as
//!   far as the ELF header says.
//! - Launch arguments go in one packed kernarg buffer
//!   (`HIP_LAUNCH_PARAM_BUFFER_POINTER`/`SIZE`/`END`) rather than `kernelParams` (an array of
//!   pointers to each value): the buffer is exactly the hardware's kernarg segment, built by a
//!   pure function ([`kernarg::Kernargs::pack`]) that is tested without a GPU against the offsets
//!   clang records in the code object, and there are no per-argument pointers whose lifetimes
//!   must outlast the call.
//! - Errors carry HIP's own error name and text (`hipGetErrorName`/`hipGetErrorString`).
//!
//! Nothing here has run on an AMD GPU (none exists where greta is developed): it is built and
//! its pure parts are tested in CI; see the README.

mod ffi;
pub mod kernarg;

use crate::backend::{
    Backend, BackendKind, CodeObject, DeviceBuffer, KernelArg, LoadedKernel, ObjectFormat,
    RuntimeError, Signature,
};
use ffi::Status;
use greta_dsl::interp::{Buffer, LaunchDims};
use greta_dsl::ir::{Kernel, Scalar};
use greta_dsl::Target;
use half::{bf16, f16};
use hip_sys::hiprt::{hipDeviceProp_t, hipEvent_t, hipFunction_t, hipModule_t, hipStream_t};
use kernarg::{KernargValue, Kernargs};
use std::ffi::{c_int, c_void, CStr, CString};
use std::ptr;

const BACKEND: &str = "hip";

/// The AMD target greta compiles for; a device must report this architecture.
pub const TARGET: &Target = &Target::GFX942;

/// HIP's name and description of a status code: `hipErrorNoDevice (no ROCm-capable device is
/// detected)`.
pub fn error_text(status: c_int) -> String {
    // SAFETY: both functions take any int and return NULL or a pointer to a static,
    // NUL-terminated string owned by the runtime.
    let (name, text) = unsafe { (ffi::hipGetErrorName(status), ffi::hipGetErrorString(status)) };
    let read = |p: *const std::ffi::c_char| {
        (!p.is_null()).then(|| {
            // SAFETY: non-null, NUL-terminated and static (see above).
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        })
    };
    match (read(name), read(text)) {
        (Some(n), Some(t)) if n != t => format!("{n} ({t})"),
        (Some(n), _) => n,
        _ => format!("HIP error {status}"),
    }
}

fn check(call: &'static str, status: Status) -> Result<(), RuntimeError> {
    if status == ffi::HIP_SUCCESS {
        Ok(())
    } else {
        Err(RuntimeError::Driver {
            backend: BACKEND,
            call,
            message: error_text(status),
        })
    }
}

fn unavailable(reason: String) -> RuntimeError {
    RuntimeError::Unavailable {
        backend: BACKEND,
        reason,
    }
}

/// Whether a device's `gcnArchName` (`gfx942:sramecc+:xnack-`) can run greta's code objects.
/// They are built for plain `gfx942` (xnack and sramecc "any"), so the feature suffixes do not
/// matter; other processors (gfx90a, gfx940, gfx1100, …) cannot load them.
pub fn arch_is_compatible(gcn_arch_name: &str) -> bool {
    gcn_arch_name.split(':').next() == Some(TARGET.name)
}

/// A HIP device as `hipGetDeviceProperties` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub ordinal: i32,
    pub name: String,
    /// `gcnArchName`, e.g. `gfx942:sramecc+:xnack-`.
    pub arch: String,
    pub total_memory: u64,
}

fn c_chars(chars: &[std::ffi::c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).trim().to_string()
}

/// Initialises HIP and lists its devices. A missing driver, no device or any HIP error is
/// [`RuntimeError::Unavailable`] with HIP's own words.
pub fn devices() -> Result<Vec<DeviceInfo>, RuntimeError> {
    // SAFETY: hipInit takes flags (must be 0) and no pointers.
    let status = unsafe { ffi::hipInit(0) };
    if status != ffi::HIP_SUCCESS {
        return Err(unavailable(format!(
            "hipInit failed: {} (no usable AMD GPU: is the amdgpu driver loaded and /dev/kfd \
             accessible?)",
            error_text(status)
        )));
    }
    let mut count: c_int = 0;
    // SAFETY: `count` is a valid out-pointer.
    let status = unsafe { ffi::hipGetDeviceCount(&mut count) };
    if status != ffi::HIP_SUCCESS {
        return Err(unavailable(format!(
            "hipGetDeviceCount failed: {}",
            error_text(status)
        )));
    }
    (0..count).map(device_info).collect()
}

fn device_info(ordinal: c_int) -> Result<DeviceInfo, RuntimeError> {
    /// Room past the end of the ROCm 5 struct, in case a runtime writes a longer one.
    #[repr(C)]
    struct PropsWithSlack {
        props: hipDeviceProp_t,
        _slack: [u8; 4096],
    }
    // SAFETY: the struct holds only C integers, chars and arrays of them: all-zero is valid.
    let mut p: Box<PropsWithSlack> = Box::new(unsafe { std::mem::zeroed() });
    // SAFETY: `p.props` is a valid, writable hipDeviceProp_t (see ffi for the layout it gets).
    let status = unsafe { ffi::hipGetDeviceProperties(&mut p.props, ordinal) };
    if status != ffi::HIP_SUCCESS {
        return Err(unavailable(format!(
            "hipGetDeviceProperties({ordinal}) failed: {}",
            error_text(status)
        )));
    }
    Ok(DeviceInfo {
        ordinal,
        name: c_chars(&p.props.name),
        arch: c_chars(&p.props.gcnArchName),
        total_memory: p.props.totalGlobalMem as u64,
    })
}

/// A HIP stream. Raw HIP handles are pointers (not `Send`/`Sync` to Rust), but the HIP
/// runtime allows any thread to use them; the wrappers below only say so.
struct Stream(hipStream_t);
// SAFETY: HIP streams may be used from any thread (the runtime locks internally).
unsafe impl Send for Stream {}
unsafe impl Sync for Stream {}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: the stream was created by hipStreamCreate and is destroyed once. Errors on
        // teardown have nowhere to go.
        unsafe {
            ffi::hipStreamSynchronize(self.0);
            ffi::hipStreamDestroy(self.0);
        }
    }
}

/// A timing event, destroyed on drop.
struct Event(hipEvent_t);

impl Event {
    fn new() -> Result<Event, RuntimeError> {
        let mut e: hipEvent_t = ptr::null_mut();
        // SAFETY: valid out-pointer.
        check("hipEventCreate", unsafe { ffi::hipEventCreate(&mut e) })?;
        Ok(Event(e))
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: created by hipEventCreate, destroyed once.
        unsafe { ffi::hipEventDestroy(self.0) };
    }
}

/// Device memory: the storage of a [`DeviceBuffer`] on this backend. `ptr` is null for an
/// empty buffer (nothing is allocated).
struct Allocation {
    ptr: *mut c_void,
    bytes: usize,
    ordinal: c_int,
}
// SAFETY: a device address is plain data to the host; HIP calls on it are thread-safe.
unsafe impl Send for Allocation {}
unsafe impl Sync for Allocation {}

impl Drop for Allocation {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: allocated by hipMalloc and freed once; hipFree waits for the device, so
            // queued work that still uses the memory finishes first.
            unsafe { ffi::hipFree(self.ptr) };
        }
    }
}

/// An executable graph, destroyed on drop. Its owner waits for the stream before dropping it
/// (as [`Allocation`]'s `hipFree` waits for the device): a replay still queued must not lose
/// its graph.
struct HipGraph(ffi::GraphExec);
// SAFETY: an opaque runtime handle, usable from any thread.
unsafe impl Send for HipGraph {}
unsafe impl Sync for HipGraph {}

impl Drop for HipGraph {
    fn drop(&mut self) {
        // SAFETY: instantiated by hipGraphInstantiate, destroyed once.
        unsafe { ffi::hipGraphExecDestroy(self.0) };
    }
}

/// A loaded module, unloaded on drop.
struct Module(hipModule_t);
// SAFETY: module and function handles are immutable once loaded and usable from any thread.
unsafe impl Send for Module {}
unsafe impl Sync for Module {}

impl Drop for Module {
    fn drop(&mut self) {
        // SAFETY: loaded by hipModuleLoadData, unloaded once, after its functions (which
        // live in the same `HipKernel`) can no longer be launched.
        unsafe { ffi::hipModuleUnload(self.0) };
    }
}

/// What [`LoadedKernel`] holds for this backend: the function and the module that owns it.
struct HipKernel {
    function: hipFunction_t,
    ordinal: c_int,
    _module: Module,
}
// SAFETY: see `Module`.
unsafe impl Send for HipKernel {}
unsafe impl Sync for HipKernel {}

/// Element types whose every byte pattern is a valid value and which have no padding, so a
/// slice of them may be viewed as bytes both ways.
trait Plain: Copy + 'static {}
impl Plain for f16 {}
impl Plain for bf16 {}
impl Plain for f32 {}
impl Plain for i32 {}
impl Plain for u32 {}

fn as_bytes<T: Plain>(v: &[T]) -> &[u8] {
    // SAFETY: `T: Plain` has no padding; the view covers exactly the slice's memory.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), std::mem::size_of_val(v)) }
}

fn as_bytes_mut<T: Plain>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: as above, and any bytes written through the view form valid `T`s.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), std::mem::size_of_val(v)) }
}

fn host_bytes(b: &Buffer) -> &[u8] {
    match b {
        Buffer::F16(v) => as_bytes(v),
        Buffer::BF16(v) => as_bytes(v),
        Buffer::F32(v) => as_bytes(v),
        Buffer::I32(v) => as_bytes(v),
        Buffer::U32(v) => as_bytes(v),
    }
}

fn host_bytes_mut(b: &mut Buffer) -> &mut [u8] {
    match b {
        Buffer::F16(v) => as_bytes_mut(v),
        Buffer::BF16(v) => as_bytes_mut(v),
        Buffer::F32(v) => as_bytes_mut(v),
        Buffer::I32(v) => as_bytes_mut(v),
        Buffer::U32(v) => as_bytes_mut(v),
    }
}

/// Checks that `bytes` is a complete 64-bit little-endian AMDGPU ELF (header, section and
/// program header tables inside the slice) before its address goes to `hipModuleLoadData`,
/// which takes no length.
pub fn check_code_object(bytes: &[u8]) -> Result<(), String> {
    const EM_AMDGPU: u16 = 224;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err("is not an ELF file".into());
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err("is not a 64-bit little-endian ELF".into());
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
    let machine = u16_at(18);
    if machine != EM_AMDGPU {
        return Err(format!(
            "is an ELF for machine {machine}, not AMDGPU ({EM_AMDGPU})"
        ));
    }
    // A table with no entries may have any offset (usually 0).
    let table_end = |off: u64, entsize: u16, num: u16| {
        if num == 0 {
            return Some(0);
        }
        off.checked_add(entsize as u64 * num as u64)
            .filter(|&end| end <= bytes.len() as u64)
    };
    let (phoff, phentsize, phnum) = (u64_at(32), u16_at(54), u16_at(56));
    let (shoff, shentsize, shnum) = (u64_at(40), u16_at(58), u16_at(60));
    if table_end(phoff, phentsize, phnum).is_none() || table_end(shoff, shentsize, shnum).is_none()
    {
        return Err(format!(
            "is truncated: its header tables end past its {} bytes",
            bytes.len()
        ));
    }
    Ok(())
}

/// An AMD GPU with a stream of its own.
pub struct HipBackend {
    ordinal: c_int,
    info: DeviceInfo,
    stream: Stream,
}

impl HipBackend {
    /// The first gfx942 device HIP reports (`HIP_VISIBLE_DEVICES` narrows the list), or
    /// [`RuntimeError::Unavailable`] saying what was found instead.
    pub fn open() -> Result<HipBackend, RuntimeError> {
        let devices = devices()?;
        if devices.is_empty() {
            return Err(unavailable("HIP reports no devices".into()));
        }
        match devices.iter().find(|d| arch_is_compatible(&d.arch)) {
            Some(d) => HipBackend::on(d.clone()),
            None => {
                let found: Vec<String> = devices
                    .iter()
                    .map(|d| format!("{} `{}` is {}", d.ordinal, d.name, d.arch))
                    .collect();
                Err(unavailable(format!(
                    "no {} device (greta's AMD kernels are compiled for {} = MI300X); found: {}",
                    TARGET.name,
                    TARGET.name,
                    found.join(", ")
                )))
            }
        }
    }

    /// HIP device `ordinal`, which must be a gfx942.
    pub fn with_device(ordinal: i32) -> Result<HipBackend, RuntimeError> {
        let devices = devices()?;
        let d = devices
            .into_iter()
            .find(|d| d.ordinal == ordinal)
            .ok_or_else(|| unavailable(format!("there is no HIP device {ordinal}")))?;
        if !arch_is_compatible(&d.arch) {
            return Err(unavailable(format!(
                "device {ordinal} `{}` is {}; greta's AMD kernels are compiled for {}",
                d.name, d.arch, TARGET.name
            )));
        }
        HipBackend::on(d)
    }

    fn on(info: DeviceInfo) -> Result<HipBackend, RuntimeError> {
        let ordinal = info.ordinal;
        // SAFETY: no pointers.
        check("hipSetDevice", unsafe { ffi::hipSetDevice(ordinal) })?;
        let mut stream: hipStream_t = ptr::null_mut();
        // SAFETY: valid out-pointer; the stream belongs to the current device (`ordinal`).
        check("hipStreamCreate", unsafe {
            ffi::hipStreamCreate(&mut stream)
        })?;
        Ok(HipBackend {
            ordinal,
            info,
            stream: Stream(stream),
        })
    }

    pub fn device(&self) -> &DeviceInfo {
        &self.info
    }

    /// Makes this backend's device current for the calling thread.
    fn bind(&self) -> Result<(), RuntimeError> {
        // SAFETY: no pointers.
        check("hipSetDevice", unsafe { ffi::hipSetDevice(self.ordinal) })
    }

    fn allocation<'b>(&self, b: &'b DeviceBuffer) -> Result<&'b Allocation, RuntimeError> {
        let a: &Allocation = b.storage(BackendKind::Hip)?;
        if a.ordinal != self.ordinal {
            return Err(RuntimeError::Buffer(format!(
                "{b:?} lives on HIP device {}, this backend is device {}",
                a.ordinal, self.ordinal
            )));
        }
        Ok(a)
    }

    fn sync_stream(&self) -> Result<(), RuntimeError> {
        // SAFETY: the stream is live for as long as `self`.
        check("hipStreamSynchronize", unsafe {
            ffi::hipStreamSynchronize(self.stream.0)
        })
    }
}

impl Backend for HipBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Hip
    }

    fn target(&self) -> &'static Target {
        TARGET
    }

    fn device_name(&self) -> String {
        if self.info.name.is_empty() {
            self.info.arch.clone()
        } else {
            self.info.name.clone()
        }
    }

    fn driver_version(&self) -> String {
        let mut v: std::ffi::c_int = 0;
        // SAFETY: hipDriverGetVersion writes one int.
        match unsafe { ffi::hipDriverGetVersion(&mut v) } {
            ffi::HIP_SUCCESS => v.to_string(),
            _ => "unknown".into(),
        }
    }

    fn memory_info(&self) -> Option<(u64, u64)> {
        self.bind().ok()?;
        let (mut free, mut total) = (0usize, 0usize);
        // SAFETY: valid out-pointers.
        let status = unsafe { ffi::hipMemGetInfo(&mut free, &mut total) };
        (status == ffi::HIP_SUCCESS).then_some((free as u64, total as u64))
    }

    fn alloc(&self, scalar: Scalar, len: usize) -> Result<DeviceBuffer, RuntimeError> {
        if scalar == Scalar::Bool {
            return Err(RuntimeError::Buffer("no bool buffers".into()));
        }
        let bytes = len
            .checked_mul(scalar.size_bytes() as usize)
            .ok_or_else(|| RuntimeError::OutOfMemory {
                bytes: u64::MAX,
                what: format!("{len} × {scalar} overflows the address space"),
            })?;
        self.bind()?;
        let mut ptr: *mut c_void = ptr::null_mut();
        if bytes > 0 {
            // SAFETY: valid out-pointer.
            let status = unsafe { ffi::hipMalloc(&mut ptr, bytes) };
            if status == ffi::HIP_ERROR_OUT_OF_MEMORY {
                return Err(RuntimeError::OutOfMemory {
                    bytes: bytes as u64,
                    what: format!("{len} × {scalar} on {}", self.device_name()),
                });
            }
            check("hipMalloc", status)?;
        }
        // Owned from here on, so an error below frees it.
        let alloc = Allocation {
            ptr,
            bytes,
            ordinal: self.ordinal,
        };
        if bytes > 0 {
            // SAFETY: `ptr` points to `bytes` bytes of device memory on this device; the memset
            // is queued on our stream ahead of any use of the buffer.
            check("hipMemsetAsync", unsafe {
                ffi::hipMemsetAsync(alloc.ptr, 0, bytes, self.stream.0)
            })?;
        }
        Ok(DeviceBuffer::new(
            scalar,
            len,
            BackendKind::Hip,
            Box::new(alloc),
        ))
    }

    fn write(&self, dst: &DeviceBuffer, src: &Buffer) -> Result<(), RuntimeError> {
        dst.check_write(src)?;
        let a = self.allocation(dst)?;
        let host = host_bytes(src);
        debug_assert_eq!(host.len(), a.bytes);
        if a.bytes == 0 {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: `a.ptr` holds `a.bytes` device bytes and `host` as many host bytes; the host
        // slice stays borrowed until the stream has finished the copy (synchronised below).
        check("hipMemcpyAsync (host to device)", unsafe {
            ffi::hipMemcpyAsync(
                a.ptr,
                host.as_ptr().cast(),
                a.bytes,
                ffi::MEMCPY_HOST_TO_DEVICE,
                self.stream.0,
            )
        })?;
        self.sync_stream()
    }

    /// A pageable copy, waited for (HIP stages it; no pinned pipeline as on CUDA yet).
    fn write_bytes(&self, dst: &DeviceBuffer, offset: u64, src: &[u8]) -> Result<(), RuntimeError> {
        dst.check_bytes(offset, src.len())?;
        let a = self.allocation(dst)?;
        if src.is_empty() {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: bytes `offset..offset + src.len()` lie inside the allocation (checked above);
        // `src` stays borrowed until the stream has finished the copy (synchronised below).
        check("hipMemcpyAsync (host to device)", unsafe {
            ffi::hipMemcpyAsync(
                a.ptr.cast::<u8>().add(offset as usize).cast(),
                src.as_ptr().cast(),
                src.len(),
                ffi::MEMCPY_HOST_TO_DEVICE,
                self.stream.0,
            )
        })?;
        self.sync_stream()
    }

    fn read(&self, src: &DeviceBuffer) -> Result<Buffer, RuntimeError> {
        let a = self.allocation(src)?;
        let mut out = Buffer::try_zeros(src.scalar(), src.len())
            .map_err(|e| RuntimeError::HostOutOfMemory {
                bytes: e.bytes,
                what: format!("reading back {} × {}", src.len(), src.scalar()),
            })?
            .ok_or_else(|| RuntimeError::Buffer(format!("no {} buffers", src.scalar())))?;
        if a.bytes == 0 {
            return Ok(out);
        }
        self.bind()?;
        let host = host_bytes_mut(&mut out);
        debug_assert_eq!(host.len(), a.bytes);
        // SAFETY: sizes match (same type and length); `host` is exclusively borrowed until the
        // stream has finished writing it (synchronised below).
        check("hipMemcpyAsync (device to host)", unsafe {
            ffi::hipMemcpyAsync(
                host.as_mut_ptr().cast(),
                a.ptr,
                a.bytes,
                ffi::MEMCPY_DEVICE_TO_HOST,
                self.stream.0,
            )
        })?;
        self.sync_stream()?;
        Ok(out)
    }

    fn copy(&self, dst: &DeviceBuffer, src: &DeviceBuffer) -> Result<(), RuntimeError> {
        dst.check_copy(src)?;
        let (d, s) = (self.allocation(dst)?, self.allocation(src)?);
        if d.bytes == 0 || d.ptr == s.ptr {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: both hold `d.bytes` device bytes on this device and are distinct allocations.
        // The copy is ordered on the stream; dropping either buffer first waits for it (hipFree).
        check("hipMemcpyAsync (device to device)", unsafe {
            ffi::hipMemcpyAsync(
                d.ptr,
                s.ptr,
                d.bytes,
                ffi::MEMCPY_DEVICE_TO_DEVICE,
                self.stream.0,
            )
        })
    }

    fn load(
        &self,
        kernel: &Kernel,
        object: Option<&CodeObject>,
    ) -> Result<LoadedKernel, RuntimeError> {
        let object_err = |message: String| RuntimeError::Object {
            kernel: kernel.name.clone(),
            message,
        };
        let object = object.ok_or_else(|| {
            object_err("the hip backend needs its compiled code object (hsaco)".into())
        })?;
        if object.format != ObjectFormat::Hsaco || object.target != TARGET.name {
            return Err(object_err(format!(
                "is {:?} for {}; the hip backend loads Hsaco for {}",
                object.format, object.target, TARGET.name
            )));
        }
        check_code_object(&object.bytes).map_err(object_err)?;
        let name = CString::new(kernel.name.as_str())
            .map_err(|_| object_err("the kernel name contains a NUL byte".into()))?;
        self.bind()?;
        let mut module: hipModule_t = ptr::null_mut();
        // SAFETY: `object.bytes` is a complete ELF (checked above) that outlives the call; HIP
        // copies what it needs.
        let status = unsafe { ffi::hipModuleLoadData(&mut module, object.bytes.as_ptr().cast()) };
        if status != ffi::HIP_SUCCESS {
            return Err(object_err(format!(
                "hipModuleLoadData failed: {}",
                error_text(status)
            )));
        }
        let module = Module(module);
        let mut function: hipFunction_t = ptr::null_mut();
        // SAFETY: live module, NUL-terminated name, valid out-pointer.
        let status = unsafe { ffi::hipModuleGetFunction(&mut function, module.0, name.as_ptr()) };
        if status != ffi::HIP_SUCCESS {
            return Err(object_err(format!(
                "hipModuleGetFunction(`{}`) failed: {}",
                kernel.name,
                error_text(status)
            )));
        }
        Ok(LoadedKernel::new(
            Signature::of(kernel),
            Box::new(HipKernel {
                function,
                ordinal: self.ordinal,
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
        let launch_err = |message: String| RuntimeError::Launch {
            kernel: kernel.signature.name.clone(),
            message,
        };
        let k: &HipKernel = kernel
            .handle()
            .ok_or_else(|| launch_err("was not loaded by the HIP backend".into()))?;
        if k.ordinal != self.ordinal {
            return Err(launch_err(format!(
                "was loaded on HIP device {}, launched on device {}",
                k.ordinal, self.ordinal
            )));
        }
        let mut values = Vec::with_capacity(args.len());
        for arg in args {
            values.push(match (arg, arg.buffer()) {
                (KernelArg::Value(c), _) => KernargValue::Value(*c),
                (_, Some(b)) => {
                    KernargValue::Pointer(self.allocation(b)?.ptr as u64 + arg.byte_offset())
                }
                (_, None) => unreachable!("every argument but a value passes a buffer"),
            });
        }
        let mut kernargs = Kernargs::pack(&values).bytes().to_vec();
        let mut size: usize = kernargs.len();
        let mut extra = [
            ffi::LAUNCH_PARAM_BUFFER_POINTER,
            kernargs.as_mut_ptr().cast(),
            ffi::LAUNCH_PARAM_BUFFER_SIZE,
            (&mut size as *mut usize).cast(),
            ffi::LAUNCH_PARAM_END,
        ];
        self.bind()?;
        let [gx, gy, gz] = dims.grid;
        let [bx, by, bz] = dims.block;
        // SAFETY: `function` is live (its module is owned by `kernel`); `extra` follows HIP's
        // POINTER/SIZE/END protocol and it, `kernargs` and `size` outlive the call, during which
        // HIP copies the arguments. On gfx942 every kernel's LDS is static (its 64 KiB are
        // all a block may declare), so the dynamic size is the signature's 0.
        let status = unsafe {
            ffi::hipModuleLaunchKernel(
                k.function,
                gx,
                gy,
                gz,
                bx,
                by,
                bz,
                kernel.signature.dynamic_lds_bytes,
                self.stream.0,
                ptr::null_mut(),
                extra.as_mut_ptr(),
            )
        };
        if status != ffi::HIP_SUCCESS {
            return Err(launch_err(format!(
                "hipModuleLaunchKernel failed: {}",
                error_text(status)
            )));
        }
        Ok(())
    }

    fn synchronize(&self) -> Result<(), RuntimeError> {
        self.bind()?;
        self.sync_stream()
    }

    fn has_graphs(&self) -> bool {
        true
    }

    /// Stream capture, thread-local (as the CUDA backend's).
    fn begin_capture(&self) -> Result<(), RuntimeError> {
        self.bind()?;
        // SAFETY: the stream is live for as long as `self`.
        check("hipStreamBeginCapture", unsafe {
            ffi::hipStreamBeginCapture(self.stream.0, ffi::STREAM_CAPTURE_MODE_THREAD_LOCAL)
        })
    }

    fn end_capture(&self) -> Result<crate::Graph, RuntimeError> {
        self.bind()?;
        let mut graph: ffi::Graph = ptr::null_mut();
        // SAFETY: the stream is live; `graph` is an out-pointer.
        check("hipStreamEndCapture", unsafe {
            ffi::hipStreamEndCapture(self.stream.0, &mut graph)
        })?;
        let (mut exec, mut nodes): (ffi::GraphExec, usize) = (ptr::null_mut(), 0);
        // SAFETY: `graph` came from the capture and is destroyed once, after instantiating it
        // (the executable graph does not need it); out-pointers are valid; no error log.
        let (counted, made) = unsafe {
            let counted = ffi::hipGraphGetNodes(graph, ptr::null_mut(), &mut nodes);
            let made =
                ffi::hipGraphInstantiate(&mut exec, graph, ptr::null_mut(), ptr::null_mut(), 0);
            ffi::hipGraphDestroy(graph);
            (counted, made)
        };
        check("hipGraphInstantiate", made)?;
        let exec = HipGraph(exec);
        check("hipGraphGetNodes", counted)?;
        Ok(crate::Graph::new(BackendKind::Hip, nodes, Box::new(exec)))
    }

    fn replay(&self, graph: &crate::Graph) -> Result<(), RuntimeError> {
        let g: &HipGraph = graph.inner(BackendKind::Hip)?;
        self.bind()?;
        // SAFETY: the executable graph is alive (`graph` owns it); its buffers outlive it (the
        // contract of `crate::graph`); it runs on our stream after everything queued there.
        check("hipGraphLaunch", unsafe {
            ffi::hipGraphLaunch(g.0, self.stream.0)
        })
    }

    fn time_each(
        &self,
        runs: usize,
        work: &mut dyn FnMut(usize) -> Result<(), RuntimeError>,
    ) -> Result<Vec<f64>, RuntimeError> {
        let mut pairs = Vec::with_capacity(runs);
        for i in 0..runs {
            self.bind()?;
            let (start, stop) = (Event::new()?, Event::new()?);
            // SAFETY: live events and stream.
            check("hipEventRecord", unsafe {
                ffi::hipEventRecord(start.0, self.stream.0)
            })?;
            work(i)?;
            self.bind()?;
            // SAFETY: as above.
            check("hipEventRecord", unsafe {
                ffi::hipEventRecord(stop.0, self.stream.0)
            })?;
            pairs.push((start, stop));
        }
        let mut times = Vec::with_capacity(runs);
        for (start, stop) in &pairs {
            // SAFETY: a recorded event.
            check("hipEventSynchronize", unsafe {
                ffi::hipEventSynchronize(stop.0)
            })?;
            let mut ms = 0f32;
            // SAFETY: both events recorded on one stream and complete; valid out-pointer.
            check("hipEventElapsedTime", unsafe {
                ffi::hipEventElapsedTime(&mut ms, start.0, stop.0)
            })?;
            times.push(ms as f64);
        }
        Ok(times)
    }
}

#[cfg(test)]
mod tests;
