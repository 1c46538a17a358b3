use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use actix::{prelude::*, Supervisor};
use bytes::Bytes;
use libp2p::identity::Keypair;
use murmur_core::{
    hook::{Hook, Outgoing},
    storage,
    transport::{self, Dial, GetStatus, QueryStore, Status, Subscribe},
    ContentTopic, Delivery, MessageHash, PubsubTopic, Sharding, WakuMessage,
};
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

use crate::{
    chat::{
        AccountId, Body, Conversation, DeliveryState, DeviceId, Group, GroupId, Inbox, Notices,
        Sent, Summary,
    },
    keys,
    pipeline::{
        AddInbox, AddNotices, AddSubscriber, ApplyEffects, Attach, AttachChat, AttachGroups,
        ChatOutbound, GetStats, PublishEnvelopes, SendChat, Slot,
    },
    Config, Error, Pipeline, Stats,
};

const SUBSCRIBER_QUEUE: usize = 1024;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;
type TransportFactory =
    Box<dyn FnOnce(StageContext) -> BoxFuture<Result<transport::Handle, Error>>>;
type StorageFactory = Box<dyn FnOnce(Config) -> BoxFuture<Result<storage::Handle, Error>>>;
type CryptoFactory =
    Box<dyn FnOnce(CryptoContext) -> BoxFuture<Result<murmur_core::crypto::Handle, Error>>>;
type GroupsFactory =
    Box<dyn FnOnce(GroupsContext) -> BoxFuture<Result<murmur_core::groups::Handle, Error>>>;
type SyncFactory =
    Box<dyn FnOnce(SyncContext) -> BoxFuture<Result<murmur_core::sync::Handle, Error>>>;

type PluginFactory = Box<dyn FnOnce(&Config) -> Result<Option<Slot>, Error>>;

/// Where the application's state lives among the node's.
const APP_STATE: &str = "app/";

/// A hook as it was added: an instance, or a plugin built at start.
enum HookSpec {
    Instance(Box<dyn Hook>),
    Plugin(PluginFactory),
}

/// What a membership stage factory gets from the builder.
#[non_exhaustive]
pub struct GroupsContext {
    /// The persistence stage, for the stage's own state.
    pub storage: storage::Handle,
    /// The crypto stage: it signs membership events with the account key
    /// and has the bundles of accounts to introduce.
    pub crypto: murmur_core::crypto::Handle,
    /// The secret to derive the at-rest key from (the node key). Wiped on
    /// drop.
    pub node_secret: zeroize::Zeroizing<Vec<u8>>,
    /// The `[chat]` settings.
    pub settings: crate::config::Chat,
    /// Where the stage counts what it opens and refuses.
    pub metrics: crate::groups::Metrics,
}

/// What a store-sync stage factory gets from the builder.
#[non_exhaustive]
pub struct SyncContext {
    /// Where store queries go: the transport's.
    pub query_store: Recipient<transport::QueryStore>,
    /// Where what comes back goes: the pipeline's inbound path.
    pub inbound: Recipient<transport::Event>,
    /// The store nodes to ask: the node's static peers.
    pub stores: Vec<String>,
}

/// What a crypto stage factory gets from the builder.
#[non_exhaustive]
pub struct CryptoContext {
    /// The persistence stage, for the stage's own state.
    pub storage: storage::Handle,
    /// The secret to derive the at-rest key from (the node key). Wiped on
    /// drop.
    pub node_secret: zeroize::Zeroizing<Vec<u8>>,
    /// The `[chat]` settings.
    pub settings: crate::config::Chat,
    /// Where the stage counts what it seals, opens and refuses.
    pub metrics: crate::crypto::Metrics,
}

/// What a stage factory gets from the builder.
#[non_exhaustive]
pub struct StageContext {
    /// Where the stage sends its events: the pipeline.
    pub events: Recipient<transport::Event>,
    /// The node's configuration.
    pub config: Config,
    /// The node's identity.
    pub keypair: Keypair,
    /// Where the stage registers its metrics.
    pub metrics: murmur_transport::Metrics,
    /// The persistence stage, which the store service answers from.
    pub storage: storage::Handle,
}

/// Assembles a node: the only code that names concrete stage actors.
///
/// ```no_run
/// # use murmur_node::{Builder, Config};
/// # async fn run(my_transport: murmur_core::transport::Handle) -> Result<(), murmur_node::Error> {
/// // Replace the libp2p transport with any actor that handles the transport
/// // stage's messages.
/// let node = Builder::new(Config::default())
///     .with_transport(move |_cx| async move { Ok(my_transport) })
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
pub struct Builder {
    config: Config,
    keypair: Option<Keypair>,
    transport: TransportFactory,
    storage: StorageFactory,
    crypto: CryptoFactory,
    groups: GroupsFactory,
    sync: SyncFactory,
    hooks: Vec<HookSpec>,
    require_static_peers: bool,
}

