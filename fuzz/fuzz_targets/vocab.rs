//! Fuzzed vocabularies through `Tokenizer::new`, then encode and decode (see
//! `greta_fuzz::vocab`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| greta_fuzz::vocab::exercise(data));
