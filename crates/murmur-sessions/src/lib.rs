//! murmur's crypto stage: the default actor behind `murmur_core::crypto`, a
//! thin shell around `murmur-crypto` that keeps the account, this device,
//! contacts and sessions, and persists every change through the storage
//! stage, sealed with the node's vault key.
//!
//! A panic in a handler is caught (`murmur_core::supervise`): the request is
//! answered with `Error::Restarted`, and the stage restarts from what it had
//! saved. Any replacement proves itself with
//! `murmur_test_kit::crypto_conformance_tests!`, as this one does.
//!
//! ```
//! use murmur_core::{crypto::{self, Identity}, storage};
//! use murmur_sessions::{Crypto, Metrics, Settings};
//! use murmur_test_kit::MemoryStorage;
//!
//! # actix::System::new().block_on(async {
//! let storage = storage::Handle::from(MemoryStorage::start());
//! let stage = Crypto::start(storage, b"the node's secret", &Settings::default(), Metrics::default())
//!     .await
//!     .expect("a new account and device");
//! let handle = crypto::Handle::from(stage);
//! let (account, device) = handle.identity.send(Identity).await.unwrap().unwrap();
//! # let _ = (account, device);
//! # });
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};

use actix::prelude::*;
use base64::Engine as _;
use bytes::Bytes;
use murmur_core::{
    crypto::{
        AccountId, AddContact, BundleTopic, Bundles, ContactCode, DeviceId, Devices, Error,
        Identity, LearnBundles, Open, Opened, OwnBundle, Pair, PairingCode, Revoke, Seal, Sealed,
        SignEvent, Topics,
    },
    storage, supervise, ContentTopic,
};
use murmur_crypto::{
    envelope, x3dh, Account, Bundle, Ciphertext, DecryptError, EnvelopeError, Installation, Limits,
    PairingRequest, PrekeyPolicy, Revocation, Session, Unpaired, Vault, X3dhError,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use prost::Message as _;

const MAILBOX: usize = 1024;

/// State entries to write (or, with `None`, delete) in one transaction.
type Saves = Vec<(String, Option<Vec<u8>>)>;
/// The crypto stage's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// How many partition topics accounts are spread over.
    pub partitions: u32,
    /// How many message keys a session skips at most in one step.
    pub max_skip: u32,
    /// How many skipped message keys a session keeps at most.
    pub max_skipped_keys: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            partitions: 64,
            max_skip: 1000,
            max_skipped_keys: 2000,
        }
    }
}

impl Settings {
    /// `partitions` partition topics, the default limits otherwise.
    pub fn new(partitions: u32, max_skip: u32, max_skipped_keys: usize) -> Self {
        Self {
            partitions,
            max_skip,
            max_skipped_keys,
        }
    }
}

/// A contact code: this prefix, then the bundle in unpadded base64url.
pub const CODE_PREFIX: &str = "murmur:";
const ACCOUNT: &str = "crypto/account";
const INSTALLATION: &str = "crypto/installation";
const SESSION: &str = "crypto/session/";
/// A session kept to read what a peer sent on it after a simultaneous start.
const SHADOW: &str = "crypto/shadow/";
const CONTACT: &str = "crypto/contact/";
const REVOKED: &str = "crypto/revoked/";
/// A pairing code: this prefix, then in unpadded base64url a one-time
/// secret (32 bytes) and the issuing device's bundle.
pub const PAIR_PREFIX: &str = "murmur-pair:";
/// How long a pairing code can be used.
const PAIRING_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// What the crypto stage seals: the application's bytes, or one of its own
/// messages.
#[derive(Clone, PartialEq, prost::Message)]
struct Payload {
    #[prost(bytes = "vec", optional, tag = "1")]
    app: Option<Vec<u8>>,
    #[prost(message, optional, tag = "2")]
    pair_request: Option<PairRequest>,
    #[prost(message, optional, tag = "3")]
    pair_response: Option<PairResponse>,
    /// Bundles of the sender's account's devices.
    #[prost(bytes = "vec", repeated, tag = "4")]
    devices: Vec<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "5")]
    revocation: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PairRequest {
    #[prost(bytes = "vec", tag = "1")]
    secret: Vec<u8>,
    /// The new device's bundle, its certificate to be filled in.
    #[prost(bytes = "vec", tag = "2")]
    request: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PairResponse {
    #[prost(bytes = "vec", tag = "1")]
    certificate: Vec<u8>,
    /// Every bundle the account's first device knows: its contacts' and its
    /// own devices'.
    #[prost(bytes = "vec", repeated, tag = "2")]
    bundles: Vec<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "3")]
    revocations: Vec<Vec<u8>>,
}

/// A pairing this device asked for and waits to be answered.
struct PendingPair {
    keys: Unpaired,
    /// The device that issued the code.
    primary: (AccountId, DeviceId),
}

/// The crypto stage's counters: sealed, opened, and refused by reason.
#[derive(Clone, Default, Debug)]
pub struct Metrics {
    sealed: Counter,
    opened: Counter,
    refused: Family<Reason, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

impl Metrics {
    /// Registers the counters.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("sealed", "Envelopes sealed", self.sealed.clone());
        registry.register(
            "opened",
            "Envelopes opened and decrypted",
            self.opened.clone(),
        );
        registry.register(
            "refused",
            "Envelopes refused, by reason",
            self.refused.clone(),
        );
    }

    /// How many envelopes were refused for `reason`.
    pub fn refused(&self, reason: &'static str) -> u64 {
        self.refused.get_or_create(&Reason { reason }).get()
    }

