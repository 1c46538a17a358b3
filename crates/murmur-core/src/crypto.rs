//! The crypto-sessions stage: owns the account, this device's keys, its
//! contacts' bundles and the ratchet sessions. Its core is the sans-I/O
//! `murmur-crypto`; its actor persists what the core changes.
//!
//! Asked to: [`Seal`], [`Open`], [`Reset`] (a new session with a device
//! whose message no session opens), [`AddContact`], [`ContactCode`],
//! [`Topics`], [`Identity`], [`PairingCode`], [`Pair`], [`Revoke`],
//! [`Devices`], [`OwnBundle`], [`BundleTopic`], [`LearnBundles`],
//! [`Bundles`], [`SignEvent`], [`Revocations`], [`Requests`], [`Contacts`], [`Accept`],
//! [`Decline`], [`Unhandled`], [`Handled`].
//! Tells: [`Event`].

use std::fmt;

use actix::{Message, Recipient};
use bytes::Bytes;
use thiserror::Error;

use crate::{ContentTopic, Delivery, MessageHash};

/// An account: its Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub [u8; 32]);

/// One installation (device) of an account.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub [u8; 16]);

macro_rules! hex_id {
    ($t:ty, $name:literal) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for b in self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }

        impl std::str::FromStr for $t {
            type Err = hex::FromHexError;

            /// Parses the hex its `Display` writes.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut out = [0u8; std::mem::size_of::<$t>()];
                hex::decode_to_slice(s.trim(), &mut out)?;
                Ok(Self(out))
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    concat!($name, "({:02x}{:02x}{:02x}{:02x}…)"),
                    self.0[0], self.0[1], self.0[2], self.0[3]
                )
            }
        }
    };
}
hex_id!(AccountId, "AccountId");
hex_id!(DeviceId, "DeviceId");

/// Why sealing, opening or adding a contact failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// No device of the recipient is known: add its contact code first.
    #[error("no device of account {0} is known; add its contact code first")]
    UnknownContact(AccountId),
    /// The envelope is not for this device.
    #[error("the envelope is not for this device")]
    NotForUs,
    /// The envelope or the message inside was altered, or is malformed.
    #[error("the envelope cannot be opened: {0}")]
    Undecryptable(String),
    /// The message was received before.
    #[error("replayed message")]
    Replay,
    /// A message from a device we have no session with, that does not set
    /// one up.
    #[error("no session with device {device} of {account}")]
    UnknownSession {
        /// The claimed sender.
        account: AccountId,
        /// The claimed device.
        device: DeviceId,
    },
    /// The session with that device does not open its message: one side
    /// lost its session state or went back to an older copy (a restored
    /// backup). [`Reset`] starts a new session with it.
    #[error("the session with device {device} of {account} does not open its message")]
    BrokenSession {
        /// The claimed sender (the envelope names it; only a session proves it).
        account: AccountId,
        /// The claimed device.
        device: DeviceId,
    },
    /// A message that skips more keys than the session allows.
    #[error("message too far ahead: {0}")]
    TooFarAhead(String),
    /// A contact code or bundle that does not verify, or does not parse.
    #[error("bad contact code: {0}")]
    BadContact(String),
    /// Only the device that holds the account key can pair or revoke
    /// devices.
    #[error("this device does not hold its account's key; pair and revoke from the first device")]
    NotPrimary,
    /// A pairing code that is malformed, expired or used.
    #[error("pairing: {0}")]
    Pairing(String),
    /// The sending device was revoked by its account.
    #[error("device {device} of {account} was revoked")]
    Revoked {
        /// The account.
        account: AccountId,
        /// The revoked device.
        device: DeviceId,
    },
    /// Bytes the account key does not sign (it signs group events only).
    #[error("the account key signs group membership events only")]
    NotSignable,
    /// The stage failed on this request (a defect: it panicked) and was
    /// restarted from its persisted state; the request was not carried out.
    #[error(transparent)]
    Restarted(#[from] crate::supervise::Panicked),
    /// The stage could not read or write its state.
    #[error("crypto state: {0}")]
    State(String),
    /// The sending account is blocked.
    #[error("account {0} is blocked")]
    Blocked(AccountId),
    /// A first message from a stranger while as many message requests as
    /// allowed wait for an answer.
    #[error("too many message requests wait for an answer")]
    TooManyRequests,
    /// One more device of an account than allowed.
    #[error("too many devices of account {0}")]
    TooManyDevices(AccountId),
    /// This account cannot decline or block itself.
    #[error("this device's own account cannot be declined or blocked")]
    OwnAccount,
    /// A device never met before whose certificate expired: its account
    /// stopped renewing it (revoked, or abandoned).
    #[error("the certificate of device {device} of {account} expired")]
    Expired {
        /// The account.
        account: AccountId,
        /// The device.
        device: DeviceId,
    },
}

