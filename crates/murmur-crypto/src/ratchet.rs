//! The Double Ratchet, as Signal specifies it (without header encryption),
//! on X25519, HKDF-SHA256, HMAC-SHA256 and ChaCha20-Poly1305.
//!
//! Decryption works on staged copies of the keys it needs and commits them
//! only after the AEAD tag verified: a tampered, replayed or misdirected
//! message leaves the session exactly as it was.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
};

use chacha20poly1305::{
    aead::{Aead as _, Payload},
    ChaCha20Poly1305, KeyInit as _,
};
use zeroize::Zeroizing;

use crate::{
    codec::{DecodeError, Reader, Writer},
    identity::{AccountId, DeviceId},
    initiation::Initiation,
    kdf,
    keys::{KeyPair, PublicKey, Secret},
};

mod stored;

const MESSAGE_VERSION: u8 = 1;
const SESSION_VERSION: u8 = 1;
/// Remote ratchet keys remembered after their chain is replaced, so that a
/// replay of an old message is told apart from a forgery.
const RETIRED_KEYS: usize = 16;

/// Bounds on what a session keeps for messages that have not arrived yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest gap, within one chain, that a message may jump ahead.
    pub max_skip: u32,
    /// The most skipped message keys kept; the oldest go first.
    pub max_stored: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_skip: 1000,
            max_stored: 2000,
        }
    }
}

/// Why a message could not be encrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncryptError {
    /// The session has not received its first message yet, so it has no
    /// sending chain (only a responder before its first message can be here).
    #[error("the session cannot send before it has received")]
    NoSendingChain,
    /// The sending chain reached 2^32 messages; the peer must answer first.
    #[error("the sending chain is exhausted; wait for a reply")]
    Exhausted,
}

/// Why a message could not be decrypted. The session is unchanged by any of
/// these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// The AEAD tag did not verify: tampered, truncated, or for another
    /// session.
    #[error("authentication failed: the message was altered or is not for this session")]
    Authentication,
    /// The message's key was already used (or dropped as too old): a replay.
    #[error("replay: message {index} of this chain was already received")]
    Replay {
        /// The message's index in its chain.
        index: u32,
    },
    /// The message is further ahead of the last one received than the
    /// session's bound allows.
    #[error("message skips {gap} keys; at most {max} are allowed")]
    TooFarAhead {
        /// How many keys would have to be skipped.
        gap: u64,
        /// The bound.
        max: u32,
    },
    /// The bytes are not a ratchet message.
    #[error("malformed message: {0}")]
    Malformed(#[from] DecodeError),
}

/// The clear header of a ratchet message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The sender's current ratchet public key.
    pub ratchet_key: PublicKey,
    /// How many messages the sender sent in its previous chain (`PN`).
    pub previous: u32,
    /// This message's index in its chain (`N`).
    pub index: u32,
}

impl Header {
    /// Encoded length.
    pub const LEN: usize = 40;

    fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..32].copy_from_slice(&self.ratchet_key.0);
        out[32..36].copy_from_slice(&self.previous.to_be_bytes());
        out[36..].copy_from_slice(&self.index.to_be_bytes());
        out
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            ratchet_key: r.key("ratchet key")?,
            previous: r.u32("previous chain length")?,
            index: r.u32("message index")?,
        })
    }
}

/// A ratchet message: header and ciphertext (with its 16-byte tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The header, authenticated as associated data.
    pub header: Header,
    /// ChaCha20-Poly1305 ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

impl Message {
    /// The wire form: version, header, ciphertext.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + Header::LEN + self.ciphertext.len());
        self.write_to(&mut v);
        v
    }

    pub(crate) fn write_to(&self, v: &mut Vec<u8>) {
        v.push(MESSAGE_VERSION);
        v.extend_from_slice(&self.header.encode());
        v.extend_from_slice(&self.ciphertext);
    }

    /// Reads the wire form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, "ratchet message", MESSAGE_VERSION)?;
        let header = Header::read(&mut r)?;
        let ciphertext = r.rest();
        if ciphertext.len() < 16 {
            return Err(DecodeError::Truncated("ciphertext tag"));
        }
        Ok(Self {
            header,
            ciphertext: ciphertext.to_vec(),
        })
    }
}

#[derive(Clone)]
struct Chain {
    key: Secret,
    index: u32,
}

