//! libFuzzer target: `murmur_fuzz::store`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| murmur_fuzz::store(data));
