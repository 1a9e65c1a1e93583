//! Which library kernels, at which configurations, a model runs — one list shared by the forward
//! pass (which loads them) and `greta build --model` (which bundles them for a GPU machine that
//! has no compiler).
//!
//! The choice depends on the activation type and, for the projections, on how many tokens a
//! forward pass multiplies at once:
//! - f32 activations (f32 models, and `--dtype f32`): `matmul` / `matmul_q8` for every
//!   projection, everything f32 — the exact path stories260K is checked on.
//! - f16/bf16 activations: decode (at most [`GEMV_MAX_TOKENS`] tokens) on `gemv` / `gemv_q8`,
//!   prefill on the matrix-core GEMM — `gemm_wg` / `gemm_wg_q8` where the target has the
//!   warpgroup engine (sm_90a), else `gemm` / `gemm_q8` (MFMA on gfx942, the interpreter). The
//!   GEMMs and GEMVs write f32 (queries, keys, values, logits) or the activation type (the rest),
//!   and add the residual in their epilogue where one follows.

use super::config::LlamaConfig;
use super::tuning::{Tuned, ACTIVATION_TOKENS, DECODE_DEPTH};
use crate::gguf::{GgmlType, GgufFile};
use greta_dsl::ir::{ConfigValue, Scalar};
use greta_dsl::Target;
use greta_kernels::{Config, KernelSpec};

/// Tokens up to which a forward pass's projections run as GEMVs (decode, small batches).
pub const GEMV_MAX_TOKENS: usize = 8;

/// The element type of a dense weight, or Q8_0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightType {
    Dense(Scalar),
    Q8_0,
}

impl WeightType {
    pub fn of(ty: GgmlType) -> Option<WeightType> {
        Some(match ty {
            GgmlType::F32 => WeightType::Dense(Scalar::F32),
            GgmlType::F16 => WeightType::Dense(Scalar::F16),
            GgmlType::BF16 => WeightType::Dense(Scalar::BF16),
            GgmlType::Q8_0 => WeightType::Q8_0,
            _ => return None,
        })
    }

    /// The type the weight is uploaded as for activations of `act`: dense weights become the
    /// activation type where it is f16/bf16 (the matrix kernels multiply like with like), Q8_0
    /// stays quantised.
    pub fn on_device(self, act: Scalar) -> WeightType {
        match self {
            WeightType::Dense(_) if act != Scalar::F32 => WeightType::Dense(act),
            other => other,
        }
    }
}

/// The activation type a model computes in by default: its weights' type for f16 and bf16
/// models, f32 otherwise (f32 models stay exact; Q8_0 models keep their f32 path).
pub fn default_activations(g: &GgufFile) -> Scalar {
    match g.tensor("blk.0.attn_q.weight").map(|t| t.ty) {
        Some(GgmlType::F16) => Scalar::F16,
        Some(GgmlType::BF16) => Scalar::BF16,
        _ => Scalar::F32,
    }
}

/// A kernel at a configuration.
#[derive(Clone)]
pub struct Planned {
    pub spec: &'static KernelSpec,
    pub config: Config,
}

impl PartialEq for Planned {
    fn eq(&self, other: &Planned) -> bool {
        self.spec.name == other.spec.name && self.config == other.config
    }
}

impl std::fmt::Debug for Planned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]", self.spec.name, self.config)
    }
}

impl std::fmt::Display for Planned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]", self.spec.name, self.config)
    }
}

fn spec(name: &str) -> &'static KernelSpec {
    greta_kernels::by_name(name).unwrap_or_else(|| panic!("greta-kernels has no `{name}` kernel"))
}

fn planned(name: &str, overrides: &str) -> Planned {
    let spec = spec(name);
    let config = spec
        .config(overrides)
        .unwrap_or_else(|e| panic!("model kernel plan: {e}"));
    Planned { spec, config }
}

