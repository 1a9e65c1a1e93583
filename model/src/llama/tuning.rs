//! Tuning sites: every kernel a model runs, at the shapes it runs it — what `greta tune --model`
//! sweeps, and what a loaded model looks up in the tuning database.
//!
//! One list ([`sites`]) serves both sides, so the tuner times exactly the kernels, base
//! configurations and shape buckets the forward pass later asks for:
//! - **projections**: each distinct weight shape (`rows × cols`) and output kind (queries/keys/
//!   values and logits in f32, the residual-adding ones, gate/up), at decode (1 token: the GEMV)
//!   and at each prefill bucket of [`PREFILL_BUCKETS`] (the matrix-core GEMM). A prompt of `m`
//!   tokens uses the bucket [`prefill_bucket`] gives. Decode steps of 2–8 tokens (batched
//!   sequences) use the 1-token winner with a wider `m_tile`: a row's reduction order must not
//!   depend on how many rows share the launch (the batch gate's bit-exactness), so both take the
//!   same split and unroll;
//! - **activation kernels** (RMSNorm, RoPE, the KV-cache copy, SwiGLU, the residual add,
//!   attention for prompts, decode attention and its combine): one configuration each, tuned at
//!   a 512-token prompt (decode attention at a 4,096-token depth). The embedding gathers run
//!   once per pass over a few rows and are not tuned.
//!
//! A site's tunable parameters vary (`ParamDef::tunable`); the rest of its base configuration is
//! what the model runs (element types, fused residual, the tokens a GEMV takes). Parameters a
//! model must keep are `pinned` (RMSNorm's `rows_per_block`: the row count changes per call).

use std::collections::HashMap;

use greta_dsl::front::BuildError;
use greta_dsl::ir::{ConfigValue, Kernel, Scalar};
use greta_dsl::Target;
use greta_kernels::config::Choices;
use greta_kernels::{Config, KernelSpec};
use greta_runtime::tuning::{self, TuneKey, TuningDb};
use greta_runtime::Via;

use super::config::LlamaConfig;
use super::kernels::{projection_untuned, Activations, Attention, Outputs, Planned, WeightType};
use crate::gguf::GgufFile;

/// Prompt lengths the prefill GEMMs are tuned at.
pub const PREFILL_BUCKETS: [usize; 3] = [128, 512, 2048];

/// The prompt length activation kernels are tuned at.
pub const ACTIVATION_TOKENS: usize = 512;

/// The KV-cache depth decode attention is tuned at.
pub const DECODE_DEPTH: usize = 4096;

/// The tuned bucket a pass of `tokens` (> 8) tokens uses: the smallest bucket holding it, else
/// the largest.
pub fn prefill_bucket(tokens: usize) -> usize {
    PREFILL_BUCKETS
        .into_iter()
        .find(|&b| tokens <= b)
        .unwrap_or(PREFILL_BUCKETS[PREFILL_BUCKETS.len() - 1])
}

/// One kernel at one shape of a model (or of `greta tune --kernel`).
#[derive(Clone)]
pub struct Site {
    pub spec: &'static KernelSpec,
    /// The configuration the model runs without tuning.
    pub base: Config,
    /// Tunable parameters kept at `base`'s value.
    pub pinned: &'static [&'static str],
    /// The problem shape, in the spec's `shape` order.
    pub shape: Vec<u32>,
    /// What it is, for people: `blk.*.attn_q (1 token)`.
    pub role: String,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} [{}] at {} ({})",
            self.spec.name,
            self.base,
            self.shape_text(),
            self.role
        )
    }
}

