//! libFuzzer target: `murmur_fuzz::peer_exchange`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| murmur_fuzz::peer_exchange(data));
