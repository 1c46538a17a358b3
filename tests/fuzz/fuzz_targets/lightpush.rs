//! libFuzzer target: `murmur_fuzz::lightpush`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| murmur_fuzz::lightpush(data));