    /// How many envelopes were opened.
    pub fn opened(&self) -> u64 {
        self.opened.get()
    }
}

/// The crypto stage.
pub struct Crypto {
    account: Option<Account>,
    installation: Installation,
    sessions: HashMap<(AccountId, DeviceId), Session>,
    /// Sessions that lost a simultaneous start, kept to read what was sent
    /// on them before the peer switched (and what it still sends on them,
    /// until the sides converge), across restarts too.
    shadows: HashMap<(AccountId, DeviceId), Session>,
    /// Devices whose bundle came from the device itself, to this device
    /// alone (a pairing request): the first session with one may use its
    /// one-time prekeys. Every other bundle is a copy others hold too (a
    /// device list, a contact code), and a one-time prekey serves only the
    /// first initiator to reach its device; not persisted (a restart only
    /// costs the first message that prekey's forward secrecy).
    first_hand: HashSet<(AccountId, DeviceId)>,
    contacts: BTreeMap<AccountId, BTreeMap<DeviceId, Bundle>>,
    vault: Vault,
    storage: storage::Handle,
    partitions: u32,
    limits: Limits,
    metrics: Metrics,
    /// Pairing secrets handed out, with their expiry.
    pairing: Vec<([u8; 32], std::time::Instant)>,
    pending_pair: Option<PendingPair>,
    /// Revoked devices, with the revocation to pass on.
    revoked: BTreeMap<(AccountId, DeviceId), Revocation>,
    /// Restarted after a panic: the state is read back from storage first.
    reload: bool,
    fuse: supervise::Fuse,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn account_id(a: murmur_crypto::AccountId) -> AccountId {
    AccountId(a.0)
}

fn device_id(d: murmur_crypto::DeviceId) -> DeviceId {
    DeviceId(d.0)
}

fn key(prefix: &str, account: AccountId, device: DeviceId) -> String {
    format!("{prefix}{account}/{device}")
}

fn state_error(e: impl std::fmt::Display) -> Error {
    Error::State(e.to_string())
}

/// The content topic where the accounts of a partition publish their
/// devices' bundles.
pub fn bundle_topic(partition: u32) -> ContentTopic {
    format!("/murmur/1/bundles-{partition}/proto")
        .parse()
        .expect("a bundle topic is a valid content topic")
}

/// The content topic of a partition.
pub fn partition_topic(partition: u32) -> ContentTopic {
    format!("/murmur/1/dm-{partition}/proto")
        .parse()
        .expect("a partition topic is a valid content topic")
}

/// What the stage keeps on disk, read back.
struct Loaded {
    account: Option<Account>,
    installation: Option<Installation>,
    sessions: HashMap<(AccountId, DeviceId), Session>,
    shadows: HashMap<(AccountId, DeviceId), Session>,
    contacts: BTreeMap<AccountId, BTreeMap<DeviceId, Bundle>>,
    revoked: BTreeMap<(AccountId, DeviceId), Revocation>,
}

async fn list_state(storage: &storage::Handle) -> Result<Vec<(String, Vec<u8>)>, Error> {
    storage
        .list_state
        .send(storage::ListState("crypto/".to_owned()))
        .await
        .map_err(state_error)?
        .map_err(state_error)
}

impl Loaded {
    fn parse(entries: Vec<(String, Vec<u8>)>, vault: &Vault) -> Result<Self, Error> {
        let mut loaded = Self {
            account: None,
            installation: None,
            sessions: HashMap::new(),
            shadows: HashMap::new(),
            contacts: BTreeMap::new(),
            revoked: BTreeMap::new(),
        };
        for (name, value) in entries {
            let bytes = vault.open(&name, &value).map_err(state_error)?;
            if name == ACCOUNT {
                let secret: [u8; 32] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::State("account key is not 32 bytes".to_owned()))?;
                loaded.account = Some(Account::from_secret(&secret));
            } else if name == INSTALLATION {
                loaded.installation = Some(Installation::from_bytes(&bytes).map_err(state_error)?);
            } else if name.starts_with(SESSION) || name.starts_with(SHADOW) {
                let s = Session::from_bytes(&bytes).map_err(state_error)?;
                let peer = (account_id(s.peer_account()), device_id(s.peer_device()));
                if name.starts_with(SESSION) {
                    loaded.sessions.insert(peer, s);
                } else {
                    loaded.shadows.insert(peer, s);
                }
            } else if name.starts_with(REVOKED) {
                let r = Revocation::from_bytes(&bytes).map_err(state_error)?;
                loaded
                    .revoked
                    .insert((account_id(r.account), device_id(r.device)), r);
            } else if name.starts_with(CONTACT) {
                let b = Bundle::from_bytes(&bytes).map_err(state_error)?;
                loaded
                    .contacts
                    .entry(account_id(b.account()))
                    .or_default()
                    .insert(device_id(b.device()), b);
            }
        }
        Ok(loaded)
    }
}

