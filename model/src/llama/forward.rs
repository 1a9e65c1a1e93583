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

use super::config::LlamaConfig;
use super::kernels::{
    default_activations, embedding_for, projection, split_k, Activations, Attention, Output,
    Outputs, Planned, WeightType,
};
use super::memory::{MemoryPlan, Scratch, ScratchShape};
use super::profile::{Phase, Profile, ProfileRow};
use super::{weights, LoadError, RunError};
use crate::gguf::{self, GgufFile, TensorInfo};
use greta_dsl::interp::{Buffer, LaunchDims};
use greta_dsl::ir::{Const, Scalar};
use greta_runtime::check::SLICE_ALIGN;
use greta_runtime::{Backend, CodeObject, DeviceBuffer, KernelArg, LoadedKernel, RuntimeError};
use half::{bf16, f16};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

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

    /// The kernel arguments of its buffers: the whole buffers, or the slices of its rows.
    fn args<'w>(&'w self) -> Vec<KernelArg<'w>> {
        let elems = self.row0 * self.cols;
        let n = self.rows * self.cols;
        let slice = |buffer: &'w DeviceBuffer, per: usize| {
            if buffer.len() == n / per {
                KernelArg::Buffer(buffer)
            } else {
                KernelArg::Slice {
                    buffer,
                    offset: elems / per,
                    len: n / per,
                }
            }
        };
        match &*self.bufs {
            WeightBufs::Dense(b) => vec![slice(b, 1)],
            // Q8_0: a scale per 32 weights, a word per 4 quants.
            WeightBufs::Q8 { scales, quants } => vec![slice(scales, 32), slice(quants, 4)],
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

enum WeightBufs {
    Dense(DeviceBuffer),
    Q8 {
        scales: DeviceBuffer,
        quants: DeviceBuffer,
    },
}

/// A matrix a gather reads rows of: dense, or Q8_0 scales and quants.
#[derive(Clone, Copy)]
enum Table<'a> {
    Dense(&'a DeviceBuffer),
    Q8 {
        scales: &'a DeviceBuffer,
        quants: &'a DeviceBuffer,
    },
}

impl WeightBufs {
    fn table(&self) -> Table<'_> {
        match self {
            WeightBufs::Dense(b) => Table::Dense(b),
            WeightBufs::Q8 { scales, quants } => Table::Q8 { scales, quants },
        }
    }
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

/// A buffer or a part of one, as a kernel reads it (a fused projection's queries, keys and
/// values are parts of its output).
#[derive(Clone, Copy)]
struct View<'a> {
    buf: &'a DeviceBuffer,
    part: Option<(usize, usize)>,
}

impl<'a> View<'a> {
    fn part(buf: &'a DeviceBuffer, offset: usize, len: usize) -> View<'a> {
        View {
            buf,
            part: Some((offset, len)),
        }
    }

    /// The argument for a launch that reads or writes its first `need` elements.
    fn arg(self, need: usize) -> KernelArg<'a> {
        match self.part {
            None => KernelArg::BufferAtLeast(self.buf, need),
            Some((offset, len)) => KernelArg::Slice {
                buffer: self.buf,
                offset,
                len,
            },
        }
    }
}

impl<'a> From<&'a DeviceBuffer> for View<'a> {
    fn from(buf: &'a DeviceBuffer) -> View<'a> {
        View { buf, part: None }
    }
}

