use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use actix::{prelude::*, Supervisor};
use libp2p::identity::Keypair;
use murmur_core::{
    hook::Hook,
    storage,
    transport::{self, Dial, GetStatus, Subscribe},
};
use prometheus_client::registry::Registry;

use crate::{
    handle::{Inner, Node},
    keys,
    pipeline::{Attach, AttachChat, AttachGroups, AttachInbox, AttachRaw, Slot, Started},
    Config, Error, Pipeline,
};

mod tasks;

use tasks::{discover, spawn_bundle_publisher, spawn_retention};

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
    /// The persistence stage, where the stage keeps how far it has seen
    /// the topics it watches.
    pub storage: storage::Handle,
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
    /// Where DNS discovery asks; the system's name servers if not given.
    dns: Option<Arc<dyn murmur_transport::dns::Txt>>,
    /// The default persistence stage's metrics; none once it is replaced.
    storage_metrics: Option<murmur_storage::Metrics>,
}

impl Builder {
    /// A node with the libp2p Waku transport.
    pub fn new(config: Config) -> Self {
        let storage_metrics = murmur_storage::Metrics::default();
        let counted = storage_metrics.clone();
        Self {
            config,
            keypair: None,
            transport: Box::new(|cx| Box::pin(libp2p_transport(cx))),
            storage: Box::new(|config| Box::pin(sql_storage(config, counted))),
            storage_metrics: Some(storage_metrics),
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
                    let stage = murmur_sync::StoreSync::start(
                        cx.query_store,
                        cx.inbound,
                        cx.stores,
                        cx.storage,
                    );
                    Ok(murmur_core::sync::Handle::from(stage))
                })
            }),
            hooks: Vec::new(),
            require_static_peers: true,
            dns: None,
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
        self.storage_metrics = None;
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

    /// Answers the TXT queries of DNS discovery
    /// (`network.dns_discovery_urls`) with `txt` instead of the system's
    /// name servers: a resolver of an integrator's, or a test's own tree.
    pub fn with_dns(mut self, txt: Arc<dyn murmur_transport::dns::Txt>) -> Self {
        self.dns = Some(txt);
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
    pub async fn start(mut self) -> Result<Node, Error> {
        self.config
            .placement()
            .map_err(|e| Error::Config(format!("network.topic_shards: {e}")))?;
        // Bound before the transport makes the node's record, which names
        // its port.
        let discv5_socket = if self.config.network.discv5 {
            let socket = crate::discovery::bind_udp(&self.config)?;
            self.config.network.discv5_udp_port = socket
                .local_addr()
                .map_err(|e| Error::Config(format!("network.discv5_udp_port: {e}")))?
                .port();
            Some(socket)
        } else {
            None
        };
        let keypair = match self.keypair {
            Some(k) => k,
            None => keys::load_or_create(&self.config.data_dir)?,
        };
        // Before the transport listens: deriving it takes a while (a key
        // derivation made to be slow, or an outside command), and the
        // swarm may share this thread.
        let vault_secret = if self.config.chat.enabled {
            Some(crate::crypto::vault_secret(&keypair, &self.config)?)
        } else {
            None
        };
        let storage = (self.storage)(self.config.clone()).await?;
        // Before any stage loads its state: a replica standing by has
        // loaded nothing that the holder may change.
        let lease = if self.config.store.leased() {
            let term = Duration::from_secs(self.config.store.lease_secs);
            Some(crate::lease::take(&storage, term).await?)
        } else {
            None
        };
        let mut hooks = Vec::with_capacity(self.hooks.len());
        for spec in self.hooks {
            match spec {
                HookSpec::Instance(hook) => hooks.push(Slot::new(hook)),
                HookSpec::Plugin(build) => hooks.extend(build(&self.config)?),
            }
        }
        let queue = self.config.chat.queue;
        let pipeline = Supervisor::start(move |_| Pipeline::new(hooks, queue));
        let metrics = murmur_transport::Metrics::default();
        let mut registry = Registry::with_prefix("murmur");
        metrics.register(registry.sub_registry_with_prefix("transport"));
        if let Some(storage) = &self.storage_metrics {
            storage.register(registry.sub_registry_with_prefix("storage"));
        }

        let transport = (self.transport)(StageContext {
            events: pipeline.clone().recipient(),
            config: self.config.clone(),
            keypair: keypair.clone(),
            metrics: metrics.clone(),
            storage: storage.clone(),
        })
        .await?;
        let connected = Arc::new(tokio::sync::Notify::new());
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
            storage: storage.clone(),
        })
        .await?;
        pipeline
            .send(Attach {
                transport: transport.clone(),
                storage: storage.clone(),
                connected: connected.clone(),
                confirm: sync.confirm.clone(),
                catch_up: sync.catch_up.clone(),
                archive: self.config.store.archive,
            })
            .await?;
        spawn_retention(&self.config, storage.prune.clone());

        // Raw messages are public: kept as the network carries them.
        let raw = Arc::new(crate::inbox::Shelf::new(None, storage.clone()));
        let raw_topics = raw.topics().await?;
        let raw_book =
            crate::inbox::Book::load(raw.clone(), self.config.store.subscription_keep).await?;
        pipeline
            .send(AttachRaw(raw_book, raw_topics.clone()))
            .await?;

        let crypto_metrics = crate::crypto::Metrics::default();
        crypto_metrics.register(registry.sub_registry_with_prefix("crypto"));
        let group_metrics = crate::groups::Metrics::default();
        group_metrics.register(registry.sub_registry_with_prefix("groups"));
        let chat = if let Some(vault_secret) = vault_secret {
            let crypto = (self.crypto)(CryptoContext {
                storage: storage.clone(),
                node_secret: vault_secret.clone(),
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
                    batch: self.config.chat.batch,
                })
                .await?;
            let groups = (self.groups)(GroupsContext {
                storage: storage.clone(),
                crypto: crypto.clone(),
                node_secret: vault_secret.clone(),
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
            let shelf = Arc::new(crate::inbox::Shelf::new(
                Some(murmur_crypto::Vault::new(&vault_secret)),
                storage.clone(),
            ));
            let book = crate::inbox::Book::load(shelf.clone(), self.config.chat.inbox_keep).await?;
            pipeline.send(AttachInbox(book)).await?;
            let mut topics = topics;
            topics.extend(group_topics);
            Some((crypto, topics, groups, shelf))
        } else {
            None
        };
        // What came while the stages were attached is handled now.
        pipeline.send(Started).await?;

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
        let status = transport.status.send(GetStatus).await?;
        let node = Node {
            inner: Arc::new(Inner {
                pipeline,
                transport,
                sharding,
                status,
                metrics,
                registry: Arc::new(registry),
                config: Arc::new(self.config.clone()),
                crypto_metrics,
                group_metrics,
                chat: chat.as_ref().map(|(crypto, ..)| crypto.clone()),
                groups: chat.as_ref().map(|(_, _, groups, _)| groups.clone()),
                inbox: chat.as_ref().map(|(.., shelf)| shelf.clone()),
                raw,
                storage: storage.clone(),
                sync,
                watched: Default::default(),
                lease,
            }),
        };
        if let Some((_, topics, ..)) = &chat {
            // Our partition's shard, with its content topic, even on a node
            // that relays only some shards or none (light).
            match node.subscribe_shards(topics.iter()).await {
                Ok(()) => {}
                // A service without filter (or one that refuses) still
                // carries what a light node sends; the subscription is asked
                // for again at every filter refresh.
                Err(e) if self.config.network.light => tracing::warn!(
                    error = %e,
                    "the filter service did not take this device's chat topics; \
                     asking again every minute"
                ),
                Err(e) => return Err(e),
            }
            spawn_bundle_publisher(&node, &self.config.chat);
        }
        // What durable subscriptions asked for before is kept from now on,
        // before the application asks again.
        let raw_topics: Vec<murmur_core::ContentTopic> =
            raw_topics.iter().filter_map(|t| t.parse().ok()).collect();
        if !raw_topics.is_empty() {
            node.watch(&raw_topics).await?;
        }
        let peers = self
            .config
            .network
            .peers
            .iter()
            .map(ToString::to_string)
            .collect();
        let discovered = discover(&self.config, self.dns.clone(), &node);
        if let Some(socket) = discv5_socket {
            crate::discovery::spawn_discv5(&node, &keypair, socket, &self.config);
        }
        crate::store_sync::spawn(&node, connected, &self.config.store, peers, discovered);
        Ok(node)
    }
}

async fn sql_storage(
    config: Config,
    metrics: murmur_storage::Metrics,
) -> Result<storage::Handle, Error> {
    let db = murmur_storage::Database::open(&config.store_url()).await?;
    Ok(storage::Handle::from(murmur_storage::Storage::start_with(
        db, metrics,
    )))
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
            .with_max_tasks(config.network.max_tasks)
            .with_metrics(self.metrics.clone());
        for peer in &config.network.peers {
            transport = transport.with_static_peer(peer.clone());
        }
        if config.store.enabled {
            transport = transport.with_store(self.storage.query.clone());
        }
        if config.store.archive {
            transport = transport.with_archive(self.storage.save_all.clone());
        }
        let bootstrap = config
            .network
            .bootstrap_enrs
            .iter()
            .filter_map(|enr| enr.parse::<murmur_transport::enr::Record>().ok());
        if config.network.discv5 {
            transport = transport.with_discv5_port(config.network.discv5_udp_port);
        }
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
