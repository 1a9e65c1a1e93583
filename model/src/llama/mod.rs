//! Llama-family models: configuration, weights, the forward pass on greta's kernels, and a plain
//! f64 reference forward pass for tests.

pub mod config;
mod forward;
pub mod kernels;
mod memory;
pub mod profile;
pub mod reference;
pub mod trace;
pub mod tuning;
pub mod weights;

pub use config::{ConfigError, LlamaConfig};
pub use forward::{DecodeStep, Model, ModelOptions, DEFAULT_FUSION};
pub use kernels::{
    default_activations, plan, projection, projection_untuned, Attention, Output, GEMV_MAX_TOKENS,
};
pub use trace::{Stage, TraceError, TraceOptions};
pub use tuning::{Site, Tuned};
pub use weights::WeightError;

use greta_runtime::RuntimeError;

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Weights(#[from] WeightError),
    #[error("context of {ctx} tokens: {reason}")]
    Context { ctx: usize, reason: String },
    #[error(
        "the model needs {need_mib} MiB of device memory ({what}), but {device} has {free_mib} MiB free"
    )]
    DeviceMemory {
        need_mib: u64,
        free_mib: u64,
        device: String,
        what: String,
    },
    #[error("{0} sequences: a model holds at least one")]
    Sequences(usize),
    #[error("activations of {0}: greta computes in f32, f16 or bf16")]
    Activations(String),
    #[error("kernel `{kernel}` [{config}]: {message}")]
    Kernel {
        kernel: String,
        config: String,
        message: String,
    },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Trace(#[from] TraceError),
}

/// Why a forward pass or generation failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("the prompt is empty: there is nothing to continue")]
    EmptyPrompt,
    #[error("the prompt has {tokens} tokens but the context holds {context}: use a larger -c or a shorter prompt")]
    PromptTooLong { tokens: usize, context: usize },
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    TokenOutOfRange { id: u32, vocab: usize },
    #[error("positions {start}..{end} do not fit the context of {context} tokens")]
    ContextFull {
        start: usize,
        end: usize,
        context: usize,
    },
    #[error("sequence slot {slot} does not exist: the model holds {sequences} sequences")]
    Slot { slot: usize, sequences: usize },
    #[error("sequence slot {slot} appears twice in one decode step")]
    SlotTwice { slot: usize },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("device memory for {what}: {message}")]
    Memory { what: String, message: String },
    #[error(transparent)]
    Trace(#[from] TraceError),
}
