//! Replays the committed corpus of every fuzz target, with every truncation
//! and a sweep of single-bit flips of each file: a short, deterministic
//! stand-in for a fuzzing run, on every `cargo test`.
//!
//! `cargo run -p murmur-fuzz --example write_seeds` writes the seed files
//! again (valid encodings of each format) after a format changes.

use std::{fs, path::PathBuf};

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

#[test]
fn every_target_survives_its_corpus_truncated_and_bit_flipped() {
    for (name, run) in murmur_fuzz::TARGETS {
        let dir = corpus(name);
        let files: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("readable entry").path())
            .collect();
        assert!(!files.is_empty(), "{name} has no corpus");
        for file in files {
            let data = fs::read(&file).expect("readable corpus file");
            run(&data);
            for len in 0..data.len() {
                run(&data[..len]);
            }
            let mut flipped = data.clone();
            for bit in (0..data.len() * 8).step_by(7) {
                flipped[bit / 8] ^= 1 << (bit % 8);
                run(&flipped);
                flipped[bit / 8] ^= 1 << (bit % 8);
            }
        }
    }
}