impl Crypto {
    /// Loads the stage's state (creating an account and a device on first
    /// start) and starts it under a supervisor.
    pub async fn start(
        storage: storage::Handle,
        node_secret: &[u8],
        settings: &Settings,
        metrics: Metrics,
    ) -> Result<Addr<Self>, Error> {
        let vault = Vault::new(node_secret);
        let entries = list_state(&storage).await?;
        let Loaded {
            mut account,
            installation,
            sessions,
            shadows,
            contacts,
            revoked,
        } = Loaded::parse(entries, &vault)?;
        let mut fresh = Vec::new();
        let installation = match installation {
            Some(i) => i,
            None => {
                let new_account = Account::generate();
                let i = Installation::create(&new_account, PrekeyPolicy::default(), now());
                fresh.push((
                    ACCOUNT.to_owned(),
                    Some(vault.seal(ACCOUNT, new_account.to_secret().as_ref())),
                ));
                fresh.push((
                    INSTALLATION.to_owned(),
                    Some(vault.seal(INSTALLATION, &i.to_bytes())),
                ));
                account = Some(new_account);
                tracing::info!(account = %account_id(i.account()), device = %device_id(i.device()), "created a chat account");
                i
            }
        };
        if !fresh.is_empty() {
            storage
                .save_state
                .send(storage::SaveState(fresh))
                .await
                .map_err(state_error)?
                .map_err(state_error)?;
        }
        let stage = Self {
            account,
            installation,
            sessions,
            shadows,
            first_hand: HashSet::new(),
            contacts,
            vault,
            storage,
            partitions: settings.partitions.max(1),
            limits: Limits {
                max_skip: settings.max_skip,
                max_stored: settings.max_skipped_keys,
            },
            metrics,
            pairing: Vec::new(),
            pending_pair: None,
            revoked,
            reload: false,
            fuse: supervise::Fuse::default(),
        };
        Ok(Supervisor::start(move |_| stage))
    }

    fn account(&self) -> AccountId {
        account_id(self.installation.account())
    }

    fn device(&self) -> DeviceId {
        device_id(self.installation.device())
    }

    fn bundle_topic_of(&self, account: AccountId) -> ContentTopic {
        bundle_topic(envelope::partition(
            &murmur_crypto::AccountId(account.0),
            self.partitions,
        ))
    }

    fn topic_of(&self, account: AccountId) -> ContentTopic {
        partition_topic(envelope::partition(
            &murmur_crypto::AccountId(account.0),
            self.partitions,
        ))
    }

    fn sealed_session(
        &self,
        peer: (AccountId, DeviceId),
        s: &Session,
    ) -> (String, Option<Vec<u8>>) {
        self.sealed_state(SESSION, peer, s)
    }

    fn sealed_state(
        &self,
        prefix: &str,
        peer: (AccountId, DeviceId),
        s: &Session,
    ) -> (String, Option<Vec<u8>>) {
        let name = key(prefix, peer.0, peer.1);
        let value = self.vault.seal(&name, &s.to_bytes());
        (name, Some(value))
    }

    fn sealed_installation(&self) -> (String, Option<Vec<u8>>) {
        (
            INSTALLATION.to_owned(),
            Some(self.vault.seal(INSTALLATION, &self.installation.to_bytes())),
        )
    }

    /// Every device to seal for: the recipient's, and our other ones.
    fn devices(&self, to: AccountId) -> Vec<(AccountId, DeviceId)> {
        let me = (self.account(), self.device());
        let mut out: Vec<_> = [to, self.account()]
            .iter()
            .flat_map(|account| {
                let known = self
                    .contacts
                    .get(account)
                    .into_iter()
                    .flat_map(|d| d.keys().map(|device| (*account, *device)));
                let sessions = self.sessions.keys().filter(|(a, _)| a == account).copied();
                known.chain(sessions).collect::<Vec<_>>()
            })
            .filter(|peer| *peer != me)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn seal(&mut self, to: AccountId, plaintext: &[u8]) -> Result<(Vec<Sealed>, Saves), Error> {
        let devices = self.devices(to);
        if !devices.iter().any(|(a, _)| *a == to) {
            return Err(Error::UnknownContact(to));
        }
        let payload = Payload {
            app: Some(plaintext.to_vec()),
            ..Payload::default()
        };
        self.seal_to(devices, &payload)
    }

    /// Every device this one knows, of every account, but itself.
    fn everyone(&self) -> Vec<(AccountId, DeviceId)> {
        let me = (self.account(), self.device());
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
        devices: Vec<(AccountId, DeviceId)>,
        payload: &Payload,
    ) -> Result<(Vec<Sealed>, Saves), Error> {
        let plaintext = zeroize::Zeroizing::new(payload.encode_to_vec());
        let plaintext = plaintext.as_slice();
        let sender = (self.installation.account(), self.installation.device());
        let mut sealed = Vec::with_capacity(devices.len());
        let mut saves = Vec::with_capacity(devices.len());
        for peer in devices {
            if self.revoked.contains_key(&peer) {
                continue;
            }
            let mut introduced = None;
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
                if peer.0 != self.account() {
                    // The first message carries this device's bundle, so
                    // that the other side can introduce it to others (the
                    // members of a group it adds this account to).
                    let mut first = payload.clone();
                    first
                        .devices
                        .push(self.installation.bundle_with(now(), 0).to_bytes());
                    introduced = Some(zeroize::Zeroizing::new(first.encode_to_vec()));
                }
            }
            let session = self.sessions.get_mut(&peer).expect("inserted above");
            let ciphertext = session
                .seal(introduced.as_deref().map_or(plaintext, Vec::as_slice))
                .map_err(|e| Error::State(e.to_string()))?;
            let payload = envelope::seal(&session.peer_identity(), sender, &ciphertext);
            sealed.push(Sealed::new(self.topic_of(peer.0), Bytes::from(payload)));
            let session = &self.sessions[&peer];
            saves.push(self.sealed_session(peer, session));
            self.metrics.sealed.inc();
        }
        Ok((sealed, saves))
    }