/// Seals `plaintext` for every known device of `to`, and for this account's
/// other devices; answers one envelope per device.
#[derive(Clone, Message)]
#[rtype(result = "Result<Vec<Sealed>, Error>")]
#[non_exhaustive]
pub struct Seal {
    /// The recipient account.
    pub to: AccountId,
    /// What its devices will read. Never logged.
    pub plaintext: Bytes,
}

impl Seal {
    /// Seals `plaintext` for `to`.
    pub fn new(to: AccountId, plaintext: Bytes) -> Self {
        Self { to, plaintext }
    }
}

/// One sealed envelope, ready to publish.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Sealed {
    /// The recipient's partition topic.
    pub content_topic: ContentTopic,
    /// The envelope, the WakuMessage payload.
    pub payload: Bytes,
}

impl Sealed {
    /// An envelope for `content_topic`.
    pub fn new(content_topic: ContentTopic, payload: Bytes) -> Self {
        Self {
            content_topic,
            payload,
        }
    }
}

/// Opens an envelope that arrived.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Opened, Error>")]
pub struct Open(pub Delivery);

/// Starts a new session with a device whose message [`Open`] answered
/// [`Error::UnknownSession`] or [`Error::BrokenSession`] for: answers the
/// new session's first envelope, which asks that device to send again what
/// this one did not acknowledge. Answers nothing if this device reset with
/// that device less than a minute ago (forged envelopes "from" a contact
/// cost at most that), or if its account is not accepted. The old session
/// stays readable until both sides are on the new one.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<Sealed>, Error>")]
pub struct Reset {
    /// The device's account.
    pub account: AccountId,
    /// The device.
    pub device: DeviceId,
}

/// An opened envelope: who sent it, known and verified only now.
#[derive(Clone)]
#[non_exhaustive]
pub struct Opened {
    /// The sending account.
    pub sender: AccountId,
    /// The sending device.
    pub device: DeviceId,
    /// The application's plaintext; `None` for the stage's own messages
    /// (pairing, device lists, revocations), which it handled. Never logged.
    pub plaintext: Option<Bytes>,
    /// Envelopes the stage wants published in answer (a pairing answer, a
    /// device list for contacts).
    pub publish: Vec<Sealed>,
    /// This device's account or partition changed (it was just paired).
    pub identity_changed: bool,
    /// Devices this envelope revoked: the membership stage must drop their
    /// group chains and hand new ones to the others.
    pub revoked: Vec<(AccountId, DeviceId)>,
    /// The sender's account is not accepted (a message request): nothing
    /// answers it (no receipt, no group join) until the user accepts it.
    pub request: bool,
    /// Accounts another device of this account accepted that were message
    /// requests on this one: what was held for their requests can go, and
    /// their messages this device kept are acknowledged.
    pub accepted: Vec<AccountId>,
    /// The sender could not read this device's messages and started a new
    /// session ([`Reset`]): what this device sent it and was not
    /// acknowledged should be sent again.
    pub reset: bool,
}

impl Opened {
    /// An opened envelope carrying the application's `plaintext`.
    pub fn new(sender: AccountId, device: DeviceId, plaintext: Option<Bytes>) -> Self {
        Self {
            sender,
            device,
            plaintext,
            publish: Vec::new(),
            identity_changed: false,
            revoked: Vec::new(),
            request: false,
            accepted: Vec::new(),
            reset: false,
        }
    }

    /// Marks the envelope as the first of a session the sender started
    /// over (see [`Opened::reset`]).
    pub fn with_reset(mut self, reset: bool) -> Self {
        self.reset = reset;
        self
    }

    /// With the accounts another device of this account accepted.
    pub fn with_accepted(mut self, accepted: Vec<AccountId>) -> Self {
        self.accepted = accepted;
        self
    }

    /// Marks the sender as not accepted: a message request.
    pub fn with_request(mut self, request: bool) -> Self {
        self.request = request;
        self
    }

    /// With the devices this envelope revoked.
    pub fn with_revoked(mut self, revoked: Vec<(AccountId, DeviceId)>) -> Self {
        self.revoked = revoked;
        self
    }

    /// With envelopes to publish in answer.
    pub fn with_publish(mut self, publish: Vec<Sealed>) -> Self {
        self.publish = publish;
        self
    }

