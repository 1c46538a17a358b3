//! libFuzzer target: `murmur_fuzz::filter`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| murmur_fuzz::filter(data));