/// A Double Ratchet session with one device of one peer.
pub struct Session {
    peer_account: AccountId,
    peer_device: DeviceId,
    /// The peer device's X25519 identity key, which its envelopes are
    /// sealed to.
    peer_identity: PublicKey,
    /// Both parties' identities, bound into every message's associated data.
    ad: Vec<u8>,
    root: Secret,
    ours: KeyPair,
    theirs: Option<PublicKey>,
    send: Option<Chain>,
    recv: Option<Chain>,
    previous: u32,
    skipped: HashMap<(PublicKey, u32), Secret>,
    /// Skipped keys in the order they were stored, for eviction.
    skipped_order: VecDeque<(PublicKey, u32)>,
    retired: VecDeque<PublicKey>,
    limits: Limits,
    /// The initiator's X3DH header, sent with every message until the peer
    /// answers.
    pending: Option<Initiation>,
}

/// What a successful decrypt changes, applied only after the tag verified.
struct Staged {
    skipped: Vec<((PublicKey, u32), Secret)>,
    /// This message's key.
    key: Secret,
    /// The receiving chain after this message.
    recv: Chain,
    step: Option<Step>,
}

impl Staged {
    fn new(
        skipped: Vec<((PublicKey, u32), Secret)>,
        at: &Secret,
        index: u32,
        step: Option<Step>,
    ) -> Self {
        let (key, next) = kdf::chain(at);
        Self {
            skipped,
            key,
            recv: Chain {
                key: next,
                index: index + 1,
            },
            step,
        }
    }
}

/// A DH ratchet step.
struct Step {
    theirs: PublicKey,
    ours: KeyPair,
    root: Secret,
    send: Chain,
}

impl Session {
    pub(crate) fn initiator(
        peer: (AccountId, DeviceId, PublicKey),
        shared: &Secret,
        ad: Vec<u8>,
        their_prekey: PublicKey,
        limits: Limits,
        pending: Initiation,
    ) -> Self {
        let ours = KeyPair::generate();
        let (root, send) = kdf::root(shared, &ours.agree(&their_prekey));
        Self {
            peer_account: peer.0,
            peer_device: peer.1,
            peer_identity: peer.2,
            ad,
            root,
            ours,
            theirs: Some(their_prekey),
            send: Some(Chain {
                key: send,
                index: 0,
            }),
            recv: None,
            previous: 0,
            skipped: HashMap::new(),
            skipped_order: VecDeque::new(),
            retired: VecDeque::new(),
            limits,
            pending: Some(pending),
        }
    }

    pub(crate) fn responder(
        peer: (AccountId, DeviceId, PublicKey),
        shared: &Secret,
        ad: Vec<u8>,
        our_prekey: KeyPair,
        limits: Limits,
    ) -> Self {
        Self {
            peer_account: peer.0,
            peer_device: peer.1,
            peer_identity: peer.2,
            ad,
            root: shared.clone(),
            ours: our_prekey,
            theirs: None,
            send: None,
            recv: None,
            previous: 0,
            skipped: HashMap::new(),
            skipped_order: VecDeque::new(),
            retired: VecDeque::new(),
            limits,
            pending: None,
        }
    }

    /// The peer's account.
    pub fn peer_account(&self) -> AccountId {
        self.peer_account
    }

    /// The peer's device.
    pub fn peer_device(&self) -> DeviceId {
        self.peer_device
    }

    /// The peer device's X25519 identity key.
    pub fn peer_identity(&self) -> PublicKey {
        self.peer_identity
    }

    /// The X3DH header still sent with every message, until the peer answers.
    pub fn pending(&self) -> Option<&Initiation> {
        self.pending.as_ref()
    }

    /// How many skipped message keys the session holds.
    pub fn skipped_keys(&self) -> usize {
        self.skipped.len()
    }

