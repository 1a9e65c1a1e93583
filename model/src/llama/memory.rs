//! Device memory: the plan that refuses a model and context that cannot fit before anything is
//! allocated ([`MemoryPlan`]), and the scratch buffers of the forward pass, listed once:
//! [`Scratch::plan`] says each one's element type and length, and serves both the allocation
//! (with the backend's allocator) and the plan ([`Scratch::bytes`], nothing allocated).

use super::config::LlamaConfig;
use super::kernels::{split_k, Activations, Attention, WeightType, GEMV_MAX_TOKENS};
use crate::gguf::GgufFile;
use greta_dsl::ir::Scalar;
use greta_dsl::Target;
use greta_runtime::DeviceBuffer;
use std::convert::Infallible;

/// The device memory a model needs: its weights as uploaded, the KV caches, and the scratch of
/// a decode step of every sequence (a longer prompt's scratch is checked when it comes).
pub struct MemoryPlan {
    pub weights: u64,
    pub kv_cache: u64,
    pub scratch: u64,
}

impl MemoryPlan {
    /// The plan for the model in `g` with activations and kernels `act`, `context` cache
    /// positions per layer and `sequences` KV caches.
    pub fn new(
        g: &GgufFile,
        cfg: &LlamaConfig,
        act: &Activations,
        target: &Target,
        context: usize,
        sequences: usize,
    ) -> MemoryPlan {
        let act_size = act.act.size_bytes() as u64;
        // Norms in the activation type; dense weights in their device type; Q8_0 as in the
        // file (a 2-byte scale and 32 quants per 32 weights, repacked).
        let weights = g
            .tensors()
            .iter()
            .map(
                |t| match WeightType::of(t.ty).map(|w| w.on_device(act.act)) {
                    _ if t.dims.len() == 1 => t.dims[0] * act_size,
                    Some(WeightType::Dense(d)) => {
                        t.dims.iter().product::<u64>() * d.size_bytes() as u64
                    }
                    _ => t.size_bytes,
                },
            )
            .sum();
        let kv_cache =
            2 * (cfg.n_layers * context * cfg.kv_dim()) as u64 * act_size * sequences as u64;
        let shape = ScratchShape {
            cfg,
            act,
            target,
            tokens: decode_rows(sequences),
            context,
        };
        MemoryPlan {
            weights,
            kv_cache,
            scratch: Scratch::bytes(&shape),
        }
    }

    pub fn total(&self) -> u64 {
        self.weights + self.kv_cache + self.scratch
    }
}

/// What the scratch buffers' lengths depend on.
pub struct ScratchShape<'a> {
    pub cfg: &'a LlamaConfig,
    /// The activation type and the attention kernels.
    pub act: &'a Activations,
    pub target: &'a Target,
    /// Tokens of one forward pass at the most.
    pub tokens: usize,
    /// KV-cache positions attention covers at the most.
    pub context: usize,
}

/// Rows of one batched decode pass for `sequences` sequences (batches run
/// [`GEMV_MAX_TOKENS`] at a time; see [`super::Model::decode`]).
pub fn decode_rows(sequences: usize) -> usize {
    sequences.clamp(1, GEMV_MAX_TOKENS)
}

/// The buffers of a forward pass over up to `tokens` tokens: device buffers, or `()` where
/// only their bytes are counted. Activations (`act`) are of the activation type; queries, keys,
/// values and logits f32.
pub struct Scratch<B = DeviceBuffer> {
    pub tokens: usize,
    /// Bytes of all the buffers.
    pub bytes: u64,
    /// The pass's host inputs, written in one copy: token ids, positions and last rows (u32,
    /// laid out by [`Inputs`]).
    pub inputs: B,
    /// The residual stream `[tokens, dim]` (act), twice: each layer adds into the other.
    pub x: B,
    pub x2: B,
    /// A normed residual stream `[tokens, dim]` (act).
    pub xn: B,
    /// Queries `[tokens, q_dim]`, and rotated.
    pub q: B,
    pub qr: B,
    /// Keys and values `[tokens, kv_dim]` (rotated, the keys go straight into the cache).
    pub k: B,
    pub v: B,
    /// Attention's f32 output `[tokens, q_dim]` (V1, or f32 activations; else empty).
    pub att: B,
    /// Attention's output in the activation type (half activations only; else empty).
    pub att_act: B,
    /// A projection's output before its residual is added `[tokens, dim]` (act).
    pub o: B,
    /// Gate, up and `silu(gate) ∘ up` `[tokens, ffn_dim]` (act).
    pub gate: B,
    pub up: B,
    pub h: B,
    /// One token's fused projections: queries, keys and values; gate and up (act).
    pub qkv: B,
    pub gate_up: B,
    /// Scores and probabilities `[heads, tokens, context]` (V1 only).
    pub scores: B,
    pub probs: B,
    /// One token's split-K partials `[heads, splits, head_dim + 2]` (V2, V4 only).
    pub part: B,
    /// Each segment's last token: its hidden state and normed state `[rows, dim]` (act),
    /// logits `[rows, vocab]`. A pass has at most one segment per token and runs at most
    /// [`GEMV_MAX_TOKENS`] segments (batched decode and kv-aligned passes are cut into
    /// launches of that many), so rows: the smaller of the two.
    pub last: B,
    pub last_n: B,
    pub logits: B,
}

