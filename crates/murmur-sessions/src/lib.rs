//! murmur's crypto stage: the default actor behind `murmur_core::crypto`, a
//! thin shell around the sans-I/O [`murmur_crypto::Device`] (the account,
//! this device, contacts and sessions, pairing and revocation). The shell
//! reads the clock, publishes on each account's partition topic, counts,
//! and persists every change the device reports through the storage stage
//! before it answers.
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

use actix::prelude::*;
use bytes::Bytes;
use murmur_core::{
    crypto::{
        Accept, AccountId, AddContact, BundleTopic, Bundles, ContactCode, Contacts, Decline,
        DeviceId, Devices, Error, Identity, LearnBundles, Open, Opened, OwnBundle, Pair,
        PairingCode, Requests, Reset, Revocations, Revoke, Seal, Sealed, SignEvent, Topics,
    },
    storage, supervise, ContentTopic,
};
use murmur_crypto::{
    device::{self, Device, Outgoing, Records},
    envelope, Limits, Vault,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

mod actor;
mod journal;
mod metrics;
mod opening;
mod pool;
mod state;

pub use metrics::Metrics;
use metrics::Reason;
pub use murmur_crypto::device::{CODE_PREFIX, PAIR_PREFIX};

const MAILBOX: usize = 1024;

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
    /// Who is answered without being asked (message requests), and how
    /// many strangers and devices per account are kept.
    pub policy: device::Policy,
    /// Threads that make the envelopes' key agreements beside the stage
    /// (by default one per core, at most four); 0 makes them on the
    /// stage's own thread.
    pub threads: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            partitions: 64,
            max_skip: 1000,
            max_skipped_keys: 2000,
            policy: device::Policy::default(),
            threads: pool::default_threads(),
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
            ..Self::default()
        }
    }

    /// With `threads` threads for the envelopes' key agreements.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// With `policy` for strangers.
    pub fn with_policy(mut self, policy: device::Policy) -> Self {
        self.policy = policy;
        self
    }

    fn limits(&self) -> Limits {
        Limits {
            max_skip: self.max_skip,
            max_stored: self.max_skipped_keys,
        }
    }
}

/// The crypto stage: the actor around this device's
/// [`murmur_crypto::Device`].
pub struct Crypto {
    device: Device,
    /// Seals the plaintexts kept until handled ([`journal`]), apart from
    /// the device's ledger.
    journal: Vault,
    storage: storage::Handle,
    partitions: u32,
    metrics: Metrics,
    /// Restarted after a panic: the state is read back from storage first.
    reload: bool,
    /// Changes on their way to storage, a group at a time.
    saving: murmur_core::commit::Commits<Error>,
    /// Makes the envelopes' key agreements.
    pool: pool::Pool,
    /// Envelopes being opened, in the order they came.
    opening: opening::Opening,
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

fn state_error(e: impl std::fmt::Display) -> Error {
    Error::State(e.to_string())
}

/// The stage contract's error for the device's.
fn contract_error(e: device::Error) -> Error {
    use device::Error as E;
    match e {
        E::NotForUs => Error::NotForUs,
        E::Malformed(why) | E::Undecryptable(why) => Error::Undecryptable(why),
        E::Revoked { account, device } => Error::Revoked {
            account: account_id(account),
            device: device_id(device),
        },
        E::ForgedSender => Error::Undecryptable(e.to_string()),
        E::Replay | E::OneTimePrekeyUsed => Error::Replay,
        E::TooFarAhead(why) => Error::TooFarAhead(why),
        E::UnknownSession { account, device } => Error::UnknownSession {
            account: account_id(account),
            device: device_id(device),
        },
        E::BrokenSession { account, device } => Error::BrokenSession {
            account: account_id(account),
            device: device_id(device),
        },
        E::NotPrimary => Error::NotPrimary,
        E::NotSignable => Error::NotSignable,
        E::Pairing(why) => Error::Pairing(why),
        E::BadContact(why) => Error::BadContact(why),
        E::UnknownContact(account) => Error::UnknownContact(account_id(account)),
        E::Blocked(account) => Error::Blocked(account_id(account)),
        E::TooManyRequests => Error::TooManyRequests,
        E::TooManyDevices(account) => Error::TooManyDevices(account_id(account)),
        E::OwnAccount => Error::OwnAccount,
        E::Expired { account, device } => Error::Expired {
            account: account_id(account),
            device: device_id(device),
        },
        other => Error::State(other.to_string()),
    }
}

/// The bundle inside a contact code.
pub fn parse_code(code: &str) -> Result<murmur_crypto::Bundle, Error> {
    device::parse_code(code).map_err(contract_error)
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
        account_id(self.device.account())
    }

    fn device(&self) -> DeviceId {
        device_id(self.device.device())
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

    /// Counts what the device refused since it was last asked.
    fn count_refusals(&mut self) {
        for reason in self.device.take_refusals() {
            self.metrics.refused.get_or_create(&Reason { reason }).inc();
        }
    }

    /// Envelopes to publish, on their recipients' partition topics.
    fn sealed(&self, out: Vec<Outgoing>) -> Vec<Sealed> {
        out.into_iter()
            .map(|o| Sealed::new(self.topic_of(account_id(o.to)), Bytes::from(o.envelope)))
            .collect()
    }

    /// Runs `op` on the device: its refusals counted, its error in the
    /// contract's terms.
    fn on_device<T>(
        &mut self,
        op: impl FnOnce(&mut Device, u64) -> Result<T, device::Error>,
    ) -> Result<T, Error> {
        let outcome = op(&mut self.device, now());
        self.count_refusals();
        outcome.map_err(contract_error)
    }
}
