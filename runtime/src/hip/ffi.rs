//! The HIP runtime entry points greta calls, declared here rather than taken from hip-sys.
//!
//! hip-sys (through hip-runtime-sys) finds and links `libamdhip64` (its build script honours
//! `HIP_PATH`/`ROCM_PATH`), and greta uses its handle types and its `hipDeviceProp_t`. But its
//! pre-generated bindings return `hipError_t` as a Rust enum holding the codes of HIP 5.4; a
//! newer runtime returning a code that enum lacks would be undefined behaviour in Rust. So the
//! few functions greta calls are declared again with the status as a plain `c_int`
//! ([`Status`]), which every HIP version can return safely. The signatures are those of
//! `hip_runtime_api.h` (stable since ROCm 5; C enums such as `hipMemcpyKind` are `int`).

#![allow(non_snake_case)]

use hip_sys::hiprt::{hipDeviceProp_t, hipEvent_t, hipFunction_t, hipModule_t, hipStream_t};
use std::ffi::{c_char, c_int, c_uint, c_void};

/// A `hipError_t` as the C ABI returns it.
pub type Status = c_int;
pub const HIP_SUCCESS: Status = 0;
pub const HIP_ERROR_OUT_OF_MEMORY: Status = 2;

/// `hipStreamCaptureModeThreadLocal` (`hipStreamCaptureMode`, as CUDA's).
pub const STREAM_CAPTURE_MODE_THREAD_LOCAL: c_int = 1;

/// `hipGraph_t`, `hipGraphExec_t`, `hipGraphNode_t`: opaque handles.
pub type Graph = *mut c_void;
pub type GraphExec = *mut c_void;
pub type GraphNode = *mut c_void;

/// `hipMemcpyKind` values.
pub const MEMCPY_HOST_TO_DEVICE: c_int = 1;
pub const MEMCPY_DEVICE_TO_HOST: c_int = 2;
pub const MEMCPY_DEVICE_TO_DEVICE: c_int = 3;

/// The `extra` markers of `hipModuleLaunchKernel` (macros in the C header, so not in hip-sys).
/// They are tags HIP compares against, never dereferenced.
#[allow(unknown_lints, clippy::manual_dangling_ptr)]
pub const LAUNCH_PARAM_BUFFER_POINTER: *mut c_void = 0x01 as *mut c_void;
pub const LAUNCH_PARAM_BUFFER_SIZE: *mut c_void = 0x02 as *mut c_void;
pub const LAUNCH_PARAM_END: *mut c_void = 0x03 as *mut c_void;

#[link(name = "amdhip64")]
extern "C" {
    pub fn hipInit(flags: c_uint) -> Status;
    pub fn hipGetDeviceCount(count: *mut c_int) -> Status;
    pub fn hipDriverGetVersion(version: *mut c_int) -> Status;
    /// The unversioned symbol: ROCm 6 renamed the C macro to `hipGetDevicePropertiesR0600`
    /// with a new struct, and keeps this symbol with the ROCm 5 layout (`hipDeviceProp_tR0000`,
    /// hip-sys's `hipDeviceProp_t`) for binaries built against ROCm 5.
    pub fn hipGetDeviceProperties(prop: *mut hipDeviceProp_t, device: c_int) -> Status;
    pub fn hipSetDevice(device: c_int) -> Status;
    pub fn hipGetErrorName(status: Status) -> *const c_char;
    pub fn hipGetErrorString(status: Status) -> *const c_char;
    pub fn hipMemGetInfo(free: *mut usize, total: *mut usize) -> Status;

    pub fn hipMalloc(ptr: *mut *mut c_void, size: usize) -> Status;
    pub fn hipFree(ptr: *mut c_void) -> Status;
    pub fn hipMemsetAsync(
        dst: *mut c_void,
        value: c_int,
        size: usize,
        stream: hipStream_t,
    ) -> Status;
    pub fn hipMemcpyAsync(
        dst: *mut c_void,
        src: *const c_void,
        size: usize,
        kind: c_int,
        stream: hipStream_t,
    ) -> Status;

    pub fn hipStreamCreate(stream: *mut hipStream_t) -> Status;
    pub fn hipStreamDestroy(stream: hipStream_t) -> Status;
    pub fn hipStreamSynchronize(stream: hipStream_t) -> Status;
    pub fn hipStreamBeginCapture(stream: hipStream_t, mode: c_int) -> Status;
    pub fn hipStreamEndCapture(stream: hipStream_t, graph: *mut Graph) -> Status;

    pub fn hipGraphGetNodes(graph: Graph, nodes: *mut GraphNode, count: *mut usize) -> Status;
    pub fn hipGraphInstantiate(
        exec: *mut GraphExec,
        graph: Graph,
        error_node: *mut GraphNode,
        log: *mut c_char,
        log_size: usize,
    ) -> Status;
    pub fn hipGraphLaunch(exec: GraphExec, stream: hipStream_t) -> Status;
    pub fn hipGraphExecDestroy(exec: GraphExec) -> Status;
    pub fn hipGraphDestroy(graph: Graph) -> Status;

    pub fn hipEventCreate(event: *mut hipEvent_t) -> Status;
    pub fn hipEventDestroy(event: hipEvent_t) -> Status;
    pub fn hipEventRecord(event: hipEvent_t, stream: hipStream_t) -> Status;
    pub fn hipEventSynchronize(event: hipEvent_t) -> Status;
    pub fn hipEventElapsedTime(ms: *mut f32, start: hipEvent_t, stop: hipEvent_t) -> Status;

    pub fn hipModuleLoadData(module: *mut hipModule_t, image: *const c_void) -> Status;
    pub fn hipModuleUnload(module: hipModule_t) -> Status;
    pub fn hipModuleGetFunction(
        function: *mut hipFunction_t,
        module: hipModule_t,
        name: *const c_char,
    ) -> Status;
    #[allow(clippy::too_many_arguments)]
    pub fn hipModuleLaunchKernel(
        function: hipFunction_t,
        grid_x: c_uint,
        grid_y: c_uint,
        grid_z: c_uint,
        block_x: c_uint,
        block_y: c_uint,
        block_z: c_uint,
        shared_bytes: c_uint,
        stream: hipStream_t,
        kernel_params: *mut *mut c_void,
        extra: *mut *mut c_void,
    ) -> Status;
}
