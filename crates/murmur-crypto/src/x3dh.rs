//! X3DH, as Signal specifies it, on X25519 and HKDF-SHA256: a session with a
//! device that may be offline, from its [`Bundle`].
//!
//! The associated data binds both parties: each side's account and device
//! identity key, initiator first. The responder deletes the one-time prekey
//! only once the first message decrypted.

use rand::Rng as _;

use crate::{
    codec::{DecodeError, Reader, Writer},
    identity::{BundleError, Certificate, Installation},
    kdf,
    keys::KeyPair,
    ratchet::{DecryptError, EncryptError, Limits, Message, Session},
    Bundle,
};

const AD_CONTEXT: &[u8] = b"murmur/ad/v1";
const CIPHERTEXT_VERSION: u8 = 1;
const KIND_MESSAGE: u8 = 0;
const KIND_PREKEY: u8 = 1;

/// Why a session could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X3dhError {
    /// The bundle or the initiator's certificate did not verify.
    #[error("bundle: {0}")]
    Bundle(#[from] BundleError),
    /// The message names a signed prekey this device no longer (or never)
    /// had.
    #[error("unknown signed prekey {0}")]
    UnknownPrekey(u32),
    /// The message names a one-time prekey that was already used: a replay,
    /// or a second initiator racing for the same key.
    #[error("one-time prekey {0} was already used")]
    OneTimePrekeyUsed(u32),
    /// A session was already set up from this first message: a replay.
    #[error("replayed first message")]
    Replay,
    /// A device cannot open a session with itself.
    #[error("a device cannot open a session with itself")]
    SameDevice,
    /// The first message did not decrypt; nothing was kept.
    #[error("first message: {0}")]
    Decrypt(#[from] DecryptError),
}

pub use crate::initiation::Initiation;

/// A message as it travels between two devices: the first ones carry the
/// X3DH header, until the responder answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ciphertext {
    /// A message of an established session.
    Message(Message),
    /// A message that also sets the session up.
    Prekey(Box<Initiation>, Message),
}

impl Ciphertext {
    /// The ratchet message inside.
    pub fn message(&self) -> &Message {
        match self {
            Self::Message(m) | Self::Prekey(_, m) => m,
        }
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(CIPHERTEXT_VERSION);
        match self {
            Self::Message(_) => {
                w.u8(KIND_MESSAGE);
            }
            Self::Prekey(initiation, _) => {
                w.u8(KIND_PREKEY);
                initiation.write(&mut w);
            }
        }
        let mut v = w.finish().to_vec();
        self.message().write_to(&mut v);
        v
    }

    /// Reads the wire form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes, "ciphertext", CIPHERTEXT_VERSION)?;
        match r.u8("ciphertext kind")? {
            KIND_MESSAGE => Ok(Self::Message(Message::from_bytes(r.rest())?)),
            KIND_PREKEY => {
                let initiation = Box::new(Initiation::read(&mut r)?);
                Ok(Self::Prekey(initiation, Message::from_bytes(r.rest())?))
            }
            _ => Err(DecodeError::Invalid("ciphertext kind")),
        }
    }
}

impl Session {
    /// Encrypts one message, with the X3DH header while the peer has not
    /// answered yet.
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Ciphertext, EncryptError> {
        let message = self.encrypt(plaintext)?;
        Ok(match self.pending() {
            Some(initiation) => Ciphertext::Prekey(Box::new(initiation.clone()), message),
            None => Ciphertext::Message(message),
        })
    }
}

/// Both parties' identities, initiator first.
fn associated_data(initiator: &Certificate, responder: &Certificate) -> Vec<u8> {
    let mut ad = Vec::with_capacity(AD_CONTEXT.len() + 4 * 32);
    ad.extend_from_slice(AD_CONTEXT);
    ad.extend_from_slice(&initiator.account.0);
    ad.extend_from_slice(&initiator.identity_key.0);
    ad.extend_from_slice(&responder.account.0);
    ad.extend_from_slice(&responder.identity_key.0);
    ad
}

