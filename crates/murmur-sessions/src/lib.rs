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

mod actor;
mod metrics;
mod open;
mod pairing;
mod seal;
mod state;
mod wire;

pub use metrics::Metrics;
use metrics::Reason;
use wire::{PairRequest, PairResponse, Payload};

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

/// A pairing this device asked for and waits to be answered.
struct PendingPair {
    keys: Unpaired,
    /// The device that issued the code.
    primary: (AccountId, DeviceId),
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

impl Crypto {
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
