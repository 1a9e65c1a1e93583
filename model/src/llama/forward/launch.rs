//! The launches of the forward pass: a method per step, each naming its kernel's arguments in
//! the struct `#[kernel]` generated from the kernel's signature (`greta_dsl::launch`), so that
//! no argument list is spelt again here: a parameter a kernel gains or loses, or a value of the
//! wrong type, is a compile error at the struct below. Locals are named as the kernel's
//! parameters where that lets the struct take them by name. Launch dimensions come from each
//! kernel's module; a kernel chosen at run time (a projection's, the prefill attention's) is
//! matched to its struct by name, and [`Model::launch`] refuses a struct of another kernel.

use super::{Group, Model, Segment, Weight, WeightBufs};
use crate::llama::kernels::{
    fused, projection, projection_fused, split_k, split_keys, Attention, Fusion, Output, Planned,
};
use crate::llama::memory::{Inputs, Scratch, POS_STRIDE};
use greta_dsl::interp::LaunchDims;
use greta_dsl::ir::Scalar;
use greta_dsl::launch::KernelArgs;
use greta_kernels::add::AddArgs;
use greta_kernels::attn_decode::{AttnCombineArgs, AttnDecodeArgs};
use greta_kernels::attn_flash::AttnFlashArgs;
use greta_kernels::attn_mma::AttnMmaArgs;
use greta_kernels::attn_qlds::AttnQldsArgs;
use greta_kernels::attn_scores::AttnScoresArgs;
use greta_kernels::attn_values::AttnValuesArgs;
use greta_kernels::copy::CopyArgs;
use greta_kernels::embedding::EmbeddingArgs;
use greta_kernels::embedding_q8::EmbeddingQ8Args;
use greta_kernels::gemm::GemmArgs;
use greta_kernels::gemm_q8::GemmQ8Args;
use greta_kernels::gemm_wg::{GemmWgArgs, GemmWgQ8Args};
use greta_kernels::gemv::GemvArgs;
use greta_kernels::gemv_fused::GemvNormArgs;
use greta_kernels::gemv_q8::GemvQ8Args;
use greta_kernels::matmul::MatmulArgs;
use greta_kernels::matmul_q8::MatmulQ8Args;
use greta_kernels::rmsnorm::RmsnormArgs;
use greta_kernels::rope_cache::RopeCacheArgs;
use greta_kernels::silu_mul::SiluMulArgs;
use greta_kernels::softmax::SoftmaxArgs;
use greta_runtime::check::SLICE_ALIGN;
use greta_runtime::{DeviceBuffer, KernelArg, LoadedKernel, RuntimeError};

/// A buffer or a part of one, as a kernel reads it (a fused projection's queries, keys and
/// values are parts of its output).
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    buf: &'a DeviceBuffer,
    part: Option<(usize, usize)>,
}

impl<'a> View<'a> {
    pub(super) fn part(buf: &'a DeviceBuffer, offset: usize, len: usize) -> View<'a> {
        View {
            buf,
            part: Some((offset, len)),
        }
    }

    /// Rows `row0..row0 + rows` of this view read as a matrix of rows of `width` elements (a
    /// sequence's rows in a batch).
    pub(super) fn rows(self, row0: usize, rows: usize, width: usize) -> View<'a> {
        let base = self.part.map_or(0, |(offset, _)| offset);
        View::part(self.buf, base + row0 * width, rows * width)
    }

    /// The buffer and which of its elements this view covers.
    pub(super) fn elements(self) -> (&'a DeviceBuffer, std::ops::Range<usize>) {
        match self.part {
            Some((offset, len)) => (self.buf, offset..offset + len),
            None => (self.buf, 0..self.buf.len()),
        }
    }
}

impl<'a> From<&'a DeviceBuffer> for View<'a> {
    fn from(buf: &'a DeviceBuffer) -> View<'a> {
        View { buf, part: None }
    }
}

/// The argument for a launch that reads or writes the first `need` elements of `v` (a part is
/// passed as a slice of its own length).
fn at_least<'a>(v: impl Into<View<'a>>, need: usize) -> KernelArg<'a> {
    let v = v.into();
    match v.part {
        None => KernelArg::BufferAtLeast(v.buf, need),
        Some((offset, len)) => KernelArg::Slice {
            buffer: v.buf,
            offset,
            len,
        },
    }
}