    fn refuse(&self, reason: &'static str, error: Error) -> Error {
        self.metrics.refused.get_or_create(&Reason { reason }).inc();
        tracing::debug!(reason, %error, "envelope refused");
        error
    }

    fn open(&mut self, payload: &[u8]) -> Result<(Opened, Saves), Error> {
        let opened = envelope::open(&self.installation, payload).map_err(|e| match e {
            EnvelopeError::NotForUs => self.refuse("not_for_us", Error::NotForUs),
            other => self.refuse("malformed", Error::Undecryptable(other.to_string())),
        })?;
        let peer = (
            account_id(opened.sender_account),
            device_id(opened.sender_device),
        );
        if self.revoked.contains_key(&peer) {
            return Err(self.refuse(
                "revoked",
                Error::Revoked {
                    account: peer.0,
                    device: peer.1,
                },
            ));
        }
        let mut saves = Vec::new();
        // The shadow read this message or was replaced: save it too.
        let mut shadow_changed = false;
        let mut existing = match self.sessions.get_mut(&peer) {
            Some(session) => Some(session.decrypt(opened.ciphertext.message())),
            None => None,
        };
        if matches!(existing, Some(Err(_))) {
            // The session that lost a simultaneous start still reads what
            // the peer sent on it before it switched.
            if let Some(Ok(plaintext)) = self
                .shadows
                .get_mut(&peer)
                .map(|s| s.decrypt(opened.ciphertext.message()))
            {
                existing = Some(Ok(plaintext));
                shadow_changed = true;
                // The peer writes on the session we keep as a shadow: the two
                // sides ended on different sessions (the answer to a
                // simultaneous start overtook the other side's first
                // message). The smaller (account, device) follows the
                // larger, which never switches back on a shadow: one switch,
                // and both write on the same session again.
                if (self.account(), self.device()) < peer {
                    if let (Some(main), Some(shadow)) =
                        (self.sessions.remove(&peer), self.shadows.remove(&peer))
                    {
                        self.sessions.insert(peer, shadow);
                        self.shadows.insert(peer, main);
                        tracing::debug!(account = %peer.0, device = %peer.1, "session switched to the peer's");
                    }
                }
            }
        }
        let mut opened_first = None;
        let plaintext = match (existing, &opened.ciphertext) {
            (Some(Ok(plaintext)), _) => plaintext,
            // A first message again: the peer lost its session and starts
            // over, or this one was replayed (X3DH then refuses the used
            // one-time prekey).
            (Some(Err(_)) | None, Ciphertext::Prekey(initiation, message)) => {
                if (
                    account_id(initiation.certificate.account),
                    device_id(initiation.certificate.device),
                ) != peer
                {
                    return Err(self.refuse(
                        "forged_sender",
                        Error::Undecryptable(
                            "the envelope's sender is not the certificate's".to_owned(),
                        ),
                    ));
                }
                let (session, plaintext) =
                    x3dh::respond(&mut self.installation, initiation, message, self.limits)
                        .map_err(|e| match e {
                            X3dhError::Replay => self.refuse("replay", Error::Replay),
                            // A one-time prekey gone: another initiator used
                            // it first, or this device never issued it (a
                            // restored installation); not a replay, counted
                            // apart.
                            X3dhError::OneTimePrekeyUsed(_) => {
                                self.refuse("one_time_prekey_used", Error::Replay)
                            }
                            X3dhError::Decrypt(DecryptError::Replay { .. }) => {
                                self.refuse("replay", Error::Replay)
                            }
                            other => self
                                .refuse("undecryptable", Error::Undecryptable(other.to_string())),
                        })?;
                // Both sides started a session at once: both keep the one
                // the smaller (account, device) started, so that they end
                // up on the same one. Ours is kept if it is unanswered and
                // ours is the smaller side; theirs then only reads.
                let ours_wins = self
                    .sessions
                    .get(&peer)
                    .is_some_and(|s| s.pending().is_some())
                    && (self.account(), self.device()) < peer;
                if ours_wins {
                    self.shadows.insert(peer, session);
                    shadow_changed = true;
                } else if let Some(previous) = self.sessions.insert(peer, session) {
                    // Kept to read what the peer may still send on it (see
                    // above: the peer may have ended on it).
                    self.shadows.insert(peer, previous);
                    shadow_changed = true;
                }
                saves.push(self.sealed_installation());
                opened_first = Some(true);
                tracing::info!(account = %peer.0, device = %peer.1, "session established");
                plaintext
            }
            (Some(Err(e)), Ciphertext::Message(_)) => {
                return Err(match e {
                    DecryptError::Replay { .. } => self.refuse("replay", Error::Replay),
                    DecryptError::TooFarAhead { .. } => {
                        self.refuse("too_far_ahead", Error::TooFarAhead(e.to_string()))
                    }
                    other => self.refuse("undecryptable", Error::Undecryptable(other.to_string())),
                });
            }
            (None, Ciphertext::Message(_)) => {
                return Err(self.refuse(
                    "unknown_session",
                    Error::UnknownSession {
                        account: peer.0,
                        device: peer.1,
                    },
                ));
            }
        };
        saves.push(self.sealed_session(peer, &self.sessions[&peer]));
        if let Some(shadow) = self.shadows.get(&peer).filter(|_| shadow_changed) {
            saves.push(self.sealed_state(SHADOW, peer, shadow));
        }
        self.metrics.opened.inc();
        let payload = Payload::decode(plaintext.as_slice())
            .map_err(|e| self.refuse("malformed", Error::Undecryptable(e.to_string())))?;
        let mut opened = Opened::new(peer.0, peer.1, payload.app.map(Bytes::from));
        if matches!(opened_first, Some(true)) && peer.0 != self.account() {
            // A new session from another account: tell it about this
            // account's other devices, so that it writes to them too.
            let ours: Vec<Vec<u8>> = self
                .contacts
                .get(&self.account())
                .map(|d| d.values().map(Bundle::to_bytes).collect())
                .unwrap_or_default();
            if !ours.is_empty() {
                let (publish, more) = self.seal_to(
                    vec![peer],
                    &Payload {
                        devices: ours,
                        ..Payload::default()
                    },
                )?;
                saves.extend(more);
                opened = opened.with_publish(publish);
            }
        }
        if let Some(request) = payload.pair_request {
            let (publish, more) = self.on_pair_request(peer, &request)?;
            saves.extend(more);
            opened = opened.with_publish(publish);
        }
        if let Some(response) = payload.pair_response {
            let (publish, more) = self.on_pair_response(peer, &response)?;
            saves.extend(more);
            opened = opened.with_publish(publish).with_identity_changed(true);
        }
        for bytes in &payload.devices {
            saves.extend(self.learn_device(peer.0, bytes));
        }
        if let Some(bytes) = payload.revocation {
            saves.extend(self.on_revocation(peer.0, &bytes));
        }
        Ok((opened, saves))
    }