/// The f32-activation matrix kernel for weights of type `w` (`y` f32, no residual).
pub fn matmul_for(w: WeightType) -> Planned {
    match w {
        WeightType::Dense(s) => planned("matmul", &format!("dtype={s}")),
        WeightType::Q8_0 => planned("matmul_q8", "dtype=f32"),
    }
}

/// What one projection writes: the output type and whether the residual is added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Output {
    pub ty: Scalar,
    pub residual: bool,
}

/// The kernel computing `y = x · Wᵀ (+ r)` for `tokens` tokens of activations `act` with
/// device weights `w` of `rows × cols` (see the module docs), with the tuning DB's winner where
/// `tuned` has one ([`super::tuning`]: decode steps of up to [`GEMV_MAX_TOKENS`] tokens take the
/// 1-token winner, prompts their bucket's).
#[allow(clippy::too_many_arguments)]
pub fn projection(
    w: WeightType,
    act: Scalar,
    tokens: usize,
    rows: usize,
    cols: usize,
    out: Output,
    target: &Target,
    tuned: &Tuned,
) -> Planned {
    let untuned = projection_untuned(w, act, tokens, rows, out, target);
    let (r, c) = (rows as u32, cols as u32);
    if act == Scalar::F32 {
        return tuned.apply(untuned, &[1, r, c], &[]);
    }
    if tokens <= GEMV_MAX_TOKENS {
        let m_tile = untuned.config.get("m_tile").cloned();
        let one = tuned.apply(
            projection_untuned(w, act, 1, rows, out, target),
            &[1, r, c],
            &[],
        );
        return Planned {
            spec: one.spec,
            config: match m_tile {
                Some(v) => one.config.with("m_tile", v),
                None => one.config,
            },
        };
    }
    let bucket = super::tuning::prefill_bucket(tokens) as u32;
    tuned.apply(untuned, &[bucket, r, c], &[])
}

/// [`projection`] without tuning. With f32 activations the residual is not fused. The
/// warpgroup GEMM's tile width is chosen for the output's shape
/// ([`greta_kernels::gemm_wg::bn_for`]), its stages to fill the LDS
/// ([`greta_kernels::gemm_wg::stages_for`]).
pub fn projection_untuned(
    w: WeightType,
    act: Scalar,
    tokens: usize,
    rows: usize,
    out: Output,
    target: &Target,
) -> Planned {
    if act == Scalar::F32 {
        return matmul_for(w);
    }
    let q8 = w == WeightType::Q8_0;
    let common = projection_params(act, out);
    if tokens <= GEMV_MAX_TOKENS {
        let m_tile = if tokens == 1 { 1 } else { GEMV_MAX_TOKENS };
        let name = if q8 { "gemv_q8" } else { "gemv" };
        planned(name, &format!("{common},m_tile={m_tile}"))
    } else {
        match (target.warpgroup.is_some(), q8) {
            (true, _) => {
                let bn = greta_kernels::gemm_wg::bn_for(tokens as u32, rows as u32, target);
                gemm_wg(q8, &common, bn, target)
            }
            (false, false) => planned("gemm", &common),
            (false, true) => planned("gemm_q8", &common),
        }
    }
}

/// The parameters every half-precision projection kernel shares.
fn projection_params(act: Scalar, out: Output) -> String {
    format!("dtype={act},out={},residual={}", out.ty, out.residual)
}

fn gemm_wg(q8: bool, common: &str, bn: u32, target: &Target) -> Planned {
    let name = if q8 { "gemm_wg_q8" } else { "gemm_wg" };
    let stages = greta_kernels::gemm_wg::stages_for(bn, target);
    planned(name, &format!("{common},bm=128,bn={bn},stages={stages}"))
}

/// What decode's GEMVs compute besides their product ([`greta_kernels::gemv_fused`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fusion {
    /// RMSNorm of the residual stream in the input of the projections after a norm (queries,
    /// keys and values; gate and up; the logits): `gemv_norm`.
    Norm,
    /// SwiGLU in the gate/up projection's epilogue: it writes `silu(gate) · up` (`glu`).
    Glu,
}

