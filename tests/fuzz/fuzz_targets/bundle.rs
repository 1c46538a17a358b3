//! libFuzzer target: `murmur_fuzz::bundle`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| murmur_fuzz::bundle(data));
