//! One device's end of every conversation, sans I/O: the account key (on
//! the device that holds it), this installation, its contacts' devices,
//! the Double Ratchet sessions with each, pairing and revocation.
//!
//! [`Device`] takes bytes and the time and answers bytes: envelopes to
//! publish ([`Outgoing`]), what a received envelope carried ([`Received`]),
//! and the state records to write before the answer counts ([`Records`],
//! already sealed with the node's [`Vault`]). It never waits, reads a clock
//! or touches a socket or a disk; murmur's crypto stage is the actor around
//! it.
//!
//! ```
//! use murmur_crypto::{device::Device, Limits, Vault};
//!
//! let now = 1_700_000_000;
//! let (mut alice, _) = Device::create(Vault::new(b"alice's node"), Limits::default(), now);
//! let (mut bob, _) = Device::create(Vault::new(b"bob's node"), Limits::default(), now);
//!
//! let (bob_id, _) = alice.add_contact(&bob.contact_code(now), now)?;
//! let (out, _records) = alice.seal(bob_id, b"hi Bob", now)?;
//! let (received, _) = bob.open(&out[0].envelope, now)?;
//! assert_eq!(received.app.as_deref(), Some(&b"hi Bob"[..]));
//! assert_eq!(received.sender.0, alice.account());
//! # Ok::<(), murmur_crypto::device::Error>(())
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use base64::Engine as _;
use prost::Message as _;

use crate::{
    envelope, x3dh, Account, AccountId, Bundle, DeviceId, Installation, Limits, Revocation,
    Session, Unpaired, Vault,
};

mod open;
mod pairing;
mod records;
mod requests;
mod reset;
mod wire;

pub use reset::RESET_EVERY;

pub use records::{Records, PREFIX};
pub use requests::{Accept, Policy};
use wire::Payload;

/// A device of an account.
pub type Peer = (AccountId, DeviceId);

/// A contact code: this prefix, then the bundle in unpadded base64url.
pub const CODE_PREFIX: &str = "murmur:";
/// A pairing code: this prefix, then in unpadded base64url a one-time
/// secret (32 bytes) and the issuing device's bundle.
pub const PAIR_PREFIX: &str = "murmur-pair:";
/// How long a pairing code can be used, in seconds.
pub const PAIRING_TTL: u64 = 600;

/// Why the device refused an envelope, a code or a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The envelope is addressed to another device.
    #[error("the envelope is not for this device")]
    NotForUs,
    /// The envelope, or what it carries, does not parse.
    #[error("malformed: {0}")]
    Malformed(String),
    /// The sending device was revoked by its account.
    #[error("device {device} of {account} was revoked")]
    Revoked {
        /// The sending account.
        account: AccountId,
        /// The revoked device.
        device: DeviceId,
    },
    /// The envelope names a sender that is not the one its X3DH
    /// certificate proves.
    #[error("the envelope's sender is not the certificate's")]
    ForgedSender,
    /// A message already read, or a session start already answered.
    #[error("replayed")]
    Replay,
    /// A session start on a one-time prekey already used by another
    /// initiator (or never issued by this installation).
    #[error("the one-time prekey was already used")]
    OneTimePrekeyUsed,
    /// More messages skipped than the session's limits allow.
    #[error("too far ahead: {0}")]
    TooFarAhead(String),
    /// The message does not decrypt.
    #[error("undecryptable: {0}")]
    Undecryptable(String),
    /// A message from a device this one has no session with.
    #[error("no session with device {device} of {account}")]
    UnknownSession {
        /// The sending account.
        account: AccountId,
        /// The sending device.
        device: DeviceId,
    },
    /// The session with this device does not open its message: one side
    /// lost its session state or went back to an older one (a restored
    /// backup). [`Device::reset`] starts a new session.
    #[error("the session with device {device} of {account} does not open its message")]
    BrokenSession {
        /// The sending account.
        account: AccountId,
        /// The sending device.
        device: DeviceId,
    },
    /// Only the device that holds the account key can do this.
    #[error("only the account's first device holds the account key")]
    NotPrimary,
    /// The bytes are not a group event the account key signs.
    #[error("not a group event")]
    NotSignable,
    /// A pairing code, request or answer was refused.
    #[error("pairing: {0}")]
    Pairing(String),
    /// A contact code or bundle was refused.
    #[error("bad contact: {0}")]
    BadContact(String),
    /// No device of that account is known.
    #[error("no device of {0} is known")]
    UnknownContact(AccountId),
    /// Stored state could not be read, or a session could not seal.
    #[error("state: {0}")]
    State(String),
    /// The user blocked the sending account.
    #[error("account {0} is blocked")]
    Blocked(AccountId),
    /// A first message from one more account than [`Policy::max_requests`]
    /// allows to wait for an answer.
    #[error("too many message requests wait for an answer")]
    TooManyRequests,
    /// One device of the account more than [`Policy::max_devices`] allows.
    #[error("too many devices of account {0}")]
    TooManyDevices(AccountId),
    /// This account cannot be declined or blocked by itself.
    #[error("this device's own account")]
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

