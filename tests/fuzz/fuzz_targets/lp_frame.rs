//! libFuzzer target: `murmur_fuzz::lp_frame`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| murmur_fuzz::lp_frame(data));