impl Site {
    /// The configuration that identifies the kernel's family: `base` with every tunable
    /// parameter at its default, so neither a tuned value nor a changed default heuristic moves
    /// it (see [`greta_runtime::tuning`]).
    pub fn family_config(&self) -> Config {
        let fixed: Vec<String> = self
            .base
            .iter()
            .filter(|(name, _)| {
                let def = self.spec.params.iter().find(|p| p.name == *name);
                def.is_some_and(|p| !p.tunable || matches!(p.choices, Choices::DType(_)))
            })
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        // Parsing applies the defaults that depend on the element type (vector widths).
        self.spec
            .config(&fixed.join(","))
            .expect("a configuration's own values parse")
    }

    /// The kernel built at [`Site::family_config`].
    pub fn family_kernel(&self, target: &'static Target) -> Result<Kernel, BuildError> {
        (self.spec.build)(&self.family_config(), target)
    }

    /// `m×n×k`-style text of the shape.
    pub fn shape_text(&self) -> String {
        shape_text(&self.shape)
    }

    /// The site's key in the tuning DB on a device, for code compiled by `via`.
    pub fn key(
        &self,
        target: &'static Target,
        via: Via,
        device: &str,
        driver: &str,
    ) -> Result<TuneKey, BuildError> {
        Ok(TuneKey {
            family: tuning::family(&self.family_kernel(target)?, target, via),
            target: target.name.to_string(),
            device: device.to_string(),
            driver: driver.to_string(),
            dtype: dtype_of(&self.base),
            shape: self.shape_text(),
        })
    }
}

/// Sizes joined by `x`.
pub fn shape_text(shape: &[u32]) -> String {
    shape
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join("x")
}

fn dtype_of(c: &Config) -> String {
    match c.get("dtype") {
        Some(ConfigValue::Type(s)) => s.to_string(),
        _ => "-".into(),
    }
}

/// One projection of a layer or the output: weight `rows × cols` writing `out`.
struct ProjectionShape {
    role: &'static str,
    w: WeightType,
    rows: usize,
    cols: usize,
    out: super::kernels::Output,
    /// Run by decode steps only (a fused group).
    decode_only: bool,
}

/// The model's distinct projections (shape and output kind).
fn projections(g: &GgufFile, act: Scalar) -> Vec<ProjectionShape> {
    let outputs = Outputs::for_act(act);
    let kinds = [
        ("blk.0.attn_q.weight", "attn_q", outputs.qkv),
        ("blk.0.attn_k.weight", "attn_k", outputs.qkv),
        ("blk.0.attn_v.weight", "attn_v", outputs.qkv),
        ("blk.0.attn_output.weight", "attn_output", outputs.residual),
        ("blk.0.ffn_gate.weight", "ffn_gate", outputs.plain),
        ("blk.0.ffn_up.weight", "ffn_up", outputs.plain),
        ("blk.0.ffn_down.weight", "ffn_down", outputs.residual),
        ("output.weight", "output", outputs.logits),
    ];
    let mut out: Vec<ProjectionShape> = Vec::new();
    for (name, role, kind) in kinds {
        // A model without `output.weight` multiplies by the embedding table.
        let t = g.tensor(name).or_else(|| {
            (role == "output")
                .then(|| g.tensor("token_embd.weight"))
                .flatten()
        });
        let Some(t) = t.filter(|t| t.dims.len() >= 2) else {
            continue;
        };
        let Some(w) = WeightType::of(t.ty) else {
            continue;
        };
        let p = ProjectionShape {
            role,
            w: w.on_device(act),
            rows: t.dims[1] as usize,
            cols: t.dims[0] as usize,
            out: kind,
            decode_only: false,
        };
        if !out
            .iter()
            .any(|o| (o.w, o.rows, o.cols, o.out) == (p.w, p.rows, p.cols, p.out))
        {
            out.push(p);
        }
    }
    out
}

