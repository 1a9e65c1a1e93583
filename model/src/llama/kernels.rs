//! Which library kernels, at which configurations, a model runs — one list shared by the forward
//! pass (which loads them) and `greta build --model` (which bundles them for a GPU machine that
//! has no compiler).

use super::config::LlamaConfig;
use crate::gguf::{GgmlType, GgufFile};
use greta_dsl::ir::Scalar;
use greta_kernels::{Config, KernelSpec};

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

/// The matrix-vector/matrix kernel for weights of type `w`.
pub fn matmul_for(w: WeightType) -> Planned {
    match w {
        WeightType::Dense(s) => planned("matmul", &format!("dtype={s}")),
        WeightType::Q8_0 => planned("matmul_q8", "dtype=f32"),
    }
}

/// The embedding (row gather) kernel for a table of type `w`, writing f32 activations.
pub fn embedding_for(w: WeightType) -> Planned {
    match w {
        WeightType::Dense(s) => planned("embedding", &format!("dtype={s}")),
        WeightType::Q8_0 => planned("embedding_q8", "dtype=f32"),
    }
}

/// The f32 activation kernels (norms, RoPE fitted to the head shape, attention, SwiGLU, add).
pub struct Activations {
    pub rmsnorm: Planned,
    pub rope_q: Planned,
    pub rope_k: Planned,
    pub copy: Planned,
    pub attn_scores: Planned,
    pub softmax: Planned,
    pub attn_values: Planned,
    pub silu_mul: Planned,
    pub add: Planned,
    /// Row gather of f32 activations (the embedding kernel over the hidden states).
    pub gather: Planned,
}

impl Activations {
    pub fn new(cfg: &LlamaConfig) -> Activations {
        let rope = planned("rope", "dtype=f32");
        let fit = |heads: usize| Planned {
            spec: rope.spec,
            config: greta_kernels::rope::fit(
                &rope.config,
                heads as u32,
                cfg.head_dim as u32,
                cfg.rope_dims as u32,
            ),
        };
        Activations {
            // One row per block: the row count (tokens) varies from call to call.
            rmsnorm: planned("rmsnorm", "dtype=f32,rows_per_block=1"),
            rope_q: fit(cfg.n_heads),
            rope_k: fit(cfg.n_kv_heads),
            copy: planned("copy", "dtype=f32"),
            attn_scores: planned("attn_scores", "dtype=f32"),
            softmax: planned("softmax", "dtype=f32"),
            attn_values: planned("attn_values", "dtype=f32"),
            silu_mul: planned("silu_mul", "dtype=f32"),
            add: planned("add", "dtype=f32"),
            gather: planned("embedding", "dtype=f32"),
        }
    }

    fn all(&self) -> Vec<Planned> {
        vec![
            self.rmsnorm.clone(),
            self.rope_q.clone(),
            self.rope_k.clone(),
            self.copy.clone(),
            self.attn_scores.clone(),
            self.softmax.clone(),
            self.attn_values.clone(),
            self.silu_mul.clone(),
            self.add.clone(),
            self.gather.clone(),
        ]
    }
}

/// Every kernel configuration a model runs, without duplicates.
pub fn plan(g: &GgufFile, cfg: &LlamaConfig) -> Vec<Planned> {
    let mut out = Activations::new(cfg).all();
    for t in g.tensors() {
        if let Some(w) = WeightType::of(t.ty) {
            let p = if t.name == "token_embd.weight" {
                embedding_for(w)
            } else {
                matmul_for(w)
            };
            out.push(p);
            if t.name == "token_embd.weight" {
                // A tied output projection multiplies by the embedding table.
                out.push(matmul_for(w));
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
