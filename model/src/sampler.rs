//! Choosing the next token from logits: greedy (`temperature = 0`), or temperature sampling
//! after top-k and top-p filtering, with llama.cpp's repeat penalty. A seeded generator makes
//! sampled runs reproducible.
//!
//! Order of operations (as llama.cpp's default chain): repeat penalty, top-k, top-p,
//! temperature, then a draw from the renormalised distribution.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Sampling settings; [`SamplerConfig::validate`] rejects values that have no meaning.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerConfig {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p` (1: all).
    pub top_p: f32,
    /// Divide positive (multiply negative) logits of recently seen tokens by this (1: off).
    pub repeat_penalty: f32,
    /// How many recent tokens the repeat penalty looks at.
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplerError {
    #[error("temperature must be a finite number >= 0, got {0}")]
    Temperature(f32),
    #[error("top-p must be in (0, 1], got {0}")]
    TopP(f32),
    #[error("repeat penalty must be a finite number > 0, got {0}")]
    RepeatPenalty(f32),
}

impl SamplerConfig {
    pub fn validate(&self) -> Result<(), SamplerError> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(SamplerError::Temperature(self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(SamplerError::TopP(self.top_p));
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return Err(SamplerError::RepeatPenalty(self.repeat_penalty));
        }
        Ok(())
    }
}

pub struct Sampler {
    config: SamplerConfig,
    rng: StdRng,
}

impl Sampler {
    pub fn new(config: SamplerConfig) -> Result<Sampler, SamplerError> {
        config.validate()?;
        let rng = StdRng::seed_from_u64(config.seed);
        Ok(Sampler { config, rng })
    }

    /// The next token given the logits of the last position and the tokens so far.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let mut logits = logits.to_vec();
        self.apply_repeat_penalty(&mut logits, history);
        if self.config.temperature == 0.0 {
            return argmax(&logits);
        }
        // Candidates sorted by logit, highest first (ties: lower id first, for determinism).
        let mut cand: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, l))
            .collect();
        cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if self.config.top_k > 0 && self.config.top_k < cand.len() {
            cand.truncate(self.config.top_k);
        }
        let probs = softmax(&cand.iter().map(|c| c.1).collect::<Vec<_>>(), 1.0);
        if self.config.top_p < 1.0 {
            let mut cum = 0.0;
            let mut keep = cand.len();
            for (i, p) in probs.iter().enumerate() {
                cum += p;
                if cum >= self.config.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
            cand.truncate(keep.max(1));
        }
        let probs = softmax(
            &cand.iter().map(|c| c.1).collect::<Vec<_>>(),
            self.config.temperature,
        );
        let r: f64 = self.rng.gen();
        let mut cum = 0.0;
        for (c, p) in cand.iter().zip(&probs) {
            cum += p;
            if r < cum {
                return c.0;
            }
        }
        cand.last().map_or(0, |c| c.0)
    }

    fn apply_repeat_penalty(&self, logits: &mut [f32], history: &[u32]) {
        let penalty = self.config.repeat_penalty;
        if penalty == 1.0 {
            return;
        }
        let start = history.len().saturating_sub(self.config.repeat_last_n);
        let mut seen = std::collections::HashSet::new();
        for &t in &history[start..] {
            if seen.insert(t) {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
                }
            }
        }
    }
}

/// The index of the largest logit (the lowest index among equals; NaN never wins).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] || logits[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

fn softmax(logits: &[f32], temperature: f32) -> Vec<f64> {
    let t = temperature as f64;
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = logits
        .iter()
        .map(|&l| ((l as f64 - max) / t).exp())
        .collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|x| x / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(temperature: f32) -> SamplerConfig {
        SamplerConfig {
            temperature,
            seed: 7,
            ..SamplerConfig::default()
        }
    }

    #[test]
    fn greedy_takes_the_argmax_and_the_first_of_ties() {
        let mut s = Sampler::new(cfg(0.0)).unwrap();
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 3.0], &[]), 1);
    }

    #[test]
    fn the_same_seed_gives_the_same_tokens_and_another_seed_differs() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let run = |seed| {
            let mut s = Sampler::new(SamplerConfig {
                seed,
                top_k: 0,
                top_p: 1.0,
                temperature: 1.0,
                ..cfg(1.0)
            })
            .unwrap();
            (0..50).map(|_| s.sample(&logits, &[])).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn top_k_1_is_greedy_whatever_the_temperature() {
        let mut s = Sampler::new(SamplerConfig {
            top_k: 1,
            ..cfg(5.0)
        })
        .unwrap();
        for _ in 0..20 {
            assert_eq!(s.sample(&[0.0, 1.0, 0.5], &[]), 1);
        }
    }

    #[test]
    fn top_p_drops_the_unlikely_tail() {
        // p = softmax([10, 9, 0, 0]) ≈ [0.73, 0.27, 3e-5, 3e-5]: top-p 0.9 keeps ids 0 and 1.
        let mut s = Sampler::new(SamplerConfig {
            top_k: 0,
            top_p: 0.9,
            ..cfg(1.0)
        })
        .unwrap();
        for _ in 0..200 {
            assert!(s.sample(&[10.0, 9.0, 0.0, 0.0], &[]) < 2);
        }
    }

    #[test]
    fn repeat_penalty_demotes_seen_tokens() {
        let mut s = Sampler::new(SamplerConfig {
            repeat_penalty: 2.0,
            ..cfg(0.0)
        })
        .unwrap();
        // 3.0 / 2 = 1.5 < 2.0: token 0, seen, loses to token 1.
        assert_eq!(s.sample(&[3.0, 2.0], &[0]), 1);
        assert_eq!(s.sample(&[3.0, 2.0], &[1]), 0);
    }

    #[test]
    fn meaningless_settings_are_rejected() {
        assert!(matches!(
            Sampler::new(cfg(-1.0)),
            Err(SamplerError::Temperature(_))
        ));
        assert!(Sampler::new(SamplerConfig {
            top_p: 0.0,
            ..cfg(1.0)
        })
        .is_err());
        assert!(Sampler::new(SamplerConfig {
            top_p: 1.5,
            ..cfg(1.0)
        })
        .is_err());
        assert!(Sampler::new(SamplerConfig {
            repeat_penalty: 0.0,
            ..cfg(1.0)
        })
        .is_err());
        assert!(Sampler::new(cfg(f32::NAN)).is_err());
    }
}
