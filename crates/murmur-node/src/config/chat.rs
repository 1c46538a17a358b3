//! `[chat]`: end-to-end encrypted chat, its limits and the key that seals
//! its state at rest.

use serde::{Deserialize, Serialize};

/// The most message keys a session or group chain may skip in one step.
pub const MAX_SKIP: u32 = 100_000;
/// The most skipped message keys a session may keep.
pub const MAX_SKIPPED_KEYS: usize = 1_000_000;
/// The most threads for the envelopes' key agreements.
pub const MAX_ENVELOPE_THREADS: usize = 64;
/// The most chat messages sealed together (`chat.batch`); a receiver
/// refuses more in one envelope.
pub const MAX_BATCH: usize = 256;

/// End-to-end encrypted chat: this node's account and device, its contacts
/// and sessions, kept in the database sealed with the node key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Chat {
    /// Run the crypto stage and listen on this account's partition.
    pub enabled: bool,
    /// 1:1 traffic goes to one of this many partition topics, by recipient;
    /// an observer learns only the partition. Every node that talks to this
    /// one must use the same number.
    pub partitions: u32,
    /// The largest gap, in one chain of a session, a message may skip
    /// (later messages arrive before earlier ones, or some are lost).
    pub max_skip: u32,
    /// The most keys of skipped messages a session keeps; the oldest go.
    pub max_skipped_keys: usize,
    /// Threads that make the envelopes' key agreements (an X25519 each,
    /// most of what a message costs the crypto stage) beside the stage;
    /// unset, one per core up to four; 0, on the stage's own thread.
    pub envelope_threads: Option<usize>,
    /// The most chat messages to one account sealed together in one
    /// envelope: those that wait while the envelope before them is being
    /// sealed (under load; a message alone goes at once). 1 seals each
    /// alone, which nodes of versions before batches read.
    pub batch: usize,
    /// Chat and group deliveries waiting, in arrival order, to be opened;
    /// when full, the pipeline waits for room before it takes the next
    /// message of any kind (nothing is dropped).
    pub queue: usize,
    /// Who gets answers without being accepted first: `"contacts"` (those
    /// this account added, wrote to or accepted; everyone else's messages
    /// arrive as message requests, with no receipt and no group join) or
    /// `"everyone"` (a bot).
    pub accept: Accept,
    /// The most accounts whose message requests wait for an answer; a first
    /// message from one more is refused.
    pub max_requests: usize,
    /// The most devices kept of one other account.
    pub max_devices: usize,
    /// New message requests opened per minute at most; past it a
    /// stranger's first message is refused before any X3DH or write, so
    /// that a flood does not hold up contacts' messages. 0: no limit.
    pub requests_per_minute: u32,
    /// Where the key that seals the chat state in the database comes from.
    pub vault: Vault,
    /// Publish this device's bundle on its account's bundle topic (store
    /// nodes keep it for contacts: a fresher signed prekey, new devices).
    /// A device no one needs to find there (its contacts have its code)
    /// can leave it off, and tell no relay which account runs on it.
    pub publish_bundle: bool,
    /// The bundle goes out at a random time within this many seconds of
    /// start, not as the node connects: a relay watching a peer connect
    /// does not see the bundle, which names the account, follow at once.
    pub bundle_delay_secs: u64,
    /// Chat messages kept in the durable inbox, the oldest going first; a
    /// durable subscriber keeps what it has not passed, up to ten times
    /// this many (`Durable::lost` counts the rest).
    pub inbox_keep: usize,
}

/// Where the key that seals chat state at rest comes from (`[chat.vault]`).
/// The node key always goes into it; `passphrase` and `command` add a
/// secret that is not in the data folder, so that the folder alone opens
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Vault {
    /// `"node-key"` (the node key alone, beside the database: whoever
    /// copies the data folder reads the chat state), `"passphrase"` (with
    /// a passphrase read from the environment variable `passphrase_env`,
    /// stretched with Argon2id) or `"command"` (with what `command`
    /// prints: a system keyring, a password manager).
    pub source: VaultSource,
    /// The environment variable holding the passphrase.
    pub passphrase_env: String,
    /// The program and its arguments that print the secret (say
    /// `["secret-tool", "lookup", "service", "murmur"]`).
    pub command: Vec<String>,
}

impl Default for Vault {
    fn default() -> Self {
        Self {
            source: VaultSource::NodeKey,
            passphrase_env: "MURMUR_VAULT_PASSPHRASE".to_owned(),
            command: Vec::new(),
        }
    }
}

/// `chat.vault.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VaultSource {
    /// The node key alone.
    #[default]
    NodeKey,
    /// The node key and a passphrase.
    Passphrase,
    /// The node key and what a command prints.
    Command,
}

/// Who a node answers without being asked: `chat.accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accept {
    /// Accounts this one added, wrote to or accepted.
    #[default]
    Contacts,
    /// Every account (bots and services).
    Everyone,
}

impl Chat {
    /// The crypto stage's part of these settings.
    pub fn sessions(&self) -> murmur_sessions::Settings {
        let accept = match self.accept {
            Accept::Contacts => murmur_crypto::device::Accept::Contacts,
            Accept::Everyone => murmur_crypto::device::Accept::Everyone,
        };
        let settings =
            murmur_sessions::Settings::new(self.partitions, self.max_skip, self.max_skipped_keys);
        let settings = match self.envelope_threads {
            Some(threads) => settings.with_threads(threads),
            None => settings,
        };
        settings.with_policy(
            murmur_crypto::device::Policy::default()
                .accept(accept)
                .max_requests(self.max_requests)
                .max_devices(self.max_devices)
                .requests_per_minute(self.requests_per_minute),
        )
    }
}

impl Default for Chat {
    fn default() -> Self {
        Self {
            enabled: true,
            partitions: 64,
            max_skip: 1000,
            max_skipped_keys: 2000,
            envelope_threads: None,
            batch: 64,
            queue: 4096,
            accept: Accept::Contacts,
            max_requests: 1024,
            max_devices: 16,
            requests_per_minute: 600,
            vault: Vault::default(),
            publish_bundle: true,
            bundle_delay_secs: 1800,
            inbox_keep: 10_000,
        }
    }
}
