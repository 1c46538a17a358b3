//! libFuzzer target: `murmur_fuzz::state`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| murmur_fuzz::state(data));
