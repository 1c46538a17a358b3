//! Key material: public keys that travel, secrets that never leave a device.

use std::fmt;

use rand::RngCore as _;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// 32 secret bytes: a root, chain or message key. Wiped on drop; its Debug
/// output never shows the bytes.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Secret(pub(crate) [u8; 32]);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// 32 bytes from the operating system's generator.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// An X25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn dalek(&self) -> x25519_dalek::PublicKey {
        x25519_dalek::PublicKey::from(self.0)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", short_hex(&self.0))
    }
}

/// An X25519 key pair. The secret half is wiped on drop and never printed.
#[derive(Clone)]
pub struct KeyPair {
    secret: x25519_dalek::StaticSecret,
    public: PublicKey,
}

impl KeyPair {
    /// A fresh key pair from the operating system's generator.
    pub fn generate() -> Self {
        Self::from_secret(random_bytes())
    }

    pub(crate) fn from_secret(mut bytes: [u8; 32]) -> Self {
        let secret = x25519_dalek::StaticSecret::from(bytes);
        bytes.zeroize();
        let public = PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
        Self { secret, public }
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    pub(crate) fn secret_bytes(&self) -> [u8; 32] {
        self.secret.to_bytes()
    }

    /// X25519 with `theirs`.
    pub(crate) fn agree(&self, theirs: &PublicKey) -> Secret {
        Secret(self.secret.diffie_hellman(&theirs.dalek()).to_bytes())
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// The first four bytes in hex, enough to tell keys apart in a log line.
pub(crate) fn short_hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(10);
    for b in bytes.iter().take(4) {
        let _ = write!(s, "{b:02x}");
    }
    s.push('…');
    s
}