    /// A bundle of `account`'s devices, from that account: kept if it
    /// verifies and is not revoked.
    fn learn_device(&mut self, account: AccountId, bytes: &[u8]) -> Saves {
        let Ok(bundle) = Bundle::from_bytes(bytes) else {
            return Vec::new();
        };
        let peer = (account_id(bundle.account()), device_id(bundle.device()));
        if peer.0 != account || bundle.verify().is_err() || self.revoked.contains_key(&peer) {
            self.refuse(
                "bad_bundle",
                Error::BadContact(format!("a bundle of {} from {account} refused", peer.0)),
            );
            return Vec::new();
        }
        if peer == (self.account(), self.device()) {
            return Vec::new();
        }
        tracing::info!(account = %peer.0, device = %peer.1, "learned a device");
        self.keep_contact(bundle)
    }

    fn keep_contact(&mut self, bundle: Bundle) -> Saves {
        let peer = (account_id(bundle.account()), device_id(bundle.device()));
        let name = key(CONTACT, peer.0, peer.1);
        let value = self.vault.seal(&name, &bundle.to_bytes());
        self.contacts
            .entry(peer.0)
            .or_default()
            .insert(peer.1, bundle);
        vec![(name, Some(value))]
    }

    /// A revocation from `account`: the device's bundle and session go, and
    /// nothing from it is accepted again.
    fn on_revocation(&mut self, account: AccountId, bytes: &[u8]) -> Saves {
        let Ok(r) = Revocation::from_bytes(bytes) else {
            return Vec::new();
        };
        let peer = (account_id(r.account), device_id(r.device));
        if peer.0 != account || r.verify().is_err() {
            tracing::debug!(account = %peer.0, "revocation refused");
            return Vec::new();
        }
        self.forget(peer, r)
    }

    fn forget(&mut self, peer: (AccountId, DeviceId), r: Revocation) -> Saves {
        tracing::warn!(account = %peer.0, device = %peer.1, "device revoked");
        if peer == (self.account(), self.device()) {
            tracing::error!(
                "this device was revoked by its account; it can no longer send or receive for it"
            );
        }
        if let Some(devices) = self.contacts.get_mut(&peer.0) {
            devices.remove(&peer.1);
        }
        self.sessions.remove(&peer);
        self.shadows.remove(&peer);
        self.first_hand.remove(&peer);
        let name = key(REVOKED, peer.0, peer.1);
        let value = self.vault.seal(&name, &r.to_bytes());
        self.revoked.insert(peer, r);
        vec![
            (key(SESSION, peer.0, peer.1), None),
            (key(SHADOW, peer.0, peer.1), None),
            (key(CONTACT, peer.0, peer.1), None),
            (name, Some(value)),
        ]
    }

    /// On the first device: a new device asks to join with a pairing secret.
    fn on_pair_request(
        &mut self,
        from: (AccountId, DeviceId),
        request: &PairRequest,
    ) -> Result<(Vec<Sealed>, Saves), Error> {
        let Some(account) = self.account.as_ref() else {
            return Err(self.refuse("pairing", Error::NotPrimary));
        };
        let now_instant = std::time::Instant::now();
        self.pairing.retain(|(_, expiry)| *expiry > now_instant);
        let position = self.pairing.iter().position(|(secret, _)| {
            subtle::ConstantTimeEq::ct_eq(secret.as_slice(), request.secret.as_slice()).into()
        });
        let Some(position) = position else {
            return Err(self.refuse(
                "pairing",
                Error::Pairing("unknown, expired or used pairing secret".to_owned()),
            ));
        };
        self.pairing.remove(position);
        let asked = PairingRequest::from_bytes(&request.request)
            .map_err(|e| self.refuse("pairing", Error::Pairing(e.to_string())))?;
        let certificate = account.certify(&asked, now());
        let bundle = asked
            .complete(certificate.clone())
            .map_err(|e| self.refuse("pairing", Error::Pairing(e.to_string())))?;
        let new_device = (self.account(), device_id(bundle.device()));
        tracing::info!(device = %new_device.1, "paired a new device");
        self.first_hand.insert(new_device);
        let mut saves = self.keep_contact(bundle.clone());
        let mut bundles: Vec<Vec<u8>> = self
            .contacts
            .values()
            .flat_map(|d| d.values().map(Bundle::to_bytes))
            .collect();
        bundles.push(self.installation.bundle_with(now(), 0).to_bytes());
        let response = Payload {
            pair_response: Some(PairResponse {
                certificate: bundle.to_bytes(),
                bundles,
                revocations: self.revoked.values().map(Revocation::to_bytes).collect(),
            }),
            ..Payload::default()
        };
        let (mut publish, more) = self.seal_to(vec![from], &response)?;
        saves.extend(more);
        // Everyone else learns the new device: contacts, and our other
        // devices.
        let others: Vec<_> = self
            .everyone()
            .into_iter()
            .filter(|p| *p != from && *p != new_device)
            .collect();
        let announce = Payload {
            devices: vec![bundle.to_bytes()],
            ..Payload::default()
        };
        let (more_publish, more) = self.seal_to(others, &announce)?;
        publish.extend(more_publish);
        saves.extend(more);
        Ok((publish, saves))
    }

