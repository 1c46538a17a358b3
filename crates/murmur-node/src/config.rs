//! Node configuration, layered with figment: built-in defaults, then
//! `config/default.toml` (or `--config FILE`), then `MURMUR_` environment
//! variables (`__` between nested keys: `MURMUR_NETWORK__CLUSTER=16`), then
//! command-line flags. A bad value is reported with its key and its source.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use figment::{
    providers::{Env, Format, Serialized, Toml},
    value::Value,
    Figment,
};
use libp2p::Multiaddr;
use murmur_core::{Shard, Sharding};
use serde::{Deserialize, Serialize};

use crate::Error;

mod chat;
mod errors;
mod http;
pub use chat::{
    Accept, Chat, Vault, VaultSource, MAX_BATCH, MAX_ENVELOPE_THREADS, MAX_SKIP, MAX_SKIPPED_KEYS,
};
use errors::one_line;
pub use http::{Metrics, Rest, Token, Webhook};

/// The configuration file read when `--config` is not given, if it exists.
pub const DEFAULT_FILE: &str = "config/default.toml";

/// Everything a node reads at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the node key (and, later, the database) lives.
    pub data_dir: PathBuf,
    /// Network settings.
    pub network: Network,
    /// The archive and the store service.
    pub store: Store,
    /// The Prometheus endpoint.
    pub metrics: Metrics,
    /// The REST API (nwaku's, and murmur's own).
    pub rest: Rest,
    /// Webhook bots.
    pub webhook: Webhook,
    /// End-to-end encrypted chat.
    pub chat: Chat,
    /// Each plugin's own section, `[plugins.NAME]`, read by the plugin.
    pub plugins: BTreeMap<String, Value>,
}

/// Where the node listens, whom it dials, which shards it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    /// The cluster: 1 is The Waku Network, 0 the global one.
    pub cluster: u16,
    /// How many shards the cluster autoshards content topics over.
    pub num_shards: u16,
    /// The shards this node serves; empty means all `num_shards`.
    pub shards: Vec<u16>,
    /// Where content topics go whose autoshard this node does not serve:
    /// one of these, picked by the topic's hash; empty means any served
    /// shard. Each must be served.
    pub topic_shards: Vec<u16>,
    /// Listen addresses: TCP, and WebSocket for js-waku.
    pub listen: Vec<Multiaddr>,
    /// Static peers, each ending in `/p2p/<peer id>`: dialled at start and
    /// redialled with backoff when they drop.
    pub peers: Vec<Multiaddr>,
    /// Seconds an idle connection is kept.
    pub idle_timeout_secs: u64,
    /// Run the swarm on a thread of its own, so the network keeps its pace
    /// whatever the actors do; `false` runs it on the thread the node is
    /// started on, beside its stage actors: one thread per node, no
    /// hand-off between threads on the message path, and a hook or handler
    /// that blocks holds the network up meanwhile. The default is a
    /// thread of its own on a machine with more than two cores; on two or
    /// fewer the hand-offs cost more than the second thread gains (on two
    /// cores: relay about 1.3 times as fast beside the actors, encrypted
    /// chat about the same; see docs/benchmarks.md, "Relay").
    pub own_thread: bool,
    /// The nice value (0 to 19) given to the one timer thread gossipsub
    /// wakes for every message, so that it does not preempt the network
    /// under load; 0 leaves it as it is. Linux only.
    pub timer_thread_nice: u8,
    /// Run as a light client of the first of `peers`: send with lightpush,
    /// receive with filter, read history with store; relay nothing.
    pub light: bool,
    /// Serve filter v2 to light clients (not in light mode).
    pub filter: bool,
    /// Serve lightpush v3 and v2 to light clients (not in light mode).
    pub lightpush: bool,
    /// Serve peer exchange (34/WAKU2-PEER-EXCHANGE).
    pub peer_exchange: bool,
    /// Records (`enr:…`) of peers to hand out through peer exchange until the
    /// node learns others.
    pub bootstrap_enrs: Vec<String>,
    /// EIP-1459 trees (`enrtree://<key>@<domain>`) to read peers from, as
    /// nwaku's `--dns-discovery-url`: at start, and again every minute until
    /// one reads. The peers of this cluster are dialled, and the store nodes
    /// among them asked by store sync after the static peers.
    pub dns_discovery_urls: Vec<String>,
    /// Find peers with discv5 (Waku's, protocol id `d5waku`), as nwaku's
    /// `--discv5-discovery`: a random lookup every 5 seconds; the records
    /// found of this node's cluster that share a shard with it are dialled.
    pub discv5: bool,
    /// The UDP port discv5 runs on (put in the node's record as `udp`); 0
    /// takes any free one.
    pub discv5_udp_port: u16,
    /// Records (`enr:…`) discv5 starts from, as nwaku's
    /// `--discv5-bootstrap-node`; they are dialled too.
    pub discv5_bootstrap_nodes: Vec<String>,
    /// Work the swarm runs at once: store and lightpush requests, filter
    /// requests, metadata exchanges, archiving a relay message before it is
    /// accepted. Past it a request fails at once with `Busy` and a relay
    /// message is let go unforwarded, counted in
    /// `murmur_transport_events_dropped`.
    pub max_tasks: usize,
}