    /// Marks this device's identity as changed.
    pub fn with_identity_changed(mut self, changed: bool) -> Self {
        self.identity_changed = changed;
        self
    }
}

/// Adds a contact from its contact code; answers its account.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<AccountId, Error>")]
pub struct AddContact(pub String);

/// Asks for this device's contact code.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<String, Error>")]
pub struct ContactCode;

/// Asks for the content topics where this device's envelopes arrive.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<ContentTopic>, Error>")]
pub struct Topics;

/// Asks for a one-time pairing code (valid ten minutes) that lets a new
/// device join this account. Only the device holding the account key can.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<String, Error>")]
pub struct PairingCode;

/// Joins the account whose pairing code this is: answers the request to
/// publish. The device's identity changes when the answer arrives.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<Sealed>, Error>")]
pub struct Pair(pub String);

/// Revokes one of this account's devices: answers the revocation to publish
/// to every contact and other device.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<Sealed>, Error>")]
pub struct Revoke(pub DeviceId);

/// Asks which devices of an account this device knows (its own account:
/// the other devices).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<DeviceId>, Error>")]
pub struct Devices(pub AccountId);

/// Asks for this device's current bundle (signed, without one-time
/// prekeys) and the topic to publish it on, so that contacts can fetch it
/// from store nodes: a fresh signed prekey, and the account's devices.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(ContentTopic, Bytes), Error>")]
pub struct OwnBundle;

/// Asks for the topic an account's devices publish their bundles on.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<ContentTopic, Error>")]
pub struct BundleTopic(pub AccountId);

/// Bundles of `account`'s devices, fetched from the network: each one that
/// verifies, belongs to the account, is not revoked and is newer than the
/// one known is kept. Revocations of the account's devices among them
/// (published beside the bundles) are applied first. Answers how many
/// bundles were kept.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<usize, Error>")]
pub struct LearnBundles {
    /// Whose.
    pub account: AccountId,
    /// The payloads found.
    pub bundles: Vec<Bytes>,
}

/// Asks for the bundles this device holds of `account`'s devices (its own
/// account: this device's, without one-time prekeys, and the others'), to
/// introduce the account to someone who has never met it.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<Bytes>, Error>")]
pub struct Bundles(pub AccountId);

/// Signs a group membership event with the account key: only bytes that
/// start with `murmur/group-event/`, and only on the device that holds the
/// key ([`Error::NotPrimary`] elsewhere).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<[u8; 64], Error>")]
pub struct SignEvent(pub Bytes);

/// Asks for the revocations this device knows of `account`'s devices (its
/// own account: to publish beside its bundle, so that whoever fetches the
/// account's bundles learns them first).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<Bytes>, Error>")]
pub struct Revocations(pub AccountId);

/// Asks which accounts wrote to this device and wait to be accepted,
/// declined or blocked (message requests).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<AccountId>, Error>")]
pub struct Requests;

/// Asks which accounts this one has as contacts: those it added, wrote
/// to or accepted (its own not among them).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<AccountId>, Error>")]
pub struct Contacts;

/// Accepts an account: it gets receipts and may add this account to
/// groups from now on. Answers this account's device list for its devices,
/// and the news for this account's other devices, to publish. Unblocks a
/// blocked account.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<Sealed>, Error>")]
pub struct Accept(pub AccountId);

/// Declines an account: its sessions and devices are forgotten. Blocked,
/// nothing it sends is opened again until it is accepted; answers what
/// tells this account's other devices, to publish.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<Sealed>, Error>")]
pub struct Decline {
    /// Whom.
    pub account: AccountId,
    /// Refuse everything it sends from now on.
    pub block: bool,
}

/// Asks for this node's account and device.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(AccountId, DeviceId), Error>")]
pub struct Identity;

/// Asks for the envelopes opened whose plaintext was not yet marked
/// [`Handled`], oldest first, each with its hash. The stage keeps every
/// [`Opened`] that carries a plaintext (its sender, device, request flag
/// and plaintext; not what it asked to publish) in the same transaction as
/// the session step that opened it: the step cannot be taken twice, so a
/// node that stops between the step and the application would lose the
/// message without it.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<(MessageHash, Opened)>, Error>")]
pub struct Unhandled;

/// Marks opened envelopes handled by their hashes: what was kept of them
/// goes. Unknown hashes are ignored.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), Error>")]
pub struct Handled(pub Vec<MessageHash>);

/// What the crypto stage tells the pipeline.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub enum Event {
    /// A session with a device is up.
    SessionEstablished {
        /// The peer account.
        account: AccountId,
        /// The peer device.
        device: DeviceId,
    },
}