impl Builder {
    /// A node with the libp2p Waku transport.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            keypair: None,
            transport: Box::new(|cx| Box::pin(libp2p_transport(cx))),
            storage: Box::new(|config| Box::pin(sql_storage(config))),
            crypto: Box::new(|cx| {
                Box::pin(async move {
                    crate::crypto::start_default(
                        cx.storage,
                        &cx.node_secret,
                        &cx.settings,
                        cx.metrics,
                    )
                    .await
                    .map_err(Error::from)
                })
            }),
            groups: Box::new(|cx| {
                Box::pin(async move {
                    crate::groups::Membership::start(
                        cx.storage,
                        cx.crypto,
                        &cx.node_secret,
                        cx.settings.max_skip,
                        cx.metrics,
                    )
                    .await
                    .map(murmur_core::groups::Handle::from)
                    .map_err(Error::from)
                })
            }),
            sync: Box::new(|cx| {
                Box::pin(async move {
                    let stage =
                        murmur_sync::StoreSync::start(cx.query_store, cx.inbound, cx.stores);
                    Ok(murmur_core::sync::Handle::from(stage))
                })
            }),
            hooks: Vec::new(),
            require_static_peers: true,
        }
    }

    /// Uses this identity instead of the key in the data folder.
    pub fn with_keypair(mut self, keypair: Keypair) -> Self {
        self.keypair = Some(keypair);
        self
    }

    /// Replaces the transport stage. `factory` starts the stage (under a
    /// supervisor, if it is an actor) with the events recipient it is given,
    /// and returns its handle.
    pub fn with_transport<F, Fut>(mut self, factory: F) -> Self
    where
        F: FnOnce(StageContext) -> Fut + 'static,
        Fut: Future<Output = Result<transport::Handle, Error>> + 'static,
    {
        self.transport = Box::new(move |cx| Box::pin(factory(cx)));
        self
    }

    /// Replaces the persistence stage (by default SQLite or PostgreSQL, as
    /// `store.url` says). `factory` starts the stage and returns its handle.
    pub fn with_storage<F, Fut>(mut self, factory: F) -> Self
    where
        F: FnOnce(Config) -> Fut + 'static,
        Fut: Future<Output = Result<storage::Handle, Error>> + 'static,
    {
        self.storage = Box::new(move |config| Box::pin(factory(config)));
        self
    }

    /// Replaces the crypto stage (by default `murmur_node::crypto::Crypto`).
    /// `factory` starts the stage and returns its handle; a replacement proves
    /// itself with `murmur_test_kit::crypto_conformance_tests!`.
    pub fn with_crypto<F, Fut>(mut self, factory: F) -> Self
    where
        F: FnOnce(CryptoContext) -> Fut + 'static,
        Fut: Future<Output = Result<murmur_core::crypto::Handle, Error>> + 'static,
    {
        self.crypto = Box::new(move |cx| Box::pin(factory(cx)));
        self
    }

    /// Replaces the membership stage (by default
    /// `murmur_node::groups::Membership`). `factory` starts the stage and
    /// returns its handle.
    pub fn with_groups<F, Fut>(mut self, factory: F) -> Self
    where
        F: FnOnce(GroupsContext) -> Fut + 'static,
        Fut: Future<Output = Result<murmur_core::groups::Handle, Error>> + 'static,
    {
        self.groups = Box::new(move |cx| Box::pin(factory(cx)));
        self
    }

    /// Replaces the store-sync stage (by default `murmur_sync::StoreSync`).
    /// `factory` starts the stage and returns its handle; a replacement
    /// proves itself with `murmur_test_kit::sync_conformance_tests!`.
    pub fn with_sync<F, Fut>(mut self, factory: F) -> Self
    where
        F: FnOnce(SyncContext) -> Fut + 'static,
        Fut: Future<Output = Result<murmur_core::sync::Handle, Error>> + 'static,
    {
        self.sync = Box::new(move |cx| Box::pin(factory(cx)));
        self
    }

    /// Adds plugin `P`, built from the `[plugins.NAME]` section of the
    /// configuration at start (and rebuilt from it after a panic), after
    /// the hooks added before.
    pub fn with_plugin<P: crate::plugin::Plugin>(mut self) -> Self {
        self.hooks
            .push(HookSpec::Plugin(Box::new(crate::plugin::slot::<P>)));
        self
    }

    /// Adds a hook on the message path, after those added before.
    pub fn with_hook(mut self, hook: impl Hook) -> Self {
        self.hooks.push(HookSpec::Instance(Box::new(hook)));
        self
    }

    /// Whether an unreachable static peer fails the start (the default) or is
    /// only retried in the background.
    pub fn require_static_peers(mut self, required: bool) -> Self {
        self.require_static_peers = required;
        self
    }

    /// Builds a node with `make` on `thread` (an actix arbiter) and starts
    /// it there: its stage actors live on that thread and, with
    /// `network.own_thread = false`, its swarm too, so that the node is one
    /// thread with no hand-off between threads on its message path. `make`
    /// runs on that thread because a builder is not `Send`. Errors with
    /// [`Error::Stopped`] if the arbiter has stopped.
    pub async fn start_on(
        thread: &ArbiterHandle,
        make: impl FnOnce() -> Builder + Send + 'static,
    ) -> Result<Node, Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        thread.spawn_fn(move || {
            actix::spawn(async move {
                let _ = tx.send(make().start().await);
            });
        });
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Starts every stage and the pipeline. Must run inside an actix system.
    pub async fn start(self) -> Result<Node, Error> {
        let keypair = match self.keypair {
            Some(k) => k,
            None => keys::load_or_create(&self.config.data_dir)?,
        };
        let storage = (self.storage)(self.config.clone()).await?;
        let mut hooks = Vec::with_capacity(self.hooks.len());
        for spec in self.hooks {
            match spec {
                HookSpec::Instance(hook) => hooks.push(Slot::new(hook)),
                HookSpec::Plugin(build) => hooks.extend(build(&self.config)?),
            }
        }
        let pipeline = Supervisor::start(move |_| Pipeline::new(hooks));
        let metrics = murmur_transport::Metrics::default();
        let mut registry = Registry::with_prefix("murmur");
        metrics.register(registry.sub_registry_with_prefix("transport"));

        let transport = (self.transport)(StageContext {
            events: pipeline.clone().recipient(),
            config: self.config.clone(),
            keypair: keypair.clone(),
            metrics: metrics.clone(),
            storage: storage.clone(),
        })
        .await?;
        pipeline
            .send(Attach {
                transport: transport.clone(),
                storage: storage.clone(),
                archive: self.config.store.archive,
            })
            .await?;
        spawn_retention(&self.config, storage.prune.clone());
        let sync = (self.sync)(SyncContext {
            query_store: transport.query_store.clone(),
            inbound: pipeline.clone().recipient(),
            stores: self
                .config
                .network
                .peers
                .iter()
                .map(ToString::to_string)
                .collect(),
        })
        .await?;

        let crypto_metrics = crate::crypto::Metrics::default();
        crypto_metrics.register(registry.sub_registry_with_prefix("crypto"));
        let group_metrics = crate::groups::Metrics::default();
        group_metrics.register(registry.sub_registry_with_prefix("groups"));
        let chat = if self.config.chat.enabled {
            let crypto = (self.crypto)(CryptoContext {
                storage: storage.clone(),
                node_secret: crate::crypto::vault_secret(&keypair)?,
                settings: self.config.chat.clone(),
                metrics: crypto_metrics.clone(),
            })
            .await?;
            let topics = crypto.topics.send(murmur_core::crypto::Topics).await??;
            let me = crypto
                .identity
                .send(murmur_core::crypto::Identity)
                .await??;
            pipeline
                .send(AttachChat {
                    crypto: crypto.clone(),
                    outbox: storage.clone(),
                    sharding: self.config.sharding(),
                    topics: topics.clone(),
                    me: me.0,
                })
                .await?;
            let groups = (self.groups)(GroupsContext {
                storage: storage.clone(),
                crypto: crypto.clone(),
                node_secret: crate::crypto::vault_secret(&keypair)?,
                settings: self.config.chat.clone(),
                metrics: group_metrics.clone(),
            })
            .await?;
            let group_topics = groups.topics.send(murmur_core::groups::Topics).await??;
            pipeline
                .send(AttachGroups {
                    groups: groups.clone(),
                    topics: group_topics.clone(),
                })
                .await?;
            let mut topics = topics;
            topics.extend(group_topics);
            Some((crypto, topics, groups))
        } else {
            None
        };

        let sharding = self.config.sharding();
        // A light client relays nothing: it subscribes only to what it asks for.
        let relayed = if self.config.network.light {
            Vec::new()
        } else {
            self.config.shards()
        };
        for index in relayed {
            let topic = murmur_core::Shard {
                cluster: sharding.cluster,
                index,
            }
            .pubsub_topic();
            transport.subscribe.send(Subscribe::new(topic)).await??;
        }
        for peer in &self.config.network.peers {
            let result = transport.dial.send(Dial(peer.to_string())).await?;
            match result {
                Ok(_) => {}
                Err(e) if self.require_static_peers => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(error = %e, "static peer unreachable; retrying in the background")
                }
            }
        }
        let metrics_addr = if self.config.metrics.enabled {
            let bound =
                crate::metrics::serve(Arc::new(registry), self.config.metrics.address).await?;
            tracing::info!(address = %bound, "serving metrics at /metrics");
            Some(bound)
        } else {
            None
        };
        let status = transport.status.send(GetStatus).await?;
        let node = Node {
            inner: Arc::new(Inner {
                pipeline,
                transport,
                sharding,
                status,
                metrics,
                metrics_addr,
                crypto_metrics,
                group_metrics,
                chat: chat.as_ref().map(|(crypto, _, _)| crypto.clone()),
                groups: chat.as_ref().map(|(_, _, groups)| groups.clone()),
                storage: storage.clone(),
                sync,
            }),
        };
        if let Some((_, topics, _)) = &chat {
            // Our partition's shard, with its content topic, even on a node
            // that relays only some shards or none (light).
            node.subscribe_shards(topics.iter()).await?;
            spawn_bundle_publisher(&node);
        }
        Ok(node)
    }
}

