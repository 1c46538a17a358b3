//! Group encryption: each member has its own sending chain, a hash ratchet
//! of chain keys, and signs every message it sends with a key of that
//! chain. It hands the chain's current key to the other members over their
//! pairwise sessions ([`ChainKey`]); a message then costs one ciphertext on
//! the wire whatever the group's size.
//!
//! Forward secrecy within a chain: each message key is derived from the
//! chain key, which then moves on (`KDF_CK` of the Double Ratchet) and is
//! forgotten. Membership changes: when a member leaves or is removed, every
//! remaining member starts a new chain and hands it only to the remaining
//! members, so the one who left reads nothing sent afterwards; a member who
//! joins gets chains at their current position, so it reads nothing sent
//! before.

use std::{
    collections::{BTreeMap, VecDeque},
    fmt,
};

use chacha20poly1305::{
    aead::{Aead as _, Payload},
    ChaCha20Poly1305, KeyInit as _,
};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::{
    codec::{DecodeError, Reader, Writer},
    kdf,
    keys::{random_bytes, Secret},
};

const CHAIN_KEY_VERSION: u8 = 1;
const MESSAGE_VERSION: u8 = 1;
/// The sender chain's stored form: 1 had no checkpoints, 2 has them.
const SENDER_VERSION: u8 = 2;
/// A sender keeps its chain key at every this many positions...
const CHECKPOINT_EVERY: u32 = 64;
/// ...this many of the newest: a member who lost the key (or never got it)
/// is handed one for a message at most about a thousand messages back.
const CHECKPOINTS: usize = 16;
const RECEIVER_VERSION: u8 = 1;
const SIGN_CONTEXT: &[u8] = b"murmur/group-message/v1";

/// One sending chain: random, chosen by its owner.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainId(pub [u8; 16]);

impl ChainId {
    /// The id of the chain whose messages `verifying_key` signs, sent by
    /// `owner` (its account and device, as the group names them): a chain
    /// id names its owner, so no member can hand over a key under another
    /// member's chain id, or another member's key as its own.
    pub fn bound(owner: &[u8], verifying_key: &[u8; 32]) -> Self {
        use sha2_011::Digest as _;
        let digest = sha2_011::Sha256::new()
            .chain_update(b"murmur/group-chain/v1")
            .chain_update((owner.len() as u32).to_be_bytes())
            .chain_update(owner)
            .chain_update(verifying_key)
            .finalize();
        let mut id = [0; 16];
        id.copy_from_slice(&digest[..16]);
        Self(id)
    }
}

impl fmt::Debug for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainId({})", crate::keys::short_hex(&self.0))
    }
}

/// Why a group message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The message is from another chain than this one.
    #[error("the message is from another sending chain")]
    WrongChain,
    /// The sender's signature does not verify.
    #[error("the sender's signature does not verify")]
    BadSignature,
    /// The ciphertext did not authenticate.
    #[error("the message was altered")]
    Authentication,
    /// The message's key was used (or dropped as too old): a replay, or a
    /// message from before this member had the chain.
    #[error("message {0} of this chain was already read, or is from before this member joined")]
    Replay(u32),
    /// Further ahead than the bound allows.
    #[error("message skips {gap} keys; at most {max} are allowed")]
    TooFarAhead {
        /// Keys that would be skipped.
        gap: u32,
        /// The bound.
        max: u32,
    },
    /// The bytes are not a group message or chain key.
    #[error("malformed: {0}")]
    Malformed(#[from] DecodeError),
    /// The chain's last position: never used, so that no position after
    /// it wraps around to one already read. The chain must rotate.
    #[error("the chain is used up; its owner must start a new one")]
    Exhausted,
}

/// A group message: one ciphertext for every member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMessage {
    /// The sender's chain.
    pub chain: ChainId,
    /// The message's position in it.
    pub iteration: u32,
    /// ChaCha20-Poly1305 ciphertext and tag.
    pub ciphertext: Vec<u8>,
    /// The sender's signature over all of the above.
    pub signature: [u8; 64],
}

