//! The key derivations of X3DH and the Double Ratchet, as Signal's
//! specifications define them, with murmur's own info strings.
//!
//! - X3DH: `SK = HKDF(salt = 0^32, ikm = 0xFF^32 || DH1 || DH2 || DH3 [|| DH4], info = X3DH_INFO)`.
//! - `KDF_RK(rk, dh) = HKDF(salt = rk, ikm = dh, info = ROOT_INFO)` → 64 bytes: the
//!   next root key, then a chain key.
//! - `KDF_CK(ck)`: message key `HMAC(ck, 0x01)`, next chain key `HMAC(ck, 0x02)`.
//! - A message key `mk` becomes the AEAD key and nonce through
//!   `HKDF(salt = 0^32, ikm = mk, info = MESSAGE_INFO)` → 44 bytes.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2_011::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::keys::Secret;

/// Info string of the X3DH key derivation.
pub const X3DH_INFO: &[u8] = b"murmur/x3dh/v1";
/// Info string of the root chain.
pub const ROOT_INFO: &[u8] = b"murmur/ratchet/root/v1";
/// Info string of the per-message key expansion.
pub const MESSAGE_INFO: &[u8] = b"murmur/ratchet/message/v1";

/// X3DH's shared secret from the concatenated DH outputs.
pub(crate) fn x3dh(dh_outputs: &[&Secret]) -> Secret {
    let mut ikm = zeroize::Zeroizing::new(Vec::with_capacity(32 * (dh_outputs.len() + 1)));
    ikm.extend_from_slice(&[0xFF; 32]);
    for dh in dh_outputs {
        ikm.extend_from_slice(&dh.0);
    }
    let mut sk = Secret([0; 32]);
    Hkdf::<Sha256>::new(Some(&[0u8; 32]), &ikm)
        .expand(X3DH_INFO, &mut sk.0)
        .expect("32 bytes is a valid HKDF-SHA256 length");
    sk
}

/// `KDF_RK`: the next root key and a new chain key.
pub(crate) fn root(rk: &Secret, dh_out: &Secret) -> (Secret, Secret) {
    let mut okm = zeroize::Zeroizing::new([0u8; 64]);
    Hkdf::<Sha256>::new(Some(&rk.0), &dh_out.0)
        .expand(ROOT_INFO, okm.as_mut())
        .expect("64 bytes is a valid HKDF-SHA256 length");
    let mut root = Secret([0; 32]);
    let mut chain = Secret([0; 32]);
    root.0.copy_from_slice(&okm[..32]);
    chain.0.copy_from_slice(&okm[32..]);
    (root, chain)
}

/// `KDF_CK`: the message key for this step and the next chain key.
pub(crate) fn chain(ck: &Secret) -> (Secret, Secret) {
    let keyed = Hmac::<Sha256>::new_from_slice(&ck.0).expect("HMAC takes any key length");
    let step = |constant: u8| {
        let mut mac = keyed.clone();
        mac.update(&[constant]);
        Secret(mac.finalize().into_bytes().into())
    };
    (step(0x01), step(0x02))
}

/// The AEAD key and nonce of one message.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct MessageKeys {
    pub(crate) key: [u8; 32],
    pub(crate) nonce: [u8; 12],
}

/// Expands a message key into the AEAD key and nonce.
pub(crate) fn message(mk: &Secret) -> MessageKeys {
    let mut okm = zeroize::Zeroizing::new([0u8; 44]);
    Hkdf::<Sha256>::new(Some(&[0u8; 32]), &mk.0)
        .expand(MESSAGE_INFO, okm.as_mut())
        .expect("44 bytes is a valid HKDF-SHA256 length");
    let mut keys = MessageKeys {
        key: [0; 32],
        nonce: [0; 12],
    };
    keys.key.copy_from_slice(&okm[..32]);
    keys.nonce.copy_from_slice(&okm[32..]);
    keys
}