/// Publishes the device's bundle soon after start and every six hours; a
/// failed attempt (no peers yet) is retried every thirty seconds.
fn spawn_bundle_publisher(node: &Node) {
    const EVERY: Duration = Duration::from_secs(6 * 3600);
    const RETRY: Duration = Duration::from_secs(30);
    let node = std::sync::Arc::downgrade(&node.inner);
    actix::spawn(async move {
        let mut wait = Duration::from_secs(2);
        loop {
            tokio::time::sleep(wait).await;
            // The node is gone once every handle is dropped.
            let Some(inner) = node.upgrade() else { return };
            wait = match (Node { inner }).publish_bundle().await {
                Ok(hash) => {
                    tracing::debug!(%hash, "bundle published");
                    EVERY
                }
                Err(Error::Stopped) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "bundle not published yet");
                    RETRY
                }
            };
        }
    });
}

async fn sql_storage(config: Config) -> Result<storage::Handle, Error> {
    let db = murmur_storage::Database::open(&config.store_url()).await?;
    Ok(storage::Handle::from(murmur_storage::Storage::start(db)))
}

/// Applies the configured retention in the background, every
/// `store.retention_interval_secs`.
fn spawn_retention(config: &Config, prune: Recipient<storage::Prune>) {
    let store = &config.store;
    let max_age = (store.max_age_secs > 0).then(|| Duration::from_secs(store.max_age_secs));
    let max_count = (store.max_messages > 0).then_some(store.max_messages);
    if max_age.is_none() && max_count.is_none() {
        return;
    }
    let every = Duration::from_secs(store.retention_interval_secs.max(1));
    actix::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match prune.send(storage::Prune::new(max_age, max_count)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(deleted = n, "retention applied"),
                Ok(Err(e)) => tracing::warn!(error = %e, "retention failed"),
                // The storage stage is gone: the node is stopping.
                Err(_) => return,
            }
        }
    });
}