impl std::str::FromStr for Fusion {
    type Err = String;
    fn from_str(s: &str) -> Result<Fusion, String> {
        match s {
            "norm" => Ok(Fusion::Norm),
            "glu" => Ok(Fusion::Glu),
            other => Err(format!(
                "unknown fusion `{other}`: norm (RMSNorm into the GEMVs after it) or glu (SwiGLU \
                 in the gate/up GEMV's epilogue)"
            )),
        }
    }
}

/// `p` (a dense `gemv`) with RMSNorm fused into its input (`norm`: `gemv_norm`) and/or the
/// SwiGLU epilogue (`glu`), at the same configuration otherwise (`gemv_norm`'s parameters are
/// `gemv`'s, so the tuned winner of the plain projection applies). `None` for any other kernel,
/// or with neither: the norm or SwiGLU is then its own launch.
pub fn fused(p: &Planned, norm: bool, glu: bool) -> Option<Planned> {
    if p.spec.name != "gemv" || !(norm || glu) {
        return None;
    }
    let spec = if norm {
        &greta_kernels::gemv_fused::NORM_SPEC
    } else {
        p.spec
    };
    let mut config = p.config.with("glu", ConfigValue::Bool(glu));
    if glu {
        // A wave owns the gate's and the up's rows: half as many outputs keep the weight rows
        // (the bytes in flight and the registers holding them) of the plain configuration.
        let rows = (p.config.u32("rows") / 2).max(1);
        config = config.with("rows", ConfigValue::U32(rows));
    }
    Some(Planned { spec, config })
}

/// The kernel of a decode projection of `tokens` (≤ [`GEMV_MAX_TOKENS`]) tokens with RMSNorm
/// fused into its input (`norm`) and/or the SwiGLU epilogue (`glu`; `rows` then counts the
/// gate's and the up's): [`fused`] of the plain projection, at the tuning DB's winner for the
/// fused kernel's own site where there is one (its tuning sites are the plain ones' with the
/// fusion: [`super::tuning::sites`]), with the token tile of `tokens`. `None` where the plain
/// projection is not a dense GEMV.
#[allow(clippy::too_many_arguments)]
pub fn projection_fused(
    w: WeightType,
    act: Scalar,
    tokens: usize,
    rows: usize,
    cols: usize,
    out: Output,
    (norm, glu): (bool, bool),
    target: &Target,
    tuned: &Tuned,
) -> Option<Planned> {
    let plain = projection(w, act, tokens, rows, cols, out, target, tuned);
    let m_tile = plain.config.get("m_tile")?.clone();
    // The 1-token configuration is what the DB keys (as for the plain GEMV).
    let one = projection(w, act, 1, rows, cols, out, target, tuned);
    let one = fused(&one, norm, glu)?;
    let outputs = if glu { rows / 2 } else { rows };
    let best = tuned.apply(one, &[1, outputs as u32, cols as u32], &[]);
    Some(Planned {
        spec: best.spec,
        config: best.config.with("m_tile", m_tile),
    })
}

/// The fusions a projection may take ([`projection_fused`]'s `(norm, glu)`): a normalised
/// input for every projection that does not add the residual (queries, keys and values;
/// logits; gate and up), and the SwiGLU epilogue (with or without it) for gate and up as one
/// matrix (`gate_up`).
pub fn fusions_of(out: Output, gate_up: bool) -> Vec<(bool, bool)> {
    match (out.residual, gate_up) {
        (true, _) => Vec::new(),
        (false, false) => vec![(true, false)],
        (false, true) => vec![(true, false), (true, true), (false, true)],
    }
}

/// The embedding (row gather) kernel for a table of type `w`, writing activations of `act`.
pub fn embedding_for(w: WeightType, act: Scalar) -> Planned {
    match w {
        WeightType::Dense(s) => planned("embedding", &format!("dtype={s},out={act}")),
        WeightType::Q8_0 => planned("embedding_q8", &format!("dtype={act}")),
    }
}