/// Every tuning site of a model with activations `act` and `attention` on `target`.
pub fn sites(
    g: &GgufFile,
    cfg: &LlamaConfig,
    act: Scalar,
    attention: Attention,
    target: &Target,
) -> Vec<Site> {
    let mut out = Vec::new();
    let outputs = Outputs::for_act(act);
    let mut shapes = projections(g, act);
    // Decode steps multiply fused groups (see `kernels::fused_groups`): 1-token sites only.
    for ((w, rows, cols), (role, kind)) in super::kernels::fused_groups(g)
        .into_iter()
        .zip([("attn_qkv", outputs.qkv), ("ffn_gate_up", outputs.plain)])
    {
        shapes.push(ProjectionShape {
            role,
            w: w.on_device(act),
            rows,
            cols,
            out: kind,
            decode_only: true,
        });
    }
    for p in shapes {
        let mut tokens = vec![1];
        if act != Scalar::F32 && !p.decode_only {
            tokens.extend(PREFILL_BUCKETS);
        }
        for m in tokens {
            let planned = projection_untuned(p.w, act, m, p.rows, p.out, target);
            let what = if m == 1 {
                "1 token".to_string()
            } else {
                format!("{m}-token prompt")
            };
            // Decode's GEMVs with RMSNorm and SwiGLU fused are sites of their own (a fused
            // GEMV does more per weight loaded: its best configuration may differ).
            if m == 1 {
                let gate_up = p.role == "ffn_gate_up";
                for (norm, glu) in super::kernels::fusions_of(p.out, gate_up) {
                    let Some(f) = super::kernels::fused(&planned, norm, glu) else {
                        continue;
                    };
                    let outputs = if glu { p.rows / 2 } else { p.rows };
                    let with = match (norm, glu) {
                        (true, false) => "RMSNorm in",
                        (false, true) => "SwiGLU out",
                        _ => "RMSNorm in, SwiGLU out",
                    };
                    out.push(Site {
                        spec: f.spec,
                        base: f.config,
                        pinned: &[],
                        shape: vec![1, outputs as u32, p.cols as u32],
                        role: format!("{} (1 token, {with})", p.role),
                    });
                }
            }
            out.push(Site {
                spec: planned.spec,
                base: planned.config,
                pinned: &[],
                shape: vec![m as u32, p.rows as u32, p.cols as u32],
                role: format!("{} ({what})", p.role),
            });
        }
    }
    let mut act_kernels = Activations::new(cfg, act, attention, target, &Tuned::none());
    for (role, planned, shape, pinned) in act_kernels.slots(cfg, target) {
        if !out.iter().any(|s: &Site| {
            s.spec.name == planned.spec.name && s.base == planned.config && s.shape == shape
        }) {
            out.push(Site {
                spec: planned.spec,
                base: planned.config.clone(),
                pinned,
                shape,
                role: role.to_string(),
            });
        }
    }
    out
}

/// Every kernel configuration a model runs when `winner` wins at `site`: the winner, and for a
/// decode projection (1 token) the same with the 8-token `m_tile` that batched decode steps of
/// 2–8 tokens take (see [`super::kernels::projection`]), each also with RMSNorm and SwiGLU
/// fused ([`super::kernels::fused`]; what a fused projection runs when its own site is not
/// tuned). A bundle for a GPU machine without a compiler must hold them all.
pub fn runs_of(site: &Site, winner: &Config) -> Vec<Planned> {
    let plain = |config: Config| Planned {
        spec: site.spec,
        config,
    };
    let mut out = vec![plain(winner.clone())];
    if site.shape.first() == Some(&1) && winner.get("m_tile").is_some() {
        let m = ConfigValue::U32(super::GEMV_MAX_TOKENS as u32);
        out.push(plain(winner.with("m_tile", m)));
    }
    // A plain GEMV winner is also what its fused kernels run where their own sites are not
    // tuned (a fused site's winner is run as it is).
    if winner.get("glu") == Some(&ConfigValue::Bool(true)) {
        return out;
    }
    let residual = winner.get("residual") == Some(&ConfigValue::Bool(true));
    let output = super::kernels::Output {
        ty: Scalar::F32,
        residual,
    };
    let fused: Vec<Planned> = out
        .iter()
        .flat_map(|p| {
            super::kernels::fusions_of(output, true)
                .into_iter()
                .filter_map(move |(norm, glu)| super::kernels::fused(p, norm, glu))
        })
        .collect();
    out.extend(fused);
    out
}