async fn libp2p_transport(cx: StageContext) -> Result<transport::Handle, Error> {
    let (addr, _) = murmur_transport::Transport::start(cx.transport_config(), cx.events).await?;
    Ok(transport::Handle::from(addr))
}

impl StageContext {
    /// The libp2p transport's configuration for this node, for factories that
    /// wrap or observe the default transport.
    pub fn transport_config(&self) -> murmur_transport::Config {
        let config = &self.config;
        let mut transport = murmur_transport::Config::new(self.keypair.clone(), config.sharding())
            .with_listen(config.network.listen.iter().cloned())
            .with_shards(config.shards())
            .with_idle_timeout(Duration::from_secs(config.network.idle_timeout_secs))
            .with_own_thread(config.network.own_thread)
            .with_timer_nice(config.network.timer_thread_nice)
            .with_metrics(self.metrics.clone());
        for peer in &config.network.peers {
            transport = transport.with_static_peer(peer.clone());
        }
        if config.store.enabled {
            transport = transport.with_store(self.storage.query.clone());
        }
        if config.store.archive {
            transport = transport.with_archive(self.storage.save_raw.clone());
        }
        let bootstrap = config
            .network
            .bootstrap_enrs
            .iter()
            .filter_map(|enr| enr.parse::<murmur_transport::enr::Record>().ok());
        transport = transport
            .with_peer_exchange(config.network.peer_exchange)
            .with_bootstrap(bootstrap)
            .with_filter(config.network.filter)
            .with_lightpush(config.network.lightpush);
        if config.network.light {
            if let Some(service) = config.network.peers.first() {
                transport = transport.light(service.clone());
            }
        }
        transport
    }
}

/// A running node: what an application, a bot or a test holds. Clones are
/// cheap and share the node.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    pipeline: Addr<Pipeline>,
    transport: transport::Handle,
    sharding: Sharding,
    status: Status,
    metrics: murmur_transport::Metrics,
    metrics_addr: Option<std::net::SocketAddr>,
    crypto_metrics: crate::crypto::Metrics,
    group_metrics: crate::groups::Metrics,
    chat: Option<murmur_core::crypto::Handle>,
    groups: Option<murmur_core::groups::Handle>,
    storage: storage::Handle,
    sync: murmur_core::sync::Handle,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("peer_id", &self.peer_id())
            .finish_non_exhaustive()
    }
}

/// A stage of a running node, to inject a fault into (tests of supervision).
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageId {
    /// The pipeline.
    Pipeline,
    /// The transport stage.
    Transport,
    /// The crypto stage.
    Crypto,
    /// The membership stage.
    Membership,
    /// The persistence stage.
    Storage,
    /// The store-sync stage.
    Sync,
}

