//! What `greta bench -m` runs, as pure functions so that its rules are unit-tested without a
//! model: the tests (in llama-bench's order) and their labels, the context they need, the runs
//! of forward passes of each test — which are timed and which are not — and the token ids fed.
//!
//! The KV cache is indexed by position, so a test needs no cleared state: it writes positions
//! `depth..` and attention at a position reads only the positions before it. The context of a
//! depth (`@ dN`) is one fixed token sequence, of which depth `N` takes the first `N`; whatever
//! the cache holds of it at `0..valid` is reused, and only the missing part is prefilled,
//! untimed — what llama-bench gets by saving and restoring the state after its depth run.

use std::ops::Range;

/// One llama-bench test: `n_prompt` tokens in passes of the batch size (`pp`), or `n_gen`
/// single-token decode steps (`tg`), after `n_depth` tokens already in the KV cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Test {
    pub n_prompt: usize,
    pub n_gen: usize,
    pub n_depth: usize,
}

impl Test {
    /// llama-bench's label: `pp512`, `tg128`, with ` @ d16384` at a depth.
    pub fn label(&self) -> String {
        let name = match (self.n_prompt, self.n_gen) {
            (p, 0) => format!("pp{p}"),
            (0, n) => format!("tg{n}"),
            (p, n) => format!("pp{p}+tg{n}"),
        };
        match self.n_depth {
            0 => name,
            d => format!("{name} @ d{d}"),
        }
    }

    /// The tokens a sample processes: what tokens/s counts (the depth is not counted).
    pub fn tokens(&self) -> usize {
        self.n_prompt.saturating_add(self.n_gen)
    }

    /// The KV-cache positions the test uses: its depth, then its tokens (saturating: an
    /// absurd size is refused by [`context`], not wrapped around).
    pub fn positions(&self) -> usize {
        self.n_depth.saturating_add(self.tokens())
    }
}

/// The tests of `-p`, `-n` and `-d`, in llama-bench's order: per depth, each prompt test, then
/// each generation test. A size of 0 is no test of that kind (`-n 0`: prompts only).
pub fn tests(prompts: &[usize], gens: &[usize], depths: &[usize]) -> Vec<Test> {
    let mut tests = Vec::new();
    for &n_depth in depths {
        for &n_prompt in prompts.iter().filter(|&&p| p > 0) {
            tests.push(Test {
                n_prompt,
                n_gen: 0,
                n_depth,
            });
        }
        for &n_gen in gens.iter().filter(|&&n| n > 0) {
            tests.push(Test {
                n_prompt: 0,
                n_gen,
                n_depth,
            });
        }
    }
    tests
}

/// The context (KV-cache positions) to load a model with: `given` (`-c`), else what the
/// largest test needs; an error naming the test when that does not fit `given`. A context past
/// the model's training context is allowed (with a warning, as `greta run` and llama-bench do):
/// tg128 at depth 16384 on a 4096-token model measures speed, not text.
pub fn context(tests: &[Test], given: Option<usize>) -> Result<usize, String> {
    let Some(largest) = tests.iter().max_by_key(|t| t.positions()) else {
        return Err("no tests: every -p and -n value is 0".into());
    };
    let need = largest.positions();
    let why = || {
        format!(
            "`{}` needs {need} positions (depth {} + {} tokens)",
            largest.label(),
            largest.n_depth,
            largest.tokens()
        )
    };
    match given {
        None => Ok(need),
        Some(c) if c < need => Err(format!(
            "-c/--ctx-size {c} is too small: {}; leave -c out to size it to the tests",
            why()
        )),
        Some(c) => Ok(c),
    }
}

/// What a forward pass is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The depth's context tokens, untimed (llama-bench's prefill before an `@ dN` test).
    Depth,
    /// The untimed warm-up before the samples (llama-bench's: the whole prompt of a `pp` test,
    /// one step of a `tg` test).
    Warmup,
    /// Repetition `rep`: its passes are timed together, as one sample.
    Sample(usize),
}

/// A run of forward passes with one role, executed (and, for a sample, timed) as a whole: the
/// tokens at KV-cache `positions`, `step` tokens a pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub role: Role,
    pub positions: Range<usize>,
    pub step: usize,
}

impl Run {
    /// The positions of each pass, in order.
    pub fn passes(&self) -> impl Iterator<Item = Range<usize>> {
        let (range, step) = (self.positions.clone(), self.step);
        range
            .clone()
            .step_by(step)
            .map(move |start| start..start.saturating_add(step).min(range.end))
    }
}

/// The runs of `test` with `reps` samples after its warm-up, prompts (and the depth) cut into
/// passes of at most `batch` tokens (`-b`), when the KV cache holds the depth context at
/// positions `0..valid`; and how much of it the cache holds after the test (its depth: the
/// test overwrote what was above). Lazy: `-r` costs no memory.
pub fn runs(
    test: &Test,
    reps: usize,
    batch: usize,
    valid: usize,
) -> (impl Iterator<Item = Run>, usize) {
    assert!(batch > 0, "a pass holds at least one token");
    let depth = test.n_depth;
    let prefill = (valid < depth).then(|| Run {
        role: Role::Depth,
        positions: valid..depth,
        step: batch,
    });
    // A prompt in passes of the batch size; generation one token a pass.
    let (tokens, step) = match test.n_prompt {
        0 => (test.n_gen, 1),
        p => (p, batch),
    };
    let warmup_tokens = if test.n_prompt > 0 { tokens } else { 1 };
    let body = move |role: Role, tokens: usize| Run {
        role,
        positions: depth..depth.saturating_add(tokens),
        step,
    };
    let all = prefill
        .into_iter()
        .chain(std::iter::once(body(Role::Warmup, warmup_tokens)))
        .chain((0..reps).map(move |rep| body(Role::Sample(rep), tokens)));
    (all, depth)
}

