//! The Llama forward pass, built only from greta-kernels launched through a greta-runtime
//! backend: no host-side math on the hot path (the host only uploads token ids and reads the
//! logits back).
//!
//! Activations (`[tokens, features]`, row-major) are of one type, `act`: f32, or f16/bf16 (the
//! default for f16/bf16 models; `--dtype`), with norms, softmax and every accumulation in f32
//! inside the kernels. Weights stay in their GGUF type with f32 activations (F32, F16, BF16, or
//! Q8_0 repacked into scales and quants, dequantised inside the kernels); with half activations
//! dense weights are uploaded in the activation type and Q8_0 stays quantised. Norm weights are
//! uploaded in the activation type. Queries, keys and values come out of their projections in
//! f32 (RoPE in f32); the KV cache holds the activation type, `context` positions per layer
//! allocated up front, and attention accumulates in f32 and writes the activation type. Which
//! kernel runs each projection (GEMV for decode, the matrix-core GEMM for prefill) is
//! [`super::kernels::projection`]'s choice; attention is fused by default (`attn_flash` over
//! several tokens, split-K `attn_decode` + `attn_combine` for one), or the scores-in-memory
//! reference ([`Attention::V1`]). A forward pass over `T` new tokens at position `start`:
//!
//! ```text
//! x = embed(tokens)
//! per layer: xn = rmsnorm(x) · w;  q, k, v = xn·Wq, xn·Wk, xn·Wv (f32);  q, k = rope(q, k; start)
//!            cache[start..start+T] = k, v;  a = softmax(q·kᵀ/√d, causal)·v
//!            x = x + a·Wo;  xn = rmsnorm(x) · w;  x = x + (silu(xn·Wg) ∘ xn·Wu)·Wd
//! logits = rmsnorm(x[T-1]) · w · Wout (f32)
//! ```
//!
//! With half activations the two residual additions happen in the projections' epilogues.
//!
//! This file holds the model, its loading and the pass itself ([`Model::forward`]); each step's
//! launch, its kernel's arguments named in the struct `#[kernel]` generated from the kernel's
//! signature, is in [`launch`]; the memory plan and the scratch buffers are in
//! [`super::memory`]. Each stage of [`Model::run`] is followed by one `self.trace(..)` line that,
//! with `GRETA_TRACE_STAGE=1`, reads the stage's output back and prints its figures (see
//! [`super::trace`]); off, it is one branch.

use self::launch::{Operand, View};
use super::config::LlamaConfig;
use super::kernels::split_keys;
use super::kernels::{
    default_activations, embedding_for, projection, Activations, Attention, Fusion, Outputs,
    Planned, WeightType, GEMV_MAX_TOKENS,
};
use super::memory::{Inputs, MemoryPlan, Scratch, ScratchShape, POS_STRIDE};
use super::profile::{Phase, Profile, ProfileRow};
use super::trace::{self, Content, LogitDump, Record, Stage, Stats, TraceError, TraceOptions};
use super::tuning::Tuned;
use super::{weights, LoadError, RunError};
use crate::gguf::{self, GgufFile, TensorInfo};
use greta_dsl::interp::Buffer;
use greta_dsl::ir::Scalar;
use greta_runtime::check::SLICE_ALIGN;
use greta_runtime::tuning::TuningDb;
use greta_runtime::{Backend, CodeObject, DeviceBuffer, Graph, LoadedKernel, RuntimeError};
use half::{bf16, f16};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

mod launch;

/// Where compiled kernels come from: the caller's bundle, compile cache or (CPU) nothing.
pub type ObjectFn<'a> = dyn Fn(&greta_dsl::ir::Kernel) -> Result<Option<CodeObject>, String> + 'a;

#[derive(Clone, Debug)]
pub struct ModelOptions {
    /// Context length: KV-cache positions allocated up front.
    pub context: usize,
    /// The activation type (f32, f16 or bf16); `None`: the model's default (its weights' type
    /// for f16/bf16 models, else f32).
    pub activations: Option<Scalar>,
    /// The attention kernels.
    pub attention: Attention,
    /// Sequences the model holds at once (at least 1): each has its own KV-cache slot of
    /// `context` positions, and [`Model::decode`] runs a step of several together.
    pub sequences: usize,
    /// Stage tracing and the logits dump ([`super::trace`]; off by default).
    pub trace: TraceOptions,
    /// The tuning database: kernels it holds winners for on this device run at those
    /// configurations ([`super::tuning`]); `None`: every kernel at its default.
    pub tuning: Option<Arc<TuningDb>>,
}

/// One sequence's step of a batched decode ([`Model::decode`]): `token` at position `pos` of
/// KV-cache slot `slot` (positions `0..pos` of the slot must hold the sequence so far).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeStep {
    pub slot: usize,
    pub token: u32,
    pub pos: usize,
}

/// One sequence's part of a forward pass: rows `row0..row0 + tokens` of the pass, at positions
/// `start..start + tokens` of KV-cache slot `slot`. RoPE, the cache writes and attention run
/// per segment; everything else (norms, projections, SwiGLU) over all the pass's rows at once,
/// with kernels whose result for a row does not depend on the other rows (see
/// [`Model::decode`]).
#[derive(Clone, Copy, Debug)]
struct Segment {
    /// Its place among the pass's segments (where its position is in the pass's inputs).
    index: usize,
    slot: usize,
    row0: usize,
    tokens: usize,
    start: usize,
}

impl Segment {
    /// This segment's rows of a `[rows, width]` buffer.
    fn rows<'a>(&self, buf: impl Into<View<'a>>, width: usize) -> View<'a> {
        buf.into().rows(self.row0, self.tokens, width)
    }

    /// Its slot and positions, for a trace line.
    fn positions(&self) -> (usize, Range<usize>) {
        (self.slot, self.start..self.start + self.tokens)
    }
}