/// How split-K decode with `decode` (the planned `attn_decode` configuration) cuts `keys`
/// cache positions: `(chunk, splits)` (see [`greta_kernels::attn_decode::splits_for`]).
pub fn split_k(c: &LlamaConfig, decode: &Config, target: &Target, keys: usize) -> (u32, u32) {
    greta_kernels::attn_decode::splits_for(
        keys as u32,
        greta_kernels::attn_decode::blocks_per_split(decode, 1, c.n_heads as u32),
        target,
        greta_kernels::attn_decode::MIN_CHUNK,
    )
}

/// The keys a decode step's split ([`split_k`]) is chosen for when its row has `keys` keys:
/// the next power of two from [`SPLIT_KEYS_MIN`], at most `context`. Every step of a stretch of
/// depths thus launches the same grid (stretches past the row's end are empty), so that one
/// captured decode graph serves them all, and eager and replayed steps split alike, to the bit.
pub fn split_keys(keys: usize, context: usize) -> usize {
    keys.next_power_of_two()
        .max(SPLIT_KEYS_MIN)
        .min(context)
        .max(keys)
}

/// The fewest keys a split is chosen for (a decode graph per power of two from here up to the
/// context: 5 for a context of 4096).
pub const SPLIT_KEYS_MIN: usize = 256;

/// Which attention kernels a model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Attention {
    /// Scores in memory: `attn_scores`, `softmax`, `attn_values` — the GPU reference.
    V1,
    /// Fused: `attn_flash` for passes over several tokens, split-K `attn_decode` and
    /// `attn_combine` for one token.
    V2,
    /// As V2, with `attn_qlds` (queries staged in LDS, several rows per wave) over several
    /// tokens.
    V3,
    /// As V2, with `attn_mma` (matrix cores) over several tokens where the activations are
    /// f16/bf16 (`attn_flash` with f32 ones): the default, the fastest on the H200 (see
    /// BENCHMARKS.md).
    #[default]
    V4,
}

impl std::str::FromStr for Attention {
    type Err = String;
    fn from_str(s: &str) -> Result<Attention, String> {
        match s {
            "v1" => Ok(Attention::V1),
            "v2" => Ok(Attention::V2),
            "v3" => Ok(Attention::V3),
            "v4" => Ok(Attention::V4),
            other => Err(format!(
                "unknown attention variant `{other}`: v1 (scores in memory), v2 (fused), v3 \
                 (fused, queries in LDS) or v4 (fused, matrix cores for prefill)"
            )),
        }
    }
}

impl std::fmt::Display for Attention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Attention::V1 => "v1",
            Attention::V2 => "v2",
            Attention::V3 => "v3",
            Attention::V4 => "v4",
        })
    }
}

/// The activation kernels (norms, RoPE fitted to the head shape, attention, SwiGLU, add,
/// conversions) for activations of `act`. Queries, keys and values come out of their
/// projections in f32 (RoPE in f32); the KV cache holds the activation type, and the attention
/// kernels accumulate in f32.
pub struct Activations {
    pub act: Scalar,
    pub attention: Attention,
    pub rmsnorm: Planned,
    /// RoPE of the queries and keys with the keys and values written into the KV cache, at a
    /// position read from device memory (`rope_cache`).
    pub rope_cache: Planned,
    /// f32 attention output into the activation type (a plain copy for f32 activations).
    pub to_act: Planned,
    pub attn_scores: Planned,
    pub softmax: Planned,
    pub attn_values: Planned,
    /// The kernel of passes over several tokens (V2, V3, V4): `attn_flash`, `attn_qlds` or
    /// `attn_mma`.
    pub attn_prefill: Planned,
    pub attn_decode: Planned,
    pub attn_combine: Planned,
    pub silu_mul: Planned,
    pub add: Planned,
    /// Row gather of activations (the last token's hidden state).
    pub gather: Planned,
}

