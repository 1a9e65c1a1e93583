//! Any bytes through the GGUF reader; on success, every accessor (see `greta_fuzz::gguf`).
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target, fuzzer_mutate};

fuzz_target!(|data: &[u8]| greta_fuzz::gguf::exercise(data));

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    greta_fuzz::mutator::mutate(data, size, max_size, seed, &mut fuzzer_mutate)
});
