//! Launch graphs: a sequence of launches recorded once and replayed with one call (CUDA graphs
//! through the driver API, HIP graphs, and on the CPU backend a list of the recorded launches),
//! so that a decode step of a few hundred small kernels costs one submission instead of one
//! launch each (see [`crate::Backend::capture`]).
//!
//! A graph holds its launches' arguments as they were when captured: buffer addresses and
//! values. Whatever changes from replay to replay (a decode step's token and position) must
//! therefore live in device memory that the kernels read, written before each replay. The
//! buffers a graph names must outlive it: their owner drops the graph first (a freed buffer's
//! address may be reused by the next allocation). On the CPU backend the graph shares the
//! buffers' storage, so a replay never touches freed memory there.

use crate::backend::{BackendKind, RuntimeError};
use std::any::Any;

/// A recorded sequence of launches on one backend, replayed by [`crate::Backend::replay`].
pub struct Graph {
    backend: BackendKind,
    launches: usize,
    inner: Box<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Graph of {} launches on {}", self.launches, self.backend)
    }
}

impl Graph {
    pub fn new(backend: BackendKind, launches: usize, inner: Box<dyn Any + Send + Sync>) -> Graph {
        Graph {
            backend,
            launches,
            inner,
        }
    }

    /// Kernel launches the graph holds.
    pub fn launches(&self) -> usize {
        self.launches
    }

    /// The backend's own handle, or an error if the graph was captured on another backend.
    pub fn inner<T: 'static>(&self, backend: BackendKind) -> Result<&T, RuntimeError> {
        if self.backend != backend {
            return Err(RuntimeError::Graph(format!(
                "a graph captured on the {} backend was replayed on {backend}",
                self.backend
            )));
        }
        self.inner
            .downcast_ref()
            .ok_or_else(|| RuntimeError::Graph(format!("{self:?} has a foreign handle")))
    }
}