impl Activations {
    /// The activation kernels, each at its tuned configuration where `tuned` has one.
    pub fn new(
        cfg: &LlamaConfig,
        act: Scalar,
        attention: Attention,
        target: &Target,
        tuned: &Tuned,
    ) -> Activations {
        let mut a = Activations::untuned(cfg, act, attention, target);
        for (_, planned, shape, pinned) in a.slots(cfg, target) {
            *planned = tuned.apply(planned.clone(), &shape, pinned);
        }
        a
    }

    fn untuned(
        cfg: &LlamaConfig,
        act: Scalar,
        attention: Attention,
        target: &Target,
    ) -> Activations {
        let rope = planned("rope_cache", &format!("dtype={act}"));
        let rope_cache = Planned {
            spec: rope.spec,
            config: greta_kernels::rope_cache::fit(
                &rope.config,
                cfg.n_heads as u32,
                cfg.n_kv_heads as u32,
                cfg.head_dim as u32,
                cfg.rope_dims as u32,
            ),
        };
        let hd = cfg.head_dim as u32;
        let decode = planned("attn_decode", &format!("dtype={act}"));
        let types = format!("dtype={act},out={act}");
        let prefill = match attention {
            Attention::V4 if act != Scalar::F32 => {
                let p = planned("attn_mma", &types);
                Planned {
                    spec: p.spec,
                    config: greta_kernels::attn_mma::fit(&p.config, hd, target),
                }
            }
            Attention::V3 => {
                let p = planned("attn_qlds", &types);
                Planned {
                    spec: p.spec,
                    config: greta_kernels::attn_qlds::fit(&p.config, hd, target),
                }
            }
            _ => {
                let p = planned("attn_flash", &types);
                Planned {
                    spec: p.spec,
                    config: greta_kernels::attn_flash::fit(&p.config, hd, target),
                }
            }
        };
        Activations {
            act,
            attention,
            // One row per block: the row count (tokens) varies from call to call.
            rmsnorm: planned("rmsnorm", &format!("dtype={act},rows_per_block=1")),
            rope_cache,
            to_act: planned("copy", &format!("dtype={act}")),
            attn_scores: planned("attn_scores", &format!("dtype={act}")),
            softmax: planned("softmax", "dtype=f32"),
            attn_values: planned("attn_values", &format!("dtype={act}")),
            attn_prefill: prefill,
            attn_decode: Planned {
                spec: decode.spec,
                config: greta_kernels::attn_decode::fit(
                    &decode.config,
                    hd,
                    (cfg.n_heads / cfg.n_kv_heads) as u32,
                ),
            },
            attn_combine: planned("attn_combine", &format!("dtype={act}")),
            silu_mul: planned("silu_mul", &format!("dtype={act}")),
            add: planned("add", &format!("dtype={act}")),
            gather: planned("embedding", &format!("dtype={act},out={act}")),
        }
    }