impl<B> Scratch<B> {
    /// Every scratch buffer for `shape`: its element type and length, made by `make`
    /// (allocated, or only counted).
    pub fn plan<E>(
        shape: &ScratchShape<'_>,
        mut make: impl FnMut(Scalar, usize) -> Result<B, E>,
    ) -> Result<Scratch<B>, E> {
        let (c, t, act) = (shape.cfg, shape.tokens, shape.act.act);
        let rows = t.min(GEMV_MAX_TOKENS);
        let (f32_, u32_) = (Scalar::F32, Scalar::U32);
        let half = act != f32_;
        let v1 = shape.act.attention == Attention::V1;
        let (scores, part) = if v1 {
            (c.n_heads * t * shape.context, 0)
        } else {
            let decode = &shape.act.attn_decode.config;
            let splits = split_k(c, decode, shape.target, shape.context).1 as usize;
            (0, c.n_heads * splits * (c.head_dim + 2))
        };
        let mut bytes = 0;
        let mut f = |ty: Scalar, n: usize| {
            bytes += n as u64 * ty.size_bytes() as u64;
            make(ty, n)
        };
        let s = Scratch {
            tokens: t,
            bytes: 0,
            inputs: f(u32_, Inputs::new(t).len)?,
            x: f(act, t * c.dim)?,
            x2: f(act, t * c.dim)?,
            xn: f(act, t * c.dim)?,
            q: f(f32_, t * c.q_dim())?,
            qr: f(f32_, t * c.q_dim())?,
            k: f(f32_, t * c.kv_dim())?,
            v: f(f32_, t * c.kv_dim())?,
            att: f(f32_, if v1 || !half { t * c.q_dim() } else { 0 })?,
            att_act: f(act, if half { t * c.q_dim() } else { 0 })?,
            o: f(act, t * c.dim)?,
            gate: f(act, t * c.ffn_dim)?,
            up: f(act, t * c.ffn_dim)?,
            h: f(act, t * c.ffn_dim)?,
            qkv: f(f32_, c.q_dim() + 2 * c.kv_dim())?,
            gate_up: f(act, 2 * c.ffn_dim)?,
            scores: f(f32_, scores)?,
            probs: f(f32_, scores)?,
            part: f(f32_, part)?,
            last: f(act, rows * c.dim)?,
            last_n: f(act, rows * c.dim)?,
            logits: f(f32_, rows * c.vocab)?,
        };
        Ok(Scratch { bytes, ..s })
    }
}

/// Where a pass's host inputs lie in [`Scratch::inputs`] (u32 elements), so that one copy
/// writes them all (a copy waits for the device: three would cost a decode step three waits):
/// the token ids `[tokens]`; each segment's first position, [`POS_STRIDE`] apart (each
/// segment's launches read a slice of their own, and slices start on 16-byte boundaries); and
/// each segment's last row `[rows]`. A graph of a pass's launches reads them from there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inputs {
    pub ids: usize,
    pub pos: usize,
    pub last: usize,
    pub len: usize,
}

/// u32 elements between two segments' positions in [`Inputs`] (16 bytes).
pub const POS_STRIDE: usize = 4;

impl Inputs {
    /// The layout for passes of up to `tokens` tokens (and so up to
    /// `min(tokens, GEMV_MAX_TOKENS)` segments).
    pub fn new(tokens: usize) -> Inputs {
        let rows = tokens.clamp(1, GEMV_MAX_TOKENS);
        let pos = tokens.next_multiple_of(POS_STRIDE);
        let last = pos + rows * POS_STRIDE;
        Inputs {
            ids: 0,
            pos,
            last,
            len: last + rows.next_multiple_of(POS_STRIDE),
        }
    }
}

impl Scratch<()> {
    /// Bytes of the scratch buffers for `shape`.
    pub fn bytes(shape: &ScratchShape<'_>) -> u64 {
        match Scratch::plan(shape, |_, _| Ok::<(), Infallible>(())) {
            Ok(s) => s.bytes,
            Err(never) => match never {},
        }
    }
}
