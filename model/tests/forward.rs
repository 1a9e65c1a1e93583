//! The kernel forward pass (CPU backend: the generated kernels on the interpreter) against the
//! plain f64 reference forward pass, on the real stories260K model: logits within 1e-4 at every
//! position (prefill) and at every decode step (KV cache), and greedy decoding token for token.

use greta_dsl::ir::Scalar;
use greta_dsl::Target;
use greta_model::gguf::GgufFile;
use greta_model::llama::reference::Reference;
use greta_model::llama::{Attention, Model, ModelOptions};
use greta_model::sampler::argmax;
use greta_model::tokenizer::Tokenizer;
use greta_runtime::cpu::CpuBackend;
use std::path::Path;

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/models/stories260K.gguf"
);

fn load(file: &GgufFile, target: &'static Target, context: usize) -> Model {
    load_as(file, target, context, None)
}

fn load_as(
    file: &GgufFile,
    target: &'static Target,
    context: usize,
    activations: Option<Scalar>,
) -> Model {
    load_with(file, target, context, activations, Attention::default())
}

fn load_with(
    file: &GgufFile,
    target: &'static Target,
    context: usize,
    activations: Option<Scalar>,
    attention: Attention,
) -> Model {
    Model::load(
        file,
        Box::new(CpuBackend::new(target)),
        &|_| Ok(None),
        &ModelOptions {
            context,
            activations,
            attention,
            sequences: 1,
            trace: Default::default(),
            tuning: None,
        },
        &mut |_, _| {},
    )
    .unwrap()
}

fn max_diff(a: &[f32], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn kernel_logits_match_the_reference_in_prefill_and_decode() {
    let file = GgufFile::open(Path::new(MODEL)).unwrap();
    let tok = Tokenizer::from_gguf(&file).unwrap();
    let reference = Reference::new(&file).unwrap();

    // Greedy tokens from the reference alone (independent of the kernels).
    let mut tokens = tok.encode("Once upon a time", true);
    let prompt_len = tokens.len();
    for _ in 0..12 {
        let logits = reference.logits(&tokens);
        let last = logits.last().unwrap();
        let best = last
            .iter()
            .enumerate()
            .fold(0, |b, (i, v)| if *v > last[b] { i } else { b });
        tokens.push(best as u32);
    }
    let want = reference.logits(&tokens);

    for (target, attention) in Target::ALL
        .into_iter()
        .flat_map(|t| [Attention::V1, Attention::V2, Attention::V3].map(|a| (t, a)))
    {
        let load = |file, target, context| load_with(file, target, context, None, attention);
        // Prefill of everything at once: every position's logits.
        let mut model = load(&file, target, 64);
        let all = model.forward_all(&tokens, 0).unwrap();
        let prefill_diff = all
            .iter()
            .zip(&want)
            .map(|(a, b)| max_diff(a, b))
            .fold(0.0, f64::max);
        eprintln!(
            "{target}, attention {attention}: prefill max |logit - reference| = {prefill_diff:.2e}"
        );
        assert!(
            prefill_diff < 1e-4,
            "{target}, attention {attention}: prefill differs by {prefill_diff}"
        );

        // Prompt prefill, then one token at a time through the KV cache, greedy.
        let mut model = load(&file, target, 64);
        let mut logits = model.forward(&tokens[..prompt_len], 0).unwrap();
        let mut decode_diff = max_diff(&logits, &want[prompt_len - 1]);
        for pos in prompt_len..tokens.len() {
            assert_eq!(
                argmax(&logits),
                tokens[pos],
                "{target}: greedy token at position {pos}"
            );
            logits = model.forward(&tokens[pos..pos + 1], pos).unwrap();
            decode_diff = decode_diff.max(max_diff(&logits, &want[pos]));
        }
        eprintln!(
            "{target}, attention {attention}: decode max |logit - reference| = {decode_diff:.2e}"
        );
        assert!(
            decode_diff < 1e-4,
            "{target}, attention {attention}: decode differs by {decode_diff}"
        );
    }
}

#[test]
fn positions_past_the_context_and_unknown_tokens_are_errors() {
    let file = GgufFile::open(Path::new(MODEL)).unwrap();
    let mut model = load(&file, &Target::GFX942, 4);
    assert!(model.forward(&[1, 2, 3, 4, 5], 0).is_err());
    assert!(model
        .forward(&[1, 600], 0)
        .unwrap_err()
        .to_string()
        .contains("600"));
    assert!(model
        .forward(&[1], 4)
        .unwrap_err()
        .to_string()
        .contains("context"));
    assert!(model.forward(&[], 0).is_err());
}

/// The other weight types of the f32-activation kernel path — F16, BF16 and Q8_0 (dequantised
/// inside the matmul and embedding kernels) — on a synthesized tiny model, against the
/// reference on the same weights.
#[test]
fn f16_bf16_and_q8_0_weights_match_the_reference() {
    use greta_model::gguf::GgmlType;
    let dir = tempfile::tempdir().unwrap();
    for ty in [GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0] {
        let file = greta_model::synth::tiny(dir.path(), ty, 3).unwrap();
        let reference = Reference::new(&file).unwrap();
        let tokens = [1u32, 17, 300, 42, 7, 99];
        let want = reference.logits(&tokens);
        let mut model = load_as(&file, &Target::SM_90, 16, Some(Scalar::F32));
        let got = model.forward_all(&tokens, 0).unwrap();
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| max_diff(a, b))
            .fold(0.0, f64::max);
        let scale = want.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
        eprintln!(
            "{}: max |logit - reference| = {diff:.2e} (logits up to {scale:.2})",
            ty.name()
        );
        assert!(
            diff < 1e-4 * scale.max(1.0),
            "{}: differs by {diff}",
            ty.name()
        );
    }
}

