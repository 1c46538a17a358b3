//! libFuzzer target: `murmur_fuzz::envelope`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| murmur_fuzz::envelope(data));