/// The token ids fed: random ids of the vocabulary from a fixed seed (llama-bench feeds
/// `rand() % n_vocab`), the BOS token first when the model adds one — at position 0 of the
/// depth context, and at the start of each test, as llama-bench does. SplitMix64: cheap, and
/// every run of the bench feeds the same tokens.
pub struct Tokens {
    state: u64,
    vocab: u64,
    bos: Option<u32>,
}

impl Tokens {
    pub fn new(seed: u64, vocab: usize, bos: Option<u32>) -> Tokens {
        Tokens {
            state: seed,
            vocab: vocab.max(1) as u64,
            bos,
        }
    }

    fn random(&mut self) -> u32 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % self.vocab) as u32
    }

    /// Ids for `positions`, the BOS token (if any) at position `first`.
    pub fn take(&mut self, positions: Range<usize>, first: usize) -> Vec<u32> {
        positions
            .map(|p| match self.bos {
                Some(bos) if p == first => bos,
                _ => self.random(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n_prompt: usize, n_gen: usize, n_depth: usize) -> Test {
        Test {
            n_prompt,
            n_gen,
            n_depth,
        }
    }

    #[test]
    fn tests_come_in_llama_bench_order_with_its_labels() {
        let all = tests(&[16, 0], &[4], &[0, 8]);
        let labels: Vec<String> = all.iter().map(Test::label).collect();
        assert_eq!(labels, ["pp16", "tg4", "pp16 @ d8", "tg4 @ d8"]);
        assert_eq!(all[3], t(0, 4, 8));
        assert!(tests(&[0], &[0], &[0]).is_empty());
        assert_eq!(t(512, 128, 0).label(), "pp512+tg128");
    }

    #[test]
    fn the_context_fits_the_largest_test_or_says_which_does_not_fit() {
        let all = tests(&[512], &[128], &[0, 1024]);
        assert_eq!(context(&all, None), Ok(1536));
        assert_eq!(context(&all, Some(2000)), Ok(2000));
        let small = context(&all, Some(1000)).unwrap_err();
        assert!(
            small.contains("-c/--ctx-size 1000") && small.contains("`pp512 @ d1024` needs 1536"),
            "{small}"
        );
        assert!(context(&[], None).unwrap_err().contains("no tests"));
    }

    fn all(test: Test, reps: usize, batch: usize, valid: usize) -> (Vec<Run>, usize) {
        let (runs, after) = runs(&test, reps, batch, valid);
        (runs.collect(), after)
    }

    fn passes(run: &Run) -> Vec<Range<usize>> {
        run.passes().collect()
    }

    /// The timing rule: a depth's prefill is its own untimed run before the warm-up, never
    /// part of a sample; each `tg` sample is its single-token steps above the depth.
    #[test]
    fn a_depth_prefill_is_never_inside_a_timed_sample() {
        let (runs, valid) = all(t(0, 4, 8), 2, 3, 0);
        assert_eq!(valid, 8);
        let roles: Vec<Role> = runs.iter().map(|r| r.role).collect();
        assert_eq!(
            roles,
            [Role::Depth, Role::Warmup, Role::Sample(0), Role::Sample(1)]
        );
        assert_eq!(passes(&runs[0]), [0..3, 3..6, 6..8]);
        assert_eq!(passes(&runs[1]), [8..9], "tg warms up with one step");
        for sample in &runs[2..] {
            assert_eq!(passes(sample), [8..9, 9..10, 10..11, 11..12]);
        }
    }

    #[test]
    fn prompts_run_in_batches_and_a_held_depth_is_not_prefilled_again() {
        let (held, valid) = all(t(5, 0, 8), 1, 2, 8);
        assert_eq!(valid, 8);
        assert_eq!(held.len(), 2, "a warm-up and a sample: {held:?}");
        assert_eq!(held[0].role, Role::Warmup);
        assert_eq!(
            passes(&held[0]),
            passes(&held[1]),
            "pp warms up with the whole prompt"
        );
        assert_eq!(passes(&held[1]), [8..10, 10..12, 12..13]);
        // Only the part of a deeper context that the cache lacks is prefilled.
        let (deeper, _) = all(t(5, 0, 12), 1, 64, 8);
        let prefill = Run {
            role: Role::Depth,
            positions: 8..12,
            step: 64,
        };
        assert_eq!(deeper[0], prefill);
        // A shallower test keeps only its depth of the context.
        assert_eq!(all(t(0, 1, 4), 1, 64, 12).1, 4);
        // Absurd sizes neither overflow nor allocate.
        let (mut many, _) = runs(&t(usize::MAX, 0, usize::MAX), usize::MAX, 1, 0);
        assert_eq!(many.nth(1).unwrap().positions, usize::MAX..usize::MAX);
    }

    #[test]
    fn tokens_are_fixed_in_the_vocabulary_with_bos_first() {
        let a = Tokens::new(7, 10, Some(1)).take(0..100, 0);
        assert_eq!(a, Tokens::new(7, 10, Some(1)).take(0..100, 0));
        assert_eq!(a[0], 1);
        assert!(a.iter().all(|&id| id < 10));
        assert_ne!(a[1..50], a[50..99]);
        let b = Tokens::new(7, 10, None).take(3..6, 3);
        assert_eq!(b.len(), 3);
    }
}