/// Opens a session with the device whose bundle this is. The bundle's
/// signatures are checked; one of its one-time prekeys is used at random.
///
/// Only for a bundle that came from its device to this one alone (a
/// pairing request): a one-time prekey opens one session, so of two
/// initiators who picked the same one from copies of a bundle, only the
/// first to arrive is read. For any other bundle use [`initiate_shared`].
pub fn initiate(
    ours: &Installation,
    theirs: &Bundle,
    limits: Limits,
) -> Result<Session, X3dhError> {
    start(ours, theirs, limits, true)
}

/// Opens a session from a bundle that others may hold copies of (one an
/// account handed on in a device list, a contact code, a published
/// bundle): its one-time prekeys are left alone, and the first messages'
/// forward secrecy comes from the signed prekey, which rotates. The
/// responder still refuses a replayed first message (by its ephemeral key).
pub fn initiate_shared(
    ours: &Installation,
    theirs: &Bundle,
    limits: Limits,
) -> Result<Session, X3dhError> {
    start(ours, theirs, limits, false)
}

fn start(
    ours: &Installation,
    theirs: &Bundle,
    limits: Limits,
    use_one_time: bool,
) -> Result<Session, X3dhError> {
    theirs.verify()?;
    if theirs.device() == ours.device() {
        return Err(X3dhError::SameDevice);
    }
    let ephemeral = KeyPair::generate();
    let spk = theirs.signed_prekey.key;
    let ik_b = theirs.certificate.identity_key;
    let one_time = (use_one_time && !theirs.one_time.is_empty())
        .then(|| theirs.one_time[rand::thread_rng().gen_range(0..theirs.one_time.len())]);
    let dh1 = ours.identity().agree(&spk);
    let dh2 = ephemeral.agree(&ik_b);
    let dh3 = ephemeral.agree(&spk);
    let shared = match one_time {
        Some((_, opk)) => kdf::x3dh(&[&dh1, &dh2, &dh3, &ephemeral.agree(&opk)]),
        None => kdf::x3dh(&[&dh1, &dh2, &dh3]),
    };
    let initiation = Initiation {
        certificate: ours.certificate().clone(),
        ephemeral: ephemeral.public(),
        signed_prekey: theirs.signed_prekey.id,
        one_time: one_time.map(|(id, _)| id),
    };
    Ok(Session::initiator(
        (theirs.account(), theirs.device(), ik_b),
        &shared,
        associated_data(ours.certificate(), &theirs.certificate),
        spk,
        limits,
        initiation,
    ))
}

/// Accepts a session from a first message: verifies the initiator's
/// certificate, derives the session, decrypts the message, and only then
/// deletes the one-time prekey it used.
pub fn respond(
    ours: &mut Installation,
    initiation: &Initiation,
    message: &Message,
    limits: Limits,
) -> Result<(Session, Vec<u8>), X3dhError> {
    initiation.certificate.verify()?;
    if initiation.certificate.device == ours.device() {
        return Err(X3dhError::SameDevice);
    }
    let spk = ours
        .signed_prekey(initiation.signed_prekey)
        .ok_or(X3dhError::UnknownPrekey(initiation.signed_prekey))?
        .clone();
    let ik_a = initiation.certificate.identity_key;
    let ek = initiation.ephemeral;
    if ours.seen(initiation.signed_prekey, &ek) {
        return Err(X3dhError::Replay);
    }
    let dh1 = spk.agree(&ik_a);
    let dh2 = ours.identity().agree(&ek);
    let dh3 = spk.agree(&ek);
    let shared = match initiation.one_time {
        Some(id) => {
            let opk = ours
                .one_time_prekey(id)
                .ok_or(X3dhError::OneTimePrekeyUsed(id))?;
            kdf::x3dh(&[&dh1, &dh2, &dh3, &opk.agree(&ek)])
        }
        None => kdf::x3dh(&[&dh1, &dh2, &dh3]),
    };
    let mut session = Session::responder(
        (
            initiation.certificate.account,
            initiation.certificate.device,
            ik_a,
        ),
        &shared,
        associated_data(&initiation.certificate, ours.certificate()),
        spk,
        limits,
    );
    let plaintext = session.decrypt(message)?;
    if let Some(id) = initiation.one_time {
        ours.consume_one_time(id);
    }
    ours.record(initiation.signed_prekey, &ek);
    Ok((session, plaintext))
}
