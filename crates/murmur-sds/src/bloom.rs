//! The acknowledgement filter, bit for bit as `@waku/sds` 0.0.8 builds it:
//! 150,000 bits (10,000 ids at a 0.1% false-positive rate), ten probes from
//! Nim's string hash (MurmurHash3 x86_32, seed 0) by double hashing, words
//! of 64 bits written big-endian. What goes in is the id as text, not the
//! bytes it spells.

/// Ids the filter is sized for.
pub const CAPACITY: usize = 10_000;
/// Bits, and the modulus of every probe.
pub const BITS: u64 = 150_000;
/// Probes per id.
pub const HASHES: u64 = 10;
/// 64-bit words, as js-waku counts them (one more than the bits need when
/// they divide evenly, which they do not here).
const WORDS: usize = 1 + (BITS / 64) as usize;
/// The length of a filter on the wire.
pub const LEN: usize = WORDS * 8;

/// A filter given with the wrong length: js-waku would throw on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a bloom filter is {LEN} bytes, not {0}")]
pub struct BadLength(pub usize);

/// A bloom filter of message ids.
#[derive(Clone, PartialEq, Eq)]
pub struct Filter {
    words: Box<[u64]>,
}

impl Default for Filter {
    fn default() -> Self {
        Self {
            words: vec![0; WORDS].into_boxed_slice(),
        }
    }
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("bits_set", &self.bits_set())
            .finish()
    }
}

impl Filter {
    /// Reads a filter from the wire.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BadLength> {
        if bytes.len() != LEN {
            return Err(BadLength(bytes.len()));
        }
        let words = bytes
            .chunks_exact(8)
            .map(|w| u64::from_be_bytes(w.try_into().expect("chunks of 8")))
            .collect();
        Ok(Self { words })
    }

    /// The filter as it goes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.words.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    /// Adds `id`.
    pub fn insert(&mut self, id: &str) {
        for bit in probes(id) {
            self.words[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    /// Whether `id` may have been added (never false for one that was).
    pub fn contains(&self, id: &str) -> bool {
        probes(id).all(|bit| self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }

    /// How many bits are set: past about half, the filter says yes to too
    /// much to be taken as anyone's acknowledgement.
    pub fn bits_set(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Whether the filter is fuller than one holding its capacity would
    /// be (about half its bits): a made-up filter with every bit set
    /// "acknowledges" every message, so such a filter acknowledges none.
    pub fn saturated(&self) -> bool {
        self.bits_set() * 5 > BITS * 3
    }
}

/// The bits `id` sets: `|a + i·b| mod m` for i in 0..10, with `a` the
/// hash of the id and `b` the hash of the id followed by " b" (Nim's
/// `hashN`).
fn probes(id: &str) -> impl Iterator<Item = u64> {
    let a = i64::from(nim_hash(id.as_bytes()).unsigned_abs()) % BITS as i64;
    let mut salted = id.as_bytes().to_vec();
    salted.extend_from_slice(b" b");
    let b = i64::from(nim_hash(&salted).unsigned_abs()) % BITS as i64;
    (0..HASHES as i64).map(move |i| ((a + i * b).unsigned_abs()) % BITS)
}

/// Nim's `hash(string)`: MurmurHash3 x86_32 with seed 0, as a signed int.
fn nim_hash(bytes: &[u8]) -> i32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mix = |k: u32| k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    let mut h: u32 = 0;
    let mut blocks = bytes.chunks_exact(4);
    for block in &mut blocks {
        h ^= mix(u32::from_le_bytes(block.try_into().expect("chunks of 4")));
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let k = tail
            .iter()
            .rev()
            .fold(0u32, |k, &byte| (k << 8) | u32::from(byte));
        h ^= mix(k);
    }
    h ^= bytes.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h as i32
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    /// Values computed by `@waku/sds` 0.0.8's dist code under Node.js.
    #[test]
    fn the_hash_is_nims() {
        for (text, hash) in [
            ("", 0),
            ("a", 1_009_084_850),
            ("b", -1_780_580_861),
            ("abc", -1_277_324_294),
            ("abcd", 1_139_631_978),
            ("hello", 613_153_351),
        ] {
            assert_eq!(nim_hash(text.as_bytes()), hash, "{text:?}");
        }
        let second: Vec<u64> = ["", "a", "b", "abc", "abcd", "hello"]
            .iter()
            .map(|t| probes(t).nth(1).unwrap())
            .collect();
        assert_eq!(second, [36008, 143_375, 144_029, 86352, 72407, 14225]);
    }

    #[test]
    fn probes_match_js_waku() {
        let a: Vec<u64> = probes("a").collect();
        assert_eq!(
            a,
            [34850, 143_375, 101_900, 60425, 18950, 127_475, 86000, 44525, 3050, 111_575]
        );
        let id: Vec<u64> =
            probes("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824").collect();
        assert_eq!(
            id,
            [115_740, 1955, 38170, 74385, 110_600, 146_815, 33030, 69245, 105_460, 141_675]
        );
    }

    #[test]
    fn serialises_as_js_waku_does() {
        let mut filter = Filter::default();
        filter.insert("a");
        filter.insert("b");
        let bytes = filter.to_bytes();
        assert_eq!(bytes.len(), 18_752);
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            "a8d95e46b07e4e06ff7365349c23c864e97962ab36d8f20c965880b0874bb271"
        );
        assert_eq!(bytes[4355], 0x04, "bit 34850: word 544, bit 34");
        let read = Filter::from_bytes(&bytes).unwrap();
        assert!(read.contains("a") && read.contains("b") && !read.contains("c"));
        assert_eq!(read, filter);
    }

    #[test]
    fn a_filter_of_another_length_is_refused_and_a_full_one_acknowledges_nothing() {
        assert_eq!(Filter::from_bytes(&[]), Err(BadLength(0)));
        assert_eq!(Filter::from_bytes(&[0; LEN - 1]), Err(BadLength(LEN - 1)));
        let full = Filter::from_bytes(&[0xff; LEN]).unwrap();
        assert!(full.contains("anything") && full.saturated());
        let mut honest = Filter::default();
        for i in 0..CAPACITY {
            honest.insert(&format!("{i:064x}"));
        }
        assert!(!honest.saturated(), "{} bits", honest.bits_set());
    }
}