    /// On the new device: the first device's answer, with our certificate.
    fn on_pair_response(
        &mut self,
        from: (AccountId, DeviceId),
        response: &PairResponse,
    ) -> Result<(Vec<Sealed>, Saves), Error> {
        let Some(pending) = self.pending_pair.take_if(|p| p.primary == from) else {
            return Err(self.refuse(
                "pairing",
                Error::Pairing("an answer to a pairing this device did not ask for".to_owned()),
            ));
        };
        let bundle = Bundle::from_bytes(&response.certificate)
            .map_err(|e| self.refuse("pairing", Error::Pairing(e.to_string())))?;
        let installation = pending
            .keys
            .pair(bundle.certificate)
            .map_err(|e| self.refuse("pairing", Error::Pairing(e.to_string())))?;
        // The throwaway identity's sessions and account go; the contacts
        // stay, and the first device's list is added.
        let mut saves: Saves = self
            .sessions
            .keys()
            .map(|(a, d)| (key(SESSION, *a, *d), None))
            .chain(
                self.shadows
                    .keys()
                    .map(|(a, d)| (key(SHADOW, *a, *d), None)),
            )
            .collect();
        self.sessions.clear();
        self.shadows.clear();
        self.account = None;
        self.installation = installation;
        saves.push((ACCOUNT.to_owned(), None));
        saves.push(self.sealed_installation());
        for r in &response.revocations {
            saves.extend(self.on_revocation(from.0, r));
        }
        for bytes in &response.bundles {
            if let Ok(b) = Bundle::from_bytes(bytes) {
                if b.verify().is_ok() && b.device() != self.installation.device() {
                    saves.extend(self.keep_contact(b));
                }
            }
        }
        tracing::info!(account = %self.account(), device = %self.device(), "paired: this device now belongs to the account");
        Ok((Vec::new(), saves))
    }

    fn add_contact(&mut self, code: &str) -> Result<(AccountId, Saves), Error> {
        let bundle = parse_code(code).map_err(|e| self.refuse("bad_bundle", e))?;
        bundle
            .verify()
            .map_err(|e| self.refuse("bad_bundle", Error::BadContact(e.to_string())))?;
        let account = account_id(bundle.account());
        if self
            .revoked
            .contains_key(&(account, device_id(bundle.device())))
        {
            return Err(Error::BadContact(
                "that device was revoked by its account".to_owned(),
            ));
        }
        Ok((account, self.keep_contact(bundle)))
    }

    /// Persists `saves`, then answers `result`: durable before the answer,
    /// and the mailbox waits, so saves land in order.
    fn persist<T: 'static>(
        &self,
        saves: Saves,
        result: T,
    ) -> supervise::Reply<Self, Result<T, Error>> {
        if saves.is_empty() {
            return supervise::Reply::Now(Ok(result));
        }
        let save = self.storage.save_state.clone();
        let saved = async move {
            match save.send(storage::SaveState(saves)).await {
                Ok(Ok(())) => Ok(result),
                // Not saved: the storage stage restarted on it.
                Ok(Err(storage::Error::Restarted(p))) => Err(Error::Restarted(p)),
                Ok(Err(e)) => Err(state_error(e)),
                Err(e) => Err(state_error(e)),
            }
        };
        supervise::Reply::Wait(Box::pin(
            supervise::Guarded::new(Box::pin(saved.into_actor(self)))
                .map(|outcome, _, _| outcome.unwrap_or_else(|p| Err(p.into()))),
        ))
    }

    /// Answers a guarded change: persisted first, or its error.
    fn respond<T: 'static>(
        &self,
        outcome: Result<Result<(T, Saves), Error>, supervise::Panicked>,
    ) -> supervise::Reply<Self, Result<T, Error>> {
        match outcome {
            Ok(Ok((result, saves))) => self.persist(saves, result),
            Ok(Err(e)) => supervise::Reply::Now(Err(e)),
            Err(p) => supervise::Reply::Now(Err(p.into())),
        }
    }

    /// Reads the persisted state back after a restart: what a panic left
    /// half-changed in memory is replaced by what was last saved.
    fn reload(&mut self, ctx: &mut Context<Self>) {
        let storage = self.storage.clone();
        ctx.wait(
            async move { list_state(&storage).await }
                .into_actor(self)
                .map(|entries, act, _| {
                    match entries.and_then(|e| Loaded::parse(e, &act.vault)) {
                        Ok(loaded) => act.restore(loaded),
                        Err(e) => tracing::error!(error = %e, "crypto state not reloaded; keeping the state in memory"),
                    }
                }),
        );
    }

    fn restore(&mut self, loaded: Loaded) {
        let Some(installation) = loaded.installation else {
            return;
        };
        self.installation = installation;
        self.account = loaded.account;
        self.sessions = loaded.sessions;
        self.shadows = loaded.shadows;
        self.contacts = loaded.contacts;
        self.revoked = loaded.revoked;
        tracing::info!("crypto stage reloaded its state");
    }
}