impl GroupMessage {
    /// What the sender signs: the chain, the position and a SHA-256 of the
    /// ciphertext (Ed25519 hashes what it signs twice; a digest keeps that
    /// short whatever the message's size).
    fn signed_bytes(chain: ChainId, iteration: u32, ciphertext: &[u8]) -> Vec<u8> {
        use sha2_011::Digest as _;
        let mut v = Vec::with_capacity(SIGN_CONTEXT.len() + 52);
        v.extend_from_slice(SIGN_CONTEXT);
        v.extend_from_slice(&chain.0);
        v.extend_from_slice(&iteration.to_be_bytes());
        v.extend_from_slice(&sha2_011::Sha256::digest(ciphertext));
        v
    }

    fn ad(chain: ChainId, iteration: u32) -> [u8; 20] {
        let mut ad = [0u8; 20];
        ad[..16].copy_from_slice(&chain.0);
        ad[16..].copy_from_slice(&iteration.to_be_bytes());
        ad
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(MESSAGE_VERSION);
        w.bytes(&self.chain.0)
            .u32(self.iteration)
            .bytes(&self.signature)
            .bytes(&self.ciphertext);
        w.finish().to_vec()
    }

    /// Reads the wire form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, "group message", MESSAGE_VERSION)?;
        let chain = ChainId(r.array("chain id")?);
        let iteration = r.u32("iteration")?;
        let signature = r.array("signature")?;
        let ciphertext = r.rest().to_vec();
        if ciphertext.len() < 16 {
            return Err(DecodeError::Truncated("ciphertext tag"));
        }
        Ok(Self {
            chain,
            iteration,
            ciphertext,
            signature,
        })
    }
}

/// What a member hands the others so they can read its chain from now on:
/// secret, sent only inside pairwise sessions. Wiped on drop.
#[derive(Clone)]
pub struct ChainKey {
    /// The chain.
    pub chain: ChainId,
    /// The position the key is at.
    pub iteration: u32,
    key: Secret,
    /// The key the chain's messages are signed with.
    pub verifying_key: [u8; 32],
}

impl ChainKey {
    /// The wire form (to seal in a pairwise session).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new(CHAIN_KEY_VERSION);
        w.bytes(&self.chain.0)
            .u32(self.iteration)
            .bytes(&self.key.0)
            .bytes(&self.verifying_key);
        w.finish()
    }

    /// Reads the wire form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, "chain key", CHAIN_KEY_VERSION)?;
        let k = Self {
            chain: ChainId(r.array("chain id")?),
            iteration: r.u32("iteration")?,
            key: Secret(r.array("chain key")?),
            verifying_key: r.array("verifying key")?,
        };
        r.finish()?;
        Ok(k)
    }
}

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainKey")
            .field("chain", &self.chain)
            .field("iteration", &self.iteration)
            .finish_non_exhaustive()
    }
}

fn seal(key: &Secret, ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let keys = kdf::message(key);
    ChaCha20Poly1305::new((&keys.key).into())
        .encrypt(
            (&keys.nonce).into(),
            Payload {
                msg: plaintext,
                aad: ad,
            },
        )
        .expect("ChaCha20-Poly1305 encrypts any length this process can hold")
}

/// This member's sending chain in a group.
///
/// Besides its current key it keeps a few earlier ones (checkpoints), so
/// that a member whose copy of the key was lost can be handed the key at
/// the first message it could not read ([`SenderChain::chain_key_at`]).
/// That is a bounded exception to forward secrecy on this device, of the
/// same size as the skipped message keys a receiver keeps: whoever takes
/// this device's state reads at most the last `CHECKPOINTS` ×
/// `CHECKPOINT_EVERY` messages of its current chain, never an earlier
/// chain's.
pub struct SenderChain {
    chain: ChainId,
    iteration: u32,
    key: Secret,
    signing: SigningKey,
    checkpoints: VecDeque<(u32, Secret)>,
}

impl SenderChain {
    /// A new chain: at the start of a group, and after every membership
    /// change that removes someone.
    /// A new chain of `owner` (its account and device, as the group names
    /// them), its id bound to both ([`ChainId::bound`]).
    pub fn generate(owner: &[u8]) -> Self {
        let signing = SigningKey::from_bytes(&Zeroizing::new(random_bytes()));
        let key = Secret(random_bytes());
        Self {
            chain: ChainId::bound(owner, &signing.verifying_key().to_bytes()),
            iteration: 0,
            checkpoints: VecDeque::from([(0, key.clone())]),
            key,
            signing,
        }
    }

    /// The chain.
    pub fn id(&self) -> ChainId {
        self.chain
    }