impl Node {
    /// Makes `stage` panic in its next handler, as a defect there would:
    /// the stage answers that request with a `Restarted` error and is
    /// restarted by its supervisor (tests of supervision).
    #[cfg(feature = "fault-injection")]
    pub async fn inject_panic(&self, stage: StageId) -> Result<(), Error> {
        use murmur_core::supervise::InjectPanic;
        let inner = &self.inner;
        match stage {
            StageId::Pipeline => inner.pipeline.send(InjectPanic).await?,
            StageId::Transport => inner.transport.inject_panic.send(InjectPanic).await?,
            StageId::Crypto => {
                let crypto = inner.chat.as_ref().ok_or(Error::ChatDisabled)?;
                crypto.inject_panic.send(InjectPanic).await?;
            }
            StageId::Membership => {
                let groups = inner.groups.as_ref().ok_or(Error::ChatDisabled)?;
                groups.inject_panic.send(InjectPanic).await?;
            }
            StageId::Storage => inner.storage.inject_panic.send(InjectPanic).await?,
            StageId::Sync => inner.sync.inject_panic.send(InjectPanic).await?,
        }
        Ok(())
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> String {
        self.inner
            .status
            .peer_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    /// The node's discovery record (`enr:…`), for other nodes' bootstrap lists.
    pub fn enr(&self) -> Option<&str> {
        self.inner.status.enr.as_deref()
    }

    /// Where the node listens, each address ending in `/p2p/<peer id>`.
    pub fn listen_addrs(&self) -> &[String] {
        &self.inner.status.listen_addrs
    }

    /// The pubsub topic a content topic travels on (autosharding).
    pub fn pubsub_topic(&self, topic: &ContentTopic) -> PubsubTopic {
        self.inner.sharding.pubsub_topic(topic)
    }

    /// Publishes `payload` on `topic`, stamped with the current time.
    pub async fn send(
        &self,
        topic: &ContentTopic,
        payload: impl Into<Bytes>,
    ) -> Result<MessageHash, Error> {
        let message =
            WakuMessage::new(topic.as_str(), payload).with_timestamp(murmur_core::now_nanos());
        self.publish(self.pubsub_topic(topic), message).await
    }

    /// Publishes a message as given on `pubsub_topic`, through the outbound hooks.
    ///
    /// Dropping the future before it answers may or may not stop the
    /// message (it may already be on the network); one that is published is
    /// also archived on an archiving node, whether or not anyone still waits.
    pub async fn publish(
        &self,
        pubsub_topic: PubsubTopic,
        message: WakuMessage,
    ) -> Result<MessageHash, Error> {
        crate::pipeline::publish(&self.inner.pipeline, Outgoing::new(pubsub_topic, message)).await
    }

    /// Receives the messages on these content topics (subscribing their shards
    /// if this node does not serve them already).
    pub async fn subscribe<'a>(
        &self,
        topics: impl IntoIterator<Item = &'a ContentTopic>,
    ) -> Result<Subscription, Error> {
        let topics: Vec<&ContentTopic> = topics.into_iter().collect();
        let names = topics.iter().map(|t| t.as_str().to_owned()).collect();
        self.subscribe_shards(topics.iter().copied()).await?;
        let rx = self
            .inner
            .pipeline
            .send(AddSubscriber {
                topics: Some(names),
                capacity: SUBSCRIBER_QUEUE,
            })
            .await?;
        Ok(Subscription { rx })
    }

    /// Content topics grouped by the shard (pubsub topic) they travel on.
    fn by_shard<'a>(
        &self,
        topics: impl IntoIterator<Item = &'a ContentTopic>,
    ) -> std::collections::BTreeMap<PubsubTopic, Vec<String>> {
        let mut shards: std::collections::BTreeMap<PubsubTopic, Vec<String>> = Default::default();
        for topic in topics {
            shards
                .entry(self.pubsub_topic(topic))
                .or_default()
                .push(topic.as_str().to_owned());
        }
        shards
    }