pub struct Model {
    cfg: LlamaConfig,
    backend: Box<dyn Backend>,
    context: usize,
    act: Activations,
    outputs: Outputs,
    kernels: HashMap<String, LoadedKernel>,
    embd: Weight,
    /// `None`: tied to the embeddings.
    output: Option<Weight>,
    output_norm: DeviceBuffer,
    layers: Vec<Layer>,
    k_cache: Vec<DeviceBuffer>,
    v_cache: Vec<DeviceBuffer>,
    scratch: Option<Scratch>,
    device_bytes: u64,
    peak_device_bytes: u64,
    /// Per-kernel launch times, when profiling ([`Model::enable_profile`]).
    profile: Option<RefCell<Profile>>,
    /// The phase of the forward pass running now (for the profile).
    phase: Phase,
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

/// Host data of a dense tensor in its own type.
fn dense_buffer(t: &TensorInfo, bytes: &[u8]) -> Buffer {
    match t.ty {
        gguf::GgmlType::F16 => Buffer::F16(
            bytes
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]))
                .collect(),
        ),
        gguf::GgmlType::BF16 => Buffer::BF16(
            bytes
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]))
                .collect(),
        ),
        _ => Buffer::F32(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
    }
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
        let act = Activations::new(&cfg, act_ty, options.attention, backend.target());
        let plan = MemoryPlan::new(g, &cfg, &act, backend.target(), context);
        if let Some((free, _total)) = backend.memory_info() {
            if plan.total() > free {
                return Err(LoadError::DeviceMemory {
                    need_mib: mib(plan.total()),
                    free_mib: mib(free),
                    device: backend.device_name(),
                    what: format!(
                        "weights {} MiB, KV cache for {context} tokens {} MiB",
                        mib(plan.weights),
                        mib(plan.kv_cache)
                    ),
                });
            }
        }

        let mut kernels = HashMap::new();
        for p in super::plan(g, &cfg, act_ty, options.attention, backend.target()) {
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
            cfg: cfg.clone(),
            context,
            act,
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
            k_cache: Vec::new(),
            v_cache: Vec::new(),
            scratch: None,
            device_bytes: 0,
            peak_device_bytes: 0,
            profile: None,
            phase: Phase::Decode,
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
        for _ in 0..cfg.n_layers {
            let k = model.alloc(act_ty, context * cfg.kv_dim())?;
            let v = model.alloc(act_ty, context * cfg.kv_dim())?;
            model.k_cache.push(k);
            model.v_cache.push(v);
        }
        Ok(model)
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    pub fn context(&self) -> usize {
        self.context
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
            let p = projection(q.ty, self.act.act, m, q.rows, out, target);
            format!("{what}: {p}")
        })
        .collect::<Vec<_>>()
        .join("; ")
    }

    /// The most device memory greta's own buffers have held at once.
    pub fn peak_device_bytes(&self) -> u64 {
        self.peak_device_bytes
    }

    fn alloc(&mut self, scalar: Scalar, len: usize) -> Result<DeviceBuffer, RuntimeError> {
        let b = self.backend.alloc(scalar, len)?;
        self.device_bytes += b.size_bytes();
        self.peak_device_bytes = self.peak_device_bytes.max(self.device_bytes);
        Ok(b)
    }

    fn upload(&mut self, host: &Buffer) -> Result<DeviceBuffer, RuntimeError> {
        let b = self.alloc(host.scalar(), host.len())?;
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
        Ok(self.upload(&convert(Buffer::F32(v), self.act.act))?)
    }

    fn upload_weight(&mut self, g: &GgufFile, name: &str) -> Result<Weight, LoadError> {
        let (ty, rows, cols) = self.weight_shape(g, name);
        let host = self.host_weight(g, name);
        self.upload_host(ty, rows, cols, host)
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
    ) -> Result<Weight, LoadError> {
        let mut host = host.into_iter();
        let mut next = || host.next().expect("one host buffer per device buffer");
        let bufs = match ty {
            WeightType::Q8_0 => WeightBufs::Q8 {
                scales: self.upload(&next())?,
                quants: self.upload(&next())?,
            },
            WeightType::Dense(_) => WeightBufs::Dense(self.upload(&next())?),
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
        let whole = self.upload_host(ty, rows, cols, host)?;
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

    /// Scratch for forward passes of up to `tokens` tokens (kept until a longer one comes).
    fn ensure_scratch(&mut self, tokens: usize) -> Result<(), RunError> {
        if self.scratch.as_ref().is_some_and(|s| s.tokens >= tokens) {
            return Ok(());
        }
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
        let scratch = Scratch::plan(&shape, |ty, n| backend.alloc(ty, n))?;
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

    fn kernel(&self, p: &Planned) -> &LoadedKernel {
        &self.kernels[&key(p)]
    }

    fn launch(
        &self,
        p: &Planned,
        dims: LaunchDims,
        args: &[KernelArg<'_>],
    ) -> Result<(), RuntimeError> {
        let kernel = self.kernel(p);
        let Some(profile) = &self.profile else {
            return self.backend.launch(kernel, dims, args);
        };
        let ms = self
            .backend
            .time(&mut || self.backend.launch(kernel, dims, args))?;
        profile.borrow_mut().record(self.phase, &key(p), ms);
        Ok(())
    }

    /// `y = x · Wᵀ (+ residual)` for `m` tokens, `y` of `out.ty`, on the kernel
    /// [`projection`] chooses (GEMV for decode, the matrix-core GEMM for prefill, `matmul` for
    /// f32 activations). Without a residual the kernel's `r` argument is `y` (never read).
    fn project(
        &self,
        x: &DeviceBuffer,
        w: &Weight,
        y: &DeviceBuffer,
        m: usize,
        out: Output,
        residual: Option<&DeviceBuffer>,
    ) -> Result<(), RuntimeError> {
        let target = self.backend.target();
        let p = projection(w.ty, self.act.act, m, w.rows, out, target);
        let (mu, nu) = (m as u32, w.rows as u32);
        let dims = match p.spec.name {
            "matmul" | "matmul_q8" => greta_kernels::matmul::launch(&p.config, mu, nu),
            "gemv" | "gemv_q8" => greta_kernels::gemv::launch(&p.config, target, nu),
            "gemm_wg" | "gemm_wg_q8" => greta_kernels::gemm_wg::launch(&p.config, target, mu, nu),
            _ => greta_kernels::gemm::launch(&p.config, target, mu, nu),
        };
        let mut args = vec![KernelArg::BufferAtLeast(x, m * w.cols)];
        args.extend(w.args());
        if !p.spec.name.starts_with("matmul") {
            args.push(KernelArg::BufferAtLeast(residual.unwrap_or(y), m * w.rows));
        }
        args.extend([
            KernelArg::BufferAtLeast(y, m * w.rows),
            KernelArg::Value(Const::U32(mu)),
            KernelArg::Value(Const::U32(nu)),
            KernelArg::Value(Const::U32(w.cols as u32)),
        ]);
        self.launch(&p, dims, &args)
    }

    /// `into = from + x · Wᵀ` (the residual stream after a projection): fused into the
    /// projection's epilogue with half activations, else a projection into `tmp` and an add.
    #[allow(clippy::too_many_arguments)]
    fn project_residual(
        &self,
        x: &DeviceBuffer,
        w: &Weight,
        from: &DeviceBuffer,
        into: &DeviceBuffer,
        tmp: &DeviceBuffer,
        m: usize,
    ) -> Result<(), RuntimeError> {
        let out = self.outputs.residual;
        if out.residual {
            self.project(x, w, into, m, out, Some(from))
        } else {
            self.project(x, w, tmp, m, out, None)?;
            self.elementwise(&self.act.add, from, tmp, into, m * w.rows)
        }
    }

    /// A group's projections of `x` for `m` tokens, returning where each part's output is: for
    /// one token with the group fused (and each part's output on a slice boundary), one
    /// projection into `fused`, its parts slices of it; else one projection per part into
    /// `separate`.
    fn project_group<'b>(
        &self,
        x: &DeviceBuffer,
        group: &Group,
        separate: &[&'b DeviceBuffer],
        fused: &'b DeviceBuffer,
        m: usize,
        out: Output,
    ) -> Result<Vec<View<'b>>, RuntimeError> {
        let mut starts = Vec::new();
        let mut end = 0;
        for p in &group.parts {
            starts.push(end);
            end += p.rows;
        }
        let aligned = starts
            .iter()
            .all(|&at| (at * out.ty.size_bytes() as usize) % SLICE_ALIGN as usize == 0);
        match &group.whole {
            Some(whole) if m == 1 && aligned => {
                self.project(x, whole, fused, 1, out, None)?;
                Ok(group
                    .parts
                    .iter()
                    .zip(starts)
                    .map(|(p, at)| View::part(fused, at, p.rows))
                    .collect())
            }
            _ => {
                for (p, y) in group.parts.iter().zip(separate) {
                    self.project(x, p, y, m, out, None)?;
                }
                Ok(separate.iter().map(|&b| View::from(b)).collect())
            }
        }
    }

    fn rmsnorm(
        &self,
        x: &DeviceBuffer,
        w: &DeviceBuffer,
        y: &DeviceBuffer,
        rows: usize,
    ) -> Result<(), RuntimeError> {
        let p = &self.act.rmsnorm;
        let d = self.cfg.dim;
        self.launch(
            p,
            greta_kernels::rmsnorm::launch(&p.config, rows as u32),
            &[
                KernelArg::BufferAtLeast(x, rows * d),
                KernelArg::BufferAtLeast(w, d),
                KernelArg::BufferAtLeast(y, rows * d),
                KernelArg::Value(Const::U32(d as u32)),
                KernelArg::Value(Const::F32(self.cfg.rms_eps)),
            ],
        )
    }

    fn elementwise<'b>(
        &self,
        p: &Planned,
        a: impl Into<View<'b>>,
        b: impl Into<View<'b>>,
        out: &DeviceBuffer,
        n: usize,
    ) -> Result<(), RuntimeError> {
        let dims = greta_kernels::add::launch(&p.config, n as u32);
        self.launch(
            p,
            dims,
            &[
                a.into().arg(n),
                b.into().arg(n),
                KernelArg::BufferAtLeast(out, n),
                KernelArg::Value(Const::U32(n as u32)),
            ],
        )
    }

    fn rope<'b>(
        &self,
        p: &Planned,
        x: impl Into<View<'b>>,
        y: &DeviceBuffer,
        tokens: usize,
        heads: usize,
        start: usize,
    ) -> Result<(), RuntimeError> {
        let c = &self.cfg;
        let n = tokens * heads * c.head_dim;
        self.launch(
            p,
            greta_kernels::rope::launch(&p.config, tokens as u32, heads as u32, c.head_dim as u32),
            &[
                x.into().arg(n),
                KernelArg::BufferAtLeast(y, n),
                KernelArg::Value(Const::U32(tokens as u32)),
                KernelArg::Value(Const::U32(heads as u32)),
                KernelArg::Value(Const::U32(c.head_dim as u32)),
                KernelArg::Value(Const::U32(c.rope_dims as u32)),
                KernelArg::Value(Const::U32(start as u32)),
                KernelArg::Value(Const::F32(c.rope_base)),
            ],
        )
    }

    fn append<'b>(
        &self,
        x: impl Into<View<'b>>,
        cache: &DeviceBuffer,
        tokens: usize,
        start: usize,
    ) -> Result<(), RuntimeError> {
        let p = &self.act.copy;
        let kv = self.cfg.kv_dim();
        let n = tokens * kv;
        self.launch(
            p,
            greta_kernels::copy::launch(&p.config, n as u32),
            &[
                x.into().arg(n),
                KernelArg::BufferAtLeast(cache, (start + tokens) * kv),
                KernelArg::Value(Const::U32(n as u32)),
                KernelArg::Value(Const::U32((start * kv) as u32)),
            ],
        )
    }

    /// Rows `ids` of an f32 `[_, cols]` matrix (or an embedding table) into `out`.
    fn gather(
        &self,
        p: &Planned,
        table: Table<'_>,
        ids: &DeviceBuffer,
        out: &DeviceBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<(), RuntimeError> {
        let dims = greta_kernels::embedding::launch(&p.config, rows as u32);
        let (ids, out, cols) = (
            KernelArg::BufferAtLeast(ids, rows),
            KernelArg::BufferAtLeast(out, rows * cols),
            KernelArg::Value(Const::U32(cols as u32)),
        );
        match table {
            Table::Dense(t) => self.launch(p, dims, &[KernelArg::Buffer(t), ids, out, cols]),
            Table::Q8 { scales, quants } => self.launch(
                p,
                dims,
                &[
                    KernelArg::Buffer(scales),
                    KernelArg::Buffer(quants),
                    ids,
                    out,
                    cols,
                ],
            ),
        }
    }

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

    /// Runs `tokens` at positions `start..` (the KV cache must hold positions `0..start`) and
    /// returns the logits of the last token.
    pub fn forward(&mut self, tokens: &[u32], start: usize) -> Result<Vec<f32>, RunError> {
        Ok(self
            .run(tokens, start, false)?
            .pop()
            .expect("at least one row of logits"))
    }

    /// Like [`Model::forward`], returning the logits of every token (for tests).
    pub fn forward_all(&mut self, tokens: &[u32], start: usize) -> Result<Vec<Vec<f32>>, RunError> {
        self.run(tokens, start, true)
    }

    fn run(&mut self, tokens: &[u32], start: usize, all: bool) -> Result<Vec<Vec<f32>>, RunError> {
        if tokens.is_empty() {
            return Err(RunError::EmptyPrompt);
        }
        self.check_tokens(tokens, start)?;
        let t = tokens.len();
        self.phase = if t > 1 { Phase::Prefill } else { Phase::Decode };
        self.ensure_scratch(t)?;
        let s = self.scratch.as_ref().expect("ensured above");
        let c = &self.cfg;
        let (d, f) = (c.dim, c.ffn_dim);

        let mut ids = vec![0u32; s.tokens];
        ids[..t].copy_from_slice(tokens);
        self.backend.write(&s.ids, &Buffer::U32(ids))?;
        let act = self.act.act;
        self.gather(
            &embedding_for(self.embd.ty, act),
            self.embd.bufs.table(),
            &s.ids,
            &s.x,
            t,
            d,
        )?;

        let o = &self.outputs;
        let (mut x, mut x2) = (&s.x, &s.x2);
        for (l, layer) in self.layers.iter().enumerate() {
            self.rmsnorm(x, &layer.attn_norm, &s.xn, t)?;
            let qkv =
                self.project_group(&s.xn, &layer.qkv, &[&s.q, &s.k, &s.v], &s.qkv, t, o.qkv)?;
            let (q, k, v) = (qkv[0], qkv[1], qkv[2]);
            self.rope(&self.act.rope_q, q, &s.qr, t, c.n_heads, start)?;
            self.rope(&self.act.rope_k, k, &s.kr, t, c.n_kv_heads, start)?;
            self.append(&s.kr, &self.k_cache[l], t, start)?;
            self.append(v, &self.v_cache[l], t, start)?;
            let att = self.attention(s, l, t, start)?;
            self.project_residual(att, &layer.o, x, x2, &s.o, t)?;
            std::mem::swap(&mut x, &mut x2);
            self.rmsnorm(x, &layer.ffn_norm, &s.xn, t)?;
            let gu = self.project_group(
                &s.xn,
                &layer.gate_up,
                &[&s.gate, &s.up],
                &s.gate_up,
                t,
                o.plain,
            )?;
            self.elementwise(&self.act.silu_mul, gu[0], gu[1], &s.h, t * f)?;
            self.project_residual(&s.h, &layer.down, x, x2, &s.o, t)?;
            std::mem::swap(&mut x, &mut x2);
        }

        let output = self.output.as_ref().unwrap_or(&self.embd);
        let rows = if all { t } else { 1 };
        let logits = if all {
            self.rmsnorm(x, &self.output_norm, &s.xn, t)?;
            let out = self.backend.alloc(Scalar::F32, t * c.vocab)?;
            self.project(&s.xn, output, &out, t, o.logits, None)?;
            self.backend.synchronize()?;
            self.backend.read(&out)?
        } else {
            self.backend
                .write(&s.last_id, &Buffer::U32(vec![(t - 1) as u32]))?;
            self.gather(&self.act.gather, Table::Dense(x), &s.last_id, &s.last, 1, d)?;
            self.rmsnorm(&s.last, &self.output_norm, &s.last_n, 1)?;
            self.project(&s.last_n, output, &s.logits, 1, o.logits, None)?;
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
        Ok(logits
            .chunks(c.vocab)
            .take(rows)
            .map(<[f32]>::to_vec)
            .collect())
    }

    /// The f32 attention output in the activation type: converted into `into` with half
    /// activations, else `att` itself.
    fn to_activations<'b>(
        &self,
        att: &'b DeviceBuffer,
        into: &'b DeviceBuffer,
        n: usize,
    ) -> Result<&'b DeviceBuffer, RuntimeError> {
        if self.act.act == Scalar::F32 {
            return Ok(att);
        }
        let p = &self.act.to_act;
        self.launch(
            p,
            greta_kernels::copy::launch(&p.config, n as u32),
            &[
                KernelArg::BufferAtLeast(att, n),
                KernelArg::BufferAtLeast(into, n),
                KernelArg::Value(Const::U32(n as u32)),
                KernelArg::Value(Const::U32(0)),
            ],
        )?;
        Ok(into)
    }

    /// Attention of the `t` new tokens' queries (`s.qr`) over cache positions `0..start + t` of
    /// `layer`; returns the buffer holding the output in the activation type.
    fn attention<'s>(
        &self,
        s: &'s Scratch,
        layer: usize,
        t: usize,
        start: usize,
    ) -> Result<&'s DeviceBuffer, RuntimeError> {
        let c = &self.cfg;
        // The output in the activation type: `att` itself for f32.
        let out = if self.act.act == Scalar::F32 {
            &s.att
        } else {
            &s.att_act
        };
        match self.act.attention {
            Attention::V1 => {
                self.attention_v1(s, layer, t, start)?;
                self.to_activations(&s.att, &s.att_act, t * c.q_dim())
            }
            Attention::V2 | Attention::V4 if t == 1 => {
                self.attention_split_k(s, layer, start, out)?;
                Ok(out)
            }
            Attention::V2 | Attention::V4 => {
                self.attention_prefill(s, layer, t, start, out)?;
                Ok(out)
            }
        }
    }

    /// The scalar arguments the fused kernels share: `tokens, heads, kv_heads, head_dim,
    /// start`.
    fn attention_shape(&self, t: usize, start: usize) -> [KernelArg<'static>; 5] {
        let c = &self.cfg;
        [t, c.n_heads, c.n_kv_heads, c.head_dim, start]
            .map(|v| KernelArg::Value(Const::U32(v as u32)))
    }

    /// `log2(e) / √head_dim`: the fused kernels' scores are base 2.
    fn scale_log2(&self) -> KernelArg<'static> {
        let scale = greta_kernels::flash::LOG2_E / (self.cfg.head_dim as f32).sqrt();
        KernelArg::Value(Const::F32(scale))
    }

    /// [`Attention::V2`] / [`Attention::V4`] over several tokens: `attn_flash` or `attn_mma`
    /// (the same arguments).
    fn attention_prefill(
        &self,
        s: &Scratch,
        layer: usize,
        t: usize,
        start: usize,
        out: &DeviceBuffer,
    ) -> Result<(), RuntimeError> {
        let c = &self.cfg;
        let (len, kv) = (start + t, c.kv_dim());
        let p = &self.act.attn_prefill;
        let (target, t32, h32) = (self.backend.target(), t as u32, c.n_heads as u32);
        let dims = match p.spec.name {
            "attn_mma" => greta_kernels::attn_mma::launch(&p.config, target, t32, h32),
            _ => greta_kernels::attn_flash::launch(&p.config, target, t32, h32),
        };
        let mut args = vec![
            KernelArg::BufferAtLeast(&s.qr, t * c.q_dim()),
            KernelArg::BufferAtLeast(&self.k_cache[layer], len * kv),
            KernelArg::BufferAtLeast(&self.v_cache[layer], len * kv),
            KernelArg::BufferAtLeast(out, t * c.q_dim()),
        ];
        args.extend(self.attention_shape(t, start));
        args.push(self.scale_log2());
        self.launch(p, dims, &args)
    }

    /// [`Attention::V2`] for one token: split-K `attn_decode` over stretches of the cache, then
    /// `attn_combine`.
    fn attention_split_k(
        &self,
        s: &Scratch,
        layer: usize,
        start: usize,
        out: &DeviceBuffer,
    ) -> Result<(), RuntimeError> {
        let c = &self.cfg;
        let (len, kv, h) = (start + 1, c.kv_dim(), c.n_heads);
        let target = self.backend.target();
        let (chunk, splits) = split_k(c, target, len);
        let width = c.head_dim + 2;
        let p = &self.act.attn_decode;
        let dims = greta_kernels::attn_decode::launch(&p.config, target, 1, h as u32, splits);
        let mut args = vec![
            KernelArg::BufferAtLeast(&s.qr, c.q_dim()),
            KernelArg::BufferAtLeast(&self.k_cache[layer], len * kv),
            KernelArg::BufferAtLeast(&self.v_cache[layer], len * kv),
            KernelArg::BufferAtLeast(&s.part, h * splits as usize * width),
        ];
        args.extend(self.attention_shape(1, start));
        args.extend([
            KernelArg::Value(Const::U32(chunk)),
            KernelArg::Value(Const::U32(splits)),
            self.scale_log2(),
        ]);
        self.launch(p, dims, &args)?;
        let p = &self.act.attn_combine;
        self.launch(
            p,
            greta_kernels::attn_decode::launch_combine(&p.config, h as u32),
            &[
                KernelArg::BufferAtLeast(&s.part, h * splits as usize * width),
                KernelArg::BufferAtLeast(out, c.q_dim()),
                KernelArg::Value(Const::U32(c.head_dim as u32)),
                KernelArg::Value(Const::U32(splits)),
            ],
        )
    }

    /// [`Attention::V1`]: scores and probabilities in memory, the f32 output into `s.att`.
    fn attention_v1(
        &self,
        s: &Scratch,
        layer: usize,
        t: usize,
        start: usize,
    ) -> Result<(), RuntimeError> {
        let c = &self.cfg;
        let len = start + t;
        let (h, hkv, hd) = (c.n_heads, c.n_kv_heads, c.head_dim);
        let scale = 1.0 / (hd as f32).sqrt();
        let p = &self.act.attn_scores;
        self.launch(
            p,
            greta_kernels::attn_scores::launch(&p.config, h as u32, t as u32, len as u32),
            &[
                KernelArg::BufferAtLeast(&s.qr, t * h * hd),
                KernelArg::BufferAtLeast(&self.k_cache[layer], len * hkv * hd),
                KernelArg::BufferAtLeast(&s.scores, h * t * len),
                KernelArg::Value(Const::U32(t as u32)),
                KernelArg::Value(Const::U32(h as u32)),
                KernelArg::Value(Const::U32(hkv as u32)),
                KernelArg::Value(Const::U32(hd as u32)),
                KernelArg::Value(Const::U32(start as u32)),
                KernelArg::Value(Const::U32(len as u32)),
                KernelArg::Value(Const::F32(scale)),
            ],
        )?;
        let p = &self.act.softmax;
        self.launch(
            p,
            greta_kernels::softmax::launch(&p.config, (h * t) as u32),
            &[
                KernelArg::BufferAtLeast(&s.scores, h * t * len),
                KernelArg::BufferAtLeast(&s.probs, h * t * len),
                KernelArg::Value(Const::U32(len as u32)),
            ],
        )?;
        let p = &self.act.attn_values;
        self.launch(
            p,
            greta_kernels::attn_values::launch(&p.config, t as u32, h as u32, hd as u32),
            &[
                KernelArg::BufferAtLeast(&s.probs, h * t * len),
                KernelArg::BufferAtLeast(&self.v_cache[layer], len * hkv * hd),
                KernelArg::BufferAtLeast(&s.att, t * h * hd),
                KernelArg::Value(Const::U32(t as u32)),
                KernelArg::Value(Const::U32(h as u32)),
                KernelArg::Value(Const::U32(hkv as u32)),
                KernelArg::Value(Const::U32(hd as u32)),
                KernelArg::Value(Const::U32(len as u32)),
            ],
        )
    }
}

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
        };
        let backend = Box::new(CpuBackend::new(target));
        let model = Model::load(&g, backend, &|_| Ok(None), &options, &mut |_, _| {}).unwrap();
        (g, model, options)
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
            let plan = MemoryPlan::new(&g, &model.cfg, &model.act, target, options.context);
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