/// Which rows of a pass a traced tensor holds: all of them, one segment's, each segment's on
/// a line of its own, (the final norm and the logits) each segment's last, one row each, or
/// one segment's rows in its KV cache (the traced view is those rows already).
#[derive(Clone, Copy)]
enum Rows<'a> {
    All(&'a [Segment]),
    One(&'a Segment),
    Each(&'a [Segment]),
    Last(&'a [Segment]),
    Cache(&'a Segment),
}

impl Rows<'_> {
    /// The rows of the traced buffer, and each sequence's slot and positions in them.
    fn describe(self) -> (Range<usize>, Vec<(usize, Range<usize>)>) {
        match self {
            // (`Each` is traced as `One` line by line.)
            Rows::All(segs) | Rows::Each(segs) => {
                let t = segs.iter().map(|g| g.tokens).sum();
                (0..t, segs.iter().map(Segment::positions).collect())
            }
            Rows::One(seg) | Rows::Cache(seg) => {
                (seg.row0..seg.row0 + seg.tokens, vec![seg.positions()])
            }
            Rows::Last(segs) => {
                let last = |g: &Segment| (g.slot, g.start + g.tokens - 1..g.start + g.tokens);
                (0..segs.len(), segs.iter().map(last).collect())
            }
        }
    }
}

/// A sequence's KV cache: `context` positions of keys and of values per layer, in the
/// activation type.
struct KvSlot {
    k: Vec<DeviceBuffer>,
    v: Vec<DeviceBuffer>,
}

/// A weight matrix on the device: `rows` outputs of `cols` inputs — rows `row0..row0 + rows`
/// of the matrix in `bufs`, which may hold other weights' rows too (see [`Group`]).
struct Weight {
    ty: WeightType,
    rows: usize,
    cols: usize,
    row0: usize,
    bufs: Arc<WeightBufs>,
}

impl Weight {
    /// Rows `row0..row0 + rows` of this weight.
    fn part(&self, row0: usize, rows: usize) -> Weight {
        Weight {
            ty: self.ty,
            rows,
            cols: self.cols,
            row0: self.row0 + row0,
            bufs: self.bufs.clone(),
        }
    }
}

/// Whether rows from `row0` of a `ty` matrix with `cols` columns start on a slice boundary in
/// each of its buffers.
fn rows_aligned(ty: WeightType, row0: usize, cols: usize) -> bool {
    let elems = row0 * cols;
    let align = SLICE_ALIGN as usize;
    match ty {
        WeightType::Dense(d) => elems * d.size_bytes() as usize % align == 0,
        // Quants: a byte each; scales: two bytes per 32.
        WeightType::Q8_0 => elems % align == 0 && elems % 32 == 0 && elems / 32 * 2 % align == 0,
    }
}

/// Matrices that multiply the same input — queries, keys and values; gate and up. Where every
/// part starts on a slice boundary they are uploaded as one matrix of their rows, so that
/// decode reads them in one GEMV (a 4096-row GEMV runs at 59% of the copy bandwidth on the
/// H200, a 12288-row one near 90%); prefill multiplies each part on its own.
struct Group {
    /// The whole matrix, when the parts share one.
    whole: Option<Weight>,
    parts: Vec<Weight>,
}

impl Group {
    /// The first part: its type and width are the group's where it has a whole matrix.
    fn first(&self) -> &Weight {
        &self.parts[0]
    }
}

enum WeightBufs {
    Dense(DeviceBuffer),
    Q8 {
        scales: DeviceBuffer,
        quants: DeviceBuffer,
    },
}

struct Layer {
    attn_norm: DeviceBuffer,
    /// Queries, keys, values.
    qkv: Group,
    o: Weight,
    ffn_norm: DeviceBuffer,
    /// Gate, up.
    gate_up: Group,
    down: Weight,
}

pub struct Model {
    /// Captured decode steps, replayed ([`Model::set_graphs`]). Declared first, so dropped
    /// before the buffers they name.
    graphs: HashMap<GraphKey, Graph>,
    /// Whether decode steps are captured and replayed where the backend can.
    use_graphs: bool,
    /// The inputs the GEMVs compute as they load them ([`Model::set_fusion`]).
    fusion: Vec<Fusion>,
    cfg: LlamaConfig,
    backend: Box<dyn Backend>,
    context: usize,
    act: Activations,
    /// The tuning DB's winners in use (empty without a DB).
    tuned: Tuned,
    outputs: Outputs,
    kernels: HashMap<String, LoadedKernel>,
    embd: Weight,
    /// `None`: tied to the embeddings.
    output: Option<Weight>,
    output_norm: DeviceBuffer,
    layers: Vec<Layer>,
    /// One KV cache per sequence ([`ModelOptions::sequences`]).
    caches: Vec<KvSlot>,
    scratch: Option<Scratch>,
    device_bytes: u64,
    peak_device_bytes: u64,
    /// Weights and KV caches as planned (the scratch is planned per pass length).
    planned: (u64, u64),
    /// The backend's free device memory before the model allocated anything.
    free_at_load: Option<u64>,
    /// Per-kernel launch times, when profiling ([`Model::enable_profile`]).
    profile: Option<RefCell<Profile>>,
    /// The phase of the forward pass running now (for the profile).
    phase: Phase,
    /// kv-aligned mode ([`Model::set_kv_aligned`]).
    kv_aligned: bool,
    /// Whether to print a trace line per stage ([`super::trace`]).
    trace_stages: bool,
    /// Forward passes started so far (the trace's `pass` is this less one).
    passes: u64,
    /// The logits dump being written (`GRETA_DUMP_LOGITS`).
    logit_dump: Option<LogitDump>,
}

fn key(p: &Planned) -> String {
    format!("{}[{}]", p.spec.name, p.config)
}

fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

/// `b` in element type `to` (rounded once, to nearest even; unchanged if it already is).
fn convert(b: Buffer, to: Scalar) -> Buffer {
    if b.scalar() == to {
        return b;
    }
    let values: Vec<f32> = match &b {
        Buffer::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
        Buffer::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
        Buffer::F32(v) => v.clone(),
        Buffer::I32(_) | Buffer::U32(_) => return b,
    };
    match to {
        Scalar::F16 => Buffer::F16(values.iter().map(|&x| f16::from_f32(x)).collect()),
        Scalar::BF16 => Buffer::BF16(values.iter().map(|&x| bf16::from_f32(x)).collect()),
        _ => Buffer::F32(values),
    }
}

/// The element type of a dense tensor's data in the file (`None`: quantised).
fn file_scalar(ty: gguf::GgmlType) -> Option<Scalar> {
    match ty {
        gguf::GgmlType::F16 => Some(Scalar::F16),
        gguf::GgmlType::BF16 => Some(Scalar::BF16),
        gguf::GgmlType::F32 => Some(Scalar::F32),
        _ => None,
    }
}

/// Host data of a dense tensor in its own type.
fn dense_buffer(t: &TensorInfo, bytes: &[u8]) -> Buffer {
    file_scalar(t.ty)
        .and_then(|scalar| Buffer::from_le_bytes(scalar, bytes))
        .expect("checked by weights::check: whole elements of a dense type")
}

impl Model {
    /// Loads a checked model onto `backend`: kernels first (so a missing kernel fails before
    /// gigabytes are copied), then weights, then the KV cache. Device memory is checked against
    /// the backend's free memory before anything is allocated.
    pub fn load(
        g: &GgufFile,
        backend: Box<dyn Backend>,
        objects: &ObjectFn<'_>,
        options: &ModelOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Model, LoadError> {
        let cfg = LlamaConfig::from_gguf(g)?;
        let output_name = weights::check(g, &cfg)?;
        let context = options.context;
        if options.sequences == 0 {
            return Err(LoadError::Sequences(options.sequences));
        }
        if context == 0 {
            return Err(LoadError::Context {
                ctx: context,
                reason: "must be at least 1".into(),
            });
        }
        if context > u32::MAX as usize / cfg.kv_dim().max(1) {
            return Err(LoadError::Context {
                ctx: context,
                reason: "too large to index".into(),
            });
        }

        let act_ty = options
            .activations
            .unwrap_or_else(|| default_activations(g));
        if !matches!(act_ty, Scalar::F32 | Scalar::F16 | Scalar::BF16) {
            return Err(LoadError::Activations(act_ty.to_string()));
        }
        // Before anything heavy: an unwritable dump fails now, not after the generation.
        let logit_dump = match &options.trace.dump_logits {
            Some(path) => Some(LogitDump::create(path, cfg.vocab)?),
            None => None,
        };
        let target = backend.target();
        let tuned = match &options.tuning {
            Some(db) => {
                let sites = super::tuning::sites(g, &cfg, act_ty, options.attention, target);
                let (device, driver) = (backend.device_name(), backend.driver_version());
                Tuned::resolve(db, &sites, target, &device, &driver)
            }
            None => Tuned::none(),
        };
        let act = Activations::new(&cfg, act_ty, options.attention, target, &tuned);
        let plan = MemoryPlan::new(g, &cfg, &act, backend.target(), context, options.sequences);
        if let Some((free, _total)) = backend.memory_info() {
            if plan.total() > free {
                return Err(LoadError::DeviceMemory {
                    need_mib: mib(plan.total()),
                    free_mib: mib(free),
                    device: backend.device_name(),
                    what: format!(
                        "weights {} MiB, KV cache for {} × {context} tokens {} MiB",
                        mib(plan.weights),
                        options.sequences,
                        mib(plan.kv_cache)
                    ),
                });
            }
        }

        let mut kernels = HashMap::new();
        for p in super::plan(g, &cfg, act_ty, options.attention, target, &tuned) {
            let kernel =
                (p.spec.build)(&p.config, backend.target()).map_err(|e| LoadError::Kernel {
                    kernel: p.spec.name.into(),
                    config: p.config.to_string(),
                    message: e.to_string(),
                })?;
            let object = objects(&kernel).map_err(|message| LoadError::Kernel {
                kernel: p.spec.name.into(),
                config: p.config.to_string(),
                message,
            })?;
            let loaded = backend.load(&kernel, object.as_ref())?;
            kernels.insert(key(&p), loaded);
        }

        let mut model = Model {
            graphs: HashMap::new(),
            use_graphs: true,
            fusion: DEFAULT_FUSION.to_vec(),
            cfg: cfg.clone(),
            context,
            act,
            tuned,
            outputs: Outputs::for_act(act_ty),
            kernels,
            embd: Weight {
                ty: WeightType::Dense(Scalar::F32),
                rows: 0,
                cols: 0,
                row0: 0,
                bufs: Arc::new(WeightBufs::Dense(backend.alloc(Scalar::F32, 0)?)),
            },
            output: None,
            output_norm: backend.alloc(Scalar::F32, 0)?,
            layers: Vec::new(),
            caches: Vec::new(),
            scratch: None,
            device_bytes: 0,
            peak_device_bytes: 0,
            planned: (plan.weights, plan.kv_cache),
            free_at_load: backend.memory_info().map(|(free, _)| free),
            profile: None,
            phase: Phase::Decode,
            kv_aligned: false,
            trace_stages: options.trace.stages,
            passes: 0,
            logit_dump,
            backend,
        };
        let total = 2 + cfg.n_layers + (output_name == "output.weight") as usize;
        model.embd = model.upload_weight(g, "token_embd.weight")?;
        model.output_norm = model.upload_norm(g, "output_norm.weight")?;
        if output_name == "output.weight" {
            model.output = Some(model.upload_weight(g, "output.weight")?);
        }
        progress(total - cfg.n_layers, total);
        for l in 0..cfg.n_layers {
            let n = |s: &str| format!("blk.{l}.{s}");
            let layer = Layer {
                attn_norm: model.upload_norm(g, &n("attn_norm.weight"))?,
                qkv: model.upload_group(
                    g,
                    &[n("attn_q.weight"), n("attn_k.weight"), n("attn_v.weight")],
                )?,
                o: model.upload_weight(g, &n("attn_output.weight"))?,
                ffn_norm: model.upload_norm(g, &n("ffn_norm.weight"))?,
                gate_up: model.upload_group(g, &[n("ffn_gate.weight"), n("ffn_up.weight")])?,
                down: model.upload_weight(g, &n("ffn_down.weight"))?,
            };
            model.layers.push(layer);
            progress(total - cfg.n_layers + l + 1, total);
        }
        for s in 0..options.sequences {
            let mut slot = KvSlot {
                k: Vec::new(),
                v: Vec::new(),
            };
            for l in 0..cfg.n_layers {
                let what = |kv: &str| {
                    format!("the KV cache of {context} positions for sequence {s}, layer {l} {kv}")
                };
                slot.k
                    .push(model.alloc(act_ty, context * cfg.kv_dim(), &|| what("keys"))?);
                slot.v
                    .push(model.alloc(act_ty, context * cfg.kv_dim(), &|| what("values"))?);
            }
            model.caches.push(slot);
        }
        Ok(model)
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    pub fn context(&self) -> usize {
        self.context
    }

    /// kv-aligned mode: a pass over several tokens of one sequence runs as decode steps — the
    /// tokens [`GEMV_MAX_TOKENS`] at a time, each its own one-token segment (the same slot at
    /// successive positions) — so every row takes the decode kernels: the GEMV (or `matmul`)
    /// projections, whose row sums do not depend on the rows beside them, and the split-K
    /// decode attention over exactly its own prefix of the cache. The keys, values and logits a
    /// prompt leaves are then bit-identical to decoding it token by token, whatever the prompt
    /// length; the price is prefill at decode speed (every launch of ≤ 8 rows reads all the
    /// weights). Off by default; `greta verify` checks it (the kv-aligned mode of the
    /// prefill-decode gate and the matrix).
    pub fn set_kv_aligned(&mut self, on: bool) {
        self.kv_aligned = on;
    }

    /// Decode steps (passes of one-token segments) captured once into a launch graph and
    /// replayed — one submission per step instead of a launch per kernel — where the backend
    /// has graphs (CUDA, HIP; the CPU backend's replay runs the recorded launches, for
    /// tests). On by default; off, every launch is made again each step. Either way the
    /// results are bit-identical: the graph holds the same launches, and a step's position is
    /// read from device memory by every kernel that needs it. Not while tracing or profiling
    /// (they read or time each launch). A graph is kept per slot and split of the cache
    /// ([`split_keys`]): a few per sequence.
    pub fn set_graphs(&mut self, on: bool) {
        self.use_graphs = on;
        if !on {
            self.graphs.clear();
        }
    }

    /// What decode's GEMVs compute besides their product: [`Fusion::Norm`] — RMSNorm in the
    /// input of the queries, keys and values, gate and up, and logits GEMVs (`gemv_norm`) —
    /// and [`Fusion::Glu`] — SwiGLU in the gate/up GEMV's epilogue, which writes
    /// `silu(gate) · up` for the down projection — each saving a launch and a round trip of
    /// rows through memory. Where the projection is not a dense GEMV, or the fusion is not
    /// chosen, those are their own launches. [`DEFAULT_FUSION`] is the measured best
    /// (BENCHMARKS.md). (While tracing, the rows the stages read are also computed by their own
    /// launches, and the projections still fuse: a trace changes no logits.) The fused kernels
    /// keep those rows in f32 where the unfused launches round them to the activation type, so
    /// the two differ by that rounding.
    pub fn set_fusion(&mut self, fusion: &[Fusion]) {
        self.fusion = fusion.to_vec();
        self.graphs.clear();
    }

    /// Graphs captured so far (for tests and logs).
    pub fn graphs_captured(&self) -> usize {
        self.graphs.len()
    }

    /// Whether passes run kv-aligned ([`Model::set_kv_aligned`]).
    pub fn kv_aligned(&self) -> bool {
        self.kv_aligned
    }

    /// Sequences the model holds at once (KV-cache slots).
    pub fn sequences(&self) -> usize {
        self.caches.len()
    }

    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// The activation type the model computes in.
    pub fn activations(&self) -> Scalar {
        self.act.act
    }

    /// Which kernels run the projections for 1, a few and many tokens (the choice is by the
    /// number of tokens of a forward pass), for a log line.
    pub fn projection_kernels(&self) -> String {
        let Some(layer) = self.layers.first() else {
            return String::new();
        };
        let target = self.backend.target();
        let out = self.outputs.plain;
        let many = super::kernels::GEMV_MAX_TOKENS + 1;
        [
            (1, "1 token"),
            (2, "2-8 tokens"),
            (many, "more than 8 tokens"),
        ]
        .iter()
        .map(|&(m, what)| {
            let q = &layer.qkv.parts[0];
            let p = projection(
                q.ty,
                self.act.act,
                m,
                q.rows,
                q.cols,
                out,
                target,
                &self.tuned,
            );
            format!("{what}: {p}")
        })
        .collect::<Vec<_>>()
        .join("; ")
    }

    /// The tuning DB's winners this model runs ([`Tuned::report`] lists every site).
    pub fn tuned(&self) -> &Tuned {
        &self.tuned
    }

    /// The most device memory greta's own buffers have held at once.
    pub fn peak_device_bytes(&self) -> u64 {
        self.peak_device_bytes
    }

    /// The device memory the memory plan predicts once a pass of `tokens` tokens has run:
    /// weights, KV caches and the scratch of `tokens` tokens (or of a decode step, if more).
    pub fn planned_bytes(&self, tokens: usize) -> u64 {
        let shape = ScratchShape {
            cfg: &self.cfg,
            act: &self.act,
            target: self.backend.target(),
            tokens: tokens.max(super::memory::decode_rows(self.caches.len())),
            context: self.context,
        };
        self.planned.0 + self.planned.1 + Scratch::bytes(&shape)
    }

    /// Device memory in use now that was free before the model was loaded, as the backend
    /// reports it (`None` where it reports none, as on the CPU): what the plan is checked
    /// against on a GPU, allocation granularity and loaded code included.
    pub fn device_bytes_used(&self) -> Option<u64> {
        let (free, _) = self.backend.memory_info()?;
        Some(self.free_at_load?.saturating_sub(free))
    }

    /// A buffer of the model's own; `purpose` names it in an out-of-memory error.
    fn alloc(
        &mut self,
        scalar: Scalar,
        len: usize,
        purpose: &dyn Fn() -> String,
    ) -> Result<DeviceBuffer, RuntimeError> {
        let b = self
            .backend
            .alloc(scalar, len)
            .map_err(|e| e.for_purpose(purpose))?;
        self.device_bytes += b.size_bytes();
        self.peak_device_bytes = self.peak_device_bytes.max(self.device_bytes);
        Ok(b)
    }

    fn upload(&mut self, host: &Buffer, name: &str) -> Result<DeviceBuffer, RuntimeError> {
        let b = self.alloc(host.scalar(), host.len(), &|| format!("weight {name}"))?;
        self.backend.write(&b, host)?;
        Ok(b)
    }

    fn upload_norm(&mut self, g: &GgufFile, name: &str) -> Result<DeviceBuffer, LoadError> {
        let t = g.tensor(name).expect("checked by weights::check");
        let mut v = vec![0f32; t.dims.iter().product::<u64>() as usize];
        gguf::dequantize_row(t.ty, g.tensor_data(t), &mut v).map_err(|e| LoadError::Kernel {
            kernel: "load".into(),
            config: name.into(),
            message: e.to_string(),
        })?;
        Ok(self.upload(&convert(Buffer::F32(v), self.act.act), name)?)
    }

    fn upload_weight(&mut self, g: &GgufFile, name: &str) -> Result<Weight, LoadError> {
        let (ty, rows, cols) = self.weight_shape(g, name);
        if let Some(bytes) = self.file_bytes(g, name) {
            return self.upload_bytes(ty, rows, cols, &[bytes], name);
        }
        let host = self.host_weight(g, name);
        self.upload_host(ty, rows, cols, host, name)
    }

    /// Weight `name`'s bytes in the file where they are already its device type (an f16
    /// model with f16 activations): they go to the device as they are, from the mapped file,
    /// with no host copy ([`Backend::write_bytes`]).
    fn file_bytes<'g>(&self, g: &'g GgufFile, name: &str) -> Option<&'g [u8]> {
        let t = g.tensor(name).expect("checked by weights::check");
        let in_file = file_scalar(t.ty)?;
        match self.weight_shape(g, name).0 {
            WeightType::Dense(d) if d == in_file => Some(g.tensor_data(t)),
            _ => None,
        }
    }

    /// A dense weight of `rows` rows whose parts' bytes (in its device type) follow each other.
    fn upload_bytes(
        &mut self,
        ty: WeightType,
        rows: usize,
        cols: usize,
        parts: &[&[u8]],
        name: &str,
    ) -> Result<Weight, LoadError> {
        let WeightType::Dense(d) = ty else {
            unreachable!("only dense weights are uploaded as file bytes")
        };
        let buf = self.alloc(d, rows * cols, &|| format!("weight {name}"))?;
        let mut at = 0u64;
        for bytes in parts {
            self.backend.write_bytes(&buf, at, bytes)?;
            at += bytes.len() as u64;
        }
        Ok(Weight {
            ty,
            rows,
            cols,
            row0: 0,
            bufs: Arc::new(WeightBufs::Dense(buf)),
        })
    }

    /// The device type, rows and columns of weight `name`.
    fn weight_shape(&self, g: &GgufFile, name: &str) -> (WeightType, usize, usize) {
        let t = g.tensor(name).expect("checked by weights::check");
        let ty = WeightType::of(t.ty)
            .expect("checked by weights::check")
            .on_device(self.act.act);
        (ty, t.dims[1] as usize, t.dims[0] as usize)
    }

    /// Weight `name` as uploaded: its elements in the device type, or Q8_0 scales and quants.
    fn host_weight(&self, g: &GgufFile, name: &str) -> Vec<Buffer> {
        let t = g.tensor(name).expect("checked by weights::check");
        let bytes = g.tensor_data(t);
        match self.weight_shape(g, name).0 {
            WeightType::Q8_0 => {
                let (scales, quants) = greta_kernels::q8::repack_q8_0(bytes);
                vec![Buffer::F16(scales), Buffer::U32(quants)]
            }
            WeightType::Dense(d) => vec![convert(dense_buffer(t, bytes), d)],
        }
    }

    fn upload_host(
        &mut self,
        ty: WeightType,
        rows: usize,
        cols: usize,
        host: Vec<Buffer>,
        name: &str,
    ) -> Result<Weight, LoadError> {
        let mut host = host.into_iter();
        let mut next = || host.next().expect("one host buffer per device buffer");
        let bufs = match ty {
            WeightType::Q8_0 => WeightBufs::Q8 {
                scales: self.upload(&next(), name)?,
                quants: self.upload(&next(), name)?,
            },
            WeightType::Dense(_) => WeightBufs::Dense(self.upload(&next(), name)?),
        };
        Ok(Weight {
            ty,
            rows,
            cols,
            row0: 0,
            bufs: Arc::new(bufs),
        })
    }

    /// Uploads weights that multiply the same input as a [`Group`]: one matrix of their rows
    /// where they share a type and width and every part starts on a slice boundary, else each
    /// on its own.
    fn upload_group(&mut self, g: &GgufFile, names: &[String]) -> Result<Group, LoadError> {
        let shapes: Vec<_> = names.iter().map(|n| self.weight_shape(g, n)).collect();
        let (ty, _, cols) = shapes[0];
        let mut starts = Vec::new();
        let mut rows = 0;
        for &(_, r, _) in &shapes {
            starts.push(rows);
            rows += r;
        }
        let fusable = shapes.iter().all(|&(t, _, c)| t == ty && c == cols)
            && starts.iter().all(|&r0| rows_aligned(ty, r0, cols));
        if !fusable {
            let parts = names
                .iter()
                .map(|n| self.upload_weight(g, n))
                .collect::<Result<_, _>>()?;
            return Ok(Group { whole: None, parts });
        }
        let raw: Option<Vec<&[u8]>> = names.iter().map(|n| self.file_bytes(g, n)).collect();
        let whole = match raw {
            Some(parts) => self.upload_bytes(ty, rows, cols, &parts, &names.join(" + "))?,
            None => self.upload_group_host(g, names, ty, rows, cols)?,
        };
        let parts = shapes
            .iter()
            .zip(&starts)
            .map(|(&(_, r, _), &r0)| whole.part(r0, r))
            .collect();
        Ok(Group {
            whole: Some(whole),
            parts,
        })
    }

    /// A fused group's matrix made on the host (converted or repacked) and uploaded.
    fn upload_group_host(
        &mut self,
        g: &GgufFile,
        names: &[String],
        ty: WeightType,
        rows: usize,
        cols: usize,
    ) -> Result<Weight, LoadError> {
        let mut host: Vec<Buffer> = Vec::new();
        for n in names {
            let parts = self.host_weight(g, n);
            if host.is_empty() {
                host = parts;
            } else {
                for (all, part) in host.iter_mut().zip(&parts) {
                    all.extend_from(part);
                }
            }
        }
        self.upload_host(ty, rows, cols, host, &names.join(" + "))
    }

    /// Scratch for forward passes of up to `tokens` tokens (kept until a longer one comes).
    fn ensure_scratch(&mut self, tokens: usize) -> Result<(), RunError> {
        if self.scratch.as_ref().is_some_and(|s| s.tokens >= tokens) {
            return Ok(());
        }
        // The graphs name the old buffers: gone before they are.
        self.graphs.clear();
        if let Some(old) = self.scratch.take() {
            self.device_bytes -= old.bytes;
        }
        let target = self.backend.target();
        let shape = ScratchShape {
            cfg: &self.cfg,
            act: &self.act,
            target,
            tokens,
            context: self.context,
        };
        let need = Scratch::bytes(&shape);
        if let Some((free, _)) = self.backend.memory_info() {
            if need > free {
                return Err(RunError::Memory {
                    what: format!("activations of {tokens} tokens"),
                    message: format!("needs {} MiB, {} MiB free", mib(need), mib(free)),
                });
            }
        }
        let backend = self.backend.as_ref();
        let scratch = Scratch::plan(&shape, |ty, n| {
            backend
                .alloc(ty, n)
                .map_err(|e| e.for_purpose(|| format!("the activations of {tokens} tokens")))
        })?;
        self.device_bytes += scratch.bytes;
        self.peak_device_bytes = self.peak_device_bytes.max(self.device_bytes);
        self.scratch = Some(scratch);
        Ok(())
    }

    /// Times every launch from now on with device events (see [`super::profile`]).
    pub fn enable_profile(&mut self) {
        self.profile = Some(RefCell::new(Profile::default()));
    }

    /// The launches timed so far by kernel, or `None` when not profiling.
    pub fn profile(&self) -> Option<Vec<ProfileRow>> {
        self.profile.as_ref().map(|p| p.borrow().rows())
    }
}

/// Tracing ([`super::trace`]). (Its reads fail with a [`RuntimeError`], as every launch does.)
#[allow(clippy::result_large_err)]
impl Model {
    /// Puts the logits dump in place ([`TraceOptions::dump_logits`]) and returns its path and
    /// shape `[rows, vocab]`; `None` without a dump (or after it was finished). A model dropped
    /// without this leaves no file.
    pub fn finish_trace(&mut self) -> Result<Option<(PathBuf, [usize; 2])>, TraceError> {
        self.logit_dump.take().map(LogitDump::finish).transpose()
    }

    /// Prints `stage`'s line for `rows` of `buf` (rows of `width` elements), when tracing: an
    /// untraced pass pays this one branch.
    #[inline]
    fn trace<'b>(
        &self,
        stage: Stage,
        layer: Option<usize>,
        buf: impl Into<View<'b>>,
        rows: Rows<'_>,
        width: usize,
    ) -> Result<(), RuntimeError> {
        if !self.trace_stages {
            return Ok(());
        }
        self.trace_read(stage, layer, buf.into(), rows, width)
    }

    /// Reads the traced rows back (after the launches so far, on every backend) and prints
    /// their line.
    #[cold]
    fn trace_read(
        &self,
        stage: Stage,
        layer: Option<usize>,
        buf: View<'_>,
        rows: Rows<'_>,
        width: usize,
    ) -> Result<(), RuntimeError> {
        if let Rows::Each(segs) = rows {
            for seg in segs {
                self.trace_read(stage, layer, buf, Rows::One(seg), width)?;
            }
            return Ok(());
        }
        let (range, seqs) = rows.describe();
        let view = match rows {
            Rows::Cache(_) => buf,
            _ => buf.rows(range.start, range.len(), width),
        };
        let (dev, elems) = view.elements();
        let host = self.backend.read(dev)?;
        let content = Content::Stats(Stats::of(&host, elems));
        self.emit(stage, layer, range, &seqs, width, dev.scalar(), content);
        Ok(())
    }

    /// The line of a projection that [`Model::project_residual`] follows with its residual:
    /// its output in `tmp`, or (fused into the projection's epilogue) a line saying it is part
    /// of `into`'s.
    fn trace_projection(
        &self,
        stage: Stage,
        into: Stage,
        layer: usize,
        tmp: &DeviceBuffer,
        segs: &[Segment],
    ) -> Result<(), RuntimeError> {
        if !self.trace_stages {
            return Ok(());
        }
        let d = self.cfg.dim;
        if !self.outputs.residual.residual {
            return self.trace_read(stage, Some(layer), tmp.into(), Rows::All(segs), d);
        }
        let (range, seqs) = Rows::All(segs).describe();
        let content = Content::FusedInto(into);
        self.emit(stage, Some(layer), range, &seqs, d, self.act.act, content);
        Ok(())
    }

    /// The line of values already on the host (the logits).
    fn trace_host(&self, stage: Stage, values: &[f32], rows: Rows<'_>, width: usize) {
        if self.trace_stages {
            let (range, seqs) = rows.describe();
            let content = Content::Stats(Stats::of_f32(values));
            self.emit(stage, None, range, &seqs, width, Scalar::F32, content);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        stage: Stage,
        layer: Option<usize>,
        rows: Range<usize>,
        seqs: &[(usize, Range<usize>)],
        width: usize,
        dtype: Scalar,
        content: Content,
    ) {
        trace::emit(&Record {
            pass: self.passes - 1,
            stage,
            layer,
            rows,
            seqs,
            width,
            dtype,
            content,
        });
    }
}

impl Model {
    fn check_tokens(&self, tokens: &[u32], start: usize) -> Result<(), RunError> {
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= self.cfg.vocab) {
            return Err(RunError::TokenOutOfRange {
                id,
                vocab: self.cfg.vocab,
            });
        }
        if start + tokens.len() > self.context {
            return Err(RunError::ContextFull {
                start,
                end: start + tokens.len(),
                context: self.context,
            });
        }
        Ok(())
    }

    fn check_slot(&self, slot: usize) -> Result<(), RunError> {
        if slot >= self.caches.len() {
            return Err(RunError::Slot {
                slot,
                sequences: self.caches.len(),
            });
        }
        Ok(())
    }

    /// Runs `tokens` at positions `start..` of sequence 0 (the KV cache must hold positions
    /// `0..start`) and returns the logits of the last token.
    pub fn forward(&mut self, tokens: &[u32], start: usize) -> Result<Vec<f32>, RunError> {
        self.forward_in(0, tokens, start)
    }

    /// Like [`Model::forward`], in KV-cache slot `slot` (a prompt of one of several sequences).
    pub fn forward_in(
        &mut self,
        slot: usize,
        tokens: &[u32],
        start: usize,
    ) -> Result<Vec<f32>, RunError> {
        self.check_slot(slot)?;
        Ok(self
            .pass(slot, tokens, start, false)?
            .pop()
            .expect("at least one row of logits"))
    }

    /// Like [`Model::forward`], returning the logits of every token (for tests).
    pub fn forward_all(&mut self, tokens: &[u32], start: usize) -> Result<Vec<Vec<f32>>, RunError> {
        self.pass(0, tokens, start, true)
    }

    /// `tokens` of sequence `slot` from position `start`: one pass, or in kv-aligned mode
    /// ([`Model::set_kv_aligned`]) passes of up to [`GEMV_MAX_TOKENS`] one-token segments.
    /// Returns the logits of every token when `all`, else (at least) of the last.
    fn pass(
        &mut self,
        slot: usize,
        tokens: &[u32],
        start: usize,
        all: bool,
    ) -> Result<Vec<Vec<f32>>, RunError> {
        if !self.kv_aligned || tokens.len() <= 1 {
            let seg = Segment {
                index: 0,
                slot,
                row0: 0,
                tokens: tokens.len(),
                start,
            };
            return self.run(tokens, &[seg], all);
        }
        // Every row is checked before any pass writes the cache.
        self.check_tokens(tokens, start)?;
        let mut logits = Vec::with_capacity(if all { tokens.len() } else { 1 });
        for (i, chunk) in tokens.chunks(GEMV_MAX_TOKENS).enumerate() {
            let first = start + i * GEMV_MAX_TOKENS;
            let segments: Vec<Segment> = (0..chunk.len())
                .map(|row0| Segment {
                    index: row0,
                    slot,
                    row0,
                    tokens: 1,
                    start: first + row0,
                })
                .collect();
            let rows = self.run(chunk, &segments, false)?;
            if all {
                logits.extend(rows);
            } else {
                logits = rows;
            }
        }
        Ok(logits)
    }

    /// One decode step of several sequences at once, each in its own KV-cache slot (no slot
    /// twice), returning each step's logits in order.
    ///
    /// Batch-invariant: a sequence's logits are bit-identical to those of the same step
    /// decoded alone. The steps run [`GEMV_MAX_TOKENS`] at a time, so the projections run the
    /// same kernel family as for one token (GEMV with half activations, `matmul` with f32), and
    /// those kernels reduce each output row in an order that does not depend on how many rows
    /// share the launch (every row's dot products stride over `K` the same way, and `m_tile`
    /// only says how many rows a lane carries); norms and SwiGLU are per row; RoPE, the cache
    /// write and attention run per sequence with the same split of the cache as alone.
    pub fn decode(&mut self, steps: &[DecodeStep]) -> Result<Vec<Vec<f32>>, RunError> {
        if steps.is_empty() {
            return Err(RunError::EmptyPrompt);
        }
        for (i, step) in steps.iter().enumerate() {
            self.check_slot(step.slot)?;
            if steps[..i].iter().any(|s| s.slot == step.slot) {
                return Err(RunError::SlotTwice { slot: step.slot });
            }
        }
        let mut logits = Vec::with_capacity(steps.len());
        for chunk in steps.chunks(GEMV_MAX_TOKENS) {
            let tokens: Vec<u32> = chunk.iter().map(|s| s.token).collect();
            let segments: Vec<Segment> = chunk
                .iter()
                .enumerate()
                .map(|(row0, s)| Segment {
                    index: row0,
                    slot: s.slot,
                    row0,
                    tokens: 1,
                    start: s.pos,
                })
                .collect();
            logits.extend(self.run(&tokens, &segments, false)?);
        }
        Ok(logits)
    }

    /// A forward pass of `tokens`, cut into `segments` (consecutive, covering every token);
    /// returns the logits of every token when `all` (one segment only), else of each segment's
    /// last token.
    fn run(
        &mut self,
        tokens: &[u32],
        segments: &[Segment],
        all: bool,
    ) -> Result<Vec<Vec<f32>>, RunError> {
        if tokens.is_empty() {
            return Err(RunError::EmptyPrompt);
        }
        for seg in segments {
            self.check_tokens(&tokens[seg.row0..seg.row0 + seg.tokens], seg.start)?;
        }
        let t = tokens.len();
        debug_assert_eq!(segments.iter().map(|g| g.tokens).sum::<usize>(), t);
        debug_assert!(!all || segments.len() == 1);
        self.passes += 1;
        self.phase = if segments.iter().all(|g| g.tokens == 1) {
            Phase::Decode
        } else {
            Phase::Prefill
        };
        // At least a batched decode step's scratch, as planned, so that it is allocated once.
        self.ensure_scratch(t.max(super::memory::decode_rows(self.caches.len())))?;
        self.write_inputs(tokens, segments)?;
        let logits = if all {
            self.launch_all_logits(segments, t)?
        } else {
            match self.graph_key(segments, all) {
                Some(key) => self.replay(key, segments, t)?,
                None => self.launch_pass(segments, t)?,
            }
            let s = self.scratch.as_ref().expect("ensured above");
            self.backend.synchronize()?;
            self.backend.read(&s.logits)?
        };
        let logits = match logits {
            Buffer::F32(v) => v,
            other => {
                return Err(RunError::Memory {
                    what: "logits".into(),
                    message: format!("read back as {}", other.scalar()),
                })
            }
        };
        let every = Rows::All(segments);
        let (rows, which) = if all {
            (t, every)
        } else {
            (segments.len(), Rows::Last(segments))
        };
        let vocab = self.cfg.vocab;
        let logits = &logits[..rows * vocab];
        self.trace_host(Stage::Logits, logits, which, vocab);
        let logits: Vec<Vec<f32>> = logits.chunks(vocab).map(<[f32]>::to_vec).collect();
        if let Some(dump) = &mut self.logit_dump {
            dump.push(&logits)?;
        }
        Ok(logits)
    }

    /// The pass's host inputs in one copy ([`Inputs`]): token ids, each segment's first
    /// position and last row.
    fn write_inputs(&self, tokens: &[u32], segments: &[Segment]) -> Result<(), RuntimeError> {
        let s = self.scratch.as_ref().expect("ensured before");
        let layout = Inputs::new(s.tokens);
        let mut inputs = vec![0u32; layout.len];
        inputs[layout.ids..layout.ids + tokens.len()].copy_from_slice(tokens);
        for g in segments {
            inputs[layout.pos + POS_STRIDE * g.index] = g.start as u32;
            inputs[layout.last + g.index] = (g.row0 + g.tokens - 1) as u32;
        }
        self.backend.write(&s.inputs, &Buffer::U32(inputs))
    }

    /// The graph a pass of `segments` replays, if it is one: a decode step (one-token
    /// segments, last rows' logits) with graphs on, on a backend that has them, with the fused
    /// attention (the reference's launches depend on the length), neither traced nor profiled.
    fn graph_key(&self, segments: &[Segment], all: bool) -> Option<GraphKey> {
        let replayable = self.use_graphs
            && !all
            && self.backend.has_graphs()
            && !self.trace_stages
            && self.profile.is_none()
            && self.act.attention != Attention::V1
            && segments.iter().all(|g| g.tokens == 1);
        replayable.then(|| GraphKey {
            steps: segments
                .iter()
                .map(|g| (g.slot, split_keys(g.start + 1, self.context)))
                .collect(),
        })
    }

    /// Replays the graph of `key`, capturing it first if this is its first step.
    fn replay(&mut self, key: GraphKey, segments: &[Segment], t: usize) -> Result<(), RunError> {
        if !self.graphs.contains_key(&key) {
            if self.graphs.len() >= MAX_GRAPHS {
                self.graphs.clear();
            }
            let graph = self
                .backend
                .capture(&mut || self.launch_pass(segments, t))?;
            self.graphs.insert(key.clone(), graph);
        }
        let graph = &self.graphs[&key];
        Ok(self.backend.replay(graph)?)
    }

    /// Every launch of a pass from the embedding to the logits of each segment's last token in
    /// `s.logits`: what a decode graph holds.
    fn launch_pass(&self, segments: &[Segment], t: usize) -> Result<(), RuntimeError> {
        let s = self.scratch.as_ref().expect("ensured before");
        let d = self.cfg.dim;
        let x = self.launch_layers(s, segments, t)?;
        let rows = segments.len();
        let layout = Inputs::new(s.tokens);
        let last = View::part(&s.inputs, layout.last, rows);
        self.gather(&self.act.gather, x, last, &s.last, rows, d)?;
        let output = self.output.as_ref().unwrap_or(&self.embd);
        let o = &self.outputs;
        let norm = Operand::Norm {
            h: &s.last,
            g: &self.output_norm,
            into: &s.last_n,
        };
        let norm = self.settle(norm, output, rows, o.logits)?;
        self.trace(Stage::FinalNorm, None, &s.last_n, Rows::Last(segments), d)?;
        self.project(norm, output, &s.logits, rows, o.logits, None)
    }

    /// A pass returning every token's logits (one segment): its launches, then the logits
    /// read back.
    fn launch_all_logits(&self, segments: &[Segment], t: usize) -> Result<Buffer, RunError> {
        let s = self.scratch.as_ref().expect("ensured before");
        let c = &self.cfg;
        let x = self.launch_layers(s, segments, t)?;
        let out = self
            .backend
            .alloc(Scalar::F32, t * c.vocab)
            .map_err(|e| e.for_purpose(|| format!("the logits of {t} tokens")))?;
        let output = self.output.as_ref().unwrap_or(&self.embd);
        // Normalised as a decode step's last rows are (fused into the logits' GEMV where it
        // is one), so that kv-aligned passes stay bit-identical to decoding.
        let norm = Operand::Norm {
            h: x,
            g: &self.output_norm,
            into: &s.xn,
        };
        let logits = self.outputs.logits;
        let norm = self.settle(norm, output, t, logits)?;
        self.trace(Stage::FinalNorm, None, &s.xn, Rows::All(segments), c.dim)?;
        self.project(norm, output, &out, t, logits, None)?;
        self.backend.synchronize()?;
        Ok(self.backend.read(&out)?)
    }

    /// The embedding and every layer of a pass of `t` tokens cut into `segments`; returns the
    /// buffer holding the last layer's residual stream.
    fn launch_layers<'s>(
        &self,
        s: &'s Scratch,
        segments: &[Segment],
        t: usize,
    ) -> Result<&'s DeviceBuffer, RuntimeError> {
        let c = &self.cfg;
        let (d, f) = (c.dim, c.ffn_dim);
        let (qd, kvd) = (c.q_dim(), c.kv_dim());
        let act = self.act.act;
        let embd = &embedding_for(self.embd.ty, act);
        let ids = View::part(&s.inputs, Inputs::new(s.tokens).ids, t);
        self.gather(embd, self.embd.args(), ids, &s.x, t, d)?;
        // Every stage's line ([`super::trace`]) reads its output back when tracing.
        let every = Rows::All(segments);
        self.trace(Stage::Embedding, None, &s.x, every, d)?;

        let o = &self.outputs;
        let (mut x, mut x2) = (&s.x, &s.x2);
        for (l, layer) in self.layers.iter().enumerate() {
            let at = Some(l);
            // RMSNorm fused into the projections' GEMVs where they fuse it, else launched
            // ([`Model::settle`]).
            let norm = Operand::Norm {
                h: x,
                g: &layer.attn_norm,
                into: &s.xn,
            };
            let xn = self.settle(norm, layer.qkv.first(), t, o.qkv)?;
            self.trace(Stage::AttnNorm, at, &s.xn, every, d)?;
            let qkv = self.project_group(xn, &layer.qkv, &[&s.q, &s.k, &s.v], &s.qkv, t, o.qkv)?;
            let (q, k, v) = (qkv[0], qkv[1], qkv[2]);
            self.trace(Stage::Q, at, q, every, qd)?;
            self.trace(Stage::K, at, k, every, kvd)?;
            self.trace(Stage::V, at, v, every, kvd)?;
            for seg in segments {
                self.rope_cache(s, l, seg, [q, k, v])?;
                self.trace(Stage::RopeQ, at, &s.qr, Rows::One(seg), qd)?;
                // The rotated keys are the cache's rows of this segment.
                let cache =
                    View::from(&self.caches[seg.slot].k[l]).rows(seg.start, seg.tokens, kvd);
                self.trace(Stage::RopeK, at, cache, Rows::Cache(seg), kvd)?;
            }
            let att = self.attention(s, l, segments)?;
            self.trace(Stage::Attention, at, att, Rows::Each(segments), qd)?;
            self.project_residual(Operand::from(att), &layer.o, x, x2, &s.o, t)?;
            self.trace_projection(Stage::Wo, Stage::AttnResidual, l, &s.o, segments)?;
            std::mem::swap(&mut x, &mut x2);
            self.trace(Stage::AttnResidual, at, x, every, d)?;
            let norm = Operand::Norm {
                h: x,
                g: &layer.ffn_norm,
                into: &s.xn,
            };
            let xn = self.settle(norm, layer.gate_up.first(), t, o.plain)?;
            self.trace(Stage::FfnNorm, at, &s.xn, every, d)?;
            // SwiGLU in the gate/up GEMV's epilogue where it fuses it, else its own launch.
            let swiglu = self.swiglu_fuses(&layer.gate_up, t);
            if !swiglu || self.trace_stages {
                let gu = self.project_group(
                    xn,
                    &layer.gate_up,
                    &[&s.gate, &s.up],
                    &s.gate_up,
                    t,
                    o.plain,
                )?;
                self.trace(Stage::Gate, at, gu[0], every, f)?;
                self.trace(Stage::Up, at, gu[1], every, f)?;
                if !swiglu {
                    self.silu_mul(gu[0], gu[1], &s.h, t * f)?;
                }
            }
            if swiglu {
                self.project_swiglu(xn, &layer.gate_up, &s.h, t)?;
            }
            self.trace(Stage::SiluMul, at, &s.h, every, f)?;
            self.project_residual(Operand::from(&s.h), &layer.down, x, x2, &s.o, t)?;
            self.trace_projection(Stage::Down, Stage::FfnResidual, l, &s.o, segments)?;
            std::mem::swap(&mut x, &mut x2);
            self.trace(Stage::FfnResidual, at, x, every, d)?;
        }
        Ok(x)
    }
}

