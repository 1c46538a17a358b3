//! libFuzzer target: `murmur_fuzz::enr`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| murmur_fuzz::enr(data));