    /// The kernels a model can tune, each with the shape it is tuned at and the tunable
    /// parameters it must keep (see [`super::tuning`]): `(role, kernel, shape, pinned)`. The
    /// reference attention (V1) and the embedding gathers are not tuned.
    #[allow(clippy::type_complexity)]
    pub(super) fn slots(
        &mut self,
        cfg: &LlamaConfig,
        target: &Target,
    ) -> Vec<(
        &'static str,
        &mut Planned,
        Vec<u32>,
        &'static [&'static str],
    )> {
        let t = ACTIVATION_TOKENS as u32;
        let (dim, ffn) = (cfg.dim as u32, cfg.ffn_dim as u32);
        let (heads, kv_heads) = (cfg.n_heads as u32, cfg.n_kv_heads as u32);
        let (hd, rot) = (cfg.head_dim as u32, cfg.rope_dims as u32);
        let (_, splits) = split_k(cfg, &self.attn_decode.config, target, DECODE_DEPTH);
        let mut out: Vec<(
            &'static str,
            &mut Planned,
            Vec<u32>,
            &'static [&'static str],
        )> = vec![
            (
                "attn_norm, ffn_norm, output_norm",
                &mut self.rmsnorm,
                vec![t, dim],
                &["rows_per_block"],
            ),
            (
                "RoPE and the K/V cache writes",
                &mut self.rope_cache,
                vec![t, heads, kv_heads, hd, 0, rot],
                &[],
            ),
            ("SwiGLU", &mut self.silu_mul, vec![t * ffn], &[]),
            ("residual add", &mut self.add, vec![t * dim], &[]),
        ];
        if self.attention != Attention::V1 {
            let prompt = vec![t, heads, kv_heads, hd, 0];
            let depth = vec![1, heads, kv_heads, hd, DECODE_DEPTH as u32 - 1];
            out.push((
                "attention over a prompt",
                &mut self.attn_prefill,
                prompt,
                &[],
            ));
            out.push(("decode attention", &mut self.attn_decode, depth, &[]));
            out.push((
                "decode attention's combine",
                &mut self.attn_combine,
                vec![heads, hd, splits],
                &[],
            ));
        }
        out
    }

    fn all(&self) -> Vec<Planned> {
        let attention = match self.attention {
            Attention::V1 => vec![
                self.to_act.clone(),
                self.attn_scores.clone(),
                self.softmax.clone(),
                self.attn_values.clone(),
            ],
            Attention::V2 | Attention::V3 | Attention::V4 => vec![
                self.attn_prefill.clone(),
                self.attn_decode.clone(),
                self.attn_combine.clone(),
            ],
        };
        let mut all = vec![
            self.rmsnorm.clone(),
            self.rope_cache.clone(),
            self.silu_mul.clone(),
            self.add.clone(),
            self.gather.clone(),
        ];
        all.extend(attention);
        all
    }
}

/// What each projection of a layer writes for activations of `act`.
pub struct Outputs {
    /// Queries, keys and values: f32, for attention.
    pub qkv: Output,
    /// The attention output and down projections: the activation type, residual added.
    pub residual: Output,
    /// Gate and up: the activation type.
    pub plain: Output,
    /// Logits: f32.
    pub logits: Output,
}

impl Outputs {
    pub fn for_act(act: Scalar) -> Outputs {
        let f32_out = Output {
            ty: Scalar::F32,
            residual: false,
        };
        Outputs {
            qkv: f32_out,
            residual: Output {
                ty: act,
                residual: act != Scalar::F32,
            },
            plain: Output {
                ty: act,
                residual: false,
            },
            logits: f32_out,
        }
    }
}

/// The weight groups a decode step may multiply as one matrix (the forward pass fuses them where
/// the parts share a type and width and start on slice boundaries): `(type, rows, cols)` of
/// queries + keys + values and of gate + up, for the first layer (every layer is alike).
pub fn fused_groups(g: &GgufFile) -> Vec<(WeightType, usize, usize)> {
    let groups: [&[&str]; 2] = [
        &[
            "blk.0.attn_q.weight",
            "blk.0.attn_k.weight",
            "blk.0.attn_v.weight",
        ],
        &["blk.0.ffn_gate.weight", "blk.0.ffn_up.weight"],
    ];
    let mut out = Vec::new();
    for names in groups {
        let parts: Option<Vec<_>> = names
            .iter()
            .map(|n| g.tensor(n).filter(|t| t.dims.len() >= 2))
            .collect();
        let Some(parts) = parts else { continue };
        let (ty, cols) = (parts[0].ty, parts[0].dims[0]);
        if parts.iter().any(|t| t.ty != ty || t.dims[0] != cols) {
            continue;
        }
        if let Some(w) = WeightType::of(ty) {
            let rows = parts.iter().map(|t| t.dims[1] as usize).sum();
            out.push((w, rows, cols as usize));
        }
    }
    out
}