    /// Subscribes the transport to the shards of these content topics.
    async fn subscribe_shards<'a>(
        &self,
        topics: impl IntoIterator<Item = &'a ContentTopic>,
    ) -> Result<(), Error> {
        for (shard, content_topics) in self.by_shard(topics) {
            self.inner
                .transport
                .subscribe
                .send(Subscribe::new(shard).with_content_topics(content_topics))
                .await??;
        }
        Ok(())
    }

    fn chat(&self) -> Result<&murmur_core::crypto::Handle, Error> {
        self.inner.chat.as_ref().ok_or(Error::ChatDisabled)
    }

    /// This node's chat account and device (the account changes once, when
    /// a new device is paired).
    pub async fn chat_identity(&self) -> Result<(AccountId, DeviceId), Error> {
        Ok(self
            .chat()?
            .identity
            .send(murmur_core::crypto::Identity)
            .await??)
    }

    /// A one-time code, valid ten minutes, that lets a new device join this
    /// account (`Node::pair` on the new device). Only the account's first
    /// device can issue one.
    pub async fn pairing_code(&self) -> Result<String, Error> {
        Ok(self
            .chat()?
            .pairing_code
            .send(murmur_core::crypto::PairingCode)
            .await??)
    }

    /// Joins the account that issued `code`: sends the request and returns;
    /// the device takes the account's identity when the answer arrives
    /// (watch [`Node::chat_identity`]). Contacts learn the new device from
    /// the first one.
    pub async fn pair(&self, code: &str) -> Result<(), Error> {
        let sealed = self
            .chat()?
            .pair
            .send(murmur_core::crypto::Pair(code.to_owned()))
            .await??;
        self.inner.pipeline.send(PublishEnvelopes(sealed)).await??;
        Ok(())
    }

    /// Revokes one of this account's devices (a lost phone): contacts and
    /// the other devices stop sealing for it and refuse what it sends.
    pub async fn revoke(&self, device: DeviceId) -> Result<(), Error> {
        let sealed = self
            .chat()?
            .revoke
            .send(murmur_core::crypto::Revoke(device))
            .await??;
        if !sealed.is_empty() {
            self.inner.pipeline.send(PublishEnvelopes(sealed)).await??;
        }
        Ok(())
    }

    /// The devices of `account` this node knows (for its own account: the
    /// other devices).
    pub async fn devices(&self, account: AccountId) -> Result<Vec<DeviceId>, Error> {
        Ok(self
            .chat()?
            .devices
            .send(murmur_core::crypto::Devices(account))
            .await??)
    }

    /// This device's contact code (`murmur:…`): share it, and whoever adds
    /// it can write to this account, even while it is offline.
    pub async fn contact_code(&self) -> Result<String, Error> {
        Ok(self
            .chat()?
            .contact_code
            .send(murmur_core::crypto::ContactCode)
            .await??)
    }

    /// Adds a contact's device from its contact code; answers its account.
    pub async fn add_contact(&self, code: &str) -> Result<AccountId, Error> {
        Ok(self
            .chat()?
            .add_contact
            .send(murmur_core::crypto::AddContact(code.to_owned()))
            .await??)
    }

    /// A conversation with `peer`.
    pub fn conversation(&self, peer: AccountId) -> Conversation {
        Conversation::new(self.clone(), peer)
    }

    pub(crate) async fn send_chat(&self, to: AccountId, body: Body) -> Result<Sent, Error> {
        self.inner.pipeline.send(SendChat { to, body }).await?
    }

    fn groups_stage(&self) -> Result<&murmur_core::groups::Handle, Error> {
        self.inner.groups.as_ref().ok_or(Error::ChatDisabled)
    }

    /// Creates a private group with this account as its creator and first
    /// admin (on the device that holds the account key).
    pub async fn create_group(&self, name: &str) -> Result<Group, Error> {
        let (id, effects) = self
            .groups_stage()?
            .create
            .send(murmur_core::groups::Create {
                name: name.to_owned(),
            })
            .await??;
        self.inner.pipeline.send(ApplyEffects(effects)).await??;
        Ok(Group::new(self.clone(), id))
    }

    /// Creates a community: a group with these channels, in `mode`, this
    /// account its owner. Any admin's device carries out joins and
    /// moderation, so the community works while the owner is offline.
    pub async fn create_community(
        &self,
        name: &str,
        channels: &[&str],
        mode: murmur_core::groups::JoinMode,
    ) -> Result<Group, Error> {
        let group = self.create_group(name).await?;
        for channel in channels {
            group.open_channel(*channel).await?;
        }
        group.set_join_mode(mode).await?;
        Ok(group)
    }

    /// Asks to join with an invite code or link ([`Group::invite_code`],
    /// [`Group::link`]): the request goes to the admin who made it, whose
    /// device adds this account (or, for a link to a group that asks for
    /// approval, keeps the request for an admin). Answers the group, which
    /// this device learns once it is added.
    pub async fn join(&self, code: &str) -> Result<GroupId, Error> {
        let (group, effects) = self
            .groups_stage()?
            .join
            .send(murmur_core::groups::Join(code.to_owned()))
            .await??;
        self.inner.pipeline.send(ApplyEffects(effects)).await??;
        Ok(group)
    }

    /// Receives what changes in this account's groups from now on: joins
    /// and departures, deletions, pins, join requests.
    pub async fn notices(&self) -> Result<Notices, Error> {
        let rx = self
            .inner
            .pipeline
            .send(AddNotices { capacity: 1024 })
            .await??;
        Ok(Notices { rx })
    }

    pub(crate) async fn group_invite(&self, group: GroupId, admit: bool) -> Result<String, Error> {
        let (code, effects) = self
            .groups_stage()?
            .create_invite
            .send(murmur_core::groups::CreateInvite { group, admit })
            .await??;
        self.inner.pipeline.send(ApplyEffects(effects)).await??;
        Ok(code)
    }

    pub(crate) async fn group_requests(&self, group: GroupId) -> Result<Vec<AccountId>, Error> {
        Ok(self
            .groups_stage()?
            .requests
            .send(murmur_core::groups::Requests(group))
            .await??)
    }

    /// A group this device knows (see [`Node::groups`]).
    pub fn group(&self, id: GroupId) -> Group {
        Group::new(self.clone(), id)
    }

    /// Every group this device knows, with its members, including those
    /// this account has left.
    pub async fn groups(&self) -> Result<Vec<Summary>, Error> {
        Ok(self
            .groups_stage()?
            .list
            .send(murmur_core::groups::List)
            .await??)
    }

    pub(crate) async fn group_info(&self, id: GroupId) -> Result<Summary, Error> {
        Ok(self
            .groups_stage()?
            .info
            .send(murmur_core::groups::Info(id))
            .await??)
    }

    pub(crate) async fn change_group(
        &self,
        group: GroupId,
        action: murmur_core::groups::Action,
    ) -> Result<(), Error> {
        let effects = self
            .groups_stage()?
            .change
            .send(murmur_core::groups::Change { group, action })
            .await??;
        // Published (or durably queued) before this returns: keys handed
        // over before anything is sent on them.
        self.inner.pipeline.send(ApplyEffects(effects)).await??;
        Ok(())
    }

    pub(crate) async fn send_group(
        &self,
        group: GroupId,
        channel: Option<&str>,
        body: Body,
    ) -> Result<Sent, Error> {
        let outgoing = crate::chat::Outgoing::new(crate::chat::Target::Group(group), body);
        let body = self.inner.pipeline.send(ChatOutbound(outgoing)).await??;
        let id = crate::chat::random_id();
        let sealed = self
            .groups_stage()?
            .post
            .send(murmur_core::groups::Post {
                group,
                plaintext: crate::chat::encode_group(id, channel, &body),
            })
            .await??;
        let outcome = self
            .inner
            .pipeline
            .send(PublishEnvelopes(vec![sealed]))
            .await??;
        let state = if outcome.published > 0 {
            DeliveryState::Published {
                envelopes: outcome.published,
            }
        } else {
            DeliveryState::Queued
        };
        let (_, rx) = tokio::sync::watch::channel(state);
        Ok(Sent::new(id, rx))
    }

    /// Reads what the application saved under `key` with
    /// [`Node::save_app_state`].
    pub async fn load_app_state(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .inner
            .storage
            .load_state
            .send(storage::LoadState(format!("{APP_STATE}{key}")))
            .await??)
    }

    /// Keeps `value` under `key` in the node's database (`None` deletes
    /// it), beside the node's own state but never mixed with it. Stored as
    /// given: seal what must stay secret at rest.
    pub async fn save_app_state(&self, key: &str, value: Option<Vec<u8>>) -> Result<(), Error> {
        Ok(self
            .inner
            .storage
            .save_state
            .send(storage::SaveState(vec![(
                format!("{APP_STATE}{key}"),
                value,
            )]))
            .await??)
    }

    /// The membership stage's counters.
    pub fn group_metrics(&self) -> &crate::groups::Metrics {
        &self.inner.group_metrics
    }

    /// Receives the chat messages that arrive from now on, decrypted, with
    /// their verified sender.
    pub async fn inbox(&self) -> Result<Inbox, Error> {
        let rx = self
            .inner
            .pipeline
            .send(AddInbox {
                capacity: SUBSCRIBER_QUEUE,
            })
            .await??;
        Ok(Inbox { rx })
    }

    /// Fetches from the store node at `peer` (an address ending in
    /// `/p2p/<peer id>`) what arrived on this account's chat topics since
    /// `since` (nanoseconds since the Unix epoch; `None` for everything the
    /// store keeps), and passes it through the pipeline like relay traffic:
    /// archived by hash first, so nothing is delivered twice, then opened
    /// and delivered to the inboxes in the store's order. Answers how many
    /// messages the store returned.
    pub async fn catch_up(&self, peer: &str, since: Option<i64>) -> Result<usize, Error> {
        let crypto = self.chat()?;
        let topics = crypto.topics.send(murmur_core::crypto::Topics).await??;
        let mut fetched = self.catch_up_topics(peer, since, &topics).await?;
        // Groups after the pairwise topics: the keys a group's messages
        // need come in pairwise sessions.
        let groups = self
            .groups_stage()?
            .topics
            .send(murmur_core::groups::Topics)
            .await??;
        fetched += self.catch_up_topics(peer, since, &groups).await?;
        Ok(fetched)
    }

    async fn catch_up_topics(
        &self,
        peer: &str,
        since: Option<i64>,
        topics: &[ContentTopic],
    ) -> Result<usize, Error> {
        let mut fetched = 0;
        for (shard, content_topics) in self.by_shard(topics) {
            let content_topics = content_topics
                .iter()
                .filter_map(|t| t.parse().ok())
                .collect();
            let ask = murmur_core::sync::CatchUp::new(shard, content_topics)
                .since(since)
                .from_store(peer);
            fetched += self.inner.sync.catch_up.send(ask).await??;
        }
        Ok(fetched)
    }

    /// Publishes this device's bundle (signed, without one-time prekeys) on
    /// its account's bundle topic, where store nodes keep it for contacts
    /// ([`Node::refresh_contact`]). The node does this by itself every six
    /// hours; answers the message hash.
    pub async fn publish_bundle(&self) -> Result<MessageHash, Error> {
        let (topic, bundle) = self
            .chat()?
            .own_bundle
            .send(murmur_core::crypto::OwnBundle)
            .await??;
        let message =
            WakuMessage::new(topic.as_str(), bundle).with_timestamp(murmur_core::now_nanos());
        self.publish(self.pubsub_topic(&topic), message).await
    }

    /// Fetches the bundles `account`'s devices published from the store node
    /// at `peer`, and keeps those newer than what this node knows (a
    /// rotated signed prekey, a new device). Enough to write to an account
    /// known only by its id. Answers how many bundles were kept.
    pub async fn refresh_contact(&self, peer: &str, account: AccountId) -> Result<usize, Error> {
        let crypto = self.chat()?;
        let topic = crypto
            .bundle_topic
            .send(murmur_core::crypto::BundleTopic(account))
            .await??;
        let mut query = murmur_core::store::Query::content(
            Some(self.pubsub_topic(&topic)),
            vec![topic.as_str().to_owned()],
        );
        let mut bundles = Vec::new();
        loop {
            let page = self.query_store(peer, query.clone()).await?;
            bundles.extend(
                page.messages
                    .into_iter()
                    .filter_map(|m| m.message.map(|m| m.payload)),
            );
            match page.cursor {
                Some(cursor) => query = query.with_cursor(Some(cursor)),
                None => break,
            }
        }
        Ok(crypto
            .learn_bundles
            .send(murmur_core::crypto::LearnBundles { account, bundles })
            .await??)
    }

    /// The crypto stage's counters.
    pub fn crypto_metrics(&self) -> &crate::crypto::Metrics {
        &self.inner.crypto_metrics
    }

    /// Receives every message on every subscribed pubsub topic.
    pub async fn subscribe_all(&self) -> Result<Subscription, Error> {
        let rx = self
            .inner
            .pipeline
            .send(AddSubscriber {
                topics: None,
                capacity: SUBSCRIBER_QUEUE,
            })
            .await?;
        Ok(Subscription { rx })
    }

    /// Connects to a peer.
    pub async fn dial(&self, address: &str) -> Result<transport::PeerId, Error> {
        Ok(self
            .inner
            .transport
            .dial
            .send(Dial(address.to_owned()))
            .await??)
    }

    /// Takes the node off the network: connections and listeners close, and
    /// it relays and receives nothing more. Its data stays in its folder;
    /// a node started again on that folder (and key) is the same node, and
    /// [`Node::catch_up`] fetches what it missed.
    pub async fn go_offline(&self) -> Result<(), Error> {
        Ok(self.inner.transport.stop.send(transport::Stop).await?)
    }

    /// The transport's view of the network.
    pub async fn status(&self) -> Result<Status, Error> {
        Ok(self.inner.transport.status.send(GetStatus).await?)
    }

    /// Asks the store node at `peer` (an address ending in `/p2p/<peer id>`)
    /// for one page of `query`.
    pub async fn query_store(
        &self,
        peer: &str,
        query: murmur_core::store::Query,
    ) -> Result<murmur_core::store::Page, Error> {
        Ok(self
            .inner
            .transport
            .query_store
            .send(QueryStore::new(peer, query))
            .await??)
    }

    /// The pipeline's counters.
    pub async fn stats(&self) -> Result<Stats, Error> {
        Ok(self.inner.pipeline.send(GetStats).await?)
    }

    /// The transport's metrics (when it is the libp2p transport).
    pub fn transport_metrics(&self) -> &murmur_transport::Metrics {
        &self.inner.metrics
    }

    /// Where `/metrics` is served, if enabled.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.metrics_addr
    }

    /// Waits until at least `n` peers receive what this node publishes on `topic`.
    pub async fn wait_for_peers(
        &self,
        topic: &PubsubTopic,
        n: usize,
        timeout: Duration,
    ) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let status = self.status().await?;
            if status
                .topics
                .iter()
                .any(|(t, count)| t == topic && *count >= n)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Send(transport::Error::NoPeers(topic.clone())));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A queue of deliveries for one subscriber.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Delivery>,
}

impl Subscription {
    /// The next delivery; `None` once the node is gone.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }

    /// The next delivery, waiting at most `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Option<Delivery> {
        tokio::time::timeout(timeout, self.rx.recv())
            .await
            .ok()
            .flatten()
    }
}
