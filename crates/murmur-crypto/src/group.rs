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

use std::{collections::BTreeMap, fmt};

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
const SENDER_VERSION: u8 = 1;
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
pub struct SenderChain {
    chain: ChainId,
    iteration: u32,
    key: Secret,
    signing: SigningKey,
}

impl SenderChain {
    /// A new chain: at the start of a group, and after every membership
    /// change that removes someone.
    /// A new chain of `owner` (its account and device, as the group names
    /// them), its id bound to both ([`ChainId::bound`]).
    pub fn generate(owner: &[u8]) -> Self {
        let signing = SigningKey::from_bytes(&Zeroizing::new(random_bytes()));
        Self {
            chain: ChainId::bound(owner, &signing.verifying_key().to_bytes()),
            iteration: 0,
            key: Secret(random_bytes()),
            signing,
        }
    }

    /// The chain.
    pub fn id(&self) -> ChainId {
        self.chain
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

    /// The stored form, secret: seal it before it leaves memory.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new(SENDER_VERSION);
        w.bytes(&self.chain.0)
            .u32(self.iteration)
            .bytes(&self.key.0)
            .bytes(self.signing.as_bytes());
        w.finish()
    }

    /// Reads the stored form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, "sender chain", SENDER_VERSION)?;
        let chain = ChainId(r.array("chain id")?);
        let iteration = r.u32("iteration")?;
        let key = Secret(r.array("chain key")?);
        let signing = SigningKey::from_bytes(&Zeroizing::new(r.array("signing key")?));
        r.finish()?;
        Ok(Self {
            chain,
            iteration,
            key,
            signing,
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
mod tests {
    use super::*;

    fn pair() -> (SenderChain, ReceiverChain) {
        let s = SenderChain::generate(b"owner");
        let r = ReceiverChain::new(
            &ChainKey::from_bytes(&s.chain_key().to_bytes()).expect("decodes"),
            100,
        )
        .expect("valid key");
        (s, r)
    }

    #[test]
    fn a_chain_at_its_last_position_is_refused_not_wrapped() {
        let mut s = SenderChain::generate(b"owner");
        s.iteration = u32::MAX - 1;
        let mut r = ReceiverChain::new(
            &ChainKey::from_bytes(&s.chain_key().to_bytes()).expect("decodes"),
            100,
        )
        .expect("valid key");
        let before_last = s.encrypt(b"one");
        assert_eq!(r.decrypt(&before_last).expect("reads"), b"one");
        let last = s.encrypt(b"two");
        assert_eq!(last.iteration, u32::MAX);
        assert!(matches!(r.decrypt(&last), Err(GroupError::Exhausted)));
        // The sender stays at the end instead of wrapping to 0.
        assert_eq!(s.encrypt(b"three").iteration, u32::MAX);
        assert!(matches!(
            r.decrypt(&before_last),
            Err(GroupError::Replay(_))
        ));
    }

    #[test]
    fn members_read_in_any_order_once() {
        let (mut s, mut r) = pair();
        let m: Vec<_> = (0..5u8).map(|i| s.encrypt(&[i; 40])).collect();
        for i in [3usize, 0, 4, 1, 2] {
            let wire = GroupMessage::from_bytes(&m[i].to_bytes()).expect("decodes");
            assert_eq!(r.decrypt(&wire).expect("reads"), vec![i as u8; 40]);
        }
        for msg in &m {
            assert!(matches!(r.decrypt(msg), Err(GroupError::Replay(_))));
        }
    }

    #[test]
    fn a_forged_or_altered_message_fails_and_the_chain_goes_on() {
        let (mut s, mut r) = pair();
        let mut m = s.encrypt(b"hello");
        m.ciphertext[0] ^= 1;
        assert_eq!(r.decrypt(&m), Err(GroupError::BadSignature));
        // Someone with the chain key but not the signing key.
        let mut impostor = SenderChain::generate(b"owner");
        impostor.chain = s.chain;
        impostor.key = s.key.clone();
        impostor.iteration = s.iteration;
        assert_eq!(
            r.decrypt(&impostor.encrypt(b"me too")),
            Err(GroupError::BadSignature)
        );
        assert_eq!(r.decrypt(&s.encrypt(b"still")).expect("reads"), b"still");
    }

    #[test]
    fn a_member_who_joins_reads_nothing_from_before() {
        let mut s = SenderChain::generate(b"owner");
        let before = s.encrypt(b"before");
        let mut late = ReceiverChain::new(&s.chain_key(), 100).expect("valid key");
        assert_eq!(late.decrypt(&before), Err(GroupError::Replay(0)));
        assert_eq!(late.decrypt(&s.encrypt(b"after")).expect("reads"), b"after");
    }

    #[test]
    fn a_new_chain_is_unreadable_with_the_old_key() {
        let (mut s, mut r) = pair();
        assert!(r.decrypt(&s.encrypt(b"old")).is_ok());
        // A member was removed: a new chain, handed only to those who stay.
        let mut s = SenderChain::generate(b"owner");
        assert_eq!(r.decrypt(&s.encrypt(b"new")), Err(GroupError::WrongChain));
    }

    #[test]
    fn chains_survive_their_stored_form() {
        let (mut s, mut r) = pair();
        let m: Vec<_> = (0..3).map(|i| s.encrypt(&[i; 8])).collect();
        assert!(r.decrypt(&m[2]).is_ok());
        let mut s = SenderChain::from_bytes(&s.to_bytes()).expect("decodes");
        let mut r = ReceiverChain::from_bytes(&r.to_bytes()).expect("decodes");
        assert_eq!(r.decrypt(&m[0]).expect("skipped key kept"), [0; 8]);
        assert_eq!(r.decrypt(&s.encrypt(b"next")).expect("reads"), b"next");
        assert_eq!(r.decrypt(&m[2]), Err(GroupError::Replay(2)));
        let stored = r.to_bytes();
        for cut in 0..stored.len() {
            assert!(ReceiverChain::from_bytes(&stored[..cut]).is_err());
        }
    }

    #[test]
    fn skipping_beyond_the_bound_fails() {
        let (mut s, _) = pair();
        let mut r = ReceiverChain::new(&s.chain_key(), 3).expect("valid key");
        let m: Vec<_> = (0..6).map(|_| s.encrypt(b"x")).collect();
        assert!(matches!(
            r.decrypt(&m[5]),
            Err(GroupError::TooFarAhead { gap: 5, max: 3 })
        ));
        assert!(r.decrypt(&m[3]).is_ok());
        assert!(r.decrypt(&m[5]).is_ok());
        // Four keys were skipped (0, 1, 2, 4); the bound keeps the newest three.
        assert_eq!(r.decrypt(&m[0]), Err(GroupError::Replay(0)));
        assert!(
            r.decrypt(&m[1]).is_ok(),
            "skipped keys kept within the bound"
        );
    }
}