/// The crypto stage as the rest of the node holds it.
#[derive(Clone)]
pub struct Handle {
    /// Where [`Seal`] goes.
    pub seal: Recipient<Seal>,
    /// Where [`Open`] goes.
    pub open: Recipient<Open>,
    /// Where [`Reset`] goes.
    pub reset: Recipient<Reset>,
    /// Where [`AddContact`] goes.
    pub add_contact: Recipient<AddContact>,
    /// Where [`ContactCode`] goes.
    pub contact_code: Recipient<ContactCode>,
    /// Where [`Topics`] goes.
    pub topics: Recipient<Topics>,
    /// Where [`Identity`] goes.
    pub identity: Recipient<Identity>,
    /// Where [`PairingCode`] goes.
    pub pairing_code: Recipient<PairingCode>,
    /// Where [`Pair`] goes.
    pub pair: Recipient<Pair>,
    /// Where [`Revoke`] goes.
    pub revoke: Recipient<Revoke>,
    /// Where [`Devices`] goes.
    pub devices: Recipient<Devices>,
    /// Where [`OwnBundle`] goes.
    pub own_bundle: Recipient<OwnBundle>,
    /// Where [`BundleTopic`] goes.
    pub bundle_topic: Recipient<BundleTopic>,
    /// Where [`LearnBundles`] goes.
    pub learn_bundles: Recipient<LearnBundles>,
    /// Where [`Bundles`] goes.
    pub bundles: Recipient<Bundles>,
    /// Where [`SignEvent`] goes.
    pub sign_event: Recipient<SignEvent>,
    /// Where [`Revocations`] goes.
    pub revocations: Recipient<Revocations>,
    /// Where [`Requests`] goes.
    pub requests: Recipient<Requests>,
    /// Where [`Contacts`] goes.
    pub contacts: Recipient<Contacts>,
    /// Where [`Accept`] goes.
    pub accept: Recipient<Accept>,
    /// Where [`Decline`] goes.
    pub decline: Recipient<Decline>,
    /// Where [`Unhandled`] goes.
    pub unhandled: Recipient<Unhandled>,
    /// Where [`Handled`] goes.
    pub handled: Recipient<Handled>,
    /// Where [`InjectPanic`](crate::supervise::InjectPanic) goes (tests of
    /// supervision).
    pub inject_panic: Recipient<crate::supervise::InjectPanic>,
}

impl<A> From<actix::Addr<A>> for Handle
where
    A: actix::Actor<Context = actix::Context<A>>
        + actix::Handler<Seal>
        + actix::Handler<Reset>
        + actix::Handler<Open>
        + actix::Handler<AddContact>
        + actix::Handler<ContactCode>
        + actix::Handler<Topics>
        + actix::Handler<Identity>
        + actix::Handler<PairingCode>
        + actix::Handler<Pair>
        + actix::Handler<Revoke>
        + actix::Handler<Devices>
        + actix::Handler<OwnBundle>
        + actix::Handler<BundleTopic>
        + actix::Handler<LearnBundles>
        + actix::Handler<Bundles>
        + actix::Handler<SignEvent>
        + actix::Handler<Revocations>
        + actix::Handler<Requests>
        + actix::Handler<Contacts>
        + actix::Handler<Accept>
        + actix::Handler<Decline>
        + actix::Handler<Unhandled>
        + actix::Handler<Handled>
        + actix::Handler<crate::supervise::InjectPanic>,
{
    fn from(addr: actix::Addr<A>) -> Self {
        Self {
            seal: addr.clone().recipient(),
            reset: addr.clone().recipient(),
            open: addr.clone().recipient(),
            add_contact: addr.clone().recipient(),
            contact_code: addr.clone().recipient(),
            topics: addr.clone().recipient(),
            identity: addr.clone().recipient(),
            pairing_code: addr.clone().recipient(),
            pair: addr.clone().recipient(),
            revoke: addr.clone().recipient(),
            devices: addr.clone().recipient(),
            own_bundle: addr.clone().recipient(),
            bundle_topic: addr.clone().recipient(),
            learn_bundles: addr.clone().recipient(),
            bundles: addr.clone().recipient(),
            sign_event: addr.clone().recipient(),
            revocations: addr.clone().recipient(),
            requests: addr.clone().recipient(),
            contacts: addr.clone().recipient(),
            accept: addr.clone().recipient(),
            decline: addr.clone().recipient(),
            unhandled: addr.clone().recipient(),
            handled: addr.clone().recipient(),
            inject_panic: addr.recipient(),
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("crypto::Handle").finish_non_exhaustive()
    }
}