/// The bundle inside a contact code.
pub fn parse_code(code: &str) -> Result<Bundle, Error> {
    let body = code
        .trim()
        .strip_prefix(CODE_PREFIX)
        .ok_or_else(|| Error::BadContact(format!("a contact code starts with {CODE_PREFIX:?}")))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|e| Error::BadContact(format!("not base64url: {e}")))?;
    Bundle::from_bytes(&bytes).map_err(|e| Error::BadContact(e.to_string()))
}

impl Actor for Crypto {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
        if std::mem::take(&mut self.reload) {
            self.reload(ctx);
        }
        // Rotate the signed prekey and top one-time prekeys up, hourly.
        ctx.run_interval(std::time::Duration::from_secs(3600), |act, ctx| {
            if act.installation.maintain(now()) {
                let saves = vec![act.sealed_installation()];
                let save = act.storage.save_state.clone();
                ctx.spawn(
                    async move {
                        if let Ok(Err(e)) = save.send(storage::SaveState(saves)).await {
                            tracing::warn!(error = %e, "prekeys not saved");
                        }
                    }
                    .into_actor(act),
                );
            }
        });
    }
}

impl Supervised for Crypto {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!("crypto stage restarting");
        self.reload = true;
    }
}

impl supervise::Restartable for Crypto {
    const NAME: &'static str = "crypto";

    fn fuse(&mut self) -> &mut supervise::Fuse {
        &mut self.fuse
    }
}

murmur_core::inject_panic_handler!(Crypto);

impl Handler<Seal> for Crypto {
    type Result = supervise::Reply<Self, Result<Vec<Sealed>, Error>>;

    fn handle(&mut self, msg: Seal, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = supervise::guard(self, ctx, |act, _| act.seal(msg.to, &msg.plaintext));
        self.respond(outcome)
    }
}

impl Handler<Open> for Crypto {
    type Result = supervise::Reply<Self, Result<Opened, Error>>;

    fn handle(&mut self, Open(delivery): Open, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = supervise::guard(self, ctx, |act, _| act.open(&delivery.message.payload));
        self.respond(outcome)
    }
}

impl Handler<AddContact> for Crypto {
    type Result = supervise::Reply<Self, Result<AccountId, Error>>;

    fn handle(&mut self, AddContact(code): AddContact, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = supervise::guard(self, ctx, |act, _| act.add_contact(&code));
        self.respond(outcome)
    }
}

impl Handler<ContactCode> for Crypto {
    type Result = Result<String, Error>;

    fn handle(&mut self, _: ContactCode, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| {
            // No one-time prekeys: a code is for many people, the first
            // would use each up.
            let bundle = act.installation.bundle_with(now(), 0);
            format!(
                "{CODE_PREFIX}{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bundle.to_bytes())
            )
        })
        .map_err(Error::from)
    }
}

impl Handler<Topics> for Crypto {
    type Result = Result<Vec<ContentTopic>, Error>;

    fn handle(&mut self, _: Topics, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| vec![act.topic_of(act.account())]).map_err(Error::from)
    }
}

impl Handler<OwnBundle> for Crypto {
    type Result = Result<(ContentTopic, Bytes), Error>;

    fn handle(&mut self, _: OwnBundle, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| {
            let bundle = act.installation.bundle_with(now(), 0);
            (
                act.bundle_topic_of(act.account()),
                Bytes::from(bundle.to_bytes()),
            )
        })
        .map_err(Error::from)
    }
}

impl Handler<BundleTopic> for Crypto {
    type Result = Result<ContentTopic, Error>;

    fn handle(
        &mut self,
        BundleTopic(account): BundleTopic,
        ctx: &mut Context<Self>,
    ) -> Self::Result {
        supervise::guard(self, ctx, |act, _| act.bundle_topic_of(account)).map_err(Error::from)
    }
}

impl Handler<LearnBundles> for Crypto {
    type Result = supervise::Reply<Self, Result<usize, Error>>;

    fn handle(&mut self, msg: LearnBundles, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = supervise::guard(self, ctx, |act, _| Ok(act.learn_bundles(&msg)));
        self.respond(outcome)
    }
}

impl Handler<Identity> for Crypto {
    type Result = Result<(AccountId, DeviceId), Error>;

    fn handle(&mut self, _: Identity, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| (act.account(), act.device())).map_err(Error::from)
    }
}

impl Handler<PairingCode> for Crypto {
    type Result = Result<String, Error>;

    fn handle(&mut self, _: PairingCode, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| act.pairing_code())?
    }
}

impl Handler<Pair> for Crypto {
    type Result = supervise::Reply<Self, Result<Vec<Sealed>, Error>>;

    fn handle(&mut self, Pair(code): Pair, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = supervise::guard(self, ctx, |act, _| act.pair(&code));
        self.respond(outcome)
    }
}

impl Handler<Revoke> for Crypto {
    type Result = supervise::Reply<Self, Result<Vec<Sealed>, Error>>;

    fn handle(&mut self, Revoke(device): Revoke, ctx: &mut Context<Self>) -> Self::Result {
        let outcome = supervise::guard(self, ctx, |act, _| act.revoke(device));
        self.respond(outcome)
    }
}

