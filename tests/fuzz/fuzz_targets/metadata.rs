//! libFuzzer target: `murmur_fuzz::metadata`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| murmur_fuzz::metadata(data));