/// Half-precision activations on stories260K: the GEMM (prefill of more than eight tokens) and
/// GEMV (decode) paths against the f64 reference, for f16 and bf16 on both wave sizes, with the
/// fused attention on SIMT lanes (v2) and on matrix cores (v4: the head of 8 padded to 16).
#[test]
fn half_activations_track_the_reference() {
    let file = GgufFile::open(Path::new(MODEL)).unwrap();
    let tok = Tokenizer::from_gguf(&file).unwrap();
    let reference = Reference::new(&file).unwrap();
    let mut tokens = tok.encode("Once upon a time, there was a little girl named", true);
    assert!(
        tokens.len() > greta_model::llama::GEMV_MAX_TOKENS,
        "the prompt takes the GEMM path"
    );
    let prompt_len = tokens.len();
    for _ in 0..6 {
        let logits = reference.logits(&tokens);
        let last = logits.last().unwrap();
        let best = last
            .iter()
            .enumerate()
            .fold(0, |b, (i, v)| if *v > last[b] { i } else { b });
        tokens.push(best as u32);
    }
    let want = reference.logits(&tokens);
    let scale = want.iter().flatten().fold(0.0f64, |m, v| m.max(v.abs()));
    for act in [Scalar::F16, Scalar::BF16] {
        // Each activation is rounded to `act` after every kernel (unit roundoff u = 2^-11 for
        // f16, 2^-8 for bf16) through 5 layers, the KV cache too; the measured errors are up to
        // 2·u·scale (f16, 2.1e-2) and 1.7·u·scale (bf16, 1.4e-1) with logits up to 22, so the
        // error scales with u as it should; 4·u·scale leaves a margin of 2-2.4 while a real
        // defect (a wrong row, a missed residual) moves logits by the order of the scale.
        let u = if act == Scalar::F16 {
            2f64.powi(-11)
        } else {
            2f64.powi(-8)
        };
        let tolerance = 4.0 * u * scale;
        for (target, attention) in Target::ALL
            .into_iter()
            .flat_map(|t| [Attention::V2, Attention::V3, Attention::V4].map(|a| (t, a)))
        {
            let mut model = load_with(&file, target, 64, Some(act), attention);
            let mut logits = model.forward(&tokens[..prompt_len], 0).unwrap();
            let mut worst = max_diff(&logits, &want[prompt_len - 1]);
            let mut agree = 0;
            for pos in prompt_len..tokens.len() {
                agree += (argmax(&logits) == tokens[pos]) as usize;
                logits = model.forward(&tokens[pos..pos + 1], pos).unwrap();
                worst = worst.max(max_diff(&logits, &want[pos]));
            }
            eprintln!(
                "{act} on {target}, attention {attention}: max |logit - reference| = {worst:.3e} \
                 (tolerance {tolerance:.3e}, logits up to {scale:.1}), greedy agreement {agree}/{}",
                tokens.len() - prompt_len
            );
            assert!(
                worst <= tolerance,
                "{act} on {target}, attention {attention}: {worst} > {tolerance}"
            );
            assert_eq!(
                agree,
                tokens.len() - prompt_len,
                "{act} on {target}, attention {attention}: greedy tokens"
            );
        }
    }
}

