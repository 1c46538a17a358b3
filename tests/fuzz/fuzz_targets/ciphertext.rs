//! libFuzzer target: `murmur_fuzz::ciphertext`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| murmur_fuzz::ciphertext(data));
