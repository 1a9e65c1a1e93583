//! The plain-Rust reference forward pass: obvious loops, f64 arithmetic, weights dequantised to
//! f64. It shares nothing with the kernel path but the GGUF reader, so agreement between the two
//! is evidence that the generated kernels and their orchestration are right. Slow by design:
//! for tests on small models.

use super::config::LlamaConfig;
use crate::gguf::{self, GgufFile};
use std::collections::HashMap;

pub struct Reference {
    cfg: LlamaConfig,
    weights: HashMap<String, Vec<f64>>,
    output: &'static str,
}

fn dequant(g: &GgufFile, name: &str) -> Vec<f64> {
    let t = g
        .tensor(name)
        .unwrap_or_else(|| panic!("reference: tensor {name} missing (check the model first)"));
    let n: u64 = t.dims.iter().product();
    let mut out = vec![0f32; n as usize];
    gguf::dequantize_row(t.ty, g.tensor_data(t), &mut out).expect("supported type (checked)");
    out.into_iter().map(f64::from).collect()
}

impl Reference {
    /// Loads every weight of a checked model (see [`super::weights::check`]).
    pub fn new(g: &GgufFile) -> Result<Reference, super::LoadError> {
        let cfg = LlamaConfig::from_gguf(g)?;
        let output = super::weights::check(g, &cfg)?;
        let mut weights = HashMap::new();
        for e in super::weights::expected(&cfg) {
            weights.insert(e.name.clone(), dequant(g, &e.name));
        }
        if output == "output.weight" {
            weights.insert(output.to_string(), dequant(g, output));
        }
        Ok(Reference {
            cfg,
            weights,
            output,
        })
    }

    fn w(&self, name: &str) -> &[f64] {
        &self.weights[name]
    }

    /// Logits at every position of `tokens` (processed from position 0).
    pub fn logits(&self, tokens: &[u32]) -> Vec<Vec<f64>> {
        let c = &self.cfg;
        let (d, hd) = (c.dim, c.head_dim);
        let group = c.n_heads / c.n_kv_heads;
        let mut k_cache = vec![Vec::<f64>::new(); c.n_layers];
        let mut v_cache = vec![Vec::<f64>::new(); c.n_layers];
        let mut all = Vec::new();
        for (pos, &tok) in tokens.iter().enumerate() {
            let mut x =
                self.w("token_embd.weight")[tok as usize * d..(tok as usize + 1) * d].to_vec();
            for l in 0..c.n_layers {
                let name = |s: &str| format!("blk.{l}.{s}");
                let xn = rmsnorm(&x, self.w(&name("attn_norm.weight")), c.rms_eps as f64);
                let mut q = matvec(self.w(&name("attn_q.weight")), &xn, c.q_dim());
                let mut k = matvec(self.w(&name("attn_k.weight")), &xn, c.kv_dim());
                let v = matvec(self.w(&name("attn_v.weight")), &xn, c.kv_dim());
                for h in 0..c.n_heads {
                    rope(
                        &mut q[h * hd..(h + 1) * hd],
                        pos,
                        c.rope_dims,
                        c.rope_base as f64,
                    );
                }
                for h in 0..c.n_kv_heads {
                    rope(
                        &mut k[h * hd..(h + 1) * hd],
                        pos,
                        c.rope_dims,
                        c.rope_base as f64,
                    );
                }
                k_cache[l].extend_from_slice(&k);
                v_cache[l].extend_from_slice(&v);
                let mut att = vec![0.0; c.q_dim()];
                let scale = 1.0 / (hd as f64).sqrt();
                for h in 0..c.n_heads {
                    let kvh = h / group;
                    let qh = &q[h * hd..(h + 1) * hd];
                    let scores: Vec<f64> = (0..=pos)
                        .map(|p| {
                            let kp = &k_cache[l][(p * c.n_kv_heads + kvh) * hd..][..hd];
                            qh.iter().zip(kp).map(|(a, b)| a * b).sum::<f64>() * scale
                        })
                        .collect();
                    let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for (p, w) in e.iter().enumerate() {
                        let vp = &v_cache[l][(p * c.n_kv_heads + kvh) * hd..][..hd];
                        for i in 0..hd {
                            att[h * hd + i] += w / sum * vp[i];
                        }
                    }
                }
                let o = matvec(self.w(&name("attn_output.weight")), &att, d);
                x.iter_mut().zip(&o).for_each(|(a, b)| *a += b);
                let xn = rmsnorm(&x, self.w(&name("ffn_norm.weight")), c.rms_eps as f64);
                let g = matvec(self.w(&name("ffn_gate.weight")), &xn, c.ffn_dim);
                let u = matvec(self.w(&name("ffn_up.weight")), &xn, c.ffn_dim);
                let hsw: Vec<f64> = g
                    .iter()
                    .zip(&u)
                    .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                    .collect();
                let down = matvec(self.w(&name("ffn_down.weight")), &hsw, d);
                x.iter_mut().zip(&down).for_each(|(a, b)| *a += b);
            }
            let xn = rmsnorm(&x, self.w("output_norm.weight"), c.rms_eps as f64);
            all.push(matvec(self.w(self.output), &xn, c.vocab));
        }
        all
    }
}

fn rmsnorm(x: &[f64], w: &[f64], eps: f64) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let inv = 1.0 / (ms + eps).sqrt();
    x.iter().zip(w).map(|(a, b)| a * inv * b).collect()
}

/// `W · x` for W stored as `rows` rows of `x.len()` (GGUF: ne[0] is the input dimension).
fn matvec(w: &[f64], x: &[f64], rows: usize) -> Vec<f64> {
    let k = x.len();
    (0..rows)
        .map(|r| {
            w[r * k..(r + 1) * k]
                .iter()
                .zip(x)
                .map(|(a, b)| a * b)
                .sum()
        })
        .collect()
}

/// GGUF Llama layout: adjacent pairs (x[2i], x[2i+1]) turn by pos · base^(-2i/rot_dims).
fn rope(x: &mut [f64], pos: usize, rot_dims: usize, base: f64) {
    for i in 0..rot_dims / 2 {
        let theta = pos as f64 * base.powf(-2.0 * i as f64 / rot_dims as f64);
        let (s, c) = theta.sin_cos();
        let (a, b) = (x[2 * i], x[2 * i + 1]);
        x[2 * i] = a * c - b * s;
        x[2 * i + 1] = a * s + b * c;
    }
}