/// Batched decode is batch-invariant: sequences of different lengths decoded together give,
/// bit for bit, the logits each gives decoded alone — at every activation type, with both
/// decode attentions (scores in memory, V1; split-K, every other variant), with a step of more
/// sequences than one launch takes (`GEMV_MAX_TOKENS`, 8), on a synthesized tiny model. A slot out of range or named twice in a step is an error.
#[test]
fn sequences_decoded_together_equal_each_decoded_alone() {
    use greta_model::gguf::GgmlType;
    use greta_model::llama::DecodeStep;
    let dir = tempfile::tempdir().unwrap();
    let file = greta_model::synth::tiny(dir.path(), GgmlType::F16, 3).unwrap();
    let sequences = 9;
    // Prompts of lengths 1..=9 (prefill by GEMV and by GEMM), distinct tokens.
    let prompts: Vec<Vec<u32>> = (0..sequences)
        .map(|i| {
            (0..=i as u32)
                .map(|j| 3 + (7 * i as u32 + 5 * j) % 60)
                .collect()
        })
        .collect();
    for act in [Scalar::F32, Scalar::F16, Scalar::BF16] {
        for attention in [Attention::V1, Attention::V4] {
            let what = format!("{act}, attention {attention}");
            let load = |sequences| {
                Model::load(
                    &file,
                    Box::new(CpuBackend::new(&Target::SM_90)),
                    &|_| Ok(None),
                    &ModelOptions {
                        context: 16,
                        activations: Some(act),
                        attention,
                        sequences,
                        trace: Default::default(),
                        tuning: None,
                    },
                    &mut |_, _| {},
                )
                .unwrap()
            };
            // Each sequence alone (one slot, reused: a prompt at 0 rewrites what the next
            // passes read): its prompt, then two decode steps of fixed tokens.
            let mut alone = Vec::new();
            let mut m = load(1);
            for p in &prompts {
                m.forward(p, 0).unwrap();
                let a = m.forward(&[11], p.len()).unwrap();
                let b = m.forward(&[12], p.len() + 1).unwrap();
                alone.push((a, b));
            }
            let mut m = load(sequences);
            for (slot, p) in prompts.iter().enumerate() {
                m.forward_in(slot, p, 0).unwrap();
            }
            for (k, token) in [11, 12].into_iter().enumerate() {
                let steps: Vec<DecodeStep> = prompts
                    .iter()
                    .enumerate()
                    .map(|(slot, p)| DecodeStep {
                        slot,
                        token,
                        pos: p.len() + k,
                    })
                    .collect();
                let together = m.decode(&steps).unwrap();
                for (slot, logits) in together.iter().enumerate() {
                    let want = if k == 0 {
                        &alone[slot].0
                    } else {
                        &alone[slot].1
                    };
                    let same = logits
                        .iter()
                        .zip(want)
                        .all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "{what}: sequence {slot}, step {k} differs from alone");
                }
            }
            let step = |slot| DecodeStep {
                slot,
                token: 1,
                pos: 15,
            };
            let err = m.decode(&[step(sequences)]).unwrap_err().to_string();
            assert!(err.contains(&sequences.to_string()), "{what}: {err}");
            let err = m.decode(&[step(1), step(1)]).unwrap_err().to_string();
            assert!(err.contains("slot 1"), "{what}: {err}");
        }
    }
}