/// What a projection multiplies: rows of activations, or what the rows are computed from — an
/// RMSNorm of the residual stream — where the projection's GEMV can compute them as it loads
/// them ([`greta_kernels::gemv_fused`]); elsewhere (prefill's GEMMs, f32 and Q8_0 projections)
/// [`Model::settle`] computes them into `into` first.
#[derive(Clone, Copy)]
pub(super) enum Operand<'a> {
    Rows(View<'a>),
    /// `h / rms(h) · g`, row by row.
    Norm {
        h: &'a DeviceBuffer,
        g: &'a DeviceBuffer,
        into: &'a DeviceBuffer,
    },
}

impl<'a> From<&'a DeviceBuffer> for Operand<'a> {
    fn from(b: &'a DeviceBuffer) -> Operand<'a> {
        Operand::Rows(View::from(b))
    }
}

impl Operand<'_> {
    fn is_norm(&self) -> bool {
        matches!(self, Operand::Norm { .. })
    }
}

/// A matrix as a kernel reads it: dense, or Q8_0 scales and quants.
#[derive(Clone, Copy)]
pub(super) enum Matrix<'a> {
    Dense(KernelArg<'a>),
    Q8 {
        scales: KernelArg<'a>,
        quants: KernelArg<'a>,
    },
}

impl<'a> From<&'a DeviceBuffer> for Matrix<'a> {
    fn from(b: &'a DeviceBuffer) -> Matrix<'a> {
        Matrix::Dense(KernelArg::Buffer(b))
    }
}

impl Weight {
    /// The kernel arguments of its buffers: the whole buffers, or the slices of its rows.
    pub(super) fn args<'w>(&'w self) -> Matrix<'w> {
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
            WeightBufs::Dense(b) => Matrix::Dense(slice(b, 1)),
            // Q8_0: a scale per 32 weights, a word per 4 quants.
            WeightBufs::Q8 { scales, quants } => Matrix::Q8 {
                scales: slice(scales, 32),
                quants: slice(quants, 4),
            },
        }
    }
}

impl Model {
    /// The loaded kernel of `p`: every kernel the forward pass launches is in the model's plan
    /// (`kernels::plan`), so a miss is greta's bug, reported as an error rather than a panic.
    fn kernel(&self, p: &Planned) -> Result<&LoadedKernel, RuntimeError> {
        self.kernels
            .get(&super::key(p))
            .ok_or_else(|| RuntimeError::Launch {
                kernel: p.spec.name.to_string(),
                message: format!(
                    "[{}] is not in the model's kernel plan (a greta bug)",
                    p.config
                ),
            })
    }

    /// Launches `p` with `args`, which must be its kernel's (timed when profiling).
    fn launch<'b, A: KernelArgs<KernelArg<'b>>>(
        &self,
        p: &Planned,
        dims: LaunchDims,
        args: A,
    ) -> Result<(), RuntimeError> {
        let kernel = self.kernel(p)?;
        if A::KERNEL != kernel.signature.name {
            return Err(RuntimeError::Launch {
                kernel: kernel.signature.name.clone(),
                message: format!("launched with the arguments of `{}`", A::KERNEL),
            });
        }
        let args = KernelArg::list(args);
        let Some(profile) = &self.profile else {
            return self.backend.launch(kernel, dims, &args);
        };
        let ms = self
            .backend
            .time(&mut || self.backend.launch(kernel, dims, &args))?;
        profile.borrow_mut().record(self.phase, &super::key(p), ms);
        Ok(())
    }

    /// The kernel of `y = x · Wᵀ` for `m` tokens writing `out` ([`projection`]).
    fn projection_for(&self, w: &Weight, m: usize, out: Output) -> Planned {
        let target = self.backend.target();
        projection(
            w.ty,
            self.act.act,
            m,
            w.rows,
            w.cols,
            out,
            target,
            &self.tuned,
        )
    }