    /// The position of the next message.
    pub fn iteration(&self) -> u32 {
        self.iteration
    }

    /// The key to hand the other members now: they read from here on.
    pub fn chain_key(&self) -> ChainKey {
        ChainKey {
            chain: self.chain,
            iteration: self.iteration,
            key: self.key.clone(),
            verifying_key: self.signing.verifying_key().to_bytes(),
        }
    }

    /// The key for a member that could not read message `iteration` of
    /// this chain: at that position, or at the oldest one this device still
    /// holds if that is later (then the messages before it stay
    /// unreadable to that member), and never past the current one.
    pub fn chain_key_at(&self, iteration: u32) -> ChainKey {
        let oldest = self.checkpoints.front().map_or(self.iteration, |c| c.0);
        let at = iteration.clamp(oldest, self.iteration);
        let (from, key) = self
            .checkpoints
            .iter()
            .rev()
            .find(|(i, _)| *i <= at)
            .map_or((self.iteration, &self.key), |(i, k)| (*i, k));
        let mut key = key.clone();
        for _ in from..at {
            key = kdf::chain(&key).1;
        }
        ChainKey {
            chain: self.chain,
            iteration: at,
            key,
            verifying_key: self.signing.verifying_key().to_bytes(),
        }
    }

    /// The stored form, secret: seal it before it leaves memory.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new(SENDER_VERSION);
        w.bytes(&self.chain.0)
            .u32(self.iteration)
            .bytes(&self.key.0)
            .bytes(self.signing.as_bytes())
            .u32(self.checkpoints.len() as u32);
        for (i, k) in &self.checkpoints {
            w.u32(*i).bytes(&k.0);
        }
        w.finish()
    }

    /// Reads the stored form (either version: a chain stored before
    /// checkpoints starts keeping them from its current position).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let version = if bytes.first() == Some(&1) {
            1
        } else {
            SENDER_VERSION
        };
        let mut r = Reader::new(bytes, "sender chain", version)?;
        let chain = ChainId(r.array("chain id")?);
        let iteration = r.u32("iteration")?;
        let key = Secret(r.array("chain key")?);
        let signing = SigningKey::from_bytes(&Zeroizing::new(r.array("signing key")?));
        let mut checkpoints = VecDeque::new();
        if version == 1 {
            checkpoints.push_back((iteration, key.clone()));
        } else {
            let n = r.count(36, "checkpoints")?;
            if n > CHECKPOINTS {
                return Err(DecodeError::Invalid("checkpoints"));
            }
            for _ in 0..n {
                let at = r.u32("checkpoint")?;
                if at > iteration || checkpoints.back().is_some_and(|(i, _)| *i >= at) {
                    return Err(DecodeError::Invalid("checkpoint"));
                }
                checkpoints.push_back((at, Secret(r.array("checkpoint key")?)));
            }
        }
        r.finish()?;
        Ok(Self {
            chain,
            iteration,
            key,
            signing,
            checkpoints,
        })
    }

    /// Encrypts and signs one message for the whole group.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> GroupMessage {
        let (mk, next) = kdf::chain(&self.key);
        let iteration = self.iteration;
        self.key = next;
        // A chain is never used up in practice (it rotates on every
        // removal, and starts at 0); at the last position it stays there,
        // and receivers refuse it.
        self.iteration = self.iteration.saturating_add(1);
        if self.iteration.is_multiple_of(CHECKPOINT_EVERY) {
            if self.checkpoints.len() >= CHECKPOINTS {
                self.checkpoints.pop_front();
            }
            self.checkpoints
                .push_back((self.iteration, self.key.clone()));
        }
        let ciphertext = seal(&mk, &GroupMessage::ad(self.chain, iteration), plaintext);
        let signature = self
            .signing
            .sign(&GroupMessage::signed_bytes(
                self.chain,
                iteration,
                &ciphertext,
            ))
            .to_bytes();
        GroupMessage {
            chain: self.chain,
            iteration,
            ciphertext,
            signature,
        }
    }
}

impl fmt::Debug for SenderChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderChain")
            .field("chain", &self.chain)
            .field("iteration", &self.iteration)
            .finish_non_exhaustive()
    }
}

/// Another member's chain, as this member reads it.
pub struct ReceiverChain {
    chain: ChainId,
    iteration: u32,
    key: Secret,
    verifying: VerifyingKey,
    skipped: BTreeMap<u32, Secret>,
    max_skip: u32,
}

