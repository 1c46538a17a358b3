//! libFuzzer target: `murmur_fuzz::group_message`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| murmur_fuzz::group_message(data));
