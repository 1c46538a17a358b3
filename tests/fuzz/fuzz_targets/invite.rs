//! libFuzzer target: `murmur_fuzz::invite`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| murmur_fuzz::invite(data));