/// An envelope to publish, for a device of the account `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The account the envelope is for (it tells the topic to publish on).
    pub to: AccountId,
    /// The sealed envelope.
    pub envelope: Vec<u8>,
}

/// An envelope for a device of the account `to`, its session step taken
/// and its sealing left to the caller ([`Device::seal_pending`]), which
/// may run it on another thread.
#[derive(Debug)]
pub struct Pending {
    /// The account the envelope is for (it tells the topic to publish on).
    pub to: AccountId,
    sealing: Sealing,
}

impl Pending {
    /// The envelope, sealed.
    pub fn seal(self) -> Outgoing {
        Outgoing {
            to: self.to,
            envelope: match self.sealing {
                Sealing::Done(envelope) => envelope,
                Sealing::Left(sealing) => sealing.seal(),
            },
        }
    }
}

#[derive(Debug)]
enum Sealing {
    Done(Vec<u8>),
    Left(envelope::Sealing),
}

/// What a received envelope carried.
#[derive(Debug)]
#[non_exhaustive]
pub struct Received {
    /// The sending device, proven by its session.
    pub sender: Peer,
    /// The application's bytes; `None` for the device's own messages
    /// (pairing, device lists, revocations), which it handled, and for
    /// what a session carried that did not parse (refused and counted as
    /// `"malformed"`; the session's step is in the records all the same).
    pub app: Option<Vec<u8>>,
    /// Envelopes to publish in answer (a pairing answer, this account's
    /// device list for a new contact).
    pub reply: Vec<Outgoing>,
    /// This device was just paired: its account changed.
    pub identity_changed: bool,
    /// Devices this envelope revoked (their accounts signed it): whatever
    /// else holds keys they could read (group chains) must move on too.
    pub revoked: Vec<Peer>,
    /// The sender's account is not accepted: a message request. Nothing
    /// was answered, and nothing should be (no receipt, no group join)
    /// until the user accepts it.
    pub request: bool,
    /// Accounts another device of this account accepted that were
    /// message requests on this one: what was held for them (receipts,
    /// group invites) can go now.
    pub accepted: Vec<AccountId>,
    /// The sender could not read this device's messages and started a new
    /// session ([`Device::reset`]): what this device sent it and was not
    /// acknowledged is lost to it, and should be sent again.
    pub reset: bool,
}

/// A pairing this device asked for and waits to be answered.
struct PendingPair {
    keys: Unpaired,
    /// The device that issued the code.
    primary: Peer,
}