/// Which decode graph a step replays: each segment's slot and the keys its split is chosen
/// for ([`split_keys`]) — everything else a step launches is the same from step to step.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct GraphKey {
    steps: Vec<(usize, usize)>,
}

/// Graphs kept at once; past this many (batches of sequences at many depths) they are dropped
/// and captured again as steps come.
const MAX_GRAPHS: usize = 64;

/// The fusions a model makes unless told otherwise ([`Model::set_fusion`]).
/// None: on the H200 neither fusion beat the separate launches (BENCHMARKS.md: tuned tg128
/// 276.4 unfused, 275.7 with SwiGLU in the gate/up epilogue, 275.0 with RMSNorm in the GEMVs'
/// input, 252.2 with both at the plain winners; the fused GEMVs do more per weight loaded and
/// lose what the removed launches saved). `--fuse norm,glu` turns them on.
pub const DEFAULT_FUSION: &[Fusion] = &[];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgmlType;
    use greta_dsl::Target;
    use greta_runtime::cpu::CpuBackend;

    /// A synthesized tiny model with weights of `ty`, loaded on the CPU backend for `target`
    /// with 40 positions of context.
    pub(super) fn tiny(
        dir: &std::path::Path,
        ty: GgmlType,
        act: Scalar,
        attention: Attention,
        target: &'static Target,
    ) -> (GgufFile, Model, ModelOptions) {
        let g = crate::synth::tiny(dir, ty, 1).unwrap();
        let options = ModelOptions {
            context: 40,
            activations: Some(act),
            attention,
            sequences: 1,
            trace: TraceOptions::default(),
            tuning: None,
        };
        let backend = Box::new(CpuBackend::new(target));
        let model = Model::load(&g, backend, &|_| Ok(None), &options, &mut |_, _| {}).unwrap();
        (g, model, options)
    }

    /// Decode with RMSNorm and SwiGLU fused into the GEMVs gives the logits of launching them
    /// separately (up to the rounding of the rows to the activation type that the fusion
    /// saves), one token and several per step, on both wave sizes; and the fused kernels are
    /// what run: no decode step launches `rmsnorm` or `silu_mul` (the gate/up GEMV normalises
    /// its input and writes SwiGLU's output), and prefill still does.
    #[test]
    fn fused_decode_matches_separate_launches() {
        let dir = tempfile::tempdir().unwrap();
        for target in [&Target::SM_90, &Target::GFX942] {
            for act in [Scalar::F16, Scalar::BF16] {
                let run = |fusion: &[Fusion]| {
                    let (_, mut model, _) =
                        tiny(dir.path(), GgmlType::F16, act, Attention::V4, target);
                    model.set_fusion(fusion);
                    model.enable_profile();
                    let mut rows =
                        vec![model.forward(&[1, 5, 9, 3, 7, 2, 8, 4, 6, 11], 0).unwrap()];
                    rows.push(model.forward(&[12], 10).unwrap());
                    rows.push(model.forward(&[13, 14, 15], 11).unwrap());
                    rows.push(model.forward(&[16], 14).unwrap());
                    // Each launch's kernel and configuration (`name[k=v,...]`).
                    let kernels = |phase: Phase| -> Vec<String> {
                        let profile = model.profile().unwrap();
                        let rows = profile.iter().filter(|r| r.phase == phase);
                        rows.map(|r| r.kernel.clone()).collect()
                    };
                    (rows, kernels(Phase::Decode), kernels(Phase::Prefill))
                };
                let named = |launched: &[String], k: &str| {
                    launched.iter().any(|d| d.split('[').next() == Some(k))
                };
                let what = format!("{act} on {target}");
                let (fused, decode, prefill) = run(&[Fusion::Norm, Fusion::Glu]);
                assert!(named(&decode, "gemv_norm"), "{what}: {decode:?}");
                // The gate/up projection: its input normalised, SwiGLU in its epilogue.
                let gate_up = |d: &String| d.starts_with("gemv_norm") && d.contains("glu=true");
                assert!(decode.iter().any(gate_up), "{what}: {decode:?}");
                for k in ["rmsnorm", "silu_mul"] {
                    assert!(!named(&decode, k), "{what}: {k} in {decode:?}");
                    assert!(named(&prefill, k), "{what}: {k} in {prefill:?}");
                }
                let (separate, decode, _) = run(&[]);
                assert!(!named(&decode, "gemv_norm"), "{what}: {decode:?}");
                assert!(
                    !decode.iter().any(|d| d.contains("glu=true")),
                    "{what}: {decode:?}"
                );
                // (The prompt's logits too: its last row's norm is fused into the logits'
                // GEMV.)
                for (f, s) in fused.iter().zip(&separate) {
                    let scale = s.iter().fold(0f32, |m, x| m.max(x.abs()));
                    let worst = f.iter().zip(s).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                    let rel = if act == Scalar::F16 { 0.01 } else { 0.05 };
                    assert!(
                        worst <= rel * scale,
                        "{what}: {worst} against logits up to {scale}"
                    );
                }
            }
        }
    }

    /// The memory plan that admits a model is what loading it and a decode step allocate, to
    /// the byte: weights, KV cache and the one list of scratch buffers; a prompt then takes the
    /// scratch of its length. (The passes also run each projection kernel on Q8_0 weights.)
    #[test]
    fn the_memory_plan_is_what_the_model_allocates() {
        let dir = tempfile::tempdir().unwrap();
        let (gfx942, sm_90) = (&Target::GFX942, &Target::SM_90);
        let cases = [
            (GgmlType::F16, Scalar::F16, Attention::V2, gfx942),
            (GgmlType::Q8_0, Scalar::BF16, Attention::V1, gfx942),
            (GgmlType::Q8_0, Scalar::F16, Attention::V4, sm_90),
            (GgmlType::Q8_0, Scalar::F32, Attention::V2, gfx942),
            (GgmlType::F32, Scalar::F32, Attention::V1, sm_90),
        ];
        for (ty, act, attention, target) in cases {
            let (g, mut model, options) = tiny(dir.path(), ty, act, attention, target);
            model.forward(&[1], 0).unwrap();
            let plan = MemoryPlan::new(&g, &model.cfg, &model.act, target, options.context, 1);
            let what = format!("{} weights, {act}, {attention} on {target}", ty.name());
            assert_eq!(model.peak_device_bytes(), plan.total(), "{what}");
            // A prompt (the GEMM path) replaces the scratch with a larger one.
            let prompt: Vec<u32> = (2..14).collect();
            model.forward(&prompt, 1).unwrap();
            let shape = ScratchShape {
                cfg: &model.cfg,
                act: &model.act,
                target,
                tokens: prompt.len(),
                context: options.context,
            };
            let larger = plan.weights + plan.kv_cache + Scratch::bytes(&shape);
            assert_eq!(model.peak_device_bytes(), larger, "{what}");
        }
    }

    /// With several sequences the plan counts a KV cache per sequence and a decode step's
    /// scratch for all of them (up to one launch's rows): what loading and a batched decode
    /// step allocate, to the byte.
    #[test]
    fn the_memory_plan_counts_every_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let g = crate::synth::tiny(dir.path(), GgmlType::F16, 1).unwrap();
        for sequences in [1, 3, 8, 12] {
            let options = ModelOptions {
                context: 24,
                activations: Some(Scalar::F16),
                attention: Attention::V4,
                sequences,
                trace: TraceOptions::default(),
                tuning: None,
            };
            let backend = Box::new(CpuBackend::new(&Target::SM_90));
            let mut model =
                Model::load(&g, backend, &|_| Ok(None), &options, &mut |_, _| {}).unwrap();
            let steps: Vec<DecodeStep> = (0..sequences)
                .map(|slot| DecodeStep {
                    slot,
                    token: 1 + slot as u32,
                    pos: 0,
                })
                .collect();
            model.decode(&steps).unwrap();
            let plan = MemoryPlan::new(&g, &model.cfg, &model.act, &Target::SM_90, 24, sequences);
            assert_eq!(
                model.peak_device_bytes(),
                plan.total(),
                "{sequences} sequences"
            );
            assert_eq!(
                model.planned_bytes(1),
                plan.total(),
                "{sequences} sequences"
            );
            let one = MemoryPlan::new(&g, &model.cfg, &model.act, &Target::SM_90, 24, 1);
            assert_eq!(plan.kv_cache, one.kv_cache * sequences as u64);
        }
    }

    /// Tracing reads buffers back and changes nothing: a prompt, a decode step and a batched
    /// step of two sequences give bit-identical logits traced and untraced (f32 activations,
    /// and f16 ones whose residuals are fused), and the dump holds every row of logits the
    /// passes returned, in order.
    #[test]
    fn a_trace_changes_no_logits_and_the_dump_holds_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let g = crate::synth::tiny(dir.path(), GgmlType::F16, 1).unwrap();
        for act in [Scalar::F32, Scalar::F16] {
            let dump = dir.path().join(format!("logits-{act}.npy"));
            let passes = |trace: TraceOptions| {
                let options = ModelOptions {
                    context: 40,
                    activations: Some(act),
                    attention: Attention::V4,
                    sequences: 2,
                    trace,
                    tuning: None,
                };
                let backend = Box::new(CpuBackend::new(&Target::SM_90));
                let mut model =
                    Model::load(&g, backend, &|_| Ok(None), &options, &mut |_, _| {}).unwrap();
                // With the fusions on, the traced rows are computed beside the fused GEMVs.
                model.set_fusion(&[Fusion::Norm, Fusion::Glu]);
                let mut rows = vec![model.forward_in(0, &[1, 5, 9, 3], 0).unwrap()];
                rows.push(model.forward_in(1, &[2, 7], 0).unwrap());
                rows.push(model.forward(&[4], 4).unwrap());
                let steps = [
                    DecodeStep {
                        slot: 0,
                        token: 6,
                        pos: 5,
                    },
                    DecodeStep {
                        slot: 1,
                        token: 8,
                        pos: 2,
                    },
                ];
                rows.extend(model.decode(&steps).unwrap());
                (rows, model.finish_trace().unwrap())
            };
            let (plain, none) = passes(TraceOptions::default());
            assert_eq!(none, None);
            let (traced, written) = passes(TraceOptions {
                stages: true,
                dump_logits: Some(dump.clone()),
            });
            let bits = |rows: &[Vec<f32>]| -> Vec<u32> {
                rows.iter().flatten().map(|x| x.to_bits()).collect()
            };
            assert_eq!(bits(&plain), bits(&traced), "{act}");
            let vocab = plain[0].len();
            assert_eq!(written, Some((dump.clone(), [5, vocab])));
            let bytes = std::fs::read(&dump).unwrap();
            let dumped: Vec<u32> = bytes[trace::npy::HEADER_LEN..]
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            assert_eq!(dumped, bits(&plain), "{act}");
        }
    }

    /// Decode steps replayed from captured graphs give the logits of launching every kernel
    /// again, to the bit: one sequence across a change of the cache's split (a graph per
    /// split), a batched step of two sequences, and a prompt between them (which is not
    /// replayed and replaces no graph it does not have to).
    #[test]
    fn replayed_decode_steps_are_bit_identical_to_launched_ones() {
        let dir = tempfile::tempdir().unwrap();
        let g = crate::synth::tiny(dir.path(), GgmlType::F16, 1).unwrap();
        let prompt: Vec<u32> = (0..250).map(|i| 1 + (i * 7) % 60).collect();
        let run = |graphs: bool| {
            let options = ModelOptions {
                context: 270,
                activations: Some(Scalar::F16),
                attention: Attention::V4,
                sequences: 2,
                trace: TraceOptions::default(),
                tuning: None,
            };
            let backend = Box::new(CpuBackend::new(&Target::SM_90));
            let mut model =
                Model::load(&g, backend, &|_| Ok(None), &options, &mut |_, _| {}).unwrap();
            model.set_graphs(graphs);
            // The fused GEMVs replay like the rest.
            model.set_fusion(&[Fusion::Norm, Fusion::Glu]);
            let mut rows = vec![model.forward(&prompt, 0).unwrap()];
            // Positions 250..262 cross the split's change at 256 keys.
            for pos in 250..262 {
                let token = 1 + (pos as u32 * 13) % 60;
                rows.push(model.forward(&[token], pos).unwrap());
            }
            rows.push(model.forward_in(1, &[3, 9, 4], 0).unwrap());
            for pos in 0..3 {
                let steps = [
                    DecodeStep {
                        slot: 0,
                        token: 5 + pos as u32,
                        pos: 262 + pos,
                    },
                    DecodeStep {
                        slot: 1,
                        token: 7 + pos as u32,
                        pos: 3 + pos,
                    },
                ];
                rows.extend(model.decode(&steps).unwrap());
            }
            (rows, model.graphs_captured())
        };
        let (launched, none) = run(false);
        let (replayed, graphs) = run(true);
        assert_eq!(none, 0);
        // One sequence at two splits, and the batched step's pair.
        assert_eq!(graphs, 3);
        let bits = |rows: &[Vec<f32>]| -> Vec<u32> {
            rows.iter().flatten().map(|x| x.to_bits()).collect()
        };
        assert_eq!(bits(&launched), bits(&replayed));
    }

    /// Where a fused group's parts may start: 16 bytes into every buffer of the weight.
    #[test]
    fn parts_start_on_slice_boundaries() {
        let f16_ = WeightType::Dense(Scalar::F16);
        assert!(rows_aligned(f16_, 4096, 4096));
        assert!(rows_aligned(f16_, 1, 8));
        assert!(!rows_aligned(f16_, 1, 4));
        assert!(rows_aligned(WeightType::Dense(Scalar::F32), 1, 4));
        // Q8_0: the quants (a byte each) and the scales (2 bytes per 32) must both align.
        assert!(rows_aligned(WeightType::Q8_0, 1, 256));
        assert!(!rows_aligned(WeightType::Q8_0, 1, 128));
        assert!(rows_aligned(WeightType::Q8_0, 2, 128));
    }
}