    /// `x` as the projection of `m` tokens by `w` takes it: as it is where that projection
    /// fuses its computation (a GEMV with [`Fusion::Norm`] on), else its rows computed by their
    /// own launch into the operand's `into` (once for a group of projections).
    pub(super) fn settle<'a>(
        &self,
        x: Operand<'a>,
        w: &Weight,
        m: usize,
        out: Output,
    ) -> Result<Operand<'a>, RuntimeError> {
        let Operand::Norm { h, g, into } = x else {
            return Ok(x);
        };
        let fuses = self.fusion.contains(&Fusion::Norm)
            && fused(&self.projection_for(w, m, out), true, false).is_some();
        // Tracing reads the rows: computed for it too, and the projection still fused, so that
        // a trace changes no logits.
        if fuses && !self.trace_stages {
            return Ok(x);
        }
        self.rmsnorm(h, g, into, m)?;
        Ok(if fuses { x } else { Operand::from(into) })
    }

    /// Whether the gate/up projection of `m` tokens writes `silu(gate) · up` itself
    /// ([`Fusion::Glu`]): where the group is one matrix and its projection a GEMV.
    pub(super) fn swiglu_fuses(&self, group: &Group, m: usize) -> bool {
        let Some(whole) = &group.whole else {
            return false;
        };
        self.fusion.contains(&Fusion::Glu)
            && fused(
                &self.projection_for(whole, m, self.outputs.plain),
                false,
                true,
            )
            .is_some()
    }

    /// `y = silu(x · gateᵀ) · (x · upᵀ)` for `m` tokens in one GEMV over the group's whole
    /// matrix (its gate rows, then its up rows): see [`Model::swiglu_fuses`].
    pub(super) fn project_swiglu(
        &self,
        x: Operand<'_>,
        group: &Group,
        y: &DeviceBuffer,
        m: usize,
    ) -> Result<(), RuntimeError> {
        let Some(whole) = &group.whole else {
            return Err(RuntimeError::Launch {
                kernel: "gemv".into(),
                message: "the SwiGLU epilogue without the gate/up matrix (a greta bug)".into(),
            });
        };
        self.project_as(x, whole, y, m, self.outputs.plain, None, true)
    }

    /// `y = x · Wᵀ (+ residual)` for `m` tokens, `y` of `out.ty`, on the kernel
    /// [`projection`] chooses (GEMV for decode, the matrix-core GEMM for prefill, `matmul` for
    /// f32 activations), with `x`'s computation fused into a GEMV where [`Model::settle`] lets
    /// it. Without a residual the kernel's `r` argument is `y` (never read).
    pub(super) fn project(
        &self,
        x: Operand<'_>,
        w: &Weight,
        y: &DeviceBuffer,
        m: usize,
        out: Output,
        residual: Option<&DeviceBuffer>,
    ) -> Result<(), RuntimeError> {
        self.project_as(x, w, y, m, out, residual, false)
    }

    /// [`Model::project`], or with `glu` the SwiGLU epilogue: `w` holds the gate's rows then
    /// the up's, and `y` gets half as many outputs.
    #[allow(clippy::too_many_arguments)]
    fn project_as<'x>(
        &self,
        x: Operand<'x>,
        w: &Weight,
        y: &DeviceBuffer,
        m: usize,
        out: Output,
        residual: Option<&DeviceBuffer>,
        glu: bool,
    ) -> Result<(), RuntimeError> {
        use Matrix::Dense;
        let target = self.backend.target();
        let x = self.settle(x, w, m, out)?;
        let plain = self.projection_for(w, m, out);
        let fusion = (x.is_norm(), glu);
        let p = match fusion {
            (false, false) => plain,
            _ => projection_fused(
                w.ty,
                self.act.act,
                m,
                w.rows,
                w.cols,
                out,
                fusion,
                target,
                &self.tuned,
            )
            .ok_or_else(|| RuntimeError::Launch {
                kernel: plain.spec.name.into(),
                message: "a fusion on a kernel without it (a greta bug)".into(),
            })?,
        };
        let outputs = if glu { w.rows / 2 } else { w.rows };
        let (r, y) = (
            at_least(residual.unwrap_or(y), m * outputs),
            at_least(y, m * outputs),
        );
        let rows = |v: View<'x>| -> KernelArg<'x> { at_least(v, m * w.cols) };
        let (m, n, k) = (m as u32, outputs as u32, w.cols as u32);
        let dims = match p.spec.name {
            "matmul" | "matmul_q8" => greta_kernels::matmul::launch(&p.config, m, n),
            "gemv" | "gemv_q8" | "gemv_norm" => greta_kernels::gemv::launch(&p.config, target, n),
            "gemm_wg" | "gemm_wg_q8" => greta_kernels::gemm_wg::launch(&p.config, target, m, n),
            _ => greta_kernels::gemm::launch(&p.config, target, m, n),
        };
        let p = &p;
        // One arm per projection kernel, each with its own arguments.
        #[rustfmt::skip]
        let launched = match (p.spec.name, w.args(), x) {
            ("gemv_norm", Dense(w), Operand::Norm { h, g, .. }) => {
                let (h, g, eps) = (rows(View::from(h)), at_least(g, k as usize), self.cfg.rms_eps);
                self.launch(p, dims, GemvNormArgs { h, g, w, r, y, m, n, k, eps })
            }
            (_, _, Operand::Norm { .. }) => Err(RuntimeError::Launch {
                kernel: p.spec.name.into(),
                message: "an unfused input reached a projection (a greta bug)".into(),
            }),
            (name, w, Operand::Rows(x)) => self.project_rows(p, dims, name, w, rows(x), r, y, [m, n, k]),
        };
        launched
    }

    /// The launch of projection kernel `name` on plain rows `x`.
    #[allow(clippy::too_many_arguments)]
    fn project_rows(
        &self,
        p: &Planned,
        dims: LaunchDims,
        name: &str,
        w: Matrix<'_>,
        x: KernelArg<'_>,
        r: KernelArg<'_>,
        y: KernelArg<'_>,
        [m, n, k]: [u32; 3],
    ) -> Result<(), RuntimeError> {
        use Matrix::{Dense, Q8};
        #[rustfmt::skip]
        let launched = match (name, w) {
            ("matmul", Dense(w)) => self.launch(p, dims, MatmulArgs { x, w, y, m, n, k }),
            ("gemv", Dense(w)) => self.launch(p, dims, GemvArgs { x, w, r, y, m, n, k }),
            ("gemm", Dense(w)) => self.launch(p, dims, GemmArgs { x, w, r, y, m, n, k }),
            ("gemm_wg", Dense(w)) => self.launch(p, dims, GemmWgArgs { x, w, r, y, m, n, k }),
            ("matmul_q8", Q8 { scales, quants }) =>
                self.launch(p, dims, MatmulQ8Args { x, scales, quants, y, m, n, k }),
            ("gemv_q8", Q8 { scales, quants }) =>
                self.launch(p, dims, GemvQ8Args { x, scales, quants, r, y, m, n, k }),
            ("gemm_q8", Q8 { scales, quants }) =>
                self.launch(p, dims, GemmQ8Args { x, scales, quants, r, y, m, n, k }),
            ("gemm_wg_q8", Q8 { scales, quants }) =>
                self.launch(p, dims, GemmWgQ8Args { x, scales, quants, r, y, m, n, k }),
            (name, _) => Err(RuntimeError::Launch {
                kernel: name.into(),
                message: "not a projection kernel for these weights".into(),
            }),
        };
        launched
    }

    /// `into = from + x · Wᵀ` (the residual stream after a projection): fused into the
    /// projection's epilogue with half activations, else a projection into `tmp` and an add.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn project_residual(
        &self,
        x: Operand<'_>,
        w: &Weight,
        from: &DeviceBuffer,
        into: &DeviceBuffer,
        tmp: &DeviceBuffer,
        m: usize,
    ) -> Result<(), RuntimeError> {
        let out = self.outputs.residual;
        if out.residual {
            return self.project(x, w, into, m, out, Some(from));
        }
        self.project(x, w, tmp, m, out, None)?;
        let p = &self.act.add;
        let n = m * w.rows;
        let (a, b, out) = (at_least(from, n), at_least(tmp, n), at_least(into, n));
        let dims = greta_kernels::add::launch(&p.config, n as u32);
        let args = AddArgs {
            a,
            b,
            out,
            n: n as u32,
        };
        self.launch(p, dims, args)
    }

    /// A group's projections of `x` for `m` tokens, returning where each part's output is: for
    /// one token with the group fused (and each part's output on a slice boundary), one
    /// projection into `fused`, its parts slices of it; else one projection per part into
    /// `separate`.
    pub(super) fn project_group<'b>(
        &self,
        x: Operand<'_>,
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
                // Computed once for all the parts where they do not fuse it.
                let x = self.settle(x, &group.parts[0], m, out)?;
                for (p, y) in group.parts.iter().zip(separate) {
                    self.project(x, p, y, m, out, None)?;
                }
                Ok(separate.iter().map(|&b| View::from(b)).collect())
            }
        }
    }

    /// `y = x / rms(x) · w`, row by row, for `rows` rows of `dim`.
    pub(super) fn rmsnorm(
        &self,
        x: &DeviceBuffer,
        w: &DeviceBuffer,
        y: &DeviceBuffer,
        rows: usize,
    ) -> Result<(), RuntimeError> {
        let p = &self.act.rmsnorm;
        let d = self.cfg.dim;
        let (x, w, y) = (at_least(x, rows * d), at_least(w, d), at_least(y, rows * d));
        let (cols, eps) = (d as u32, self.cfg.rms_eps);
        let dims = greta_kernels::rmsnorm::launch(&p.config, rows as u32);
        self.launch(p, dims, RmsnormArgs { x, w, y, cols, eps })
    }

    /// `out = silu(gate) ∘ up` over `n` elements.
    pub(super) fn silu_mul(
        &self,
        gate: View<'_>,
        up: View<'_>,
        out: &DeviceBuffer,
        n: usize,
    ) -> Result<(), RuntimeError> {
        let p = &self.act.silu_mul;
        let (gate, up, out) = (at_least(gate, n), at_least(up, n), at_least(out, n));
        let dims = greta_kernels::silu_mul::launch(&p.config, n as u32);
        let args = SiluMulArgs {
            gate,
            up,
            out,
            n: n as u32,
        };
        self.launch(p, dims, args)
    }

    /// `n` f32 elements of `x` into `y` from element `dst_offset`, in `y`'s type.
    fn copy<'b>(
        &self,
        p: &Planned,
        x: impl Into<View<'b>>,
        y: &DeviceBuffer,
        n: usize,
        dst_offset: usize,
    ) -> Result<(), RuntimeError> {
        let (x, y) = (at_least(x, n), at_least(y, dst_offset + n));
        let (n, dst_offset) = (n as u32, dst_offset as u32);
        let dims = greta_kernels::copy::launch(&p.config, n);
        let args = CopyArgs {
            x,
            y,
            n,
            dst_offset,
        };
        self.launch(p, dims, args)
    }

    /// A segment's position as its launches read it: its slice of the pass's inputs (see
    /// [`Inputs`]), so that a replayed graph reads the step's position, not the captured one.
    pub(super) fn position<'s>(&self, s: &'s Scratch, seg: &Segment) -> KernelArg<'s> {
        KernelArg::Slice {
            buffer: &s.inputs,
            offset: Inputs::new(s.tokens).pos + POS_STRIDE * seg.index,
            len: 1,
        }
    }

    /// RoPE of a segment's queries (into `s.qr`) and keys, its keys and values (`q`, `k`, `v`:
    /// the whole pass's rows, as the projections wrote them) into its slot's cache of `layer`
    /// at its position.
    pub(super) fn rope_cache(
        &self,
        s: &Scratch,
        layer: usize,
        seg: &Segment,
        [q, k, v]: [View<'_>; 3],
    ) -> Result<(), RuntimeError> {
        let c = &self.cfg;
        let p = &self.act.rope_cache;
        let (t, qd, kvd) = (seg.tokens, c.q_dim(), c.kv_dim());
        let cache = &self.caches[seg.slot];
        let end = (seg.start + t) * kvd;
        let (tokens, heads, kv_heads) = (t as u32, c.n_heads as u32, c.n_kv_heads as u32);
        let head_dim = c.head_dim as u32;
        let dims = greta_kernels::rope_cache::launch(&p.config, tokens, heads, kv_heads, head_dim);
        let args = RopeCacheArgs {
            q: at_least(seg.rows(q, qd), t * qd),
            k: at_least(seg.rows(k, kvd), t * kvd),
            v: at_least(seg.rows(v, kvd), t * kvd),
            qr: at_least(seg.rows(&s.qr, qd), t * qd),
            k_cache: at_least(&cache.k[layer], end),
            v_cache: at_least(&cache.v[layer], end),
            start: self.position(s, seg),
            tokens,
            heads,
            kv_heads,
            head_dim,
            rot_dims: c.rope_dims as u32,
            freq_base: c.rope_base,
        };
        self.launch(p, dims, args)
    }

    /// Rows `ids` of a `[_, cols]` matrix (an embedding table, or activations) into `out`.
    pub(super) fn gather<'b>(
        &self,
        p: &Planned,
        table: impl Into<Matrix<'b>>,
        ids: View<'_>,
        out: &DeviceBuffer,
        rows: usize,
        cols: usize,
    ) -> Result<(), RuntimeError> {
        let dims = greta_kernels::embedding::launch(&p.config, rows as u32);
        let (ids, out, dim) = (at_least(ids, rows), at_least(out, rows * cols), cols as u32);
        match table.into() {
            Matrix::Dense(table) => self.launch(
                p,
                dims,
                EmbeddingArgs {
                    table,
                    ids,
                    out,
                    dim,
                },
            ),
            Matrix::Q8 { scales, quants } => self.launch(
                p,
                dims,
                EmbeddingQ8Args {
                    scales,
                    quants,
                    ids,
                    out,
                    dim,
                },
            ),
        }
    }

    /// Attention of each segment's new tokens' queries (its rows of `s.qr`) over positions
    /// `0..start + tokens` of its slot's cache in `layer`; returns the buffer holding the
    /// output (`[tokens, q_dim]`, every segment's rows) in the activation type.
    pub(super) fn attention<'s>(
        &self,
        s: &'s Scratch,
        layer: usize,
        segments: &[Segment],
    ) -> Result<&'s DeviceBuffer, RuntimeError> {
        // The output in the activation type: `att` itself for f32.
        let out = if self.act.act == Scalar::F32 {
            &s.att
        } else {
            &s.att_act
        };
        let t: usize = segments.iter().map(|g| g.tokens).sum();
        for seg in segments {
            match self.act.attention {
                Attention::V1 => self.attention_v1(s, layer, seg)?,
                Attention::V2 | Attention::V3 | Attention::V4 => {
                    self.attention_fused(s, layer, seg, out)?
                }
            }
        }
        if self.act.attention == Attention::V1 && self.act.act != Scalar::F32 {
            self.copy(&self.act.to_act, &s.att, out, t * self.cfg.q_dim(), 0)?;
        }
        Ok(out)
    }

    /// [`Attention::V2`] / [`Attention::V3`] / [`Attention::V4`] for one segment: for one
    /// token, split-K `attn_decode` over stretches of the cache, then `attn_combine`; over
    /// several, `attn_flash`, `attn_qlds` or `attn_mma` (the same arguments).
    fn attention_fused(
        &self,
        s: &Scratch,
        layer: usize,
        seg: &Segment,
        out: &DeviceBuffer,
    ) -> Result<(), RuntimeError> {
        let c = &self.cfg;
        let target = self.backend.target();
        let (t, start) = (seg.tokens, seg.start);
        let cache = (start + t) * c.kv_dim();
        let q = at_least(seg.rows(&s.qr, c.q_dim()), t * c.q_dim());
        let k_cache = at_least(&self.caches[seg.slot].k[layer], cache);
        let v_cache = at_least(&self.caches[seg.slot].v[layer], cache);
        let out = at_least(seg.rows(out, c.q_dim()), t * c.q_dim());
        let (tokens, heads) = (t as u32, c.n_heads as u32);
        let (kv_heads, head_dim) = (c.n_kv_heads as u32, c.head_dim as u32);
        // The fused kernels' scores are base 2.
        let scale_log2 = greta_kernels::flash::LOG2_E / (c.head_dim as f32).sqrt();
        if t == 1 {
            let p = &self.act.attn_decode;
            let keys = split_keys(start + 1, self.context);
            let (chunk, splits) = split_k(c, &p.config, target, keys);
            let part = at_least(&s.part, c.n_heads * splits as usize * (c.head_dim + 2));
            let dims = greta_kernels::attn_decode::launch(&p.config, target, 1, heads, splits);
            let args = AttnDecodeArgs {
                q,
                k_cache,
                v_cache,
                part,
                tokens,
                heads,
                kv_heads,
                head_dim,
                start: self.position(s, seg),
                chunk,
                splits,
                scale_log2,
            };
            self.launch(p, dims, args)?;
            let p = &self.act.attn_combine;
            let dims = greta_kernels::attn_decode::launch_combine(&p.config, heads);
            let args = AttnCombineArgs {
                part,
                out,
                head_dim,
                splits,
            };
            return self.launch(p, dims, args);
        }
        let p = &self.act.attn_prefill;
        let start = start as u32;
        // The three prefill kernels take the same arguments; each has its own struct.
        macro_rules! prefill {
            ($args:ident, $kernel:ident) => {{
                let dims = greta_kernels::$kernel::launch(&p.config, target, tokens, heads);
                let args = $args {
                    q,
                    k_cache,
                    v_cache,
                    out,
                    tokens,
                    heads,
                    kv_heads,
                    head_dim,
                    start,
                    scale_log2,
                };
                self.launch(p, dims, args)
            }};
        }
        match p.spec.name {
            "attn_mma" => prefill!(AttnMmaArgs, attn_mma),
            "attn_qlds" => prefill!(AttnQldsArgs, attn_qlds),
            _ => prefill!(AttnFlashArgs, attn_flash),
        }
    }

    /// [`Attention::V1`]: scores and probabilities in memory, the f32 output into `s.att`.
    fn attention_v1(&self, s: &Scratch, layer: usize, seg: &Segment) -> Result<(), RuntimeError> {
        let c = &self.cfg;
        let (t, start) = (seg.tokens, seg.start);
        let len = start + t;
        let (cache, n) = (len * c.kv_dim(), c.n_heads * t * len);
        let (scores, probs) = (at_least(&s.scores, n), at_least(&s.probs, n));
        let (tokens, heads, kv_heads, head_dim) = (
            t as u32,
            c.n_heads as u32,
            c.n_kv_heads as u32,
            c.head_dim as u32,
        );
        let (start, len) = (start as u32, len as u32);

        let p = &self.act.attn_scores;
        let dims = greta_kernels::attn_scores::launch(&p.config, heads, tokens, len);
        let args = AttnScoresArgs {
            q: at_least(seg.rows(&s.qr, c.q_dim()), t * c.q_dim()),
            k_cache: at_least(&self.caches[seg.slot].k[layer], cache),
            scores,
            tokens,
            heads,
            kv_heads,
            head_dim,
            start,
            len,
            scale: 1.0 / (c.head_dim as f32).sqrt(),
        };
        self.launch(p, dims, args)?;

        let p = &self.act.softmax;
        let dims = greta_kernels::softmax::launch(&p.config, heads * tokens);
        let args = SoftmaxArgs {
            x: scores,
            y: probs,
            cols: len,
        };
        self.launch(p, dims, args)?;

        let p = &self.act.attn_values;
        let dims = greta_kernels::attn_values::launch(&p.config, tokens, heads, head_dim);
        let args = AttnValuesArgs {
            probs,
            v_cache: at_least(&self.caches[seg.slot].v[layer], cache),
            out: at_least(seg.rows(&s.att, c.q_dim()), t * c.q_dim()),
            tokens,
            heads,
            kv_heads,
            head_dim,
            len,
        };
        self.launch(p, dims, args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgmlType;
    use greta_dsl::Target;

    /// The arguments of another kernel than the planned one are refused before anything
    /// launches (a kernel chosen at run time matched to the wrong struct).
    #[test]
    fn the_arguments_of_another_kernel_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = &Target::GFX942;
        let (_, model, _) = super::super::tests::tiny(
            dir.path(),
            GgmlType::F32,
            Scalar::F32,
            Attention::V2,
            target,
        );
        let b = model.backend.alloc(Scalar::F32, 64).unwrap();
        let p = &model.act.rmsnorm;
        let dims = greta_kernels::rmsnorm::launch(&p.config, 1);
        let (x, y) = (KernelArg::Buffer(&b), KernelArg::Buffer(&b));
        let err = model
            .launch(
                p,
                dims,
                CopyArgs {
                    x,
                    y,
                    n: 64,
                    dst_offset: 0,
                },
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            RuntimeError::Launch {
                kernel: "rmsnorm".into(),
                message: "launched with the arguments of `copy`".into()
            }
            .to_string()
        );
    }
}