    /// Encrypts one message.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Message, EncryptError> {
        let chain = self.send.as_mut().ok_or(EncryptError::NoSendingChain)?;
        if chain.index == u32::MAX {
            return Err(EncryptError::Exhausted);
        }
        let header = Header {
            ratchet_key: self.ours.public(),
            previous: self.previous,
            index: chain.index,
        };
        let (mk, next) = kdf::chain(&chain.key);
        chain.key = next;
        chain.index += 1;
        let keys = kdf::message(&mk);
        let ad = self.associated_data(&header);
        let ciphertext = ChaCha20Poly1305::new((&keys.key).into())
            .encrypt(
                (&keys.nonce).into(),
                Payload {
                    msg: plaintext,
                    aad: &ad,
                },
            )
            .expect("ChaCha20-Poly1305 encrypts any length this process can hold");
        Ok(Message { header, ciphertext })
    }

    /// Decrypts one message, in any order within the bounds.
    pub fn decrypt(&mut self, message: &Message) -> Result<Vec<u8>, DecryptError> {
        let header = &message.header;
        let id = (header.ratchet_key, header.index);
        if let Some(mk) = self.skipped.get(&id) {
            let plaintext = self.open(mk, message)?;
            // Its place in `skipped_order` goes stale and is swept later.
            self.skipped.remove(&id);
            return Ok(plaintext);
        }
        let staged = self.stage(header)?;
        let plaintext = self.open(&staged.key, message)?;
        self.commit(staged);
        Ok(plaintext)
    }

    fn stage(&self, header: &Header) -> Result<Staged, DecryptError> {
        let mut skipped = Vec::new();
        if Some(header.ratchet_key) == self.theirs {
            let Some(recv) = &self.recv else {
                // Only the initiator's view of the responder's prekey gets
                // here: nobody sends with a prekey as ratchet key.
                return Err(DecryptError::Authentication);
            };
            if header.index < recv.index {
                return Err(DecryptError::Replay {
                    index: header.index,
                });
            }
            let at = self.skip(header.ratchet_key, recv, header.index, &mut skipped)?;
            return Ok(Staged::new(skipped, &at, header.index, None));
        }
        if self.retired.contains(&header.ratchet_key) {
            return Err(DecryptError::Replay {
                index: header.index,
            });
        }
        if let (Some(theirs), Some(recv)) = (self.theirs, &self.recv) {
            if header.previous > recv.index {
                self.skip(theirs, recv, header.previous, &mut skipped)?;
            }
        }
        let (root, recv_key) = kdf::root(&self.root, &self.ours.agree(&header.ratchet_key));
        let ours = KeyPair::generate();
        let (root, send_key) = kdf::root(&root, &ours.agree(&header.ratchet_key));
        let fresh = Chain {
            key: recv_key,
            index: 0,
        };
        let at = self.skip(header.ratchet_key, &fresh, header.index, &mut skipped)?;
        let step = Step {
            theirs: header.ratchet_key,
            ours,
            root,
            send: Chain {
                key: send_key,
                index: 0,
            },
        };
        Ok(Staged::new(skipped, &at, header.index, Some(step)))
    }

    /// Walks `chain` up to `until`, collecting the keys passed over; returns
    /// the chain key at `until`.
    fn skip(
        &self,
        ratchet_key: PublicKey,
        chain: &Chain,
        until: u32,
        skipped: &mut Vec<((PublicKey, u32), Secret)>,
    ) -> Result<Secret, DecryptError> {
        let gap = u64::from(until.saturating_sub(chain.index)) + skipped.len() as u64;
        if gap > u64::from(self.limits.max_skip) {
            return Err(DecryptError::TooFarAhead {
                gap,
                max: self.limits.max_skip,
            });
        }
        let mut key = chain.key.clone();
        for index in chain.index..until {
            let (mk, next) = kdf::chain(&key);
            skipped.push(((ratchet_key, index), mk));
            key = next;
        }
        Ok(key)
    }

    fn commit(&mut self, staged: Staged) {
        for (id, mk) in staged.skipped {
            self.skipped.insert(id, mk);
            self.skipped_order.push_back(id);
        }
        while self.skipped.len() > self.limits.max_stored {
            match self.skipped_order.pop_front() {
                Some(old) => {
                    self.skipped.remove(&old);
                }
                None => break,
            }
        }
        if self.skipped_order.len() > 2 * self.limits.max_stored.max(16) {
            let skipped = &self.skipped;
            self.skipped_order.retain(|id| skipped.contains_key(id));
        }
        if let Some(step) = staged.step {
            if let Some(old) = self.theirs.replace(step.theirs) {
                self.retired.push_back(old);
                if self.retired.len() > RETIRED_KEYS {
                    self.retired.pop_front();
                }
            }
            self.previous = self.send.as_ref().map_or(0, |c| c.index);
            self.ours = step.ours;
            self.root = step.root;
            self.send = Some(step.send);
            // The peer answered: it has the session, the X3DH header can go.
            self.pending = None;
        }
        self.recv = Some(staged.recv);
    }

    fn open(&self, mk: &Secret, message: &Message) -> Result<Vec<u8>, DecryptError> {
        let keys = kdf::message(mk);
        let ad = self.associated_data(&message.header);
        ChaCha20Poly1305::new((&keys.key).into())
            .decrypt(
                (&keys.nonce).into(),
                Payload {
                    msg: &message.ciphertext,
                    aad: &ad,
                },
            )
            .map_err(|_| DecryptError::Authentication)
    }

    fn associated_data(&self, header: &Header) -> Vec<u8> {
        let mut ad = Vec::with_capacity(self.ad.len() + Header::LEN);
        ad.extend_from_slice(&self.ad);
        ad.extend_from_slice(&header.encode());
        ad
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("peer_account", &self.peer_account)
            .field("peer_device", &self.peer_device)
            .field("sent", &self.send.as_ref().map_or(0, |c| c.index))
            .field("received", &self.recv.as_ref().map_or(0, |c| c.index))
            .field("skipped_keys", &self.skipped.len())
            .finish_non_exhaustive()
    }
}