/// Every kernel configuration a model runs on `target` with activations of `act` and
/// `attention` (the tuned ones where `tuned` has winners), without duplicates.
pub fn plan(
    g: &GgufFile,
    cfg: &LlamaConfig,
    act: Scalar,
    attention: Attention,
    target: &Target,
    tuned: &Tuned,
) -> Vec<Planned> {
    let mut out = Activations::new(cfg, act, attention, target, tuned).all();
    let outputs = Outputs::for_act(act);
    for t in g.tensors() {
        let Some(w) = WeightType::of(t.ty) else {
            continue;
        };
        let dev = w.on_device(act);
        if t.name == "token_embd.weight" {
            out.push(embedding_for(dev, act));
        }
        if t.dims.len() < 2 {
            continue;
        }
        let kinds = [outputs.qkv, outputs.residual, outputs.plain, outputs.logits];
        let (rows, cols) = (t.dims[1] as usize, t.dims[0] as usize);
        let mut tokens: Vec<usize> = (1..=GEMV_MAX_TOKENS + 1).collect();
        tokens.extend(super::tuning::PREFILL_BUCKETS);
        for m in tokens {
            for o in kinds {
                out.push(projection(dev, act, m, rows, cols, o, target, tuned));
                // Decode's GEMVs with RMSNorm fused into their input.
                for f in fusions_of(o, false) {
                    let fused = projection_fused(dev, act, m, rows, cols, o, f, target, tuned);
                    out.extend(fused.filter(|_| m <= GEMV_MAX_TOKENS));
                }
            }
        }
        // The GEMM's tile width depends on the prompt's length: every choice is planned.
        if act != Scalar::F32 && target.warpgroup.is_some() {
            for o in kinds {
                for bn in greta_kernels::gemm_wg::BN_CHOICES {
                    let common = projection_params(act, o);
                    out.push(gemm_wg(dev == WeightType::Q8_0, &common, bn, target));
                }
            }
        }
    }
    // Decode multiplies queries, keys and values (gate and up) as one matrix where it can.
    for (w, rows, cols) in fused_groups(g) {
        let dev = w.on_device(act);
        for o in [outputs.qkv, outputs.plain] {
            for m in 1..=GEMV_MAX_TOKENS {
                out.push(projection(dev, act, m, rows, cols, o, target, tuned));
                // Either group may be gate and up (the SwiGLU epilogue needs the whole).
                for f in fusions_of(o, true) {
                    out.extend(projection_fused(
                        dev, act, m, rows, cols, o, f, target, tuned,
                    ));
                }
            }
        }
    }
    let mut unique: Vec<Planned> = Vec::new();
    for p in out {
        if !unique.contains(&p) {
            unique.push(p);
        }
    }
    unique
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgmlType;

    /// Whatever the prompt's length, the kernel a projection chooses is one the plan loaded (and
    /// `greta build --model` bundled): the tile width the GEMM picks varies with the length.
    #[test]
    fn the_plan_holds_every_projection_choice() {
        let dir = tempfile::tempdir().unwrap();
        for ty in [GgmlType::F16, GgmlType::Q8_0] {
            let g = crate::synth::tiny(dir.path(), ty, 1).unwrap();
            let cfg = LlamaConfig::from_gguf(&g).unwrap();
            for target in [&Target::SM_90, &Target::GFX942] {
                for act in [Scalar::F16, Scalar::BF16, Scalar::F32] {
                    let plan = plan(&g, &cfg, act, Attention::V2, target, &Tuned::none());
                    let w = WeightType::of(ty).unwrap().on_device(act);
                    let outputs = Outputs::for_act(act);
                    for out in [outputs.qkv, outputs.residual, outputs.plain, outputs.logits] {
                        // Token counts and output widths of real models, not only this one's.
                        for tokens in [1, 2, 8, 9, 100, 512, 2048, 4096] {
                            for rows in [64, 4096, 11008, 32000, 128256] {
                                let p = projection_untuned(w, act, tokens, rows, out, target);
                                assert!(plan.contains(&p), "{target} {act}: {p} is not planned");
                            }
                        }
                    }
                }
            }
        }
    }
}