/// One device's end of every conversation. Secrets are wiped on drop and
/// absent from Debug output.
pub struct Device {
    account: Option<Account>,
    installation: Installation,
    sessions: HashMap<Peer, Session>,
    /// Sessions that lost a simultaneous start, kept to read what was sent
    /// on them before the peer switched (and what it still sends on them,
    /// until the sides converge), across restarts too.
    shadows: HashMap<Peer, Session>,
    /// Devices whose bundle came from the device itself, to this device
    /// alone (a pairing request): the first session with one may use its
    /// one-time prekeys. Every other bundle is a copy others hold too (a
    /// device list, a contact code), and a one-time prekey serves only the
    /// first initiator to reach its device; not persisted (a restart only
    /// costs the first message that prekey's forward secrecy).
    first_hand: HashSet<Peer>,
    contacts: BTreeMap<AccountId, BTreeMap<DeviceId, Bundle>>,
    vault: Vault,
    limits: Limits,
    /// Pairing secrets handed out, with their expiry (seconds).
    pairing: Vec<([u8; 32], u64)>,
    pending_pair: Option<PendingPair>,
    /// Revoked devices, with the revocation to pass on.
    revoked: BTreeMap<Peer, Revocation>,
    /// Accounts the user added, wrote to or accepted.
    accepted: BTreeSet<AccountId>,
    /// Accounts with a session that are not accepted: message requests.
    strangers: BTreeSet<AccountId>,
    /// Accounts whose envelopes are refused unopened.
    blocked: BTreeSet<AccountId>,
    policy: Policy,
    /// New requests opened lately (`Policy::requests_per_minute`).
    new_requests: requests::Bucket,
    /// This device's certificate was renewed: its bundle goes to the
    /// account's other devices with the next message they get.
    announce: bool,
    /// Why things were refused since the caller last asked.
    refusals: Vec<&'static str>,
    /// When this device last reset its session with each device (seconds):
    /// at most once a minute, whatever a broken session keeps bringing.
    resets: HashMap<Peer, u64>,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("account", &self.account())
            .field("device", &self.device())
            .field("holds_account_key", &self.account.is_some())
            .field("sessions", &self.sessions.len())
            .field("contacts", &self.contacts.len())
            .field("revoked", &self.revoked.len())
            .field("requests", &self.strangers.len())
            .finish_non_exhaustive()
    }
}

impl Device {
    /// The account this device belongs to.
    pub fn account(&self) -> AccountId {
        self.installation.account()
    }

    /// This device's X25519 identity key: what envelopes for it are
    /// sealed to.
    pub fn identity_key(&self) -> crate::PublicKey {
        self.installation.identity_key()
    }

    /// This device.
    pub fn device(&self) -> DeviceId {
        self.installation.device()
    }

    fn me(&self) -> Peer {
        (self.account(), self.device())
    }

    /// Whether this device holds its account's key (the first device does;
    /// a paired one need not).
    pub fn holds_account_key(&self) -> bool {
        self.account.is_some()
    }

    /// This device's bundle, with no one-time prekey: it is for many.
    pub fn bundle(&self, now: u64) -> Bundle {
        self.installation.bundle_with(now, 0)
    }

    /// This device's contact code. It carries no one-time prekey: a code is
    /// for many people, and the first would use each up.
    pub fn contact_code(&self, now: u64) -> String {
        format!(
            "{CODE_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.bundle(now).to_bytes())
        )
    }

    /// The bundles known of `account`'s devices (with this one's, for this
    /// account), to pass on to others.
    pub fn bundles(&self, account: AccountId, now: u64) -> Vec<Vec<u8>> {
        let own = (account == self.account()).then(|| self.bundle(now).to_bytes());
        let known = self
            .contacts
            .get(&account)
            .into_iter()
            .flat_map(BTreeMap::values)
            .filter(|b| b.device() != self.device())
            .map(Bundle::to_bytes);
        own.into_iter().chain(known).collect()
    }

    /// The devices of `account` this one writes to (not itself).
    pub fn devices_of(&self, account: AccountId) -> Vec<DeviceId> {
        self.everyone()
            .into_iter()
            .filter(|p| p.0 == account)
            .map(|p| p.1)
            .collect()
    }