impl ReceiverChain {
    /// Reads a chain from the key its owner handed over; at most `max_skip`
    /// messages may be skipped (and their keys kept) at a time.
    pub fn new(key: &ChainKey, max_skip: u32) -> Result<Self, GroupError> {
        Ok(Self {
            chain: key.chain,
            iteration: key.iteration,
            key: key.key.clone(),
            verifying: VerifyingKey::from_bytes(&key.verifying_key)
                .map_err(|_| GroupError::BadSignature)?,
            skipped: BTreeMap::new(),
            max_skip,
        })
    }

    /// The chain.
    pub fn id(&self) -> ChainId {
        self.chain
    }

    /// The stored form, secret: seal it before it leaves memory.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new(RECEIVER_VERSION);
        w.bytes(&self.chain.0)
            .u32(self.iteration)
            .bytes(&self.key.0)
            .bytes(self.verifying.as_bytes())
            .u32(self.max_skip)
            .u32(self.skipped.len() as u32);
        for (i, k) in &self.skipped {
            w.u32(*i).bytes(&k.0);
        }
        w.finish()
    }

    /// Reads the stored form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, "receiver chain", RECEIVER_VERSION)?;
        let chain = ChainId(r.array("chain id")?);
        let iteration = r.u32("iteration")?;
        let key = Secret(r.array("chain key")?);
        let verifying = VerifyingKey::from_bytes(&r.array("verifying key")?)
            .map_err(|_| DecodeError::Invalid("verifying key"))?;
        let max_skip = r.u32("max skip")?;
        let n = r.count(36, "skipped keys")?;
        let mut skipped = BTreeMap::new();
        for _ in 0..n {
            let i = r.u32("skipped index")?;
            skipped.insert(i, Secret(r.array("skipped key")?));
        }
        r.finish()?;
        Ok(Self {
            chain,
            iteration,
            key,
            verifying,
            skipped,
            max_skip,
        })
    }

    /// Checks the sender's signature, then decrypts; the chain moves on
    /// only if the message authenticated.
    pub fn decrypt(&mut self, message: &GroupMessage) -> Result<Vec<u8>, GroupError> {
        if message.chain != self.chain {
            return Err(GroupError::WrongChain);
        }
        self.verifying
            .verify_strict(
                &GroupMessage::signed_bytes(message.chain, message.iteration, &message.ciphertext),
                &Signature::from_bytes(&message.signature),
            )
            .map_err(|_| GroupError::BadSignature)?;
        let ad = GroupMessage::ad(message.chain, message.iteration);
        // A member chooses the position it signs (and the one of the key it
        // hands over): the last one would leave no next position.
        if message.iteration == u32::MAX {
            return Err(GroupError::Exhausted);
        }
        if message.iteration < self.iteration {
            let mk = self
                .skipped
                .get(&message.iteration)
                .ok_or(GroupError::Replay(message.iteration))?;
            let plaintext = open(mk, &ad, &message.ciphertext)?;
            self.skipped.remove(&message.iteration);
            return Ok(plaintext);
        }
        let gap = message.iteration - self.iteration;
        if gap > self.max_skip {
            return Err(GroupError::TooFarAhead {
                gap,
                max: self.max_skip,
            });
        }
        let mut key = self.key.clone();
        let mut passed = Vec::with_capacity(gap as usize);
        for i in self.iteration..message.iteration {
            let (mk, next) = kdf::chain(&key);
            passed.push((i, mk));
            key = next;
        }
        let (mk, next) = kdf::chain(&key);
        let plaintext = open(&mk, &ad, &message.ciphertext)?;
        self.skipped.extend(passed);
        while self.skipped.len() > self.max_skip as usize {
            self.skipped.pop_first();
        }
        self.key = next;
        self.iteration = message.iteration + 1;
        Ok(plaintext)
    }
}

fn open(key: &Secret, ad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, GroupError> {
    let keys = kdf::message(key);
    ChaCha20Poly1305::new((&keys.key).into())
        .decrypt(
            (&keys.nonce).into(),
            Payload {
                msg: ciphertext,
                aad: ad,
            },
        )
        .map_err(|_| GroupError::Authentication)
}

impl fmt::Debug for ReceiverChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiverChain")
            .field("chain", &self.chain)
            .field("iteration", &self.iteration)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
