//! The sealed envelope: what goes into `WakuMessage.payload` for one
//! recipient device.
//!
//! The network sees a version, a fresh ephemeral key and ciphertext whose
//! length is padded to a bucket. The sender's account and device, the
//! ratchet header and any X3DH header are inside, readable only with the
//! recipient device's identity key (sealed sender): a relay or store node
//! learns neither who sent a message nor which session it belongs to.
//!
//! ```text
//! Envelope (protobuf, on the wire)     Inner (protobuf, sealed and padded)
//!   1: version     uint32 = 1            1: sender_account  bytes(32)
//!   2: ephemeral   bytes(32)             2: sender_device   bytes(16)
//!   3: sealed      bytes                 3: ciphertext      bytes (a Ciphertext)
//! ```
//!
//! `sealed = ChaCha20-Poly1305(k, n, pad(Inner))` with `k || n =
//! HKDF(salt = ephemeral || recipient identity key, ikm = X25519(ephemeral,
//! recipient identity key), info = SEAL_INFO)`; `pad` prefixes the length
//! (4 bytes, big-endian) and fills with zeros to the next bucket.

use chacha20poly1305::{aead::Aead as _, ChaCha20Poly1305, KeyInit as _};
use hkdf::Hkdf;
use prost::Message as _;
use sha2_011::Sha256;
use zeroize::Zeroizing;

use crate::{
    identity::{AccountId, DeviceId, Installation},
    keys::{KeyPair, PublicKey},
    x3dh::Ciphertext,
    DecodeError,
};

/// The envelope version this build writes and reads.
pub const VERSION: u32 = 1;
/// Info string of the seal's key derivation.
pub const SEAL_INFO: &[u8] = b"murmur/seal/v1";
/// Padded lengths are powers of two from this size (a first message, with
/// its X3DH header, fits in it: an observer cannot tell it from a short
/// message) ...
pub const MIN_BUCKET: usize = 512;
/// ... up to this one, then multiples of it.
pub const MAX_BUCKET: usize = 16 * 1024;

/// Why an envelope could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The payload is not a murmur envelope.
    #[error("not a murmur envelope: {0}")]
    Malformed(String),
    /// The envelope has a version this build does not read.
    #[error("envelope version {0} is not supported (this build reads {VERSION})")]
    Version(u32),
    /// The seal did not open: the envelope is for another device, or was
    /// altered.
    #[error("the envelope is not for this device, or was altered")]
    NotForUs,
    /// The sealed contents are not a valid inner message.
    #[error("sealed contents: {0}")]
    Inner(#[from] DecodeError),
}

#[derive(Clone, PartialEq, prost::Message)]
struct Wire {
    #[prost(uint32, tag = "1")]
    version: u32,
    #[prost(bytes = "vec", tag = "2")]
    ephemeral: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    sealed: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Inner {
    #[prost(bytes = "vec", tag = "1")]
    sender_account: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    sender_device: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    ciphertext: Vec<u8>,
}

/// An opened envelope: who says they sent it, and the ratchet ciphertext.
/// The sender is only proven once the ciphertext decrypts in the session
/// with that device (or, for a first message, once X3DH accepted its
/// certificate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The sending account.
    pub sender_account: AccountId,
    /// The sending device.
    pub sender_device: DeviceId,
    /// The ratchet message.
    pub ciphertext: Ciphertext,
}

/// The padded length for `len` bytes.
pub fn bucket(len: usize) -> usize {
    if len <= MAX_BUCKET {
        len.max(MIN_BUCKET).next_power_of_two()
    } else {
        len.div_ceil(MAX_BUCKET) * MAX_BUCKET
    }
}

fn seal_key(
    ephemeral: &PublicKey,
    recipient: &PublicKey,
    shared: &[u8; 32],
) -> Zeroizing<[u8; 44]> {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(&ephemeral.0);
    salt[32..].copy_from_slice(&recipient.0);
    let mut okm = Zeroizing::new([0u8; 44]);
    Hkdf::<Sha256>::new(Some(&salt), shared)
        .expand(SEAL_INFO, okm.as_mut())
        .expect("44 bytes is a valid HKDF-SHA256 length");
    okm
}

/// Seals `ciphertext` from `sender` for the device whose identity key is
/// `recipient`.
pub fn seal(
    recipient: &PublicKey,
    sender: (AccountId, DeviceId),
    ciphertext: &Ciphertext,
) -> Vec<u8> {
    Sealing::new(recipient, sender, ciphertext).seal()
}

/// An envelope ready to be sealed: its contents encoded and padded, the
/// key agreement not yet made.
///
/// The agreement (a fresh key pair and one X25519) is most of what sealing
/// costs, and it needs nothing of the session, so a caller that keeps its
/// sessions on one thread can leave [`Sealing::seal`] to others.
pub struct Sealing {
    recipient: PublicKey,
    padded: Zeroizing<Vec<u8>>,
}

