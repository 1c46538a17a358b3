//! Encryption at rest for the state the crypto stage keeps in the database:
//! keys and sessions leave the process only sealed with a key derived from
//! the node's secret, which the database never sees.
//!
//! `value = nonce(12) || ChaCha20-Poly1305(k, nonce, plaintext, ad = name)`
//! with `k = HKDF(salt = VAULT_SALT, ikm = node secret, info = VAULT_INFO)`.
//! The entry's name is the associated data, so one entry cannot be passed
//! off as another.

use std::fmt;

use chacha20poly1305::{
    aead::{Aead as _, Payload},
    ChaCha20Poly1305, KeyInit as _,
};
use hkdf::Hkdf;
use sha2_011::Sha256;
use zeroize::Zeroizing;

use crate::keys::random_bytes;

const VAULT_SALT: &[u8] = b"murmur/vault/salt/v1";
const VAULT_INFO: &[u8] = b"murmur/vault/v1";

/// Why a stored value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// Too short to hold a nonce and a tag.
    #[error("stored value {0:?} is truncated")]
    Truncated(String),
    /// Sealed with another key, altered, or stored under another name.
    #[error("stored value {0:?} does not open with this node's key")]
    Sealed(String),
}

/// The at-rest key. Wiped on drop, never printed.
pub struct Vault {
    cipher: ChaCha20Poly1305,
}

impl Vault {
    /// The vault of the node whose secret is `secret`.
    pub fn new(secret: &[u8]) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(VAULT_SALT), secret)
            .expand(VAULT_INFO, key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 length");
        Self {
            cipher: ChaCha20Poly1305::new(key.as_ref().into()),
        }
    }

    /// Seals `plaintext` to be stored under `name`.
    pub fn seal(&self, name: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce: [u8; 12] = random_bytes();
        let mut out = nonce.to_vec();
        out.extend(
            self.cipher
                .encrypt(
                    (&nonce).into(),
                    Payload {
                        msg: plaintext,
                        aad: name.as_bytes(),
                    },
                )
                .expect("ChaCha20-Poly1305 encrypts any length this process can hold"),
        );
        out
    }

    /// Opens what was stored under `name`.
    pub fn open(&self, name: &str, stored: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        if stored.len() < 12 + 16 {
            return Err(VaultError::Truncated(name.to_owned()));
        }
        let (nonce, sealed) = stored.split_at(12);
        self.cipher
            .decrypt(
                nonce.into(),
                Payload {
                    msg: sealed,
                    aad: name.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Sealed(name.to_owned()))
    }
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Vault(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_the_same_key_and_name() {
        let vault = Vault::new(b"node secret");
        let stored = vault.seal("crypto/session/a", b"state");
        assert_eq!(
            vault
                .open("crypto/session/a", &stored)
                .expect("opens")
                .as_slice(),
            b"state"
        );
        assert!(!stored.windows(5).any(|w| w == b"state"));
        assert!(vault.open("crypto/session/b", &stored).is_err());
        assert!(Vault::new(b"other")
            .open("crypto/session/a", &stored)
            .is_err());
        assert!(vault.open("crypto/session/a", &stored[..20]).is_err());
    }
}