/// `base` with `best`'s values of the tunable parameters not `pinned`: a winner applied to the
/// configuration a caller runs (its element types and epilogue stay the caller's).
pub fn with_winner(spec: &KernelSpec, base: &Config, best: &Config, pinned: &[&str]) -> Config {
    spec.params
        .iter()
        .filter(|p| p.tunable && !pinned.contains(&p.name))
        .fold(base.clone(), |c, p| match best.get(p.name) {
            Some(v) => c.with(p.name, v.clone()),
            None => c,
        })
}

/// The configurations a loaded model uses in place of its defaults, from the tuning DB.
#[derive(Clone, Debug, Default)]
pub struct Tuned {
    /// (kernel, family configuration, shape) → the winner.
    winners: HashMap<(String, String, String), Config>,
    /// One line per site: what it runs and whether it was tuned (for `-v`).
    pub report: Vec<String>,
    /// Sites found in the DB, and sites in all.
    pub found: usize,
    pub sites: usize,
}

impl Tuned {
    /// No tuning: every kernel at its default configuration.
    pub fn none() -> Tuned {
        Tuned::default()
    }

    /// The winners `db` holds for `sites` on this device (`device`, `driver`), for code compiled
    /// by [`TuningDb::via`]. Entries of other devices, drivers, lowerings or kernel contents do
    /// not match; a winner that no longer parses as a
    /// configuration of its kernel is skipped (reported).
    pub fn resolve(
        db: &TuningDb,
        sites: &[Site],
        target: &'static Target,
        device: &str,
        driver: &str,
    ) -> Tuned {
        let mut t = Tuned {
            sites: sites.len(),
            ..Tuned::default()
        };
        for site in sites {
            let Ok(key) = site.key(target, db.via(), device, driver) else {
                continue;
            };
            let line = match db.lookup(&key).map(|e| (e, site.spec.config(&e.best))) {
                Some((e, Ok(best))) => {
                    t.found += 1;
                    let line = format!(
                        "{} {} {}: tuned [{}] ({:.1} us; default {})",
                        site.spec.name,
                        site.shape_text(),
                        site.role,
                        best,
                        e.best_us,
                        e.default_us.map_or("-".into(), |d| format!("{d:.1} us"))
                    );
                    t.winners.insert(
                        Tuned::key(site.spec, &site.family_config(), &site.shape),
                        best,
                    );
                    line
                }
                Some((e, Err(err))) => format!(
                    "{} {} {}: default (the DB's winner `{}` no longer parses: {err})",
                    site.spec.name,
                    site.shape_text(),
                    site.role,
                    e.best
                ),
                None => format!(
                    "{} {} {}: default [{}]",
                    site.spec.name,
                    site.shape_text(),
                    site.role,
                    site.base
                ),
            };
            t.report.push(line);
        }
        t
    }

    fn key(spec: &KernelSpec, family: &Config, shape: &[u32]) -> (String, String, String) {
        (spec.name.to_string(), family.to_string(), shape_text(shape))
    }

    /// `planned` at `shape`, replaced by its tuned winner when there is one: the winner's
    /// tunable values over `planned`'s other values.
    pub fn apply(&self, planned: Planned, shape: &[u32], pinned: &[&str]) -> Planned {
        if self.winners.is_empty() {
            return planned;
        }
        let site = Site {
            spec: planned.spec,
            base: planned.config.clone(),
            pinned: &[],
            shape: shape.to_vec(),
            role: String::new(),
        };
        let Some(best) = self
            .winners
            .get(&Tuned::key(planned.spec, &site.family_config(), shape))
        else {
            return planned;
        };
        Planned {
            spec: planned.spec,
            config: with_winner(planned.spec, &planned.config, best, pinned),
        }
    }