impl Sealing {
    /// `ciphertext` from `sender`, for the device whose identity key is
    /// `recipient`.
    pub fn new(
        recipient: &PublicKey,
        sender: (AccountId, DeviceId),
        ciphertext: &Ciphertext,
    ) -> Self {
        let inner = Zeroizing::new(
            Inner {
                sender_account: sender.0 .0.to_vec(),
                sender_device: sender.1 .0.to_vec(),
                ciphertext: ciphertext.to_bytes(),
            }
            .encode_to_vec(),
        );
        let mut padded = Zeroizing::new(Vec::with_capacity(bucket(inner.len() + 4)));
        padded.extend_from_slice(&(inner.len() as u32).to_be_bytes());
        padded.extend_from_slice(&inner);
        padded.resize(bucket(inner.len() + 4), 0);
        Self {
            recipient: *recipient,
            padded,
        }
    }

    /// The envelope, sealed with a fresh ephemeral key.
    pub fn seal(self) -> Vec<u8> {
        let ephemeral = KeyPair::generate();
        let shared = ephemeral.agree(&self.recipient);
        let okm = seal_key(&ephemeral.public(), &self.recipient, &shared.0);
        let sealed = ChaCha20Poly1305::new((&okm[..32]).into())
            .encrypt((&okm[32..]).into(), self.padded.as_slice())
            .expect("ChaCha20-Poly1305 encrypts any length this process can hold");
        Wire {
            version: VERSION,
            ephemeral: ephemeral.public().0.to_vec(),
            sealed,
        }
        .encode_to_vec()
    }
}

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealing")
            .field("recipient", &self.recipient)
            .field("padded_len", &self.padded.len())
            .finish_non_exhaustive()
    }
}

/// Opens envelopes for one device: its identity key alone, without the
/// device's sessions, so that opening (one X25519 each) can run on any
/// thread while the sessions stay on theirs. Cloning copies the secret,
/// which each copy wipes on drop.
#[derive(Clone)]
pub struct Opener {
    identity: KeyPair,
}

impl Opener {
    /// Opens envelopes sealed to `ours`.
    pub fn new(ours: &Installation) -> Self {
        Self {
            identity: ours.identity().clone(),
        }
    }

    /// Opens an envelope, as [`open`] does.
    pub fn open(&self, payload: &[u8]) -> Result<Opened, EnvelopeError> {
        open_with(&self.identity, payload)
    }

    /// The identity key it opens envelopes for.
    pub fn identity_key(&self) -> PublicKey {
        self.identity.public()
    }
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("identity", &self.identity.public())
            .finish_non_exhaustive()
    }
}

/// Opens an envelope with this device's identity key.
pub fn open(ours: &Installation, payload: &[u8]) -> Result<Opened, EnvelopeError> {
    open_with(ours.identity(), payload)
}

fn open_with(identity: &KeyPair, payload: &[u8]) -> Result<Opened, EnvelopeError> {
    let wire = Wire::decode(payload).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
    if wire.version != VERSION {
        return Err(EnvelopeError::Version(wire.version));
    }
    let ephemeral = PublicKey(
        wire.ephemeral
            .as_slice()
            .try_into()
            .map_err(|_| EnvelopeError::Malformed("ephemeral key is not 32 bytes".to_owned()))?,
    );
    let shared = identity.agree(&ephemeral);
    let okm = seal_key(&ephemeral, &identity.public(), &shared.0);
    let padded = Zeroizing::new(
        ChaCha20Poly1305::new((&okm[..32]).into())
            .decrypt((&okm[32..]).into(), wire.sealed.as_slice())
            .map_err(|_| EnvelopeError::NotForUs)?,
    );
    let len = padded
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or(DecodeError::Truncated("padding length"))?;
    let inner = padded
        .get(4..4 + len)
        .ok_or(DecodeError::Truncated("padded contents"))?;
    let inner = Inner::decode(inner).map_err(|_| DecodeError::Invalid("inner message"))?;
    let sender_account = AccountId(
        inner
            .sender_account
            .as_slice()
            .try_into()
            .map_err(|_| DecodeError::Invalid("sender account"))?,
    );
    let sender_device = DeviceId(
        inner
            .sender_device
            .as_slice()
            .try_into()
            .map_err(|_| DecodeError::Invalid("sender device"))?,
    );
    Ok(Opened {
        sender_account,
        sender_device,
        ciphertext: Ciphertext::from_bytes(&inner.ciphertext)?,
    })
}

/// The partition of an account: where 1:1 traffic for it is published, so
/// that an observer learns only that a message is for one of the accounts
/// sharing the partition. `partitions` of 0 is taken as 1.
pub fn partition(account: &AccountId, partitions: u32) -> u32 {
    use sha2_011::Digest as _;
    let digest = Sha256::new()
        .chain_update(b"murmur/partition/v1")
        .chain_update(account.0)
        .finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(head) % u64::from(partitions.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hide_exact_lengths() {
        assert_eq!(bucket(0), 512);
        assert_eq!(bucket(512), 512);
        assert_eq!(bucket(513), 1024);
        assert_eq!(bucket(16 * 1024), 16 * 1024);
        assert_eq!(bucket(16 * 1024 + 1), 32 * 1024);
        assert_eq!(bucket(40 * 1024), 48 * 1024);
    }

    #[test]
    fn partitions_are_stable_and_in_range() {
        let a = AccountId([7; 32]);
        assert_eq!(partition(&a, 64), partition(&a, 64));
        assert!(partition(&a, 64) < 64);
        assert_eq!(partition(&a, 0), 0);
    }
}