impl Handler<Bundles> for Crypto {
    type Result = Result<Vec<Bytes>, Error>;

    fn handle(&mut self, Bundles(account): Bundles, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| {
            let own = (account == act.account())
                .then(|| Bytes::from(act.installation.bundle_with(now(), 0).to_bytes()));
            let known = act
                .contacts
                .get(&account)
                .into_iter()
                .flat_map(|devices| devices.values())
                .filter(|b| device_id(b.device()) != act.device())
                .map(|b| Bytes::from(b.to_bytes()));
            own.into_iter().chain(known).collect()
        })
        .map_err(Error::from)
    }
}

impl Handler<SignEvent> for Crypto {
    type Result = Result<[u8; 64], Error>;

    fn handle(&mut self, SignEvent(bytes): SignEvent, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| {
            let account = act.account.as_ref().ok_or(Error::NotPrimary)?;
            account.sign_group_event(&bytes).ok_or(Error::NotSignable)
        })?
    }
}

impl Handler<Devices> for Crypto {
    type Result = Result<Vec<DeviceId>, Error>;

    fn handle(&mut self, Devices(account): Devices, ctx: &mut Context<Self>) -> Self::Result {
        supervise::guard(self, ctx, |act, _| {
            let me = (act.account(), act.device());
            let mut devices: Vec<DeviceId> = act
                .everyone()
                .into_iter()
                .filter(|p| p.0 == account && *p != me)
                .map(|p| p.1)
                .collect();
            devices.dedup();
            devices
        })
        .map_err(Error::from)
    }
}

impl Crypto {
    /// Keeps the bundles that are newer than those known; answers how many
    /// devices were learned, with what to save.
    fn learn_bundles(&mut self, msg: &LearnBundles) -> (usize, Saves) {
        let mut saves = Vec::new();
        let mut kept = 0;
        for bytes in &msg.bundles {
            let Ok(bundle) = Bundle::from_bytes(bytes) else {
                continue;
            };
            let device = device_id(bundle.device());
            let newer = self
                .contacts
                .get(&msg.account)
                .and_then(|d| d.get(&device))
                .is_none_or(|known| known.timestamp < bundle.timestamp);
            if newer {
                let more = self.learn_device(msg.account, bytes);
                kept += usize::from(!more.is_empty());
                saves.extend(more);
            }
        }
        (kept, saves)
    }

    fn pairing_code(&mut self) -> Result<String, Error> {
        if self.account.is_none() {
            return Err(Error::NotPrimary);
        }
        let secret: [u8; 32] = rand::random();
        let now_instant = std::time::Instant::now();
        self.pairing.retain(|(_, expiry)| *expiry > now_instant);
        self.pairing.push((secret, now_instant + PAIRING_TTL));
        let mut body = secret.to_vec();
        body.extend(self.installation.bundle_with(now(), 0).to_bytes());
        Ok(format!(
            "{PAIR_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body)
        ))
    }
}

impl Crypto {
    /// On a new device: asks the account's first device to certify it.
    fn pair(&mut self, code: &str) -> Result<(Vec<Sealed>, Saves), Error> {
        let body = code
            .trim()
            .strip_prefix(PAIR_PREFIX)
            .ok_or_else(|| Error::Pairing(format!("a pairing code starts with {PAIR_PREFIX:?}")))?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|e| Error::Pairing(format!("not base64url: {e}")))?;
        if bytes.len() < 32 {
            return Err(Error::Pairing("too short".to_owned()));
        }
        let (secret, bundle) = bytes.split_at(32);
        let primary = Bundle::from_bytes(bundle).map_err(|e| Error::Pairing(e.to_string()))?;
        primary
            .verify()
            .map_err(|e| Error::Pairing(e.to_string()))?;
        let from = (account_id(primary.account()), device_id(primary.device()));
        if from.0 == self.account() {
            return Err(Error::Pairing(
                "this device already belongs to that account".to_owned(),
            ));
        }
        let keys = Unpaired::generate(PrekeyPolicy::default(), now());
        let request = Payload {
            pair_request: Some(PairRequest {
                secret: secret.to_vec(),
                request: keys.request(now()).to_bytes(),
            }),
            ..Payload::default()
        };
        let mut saves = self.keep_contact(primary);
        let (sealed, more) = self.seal_to(vec![from], &request)?;
        saves.extend(more);
        self.pending_pair = Some(PendingPair {
            keys,
            primary: from,
        });
        Ok((sealed, saves))
    }

    /// On the first device: revokes one of the account's devices, and tells
    /// everyone.
    fn revoke(&mut self, device: DeviceId) -> Result<(Vec<Sealed>, Saves), Error> {
        let account = self.account.as_ref().ok_or(Error::NotPrimary)?;
        if device == self.device() {
            return Err(Error::Pairing("a device cannot revoke itself".to_owned()));
        }
        let revocation = account.revoke(murmur_crypto::DeviceId(device.0), now());
        let bytes = revocation.to_bytes();
        let everyone = self.everyone();
        let mut saves = self.forget((self.account(), device), revocation);
        let (sealed, more) = self.seal_to(
            everyone,
            &Payload {
                revocation: Some(bytes),
                ..Payload::default()
            },
        )?;
        saves.extend(more);
        Ok((sealed, saves))
    }

    /// Whether this device holds its account's key (the first device does;
    /// a paired one need not).
    pub fn holds_account_key(&self) -> bool {
        self.account.is_some()
    }
}