/// The archive of messages and the store v3 service that answers from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Store {
    /// Serve `/vac/waku/store-query/3.0.0` to other nodes.
    pub enabled: bool,
    /// Archive every message that arrives (before accepting it for relay).
    /// A relay-only node may turn it off; store then has nothing to serve.
    pub archive: bool,
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DB`; empty means
    /// SQLite in the data folder (`murmur.db`).
    pub url: String,
    /// Delete messages older than this many seconds (0 keeps them).
    pub max_age_secs: u64,
    /// Keep at most this many messages (0 for no limit).
    pub max_messages: u64,
    /// Seconds between rounds of store sync, give or take a fifth; 0 runs
    /// none by itself (not at start nor on connection either). A round
    /// fetches from the static peers what came on this node's chat topics
    /// and subscriptions since it last saw them.
    pub sync_interval_secs: u64,
    /// Ask the static peers, by peer exchange, for the store nodes they
    /// know (every 10 minutes, before a round), and ask those too after the
    /// static peers: a light client given one service node finds the
    /// store nodes that one knows.
    pub find_stores: bool,
    /// Seconds between retention runs.
    pub retention_interval_secs: u64,
    /// Messages kept for durable subscriptions (`Node::durable_subscribe`),
    /// the oldest going first; a durable subscriber keeps what it has not
    /// passed, up to ten times this many (`Durable::lost` counts the rest).
    pub subscription_keep: usize,
    /// Whether this process takes the database's lease before it starts,
    /// so that replicas sharing one database run one at a time.
    pub lease: LeaseMode,
    /// Seconds a lease lasts unless renewed (every third of it): how long a
    /// standby waits after the holder dies before it takes over.
    pub lease_secs: u64,
}

/// `store.lease`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseMode {
    /// On PostgreSQL, which several processes share; not on SQLite, a file
    /// of the node's own (and a node killed and started again takes over
    /// at once, not after its old lease lapses).
    #[default]
    Auto,
    /// Always (a custom storage shared by processes).
    On,
    /// Never.
    Off,
}

impl Store {
    /// Whether this node takes a lease: `lease`, with `auto` resolved by
    /// the URL.
    pub fn leased(&self) -> bool {
        match self.lease {
            LeaseMode::On => true,
            LeaseMode::Off => false,
            LeaseMode::Auto => {
                self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")
            }
        }
    }
}

impl Default for Store {
    fn default() -> Self {
        Self {
            enabled: true,
            archive: true,
            url: String::new(),
            // nwaku's default retention: two days.
            max_age_secs: 2 * 24 * 3600,
            max_messages: 0,
            sync_interval_secs: 300,
            find_stores: true,
            retention_interval_secs: 60,
            subscription_keep: 10_000,
            lease: LeaseMode::Auto,
            lease_secs: 10,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("murmur-data"),
            network: Network::default(),
            store: Store::default(),
            metrics: Metrics::default(),
            rest: Rest::default(),
            webhook: Webhook::default(),
            chat: Chat::default(),
            plugins: BTreeMap::new(),
        }
    }
}

impl Default for Network {
    fn default() -> Self {
        Self {
            cluster: 1,
            num_shards: 8,
            shards: Vec::new(),
            topic_shards: Vec::new(),
            listen: vec![
                "/ip4/0.0.0.0/tcp/60000".parse().expect("valid multiaddr"),
                "/ip4/0.0.0.0/tcp/8000/ws".parse().expect("valid multiaddr"),
            ],
            peers: Vec::new(),
            idle_timeout_secs: 300,
            own_thread: std::thread::available_parallelism().map_or(true, |n| n.get() > 2),
            timer_thread_nice: murmur_transport::timer::DEFAULT_NICE,
            light: false,
            filter: true,
            lightpush: true,
            peer_exchange: true,
            bootstrap_enrs: Vec::new(),
            dns_discovery_urls: Vec::new(),
            discv5: false,
            discv5_udp_port: 9000,
            discv5_bootstrap_nodes: Vec::new(),
            max_tasks: 4096,
        }
    }
}

impl Config {
    /// The defaults, with the node's data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            ..Self::default()
        }
    }

    /// Defaults, then `file` (or [`DEFAULT_FILE`] if it exists), then `MURMUR_`
    /// variables. Merge command-line flags on top, then [`Config::from_figment`].
    pub fn figment(file: Option<&Path>) -> Figment {
        let file = file.map_or_else(|| PathBuf::from(DEFAULT_FILE), Path::to_path_buf);
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed("MURMUR_").split("__"))
    }

    /// The configuration from `file` (or `config/default.toml`, if it
    /// exists) and the `MURMUR_` environment, over the defaults.
    pub fn load(file: Option<&Path>) -> Result<Self, Error> {
        Self::from_figment(&Self::figment(file))
    }

    /// Extracts and checks a configuration. The error is one line naming the
    /// key and where its value came from.
    pub fn from_figment(figment: &Figment) -> Result<Self, Error> {
        let config: Self = figment.extract().map_err(|e| Error::Config(one_line(&e)))?;
        config.validate(figment)?;
        Ok(config)
    }

    /// Reads plugin `name`'s section, `[plugins.NAME]`.
    pub fn plugin<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<T, Error> {
        let value = self
            .plugins
            .get(name)
            .cloned()
            .unwrap_or_else(|| Value::from(BTreeMap::<String, Value>::new()));
        value
            .deserialize()
            .map_err(|e| Error::Config(format!("plugins.{name}: {e}")))
    }

    /// The database URL: the configured one, or SQLite in the data folder.
    pub fn store_url(&self) -> String {
        if self.store.url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("murmur.db").display())
        } else {
            self.store.url.clone()
        }
    }

    /// Where content topics go: the cluster's autosharding, kept to the
    /// shards this node serves.
    pub fn sharding(&self) -> Sharding {
        // Checked at load and by `Builder::start`, which refuses a placement
        // that cannot work before anything uses this.
        self.placement().unwrap_or_else(|_| {
            Sharding::auto(self.network.cluster, self.network.num_shards.max(1))
        })
    }

    /// [`Config::sharding`], or why the configured shards cannot work.
    pub fn placement(&self) -> Result<Sharding, murmur_core::ShardingError> {
        Sharding::auto(self.network.cluster, self.network.num_shards.max(1))
            .serving(&self.shards(), &self.network.topic_shards)
    }

    /// The shards served: the configured ones, or every shard of the cluster.
    pub fn shards(&self) -> Vec<u16> {
        if self.network.shards.is_empty() {
            (0..self.network.num_shards.max(1)).collect()
        } else {
            self.network.shards.clone()
        }
    }

    fn validate(&self, figment: &Figment) -> Result<(), Error> {
        let fail = |key: &str, problem: String| {
            let source = figment
                .find_metadata(key)
                .map(|m| match &m.source {
                    Some(source) => format!("{} {source}", m.name),
                    None => m.name.to_string(),
                })
                .unwrap_or_else(|| "defaults".to_owned());
            Err(Error::Config(format!(
                "invalid value for `{key}` (from {source}): {problem}"
            )))
        };
        if self.network.num_shards == 0 || self.network.num_shards > Shard::MAX_INDEX + 1 {
            return fail(
                "network.num_shards",
                format!("{} is not between 1 and 1024", self.network.num_shards),
            );
        }
        if let Some(s) = self.network.shards.iter().find(|s| **s > Shard::MAX_INDEX) {
            return fail("network.shards", format!("shard {s} is over 1023"));
        }
        if let Err(e) = self.placement() {
            return fail("network.topic_shards", e.to_string());
        }
        if self.network.timer_thread_nice > murmur_transport::timer::MAX_NICE {
            return fail(
                "network.timer_thread_nice",
                format!(
                    "{} is not between 0 and {}",
                    self.network.timer_thread_nice,
                    murmur_transport::timer::MAX_NICE
                ),
            );
        }
        for (key, value) in [
            ("network.max_tasks", self.network.max_tasks),
            ("chat.queue", self.chat.queue),
            ("chat.batch", self.chat.batch),
            ("chat.max_devices", self.chat.max_devices),
        ] {
            if value == 0 {
                return fail(key, "0 would refuse everything; at least 1".to_owned());
            }
        }
        // Renewed every third: under 3 s, a busy database misses renewals.
        if self.store.lease_secs < 3 {
            return fail(
                "store.lease_secs",
                format!("{} is under 3 seconds", self.store.lease_secs),
            );
        }
        // A peer makes this node derive up to max_skip keys per message
        // and keep max_skipped_keys: bounded, so that one message cannot
        // cost seconds or memory without end.
        if self.chat.max_skip > MAX_SKIP {
            return fail(
                "chat.max_skip",
                format!("{} is over {MAX_SKIP}", self.chat.max_skip),
            );
        }
        if self.chat.max_skipped_keys > MAX_SKIPPED_KEYS {
            return fail(
                "chat.max_skipped_keys",
                format!("{} is over {MAX_SKIPPED_KEYS}", self.chat.max_skipped_keys),
            );
        }
        if let Some(n) = self
            .chat
            .envelope_threads
            .filter(|n| *n > MAX_ENVELOPE_THREADS)
        {
            return fail(
                "chat.envelope_threads",
                format!("{n} is over {MAX_ENVELOPE_THREADS}"),
            );
        }
        if self.chat.batch > MAX_BATCH {
            return fail(
                "chat.batch",
                format!("{} is over {MAX_BATCH}", self.chat.batch),
            );
        }
        if let Err((key, problem)) = self.rest.check().and_then(|()| self.webhook.check()) {
            return fail(key, problem);
        }
        if self.network.listen.is_empty() {
            return fail(
                "network.listen",
                "at least one listen address is needed".to_owned(),
            );
        }
        if self.network.light && self.network.peers.is_empty() {
            return fail(
                "network.light",
                "a light client needs a service node: give it with --peer".to_owned(),
            );
        }
        for url in &self.network.dns_discovery_urls {
            if let Err(e) = url.parse::<murmur_transport::dns::Url>() {
                return fail("network.dns_discovery_urls", format!("`{url}`: {e}"));
            }
        }
        for enr in &self.network.bootstrap_enrs {
            if let Err(e) = enr.parse::<murmur_transport::enr::Record>() {
                return fail(
                    "network.bootstrap_enrs",
                    format!("`{enr}` is not a valid ENR: {e}"),
                );
            }
        }
        for enr in &self.network.discv5_bootstrap_nodes {
            if !enr.starts_with("enr:") || enr.parse::<murmur_transport::enr::Record>().is_err() {
                return fail(
                    "network.discv5_bootstrap_nodes",
                    format!("`{enr}` is not a valid ENR (enr:…)"),
                );
            }
        }
        for peer in &self.network.peers {
            if !matches!(
                peer.iter().last(),
                Some(libp2p::multiaddr::Protocol::P2p(_))
            ) {
                return fail(
                    "network.peers",
                    format!("`{peer}` must end with /p2p/<peer id>"),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
// figment's Jail API returns its own (large) error type.
#[allow(clippy::result_large_err)]
mod tests;
