//! Any bytes through what `greta run` does before it needs a device: the GGUF reader, the
//! tokenizer, the Llama configuration, the tensor checks, the kernel plan (see
//! `greta_fuzz::run`).
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target, fuzzer_mutate};

fuzz_target!(|data: &[u8]| greta_fuzz::run::exercise(data));

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    greta_fuzz::mutator::mutate(data, size, max_size, seed, &mut fuzzer_mutate)
});
