//! Any text and ids through the stories260K tokenizer (see `greta_fuzz::tokenizer`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| greta_fuzz::tokenizer::exercise(data));
