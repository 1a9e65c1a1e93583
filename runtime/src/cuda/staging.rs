//! Uploads through pinned host memory ([`crate::Backend::write_bytes`] of large spans: a
//! model's weights). A copy from pageable memory (a mapped file) goes through the driver's own
//! small staging buffer, one piece at a time; here the host copies each chunk into one of a few
//! pinned slots with several threads (which also takes the mapped file's page faults in
//! parallel) while the DMA engine moves the chunk before it. A slot is reused once its
//! transfer's event has fired; the last transfers are left in flight (the stream orders them
//! before any later use of the memory, and a buffer waits for the stream before it is freed).

use super::{driver, RuntimeError};
use cudarc::driver::{result, sys, CudaStream};
use std::sync::Arc;

/// Bytes of one pinned slot.
const SLOT_BYTES: usize = 64 << 20;
/// Slots: two keep the DMA engine busy while the host fills the next; four absorb jitter.
const SLOTS: usize = 4;
/// The most threads one chunk's host copy is split over (the copy is bound by memory
/// bandwidth well before that).
const COPY_THREADS: usize = 8;

pub(super) struct Staging {
    slots: Vec<Slot>,
    next: usize,
    stream: Arc<CudaStream>,
}

struct Slot {
    host: *mut u8,
    /// Recorded after the slot's last transfer.
    done: sys::CUevent,
    pending: bool,
}

// SAFETY: the pinned pointers and events are owned by the staging area, used only under the
// backend's mutex, with the context made current first.
unsafe impl Send for Staging {}
unsafe impl Sync for Staging {}

impl Staging {
    /// Allocates the pinned slots (with the stream's context current).
    pub(super) fn new(stream: Arc<CudaStream>) -> Result<Staging, RuntimeError> {
        let mut staging = Staging {
            slots: Vec::with_capacity(SLOTS),
            next: 0,
            stream,
        };
        for _ in 0..SLOTS {
            // SAFETY: a plain pinned allocation; owned by the slot (freed in `Drop`) from the
            // next statement on.
            let host = unsafe { result::malloc_host(SLOT_BYTES, 0) }
                .map_err(|e| driver("cuMemHostAlloc", e))?
                .cast::<u8>();
            let done = result::event::create(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING);
            let done = match done {
                Ok(e) => e,
                Err(e) => {
                    // SAFETY: allocated just above, not yet owned by a slot.
                    unsafe { result::free_host(host.cast()) }.ok();
                    return Err(driver("cuEventCreate", e));
                }
            };
            staging.slots.push(Slot {
                host,
                done,
                pending: false,
            });
        }
        Ok(staging)
    }

    /// Queues the copy of `src` to device address `dst` (`src.len()` bytes there must be
    /// allocated), chunk by chunk through the slots.
    pub(super) fn upload(&mut self, dst: sys::CUdeviceptr, src: &[u8]) -> Result<(), RuntimeError> {
        let stream = self.stream.cu_stream();
        for (i, chunk) in src.chunks(SLOT_BYTES).enumerate() {
            let slot = &mut self.slots[self.next];
            self.next = (self.next + 1) % SLOTS;
            if slot.pending {
                // SAFETY: the event was created in this context and recorded on our stream.
                unsafe { result::event::synchronize(slot.done) }
                    .map_err(|e| driver("cuEventSynchronize", e))?;
                slot.pending = false;
            }
            // SAFETY: the slot holds SLOT_BYTES pinned bytes, no transfer reads them now (its
            // event has fired), and nothing else refers to them while this borrow lives.
            let host = unsafe { std::slice::from_raw_parts_mut(slot.host, chunk.len()) };
            parallel_copy(host, chunk);
            let at = dst + (i * SLOT_BYTES) as sys::CUdeviceptr;
            // SAFETY: `at..at + chunk.len()` lies in the caller's allocation; the pinned source
            // is not written again until this transfer's event has fired.
            unsafe {
                result::memcpy_htod_async(at, &*host, stream)
                    .map_err(|e| driver("cuMemcpyHtoDAsync", e))?;
                result::event::record(slot.done, stream).map_err(|e| driver("cuEventRecord", e))?;
            }
            slot.pending = true;
        }
        Ok(())
    }
}

/// `dst.copy_from_slice(src)` over up to [`COPY_THREADS`] threads, in pieces of at least 1 MiB.
fn parallel_copy(dst: &mut [u8], src: &[u8]) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(COPY_THREADS));
    let piece = src.len().div_ceil(threads).max(1 << 20);
    if piece >= src.len() {
        dst.copy_from_slice(src);
        return;
    }
    std::thread::scope(|s| {
        for (d, c) in dst.chunks_mut(piece).zip(src.chunks(piece)) {
            s.spawn(move || d.copy_from_slice(c));
        }
    });
}

impl Drop for Staging {
    fn drop(&mut self) {
        let ctx = self.stream.context();
        // SAFETY: every slot's memory and event were made in this context and are released
        // once, here, after the stream has finished every transfer from them.
        unsafe {
            ctx.record_err(result::ctx::set_current(ctx.cu_ctx()));
            ctx.record_err(result::stream::synchronize(self.stream.cu_stream()));
            for slot in &self.slots {
                ctx.record_err(result::free_host(slot.host.cast()));
                ctx.record_err(result::event::destroy(slot.done));
            }
        }
    }
}
