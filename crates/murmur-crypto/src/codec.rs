//! The byte layouts of murmur-crypto: fixed-order fields, big-endian
//! integers, a version byte first. Decoding never panics and never allocates
//! more than the input can hold.

use zeroize::Zeroizing;

use crate::keys::PublicKey;

/// Why bytes could not be read as a key, bundle, message or session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("truncated: {0} needs more bytes than are left")]
    Truncated(&'static str),
    /// The version byte names a layout this build does not know.
    #[error("unsupported {what} version {found} (this build reads version {supported})")]
    Version {
        /// What was being decoded.
        what: &'static str,
        /// The version found.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// A field holds a value that cannot be valid.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// Bytes were left after the last field.
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// Appends fields to a buffer that is wiped when dropped, since session state
/// passes through it.
pub(crate) struct Writer(Zeroizing<Vec<u8>>);

impl Writer {
    pub(crate) fn new(version: u8) -> Self {
        let mut v = Vec::with_capacity(256);
        v.push(version);
        Self(Zeroizing::new(v))
    }

    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }

    /// A length-prefixed byte string.
    pub(crate) fn var(&mut self, v: &[u8]) -> &mut Self {
        let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.0.extend_from_slice(&v[..len as usize]);
        self
    }

    pub(crate) fn finish(self) -> Zeroizing<Vec<u8>> {
        self.0
    }
}

/// Reads fields in order: fixed-size, big-endian, length-prefixed; every
/// read checks what is left first. Other murmur crates' byte layouts use it.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads the version byte and checks it.
    pub fn new(bytes: &'a [u8], what: &'static str, supported: u8) -> Result<Self, DecodeError> {
        let mut r = Self { rest: bytes };
        let found = r.u8(what)?;
        if found != supported {
            return Err(DecodeError::Version {
                what,
                found,
                supported,
            });
        }
        Ok(r)
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// The next `N` bytes, as an array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    /// An X25519 public key in its canonical encoding: a little-endian
    /// u-coordinate below 2^255 - 19. X25519 ignores the top bit and reduces
    /// mod p, so other encodings name the same key in different bytes; an
    /// honest key never uses them, and refusing them keeps one key to one byte
    /// string (the replay check on first messages compares the bytes).
    pub fn key(&mut self, what: &'static str) -> Result<PublicKey, DecodeError> {
        let bytes: [u8; 32] = self.array(what)?;
        let at_least_p =
            bytes[31] == 0x7f && bytes[1..31].iter().all(|b| *b == 0xff) && bytes[0] >= 0xed;
        if bytes[31] & 0x80 != 0 || at_least_p {
            return Err(DecodeError::Invalid(what));
        }
        Ok(PublicKey(bytes))
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// A byte that is 0 or 1.
    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Invalid(what)),
        }
    }

    /// A length-prefixed byte string.
    pub fn var(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(what)? as usize;
        self.take(len, what)
    }

    /// A count of items, each at least `item_len` bytes: checked against what
    /// is left before anything is allocated for them.
    pub fn count(&mut self, item_len: usize, what: &'static str) -> Result<usize, DecodeError> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(item_len) > self.rest.len() {
            return Err(DecodeError::Truncated(what));
        }
        Ok(n)
    }

    /// Everything that is left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// Ends the reading: nothing may be left.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing(self.rest.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_x25519_keys_are_read() {
        let read = |key: [u8; 32]| {
            let mut w = Writer::new(1);
            w.bytes(&key);
            Reader::new(&w.0, "key", 1).and_then(|mut r| r.key("key"))
        };
        let honest = crate::keys::KeyPair::generate().public();
        assert_eq!(read(honest.0).map(|k| k.0), Ok(honest.0));
        let mut top_bit = honest.0;
        top_bit[31] |= 0x80;
        assert_eq!(read(top_bit), Err(DecodeError::Invalid("key")));
        let mut p = [0xff; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert_eq!(read(p), Err(DecodeError::Invalid("key")), "p itself");
        p[0] = 0xec;
        assert!(read(p).is_ok(), "p - 1 is canonical");
    }

    #[test]
    fn counts_are_checked_before_allocation() {
        let mut w = Writer::new(1);
        w.u32(u32::MAX);
        let bytes = w.finish();
        let mut r = Reader::new(&bytes, "test", 1).expect("version");
        assert_eq!(r.count(32, "keys"), Err(DecodeError::Truncated("keys")));
    }

    #[test]
    fn wrong_version_is_named() {
        assert_eq!(
            Reader::new(&[9], "session", 1).err(),
            Some(DecodeError::Version {
                what: "session",
                found: 9,
                supported: 1
            })
        );
    }
}