    /// Every winner, for the kernel plan (a bundle must hold what the model will ask for).
    pub fn winners(&self) -> impl Iterator<Item = &Config> {
        self.winners.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgmlType;
    use greta_runtime::tuning::{Entry, Outcome};

    #[test]
    fn prompts_map_to_the_nearest_bucket_above() {
        assert_eq!(prefill_bucket(9), 128);
        assert_eq!(prefill_bucket(128), 128);
        assert_eq!(prefill_bucket(129), 512);
        assert_eq!(prefill_bucket(2048), 2048);
        assert_eq!(prefill_bucket(100_000), 2048);
    }

    fn entry(key: TuneKey, kernel: &str, best: &str) -> Entry {
        let m = greta_runtime::tuning::Measurement {
            config: best.into(),
            outcome: Outcome::Timed,
            median_us: Some(1.0),
            launches: 1,
            note: None,
        };
        Entry::from_measurements(key, kernel, "", vec![m]).unwrap()
    }

    /// A model's sites cover its projections at decode and every prefill bucket, and a winner
    /// in the DB is what the model's projection then runs — for this device only.
    #[test]
    fn a_tuned_winner_is_what_the_model_runs() {
        let dir = tempfile::tempdir().unwrap();
        let g = crate::synth::tiny(dir.path(), GgmlType::F16, 1).unwrap();
        let cfg = LlamaConfig::from_gguf(&g).unwrap();
        let target = &Target::GFX942;
        let sites = sites(&g, &cfg, Scalar::F16, Attention::V4, target);
        let gemv = sites
            .iter()
            .find(|s| s.spec.name == "gemv" && s.role.starts_with("ffn_down"))
            .expect("a decode site for ffn_down");
        assert!(sites.iter().any(|s| s.spec.name == "gemm"
            && s.shape[0] == 2048
            && s.role.starts_with("ffn_down")));
        assert!(sites.iter().any(|s| s.spec.name == "rmsnorm"));
        let mut db = TuningDb::empty(dir.path().join("t.json"));
        db.record(entry(
            gemv.key(target, Via::Hip, "dev", "1").unwrap(),
            "gemv",
            "waves=8,rows=2",
        ));
        let tuned = Tuned::resolve(&db, &sites, target, "dev", "1");
        assert_eq!(tuned.found, 1);
        let (rows, cols) = (gemv.shape[1] as usize, gemv.shape[2] as usize);
        let w = WeightType::Dense(Scalar::F16);
        let out = Outputs::for_act(Scalar::F16).residual;
        for tokens in [1, 3, 8] {
            let p = super::super::kernels::projection(
                w,
                Scalar::F16,
                tokens,
                rows,
                cols,
                out,
                target,
                &tuned,
            );
            assert_eq!(
                (p.config.u32("waves"), p.config.u32("rows")),
                (8, 2),
                "{tokens}: {p}"
            );
            assert_eq!(p.config.u32("m_tile"), if tokens == 1 { 1 } else { 8 });
        }
        // Another device's or driver's entry is not used.
        let other = Tuned::resolve(&db, &sites, target, "other", "1");
        assert_eq!(other.found, 0);
        // Nor one timed on HIP code by a model running LLVM code.
        let llvm = db.with_via(Via::Llvm);
        assert_eq!(Tuned::resolve(&llvm, &sites, target, "dev", "1").found, 0);
        let p =
            super::super::kernels::projection(w, Scalar::F16, 1, rows, cols, out, target, &other);
        assert_eq!(p.config.u32("waves"), 4);
        // The plan (what a bundle holds, what a model loads) holds the winners.
        let plan = super::super::plan(&g, &cfg, Scalar::F16, Attention::V4, target, &tuned);
        let winner =
            super::super::kernels::projection(w, Scalar::F16, 1, rows, cols, out, target, &tuned);
        assert!(plan.contains(&winner), "{winner} is not planned");
    }
}