    /// Signs a group event with the account key.
    pub fn sign_group_event(&self, bytes: &[u8]) -> Result<[u8; 64], Error> {
        let account = self.account.as_ref().ok_or(Error::NotPrimary)?;
        account.sign_group_event(bytes).ok_or(Error::NotSignable)
    }

    /// Rotates the signed prekey and tops one-time prekeys up when due;
    /// the replay records of prekeys rotated out go.
    pub fn maintain(&mut self, now: u64) -> Records {
        let mut records = Vec::new();
        let mut changed = self.installation.maintain(now);
        // The first device renews its own certificate (the others' go to
        // them with the next message they get: see `seal_to`).
        if let Some(account) = &self.account {
            if self.installation.certificate().due(now) {
                let request = crate::PairingRequest::of(self.installation.bundle_with(now, 0));
                let renewed = account.certify(&request, now);
                if self.installation.renew(renewed).unwrap_or(false) {
                    changed = true;
                    self.announce = true;
                }
            }
        }
        if changed {
            records.push(self.installation_record());
        }
        for (prekey, seen) in self.installation.take_dropped() {
            records.extend(seen.iter().map(|e| (records::seen(prekey, e), None)));
        }
        records
    }

    /// Why envelopes, bundles and requests were refused since the last
    /// call, one reason each (`"replay"`, `"bad_bundle"`, ...), for the
    /// caller's counters.
    pub fn take_refusals(&mut self) -> Vec<&'static str> {
        std::mem::take(&mut self.refusals)
    }

    fn refuse(&mut self, reason: &'static str, error: Error) -> Error {
        tracing::debug!(reason, %error, "refused");
        self.refusals.push(reason);
        error
    }

    /// Seals `plaintext` for every device of `to`, and for this account's
    /// other devices.
    pub fn seal(
        &mut self,
        to: AccountId,
        plaintext: &[u8],
        now: u64,
    ) -> Result<(Vec<Outgoing>, Records), Error> {
        let (pending, records) = self.seal_pending(to, plaintext, now)?;
        Ok((pending.into_iter().map(Pending::seal).collect(), records))
    }

    /// [`Device::seal`], with the sealing of each envelope (its key
    /// agreement) left to the caller. The session steps are taken and in
    /// the records: an envelope must be sealed and published before the
    /// next is made for the same device, or arrive out of order.
    pub fn seal_pending(
        &mut self,
        to: AccountId,
        plaintext: &[u8],
        now: u64,
    ) -> Result<(Vec<Pending>, Records), Error> {
        let devices = self.devices_for(to);
        if !devices.iter().any(|(a, _)| *a == to) {
            return Err(Error::UnknownContact(to));
        }
        let payload = Payload {
            app: Some(plaintext.to_vec()),
            ..Payload::default()
        };
        // Writing to an account accepts it, on this account's other
        // devices too.
        let accepted = self.mark_accepted(to);
        let (mut out, mut records) = self.prepare_to(devices, &payload, now)?;
        if let Some(record) = accepted {
            records.push(record);
            let (told, more) = self.tell_own(to, false, now)?;
            out.extend(told.into_iter().map(|o| Pending {
                to: o.to,
                sealing: Sealing::Done(o.envelope),
            }));
            records.extend(more);
        }
        Ok((out, records))
    }

    /// Every device to seal for: the recipient's, and our other ones.
    fn devices_for(&self, to: AccountId) -> Vec<Peer> {
        self.everyone()
            .into_iter()
            .filter(|(a, _)| *a == to || *a == self.account())
            .collect()
    }

    /// Every device this one knows, of every account, but itself.
    fn everyone(&self) -> Vec<Peer> {
        let me = self.me();
        let mut out: Vec<_> = self
            .contacts
            .iter()
            .flat_map(|(a, d)| d.keys().map(|device| (*a, *device)))
            .chain(self.sessions.keys().copied())
            .filter(|peer| *peer != me)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn seal_to(
        &mut self,
        devices: Vec<Peer>,
        payload: &Payload,
        now: u64,
    ) -> Result<(Vec<Outgoing>, Records), Error> {
        let (pending, records) = self.prepare_to(devices, payload, now)?;
        Ok((pending.into_iter().map(Pending::seal).collect(), records))
    }

    fn prepare_to(
        &mut self,
        devices: Vec<Peer>,
        payload: &Payload,
        now: u64,
    ) -> Result<(Vec<Pending>, Records), Error> {
        let plaintext = zeroize::Zeroizing::new(payload.encode_to_vec());
        let plaintext = plaintext.as_slice();
        let sender = self.me();
        let mut announced = false;
        let mut sealed = Vec::with_capacity(devices.len());
        let mut records = Vec::with_capacity(devices.len());
        for peer in devices {
            if self.revoked.contains_key(&peer) {
                continue;
            }
            let mut introduced = None;
            let own = peer.0 == self.account();
            let renewal = own.then(|| self.renewal_for(peer.1, now)).flatten();
            if renewal.is_some() || (own && self.announce) {
                let mut extra = payload.clone();
                extra.renewal = renewal;
                if self.announce {
                    extra.devices.push(self.bundle(now).to_bytes());
                    announced = true;
                }
                introduced = Some(zeroize::Zeroizing::new(extra.encode_to_vec()));
            }
            if !self.sessions.contains_key(&peer) {
                let Some(bundle) = self.contacts.get(&peer.0).and_then(|d| d.get(&peer.1)) else {
                    continue;
                };
                let session = if self.first_hand.remove(&peer) {
                    x3dh::initiate(&self.installation, bundle, self.limits)
                } else {
                    x3dh::initiate_shared(&self.installation, bundle, self.limits)
                }
                .map_err(|e| Error::BadContact(e.to_string()))?;
                self.sessions.insert(peer, session);
                if !own {
                    // The first message carries this device's bundle, so
                    // that the other side can introduce it to others (the
                    // members of a group it adds this account to).
                    let mut first = payload.clone();
                    first.devices.push(self.bundle(now).to_bytes());
                    introduced = Some(zeroize::Zeroizing::new(first.encode_to_vec()));
                }
            }
            let Some(session) = self.sessions.get_mut(&peer) else {
                continue;
            };
            let ciphertext = session
                .seal(introduced.as_deref().map_or(plaintext, Vec::as_slice))
                .map_err(|e| Error::State(e.to_string()))?;
            sealed.push(Pending {
                to: peer.0,
                sealing: Sealing::Left(envelope::Sealing::new(
                    &session.peer_identity(),
                    sender,
                    &ciphertext,
                )),
            });
            records.push(self.session_record(peer));
        }
        if announced {
            self.announce = false;
        }
        Ok((sealed, records))
    }

    /// On the first device: a renewed certificate for this account's
    /// device `device`, when the one known is due.
    fn renewal_for(&self, device: DeviceId, now: u64) -> Option<Vec<u8>> {
        let account = self.account.as_ref()?;
        let bundle = self.contacts.get(&self.account())?.get(&device)?;
        if !bundle.certificate.due(now) {
            return None;
        }
        let request = crate::PairingRequest::of(bundle.clone());
        Some(account.certify(&request, now).to_bytes())
    }
}

/// The bundle inside a contact code.
pub fn parse_code(code: &str) -> Result<Bundle, Error> {
    let bytes = code_body(code, CODE_PREFIX).map_err(Error::BadContact)?;
    Bundle::from_bytes(&bytes).map_err(|e| Error::BadContact(e.to_string()))
}

/// The bytes of a code that starts with `prefix`, or why not.
fn code_body(code: &str, prefix: &str) -> Result<Vec<u8>, String> {
    let body = code
        .trim()
        .strip_prefix(prefix)
        .ok_or_else(|| format!("the code starts with {prefix:?}"))?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|e| format!("not base64url: {e}"))
}
